//! Resource packages as berth reads them: a directory laid out as the Docker
//! RM guide's 4.1 (`resource.yaml`, `lifecycle/lifecycle.yaml`, optional
//! `operations/operations.yaml`, a `Dockerfile` and what it copies), or a
//! `.tar.gz`, `.tar` or `.zip` of one. Everything is read and checked in
//! memory before anything changes; the tree is also the image's build context.

use crate::resources::error::ResourceError;
use berth_core::resource::{
    validate_package, Package, PackageFiles, TypeName, LIFECYCLE_FILE, MAX_FILE_BYTES, OPERATIONS_FILE, RESOURCE_FILE,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path};

/// Largest package taken (its files together).
pub const MAX_PACKAGE_BYTES: u64 = 512 << 20;
/// Most files and directories in one package.
pub const MAX_PACKAGE_ENTRIES: usize = 20_000;

/// A package's files: relative path → (mode, contents); `None` is a directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageTree {
    /// The package directory's name (the type's name, by the Docker RM's rule).
    pub dir_name: String,
    pub entries: BTreeMap<String, (u32, Option<Vec<u8>>)>,
}

/// A package read and checked: what onboarding needs.
#[derive(Debug, Clone)]
pub struct CheckedPackage {
    pub package: Package,
    pub descriptor_text: String,
    pub tree: PackageTree,
    /// sha256 over every path, mode and content.
    pub digest: String,
}

impl PackageTree {
    fn text(&self, path: &str) -> Result<Option<String>, ResourceError> {
        match self.entries.get(path) {
            None | Some((_, None)) => Ok(None),
            Some((_, Some(bytes))) if bytes.len() > MAX_FILE_BYTES => {
                Err(ResourceError::invalid(format!("{path} is larger than {MAX_FILE_BYTES} bytes")))
            }
            Some((_, Some(bytes))) => String::from_utf8(bytes.clone())
                .map(Some)
                .map_err(|_| ResourceError::invalid(format!("{path} is not UTF-8 text"))),
        }
    }

    fn add(&mut self, path: &str, mode: u32, contents: Option<Vec<u8>>, total: &mut u64) -> Result<(), ResourceError> {
        let path = clean(path)?;
        if path.is_empty() {
            return Ok(());
        }
        *total += contents.as_ref().map_or(0, |c| c.len() as u64);
        if *total > MAX_PACKAGE_BYTES {
            return Err(ResourceError::invalid(format!("the package is larger than {MAX_PACKAGE_BYTES} bytes")));
        }
        if self.entries.len() >= MAX_PACKAGE_ENTRIES {
            return Err(ResourceError::invalid(format!("the package has more than {MAX_PACKAGE_ENTRIES} entries")));
        }
        self.entries.insert(path, (mode & 0o7777, contents));
        Ok(())
    }

    /// An archive whose files are all under one directory is that directory.
    fn strip_single_top(mut self) -> Self {
        if self.entries.contains_key(RESOURCE_FILE) {
            return self;
        }
        let tops: std::collections::BTreeSet<&str> =
            self.entries.keys().map(|k| k.split('/').next().unwrap_or_default()).collect();
        if let [top] = tops.into_iter().collect::<Vec<_>>()[..] {
            let top = top.to_owned();
            let prefix = format!("{top}/");
            self.entries = std::mem::take(&mut self.entries)
                .into_iter()
                .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|rest| (rest.to_owned(), v)))
                .collect();
            self.dir_name = top;
        }
        self
    }

    /// The tree as a tar build context (deterministic: sorted, fixed times, root-owned).
    pub fn to_tar(&self) -> std::io::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, (mode, contents)) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mode(*mode);
            match contents {
                None => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    builder.append_data(&mut header, format!("{path}/"), std::io::empty())?;
                }
                Some(bytes) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(bytes.len() as u64);
                    builder.append_data(&mut header, path, bytes.as_slice())?;
                }
            }
        }
        builder.into_inner()
    }

    fn digest(&self) -> String {
        let mut hash = Sha256::new();
        for (path, (mode, contents)) in &self.entries {
            hash.update(path.as_bytes());
            hash.update([0]);
            hash.update(mode.to_be_bytes());
            match contents {
                None => hash.update([0]),
                Some(bytes) => {
                    hash.update([1]);
                    hash.update((bytes.len() as u64).to_be_bytes());
                    hash.update(bytes);
                }
            }
        }
        hex::encode(hash.finalize())
    }
}

