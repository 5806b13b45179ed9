//! The event log (issue 11): every state change is an event with an id that
//! only grows; a follower sees them as they happen; a reader that resumes
//! with `--since` or `Last-Event-ID` gets exactly what it missed, and a gap
//! when what it missed is no longer kept.

use crate::bin;
use berth_testkit::harness::{poll, unique, Lines, TestDaemon, TEST_SETTINGS};
use berth_testkit::ImageBuilder;
use serde_json::Value;
use std::time::Duration;

fn events(daemon: &TestDaemon, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["events", "--output", "json"];
    all.extend_from_slice(args);
    let run = daemon.berth(&all);
    assert_eq!(run.code, 0, "{run:?}");
    run.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

fn ids(events: &[Value]) -> Vec<i64> {
    events.iter().filter_map(|e| e["id"].as_i64()).collect()
}

#[test]
fn state_changes_are_events_followed_live_and_read_back_from_any_point() {
    let mut daemon = TestDaemon::start(bin());
    // A follower from the start, as a tool would run it.
    let mut follower = daemon.berth_spawn(&[], &["events", "-f", "--output", "json"]);
    let mut live = Lines::new(follower.stdout.take().unwrap());
    live.wait_for("daemon.started", Duration::from_secs(30));

    let name = unique("ev");
    let archive = daemon.archive(&ImageBuilder::new(&format!("berth-test/{name}:1")).service(), true);
    assert_eq!(daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "-y"]).code, 0);
    assert_eq!(daemon.berth(&["stop", &name]).code, 0);
    assert_eq!(daemon.berth(&["uninstall", &name, "-y"]).code, 0);
    let last = live.wait_for("\"kind\":\"uninstall\"", Duration::from_secs(30));
    let last: Value = serde_json::from_str(&last).unwrap();
    let _ = follower.kill();
    let _ = follower.wait();

    let all = events(&daemon, &[]);
    let all_ids = ids(&all);
    assert!(all_ids.windows(2).all(|w| w[0] < w[1]), "ids only grow: {all_ids:?}");
    let kinds_of = |name: &str| -> Vec<String> {
        all.iter().filter(|e| e["name"] == name).map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
    };
    let app_kinds = kinds_of(&name);
    for kind in ["app.installing", "app.running", "app.stopped", "app.uninstalling"] {
        assert!(app_kinds.iter().any(|k| k == kind), "{kind} in {app_kinds:?}");
    }
    let subject = format!("app:{name}");
    let operations = kinds_of(&subject);
    for kind in ["operation.begun", "operation.step", "operation.committed", "operation.done"] {
        assert!(operations.iter().any(|k| k == kind), "{kind} in {operations:?}");
    }
    // The follower saw the same events, in the same order, up to its last.
    let until = last["id"].as_i64().unwrap();
    let followed: Vec<i64> =
        live.seen().iter().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_i64().unwrap()).collect();
    let expected: Vec<i64> = all_ids.iter().copied().filter(|id| *id <= until).collect();
    assert_eq!(followed, expected, "the follower missed or repeated events");

    // Resumed from the middle: exactly what came after.
    let middle = all_ids[all_ids.len() / 2];
    let after = events(&daemon, &["--since", &middle.to_string()]);
    assert_eq!(ids(&after), all_ids.iter().copied().filter(|id| *id > middle).collect::<Vec<_>>());
    // Filters: by kind (a prefix of dotted words) and by name.
    let app_only = events(&daemon, &["--kind", "app", "--name", &name]);
    assert!(!app_only.is_empty() && app_only.iter().all(|e| e["kind"].as_str().unwrap().starts_with("app.")));
    let done = events(&daemon, &["--kind", "operation.done"]);
    assert!(done.iter().all(|e| e["kind"] == "operation.done"), "{done:?}");
    assert!(events(&daemon, &["--kind", "ap"]).is_empty(), "a kind matches whole words");

    // Over the API, with Last-Event-ID as an EventSource sends it.
    let response = berth_testkit::http::request_with_headers(
        &daemon.socket,
        "GET",
        "/v1/events",
        "application/json",
        &[("Last-Event-ID", &middle.to_string())],
        b"",
    )
    .unwrap();
    assert_eq!(response.status, 200);
    let text = response.text();
    let sse_ids: Vec<i64> =
        text.lines().filter_map(|l| l.strip_prefix("id:")).map(|v| v.trim().parse().unwrap()).collect();
    assert_eq!(sse_ids, ids(&after), "{text}");
    assert!(text.contains("event: app.running") || text.contains("event:app.running") || !after.is_empty());
    let bad = berth_testkit::http::request_with_headers(
        &daemon.socket,
        "GET",
        "/v1/events",
        "application/json",
        &[("Last-Event-ID", "yesterday")],
        b"",
    )
    .unwrap();
    assert_eq!(bad.status, 400, "{}", bad.text());
    let run = daemon.berth(&["events", "--since", "-4"]);
    assert_eq!(run.code, 2, "{run:?}");
}

