//! The apps capability (TPCM's services): install, upgrade, rollback,
//! uninstall, the lifecycle verbs, supervision, systemd units, migration.
//! It owns the registry of apps; every operation on an app runs in that
//! app's task ([`actor`]).

pub mod actor;
mod command;
mod disk;
pub mod error;
mod hooks;
mod install;
pub mod migration;
mod preflight;
pub mod quota;
pub mod rebuild;
pub mod registry;
mod request;
mod start;
mod uninstall;
pub mod units;
mod upgrade;
pub mod usage;

#[cfg(test)]
mod tests;

use crate::services::{now_secs, Services};
use actor::{Command, Reply};
use async_trait::async_trait;
use berth_api::routes::apps::AppsManager;
use berth_api::{ApiError, AppView, InstallEvent, InstallRequest, Operation, Uninstalled, UpgradeRequest, Upload};
use berth_core::engine::{EngineError, Progress, ProgressSink};
use berth_core::kept::KeptApp;
use berth_core::spec::{AppSpec, ContainerSpec, LABEL_APP};
use berth_core::status::AppState;
use berth_core::AppName;
use bytes::Bytes;
use error::AppError;
use futures::stream::{BoxStream, StreamExt};
use registry::{AppHandle, Registry, Runtime};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;

pub struct Apps {
    pub services: Arc<Services>,
    pub registry: Registry,
    /// CPU and memory of the running apps, sampled in the background.
    pub usage: usage::Usage,
    /// Reconciles under way at most (see [`RECONCILES_MAX`]).
    pub reconciles: tokio::sync::Semaphore,
}

/// At boot every app's task reconciles at once. Unbounded, 1,000 of them
/// would each hold an engine connection and queue every other engine call
/// (the API's, the journal's) behind theirs, and the engine would start no
/// app sooner; in turns, taken in order, the first apps run within a
/// moment. A turn ends before the start check's wait.
pub const RECONCILES_MAX: usize = 16;

impl Apps {
    pub fn new(services: Arc<Services>) -> Self {
        Self {
            services,
            registry: Registry::default(),
            usage: usage::Usage::default(),
            reconciles: tokio::sync::Semaphore::new(RECONCILES_MAX),
        }
    }

    pub fn private_dir(&self, name: &str) -> PathBuf {
        self.services.config.data_root.join(name)
    }

    pub fn container_spec(&self, spec: &AppSpec, operation: i64) -> ContainerSpec {
        let dir = self.private_dir(spec.name.as_str());
        ContainerSpec::for_app(spec, &dir.to_string_lossy(), self.services.ownership.instance(), operation)
    }

    /// What the engine is asked to create for an app: its spec's container,
    /// with the log rotation of its `--log-opt`, else of `[logs]` (the latter
    /// not part of the spec's hash, so a change of it applies to containers
    /// made from then on).
    ///
    /// The container keeps its app's record (label `berth.kept`, not part of
    /// the hash either), so `berth doctor --rebuild` can restore the app
    /// after the database was lost.
    pub fn container_config(&self, spec: &ContainerSpec, kept: &KeptApp) -> berth_core::engine::ContainerConfig {
        let mut config = spec.config();
        config.log_rotation = self.services.config.settings.logs.rotation_for(&spec.options);
        config.labels.insert(berth_core::kept::LABEL_KEPT.to_owned(), berth_core::kept::encode(kept));
        config
    }

    /// What a container made now for `spec` keeps of its app: the spec, the
    /// version it replaces (`previous`) and when the app was installed.
    pub fn kept(&self, spec: &AppSpec, previous: Option<&AppSpec>) -> KeptApp {
        let created_at = self
            .registry
            .get(spec.name.as_str())
            .map(|h| h.runtime.lock().unwrap_or_else(|e| e.into_inner()).created_at)
            .unwrap_or_else(crate::services::now_secs);
        KeptApp { spec: spec.clone(), previous: previous.cloned(), created_at }
    }

    fn view(&self, name: &str) -> Result<AppView, AppError> {
        self.registry.view(name, &self.services.config.data_root, false)
    }