/// A relative path inside a package, without `.`, `..` or a leading `/`.
fn clean(path: &str) -> Result<String, ResourceError> {
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(
                part.to_str().ok_or_else(|| ResourceError::invalid(format!("package path {path:?} is not UTF-8")))?,
            ),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(ResourceError::invalid(format!("package path {path:?} leaves the package")));
            }
        }
    }
    Ok(parts.join("/"))
}

/// Reads a package directory (the daemon's own configuration names it).
/// Symbolic links are refused: the build context must be what the package holds.
pub fn read_dir(dir: &Path) -> Result<PackageTree, ResourceError> {
    let dir_name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| ResourceError::invalid(format!("{} is not a package directory", dir.display())))?
        .to_owned();
    let mut tree = PackageTree { dir_name, entries: BTreeMap::new() };
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        let listing = std::fs::read_dir(&current)
            .map_err(|e| ResourceError::invalid(format!("cannot read {}: {e}", current.display())))?;
        for entry in listing {
            let entry = entry.map_err(|e| ResourceError::invalid(format!("cannot read {}: {e}", current.display())))?;
            let path = entry.path();
            let relative = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&path)
                .map_err(|e| ResourceError::invalid(format!("cannot read {}: {e}", path.display())))?;
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode();
            if meta.file_type().is_symlink() {
                return Err(ResourceError::invalid(format!(
                    "{relative} in the package is a symbolic link; packages hold files and directories only"
                )));
            } else if meta.is_dir() {
                tree.add(&relative, mode, None, &mut total)?;
                stack.push(path);
            } else if meta.is_file() {
                if total + meta.len() > MAX_PACKAGE_BYTES {
                    return Err(ResourceError::invalid(format!(
                        "the package is larger than {MAX_PACKAGE_BYTES} bytes"
                    )));
                }
                let contents = std::fs::read(&path)
                    .map_err(|e| ResourceError::invalid(format!("cannot read {}: {e}", path.display())))?;
                tree.add(&relative, mode, Some(contents), &mut total)?;
            } else {
                return Err(ResourceError::invalid(format!("{relative} in the package is not a regular file")));
            }
        }
    }
    Ok(tree)
}

/// Reads an uploaded package archive: gzip or zip by their magic, else tar.
pub fn read_archive(bytes: &[u8]) -> Result<PackageTree, ResourceError> {
    let tree = if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        read_zip(bytes)?
    } else if bytes.starts_with(&[0x1f, 0x8b]) {
        read_tar(flate2::read::MultiGzDecoder::new(bytes))?
    } else {
        read_tar(bytes)?
    };
    Ok(tree.strip_single_top())
}

fn bad_archive(e: impl std::fmt::Display) -> ResourceError {
    ResourceError::invalid(format!("the package archive is not a readable .tar.gz, .tar or .zip: {e}"))
}

fn read_tar(reader: impl Read) -> Result<PackageTree, ResourceError> {
    let mut tree = PackageTree::default();
    let mut total = 0;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(bad_archive)? {
        let mut entry = entry.map_err(bad_archive)?;
        let path = entry.path().map_err(bad_archive)?.to_string_lossy().into_owned();
        let mode = entry.header().mode().map_err(bad_archive)?;
        match entry.header().entry_type() {
            tar::EntryType::Directory => tree.add(&path, mode, None, &mut total)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if total + entry.size() > MAX_PACKAGE_BYTES {
                    return Err(ResourceError::invalid(format!(
                        "the package is larger than {MAX_PACKAGE_BYTES} bytes"
                    )));
                }
                let mut contents = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut contents).map_err(bad_archive)?;
                tree.add(&path, mode, Some(contents), &mut total)?;
            }
            // pax and GNU long-name headers are read by the tar crate itself.
            tar::EntryType::XHeader | tar::EntryType::XGlobalHeader | tar::EntryType::GNULongName => {}
            other => {
                return Err(ResourceError::invalid(format!(
                    "{path} in the package archive is a {other:?} entry; packages hold files and directories only"
                )))
            }
        }
    }
    Ok(tree)
}

