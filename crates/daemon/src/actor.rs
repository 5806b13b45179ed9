//! One task per installed app. It owns the app's lifecycle: the user's
//! start/stop/restart/uninstall, the engine's events, and supervision with
//! backoff. Commands for one app are handled one at a time by construction;
//! different apps never wait for each other.

use crate::error::OpError;
use crate::install::start_and_check;
use crate::registry::{lock, Inner, SharedRuntime};
use crate::uninstall;
use crate::upgrade;
use berth_api::{AppView, ProgressSender, Uninstalled, UpgradeRequest};
use berth_core::engine::{ContainerObservation, EngineError};
use berth_core::reconcile::{plan, Action};
use berth_core::spec::LABEL_INSTANCE;
use berth_core::status::{AppState, DesiredState};
use berth_core::supervise::{CrashCounter, RestartDecision, RestartPolicy};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

pub type Reply<T> = oneshot::Sender<Result<T, OpError>>;

pub enum Command {
    Start(Reply<AppView>),
    Stop(Reply<AppView>),
    Restart(Reply<AppView>),
    Uninstall {
        keep_data: bool,
        reply: Reply<Uninstalled>,
    },
    Upgrade {
        request: Box<UpgradeRequest>,
        progress: ProgressSender,
        reply: Reply<AppView>,
    },
    Rollback {
        progress: ProgressSender,
        reply: Reply<AppView>,
    },
    /// Something happened to the container: look at it.
    Observe,
    /// The engine (re)connected: make the container match the app.
    Reconcile,
}

/// Starts the task of an installed app. With `reconcile_first`, it brings the
/// engine in line before anything else (daemon start, engine restart).
pub fn spawn(inner: Arc<Inner>, runtime: SharedRuntime, reconcile_first: bool) -> mpsc::Sender<Command> {
    let (tx, rx) = mpsc::channel(32);
    let policy = inner.config.settings.restart_policy();
    let name = lock(&runtime).spec.name.to_string();
    let mut crashes = CrashCounter::default();
    crashes.started(Duration::ZERO);
    let actor = Actor { inner, name, runtime, commands: rx, policy, crashes, restart_at: None, epoch: Instant::now() };
    tokio::spawn(actor.run(reconcile_first));
    tx
}

struct Actor {
    inner: Arc<Inner>,
    name: String,
    runtime: SharedRuntime,
    commands: mpsc::Receiver<Command>,
    policy: RestartPolicy,
    crashes: CrashCounter,
    /// When the supervisor restarts the crashed app next.
    restart_at: Option<Instant>,
    epoch: Instant,
}

enum Flow {
    Continue,
    Exit,
}

impl Actor {
    async fn run(mut self, reconcile_first: bool) {
        if reconcile_first {
            self.reconcile().await;
        }
        loop {
            let wake = self.restart_at;
            let command = tokio::select! {
                command = self.commands.recv() => command,
                _ = sleep_until(wake), if wake.is_some() => {
                    self.restart_at = None;
                    self.reconcile().await;
                    continue;
                }
            };
            let Some(command) = command else { break };
            if let Flow::Exit = self.handle(command).await {
                break;
            }
        }
    }

    async fn handle(&mut self, command: Command) -> Flow {
        match command {
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
                let done = result.is_ok();
                let _ = reply.send(result);
                if done {
                    return Flow::Exit;
                }
            }
            Command::Upgrade { request, progress, reply } => {
                let result = self.upgrade(Some(*request), progress).await;
                let _ = reply.send(result);
            }
            Command::Rollback { progress, reply } => {
                let result = self.upgrade(None, progress).await;
                let _ = reply.send(result);
            }
            Command::Observe => self.observe().await,
            Command::Reconcile => self.reconcile().await,
        }
        Flow::Continue
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn set(&self, f: impl FnOnce(&mut crate::registry::Runtime)) {
        f(&mut lock(&self.runtime));
    }

    async fn set_desired(&self, desired: DesiredState) -> Result<(), OpError> {
        let name = self.name.clone();
        self.inner.db(move |s| s.set_desired(&name, desired)).await?;
        self.set(|r| r.desired = desired);
        Ok(())
    }

    async fn start(&mut self) -> Result<AppView, OpError> {
        self.set_desired(DesiredState::Running).await?;
        self.fresh_start();
        self.reconcile_with(true).await;
        self.attach_unit();
        self.inner.view(&self.name)
    }

    /// Where systemd supervises, its unit must be running to watch the app.
    fn attach_unit(&self) {
        if let Ok(name) = berth_core::AppName::parse(&self.name) {
            crate::units::start_app_unit(&self.inner, &name);
        }
    }

    async fn stop(&mut self) -> Result<AppView, OpError> {
        self.set_desired(DesiredState::Stopped).await?;
        self.restart_at = None;
        self.inner.engine.stop_container(&self.name, self.inner.config.settings.stop_timeout_secs).await?;
        self.observe().await;
        self.inner.view(&self.name)
    }

