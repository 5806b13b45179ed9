//! Bad input changes nothing and gets a clear message and a non-zero exit.
//!
//! Every case checks the exit code (README, "Exit codes"), that stderr names
//! the cause, and that nothing changed: no app row, no container of the
//! daemon's instance, no private directory, and none of the images the test
//! built left in the engine. Tests share one engine and run in parallel, so
//! they only ever look at things they named themselves.

use crate::bin;

use berth_testkit::harness::{finish, image_exists, inspect, unique, RefusedPort, Run, TestDaemon, TEST_SETTINGS};
use berth_testkit::http::{self, docker, DOCKER_SOCKET};
use berth_testkit::{
    write_corrupt_gzip, write_empty_manifest_tar, write_multi_image_tar, write_plain_tar, write_truncated_tar,
    ImageBuilder,
};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn service(tag: &str) -> ImageBuilder {
    ImageBuilder::new(&format!("berth-test/{tag}:1")).service().label("berth.test.sweep", "1").layer_marker(tag)
}

/// Every image id the engine has right now.
fn engine_image_ids() -> HashSet<String> {
    let response = docker("GET", "/images/json?all=1", None);
    assert_eq!(response.status, 200, "{}", response.text());
    response.json().as_array().into_iter().flatten().filter_map(|i| i["Id"].as_str().map(str::to_owned)).collect()
}

