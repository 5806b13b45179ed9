use crate::pack::append_member;
use crate::tree::Node;
use crate::*;
use flate2::write::GzEncoder;
use flate2::Compression;
use sha1::{Digest, Sha1};
use std::ffi::OsStr;
use std::fs::{self, File, Permissions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};
use tar::{EntryType, Header};
use tempfile::TempDir;

const EMPTY_DIGEST: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
/// Any well-formed digest, for uploads whose base does not matter.
const SOME_DIGEST: &str = "0123456789abcdef0123456789abcdef01234567";

// ---- helpers: directories -------------------------------------------------

fn put_file(root: &Path, rel: &str, content: &[u8], mode: u32) -> PathBuf {
    let path = root.join(rel);
    fs::write(&path, content).unwrap();
    fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
    path
}

fn put_dir(root: &Path, rel: &str, mode: u32) -> PathBuf {
    let path = root.join(rel);
    fs::create_dir(&path).unwrap();
    fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
    path
}

fn put_symlink(root: &Path, rel: &str, target: &str) -> PathBuf {
    let path = root.join(rel);
    std::os::unix::fs::symlink(target, &path).unwrap();
    path
}

fn put_fifo(root: &Path, rel: &str) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join(rel).as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .expect("mkfifo");
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// A directory with a bit of everything a configuration has.
fn sample_config(root: &Path) {
    put_file(root, "sra.xml", b"<sra>\n  <array name=\"a\"/>\n</sra>\n", 0o644);
    put_file(root, "secret.key", b"not really a key\n", 0o600);
    put_file(root, "empty", b"", 0o644);
    put_dir(root, "scripts", 0o750);
    put_file(root, "scripts/run.sh", b"#!/bin/sh\necho hi\n", 0o755);
    put_dir(root, "scripts/empty-dir", 0o755);
    put_symlink(root, "current.xml", "sra.xml");
    put_symlink(root, "scripts/up", "../sra.xml");
    // A nested version file is an ordinary file.
    put_file(root, &format!("scripts/{VERSION_FILE}"), b"whatever\n", 0o644);
    // Longer than a tar header's 100-byte name field, and a long link target.
    let deep = "d".repeat(60);
    put_dir(root, &deep, 0o755);
    let long_name = format!("{deep}/{}", "f".repeat(80));
    put_file(root, &long_name, b"long name\n", 0o644);
    put_symlink(root, "long-link", &long_name);
    // Names are bytes, not necessarily UTF-8.
    fs::write(root.join(OsStr::from_bytes(b"caf\xe9.txt")), b"latin-1 name\n").unwrap();
}

// ---- helpers: archives ----------------------------------------------------

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut plain).unwrap();
    plain
}

/// Builds archives member by member with exactly the names given, hostile
/// ones included.
struct RawTar {
    builder: tar::Builder<Vec<u8>>,
}

impl RawTar {
    fn new() -> RawTar {
        RawTar { builder: tar::Builder::new(Vec::new()) }
    }

    fn member(mut self, name: &[u8], kind: EntryType, mode: u32, link: Option<&[u8]>, data: &[u8]) -> RawTar {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_mtime(1_700_000_000);
        if kind == EntryType::GNUSparse {
            // The tar crate reads a sparse member's map before handing it over.
            header.as_gnu_mut().unwrap().set_real_size(data.len() as u64);
        }
        append_member(&mut self.builder, &mut header, name, link, data).unwrap();
        self
    }

    fn file(self, name: &str, data: &[u8]) -> RawTar {
        self.member(name.as_bytes(), EntryType::Regular, 0o644, None, data)
    }

    fn dir(self, name: &str) -> RawTar {
        self.member(name.as_bytes(), EntryType::Directory, 0o755, None, b"")
    }

    fn symlink(self, name: &str, target: &str) -> RawTar {
        self.member(name.as_bytes(), EntryType::Symlink, 0o777, Some(target.as_bytes()), b"")
    }

    fn hard_link(self, name: &str, target: &str) -> RawTar {
        self.member(name.as_bytes(), EntryType::Link, 0o644, Some(target.as_bytes()), b"")
    }

    fn version(self, digest: &str) -> RawTar {
        self.file(VERSION_FILE, format!("{digest}\n").as_bytes())
    }

    /// A member whose header claims `size` bytes, followed by `data` only.
    fn claiming(mut self, name: &str, kind: EntryType, size: u64, data: &[u8]) -> RawTar {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_size(size);
        append_member(&mut self.builder, &mut header, name.as_bytes(), None, data).unwrap();
        self
    }

    /// A pax extended header for the next member.
    fn pax(self, key: &str, value: &[u8]) -> RawTar {
        let body_len = 1 + key.len() + 1 + value.len() + 1;
        let mut len = body_len + 1;
        while len.to_string().len() + body_len != len {
            len = len.to_string().len() + body_len;
        }
        let mut record = format!("{len} {key}=").into_bytes();
        record.extend_from_slice(value);
        record.push(b'\n');
        self.member(b"PaxHeaders/next", EntryType::XHeader, 0o644, None, &record)
    }

    fn tar(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }

    fn gz(self) -> Vec<u8> {
        gzip(&self.tar())
    }
}

fn upload(archive: Vec<u8>) -> Result<Upload, ConfError> {
    read_upload(archive.as_slice(), &Limits::default())
}

