//! One task per app. It owns the app's lifecycle: its install, the user's
//! start/stop/restart/upgrade/rollback/uninstall, a migration import, the
//! engine's events, and supervision with backoff. Commands for one app are
//! handled one at a time by construction; different apps never wait for
//! each other. Nothing edits an app beside its task.
//!
//! A command that panics is logged and the task goes on with the next one;
//! an app whose task keeps panicking is shown as failed.

pub use super::command::{Command, Reply};
use super::error::AppError;
use super::registry::{AppHandle, Runtime, SharedRuntime};
use super::start::{start_then_check, stop};
use super::{install, migration, uninstall, upgrade, Apps};
use crate::intake::FetchRequest;
use crate::services::lock;
use berth_api::{AppView, InstallEvent, Operation, Uninstalled, UpgradeRequest, Upload};
use berth_core::engine::ContainerObservation;
use berth_core::reconcile::{plan, Action};
use berth_core::spec::AppSpec;
use berth_core::status::{AppState, DesiredState};
use berth_core::supervise::{CrashCounter, RestartDecision, RestartPolicy};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Panics of one app's task after which the app is shown as failed.
const PANICS_BEFORE_FAILED: u32 = 3;

/// Starts the task of an app; returns its handle for the registry.
pub fn spawn(apps: Arc<Apps>, runtime: SharedRuntime) -> AppHandle {
    let (tx, rx) = mpsc::channel(32);
    let running = Arc::new(Mutex::new(None));
    let policy = apps.services.config.settings.restart_policy();
    let name = lock(&runtime).spec.name.to_string();
    let mut crashes = CrashCounter::default();
    crashes.started(Duration::ZERO);
    let actor = Actor {
        apps,
        name,
        runtime: runtime.clone(),
        running: running.clone(),
        commands: rx,
        policy,
        crashes,
        restart_at: None,
        epoch: Instant::now(),
        panics: 0,
    };
    tokio::spawn(actor.run());
    AppHandle { runtime, commands: Some(tx), running }
}

struct Actor {
    apps: Arc<Apps>,
    name: String,
    runtime: SharedRuntime,
    running: Arc<Mutex<Option<CancellationToken>>>,
    commands: mpsc::Receiver<Command>,
    policy: RestartPolicy,
    crashes: CrashCounter,
    /// When the supervisor restarts the crashed app next.
    restart_at: Option<Instant>,
    epoch: Instant,
    panics: u32,
}

enum Flow {
    Continue,
    /// The app is gone (uninstalled, or its install failed): the task ends.
    Exit,
}

