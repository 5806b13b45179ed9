//! `berth doctor --rebuild`: the database deleted under a daemon with apps
//! (one upgraded, with limits; one stopped), a scripted resource instance and
//! a built-in volume instance, and rebuilt from what the engine keeps; the
//! result matches what was listed before, and a second rebuild changes nothing.

use crate::bin;
use crate::resources_support::*;
use crate::upgrade::{installed, version};
use berth_testkit::harness::TestDaemon;
use serde_json::{json, Value};
use std::time::Duration;

/// What a rebuild must bring back of an app (not its uptime or restarts).
fn app_record(app: &Value) -> Value {
    json!({
        "name": app["name"], "image": app["image"], "image_id": app["image_id"], "args": app["args"],
        "desired": app["desired"], "state": app["state"], "cpus": app["cpus"], "memory": app["memory"],
        "previous_image": app["previous_image"], "previous_image_id": app["previous_image_id"],
        "created_at": app["created_at"],
    })
}

fn apps(daemon: &TestDaemon, names: &[&str]) -> Vec<Value> {
    let mut apps: Vec<Value> =
        daemon.list().iter().filter(|a| names.contains(&a["name"].as_str().unwrap_or(""))).map(app_record).collect();
    apps.sort_by_key(|a| a["name"].as_str().unwrap_or("").to_owned());
    apps
}

fn instances(daemon: &TestDaemon) -> Vec<Value> {
    let (status, body) = rm(daemon, "GET", "/topology/deployment-locations/local/instances", None);
    assert_eq!(status, 200, "{body}");
    let mut all: Vec<Value> = body
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["resourceState"] != "Discovered")
        .map(|i| {
            json!({"id": i["resourceId"], "name": i["resourceName"], "type": i["resourceType"], "state": i["resourceState"],
                   "properties": i["properties"], "internal": i["internalResourceInstances"], "createdAt": i["createdAt"]})
        })
        .collect();
    all.sort_by_key(|i| i["id"].as_str().unwrap_or("").to_owned());
    all
}

#[test]
fn the_database_is_rebuilt_from_the_containers() {
    let mut daemon = TestDaemon::start(bin());
    let (web, idle) = (berth_testkit::harness::unique("rbw"), berth_testkit::harness::unique("rbi"));
    installed(&mut daemon, &web);
    let v2 = daemon.archive(&version(&web, "2"), false);
    let run = daemon.berth(&[
        "upgrade",
        &web,
        &v2.path.to_string_lossy(),
        "--cpus",
        "0.3",
        "--memory",
        "64m",
        "--args",
        "-e MODE=two",
        "-y",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    installed(&mut daemon, &idle);
    assert_eq!(daemon.berth(&["stop", &idle]).code, 0);
    daemon.wait_state(&idle, "stopped", Duration::from_secs(15));

    let package = package(
        daemon.dir.path(),
        "  greeting:\n    type: string\n    default: hello\n",
        &["Install", "Start", "Stop", "Uninstall"],
        &|t| (t == "Install").then(|| "setProperty echoed \"$(getProperty greeting)!\"\n".to_owned()),
        &[],
    );
    onboard(&daemon, &package);
    let (_, scripted) = transition(&daemon, install_body(&package.type_name(), "rb-one", json!({"greeting": "hi"})));
    transition(&daemon, next_body(&scripted, "Start", json!({})));
    transition(&daemon, volume_body(&berth_testkit::harness::unique("rbv")));

    let names = [web.as_str(), idle.as_str()];
    let apps_before = apps(&daemon, &names);
    let instances_before = instances(&daemon);
    assert_eq!(apps_before.len(), 2);
    assert!(
        apps_before[0]["previous_image_id"].is_string() || apps_before[1]["previous_image_id"].is_string(),
        "one app was upgraded, so it has a previous image: {apps_before:?}"
    );
    assert_eq!(instances_before.len(), 2, "{instances_before:?}");
    assert!(instances_before.iter().any(|i| i["properties"]["echoed"] == "hi!" && i["state"] == "Active"));

    // The database is lost; the containers stay.
    daemon.terminate();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(daemon.root().join(format!("berth.db{suffix}")));
    }
    daemon.launch(&[]);
    assert!(apps(&daemon, &names).is_empty(), "the new database knows no app");

    let run = daemon.berth(&["doctor", "--rebuild", "--output", "json"]);
    assert_eq!(run.code, 0, "{run:?}\n{}", daemon.log());
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let restored = |kind: &str| {
        report["items"].as_array().unwrap().iter().filter(|i| i["kind"] == kind && i["outcome"] == "restored").count()
    };
    assert_eq!((restored("app"), restored("resource_type"), restored("resource_instance")), (2, 1, 2), "{report}");
    daemon.wait_state(&web, "running", Duration::from_secs(15));
    assert_eq!(apps(&daemon, &names), apps_before, "the apps as they were");
    assert_eq!(instances(&daemon), instances_before, "the resource topology as it was");
    let (status, _) = rm(&daemon, "GET", &format!("/types/{}", package.type_name()), None);
    assert_eq!(status, 200, "the type is onboarded again from its saved package");

    // The rebuilt app is managed again: a rollback to the previous version works.
    let run = daemon.berth(&["rollback", &web, "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    // A second rebuild changes nothing: everything is recorded.
    let run = daemon.berth(&["doctor", "--rebuild", "--output", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let again: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(again["items"].as_array().unwrap().iter().all(|i| i["outcome"] == "recorded"), "{again}");
    for name in names {
        assert_eq!(daemon.berth(&["uninstall", name, "-y"]).code, 0);
    }
}
