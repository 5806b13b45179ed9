//! The SRA configuration directory of a containerized SRA.
//!
//! VMware's containerized-SRA contract keeps an adapter's configuration in the
//! image's `/srm/sra/conf/`. berth keeps that directory on the host; a user
//! downloads it as a `.tar.gz` whose [`VERSION_FILE`] holds the directory's
//! [`digest`] at download time, edits it, and uploads it again. The upload is
//! accepted only when that digest still equals the current one, so two people
//! editing at once cannot silently overwrite each other.
//!
//! This crate does the file work and nothing else (no engine, no async):
//! - [`digest`]: the configuration's version, defined byte for byte in
//!   `docs/SRA-CONFIGURATION.md`;
//! - [`pack`]: the download archive;
//! - [`read_upload`] and [`read_image_tree`]: untrusted archives read fully
//!   into memory and validated member by member, so that nothing is written
//!   unless all of it is safe;
//! - [`Tree::write_to`] and [`copy_tree`]: durable writes of a new directory
//!   that the caller then renames into place or points to.

mod digest;
mod pack;
mod read;
mod scan;
mod tree;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

pub use digest::{digest, summarize, Summary};
pub use pack::pack;
pub use read::{read_image_tree, read_upload, Upload};
pub use tree::{copy_tree, Tree};

/// The file at the top of a download archive that records the digest the
/// configuration had when it was downloaded. At the top of a configuration
/// directory the name is reserved: the digest and the download archive leave
/// it out (and all below it, should it be a directory).
pub const VERSION_FILE: &str = "sra-configuration-version.txt";

/// The SRM appliance's `srm` user and group, which own the configuration
/// inside the SRA container.
pub const SRM_OWNER: (u32, u32) = (660, 660);

/// How much an archive may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sum of the sizes of all regular files, hard-linked copies included.
    pub max_bytes: u64,
    /// Members of the archive, and entries of the resulting tree (directories
    /// implied by a member's path included).
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: 64 << 20, max_entries: 10_000 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    /// A member that must never be written: absolute path, `..`, a link
    /// pointing outside, a device/fifo/other special file, a path that goes
    /// through a symlink of the archive, a member that appears twice, a hard
    /// link to something not earlier in the archive.
    #[error("unsafe member {member:?} in the configuration archive: {reason}; nothing was written")]
    Unsafe { member: String, reason: String },
    /// More content bytes, entries or path length than the limits allow.
    #[error("the configuration archive is over a limit at member {member:?}: {reason}; nothing was written")]
    TooLarge { member: String, reason: String },
    /// Not a gzip/tar archive, or truncated/corrupt.
    #[error("the configuration archive is corrupt or truncated: {reason}; nothing was written")]
    Corrupt { reason: String },
    /// The upload's version file is missing, not a regular file, or not a
    /// digest.
    #[error(
        "the uploaded configuration archive has no usable sra-configuration-version.txt: {reason}; nothing was written"
    )]
    VersionFile { reason: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// Writing the download archive to its destination failed.
    #[error("cannot write the configuration archive: {source}")]
    ArchiveOutput { source: io::Error },
}

impl ConfError {
    fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> ConfError {
        let path = path.into();
        move |source| ConfError::Io { path, source }
    }
}

/// A path or name from a tree, for messages (they are bytes, not always UTF-8).
fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether a relative path is the top-level version file, or below it should
/// it be a directory: the digest and the download archive leave these out, so
/// that a download never holds a second thing under the version file's name.
fn is_reserved(rel: &[u8]) -> bool {
    match rel.strip_prefix(VERSION_FILE.as_bytes()) {
        Some(rest) => rest.is_empty() || rest.starts_with(b"/"),
        None => false,
    }
}
