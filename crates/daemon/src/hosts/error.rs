//! What `/v1/hosts` can refuse or fail with, each mapped to one `ErrorKind`.

use crate::journal::JournalError;
use berth_api::{ApiError, ErrorKind};
use berth_core::engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{what} {value:?} is not valid: {reason}")]
    Invalid { what: &'static str, value: String, reason: String },
    #[error("a host named {name:?} already exists")]
    Exists { name: String },
    #[error("no host named {name:?}")]
    NotFound { name: String },
    #[error("host {name} is busy: a {kind} of it is under way")]
    Busy { name: String, kind: String },
    #[error("host {name} has running apps ({apps}); stop them first, or delete with --force")]
    RunningApps { name: String, apps: String },
    #[error("the daemon of host {name} did not start: {reason}")]
    DidNotStart { name: String, reason: String },
    #[error("{what}: {reason}")]
    Fs { what: String, reason: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl HostError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            HostError::Invalid { .. } => ErrorKind::InvalidInput,
            HostError::Exists { .. } | HostError::RunningApps { .. } => ErrorKind::Conflict,
            HostError::NotFound { .. } => ErrorKind::NotFound,
            HostError::Busy { .. } => ErrorKind::Busy,
            HostError::DidNotStart { .. } => ErrorKind::OperationFailed,
            HostError::Fs { .. } => ErrorKind::Internal,
            HostError::Engine(e) => crate::intake::engine_kind(e),
            HostError::Journal(e) => e.kind(),
        }
    }

    pub fn fs(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HostError {
        let what = what.into();
        move |e| HostError::Fs { what, reason: e.to_string() }
    }
}

impl From<crate::fs::TaskFailed> for HostError {
    fn from(e: crate::fs::TaskFailed) -> Self {
        HostError::Fs { what: e.what.to_owned(), reason: e.reason }
    }
}

impl From<berth_store::StoreError> for HostError {
    fn from(e: berth_store::StoreError) -> Self {
        HostError::Fs { what: "the store".into(), reason: e.to_string() }
    }
}

impl From<HostError> for ApiError {
    fn from(error: HostError) -> Self {
        ApiError::new(error.kind(), error.to_string())
    }
}
