//! Apps come back after the engine restarts (and so after a reboot, which is
//! an engine restart plus a daemon restart), on a private engine so that the
//! shared one is never disturbed.

use crate::bin;

use berth_testkit::engine::PrivateEngine;
use berth_testkit::harness::{unique, TestDaemon, TEST_SETTINGS};
use berth_testkit::ImageBuilder;
use std::time::Duration;

#[test]
fn apps_come_back_after_an_engine_restart_and_a_reboot() {
    let mut engine = PrivateEngine::start();
    let mut daemon = TestDaemon::start_with(bin(), TEST_SETTINGS, &[], Some(&engine.host()));
    let (web, off) = (unique("eng"), unique("eng"));
    let builder = ImageBuilder::new(&format!("berth-test/{web}:1")).service();
    let archive = daemon.archive(&builder, true);
    for name in [&web, &off] {
        let run = daemon.berth(&["install", name, &archive.path.to_string_lossy(), "-y"]);
        assert_eq!(run.code, 0, "{run:?}");
    }
    assert_eq!(daemon.berth(&["stop", &off]).code, 0);
    let first_start = engine.inspect(&web).unwrap()["State"]["StartedAt"].clone();

    // Engine restart under a running daemon: dockerd stops the containers.
    engine.stop();
    let listed = daemon.berth(&["list"]);
    assert_eq!(listed.code, 0, "list answers while the engine is down: {listed:?}");
    // The daemon says it runs degraded, in plain words, in info and doctor.
    daemon.wait_for("info to say degraded", Duration::from_secs(30), |d| {
        let run = d.berth(&["info"]);
        run.stdout.contains("DEGRADED: the container engine").then_some(())
    });
    let doctor = daemon.berth(&["doctor"]);
    assert_eq!(doctor.code, 6, "{doctor:?}");
    engine.launch();
    daemon.wait_for("the app to run again", Duration::from_secs(30), |_| {
        engine.inspect(&web).filter(|c| c["State"]["Running"] == true && c["State"]["StartedAt"] != first_start)
    });
    daemon.wait_state(&web, "running", Duration::from_secs(10));

    // Reboot: both go down; berth comes up before the engine does.
    daemon.terminate();
    engine.stop();
    let _ = std::fs::remove_file(engine.socket());
    daemon.launch(&[]);
    let waiting = daemon.app(&web).expect("listed from the database before the engine answers");
    assert_eq!(waiting["state"], "starting");
    assert_eq!(waiting["failure"], "waiting for the container engine");
    let refused = daemon.berth(&["restart", &web]);
    assert_eq!(refused.code, 6, "{refused:?}");
    engine.launch();
    daemon.wait_for("the app to run after the reboot", Duration::from_secs(30), |_| {
        engine.inspect(&web).filter(|c| c["State"]["Running"] == true)
    });
    daemon.wait_state(&web, "running", Duration::from_secs(10));
    assert!(!daemon.berth(&["info"]).stdout.contains("DEGRADED"), "recovered on its own");
    assert_eq!(daemon.app(&off).unwrap()["state"], "stopped", "a user-stopped app stays stopped");
    assert_eq!(engine.inspect(&off).unwrap()["State"]["Running"], false);
    // The engine's loss and return are events, in that order.
    let run = daemon.berth(&["events", "--kind", "daemon", "--output", "json"]);
    let kinds: Vec<String> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].as_str().unwrap().to_owned())
        .collect();
    let lost = kinds.iter().position(|k| k == "daemon.engine_lost").expect("engine_lost is an event");
    assert!(kinds[lost..].iter().any(|k| k == "daemon.engine_back"), "{kinds:?}");
}