/// Asserts an upload is refused as unsafe, naming `member`.
fn assert_unsafe(archive: RawTar, member: &str, reason_contains: &str) {
    match upload(archive.version(SOME_DIGEST).gz()) {
        Err(error @ ConfError::Unsafe { .. }) => {
            let message = error.to_string();
            assert!(message.contains(&format!("{member:?}")), "{message:?} should name {member:?}");
            assert!(message.contains(reason_contains), "{message:?} should say {reason_contains:?}");
            assert!(message.ends_with("nothing was written"), "{message:?}");
        }
        other => panic!("expected Unsafe for {member:?}, got {other:?}"),
    }
}

fn assert_too_large(result: Result<Upload, ConfError>, member: &str, reason_contains: &str) {
    match result {
        Err(error @ ConfError::TooLarge { .. }) => {
            let message = error.to_string();
            assert!(message.contains(&format!("{member:?}")), "{message:?} should name {member:?}");
            assert!(message.contains(reason_contains), "{message:?} should say {reason_contains:?}");
        }
        other => panic!("expected TooLarge at {member:?}, got {other:?}"),
    }
}

fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, ConfError>, what: &str) {
    assert!(matches!(result, Err(ConfError::Corrupt { .. })), "{what}: expected Corrupt, got {result:?}");
}

fn assert_version_error(archive: RawTar, reason_contains: &str) {
    match upload(archive.gz()) {
        Err(error @ ConfError::VersionFile { .. }) => {
            let message = error.to_string();
            assert!(message.contains(reason_contains), "{message:?} should say {reason_contains:?}");
        }
        other => panic!("expected VersionFile, got {other:?}"),
    }
}

/// Names of an archive's members, in order, as the tar crate reports them.
fn member_names(tar_bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive.entries().unwrap().map(|entry| String::from_utf8_lossy(&entry.unwrap().path_bytes()).into_owned()).collect()
}

fn digest_after(root: &Path, change: impl FnOnce(&Path)) -> String {
    change(root);
    digest(root).unwrap()
}

// ---- the digest -----------------------------------------------------------

#[test]
fn digest_worked_example_from_the_docs() {
    let dir = TempDir::new().unwrap();
    put_file(dir.path(), "hello.txt", b"hello\n", 0o644);
    // SHA-1 of "f0644" "9:hello.txt," "6:hello\n," "\n"
    assert_eq!(digest(dir.path()).unwrap(), "b3d52360cb4980ba1dc73bf151a1d2affd9625d3");
}

#[test]
fn digest_second_example_from_the_docs() {
    let dir = TempDir::new().unwrap();
    put_dir(dir.path(), "sub", 0o755);
    put_file(dir.path(), "sub/a.xml", b"<a/>\n", 0o640);
    put_symlink(dir.path(), "link", "sub/a.xml");
    assert_eq!(digest(dir.path()).unwrap(), "a67f58a3f5c28a0b77450cab5ce3d707102332e8");
}

#[test]
fn digest_records_are_sorted_byte_wise_by_full_path() {
    let dir = TempDir::new().unwrap();
    put_dir(dir.path(), "a", 0o700);
    put_file(dir.path(), "a/b", b"in a", 0o600);
    put_file(dir.path(), "a-b", b"beside a", 0o644);
    put_fifo(dir.path(), "pipe");
    // '-' (0x2d) sorts before '/' (0x2f): "a", "a-b", "a/b", then "pipe".
    let expected = b"d07001:a,\nf06443:a-b,8:beside a,\nf06003:a/b,4:in a,\no06444:pipe,\n";
    assert_eq!(digest(dir.path()).unwrap(), hex::encode(Sha1::digest(expected)));
}

#[test]
fn digest_of_a_missing_or_empty_directory_is_sha1_of_nothing() {
    let dir = TempDir::new().unwrap();
    assert_eq!(digest(dir.path()).unwrap(), EMPTY_DIGEST);
    assert_eq!(digest(&dir.path().join("missing")).unwrap(), EMPTY_DIGEST);
    assert_eq!(Tree::default().digest(), EMPTY_DIGEST);
}

#[test]
fn digest_follows_the_directory_itself_when_it_is_a_symlink() {
    let dir = TempDir::new().unwrap();
    let real = put_dir(dir.path(), "gen-1", 0o755);
    put_file(&real, "hello.txt", b"hello\n", 0o644);
    let current = put_symlink(dir.path(), "current", "gen-1");
    assert_eq!(digest(&current).unwrap(), "b3d52360cb4980ba1dc73bf151a1d2affd9625d3");
}

/// One edit to a sample configuration.
type Change = dyn FnOnce(&Path);

#[test]
fn digest_changes_with_content_mode_name_type_and_link_target() {
    let fresh = || {
        let dir = TempDir::new().unwrap();
        sample_config(dir.path());
        dir
    };
    let base_dir = fresh();
    let base = digest(base_dir.path()).unwrap();
    assert_eq!(base.len(), 40);
    assert!(base.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));

    let changes: Vec<(&str, Box<Change>)> = vec![
        ("content", Box::new(|root| fs::write(root.join("sra.xml"), b"<sra/>\n").unwrap())),
        ("one byte of content", Box::new(|root| fs::write(root.join("empty"), b" ").unwrap())),
        ("mode", Box::new(|root| fs::set_permissions(root.join("sra.xml"), Permissions::from_mode(0o640)).unwrap())),
        (
            "directory mode",
            Box::new(|root| fs::set_permissions(root.join("scripts"), Permissions::from_mode(0o755)).unwrap()),
        ),
        ("name", Box::new(|root| fs::rename(root.join("secret.key"), root.join("secret.pem")).unwrap())),
        (
            "type",
            Box::new(|root| {
                fs::remove_file(root.join("empty")).unwrap();
                put_dir(root, "empty", 0o644);
            }),
        ),
        (
            "symlink target",
            Box::new(|root| {
                fs::remove_file(root.join("current.xml")).unwrap();
                put_symlink(root, "current.xml", "secret.key");
            }),
        ),
        ("a new empty directory", Box::new(|root| drop(put_dir(root, "new", 0o755)))),
        ("a fifo", Box::new(|root| put_fifo(root, "pipe"))),
        (
            "a nested version file",
            Box::new(|root| drop(put_file(root, &format!("scripts/empty-dir/{VERSION_FILE}"), b"x", 0o644))),
        ),
    ];
    for (what, change) in changes {
        let dir = fresh();
        assert_eq!(digest(dir.path()).unwrap(), base, "a fresh sample has the same digest");
        assert_ne!(digest_after(dir.path(), change), base, "changing the {what} must change the digest");
    }
}

