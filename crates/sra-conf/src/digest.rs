//! The configuration's version: a SHA-1 over a canonical listing of the
//! directory. `docs/SRA-CONFIGURATION.md` defines it byte for byte; keep the
//! two in step, since a digest handed out in a download must still compare
//! equal after an upgrade of berth.

use crate::tree::Node;
use crate::{is_reserved, scan, ConfError};
use sha1::{Digest, Sha1};
use std::path::Path;

/// SHA-1 (40 lowercase hex digits) of the configuration directory `dir`.
///
/// Covers every entry below `dir` (type, permission bits, path, and a file's
/// content or a link's target), not ownership or timestamps. A missing
/// directory is the empty configuration, whose digest is SHA-1 of nothing:
/// `da39a3ee5e6b4b0d3255bfef95601890afd80709`. A top-level
/// [`VERSION_FILE`](crate::VERSION_FILE) is left out.
pub fn digest(dir: &Path) -> Result<String, ConfError> {
    summarize(dir).map(|summary| summary.digest)
}

/// The digest of a configuration directory and how many entries it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub digest: String,
    /// Files, directories, symlinks and other entries the digest covers.
    pub entries: u64,
}

/// [`digest`] and the count of what it covers, from one walk of `dir`.
pub fn summarize(dir: &Path) -> Result<Summary, ConfError> {
    let mut listing = Listing::default();
    let mut entries = 0;
    for found in scan::walk(dir)? {
        if is_reserved(&found.rel) {
            continue;
        }
        entries += 1;
        // One file's content in memory at a time.
        match scan::load(&found)? {
            Some(node) => listing.node(&found.rel, &node),
            None => listing.record(b'o', found.permissions(), &found.rel, None),
        }
    }
    Ok(Summary { digest: listing.finish(), entries })
}

/// The hashed listing; entries must be fed sorted byte-wise by path.
#[derive(Default)]
pub(crate) struct Listing {
    hasher: Sha1,
}

impl Listing {
    pub fn node(&mut self, path: &[u8], node: &Node) {
        match node {
            Node::Dir { mode } => self.record(b'd', *mode, path, None),
            Node::File { mode, content } => self.record(b'f', *mode, path, Some(content)),
            // A symlink's own mode means nothing on Linux; it is always 0777.
            Node::Symlink { target } => self.record(b'l', 0o777, path, Some(target)),
        }
    }

    /// `<type><4 octal digits><netstring path>[<netstring payload>]\n`
    pub fn record(&mut self, kind: u8, mode: u32, path: &[u8], payload: Option<&[u8]>) {
        self.hasher.update([kind]);
        self.hasher.update(format!("{:04o}", mode & 0o777));
        self.netstring(path);
        if let Some(payload) = payload {
            self.netstring(payload);
        }
        self.hasher.update(b"\n");
    }

    fn netstring(&mut self, bytes: &[u8]) {
        self.hasher.update(format!("{}:", bytes.len()));
        self.hasher.update(bytes);
        self.hasher.update(b",");
    }

    pub fn finish(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}
