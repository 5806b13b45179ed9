//! The web UI in a real browser: web/e2e/ui.test.mjs drives Debian's
//! Chromium (playwright-core) against a real daemon whose engine is a
//! private dockerd, so that the engine can be stopped for the degraded
//! banner. This test makes the fixtures, runs the script's three phases
//! (main; degraded with the engine stopped; recovered once it is back) and
//! fails with the script's own account of what the page showed.
//! `BERTH_UI_SCREENSHOTS=DIR` passes through: docs/screenshots is made so.

use crate::bin;
use crate::sra_support::sra_image;
use berth_testkit::engine::PrivateEngine;
use berth_testkit::harness::{unique, TestDaemon, TEST_SETTINGS};
use berth_testkit::http::request_tcp;
use berth_testkit::ImageBuilder;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "browser test passphrase";
/// A phase that takes longer has hung (the script's own steps time out sooner).
const PHASE_DEADLINE: Duration = Duration::from_secs(600);

fn web_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web")
}

/// Runs one phase of the script; panics with its output when it fails.
fn run_phase(phase: &str, env: &[(&str, String)]) {
    let mut command = Command::new("node");
    command.arg(web_dir().join("e2e/ui.test.mjs")).env("BERTH_UI_PHASE", phase);
    for (key, value) in env {
        command.env(key, value);
    }
    let out_dir = tempfile::tempdir().unwrap();
    let (stdout, stderr) = (out_dir.path().join("stdout"), out_dir.path().join("stderr"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("node (scripts/setup.sh installs it)");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > PHASE_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = format!(
        "{}\n{}",
        std::fs::read_to_string(&stdout).unwrap_or_default(),
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    match status {
        Some(status) if status.success() => {}
        Some(status) => panic!("the browser test's {phase} phase failed ({status}):\n{output}"),
        None => panic!("the browser test's {phase} phase did not end in {PHASE_DEADLINE:?}:\n{output}"),
    }
}

#[test]
fn the_web_ui_in_a_real_browser() {
    assert!(
        web_dir().join("node_modules/playwright-core").is_dir(),
        "the front-end toolchain is not installed: run scripts/build-web.sh (scripts/test.sh does)"
    );
    let mut engine = PrivateEngine::start();
    let address = format!("127.0.0.1:{}", crate::free_port());
    let settings = format!("{TEST_SETTINGS}\n[web]\nlisten = \"{address}\"\n");
    let mut daemon = TestDaemon::start_with(bin(), &settings, &[], Some(&engine.host()));
    let page = request_tcp(&address, "GET", "/", &[], b"").unwrap();
    assert!(
        page.text().contains("id=\"app\""),
        "the UI is not built into this berth (run scripts/build-web.sh before cargo build): {}",
        page.text()
    );
    let set = daemon.berth_stdin(&["web", "passwd", "--password-stdin"], format!("{PASSWORD}\n").as_bytes());
    assert_eq!(set.code, 0, "{set:?}");

    let app = unique("ui");
    let v1 = daemon.archive(&ImageBuilder::new(&format!("berth-test/{app}:1")).service(), true);
    let v2 = daemon.archive(&ImageBuilder::new(&format!("berth-test/{app}:2")).service().layer_marker("two"), true);
    let sra_name = unique("uisra");
    let sra = daemon.archive(&sra_image(&sra_name, "factory"), true);
    let loaded = daemon.berth(&["sra", "load", &sra.path.to_string_lossy()]);
    assert_eq!(loaded.code, 0, "{loaded:?}");

    let mut env = vec![
        ("BERTH_UI_URL", format!("http://{address}")),
        ("BERTH_UI_USER", "admin".to_owned()),
        ("BERTH_UI_PASSWORD", PASSWORD.to_owned()),
    ];
    if let Ok(dir) = std::env::var("BERTH_UI_SCREENSHOTS") {
        env.push(("BERTH_UI_SCREENSHOTS", dir));
    }
    let mut main = env.clone();
    main.extend([
        ("BERTH_UI_APP", app.clone()),
        ("BERTH_UI_APP_ARCHIVE", v1.path.to_string_lossy().into_owned()),
        ("BERTH_UI_APP_V2_ARCHIVE", v2.path.to_string_lossy().into_owned()),
        ("BERTH_UI_SRA_IMAGE", format!("berth-test/{sra_name}:1")),
        ("BERTH_UI_RESOURCE_TYPE", "resource::docker-volume::1.0".to_owned()),
        ("BERTH_UI_LOCATION", "local".to_owned()),
        ("BERTH_UI_RESOURCE_NAME", unique("uivol")),
    ]);
    run_phase("main", &main);
    assert!(daemon.app(&app).is_none(), "the UI uninstalled the app");

    engine.stop();
    run_phase("degraded", &env);
    engine.launch();
    run_phase("recovered", &env);
    let log = daemon.log();
    assert!(!log.contains(PASSWORD), "the password is never logged");
    daemon.terminate();
}
