//! Installing from http: streamed, redirects followed, dropped transfers
//! resumed with Range requests, `--sha256` checked before the image is used.
//! The server is the testkit's loopback file server.

use crate::bin;

use berth_testkit::harness::{image_exists, inspect, unique, RefusedPort, Run, TestDaemon};
use berth_testkit::http_server::{FileServer, Validator};
use berth_testkit::{write_plain_tar, ImageBuilder};
use sha2::{Digest, Sha256};

/// A served gzip image archive of about `pad_kib` KiB of incompressible bytes.
fn served(daemon: &mut TestDaemon, server: &FileServer, name: &str, pad_kib: u64) -> (String, String, String) {
    let builder = ImageBuilder::new(&format!("berth-test/{name}:1"))
        .service()
        .label("berth.test.sweep", "1")
        .pseudorandom_file("/opt/pad.bin", pad_kib * 1024, 7);
    let archive = daemon.archive(&builder, true);
    let path = format!("/files/{name}.tar.gz");
    server.file(&path, &archive.path);
    let sha = Sha256::digest(std::fs::read(&archive.path).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
    (server.url(&path), archive.image_id, sha)
}

fn assert_running(daemon: &TestDaemon, run: &Run, name: &str) {
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(inspect(name).expect("container")["State"]["Running"], true);
    assert_eq!(daemon.app(name).unwrap()["state"], "running");
}

fn assert_refused(daemon: &TestDaemon, run: &Run, code: i32, name: &str, needles: &[&str]) {
    assert_eq!(run.code, code, "{run:?}");
    for needle in needles {
        assert!(run.stderr.contains(needle), "stderr lacks {needle:?}: {run:?}");
    }
    assert!(daemon.app(name).is_none());
    assert!(daemon.containers().is_empty());
    assert!(!daemon.private_dir(name).exists());
}

#[test]
fn installs_from_a_url_with_tpcm_syntax_and_follows_redirects() {
    let mut daemon = TestDaemon::start(bin());
    let server = FileServer::start();
    let name = unique("http");
    let (url, image_id, _) = served(&mut daemon, &server, &name, 64);
    let tpcm = daemon.dir.path().join("tpcm");
    std::os::unix::fs::symlink(bin(), &tpcm).unwrap();
    let run = daemon.berth_as(&tpcm, &["install", &name, "--args", "-e A=1", &url, "-y"]);
    assert_running(&daemon, &run, &name);
    let app = daemon.app(&name).unwrap();
    assert_eq!((app["source"].as_str(), app["image_id"].as_str()), (Some(url.as_str()), Some(image_id.as_str())));

    let moved = unique("http");
    server.redirect("/old/location.tar.gz", &url);
    let run = daemon.berth(&["install", &moved, &server.url("/old/location.tar.gz"), "-y"]);
    assert_running(&daemon, &run, &moved);
}

#[test]
fn a_dropped_transfer_is_resumed_with_a_range_request() {
    let mut daemon = TestDaemon::start(bin());
    let server = FileServer::start();
    let name = unique("resume");
    let (url, image_id, sha) = served(&mut daemon, &server, &name, 2048);
    let path = format!("/files/{name}.tar.gz");
    server.break_after(&path, 700_000, 2);
    let run = daemon.berth(&["install", &name, &url, "--sha256", &sha, "-y"]);
    assert_running(&daemon, &run, &name);
    assert!(image_exists(&image_id));
    let ranges: Vec<Option<String>> =
        server.requests().into_iter().filter(|(p, _)| *p == path).map(|(_, r)| r).collect();
    assert_eq!(ranges, [None, Some("bytes=700000-".to_string()), Some("bytes=1400000-".to_string())]);
}

#[test]
fn a_server_that_ignores_range_still_gives_the_right_bytes() {
    let mut daemon = TestDaemon::start(bin());
    let server = FileServer::start();
    let name = unique("norange");
    let (url, _, sha) = served(&mut daemon, &server, &name, 1024);
    let path = format!("/files/{name}.tar.gz");
    server.break_after(&path, 300_000, 1);
    server.ignore_range(&path);
    let run = daemon.berth(&["install", &name, &url, "--sha256", &sha, "-y"]);
    assert_running(&daemon, &run, &name);
}

#[test]
fn a_checksum_mismatch_leaves_nothing() {
    let mut daemon = TestDaemon::start(bin());
    let server = FileServer::start();
    let name = unique("sha");
    let (url, image_id, _) = served(&mut daemon, &server, &name, 64);
    let wrong = "0".repeat(64);
    let run = daemon.berth(&["install", &name, &url, "--sha256", &wrong, "-y"]);
    assert_refused(&daemon, &run, 5, &name, &["SHA-256", &wrong]);
    assert!(!image_exists(&image_id), "the loaded image was taken back");

    // Local archives are checked the same way.
    let file = daemon.dir.path().join(format!("{name}.local.tar"));
    let archive = ImageBuilder::new(&format!("berth-test/{name}-local:1"))
        .service()
        .layer_marker(&name)
        .write_tar(&file)
        .unwrap();
    daemon.sweep_image(&archive.image_id);
    let run = daemon.berth(&["install", &name, &file.to_string_lossy(), "--sha256", &wrong, "-y"]);
    assert_refused(&daemon, &run, 5, &name, &["SHA-256"]);
    assert!(!image_exists(&archive.image_id));
}

#[test]
fn download_failures_are_bad_sources_that_change_nothing() {
    let mut daemon = TestDaemon::start(bin());
    let server = FileServer::start();
    let name = unique("dlfail");

    let run = daemon.berth(&["install", &name, &server.url("/missing.tar.gz"), "-y"]);
    assert_refused(&daemon, &run, 5, &name, &["/missing.tar.gz", "404"]);
    server.status("/broken.tar.gz", 500);
    let run = daemon.berth(&["install", &name, &server.url("/broken.tar.gz"), "-y"]);
    assert_refused(&daemon, &run, 5, &name, &["500"]);

    // Nothing listens on this port.
    let nobody = RefusedPort::new();
    let port = nobody.port();
    let run = daemon.berth(&["install", &name, &format!("http://127.0.0.1:{port}/a.tar"), "-y"]);
    assert_refused(&daemon, &run, 5, &name, &[&format!("127.0.0.1:{port}")]);

    let plain = daemon.dir.path().join("plain.tar");
    write_plain_tar(&plain).unwrap();
    server.file("/plain.tar", &plain);
    let run = daemon.berth(&["install", &name, &server.url("/plain.tar"), "-y"]);
    assert_refused(&daemon, &run, 5, &name, &["not an image archive"]);

    // A transfer that keeps breaking off is given up, naming why.
    let (url, image_id, _) = served(&mut daemon, &server, &name, 512);
    server.break_after(&format!("/files/{name}.tar.gz"), 100_000, 100);
    let run = daemon.berth(&["install", &name, &url, "-y"]);
    assert_refused(&daemon, &run, 5, &name, &["download failed after 5 attempts"]);
    assert!(!image_exists(&image_id));
}

#[test]
fn checksum_and_ca_options_are_checked_against_the_source() {
    let daemon = TestDaemon::start(bin());
    let name = unique("opts");
    let run = daemon.berth(&["install", &name, "busybox:1", "--sha256", &"a".repeat(64), "-y"]);
    assert_refused(&daemon, &run, 2, &name, &["--sha256"]);
    let run = daemon.berth(&["install", &name, "http://127.0.0.1:1/a.tar", "--sha256", "xyz", "-y"]);
    assert_refused(&daemon, &run, 2, &name, &["--sha256", "64 hexadecimal"]);
    let run = daemon.berth(&["install", &name, "http://127.0.0.1:1/a.tar", "--ca-file", "/etc/hostname", "-y"]);
    assert_refused(&daemon, &run, 2, &name, &["--ca-file", "https"]);
    let run = daemon.berth(&["install", &name, "http://", "-y"]);
    assert_refused(&daemon, &run, 2, &name, &["URL"]);
}

#[test]
fn https_is_verified_and_a_ca_file_adds_trust() {
    let mut daemon = TestDaemon::start(bin());
    let (server, ca_pem) = FileServer::start_tls();
    let name = unique("https");
    let (url, _, _) = served(&mut daemon, &server, &name, 64);
    assert!(url.starts_with("https://"));

    let run = daemon.berth(&["install", &name, &url, "-y"]);
    assert_refused(&daemon, &run, 5, &name, &[&url]);
    assert!(run.stderr.to_lowercase().contains("certificate"), "{run:?}");

    let garbage = daemon.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let run = daemon.berth(&["install", &name, &url, "--ca-file", &garbage.to_string_lossy(), "-y"]);
    assert_refused(&daemon, &run, 2, &name, &["garbage.pem"]);

    let ca = daemon.dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let run = daemon.berth(&["install", &name, &url, "--ca-file", &ca.to_string_lossy(), "-y"]);
    assert_running(&daemon, &run, &name);
}

/// One way a server lets a client find out that the file changed.
#[derive(Debug, Clone, Copy)]
enum Change {
    /// A strong `ETag`: the resume's `If-Range` names it, the server answers 200 with the new file.
    StrongETag,
    /// Only `Last-Modified`: the same, by date.
    LastModified,
    /// Only a weak `ETag`, which `If-Range` may not use: the break cannot be resumed safely.
    WeakETagOnly,
    /// A server that serves the range although `If-Range` names the old
    /// version (RFC 9110 13.1.5 says it must not): the 206's own validator
    /// shows that it is another file.
    IfRangeIgnored,
}

/// Two versions of one file on the server, of exactly the same length (an
/// uncompressed archive of an image whose only difference is random bytes),
/// so that nothing but the validators tells them apart.
fn two_versions(daemon: &mut TestDaemon, name: &str) -> [(String, std::path::PathBuf); 2] {
    ["1", "2"].map(|version| {
        let builder = ImageBuilder::new(&format!("berth-test/{name}:{version}"))
            .service()
            .label("berth.test.sweep", "1")
            .layer_marker(&format!("{name}-{version}"))
            .pseudorandom_file("/opt/pad.bin", 512 * 1024, version.parse().unwrap());
        let archive = daemon.archive(&builder, false);
        (archive.image_id, archive.path)
    })
}

/// Defect 11: a transfer that broke off is resumed only while the server
/// still has the same file. When the file was replaced in between, the
/// daemon fetches it again from byte 0 and installs the new version — never
/// the first bytes of the old file spliced onto the rest of the new one.
/// (Before the fix, the resume sent `Range` without `If-Range`, and the server
/// answered 206 with the rest of the new file: a corrupt archive, exit 5.)
#[test]
fn a_file_replaced_between_attempts_is_fetched_again_from_the_start() {
    replaced_between_attempts(&[Change::StrongETag, Change::LastModified, Change::WeakETagOnly]);
}

/// The same against a server that ignores `If-Range` and answers 206 with the
/// rest of the new file (of the same length): the 206's `ETag` is not the one
/// the transfer began with, so its bytes cannot continue the old file.
#[test]
fn a_range_of_another_version_is_not_spliced_on() {
    replaced_between_attempts(&[Change::IfRangeIgnored]);
}

fn replaced_between_attempts(cases: &[Change]) {
    let mut daemon = TestDaemon::start(bin());
    let server = FileServer::start();
    let prepared: Vec<_> = cases
        .iter()
        .map(|change| {
            let name = unique("changed");
            let [(old_id, old), (new_id, new)] = two_versions(&mut daemon, &name);
            let path = format!("/files/{name}.tar");
            server.versions(&path, &[&old, &new]);
            match change {
                Change::LastModified => server.validators(&path, &[Validator::LastModified]),
                Change::WeakETagOnly => server.validators(&path, &[Validator::WeakETag]),
                Change::IfRangeIgnored => server.ignore_if_range(&path),
                Change::StrongETag => {}
            }
            // The first transfer (of the old version) breaks off in the layer.
            server.break_after(&path, 300_000, 1);
            (*change, name, path, old_id, new_id)
        })
        .collect();
    std::thread::scope(|scope| {
        for (change, name, path, old_id, new_id) in &prepared {
            let (daemon, server) = (&daemon, &server);
            scope.spawn(move || {
                let run = daemon.berth(&["install", name, &server.url(path), "-y", "-o", "json"]);
                assert_eq!(run.code, 0, "{change:?}: {run:?}");
                let app: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
                assert_eq!(app["image_id"], new_id.as_str(), "{change:?}: the new version, whole");
                assert_eq!(inspect(name).unwrap()["Image"], new_id.as_str(), "{change:?}");
                assert!(!image_exists(old_id), "{change:?}: nothing of the old version is left");
                let requests = server.requests_for(path);
                let last = requests.last().unwrap();
                assert_eq!(
                    (last.range.as_deref(), last.if_range.as_deref()),
                    (None, None),
                    "{change:?}: from byte 0: {requests:?}"
                );
                match change {
                    Change::StrongETag => {
                        assert_eq!(requests[1].if_range.as_deref(), Some("\"berth-0\""), "{requests:?}")
                    }
                    Change::LastModified => {
                        assert_eq!(
                            requests[1].if_range.as_deref(),
                            Some("Mon, 01 Jan 2024 00:00:00 GMT"),
                            "{requests:?}"
                        )
                    }
                    // No validator to resume by: never a Range request.
                    Change::WeakETagOnly => assert!(requests.iter().all(|r| r.range.is_none()), "{requests:?}"),
                    Change::IfRangeIgnored => {}
                }
            });
        }
    });
}
