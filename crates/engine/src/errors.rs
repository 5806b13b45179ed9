//! Docker's errors, told in berth's words.

use berth_core::engine::EngineError;
use bollard::errors::Error as DockerError;
use std::time::Duration;

/// Translates a bollard error about `what` (a container or image name).
pub fn translate(error: DockerError, endpoint: &str, what: &str) -> EngineError {
    match error {
        DockerError::DockerResponseServerError { status_code: 404, .. } => {
            EngineError::NotFound { what: what.to_owned() }
        }
        DockerError::DockerResponseServerError { status_code: 409, message } => {
            EngineError::Conflict { what: format!("{what} ({})", message.trim()) }
        }
        DockerError::DockerResponseServerError { status_code, message } => {
            EngineError::Rejected { status: status_code, message: message.trim().to_owned() }
        }
        DockerError::DockerStreamError { error } => {
            EngineError::Rejected { status: 500, message: error.trim().to_owned() }
        }
        DockerError::JsonDataError { message, .. } => EngineError::Rejected { status: 500, message },
        // The client's own (long) timeout; control calls have a shorter one of their own.
        DockerError::RequestTimeoutError => {
            EngineError::Timeout { what: what.to_owned(), secs: crate::docker::STREAM_TIMEOUT_SECS }
        }
        other @ (DockerError::IOError { .. }
        | DockerError::HyperResponseError { .. }
        | DockerError::HyperLegacyError { .. }
        | DockerError::HttpClientError { .. }
        | DockerError::SocketNotFoundError(_)) => {
            EngineError::Unreachable { endpoint: endpoint.to_owned(), reason: other.to_string() }
        }
        other => EngineError::Rejected { status: 500, message: other.to_string() },
    }
}

/// What a control call that ran out of time says: `what` did not answer
/// within `limit` (whole seconds, rounded up, so that a limit below one
/// second does not read "0s").
pub fn timeout(what: &str, limit: Duration) -> EngineError {
    let secs = limit.as_secs() + u64::from(limit.subsec_nanos() > 0);
    EngineError::Timeout { what: what.to_owned(), secs }
}