#[test]
fn digest_ignores_times_ownership_and_the_top_level_version_file() {
    let dir = TempDir::new().unwrap();
    sample_config(dir.path());
    let base = digest(dir.path()).unwrap();

    let long_ago = UNIX_EPOCH + Duration::from_secs(1_000_000);
    File::options().write(true).open(dir.path().join("sra.xml")).unwrap().set_modified(long_ago).unwrap();
    File::open(dir.path().join("scripts")).unwrap().set_modified(long_ago).unwrap();
    assert_eq!(digest(dir.path()).unwrap(), base, "mtime");

    if is_root() {
        std::os::unix::fs::lchown(dir.path().join("sra.xml"), Some(660), Some(660)).unwrap();
        std::os::unix::fs::lchown(dir.path().join("current.xml"), Some(1), Some(1)).unwrap();
        assert_eq!(digest(dir.path()).unwrap(), base, "owner");
    }

    put_file(dir.path(), VERSION_FILE, b"anything\n", 0o644);
    assert_eq!(digest(dir.path()).unwrap(), base, "top-level version file");
    fs::remove_file(dir.path().join(VERSION_FILE)).unwrap();
    put_dir(dir.path(), VERSION_FILE, 0o755);
    put_file(dir.path(), &format!("{VERSION_FILE}/inside"), b"x", 0o644);
    assert_eq!(digest(dir.path()).unwrap(), base, "top-level version directory");
    // Only that exact name is reserved.
    put_file(dir.path(), &format!("{VERSION_FILE}.bak"), b"x", 0o644);
    assert_ne!(digest(dir.path()).unwrap(), base, "a name that only starts like it");
}

// ---- the download archive -------------------------------------------------

#[test]
fn pack_then_read_upload_round_trips() {
    let dir = TempDir::new().unwrap();
    sample_config(dir.path());
    let original = digest(dir.path()).unwrap();

    let mut archive = Vec::new();
    assert_eq!(pack(dir.path(), &mut archive).unwrap(), original);

    let upload = upload(archive).unwrap();
    assert_eq!(upload.base_digest, original);
    assert_eq!(upload.tree.digest(), original);
    assert!(!upload.tree.paths().any(|path| path == VERSION_FILE.as_bytes()));

    let out = TempDir::new().unwrap();
    let dest = out.path().join("conf");
    upload.tree.write_to(&dest, None).unwrap();
    assert_eq!(digest(&dest).unwrap(), original);
    assert_eq!(fs::read_link(dest.join("long-link")).unwrap(), fs::read_link(dir.path().join("long-link")).unwrap());
    assert_eq!(fs::read(dest.join(OsStr::from_bytes(b"caf\xe9.txt"))).unwrap(), b"latin-1 name\n");
}

#[test]
fn pack_layout_version_file_first_then_sorted_entries_owned_by_srm() {
    let dir = TempDir::new().unwrap();
    put_dir(dir.path(), "b", 0o750);
    put_file(dir.path(), "b/inner.txt", b"inner", 0o640);
    put_file(dir.path(), "a.txt", b"a", 0o600);
    put_symlink(dir.path(), "c", "a.txt");
    put_fifo(dir.path(), "fifo");
    put_file(dir.path(), VERSION_FILE, b"stale\n", 0o644);
    let mtime = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    File::options().write(true).open(dir.path().join("a.txt")).unwrap().set_modified(mtime).unwrap();

    let mut archive = Vec::new();
    let written = pack(dir.path(), &mut archive).unwrap();
    let plain = gunzip(&archive);
    assert_eq!(member_names(&plain), [VERSION_FILE, "a.txt", "b/", "b/inner.txt", "c"]);

    let mut tar = tar::Archive::new(plain.as_slice());
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (660, 660));
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        match name.as_str() {
            VERSION_FILE => {
                assert_eq!(content, format!("{written}\n").as_bytes());
                assert_eq!(header.mode().unwrap(), 0o644);
            }
            "a.txt" => {
                assert_eq!(header.mode().unwrap(), 0o600);
                assert_eq!(header.mtime().unwrap(), 1_600_000_000);
            }
            "b/" => {
                assert_eq!(header.entry_type(), EntryType::Directory);
                assert_eq!(header.mode().unwrap(), 0o750);
            }
            "b/inner.txt" => assert_eq!(header.mode().unwrap(), 0o640),
            "c" => {
                assert_eq!(header.entry_type(), EntryType::Symlink);
                assert_eq!(entry.link_name_bytes().unwrap().as_ref(), b"a.txt");
            }
            other => panic!("unexpected member {other:?}"),
        }
    }
    // The fifo is left out of the archive, not out of the digest.
    assert_eq!(written, digest(dir.path()).unwrap());
    fs::remove_file(dir.path().join("fifo")).unwrap();
    assert_ne!(written, digest(dir.path()).unwrap());
}