    /// Sends a command to the app's task and waits for its answer.
    async fn ask<T>(&self, name: &str, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, AppError> {
        AppName::parse(name)?;
        let handle = self.registry.get(name).ok_or_else(|| AppError::NotFound { name: name.to_owned() })?;
        self.ask_handle(name, &handle, command).await
    }

    async fn ask_handle<T>(
        &self,
        name: &str,
        handle: &AppHandle,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, AppError> {
        let sender = match &handle.commands {
            Some(sender) => sender.clone(),
            None => self
                .registry
                .commands(name, self.services.engine_state.is_ready(), || self.services.engine.endpoint())?,
        };
        let (reply, answer) = oneshot::channel();
        let gone = |reason: &str| AppError::TaskGone { app: name.to_owned(), reason: reason.to_owned() };
        sender.send(command(reply)).await.map_err(|_| gone("its task has ended"))?;
        answer
            .await
            .map_err(|_| gone("the command was dropped (the task crashed while handling it; see the daemon log)"))?
    }

    /// Before the engine answers: list what the database knows, so `berth
    /// list` is not empty while the engine starts (apps show as `starting`).
    pub async fn show_stored(&self) -> Result<(), AppError> {
        for app in self.services.db::<_, AppError, _>("listing apps", |s| s.apps()).await? {
            if !app.installed {
                continue;
            }
            let runtime =
                Runtime::shared(app.spec.clone(), app.desired, AppState::Starting, app.created_at, app.previous);
            runtime.lock().unwrap_or_else(|e| e.into_inner()).failure = Some("waiting for the container engine".into());
            let running = Default::default();
            self.registry.insert(app.spec.name.as_str(), AppHandle { runtime, commands: None, running });
        }
        Ok(())
    }

    /// Once the journal is resolved: remove containers no app owns, start a
    /// task per app, import a pending migration, then reconcile every app.
    pub async fn start(self: &Arc<Self>) -> Result<(), AppError> {
        self.remove_orphans().await?;
        // What was listed before the engine answered goes: the journal may have changed it.
        self.registry.clear();
        for app in self.services.db::<_, AppError, _>("listing apps", |s| s.apps()).await? {
            if !app.installed {
                continue;
            }
            let runtime =
                Runtime::shared(app.spec.clone(), app.desired, AppState::Starting, app.created_at, app.previous);
            self.registry.insert(app.spec.name.as_str(), actor::spawn(self.clone(), runtime));
        }
        migration::import_pending(self).await;
        self.reconcile_all();
        Ok(())
    }

    /// Has every app's task make its container match the app (the engine came back).
    pub fn reconcile_all(&self) {
        for handle in self.registry.handles() {
            if let Some(sender) = &handle.commands {
                // A full queue already holds a command that will look at the container.
                let _ = sender.try_send(Command::Reconcile);
            }
        }
    }

    /// Sends a migration import to the app's task, starting one for an app
    /// this daemon does not know yet.
    async fn import_through_task(
        self: &Arc<Self>,
        app: &migration::MigratedApp,
    ) -> Result<berth_api::MigrationOutcome, AppError> {
        let name = app.spec.name.to_string();
        let (handle, new) = match self.registry.get(&name) {
            Some(handle) if handle.commands.is_some() => (handle, false),
            _ => {
                let runtime = Runtime::shared(app.spec.clone(), app.desired, AppState::Starting, now_secs(), None);
                let handle = actor::spawn(self.clone(), runtime);
                self.registry.insert(&name, handle.clone());
                (handle, true)
            }
        };
        let result =
            self.ask_handle(&name, &handle, |reply| Command::Import { app: Box::new(app.clone()), reply }).await;
        if new && result.is_err() {
            self.registry.remove(&name, &handle.runtime);
        }
        result
    }

    /// Routes an engine event to the app's task.
    pub fn observe(&self, app: &str) {
        if let Some(sender) = self.registry.get(app).and_then(|h| h.commands) {
            let _ = sender.try_send(Command::Observe);
        }
    }

    /// Containers of this instance that no installed app owns: left by a
    /// crash between create and the journal's record, an old version kept
    /// aside by an upgrade, a scratch container. Never when the database is
    /// new while the engine holds app containers of this instance: the state
    /// was lost, not the apps.
    async fn remove_orphans(&self) -> Result<(), AppError> {
        let services = &self.services;
        let stored = services.db::<_, AppError, _>("listing apps", |s| s.apps()).await?;
        let installed: HashSet<String> =
            stored.iter().filter(|a| a.installed).map(|a| a.spec.name.to_string()).collect();
        let busy: HashSet<String> = services
            .journal
            .open_entries()
            .await?
            .into_iter()
            .filter_map(|e| e.subject.strip_prefix("app:").map(str::to_owned))
            .collect();
        let containers = services.engine.list(&services.ownership.filter()).await?;
        let fresh =
            stored.is_empty() && services.db::<_, AppError, _>("reading the journal", |s| s.entry(1)).await?.is_none();
        let app_containers = containers.iter().filter(|c| c.label(LABEL_APP).is_some()).count();
        if fresh && app_containers > 0 {
            tracing::error!(
                containers = app_containers,
                "the state database is new, but the engine holds containers of this berth instance; they are kept, not removed as orphans (restore berth.db, or rebuild the state from the containers)"
            );
        }
        for container in containers {
            let scratch = container.label(crate::intake::scratch::LABEL_SCRATCH).is_some();
            let orphan = match container.label(LABEL_APP) {
                _ if scratch => true,
                Some(_) if fresh => false,
                Some(app) => !busy.contains(app) && (!installed.contains(app) || container.name != app),
                None => false,
            };
            if orphan {
                tracing::warn!(container = %container.name, "removing a container of this instance that nothing owns");
                services.engine.remove(&container.id).await?;
            }
        }
        Ok(())
    }
}

/// Progress events of an operation as the engine's progress sink.
pub fn progress_sink(op: &Operation<InstallEvent>) -> ProgressSink {
    let progress = op.progress.clone();
    Arc::new(move |p: Progress| {
        let _ = progress.send(InstallEvent::Progress { phase: p.phase, current: p.current, total: p.total });
    })
}

/// A progress line without a count ("creating container").
pub fn say(op: &Operation<InstallEvent>, phase: &str) {
    op.send(InstallEvent::Progress { phase: phase.to_owned(), current: 0, total: None });
}

/// The apps capability as the API sees it.
pub struct AppsApi(pub Arc<Apps>);

impl std::ops::Deref for AppsApi {
    type Target = Arc<Apps>;
    fn deref(&self) -> &Arc<Apps> {
        &self.0
    }
}

#[async_trait]
impl AppsManager for AppsApi {
    async fn list(&self, secrets: bool) -> Result<Vec<AppView>, ApiError> {
        Ok(self.registry.views(&self.services.config.data_root, secrets))
    }

    async fn show(&self, name: &str, secrets: bool) -> Result<AppView, ApiError> {
        AppName::parse(name).map_err(AppError::from)?;
        Ok(self.registry.view(name, &self.services.config.data_root, secrets)?)
    }

    async fn install(
        &self,
        request: InstallRequest,
        archive: Option<Upload>,
        op: Operation<InstallEvent>,
    ) -> Result<AppView, ApiError> {
        let valid = request::install(&self.services, request, archive)?;
        self.services.require_ready().map_err(AppError::from)?;
        preflight::check(&self.services, &valid.spec.options).await?;
        let name = valid.spec.name.to_string();
        if let Some(existing) = self.services.engine.inspect(&name).await.map_err(AppError::from)? {
            let ours = self.services.ownership.owns(&existing) && existing.label(LABEL_APP) == Some(name.as_str());
            if !ours {
                return Err(AppError::ForeignContainer { name }.into());
            }
        }
        let runtime = Runtime::shared(
            valid.spec.clone(),
            berth_core::status::DesiredState::Running,
            AppState::Installing,
            now_secs(),
            None,
        );
        // No await from the check to the reservation: the quota cannot be taken twice.
        quota::check(&self.services.config.settings.quota, &self.registry, &valid.spec, false)?;
        let handle = actor::spawn(self.0.clone(), runtime);
        self.registry.reserve(&name, handle.clone())?;
        let data = serde_json::json!({ "state": AppState::Installing, "image": valid.spec.image_ref });
        self.services.events.emit("app.installing", &name, data);
        let spec = Box::new(valid.spec);
        let view = self
            .ask_handle(&name, &handle, |reply| Command::Install { spec, fetch: Box::new(valid.fetch), op, reply })
            .await?;
        crate::version::write(&self.services).await;
        Ok(view)
    }

    async fn upgrade(
        &self,
        name: &str,
        request: UpgradeRequest,
        archive: Option<Upload>,
        op: Operation<InstallEvent>,
    ) -> Result<AppView, ApiError> {
        self.services.require_ready().map_err(AppError::from)?;
        let request = Box::new(request);
        let view = self.ask(name, |reply| Command::Upgrade { request, archive, op, reply }).await?;
        crate::version::write(&self.services).await;
        Ok(view)
    }

    async fn rollback(&self, name: &str, op: Operation<InstallEvent>) -> Result<AppView, ApiError> {
        self.services.require_ready().map_err(AppError::from)?;
        let view = self.ask(name, |reply| Command::Rollback { op, reply }).await?;
        crate::version::write(&self.services).await;
        Ok(view)
    }

    async fn uninstall(&self, name: &str, keep_data: bool) -> Result<Uninstalled, ApiError> {
        let gone = self.ask(name, |reply| Command::Uninstall { keep_data, reply }).await?;
        crate::version::write(&self.services).await;
        Ok(gone)
    }

    async fn start(&self, name: &str) -> Result<AppView, ApiError> {
        Ok(self.ask(name, Command::Start).await?)
    }

    async fn stop(&self, name: &str) -> Result<AppView, ApiError> {
        Ok(self.ask(name, Command::Stop).await?)
    }

    async fn restart(&self, name: &str) -> Result<AppView, ApiError> {
        Ok(self.ask(name, Command::Restart).await?)
    }

    async fn cancel(&self, name: &str) -> Result<(), ApiError> {
        AppName::parse(name).map_err(AppError::from)?;
        let handle = self.registry.get(name).ok_or_else(|| AppError::NotFound { name: name.to_owned() })?;
        let running = handle.running.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match running {
            Some(token) => {
                token.cancel();
                Ok(())
            }
            None => Err(ApiError::new(
                berth_core::ErrorKind::Conflict,
                format!("nothing to cancel: no install, upgrade or rollback of {name:?} is running"),
            )),
        }
    }

    async fn logs(
        &self,
        name: &str,
        follow: bool,
        tail: Option<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, ApiError>>, ApiError> {
        AppName::parse(name).map_err(AppError::from)?;
        self.view(name)?;
        let stream = self.services.engine.logs(name, follow, tail);
        Ok(stream.map(|chunk| chunk.map_err(|e: EngineError| ApiError::from(AppError::from(e)))).boxed())
    }
}
