//! `kill -9` of the daemon at every crash point of a resource Install and
//! Uninstall (on the base image, whose utility runs the script and its
//! params files in one exec; the three-step way of other images is cut at
//! every point in the daemon's unit tests): after the next start the request is COMPLETED with its
//! effects, or FAILED with the reason `interrupted` and nothing half-made
//! (no container, no instance) — never IN_PROGRESS.

use crate::bin;
use crate::resources_support::*;
use berth_testkit::harness::{for_each_concurrently, poll, unique, TestDaemon, TEST_SETTINGS};
use serde_json::json;
use std::time::Duration;

const AT_ONCE: usize = 3;

fn status_after_restart(daemon: &TestDaemon, request_id: &str) -> serde_json::Value {
    wait_request(daemon, request_id)
}

#[test]
fn install_cut_short_anywhere_is_completed_or_failed_as_interrupted() {
    let points = [
        "resource_transition:before_container_created",
        "resource_transition:before_started",
        "resource_transition:before_script_ran",
        "resource_transition:before_commit",
        "resource_transition:after_commit",
        "resource_transition:undo_3",
        "resource_transition:undo_2",
        "resource_transition:undo_1",
    ];
    for_each_concurrently(&points, AT_ONCE, |point| {
        let mut daemon = TestDaemon::start_with(bin(), TEST_SETTINGS, &[], None);
        // The undo points are reached by a failing Install.
        let fails = point.contains("undo");
        let package = package(
            daemon.dir.path(),
            "  x:\n    type: string\n    default: y\n",
            &["Install", "Uninstall"],
            &|t| (t == "Install" && fails).then(|| "exit 3\n".to_owned()),
            &[],
        );
        onboard(&daemon, &package);
        daemon.terminate();
        daemon.launch(&[("BERTH_TEST_CRASH_AT", point)]);
        let (request_id, id) = request(&daemon, install_body(&package.type_name(), &unique("crash"), json!({})));
        assert!(daemon.wait_exit(Duration::from_secs(60)).is_some(), "the daemon did not die at {point}");
        daemon.launch(&[]);
        let status = status_after_restart(&daemon, &request_id);
        if *point == "resource_transition:after_commit" {
            assert_eq!(status["requestState"], "COMPLETED", "{point}: {status}");
            assert!(instance(&daemon, &id).is_some(), "{point}");
            assert_eq!(daemon.containers().len(), 1, "{point}");
        } else {
            assert_eq!(status["requestState"], "FAILED", "{point}: {status}");
            let reason = status["requestStateReason"].as_str().unwrap_or_default();
            if fails {
                assert!(reason.contains("exited with status 3"), "{point}: {reason}");
            } else {
                assert_eq!(reason, "interrupted", "{point}: {status}");
            }
            assert!(instance(&daemon, &id).is_none(), "{point}: instance left");
            let left = poll(Duration::from_secs(10), || daemon.containers().is_empty().then_some(()));
            assert!(left.is_some(), "{point}: container left: {:?}", daemon.containers());
        }
    });
}

#[test]
fn uninstall_cut_short_anywhere_ends_and_can_be_repeated() {
    let points = [
        "resource_transition:before_script_ran",
        "resource_transition:before_container_removed",
        "resource_transition:before_commit",
        "resource_transition:after_commit",
    ];
    for_each_concurrently(&points, AT_ONCE, |point| {
        let mut daemon = TestDaemon::start_with(bin(), TEST_SETTINGS, &[], None);
        let package = package(
            daemon.dir.path(),
            "  x:\n    type: string\n    default: y\n",
            &["Install", "Uninstall"],
            &|_| None,
            &[],
        );
        onboard(&daemon, &package);
        let (_, id) = transition(&daemon, install_body(&package.type_name(), &unique("uncrash"), json!({})));
        daemon.terminate();
        daemon.launch(&[("BERTH_TEST_CRASH_AT", point)]);
        let (request_id, _) = request(&daemon, next_body(&id, "Uninstall", json!({})));
        assert!(daemon.wait_exit(Duration::from_secs(60)).is_some(), "the daemon did not die at {point}");
        daemon.launch(&[]);
        let status = status_after_restart(&daemon, &request_id);
        if *point == "resource_transition:after_commit" {
            assert_eq!(status["requestState"], "COMPLETED", "{point}: {status}");
        } else {
            assert_eq!(status["requestState"], "FAILED", "{point}: {status}");
            assert_eq!(status["requestStateReason"], "interrupted", "{point}: {status}");
            // The orchestrator asks again, and it completes.
            transition(&daemon, next_body(&id, "Uninstall", json!({})));
        }
        assert!(instance(&daemon, &id).is_none(), "{point}");
        assert!(daemon.containers().is_empty(), "{point}: {:?}", daemon.containers());
    });
}
