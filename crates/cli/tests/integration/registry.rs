//! Installing from a registry reference, against Debian's docker-registry on
//! 127.0.0.1:5114 (started by scripts/setup.sh).

use crate::bin;

use berth_testkit::harness::{image_exists, inspect, unique, TestDaemon};
use berth_testkit::http::{docker, docker_load, docker_push, encode};
use berth_testkit::ImageBuilder;

const REGISTRY: &str = "127.0.0.1:5114";

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

#[test]
fn a_registry_behind_a_login_needs_berth_login_or_registry_auth() {
    use berth_testkit::http::docker_push_as;
    use berth_testkit::registry::PrivateRegistry;
    let registry = PrivateRegistry::start(Some(("vendor", "s3cret-pass")));
    let mut daemon = TestDaemon::start(bin());
    let name = unique("auth");
    let repository = format!("{}/berth-test/{name}", registry.host());
    let builder =
        ImageBuilder::new(&format!("{repository}:1")).service().label("berth.test.sweep", "1").layer_marker(&name);
    let archive = daemon.archive(&builder, false);
    assert_eq!(docker_load(&archive.path).status, 200);
    let pushed = docker_push_as(&repository, "1", Some(("vendor", "s3cret-pass")));
    assert!(!pushed.text().contains("errorDetail"), "push: {}", pushed.text());
    docker("DELETE", &format!("/images/{}?force=1", encode(&format!("{repository}:1"))), None);
    let reference = format!("{repository}:1");

    // No login: refused by the registry, nothing changed.
    let run = daemon.berth(&["install", &name, &reference, "-y"]);
    assert_eq!(run.code, 5, "{run:?}");
    assert!(daemon.list().is_empty());

    // A wrong password is refused too, and never shown.
    let run = daemon.berth(&["install", &name, &reference, "--registry-auth", "vendor:wrong-pass", "-y"]);
    assert_eq!(run.code, 5, "{run:?}");
    assert!(!run.stderr.contains("wrong-pass"), "{run:?}");

    // A one-off login.
    let run = daemon.berth(&["install", &name, &reference, "--registry-auth", "vendor:s3cret-pass", "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(daemon.berth(&["uninstall", &name, "-y"]).code, 0);

    // A stored login, given on stdin; kept 0600.
    let mut login = std::process::Command::new(bin())
        .args(["login", &registry.host(), "-u", "vendor", "--password-stdin"])
        .env("BERTH_SOCKET", &daemon.socket)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(login.stdin.as_mut().unwrap(), b"s3cret-pass\n").unwrap();
    assert!(login.wait().unwrap().success());
    let stored = daemon.root().join("registries.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777, 0o600);
    let run = daemon.berth(&["install", &name, &reference, "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(inspect(&name).unwrap()["State"]["Running"], true);

    // Without a terminal and without --password-stdin, login refuses to guess.
    let run = daemon.berth(&["login", &registry.host(), "-u", "vendor"]);
    assert_eq!(run.code, 8, "{run:?}");
    assert_eq!(daemon.berth(&["logout", &registry.host()]).code, 0);
    assert_eq!(daemon.berth(&["logout", &registry.host()]).code, 3);
}
