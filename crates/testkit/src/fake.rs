//! A complete, scriptable in-memory engine for unit tests of the daemon's
//! logic (supervision, reconciliation, undo). It keeps images and containers,
//! emits the events a real engine would, and can be told to fail any call,
//! to make containers exit, or to become unreachable.

use async_trait::async_trait;
use berth_core::engine::{
    ByteStream, ContainerEvent, ContainerEventKind, ContainerObservation, Engine, EngineError, EngineInfo, ExecOutcome,
    ImageInfo, ProgressSink, RunState,
};
use berth_core::spec::{ContainerSpec, LABEL_APP, LABEL_INSTANCE};
use berth_core::status::Health;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// What a container does when started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStart {
    /// Keeps running.
    Run,
    /// Exits at once with this code (the start itself succeeds).
    Exit(i64),
}

#[derive(Debug, Clone)]
pub struct FakeContainer {
    pub id: String,
    pub spec: ContainerSpec,
    pub state: RunState,
    pub exit_code: Option<i64>,
    pub started_at: Option<i64>,
    pub health: Health,
    pub starts: u32,
}

#[derive(Default)]
struct State {
    images: HashMap<String, ImageInfo>,
    containers: HashMap<String, FakeContainer>,
    /// What the next `load_image` puts into the engine.
    next_load: Option<ImageInfo>,
    on_start: HashMap<String, VecDeque<OnStart>>,
    failures: HashMap<&'static str, VecDeque<EngineError>>,
    unreachable: bool,
    exec_results: HashMap<String, VecDeque<ExecOutcome>>,
    image_files: HashMap<(String, String), Vec<u8>>,
    calls: Vec<String>,
    clock: i64,
    next_id: u64,
}

#[derive(Clone)]
pub struct FakeEngine {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<ContainerEvent>,
}