#[test]
fn pack_of_a_missing_directory_is_the_empty_configuration() {
    let dir = TempDir::new().unwrap();
    let mut archive = Vec::new();
    assert_eq!(pack(&dir.path().join("missing"), &mut archive).unwrap(), EMPTY_DIGEST);
    let upload = upload(archive).unwrap();
    assert_eq!(upload.base_digest, EMPTY_DIGEST);
    assert_eq!(upload.tree.entries(), 0);
}

// ---- archives made by other tools -----------------------------------------

fn tool_available(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok_and(|out| out.status.success())
}

/// A configuration with its version file at the top, as a user would have it
/// after unpacking a download: the digest leaves that file out.
fn unpacked_download(root: &Path) -> String {
    sample_config(root);
    let current = digest(root).unwrap();
    put_file(root, VERSION_FILE, format!("{current}\n").as_bytes(), 0o644);
    current
}

/// Archives `conf` as a user would, `tar <options> -czf conf.tgz -C conf .`,
/// and reads the result as an upload.
fn gnu_tar_upload(conf: &Path, options: &[&str]) -> Result<Upload, ConfError> {
    let archive = conf.with_extension("tgz");
    let status = Command::new("tar").args(options).arg("-czf").arg(&archive).arg("-C").arg(conf).arg(".").status();
    assert!(status.unwrap().success(), "tar {options:?}");
    read_upload(File::open(&archive).unwrap(), &Limits::default())
}

#[test]
fn gnu_tar_archives_are_accepted() {
    if !tool_available("tar") {
        eprintln!("skipped: no tar");
        return;
    }
    for options in [&[][..], &["--format=gnu"], &["--format=pax"], &["--format=oldgnu"]] {
        let dir = TempDir::new().unwrap();
        let conf = put_dir(dir.path(), "conf", 0o755);
        let current = unpacked_download(&conf);
        let upload = gnu_tar_upload(&conf, options).unwrap_or_else(|e| panic!("tar {options:?}: {e}"));
        assert_eq!(upload.base_digest, current, "{options:?}");
        assert_eq!(upload.tree.digest(), current, "{options:?}");
    }
}

#[test]
fn gnu_tar_sparse_files_are_refused() {
    if !tool_available("tar") {
        eprintln!("skipped: no tar");
        return;
    }
    for format in ["--format=gnu", "--format=pax"] {
        let dir = TempDir::new().unwrap();
        let conf = put_dir(dir.path(), "conf", 0o755);
        put_file(&conf, VERSION_FILE, SOME_DIGEST.as_bytes(), 0o644);
        let sparse = File::create(conf.join("sparse.img")).unwrap();
        sparse.set_len(1 << 20).unwrap();
        (&sparse).write_all(b"data at the start").unwrap();
        match gnu_tar_upload(&conf, &[format, "--sparse"]) {
            Err(error @ ConfError::Unsafe { .. }) => assert!(error.to_string().contains("sparse"), "{error}"),
            other => panic!("tar {format} --sparse: expected Unsafe, got {other:?}"),
        }
    }
}

#[test]
fn python_tarfile_archives_are_accepted() {
    if !tool_available("python3") {
        eprintln!("skipped: no python3");
        return;
    }
    let script = "import sys, tarfile\n\
                  fmt = getattr(tarfile, sys.argv[3])\n\
                  with tarfile.open(sys.argv[1], 'w:gz', format=fmt) as t:\n    \
                      t.add(sys.argv[2], arcname='.')\n";
    for format in ["PAX_FORMAT", "GNU_FORMAT"] {
        let dir = TempDir::new().unwrap();
        let conf = put_dir(dir.path(), "conf", 0o755);
        let current = unpacked_download(&conf);
        let archive = dir.path().join("conf.tgz");
        let status =
            Command::new("python3").arg("-c").arg(script).arg(&archive).arg(&conf).arg(format).status().unwrap();
        assert!(status.success());
        let upload = read_upload(File::open(&archive).unwrap(), &Limits::default())
            .unwrap_or_else(|e| panic!("python {format}: {e}"));
        assert_eq!(upload.base_digest, current, "{format}");
        assert_eq!(upload.tree.digest(), current, "{format}");
    }
}

#[test]
fn pax_and_gnu_long_names_are_read() {
    let long = format!("{}/{}", "p".repeat(120), "q".repeat(130));
    let archive = RawTar::new()
        .pax("path", long.as_bytes())
        .file("short-name-in-header", b"pax")
        .file(&format!("{}/gnu-long-name", "p".repeat(120)), b"gnu")
        .pax("linkpath", long.as_bytes())
        .symlink("link", "short-target-in-header")
        .version(SOME_DIGEST);
    let upload = upload(archive.gz()).unwrap();
    let paths: Vec<String> = upload.tree.paths().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    assert_eq!(paths, ["link".to_owned(), "p".repeat(120), format!("{}/gnu-long-name", "p".repeat(120)), long.clone()]);
    assert_eq!(upload.tree.nodes[b"link".as_slice()], Node::Symlink { target: long.into_bytes() });
}

// ---- hostile uploads: one test per kind ------------------------------------

#[test]
fn refuses_an_absolute_path() {
    assert_unsafe(RawTar::new().file("/etc/passwd", b"root::0:0"), "/etc/passwd", "absolute");
}

