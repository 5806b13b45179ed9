//! What the daemon knows about each app right now: the live status behind
//! `list` and `show`, and the handle to each app's task. Only the app's task
//! writes its status (install and import included: they run in it too).

use super::command::Command;
use super::error::AppError;
use crate::services::{lock, now_secs};
use berth_api::AppView;
use berth_core::spec::AppSpec;
use berth_core::status::{AppState, DesiredState, Health};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// An app's live status; the mutex is only ever held for a copy or a write.
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

pub type SharedRuntime = Arc<Mutex<Runtime>>;

impl Runtime {
    pub fn shared(
        spec: AppSpec,
        desired: DesiredState,
        state: AppState,
        created_at: i64,
        previous: Option<AppSpec>,
    ) -> SharedRuntime {
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
            previous,
        }))
    }
}

/// An app's entry in the registry.
#[derive(Debug, Clone)]
pub struct AppHandle {
    pub runtime: SharedRuntime,
    /// `None` while the engine has not answered yet (the app is shown from the database).
    pub commands: Option<mpsc::Sender<Command>>,
    /// The cancellation of the install, upgrade or rollback under way, for `berth cancel`.
    pub running: Arc<Mutex<Option<CancellationToken>>>,
}

#[derive(Debug, Default)]
pub struct Registry {
    apps: RwLock<BTreeMap<String, AppHandle>>,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<AppHandle> {
        self.apps.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.apps.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.apps.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn handles(&self) -> Vec<AppHandle> {
        self.apps.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    /// Adds an app that is not there yet; of two at once, one succeeds.
    pub fn reserve(&self, name: &str, handle: AppHandle) -> Result<(), AppError> {
        let mut apps = self.apps.write().unwrap_or_else(|e| e.into_inner());
        if apps.contains_key(name) {
            return Err(AppError::Exists { name: name.to_owned() });
        }
        apps.insert(name.to_owned(), handle);
        Ok(())
    }

    pub fn insert(&self, name: &str, handle: AppHandle) {
        self.apps.write().unwrap_or_else(|e| e.into_inner()).insert(name.to_owned(), handle);
    }

    /// Removes the app's entry, if it is still `runtime`'s (not a newer one of the same name).
    pub fn remove(&self, name: &str, runtime: &SharedRuntime) {
        let mut apps = self.apps.write().unwrap_or_else(|e| e.into_inner());
        if apps.get(name).is_some_and(|h| Arc::ptr_eq(&h.runtime, runtime)) {
            apps.remove(name);
        }
    }

    pub fn clear(&self) {
        self.apps.write().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub fn commands(
        &self,
        name: &str,
        ready: bool,
        endpoint: impl FnOnce() -> String,
    ) -> Result<mpsc::Sender<Command>, AppError> {
        match self.get(name) {
            None => Err(AppError::NotFound { name: name.to_owned() }),
            Some(AppHandle { commands: Some(tx), .. }) => Ok(tx),
            Some(AppHandle { commands: None, .. }) => Err(berth_core::engine::EngineError::Unreachable {
                endpoint: endpoint(),
                reason: if ready {
                    "the app has no task".into()
                } else {
                    "berth is waiting for the engine to answer".into()
                },
            }
            .into()),
        }
    }

    /// The app as shown; `secrets` shows environment values in `args`.
    pub fn view(&self, name: &str, data_root: &Path, secrets: bool) -> Result<AppView, AppError> {
        let handle = self.get(name).ok_or_else(|| AppError::NotFound { name: name.to_owned() })?;
        let snapshot = lock(&handle.runtime).clone();
        Ok(view_of(&snapshot, data_root, now_secs(), secrets))
    }

    pub fn views(&self, data_root: &Path, secrets: bool) -> Vec<AppView> {
        let now = now_secs();
        self.handles().iter().map(|h| view_of(&lock(&h.runtime), data_root, now, secrets)).collect()
    }
}

fn view_of(r: &Runtime, data_root: &Path, now: i64, secrets: bool) -> AppView {
    let running = r.state == AppState::Running;
    AppView {
        name: r.spec.name.to_string(),
        image: r.spec.image_ref.clone(),
        image_id: r.spec.image_id.clone(),
        source: r.spec.source.to_string(),
        state: r.state,
        health: r.health,
        desired: r.desired,
        started_at: r.started_at,
        uptime_seconds: r.started_at.filter(|_| running).map(|s| now.saturating_sub(s).max(0) as u64),
        cpus: r.spec.cpus,
        memory: r.spec.memory,
        args: if secrets { r.spec.args.clone() } else { berth_core::run_args::redact_env(&r.spec.args) },
        failure: r.failure.clone(),
        restarts: r.restarts,
        container_id: r.container_id.clone(),
        private_dir: data_root.join(r.spec.name.as_str()).to_string_lossy().into_owned(),
        created_at: r.created_at,
        previous_image: r.previous.as_ref().map(|p| p.image_ref.clone()),
        previous_image_id: r.previous.as_ref().map(|p| p.image_id.clone()),
    }
}
