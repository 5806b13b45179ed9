//! A complete, scriptable in-memory engine for unit tests of the daemon's
//! logic (supervision, planning, journal recovery, rollback). It keeps images
//! (with tags, labels and files) and containers, behaves like Docker where
//! the daemon can tell (names and ids, tag moves, refusals to remove images in
//! use), emits the events a real engine would, and can be told to fail, panic
//! or hang on any call, or to become unreachable.
//!
//! ```ignore
//! let engine = FakeEngine::new();
//! engine.add_image(FakeImage::new("sha256:1").tag("web:1").file("/etc/conf", "x"));
//! engine.on_exec("web", |request| ExecScript::exit(0).out(request.stdin.clone().unwrap_or_default()));
//! engine.fail_next(Method::Start, EngineError::Rejected { status: 500, message: "boom".into() });
//! let held = engine.hold_next(Method::Create); // the next create waits for `held.release()`
//! ```

use async_trait::async_trait;
use berth_core::engine::{
    ByteStream, ContainerConfig, ContainerEvent, ContainerEventKind, ContainerObservation, ContainerStats, Engine,
    EngineError, EngineInfo, ExecRequest, ExecResult, Filter, ImageInfo, NetworkConfig, NetworkInfo, PathStat,
    Progress, ProgressSink, RegistryCredentials, RunState, StopSignal, VolumeInfo, EXEC_OUTPUT_LIMIT,
};
use berth_core::status::Health;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};

/// Every call of the [`Engine`] trait, for scripting failures, panics and holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Info,
    LoadImage,
    PullImage,
    InspectImage,
    ListImages,
    RemoveImage,
    CommitContainer,
    SaveImage,
    Create,
    Start,
    Stop,
    Remove,
    Rename,
    Inspect,
    List,
    Stats,
    Exec,
    CopyFrom,
    Stat,
    Events,
    Logs,
    BuildImage,
    CopyTo,
    NetworkExists,
    InspectNetwork,
    ListNetworks,
    CreateNetwork,
    RemoveNetwork,
    ConnectNetwork,
    DisconnectNetwork,
    InspectVolume,
    ListVolumes,
    CreateVolume,
    RemoveVolume,
}

impl Method {
    /// The trait method's name, as written in [`FakeEngine::calls`].
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Info => "info",
            Method::LoadImage => "load_image",
            Method::PullImage => "pull_image",
            Method::InspectImage => "inspect_image",
            Method::ListImages => "list_images",
            Method::RemoveImage => "remove_image",
            Method::CommitContainer => "commit_container",
            Method::SaveImage => "save_image",
            Method::Create => "create",
            Method::Start => "start",
            Method::Stop => "stop",
            Method::Remove => "remove",
            Method::Rename => "rename",
            Method::Inspect => "inspect",
            Method::List => "list",
            Method::Stats => "stats",
            Method::Exec => "exec",
            Method::CopyFrom => "copy_from",
            Method::Stat => "stat",
            Method::Events => "events",
            Method::Logs => "logs",
            Method::BuildImage => "build_image",
            Method::CopyTo => "copy_to",
            Method::NetworkExists => "network_exists",
            Method::InspectNetwork => "inspect_network",
            Method::ListNetworks => "list_networks",
            Method::CreateNetwork => "create_network",
            Method::RemoveNetwork => "remove_network",
            Method::ConnectNetwork => "connect_network",
            Method::DisconnectNetwork => "disconnect_network",
            Method::InspectVolume => "inspect_volume",
            Method::ListVolumes => "list_volumes",
            Method::CreateVolume => "create_volume",
            Method::RemoveVolume => "remove_volume",
        }
    }
}

/// A file or directory in an image or container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeFile {
    File { contents: Vec<u8>, mode: u32 },
    Dir { mode: u32 },
}

/// An image as the fake keeps it; built with its methods and given to
/// [`FakeEngine::add_image`], [`FakeEngine::load_next`] or [`FakeEngine::add_pullable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeImage {
    pub id: String,
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub size: u64,
    /// Absolute paths; parent directories are implicit.
    pub files: BTreeMap<String, FakeFile>,
}

impl FakeImage {
    /// An untagged image; `id` is used as given (`sha256:…` for realism).
    pub fn new(id: &str) -> Self {
        Self { id: id.to_owned(), tags: Vec::new(), labels: BTreeMap::new(), size: 1, files: BTreeMap::new() }
    }

    /// Adds a tag (`repo` alone means `repo:latest`, as in Docker).
    pub fn tag(mut self, tag: &str) -> Self {
        self.tags.push(normalize_reference(tag));
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn size(mut self, size: u64) -> Self {
        self.size = size;
        self
    }

    /// A regular file (mode 0644) at absolute `path`.
    pub fn file(self, path: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.file_with_mode(path, contents, 0o644)
    }

    pub fn file_with_mode(mut self, path: &str, contents: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.files.insert(clean_path(path), FakeFile::File { contents: contents.into(), mode });
        self
    }

    /// An (empty) directory; directories holding files need not be declared.
    pub fn dir(mut self, path: &str) -> Self {
        self.files.insert(clean_path(path), FakeFile::Dir { mode: 0o755 });
        self
    }

    fn info(&self) -> ImageInfo {
        ImageInfo { id: self.id.clone(), repo_tags: self.tags.clone(), size: self.size, labels: self.labels.clone() }
    }
}

/// What a container does when it is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnStart {
    /// Keeps running (the default).
    Run,
    /// Starts, then its process exits at once with this code.
    Exit(i64),
    /// The start is refused, as for a missing entry point: the engine answers
    /// `Rejected { status: 400, message }` and the container keeps `message`
    /// as its error with exit code 127.
    Fail(String),
}

/// How a scripted command ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEnd {
    Exit(i64),
    /// Runs until its `StopSignal` resolves (then `exit_code: None` and
    /// `killed` as given) or its container stops (then exit code 137).
    Hang {
        killable: bool,
    },
}

/// What a command run by `exec` does: its output, in order, then its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecScript {
    /// `(true, bytes)` for stderr, `(false, bytes)` for stdout.
    pub output: Vec<(bool, Vec<u8>)>,
    pub end: ExecEnd,
}

impl ExecScript {
    pub fn exit(code: i64) -> Self {
        Self { output: Vec::new(), end: ExecEnd::Exit(code) }
    }

    /// Runs until stopped, then is killed (as in a container with a shell).
    pub fn hang() -> Self {
        Self { output: Vec::new(), end: ExecEnd::Hang { killable: true } }
    }

    /// Runs until stopped, then is only abandoned (a container without a shell).
    pub fn hang_unkillable() -> Self {
        Self { output: Vec::new(), end: ExecEnd::Hang { killable: false } }
    }

    /// Writes `bytes` to stdout.
    pub fn out(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.output.push((false, bytes.into()));
        self
    }

    /// Writes `bytes` to stderr.
    pub fn err(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.output.push((true, bytes.into()));
        self
    }
}

type ExecHandler = Arc<dyn Fn(&ExecRequest) -> ExecScript + Send + Sync>;

/// One `exec` as it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedExec {
    /// The container as the caller named it.
    pub container: String,
    pub container_id: String,
    pub argv: Vec<String>,
    pub user: Option<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub stdin: Option<Bytes>,
}

/// A container as the fake keeps it (a snapshot from [`FakeEngine::container`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FakeContainer {
    pub id: String,
    pub name: String,
    pub image_id: String,
    pub config: ContainerConfig,
    pub state: RunState,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub started_at: Option<i64>,
    pub health: Health,
    pub oom_killed: bool,
    /// How often it was started.
    pub starts: u32,
    /// Files written into the container, over its image's.
    pub files: BTreeMap<String, FakeFile>,
    /// Its output, for `logs`, in pieces as pushed.
    pub logs: Vec<Bytes>,
    /// Network name → its address there.
    pub networks: BTreeMap<String, String>,
    /// What `stats` reports while it runs (set with [`FakeEngine::set_stats`]).
    pub stats: ContainerStats,
}

impl FakeContainer {
    fn observe(&self) -> ContainerObservation {
        ContainerObservation {
            id: self.id.clone(),
            name: self.name.clone(),
            image_id: self.image_id.clone(),
            labels: self.config.labels.clone(),
            state: self.state,
            exit_code: self.exit_code,
            error: self.error.clone(),
            started_at: self.started_at,
            health: self.health,
            oom_killed: self.oom_killed,
            networks: self.networks.clone(),
        }
    }

    fn running(&self) -> bool {
        self.state == RunState::Running
    }
}

/// Holds calls of one method until released: for tests of what happens while
/// an engine call hangs (cancellation, shutdown, other apps going on).
/// Dropping it releases the call too.
#[derive(Debug)]
pub struct Hold {
    shared: Arc<HoldShared>,
}

#[derive(Debug)]
struct HoldShared {
    /// (a call arrived, released)
    state: watch::Sender<(bool, bool)>,
}

