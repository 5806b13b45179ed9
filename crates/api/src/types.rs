//! Wire types of `/v1`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /v1/apps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InstallRequest {
    /// `[a-z0-9][a-z0-9_.-]{0,62}`.
    pub name: String,
    /// An absolute path of a `docker save` archive (`.tar`, `.tar.gz`, `.tgz`)
    /// on the daemon's host, or a registry reference `image[:tag]`.
    pub source: String,
    /// docker-run style options, e.g. `-e A=1 -p 8080:80`.
    #[serde(default)]
    pub args: String,
    /// CPU limit in CPUs; default: the daemon's share of the host (20 %).
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Memory limit, e.g. `512m`.
    #[serde(default)]
    pub memory: Option<String>,
    /// Expected SHA-256 (hex) of the archive file or download; checked before
    /// the image is used.
    #[serde(default)]
    pub sha256: Option<String>,
    /// A PEM file of extra CA certificates for an https source.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// `USER:PASSWORD` for a registry source, for this pull only.
    #[serde(default)]
    pub registry_auth: Option<String>,
    /// The ssh source: `scp` or `sftp`; `source` is then the remote path.
    #[serde(default, flatten)]
    pub ssh: SshSource,
}

/// TPCM's `--protocol scp|sftp --server --username [--password]`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SshSource {
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub server: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// Never stored or logged.
    #[serde(default)]
    pub password: Option<String>,
    /// A private key file (absolute path).
    #[serde(default)]
    pub identity: Option<String>,
    /// `SHA256:…` fingerprint of a host key to accept although it is not in a known_hosts file.
    #[serde(default)]
    pub accept_host_key: Option<String>,
    /// The invoking user's `~/.ssh` (known_hosts, default keys).
    #[serde(default)]
    pub user_ssh_dir: Option<String>,
    /// The invoking user's ssh agent socket (`SSH_AUTH_SOCK`).
    #[serde(default)]
    pub agent_socket: Option<String>,
}

/// `POST /v1/apps/{name}/upgrade`: the same options as an install; what is
/// left out keeps its current value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpgradeRequest {
    pub source: String,
    /// New docker-run options; absent: keep the current ones.
    #[serde(default)]
    pub args: Option<String>,
    #[serde(default)]
    pub cpus: Option<f64>,
    #[serde(default)]
    pub memory: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub registry_auth: Option<String>,
    #[serde(default, flatten)]
    pub ssh: SshSource,
    /// Skip the pre and post hooks (TPCM `--skip_data`).
    #[serde(default)]
    pub skip_data: bool,
}

/// An installed app as shown by `list` and `show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AppView {
    pub name: String,
    /// `repo:tag` as installed, or the image id when untagged.
    pub image: String,
    pub image_id: String,
    pub source: String,
    /// installing, starting, running, restarting, stopped, failed, uninstalling.
    pub state: String,
    /// `none`, `starting`, `healthy`, `unhealthy`.
    pub health: String,
    /// What the user asked for: `running` or `stopped`.
    pub desired: String,
    /// Seconds since the epoch when the container last started.
    pub started_at: Option<i64>,
    pub uptime_seconds: Option<u64>,
    pub cpus: f64,
    pub memory: Option<u64>,
    pub args: String,
    /// Why the app is `failed`, or the last crash.
    pub failure: Option<String>,
    /// Restarts by the supervisor since the last stable run.
    pub restarts: u32,
    pub container_id: Option<String>,
    pub private_dir: String,
    pub created_at: i64,
    /// The version the last upgrade replaced (`repo:tag`), kept for `rollback`.
    #[serde(default)]
    pub previous_image: Option<String>,
    #[serde(default)]
    pub previous_image_id: Option<String>,
}

/// One line of the `application/x-ndjson` answer to an install.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum InstallEvent {
    Progress { phase: String, current: u64, total: Option<u64> },
    Done { app: Box<AppView> },
    Error { error: crate::ApiError },
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams)]
pub struct UninstallQuery {
    /// Keep the app's private directory.
    #[serde(default)]
    pub keep_data: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams)]
