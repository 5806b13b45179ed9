//! The daemon assembled: the shared services, one object per capability,
//! the journal's effect runner wired to them, and the API's managers.

use crate::apps::migration::Migration;
use crate::apps::Apps;
use crate::intake::logins::Logins;
use crate::resources::locations::Location;
use crate::resources::Resources;
use crate::services::Services;
use crate::sra::Sra;
use async_trait::async_trait;
use berth_api::routes::daemon::DaemonManager;
use berth_api::{ApiError, DaemonInfo, Managers};
use std::sync::Arc;

/// Finished journal entries are kept this long (seconds).
const JOURNAL_HISTORY_SECS: i64 = 7 * 86_400;

pub struct Daemon {
    pub services: Arc<Services>,
    pub apps: Arc<Apps>,
    pub sra: Arc<Sra>,
    pub resources: Arc<Resources>,
    pub hosts: Arc<crate::hosts::Hosts>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub certs: Arc<crate::certs::CertsDir>,
    /// SHA-256 fingerprints of revoked client certificates, shared with the TLS listeners.
    pub revoked: crate::certs::verify::Revoked,
    /// The remote API's acceptor, once its listeners serve (`--listen`).
    pub remote_tls: Arc<std::sync::OnceLock<crate::tls::SharedAcceptor>>,
    /// The web UI's sign-in: administrator account and sessions.
    pub web: Arc<berth_web::WebAuth>,
}

impl Daemon {
    /// `locations`: the resource manager's deployment locations, connected.
    pub fn assemble(
        services: Arc<Services>,
        locations: std::collections::BTreeMap<String, Arc<Location>>,
    ) -> Arc<Self> {
        let apps = Arc::new(Apps::new(services.clone()));
        let sra = Arc::new(Sra::new(services.clone()));
        let resources = Arc::new(Resources::new(services.clone(), locations));
        let hosts = Arc::new(crate::hosts::Hosts::new(services.clone()));
        services.journal.set_effects(crate::effects::runner(&services, &sra, &resources, &hosts));
        let certs = Arc::new(crate::certs::CertsDir::new(services.config.certs_dir.clone()));
        let revoked = Arc::new(std::sync::RwLock::new(certs.revoked().unwrap_or_default()));
        let metrics = crate::metrics::Metrics::new();
        let web = crate::web::auth(&services.config.root, &services.config.settings.web);
        tokio::spawn(metrics.clone().follow(services.events.subscribe()));
        Arc::new(Self {
            services,
            apps,
            sra,
            resources,
            hosts,
            metrics,
            certs,
            revoked,
            remote_tls: Default::default(),
            web,
        })
    }

    pub fn managers(self: &Arc<Self>) -> Managers {
        Managers {
            daemon: Arc::new(Info(self.clone())),
            apps: Arc::new(crate::apps::AppsApi(self.apps.clone())),
            sra: Arc::new(crate::sra::SraApi(self.sra.clone())),
            migration: Arc::new(Migration { apps: self.apps.clone() }),
            logins: Arc::new(Logins::new(self.services.config.root.clone())),
            resources: Arc::new(crate::resources::api::ResourcesApi(self.resources.clone())),
            certs: Arc::new(crate::certs::api::CertsApi {
                certs: self.certs.clone(),
                revoked: self.revoked.clone(),
                remote_tls: self.remote_tls.clone(),
                listen: self.services.config.listen.iter().map(|a| format!("tcp://{a}")).collect(),
            }),
            hosts: Arc::new(crate::hosts::HostsApi(self.hosts.clone())),
            events: Arc::new(crate::events::EventsApi(self.services.events.clone())),
            metrics: Arc::new(MetricsApi(self.clone())),
            web: Arc::new(crate::web::WebApi(self.clone())),
        }
    }

