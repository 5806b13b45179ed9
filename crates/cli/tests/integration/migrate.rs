//! Host OS upgrade migration: export every app, replace the engine with an
//! empty one, and the daemon brings every app back — with the changes made
//! inside its container's filesystem and its private directory.

use crate::bin;

use berth_testkit::engine::PrivateEngine;
use berth_testkit::harness::{unique, TestDaemon, TEST_SETTINGS};
use berth_testkit::ImageBuilder;
use serde_json::Value;
use std::time::Duration;

/// Writes into its own filesystem (not /tpc) on first start, then serves.
const CHANGES_ITSELF: &str = "[ -f /etc/first-boot ] || date > /etc/first-boot; echo kept > /tpc/data; \
                              trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done";

#[test]
fn every_app_comes_back_on_a_new_engine_with_its_changes() {
    let old_engine = PrivateEngine::start();
    let mut daemon = TestDaemon::start_with(bin(), TEST_SETTINGS, &[], Some(&old_engine.host()));
    let (a, b, broken) = (unique("mig"), unique("mig"), unique("mig"));
    let builder = ImageBuilder::new(&format!("berth-test/{a}:1")).service().cmd(&["/bin/sh", "-c", CHANGES_ITSELF]);
    let archive = daemon.archive(&builder, true);
    for name in [&a, &b, &broken] {
        let run = daemon.berth(&["install", name, &archive.path.to_string_lossy(), "-y"]);
        assert_eq!(run.code, 0, "{run:?}");
    }
    assert_eq!(daemon.berth(&["stop", &b]).code, 0);
    let first_boot = daemon.wait_for("the app's own change", Duration::from_secs(10), |_| {
        let exec = old_engine.get(&format!("/containers/{a}/archive?path=/etc/first-boot"))?;
        (exec.status == 200).then_some(exec.body)
    });

    let run = daemon.berth(&["migrate", "export", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["state"], "pending");
    let migration = daemon.root().join("migration");
    for name in [&a, &b, &broken] {
        assert!(
            migration.join(name).join("image.tar.gz").is_file() && migration.join(name).join("data.tar.gz").is_file()
        );
    }
    // One app's saved image is damaged: the others must still come back.
    std::fs::write(migration.join(&broken).join("image.tar.gz"), b"\x1f\x8b\x08\x00garbage").unwrap();

    // The host OS is replaced: a new, empty engine; berth's storage stays.
    daemon.terminate();
    drop(old_engine);
    std::fs::remove_dir_all(daemon.private_dir(&a)).unwrap();
    let new_engine = PrivateEngine::start();
    daemon.set_docker_host(&new_engine.host());
    daemon.launch(&[]);

    let app = daemon.wait_state(&a, "running", Duration::from_secs(30));
    assert_ne!(app["image_id"], archive.image_id.as_str(), "runs from the committed image");
    let inside = new_engine.get(&format!("/containers/{a}/archive?path=/etc/first-boot")).unwrap();
    assert_eq!(inside.status, 200);
    assert_eq!(inside.body, first_boot, "the change made inside the container survived");
    assert_eq!(std::fs::read_to_string(daemon.private_dir(&a).join("data")).unwrap(), "kept\n", "data restored");
    let stopped = daemon.wait_state(&b, "stopped", Duration::from_secs(10));
    assert_eq!(stopped["desired"], "stopped");

    let run = daemon.berth(&["migrate", "status", "-o", "json"]);
    assert_eq!(run.code, 9, "a failed app is reported: {run:?}");
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["state"], "partial");
    let result =
        |name: &str| status["apps"].as_array().unwrap().iter().find(|x| x["name"] == name).unwrap()["outcome"].clone();
    assert_eq!(result(&a), "imported");
    assert_eq!(result(&broken), "failed", "{status}");

    // Import is idempotent.
    let again = daemon.berth(&["migrate", "import", "-o", "json"]);
    let status: Value = serde_json::from_str(&again.stdout).unwrap();
    let result =
        |name: &str| status["apps"].as_array().unwrap().iter().find(|x| x["name"] == name).unwrap()["outcome"].clone();
    assert_eq!(result(&a), "already_present");
    assert_eq!(new_engine.inspect(&a).unwrap()["State"]["Running"], true);
}
