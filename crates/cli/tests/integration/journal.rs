//! `kill -9` of the daemon at every crash point of install, upgrade and uninstall
//! (`BERTH_TEST_CRASH_AT` makes it SIGKILL itself there): after the next
//! start, either the whole operation or none of it is left — no orphaned
//! containers, images, directories, units or rows. The points are the
//! journal's: `<kind>:before_<step>` before each step acts,
//! `<kind>:before_commit`, `<kind>:after_commit`, `<kind>:forward_<n>` before
//! each effect of a committed operation's forward log and `<kind>:undo_<n>`
//! before each effect of a rollback (`n` effects left). A point the daemon
//! never reaches fails the test: it must die there.
//!
//! Every point runs on a daemon of its own, a few at a time.

use crate::bin;

use crate::upgrade::{assert_old_version_back, installed, upgrade, version};
use berth_testkit::harness::{for_each_concurrently, image_exists, inspect, unique, TestDaemon, TEST_SETTINGS};
use berth_testkit::ImageBuilder;
use std::time::Duration;

/// Crash points run at the same time, each on a daemon of its own. Most of
/// their time is waiting (start checks, probation, stops), not work.
const AT_ONCE: usize = 4;

/// What an install is made of, for the points to reach.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Install {
    /// A plain archive that installs.
    Plain,
    /// A gzip archive that installs: at `before_image_ready` the engine has
    /// loaded the image, but the journal only knows it from the manifest.
    Gzip,
    /// An app that exits at once: the start check fails and the install is
    /// rolled back, through its `undo_<n>` points.
    Failing,
}

fn crash_during_install(point: &str, install: Install) -> (TestDaemon, String, String) {
    let mut daemon = TestDaemon::start_with(bin(), TEST_SETTINGS, &[("BERTH_TEST_CRASH_AT", point)], None);
    let name = unique("jrnl");
    let mut builder =
        ImageBuilder::new(&format!("berth-test/{name}:1")).service().label("berth.test.sweep", "1").layer_marker(&name);
    if install == Install::Failing {
        builder = builder.cmd(&["/bin/sh", "-c", "echo boom; exit 3"]);
    }
    let archive = daemon.archive(&builder, install == Install::Gzip);
    let run = daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "-y"]);
    assert_ne!(run.code, 0, "{point}: the daemon died under the install: {run:?}");
    assert!(daemon.wait_exit(Duration::from_secs(30)).is_some(), "the daemon killed itself at {point}: {run:?}");
    daemon.launch(&[]);
    (daemon, name, archive.image_id)
}

fn assert_nothing_left(daemon: &TestDaemon, name: &str, image: &str, point: &str) {
    assert!(daemon.app(name).is_none(), "{point}: app row left");
    assert!(daemon.containers().is_empty(), "{point}: container left: {:?}", daemon.containers());
    assert!(inspect(name).is_none(), "{point}: container left");
    assert!(!daemon.private_dir(name).exists(), "{point}: private directory left");
    assert!(!daemon.unit_dir().join(format!("berth-app-{name}.service")).exists(), "{point}: systemd unit left");
    assert!(!image_exists(image), "{point}: image left");
}

/// Before the commit, and during a rollback (undo log: the row, the image,
/// the directory, the container, the unit): undone.
const INSTALL_UNDONE: [(&str, Install); 11] = [
    ("install:before_fetching_image", Install::Plain),
    ("install:before_image_ready", Install::Plain),
    ("install:before_image_ready", Install::Gzip),
    ("install:before_directory_ready", Install::Gzip),
    ("install:before_container_created", Install::Plain),
    ("install:before_commit", Install::Gzip),
    ("install:undo_5", Install::Failing),
    ("install:undo_4", Install::Failing),
    ("install:undo_3", Install::Failing),
    ("install:undo_2", Install::Failing),
    ("install:undo_1", Install::Failing),
];

