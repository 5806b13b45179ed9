//! `kill -9` of the daemon at every step of install and uninstall: after the
//! next start, either the whole operation or none of it is left — no orphaned
//! containers, images, directories or rows.

use crate::bin;

use berth_testkit::harness::{image_exists, inspect, unique, TestDaemon};
use berth_testkit::ImageBuilder;
use std::time::Duration;


/// Crash points that must be undone, each with a plain and a gzip archive
/// where it matters: at `before_image_ready` the engine has loaded the image
/// but the journal does not know its id yet, so recovery must read the
/// archive again to find it.
const INSTALL_POINTS_UNDONE: [(&str, bool); 6] = [
    ("install:before_fetching_image", false),
    ("install:before_image_ready", false),
    ("install:before_image_ready", true),
    ("install:before_directory_ready", true),
    ("install:before_container_created", false),
    ("install:before_commit", true),
];

fn crash_during_install(point: &str, gzip: bool) -> (TestDaemon, String, String) {
    let mut daemon =
        TestDaemon::start_with(bin(), berth_testkit::harness::TEST_SETTINGS, &[("BERTH_TEST_CRASH_AT", point)], None);
    let name = unique("jrnl");
    let builder =
        ImageBuilder::new(&format!("berth-test/{name}:1")).service().label("berth.test.sweep", "1").layer_marker(&name);
    let archive = daemon.archive(&builder, gzip);
    let run = daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "-y"]);
    assert_ne!(run.code, 0, "the daemon died under the install: {run:?}");
    assert!(daemon.wait_exit(Duration::from_secs(20)).is_some(), "daemon killed itself at {point}");
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

#[test]
fn install_killed_at_any_step_leaves_nothing() {
    for (point, gzip) in INSTALL_POINTS_UNDONE {
        let (daemon, name, image) = crash_during_install(point, gzip);
        assert_nothing_left(&daemon, &name, &image, point);
        // The name is free again.
        let rerun = daemon.berth(&["install", &name, "/nonexistent.tar", "-y"]);
        assert_eq!(rerun.code, 5, "{point}: {rerun:?}");
    }
}

#[test]
fn install_killed_after_commit_is_installed_and_running() {
    let (daemon, name, image) = crash_during_install("install:after_commit", false);
    let app = daemon.wait_state(&name, "running", Duration::from_secs(15));
    assert_eq!(app["image_id"], image.as_str());
    assert!(daemon.private_dir(&name).is_dir());
    assert_eq!(inspect(&name).unwrap()["State"]["Running"], true);
}

#[test]
fn uninstall_killed_at_any_step_is_finished_on_restart() {
    for point in [
        // The plan: container, unit, private directory, snapshots, image, row.
        "uninstall:forward_6",
        "uninstall:forward_5",
        "uninstall:forward_4",
        "uninstall:forward_3",
        "uninstall:forward_2",
        "uninstall:forward_1",
    ] {
        let mut daemon = TestDaemon::start_with(
            bin(),
            berth_testkit::harness::TEST_SETTINGS,
            &[("BERTH_TEST_CRASH_AT", point)],
            None,
        );
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
        assert!(daemon.wait_exit(Duration::from_secs(20)).is_some(), "daemon killed itself at {point}");
        daemon.launch(&[]);
        assert_nothing_left(&daemon, &name, &archive.image_id, point);
    }
}
