//! Each app gets a systemd unit (written on install, removed on uninstall)
//! that runs `berth run-app <name>` attached to the container; the units the
//! daemon writes pass `systemd-analyze verify`.

use crate::bin;

use berth_testkit::harness::{engine_clock, engine_events, finish, inspect, unique, Lines, TestDaemon};
use berth_testkit::ImageBuilder;
use serde_json::json;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn install(daemon: &mut TestDaemon, name: &str, builder: &ImageBuilder) {
    let archive = daemon.archive(builder, false);
    let run = daemon.berth(&["install", name, &archive.path.to_string_lossy(), "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
}

fn talking(tag: &str) -> ImageBuilder {
    ImageBuilder::new(&format!("berth-test/{tag}:1")).service().label("berth.test.sweep", "1").layer_marker(tag).cmd(&[
        "/bin/sh",
        "-c",
        "trap 'exit 0' TERM; while :; do echo tick; sleep 0.2 & wait $!; done",
    ])
}

#[test]
fn install_writes_a_verified_unit_and_uninstall_removes_it() {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("unit");
    install(&mut daemon, &name, &talking(&name));
    let units = daemon.unit_dir();
    let unit = units.join(format!("berth-app-{name}.service"));
    let text = std::fs::read_to_string(&unit).expect("unit written");
    let socket = daemon.socket.to_string_lossy().into_owned();
    assert!(text.contains(&format!("ExecStart={} --socket {socket} run-app {name}", bin().display())), "{text}");
    assert!(text.contains("Requires=berth-ready.target") && text.contains("WantedBy=berth.target"), "{text}");
    let link = units.join(format!("berth.target.wants/berth-app-{name}.service"));
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("..").join(format!("berth-app-{name}.service")));
    assert!(units.join("berth-ready.target").is_file() && units.join("berth.target").is_file());

    // systemd-analyze verify, with stand-ins for the units outside berth's.
    let stub = |file: &str| {
        let text = format!("[Unit]\nDescription=stand-in\n[Service]\nExecStart={} --version\n", bin().display());
        std::fs::write(units.join(file), text).unwrap();
    };
    stub("docker.service");
    stub("berth.service");
    let mut unit_path = units.clone().into_os_string();
    unit_path.push(":");
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .arg(units.join("berth-ready.target"))
        .arg(units.join("berth.target"))
        .env("SYSTEMD_UNIT_PATH", unit_path)
        .output()
        .expect("systemd-analyze (Debian's systemd package; scripts/setup.sh installs it)");
    let said = format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    assert!(verify.status.success() && !said.contains("berth"), "systemd-analyze verify: {said}");

    let run = daemon.berth(&["uninstall", &name, "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!unit.exists(), "unit removed");
    assert!(std::fs::symlink_metadata(&link).is_err(), "link removed");
}

#[test]
fn run_app_is_attached_to_the_app_and_stops_it_on_sigterm() {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("runapp");
    install(&mut daemon, &name, &talking(&name));
    assert_eq!(daemon.berth(&["stop", &name]).code, 0);

    // run-app starts the stopped app and shows its output until a stop.
    let run_app = || {
        let mut attached = Command::new(bin())
            .args(["run-app", &name])
            .env("BERTH_SOCKET", &daemon.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Lines::new(attached.stdout.take().unwrap());
        (attached, stdout)
    };
    let (attached, mut stdout) = run_app();
    // The app's own output coming through is the marker that run-app is attached.
    stdout.wait_for("tick", Duration::from_secs(20));
    assert_eq!(daemon.app(&name).unwrap()["state"], "running");
    assert_eq!(daemon.berth(&["stop", &name]).code, 0);
    let run = finish(attached, "run-app after a stop", Duration::from_secs(20));
    assert_eq!(run.code, 0, "a stop asked for is a clean exit: {run:?}");

    // SIGTERM (systemctl stop) stops the app through berth. run-app installs
    // its signal handlers before it starts the app, so once the app's output
    // shows, a TERM is run-app's to handle.
    let (attached, mut stdout) = run_app();
    stdout.wait_for("tick", Duration::from_secs(20));
    let pid = rustix::process::Pid::from_raw(attached.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let run = finish(attached, "run-app after SIGTERM", Duration::from_secs(20));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(daemon.app(&name).unwrap()["desired"], "stopped");
    assert_eq!(inspect(&name).unwrap()["State"]["Running"], false);

    // A daemon that cannot be reached: run-app exits at once, non-zero.
    let lost = Command::new(bin()).args(["run-app", &name]).env("BERTH_SOCKET", "/nonexistent.sock").output().unwrap();
    assert_eq!(lost.status.code(), Some(7));
}

/// Where systemd is PID 1 berth hands supervision to the units. systemd is
/// not PID 1 here, so a recording `systemctl` stands in for it: the test
/// checks what berth asks of systemd, and that berth itself stands down.
#[test]
fn with_systemd_supervising_berth_drives_the_units_and_does_not_restart_apps_itself() {
    use std::os::unix::fs::PermissionsExt;
    let tools = tempfile::tempdir().unwrap();
    let calls = tools.path().join("calls");
    let fake = tools.path().join("systemctl");
    std::fs::write(&fake, format!("#!/bin/sh\necho \"$@\" >> {}\n", calls.display())).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", tools.path().display(), std::env::var("PATH").unwrap_or_default());
    let settings = format!("supervisor = \"systemd\"\n{}", berth_testkit::harness::TEST_SETTINGS);
    let mut daemon = TestDaemon::start_with(bin(), &settings, &[("PATH", &path)], None);
    let name = unique("sysd");
    install(&mut daemon, &name, &talking(&name));
    let unit = format!("berth-app-{name}.service");
    let recorded = || std::fs::read_to_string(&calls).unwrap_or_default();
    assert!(
        recorded().contains("daemon-reload") && recorded().contains(&format!("start --no-block {unit}")),
        "{}",
        recorded()
    );

    // A crash is systemd's to handle (run-app exits, Restart=on-failure).
    let killed_at = engine_clock();
    assert_eq!(berth_testkit::http::docker("POST", &format!("/containers/{name}/kill"), None).status, 204);
    // The marker of berth's decision: the crash handed to systemd. On that
    // path nothing is scheduled (a restart of berth's own would say
    // "restarting after backoff" and be due within max_backoff_ms).
    let app = daemon.wait_for("the crash to be handed to systemd", Duration::from_secs(10), |d| {
        d.app(&name).filter(|a| {
            a["state"] == "restarting" && a["failure"].as_str().is_some_and(|f| f.contains("systemd restarts it"))
        })
    });
    assert!(daemon.log().contains("systemd restarts its unit"), "{app}");
    assert!(
        !daemon.log().contains("restarting after backoff"),
        "berth scheduled a restart of its own:\n{}",
        daemon.log()
    );
    assert_eq!(inspect(&name).unwrap()["State"]["Running"], false, "berth did not restart it itself");
    let starts =
        engine_events(killed_at, &json!({ "type": ["container"], "container": [name.as_str()], "event": ["start"] }));
    assert!(starts.is_empty(), "started again: {starts:?}");

    // What run-app does when systemd restarts the unit: start through the API.
    assert_eq!(daemon.berth(&["start", &name]).code, 0);
    assert_eq!(inspect(&name).unwrap()["State"]["Running"], true);

    assert_eq!(daemon.berth(&["uninstall", &name, "-y"]).code, 0);
    assert!(recorded().contains(&format!("stop --no-block {unit}")), "{}", recorded());
}
