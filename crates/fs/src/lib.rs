//! Durable file work for berth. A journal step is only recorded once the
//! files of the step before it are on disk, so everything here that writes
//! also fsyncs: the file, and the directory whose entry changed.
//!
//! - [`atomic_write`]: replace a file so that a crash or power cut leaves
//!   the old or the whole new content (temp file, fsync, rename, fsync the
//!   directory).
//! - [`copy_tree`] / [`restore_tree`]: a snapshot of a directory with modes,
//!   owners and links, synced, and marked complete only once it all is;
//!   a restore refuses a snapshot that is missing or incomplete and then
//!   changes nothing.
//! - [`read_regular_nofollow`]: read a file that someone else controls the
//!   name of (an SRA's output file) without following a link out of its
//!   directory, and only when it is a regular file.
//!
//! All of it blocks: async callers run it on the blocking pool.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct FsError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl FsError {
    pub fn new(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self { path: path.into(), source }
    }

    pub fn kind(&self) -> std::io::ErrorKind {
        self.source.kind()
    }
}

pub type Result<T> = std::result::Result<T, FsError>;

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> FsError + '_ {
    move |source| FsError::new(path, source)
}

/// The name a complete snapshot carries inside it, written (and synced) last.
pub const COMPLETE_MARKER: &str = ".berth-snapshot-complete";

/// Counts fsyncs, so tests can check that a function makes its writes durable.
static SYNCS: AtomicU64 = AtomicU64::new(0);

/// How many fsyncs this process has made through this crate.
pub fn sync_count() -> u64 {
    SYNCS.load(Ordering::Relaxed)
}

fn sync_file(file: &std::fs::File, path: &Path) -> Result<()> {
    SYNCS.fetch_add(1, Ordering::Relaxed);
    file.sync_all().map_err(at(path))
}

/// fsyncs a directory, making the creation, rename or removal of its entries durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let handle = std::fs::File::open(dir).map_err(at(dir))?;
    sync_file(&handle, dir)
}

/// Temp file in the same directory, fsync, rename, fsync the directory.
pub fn atomic_write(path: &Path, contents: &[u8]) -> Result<()> {
    atomic_write_mode(path, contents, 0o666)
}

/// [`atomic_write`] with the file created with `mode` (less the umask) from
/// the start: a private file is never readable by others, not even briefly.
pub fn atomic_write_mode(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = parent_of(path);
    let temp = temp_name(path);
    let write = || -> Result<()> {
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&temp).map_err(at(&temp))?;
        file.write_all(contents).map_err(at(&temp))?;
        sync_file(&file, &temp)?;
        std::fs::rename(&temp, path).map_err(at(path))?;
        sync_dir(&dir)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}

/// The directory a path is in; `.` for a bare file name (whose parent is "").
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// A temp name beside `path`, unique per call (two writers of one file must
/// not share a temp file).
pub fn temp_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    parent_of(path).join(format!(".{name}.tmp-{}-{}", std::process::id(), TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)))
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Renames `from` to `to` and fsyncs both directories.
pub fn rename_durably(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(at(to))?;
    sync_dir(&parent_of(to))?;
    let from_dir = parent_of(from);
    if from_dir != parent_of(to) {
        sync_dir(&from_dir)?;
    }
    Ok(())
}

/// Removes a tree (or a file); one that is not there is fine. The parent
/// directory is synced, so the removal is durable.
pub fn remove_tree(path: &Path) -> Result<()> {
    let removed = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(FsError::new(path, e)),
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(FsError::new(path, e)),
        _ => sync_dir(&parent_of(path))
            .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) }),
    }
}

/// Creates `dir` (and its parents) with `mode`; one that exists is fine.
/// Returns whether it was created.
pub fn create_dir(dir: &Path, mode: u32) -> Result<bool> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(at(parent))?;
    }
    let mut builder = std::fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, mode);
    match builder.create(dir) {
        Ok(()) => {
            sync_dir(&parent_of(dir))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
        Err(e) => Err(FsError::new(dir, e)),
    }
}

/// Replaces `to` with a synced copy of `from` (which may not exist: then
/// `to` is an empty directory), and marks it complete. Modes, owners and
/// symbolic links are kept; device files, fifos and sockets are not data and
/// are skipped.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    remove_tree(to)?;
    std::fs::create_dir_all(to).map_err(at(to))?;
    if from.is_dir() {
        copy_contents(from, to)?;
        copy_metadata(from, to)?;
    }
    let marker = to.join(COMPLETE_MARKER);
    let file = std::fs::File::create(&marker).map_err(at(&marker))?;
    sync_file(&file, &marker)?;
    sync_dir(to)?;
    sync_dir(&parent_of(to))
}

