//! Everything an operation can fail with, and its one mapping to an API error kind.

use berth_api::{ApiError, ErrorKind};
use berth_core::engine::EngineError;
use berth_core::run_args::RunArgsError;
use berth_core::source::SourceError;
use berth_core::NameError;
use berth_store::StoreError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("--args: {0}")]
    Args(#[from] RunArgsError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{what}: {reason}")]
    InvalidValue { what: &'static str, reason: String },
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    #[error(transparent)]
    Download(#[from] crate::download::DownloadError),
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),
    #[error("{origin}: SHA-256 is {actual}, not the expected {expected}")]
    ChecksumMismatch { origin: String, expected: String, actual: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no app named {name:?} is installed")]
    NotFound { name: String },
    #[error("a container named {name:?} already exists and is not berth's; remove or rename it first")]
    ForeignContainer { name: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("app {name:?} did not stay up: {reason}")]
    DidNotStart { name: String, reason: String },
    #[error("{hook} hook of {app:?} failed{}: {output_tail}", exit_code.map(|c| format!(" with exit code {c}")).unwrap_or_default())]
    HookFailed { app: String, hook: &'static str, exit_code: Option<i64>, output_tail: String },
    #[error("upgrade of {app:?} failed at {step} and was rolled back: {cause}")]
    UpgradeFailed { app: String, step: String, cause: Box<OpError> },
    #[error("not enough disk space on {path}: {needed} bytes needed, {available} available")]
    InsufficientSpace { path: String, needed: u64, available: u64 },
    #[error("{app:?} has no previous version to roll back to")]
    NoPreviousVersion { app: String },
    #[error("the daemon is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Sra(#[from] crate::sra::SraError),
}

impl OpError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            OpError::Name(_) | OpError::Args(_) | OpError::Source(_) | OpError::InvalidValue { .. } => {
                ErrorKind::InvalidInput
            }
            OpError::Archive(_) | OpError::ChecksumMismatch { .. } => ErrorKind::BadSource,
            OpError::Ssh(e) => match e {
                crate::ssh::SshError::Identity { .. } | crate::ssh::SshError::NoCredentials { .. } => {
                    ErrorKind::InvalidInput
                }
                crate::ssh::SshError::Unreachable { .. }
                | crate::ssh::SshError::UnknownHostKey { .. }
                | crate::ssh::SshError::HostKeyChanged { .. }
                | crate::ssh::SshError::AuthenticationFailed { .. }
                | crate::ssh::SshError::Remote { .. } => ErrorKind::BadSource,
            },
            OpError::Download(e) => match e {
                crate::download::DownloadError::Unreachable { .. } | crate::download::DownloadError::Status { .. } => {
                    ErrorKind::BadSource
                }
                crate::download::DownloadError::CaFile { .. } => ErrorKind::InvalidInput,
            },
            OpError::Engine(e) => match e {
                EngineError::Unreachable { .. } => ErrorKind::EngineUnavailable,
                EngineError::NotFound { .. } | EngineError::Pull { .. } | EngineError::Load { .. } => {
                    ErrorKind::BadSource
                }
                EngineError::Conflict { .. } => ErrorKind::Conflict,
                EngineError::Rejected { status, .. } if *status < 500 => ErrorKind::InvalidInput,
                EngineError::Rejected { .. } => ErrorKind::OperationFailed,
            },
            OpError::Store(e) => match e {
                StoreError::AppExists { .. } => ErrorKind::Conflict,
                StoreError::AppNotFound { .. } => ErrorKind::NotFound,
                StoreError::Busy { .. } => ErrorKind::Busy,
                StoreError::Open { .. } | StoreError::Sqlite { .. } | StoreError::Corrupt { .. } => ErrorKind::Internal,
            },
            OpError::NotFound { .. } => ErrorKind::NotFound,
            OpError::ForeignContainer { .. } => ErrorKind::Conflict,
            OpError::Io { .. } => ErrorKind::Internal,
            OpError::DidNotStart { .. } | OpError::HookFailed { .. } => ErrorKind::OperationFailed,
            OpError::UpgradeFailed { cause, .. } => match cause.kind() {
                // Bad input found while fetching is the user's to fix; all else failed the upgrade.
                kind @ (ErrorKind::BadSource | ErrorKind::EngineUnavailable) => kind,
                _ => ErrorKind::OperationFailed,
            },
            OpError::NoPreviousVersion { .. } => ErrorKind::Conflict,
            OpError::InsufficientSpace { .. } => ErrorKind::InsufficientSpace,
            OpError::ShuttingDown => ErrorKind::Internal,
            OpError::Sra(e) => e.kind(),
        }
    }

    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> OpError {
        let path = path.into();
        move |source| OpError::Io { path, source }
    }
}

impl From<OpError> for ApiError {
    fn from(error: OpError) -> Self {
        ApiError::new(error.kind(), error.to_string())
    }
}