/// The daemon is as it was after start: no app, no container, nothing under
/// the data root, and none of `images` added to the engine (unless it was
/// there in `before`).
fn assert_nothing_changed(daemon: &TestDaemon, images: &[&str], before: &HashSet<String>) {
    assert!(daemon.list().is_empty(), "no app row: {:?}", daemon.list());
    assert!(daemon.containers().is_empty(), "no container: {:?}", daemon.containers());
    let data_root = daemon.root().join("tpc");
    let entries: Vec<_> = std::fs::read_dir(&data_root)
        .map(|dir| dir.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(entries.is_empty(), "no private directory under {}: {entries:?}", data_root.display());
    let after = engine_image_ids();
    for id in images {
        assert!(!after.contains(*id) || before.contains(*id), "image {id} was left in the engine");
    }
}

/// Asserts the exit code and that stderr mentions every one of `needles`.
fn assert_refused(run: &Run, code: i32, needles: &[&str]) {
    assert_eq!(run.code, code, "{run:?}");
    for needle in needles {
        assert!(run.stderr.contains(needle), "stderr should mention {needle:?}: {run:?}");
    }
}

#[test]
fn invalid_names_are_refused_with_exit_2() {
    let mut daemon = TestDaemon::start(bin());
    let archive = daemon.archive(&service(&unique("names")), false);
    let path = archive.path.to_string_lossy().into_owned();
    let before = engine_image_ids();

    let long = "a".repeat(64);
    for name in ["", "-x", "Upper", "a/b", "a b", long.as_str(), "../etc"] {
        // `--` so that even "-x" reaches the daemon's validation.
        let run = daemon.berth(&["install", "-y", "--", name, &path]);
        let quoted = format!("{name:?}");
        let mention = if name.is_empty() { "app name is empty" } else { quoted.as_str() };
        assert_refused(&run, 2, &[mention]);
        assert!(run.stderr.contains("name"), "{run:?}");
        assert_nothing_changed(&daemon, &[&archive.image_id], &before);
    }
    let run = daemon.berth(&["install", "Upper", &path, "-y"]);
    assert_refused(&run, 2, &["lowercase"]);
    let run = daemon.berth(&["install", &long, &path, "-y"]);
    assert_refused(&run, 2, &["64 characters", "63"]);
    // Without `--`, "-x" is an unknown flag to the command line itself.
    let run = daemon.berth(&["install", "-x", &path, "-y"]);
    assert_refused(&run, 2, &["-x"]);
    assert!(!daemon.root().join("etc").exists());
    assert_nothing_changed(&daemon, &[&archive.image_id], &before);
}

#[test]
fn a_duplicate_name_is_a_conflict_and_leaves_the_first_app_alone() {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("dup");
    let first = daemon.archive(&service(&name), false);
    let second = daemon.archive(&service(&format!("{name}-other")), false);
    let run = daemon.berth(&["install", &name, &first.path.to_string_lossy(), "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    let container = inspect(&name).expect("first container");
    let before = engine_image_ids();

    for path in [&first.path, &second.path] {
        let run = daemon.berth(&["install", &name, &path.to_string_lossy(), "-y"]);
        assert_refused(&run, 4, &[&name]);
    }

    let now = inspect(&name).expect("first container still there");
    assert_eq!(now["Id"], container["Id"], "same container");
    assert_eq!(now["State"]["Running"], true);
    assert_eq!(now["State"]["StartedAt"], container["State"]["StartedAt"], "not restarted");
    let apps = daemon.list();
    assert_eq!(apps.len(), 1, "{apps:?}");
    assert_eq!(apps[0]["name"], name.as_str());
    assert_eq!(apps[0]["state"], "running");
    assert_eq!(apps[0]["image_id"], first.image_id.as_str());
    assert!(daemon.private_dir(&name).is_dir());
    assert_eq!(daemon.containers().len(), 1);
    assert!(image_exists(&first.image_id));
    let after = engine_image_ids();
    assert!(!after.contains(&second.image_id) || before.contains(&second.image_id), "second image not loaded");
}

#[test]
fn missing_files_and_directories_are_bad_sources() {
    let daemon = TestDaemon::start(bin());
    let before = engine_image_ids();

    let missing = daemon.dir.path().join("no-such-archive.tar.gz");
    let missing = missing.to_string_lossy().into_owned();
    let run = daemon.berth(&["install", &unique("missing"), &missing, "-y"]);
    assert_refused(&run, 5, &[&missing, "no such file"]);
    assert_nothing_changed(&daemon, &[], &before);

    let directory = daemon.dir.path().join("a-directory.tar");
    std::fs::create_dir(&directory).unwrap();
    let directory = directory.to_string_lossy().into_owned();
    let run = daemon.berth(&["install", &unique("dir"), &directory, "-y"]);
    assert_refused(&run, 5, &[&directory, "not a regular file"]);
    let run = daemon.berth(&["install", &unique("dir"), daemon.dir.path().to_str().unwrap(), "-y"]);
    assert_refused(&run, 5, &["not a regular file"]);
    assert_nothing_changed(&daemon, &[], &before);
}

#[test]
fn a_relative_archive_path_is_resolved_against_the_working_directory() {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("rel");
    let built = daemon.archive(&service(&name), false);
    let workdir = daemon.dir.path().join("work");
    std::fs::create_dir(&workdir).unwrap();
    std::fs::rename(&built.path, workdir.join("rel.tar")).unwrap();

    let run = daemon.berth_in(&workdir, &["install", &name, "./rel.tar", "-y", "--output", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let app: Value = serde_json::from_str(&run.stdout).expect("install json");
    assert_eq!(app["image_id"], built.image_id.as_str());
    assert_eq!(app["source"], workdir.join("rel.tar").to_string_lossy().as_ref(), "made absolute");
    assert_eq!(inspect(&name).expect("container")["State"]["Running"], true);

    // A bare archive name (no ./) is a file in the working directory too.
    let bare = unique("rel");
    let run = daemon.berth_in(&workdir, &["install", &bare, "rel.tar", "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(daemon.app(&bare).expect("second app")["state"], "running");
}

/// Installs `path`, expects exit 5 with `needles` on stderr, and that nothing changed.
fn refuse_archive(daemon: &TestDaemon, path: &Path, images: &[&str], needles: &[&str]) -> Run {
    let before = engine_image_ids();
    let path_text = path.to_string_lossy().into_owned();
    let run = daemon.berth(&["install", &unique("bad"), &path_text, "-y"]);
    let mut all = vec![path_text.as_str()];
    all.extend_from_slice(needles);
    assert_refused(&run, 5, &all);
    assert_nothing_changed(daemon, images, &before);
    run
}

#[test]
fn corrupt_and_foreign_archives_are_bad_sources() {
    let mut daemon = TestDaemon::start(bin());
    let dir = daemon.dir.path().to_owned();

    // The corrupt gzip is the start of this fixed image's archive.
    let corrupt_image = ImageBuilder::new("berth-test/corrupt-gzip:1").service();
    let corrupt_id = corrupt_image.write_tar(&dir.join("corrupt-reference.tar")).unwrap().image_id;
    let corrupt = dir.join("corrupt.tar.gz");
    write_corrupt_gzip(&corrupt).unwrap();
    refuse_archive(&daemon, &corrupt, &[&corrupt_id], &["corrupt gzip"]);

    let plain = dir.join("plain.tar");
    write_plain_tar(&plain).unwrap();
    refuse_archive(&daemon, &plain, &[], &["manifest.json"]);

    let empty = dir.join("empty-manifest.tar");
    write_empty_manifest_tar(&empty).unwrap();
    refuse_archive(&daemon, &empty, &[], &["no image"]);

    // A real archive cut inside its layer.
    let builder = service(&unique("trunc"));
    let whole = daemon.archive(&builder, false);
    let truncated = dir.join("truncated.tar");
    write_truncated_tar(&truncated, &builder).unwrap();
    refuse_archive(&daemon, &truncated, &[&whole.image_id], &[]);

    // Random bytes with an archive's name.
    let junk = dir.join("junk.tar.gz");
    std::fs::write(&junk, b"this is not an archive at all\n".repeat(100)).unwrap();
    refuse_archive(&daemon, &junk, &[], &[]);
}

#[test]
fn a_multi_image_archive_is_refused_and_its_images_removed() {
    let mut daemon = TestDaemon::start(bin());
    let path = daemon.dir.path().join("multi.tar");
    let images = [service(&unique("multi-a")), service(&unique("multi-b"))];
    let archives = write_multi_image_tar(&path, &images).unwrap();
    for archive in &archives {
        daemon.sweep_image(&archive.image_id);
    }
    let ids: Vec<&str> = archives.iter().map(|a| a.image_id.as_str()).collect();
    let run = refuse_archive(&daemon, &path, &ids, &["2 images"]);
    for archive in &archives {
        let tag = archive.repo_tag.as_deref().unwrap();
        assert!(run.stderr.contains(tag), "names {tag}: {run:?}");
        assert!(!image_exists(&archive.image_id), "{} loaded then removed", archive.image_id);
        assert!(!image_exists(tag), "{tag} removed");
    }
}

#[test]
fn an_unknown_registry_image_is_a_bad_source_and_a_malformed_one_invalid() {
    let daemon = TestDaemon::start(bin());
    let before = engine_image_ids();

    let nobody = RefusedPort::new();
    let reference = format!("localhost:{}/berth-none/x:1", nobody.port());
    let run = daemon.berth(&["install", &unique("pull"), &reference, "-y"]);
    assert_refused(&run, 5, &[&reference]);
    assert_nothing_changed(&daemon, &[], &before);
    assert!(!image_exists(&reference));

    let run = daemon.berth(&["install", &unique("ref"), "UPPER:case", "-y"]);
    assert_refused(&run, 2, &["UPPER:case"]);
    assert_nothing_changed(&daemon, &[], &before);
}

#[test]
fn bad_args_and_limits_are_invalid_input() {
    let mut daemon = TestDaemon::start(bin());
    let archive = daemon.archive(&service(&unique("args")), false);
    let path = archive.path.to_string_lossy().into_owned();
    let before = engine_image_ids();

    let cases: &[(&[&str], &[&str])] = &[
        (&["--args", "--bogus"], &["--bogus", "--env", "--volume", "--publish"]),
        (&["--args", "-e NOEQUALS"], &["NOEQUALS", "NAME=VALUE"]),
        (&["--args", "-p 99999:1"], &["99999", "65535"]),
        (&["--args", "--label berth.app=x"], &["berth.app", "reserved"]),
        (&["--args", "-e 'A=1"], &["quote"]),
        (&["--args", "-e A=1 nginx"], &["nginx"]),
        (&["--cpus", "0"], &["--cpus"]),
        (&["--cpus", "1000"], &["--cpus", "1000"]),
        (&["--memory", "1k"], &["--memory", "minimum"]),
        (&["--memory", "abc"], &["--memory", "abc"]),
    ];
    for (options, needles) in cases {
        let name = unique("args");
        let mut argv = vec!["install", name.as_str(), path.as_str(), "-y"];
        argv.extend_from_slice(options);
        let run = daemon.berth(&argv);
        assert_refused(&run, 2, needles);
        assert!(inspect(&name).is_none(), "{options:?}");
        assert_nothing_changed(&daemon, &[&archive.image_id], &before);
    }
}

#[test]
fn an_app_that_exits_at_once_fails_the_install_and_leaves_nothing() {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("boom");
    let image = service(&name).cmd(&["/bin/sh", "-c", "echo boom; exit 3"]);
    let archive = daemon.archive(&image, true);
    let before = engine_image_ids();
    assert!(!before.contains(&archive.image_id));

    let run = daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "-y"]);
    assert_refused(&run, 9, &[&name, "exited with code 3", "boom"]);
    assert!(inspect(&name).is_none(), "container removed");
    assert!(!daemon.private_dir(&name).exists(), "private directory removed");
    assert!(!image_exists(&archive.image_id), "image removed");
    assert_nothing_changed(&daemon, &[&archive.image_id], &before);
}

/// `--cpus` given as text that is not a finite number must be refused like
/// `--cpus 0`, not replaced by the default limit.
#[test]
fn non_finite_cpus_are_invalid_input() {
    let mut daemon = TestDaemon::start(bin());
    let archive = daemon.archive(&service(&unique("nan")), false);
    let path = archive.path.to_string_lossy().into_owned();
    let before = engine_image_ids();
    for value in ["nan", "inf", "-inf", "infinity"] {
        let name = unique("nan");
        let run = daemon.berth(&["install", &name, &path, "-y", "--cpus", value]);
        assert_refused(&run, 2, &["--cpus"]);
        assert!(inspect(&name).is_none(), "{value}");
        assert_nothing_changed(&daemon, &[&archive.image_id], &before);
    }
}

/// Install against an engine that does not answer, then `list`.
fn unreachable_engine_refuses_install(endpoint: &str) {
    let mut daemon = TestDaemon::start_with(bin(), TEST_SETTINGS, &[], Some(endpoint));
    let name = unique("noengine");
    let archive = daemon.archive(&service(&name), false);

    let run = daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "-y"]);
    assert_refused(&run, 6, &[endpoint]);

    let list = daemon.berth(&["list"]);
    assert_eq!(list.code, 0, "{list:?}");
    assert!(list.stdout.starts_with("NAME"), "{list:?}");
    assert!(!list.stdout.contains(&name), "{list:?}");
    let json = daemon.berth(&["list", "--output", "json"]);
    assert_eq!(json.code, 0, "{json:?}");
    assert_eq!(serde_json::from_str::<Value>(&json.stdout).expect("list json"), json!([]));
    assert!(daemon.list().is_empty());
    assert!(!daemon.private_dir(&name).exists());
    assert!(inspect(&name).is_none());
    assert!(!image_exists(&archive.image_id));
}

#[test]
fn an_unreachable_engine_is_exit_6_and_list_still_works() {
    unreachable_engine_refuses_install("unix:///nonexistent/docker.sock");
}

/// The same with an endpoint nobody listens on (connection refused).
#[test]
fn an_engine_that_refuses_connections_is_exit_6_and_list_still_works() {
    let nobody = RefusedPort::new();
    unreachable_engine_refuses_install(&format!("tcp://127.0.0.1:{}", nobody.port()));
}

#[test]
fn an_unreachable_daemon_is_exit_7_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody-listens.sock");
    let run: Run = Command::new(bin())
        .arg("list")
        .env("BERTH_SOCKET", &socket)
        .stdin(Stdio::null())
        .output()
        .expect("run berth")
        .into();
    assert_refused(&run, 7, &[&socket.to_string_lossy(), "berth daemon", "--socket", "BERTH_SOCKET"]);

    // --socket on the command line wins over the environment, and says so too.
    let run: Run = Command::new(bin())
        .arg("--socket")
        .arg(&socket)
        .args(["show", "x"])
        .env("BERTH_SOCKET", "/nonexistent/other.sock")
        .stdin(Stdio::null())
        .output()
        .expect("run berth")
        .into();
    assert_refused(&run, 7, &[&socket.to_string_lossy()]);
}

#[test]
fn install_and_uninstall_need_confirmation_without_a_terminal() {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("confirm");
    let archive = daemon.archive(&service(&name), false);
    let path = archive.path.to_string_lossy().into_owned();
    let before = engine_image_ids();

    let run = daemon.berth(&["install", &name, &path]);
    assert_refused(&run, 8, &["-y"]);
    assert!(inspect(&name).is_none());
    assert_nothing_changed(&daemon, &[&archive.image_id], &before);

    assert_eq!(daemon.berth(&["install", &name, &path, "-y"]).code, 0);
    let container = inspect(&name).expect("installed");
    let run = daemon.berth(&["uninstall", &name]);
    assert_refused(&run, 8, &["-y"]);
    let run = daemon.berth(&["uninstall", &name, "--keep-data"]);
    assert_refused(&run, 8, &["-y"]);
    let now = inspect(&name).expect("still installed");
    assert_eq!(now["Id"], container["Id"]);
    assert_eq!(now["State"]["Running"], true);
    assert_eq!(daemon.app(&name).expect("still listed")["state"], "running");
    assert!(daemon.private_dir(&name).is_dir());
    assert!(image_exists(&archive.image_id));
}

#[test]
fn a_second_daemon_on_the_same_root_exits_78() {
    let daemon = TestDaemon::start(bin());
    let other_socket = daemon.dir.path().join("second.sock");
    let (code, stderr) = run_daemon_until_exit(&daemon.root(), &other_socket);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("already") && stderr.contains(&daemon.root().to_string_lossy().into_owned()), "{stderr}");
    assert!(!other_socket.exists(), "the second daemon did not listen");
    // The first one is unaffected.
    assert_eq!(daemon.berth(&["list"]).code, 0);

    // Same for a second daemon on the first one's socket (another root).
    let other_root = daemon.dir.path().join("other-root");
    let (code, stderr) = run_daemon_until_exit(&other_root, &daemon.socket);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains(&daemon.socket.to_string_lossy().into_owned()), "{stderr}");
    assert_eq!(daemon.berth(&["list"]).code, 0, "the first daemon still answers");
}