#[test]
fn refuses_a_dot_dot_component() {
    let message = upload(RawTar::new().file("../etc/passwd", b"x").version(SOME_DIGEST).gz()).unwrap_err().to_string();
    assert_eq!(
        message,
        "unsafe member \"../etc/passwd\" in the configuration archive: it has a `..` component; nothing was written"
    );
    assert_unsafe(RawTar::new().dir("a").file("a/../../x", b"x"), "a/../../x", "`..`");
    assert_unsafe(RawTar::new().file("./a/..", b"x"), "./a/..", "`..`");
}

#[test]
fn refuses_an_empty_name_and_a_file_named_like_the_root() {
    assert_unsafe(RawTar::new().file("", b"x"), "", "empty");
    assert_unsafe(RawTar::new().file("./", b"x"), "./", "itself");
    assert_unsafe(RawTar::new().symlink(".", "x"), ".", "itself");
}

#[test]
fn ignores_the_root_directory_entry_and_normalises_dot_components() {
    let archive = RawTar::new().dir("./").dir(".").dir("./sub/").file("./sub/./a", b"a").file("b", b"b");
    let upload = upload(archive.version(SOME_DIGEST).gz()).unwrap();
    let paths: Vec<&[u8]> = upload.tree.paths().collect();
    assert_eq!(paths, [b"b".as_slice(), b"sub", b"sub/a"]);
}

#[test]
fn refuses_devices_fifos_and_other_special_members() {
    for (kind, name) in [
        (EntryType::Char, "character device"),
        (EntryType::Block, "block device"),
        (EntryType::Fifo, "fifo"),
        (EntryType::Continuous, "contiguous file"),
        (EntryType::GNUSparse, "GNU sparse file"),
        (EntryType::new(b'Z'), "type 'Z'"),
    ] {
        assert_unsafe(RawTar::new().member(b"dev/thing", kind, 0o644, None, b""), "dev/thing", name);
    }
}

#[test]
fn refuses_a_symlink_to_an_absolute_path() {
    assert_unsafe(RawTar::new().symlink("etc", "/etc"), "etc", "absolute path \"/etc\"");
}

#[test]
fn refuses_a_symlink_leading_outside() {
    assert_unsafe(RawTar::new().dir("sub").symlink("sub/up", "../../x"), "sub/up", "leads outside");
    assert_unsafe(RawTar::new().symlink("up", ".."), "up", "leads outside");
    // Inside, even when going up and down again.
    let fine = RawTar::new().dir("a").dir("b").symlink("a/l", "../b/./x/..").symlink("self", ".");
    upload(fine.version(SOME_DIGEST).gz()).unwrap();
}

#[test]
fn refuses_a_symlink_leading_outside_through_another_symlink() {
    // Each target stays inside when read alone; "y" resolves to the root's parent.
    assert_unsafe(RawTar::new().symlink("x", ".").symlink("y", "x/.."), "y", "other symlinks");
    assert_unsafe(
        RawTar::new().dir("deep").dir("deep/er").symlink("deep/er/top", "../..").symlink("esc", "deep/er/top/.."),
        "esc",
        "leads outside",
    );
    // Order in the archive does not matter.
    assert_unsafe(RawTar::new().symlink("y", "x/..").symlink("x", "."), "y", "other symlinks");
}

#[test]
fn refuses_symlinks_that_loop() {
    assert_unsafe(RawTar::new().symlink("a", "b").symlink("b", "a"), "a", "loops");
}

#[test]
fn refuses_a_bad_hard_link() {
    assert_unsafe(RawTar::new().hard_link("l", "missing"), "l", "not a regular file earlier");
    assert_unsafe(RawTar::new().dir("d").hard_link("l", "d"), "l", "not a regular file earlier");
    assert_unsafe(RawTar::new().hard_link("l", "later").file("later", b"x"), "l", "not a regular file earlier");
    assert_unsafe(RawTar::new().file("f", b"x").symlink("s", "f").hard_link("l", "s"), "l", "not a regular file");
    assert_unsafe(RawTar::new().hard_link("l", "/etc/shadow"), "l", "absolute path \"/etc/shadow\"");
    assert_unsafe(RawTar::new().hard_link("l", "../x"), "l", "`..`");
    assert_unsafe(RawTar::new().hard_link("l", "l"), "l", "not a regular file earlier");
}

#[test]
fn a_hard_link_becomes_a_copy_of_its_file() {
    let archive = RawTar::new().member(b"f", EntryType::Regular, 0o640, None, b"shared").hard_link("./l", "./f");
    let upload = upload(archive.version(SOME_DIGEST).gz()).unwrap();
    assert_eq!(upload.tree.nodes[b"l".as_slice()], Node::File { mode: 0o640, content: b"shared".to_vec() });
    assert_eq!(upload.tree.content_bytes(), 12);
}

#[test]
fn refuses_a_member_through_a_symlink_of_the_archive() {
    assert_unsafe(
        RawTar::new().dir("sub").symlink("l", "sub").file("l/evil", b"x"),
        "l/evil",
        "\"l\", which is a symlink",
    );
    // A symlink arriving after members below the same path.
    assert_unsafe(RawTar::new().file("d/x", b"x").symlink("d", "elsewhere"), "d", "members below \"d\"");
}

#[test]
fn refuses_a_member_below_a_regular_file() {
    assert_unsafe(RawTar::new().file("f", b"x").file("f/x", b"y"), "f/x", "parent \"f\" is a regular file");
}

#[test]
fn refuses_a_duplicate_path() {
    assert_unsafe(RawTar::new().file("a", b"1").file("a", b"2"), "a", "appears earlier");
    assert_unsafe(RawTar::new().file("a", b"1").file("./a", b"2"), "./a", "appears earlier");
    assert_unsafe(RawTar::new().dir("d").dir("d/"), "d/", "appears earlier");
}