impl Hold {
    /// Lets the held call go on.
    pub fn release(&self) {
        self.shared.state.send_modify(|s| s.1 = true);
    }

    /// Resolves once the held call has arrived (and is waiting, unless released).
    pub async fn entered(&self) {
        let mut rx = self.shared.state.subscribe();
        let _ = rx.wait_for(|s| s.0).await;
    }

    /// Whether the held call has arrived.
    pub fn has_entered(&self) -> bool {
        self.shared.state.borrow().0
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.release();
    }
}

impl HoldShared {
    async fn wait(&self) {
        self.state.send_modify(|s| s.0 = true);
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| s.1).await;
    }
}

#[derive(Debug, Clone)]
enum Broadcast {
    Event(ContainerEvent),
    /// The engine became unreachable: event streams end.
    Gone,
}

struct State {
    images: Vec<FakeImage>,
    pullable: BTreeMap<String, (FakeImage, Option<RegistryCredentials>)>,
    loads: VecDeque<Vec<FakeImage>>,
    containers: Vec<FakeContainer>,
    /// Named volumes and their labels.
    volumes: BTreeMap<String, BTreeMap<String, String>>,
    networks: Vec<FakeNetwork>,
    /// What the next builds make, by tag (default: the base image's files under the build's labels).
    builds: HashMap<String, VecDeque<Result<FakeImage, String>>>,
    on_start: HashMap<String, VecDeque<OnStart>>,
    exec_handlers: HashMap<String, ExecHandler>,
    default_exec: Option<ExecHandler>,
    execs: Vec<RecordedExec>,
    failures: HashMap<Method, VecDeque<EngineError>>,
    panics: HashMap<Method, usize>,
    holds: HashMap<Method, VecDeque<Arc<HoldShared>>>,
    unreachable: bool,
    info: EngineInfo,
    calls: Vec<String>,
    clock: i64,
    next_id: u64,
}

struct Inner {
    state: Mutex<State>,
    events: broadcast::Sender<Broadcast>,
    /// Bumped on every change of a container's run, or of reachability:
    /// what hanging execs and followed logs wait on.
    changes: watch::Sender<u64>,
}

/// The in-memory engine; clones share one engine.
#[derive(Clone)]
pub struct FakeEngine {
    inner: Arc<Inner>,
}

impl Default for FakeEngine {
    fn default() -> Self {
        Self::new()
    }
}

const ENDPOINT: &str = "fake://";
/// Where the fake's clock starts (seconds since the epoch); it ticks once per call.
pub const FAKE_EPOCH: i64 = 1_700_000_000;

fn unreachable() -> EngineError {
    EngineError::Unreachable { endpoint: ENDPOINT.into(), reason: "scripted: the engine is unreachable".into() }
}

fn container_not_found(reference: &str) -> EngineError {
    EngineError::NotFound { what: format!("container {reference}") }
}

impl FakeEngine {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(4096);
        let (changes, _) = watch::channel(0);
        let state = State {
            images: Vec::new(),
            pullable: BTreeMap::new(),
            loads: VecDeque::new(),
            containers: Vec::new(),
            volumes: BTreeMap::new(),
            networks: ["bridge", "host", "none"].into_iter().enumerate().map(|(i, n)| FakeNetwork::new(n, i)).collect(),
            builds: HashMap::new(),
            on_start: HashMap::new(),
            exec_handlers: HashMap::new(),
            default_exec: None,
            execs: Vec::new(),
            failures: HashMap::new(),
            panics: HashMap::new(),
            holds: HashMap::new(),
            unreachable: false,
            info: EngineInfo {
                version: "fake".into(),
                api_version: "1.41".into(),
                online_cpus: 2,
                root_dir: Some("/var/lib/docker".into()),
            },
            calls: Vec::new(),
            clock: FAKE_EPOCH,
            next_id: 0,
        };
        Self { inner: Arc::new(Inner { state: Mutex::new(state), events, changes }) }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.inner.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    // ----- scripting ---------------------------------------------------------

    /// Adds an image as if it had been loaded or pulled before; its tags move
    /// to it from any image that had them.
    pub fn add_image(&self, image: FakeImage) {
        self.with(|s| s.insert_image(image));
    }

    /// What the next `load_image` brings (one archive may hold several images).
    /// Loads with nothing scripted are refused as a real engine refuses a
    /// non-archive.
    pub fn load_next(&self, images: impl IntoIterator<Item = FakeImage>) {
        let images = images.into_iter().collect();
        self.with(|s| s.loads.push_back(images));
    }

    /// Makes `reference` pullable: pulling it adds `image`, tagged `reference`.
    pub fn add_pullable(&self, reference: &str, image: FakeImage) {
        self.with(|s| s.pullable.insert(normalize_reference(reference), (image, None)));
    }

    /// Like [`Self::add_pullable`], for a registry that wants this login.
    pub fn add_pullable_with_login(&self, reference: &str, image: FakeImage, login: RegistryCredentials) {
        self.with(|s| s.pullable.insert(normalize_reference(reference), (image, Some(login))));
    }

    /// Scripts the next starts of a container (by name or id), in order;
    /// afterwards it runs. Scripts by name outlive the container (a recreated
    /// container of the same name goes on with them).
    pub fn on_start(&self, container: &str, behaviours: impl IntoIterator<Item = OnStart>) {
        self.with(|s| s.on_start.entry(container.to_owned()).or_default().extend(behaviours));
    }

    /// What commands run in `container` (by name or id) do.
    pub fn on_exec(&self, container: &str, handler: impl Fn(&ExecRequest) -> ExecScript + Send + Sync + 'static) {
        self.with(|s| s.exec_handlers.insert(container.to_owned(), Arc::new(handler)));
    }

    /// What commands do in containers without their own handler (by default:
    /// exit 0 without output).
    pub fn on_exec_default(&self, handler: impl Fn(&ExecRequest) -> ExecScript + Send + Sync + 'static) {
        self.with(|s| s.default_exec = Some(Arc::new(handler)));
    }

    /// Makes the next call of `method` fail with `error` (queued: several
    /// calls make the next calls fail in order). The call has no effect.
    pub fn fail_next(&self, method: Method, error: EngineError) {
        self.with(|s| s.failures.entry(method).or_default().push_back(error));
    }

    /// Makes the next call of `method` panic in the caller's task.
    pub fn panic_next(&self, method: Method) {
        self.with(|s| *s.panics.entry(method).or_default() += 1);
    }

    /// Makes the next call of `method` wait until the returned hold is
    /// released (or dropped); then it goes on as usual.
    pub fn hold_next(&self, method: Method) -> Hold {
        let (state, _) = watch::channel((false, false));
        let shared = Arc::new(HoldShared { state });
        self.with(|s| s.holds.entry(method).or_default().push_back(shared.clone()));
        Hold { shared }
    }