    async fn restart(&mut self) -> Result<AppView, OpError> {
        self.set_desired(DesiredState::Running).await?;
        self.fresh_start();
        self.inner.engine.stop_container(&self.name, self.inner.config.settings.stop_timeout_secs).await?;
        self.reconcile_with(true).await;
        self.attach_unit();
        self.inner.view(&self.name)
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

    async fn uninstall(&mut self, keep_data: bool) -> Result<Uninstalled, OpError> {
        self.restart_at = None;
        let state = lock(&self.runtime).state;
        self.set(|r| r.state = AppState::Uninstalling);
        let (spec, previous) = {
            let r = lock(&self.runtime);
            (r.spec.clone(), r.previous.clone())
        };
        let result = uninstall::uninstall(&self.inner, &spec, previous.as_ref(), keep_data).await;
        match &result {
            Ok(_) => self.inner.remove(&self.name),
            Err(_) => self.set(|r| r.state = state),
        }
        result
    }

    /// An upgrade (`Some`) or a rollback (`None`). Supervision pauses: the
    /// operation itself decides what runs until it ends.
    async fn upgrade(&mut self, request: Option<UpgradeRequest>, progress: ProgressSender) -> Result<AppView, OpError> {
        self.restart_at = None;
        let (current, previous, state) = {
            let r = lock(&self.runtime);
            (r.spec.clone(), r.previous.clone(), r.state)
        };
        self.set(|r| r.state = AppState::Upgrading);
        let result = match request {
            Some(request) => upgrade::upgrade(&self.inner, &current, previous.as_ref(), request, progress).await,
            None => upgrade::rollback(&self.inner, &current, previous.as_ref(), progress).await,
        };
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
        result.and_then(|_| self.inner.view(&self.name))
    }

    /// Makes the engine match the app: create, recreate, start or stop. Where
    /// systemd supervises, only the user's start (or the unit's `run-app`)
    /// starts a container; the engine's events and start-up only create.
    async fn reconcile(&mut self) {
        let may_start = !self.inner.systemd;
        self.reconcile_with(may_start).await;
    }

    async fn reconcile_with(&mut self, may_start: bool) {
        if let Err(e) = self.try_reconcile(may_start).await {
            tracing::warn!(app = %self.name, error = %e, "reconcile failed");
            let text = e.to_string();
            self.set(|r| r.failure = Some(text));
            if !matches!(e, OpError::Engine(EngineError::Unreachable { .. })) {
                self.crashed(None).await;
                return;
            }
        }
        self.observe().await;
    }

    async fn try_reconcile(&mut self, may_start: bool) -> Result<(), OpError> {
        let engine = self.inner.engine.clone();
        let (spec, desired) = {
            let r = lock(&self.runtime);
            (r.spec.clone(), r.desired)
        };
        let container_spec = self.inner.container_spec(&spec, 0);
        let observed = engine.inspect_container(&self.name).await?;
        if let Some(c) = &observed {
            if c.label(LABEL_INSTANCE) != Some(self.inner.instance.as_str()) {
                return Err(OpError::ForeignContainer { name: self.name.clone() });
            }
        }
        let action = match plan(desired, &container_spec.hash(), observed.as_ref()) {
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
            Action::Stop => engine.stop_container(&self.name, self.inner.config.settings.stop_timeout_secs).await?,
            Action::Start => self.start_container().await?,
            Action::Create { start } | Action::Recreate { start } => {
                if matches!(action, Action::Recreate { .. }) {
                    engine.remove_container(&self.name).await?;
                }
                if engine.inspect_image(&spec.image_id).await?.is_none() {
                    return Err(OpError::DidNotStart {
                        name: self.name.clone(),
                        reason: format!(
                            "its image {} ({}) is no longer in the engine; reinstall the app",
                            spec.image_ref, spec.image_id
                        ),
                    });
                }
                let id = engine.create_container(&container_spec).await?;
                self.set(|r| r.container_id = Some(id));
                if start {
                    self.start_container().await?;
                }
            }
        }
        Ok(())
    }

    async fn start_container(&mut self) -> Result<(), OpError> {
        self.set(|r| r.state = AppState::Starting);
        start_and_check(&self.inner, &self.name).await?;
        self.crashes.started(self.now());
        Ok(())
    }

    /// Reads the container's state into the app's status; a container that
    /// exited while it should run counts as a crash.
    async fn observe(&mut self) {
        let observed = match self.inner.engine.inspect_container(&self.name).await {
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
            if r.started_at != c.started_at {
                r.started_at = c.started_at;
            }
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
        if self.inner.systemd {
            // The app's unit sees its run-app exit and restarts it (Restart=on-failure).
            tracing::info!(app = %self.name, %reason, "app exited; systemd restarts its unit");
            self.set(|r| {
                r.state = AppState::Restarting;
                r.failure = Some(format!("{reason}; systemd restarts it"));
            });
            return;
        }
        let jitter: f64 = rand::random();
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
