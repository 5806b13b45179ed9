//! The container runtime as berth sees it. The Docker adapter (`berth-engine`)
//! implements this trait; unit tests use a complete, scriptable in-memory
//! fake (`berth-testkit`). Nothing above this trait knows which one it talks
//! to. Every profile (service apps, SRA execution containers, scratch
//! containers that read files out of images, and later resource instances)
//! goes through the same `create`, `exec` and `list`.

use crate::run_args::{MountSpec, RunOptions};
use crate::spec::LABEL_INSTANCE;
use crate::status::Health;
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A stream of raw bytes going into the engine (an image archive).
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Receives progress of long steps (pulls, loads) as they happen.
pub type ProgressSink = Arc<dyn Fn(Progress) + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// What is happening, e.g. "loading image" or "pulling 3f2a…".
    pub phase: String,
    pub current: u64,
    pub total: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("the container engine at {endpoint} is unreachable: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("the container engine did not answer {what} within {secs}s")]
    Timeout { what: String, secs: u64 },
    #[error("{what} does not exist in the engine")]
    NotFound { what: String },
    #[error("{what} already exists in the engine")]
    Conflict { what: String },
    #[error("image {reference} could not be pulled: {reason}")]
    Pull { reference: String, reason: String },
    #[error("the engine refused the image archive: {reason}")]
    Load { reason: String },
    #[error("the engine refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
}

impl EngineError {
    /// The engine is away (or hung): worth trying again later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, EngineError::Unreachable { .. } | EngineError::Timeout { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    pub version: String,
    pub api_version: String,
    pub online_cpus: u32,
    /// Where the engine keeps images (`DockerRootDir`), when it says.
    pub root_dir: Option<String>,
}

/// One reading of a running container's resource use (the engine's
/// one-shot stats): rates come from two readings, not from the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContainerStats {
    /// CPU time the container has used since it started, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use, less the page cache (as `docker stats` shows it).
    pub memory_bytes: u64,
    /// The container's memory limit (the host's memory when it has none).
    pub memory_limit: Option<u64>,
}

/// CPUs in use between two readings of one container's CPU time (ns),
/// `elapsed` apart: 1.0 is one CPU busy all the time.
pub fn cpu_cores_between(earlier_ns: u64, later_ns: u64, elapsed: std::time::Duration) -> Option<f64> {
    let wall = elapsed.as_secs_f64();
    (wall > 0.0).then(|| later_ns.saturating_sub(earlier_ns) as f64 / 1e9 / wall)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub size: u64,
    pub labels: BTreeMap<String, String>,
}

/// A login for one registry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryCredentials {
    // Never print the password, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials").field("username", &self.username).finish_non_exhaustive()
    }
}

/// Everything the engine needs to create a container, whatever profile it
/// serves: an app's (from its `ContainerSpec`), an SRA execution container
/// (`docker run -di`), a scratch container that is never started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerConfig {
    /// `None`: the engine names it.
    pub name: Option<String>,
    /// Image id (or reference).
    pub image: String,
    /// docker-run options (`--args`); the mounts below come first.
    pub options: RunOptions,
    /// Bind mounts berth itself adds (the private directory, the SRA
    /// directories), before the options' own.
    pub mounts: Vec<MountSpec>,
    pub nano_cpus: Option<i64>,
    pub memory: Option<u64>,
    pub labels: BTreeMap<String, String>,
    /// `docker run -i`: stdin kept open (an SRA image's entry point waits on it).
    pub open_stdin: bool,
    /// The engine's json-file log rotation; `None`: the engine's own default.
    pub log_rotation: Option<LogRotation>,
}

/// `--log-driver json-file --log-opt max-size=… --log-opt max-file=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRotation {
    /// As docker takes it: `10m`, `1g`, …
    pub max_size: String,
    pub max_files: u32,
}

/// Selects containers (or images) by their labels: every matcher must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub labels: Vec<LabelMatch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMatch {
    pub key: String,
    /// `None`: the label is present with any value.
    pub value: Option<String>,
}

impl Filter {
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push(LabelMatch { key: key.to_owned(), value: Some(value.to_owned()) });
        self
    }

    pub fn has_label(mut self, key: &str) -> Self {
        self.labels.push(LabelMatch { key: key.to_owned(), value: None });
        self
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|m| match (&m.value, labels.get(&m.key)) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(want), Some(have)) => want == have,
        })
    }
}

/// berth's one ownership rule: it touches only containers that carry its
/// own instance label (several daemons may share one engine, and the engine
/// holds containers nobody gave berth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    instance: String,
}

impl Ownership {
    pub fn new(instance: impl Into<String>) -> Self {
        Self { instance: instance.into() }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn owns(&self, container: &ContainerObservation) -> bool {
        self.owns_labels(&container.labels)
    }

    pub fn owns_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        labels.get(LABEL_INSTANCE).map(String::as_str) == Some(self.instance.as_str())
    }