pub struct LogsQuery {
    #[serde(default)]
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DaemonInfo {
    pub version: String,
    /// False until start-up recovery has run against a reachable engine.
    pub ready: bool,
    /// The value of the `berth.instance` label on this daemon's containers.
    pub instance: String,
    pub root: String,
    pub data_root: String,
    pub engine_endpoint: String,
    pub engine_version: Option<String>,
    pub default_cpus: f64,
    pub apps: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Uninstalled {
    pub name: String,
    pub kept_data: bool,
    pub removed_image: bool,
}

/// `GET /v1/migrate`: the migration store's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MigrationStatus {
    /// `none`, `pending` (exported, not yet imported), `imported` or `partial`.
    pub state: String,
    pub exported_at: Option<i64>,
    pub directory: String,
    pub apps: Vec<MigrationResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MigrationResult {
    pub name: String,
    /// `exported`, `imported`, `already present` or `failed: <reason>`.
    pub result: String,
}

/// `POST /v1/registries`: store a login for a registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// `host[:port]`, as in image references.
    pub registry: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SshSource {
    // The password never reaches a log, not even a debug one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSource")
            .field("protocol", &self.protocol)
            .field("server", &self.server)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Where and how an SRA command runs: the image, the two host directories
/// that identify its execution container, and the command's user,
/// environment and timeout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SraTarget {
    /// Image reference or id of an SRA image.
    pub image: String,
    /// Host directory bound at /tmp.
    pub tmp_dir: String,
    /// Host directory bound at /srm/sra/log.
    pub log_dir: String,
    /// `UID:GID` the command runs as (default 660:660, the SRM appliance's srm user).
    #[serde(default)]
    pub user: Option<String>,
    /// `NAME=VALUE` each.
    #[serde(default)]
    pub env: Vec<String>,
    /// Seconds without a status update before a command is killed (default 300).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// `POST /v1/sra/exec`: run `/srm/sra/command` as the SRA specification's
/// "Detailed Running Procedure" does, with the caller's command XML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SraExecRequest {
    #[serde(flatten)]
    pub target: SraTarget,
    /// The command XML (a `<Command>` envelope), given to the command's stdin.
    pub input: String,
}

/// `POST /v1/sra/run`: berth writes the command envelope (Name, OutputFile,
/// StatusFile, LogLevel, LogDirectory and the optional fragments), runs it
/// and answers with the response the SRA wrote to the output file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SraRunRequest {
    #[serde(flatten)]
    pub target: SraTarget,
    /// The SRA command, e.g. `queryInfo` or `discoverArrays`.
    pub command: String,
    /// `<LogLevel>` (default `info`).
    #[serde(default)]
    pub log_level: Option<String>,
    /// A `<Connections>` element, inserted into the envelope.
    #[serde(default)]
    pub connections: Option<String>,
    /// A parameters element such as `<DiscoverDevicesParameters>`, inserted into the envelope.
    #[serde(default)]
    pub parameters: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SraExecResult {
    /// SHA-1 of image id + tmp dir + log dir; the container's `srm.sra.eid` label.
    pub execution_id: String,
    pub container_id: String,
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
    /// `sra run` only: the response XML the SRA wrote to its output file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// `sra run` only: the command-level `<Error>` of that response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sra_error: Option<SraResponseError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SraResponseError {
    pub code: String,
    pub description: Option<String>,
    pub fix_hint: Option<String>,
    /// One line for people: "the SRA reported error N: description (fix: hint)".
    pub message: String,
}

/// One line of the `application/x-ndjson` answer to an SRA exec or run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SraEvent {
    /// The command wrote its status file; `percent` when it held a `<ProgressUpdate>` berth could read.
    Progress {
        percent: Option<u8>,
    },
    Done {
        result: Box<SraExecResult>,
    },
    Error {
        error: crate::ApiError,
    },
}

/// `POST /v1/sra/images`: load an SRA image archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SraLoadRequest {
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SraImage {
    pub id: String,
    pub repo_tags: Vec<String>,
    /// The value of the `com.vmware.srm.sra` label.
    pub label: String,
    /// Execution containers of this image, running or not.
    #[serde(default)]
    pub containers: usize,
    /// SHA-1 digest of the image's current configuration (docs/SRA-CONFIGURATION.md).
    #[serde(default)]
    pub config_digest: Option<String>,
}

/// `PUT /v1/sra/images/{image}/config` answer, and of copy and reset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SraConfigState {
    pub image_id: String,
    /// Digest of the configuration now current.
    pub digest: String,
    /// Files and directories in it.
    pub entries: u64,
}

/// `POST /v1/sra/config/copy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SraConfigCopyRequest {
    pub from: String,
    pub to: String,
}
