//! Reading a configuration directory on the host without following symlinks.

use crate::tree::Node;
use crate::ConfError;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// One entry below the directory that was walked.
pub(crate) struct Found {
    /// Relative to the walked directory, '/'-separated, as raw bytes.
    pub rel: Vec<u8>,
    pub path: PathBuf,
    /// From lstat: a symlink is described, not followed.
    pub meta: Metadata,
}

impl Found {
    pub fn permissions(&self) -> u32 {
        self.meta.mode() & 0o777
    }

    /// Seconds since the epoch; a time before it is written as the epoch.
    pub fn mtime(&self) -> u64 {
        u64::try_from(self.meta.mtime()).unwrap_or(0)
    }
}

/// Everything below `dir` (not `dir` itself), sorted byte-wise by relative
/// path. `dir` itself may be a symlink to the directory (a "current" link);
/// nothing below it is followed. A missing `dir` is an empty configuration.
pub(crate) fn walk(dir: &Path) -> Result<Vec<Found>, ConfError> {
    let mut found = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), Vec::new())];
    while let Some((path, rel)) = pending.pop() {
        let listing = match fs::read_dir(&path) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound && rel.is_empty() => return Ok(Vec::new()),
            Err(e) => return Err(ConfError::Io { path, source: e }),
        };
        for entry in listing {
            let entry = entry.map_err(ConfError::io(&path))?;
            let mut child_rel = rel.clone();
            if !child_rel.is_empty() {
                child_rel.push(b'/');
            }
            child_rel.extend_from_slice(entry.file_name().as_bytes());
            let child_path = entry.path();
            // DirEntry::metadata does not traverse symlinks.
            let meta = entry.metadata().map_err(ConfError::io(&child_path))?;
            if meta.is_dir() {
                pending.push((child_path.clone(), child_rel.clone()));
            }
            found.push(Found { rel: child_rel, path: child_path, meta });
        }
    }
    found.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    Ok(found)
}

/// The entry as a tree node, reading a file's content or a link's target;
/// `None` for a fifo, socket or device, which a configuration never holds.
pub(crate) fn load(found: &Found) -> Result<Option<Node>, ConfError> {
    let kind = found.meta.file_type();
    let node = if kind.is_dir() {
        Node::Dir { mode: found.permissions() }
    } else if kind.is_file() {
        Node::File { mode: found.permissions(), content: read_file(&found.path)? }
    } else if kind.is_symlink() {
        let target = fs::read_link(&found.path).map_err(ConfError::io(&found.path))?;
        Node::Symlink { target: target.into_os_string().into_encoded_bytes() }
    } else {
        return Ok(None);
    };
    Ok(Some(node))
}

/// Reads a file that lstat found to be regular. O_NOFOLLOW and O_NONBLOCK
/// keep a file swapped for a symlink or a fifo since then from being followed
/// or from blocking.
fn read_file(path: &Path) -> Result<Vec<u8>, ConfError> {
    let mut file: File = OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .map_err(ConfError::io(path))?;
    let mut content = Vec::new();
    file.read_to_end(&mut content).map_err(ConfError::io(path))?;
    Ok(content)
}
