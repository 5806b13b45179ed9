//! Every client verb against a real daemon and the real engine.

use crate::bin;

use berth_testkit::harness::{engine_clock, engine_events, image_exists, inspect, unique, Lines, TestDaemon};
use berth_testkit::http::docker;
use berth_testkit::ImageBuilder;
use serde_json::{json, Value};
use std::time::Duration;

fn service(tag: &str) -> ImageBuilder {
    ImageBuilder::new(&format!("berth-test/{tag}:1")).service().label("berth.test.sweep", "1").layer_marker(tag)
}

#[test]
fn install_list_show_and_uninstall_from_a_gzip_archive() {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("life");
    let archive = daemon.archive(&service(&name), true);
    let path = archive.path.to_string_lossy().into_owned();

    let run = daemon.berth(&["install", &name, &path, "-y", "--memory", "64m"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("state:       running"), "{run:?}");

    // The engine agrees: labelled, limited, private directory mounted at /tpc.
    let container = inspect(&name).expect("container exists");
    assert_eq!(container["State"]["Running"], true);
    assert_eq!(container["Config"]["Labels"]["berth.app"], name.as_str());
    assert_eq!(container["Config"]["Labels"]["berth.instance"], daemon.instance.as_str());
    assert!(container["Config"]["Labels"]["berth.spec-hash"].as_str().is_some_and(|h| !h.is_empty()));
    let cpus = std::thread::available_parallelism().unwrap().get() as f64 * 0.2;
    assert_eq!(container["HostConfig"]["NanoCpus"].as_i64(), Some((cpus * 1e9).round() as i64));
    assert_eq!(container["HostConfig"]["Memory"].as_i64(), Some(64 << 20));
    let binds: Vec<String> = serde_json::from_value(container["HostConfig"]["Binds"].clone()).unwrap();
    assert_eq!(binds[0], format!("{}:/tpc", daemon.private_dir(&name).display()));
    assert!(daemon.private_dir(&name).is_dir());

    // list: table and JSON with every documented column.
    let table = daemon.berth(&["list"]);
    assert_eq!(table.code, 0, "{table:?}");
    let header = table.stdout.lines().next().unwrap();
    for column in ["NAME", "IMAGE", "IMAGE ID", "STATE", "HEALTH", "UPTIME", "CPUS", "MEMORY"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(table.stdout.contains(&name) && table.stdout.contains("64MiB"), "{table:?}");
    let json = daemon.berth(&["list", "--output", "json"]);
    let apps: Vec<Value> = serde_json::from_str(&json.stdout).expect("list json");
    let app = apps.iter().find(|a| a["name"] == name.as_str()).expect("app listed");
    assert_eq!(app["image"], format!("berth-test/{name}:1").as_str());
    assert_eq!(app["image_id"], archive.image_id.as_str());
    assert_eq!(app["state"], "running");
    assert_eq!(app["memory"], 64 << 20);
    assert!((app["cpus"].as_f64().unwrap() - cpus).abs() < 1e-9);
    assert!(app["uptime_seconds"].as_u64().is_some());

    let show = daemon.berth(&["show", &name, "--output", "json"]);
    let shown: Value = serde_json::from_str(&show.stdout).expect("show json");
    assert_eq!(shown["name"], name.as_str());

    let run = daemon.berth(&["uninstall", &name, "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(inspect(&name).is_none(), "container removed");
    assert!(!daemon.private_dir(&name).exists(), "private directory removed");
    assert!(!image_exists(&archive.image_id), "image removed");
    assert!(daemon.list().is_empty());
}

#[test]
fn stop_start_restart_and_logs() {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("verbs");
    // SIGUSR1 makes it say something new: output that only a follower sees.
    let image = service(&name).cmd(&[
        "/bin/sh",
        "-c",
        "echo hello-from-app; echo to-stderr >&2; trap 'exit 0' TERM; trap 'echo poked' USR1; \
         while :; do sleep 1 & wait $!; done",
    ]);
    let archive = daemon.archive(&image, false);
    let run = daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "-y"]);
    assert_eq!(run.code, 0, "{run:?}");

    let stop_asked = engine_clock();
    let stopped = daemon.berth(&["stop", &name, "-o", "json"]);
    let view: Value = serde_json::from_str(&stopped.stdout).expect("stop json");
    assert_eq!((view["state"].as_str(), view["desired"].as_str()), (Some("stopped"), Some("stopped")));
    assert_eq!(inspect(&name).unwrap()["State"]["Running"], false);
    // A stopped app stays stopped: no supervisor restart. The engine's `die`
    // event is what the supervisor reacts to; once the engine has it, a
    // second stop is a round trip through the app's task, where the engine's
    // events queue too. A restart decision would show as `restarting`.
    let died = |d: &TestDaemon| {
        let filters =
            json!({ "type": ["container"], "container": [d.app(&name)?["container_id"].as_str()?], "event": ["die"] });
        (!engine_events(stop_asked, &filters).is_empty()).then_some(())
    };
    daemon.wait_for("the engine's die event", Duration::from_secs(10), died);
    assert_eq!(daemon.berth(&["stop", &name]).code, 0);
    assert_eq!(daemon.app(&name).unwrap()["state"], "stopped");
    assert_eq!(inspect(&name).unwrap()["State"]["Running"], false);

    let started = daemon.berth(&["start", &name, "-o", "json"]);
    let view: Value = serde_json::from_str(&started.stdout).expect("start json");
    assert_eq!(view["state"], "running", "{started:?}");
    let first_start = inspect(&name).unwrap()["State"]["StartedAt"].clone();

    let restarted = daemon.berth(&["restart", &name, "-o", "json"]);
    assert_eq!(restarted.code, 0, "{restarted:?}");
    assert_ne!(inspect(&name).unwrap()["State"]["StartedAt"], first_start, "restart started a new run");
    assert_eq!(daemon.app(&name).unwrap()["state"], "running");

    let logs = daemon.berth(&["logs", &name]);
    assert_eq!(logs.code, 0, "{logs:?}");
    assert!(logs.stdout.contains("hello-from-app") && logs.stdout.contains("to-stderr"), "{logs:?}");
    let tail = daemon.berth(&["logs", &name, "--tail", "1"]);
    assert_eq!(tail.stdout.lines().count(), 1, "{tail:?}");

    // -f keeps streaming until the client goes away: what the app says after
    // the history was shown comes through too.
    let mut follow = daemon.berth_spawn(&[], &["logs", &name, "-f"]);
    let mut lines = Lines::new(follow.stdout.take().unwrap());
    lines.wait_for("hello-from-app", Duration::from_secs(10));
    assert_eq!(docker("POST", &format!("/containers/{name}/kill?signal=USR1"), None).status, 204);
    lines.wait_for("poked", Duration::from_secs(10));
    assert!(follow.try_wait().unwrap().is_none(), "logs -f is still following");
    follow.kill().unwrap();
    let _ = follow.wait();

    for verb in ["start", "stop", "restart", "show", "logs"] {
        let missing = daemon.berth(&[verb, "no-such-app"]);
        assert_eq!(missing.code, 3, "{verb}: {missing:?}");
        assert!(missing.stderr.contains("no-such-app"), "{missing:?}");
    }
}

#[test]
fn private_directory_is_the_apps_tpc_and_keep_data_keeps_it() {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("data");
    let image = service(&name).cmd(&[
        "/bin/sh",
        "-c",
        "echo written-by-app > /tpc/hello; trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done",
    ]);
    let archive = daemon.archive(&image, true);
    assert_eq!(daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "-y"]).code, 0);
    let file = daemon.private_dir(&name).join("hello");
    daemon.wait_for("the app's file", Duration::from_secs(10), |_| file.exists().then_some(()));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "written-by-app\n");

    let run = daemon.berth(&["uninstall", &name, "--keep-data", "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(file.exists(), "--keep-data keeps the private directory");
    assert!(inspect(&name).is_none());
}

#[test]
fn an_image_shared_by_two_apps_is_removed_with_the_last() {
    let mut daemon = TestDaemon::start(bin());
    let (a, b) = (unique("share"), unique("share"));
    let archive = daemon.archive(&service(&a), false);
    let path = archive.path.to_string_lossy().into_owned();
    assert_eq!(daemon.berth(&["install", &a, &path, "-y"]).code, 0);
    assert_eq!(daemon.berth(&["install", &b, &path, "-y"]).code, 0);
    let run = daemon.berth(&["uninstall", &a, "-y", "-o", "json"]);
    let done: Value = serde_json::from_str(&run.stdout).expect("uninstall json");
    assert_eq!(done["removed_image"], false);
    assert!(image_exists(&archive.image_id));
    assert_eq!(daemon.berth(&["uninstall", &b, "-y"]).code, 0);
    assert!(!image_exists(&archive.image_id));
}

#[test]
fn args_become_the_container_configuration() {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("args");
    let archive = daemon.archive(&service(&name), false);
    let host_dir = daemon.dir.path().join("shared");
    std::fs::create_dir_all(&host_dir).unwrap();
    let args = format!(
        "-e GREETING='hello world' --env MODE=test -v {}:/shared:ro -p 127.0.0.1::8080/udp --hostname box-1 \
         --user 1000:1000 --workdir /tmp --label vendor=acme --cap-add NET_ADMIN --cap-drop MKNOD --memory 32m --cpus 0.25",
        host_dir.display()
    );
    let run = daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "--args", &args, "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    let c = inspect(&name).unwrap();
    let env: Vec<String> = serde_json::from_value(c["Config"]["Env"].clone()).unwrap();
    assert!(env.contains(&"GREETING=hello world".to_string()) && env.contains(&"MODE=test".to_string()), "{env:?}");
    assert_eq!(c["Config"]["Hostname"], "box-1");
    assert_eq!(c["Config"]["User"], "1000:1000");
    assert_eq!(c["Config"]["WorkingDir"], "/tmp");
    assert_eq!(c["Config"]["Labels"]["vendor"], "acme");
    assert_eq!(c["HostConfig"]["CapAdd"][0], "NET_ADMIN");
    assert_eq!(c["HostConfig"]["CapDrop"][0], "MKNOD");
    assert_eq!(c["HostConfig"]["Memory"].as_i64(), Some(32 << 20));
    assert_eq!(c["HostConfig"]["NanoCpus"].as_i64(), Some(250_000_000));
    assert_eq!(c["HostConfig"]["PortBindings"]["8080/udp"][0]["HostIp"], "127.0.0.1");
    assert!(c["HostConfig"]["Binds"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b == &Value::from(format!("{}:/shared:ro", host_dir.display()))));
}

#[test]
fn concurrent_installs_of_one_archive_all_succeed() {
    let mut daemon = TestDaemon::start(bin());
    let first = unique("conc");
    let archive = daemon.archive(&service(&first), false);
    let path = archive.path.to_string_lossy().into_owned();
    let names: Vec<String> = (0..4).map(|_| unique("conc")).collect();
    std::thread::scope(|scope| {
        let runs: Vec<_> =
            names.iter().map(|name| scope.spawn(|| daemon.berth(&["install", name, &path, "-y"]))).collect();
        for run in runs {
            let run = run.join().unwrap();
            assert_eq!(run.code, 0, "{run:?}");
        }
    });
    for name in &names {
        assert!(daemon.unit_dir().join(format!("berth-app-{name}.service")).is_file());
        assert_eq!(inspect(name).unwrap()["State"]["Running"], true);
    }
}

/// The engine's `load` events for image `id` since `since`.
fn loads_of(id: &str, since: f64) -> usize {
    let events = engine_events(since, &json!({ "type": ["image"], "event": ["load"] }));
    events.iter().filter(|e| e["Actor"]["ID"] == id).count()
}

#[test]
fn an_archive_of_an_image_the_engine_has_with_its_tags_is_not_loaded_again() {
    let mut daemon = TestDaemon::start(bin());
    let (a, b, c) = (unique("reuse"), unique("reuse"), unique("reuse"));
    let builder = service(&a);
    let archive = daemon.archive(&builder, false);
    let gzipped = daemon.archive(&builder, true);
    assert_eq!(archive.image_id, gzipped.image_id);
    let since = engine_clock();
    let path = archive.path.to_string_lossy().into_owned();
    assert_eq!(daemon.berth(&["install", &a, &path, "-y"]).code, 0);
    assert_eq!(loads_of(&archive.image_id, since), 1, "the first install loads the image");
    let since = engine_clock();
    let run = daemon.berth(&["install", &b, &path, "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = daemon.berth(&["install", &c, &gzipped.path.to_string_lossy(), "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    // The engine's own `docker save` layout (members in name order, then `repositories`).
    let tag = archive.repo_tag.clone().unwrap();
    let saved = docker("GET", &format!("/images/get?names={tag}"), None);
    assert_eq!(saved.status, 200, "{}", saved.text());
    let saved_path = daemon.root().with_file_name("saved.tar");
    std::fs::write(&saved_path, &saved.body).unwrap();
    let d = unique("reuse");
    let run = daemon.berth(&["install", &d, &saved_path.to_string_lossy(), "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(loads_of(&archive.image_id, since), 0, "the engine had the image: nothing to load");
    for app in [&b, &c, &d] {
        assert_eq!(inspect(app).unwrap()["State"]["Running"], true);
        assert_eq!(inspect(app).unwrap()["Image"], archive.image_id);
        assert_eq!(daemon.app(app).unwrap()["image"], archive.repo_tag.clone().unwrap());
    }
}

#[test]
fn an_archive_that_brings_a_new_tag_or_differs_from_its_config_is_loaded() {
    let mut daemon = TestDaemon::start(bin());
    let (a, b, c) = (unique("retag"), unique("retag"), unique("retag"));
    let first = daemon.archive(&service(&a), false);
    assert_eq!(daemon.berth(&["install", &a, &first.path.to_string_lossy(), "-y"]).code, 0);

    // The same image under another tag: the engine must learn the tag.
    let other_tag = format!("berth-test/{b}:2");
    let retagged = ImageBuilder::new(&other_tag).service().label("berth.test.sweep", "1").layer_marker(&a);
    let retagged = daemon.archive(&retagged, false);
    assert_eq!(retagged.image_id, first.image_id);
    let since = engine_clock();
    let run = daemon.berth(&["install", &b, &retagged.path.to_string_lossy(), "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(loads_of(&first.image_id, since), 1);
    let tagged = docker("GET", &format!("/images/{other_tag}/json"), None);
    assert_eq!(tagged.json()["Id"], first.image_id);

    // The same config over a layer that is not the one it names: not the
    // image the engine has, so it goes to the engine to judge.
    let mut bytes = std::fs::read(&first.path).unwrap();
    let marker = a.as_bytes();
    let at = bytes.windows(marker.len()).position(|w| w == marker).expect("the marker is in the layer");
    bytes[at] ^= 0x01;
    let tampered = daemon.root().with_file_name("tampered.tar");
    std::fs::write(&tampered, &bytes).unwrap();
    let since = engine_clock();
    let run = daemon.berth(&["install", &c, &tampered.to_string_lossy(), "-y"]);
    assert_eq!(loads_of(&first.image_id, since), 1, "{run:?}");
}
