//! Deployment locations: each a Docker Engine (the daemon's own, or another
//! one named in `[[resource.locations]]`). A location whose engine does not
//! answer is unavailable; the others are not affected.

use crate::config::ResourceSettings;
use crate::services::Services;
use berth_core::engine::Engine;
use berth_engine::{DockerEngine, EngineTimeouts};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub const LOCAL: &str = "local";

pub struct Location {
    pub name: String,
    pub kind: String,
    pub description: String,
    pub engine: Arc<dyn Engine>,
}

impl Location {
    /// Whether its engine answers now (bounded by the engine's control timeout).
    pub async fn available(&self) -> bool {
        self.engine.info().await.is_ok()
    }
}

/// The locations the settings name, or `local` on the daemon's engine.
pub async fn connect(services: &Arc<Services>, settings: &ResourceSettings) -> BTreeMap<String, Arc<Location>> {
    let mut locations = BTreeMap::new();
    if settings.locations.is_empty() {
        let local = Location {
            name: LOCAL.into(),
            kind: "docker".into(),
            description: "the daemon's Docker Engine".into(),
            engine: services.engine.clone(),
        };
        locations.insert(LOCAL.to_owned(), Arc::new(local));
        return locations;
    }
    let timeouts =
        EngineTimeouts { control: Duration::from_secs(services.config.settings.engine.control_timeout_secs) };
    for l in &settings.locations {
        let engine: Arc<dyn Engine> = match &l.engine {
            None => services.engine.clone(),
            Some(uri) if Some(uri) == services.config.docker_host.as_ref() => services.engine.clone(),
            // The scheme was checked with the settings: connecting never
            // waits for the engine, which may answer later.
            Some(uri) => match DockerEngine::connect(Some(uri), timeouts).await {
                Ok(engine) => Arc::new(engine),
                Err(e) => {
                    tracing::error!(location = %l.name, engine = %uri, error = %e, "the location is left out");
                    continue;
                }
            },
        };
        let location =
            Location { name: l.name.clone(), kind: l.kind.clone(), description: l.description.clone(), engine };
        locations.insert(l.name.clone(), Arc::new(location));
    }
    locations
}
