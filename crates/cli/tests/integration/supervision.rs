//! Supervision and reconciliation against the real engine: crashes are
//! restarted with backoff until berth gives up, health is reflected, and the
//! engine's state is rebuilt after it is lost behind berth's back.

use crate::bin;

use berth_testkit::harness::{engine_clock, engine_events, inspect, unique, TestDaemon};
use berth_testkit::http::docker;
use berth_testkit::ImageBuilder;
use serde_json::json;
use std::time::Duration;

fn image(tag: &str) -> ImageBuilder {
    ImageBuilder::new(&format!("berth-test/{tag}:1")).service().label("berth.test.sweep", "1").layer_marker(tag)
}

fn install(daemon: &mut TestDaemon, name: &str, builder: &ImageBuilder) {
    let archive = daemon.archive(builder, false);
    let run = daemon.berth(&["install", name, &archive.path.to_string_lossy(), "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn a_crashing_app_is_restarted_with_backoff_then_failed_with_the_reason() {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("crash");
    // Up long enough to pass the start check, then dies with code 7.
    let builder = image(&name).cmd(&["/bin/sh", "-c", "sleep 1; echo dying; exit 7"]);
    let installed = engine_clock();
    install(&mut daemon, &name, &builder);

    let restarting = daemon.wait_state(&name, "restarting", Duration::from_secs(10));
    assert_eq!(restarting["failure"], "exited with code 7");
    // TEST_SETTINGS: max_crashes = 3.
    let failed = daemon.wait_state(&name, "failed", Duration::from_secs(30));
    let reason = failed["failure"].as_str().unwrap();
    assert!(reason.contains("crashed 3 times") && reason.contains("exited with code 7"), "{reason}");
    let table = daemon.berth(&["list"]).stdout;
    assert!(table.contains("failed") && table.contains("crashed 3 times"), "{table}");

    // Given up means given up: the decision is logged and nothing is
    // scheduled (the app's task ignores the exits of a failed app), so the
    // container stays down: it was started once and restarted twice.
    assert!(daemon.log().contains("app keeps crashing; giving up"), "{}", daemon.log());
    assert_eq!(inspect(&name).unwrap()["State"]["Running"], false);
    let starts =
        engine_events(installed, &json!({ "type": ["container"], "container": [name.as_str()], "event": ["start"] }));
    assert_eq!(starts.len(), 3, "{starts:?}");
    assert_eq!(daemon.app(&name).unwrap()["state"], "failed");

    // A user start is a fresh chance.
    let start = daemon.berth(&["start", &name, "-o", "json"]);
    assert_eq!(start.code, 0, "{start:?}");
    let view: serde_json::Value = serde_json::from_str(&start.stdout).unwrap();
    assert_eq!(view["state"], "running");
    assert_eq!(view["restarts"], 0);
}

#[test]
fn docker_health_is_reflected() {
    let mut daemon = TestDaemon::start(bin());
    let (healthy, sick) = (unique("healthy"), unique("sick"));
    install(&mut daemon, &healthy, &image(&healthy).healthcheck(&["true"], 300, 1));
    install(&mut daemon, &sick, &image(&sick).healthcheck(&["false"], 300, 1));
    daemon.wait_for("healthy", Duration::from_secs(20), |d| d.app(&healthy).filter(|a| a["health"] == "healthy"));
    daemon.wait_for("unhealthy", Duration::from_secs(20), |d| d.app(&sick).filter(|a| a["health"] == "unhealthy"));
    let table = daemon.berth(&["list"]).stdout;
    assert!(table.contains("healthy") && table.contains("unhealthy"), "{table}");
}

#[test]
fn a_container_removed_behind_berths_back_is_recreated() {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("gone");
    install(&mut daemon, &name, &image(&name));
    let old_id = inspect(&name).unwrap()["Id"].clone();
    assert_eq!(docker("DELETE", &format!("/containers/{name}?force=1"), None).status, 204);
    let new = daemon.wait_for("the container to come back", Duration::from_secs(15), |_| {
        inspect(&name).filter(|c| c["State"]["Running"] == true && c["Id"] != old_id)
    });
    assert_eq!(new["Config"]["Labels"]["berth.app"], name.as_str());
    daemon.wait_state(&name, "running", Duration::from_secs(10));
}

#[test]
fn apps_come_back_after_a_daemon_restart_and_user_stops_are_kept() {
    let mut daemon = TestDaemon::start(bin());
    let (runner, stopper, lost) = (unique("back"), unique("kept"), unique("lost"));
    for name in [&runner, &stopper, &lost] {
        install(&mut daemon, name, &image(name));
    }
    assert_eq!(daemon.berth(&["stop", &stopper]).code, 0);
    daemon.terminate();
    // What a reboot or an engine restart does to containers, while berth is down.
    assert_eq!(docker("POST", &format!("/containers/{runner}/stop?t=1"), None).status, 204);
    assert_eq!(docker("DELETE", &format!("/containers/{lost}?force=1"), None).status, 204);

    let relaunched = engine_clock();
    daemon.launch(&[]);
    for name in [&runner, &lost] {
        daemon.wait_state(name, "running", Duration::from_secs(15));
        assert_eq!(inspect(name).unwrap()["State"]["Running"], true, "{name}");
    }
    // Apps are listed as `starting` until their task has reconciled them:
    // `stopped` is the marker that the user's stop was looked at, and kept.
    daemon.wait_state(&stopper, "stopped", Duration::from_secs(15));
    assert_eq!(inspect(&stopper).unwrap()["State"]["Running"], false);
    let starts = engine_events(
        relaunched,
        &json!({ "type": ["container"], "container": [stopper.as_str()], "event": ["start"] }),
    );
    assert!(starts.is_empty(), "the stopped app was started: {starts:?}");
}

#[test]
fn a_container_not_berths_is_never_touched() {
    let mut first = TestDaemon::start(bin());
    let second = TestDaemon::start(bin());
    let name = unique("mine");
    install(&mut first, &name, &image(&name));
    // The second daemon sees a container with berth's app label, but of
    // another instance: it must neither list nor remove it.
    drop(second);
    assert_eq!(inspect(&name).unwrap()["State"]["Running"], true);
}