    /// While unreachable, every call fails with `Unreachable` and event
    /// streams end with that error.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.with(|s| s.unreachable = unreachable);
        if unreachable {
            let _ = self.inner.events.send(Broadcast::Gone);
        }
        self.bump();
    }

    pub fn set_info(&self, info: EngineInfo) {
        self.with(|s| s.info = info);
    }

    /// A network that containers may join (`bridge`, `host` and `none` exist from the start).
    pub fn add_network(&self, name: &str) {
        self.with(|s| {
            let n = s.networks.len();
            s.networks.push(FakeNetwork::new(name, n));
        });
    }

    /// The networks there are now.
    pub fn networks(&self) -> Vec<FakeNetwork> {
        self.with(|s| s.networks.clone())
    }

    /// Scripts the next build of `tag`: it makes `image` (tagged `tag`, with
    /// the build's labels) or fails with `Err(message)` as a failing step would.
    pub fn on_build(&self, tag: &str, result: Result<FakeImage, String>) {
        self.with(|s| s.builds.entry(normalize_reference(tag)).or_default().push_back(result));
    }

    /// A named volume made by someone (with these labels).
    pub fn add_volume(&self, name: &str, labels: &[(&str, &str)]) {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.with(|s| s.volumes.insert(name.to_owned(), labels));
    }

    /// The named volumes there are now.
    pub fn volume_names(&self) -> Vec<String> {
        self.with(|s| s.volumes.keys().cloned().collect())
    }

    /// The running container's process exits with `code`, as a crash would.
    pub fn exit(&self, container: &str, code: i64) {
        let event = self.with(|s| {
            let clock = s.clock;
            let c = s.find_mut(container).filter(|c| c.running())?;
            c.state = RunState::Exited;
            c.exit_code = Some(code);
            c.health = Health::None;
            Some(event_for(c, ContainerEventKind::Die { exit_code: Some(code) }, clock))
        });
        self.emit(event.into_iter());
    }

    /// What the container's stats report from now on (while it runs).
    pub fn set_stats(&self, container: &str, stats: ContainerStats) {
        self.with(|s| {
            if let Some(c) = s.find_mut(container) {
                c.stats = stats;
            }
        });
    }

    /// The kernel's OOM killer ends the running container.
    pub fn oom(&self, container: &str) {
        let events = self.with(|s| {
            let clock = s.clock;
            let Some(c) = s.find_mut(container).filter(|c| c.running()) else {
                return Vec::new();
            };
            c.state = RunState::Exited;
            c.exit_code = Some(137);
            c.oom_killed = true;
            c.health = Health::None;
            vec![
                event_for(c, ContainerEventKind::Oom, clock),
                event_for(c, ContainerEventKind::Die { exit_code: Some(137) }, clock),
            ]
        });
        self.emit(events.into_iter());
    }

    /// The container's health check reports `health`.
    pub fn set_health(&self, container: &str, health: Health) {
        let event = self.with(|s| {
            let clock = s.clock;
            let c = s.find_mut(container)?;
            c.health = health;
            Some(event_for(c, ContainerEventKind::Health(health), clock))
        });
        self.emit(event.into_iter());
    }

    /// Someone removes the container behind berth's back (`docker rm -f`).
    pub fn remove_behind_back(&self, container: &str) {
        let events = self.with(|s| s.remove_container(container));
        self.emit(events.into_iter());
    }

    /// Writes a file into the container (over its image's files).
    pub fn put_file(&self, container: &str, path: &str, contents: impl Into<Vec<u8>>) {
        let contents = contents.into();
        self.with(|s| {
            if let Some(c) = s.find_mut(container) {
                c.files.insert(clean_path(path), FakeFile::File { contents, mode: 0o644 });
            }
        });
    }

    /// Appends to the container's output (what `logs` gives).
    pub fn push_log(&self, container: &str, bytes: impl Into<Bytes>) {
        let bytes = bytes.into();
        self.with(|s| {
            if let Some(c) = s.find_mut(container) {
                c.logs.push(bytes);
            }
        });
        self.bump();
    }

    // ----- inspection --------------------------------------------------------

    /// A container by name or id.
    pub fn container(&self, reference: &str) -> Option<FakeContainer> {
        self.with(|s| s.find(reference).cloned())
    }

    /// Every container, oldest first.
    pub fn containers(&self) -> Vec<FakeContainer> {
        self.with(|s| s.containers.clone())
    }

    /// An image by id or tag.
    pub fn image(&self, reference: &str) -> Option<FakeImage> {
        self.with(|s| s.find_image(reference).map(|i| s.images[i].clone()))
    }

    pub fn has_image(&self, reference: &str) -> bool {
        self.image(reference).is_some()
    }

    pub fn images(&self) -> Vec<FakeImage> {
        self.with(|s| s.images.clone())
    }

    /// Every `exec` asked for, in order (refused ones too).
    pub fn execs(&self) -> Vec<RecordedExec> {
        self.with(|s| s.execs.clone())
    }

    /// Every call made, as `method subject` (e.g. `start web`), in order.
    pub fn calls(&self) -> Vec<String> {
        self.with(|s| s.calls.clone())
    }

    pub fn clear_calls(&self) {
        self.with(|s| s.calls.clear());
    }

    // ----- machinery ---------------------------------------------------------

    fn bump(&self) {
        self.inner.changes.send_modify(|n| *n += 1);
    }

    fn emit(&self, events: impl Iterator<Item = ContainerEvent>) {
        for event in events {
            let _ = self.inner.events.send(Broadcast::Event(event));
        }
        self.bump();
    }

    /// Records the call; takes the hold, failure and panic scripted for it.
    fn admit(&self, method: Method, subject: &str) -> (Option<Arc<HoldShared>>, bool) {
        self.with(|s| {
            s.calls.push(format!("{} {subject}", method.as_str()).trim_end().to_owned());
            s.clock += 1;
            let hold = s.holds.get_mut(&method).and_then(VecDeque::pop_front);
            let panics = s.panics.get_mut(&method).filter(|n| **n > 0).map(|n| *n -= 1).is_some();
            (hold, panics)
        })
    }

    fn verdict(&self, method: Method) -> Result<(), EngineError> {
        self.with(|s| {
            if s.unreachable {
                return Err(unreachable());
            }
            match s.failures.get_mut(&method).and_then(VecDeque::pop_front) {
                Some(error) => Err(error),
                None => Ok(()),
            }
        })
    }

    /// Entry of every async call: record, hold, panic, unreachable, failure.
    async fn enter(&self, method: Method, subject: &str) -> Result<(), EngineError> {
        let (hold, panics) = self.admit(method, subject);
        if let Some(hold) = hold {
            hold.wait().await;
        }
        if panics {
            panic!("scripted panic in engine call {}", method.as_str());
        }
        self.verdict(method)
    }

    /// Entry of the calls that answer with a stream: record, panic and the
    /// verdict happen at the call; a hold delays the stream's first item.
    fn enter_stream(&self, method: Method, subject: &str) -> (Option<Arc<HoldShared>>, Result<(), EngineError>) {
        let (hold, panics) = self.admit(method, subject);
        if panics {
            panic!("scripted panic in engine call {}", method.as_str());
        }
        (hold, self.verdict(method))
    }

    /// Resolves when the container's current run ends (stop, exit, removal).
    async fn run_ended(&self, id: &str, starts: u32) {
        let mut changes = self.inner.changes.subscribe();
        loop {
            let running = self.with(|s| s.find(id).is_some_and(|c| c.running() && c.starts == starts));
            if !running {
                return;
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Delays `stream` until `hold` is released.
fn gated<T: Send + 'static>(hold: Option<Arc<HoldShared>>, stream: BoxStream<'static, T>) -> BoxStream<'static, T> {
    let Some(hold) = hold else {
        return stream;
    };
    let mut stream = Some(stream);
    futures::stream::once(async move { hold.wait().await })
        .map(move |()| stream.take().unwrap_or_else(|| futures::stream::empty().boxed()))
        .flatten()
        .boxed()
}

fn error_stream<T: Send + 'static>(error: EngineError) -> BoxStream<'static, Result<T, EngineError>> {
    futures::stream::iter([Err(error)]).boxed()
}

impl State {
    fn tick(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Docker's lookup order: full id, name, unique id prefix.
    fn find_index(&self, reference: &str) -> Option<usize> {
        let reference = reference.trim_start_matches('/');
        if reference.is_empty() {
            return None;
        }
        if let Some(i) = self.containers.iter().position(|c| c.id == reference || c.name == reference) {
            return Some(i);
        }
        let mut prefixed = self.containers.iter().enumerate().filter(|(_, c)| c.id.starts_with(reference));
        match (prefixed.next(), prefixed.next()) {
            (Some((i, _)), None) => Some(i),
            _ => None,
        }
    }

    fn find(&self, reference: &str) -> Option<&FakeContainer> {
        self.find_index(reference).map(|i| &self.containers[i])
    }

    fn find_mut(&mut self, reference: &str) -> Option<&mut FakeContainer> {
        self.find_index(reference).map(|i| &mut self.containers[i])
    }

    fn find_image(&self, reference: &str) -> Option<usize> {
        let tag = normalize_reference(reference);
        self.images.iter().position(|i| {
            i.id == reference
                || i.id.strip_prefix("sha256:") == Some(reference)
                || i.tags.contains(&tag)
                || (reference.len() >= 12 && i.id.trim_start_matches("sha256:").starts_with(reference))
        })
    }

    /// Adds an image; its tags move to it, an image of the same id gains them.
    fn insert_image(&mut self, image: FakeImage) {
        for other in &mut self.images {
            if other.id != image.id {
                other.tags.retain(|t| !image.tags.contains(t));
            }
        }
        match self.images.iter_mut().find(|i| i.id == image.id) {
            Some(existing) => {
                for tag in image.tags {
                    if !existing.tags.contains(&tag) {
                        existing.tags.push(tag);
                    }
                }
            }
            None => self.images.push(image),
        }
    }

    fn remove_container(&mut self, reference: &str) -> Vec<ContainerEvent> {
        let Some(index) = self.find_index(reference) else {
            return Vec::new();
        };
        let c = self.containers.remove(index);
        let mut events = Vec::new();
        if c.running() {
            events.push(event_for(&c, ContainerEventKind::Die { exit_code: Some(137) }, self.clock));
        }
        events.push(event_for(&c, ContainerEventKind::Destroy, self.clock));
        events
    }

    /// The container's view of `path`: its own files over its image's.
    fn lookup_file(&self, container: &FakeContainer, path: &str) -> Option<FakeFile> {
        let path = clean_path(path);
        let image = self.images.iter().find(|i| i.id == container.image_id);
        let layers = [Some(&container.files), image.map(|i| &i.files)];
        if path == "/" {
            return Some(FakeFile::Dir { mode: 0o755 });
        }
        for files in layers.into_iter().flatten() {
            if let Some(file) = files.get(&path) {
                return Some(file.clone());
            }
        }
        let prefix = format!("{path}/");
        let implicit_dir = layers.into_iter().flatten().any(|files| files.keys().any(|k| k.starts_with(&prefix)));
        implicit_dir.then_some(FakeFile::Dir { mode: 0o755 })
    }

    /// Every file at or under `path`, merged (the container's win).
    fn files_under(&self, container: &FakeContainer, path: &str) -> BTreeMap<String, FakeFile> {
        let path = clean_path(path);
        let prefix = if path == "/" { "/".to_owned() } else { format!("{path}/") };
        let mut merged = BTreeMap::new();
        let image = self.images.iter().find(|i| i.id == container.image_id);
        for files in [image.map(|i| &i.files), Some(&container.files)].into_iter().flatten() {
            for (k, v) in files {
                if *k == path || k.starts_with(&prefix) {
                    merged.insert(k.clone(), v.clone());
                }
            }
        }
        merged
    }
}

/// A network as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeNetwork {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub bridge_name: Option<String>,
    /// Addresses given out so far.
    pub assigned: u32,
}

impl FakeNetwork {
    /// The `n`th network: its own /24 in 172.30.0.0/16 unless told otherwise.
    fn new(name: &str, n: usize) -> Self {
        Self {
            id: fake_id(&format!("network-{name}"), 0),
            name: name.to_owned(),
            labels: BTreeMap::new(),
            subnet: Some(format!("172.30.{n}.0/24")),
            gateway: Some(format!("172.30.{n}.1")),
            bridge_name: None,
            assigned: 0,
        }
    }

    /// The next free address: the subnet's base plus 2, 3, …
    fn next_address(&mut self) -> String {
        self.assigned += 1;
        let base = self.subnet.as_deref().and_then(|s| s.split('/').next()).unwrap_or("0.0.0.0");
        let octets: Vec<u32> = base.split('.').filter_map(|o| o.parse().ok()).collect();
        let value = octets.iter().fold(0u32, |acc, o| (acc << 8) | o) + 1 + self.assigned;
        std::net::Ipv4Addr::from(value).to_string()
    }
}

impl State {
    fn network_index(&self, reference: &str) -> Option<usize> {
        self.networks.iter().position(|n| n.name == reference || n.id == reference)
    }

    /// Joins a container to a network by name (which exists), with a new address.
    fn attach(&mut self, container_id: &str, network: &str) {
        let Some(index) = self.network_index(network) else {
            return;
        };
        let address = match network {
            "host" | "none" => String::new(),
            _ => self.networks[index].next_address(),
        };
        let name = self.networks[index].name.clone();
        if let Some(c) = self.containers.iter_mut().find(|c| c.id == container_id) {
            c.networks.insert(name, address);
        }
    }

    fn network_info(&self, index: usize, with_containers: bool) -> NetworkInfo {
        let n = &self.networks[index];
        let containers = if with_containers {
            self.containers.iter().filter(|c| c.networks.contains_key(&n.name)).map(|c| c.id.clone()).collect()
        } else {
            Vec::new()
        };
        NetworkInfo {
            id: n.id.clone(),
            name: n.name.clone(),
            driver: if matches!(n.name.as_str(), "host" | "none") { n.name.clone() } else { "bridge".to_owned() },
            labels: n.labels.clone(),
            subnets: n.subnet.iter().cloned().collect(),
            gateways: n.gateway.iter().cloned().collect(),
            bridge_name: n.bridge_name.clone(),
            containers,
        }
    }
}

fn build_refused(tag: &str, message: &str) -> EngineError {
    EngineError::Rejected { status: 400, message: format!("the build of {tag} failed: {message}") }
}

/// The `Dockerfile` at the root of a build context.
fn dockerfile_of(context: &[u8]) -> Result<String, EngineError> {
    let entries = untar(context).map_err(|e| EngineError::Rejected { status: 400, message: e.to_string() })?;
    entries
        .into_iter()
        .find_map(|(path, file)| match file {
            FakeFile::File { contents, .. } if path == "Dockerfile" => {
                Some(String::from_utf8_lossy(&contents).into_owned())
            }
            _ => None,
        })
        .ok_or_else(|| EngineError::Rejected {
            status: 400,
            message: "Cannot locate specified Dockerfile: Dockerfile".into(),
        })
}

/// The entries of a tar archive, by relative path.
fn untar(archive: &[u8]) -> std::io::Result<Vec<(String, FakeFile)>> {
    let mut entries = Vec::new();
    for entry in tar::Archive::new(archive).entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().trim_start_matches("./").trim_end_matches('/').to_owned();
        let mode = entry.header().mode()? & 0o7777;
        let file = if entry.header().entry_type().is_dir() {
            FakeFile::Dir { mode }
        } else {
            let mut contents = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut contents)?;
            FakeFile::File { contents, mode }
        };
        if !path.is_empty() {
            entries.push((path, file));
        }
    }
    Ok(entries)
}

