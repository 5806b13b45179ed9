//! Container hosts (issue 10, seed 004): `berth host create` makes an
//! independent berth instance reachable over mutual TLS with a client
//! bundle; its quota refuses what would exceed it; `berth host delete`
//! removes exactly what it made and names what it leaves; a delete cut
//! short by kill -9 finishes when run again.

use crate::bin;
use berth_testkit::harness::{image_exists, inspect, poll, unique, Run, TestDaemon, TEST_SETTINGS};
use berth_testkit::http::{docker, encode};
use berth_testkit::ImageBuilder;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A host the test made: on drop (a failed test), its daemon is stopped and
/// what it made is swept, so nothing outlives the test.
struct Host {
    socket: PathBuf,
    instance: String,
}

impl Host {
    fn of(view: &Value) -> Self {
        Host {
            socket: PathBuf::from(view["socket"].as_str().unwrap()),
            instance: view["instance"].as_str().unwrap().to_owned(),
        }
    }

    /// `berth` against the host's own socket.
    fn berth(&self, parent: &TestDaemon, args: &[&str]) -> Run {
        let socket = self.socket.to_string_lossy().into_owned();
        let mut all = vec!["--socket", socket.as_str()];
        all.extend_from_slice(args);
        parent.berth(&all)
    }

    fn answers(&self) -> bool {
        std::os::unix::net::UnixStream::connect(&self.socket).is_ok()
    }

