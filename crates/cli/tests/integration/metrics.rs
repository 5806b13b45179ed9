//! `/metrics` (issue 11): Prometheus metrics in the OpenMetrics text format,
//! on the socket and on the mutual-TLS listener: apps by state, operations
//! by kind and outcome with their durations, the engine, open operations,
//! the outbox, build info.

use crate::bin;
use berth_testkit::harness::{poll, unique, TestDaemon, TEST_SETTINGS};
use berth_testkit::ImageBuilder;
use std::time::Duration;

fn scrape(daemon: &TestDaemon) -> String {
    let response =
        berth_testkit::http::request(&daemon.socket, "GET", "/metrics", "application/json", b"").expect("scrape");
    assert_eq!(response.status, 200, "{}", response.text());
    response.text()
}

#[test]
fn metrics_follow_the_apps_and_the_operations() {
    let settings = format!("{TEST_SETTINGS}\n[metrics]\nstats_interval_secs = 1\n");
    let mut daemon = TestDaemon::start_with(bin(), &settings, &[], None);
    let first = scrape(&daemon);
    assert!(first.ends_with("# EOF\n"), "OpenMetrics text: {first}");
    assert!(first.contains("berth_engine_up 1"), "{first}");
    assert!(first.contains("berth_apps{state=\"running\"} 0"), "{first}");
    assert!(first.contains("berth_build_info{version=\""), "{first}");
    assert!(first.contains("berth_journal_open_operations 0"), "{first}");

    let name = unique("met");
    let archive = daemon.archive(&ImageBuilder::new(&format!("berth-test/{name}:1")).service(), true);
    assert_eq!(daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "-y"]).code, 0);
    let text = poll(Duration::from_secs(10), || {
        let text = scrape(&daemon);
        text.contains("berth_operations_total{kind=\"install\",outcome=\"done\"} 1").then_some(text)
    })
    .expect("the install is counted");
    assert!(text.contains("berth_apps{state=\"running\"} 1"), "{text}");
    assert!(text.contains(&format!("berth_app_restarts{{app=\"{name}\"}} 0")), "{text}");
    assert!(
        text.contains("berth_operation_duration_seconds_count{kind=\"install\",outcome=\"done\"} 1"),
        "the install's duration is observed: {text}"
    );
    // CPU and memory of the running app, from the engine's stats, sampled in the background.
    let text = poll(Duration::from_secs(20), || {
        let text = scrape(&daemon);
        text.contains(&format!("berth_app_cpu_cores{{app=\"{name}\"}}")).then_some(text)
    })
    .expect("two samples give the app's CPU rate");
    let memory: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("berth_app_memory_bytes{{app=\"{name}\"}} ")))
        .unwrap_or_else(|| panic!("no memory of {name}: {text}"))
        .parse()
        .unwrap();
    assert!(memory > 0 && memory < 1 << 30, "a sleeping busybox uses a little memory: {memory}");
    assert!(text.contains(&format!("berth_app_memory_limit_bytes{{app=\"{name}\"}}")), "{text}");
    // A failed install is counted as rolled back.
    let bad = daemon.berth(&["install", &unique("metbad"), "/nonexistent.tar", "-y"]);
    assert_ne!(bad.code, 0);
    assert_eq!(daemon.berth(&["stop", &name]).code, 0);
    let text = scrape(&daemon);
    assert!(text.contains("berth_apps{state=\"stopped\"} 1"), "{text}");
    assert_eq!(daemon.berth(&["uninstall", &name, "-y"]).code, 0);
    let text = poll(Duration::from_secs(10), || {
        let text = scrape(&daemon);
        text.contains("berth_operations_total{kind=\"uninstall\",outcome=\"done\"} 1").then_some(text)
    })
    .expect("the uninstall is counted");
    assert!(!text.contains(&format!("app=\"{name}\"")), "a removed app has no series left: {text}");
}