/// Whether `snapshot` is a snapshot [`copy_tree`] finished.
pub fn is_complete_snapshot(snapshot: &Path) -> bool {
    snapshot.join(COMPLETE_MARKER).is_file()
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("the snapshot {path} is missing or incomplete; nothing was restored")]
    NoSnapshot { path: PathBuf },
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// Makes `target` hold exactly what the complete snapshot holds (without
/// its marker). A missing or incomplete snapshot is refused before anything
/// is touched: restoring nothing would empty the target.
pub fn restore_tree(snapshot: &Path, target: &Path) -> std::result::Result<(), RestoreError> {
    if !is_complete_snapshot(snapshot) {
        return Err(RestoreError::NoSnapshot { path: snapshot.to_owned() });
    }
    // Copied beside the target first, then swapped in, so a crash half-way
    // leaves the target as it was (and the copy is retried).
    let staged = temp_name(target);
    copy_tree(snapshot, &staged)?;
    let _ = std::fs::remove_file(staged.join(COMPLETE_MARKER));
    remove_tree(target)?;
    rename_durably(&staged, target)?;
    Ok(())
}

fn copy_contents(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from).map_err(at(from))? {
        let entry = entry.map_err(at(from))?;
        if entry.file_name() == OsStr::new(COMPLETE_MARKER) {
            continue;
        }
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(at(&source))?;
        if kind.is_dir() {
            std::fs::create_dir(&target).map_err(at(&target))?;
            copy_contents(&source, &target)?;
            copy_metadata(&source, &target)?;
            sync_dir(&target)?;
        } else if kind.is_symlink() {
            let link = std::fs::read_link(&source).map_err(at(&source))?;
            std::os::unix::fs::symlink(&link, &target).map_err(at(&target))?;
            let meta = std::fs::symlink_metadata(&source).map_err(at(&source))?;
            let _ = std::os::unix::fs::lchown(&target, Some(meta.uid()), Some(meta.gid()));
        } else if kind.is_file() {
            copy_file(&source, &target)?;
            copy_metadata(&source, &target)?;
        }
    }
    Ok(())
}

fn copy_file(source: &Path, target: &Path) -> Result<()> {
    let mut input = std::fs::File::open(source).map_err(at(source))?;
    let mut output = std::fs::File::create(target).map_err(at(target))?;
    std::io::copy(&mut input, &mut output).map_err(at(target))?;
    sync_file(&output, target)
}

fn copy_metadata(from: &Path, to: &Path) -> Result<()> {
    let meta = std::fs::metadata(from).map_err(at(from))?;
    // Owners matter (the app's user must still own its files); only root can
    // set them, and berth runs as root on an appliance. Elsewhere: best effort.
    let _ = std::os::unix::fs::chown(to, Some(meta.uid()), Some(meta.gid()));
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(at(to))
}

/// Bytes used by the files under `path` (0 when it does not exist).
pub fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path).map_or(0, |entries| entries.flatten().map(|e| tree_size(&e.path())).sum())
}

#[derive(Debug, thiserror::Error)]
pub enum NoFollowError {
    #[error("{path} is a symbolic link; it is not followed")]
    Link { path: PathBuf },
    #[error("{path} is not a regular file")]
    NotRegular { path: PathBuf },
    #[error("{path} is larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl NoFollowError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, NoFollowError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Reads `name` in the directory `dir` (which berth chose) without following
/// a symbolic link anywhere on the way from `dir`, and only when it is a
/// regular file of at most `limit` bytes. The open is non-blocking, so a
/// fifo put in its place cannot hang the reader.
pub fn read_regular_nofollow(dir: &Path, name: &Path, limit: u64) -> std::result::Result<Vec<u8>, NoFollowError> {
    use rustix::fs::{openat, Mode, OFlags, CWD};
    let path = dir.join(name);
    let io = |source: std::io::Error| NoFollowError::Io { path: path.clone(), source };
    let base = openat(CWD, dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io(e.into()))?;
    let mut current = base;
    let components: Vec<_> = name.components().collect();
    for (index, component) in components.iter().enumerate() {
        let std::path::Component::Normal(part) = component else {
            return Err(io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "only plain names are followed")));
        };
        let last = index + 1 == components.len();
        let flags = OFlags::RDONLY
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | OFlags::NONBLOCK
            | if last { OFlags::empty() } else { OFlags::DIRECTORY };
        current = match openat(&current, *part, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::LOOP) => return Err(NoFollowError::Link { path: path.clone() }),
            // O_DIRECTORY on a link says ENOTDIR: tell a link from a file.
            Err(rustix::io::Errno::NOTDIR) if !last => {
                let link = rustix::fs::statat(&current, *part, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|s| rustix::fs::FileType::from_raw_mode(s.st_mode) == rustix::fs::FileType::Symlink);
                return Err(if link {
                    NoFollowError::Link { path: path.clone() }
                } else {
                    NoFollowError::NotRegular { path: path.clone() }
                });
            }
            Err(e) => return Err(io(e.into())),
        };
    }
    let stat = rustix::fs::fstat(&current).map_err(|e| io(e.into()))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(NoFollowError::NotRegular { path: path.clone() });
    }
    if stat.st_size as u64 > limit {
        return Err(NoFollowError::TooLarge { path: path.clone(), limit });
    }
    let mut file = std::fs::File::from(current);
    let mut bytes = Vec::new();
    (&mut file).take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(NoFollowError::TooLarge { path, limit });
    }
    Ok(bytes)
}