    fn containers(&self) -> Vec<Value> {
        let filters = format!(r#"{{"label":["berth.instance={}"]}}"#, self.instance);
        docker("GET", &format!("/containers/json?all=1&filters={}", encode(&filters)), None)
            .json()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Ok(info) = berth_testkit::http::request(&self.socket, "GET", "/v1/info", "application/json", b"") {
            if let Some(pid) = info.json()["pid"].as_u64() {
                let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
        for container in self.containers() {
            if let Some(id) = container["Id"].as_str() {
                docker("DELETE", &format!("/containers/{id}?force=1&v=1"), None);
            }
        }
    }
}

/// A service image of its own (no other test's containers share its id).
fn service_image(app: &str) -> ImageBuilder {
    ImageBuilder::new(&format!("berth-test/{app}:1"))
        .service()
        .label("berth.test.sweep", "1")
        .layer_marker(&unique("hostimg"))
}

fn json_of(run: &Run) -> Value {
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"))
}

#[test]
fn a_host_is_created_used_remotely_and_deleted_with_what_it_made() {
    let mut parent = TestDaemon::start(bin());
    let name = unique("host");
    let port = crate::free_port();
    let bundle = parent.dir.path().join("host-bundle");
    let run = parent.berth(&[
        "host",
        "create",
        &name,
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--cpus",
        "0.5",
        "--memory",
        "64m",
        "--cert-dir",
        &bundle.to_string_lossy(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    for line in [
        format!("BERTH_HOST=tcp://127.0.0.1:{port}"),
        "BERTH_TLS_VERIFY=1".to_owned(),
        format!("BERTH_CERT_PATH={}", bundle.display()),
    ] {
        assert!(run.stdout.contains(&line), "{line}: {run:?}");
    }
    let view = json_of(&parent.berth(&["host", "inspect", &name, "--output", "json"]));
    let host = Host::of(&view);
    assert_eq!(view["state"], "running", "{view}");
    assert_eq!(view["endpoint"], format!("tcp://127.0.0.1:{port}"));
    assert_eq!(view["quota"]["cpus"], 0.5);
    assert_eq!(view["quota"]["memory"], 64 << 20);
    assert!(view["cert_days_left"].as_i64().unwrap() > 60, "{view}");
    let parent_instance = json_of(&parent.berth(&["info", "--output", "json"]))["instance"].clone();
    assert_ne!(view["instance"], parent_instance, "the host is an instance of its own");
    let listed = json_of(&parent.berth(&["host", "ls", "--output", "json"]));
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let doctor = json_of(&parent.berth(&["doctor", "--output", "json"]));
    let hosts_check = doctor["checks"].as_array().unwrap().iter().find(|c| c["name"] == "hosts").cloned();
    assert_eq!(hosts_check.as_ref().map(|c| c["status"].clone()), Some(json!("ok")), "{doctor}");

    // A network that existed before the host, which one of its apps joins.
    let network = unique("pre-net");
    let made = docker("POST", "/networks/create", Some(&json!({"Name": network, "Labels": {"berth.test.sweep": "1"}})));
    assert_eq!(made.status, 201, "{}", made.text());

    // Apps installed over mutual TLS, as a remote client would.
    let (a1, a2, a3) = (unique("ha"), unique("hb"), unique("hc"));
    let image = service_image(&a1);
    let archive = parent.archive(&image, true);
    let remote = |args: &[&str]| {
        // No socket: the session can only be the listener's.
        let mut all = vec!["--socket", "/nonexistent/berth.sock"];
        all.extend_from_slice(args);
        parent.berth_env(
            &[("BERTH_HOST", Path::new(&format!("tcp://127.0.0.1:{port}"))), ("BERTH_CERT_PATH", &bundle)],
            &all,
        )
    };

    let volume = unique("hvol");
    let install =
        |app: &str, args: &str| remote(&["install", app, &archive.path.to_string_lossy(), "--args", args, "-y"]);
    let run = install(&a1, &format!("--cpus 0.25 --memory 32m --network {network}"));
    assert_eq!(run.code, 0, "{run:?}");
    // The quota: 32m + 48m > 64m is refused with the numbers; nothing is made.
    let run = install(&a2, "--cpus 0.25 --memory 48m");
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stderr.contains("quota") && run.stderr.contains("64 MiB") && run.stderr.contains("48 MiB"), "{run:?}");
    assert!(inspect(&a2).is_none());
    let run = install(&a3, "--cpus 0.5 --memory 16m");
    assert_eq!(run.code, 4, "0.25 + 0.5 CPUs exceed 0.5: {run:?}");
    assert!(run.stderr.contains("CPUs"), "{run:?}");
    let run = install(&a2, &format!("--cpus 0.25 --memory 16m -v {volume}:/data"));
    assert_eq!(run.code, 0, "{run:?}");
    let apps = json_of(&remote(&["list", "--output", "json"]));
    assert_eq!(apps.as_array().map(Vec::len), Some(2), "{apps}");
    assert_eq!(inspect(&a1).unwrap()["Config"]["Labels"]["berth.instance"], view["instance"]);
    assert!(parent.list().is_empty(), "the parent has no apps of its own: the host's are the host's");
    let view = json_of(&parent.berth(&["host", "inspect", &name, "--output", "json"]));
    assert_eq!(view["apps_running"], 2, "{view}");
    assert_eq!(view["quota"]["memory_used"], 48 << 20, "{view}");

    // A normally working daemon logs no error, the host's as the parent's.
    let host_log = std::fs::read_to_string(host.socket.with_file_name("logs").join("berth.log")).unwrap();
    assert!(host_log.contains("berth daemon starting"), "{host_log}");
    assert!(!host_log.contains(" ERROR "), "the host logged an error:\n{host_log}");

    // Running apps: refused without --force, nothing changed.
    let run = parent.berth(&["host", "delete", &name]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stderr.contains("running apps") && run.stderr.contains(&a1), "{run:?}");
    assert!(host.answers());

    let run = parent.berth(&["host", "delete", &name, "--force"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&format!("network {network} was not created by host {name}, leaving it")), "{run:?}");
    assert!(run.stdout.contains(&format!("removed container {a1}")), "{run:?}");
    assert!(run.stdout.contains(&format!("removed volume {volume}")), "{run:?}");
    assert!(inspect(&a1).is_none() && inspect(&a2).is_none(), "the host's containers are removed");
    assert_eq!(docker("GET", &format!("/volumes/{volume}"), None).status, 404, "its volume is removed");
    assert!(!image_exists(&archive.image_id), "the image it loaded, which nothing else uses, is removed");
    assert_eq!(docker("GET", &format!("/networks/{network}"), None).status, 200, "the network it did not make stays");
    assert!(!host.answers(), "the host's daemon is stopped");
    assert!(!parent.root().join("hosts").join(&name).exists(), "its root, certificates and record are removed");
    let listed = json_of(&parent.berth(&["host", "ls", "--output", "json"]));
    assert_eq!(listed, json!([]));
    let run = parent.berth(&["host", "inspect", &name]);
    assert_eq!(run.code, 3, "{run:?}");
    docker("DELETE", &format!("/networks/{network}"), None);
    assert!(!parent.log().contains(" ERROR "), "the parent logged an error:\n{}", parent.log());
}

/// Bad input is refused naming what is wrong, and makes nothing.
#[test]
fn bad_host_requests_are_refused() {
    let parent = TestDaemon::start(bin());
    for (args, needle) in [
        (vec!["host", "create", "Bad Name"], "host name"),
        (vec!["host", "create", "okname", "--engine", "http://x"], "unix:///"),
        (vec!["host", "create", "okname", "--listen", "nowhere"], "ADDR:PORT"),
        (vec!["host", "create", "okname", "--cpus", "0"], "--cpus"),
        (vec!["host", "create", "okname", "--memory", "1k"], "--memory"),
        (vec!["host", "delete", "no-such-host"], "no host named"),
    ] {
        let run = parent.berth(&args);
        assert!(run.code == 2 || run.code == 3, "{args:?}: {run:?}");
        assert!(run.stderr.contains(needle), "{args:?} should name {needle:?}: {run:?}");
    }
    assert!(!parent.root().join("hosts").join("okname").exists());
}

/// kill -9 of the daemon at each step of a delete: the delete finishes when
/// it is asked again (or at the next start), and nothing of the host is left.
#[test]
fn a_delete_cut_short_by_kill_9_finishes_when_run_again() {
    // forward_<n>: n effects left of five — 5: nothing done yet; 3: the
    // daemon and containers gone, volumes and images not; 1: only the files.
    for point in ["host_delete:forward_5", "host_delete:forward_3", "host_delete:forward_1"] {
        let mut parent = TestDaemon::start_with(bin(), TEST_SETTINGS, &[], None);
        let name = unique("cut");
        let created = json_of(&parent.berth(&["host", "create", &name, "--output", "json"]));
        let host = Host::of(&created);
        let app = unique("cuta");
        let image = service_image(&app);
        let archive = parent.archive(&image, true);
        let volume = unique("cutvol");
        let args = format!("-v {volume}:/data");
        let run = host.berth(&parent, &["install", &app, &archive.path.to_string_lossy(), "--args", &args, "-y"]);
        assert_eq!(run.code, 0, "{point}: {run:?}");
        assert_eq!(host.containers().len(), 1, "{point}: the app is the host's");

        parent.terminate();
        parent.launch(&[("BERTH_TEST_CRASH_AT", point)]);
        assert!(
            poll(Duration::from_secs(30), || host.answers().then_some(())).is_some(),
            "{point}: the host runs again under the new daemon"
        );
        let run = parent.berth(&["host", "delete", &name, "--force"]);
        assert_ne!(run.code, 0, "{point}: the daemon dies in the delete: {run:?}");
        assert!(parent.wait_exit(Duration::from_secs(60)).is_some(), "{point}: the daemon did not die");

        parent.launch(&[]);
        let run = parent.berth(&["host", "delete", &name, "--force"]);
        assert_eq!(run.code, 0, "{point}: asked again, the delete finishes: {run:?}");
        assert!(run.stdout.contains(&format!("host {name} is deleted")), "{point}: {run:?}");
        assert!(host.containers().is_empty(), "{point}: containers left");
        assert!(inspect(&app).is_none(), "{point}");
        assert_eq!(docker("GET", &format!("/volumes/{volume}"), None).status, 404, "{point}: volume left");
        assert!(!image_exists(&archive.image_id), "{point}: image left: {}", parent.log());
        assert!(!host.answers(), "{point}: the host's daemon runs");
        assert!(!parent.root().join("hosts").join(&name).exists(), "{point}: files left");
    }
}

/// `--engine`: a host on another engine runs its apps there, and its delete
/// sweeps that engine, not this daemon's.
#[test]
fn a_host_on_another_engine_lives_and_is_deleted_there() {
    let engine = berth_testkit::engine::PrivateEngine::start();
    let mut parent = TestDaemon::start(bin());
    let name = unique("remote-host");
    let created = json_of(&parent.berth(&["host", "create", &name, "--engine", &engine.host(), "--output", "json"]));
    assert_eq!(created["engine"], engine.host());
    let host = Host::of(&created);
    let app = unique("there");
    let image = service_image(&app);
    let archive = parent.archive(&image, true);
    let run = host.berth(&parent, &["install", &app, &archive.path.to_string_lossy(), "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    let there = engine.inspect(&app).expect("the app runs in the host's engine");
    assert_eq!(there["Config"]["Labels"]["berth.instance"], created["instance"]);
    assert!(inspect(&app).is_none(), "and not in this daemon's");

    let run = parent.berth(&["host", "delete", &name, "--force"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(engine.inspect(&app).is_none(), "its container is removed from its engine");
    let image_there = engine.get(&format!("/images/{}/json", archive.image_id)).map(|r| r.status);
    assert_eq!(image_there, Some(404), "and its image");
    assert!(!host.answers());
}

/// A host whose daemon cannot start (its listen port is taken) is taken back
/// whole, and the error carries what the daemon said.
#[test]
fn a_host_that_cannot_start_is_taken_back() {
    let parent = TestDaemon::start(bin());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let name = unique("nostart");
    let run = parent.berth(&["host", "create", &name, "--listen", &format!("127.0.0.1:{port}")]);
    assert_eq!(run.code, 9, "{run:?}");
    assert!(run.stderr.contains("did not start") && run.stderr.contains(&port.to_string()), "{run:?}");
    assert!(!parent.root().join("hosts").join(&name).exists(), "nothing of it is left");
    let listed = json_of(&parent.berth(&["host", "ls", "--output", "json"]));
    assert_eq!(listed, json!([]));
    // The name is free again.
    let run = parent.berth(&["host", "create", &name]);
    assert_eq!(run.code, 0, "{run:?}");
    let host = Host::of(&json_of(&parent.berth(&["host", "inspect", &name, "--output", "json"])));
    assert_eq!(parent.berth(&["host", "delete", &name]).code, 0);
    assert!(!host.answers());
}