#[test]
fn a_directory_may_follow_what_it_holds() {
    let archive = RawTar::new().file("d/e/f", b"x").member(b"d/", EntryType::Directory, 0o700, None, b"");
    let upload = upload(archive.version(SOME_DIGEST).gz()).unwrap();
    assert_eq!(upload.tree.nodes[b"d".as_slice()], Node::Dir { mode: 0o700 });
    assert_eq!(upload.tree.nodes[b"d/e".as_slice()], Node::Dir { mode: 0o755 });
}

#[test]
fn refuses_hostile_names_hidden_in_pax_and_gnu_long_names() {
    // The header's own name is harmless; the pax record overrides it.
    assert_unsafe(RawTar::new().pax("path", b"../escape").file("harmless", b"x"), "../escape", "`..`");
    assert_unsafe(RawTar::new().pax("path", b"a\0b").file("harmless", b"x"), "a\u{0}b", "NUL");
    let long = format!("{}/../../escape", "x".repeat(120));
    assert_unsafe(RawTar::new().file(&long, b"x"), &long, "`..`");
}

// ---- corrupt archives ------------------------------------------------------

fn sizeable_upload() -> Vec<u8> {
    // Incompressible enough that the gzip stream is long.
    let mut noise = Vec::with_capacity(200_000);
    let mut state: u32 = 12345;
    for _ in 0..200_000 {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        noise.push((state >> 16) as u8);
    }
    RawTar::new().file("noise.bin", &noise).file("after", b"after").version(SOME_DIGEST).gz()
}

#[test]
fn refuses_truncated_gzip() {
    let archive = sizeable_upload();
    upload(archive.clone()).unwrap();
    for keep in [0, 5, 100, archive.len() / 2, archive.len() - 9, archive.len() - 4, archive.len() - 1] {
        assert_corrupt(upload(archive[..keep].to_vec()), &format!("first {keep} of {} bytes", archive.len()));
    }
}

#[test]
fn refuses_flipped_bytes() {
    let archive = sizeable_upload();
    for at in [archive.len() / 3, archive.len() / 2, archive.len() - 6] {
        let mut damaged = archive.clone();
        damaged[at] ^= 0x55;
        assert_corrupt(upload(damaged), &format!("byte {at} flipped"));
    }
}

#[test]
fn refuses_what_is_not_a_gzip_tar() {
    assert_corrupt(upload(b"PK\x03\x04 this is a zip".to_vec()), "not gzip");
    assert_corrupt(upload(RawTar::new().version(SOME_DIGEST).tar()), "a plain tar where gzip is expected");
    assert_corrupt(upload(gzip(&b"just some text, not a tar header\n".repeat(40))), "gzip of text");
}

#[test]
fn refuses_a_plain_tar_cut_short() {
    let tar = RawTar::new().dir("conf").file("conf/a", &[7u8; 5000]).tar();
    let message = read_image_tree(&tar[..2048], "conf", &Limits::default()).unwrap_err();
    assert!(matches!(message, ConfError::Corrupt { .. }), "{message:?}");
    assert!(message.to_string().contains("conf/a"), "{message}");
}

// ---- limits ----------------------------------------------------------------

#[test]
fn refuses_too_many_entries() {
    let limits = Limits { max_entries: 5, ..Limits::default() };
    let mut archive = RawTar::new().version(SOME_DIGEST);
    for i in 0..10 {
        archive = archive.file(&format!("f{i}"), b"x");
    }
    assert_too_large(read_upload(archive.gz().as_slice(), &limits), "f4", "max_entries");
    // Directories that a path implies count too.
    let deep = RawTar::new().version(SOME_DIGEST).file("a/b/c/d/e", b"x");
    assert_too_large(read_upload(deep.gz().as_slice(), &limits), "a/b/c/d/e", "max_entries");
}

#[test]
fn refuses_too_many_bytes_from_the_header_before_reading() {
    // Claims a terabyte and holds nothing: refused on the claim, not as truncated.
    let archive = RawTar::new().version(SOME_DIGEST).claiming("huge.bin", EntryType::Regular, 1 << 40, b"");
    assert_too_large(upload(archive.gz()), "huge.bin", "max_bytes");
}

#[test]
fn refuses_too_many_bytes_summed_over_files_and_hard_link_copies() {
    let limits = Limits { max_bytes: 1000, ..Limits::default() };
    // The version file comes last here, or its 41 bytes would count first.
    let files = RawTar::new().file("a", &[1; 500]).file("b", &[2; 500]).file("c", &[3; 10]).version(SOME_DIGEST);
    assert_too_large(read_upload(files.gz().as_slice(), &limits), "c", "1000 bytes (max_bytes)");
    let links = RawTar::new().file("a", &[1; 600]).hard_link("b", "a").version(SOME_DIGEST);
    assert_too_large(read_upload(links.gz().as_slice(), &limits), "b", "max_bytes");
}

#[test]
fn refuses_an_archive_that_unpacks_past_its_limits() {
    // A directory member claiming a megabyte of (ignored) data: no file content,
    // but the stream is far larger than the limits allow.
    let limits = Limits { max_bytes: 1024, max_entries: 4 };
    let archive = RawTar::new().version(SOME_DIGEST).claiming("d/", EntryType::Directory, 1 << 20, &vec![0; 1 << 20]);
    assert_too_large(read_upload(archive.gz().as_slice(), &limits), "d/", "uncompressed archive");
}

