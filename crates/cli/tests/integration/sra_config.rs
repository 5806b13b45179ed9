//! The SRA configuration service (seed 000, "Managing SRA Configuration")
//! against the real engine: download, upload with the version digest,
//! copy, reset, what execution containers see, and unsafe uploads.

use crate::bin;
use crate::sra_support::*;
use berth_testkit::harness::{poll, TestDaemon, TEST_SETTINGS};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

const VERSION_FILE: &str = "sra-configuration-version.txt";

/// Path → content of the regular files of a configuration archive.
fn members(archive: &Path) -> BTreeMap<String, String> {
    let mut tar = tar::Archive::new(GzDecoder::new(std::fs::File::open(archive).unwrap()));
    let mut files = BTreeMap::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut content = String::new();
            entry.read_to_string(&mut content).unwrap();
            files.insert(path, content);
        }
    }
    files
}

/// A gzipped tar of `files` (regular files, mode 0644).
fn archive_of(path: &Path, files: &BTreeMap<String, String>) {
    let mut tar = tar::Builder::new(GzEncoder::new(std::fs::File::create(path).unwrap(), Default::default()));
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, content.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

fn download(sra: &Sra, image: &str, name: &str) -> (PathBuf, BTreeMap<String, String>) {
    let path = sra.daemon.dir.path().join(name);
    let run = sra.daemon.berth(&["sra", "config", "download", image, "-o", &path.to_string_lossy()]);
    assert_eq!(run.code, 0, "{run:?}");
    let files = members(&path);
    (path, files)
}

/// Downloads, sets settings.txt to `settings`, and writes the upload archive.
pub(crate) fn edited(sra: &Sra, image: &str, settings: &str, name: &str) -> PathBuf {
    let (_, mut files) = download(sra, image, &format!("{name}.download.tar.gz"));
    files.insert("settings.txt".into(), settings.into());
    let path = sra.daemon.dir.path().join(format!("{name}.tar.gz"));
    archive_of(&path, &files);
    path
}

fn upload(sra: &Sra, image: &str, archive: &Path) -> berth_testkit::harness::Run {
    sra.daemon.berth(&["sra", "config", "upload", image, &archive.to_string_lossy()])
}

/// What the SRA's `conf` command reads from /srm/sra/conf/settings.txt.
fn seen(sra: &Sra, image: &str, tmp: &Path, log: &Path) -> String {
    let run = sra_run(sra, image, tmp, log, "conf", &[]);
    assert_eq!(run.code, 0, "{run:?}");
    run.stdout.split("<Conf>").nth(1).and_then(|rest| rest.split("</Conf>").next()).unwrap_or_default().to_owned()
}

fn listed_digest(sra: &Sra, image: &str) -> String {
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&sra.daemon.berth(&["sra", "list", "-o", "json"]).stdout).unwrap();
    list.iter().find(|i| i["id"] == image).unwrap()["config_digest"].as_str().unwrap().to_owned()
}

#[test]
fn download_edit_upload_and_every_container_sees_the_current_configuration() {
    let sra = loaded();
    let (tmp, log) = (dir(&sra, "tmp"), dir(&sra, "log"));
    assert_eq!(seen(&sra, &sra.image, &tmp, &log), "factory", "the image's own configuration to begin with");

    let (_, files) = download(&sra, &sra.tag, "first.tar.gz");
    assert_eq!(files.get("settings.txt").map(String::as_str), Some("factory"));
    assert_eq!(files.get("sub/more.txt").map(String::as_str), Some("factory-more"));
    let digest = files[VERSION_FILE].trim().to_owned();
    assert_eq!(digest, listed_digest(&sra, &sra.image));

    let stale = edited(&sra, &sra.image, "edited-1", "edit1");
    let run = upload(&sra, &sra.image, &stale);
    assert_eq!(run.code, 0, "{run:?}");
    assert_ne!(listed_digest(&sra, &sra.image), digest);
    assert_eq!(seen(&sra, &sra.image, &tmp, &log), "edited-1", "the next command sees the upload");

    // Uploading an archive made from the old configuration: refused, nothing changed.
    let run = upload(&sra, &sra.image, &stale);
    assert_eq!(run.code, 11, "{run:?}");
    assert!(run.stderr.contains("download it again"), "{run:?}");
    assert_eq!(seen(&sra, &sra.image, &tmp, &log), "edited-1");

    // Another execution container of the image sees the same configuration,
    // owned by the srm user, writable, and kept across container re-creation.
    let other_log = dir(&sra, "log2");
    assert_eq!(seen(&sra, &sra.image, &tmp, &other_log), "edited-1");
    let owner = sra_run(&sra, &sra.image, &tmp, &other_log, "confowner", &[]);
    assert!(owner.stdout.contains("<Owner>660:660</Owner>"), "{owner:?}");
    assert_eq!(sra_run(&sra, &sra.image, &tmp, &other_log, "confwrite", &[]).code, 0);
    remove_execution_containers(&sra.image);
    assert_eq!(seen(&sra, &sra.image, &tmp, &log), "edited-1");
    let (_, files) = download(&sra, &sra.image, "after.tar.gz");
    assert_eq!(files.get("runtime.txt").map(String::as_str), Some("written at runtime\n"));
}

