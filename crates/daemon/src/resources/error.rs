//! What goes wrong in the resource manager, and how the API says it: 400 for
//! a request that cannot be taken (the reference implementation's choice, a
//! name taken included), 404 for what does not exist, 409 for a type in use.

use crate::fs::TaskFailed;
use crate::journal::JournalError;
use berth_api::RmError;
use berth_core::engine::EngineError;
use berth_core::resource::PackageError;
use berth_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Package(#[from] PackageError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Task(#[from] TaskFailed),
    #[error("{0}")]
    Internal(String),
}

impl ResourceError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ResourceError::Invalid(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ResourceError::NotFound(message.into())
    }
}

impl From<ResourceError> for RmError {
    fn from(e: ResourceError) -> Self {
        let message = e.to_string();
        match e {
            ResourceError::Invalid(_) | ResourceError::Package(_) => RmError::bad_request(message),
            ResourceError::NotFound(_) => RmError::not_found(message),
            ResourceError::Conflict(_) => RmError::conflict(message),
            ResourceError::Store(StoreError::Busy { .. }) => RmError::bad_request(message),
            ResourceError::Store(StoreError::ResourceExists { .. } | StoreError::TypeInUse { .. }) => {
                RmError::conflict(message)
            }
            ResourceError::Journal(JournalError::Store(StoreError::Busy { .. })) => RmError::bad_request(message),
            ResourceError::Journal(JournalError::Store(StoreError::ResourceExists { .. })) => {
                RmError::conflict(message)
            }
            ResourceError::Engine(ref engine) if engine.is_unavailable() => RmError::unavailable(message),
            ResourceError::Engine(EngineError::Rejected { status: 400, .. }) => RmError::bad_request(message),
            _ => RmError::internal(message),
        }
    }
}

/// The failure codes of the driver generation of the API.
pub mod failure {
    pub const RESOURCE_NOT_FOUND: &str = "RESOURCE_NOT_FOUND";
    pub const RESOURCE_ALREADY_EXISTS: &str = "RESOURCE_ALREADY_EXISTS";
    pub const INFRASTRUCTURE_ERROR: &str = "INFRASTRUCTURE_ERROR";
    pub const INSUFFICIENT_CAPACITY: &str = "INSUFFICIENT_CAPACITY";
    pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";
}

/// Why a transition failed, as its status reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub code: &'static str,
    /// A crash point stopped the run (unit tests): the "process" is gone,
    /// nothing more is done until recovery.
    pub halted: bool,
}

impl Failure {
    pub fn new(code: &'static str, reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), code, halted: false }
    }

    pub fn internal(reason: impl Into<String>) -> Self {
        Self::new(failure::INTERNAL_ERROR, reason)
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        let code = match &e {
            EngineError::Unreachable { .. } | EngineError::Timeout { .. } => failure::INFRASTRUCTURE_ERROR,
            EngineError::NotFound { .. } => failure::RESOURCE_NOT_FOUND,
            EngineError::Conflict { .. } => failure::RESOURCE_ALREADY_EXISTS,
            EngineError::Rejected { message, .. }
                if message.contains("memory") || message.contains("no space") || message.contains("Pool overlaps") =>
            {
                failure::INSUFFICIENT_CAPACITY
            }
            _ => failure::INFRASTRUCTURE_ERROR,
        };
        Failure::new(code, format!("Failure from Virtual Infrastructure: {e}"))
    }
}

impl From<JournalError> for Failure {
    fn from(e: JournalError) -> Self {
        let halted = e.is_halted();
        Failure { halted, ..Failure::internal(e.to_string()) }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::internal(e.to_string())
    }
}

impl From<TaskFailed> for Failure {
    fn from(e: TaskFailed) -> Self {
        Failure::internal(e.to_string())
    }
}