#[test]
fn install_killed_at_any_step_or_while_rolling_back_leaves_nothing() {
    for_each_concurrently(&INSTALL_UNDONE, AT_ONCE, |&(point, install)| {
        let (daemon, name, image) = crash_during_install(point, install);
        assert_nothing_left(&daemon, &name, &image, point);
        // The name is free again.
        let rerun = daemon.berth(&["install", &name, "/nonexistent.tar", "-y"]);
        assert_eq!(rerun.code, 5, "{point}: {rerun:?}");
    });
}

/// After the commit (its forward log: start the unit): installed and running.
#[test]
fn install_killed_after_commit_is_installed_and_running() {
    for_each_concurrently(&["install:after_commit", "install:forward_1"], AT_ONCE, |point| {
        let (daemon, name, image) = crash_during_install(point, Install::Plain);
        let app = daemon.wait_state(&name, "running", Duration::from_secs(15));
        assert_eq!(app["image_id"], image.as_str(), "{point}");
        assert!(daemon.private_dir(&name).is_dir(), "{point}");
        assert!(daemon.unit_dir().join(format!("berth-app-{name}.service")).is_file(), "{point}");
        assert_eq!(inspect(&name).unwrap()["State"]["Running"], true, "{point}");
    });
}

#[test]
fn uninstall_killed_at_any_step_is_finished_on_restart() {
    // The plan: container, unit, private directory, snapshots, image, row.
    let points = [
        "uninstall:forward_6",
        "uninstall:forward_5",
        "uninstall:forward_4",
        "uninstall:forward_3",
        "uninstall:forward_2",
        "uninstall:forward_1",
    ];
    for_each_concurrently(&points, AT_ONCE, |point| {
        let mut daemon = TestDaemon::start_with(bin(), TEST_SETTINGS, &[("BERTH_TEST_CRASH_AT", point)], None);
        let name = unique("unjr");
        let builder = ImageBuilder::new(&format!("berth-test/{name}:1"))
            .service()
            .label("berth.test.sweep", "1")
            .layer_marker(&name);
        let archive = daemon.archive(&builder, false);
        let run = daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "-y"]);
        assert_eq!(run.code, 0, "{run:?}");
        let run = daemon.berth(&["uninstall", &name, "-y"]);
        assert_ne!(run.code, 0, "{point}: the daemon died under the uninstall: {run:?}");
        assert!(daemon.wait_exit(Duration::from_secs(30)).is_some(), "daemon killed itself at {point}");
        daemon.launch(&[]);
        assert_nothing_left(&daemon, &name, &archive.image_id, point);
    });
}

/// What an upgrade crashed at a point is, for the points to reach.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scenario {
    /// v1 → v2 with both hooks, through every step.
    Hooks,
    /// v1 → v2 whose app exits at once: the start check fails and the
    /// upgrade is rolled back, through its `undo_<n>` points.
    Failing,
    /// v1 → v2, then v2 → v3: the second's forward log also releases v1's
    /// image (the version no longer kept for rollback).
    Second,
}

/// `kill -9` at every crash point of an upgrade. The undo log of an upgrade
/// that got to its new container: start the old one if it should run,
/// release the new image, remove the snapshot, restore it over the private
/// directory, rename the old container back, remove the new one. The
/// forward log after the commit: remove the old container, keep the
/// snapshot for rollback (and, on a second upgrade, release the image no
/// longer kept).
const UPGRADE_POINTS: [(&str, Scenario); 21] = [
    ("upgrade:before_fetching_image", Scenario::Hooks),
    ("upgrade:before_image_ready", Scenario::Hooks),
    ("upgrade:before_snapshotting", Scenario::Hooks),
    ("upgrade:before_pre_hook", Scenario::Hooks),
    ("upgrade:before_old_stopped", Scenario::Hooks),
    ("upgrade:before_new_started", Scenario::Hooks),
    ("upgrade:before_post_hook", Scenario::Hooks),
    ("upgrade:before_probation", Scenario::Hooks),
    ("upgrade:before_commit", Scenario::Hooks),
    ("upgrade:after_commit", Scenario::Hooks),
    ("upgrade:forward_2", Scenario::Hooks),
    ("upgrade:forward_1", Scenario::Hooks),
    ("upgrade:undo_6", Scenario::Failing),
    ("upgrade:undo_5", Scenario::Failing),
    ("upgrade:undo_4", Scenario::Failing),
    ("upgrade:undo_3", Scenario::Failing),
    ("upgrade:undo_2", Scenario::Failing),
    ("upgrade:undo_1", Scenario::Failing),
    ("upgrade:forward_3", Scenario::Second),
    ("upgrade:forward_2", Scenario::Second),
    ("upgrade:forward_1", Scenario::Second),
];

