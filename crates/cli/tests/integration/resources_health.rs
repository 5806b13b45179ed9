//! Resource metrics and heal policies (seed 002 §4.2.3) on the real engine:
//! a package declares an integrity metric (its Integrity script), a load
//! metric (the container's CPU) and a heal policy with smoothing 2. The
//! readings show in `/metrics` with the instance's metricKey and on Kafka;
//! a broken instance is healed with Stop and Start (in its request
//! history, as events); one that healing cannot mend is marked Broken after
//! `[restart] max_crashes` heals.

use crate::bin;
use crate::resources_kafka::{kafka_sh, messages};
use crate::resources_support::*;
use berth_testkit::harness::{poll, unique, TestDaemon, TEST_SETTINGS};
use serde_json::{json, Value};
use std::time::Duration;

const METRICS: &str = "metrics:\n  h_integrity:\n    type: \"metric::integrity\"\n    publication-period: \"1\"\n  load:\n    type: \"metric::load\"\n    publication-period: \"1\"\npolicies:\n  heal:\n    metric: \"h_integrity\"\n    type: \"policy::heal\"\n    properties:\n      smoothing:\n        value: 2\n";

fn scrape(daemon: &TestDaemon) -> String {
    berth_testkit::http::request(&daemon.socket, "GET", "/metrics", "application/json", b"").unwrap().text()
}

/// The value of `berth_resource_metric` for the instance's `metric`.
fn reading(daemon: &TestDaemon, instance: &str, metric: &str) -> Option<f64> {
    scrape(daemon).lines().find_map(|line| {
        let rest = line.strip_prefix("berth_resource_metric{")?;
        (rest.contains(&format!("instance=\"{instance}\"")) && rest.contains(&format!("metric=\"{metric}\"")))
            .then(|| line.rsplit(' ').next()?.parse().ok())
            .flatten()
    })
}