#[test]
fn refuses_a_path_too_long_to_write() {
    let long = ["x"; 2100].join("/");
    assert_too_large(upload(RawTar::new().version(SOME_DIGEST).file(&long, b"x").gz()), &long, "4095 bytes");
    let long_name = "n".repeat(300);
    assert_too_large(upload(RawTar::new().version(SOME_DIGEST).file(&long_name, b"x").gz()), &long_name, "255");
}

#[test]
fn default_limits() {
    assert_eq!(Limits::default(), Limits { max_bytes: 64 * 1024 * 1024, max_entries: 10_000 });
}

// ---- the version file ------------------------------------------------------

#[test]
fn refuses_an_upload_without_a_version_file() {
    assert_version_error(RawTar::new().file("a", b"x"), "top level");
    // Only the top-level one counts.
    assert_version_error(
        RawTar::new().dir("sub").file(&format!("sub/{VERSION_FILE}"), SOME_DIGEST.as_bytes()),
        "top level",
    );
}

#[test]
fn refuses_a_version_file_that_is_not_a_regular_file() {
    assert_version_error(RawTar::new().dir(VERSION_FILE), "directory");
    assert_version_error(RawTar::new().file(&format!("{VERSION_FILE}/x"), b"x"), "directory");
    assert_version_error(RawTar::new().file("real", SOME_DIGEST.as_bytes()).symlink(VERSION_FILE, "real"), "symlink");
}

#[test]
fn refuses_a_version_file_that_is_not_a_digest() {
    assert_version_error(RawTar::new().file(VERSION_FILE, b"not a digest\n"), "not the 40 hexadecimal digits");
    assert_version_error(RawTar::new().file(VERSION_FILE, &SOME_DIGEST.as_bytes()[..39]), "40 hexadecimal");
    assert_version_error(RawTar::new().file(VERSION_FILE, format!("{SOME_DIGEST}0").as_bytes()), "40 hexadecimal");
    assert_version_error(RawTar::new().file(VERSION_FILE, format!("{SOME_DIGEST} {SOME_DIGEST}").as_bytes()), "40");
    assert_version_error(RawTar::new().file(VERSION_FILE, &[b' '; 2000]), "2000 bytes long");
}

#[test]
fn the_version_file_may_have_whitespace_and_capitals() {
    let upper = SOME_DIGEST.to_ascii_uppercase();
    let archive = RawTar::new()
        .file("a", b"x")
        .file(VERSION_FILE, format!("\n  {upper}\r\n").as_bytes())
        .dir("sub")
        .file(&format!("sub/{VERSION_FILE}"), b"just a file");
    let upload = upload(archive.gz()).unwrap();
    assert_eq!(upload.base_digest, SOME_DIGEST);
    let paths: Vec<&[u8]> = upload.tree.paths().collect();
    assert_eq!(paths, [b"a".as_slice(), b"sub", format!("sub/{VERSION_FILE}").as_bytes()]);
}

// ---- the image's configuration ----------------------------------------------

#[test]
fn read_image_tree_strips_the_directory_prefix() {
    let tar = RawTar::new()
        .dir("conf/")
        .member(b"conf/a.xml", EntryType::Regular, 0o640, None, b"<a/>")
        .dir("conf/sub/")
        .file("conf/sub/b.txt", b"b")
        .symlink("conf/sub/link", "../a.xml")
        .hard_link("conf/copy.xml", "conf/a.xml")
        .file(&format!("conf/{VERSION_FILE}"), b"in an image this is just a file")
        .tar();
    let tree = read_image_tree(tar.as_slice(), "conf", &Limits::default()).unwrap();
    let paths: Vec<&[u8]> = tree.paths().collect();
    assert_eq!(paths, [b"a.xml".as_slice(), b"copy.xml", VERSION_FILE.as_bytes(), b"sub", b"sub/b.txt", b"sub/link"]);

    let out = TempDir::new().unwrap();
    let dest = out.path().join("conf");
    tree.write_to(&dest, None).unwrap();
    assert_eq!(fs::read(dest.join("sub/link")).unwrap(), b"<a/>");
    assert_eq!(fs::read(dest.join("copy.xml")).unwrap(), b"<a/>");
    assert_eq!(mode_of(&dest.join("copy.xml")), 0o640);
    assert_eq!(fs::read(dest.join(VERSION_FILE)).unwrap(), b"in an image this is just a file");
    assert_eq!(digest(&dest).unwrap(), tree.digest());

    // The prefix may be spelled with "./" and a trailing slash.
    assert_eq!(read_image_tree(tar.as_slice(), "./conf/", &Limits::default()).unwrap(), tree);
}

#[test]
fn read_image_tree_refuses_members_outside_the_prefix_and_unsafe_ones() {
    let outside = RawTar::new().dir("conf/").file("etc/passwd", b"x").tar();
    let error = read_image_tree(outside.as_slice(), "conf", &Limits::default()).unwrap_err();
    assert!(matches!(error, ConfError::Unsafe { ref member, .. } if member == "etc/passwd"), "{error:?}");

    let escaping = RawTar::new().dir("conf/").symlink("conf/l", "../../etc").tar();
    let error = read_image_tree(escaping.as_slice(), "conf", &Limits::default()).unwrap_err();
    assert!(matches!(error, ConfError::Unsafe { ref member, .. } if member == "conf/l"), "{error:?}");

    let link_out = RawTar::new().dir("conf/").hard_link("conf/l", "etc/passwd").tar();
    let error = read_image_tree(link_out.as_slice(), "conf", &Limits::default()).unwrap_err();
    assert!(matches!(error, ConfError::Unsafe { ref member, .. } if member == "conf/l"), "{error:?}");
    assert!(error.to_string().contains("outside the directory"), "{error}");

    // Without a prefix, everything is inside.
    let tree = read_image_tree(outside.as_slice(), "", &Limits::default()).unwrap();
    assert_eq!(tree.entries(), 3);
}

