//! The units berth renders pass `systemd-analyze verify` (Debian package
//! `systemd`, installed by scripts/setup.sh). Verification works offline on
//! unit files and does not need systemd to be PID 1.
//!
//! How the check is made strict:
//! - `SYSTEMD_UNIT_PATH=<dir>:` puts the written units first and keeps the
//!   system's unit directories after them (the trailing `:`), so the targets
//!   `DefaultDependencies=` pull in (`sysinit.target`, …) are found;
//! - a stub `docker.service` in `<dir>` stands in for the engine's unit, so the
//!   result does not depend on docker.io being installed (verify fails on a
//!   `Requires=` it cannot find);
//! - `ExecStart=` must name an existing executable, so berth is a stub script;
//! - verify only *warns* about unknown keys and bad values (exit status 0), so
//!   any diagnostic that mentions one of our units fails the test as well.

use berth_core::units::{
    app_unit_name, host_unit_name, render_app_unit, render_apps_target, render_daemon_service, render_host_service,
    render_ready_target, DaemonUnitSettings, UnitSettings, APPS_TARGET, DAEMON_SERVICE, ENGINE_SERVICE, READY_TARGET,
};
use berth_core::AppName;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

/// A directory of unit files, removed when dropped.
struct UnitDir {
    path: PathBuf,
    berth: String,
}

impl UnitDir {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("berth-units-verify-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        let berth = path.join("berth");
        std::fs::write(&berth, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&berth, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = UnitDir { berth: berth.to_str().unwrap().to_owned(), path };
        dir.write(
            ENGINE_SERVICE,
            &format!("[Unit]\nDescription=stand-in for the engine's unit\n\n[Service]\nExecStart={}\n", dir.berth),
        );
        dir
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let file = self.path.join(name);
        std::fs::write(&file, text).unwrap();
        file
    }

    /// Writes all of berth's units (with apps `apps`) and returns their paths.
    fn write_berth_units(&self, apps: &[&str]) -> Vec<PathBuf> {
        let socket = self.path.join("berth.sock").to_str().unwrap().to_owned();
        let app_settings = UnitSettings { berth_binary: self.berth.clone(), socket: socket.clone() };
        app_settings.validate().expect("the temporary directory's path must be usable in a unit");
        let daemon = DaemonUnitSettings {
            berth_binary: self.berth.clone(),
            root: self.path.to_str().unwrap().to_owned(),
            socket,
        };
        daemon.validate().unwrap();
        let mut files = vec![
            self.write(DAEMON_SERVICE, &render_daemon_service(&daemon)),
            self.write(READY_TARGET, &render_ready_target()),
            self.write(APPS_TARGET, &render_apps_target()),
        ];
        for app in apps {
            let app = AppName::parse(app).unwrap();
            files.push(self.write(&app_unit_name(&app), &render_app_unit(&app, &app_settings)));
        }
        files
    }

    /// Runs `systemd-analyze verify` on `files`: `Err` with its diagnostics if it
    /// failed or said anything about berth's units.
    fn verify(&self, files: &[PathBuf]) -> Result<(), String> {
        let mut unit_path = self.path.clone().into_os_string();
        unit_path.push(":");
        let output = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .args(files)
            .env("SYSTEMD_UNIT_PATH", unit_path)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run systemd-analyze ({e}); it is in Debian's `systemd` package: run scripts/setup.sh \
                     (this test does not skip)"
                )
            });
        let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        let ours: Vec<&str> = said.lines().filter(|l| l.contains("berth") || l.contains(ENGINE_SERVICE)).collect();
        let others: Vec<&str> = said.lines().filter(|l| !ours.contains(l)).collect();
        if !others.is_empty() {
            eprintln!("systemd-analyze, about units other than berth's:\n{}", others.join("\n"));
        }
        if output.status.success() && ours.is_empty() {
            Ok(())
        } else {
            Err(format!("systemd-analyze verify exited with {}:\n{said}", output.status))
        }
    }
}

impl Drop for UnitDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn names(files: &[PathBuf]) -> Vec<&str> {
    files.iter().map(|f| f.file_name().unwrap().to_str().unwrap()).collect()
}

#[test]
fn berth_units_pass_systemd_analyze_verify() {
    let dir = UnitDir::new("ok");
    let files = dir.write_berth_units(&["web", "tpc_1.2-x"]);
    assert_eq!(
        names(&files),
        ["berth.service", "berth-ready.target", "berth.target", "berth-app-web.service", "berth-app-tpc_1.2-x.service"]
    );
    if let Err(said) = dir.verify(&files) {
        panic!("{said}\nunits:\n{}", files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect::<String>());
    }
}

/// A container host's unit (`berth host create` where systemd is PID 1).
#[test]
fn host_units_pass_systemd_analyze_verify() {
    let dir = UnitDir::new("host");
    let name = AppName::parse("edge-1").unwrap();
    let root = dir.path.join("hosts/edge-1/root").to_str().unwrap().to_owned();
    let args: Vec<String> = ["--socket", &format!("{root}/berth.sock"), "daemon", "--root", &root]
        .iter()
        .map(|s| s.to_string())
        .chain(["--docker-host".into(), "tcp://10.0.0.5:2375".into(), "--listen".into(), "tcp://0.0.0.0:2376".into()])
        .collect();
    let unit = render_host_service(&name, &dir.berth, &args).unwrap();
    assert!(unit.contains(&format!("RequiresMountsFor={root}\n")), "{unit}");
    let file = dir.write(&host_unit_name(&name), &unit);
    if let Err(said) = dir.verify(&[file]) {
        panic!("{said}\nunit:\n{unit}");
    }
    let bad = render_host_service(&name, &dir.berth, &["--root".into(), "/x; rm -rf /".into()]);
    assert!(bad.is_err(), "a word with a space or ; is refused");
}

/// The check above would be worthless if verify's warnings slipped through.
#[test]
fn verify_reports_broken_units() {
    let dir = UnitDir::new("broken");
    let files = dir.write_berth_units(&["web"]);
    let app = files.last().unwrap();
    let unit = std::fs::read_to_string(app).unwrap();

    let exec_start = format!("ExecStart={}", dir.berth);
    let broken = [
        ("unknown key", "KillMode=mixed", "KillMode=mixed\nKillMood=mixed"),
        ("bad value", "Type=simple", "Type=simpel"),
        ("missing dependency", "Requires=berth-ready.target", "Requires=berth-gone.target"),
        ("missing executable", exec_start.as_str(), "ExecStart=/nonexistent/berth"),
    ];
    for (what, from, to) in broken {
        assert!(unit.contains(from), "{what}: {from:?} is not in the unit");
        std::fs::write(app, unit.replace(from, to)).unwrap();
        assert!(dir.verify(std::slice::from_ref(app)).is_err(), "{what} was not reported");
    }
    std::fs::write(app, unit).unwrap();
    dir.verify(std::slice::from_ref(app)).unwrap();
}
