//! Wire types of the apps face: install, upgrade, rollback, uninstall, the
//! lifecycle verbs, logs.

use berth_core::source::SshProtocol;
use berth_core::status::{AppState, DesiredState, Health};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Where an install's or upgrade's image comes from. The daemon never opens
/// a path, socket or key on the client's behalf: a local archive is sent
/// with the request, keys and certificates as their content.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceRequest {
    /// The archive is the `archive` part of a `multipart/form-data` body
    /// (after the `request` part): a `docker save` tar, plain or gzip.
    Upload {
        /// Where the client read it from (a path, `scp://…`), for display.
        origin: String,
        /// Its size in bytes, when known (for progress).
        #[serde(default)]
        size: Option<u64>,
    },
    /// An http(s) URL of an archive.
    Url {
        url: String,
        /// PEM content of extra CA certificates to trust for https.
        #[serde(default)]
        ca_pem: Option<String>,
        /// Follow a redirect from https to plain http (refused by default).
        #[serde(default)]
        allow_downgrade: bool,
    },
    /// An image in a registry: `[registry[:port]/]path[:tag][@digest]`.
    Registry {
        reference: String,
        /// A login for this pull only; otherwise the one stored with `berth login`.
        #[serde(default)]
        auth: Option<RegistryAuth>,
    },
    /// An archive on an ssh server (TPCM `--protocol scp|sftp`).
    Ssh(SshSource),
}

/// `--registry-auth USER:PASSWORD`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryAuth {
    pub username: String,
    /// Never stored or logged.
    pub password: String,
}

/// TPCM's `--protocol scp|sftp --server HOST[:PORT] --username USER`.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SshSource {
    pub protocol: SshProtocol,
    /// `host[:port]`, `[v6]:port`.
    pub server: String,
    pub username: String,
    /// The absolute path of the archive on the server.
    pub path: String,
    /// Never stored or logged.
    #[serde(default)]
    pub password: Option<String>,
    /// Private keys, as their PEM content (read by the client with the user's own permissions).
    #[serde(default)]
    pub private_keys: Vec<PrivateKey>,
    /// known_hosts files, as their content.
    #[serde(default)]
    pub known_hosts: Vec<KnownHosts>,
    /// `SHA256:…` of a host key to accept although no known_hosts file has it.
    #[serde(default)]
    pub accept_host_key: Option<String>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivateKey {
    /// Where the client read it (e.g. `~/.ssh/id_ed25519`), for messages.
    pub origin: String,
    pub pem: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KnownHosts {
    pub origin: String,
    pub content: String,
}

/// `POST /v1/apps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    /// `[a-z0-9][a-z0-9_.-]{1,62}`, without `..` and not ending in `.`.
    pub name: String,
    pub source: SourceRequest,
    /// docker-run style options, e.g. `-e A=1 -p 8080:80`.
    #[serde(default)]
    pub args: String,
    /// CPU limit in CPUs; default: the daemon's share of the host (20 %).
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Memory limit, e.g. `512m`.
    #[serde(default)]
    pub memory: Option<String>,
    /// Expected SHA-256 (hex) of the archive's bytes; checked before the image is used.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// `POST /v1/apps/{name}/upgrade`: the same options as an install; what is
/// left out keeps its current value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRequest {
    pub source: SourceRequest,
    /// New docker-run options; absent: keep the current ones.
    #[serde(default)]
    pub args: Option<String>,
    #[serde(default)]
    pub cpus: Option<f64>,
    #[serde(default)]
    pub memory: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
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
    /// Where it came from (credentials in URLs are not shown).
    pub source: String,
    pub state: AppState,
    pub health: Health,
    /// What the user asked for.
    pub desired: DesiredState,
    /// Seconds since the epoch when the container last started.
    pub started_at: Option<i64>,
    pub uptime_seconds: Option<u64>,
    pub cpus: f64,
    pub memory: Option<u64>,
    /// The `--args` given, with environment values hidden (`NAME=…`) unless asked for.
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

/// One line of the `application/x-ndjson` answer to an install, upgrade or rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum InstallEvent {
    Progress { phase: String, current: u64, total: Option<u64> },
    Done { app: Box<AppView> },
    Error { error: crate::ApiError },
}

/// `GET /v1/apps[/{name}]?secrets=true`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ViewQuery {
    /// Show the values of `-e NAME=VALUE` in `args` (hidden by default: they are often secrets).
    #[serde(default)]
    pub secrets: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UninstallQuery {
    /// Keep the app's private directory.
    #[serde(default)]
    pub keep_data: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    #[serde(default)]
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Uninstalled {
    pub name: String,
    pub kept_data: bool,
    pub removed_image: bool,
}

impl std::fmt::Debug for SourceRequest {
    // Passwords and keys never reach a log, not even a debug one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceRequest::Upload { origin, size } => {
                f.debug_struct("Upload").field("origin", origin).field("size", size).finish()
            }
            SourceRequest::Url { url, ca_pem, allow_downgrade } => f
                .debug_struct("Url")
                .field("url", &berth_core::source::redact_url(url))
                .field("ca_pem", &ca_pem.as_ref().map(|_| "…"))
                .field("allow_downgrade", allow_downgrade)
                .finish(),
            SourceRequest::Registry { reference, auth } => f
                .debug_struct("Registry")
                .field("reference", reference)
                .field("auth", &auth.as_ref().map(|a| &a.username))
                .finish(),
            SourceRequest::Ssh(ssh) => ssh.fmt(f),
        }
    }
}

impl std::fmt::Debug for SshSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSource")
            .field("protocol", &self.protocol)
            .field("server", &self.server)
            .field("username", &self.username)
            .field("path", &self.path)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("private_keys", &self.private_keys.iter().map(|k| &k.origin).collect::<Vec<_>>())
            .field("known_hosts", &self.known_hosts.iter().map(|k| &k.origin).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth").field("username", &self.username).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey").field("origin", &self.origin).finish_non_exhaustive()
    }
}