// ---- writing ---------------------------------------------------------------

fn tree_of(nodes: &[(&str, Node)]) -> Tree {
    Tree { nodes: nodes.iter().map(|(path, node)| (path.as_bytes().to_vec(), node.clone())).collect() }
}

fn file(mode: u32, content: &[u8]) -> Node {
    Node::File { mode, content: content.to_vec() }
}

#[test]
fn write_to_sets_modes_without_special_bits_and_owner() {
    let tree = tree_of(&[
        ("plain", file(0o640, b"plain")),
        ("setuid", file(0o4755, b"#!/bin/sh\n")),
        ("shared", Node::Dir { mode: 0o2775 }),
        ("readonly", Node::Dir { mode: 0o500 }),
        ("readonly/inside", file(0o400, b"inside")),
        ("link", Node::Symlink { target: b"plain".to_vec() }),
    ]);
    let out = TempDir::new().unwrap();
    let dest = out.path().join("conf");
    let owner = is_root().then_some(SRM_OWNER);
    tree.write_to(&dest, owner).unwrap();

    assert_eq!(mode_of(&dest), 0o755);
    assert_eq!(mode_of(&dest.join("plain")), 0o640);
    assert_eq!(mode_of(&dest.join("setuid")), 0o755);
    assert_eq!(mode_of(&dest.join("shared")), 0o775);
    assert_eq!(mode_of(&dest.join("readonly")), 0o500);
    assert_eq!(fs::read(dest.join("readonly/inside")).unwrap(), b"inside");
    assert_eq!(fs::read_link(dest.join("link")).unwrap(), Path::new("plain"));
    assert_eq!(digest(&dest).unwrap(), tree.digest());

    if is_root() {
        for rel in ["", "plain", "setuid", "shared", "readonly", "readonly/inside", "link"] {
            let meta = fs::symlink_metadata(dest.join(rel)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), SRM_OWNER, "owner of {rel:?}");
        }
    } else {
        eprintln!("not root: ownership not checked");
    }
}

#[test]
fn write_to_refuses_an_existing_destination_and_leaves_it_alone() {
    let out = TempDir::new().unwrap();
    let dest = put_dir(out.path(), "conf", 0o755);
    put_file(&dest, "keep", b"keep", 0o644);
    let error = tree_of(&[("new", file(0o644, b"new"))]).write_to(&dest, None).unwrap_err();
    assert!(matches!(error, ConfError::Io { ref path, .. } if path == &dest), "{error:?}");
    assert_eq!(fs::read(dest.join("keep")).unwrap(), b"keep");
    assert!(!dest.join("new").exists());

    let error = Tree::default().write_to(&out.path().join("missing/conf"), None).unwrap_err();
    assert!(matches!(error, ConfError::Io { .. }), "{error:?}");
}

#[test]
fn write_to_removes_what_it_created_on_error() {
    // Not a tree a reader would make: "a/b" without its directory "a".
    let tree = tree_of(&[("0ro", Node::Dir { mode: 0o500 }), ("0ro/x", file(0o644, b"x")), ("a/b", file(0o644, b"b"))]);
    let out = TempDir::new().unwrap();
    let dest = out.path().join("conf");
    let error = tree.write_to(&dest, None).unwrap_err();
    assert!(matches!(error, ConfError::Io { ref path, .. } if path == &dest.join("a/b")), "{error:?}");
    assert!(!dest.exists(), "the partial tree was removed");
}

#[test]
fn copy_tree_preserves_the_digest() {
    let dir = TempDir::new().unwrap();
    let from = put_dir(dir.path(), "from", 0o755);
    sample_config(&from);
    put_file(&from, VERSION_FILE, b"copied too\n", 0o644);
    let to = dir.path().join("to");
    copy_tree(&from, &to, is_root().then_some(SRM_OWNER)).unwrap();
    assert_eq!(digest(&to).unwrap(), digest(&from).unwrap());
    assert_eq!(fs::read(to.join(VERSION_FILE)).unwrap(), b"copied too\n");
    assert_eq!(mode_of(&to.join("scripts")), 0o750);
    if is_root() {
        let meta = fs::symlink_metadata(to.join("scripts/up")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), SRM_OWNER);
    }
}

#[test]
fn copy_tree_leaves_out_special_files_and_copies_a_missing_directory_as_empty() {
    let dir = TempDir::new().unwrap();
    let from = put_dir(dir.path(), "from", 0o755);
    put_file(&from, "a", b"a", 0o644);
    put_fifo(&from, "pipe");
    copy_tree(&from, &dir.path().join("to"), None).unwrap();
    let names: Vec<_> = fs::read_dir(dir.path().join("to")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, [OsStr::new("a")]);

    copy_tree(&dir.path().join("missing"), &dir.path().join("empty"), None).unwrap();
    assert_eq!(digest(&dir.path().join("empty")).unwrap(), EMPTY_DIGEST);
}

#[test]
fn error_messages_name_the_member_for_a_person() {
    let error = ConfError::TooLarge { member: "big.iso".into(), reason: "its 5 bytes ...".into() };
    assert!(error.to_string().contains("\"big.iso\""));
    let error = ConfError::Io { path: "/var/lib/x".into(), source: std::io::Error::other("disk on fire") };
    assert_eq!(error.to_string(), "/var/lib/x: disk on fire");
}