/// Writes `name` atomically (temp file, fsync, rename, fsync the directory)
/// in the directory `sub` under `base`, creating `sub` as needed, with
/// `mode` exactly. Nothing on the way from `base` is followed when it is a
/// symbolic link: `base` is berth's, but what is beneath it may be a
/// container's (an app's private directory), and a link planted there must
/// not make root write anywhere else.
pub fn write_beneath(
    base: &Path,
    sub: &Path,
    name: &str,
    contents: &[u8],
    mode: u32,
) -> std::result::Result<(), NoFollowError> {
    use rustix::fs::{fchmod, fsync, mkdirat, openat, renameat, unlinkat, AtFlags, Mode, OFlags, CWD};
    let path = base.join(sub).join(name);
    let io = |source: std::io::Error| NoFollowError::Io { path: path.clone(), source };
    let directory = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir = openat(CWD, base, directory, Mode::empty()).map_err(|e| io(e.into()))?;
    for component in sub.components() {
        let std::path::Component::Normal(part) = component else {
            return Err(io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "only plain names are followed")));
        };
        match mkdirat(&dir, part, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(io(e.into())),
        }
        dir = match openat(&dir, part, directory, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                return Err(NoFollowError::Link { path: base.join(sub) })
            }
            Err(e) => return Err(io(e.into())),
        };
    }
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a plain file name")));
    }
    let temp = format!(".{name}.tmp-{}-{}", std::process::id(), TEMP_COUNTER.fetch_add(1, Ordering::Relaxed));
    let create = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = openat(&dir, temp.as_str(), create, Mode::from_raw_mode(mode)).map_err(|e| io(e.into()))?;
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::from(fd);
        file.write_all(contents)?;
        // The umask does not decide a script's mode.
        fchmod(&file, Mode::from_raw_mode(mode))?;
        SYNCS.fetch_add(1, Ordering::Relaxed);
        fsync(&file)?;
        renameat(&dir, temp.as_str(), &dir, name)?;
        SYNCS.fetch_add(1, Ordering::Relaxed);
        fsync(&dir)?;
        Ok(())
    })();
    written.map_err(|e| {
        let _ = unlinkat(&dir, temp.as_str(), AtFlags::empty());
        io(e)
    })
}

