//! Copies of an app's private directory, so that an upgrade can put the data
//! back exactly as it was. Modes, owners and symbolic links are kept; device
//! files and sockets are not data and are skipped.

use crate::error::OpError;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Replaces `to` with a copy of `from` (which may not exist: then `to` is an empty directory).
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), OpError> {
    remove_tree(to)?;
    std::fs::create_dir_all(to).map_err(OpError::io(to))?;
    if from.is_dir() {
        copy_contents(from, to)?;
        copy_metadata(from, to)?;
    }
    Ok(())
}

/// Makes `dir` hold exactly what `snapshot` holds.
pub fn restore(snapshot: &Path, dir: &Path) -> Result<(), OpError> {
    copy_tree(snapshot, dir)
}

pub fn remove_tree(path: &Path) -> Result<(), OpError> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(OpError::io(path)(e)),
        _ => Ok(()),
    }
}

fn copy_contents(from: &Path, to: &Path) -> Result<(), OpError> {
    for entry in std::fs::read_dir(from).map_err(OpError::io(from))? {
        let entry = entry.map_err(OpError::io(from))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(OpError::io(&source))?;
        if kind.is_dir() {
            std::fs::create_dir(&target).map_err(OpError::io(&target))?;
            copy_contents(&source, &target)?;
            copy_metadata(&source, &target)?;
        } else if kind.is_symlink() {
            let link = std::fs::read_link(&source).map_err(OpError::io(&source))?;
            std::os::unix::fs::symlink(&link, &target).map_err(OpError::io(&target))?;
            let meta = std::fs::symlink_metadata(&source).map_err(OpError::io(&source))?;
            let _ = std::os::unix::fs::lchown(&target, Some(meta.uid()), Some(meta.gid()));
        } else if kind.is_file() {
            std::fs::copy(&source, &target).map_err(OpError::io(&target))?;
            copy_metadata(&source, &target)?;
        }
    }
    Ok(())
}

fn copy_metadata(from: &Path, to: &Path) -> Result<(), OpError> {
    let meta = std::fs::metadata(from).map_err(OpError::io(from))?;
    // Owners matter (the app's user must still own its files); only root can
    // set them, and berth runs as root on an appliance. Elsewhere: best effort.
    let _ = std::os::unix::fs::chown(to, Some(meta.uid()), Some(meta.gid()));
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(OpError::io(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_and_restores_a_tree_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let (data, snap) = (dir.path().join("data"), dir.path().join("snap"));
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("sub/a"), "one").unwrap();
        std::fs::set_permissions(data.join("sub/a"), std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("sub/a", data.join("link")).unwrap();
        copy_tree(&data, &snap).unwrap();
        std::fs::write(data.join("sub/a"), "changed").unwrap();
        std::fs::write(data.join("new"), "x").unwrap();
        restore(&snap, &data).unwrap();
        assert_eq!(std::fs::read_to_string(data.join("sub/a")).unwrap(), "one");
        assert_eq!(std::fs::metadata(data.join("sub/a")).unwrap().mode() & 0o777, 0o640);
        assert_eq!(std::fs::read_link(data.join("link")).unwrap(), Path::new("sub/a"));
        assert!(!data.join("new").exists());
    }
}