/// Retention: a reader that asks for events no longer kept is told so with a
/// gap, then gets what is kept; ids are never given again.
#[test]
fn events_no_longer_kept_are_a_gap() {
    let mut daemon = TestDaemon::start_with(bin(), &format!("{TEST_SETTINGS}\n[events]\nmax_count = 3\n"), &[], None);
    let name = unique("gap");
    let archive = daemon.archive(&ImageBuilder::new(&format!("berth-test/{name}:1")).service(), true);
    assert_eq!(daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "-y"]).code, 0);
    assert_eq!(daemon.berth(&["uninstall", &name, "-y"]).code, 0);
    let before = ids(&events(&daemon, &[]));
    let newest = *before.last().unwrap();
    // Retention is applied as the restarted daemon writes its first events.
    daemon.terminate();
    daemon.launch(&[]);
    let started = berth_testkit::harness::poll(Duration::from_secs(30), || {
        let all = events(&daemon, &["--since", &newest.to_string()]);
        all.iter().any(|e| e["kind"] == "daemon.started").then_some(())
    });
    assert!(started.is_some());
    let run = daemon.berth(&["events", "--since", "0", "--output", "json"]);
    let first: Value = serde_json::from_str(run.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["gap"]["after"], 0, "{run:?}");
    let next = first["gap"]["next"].as_i64().unwrap();
    assert!(next > newest - 3, "only the newest are kept: {run:?}");
    let kept: Vec<Value> = run.stdout.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(ids(&kept).first(), Some(&next), "{run:?}");
    assert!(ids(&kept).iter().all(|id| *id > newest - 3), "{run:?}");
    let text = daemon.berth(&["events", "--since", "0"]);
    assert!(text.stdout.starts_with("-- events 1 to "), "{text:?}");
    let all = daemon.berth(&["events"]);
    assert!(!all.stdout.contains("no longer kept"), "no position asked, no gap: {all:?}");
}

/// `[events.kafka]`: the events (here only `app.*`) on a topic, in order,
/// each once, across a daemon restart.
#[test]
fn events_are_published_to_kafka_in_order_across_a_restart() {
    use crate::resources_kafka::{kafka_sh, messages};
    let _broker = crate::KAFKA_BROKER.read().unwrap_or_else(|e| e.into_inner());
    let broker = kafka_sh("addr");
    let topic = unique("events").replace('-', "_");
    let settings = format!(
        "{}\n[events.kafka]\nbootstrap_servers = [\"{broker}\"]\ntopic = \"{topic}\"\nkinds = [\"app\"]\n",
        berth_testkit::harness::TEST_SETTINGS
    );
    let mut daemon = TestDaemon::start_with(bin(), &settings, &[], None);
    let name = unique("evk");
    let archive = daemon.archive(&ImageBuilder::new(&format!("berth-test/{name}:1")).service(), true);
    assert_eq!(daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "-y"]).code, 0);
    let wait_for = |kind: &str, after: i64| {
        poll(Duration::from_secs(60), || {
            let all = messages(&broker, &topic);
            all.iter()
                .any(|m| m["kind"] == kind && m["name"] == name.as_str() && m["id"].as_i64() > Some(after))
                .then_some(all)
        })
        .unwrap_or_else(|| panic!("no {kind} of {name} on {topic}: {:?}", messages(&broker, &topic)))
    };
    let first = wait_for("app.running", 0);
    let last_before: i64 = first.iter().filter_map(|m| m["id"].as_i64()).max().unwrap();
    daemon.terminate();
    daemon.launch(&[]);
    assert_eq!(daemon.berth(&["stop", &name]).code, 0);
    let all = wait_for("app.stopped", last_before);
    let ids: Vec<i64> = all.iter().filter_map(|m| m["id"].as_i64()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order, each once: {ids:?}");
    assert!(all.iter().all(|m| m["kind"].as_str().unwrap().starts_with("app.")), "only app events: {all:?}");
    // Exactly the stored app events, none lost.
    let stored: Vec<i64> = daemon
        .berth(&["events", "--since", "0", "--kind", "app", "--output", "json"])
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["id"].as_i64())
        .collect();
    assert_eq!(ids, stored, "the topic holds the stored app events");
    assert_eq!(daemon.berth(&["uninstall", &name, "-y"]).code, 0);
}

/// `--tail N` starts with the last N events stored, without a gap.
#[test]
fn a_tail_starts_with_the_last_events() {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("evt");
    let archive = daemon.archive(&ImageBuilder::new(&format!("berth-test/{name}:1")).service(), true);
    assert_eq!(daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "-y"]).code, 0);
    let all = events(&daemon, &["--since", "0"]);
    assert!(all.len() > 3, "{all:?}");
    let tail = events(&daemon, &["--tail", "3"]);
    assert_eq!(tail, all[all.len() - 3..].to_vec(), "the last three, no gap");
    let run = daemon.berth(&["events", "--tail", "3", "--since", "1"]);
    assert_eq!(run.code, 2, "since or tail: {run:?}");
    let both = daemon.api("GET", "/v1/events?since=1&tail=3", None).unwrap();
    assert_eq!(both.status, 400, "{}", both.text());
    assert_eq!(daemon.berth(&["uninstall", &name, "-y"]).code, 0);
}
