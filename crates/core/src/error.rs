//! What went wrong, as the API and the CLI tell it: every error of every
//! layer maps to one [`ErrorKind`], which has exactly one HTTP status and one
//! [`ExitCode`]. The CLI's own failures (daemon unreachable, not confirmed, …)
//! are exit codes of the same table, so `ExitCode` is the one list of what
//! berth's exit statuses mean (README, "Exit codes"; a test keeps the two in
//! step). All mappings are exhaustive matches: a new kind does not compile
//! until it has a status and a code.

use serde::{Deserialize, Serialize};
use strum::{EnumIter, IntoStaticStr};

/// The kind of an error, as `code` in the API's `{"code", "message"}` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr, EnumIter)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub enum ErrorKind {
    /// The request is malformed: a bad name, option, size, reference or body.
    InvalidInput,
    /// No such app, image or endpoint.
    NotFound,
    /// The app exists, or a container of that name belongs to someone else.
    Conflict,
    /// Another operation on the same thing is under way.
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
    /// The operation was cancelled (by its client, `berth cancel` or a
    /// shutdown) and undone.
    Cancelled,
    /// The request or its content is larger than berth accepts.
    TooLarge,
    /// berth's own state (database, journal, files it wrote) is damaged or
    /// from a newer berth; nothing was changed.
    CorruptState,
    /// A fault of berth itself (file system, an unexpected engine answer).
    Internal,
    /// A listener that wants proof of who is asking got none: no client
    /// certificate and no signed-in session, or a wrong user name or password.
    Unauthenticated,
    /// Too many attempts (sign-ins) in a short time; try again later.
    RateLimited,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidInput => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict | ErrorKind::Busy | ErrorKind::Stale => 409,
            ErrorKind::TooLarge => 413,
            ErrorKind::BadSource => 422,
            ErrorKind::RateLimited => 429,
            ErrorKind::Cancelled => 499,
            ErrorKind::OperationFailed | ErrorKind::Internal | ErrorKind::CorruptState => 500,
            ErrorKind::EngineUnavailable => 503,
            ErrorKind::InsufficientSpace => 507,
        }
    }

    pub fn exit_code(self) -> ExitCode {
        match self {
            ErrorKind::Internal => ExitCode::Internal,
            ErrorKind::InvalidInput => ExitCode::InvalidInput,
            ErrorKind::NotFound => ExitCode::NotFound,
            ErrorKind::Conflict | ErrorKind::Busy => ExitCode::Conflict,
            ErrorKind::BadSource => ExitCode::BadSource,
            ErrorKind::EngineUnavailable => ExitCode::EngineUnavailable,
            ErrorKind::OperationFailed => ExitCode::OperationFailed,
            ErrorKind::InsufficientSpace => ExitCode::InsufficientSpace,
            ErrorKind::Stale => ExitCode::Stale,
            ErrorKind::Cancelled => ExitCode::Cancelled,
            ErrorKind::TooLarge => ExitCode::TooLarge,
            ErrorKind::CorruptState => ExitCode::CorruptState,
            ErrorKind::Unauthenticated => ExitCode::Unauthenticated,
            ErrorKind::RateLimited => ExitCode::RateLimited,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every exit status of `berth` (and `tpcm`), the CLI's own included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter)]
#[repr(u8)]
pub enum ExitCode {
    Success = 0,
    Internal = 1,
    InvalidInput = 2,
    NotFound = 3,
    Conflict = 4,
    BadSource = 5,
    EngineUnavailable = 6,
    DaemonUnreachable = 7,
    NotConfirmed = 8,
    OperationFailed = 9,
    InsufficientSpace = 10,
    Stale = 11,
    SraReported = 12,
    Cancelled = 13,
    TooLarge = 14,
    CorruptState = 15,
    /// `berth daemon`: a directory it must write cannot be written.
    NotWritable = 16,
    /// `berth daemon`: the certificates directory cannot be made or used.
    CertificatesUnusable = 17,
    /// `berth daemon`: no container engine is installed on this machine.
    EngineMissing = 18,
    /// A remote listener refused the request: no client certificate, or not signed in.
    Unauthenticated = 19,
    /// Too many attempts in a short time.
    RateLimited = 20,
    /// `berth daemon`: bad configuration, root or socket in use (sysexits'
    /// EX_CONFIG); the packaged unit does not restart on it.
    Config = 78,
}

impl ExitCode {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// What the code means, as the README's table says it.
    pub fn meaning(self) -> &'static str {
        match self {
            ExitCode::Success => "success",
            ExitCode::Internal => "berth's own failure (file system, an unexpected answer)",
            ExitCode::InvalidInput => "invalid input or usage: bad name, option, size, reference, request body",
            ExitCode::NotFound => "no such app or image",
            ExitCode::Conflict => "conflict: the app exists, a foreign container has its name, another operation on it is running, a tag another app's image holds, no kept version or data to roll back to, an SRA image with commands running",
            ExitCode::BadSource => "bad source: missing file, corrupt gzip, not an image archive, no or several images, a member twice, data after the archive, image not in the registry, unreachable server, HTTP error, untrusted certificate, a download that keeps breaking off or stalls, SHA-256 mismatch; an SRA image without an executable `/srm/sra/command`",
            ExitCode::EngineUnavailable => "the container engine is unreachable or does not answer in time (an operation that waits for it is finished when it is back)",
            ExitCode::DaemonUnreachable => "the berth daemon is unreachable, went away during the request, or its socket is not open to this user",
            ExitCode::NotConfirmed => "not confirmed (no `-y` and no terminal, or the answer was no)",
            ExitCode::OperationFailed => "the operation ran and failed and was undone: the app did not stay up, an upgrade hook failed; `run-app`: the app stopped while it should run; an SRA command timed out or wrote no output; some apps of a migration failed; `resource transition --wait`: the request FAILED",
            ExitCode::InsufficientSpace => "not enough disk space (an upgrade checks before anything is fetched that the engine's disk can take the new archive and berth's the data snapshot)",
            ExitCode::Stale => "stale: an SRA configuration upload made from a configuration that has changed since (HTTP 409)",
            ExitCode::SraReported => "`sra run`: the SRA's response holds an `<Error>`",
            ExitCode::Cancelled => "cancelled (Ctrl-C, `berth cancel`, the daemon shutting down) and undone",
            ExitCode::TooLarge => "the input is larger than berth accepts (an archive over `[fetch] max_archive_bytes`, a configuration upload over `[sra]` limits, a command XML over 16 MiB)",
            ExitCode::CorruptState => "berth's own state is damaged or from a newer berth (`berth daemon` refuses to start; nothing is changed)",
            ExitCode::NotWritable => "`berth daemon`: a directory it must write (the root, the data, database, log or certificates directory) cannot be written: a read-only file system, permissions; nothing is changed",
            ExitCode::CertificatesUnusable => "`berth daemon`: the certificates cannot be used (a custom certificate that does not parse, has expired or does not match its key, a CA that cannot sign); nothing is changed",
            ExitCode::EngineMissing => "`berth daemon`: no container engine is installed (no engine socket and no `dockerd`); an engine that is installed but does not answer is waited for, degraded",
            ExitCode::Unauthenticated => "not authenticated: a remote listener wants a client certificate of its CA (or, for the web UI, a signed-in session); or a wrong user name or password (HTTP 401)",
            ExitCode::RateLimited => "too many attempts in a short time, e.g. failed web UI sign-ins; wait the seconds the answer names (HTTP 429)",
            ExitCode::Config => "`berth daemon`: configuration error (bad `berth.toml`, a `--config` that does not exist, root or socket already in use) — systemd does not restart on it, nor on 15 to 18",
        }
    }

    /// The README's table of exit codes, as it must read.
    pub fn table() -> String {
        use strum::IntoEnumIterator;
        let mut table = String::from("| code | meaning |\n|---|---|\n");
        for code in ExitCode::iter() {
            table.push_str(&format!("| {} | {} |\n", code.code(), code.meaning()));
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn kinds_round_trip_and_have_distinct_codes() {
        for kind in ErrorKind::iter() {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<ErrorKind>(&json).unwrap(), kind);
            assert_ne!(kind.exit_code(), ExitCode::Success);
            assert!((400..600).contains(&kind.http_status()));
        }
    }

    #[test]
    fn exit_codes_are_unique() {
        let codes: std::collections::BTreeSet<u8> = ExitCode::iter().map(ExitCode::code).collect();
        assert_eq!(codes.len(), ExitCode::iter().count());
    }
}
