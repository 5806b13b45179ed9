//! What the daemon knows about each app right now: the shared state behind
//! `list` and `show`, and the handle to each app's task.

use crate::actor::Command;
use crate::config::DaemonConfig;
use crate::error::OpError;
use berth_api::AppView;
use berth_core::engine::Engine;
use berth_core::spec::{AppSpec, ContainerSpec};
use berth_core::status::{AppState, DesiredState, Health};
use berth_store::{Store, StoreError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// An app's live status. Written by its task (and by install before the task
/// exists), read by `list`; the mutex is only ever held for a copy.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub spec: AppSpec,
    pub desired: DesiredState,
    pub state: AppState,
    pub health: Health,
    pub started_at: Option<i64>,
    pub container_id: Option<String>,
    pub failure: Option<String>,
    pub restarts: u32,
    pub created_at: i64,
    /// The version the last upgrade replaced, kept for rollback.
    pub previous: Option<AppSpec>,
}

impl Runtime {
    /// An app berth has not observed in the engine yet.
    pub fn new(spec: AppSpec, desired: DesiredState, state: AppState, created_at: i64) -> SharedRuntime {
        Arc::new(Mutex::new(Runtime {
            spec,
            desired,
            state,
            health: Health::None,
            started_at: None,
            container_id: None,
            failure: None,
            restarts: 0,
            created_at,
            previous: None,
        }))
    }
}

pub type SharedRuntime = Arc<Mutex<Runtime>>;

pub struct AppHandle {
    pub runtime: SharedRuntime,
    /// `None` while the app is being installed (it has no task yet).
    pub commands: Option<mpsc::Sender<Command>>,
}

/// Shared by every part of the daemon.
pub struct Inner {
    pub config: DaemonConfig,
    /// Labels this daemon's containers (`berth.instance`).
    pub instance: String,
    pub engine: Arc<dyn Engine>,
    pub store: Store,
    pub apps: RwLock<BTreeMap<String, AppHandle>>,
    pub online_cpus: Mutex<u32>,
    /// The engine's version as of its last (re)connection, for `/v1/info`
    /// (answered without asking the engine, like every read).
    pub engine_version: Mutex<Option<String>>,
    /// Set once start-up recovery has run against a reachable engine.
    pub recovered: AtomicBool,
    /// systemd runs each app's unit and restarts it; the daemon does not.
    pub systemd: bool,
    /// SRA execution slots and configuration locks.
    pub sra: crate::sra::SraState,
}

pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    pub fn private_dir(&self, name: &str) -> PathBuf {
        self.config.data_root.join(name)
    }

    pub fn default_cpus(&self) -> f64 {
        berth_core::spec::default_cpu_limit(*lock(&self.online_cpus), self.config.settings.cpu_share)
    }

    pub fn container_spec(&self, spec: &AppSpec, operation: i64) -> ContainerSpec {
        ContainerSpec::for_app(spec, &self.private_dir(spec.name.as_str()).to_string_lossy(), &self.instance, operation)
    }

    /// Runs a store call on the blocking pool: SQLite with `synchronous=FULL`
    /// waits for the disk.
    pub async fn db<T, F>(&self, f: F) -> Result<T, OpError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store)).await.map_err(|_| OpError::ShuttingDown)?.map_err(OpError::from)
    }

    pub fn runtime(&self, name: &str) -> Option<SharedRuntime> {
        self.apps.read().unwrap_or_else(|e| e.into_inner()).get(name).map(|h| h.runtime.clone())
    }

    pub fn commands(&self, name: &str) -> Result<mpsc::Sender<Command>, OpError> {
        let apps = self.apps.read().unwrap_or_else(|e| e.into_inner());
        match apps.get(name) {
            None => Err(OpError::NotFound { name: name.to_owned() }),
            // Shown from the database while the engine has not answered yet.
            Some(AppHandle { commands: None, .. }) if !self.recovered.load(std::sync::atomic::Ordering::Acquire) => {
                Err(berth_core::engine::EngineError::Unreachable {
                    endpoint: self.engine.endpoint(),
                    reason: "berth is waiting for the engine to answer".into(),
                }
                .into())
            }
            Some(AppHandle { commands: None, .. }) => {
                Err(OpError::Store(StoreError::Busy { name: name.to_owned(), kind: "install".into() }))
            }
            Some(AppHandle { commands: Some(tx), .. }) => Ok(tx.clone()),
        }
    }

    pub fn insert(&self, name: &str, handle: AppHandle) {
        self.apps.write().unwrap_or_else(|e| e.into_inner()).insert(name.to_owned(), handle);
    }

    pub fn remove(&self, name: &str) {
        self.apps.write().unwrap_or_else(|e| e.into_inner()).remove(name);
    }

    pub fn view(&self, name: &str) -> Result<AppView, OpError> {
        let runtime = self.runtime(name).ok_or_else(|| OpError::NotFound { name: name.to_owned() })?;
        let snapshot = lock(&runtime).clone();
        Ok(self.view_of(&snapshot, now_secs()))
    }

    pub fn views(&self) -> Vec<AppView> {
        let now = now_secs();
        let runtimes: Vec<SharedRuntime> =
            self.apps.read().unwrap_or_else(|e| e.into_inner()).values().map(|h| h.runtime.clone()).collect();
        runtimes.iter().map(|r| self.view_of(&lock(r), now)).collect()
    }

    fn view_of(&self, r: &Runtime, now: i64) -> AppView {
        let running = r.state == AppState::Running;
        AppView {
            name: r.spec.name.to_string(),
            image: r.spec.image_ref.clone(),
            image_id: r.spec.image_id.clone(),
            source: r.spec.source.to_string(),
            state: r.state.to_string(),
            health: match r.health {
                Health::None => "none".into(),
                other => other.to_string(),
            },
            desired: r.desired.as_str().into(),
            started_at: r.started_at,
            uptime_seconds: r.started_at.filter(|_| running).map(|s| now.saturating_sub(s).max(0) as u64),
            cpus: r.spec.cpus,
            memory: r.spec.memory,
            args: r.spec.args.clone(),
            failure: r.failure.clone(),
            restarts: r.restarts,
            container_id: r.container_id.clone(),
            private_dir: self.private_dir(r.spec.name.as_str()).to_string_lossy().into_owned(),
            created_at: r.created_at,
            previous_image: r.previous.as_ref().map(|p| p.image_ref.clone()),
            previous_image_id: r.previous.as_ref().map(|p| p.image_id.clone()),
        }
    }
}
