//! Reading and atomically rewriting a params file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::params::Params;
use crate::sys;

/// Why a params file could not be read or written.
#[derive(Debug)]
pub enum StoreError {
    Io { path: PathBuf, what: &'static str, source: io::Error },
    NotUtf8 { path: PathBuf },
    Parse { path: PathBuf, error: crate::params::ParseError },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Io { path, what, source } => {
                write!(f, "{}: cannot {what}: {source}", path.display())
            }
            StoreError::NotUtf8 { path } => write!(f, "{}: not valid UTF-8", path.display()),
            StoreError::Parse { path, error } => write!(
                f,
                "{}:{}: {} (expected one `\"key\": \"value\"` entry per line)",
                path.display(),
                error.line,
                error.message
            ),
        }
    }
}

/// Reads and parses `path`; a missing file is an empty one.
pub fn load(path: &Path) -> Result<Params, StoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Params::default()),
        Err(source) => return Err(StoreError::Io { path: path.to_owned(), what: "read", source }),
    };
    let text = String::from_utf8(bytes).map_err(|_| StoreError::NotUtf8 { path: path.to_owned() })?;
    Params::parse(&text).map_err(|error| StoreError::Parse { path: path.to_owned(), error })
}

/// Loads `path`, applies `change` and rewrites the file atomically: a
/// temporary file in the same directory (same mode and, when permitted, same
/// owner as the old file; 0644 for a new one) is written, fsynced and renamed
/// over it, then the directory is fsynced. If `path` is a symlink its target
/// is rewritten. Concurrent updates through this function are serialised
/// with flock(2) on the directory. The file is left untouched on any error.
pub fn update(path: &Path, change: impl FnOnce(&mut Params)) -> Result<(), StoreError> {
    locked_write(path, |path| {
        let mut params = load(path)?;
        change(&mut params);
        Ok(params.render())
    })
}

/// Replaces the file with `params` whatever it held (even a malformed file),
/// the same way [`update`] writes.
pub fn replace(path: &Path, params: &Params) -> Result<(), StoreError> {
    locked_write(path, |_| Ok(params.render()))
}

fn locked_write(path: &Path, text_for: impl FnOnce(&Path) -> Result<String, StoreError>) -> Result<(), StoreError> {
    let path = match fs::canonicalize(path) {
        Ok(real) => real,
        Err(_) => path.to_owned(),
    };
    let io_err = |what: &'static str| {
        let path = path.clone();
        move |source: io::Error| StoreError::Io { path, what, source }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io_err("write")(io::Error::new(io::ErrorKind::InvalidInput, "not a file name")))?
        .to_string_lossy()
        .into_owned();

    // Best effort: a directory we cannot lock (odd file systems) must not
    // prevent the update itself.
    let dir_handle = File::open(&dir).ok();
    if let Some(handle) = &dir_handle {
        let _ = sys::lock_exclusive(handle);
    }

    let text = text_for(&path)?;

    let old = match fs::metadata(&path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("stat")(e)),
    };
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    let result = (|| {
        // A leftover of a crashed run with the same pid; we hold the lock.
        let _ = fs::remove_file(&tmp);
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        let mode = old.as_ref().map_or(0o644, |m| m.permissions().mode() & 0o7777);
        if let Some(m) = &old {
            // Keep the owner when we may (root rewriting someone else's file);
            // an unprivileged caller keeps its own, which is all it can do.
            let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()));
        }
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("write")(e));
    }
    if let Some(handle) = &dir_handle {
        let _ = handle.sync_all();
    }
    Ok(())
}
