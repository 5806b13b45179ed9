//! Error codes of the API. Each kind has exactly one HTTP status and one CLI
//! exit code; both mappings are exhaustive matches, so a new kind does not
//! compile until it has both.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is malformed: a bad name, option, size or reference.
    InvalidInput,
    /// No such app.
    NotFound,
    /// The app already exists, or a container of that name belongs to someone else.
    Conflict,
    /// Another operation on the app is under way.
    Busy,
    /// The source exists but is not a usable image: a missing file, a corrupt
    /// or foreign archive, an image the registry does not have.
    BadSource,
    /// The container engine does not answer.
    EngineUnavailable,
    /// The operation ran and failed, e.g. the app exited right after start.
    OperationFailed,
    /// Not enough disk space for the operation; refused before anything changed.
    InsufficientSpace,
    /// The request was based on a state that is no longer current, e.g. an
    /// SRA configuration upload whose version file names an older digest.
    Stale,
    /// A fault of berth itself (state database, file system).
    Internal,
}

impl ErrorKind {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidInput => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict | ErrorKind::Busy | ErrorKind::Stale => 409,
            ErrorKind::BadSource => 422,
            ErrorKind::EngineUnavailable => 503,
            ErrorKind::OperationFailed => 500,
            ErrorKind::InsufficientSpace => 507,
            ErrorKind::Internal => 500,
        }
    }

    /// The CLI's exit code (README, "Exit codes"). 7, 8 and 12 are the CLI's
    /// own: daemon unreachable, confirmation refused, and an SRA response
    /// holding an `<Error>`.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Internal => 1,
            ErrorKind::InvalidInput => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::Conflict | ErrorKind::Busy => 4,
            ErrorKind::BadSource => 5,
            ErrorKind::EngineUnavailable => 6,
            ErrorKind::OperationFailed => 9,
            ErrorKind::InsufficientSpace => 10,
            ErrorKind::Stale => 11,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Busy => "busy",
            ErrorKind::BadSource => "bad_source",
            ErrorKind::EngineUnavailable => "engine_unavailable",
            ErrorKind::OperationFailed => "operation_failed",
            ErrorKind::InsufficientSpace => "insufficient_space",
            ErrorKind::Stale => "stale",
            ErrorKind::Internal => "internal",
        }
    }
}

/// The body of every error response: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, thiserror::Error)]
pub struct ApiError {
    pub code: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorKind, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for kind in [
            ErrorKind::InvalidInput,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Busy,
            ErrorKind::BadSource,
            ErrorKind::EngineUnavailable,
            ErrorKind::OperationFailed,
            ErrorKind::InsufficientSpace,
            ErrorKind::Stale,
            ErrorKind::Internal,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<ErrorKind>(&json).unwrap(), kind);
            assert!(kind.exit_code() != 0 && ![7, 8, 12].contains(&kind.exit_code()));
        }
    }
}