impl Actor {
    async fn run(mut self) {
        loop {
            let wake = self.restart_at;
            let shutdown = self.apps.services.shutdown.clone();
            let command = tokio::select! {
                command = self.commands.recv() => command,
                _ = sleep_until(wake), if wake.is_some() => {
                    self.restart_at = None;
                    Some(Command::Reconcile)
                }
                _ = shutdown.cancelled() => None,
            };
            let Some(command) = command else { break };
            // Boxed: the task's own future is then a few hundred bytes while
            // it waits, not the size of the largest operation (an upgrade's
            // state machine), which every one of 1,000 idle apps would hold.
            match AssertUnwindSafe(Box::pin(self.handle(command))).catch_unwind().await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Exit) => break,
                Err(panic) => self.panicked(panic),
            }
        }
        tracing::debug!(app = %self.name, "the app's task ends");
    }

    fn panicked(&mut self, panic: Box<dyn std::any::Any + Send>) {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        self.panics += 1;
        tracing::error!(app = %self.name, panics = self.panics, %message, "berth's task for this app panicked; it goes on");
        *lock(&self.running) = None;
        if self.panics >= PANICS_BEFORE_FAILED {
            let panics = self.panics;
            self.restart_at = None;
            self.set(|r| {
                r.state = AppState::Failed;
                r.failure = Some(format!("berth's task for this app failed {panics} times; last: {message}"));
            });
        }
    }

    async fn handle(&mut self, command: Command) -> Flow {
        match command {
            Command::Install { spec, fetch, op, reply } => {
                let result = self.install(*spec, *fetch, op).await;
                let failed = result.is_err();
                let halted = result.as_ref().is_err_and(AppError::is_halted);
                let _ = reply.send(result);
                if failed {
                    if !halted {
                        self.apps.registry.remove(&self.name, &self.runtime);
                    }
                    return Flow::Exit;
                }
            }
            Command::Import { app, reply } => {
                let result = migration::import_app(&self.apps, &self.runtime, &app).await;
                if result.is_ok() {
                    self.reconcile().await;
                }
                let _ = reply.send(result);
            }
            Command::Start(reply) => {
                let result = self.start().await;
                let _ = reply.send(result);
            }
            Command::Stop(reply) => {
                let result = self.stop().await;
                let _ = reply.send(result);
            }
            Command::Restart(reply) => {
                let result = self.restart().await;
                let _ = reply.send(result);
            }
            Command::Uninstall { keep_data, reply } => {
                let result = self.uninstall(keep_data).await;
                let done = result.as_ref().is_ok() || result.as_ref().is_err_and(AppError::is_halted);
                let _ = reply.send(result);
                if done {
                    return Flow::Exit;
                }
            }
            Command::Upgrade { request, archive, op, reply } => {
                let result = self.upgrade(Some((*request, archive)), op).await;
                return self.replied(reply, result);
            }
            Command::Rollback { op, reply } => {
                let result = self.upgrade(None, op).await;
                return self.replied(reply, result);
            }
            Command::Observe => self.observe().await,
            Command::Reconcile => self.reconcile().await,
        }
        Flow::Continue
    }

    /// Answers; a crash point (tests) ends the task as the daemon's death would.
    fn replied<T>(&self, reply: Reply<T>, result: Result<T, AppError>) -> Flow {
        let halted = result.as_ref().is_err_and(AppError::is_halted);
        let _ = reply.send(result);
        if halted {
            Flow::Exit
        } else {
            Flow::Continue
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Changes the app's live status; a new state is an event (`app.<state>`).
    fn set(&self, f: impl FnOnce(&mut Runtime)) {
        let (before, after, failure, restarts) = {
            let mut runtime = lock(&self.runtime);
            let before = runtime.state;
            f(&mut runtime);
            (before, runtime.state, runtime.failure.clone(), runtime.restarts)
        };
        if before != after {
            let state = serde_json::to_value(after).unwrap_or_default();
            let kind = format!("app.{}", state.as_str().unwrap_or_default());
            let data = serde_json::json!({ "state": state, "from": before, "failure": failure, "restarts": restarts });
            self.apps.services.events.emit(&kind, &self.name, data);
        }
    }

    fn view(&self) -> Result<AppView, AppError> {
        self.apps.registry.view(&self.name, &self.apps.services.config.data_root, false)
    }

    /// A cancellation token for an operation: cancelled by its client, by
    /// `berth cancel`, or by the daemon shutting down.
    fn operation_token(&self, client: &CancellationToken) -> CancellationToken {
        let token = self.apps.services.shutdown.child_token();
        let (linked, client) = (token.clone(), client.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = client.cancelled() => linked.cancel(),
                _ = linked.cancelled() => {}
            }
        });
        *lock(&self.running) = Some(token.clone());
        token
    }

    fn operation_done(&self) {
        *lock(&self.running) = None;
    }

    async fn install(
        &mut self,
        spec: AppSpec,
        fetch: FetchRequest,
        op: Operation<InstallEvent>,
    ) -> Result<AppView, AppError> {
        let cancel = self.operation_token(&op.cancel);
        let result = install::run(&self.apps, &self.runtime, spec, fetch, &op, &cancel).await;
        self.operation_done();
        let spec = result?;
        self.set(|r| r.spec = spec);
        self.crashes.started(self.now());
        self.observe().await;
        self.view()
    }

    async fn set_desired(&self, desired: DesiredState) -> Result<(), AppError> {
        let name = self.name.clone();
        self.apps
            .services
            .db::<_, AppError, _>("recording the desired state", move |s| s.set_desired(&name, desired))
            .await?;
        self.set(|r| r.desired = desired);
        Ok(())
    }

    async fn start(&mut self) -> Result<AppView, AppError> {
        self.set_desired(DesiredState::Running).await?;
        self.fresh_start();
        self.reconcile_with(true).await;
        self.attach_unit().await;
        self.view()
    }

    /// Where systemd supervises, its unit must be running to watch the app.
    async fn attach_unit(&self) {
        if let Ok(name) = berth_core::AppName::parse(&self.name) {
            super::units::start_app_unit(&self.apps.services, &name).await;
        }
    }

    async fn stop(&mut self) -> Result<AppView, AppError> {
        self.set_desired(DesiredState::Stopped).await?;
        self.restart_at = None;
        stop(&self.apps.services, &self.name).await?;
        self.observe().await;
        self.view()
    }

    async fn restart(&mut self) -> Result<AppView, AppError> {
        self.set_desired(DesiredState::Running).await?;
        self.fresh_start();
        stop(&self.apps.services, &self.name).await?;
        self.reconcile_with(true).await;
        self.attach_unit().await;
        self.view()
    }

    /// A start asked for by the user: earlier crashes no longer count.
    fn fresh_start(&mut self) {
        self.crashes.reset();
        self.restart_at = None;
        self.set(|r| {
            r.failure = None;
            r.restarts = 0;
        });
    }

    async fn uninstall(&mut self, keep_data: bool) -> Result<Uninstalled, AppError> {
        self.restart_at = None;
        let (state, spec, previous) = {
            let r = lock(&self.runtime);
            (r.state, r.spec.clone(), r.previous.clone())
        };
        self.set(|r| r.state = AppState::Uninstalling);
        let result = uninstall::run(&self.apps, &spec, previous.as_ref(), keep_data).await;
        match &result {
            Err(e) if e.is_halted() => {}
            Ok(_) => self.apps.registry.remove(&self.name, &self.runtime),
            // Waiting for the engine: the uninstall finishes when it is back.
            Err(AppError::Waiting { .. }) => {}
            Err(_) => self.set(|r| r.state = state),
        }
        result
    }

    /// An upgrade (`Some`) or a rollback (`None`). Supervision pauses: the
    /// operation itself decides what runs until it ends.
    async fn upgrade(
        &mut self,
        request: Option<(UpgradeRequest, Option<Upload>)>,
        op: Operation<InstallEvent>,
    ) -> Result<AppView, AppError> {
        self.restart_at = None;
        let (current, previous, state) = {
            let r = lock(&self.runtime);
            (r.spec.clone(), r.previous.clone(), r.state)
        };
        let cancel = self.operation_token(&op.cancel);
        self.set(|r| r.state = AppState::Upgrading);
        let result = match request {
            Some((request, archive)) => {
                let skip_data = request.skip_data;
                match super::request::upgrade(&self.apps.services, &current, request, archive) {
                    Ok(valid) => {
                        upgrade::upgrade(
                            &self.apps,
                            &current,
                            previous.as_ref(),
                            valid.spec,
                            valid.fetch,
                            skip_data,
                            &op,
                            &cancel,
                        )
                        .await
                    }
                    Err(e) => Err(e),
                }
            }
            None => upgrade::rollback(&self.apps, &current, previous.as_ref(), &op, &cancel).await,
        };
        self.operation_done();
        if result.as_ref().is_err_and(AppError::is_halted) {
            return result.and_then(|_| self.view());
        }
        match &result {
            Ok(new) => {
                let new = new.clone();
                self.fresh_start();
                self.crashes.started(self.now());
                self.set(|r| {
                    r.spec = new;
                    r.previous = Some(current);
                    r.desired = DesiredState::Running;
                });
            }
            Err(_) => self.set(|r| r.state = state),
        }
        self.observe().await;
        result.and_then(|_| self.view())
    }

    /// Makes the engine match the app: create, recreate, start or stop. Where
    /// systemd supervises, only the user's start (or the unit's `run-app`)
    /// starts a container; the engine's events and start-up only create.
    async fn reconcile(&mut self) {
        let may_start = !self.apps.services.systemd;
        self.reconcile_with(may_start).await;
    }

    async fn reconcile_with(&mut self, may_start: bool) {
        if let Err(e) = self.try_reconcile(may_start).await {
            tracing::warn!(app = %self.name, error = %e, "reconcile failed");
            let text = e.to_string();
            self.set(|r| r.failure = Some(text));
            if e.kind() != berth_core::ErrorKind::EngineUnavailable {
                self.crashed(None).await;
                return;
            }
        }
        self.observe().await;
    }

    async fn try_reconcile(&mut self, may_start: bool) -> Result<(), AppError> {
        let apps = self.apps.clone();
        let turn = apps.reconciles.acquire().await.ok();
        let services = self.apps.services.clone();
        let engine = services.engine.as_ref();
        let (spec, desired, previous) = {
            let r = lock(&self.runtime);
            (r.spec.clone(), r.desired, r.previous.clone())
        };
        let container_spec = self.apps.container_spec(&spec, 0);
        let observed = engine.inspect(&self.name).await?;
        if let Some(c) = &observed {
            if !services.ownership.owns(c) {
                return Err(AppError::ForeignContainer { name: self.name.clone() });
            }
        }
        let action = match plan(desired, &container_spec, observed.as_ref()) {
            Action::Start if !may_start => Action::Nothing,
            Action::Create { .. } if !may_start => Action::Create { start: false },
            Action::Recreate { .. } if !may_start => Action::Recreate { start: false },
            action => action,
        };
        if action != Action::Nothing {
            tracing::info!(app = %self.name, ?action, "reconciling");
        }
        match action {
            Action::Nothing => {}
            Action::Stop => stop(&services, &self.name).await?,
            Action::Start => self.start_container(turn).await?,
            Action::Create { start } | Action::Recreate { start } => {
                if matches!(action, Action::Recreate { .. }) {
                    engine.remove(&self.name).await?;
                }
                if engine.inspect_image(&spec.image_id).await?.is_none() {
                    return Err(AppError::DidNotStart {
                        name: self.name.clone(),
                        reason: format!(
                            "its image {} ({}) is no longer in the engine; reinstall the app",
                            spec.image_ref, spec.image_id
                        ),
                    });
                }
                let kept = self.apps.kept(&spec, previous.as_ref());
                let id = engine.create(&self.apps.container_config(&container_spec, &kept)).await?;
                self.set(|r| r.container_id = Some(id));
                if start {
                    self.start_container(turn).await?;
                }
            }
        }
        Ok(())
    }

    async fn start_container(&mut self, turn: Option<tokio::sync::SemaphorePermit<'_>>) -> Result<(), AppError> {
        self.set(|r| r.state = AppState::Starting);
        start_then_check(&self.apps.services, &self.name, &CancellationToken::new(), turn).await?;
        self.crashes.started(self.now());
        Ok(())
    }

    /// Reads the container's state into the app's status; a container that
    /// exited while it should run counts as a crash.
    async fn observe(&mut self) {
        let observed = match self.apps.services.engine.inspect(&self.name).await {
            Ok(observed) => observed,
            Err(e) => {
                let text = e.to_string();
                self.set(|r| r.failure = Some(text));
                return;
            }
        };
        let desired = lock(&self.runtime).desired;
        match observed {
            Some(c) if c.state.is_running() => self.running(&c),
            Some(c) if desired == DesiredState::Stopped => {
                self.set(|r| {
                    r.state = AppState::Stopped;
                    r.health = c.health;
                    r.container_id = Some(c.id.clone());
                });
            }
            // Already waiting to restart, or already given up: nothing new.
            _ if self.restart_at.is_some() || lock(&self.runtime).state == AppState::Failed => {}
            Some(c) => self.crashed(Some(&c)).await,
            None if desired == DesiredState::Running => {
                // Removed behind berth's back: the engine is a cache, rebuild it.
                Box::pin(self.reconcile()).await;
            }
            None => self.set(|r| r.state = AppState::Stopped),
        }
    }

    fn running(&mut self, c: &ContainerObservation) {
        self.set(|r| {
            r.started_at = c.started_at;
            r.state = AppState::Running;
            r.health = c.health;
            r.container_id = Some(c.id.clone());
        });
    }

    async fn crashed(&mut self, container: Option<&ContainerObservation>) {
        let reason = match container {
            Some(c) => match (&c.error, c.exit_code) {
                (Some(error), _) => error.clone(),
                (None, Some(code)) => {
                    format!("exited with code {code}{}", if c.oom_killed { " (out of memory)" } else { "" })
                }
                (None, None) => "stopped".into(),
            },
            None => lock(&self.runtime).failure.clone().unwrap_or_else(|| "could not be started".into()),
        };
        if self.apps.services.systemd {
            // The app's unit sees its run-app exit and restarts it (Restart=on-failure).
            tracing::info!(app = %self.name, %reason, "app exited; systemd restarts its unit");
            self.set(|r| {
                r.state = AppState::Restarting;
                r.failure = Some(format!("{reason}; systemd restarts it"));
            });
            return;
        }
        let jitter = (self.apps.services.jitter)();
        match self.crashes.exited(&self.policy, self.now(), jitter) {
            RestartDecision::RestartAfter { delay, attempt } => {
                tracing::info!(app = %self.name, %reason, attempt, ?delay, "app crashed; restarting after backoff");
                self.restart_at = Some(Instant::now() + delay);
                self.set(|r| {
                    r.state = AppState::Restarting;
                    r.failure = Some(reason);
                    r.restarts = attempt;
                });
            }
            RestartDecision::GiveUp { crashes } => {
                tracing::warn!(app = %self.name, %reason, crashes, "app keeps crashing; giving up");
                self.set(|r| {
                    r.state = AppState::Failed;
                    r.failure = Some(format!("crashed {crashes} times in a row; last: {reason}"));
                });
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
