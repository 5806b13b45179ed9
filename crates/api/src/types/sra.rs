//! Wire types of the SRA face (VMware SRM's containerized SRAs).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
    /// What the user should know beyond the output: for `sra run`, why no
    /// response could be read although the command ran (it exited non-zero
    /// without writing its output file, and where it was expected); for
    /// both, execution containers of other runners that were left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
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

/// `POST /v1/sra/images?origin=…`: the body is the image archive itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SraLoadQuery {
    /// Where the client read the archive from, for messages.
    #[serde(default)]
    pub origin: Option<String>,
}

/// `DELETE /v1/sra/images/{image}?force=`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SraRemoveQuery {
    /// Kill commands still running in the image's execution containers
    /// (without it, removal is refused while one runs).
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SraImage {
    pub id: String,
    pub repo_tags: Vec<String>,
    /// The value of the `com.vmware.srm.sra` label.
    pub label: String,
    /// Execution containers of this image that this daemon made, running or not.
    #[serde(default)]
    pub containers: usize,
    /// Execution containers of this image that another runner made (left alone).
    #[serde(default)]
    pub foreign_containers: usize,
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
    /// Whether the configuration changed (a copy between two tags of one image does not).
    #[serde(default)]
    pub changed: bool,
}

/// `POST /v1/sra/config/copy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SraConfigCopyRequest {
    pub from: String,
    pub to: String,
}
