//! Deployment locations: each a Docker Engine (the daemon's own, or another
//! one named in `[[resource.locations]]`). A location whose engine does not
//! answer is unavailable; the others are not affected.

use crate::config::ResourceSettings;
use crate::services::Services;
use berth_core::engine::Engine;
use std::collections::BTreeMap;
use std::sync::Arc;

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
    for l in &settings.locations {
        // The scheme was checked with the settings.
        let engine = match services.engine_at(l.engine.as_deref()).await {
            Ok(engine) => engine,
            Err(e) => {
                tracing::error!(location = %l.name, engine = ?l.engine, error = %e, "the location is left out");
                continue;
            }
        };
        let location =
            Location { name: l.name.clone(), kind: l.kind.clone(), description: l.description.clone(), engine };
        locations.insert(l.name.clone(), Arc::new(location));
    }
    locations
}