fn events(daemon: &TestDaemon, instance: &str) -> Vec<Value> {
    let run = daemon.berth(&["events", "--kind", "resource", "--name", instance, "--output", "json"]);
    run.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn wait_event(daemon: &TestDaemon, instance: &str, what: &str, test: impl Fn(&Value) -> bool) -> Value {
    poll(Duration::from_secs(90), || events(daemon, instance).into_iter().find(|e| e["kind"] == what && test(e)))
        .unwrap_or_else(|| panic!("no {what} event: {:?}\n{}", events(daemon, instance), daemon.log()))
}

#[test]
fn metrics_are_read_published_and_a_broken_instance_is_healed() {
    let _broker = crate::KAFKA_BROKER.read().unwrap_or_else(|e| e.into_inner());
    let broker = kafka_sh("addr");
    let topic = unique("metrics").replace('-', "_");
    let settings = format!(
        "{TEST_SETTINGS}\n[resource]\nlisten = \"\"\n[resource.kafka]\nbootstrap_servers = [\"{broker}\"]\ntopic = \"{topic}_rm\"\nmetrics_topic = \"{topic}\"\n"
    );
    let daemon = TestDaemon::start_with(bin(), &settings, &[], None);
    let script_for = |t: &str| match t {
        // Intact unless broken; broken for good only by the second operation.
        "Integrity" => Some("test ! -e /tmp/broken && test ! -e /tmp/broken-for-good\n".to_owned()),
        // Slow on purpose: the instance is Stopped through a few of the monitor's rounds.
        "Start" => Some("sleep 2\nrm -f /tmp/broken\necho Start >> /tmp/transitions\n".to_owned()),
        _ => None,
    };
    let operations = [("breakIt", "touch /tmp/broken\n"), ("breakForGood", "touch /tmp/broken-for-good\n")];
    let package = package(daemon.dir.path(), "", &FULL_LIFECYCLE, &script_for, &operations);
    let descriptor = std::fs::read_to_string(package.dir.join("resource.yaml")).unwrap();
    package.write("resource.yaml", &format!("{descriptor}{METRICS}"));
    onboard(&daemon, &package);

    let name = unique("healme");
    let mut install = install_body(&package.type_name(), &name, json!({}));
    install["metricKey"] = json!(format!("key-{name}"));
    let (_, id) = transition(&daemon, install);
    transition(&daemon, next_body(&id, "Start", json!({})));

    // Readings: integrity 1 (intact), and a load from the container's CPU.
    poll(Duration::from_secs(30), || (reading(&daemon, &id, "h_integrity") == Some(1.0)).then_some(()))
        .unwrap_or_else(|| panic!("no integrity reading: {}", scrape(&daemon)));
    let load = poll(Duration::from_secs(30), || reading(&daemon, &id, "load"))
        .unwrap_or_else(|| panic!("no load reading: {}", scrape(&daemon)));
    assert!((0.0..=200.0).contains(&load), "CPU percent of one CPU: {load}");
    let text = scrape(&daemon);
    assert!(text.contains(&format!("metric_key=\"key-{name}\"")), "{text}");
    let published = poll(Duration::from_secs(60), || {
        messages(&broker, &topic).into_iter().find(|m| m["resourceId"] == id.as_str() && m["metric"] == "h_integrity")
    })
    .unwrap_or_else(|| panic!("no reading on Kafka topic {topic}"));
    assert_eq!(published["metricKey"], format!("key-{name}"));
    assert_eq!(published["type"], "metric::integrity");
    assert_eq!(published["value"], 1.0);
    assert!(published["timestamp"].as_str().unwrap().ends_with('Z'), "{published}");

    // Broken: two failed readings, then Stop and Start, and it is intact again.
    transition(&daemon, next_body(&id, "breakIt", json!({"input": "x"})));
    wait_event(&daemon, &id, "resource.integrity", |e| e["data"]["intact"] == false);
    let healing = wait_event(&daemon, &id, "resource.healing", |_| true);
    assert_eq!(healing["data"]["failed_readings"], 2, "smoothing 2: {healing}");
    let healed = wait_event(&daemon, &id, "resource.healed", |_| true);
    assert_eq!(healed["data"]["outcome"], "done", "{healed}");
    assert_eq!(healed["data"]["method"], "transitions");
    wait_event(&daemon, &id, "resource.integrity", |e| e["data"]["intact"] == true);
    let (_, history) = rm(&daemon, "GET", &format!("/topology/instances/{id}/requests"), None);
    let transitions: Vec<&str> =
        history.as_array().unwrap().iter().filter_map(|r| r["transitionName"].as_str()).collect();
    assert!(transitions.ends_with(&["Stop", "Start"]) || transitions.starts_with(&["Start", "Stop"]), "{history}");
    assert_eq!(instance(&daemon, &id).unwrap()["resourceState"], "Active");
    poll(Duration::from_secs(60), || {
        messages(&broker, &topic).into_iter().find(|m| m["resourceId"] == id.as_str() && m["type"] == "policy::heal")
    })
    .expect("the heal is published");

    // Broken for good: heals back off, and after max_crashes (3) the instance is Broken.
    transition(&daemon, next_body(&id, "breakForGood", json!({"input": "x"})));
    let gave_up = wait_event(&daemon, &id, "resource.heal_failed", |_| true);
    assert_eq!(gave_up["data"]["heals"], 3, "{gave_up}");
    assert_eq!(instance(&daemon, &id).unwrap()["resourceState"], "Broken");
    let text = scrape(&daemon);
    assert!(text.contains("berth_resource_heals_total{outcome=\"done\"}"), "{text}");
    // No longer watched: its readings are gone from /metrics.
    poll(Duration::from_secs(10), || reading(&daemon, &id, "h_integrity").is_none().then_some(()))
        .expect("a Broken instance is not read");
    transition(&daemon, next_body(&id, "Uninstall", json!({})));
}
