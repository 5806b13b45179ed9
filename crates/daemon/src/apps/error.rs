//! Everything an app operation can fail with, and its one mapping to an error kind.

use crate::fs::TaskFailed;
use crate::intake::{engine_kind, IntakeError};
use crate::journal::JournalError;
use berth_api::ApiError;
use berth_core::engine::EngineError;
use berth_core::run_args::RunArgsError;
use berth_core::source::SourceError;
use berth_core::{ErrorKind, NameError};
use berth_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("--args: {0}")]
    Args(#[from] RunArgsError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{what}: {reason}")]
    InvalidValue { what: &'static str, reason: String },
    #[error(transparent)]
    Intake(#[from] IntakeError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("no app named {name:?} is installed")]
    NotFound { name: String },
    #[error("an app named {name:?} already exists")]
    Exists { name: String },
    #[error("a container named {name:?} already exists and is not berth's; remove or rename it first")]
    ForeignContainer { name: String },
    #[error("{name}: {reason}")]
    OverQuota { name: String, reason: String },
    #[error("{0}")]
    Fs(#[from] crate::fs::FsError),
    #[error(transparent)]
    Restore(#[from] crate::fs::RestoreError),
    #[error("app {name:?} did not stay up: {reason}")]
    DidNotStart { name: String, reason: String },
    #[error("{hook} hook of {app:?} failed{}: {output_tail}", exit_code.map(|c| format!(" with exit code {c}")).unwrap_or_default())]
    HookFailed { app: String, hook: &'static str, exit_code: Option<i64>, output_tail: String },
    #[error("{kind} of {app:?} failed at {step} and was rolled back: {cause}")]
    OperationFailed { app: String, kind: &'static str, step: String, cause: Box<AppError> },
    #[error("not enough disk space on {path}: {needed} bytes needed, {available} available")]
    InsufficientSpace { path: String, needed: u64, available: u64 },
    #[error("{app:?} has no previous version to roll back to")]
    NoPreviousVersion { app: String },
    #[error("the data of {app:?}'s previous version is not kept (no complete snapshot at {path}); refusing to roll back, nothing was changed")]
    NoKeptSnapshot { app: String, path: String },
    #[error("the operation on {app:?} was cancelled and undone")]
    Cancelled { app: String },
    #[error("{app:?} is busy with another operation ({kind}); try again when it has finished")]
    Busy { app: String, kind: String },
    #[error("{what} of {app:?} waits for the engine: {effect} ({reason}); berth finishes it when the engine answers")]
    Waiting { app: String, what: &'static str, effect: String, reason: String },
    #[error("berth's task for {app:?} stopped answering: {reason}")]
    TaskGone { app: String, reason: String },
    #[error("the migration store is unreadable: {path}: {reason}")]
    CorruptManifest { path: String, reason: String },
    #[error(transparent)]
    Unit(#[from] super::units::UnitError),
    #[error(transparent)]
    Task(#[from] TaskFailed),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AppExists { name } => AppError::Exists { name },
            StoreError::AppNotFound { name } => AppError::NotFound { name },
            StoreError::Busy { subject, kind } => AppError::Busy { app: subject, kind },
            other => AppError::Journal(JournalError::Store(other)),
        }
    }
}

impl AppError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            AppError::Name(_) | AppError::Args(_) | AppError::Source(_) | AppError::InvalidValue { .. } => {
                ErrorKind::InvalidInput
            }
            AppError::Intake(e) => e.kind(),
            AppError::Engine(e) => engine_kind(e),
            AppError::Journal(e) => e.kind(),
            AppError::NotFound { .. } => ErrorKind::NotFound,
            AppError::Exists { .. } | AppError::ForeignContainer { .. } | AppError::OverQuota { .. } => {
                ErrorKind::Conflict
            }
            AppError::NoPreviousVersion { .. } | AppError::NoKeptSnapshot { .. } => ErrorKind::Conflict,
            AppError::Busy { .. } => ErrorKind::Busy,
            AppError::Fs(_) | AppError::Unit(_) | AppError::Task(_) | AppError::TaskGone { .. } => ErrorKind::Internal,
            AppError::Restore(_) => ErrorKind::OperationFailed,
            AppError::DidNotStart { .. } | AppError::HookFailed { .. } => ErrorKind::OperationFailed,
            // A wrapped failure keeps its cause's kind where the cause says
            // more than "it failed": a bad source, a full disk, the engine away,
            // a cancellation.
            AppError::OperationFailed { cause, .. } => match cause.kind() {
                kind @ (ErrorKind::BadSource
                | ErrorKind::EngineUnavailable
                | ErrorKind::InsufficientSpace
                | ErrorKind::Cancelled
                | ErrorKind::TooLarge
                | ErrorKind::Conflict
                | ErrorKind::InvalidInput) => kind,
                _ => ErrorKind::OperationFailed,
            },
            AppError::InsufficientSpace { .. } => ErrorKind::InsufficientSpace,
            AppError::Cancelled { .. } => ErrorKind::Cancelled,
            AppError::Waiting { .. } => ErrorKind::EngineUnavailable,
            AppError::CorruptManifest { .. } => ErrorKind::CorruptState,
        }
    }

    /// A crash point stopped the operation (unit tests): nothing may be undone.
    pub fn is_halted(&self) -> bool {
        match self {
            AppError::Journal(e) => e.is_halted(),
            AppError::Intake(e) => e.is_halted(),
            AppError::OperationFailed { cause, .. } => cause.is_halted(),
            _ => false,
        }
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        ApiError::new(error.kind(), error.to_string())
    }
}
