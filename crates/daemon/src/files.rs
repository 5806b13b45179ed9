//! Writing files so that a crash or power cut leaves the old or the whole new
//! content, never a part.

use crate::error::OpError;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Temp file in the same directory, fsync, rename, fsync the directory.
pub fn atomic_write(path: &Path, contents: &[u8]) -> Result<(), OpError> {
    atomic_write_mode(path, contents, 0o666)
}

/// [`atomic_write`] with the file created with `mode` (less the umask) from
/// the start: a private file is never readable by others, not even briefly.
pub fn atomic_write_mode(path: &Path, contents: &[u8], mode: u32) -> Result<(), OpError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // Unique per call: two tasks writing the same file must not share a temp file.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let temp = dir.join(format!(".{name}.tmp-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        OpError::io(path)(e)
    })
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
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temp file is left behind");
    }
}
