//! A configuration tree in memory, and writing it out durably.

use crate::digest::Listing;
use crate::{is_reserved, scan, ConfError};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{fchown, lchown, DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of the directory that `write_to` creates: the configuration directory
/// itself has no entry in an archive to take one from.
const ROOT_MODE: u32 = 0o755;

/// What one path of a tree is. Modes are permission bits only (`& 0o777`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Dir { mode: u32 },
    File { mode: u32, content: Vec<u8> },
    Symlink { target: Vec<u8> },
}

/// A validated configuration tree held in memory; nothing is written until
/// [`Tree::write_to`].
///
/// Every path is relative, '/'-separated, free of `.` and `..`, and its
/// parent is a directory of the tree; no path goes through a symlink.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// Keyed by raw path bytes: their order is the digest's order, and it puts
    /// every directory before what it holds.
    pub(crate) nodes: BTreeMap<Vec<u8>, Node>,
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tree").field("entries", &self.entries()).field("content_bytes", &self.content_bytes()).finish()
    }
}

impl Tree {
    /// Files, directories and symlinks in the tree (not the root itself).
    pub fn entries(&self) -> usize {
        self.nodes.len()
    }

    /// Sum of the sizes of the tree's files.
    pub fn content_bytes(&self) -> u64 {
        self.nodes
            .values()
            .map(|node| match node {
                Node::File { content, .. } => content.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// What [`digest`](crate::digest) will say of the directory once this tree
    /// is written.
    pub fn digest(&self) -> String {
        let mut listing = Listing::default();
        for (path, node) in &self.nodes {
            if !is_reserved(path) {
                listing.node(path, node);
            }
        }
        listing.finish()
    }

    /// The tree's paths (raw bytes), sorted.
    pub fn paths(&self) -> impl Iterator<Item = &[u8]> {
        self.nodes.keys().map(Vec::as_slice)
    }

    /// Creates `dest` (which must not exist; its parent must) and writes every
    /// entry into it.
    ///
    /// Modes are permission bits only: setuid, setgid and sticky never reach
    /// the disk. With an `owner`, every entry and `dest` itself are lchown'd to
    /// it. Files and directories are fsynced, `dest`'s parent too, so that the
    /// tree is durable before the caller renames it or points to it. On error,
    /// whatever was created is removed.
    pub fn write_to(&self, dest: &Path, owner: Option<(u32, u32)>) -> Result<(), ConfError> {
        // 0700 until the end: nobody else may put anything into it meanwhile.
        DirBuilder::new().mode(0o700).create(dest).map_err(ConfError::io(dest))?;
        let written = self.populate(dest, owner);
        if written.is_err() {
            remove_partial(dest);
        }
        written
    }

    fn populate(&self, dest: &Path, owner: Option<(u32, u32)>) -> Result<(), ConfError> {
        let mut dirs = Vec::new();
        for (rel, node) in &self.nodes {
            let path = dest.join(OsStr::from_bytes(rel));
            match node {
                Node::Dir { mode } => {
                    DirBuilder::new().mode(0o700).create(&path).map_err(ConfError::io(&path))?;
                    dirs.push((path, *mode));
                }
                Node::File { mode, content } => write_file(&path, content, *mode, owner)?,
                Node::Symlink { target } => {
                    std::os::unix::fs::symlink(OsStr::from_bytes(target), &path).map_err(ConfError::io(&path))?;
                    if let Some((uid, gid)) = owner {
                        lchown(&path, Some(uid), Some(gid)).map_err(ConfError::io(&path))?;
                    }
                }
            }
        }
        // Directories get their final mode last and deepest first, so that a
        // read-only directory could still be filled, and a directory is synced
        // after everything in it exists.
        for (path, mode) in dirs.iter().rev() {
            finish_dir(path, *mode, owner)?;
        }
        finish_dir(dest, ROOT_MODE, owner)?;
        let parent = match dest.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        sync_dir(parent)
    }
}

fn write_file(path: &Path, content: &[u8], mode: u32, owner: Option<(u32, u32)>) -> Result<(), ConfError> {
    let io_error = ConfError::io(path);
    let written = (|| -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)?;
        file.write_all(content)?;
        if let Some((uid, gid)) = owner {
            fchown(&file, Some(uid), Some(gid))?;
        }
        // After the chown, which would clear setuid/setgid bits anyway.
        file.set_permissions(Permissions::from_mode(mode & 0o777))?;
        file.sync_all()
    })();
    written.map_err(io_error)
}

fn open_dir(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::NOFOLLOW).bits() as i32)
        .open(path)
}

fn finish_dir(path: &Path, mode: u32, owner: Option<(u32, u32)>) -> Result<(), ConfError> {
    let finished = (|| -> io::Result<()> {
        let dir = open_dir(path)?;
        if let Some((uid, gid)) = owner {
            fchown(&dir, Some(uid), Some(gid))?;
        }
        dir.set_permissions(Permissions::from_mode(mode & 0o777))?;
        dir.sync_all()
    })();
    finished.map_err(ConfError::io(path))
}

fn sync_dir(path: &Path) -> Result<(), ConfError> {
    open_dir(path).and_then(|dir| dir.sync_all()).map_err(ConfError::io(path))
}

/// Best effort: a directory already given a read-only mode would make
/// remove_dir_all fail for a non-root caller, so they are opened up first.
fn remove_partial(dest: &Path) {
    let mut pending = vec![dest.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let _ = fs::set_permissions(&dir, Permissions::from_mode(0o700));
        let Ok(listing) = fs::read_dir(&dir) else { continue };
        for entry in listing.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                pending.push(entry.path());
            }
        }
    }
    let _ = fs::remove_dir_all(dest);
}

/// Copies the configuration directory `from` (files, directories, symlinks
/// and their modes) to `to`, which must not exist, like [`Tree::write_to`]:
/// optional owner, fsynced, removed again on error. Fifos, sockets and devices
/// are left out, as in the download archive. A missing `from` is copied as an
/// empty configuration.
///
/// The whole configuration is held in memory while copying; it is small by
/// construction (uploads are bounded by [`Limits`](crate::Limits)).
pub fn copy_tree(from: &Path, to: &Path, owner: Option<(u32, u32)>) -> Result<(), ConfError> {
    let mut tree = Tree::default();
    for found in scan::walk(from)? {
        if let Some(node) = scan::load(&found)? {
            tree.nodes.insert(found.rel, node);
        }
    }
    tree.write_to(to, owner)
}