fn read_zip(bytes: &[u8]) -> Result<PackageTree, ResourceError> {
    let mut tree = PackageTree::default();
    let mut total = 0;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(bad_archive)?;
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).map_err(bad_archive)?;
        let path = file.name().map_err(bad_archive)?.into_owned();
        let mode = file.unix_mode().unwrap_or(if file.is_dir() { 0o755 } else { 0o644 });
        if file.is_symlink() {
            return Err(ResourceError::invalid(format!("{path} in the package archive is a symbolic link")));
        }
        if file.is_dir() {
            tree.add(&path, mode, None, &mut total)?;
            continue;
        }
        if total + file.size() > MAX_PACKAGE_BYTES {
            return Err(ResourceError::invalid(format!("the package is larger than {MAX_PACKAGE_BYTES} bytes")));
        }
        let mut contents = Vec::new();
        (&mut file).take(MAX_PACKAGE_BYTES + 1).read_to_end(&mut contents).map_err(bad_archive)?;
        tree.add(&path, mode, Some(contents), &mut total)?;
    }
    Ok(tree)
}

/// Checks a package whole: its descriptor, maps and scripts, and that it
/// has a Dockerfile.
pub fn check(mut tree: PackageTree) -> Result<CheckedPackage, ResourceError> {
    let descriptor_text = tree
        .text(RESOURCE_FILE)?
        .ok_or_else(|| ResourceError::invalid(format!("the package has no {RESOURCE_FILE}")))?;
    if tree.dir_name.is_empty() {
        // An archive of the files themselves: the type's own name stands for the directory's.
        tree.dir_name = berth_core::resource::parse_descriptor(RESOURCE_FILE, &descriptor_text)?.name.name().to_owned();
    }
    let files = PackageFiles {
        dir_name: tree.dir_name.clone(),
        resource_yaml: descriptor_text.clone(),
        lifecycle_yaml: tree.text(LIFECYCLE_FILE)?,
        operations_yaml: tree.text(OPERATIONS_FILE)?,
    };
    let package = validate_package(&files)?;
    if !matches!(tree.entries.get("Dockerfile"), Some((_, Some(_)))) {
        return Err(ResourceError::invalid("the package has no Dockerfile"));
    }
    let digest = tree.digest();
    Ok(CheckedPackage { package, descriptor_text, tree, digest })
}

/// The image tag of a type (`dockerrm_<name>`, the Docker RM's rule), lower
/// case as image names must be.
pub fn image_tag(name: &TypeName) -> String {
    format!("dockerrm_{}", name.name().to_ascii_lowercase())
}

/// The base image a Dockerfile names in its first `FROM`.
pub fn base_of(dockerfile: &str) -> Option<String> {
    dockerfile.lines().map(str::trim).filter(|l| !l.starts_with('#')).find_map(|l| {
        let mut words = l.split_whitespace();
        let first = words.next()?;
        first.eq_ignore_ascii_case("FROM").then(|| words.find(|w| !w.starts_with("--"))).flatten().map(str::to_owned)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_and_bases_are_found() {
        assert!(clean("../x").is_err());
        assert!(clean("/etc/passwd").is_err());
        assert_eq!(clean("./a/./b").unwrap(), "a/b");
        assert_eq!(
            base_of("# c\nFROM --platform=linux/amd64 dockerrm_baseimage\nRUN x").as_deref(),
            Some("dockerrm_baseimage")
        );
        assert_eq!(base_of("from scratch").as_deref(), Some("scratch"));
        assert_eq!(base_of("RUN x"), None);
    }

    #[test]
    fn an_archive_of_one_directory_is_that_directory() {
        let mut tree = PackageTree::default();
        let mut total = 0;
        tree.add("hello/resource.yaml", 0o644, Some(b"x".to_vec()), &mut total).unwrap();
        tree.add("hello/Dockerfile", 0o644, Some(b"FROM scratch".to_vec()), &mut total).unwrap();
        let tree = tree.strip_single_top();
        assert_eq!(tree.dir_name, "hello");
        assert!(tree.entries.contains_key("resource.yaml"));
        let again = read_archive(&tree.to_tar().unwrap()).unwrap();
        assert_eq!(again.entries, tree.entries);
    }
}