/// Runs `berth daemon` on `root` and `socket`, expecting it to exit by itself.
fn run_daemon_until_exit(root: &Path, socket: &Path) -> (i32, String) {
    let child = Command::new(bin())
        .arg("daemon")
        .arg("--root")
        .arg(root)
        .arg("--socket")
        .arg(socket)
        // Never the machine's /etc/systemd/system.
        .arg("--unit-dir")
        .arg(root.with_file_name("second-units"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a second daemon");
    let run = finish(child, "a second daemon", Duration::from_secs(20));
    (run.code, run.stderr)
}

/// Removes a container this test created behind berth's back.
struct ContainerGuard(String);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        docker("DELETE", &format!("/containers/{}?force=1", self.0), None);
    }
}

#[test]
fn a_container_of_that_name_that_is_not_ours_is_a_conflict() {
    let mut daemon = TestDaemon::start(bin());
    let mut other = TestDaemon::start(bin());

    // Another berth instance owns a container of that name.
    let name = unique("foreign");
    let theirs = other.archive(&service(&name), false);
    assert_eq!(other.berth(&["install", &name, &theirs.path.to_string_lossy(), "-y"]).code, 0);
    let container = inspect(&name).expect("the other daemon's container");

    let ours = daemon.archive(&service(&format!("{name}-ours")), false);
    let before = engine_image_ids();
    let run = daemon.berth(&["install", &name, &ours.path.to_string_lossy(), "-y"]);
    assert_refused(&run, 4, &[&name, "not berth's"]);
    assert_nothing_changed(&daemon, &[&ours.image_id], &before);
    let now = inspect(&name).expect("still there");
    assert_eq!(now["Id"], container["Id"]);
    assert_eq!(now["State"]["Running"], true);
    assert_eq!(now["Config"]["Labels"]["berth.instance"], other.instance.as_str());
    assert_eq!(other.app(&name).expect("still the other's")["state"], "running");

    // A plain container made with the engine's API, no berth labels at all.
    let plain = unique("plain");
    let image = daemon.archive(&service(&plain), false);
    let bytes = std::fs::read(&image.path).unwrap();
    let loaded =
        http::request(Path::new(DOCKER_SOCKET), "POST", "/v1.41/images/load?quiet=1", "application/x-tar", &bytes)
            .expect("load");
    assert_eq!(loaded.status, 200, "{}", loaded.text());
    let created = docker(
        "POST",
        &format!("/containers/create?name={plain}"),
        Some(&json!({ "Image": image.image_id, "Labels": { "berth.test.sweep": "1" } })),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["Id"].as_str().unwrap().to_owned();
    let _guard = ContainerGuard(id.clone());

    let before = engine_image_ids();
    let run = daemon.berth(&["install", &plain, &ours.path.to_string_lossy(), "-y"]);
    assert_refused(&run, 4, &[&plain, "not berth's"]);
    assert_nothing_changed(&daemon, &[&ours.image_id], &before);
    let now = inspect(&plain).expect("plain container still there");
    assert_eq!(now["Id"], id.as_str());
    assert_eq!(now["Image"], image.image_id.as_str());
}

#[test]
fn unknown_apps_are_not_found_and_bad_flags_are_usage_errors() {
    let daemon = TestDaemon::start(bin());
    let name = unique("ghost");
    let run = daemon.berth(&["uninstall", &name, "-y"]);
    assert_refused(&run, 3, &[&name]);
    let run = daemon.berth(&["uninstall", "Not-A-Name", "-y"]);
    assert_refused(&run, 2, &["Not-A-Name"]);

    let run = daemon.berth(&["logs", &name, "--tail", "abc"]);
    assert_refused(&run, 2, &["abc", "--tail"]);
    let run = daemon.berth(&["list", "--output", "yaml"]);
    assert_refused(&run, 2, &["yaml"]);
    let run = daemon.berth(&["frobnicate"]);
    assert_refused(&run, 2, &["frobnicate"]);
    assert!(daemon.list().is_empty());
}