    /// Start-up, once the engine answers: finish or undo what a crash
    /// interrupted, then start the apps.
    pub async fn recover(&self) -> Result<(), crate::apps::error::AppError> {
        let waiting = self.services.journal.resume_open().await?;
        if waiting > 0 {
            tracing::warn!(waiting, "operations wait for the engine; they are finished when it answers");
        }
        self.apps.start().await?;
        self.resources.start().await;
        // After the journal: a host being deleted is not started again.
        self.hosts.clone().start_all().await;
        crate::version::write(&self.services).await;
        self.services.engine_state.set_ready();
        tokio::spawn(self.resources.clone().onboard_package_dirs());
        let before = crate::services::now_secs() - JOURNAL_HISTORY_SECS;
        self.services
            .db::<_, crate::apps::error::AppError, _>("pruning the journal", move |s| s.prune_entries(before))
            .await?;
        Ok(())
    }
}

struct Info(Arc<Daemon>);

#[async_trait]
impl DaemonManager for Info {
    async fn doctor(&self) -> Result<berth_api::DoctorReport, ApiError> {
        Ok(crate::doctor::run(&self.0).await)
    }

    async fn rebuild(&self) -> Result<berth_api::RebuildReport, ApiError> {
        crate::doctor::rebuild(&self.0).await
    }

    async fn info(&self) -> Result<DaemonInfo, ApiError> {
        let services = &self.0.services;
        let open = services.journal.open_entries().await.map(|e| e.len()).unwrap_or_default();
        Ok(DaemonInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            ready: services.engine_state.is_ready(),
            instance: services.ownership.instance().to_owned(),
            root: services.config.root.display().to_string(),
            data_root: services.config.data_root.display().to_string(),
            engine_endpoint: services.engine.endpoint(),
            engine_version: services.engine_state.version(),
            default_cpus: services.default_cpus(),
            apps: self.0.apps.registry.len(),
            open_operations: open,
            pid: std::process::id(),
            degraded: services.engine_state.lost().map(|why| {
                format!(
                    "the container engine at {} does not answer ({why}); running apps keep running, nothing can be installed or changed, and berth recovers on its own when the engine is back",
                    services.engine.endpoint()
                )
            }),
        })
    }
}

/// `/metrics`: the counters, and the levels as the daemon holds them now.
struct MetricsApi(Arc<Daemon>);

#[async_trait::async_trait]
impl berth_api::routes::metrics::MetricsManager for MetricsApi {
    async fn render(&self) -> Result<String, berth_api::ApiError> {
        let daemon = &self.0;
        let apps: Vec<(String, berth_core::status::AppState, u32)> = daemon
            .apps
            .registry
            .handles()
            .iter()
            .map(|h| {
                let r = crate::services::lock(&h.runtime);
                (r.spec.name.to_string(), r.state, r.restarts)
            })
            .collect();
        let store = daemon.services.store.clone();
        let (open_operations, outbox_depth) = crate::fs::blocking("reading the levels", move || {
            let open = store.open_entries().map(|e| e.len() as i64).unwrap_or(0);
            let outbox = store.outbox_depth().map(|(depth, _)| depth).unwrap_or(0);
            Ok::<_, crate::fs::TaskFailed>((open, outbox))
        })
        .await
        .unwrap_or((0, 0));
        // A sample outlives its app's stop or uninstall until the next round.
        let running: std::collections::HashSet<&str> = apps
            .iter()
            .filter(|(_, state, _)| *state == berth_core::status::AppState::Running)
            .map(|(name, _, _)| name.as_str())
            .collect();
        let usage =
            daemon.apps.usage.latest().into_iter().filter(|(name, _)| running.contains(name.as_str())).collect();
        let levels = crate::metrics::Levels {
            apps,
            engine_up: daemon.services.engine_state.is_ready() && daemon.services.engine_state.lost().is_none(),
            open_operations,
            outbox_depth,
            usage,
            readings: daemon.resources.readings.latest(),
        };
        Ok(daemon.metrics.render(levels))
    }
}
