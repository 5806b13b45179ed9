//! Installing from a registry reference, against Debian's docker-registry on
//! 127.0.0.1:5114 (started by scripts/setup.sh).

use berth_testkit::harness::{image_exists, inspect, unique, TestDaemon};
use berth_testkit::http::{docker, docker_load, docker_push, encode};
use berth_testkit::ImageBuilder;
use std::path::Path;

const REGISTRY: &str = "127.0.0.1:5114";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

/// Puts a fresh image into the registry as `<REGISTRY>/berth-test/<name>:<tag>`
/// and removes it from the engine, so that berth has to pull it.
fn publish(daemon: &mut TestDaemon, name: &str, tag: &str) -> (String, String) {
    let repository = format!("{REGISTRY}/berth-test/{name}");
    let builder =
        ImageBuilder::new(&format!("{repository}:{tag}")).service().label("berth.test.sweep", "1").layer_marker(name);
    let archive = daemon.archive(&builder, false);
    assert_eq!(docker_load(&archive.path).status, 200);
    let pushed = docker_push(&repository, tag);
    assert_eq!(pushed.status, 200, "{}", pushed.text());
    assert!(!pushed.text().contains("errorDetail"), "push failed: {}", pushed.text());
    assert_eq!(
        docker("DELETE", &format!("/images/{}?force=1", encode(&format!("{repository}:{tag}"))), None).status,
        200
    );
    assert!(!image_exists(&archive.image_id), "the image must come from the registry");
    (repository, archive.image_id)
}

#[test]
fn installs_a_tagged_reference_and_defaults_to_latest() {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("reg");
    let (repository, image_id) = publish(&mut daemon, &name, "2.0");
    let reference = format!("{repository}:2.0");
    let run = daemon.berth(&["install", &name, &reference, "-y", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let app: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(app["image"], reference.as_str());
    assert_eq!(app["source"], reference.as_str());
    assert_eq!(inspect(&name).unwrap()["State"]["Running"], true);
    assert!(image_exists(&image_id));

    let latest = unique("reg");
    let (repository, _) = publish(&mut daemon, &latest, "latest");
    let run = daemon.berth(&["install", &latest, &repository, "-y", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let app: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(app["image"], format!("{repository}:latest").as_str());

    assert_eq!(daemon.berth(&["uninstall", &name, "-y"]).code, 0);
    assert!(!image_exists(&image_id), "a pulled image goes with its last app");
}

#[test]
fn a_tag_the_registry_does_not_have_is_a_bad_source() {
    let daemon = TestDaemon::start(bin());
    let name = unique("regmiss");
    let run = daemon.berth(&["install", &name, &format!("{REGISTRY}/berth-test/{name}:nope"), "-y"]);
    assert_eq!(run.code, 5, "{run:?}");
    assert!(run.stderr.contains(&name), "{run:?}");
    assert!(daemon.list().is_empty());
    assert!(daemon.containers().is_empty());
}