impl Default for FakeEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeEngine {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(1024);
        Self { state: Arc::new(Mutex::new(State { clock: 1_700_000_000, ..State::default() })), events }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Adds an image as if it had been loaded or pulled before.
    pub fn add_image(&self, id: &str, tags: &[&str]) {
        let info = ImageInfo {
            id: id.into(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            size: 1,
            labels: Default::default(),
        };
        self.with(|s| s.images.insert(id.into(), info));
    }

    /// The image the next `load_image` call loads.
    pub fn load_next(&self, id: &str, tags: &[&str]) {
        let info = ImageInfo {
            id: id.into(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            size: 1,
            labels: Default::default(),
        };
        self.with(|s| s.next_load = Some(info));
    }

    /// Scripts the next starts of `name`, in order; afterwards containers run.
    pub fn on_start(&self, name: &str, behaviours: &[OnStart]) {
        self.with(|s| s.on_start.entry(name.into()).or_default().extend(behaviours.iter().copied()));
    }

    /// Makes the next call of `method` (e.g. "create_container") fail with `error`.
    pub fn fail_next(&self, method: &'static str, error: EngineError) {
        self.with(|s| s.failures.entry(method).or_default().push_back(error));
    }

    /// The next `exec` in `container` ends like this (by default: exit 0, no output).
    pub fn on_exec(&self, container: &str, outcome: ExecOutcome) {
        self.with(|s| s.exec_results.entry(container.into()).or_default().push_back(outcome));
    }

    /// What `image_files(image, path)` returns.
    pub fn put_image_files(&self, image: &str, path: &str, tar: Vec<u8>) {
        self.with(|s| s.image_files.insert((image.into(), path.into()), tar));
    }

    pub fn set_unreachable(&self, unreachable: bool) {
        self.with(|s| s.unreachable = unreachable);
    }

    /// The running container exits with `code`, as a crash would.
    pub fn exit(&self, name: &str, code: i64) {
        let event = self.with(|s| {
            let c = s.containers.get_mut(name)?;
            c.state = RunState::Exited;
            c.exit_code = Some(code);
            Some(event_for(c, ContainerEventKind::Die { exit_code: Some(code) }, s.clock))
        });
        self.emit(event);
    }

    /// Someone removes the container behind berth's back.
    pub fn remove_behind_back(&self, name: &str) {
        let event = self.with(|s| {
            let c = s.containers.remove(name)?;
            Some(event_for(&c, ContainerEventKind::Destroy, s.clock))
        });
        self.emit(event);
    }

    pub fn set_health(&self, name: &str, health: Health) {
        let event = self.with(|s| {
            let c = s.containers.get_mut(name)?;
            c.health = health;
            Some(event_for(c, ContainerEventKind::Health(health), s.clock))
        });
        self.emit(event);
    }

    pub fn container(&self, name: &str) -> Option<FakeContainer> {
        self.with(|s| s.containers.get(name).cloned())
    }

    pub fn has_image(&self, id: &str) -> bool {
        self.with(|s| s.images.contains_key(id))
    }

    /// Every call made, as `method name`, in order.
    pub fn calls(&self) -> Vec<String> {
        self.with(|s| s.calls.clone())
    }

    fn emit(&self, event: Option<ContainerEvent>) {
        if let Some(event) = event {
            let _ = self.events.send(event);
        }
    }

    /// Records the call and applies scripted failures and reachability.
    fn enter(&self, method: &'static str, subject: &str) -> Result<(), EngineError> {
        self.with(|s| {
            s.calls.push(format!("{method} {subject}").trim_end().to_owned());
            s.clock += 1;
            if s.unreachable {
                return Err(EngineError::Unreachable { endpoint: "fake://".into(), reason: "scripted".into() });
            }
            match s.failures.get_mut(method).and_then(VecDeque::pop_front) {
                Some(error) => Err(error),
                None => Ok(()),
            }
        })
    }
}

fn event_for(c: &FakeContainer, kind: ContainerEventKind, time: i64) -> ContainerEvent {
    let app = c.spec.labels.get(LABEL_APP).cloned().unwrap_or_default();
    ContainerEvent { container_id: c.id.clone(), app, kind, time }
}

fn observe(c: &FakeContainer) -> ContainerObservation {
    ContainerObservation {
        id: c.id.clone(),
        name: c.spec.name.clone(),
        image_id: c.spec.image_id.clone(),
        labels: c.spec.labels.clone(),
        state: c.state,
        exit_code: c.exit_code,
        error: None,
        started_at: c.started_at,
        health: c.health,
        oom_killed: false,
    }
}

#[async_trait]
impl Engine for FakeEngine {
    fn endpoint(&self) -> String {
        "fake://".into()
    }

    async fn info(&self) -> Result<EngineInfo, EngineError> {
        self.enter("info", "")?;
        Ok(EngineInfo { version: "fake".into(), api_version: "1.41".into(), online_cpus: 2, root_dir: None })
    }

    async fn load_image(&self, mut archive: ByteStream, _progress: ProgressSink) -> Result<Vec<String>, EngineError> {
        self.enter("load_image", "")?;
        while let Some(chunk) = archive.next().await {
            chunk.map_err(|e| EngineError::Load { reason: e.to_string() })?;
        }
        let image =
            self.with(|s| s.next_load.take()).ok_or_else(|| EngineError::Load { reason: "nothing scripted".into() })?;
        let loaded = image.repo_tags.first().cloned().unwrap_or_else(|| image.id.clone());
        self.with(|s| s.images.insert(image.id.clone(), image));
        Ok(vec![loaded])
    }

    async fn pull_image(
        &self,
        reference: &str,
        _credentials: Option<&berth_core::engine::RegistryCredentials>,
        _progress: ProgressSink,
    ) -> Result<(), EngineError> {
        self.enter("pull_image", reference)?;
        let known = self.with(|s| s.images.values().any(|i| i.repo_tags.iter().any(|t| t == reference)));
        if known {
            Ok(())
        } else {
            Err(EngineError::Pull { reference: reference.into(), reason: "not found".into() })
        }
    }

    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        self.enter("inspect_image", reference)?;
        Ok(self.with(|s| {
            s.images
                .get(reference)
                .cloned()
                .or_else(|| s.images.values().find(|i| i.repo_tags.iter().any(|t| t == reference)).cloned())
        }))
    }

    async fn image_ids(&self) -> Result<HashSet<String>, EngineError> {
        self.enter("image_ids", "")?;
        Ok(self.with(|s| s.images.keys().cloned().collect()))
    }

    async fn remove_image(&self, id: &str) -> Result<(), EngineError> {
        self.enter("remove_image", id)?;
        self.with(|s| {
            if s.containers.values().any(|c| c.spec.image_id == id) {
                return Err(EngineError::Conflict { what: format!("image {id} is used by a container") });
            }
            s.images.remove(id);
            Ok(())
        })
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        self.enter("create_container", &spec.name)?;
        self.with(|s| {
            if s.containers.contains_key(&spec.name) {
                return Err(EngineError::Conflict { what: format!("container {}", spec.name) });
            }
            if !s.images.contains_key(&spec.image_id) {
                return Err(EngineError::NotFound { what: format!("image {}", spec.image_id) });
            }
            s.next_id += 1;
            let id = format!("{:064x}", s.next_id);
            let container = FakeContainer {
                id: id.clone(),
                spec: spec.clone(),
                state: RunState::Created,
                exit_code: None,
                started_at: None,
                health: Health::None,
                starts: 0,
            };
            s.containers.insert(spec.name.clone(), container);
            Ok(id)
        })
    }

    async fn start_container(&self, name: &str) -> Result<(), EngineError> {
        self.enter("start_container", name)?;
        let events = self.with(|s| {
            let behaviour = s.on_start.get_mut(name).and_then(VecDeque::pop_front).unwrap_or(OnStart::Run);
            let clock = s.clock;
            let c = s
                .containers
                .get_mut(name)
                .ok_or_else(|| EngineError::NotFound { what: format!("container {name}") })?;
            if c.state == RunState::Running {
                return Ok(vec![]);
            }
            c.starts += 1;
            c.started_at = Some(clock);
            let mut events = vec![event_for(c, ContainerEventKind::Start, clock)];
            match behaviour {
                OnStart::Run => {
                    c.state = RunState::Running;
                    c.exit_code = None;
                }
                OnStart::Exit(code) => {
                    c.state = RunState::Exited;
                    c.exit_code = Some(code);
                    events.push(event_for(c, ContainerEventKind::Die { exit_code: Some(code) }, clock));
                }
            }
            Ok(events)
        })?;
        for event in events {
            self.emit(Some(event));
        }
        Ok(())
    }

    async fn stop_container(&self, name: &str, _timeout_secs: i64) -> Result<(), EngineError> {
        self.enter("stop_container", name)?;
        let event = self.with(|s| {
            let clock = s.clock;
            let c = s.containers.get_mut(name).filter(|c| c.state == RunState::Running)?;
            c.state = RunState::Exited;
            c.exit_code = Some(0);
            Some(event_for(c, ContainerEventKind::Die { exit_code: Some(0) }, clock))
        });
        self.emit(event);
        Ok(())
    }

    async fn remove_container(&self, name: &str) -> Result<(), EngineError> {
        self.enter("remove_container", name)?;
        let event = self.with(|s| {
            let clock = s.clock;
            let key = s.containers.iter().find(|(k, c)| *k == name || c.id == name).map(|(k, _)| k.clone())?;
            let c = s.containers.remove(&key)?;
            Some(event_for(&c, ContainerEventKind::Destroy, clock))
        });
        self.emit(event);
        Ok(())
    }

    async fn inspect_container(&self, name: &str) -> Result<Option<ContainerObservation>, EngineError> {
        self.enter("inspect_container", name)?;
        Ok(self.with(|s| s.containers.get(name).map(observe)))
    }

    async fn owned_containers(&self, instance: &str) -> Result<Vec<ContainerObservation>, EngineError> {
        self.enter("owned_containers", instance)?;
        Ok(self.with(|s| {
            s.containers
                .values()
                .filter(|c| {
                    c.spec.labels.contains_key(LABEL_APP)
                        && c.spec.labels.get(LABEL_INSTANCE).map(String::as_str) == Some(instance)
                })
                .map(observe)
                .collect()
        }))
    }

    async fn rename_container(&self, name: &str, new_name: &str) -> Result<(), EngineError> {
        self.enter("rename_container", name)?;
        self.with(|s| {
            if s.containers.contains_key(new_name) {
                return Err(EngineError::Conflict { what: format!("container {new_name}") });
            }
            let mut c =
                s.containers.remove(name).ok_or_else(|| EngineError::NotFound { what: format!("container {name}") })?;
            c.spec.name = new_name.into();
            s.containers.insert(new_name.into(), c);
            Ok(())
        })
    }

    async fn exec(
        &self,
        container: &str,
        argv: &[String],
        _timeout: std::time::Duration,
    ) -> Result<ExecOutcome, EngineError> {
        self.enter("exec", &format!("{container} {}", argv.join(" ")))?;
        self.with(|s| {
            let running = s.containers.get(container).is_some_and(|c| c.state == RunState::Running);
            if !running {
                return Err(EngineError::Conflict { what: format!("container {container} is not running") });
            }
            let scripted = s.exec_results.get_mut(container).and_then(VecDeque::pop_front);
            Ok(scripted.unwrap_or(ExecOutcome { exit_code: Some(0), output: String::new() }))
        })
    }

    async fn image_files(&self, image: &str, path: &str) -> Result<Option<Vec<u8>>, EngineError> {
        self.enter("image_files", &format!("{image} {path}"))?;
        Ok(self.with(|s| s.image_files.get(&(image.to_owned(), path.to_owned())).cloned()))
    }

    async fn commit_container(&self, name: &str, reference: &str) -> Result<String, EngineError> {
        self.enter("commit_container", name)?;
        self.with(|s| {
            if !s.containers.contains_key(name) {
                return Err(EngineError::NotFound { what: format!("container {name}") });
            }
            s.next_id += 1;
            let id = format!("sha256:{:064x}", s.next_id);
            let info = ImageInfo {
                id: id.clone(),
                repo_tags: vec![reference.to_owned()],
                size: 1,
                labels: Default::default(),
            };
            s.images.insert(id.clone(), info);
            Ok(id)
        })
    }

    fn save_image(&self, image: &str) -> BoxStream<'static, Result<Bytes, EngineError>> {
        let known = self.with(|s| s.images.contains_key(image));
        let item = if known {
            Ok(Bytes::from(format!("saved {image}")))
        } else {
            Err(EngineError::NotFound { what: format!("image {image}") })
        };
        futures::stream::iter([item]).boxed()
    }