    /// Every container of this instance.
    pub fn filter(&self) -> Filter {
        Filter::default().label(LABEL_INSTANCE, &self.instance)
    }

    /// Adds the instance label to labels of a container about to be made.
    pub fn mark(&self, labels: &mut BTreeMap<String, String>) {
        labels.insert(LABEL_INSTANCE.to_owned(), self.instance.clone());
    }
}

/// A command to run in a running container, `docker exec -i -u … -e …` style.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub argv: Vec<String>,
    /// `uid:gid` or a user name; `None`: the container's user.
    pub user: Option<String>,
    /// `NAME=VALUE` each.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    /// Written to the command's stdin, which is then closed; `None`: no stdin.
    pub stdin: Option<Bytes>,
}

/// Resolves when a running command is to be given up (a deadline that the
/// caller may keep moving, a cancellation).
pub type StopSignal = futures::future::BoxFuture<'static, ()>;

/// Output kept per stream of a command; what comes beyond is dropped from the
/// front (the end of a failing command's output says the most).
pub const EXEC_OUTPUT_LIMIT: usize = 16 << 20;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecResult {
    /// `None` when it was stopped before it finished.
    pub exit_code: Option<i64>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Both, interleaved as produced.
    pub combined: Vec<u8>,
    /// Whether a stopped command was killed (with every process it started)
    /// inside the container; `false` when it could only be abandoned.
    pub killed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Dead,
    Removing,
}

impl RunState {
    pub fn parse(text: &str) -> Self {
        match text {
            "running" => RunState::Running,
            "paused" => RunState::Paused,
            "restarting" => RunState::Restarting,
            "exited" => RunState::Exited,
            "dead" => RunState::Dead,
            "removing" => RunState::Removing,
            _ => RunState::Created,
        }
    }

    pub fn is_running(self) -> bool {
        matches!(self, RunState::Running | RunState::Paused | RunState::Restarting)
    }
}

/// A container as the engine reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerObservation {
    pub id: String,
    pub name: String,
    pub image_id: String,
    pub labels: BTreeMap<String, String>,
    pub state: RunState,
    pub exit_code: Option<i64>,
    /// Engine's error text for a failed start, e.g. a missing executable.
    pub error: Option<String>,
    /// Seconds since the Unix epoch.
    pub started_at: Option<i64>,
    pub health: Health,
    pub oom_killed: bool,
    /// Network name → the container's IPv4 address on it ("" when it has none yet).
    pub networks: BTreeMap<String, String>,
}

impl ContainerObservation {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerEventKind {
    Start,
    Die { exit_code: Option<i64> },
    Health(Health),
    Destroy,
    Oom,
}

/// A change of one container, from the engine's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub container_id: String,
    pub labels: BTreeMap<String, String>,
    pub kind: ContainerEventKind,
    /// Seconds since the Unix epoch.
    pub time: i64,
}

/// A named volume as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// A network berth asks the engine to make (`docker network create`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkConfig {
    pub name: String,
    /// CIDR, e.g. `10.1.1.0/24`; `None`: the engine chooses.
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    /// The Linux bridge's name (at most 15 bytes); `None`: the engine's `br-<id>`.
    pub bridge_name: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// A network as the engine reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub subnets: Vec<String>,
    pub gateways: Vec<String>,
    /// `com.docker.network.bridge.name`, where it was given.
    pub bridge_name: Option<String>,
    /// Ids of the containers attached to it.
    pub containers: Vec<String>,
}

/// What `stat` says of a path inside a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathStat {
    pub mode: u32,
    pub size: u64,
    pub is_dir: bool,
}

