//! The container runtime as berth sees it. The Docker adapter (`berth-engine`)
//! implements this trait; unit tests use a scriptable in-memory fake
//! (`berth-testkit`). Nothing above this trait knows which one it talks to.

use crate::spec::ContainerSpec;
use crate::status::Health;
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    pub version: String,
    pub api_version: String,
    pub online_cpus: u32,
    /// Where the engine keeps images (`DockerRootDir`), when it says.
    pub root_dir: Option<String>,
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

/// A command to run in a running container, `docker exec -i -u … -e …` style.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub argv: Vec<String>,
    /// `uid:gid` or a user name; `None`: the container's user.
    pub user: Option<String>,
    /// `NAME=VALUE` each.
    pub env: Vec<String>,
    /// Written to the command's stdin, which is then closed.
    pub stdin: Option<Bytes>,
}

/// Resolves when a running command is to be given up (a deadline that the
/// caller may keep moving, a cancellation).
pub type StopSignal = futures::future::BoxFuture<'static, ()>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    /// `None` when it was stopped before it finished.
    pub exit_code: Option<i64>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A container outside berth's app model (an SRA execution container):
/// the image's own entry point, stdin kept open (`docker run -di`).
#[derive(Debug, Clone, Default)]
pub struct PlainContainer {
    pub image: String,
    /// `host:container` bind mounts.
    pub binds: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// How a command run in a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    /// `None` when it did not finish in time.
    pub exit_code: Option<i64>,
    /// stdout and stderr, interleaved as produced.
    pub output: String,
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

/// A change of one berth-owned container, from the engine's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub container_id: String,
    pub app: String,
    pub kind: ContainerEventKind,
    /// Seconds since the Unix epoch.
    pub time: i64,
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
    async fn image_ids(&self) -> Result<HashSet<String>, EngineError>;
    /// Removes an image; an image that is already gone is not an error.
    async fn remove_image(&self, id: &str) -> Result<(), EngineError>;

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, EngineError>;
    async fn start_container(&self, name: &str) -> Result<(), EngineError>;
    /// Stops a container; one that is not running is not an error.
    async fn stop_container(&self, name: &str, timeout_secs: i64) -> Result<(), EngineError>;
    /// Removes a container forcibly; one that is already gone is not an error.
    async fn remove_container(&self, name: &str) -> Result<(), EngineError>;
    async fn inspect_container(&self, name: &str) -> Result<Option<ContainerObservation>, EngineError>;
    /// Every container of this berth instance (labels `berth.app` and
    /// `berth.instance=<instance>`), running or not.
    async fn owned_containers(&self, instance: &str) -> Result<Vec<ContainerObservation>, EngineError>;

    /// Renames a container (an upgrade keeps the old one aside until commit).
    async fn rename_container(&self, name: &str, new_name: &str) -> Result<(), EngineError>;
    /// Runs `argv` in the running container, as its default user, waiting at
    /// most `timeout` (then killing it); returns the exit code (`None` on
    /// timeout) and output.
    async fn exec(
        &self,
        container: &str,
        argv: &[String],
        timeout: std::time::Duration,
    ) -> Result<ExecOutcome, EngineError>;
    /// The files under `path` inside `image` (a file or a directory), as a
    /// tar archive; `None` when the image has no such path.
    async fn image_files(&self, image: &str, path: &str) -> Result<Option<Vec<u8>>, EngineError>;

    /// Saves the container's filesystem as a new image `reference`; returns its id.
    async fn commit_container(&self, name: &str, reference: &str) -> Result<String, EngineError>;
    /// The image as a `docker save` archive (uncompressed tar).
    fn save_image(&self, image: &str) -> BoxStream<'static, Result<Bytes, EngineError>>;

    /// Runs a command with stdin, user and environment (SRA execution). When
    /// `stop` resolves first, the command and every process it started are
    /// killed and `exit_code` is `None`.
    async fn exec_with(
        &self,
        container: &str,
        request: ExecRequest,
        stop: StopSignal,
    ) -> Result<ExecResult, EngineError>;
    /// Every container (running or not) with label `key=value`, or with the
    /// label `key` at all when `value` is empty.
    async fn containers_labelled(&self, key: &str, value: &str) -> Result<Vec<ContainerObservation>, EngineError>;
    /// Every image carrying the label `key`.
    async fn images_labelled(&self, key: &str) -> Result<Vec<ImageInfo>, EngineError>;
    async fn create_plain_container(&self, spec: &PlainContainer) -> Result<String, EngineError>;

    /// Events of this instance's containers from now on. Ends when the engine goes away.
    fn events(&self, instance: &str) -> BoxStream<'static, Result<ContainerEvent, EngineError>>;
    /// The container's output (stdout and stderr, in order).
    fn logs(&self, name: &str, follow: bool, tail: Option<u64>) -> BoxStream<'static, Result<Bytes, EngineError>>;
}
