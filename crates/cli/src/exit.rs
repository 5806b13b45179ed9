//! The CLI's exit codes (README, "Exit codes"). API errors map through
//! `ErrorKind::exit_code`; these are the CLI's own.

use berth_api::client::ClientError;
use std::fmt;

pub const USAGE: u8 = 2;
pub const DAEMON_UNREACHABLE: u8 = 7;
pub const NOT_CONFIRMED: u8 = 8;
/// `run-app`: the app's container stopped while it should run (systemd's
/// `Restart=on-failure` then starts it again). Same as a failed operation.
pub const APP_STOPPED: u8 = 9;
/// The daemon's configuration is invalid (sysexits' EX_CONFIG); systemd does
/// not restart on it.
pub const CONFIG: u8 = 78;
/// `sra run`: the SRA's response holds a command-level `<Error>`.
pub const SRA_REPORTED: u8 = 12;

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
    /// A file the CLI was to read.
    Input(String),
}

impl Failure {
    pub fn output(e: std::io::Error) -> Self {
        Failure::Output(e)
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Client(e) => match (e, e.kind()) {
                (_, Some(kind)) => u8::try_from(kind.exit_code()).unwrap_or(1),
                (ClientError::Unreachable { .. }, None) => DAEMON_UNREACHABLE,
                (_, None) => 1,
            },
            Failure::NotConfirmed(_) => NOT_CONFIRMED,
            Failure::AppStopped(_) => APP_STOPPED,
            Failure::Command(code) => u8::try_from(*code).ok().filter(|c| *c != 0).unwrap_or(1),
            Failure::SraReported(_) => SRA_REPORTED,
            Failure::Input(_) => USAGE,
            // A closed pipe (`berth logs | head`) is not worth a loud failure.
            Failure::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
            Failure::Output(_) => 1,
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
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
            Failure::SraReported(message) => f.write_str(message),
            Failure::Input(message) => f.write_str(message),
        }
    }
}