#[test]
fn of_concurrent_uploads_from_one_download_exactly_one_wins() {
    let sra = loaded();
    let archives: Vec<PathBuf> =
        (0..4).map(|i| edited(&sra, &sra.image, &format!("racer-{i}"), &format!("race{i}"))).collect();
    let codes: Vec<i32> = std::thread::scope(|scope| {
        let runs: Vec<_> = archives.iter().map(|a| scope.spawn(|| upload(&sra, &sra.image, a))).collect();
        runs.into_iter().map(|r| r.join().unwrap().code).collect()
    });
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 11).count(), 3, "{codes:?}");
}

#[test]
fn a_running_command_sees_the_old_files_or_the_new_never_a_mix() {
    let sra = loaded();
    let (tmp, log) = (dir(&sra, "atmp"), dir(&sra, "alog"));
    let (_, mut files) = download(&sra, &sra.image, "base.tar.gz");
    files.insert("settings.txt".into(), "new".into());
    files.insert("sub/more.txt".into(), "new-more".into());
    let archive = sra.daemon.dir.path().join("new.tar.gz");
    archive_of(&archive, &files);
    let (during, uploaded) = std::thread::scope(|scope| {
        // Reads both files, says so, waits 3 s, reads them again.
        let slow = scope.spawn(|| sra_run(&sra, &sra.image, &tmp, &log, "confslow", &[]));
        poll(std::time::Duration::from_secs(60), || {
            commands_run(&log).iter().any(|l| l == "confslow has read").then_some(())
        })
        .expect("confslow read the files");
        let uploaded = upload(&sra, &sra.image, &archive);
        (slow.join().unwrap(), uploaded)
    });
    assert_eq!(uploaded.code, 0, "{uploaded:?}");
    assert_eq!(during.code, 0, "{during:?}");
    assert!(during.stdout.contains("<Conf>factory,factory-more|factory,factory-more</Conf>"), "{during:?}");
    let after = sra_run(&sra, &sra.image, &tmp, &log, "confslow", &[]);
    assert!(after.stdout.contains("<Conf>new,new-more|new,new-more</Conf>"), "{after:?}");
}