    async fn exec_with(
        &self,
        container: &str,
        request: berth_core::engine::ExecRequest,
        _stop: berth_core::engine::StopSignal,
    ) -> Result<berth_core::engine::ExecResult, EngineError> {
        let outcome = self.exec(container, &request.argv, std::time::Duration::ZERO).await?;
        Ok(berth_core::engine::ExecResult {
            exit_code: outcome.exit_code,
            stdout: outcome.output.into_bytes(),
            stderr: Vec::new(),
        })
    }

    async fn containers_labelled(&self, key: &str, value: &str) -> Result<Vec<ContainerObservation>, EngineError> {
        self.enter("containers_labelled", key)?;
        Ok(self.with(|s| {
            s.containers
                .values()
                .filter(|c| match c.spec.labels.get(key) {
                    Some(label) => value.is_empty() || label == value,
                    None => false,
                })
                .map(observe)
                .collect()
        }))
    }

    async fn images_labelled(&self, key: &str) -> Result<Vec<ImageInfo>, EngineError> {
        self.enter("images_labelled", key)?;
        Ok(self.with(|s| s.images.values().filter(|i| i.labels.contains_key(key)).cloned().collect()))
    }

    async fn create_plain_container(&self, spec: &berth_core::engine::PlainContainer) -> Result<String, EngineError> {
        let name = format!("plain-{}", self.with(|s| s.next_id + 1));
        let container = ContainerSpec {
            name,
            image_id: spec.image.clone(),
            options: Default::default(),
            nano_cpus: 0,
            memory: None,
            private_dir: String::new(),
            labels: spec.labels.clone(),
        };
        self.create_container(&container).await
    }

    fn events(&self, instance: &str) -> BoxStream<'static, Result<ContainerEvent, EngineError>> {
        let _ = instance;
        tokio_stream::wrappers::BroadcastStream::new(self.events.subscribe())
            .filter_map(|e| async move { e.ok().map(Ok) })
            .boxed()
    }

    fn logs(&self, name: &str, _follow: bool, _tail: Option<u64>) -> BoxStream<'static, Result<Bytes, EngineError>> {
        let line = Bytes::from(format!("log of {name}\n"));
        futures::stream::iter([Ok(line)]).boxed()
    }
}
