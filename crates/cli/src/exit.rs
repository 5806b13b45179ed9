//! The CLI's failures and their exit codes: `berth_core::ExitCode` is the one
//! table of every code (README, "Exit codes"); API errors map through their
//! kind, the CLI's own failures here, exhaustively.

use berth_api::client::ClientError;
use berth_core::{ErrorKind, ExitCode};
use std::fmt;

#[derive(Debug)]
pub enum Failure {
    Client(ClientError),
    NotConfirmed(String),
    Output(std::io::Error),
    /// `run-app`: the app stopped although it should run.
    AppStopped(String),
    /// `sra exec`: the SRA command's own non-zero exit code, passed on.
    Command(i64),
    /// `sra run`: the SRA answered with an `<Error>` (the readable form).
    SraReported(String),
    /// Bad usage or a file the CLI was to read.
    Input(String),
    /// Input beyond a documented limit (the command XML of `sra exec`).
    TooLarge(String),
    /// A local archive that cannot be used.
    BadSource(String),
    /// A copy the CLI made itself (through the user's ssh agent) failed.
    Fetch(ErrorKind, String),
    /// The user cancelled the operation; the daemon undid it.
    Cancelled(String),
    /// Some apps of a migration failed.
    Migration(String),
    /// `resource transition --wait`: the request ended FAILED.
    TransitionFailed(String),
    /// `doctor` found a problem, of this exit code's class.
    Doctor(ExitCode),
}

impl Failure {
    pub fn output(e: std::io::Error) -> Self {
        Failure::Output(e)
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Client(e) => match e {
                ClientError::Api(api) => api.code.exit_code(),
                ClientError::Unreachable { .. } | ClientError::Gone(_) => ExitCode::DaemonUnreachable,
                ClientError::NoPermission { .. } => ExitCode::DaemonUnreachable,
                ClientError::Protocol(_) => ExitCode::Internal,
                ClientError::Local { .. } => ExitCode::InvalidInput,
            },
            Failure::NotConfirmed(_) => ExitCode::NotConfirmed,
            Failure::AppStopped(_) | Failure::Migration(_) | Failure::TransitionFailed(_) => ExitCode::OperationFailed,
            // Passed on as is; see `code`.
            Failure::Command(_) => ExitCode::OperationFailed,
            Failure::SraReported(_) => ExitCode::SraReported,
            Failure::Input(_) => ExitCode::InvalidInput,
            Failure::Doctor(code) => *code,
            Failure::TooLarge(_) => ExitCode::TooLarge,
            Failure::BadSource(_) => ExitCode::BadSource,
            Failure::Fetch(kind, _) => kind.exit_code(),
            Failure::Cancelled(_) => ExitCode::Cancelled,
            // A closed pipe (`berth list | head`) is not worth a loud failure.
            Failure::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::Success,
            Failure::Output(_) => ExitCode::Internal,
        }
    }

    /// The process's exit status: the table's, except that `sra exec` passes
    /// the SRA command's own code on.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Command(code) => u8::try_from(*code).ok().filter(|c| *c != 0).unwrap_or(1),
            other => other.exit_code().code(),
        }
    }

    /// Nothing to say (a closed pipe).
    pub fn is_quiet(&self) -> bool {
        matches!(self, Failure::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match &e {
            ClientError::Api(api) if api.code == ErrorKind::Cancelled => Failure::Cancelled(api.message.clone()),
            _ => Failure::Client(e),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Client(e) => write!(f, "{e}"),
            Failure::NotConfirmed(why) => write!(f, "nothing done: {why}"),
            Failure::Output(e) => write!(f, "cannot write output: {e}"),
            Failure::AppStopped(why) => write!(f, "the app stopped: {why}"),
            Failure::Command(code) => write!(f, "the SRA command exited with code {code}"),
            Failure::SraReported(message)
            | Failure::Input(message)
            | Failure::TooLarge(message)
            | Failure::BadSource(message) => f.write_str(message),
            Failure::Fetch(_, message) | Failure::Migration(message) | Failure::TransitionFailed(message) => {
                f.write_str(message)
            }
            Failure::Cancelled(message) => write!(f, "cancelled: {message}"),
            Failure::Doctor(_) => f.write_str("doctor found a problem (see above)"),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The README's table is the table of `berth_core::ExitCode`: one list
    /// of what berth's exit codes mean.
    #[test]
    fn the_readme_lists_every_exit_code_as_the_code_does() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
        let table = berth_core::ExitCode::table();
        if std::env::var_os("BERTH_WRITE_README_TABLE").is_some() {
            std::fs::write(
                concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"),
                readme.replace("@@TABLE@@\n", &table),
            )
            .unwrap();
            return;
        }
        assert!(readme.contains(&table), "README's exit codes differ from ExitCode::table():\n{table}");
    }
}