#[test]
fn copy_between_versions_and_reset_to_factory() {
    let mut sra = loaded();
    let newer = load_another(&mut sra, "factory-v2");
    let (tmp, log) = (dir(&sra, "ctmp"), dir(&sra, "clog"));
    assert_eq!(upload(&sra, &sra.image, &edited(&sra, &sra.image, "tuned", "tuned")).code, 0);
    assert_eq!(seen(&sra, &newer, &tmp, &log), "factory-v2");

    let run = sra.daemon.berth(&["sra", "config", "copy", &sra.image, &newer]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(seen(&sra, &newer, &tmp, &log), "tuned");
    assert_eq!(listed_digest(&sra, &newer), listed_digest(&sra, &sra.image));

    let run = sra.daemon.berth(&["sra", "config", "reset", &newer]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(seen(&sra, &newer, &tmp, &log), "factory-v2");
    assert_eq!(seen(&sra, &sra.image, &tmp, &log), "tuned", "the source keeps its own");

    let run = sra.daemon.berth(&["sra", "config", "copy", &sra.image, "berth-test/none:404"]);
    assert_eq!(run.code, 5, "{run:?}");
    remove_execution_containers(&newer);
}

/// A raw tar header: the tar crate's safe setters refuse what these tests need.
fn raw_entry(name: &str, kind: tar::EntryType, link: Option<&str>, content: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    let bytes = header.as_old_mut();
    bytes.name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(link) = link {
        bytes.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_mode(0o644);
    header.set_size(content.len() as u64);
    header.set_entry_type(kind);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn gzip_of(entries: &[Vec<u8>]) -> Vec<u8> {
    use std::io::Write;
    let mut tar: Vec<u8> = entries.concat();
    tar.extend_from_slice(&[0; 1024]);
    let mut gz = GzEncoder::new(Vec::new(), Default::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

#[test]
fn unsafe_or_malformed_uploads_are_refused_and_nothing_is_written() {
    let daemon = TestDaemon::start_with(
        bin(),
        &format!("{TEST_SETTINGS}[sra]\nconfig_max_bytes = 4096\nconfig_max_entries = 20\n"),
        &[],
        None,
    );
    let sra = loaded_with(daemon);
    let (_, files) = download(&sra, &sra.image, "base.tar.gz");
    let version = files[VERSION_FILE].clone();
    let version_entry = || raw_entry(VERSION_FILE, tar::EntryType::Regular, None, version.as_bytes());
    let file = |name: &str| raw_entry(name, tar::EntryType::Regular, None, b"x");
    let many: Vec<Vec<u8>> = (0..30).map(|i| file(&format!("f{i}"))).collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("absolute", gzip_of(&[version_entry(), file("/etc/evil")]), "/etc/evil"),
        ("dotdot", gzip_of(&[version_entry(), file("sub/../../evil")]), "sub/../../evil"),
        (
            "symlink out",
            gzip_of(&[version_entry(), raw_entry("link", tar::EntryType::Symlink, Some("../../etc"), b"")]),
            "link",
        ),
        (
            "absolute symlink",
            gzip_of(&[version_entry(), raw_entry("abs", tar::EntryType::Symlink, Some("/etc/passwd"), b"")]),
            "abs",
        ),
        (
            "hard link out",
            gzip_of(&[version_entry(), raw_entry("hard", tar::EntryType::Link, Some("../outside"), b"")]),
            "hard",
        ),
        ("device", gzip_of(&[version_entry(), raw_entry("dev", tar::EntryType::Char, None, b"")]), "dev"),
        ("fifo", gzip_of(&[version_entry(), raw_entry("pipe", tar::EntryType::Fifo, None, b"")]), "pipe"),
        ("no version file", gzip_of(&[file("settings.txt")]), VERSION_FILE),
        (
            "malformed version file",
            gzip_of(&[raw_entry(VERSION_FILE, tar::EntryType::Regular, None, b"not-a-digest"), file("a")]),
            VERSION_FILE,
        ),
        ("too many entries", gzip_of(&[&[version_entry()][..], &many[..]].concat()), "limit"),
        (
            "too many bytes",
            gzip_of(&[version_entry(), raw_entry("big", tar::EntryType::Regular, None, &[7; 10_000])]),
            "big",
        ),
        ("corrupt gzip", b"\x1f\x8b\x08\x00garbage that is not deflate".to_vec(), "corrupt"),
    ];
    let root = config_root(&sra, &sra.image);
    let listing = |root: &Path| -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(root).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    };
    let before = (listing(&root), listed_digest(&sra, &sra.image));
    for (what, bytes, named) in cases {
        let path = sra.daemon.dir.path().join(format!("{}.tar.gz", what.replace(' ', "-")));
        std::fs::write(&path, bytes).unwrap();
        let run = upload(&sra, &sra.image, &path);
        // Over a limit is "too large" (14); everything else is invalid input (2).
        let expected = if what.starts_with("too many") { 14 } else { 2 };
        assert_eq!(run.code, expected, "{what}: {run:?}");
        assert!(run.stderr.contains(named), "{what}: {run:?}");
        assert!(run.stderr.contains("nothing was written"), "{what}: {run:?}");
        assert_eq!((listing(&root), listed_digest(&sra, &sra.image)), before, "{what}: something changed");
    }
    assert!(!Path::new("/etc/evil").exists());
}

#[test]
fn download_to_standard_output_and_upload_from_standard_input() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let sra = loaded();
    let downloaded = Command::new(bin())
        .args(["sra", "config", "download", &sra.image, "-o", "-"])
        .env("BERTH_SOCKET", &sra.daemon.socket)
        .output()
        .unwrap();
    assert!(downloaded.status.success(), "{downloaded:?}");
    assert_eq!(&downloaded.stdout[..2], b"\x1f\x8b", "a gzip stream");
    let mut upload = Command::new(bin())
        .args(["sra", "config", "upload", &sra.image, "-"])
        .env("BERTH_SOCKET", &sra.daemon.socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    upload.stdin.take().unwrap().write_all(&downloaded.stdout).unwrap();
    let uploaded = upload.wait_with_output().unwrap();
    assert!(uploaded.status.success(), "{uploaded:?}");
    let digest = listed_digest(&sra, &sra.image);
    assert!(String::from_utf8_lossy(&uploaded.stdout).contains(&digest), "{uploaded:?}");
}

/// Defect 12: `-o f.tgz`, a bare file name, is written in the working
/// directory (the parent of a bare name is `.`, not `""`), and nothing else is.
#[test]
fn download_to_a_bare_file_name_in_the_working_directory() {
    let sra = loaded();
    let cwd = sra.daemon.dir.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let run = sra.daemon.berth_in(&cwd, &["sra", "config", "download", &sra.image, "-o", "f.tgz"]);
    assert_eq!(run.code, 0, "{run:?}");
    let files = members(&cwd.join("f.tgz"));
    assert_eq!(files.get("settings.txt").map(String::as_str), Some("factory"));
    assert_eq!(files[VERSION_FILE].trim(), listed_digest(&sra, &sra.image));
    let left: Vec<_> = std::fs::read_dir(&cwd).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, ["f.tgz"], "no temp file is left beside it");
}
