//! `berth self-upgrade`: a new binary that does not become a healthy daemon
//! is rolled back (the old binary and daemon come back); an allowed one is
//! put in place and the daemon runs on it; an older one is refused.

use crate::bin;
use berth_testkit::harness::{TestDaemon, TEST_SETTINGS};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn info(daemon: &TestDaemon) -> serde_json::Value {
    let run = daemon.berth(&["info", "--output", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str(&run.stdout).unwrap()
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_failing_new_binary_is_rolled_back_and_a_good_one_taken() {
    // The "installed" berth is a copy, so the test can replace it.
    let dir = tempfile::tempdir().unwrap();
    let installed = dir.path().join("berth");
    std::fs::copy(bin(), &installed).unwrap();
    let mut daemon = TestDaemon::start_with(&installed, TEST_SETTINGS, &[], None);
    let version = info(&daemon)["version"].as_str().unwrap().to_owned();
    let before = std::fs::read(&installed).unwrap();
    let run_as_installed = |args: &[&str]| {
        let mut command = std::process::Command::new(&installed);
        command.args(args).env("BERTH_SOCKET", &daemon.socket).env("BERTH_SELF_UPGRADE_TIMEOUT_SECS", "5");
        berth_testkit::harness::Run::from(berth_testkit::harness::retry_busy(|| command.output()).unwrap())
    };

    // Not a berth binary, and an older berth: refused, nothing touched.
    let not_berth = dir.path().join("not-berth");
    script(&not_berth, "echo hello\n");
    let run = run_as_installed(&["self-upgrade", &not_berth.to_string_lossy()]);
    assert_eq!(run.code, 5, "{run:?}");
    let older = dir.path().join("older");
    script(&older, &format!("echo '{{\"version\":\"0.0.1\",\"schema\":{}}}'\n", crate::SCHEMA));
    let run = run_as_installed(&["self-upgrade", &older.to_string_lossy()]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stderr.contains("must not go back"), "{run:?}");
    assert_eq!(std::fs::read(&installed).unwrap(), before);

    // Says a newer version, but cannot run the daemon: rolled back.
    let broken = dir.path().join("broken");
    script(
        &broken,
        &format!(
            "if [ \"$1\" = version ]; then echo '{{\"version\":\"99.0.0\",\"schema\":{}}}'; exit 0; fi\necho broken >&2; exit 3\n",
            crate::SCHEMA
        ),
    );
    let old_pid = info(&daemon)["pid"].as_u64().unwrap();
    let run = run_as_installed(&["self-upgrade", &broken.to_string_lossy()]);
    assert_eq!(run.code, 9, "{run:?}");
    assert!(run.stderr.contains("the old binary is back and its daemon runs again"), "{run:?}");
    assert_eq!(std::fs::read(&installed).unwrap(), before, "the old binary is back");
    let back = info(&daemon);
    assert_eq!(back["version"], version.as_str());
    assert_ne!(back["pid"].as_u64().unwrap(), old_pid, "a fresh daemon on the old binary");

    // The same release again: allowed, the daemon restarted on it.
    let good = dir.path().join("good");
    std::fs::copy(bin(), &good).unwrap();
    let run = run_as_installed(&["self-upgrade", &good.to_string_lossy()]);
    assert_eq!(run.code, 0, "{run:?}");
    // Already in place: nothing to do.
    let run = run_as_installed(&["self-upgrade", &good.to_string_lossy()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("nothing to do"), "{run:?}");
    // The daemon the test runs now is not its child: stop it by its pid.
    let pid = info(&daemon)["pid"].as_u64().unwrap() as i32;
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    daemon.terminate();
}
