//! What can go wrong with an SRA image, command or configuration, each with
//! what it concerns.

use crate::fs::{FsError, NoFollowError, TaskFailed};
use crate::intake::{engine_kind, IntakeError};
use crate::journal::JournalError;
use berth_api::ApiError;
use berth_core::engine::EngineError;
use berth_core::sra_xml::XmlError;
use berth_core::ErrorKind;
use berth_sra_conf::ConfError;
use berth_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SraError {
    #[error("{what}: {reason}")]
    InvalidValue { what: &'static str, reason: String },
    #[error("{reference} has no {label} label; it is not an SRA")]
    NotSra { reference: String, label: &'static str },
    #[error("{image} has no {path}; an SRA image must provide its entry point there (SRA specification, \"SRA entry point requirements\")")]
    NoCommand { image: String, path: &'static str },
    #[error("{path} in {image} (mode {mode:04o}, owner {uid}:{gid}) is not executable by {user}; the SRA specification requires it to be executable by others (chmod o+x)")]
    NotExecutable { image: String, path: &'static str, mode: u32, uid: u64, gid: u64, user: String },
    #[error("{what} is not well-formed XML: {error}")]
    MalformedXml { what: String, error: XmlError },
    #[error("the SRA command did not finish within {secs}s of its start or last status update and was {} (container {container}){}", if *killed { "killed" } else { "abandoned (the container has no /bin/sh to kill it with)" }, output_note(stdout, stderr))]
    TimedOut { secs: u64, container: String, killed: bool, stdout: String, stderr: String },
    #[error("the SRA command was cancelled (container {container}){}", output_note(stdout, stderr))]
    Cancelled { container: String, stdout: String, stderr: String },
    #[error("the SRA command exited with 0 but wrote no output file ({path})")]
    NoOutput { path: String },
    #[error("the SRA's output file {path} is not well-formed XML: {error}")]
    MalformedResponse { path: String, error: XmlError },
    #[error("the SRA's {what} cannot be read: {error}")]
    BadFile { what: &'static str, error: NoFollowError },
    #[error("the configuration archive is based on digest {uploaded}, but the configuration of {image} is now {current}; download it again, reapply your changes and upload that")]
    StaleConfiguration { image: String, uploaded: String, current: String },
    #[error(transparent)]
    Configuration(#[from] ConfError),
    #[error("the stored SRA configuration state {path} is unreadable: {reason}")]
    CorruptConfig { path: String, reason: String },
    #[error("{commands} command(s) still run in the execution containers of {image}; wait for them, or pass --force to kill them")]
    Busy { image: String, commands: usize },
    #[error("{image} is busy with another operation ({kind}); try again when it has finished")]
    Operation { image: String, kind: String },
    #[error(
        "the removal of {image} waits for the engine: {effect} ({reason}); berth finishes it when the engine answers"
    )]
    Waiting { image: String, effect: String, reason: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Intake(#[from] IntakeError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Task(#[from] TaskFailed),
}

/// Keeps what a command wrote before it was stopped: the end of it says most.
fn output_note(stdout: &str, stderr: &str) -> String {
    let tail = |text: &str| {
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    let mut note = String::new();
    if !stdout.trim().is_empty() {
        note.push_str(&format!("; its output so far:\n{}", tail(stdout)));
    }
    if !stderr.trim().is_empty() {
        note.push_str(&format!("; its error output so far:\n{}", tail(stderr)));
    }
    note
}

impl From<StoreError> for SraError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Busy { subject, kind } => SraError::Operation { image: subject, kind },
            other => SraError::Journal(JournalError::Store(other)),
        }
    }
}

impl SraError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SraError::InvalidValue { .. } | SraError::NotSra { .. } | SraError::MalformedXml { .. } => {
                ErrorKind::InvalidInput
            }
            SraError::NoCommand { .. } | SraError::NotExecutable { .. } => ErrorKind::BadSource,
            SraError::TimedOut { .. }
            | SraError::NoOutput { .. }
            | SraError::MalformedResponse { .. }
            | SraError::BadFile { .. } => ErrorKind::OperationFailed,
            SraError::Cancelled { .. } => ErrorKind::Cancelled,
            SraError::StaleConfiguration { .. } => ErrorKind::Stale,
            SraError::Configuration(e) => match e {
                ConfError::Io { .. } | ConfError::ArchiveOutput { .. } => ErrorKind::Internal,
                ConfError::Unsafe { .. } | ConfError::Corrupt { .. } | ConfError::VersionFile { .. } => {
                    ErrorKind::InvalidInput
                }
                ConfError::TooLarge { .. } => ErrorKind::TooLarge,
            },
            SraError::CorruptConfig { .. } => ErrorKind::CorruptState,
            SraError::Busy { .. } | SraError::Operation { .. } => ErrorKind::Busy,
            SraError::Waiting { .. } => ErrorKind::EngineUnavailable,
            SraError::Engine(e) => engine_kind(e),
            SraError::Intake(e) => e.kind(),
            SraError::Journal(e) => e.kind(),
            SraError::Fs(_) | SraError::Task(_) => ErrorKind::Internal,
        }
    }

    pub fn is_halted(&self) -> bool {
        match self {
            SraError::Journal(e) => e.is_halted(),
            SraError::Intake(e) => e.is_halted(),
            _ => false,
        }
    }
}

impl From<SraError> for ApiError {
    fn from(error: SraError) -> Self {
        ApiError::new(error.kind(), error.to_string())
    }
}
