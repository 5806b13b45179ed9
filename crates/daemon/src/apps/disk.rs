//! Refusing early when the disk cannot hold what an operation will write
//! (TPCM upgrade, step 1: the new image plus the backup of the data). Runs on
//! the blocking pool: it walks the private directory.

use super::error::AppError;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Space on the file system holding `path` (or its nearest existing parent):
/// (device id, bytes available to berth).
pub fn free_space(path: &Path) -> Option<(u64, u64)> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let device = std::fs::metadata(existing).ok()?.dev();
    let stats = rustix::fs::statvfs(existing).ok()?;
    Some((device, stats.f_bavail.saturating_mul(stats.f_frsize)))
}

/// Checks that every file system can take what is about to be written to it:
/// `needs` are (a path on it, bytes); needs on one device add up.
pub fn check(needs: &[(&Path, u64)]) -> Result<(), AppError> {
    let mut per_device: BTreeMap<u64, (String, u64, u64)> = BTreeMap::new();
    for (path, bytes) in needs {
        let Some((device, available)) = free_space(path) else { continue };
        let entry = per_device.entry(device).or_insert((path.display().to_string(), 0, available));
        entry.1 += bytes;
    }
    shortage(per_device.into_values())
}

fn shortage(devices: impl Iterator<Item = (String, u64, u64)>) -> Result<(), AppError> {
    for (path, needed, available) in devices {
        // A 5 % margin: file systems need room of their own.
        let needed_with_margin = needed + needed / 20;
        if needed_with_margin > available {
            return Err(AppError::InsufficientSpace { path, needed: needed_with_margin, available });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_on_one_device_add_up_with_a_margin() {
        assert!(shortage([("/a".to_owned(), 100, 105)].into_iter()).is_ok());
        let refused = shortage([("/a".to_owned(), 100, 104)].into_iter()).unwrap_err();
        assert!(matches!(refused, AppError::InsufficientSpace { needed: 105, available: 104, .. }));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), vec![0u8; 4096]).unwrap();
        assert_eq!(berth_fs::tree_size(dir.path()), 4096);
        assert!(check(&[(dir.path(), 1)]).is_ok());
        assert!(matches!(check(&[(dir.path(), u64::MAX / 2)]), Err(AppError::InsufficientSpace { .. })));
    }
}