#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Where the engine is, for messages ("unix:///var/run/docker.sock").
    fn endpoint(&self) -> String;
    async fn info(&self) -> Result<EngineInfo, EngineError>;

    /// Loads a `docker save` archive (uncompressed tar bytes); returns what the
    /// engine reports as loaded (references such as `repo:tag` or image ids).
    async fn load_image(&self, archive: ByteStream, progress: ProgressSink) -> Result<Vec<String>, EngineError>;
    async fn pull_image(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
        progress: ProgressSink,
    ) -> Result<(), EngineError>;
    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError>;
    /// Images (every one, intermediate ones included, with an empty filter).
    async fn list_images(&self, filter: &Filter) -> Result<Vec<ImageInfo>, EngineError>;
    /// Removes an image or one of its tags, never forcing: an image a
    /// container uses, or one with other tags when named by id, is refused
    /// (`Conflict`). An image that is already gone is not an error.
    async fn remove_image(&self, reference: &str) -> Result<(), EngineError>;
    /// Saves the container's filesystem as a new image `reference`; returns its id.
    async fn commit_container(&self, container: &str, reference: &str) -> Result<String, EngineError>;
    /// The image as a `docker save` archive (uncompressed tar).
    fn save_image(&self, image: &str) -> BoxStream<'static, Result<Bytes, EngineError>>;

    /// Creates a container; returns its id.
    async fn create(&self, config: &ContainerConfig) -> Result<String, EngineError>;
    async fn start(&self, container: &str) -> Result<(), EngineError>;
    /// Stops a container; one that is not running is not an error.
    async fn stop(&self, container: &str, grace_secs: i64) -> Result<(), EngineError>;
    /// Removes a container forcibly (with its anonymous volumes); one that is
    /// already gone is not an error.
    async fn remove(&self, container: &str) -> Result<(), EngineError>;
    async fn rename(&self, container: &str, new_name: &str) -> Result<(), EngineError>;
    /// By name or id.
    async fn inspect(&self, container: &str) -> Result<Option<ContainerObservation>, EngineError>;
    /// Containers (running or not) whose labels match.
    async fn list(&self, filter: &Filter) -> Result<Vec<ContainerObservation>, EngineError>;
    /// A running container's CPU and memory use; `None` when it does not
    /// exist or does not run.
    async fn stats(&self, container: &str) -> Result<Option<ContainerStats>, EngineError>;

    /// Runs a command in a running container. When `stop` resolves first,
    /// the command and every process it started are killed inside the
    /// container (where it has a shell to do it with), and `exit_code` is `None`.
    async fn exec(&self, container: &str, request: ExecRequest, stop: StopSignal) -> Result<ExecResult, EngineError>;
    /// The files under `path` inside a container (a file or a directory), as
    /// a tar archive of at most `limit` bytes; `None` when there is no such path.
    async fn copy_from(&self, container: &str, path: &str, limit: u64) -> Result<Option<Vec<u8>>, EngineError>;
    /// `stat` of a path inside a container; `None` when it does not exist.
    async fn stat(&self, container: &str, path: &str) -> Result<Option<PathStat>, EngineError>;

    /// Builds an image from a build context (an uncompressed tar with a
    /// `Dockerfile` at its root), offline: the base must be there already.
    /// Returns the image id; the build's output goes to `progress`.
    async fn build_image(
        &self,
        context: Bytes,
        tag: &str,
        labels: &BTreeMap<String, String>,
        progress: ProgressSink,
    ) -> Result<String, EngineError>;
    /// Unpacks a tar archive into directory `dir` of a container (the
    /// directory must exist).
    async fn copy_to(&self, container: &str, dir: &str, archive: Bytes) -> Result<(), EngineError>;

    /// Whether a network of this name (or id) exists.
    async fn network_exists(&self, network: &str) -> Result<bool, EngineError>;
    /// A network by name or id; `None` when there is none.
    async fn inspect_network(&self, network: &str) -> Result<Option<NetworkInfo>, EngineError>;
    /// Networks whose labels match.
    async fn list_networks(&self, filter: &Filter) -> Result<Vec<NetworkInfo>, EngineError>;
    /// Creates a bridge network; returns its id. A name that exists already is `Conflict`.
    async fn create_network(&self, config: &NetworkConfig) -> Result<String, EngineError>;
    /// Removes a network; one that containers use is refused (`Conflict`);
    /// one that is already gone is not an error.
    async fn remove_network(&self, network: &str) -> Result<(), EngineError>;
    /// Attaches a container to a network (before or after it starts).
    async fn connect_network(&self, container: &str, network: &str) -> Result<(), EngineError>;
    /// Detaches a container from a network; not attached is not an error.
    async fn disconnect_network(&self, container: &str, network: &str) -> Result<(), EngineError>;
    /// A named volume; `None` when there is none of that name.
    async fn inspect_volume(&self, name: &str) -> Result<Option<VolumeInfo>, EngineError>;
    /// Named volumes whose labels match.
    async fn list_volumes(&self, filter: &Filter) -> Result<Vec<VolumeInfo>, EngineError>;
    /// Creates a named volume with the local driver; one of that name that
    /// exists already is `Conflict`.
    async fn create_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<(), EngineError>;
    /// Removes a named volume, never forcing: one a container uses is refused
    /// (`Conflict`). A volume that is already gone is not an error.
    async fn remove_volume(&self, name: &str) -> Result<(), EngineError>;

    /// Events of the containers that match, from now on. Ends when the engine goes away.
    fn events(&self, filter: &Filter) -> BoxStream<'static, Result<ContainerEvent, EngineError>>;
    /// The container's output (stdout and stderr, in order).
    fn logs(&self, container: &str, follow: bool, tail: Option<u64>) -> BoxStream<'static, Result<Bytes, EngineError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_ownership() {
        let labels: BTreeMap<String, String> =
            [("berth.instance".to_string(), "i1".to_string()), ("a".to_string(), "1".to_string())].into();
        assert!(Filter::default().matches(&labels));
        assert!(Filter::default().has_label("a").label("berth.instance", "i1").matches(&labels));
        assert!(!Filter::default().label("a", "2").matches(&labels));
        assert!(!Filter::default().has_label("b").matches(&labels));
        assert!(Ownership::new("i1").owns_labels(&labels));
        assert!(!Ownership::new("i2").owns_labels(&labels));
        assert!(Ownership::new("i1").filter().matches(&labels));
    }
}
