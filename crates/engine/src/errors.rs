//! Docker's errors, told in berth's words.

use berth_core::engine::EngineError;
use bollard::errors::Error as DockerError;

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
        other @ (DockerError::IOError { .. }
        | DockerError::HyperResponseError { .. }
        | DockerError::HyperLegacyError { .. }
        | DockerError::HttpClientError { .. }
        | DockerError::RequestTimeoutError
        | DockerError::SocketNotFoundError(_)) => {
            EngineError::Unreachable { endpoint: endpoint.to_owned(), reason: other.to_string() }
        }
        other => EngineError::Rejected { status: 500, message: other.to_string() },
    }
}
