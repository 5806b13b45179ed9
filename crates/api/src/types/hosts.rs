//! Wire types of `/v1/hosts`: independent berth instances this daemon
//! created on an engine (the VIC container host's "create and delete with
//! one command").

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/hosts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostCreateRequest {
    pub name: String,
    /// The host's engine: `unix:///path` or `tcp://host:port` (default: this daemon's).
    #[serde(default)]
    pub engine: Option<String>,
    /// `ADDR:PORT` (or `tcp://ADDR:PORT`) of the host's mutual-TLS listener.
    #[serde(default)]
    pub listen: Option<String>,
    /// The host's CPU quota: the sum of its apps' CPU limits may not exceed it.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// The host's memory quota, as `--memory` takes it (`2g`).
    #[serde(default)]
    pub memory: Option<String>,
}

/// A host's quota and what its apps' limits use of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostQuota {
    pub cpus: Option<f64>,
    /// Bytes.
    pub memory: Option<u64>,
    pub cpus_used: f64,
    /// Bytes.
    pub memory_used: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostView {
    pub name: String,
    /// `creating`, `running`, `starting` (its daemon does not answer yet),
    /// `failed` (its daemon keeps exiting), `deleting`.
    pub state: String,
    /// Why the host is not running, in plain words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The host's berth root.
    pub root: String,
    pub socket: String,
    /// `tcp://ADDR:PORT`, where it listens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub engine: String,
    /// `systemd` (its own unit) or `process` (supervised by this daemon).
    pub supervisor: String,
    /// The instance label its containers, networks and volumes carry.
    pub instance: String,
    pub created_at: i64,
    /// What the host's daemon answers, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apps: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apps_running: Option<usize>,
    pub quota: HostQuota,
    /// Seconds since the Unix epoch; the host's server certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_not_after: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_days_left: Option<i64>,
}

/// What `host create` answers: the host, and the client bundle of its
/// listener (the CLI writes the files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostCreated {
    pub host: HostView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<crate::ClientBundle>,
}

/// `DELETE /v1/hosts/{name}?force=true`: what was removed, and each thing
/// left because the host did not create it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HostDeleted {
    pub name: String,
    pub removed: Vec<String>,
    pub left: Vec<String>,
}

/// `DELETE /v1/hosts/{name}?force=`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HostDeleteQuery {
    /// Delete a host whose apps are running (without it, refused).
    #[serde(default)]
    pub force: bool,
}
