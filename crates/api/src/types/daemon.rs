//! What the daemon says about itself.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
    /// Journal entries not closed yet (under way, or waiting for the engine to finish their undo).
    #[serde(default)]
    pub open_operations: usize,
    /// Set while the daemon runs degraded: what is wrong, in plain words.
    #[serde(default)]
    pub degraded: Option<String>,
    /// The daemon's process id (for `berth self-upgrade`).
    #[serde(default)]
    pub pid: u32,
}

/// One check of `berth doctor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DoctorCheck {
    /// `engine`, `database`, `disk`, `certificates`, `units`, `orphans`, `journal`.
    pub name: String,
    /// `ok`, `warning` or `problem`.
    pub status: String,
    /// In plain words: what was found, and what to do.
    pub message: String,
}

/// `GET /v1/doctor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DoctorReport {
    pub checks: Vec<DoctorCheck>,
}

/// One thing `berth doctor --rebuild` looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RebuildItem {
    /// `app`, `resource_type` or `resource_instance`.
    pub kind: String,
    pub name: String,
    /// `restored` (recorded from what the engine keeps), `recorded` (the
    /// database knew it already; left as it is) or `skipped` (its record
    /// cannot be used; the message says why and what to do).
    pub outcome: String,
    pub message: String,
}

/// `POST /v1/doctor/rebuild`: the database rebuilt from what the containers keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RebuildReport {
    pub items: Vec<RebuildItem>,
}

impl RebuildItem {
    pub fn new(kind: &str, name: impl Into<String>, outcome: &str, message: impl Into<String>) -> Self {
        Self { kind: kind.to_owned(), name: name.into(), outcome: outcome.to_owned(), message: message.into() }
    }
}