fn event_for(c: &FakeContainer, kind: ContainerEventKind, time: i64) -> ContainerEvent {
    ContainerEvent { container_id: c.id.clone(), labels: c.config.labels.clone(), kind, time }
}

fn fake_id(kind: &str, n: u64) -> String {
    Sha256::digest(format!("berth-fake-{kind}-{n}")).iter().map(|b| format!("{b:02x}")).collect()
}

/// `repo` → `repo:latest`; a colon before the last `/` is a registry port.
fn normalize_reference(reference: &str) -> String {
    if reference.contains('@') || reference.starts_with("sha256:") {
        return reference.to_owned();
    }
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if last.contains(':') {
        reference.to_owned()
    } else {
        format!("{reference}:latest")
    }
}

/// `/a/b/` and `a//b` → `/a/b`.
fn clean_path(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    format!("/{}", parts.join("/"))
}

/// Docker's rule for container names.
fn valid_container_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A tar of `files` (everything at or under `root`), named from `root`'s
/// base name as the archive endpoint does (`/etc/app` → `app`, `app/conf`).
fn tar_of(root: &str, root_entry: &FakeFile, files: &BTreeMap<String, FakeFile>) -> std::io::Result<Vec<u8>> {
    let root = clean_path(root);
    let base = root.rsplit('/').next().filter(|b| !b.is_empty()).unwrap_or(".");
    let mut tar = tar::Builder::new(Vec::new());
    let mut append = |name: &str, file: &FakeFile| -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(FAKE_EPOCH as u64);
        match file {
            FakeFile::File { contents, mode } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(contents.len() as u64);
                tar.append_data(&mut header, name, contents.as_slice())
            }
            FakeFile::Dir { mode } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_size(0);
                tar.append_data(&mut header, format!("{name}/"), std::io::empty())
            }
        }
    };
    append(base, root_entry)?;
    if matches!(root_entry, FakeFile::Dir { .. }) {
        // Implicit directories first, so that every entry's parent precedes it.
        let mut entries: BTreeMap<String, FakeFile> = BTreeMap::new();
        for (path, file) in files {
            let Some(rest) = path.strip_prefix(&root).map(|r| r.trim_start_matches('/')) else {
                continue;
            };
            if rest.is_empty() {
                continue;
            }
            let mut parent = String::new();
            let parts: Vec<&str> = rest.split('/').collect();
            for part in &parts[..parts.len() - 1] {
                parent = if parent.is_empty() { (*part).to_owned() } else { format!("{parent}/{part}") };
                entries.entry(parent.clone()).or_insert(FakeFile::Dir { mode: 0o755 });
            }
            entries.insert(rest.to_owned(), file.clone());
        }
        for (rest, file) in &entries {
            append(&format!("{base}/{rest}"), file)?;
        }
    }
    tar.into_inner()
}

/// Keeps the last `limit` bytes, as the real adapter does.
fn keep_tail(mut bytes: Vec<u8>, limit: usize) -> Vec<u8> {
    if bytes.len() > limit {
        bytes.drain(..bytes.len() - limit);
    }
    bytes
}

#[async_trait]
impl Engine for FakeEngine {
    fn endpoint(&self) -> String {
        ENDPOINT.into()
    }

    async fn info(&self) -> Result<EngineInfo, EngineError> {
        self.enter(Method::Info, "").await?;
        Ok(self.with(|s| s.info.clone()))
    }

    async fn load_image(&self, mut archive: ByteStream, progress: ProgressSink) -> Result<Vec<String>, EngineError> {
        self.enter(Method::LoadImage, "").await?;
        let mut read = 0u64;
        while let Some(chunk) = archive.next().await {
            let chunk = chunk.map_err(|e| EngineError::Load { reason: e.to_string() })?;
            read += chunk.len() as u64;
        }
        progress(Progress { phase: "loading image".into(), current: read, total: Some(read) });
        let images = self
            .with(|s| s.loads.pop_front())
            .ok_or_else(|| EngineError::Load { reason: "unexpected EOF (no image scripted for this load)".into() })?;
        let mut loaded = Vec::new();
        for image in &images {
            if image.tags.is_empty() {
                loaded.push(image.id.clone());
            }
            loaded.extend(image.tags.iter().cloned());
        }
        self.with(|s| images.into_iter().for_each(|i| s.insert_image(i)));
        Ok(loaded)
    }