#[test]
fn an_upgrade_killed_at_any_step_is_undone_or_finished_on_restart() {
    for_each_concurrently(&UPGRADE_POINTS, 6, |&(point, scenario)| {
        let env = [("BERTH_TEST_CRASH_AT", point)];
        let mut daemon =
            TestDaemon::start_with(bin(), TEST_SETTINGS, if scenario == Scenario::Second { &[] } else { &env }, None);
        let name = unique("upgkill");
        let versions = installed(&mut daemon, &name);
        let mut old = inspect(&name).unwrap()["Id"].clone();
        let v2 = match scenario {
            Scenario::Failing => version(&name, "2").cmd(&["/bin/sh", "-c", "echo cannot-start; exit 3"]),
            Scenario::Hooks | Scenario::Second => version(&name, "2"),
        };
        let v2 = daemon.archive(&v2, false);
        let mut target = v2.clone();
        if scenario == Scenario::Second {
            let run = upgrade(&daemon, &name, &v2.path.to_string_lossy(), &["--skip_data"]);
            assert_eq!(run.code, 0, "{point}: {run:?}");
            daemon.terminate();
            daemon.launch(&env);
            daemon.wait_state(&name, "running", Duration::from_secs(15));
            old = inspect(&name).unwrap()["Id"].clone();
            target = daemon.archive(&version(&name, "3"), false);
        }
        let run = upgrade(&daemon, &name, &target.path.to_string_lossy(), &[]);
        assert_ne!(run.code, 0, "{point}: {run:?}");
        assert!(daemon.wait_exit(Duration::from_secs(30)).is_some(), "{point}: the daemon killed itself: {run:?}");
        daemon.launch(&[]);
        let committed = point.contains("after_commit") || point.contains("forward_");
        match scenario {
            _ if !committed => assert_old_version_back(&daemon, &name, &versions, &old, &target.image_id),
            Scenario::Second => {
                let app = daemon.wait_state(&name, "running", Duration::from_secs(15));
                assert_eq!(app["image_id"], target.image_id.as_str(), "{point}");
                assert_eq!(app["previous_image_id"], v2.image_id.as_str(), "{point}");
                assert!(inspect(&format!("{name}.berth-old")).is_none(), "{point}: old container cleaned up");
                assert!(!image_exists(&versions.v1_id), "{point}: the image no longer kept is released");
                assert!(image_exists(&v2.image_id), "{point}: the previous image is kept for rollback");
            }
            Scenario::Hooks | Scenario::Failing => {
                let app = daemon.wait_state(&name, "running", Duration::from_secs(15));
                assert_eq!(app["image_id"], v2.image_id.as_str(), "{point}");
                assert!(inspect(&format!("{name}.berth-old")).is_none(), "{point}: old container cleaned up");
                assert_eq!(inspect(&name).unwrap()["Image"], v2.image_id.as_str());
                // The commit's remaining work was finished: rollback has its snapshot
                // (defect 1: a rollback after such a crash emptied the private directory).
                std::fs::write(daemon.private_dir(&name).join("data/state"), "written-by-v2\n").unwrap();
                let run = daemon.berth(&["rollback", &name, "-y"]);
                assert_eq!(run.code, 0, "{point}: {run:?}");
                let state = std::fs::read_to_string(daemon.private_dir(&name).join("data/state")).unwrap();
                assert_eq!(state, "first-data\n", "{point}: the data as before the upgrade");
            }
        }
        let _ = &versions.v1;
    });
}
