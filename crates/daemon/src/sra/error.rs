//! What can go wrong with an SRA image, command or configuration, each with
//! what it concerns.

use berth_api::ErrorKind;
use berth_core::sra_xml::XmlError;
use berth_sra_conf::ConfError;

#[derive(Debug, thiserror::Error)]
pub enum SraError {
    #[error("{image} has no {path}; an SRA image must provide its entry point there (SRA specification, \"SRA entry point requirements\")")]
    NoCommand { image: String, path: &'static str },
    #[error("{path} in {image} (mode {mode:04o}, owner {uid}:{gid}) is not executable by {user}; the SRA specification requires it to be executable by others (chmod o+x)")]
    NotExecutable { image: String, path: &'static str, mode: u32, uid: u64, gid: u64, user: String },
    #[error("{what} is not well-formed XML: {error}")]
    MalformedXml { what: String, error: XmlError },
    #[error(
        "the SRA command did not finish within {secs}s of its start or last status update and was killed (container {container})"
    )]
    TimedOut { secs: u64, container: String },
    #[error("the SRA command exited with 0 but wrote no output file ({path})")]
    NoOutput { path: String },
    #[error("the SRA's output file {path} is not well-formed XML: {error}")]
    MalformedResponse { path: String, error: XmlError },
    #[error("the configuration archive is based on digest {uploaded}, but the configuration of {image} is now {current}; download it again, reapply your changes and upload that")]
    StaleConfiguration { image: String, uploaded: String, current: String },
    #[error(transparent)]
    Configuration(#[from] ConfError),
}

impl SraError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SraError::NoCommand { .. } | SraError::NotExecutable { .. } => ErrorKind::BadSource,
            SraError::MalformedXml { .. } => ErrorKind::InvalidInput,
            SraError::TimedOut { .. } | SraError::NoOutput { .. } | SraError::MalformedResponse { .. } => {
                ErrorKind::OperationFailed
            }
            SraError::StaleConfiguration { .. } => ErrorKind::Stale,
            SraError::Configuration(e) => match e {
                ConfError::Io { .. } | ConfError::ArchiveOutput { .. } => ErrorKind::Internal,
                ConfError::Unsafe { .. }
                | ConfError::TooLarge { .. }
                | ConfError::Corrupt { .. }
                | ConfError::VersionFile { .. } => ErrorKind::InvalidInput,
            },
        }
    }
}