    async fn pull_image(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
        progress: ProgressSink,
    ) -> Result<(), EngineError> {
        self.enter(Method::PullImage, reference).await?;
        let wanted = normalize_reference(reference);
        let (image, login) = self.with(|s| s.pullable.get(&wanted).cloned()).ok_or_else(|| EngineError::Pull {
            reference: reference.to_owned(),
            reason: format!("manifest for {wanted} not found: manifest unknown"),
        })?;
        if login.is_some() && login.as_ref() != credentials {
            return Err(EngineError::Pull {
                reference: reference.to_owned(),
                reason: "unauthorized: authentication required".into(),
            });
        }
        progress(Progress { phase: format!("pulling {reference}"), current: image.size, total: Some(image.size) });
        let mut image = image;
        if !image.tags.contains(&wanted) {
            image.tags.push(wanted);
        }
        self.with(|s| s.insert_image(image));
        Ok(())
    }

    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        self.enter(Method::InspectImage, reference).await?;
        Ok(self.with(|s| s.find_image(reference).map(|i| s.images[i].info())))
    }

    async fn list_images(&self, filter: &Filter) -> Result<Vec<ImageInfo>, EngineError> {
        self.enter(Method::ListImages, "").await?;
        Ok(self.with(|s| s.images.iter().filter(|i| filter.matches(&i.labels)).map(FakeImage::info).collect()))
    }

    async fn remove_image(&self, reference: &str) -> Result<(), EngineError> {
        self.enter(Method::RemoveImage, reference).await?;
        self.with(|s| {
            let Some(index) = s.find_image(reference) else {
                return Ok(());
            };
            let tag = normalize_reference(reference);
            let image = &s.images[index];
            let by_tag = image.tags.contains(&tag) && image.id != reference;
            if by_tag && image.tags.len() > 1 {
                s.images[index].tags.retain(|t| *t != tag);
                return Ok(());
            }
            if !by_tag && image.tags.len() > 1 {
                return Err(EngineError::Conflict {
                    what: format!("image {reference} (it is referenced in multiple repositories)"),
                });
            }
            if let Some(user) = s.containers.iter().find(|c| c.image_id == image.id) {
                return Err(EngineError::Conflict {
                    what: format!("image {reference} (container {} is using it)", user.id),
                });
            }
            s.images.remove(index);
            Ok(())
        })
    }

    async fn commit_container(&self, container: &str, reference: &str) -> Result<String, EngineError> {
        self.enter(Method::CommitContainer, &format!("{container} {reference}")).await?;
        self.with(|s| {
            let c = s.find(container).ok_or_else(|| container_not_found(container))?;
            let files = s.files_under(c, "/");
            let labels = c.config.labels.clone();
            let n = s.tick();
            let id = format!("sha256:{}", fake_id("image", n));
            let mut image = FakeImage::new(&id).tag(reference);
            image.labels = labels;
            image.files = files;
            s.insert_image(image);
            Ok(id)
        })
    }

    fn save_image(&self, image: &str) -> BoxStream<'static, Result<Bytes, EngineError>> {
        let (hold, verdict) = self.enter_stream(Method::SaveImage, image);
        if let Err(e) = verdict {
            return gated(hold, error_stream(e));
        }
        let found = self.with(|s| s.find_image(image).map(|i| s.images[i].id.clone()));
        let stream = match found {
            Some(id) => futures::stream::iter([Ok(Bytes::from(format!("fake docker save of {id}\n")))]).boxed(),
            None => error_stream(EngineError::NotFound { what: format!("image {image}") }),
        };
        gated(hold, stream)
    }

    async fn create(&self, config: &ContainerConfig) -> Result<String, EngineError> {
        self.enter(Method::Create, config.name.as_deref().unwrap_or("")).await?;
        self.with(|s| {
            if let Some(name) = &config.name {
                if !valid_container_name(name) {
                    return Err(EngineError::Rejected {
                        status: 400,
                        message: format!("Invalid container name ({name})"),
                    });
                }
                if s.containers.iter().any(|c| c.name == *name) {
                    return Err(EngineError::Conflict { what: format!("container {name}") });
                }
            }
            let image = s.find_image(&config.image).map(|i| s.images[i].id.clone());
            let image_id = image.ok_or_else(|| EngineError::NotFound { what: format!("image {}", config.image) })?;
            if let Some(network) = &config.options.network {
                let joins_container = network.strip_prefix("container:").is_some_and(|c| s.find(c).is_some());
                if !joins_container && s.network_index(network).is_none() {
                    return Err(EngineError::NotFound { what: format!("network {network}") });
                }
            }
            // As docker does, a named volume that is missing is made, unlabelled.
            for mount in config.mounts.iter().chain(&config.options.mounts) {
                if let Some(source) = mount.source.as_deref().filter(|s| !s.starts_with('/')) {
                    s.volumes.entry(source.to_owned()).or_default();
                }
            }
            let n = s.tick();
            let id = fake_id("container", n);
            let name = config.name.clone().unwrap_or_else(|| format!("fake_{n}"));
            s.containers.push(FakeContainer {
                id: id.clone(),
                name,
                image_id,
                config: config.clone(),
                state: RunState::Created,
                exit_code: None,
                error: None,
                started_at: None,
                health: Health::None,
                oom_killed: false,
                starts: 0,
                files: BTreeMap::new(),
                logs: Vec::new(),
                networks: BTreeMap::new(),
                stats: ContainerStats::default(),
            });
            if let Some(network) = config.options.network.as_deref().filter(|n| !n.starts_with("container:")) {
                s.attach(&id, network);
            }
            Ok(id)
        })
    }

    async fn start(&self, container: &str) -> Result<(), EngineError> {
        self.enter(Method::Start, container).await?;
        let events = self.with(|s| {
            let clock = s.clock;
            let index = s.find_index(container).ok_or_else(|| container_not_found(container))?;
            if s.containers[index].running() {
                return Ok(Vec::new());
            }
            let (id, name) = (s.containers[index].id.clone(), s.containers[index].name.clone());
            let behaviour = [name, id]
                .iter()
                .find_map(|key| s.on_start.get_mut(key).and_then(VecDeque::pop_front))
                .unwrap_or(OnStart::Run);
            let c = &mut s.containers[index];
            if let OnStart::Fail(message) = behaviour {
                c.exit_code = Some(127);
                c.error = Some(message.clone());
                return Err(EngineError::Rejected { status: 400, message });
            }
            c.starts += 1;
            c.started_at = Some(clock);
            c.error = None;
            c.oom_killed = false;
            c.health = Health::None;
            let mut events = vec![event_for(c, ContainerEventKind::Start, clock)];
            match behaviour {
                OnStart::Exit(code) => {
                    c.state = RunState::Exited;
                    c.exit_code = Some(code);
                    events.push(event_for(c, ContainerEventKind::Die { exit_code: Some(code) }, clock));
                }
                _ => {
                    c.state = RunState::Running;
                    c.exit_code = None;
                }
            }
            Ok(events)
        })?;
        self.emit(events.into_iter());
        Ok(())
    }

    async fn stop(&self, container: &str, grace_secs: i64) -> Result<(), EngineError> {
        self.enter(Method::Stop, &format!("{container} {grace_secs}")).await?;
        let event = self.with(|s| {
            let clock = s.clock;
            let c = s.find_mut(container).filter(|c| c.running())?;
            c.state = RunState::Exited;
            c.exit_code = Some(0);
            c.health = Health::None;
            Some(event_for(c, ContainerEventKind::Die { exit_code: Some(0) }, clock))
        });
        self.emit(event.into_iter());
        Ok(())
    }

    async fn remove(&self, container: &str) -> Result<(), EngineError> {
        self.enter(Method::Remove, container).await?;
        let events = self.with(|s| s.remove_container(container));
        self.emit(events.into_iter());
        Ok(())
    }

    async fn rename(&self, container: &str, new_name: &str) -> Result<(), EngineError> {
        self.enter(Method::Rename, &format!("{container} {new_name}")).await?;
        self.with(|s| {
            let index = s.find_index(container).ok_or_else(|| container_not_found(container))?;
            if !valid_container_name(new_name) {
                return Err(EngineError::Rejected {
                    status: 400,
                    message: format!("Invalid container name ({new_name})"),
                });
            }
            if s.containers.iter().enumerate().any(|(i, c)| i != index && c.name == new_name) {
                return Err(EngineError::Conflict { what: format!("container {new_name}") });
            }
            let c = &mut s.containers[index];
            c.name = new_name.to_owned();
            c.config.name = Some(new_name.to_owned());
            Ok(())
        })
    }

    async fn inspect(&self, container: &str) -> Result<Option<ContainerObservation>, EngineError> {
        self.enter(Method::Inspect, container).await?;
        Ok(self.with(|s| s.find(container).map(FakeContainer::observe)))
    }

    async fn stats(&self, container: &str) -> Result<Option<ContainerStats>, EngineError> {
        self.enter(Method::Stats, container).await?;
        Ok(self.with(|s| s.find(container).filter(|c| c.state.is_running()).map(|c| c.stats)))
    }

    async fn list(&self, filter: &Filter) -> Result<Vec<ContainerObservation>, EngineError> {
        self.enter(Method::List, "").await?;
        // Newest first, as the engine lists them.
        Ok(self.with(|s| {
            s.containers.iter().rev().filter(|c| filter.matches(&c.config.labels)).map(FakeContainer::observe).collect()
        }))
    }

    async fn exec(&self, container: &str, request: ExecRequest, stop: StopSignal) -> Result<ExecResult, EngineError> {
        self.enter(Method::Exec, &format!("{container} {}", request.argv.join(" "))).await?;
        let (id, starts, handler) = self.with(|s| {
            let c = s.find(container).ok_or_else(|| container_not_found(container))?;
            let (id, name, starts, running) = (c.id.clone(), c.name.clone(), c.starts, c.running());
            s.execs.push(RecordedExec {
                container: container.to_owned(),
                container_id: id.clone(),
                argv: request.argv.clone(),
                user: request.user.clone(),
                env: request.env.clone(),
                workdir: request.workdir.clone(),
                stdin: request.stdin.clone(),
            });
            if !running {
                return Err(EngineError::Conflict { what: format!("container {container} (it is not running)") });
            }
            if request.argv.is_empty() {
                return Err(EngineError::Rejected { status: 400, message: "No exec command specified".into() });
            }
            let handler = s.exec_handlers.get(&id).or_else(|| s.exec_handlers.get(&name)).or(s.default_exec.as_ref());
            Ok((id, starts, handler.cloned()))
        })?;
        let script = handler.map_or_else(|| ExecScript::exit(0), |h| h(&request));
        let mut result = ExecResult::default();
        for (to_stderr, bytes) in &script.output {
            result.combined.extend_from_slice(bytes);
            if *to_stderr { &mut result.stderr } else { &mut result.stdout }.extend_from_slice(bytes);
        }
        result.stdout = keep_tail(result.stdout, EXEC_OUTPUT_LIMIT);
        result.stderr = keep_tail(result.stderr, EXEC_OUTPUT_LIMIT);
        result.combined = keep_tail(result.combined, EXEC_OUTPUT_LIMIT);
        match script.end {
            ExecEnd::Exit(code) => result.exit_code = Some(code),
            ExecEnd::Hang { killable } => {
                tokio::select! {
                    () = stop => result.killed = killable,
                    () = self.run_ended(&id, starts) => result.exit_code = Some(137),
                }
            }
        }
        Ok(result)
    }

    async fn copy_from(&self, container: &str, path: &str, limit: u64) -> Result<Option<Vec<u8>>, EngineError> {
        self.enter(Method::CopyFrom, &format!("{container} {path}")).await?;
        let tar = self.with(|s| {
            let c = s.find(container).ok_or_else(|| container_not_found(container))?;
            let Some(root) = s.lookup_file(c, path) else {
                return Ok(None);
            };
            let files = s.files_under(c, path);
            tar_of(path, &root, &files)
                .map(Some)
                .map_err(|e| EngineError::Rejected { status: 500, message: e.to_string() })
        })?;
        match tar {
            Some(tar) if tar.len() as u64 > limit => Err(EngineError::Rejected {
                status: 413,
                message: format!("{path} in container {container} is larger than {limit} bytes"),
            }),
            other => Ok(other),
        }
    }

    async fn stat(&self, container: &str, path: &str) -> Result<Option<PathStat>, EngineError> {
        self.enter(Method::Stat, &format!("{container} {path}")).await?;
        self.with(|s| {
            let c = s.find(container).ok_or_else(|| container_not_found(container))?;
            Ok(s.lookup_file(c, path).map(|file| match file {
                FakeFile::File { contents, mode } => PathStat { mode, size: contents.len() as u64, is_dir: false },
                FakeFile::Dir { mode } => PathStat { mode, size: 4096, is_dir: true },
            }))
        })
    }

    async fn build_image(
        &self,
        context: Bytes,
        tag: &str,
        labels: &BTreeMap<String, String>,
        progress: ProgressSink,
    ) -> Result<String, EngineError> {
        self.enter(Method::BuildImage, tag).await?;
        let dockerfile = dockerfile_of(&context)?;
        let base = dockerfile
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix("FROM ").or_else(|| l.strip_prefix("from ")))
            .map(|b| b.split_whitespace().next().unwrap_or_default().to_owned())
            .ok_or_else(|| build_refused(tag, "no FROM line in the Dockerfile"))?;
        progress(Progress { phase: format!("building {tag}: FROM {base}"), current: 1, total: None });
        self.with(|s| {
            let tag = normalize_reference(tag);
            let scripted = s.builds.get_mut(&tag).and_then(VecDeque::pop_front);
            let base_files = match base.as_str() {
                "scratch" => BTreeMap::new(),
                reference => match s.find_image(reference) {
                    Some(i) => s.images[i].files.clone(),
                    None => return Err(build_refused(&tag, &format!("pull access denied for {reference}"))),
                },
            };
            let mut image = match scripted {
                Some(Err(message)) => return Err(build_refused(&tag, &message)),
                Some(Ok(image)) => image,
                None => {
                    let n = s.tick();
                    let mut image = FakeImage::new(&format!("sha256:{}", fake_id("build", n)));
                    image.files = base_files;
                    image
                }
            };
            image.labels.extend(labels.clone());
            image.tags = vec![tag];
            let id = image.id.clone();
            s.insert_image(image);
            Ok(id)
        })
    }

    async fn copy_to(&self, container: &str, dir: &str, archive: Bytes) -> Result<(), EngineError> {
        self.enter(Method::CopyTo, &format!("{container} {dir}")).await?;
        let entries = untar(&archive).map_err(|e| EngineError::Rejected { status: 400, message: e.to_string() })?;
        self.with(|s| {
            let c = s.find(container).ok_or_else(|| container_not_found(container))?;
            if !matches!(s.lookup_file(c, dir), Some(FakeFile::Dir { .. })) {
                return Err(EngineError::NotFound { what: format!("{dir} in container {container}") });
            }
            let c = s.find_mut(container).ok_or_else(|| container_not_found(container))?;
            for (path, file) in entries {
                c.files.insert(clean_path(&format!("{dir}/{path}")), file);
            }
            Ok(())
        })
    }

    async fn network_exists(&self, network: &str) -> Result<bool, EngineError> {
        self.enter(Method::NetworkExists, network).await?;
        Ok(self.with(|s| s.network_index(network).is_some()))
    }

    async fn inspect_network(&self, network: &str) -> Result<Option<NetworkInfo>, EngineError> {
        self.enter(Method::InspectNetwork, network).await?;
        Ok(self.with(|s| s.network_index(network).map(|i| s.network_info(i, true))))
    }

    async fn list_networks(&self, filter: &Filter) -> Result<Vec<NetworkInfo>, EngineError> {
        self.enter(Method::ListNetworks, "").await?;
        Ok(self.with(|s| {
            (0..s.networks.len())
                .filter(|&i| filter.matches(&s.networks[i].labels))
                .map(|i| s.network_info(i, false))
                .collect()
        }))
    }

    async fn create_network(&self, config: &NetworkConfig) -> Result<String, EngineError> {
        self.enter(Method::CreateNetwork, &config.name).await?;
        self.with(|s| {
            if s.network_index(&config.name).is_some() {
                return Err(EngineError::Conflict { what: format!("network {}", config.name) });
            }
            if let Some(bridge) = &config.bridge_name {
                if bridge.len() > 15 || s.networks.iter().any(|n| n.bridge_name.as_ref() == Some(bridge)) {
                    return Err(EngineError::Rejected {
                        status: 500,
                        message: format!("failed to create the bridge {bridge}"),
                    });
                }
            }
            let mut network = FakeNetwork::new(&config.name, s.networks.len());
            network.id = fake_id("network", s.tick());
            network.labels = config.labels.clone();
            network.subnet = config.subnet.clone().or(network.subnet);
            network.gateway = config.gateway.clone().or(network.gateway);
            network.bridge_name = config.bridge_name.clone();
            let id = network.id.clone();
            s.networks.push(network);
            Ok(id)
        })
    }

    async fn remove_network(&self, network: &str) -> Result<(), EngineError> {
        self.enter(Method::RemoveNetwork, network).await?;
        self.with(|s| {
            let Some(index) = s.network_index(network) else {
                return Ok(());
            };
            let name = s.networks[index].name.clone();
            if let Some(user) = s.containers.iter().find(|c| c.networks.contains_key(&name)) {
                return Err(EngineError::Conflict {
                    what: format!("network {network} (it has active endpoints: {})", user.name),
                });
            }
            s.networks.remove(index);
            Ok(())
        })
    }

    async fn connect_network(&self, container: &str, network: &str) -> Result<(), EngineError> {
        self.enter(Method::ConnectNetwork, &format!("{container} {network}")).await?;
        self.with(|s| {
            let index =
                s.network_index(network).ok_or_else(|| EngineError::NotFound { what: format!("network {network}") })?;
            let name = s.networks[index].name.clone();
            let c = s.find(container).ok_or_else(|| container_not_found(container))?;
            if c.networks.contains_key(&name) {
                return Err(EngineError::Conflict { what: format!("container {container} on network {network}") });
            }
            let id = c.id.clone();
            s.attach(&id, &name);
            Ok(())
        })
    }

    async fn disconnect_network(&self, container: &str, network: &str) -> Result<(), EngineError> {
        self.enter(Method::DisconnectNetwork, &format!("{container} {network}")).await?;
        self.with(|s| {
            let index =
                s.network_index(network).ok_or_else(|| EngineError::NotFound { what: format!("network {network}") })?;
            let name = s.networks[index].name.clone();
            let c = s.find_mut(container).ok_or_else(|| container_not_found(container))?;
            c.networks.remove(&name);
            Ok(())
        })
    }

    async fn inspect_volume(&self, name: &str) -> Result<Option<VolumeInfo>, EngineError> {
        self.enter(Method::InspectVolume, name).await?;
        Ok(self
            .with(|s| s.volumes.get(name).map(|labels| VolumeInfo { name: name.to_owned(), labels: labels.clone() })))
    }

    async fn list_volumes(&self, filter: &Filter) -> Result<Vec<VolumeInfo>, EngineError> {
        self.enter(Method::ListVolumes, "").await?;
        Ok(self.with(|s| {
            s.volumes
                .iter()
                .filter(|(_, labels)| filter.matches(labels))
                .map(|(name, labels)| VolumeInfo { name: name.clone(), labels: labels.clone() })
                .collect()
        }))
    }

    async fn create_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<(), EngineError> {
        self.enter(Method::CreateVolume, name).await?;
        self.with(|s| {
            if s.volumes.contains_key(name) {
                return Err(EngineError::Conflict { what: format!("volume {name}") });
            }
            s.volumes.insert(name.to_owned(), labels.clone());
            Ok(())
        })
    }

    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        self.enter(Method::RemoveVolume, name).await?;
        self.with(|s| {
            let mounted = |c: &FakeContainer| {
                c.config.mounts.iter().chain(&c.config.options.mounts).any(|m| m.source.as_deref() == Some(name))
            };
            if let Some(user) = s.containers.iter().find(|c| mounted(c)) {
                return Err(EngineError::Conflict { what: format!("volume {name} (in use by container {})", user.id) });
            }
            s.volumes.remove(name);
            Ok(())
        })
    }

    fn events(&self, filter: &Filter) -> BoxStream<'static, Result<ContainerEvent, EngineError>> {
        let (hold, verdict) = self.enter_stream(Method::Events, "");
        if let Err(e) = verdict {
            return gated(hold, error_stream(e));
        }
        // Subscribed now: the stream holds what happens from the call on.
        let receiver = self.inner.events.subscribe();
        let filter = filter.clone();
        let stream = futures::stream::unfold(Some(receiver), move |receiver| {
            let filter = filter.clone();
            async move {
                let mut receiver = receiver?;
                loop {
                    match receiver.recv().await {
                        Ok(Broadcast::Event(event)) if filter.matches(&event.labels) => {
                            return Some((Ok(event), Some(receiver)))
                        }
                        Ok(Broadcast::Event(_)) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Ok(Broadcast::Gone) => return Some((Err(unreachable()), None)),
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        gated(hold, stream.boxed())
    }

    fn logs(&self, container: &str, follow: bool, tail: Option<u64>) -> BoxStream<'static, Result<Bytes, EngineError>> {
        let (hold, verdict) = self.enter_stream(Method::Logs, container);
        if let Err(e) = verdict {
            return gated(hold, error_stream(e));
        }
        let Some((id, logs)) = self.with(|s| s.find(container).map(|c| (c.id.clone(), c.logs.clone()))) else {
            return gated(hold, error_stream(container_not_found(container)));
        };
        let mut first: Vec<u8> = logs.iter().flat_map(|b| b.iter().copied()).collect();
        if let Some(n) = tail {
            // The last n lines (a trailing newline ends the last line, it does not start one).
            let body = first.strip_suffix(b"\n").unwrap_or(&first);
            let starts: Vec<usize> =
                body.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1).collect();
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            let cut = if n == 0 {
                first.len()
            } else if starts.len() >= n {
                starts[starts.len() - n]
            } else {
                0
            };
            first.drain(..cut);
        }
        let already = logs.len();
        let head = futures::stream::iter((!first.is_empty()).then(|| Ok(Bytes::from(first))));
        if !follow {
            return gated(hold, head.boxed());
        }
        let engine = self.clone();
        let more = futures::stream::unfold(Some(already), move |seen| {
            let (engine, id) = (engine.clone(), id.clone());
            async move {
                let seen = seen?;
                let mut changes = engine.inner.changes.subscribe();
                loop {
                    let (unreachable_now, fresh, running) = engine.with(|s| match s.find(&id) {
                        Some(c) => (s.unreachable, c.logs.get(seen..).unwrap_or_default().to_vec(), c.running()),
                        None => (s.unreachable, Vec::new(), false),
                    });
                    if unreachable_now {
                        return Some((Err(unreachable()), None));
                    }
                    if !fresh.is_empty() {
                        let bytes: Vec<u8> = fresh.iter().flat_map(|b| b.iter().copied()).collect();
                        return Some((Ok(Bytes::from(bytes)), Some(seen + fresh.len())));
                    }
                    if !running || changes.changed().await.is_err() {
                        return None;
                    }
                }
            }
        });
        gated(hold, head.chain(more).boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::spec::LABEL_INSTANCE;
    use futures::FutureExt;

    fn never() -> StopSignal {
        futures::future::pending().boxed()
    }

    fn no_progress() -> ProgressSink {
        Arc::new(|_| {})
    }

    fn config(name: Option<&str>, image: &str) -> ContainerConfig {
        ContainerConfig {
            name: name.map(str::to_owned),
            image: image.to_owned(),
            labels: [(LABEL_INSTANCE.to_string(), "i1".to_string()), ("berth.app".to_string(), "web".to_string())]
                .into(),
            ..Default::default()
        }
    }

    fn engine_with_image() -> FakeEngine {
        let engine = FakeEngine::new();
        engine.add_image(FakeImage::new("sha256:aaa").tag("web:1").label("kind", "app").file("/etc/app/conf", "x=1"));
        engine
    }

    #[tokio::test]
    async fn containers_by_name_or_id_through_their_life() {
        let engine = engine_with_image();
        let id = engine.create(&config(Some("web"), "web:1")).await.unwrap();
        assert!(matches!(engine.create(&config(Some("web"), "web:1")).await, Err(EngineError::Conflict { .. })));
        assert!(matches!(engine.create(&config(None, "nope:1")).await, Err(EngineError::NotFound { .. })));
        let unnamed = engine.create(&config(None, "sha256:aaa")).await.unwrap();
        assert_ne!(unnamed, id);

        engine.start(&id).await.unwrap();
        let seen = engine.inspect("web").await.unwrap().unwrap();
        assert_eq!(
            (seen.id.as_str(), seen.state, seen.image_id.as_str()),
            (id.as_str(), RunState::Running, "sha256:aaa")
        );
        assert_eq!(engine.inspect(&id[..12]).await.unwrap().unwrap().name, "web");

        engine.rename("web", "web-old").await.unwrap();
        assert!(engine.inspect("web").await.unwrap().is_none());
        engine.stop(&id, 3).await.unwrap();
        engine.stop("web-old", 3).await.unwrap();
        engine.stop("gone", 3).await.unwrap();
        assert_eq!(engine.inspect(&id).await.unwrap().unwrap().state, RunState::Exited);

        let owned = engine.list(&Filter::default().label(LABEL_INSTANCE, "i1")).await.unwrap();
        assert_eq!(owned.len(), 2);
        assert!(engine.list(&Filter::default().label(LABEL_INSTANCE, "i2")).await.unwrap().is_empty());
        engine.remove("web-old").await.unwrap();
        engine.remove("web-old").await.unwrap();
        assert_eq!(engine.containers().len(), 1);
    }

    #[tokio::test]
    async fn images_refuse_removal_like_docker() {
        let engine = engine_with_image();
        engine.add_image(FakeImage::new("sha256:bbb").tag("db:1").tag("db:latest"));
        let c = engine.create(&config(None, "web:1")).await.unwrap();
        assert!(matches!(engine.remove_image("web:1").await, Err(EngineError::Conflict { .. })));
        engine.remove(&c).await.unwrap();
        engine.remove_image("web:1").await.unwrap();
        assert!(!engine.has_image("sha256:aaa"));
        engine.remove_image("web:1").await.unwrap();

        assert!(matches!(engine.remove_image("sha256:bbb").await, Err(EngineError::Conflict { .. })));
        engine.remove_image("db").await.unwrap();
        assert_eq!(engine.image("sha256:bbb").unwrap().tags, ["db:1"]);
        engine.remove_image("sha256:bbb").await.unwrap();
        assert!(engine.images().is_empty());
    }

    #[tokio::test]
    async fn loads_pulls_and_tag_moves() {
        let engine = engine_with_image();
        let archive = || futures::stream::iter([Ok(Bytes::from_static(b"tar"))]).boxed();
        assert!(matches!(engine.load_image(archive(), no_progress()).await, Err(EngineError::Load { .. })));
        engine.load_next([FakeImage::new("sha256:ccc").tag("web:1"), FakeImage::new("sha256:ddd")]);
        let loaded = engine.load_image(archive(), no_progress()).await.unwrap();
        assert_eq!(loaded, ["web:1", "sha256:ddd"]);
        assert_eq!(engine.inspect_image("web:1").await.unwrap().unwrap().id, "sha256:ccc");
        assert!(engine.image("sha256:aaa").unwrap().tags.is_empty());

        let pulled = engine.pull_image("cache", None, no_progress()).await;
        assert!(matches!(pulled, Err(EngineError::Pull { .. })));
        engine.add_pullable("cache:2", FakeImage::new("sha256:eee").label("kind", "app"));
        engine.pull_image("cache:2", None, no_progress()).await.unwrap();
        assert_eq!(engine.inspect_image("cache:2").await.unwrap().unwrap().id, "sha256:eee");
        let apps = engine.list_images(&Filter::default().label("kind", "app")).await.unwrap();
        assert_eq!(apps.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["sha256:aaa", "sha256:eee"]);
    }

    #[tokio::test]
    async fn exec_records_requests_and_honours_stop() {
        let engine = engine_with_image();
        let id = engine.create(&config(Some("web"), "web:1")).await.unwrap();
        let request =
            ExecRequest { argv: vec!["cat".into()], stdin: Some(Bytes::from_static(b"in")), ..Default::default() };
        assert!(matches!(engine.exec("web", request.clone(), never()).await, Err(EngineError::Conflict { .. })));
        engine.start("web").await.unwrap();
        engine.on_exec("web", |r| match r.argv[0].as_str() {
            "cat" => ExecScript::exit(3).out(r.stdin.clone().unwrap_or_default().to_vec()).err("e"),
            _ => ExecScript::hang().out("started"),
        });
        let done = engine.exec(&id, request, never()).await.unwrap();
        assert_eq!(
            (done.exit_code, &done.stdout[..], &done.stderr[..], &done.combined[..]),
            (Some(3), &b"in"[..], &b"e"[..], &b"ine"[..])
        );
        let execs = engine.execs();
        assert_eq!((execs[1].container.as_str(), execs[1].container_id.as_str()), (id.as_str(), id.as_str()));
        assert_eq!(execs[1].stdin.as_deref(), Some(&b"in"[..]));

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let sleep = ExecRequest { argv: vec!["sleep".into()], user: Some("0:0".into()), ..Default::default() };
        let running = tokio::spawn({
            let engine = engine.clone();
            async move { engine.exec("web", sleep, rx.map(drop).boxed()).await }
        });
        tx.send(()).unwrap();
        let stopped = running.await.unwrap().unwrap();
        assert_eq!((stopped.exit_code, stopped.killed, &stopped.stdout[..]), (None, true, &b"started"[..]));
        assert_eq!(engine.execs()[2].user.as_deref(), Some("0:0"));

        // A hanging command ends with its container.
        let hanging = tokio::spawn({
            let engine = engine.clone();
            let request = ExecRequest { argv: vec!["x".into()], ..Default::default() };
            async move { engine.exec("web", request, never()).await }
        });
        while engine.execs().len() < 4 {
            tokio::task::yield_now().await;
        }
        engine.stop("web", 1).await.unwrap();
        assert_eq!(hanging.await.unwrap().unwrap().exit_code, Some(137));
    }

    #[tokio::test]
    async fn files_come_from_the_image_and_the_container() {
        let engine = engine_with_image();
        let id = engine.create(&config(None, "web:1")).await.unwrap();
        engine.put_file(&id, "/etc/app/extra", "y");
        assert!(engine.stat(&id, "/etc/app").await.unwrap().unwrap().is_dir);
        assert_eq!(engine.stat(&id, "/etc/app/conf").await.unwrap().unwrap().size, 3);
        assert_eq!(engine.stat(&id, "/nope").await.unwrap(), None);
        assert_eq!(engine.copy_from(&id, "/nope", 1 << 20).await.unwrap(), None);
        let tar = engine.copy_from(&id, "/etc/app", 1 << 20).await.unwrap().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<String> =
            archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        assert_eq!(names, ["app/", "app/conf", "app/extra"]);
        assert!(matches!(engine.copy_from(&id, "/etc/app", 100).await, Err(EngineError::Rejected { status: 413, .. })));
        assert!(matches!(engine.stat("nope", "/").await, Err(EngineError::NotFound { .. })));
    }

    #[tokio::test]
    async fn events_carry_labels_and_follow_the_filter() {
        let engine = engine_with_image();
        let mut mine = engine.events(&Filter::default().label(LABEL_INSTANCE, "i1"));
        let mut others = engine.events(&Filter::default().label(LABEL_INSTANCE, "i2"));
        let id = engine.create(&config(Some("web"), "web:1")).await.unwrap();
        engine.start("web").await.unwrap();
        engine.set_health("web", Health::Healthy);
        engine.exit("web", 2);
        engine.remove("web").await.unwrap();
        let mut kinds = Vec::new();
        for _ in 0..4 {
            let event = mine.next().await.unwrap().unwrap();
            assert_eq!((event.container_id.as_str(), event.labels["berth.app"].as_str()), (id.as_str(), "web"));
            kinds.push(event.kind);
        }
        assert_eq!(
            kinds,
            [
                ContainerEventKind::Start,
                ContainerEventKind::Health(Health::Healthy),
                ContainerEventKind::Die { exit_code: Some(2) },
                ContainerEventKind::Destroy
            ]
        );
        engine.set_unreachable(true);
        assert!(matches!(mine.next().await, Some(Err(EngineError::Unreachable { .. }))));
        assert!(mine.next().await.is_none());
        assert!(matches!(others.next().await, Some(Err(EngineError::Unreachable { .. }))));
        assert!(matches!(engine.info().await, Err(EngineError::Unreachable { .. })));
    }

    #[tokio::test]
    async fn scripted_failures_panics_and_holds() {
        let engine = engine_with_image();
        engine.fail_next(Method::Create, EngineError::Rejected { status: 500, message: "boom".into() });
        assert!(matches!(engine.create(&config(Some("web"), "web:1")).await, Err(EngineError::Rejected { .. })));
        assert!(engine.containers().is_empty(), "a failed call has no effect");
        engine.create(&config(Some("web"), "web:1")).await.unwrap();

        engine.on_start("web", [OnStart::Fail("exec: \"/x\": not found".into()), OnStart::Exit(1)]);
        assert!(matches!(engine.start("web").await, Err(EngineError::Rejected { status: 400, .. })));
        assert_eq!(engine.container("web").unwrap().error.as_deref(), Some("exec: \"/x\": not found"));
        engine.start("web").await.unwrap();
        assert_eq!(engine.container("web").unwrap().exit_code, Some(1));

        engine.panic_next(Method::Inspect);
        let panicked = tokio::spawn({
            let engine = engine.clone();
            async move { engine.inspect("web").await }
        });
        assert!(panicked.await.unwrap_err().is_panic());
        assert!(engine.inspect("web").await.unwrap().is_some());

        let hold = engine.hold_next(Method::Start);
        let starting = tokio::spawn({
            let engine = engine.clone();
            async move { engine.start("web").await }
        });
        hold.entered().await;
        assert_eq!(engine.container("web").unwrap().state, RunState::Exited);
        hold.release();
        starting.await.unwrap().unwrap();
        assert_eq!(engine.container("web").unwrap().state, RunState::Running);
        assert_eq!(engine.calls().iter().filter(|c| *c == "start web").count(), 3);
    }

    #[tokio::test]
    async fn logs_tail_and_follow() {
        let engine = engine_with_image();
        engine.create(&config(Some("web"), "web:1")).await.unwrap();
        engine.start("web").await.unwrap();
        engine.push_log("web", "a\nb\nc\n");
        let tail: Vec<Bytes> = engine.logs("web", false, Some(2)).map(Result::unwrap).collect().await;
        assert_eq!(tail, [Bytes::from_static(b"b\nc\n")]);
        let mut followed = engine.logs("web", true, Some(0));
        engine.push_log("web", "d\n");
        assert_eq!(followed.next().await.unwrap().unwrap(), Bytes::from_static(b"d\n"));
        engine.exit("web", 0);
        assert!(followed.next().await.is_none());
    }
}
