//! What every capability shares: the settings, the engine, the store, the
//! journal, berth's ownership label, the engine's last known state, the
//! clock's jitter and the shutdown signal. Capabilities own their own state
//! (the apps' registry, SRA slots, …); nothing here knows about them.

use crate::config::DaemonConfig;
use crate::fs::{blocking, TaskFailed};
use crate::journal::Journal;
use berth_core::engine::{Engine, EngineError, Ownership};
use berth_store::{Store, StoreError};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// Random numbers in [0, 1) for backoff jitter; injectable so tests are exact.
pub type Jitter = Arc<dyn Fn() -> f64 + Send + Sync>;

pub struct Services {
    pub config: DaemonConfig,
    pub ownership: Ownership,
    pub engine: Arc<dyn Engine>,
    pub store: Store,
    pub journal: Journal,
    pub engine_state: EngineState,
    pub jitter: Jitter,
    /// systemd runs each app's unit and restarts it; the daemon does not.
    pub systemd: bool,
    /// Cancelled when the daemon shuts down: running operations undo themselves.
    pub shutdown: CancellationToken,
    /// Every state change, for `/v1/events`.
    pub events: Arc<crate::events::Events>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").field("instance", &self.ownership.instance()).finish_non_exhaustive()
    }
}

/// What the daemon knows of the engine without asking it (reads never wait on it).
#[derive(Debug, Default)]
pub struct EngineState {
    version: Mutex<Option<String>>,
    online_cpus: AtomicU32,
    /// Start-up recovery has run against a reachable engine.
    ready: AtomicBool,
    /// Why the engine is not usable now; `None` while it answers.
    lost: Mutex<Option<String>>,
}

impl EngineState {
    pub fn new(online_cpus: u32) -> Self {
        Self {
            version: Mutex::new(None),
            online_cpus: AtomicU32::new(online_cpus),
            ready: AtomicBool::new(false),
            lost: Mutex::new(None),
        }
    }

    pub fn connected(&self, version: String, online_cpus: u32) {
        *self.version.lock().unwrap_or_else(|e| e.into_inner()) = Some(version);
        self.online_cpus.store(online_cpus.max(1), Ordering::Release);
    }

    pub fn version(&self) -> Option<String> {
        self.version.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn online_cpus(&self) -> u32 {
        self.online_cpus.load(Ordering::Acquire).max(1)
    }

    /// The engine went away (with why), or answers again (`None`).
    pub fn set_lost(&self, why: Option<String>) {
        *self.lost.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }

    /// Why the engine is not usable now, if it is not.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }
}

impl Services {
    /// The engine at `uri`: this daemon's own for none or its own URI, else
    /// a new connection (which never waits for the engine: it may answer later).
    pub async fn engine_at(&self, uri: Option<&str>) -> Result<Arc<dyn Engine>, EngineError> {
        match uri {
            None => Ok(self.engine.clone()),
            Some(uri) if Some(uri) == self.config.docker_host.as_deref() => Ok(self.engine.clone()),
            Some(uri) => {
                let timeouts = berth_engine::EngineTimeouts {
                    control: std::time::Duration::from_secs(self.config.settings.engine.control_timeout_secs),
                };
                Ok(Arc::new(berth_engine::DockerEngine::connect(Some(uri), timeouts).await?))
            }
        }
    }

    /// Runs a store call on the blocking pool: SQLite with `synchronous=FULL`
    /// waits for the disk.
    pub async fn db<T, E, F>(&self, what: &'static str, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + From<TaskFailed> + Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        blocking(what, move || f(&store).map_err(E::from)).await
    }

    pub fn default_cpus(&self) -> f64 {
        berth_core::spec::default_cpu_limit(self.engine_state.online_cpus(), self.config.settings.cpu_share)
    }

    /// Refused until start-up recovery has run against a reachable engine.
    pub fn require_ready(&self) -> Result<(), EngineError> {
        if self.engine_state.is_ready() {
            Ok(())
        } else {
            Err(EngineError::Unreachable {
                endpoint: self.engine.endpoint(),
                reason: "berth is waiting for the engine to answer".into(),
            })
        }
    }
}

pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