/// Removes `name` in `dir` if it is there, without following a link (a link
/// is removed itself, not its target).
pub fn remove_nofollow(dir: &Path, name: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(dir.join(name)) {
        Ok(meta) if !meta.is_dir() => std::fs::remove_file(dir.join(name)),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_of_one_file_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unit");
        std::thread::scope(|scope| {
            for writer in 0..8 {
                let path = &path;
                scope.spawn(move || {
                    for _ in 0..50 {
                        atomic_write(path, format!("writer {writer}\n").as_bytes()).unwrap();
                    }
                });
            }
        });
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("writer "));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file is left behind");
    }

    #[test]
    fn writing_beneath_follows_no_link() {
        let dir = tempfile::tempdir().unwrap();
        let (base, outside) = (dir.path().join("base"), dir.path().join("outside"));
        std::fs::create_dir_all(&base).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        write_beneath(&base, Path::new("hook"), "pre.sh", b"#!/bin/sh\n", 0o755).unwrap();
        let written = base.join("hook/pre.sh");
        assert_eq!(std::fs::read(&written).unwrap(), b"#!/bin/sh\n");
        assert_eq!(std::fs::metadata(&written).unwrap().permissions().mode() & 0o777, 0o755);

        // A link in place of the file is replaced, its target untouched.
        std::fs::write(outside.join("secret"), "keep").unwrap();
        std::fs::remove_file(&written).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), &written).unwrap();
        write_beneath(&base, Path::new("hook"), "pre.sh", b"new", 0o755).unwrap();
        assert_eq!(std::fs::read_to_string(outside.join("secret")).unwrap(), "keep");
        assert!(!std::fs::symlink_metadata(&written).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::metadata(outside.join("secret")).unwrap().permissions().mode() & 0o777, 0o644);

        // A link in place of the directory is refused.
        std::fs::remove_dir_all(base.join("hook")).unwrap();
        std::os::unix::fs::symlink(&outside, base.join("hook")).unwrap();
        let error = write_beneath(&base, Path::new("hook"), "pre.sh", b"x", 0o755).unwrap_err();
        assert!(matches!(error, NoFollowError::Link { .. }), "{error}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1, "nothing is written through the link");
    }

    #[test]
    fn a_bare_file_name_is_written_in_the_current_directory() {
        assert_eq!(parent_of(Path::new("f.tgz")), PathBuf::from("."));
        assert_eq!(parent_of(Path::new("/f.tgz")), PathBuf::from("/"));
    }

    #[test]
    fn copies_and_restores_a_tree_exactly_and_durably() {
        let dir = tempfile::tempdir().unwrap();
        let (data, snap) = (dir.path().join("data"), dir.path().join("snap"));
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("sub/a"), "one").unwrap();
        std::fs::write(data.join("b"), "two").unwrap();
        std::fs::set_permissions(data.join("sub/a"), std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("sub/a", data.join("link")).unwrap();
        let before = sync_count();
        copy_tree(&data, &snap).unwrap();
        // Two files, the marker, and the directories: each synced.
        assert!(sync_count() - before >= 5, "{} syncs", sync_count() - before);
        assert!(is_complete_snapshot(&snap));
        std::fs::write(data.join("sub/a"), "changed").unwrap();
        std::fs::write(data.join("new"), "x").unwrap();
        restore_tree(&snap, &data).unwrap();
        assert_eq!(std::fs::read_to_string(data.join("sub/a")).unwrap(), "one");
        assert_eq!(std::fs::metadata(data.join("sub/a")).unwrap().mode() & 0o777, 0o640);
        assert_eq!(std::fs::read_link(data.join("link")).unwrap(), Path::new("sub/a"));
        assert!(!data.join("new").exists());
        assert!(!data.join(COMPLETE_MARKER).exists());
    }

    #[test]
    fn restoring_a_missing_or_incomplete_snapshot_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("precious"), "keep").unwrap();
        let missing = restore_tree(&dir.path().join("gone"), &data);
        assert!(matches!(missing, Err(RestoreError::NoSnapshot { .. })));
        let partial = dir.path().join("partial");
        std::fs::create_dir_all(&partial).unwrap();
        assert!(matches!(restore_tree(&partial, &data), Err(RestoreError::NoSnapshot { .. })));
        assert_eq!(std::fs::read_to_string(data.join("precious")).unwrap(), "keep");
    }

    #[test]
    fn reads_never_follow_links_or_open_what_is_not_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "root only").unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(tmp.join("sub")).unwrap();
        std::fs::write(tmp.join("out.xml"), "<Response/>").unwrap();
        std::os::unix::fs::symlink(&secret, tmp.join("link.xml")).unwrap();
        std::os::unix::fs::symlink(dir.path(), tmp.join("up")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            tmp.join("fifo.xml").as_path(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert_eq!(read_regular_nofollow(&tmp, Path::new("out.xml"), 100).unwrap(), b"<Response/>");
        assert!(matches!(read_regular_nofollow(&tmp, Path::new("link.xml"), 100), Err(NoFollowError::Link { .. })));
        assert!(matches!(read_regular_nofollow(&tmp, Path::new("up/secret"), 100), Err(NoFollowError::Link { .. })));
        assert!(matches!(
            read_regular_nofollow(&tmp, Path::new("fifo.xml"), 100),
            Err(NoFollowError::NotRegular { .. })
        ));
        assert!(matches!(read_regular_nofollow(&tmp, Path::new("sub"), 100), Err(NoFollowError::NotRegular { .. })));
        assert!(matches!(read_regular_nofollow(&tmp, Path::new("out.xml"), 3), Err(NoFollowError::TooLarge { .. })));
        assert!(read_regular_nofollow(&tmp, Path::new("none.xml"), 3).unwrap_err().is_not_found());
        assert!(read_regular_nofollow(&tmp, Path::new("../secret"), 100).is_err());
        remove_nofollow(&tmp, Path::new("link.xml")).unwrap();
        assert!(secret.exists(), "removing a link never removes its target");
    }
}
