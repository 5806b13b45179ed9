//! The systemd side of an app (TPCM: "a systemd service for each TPC"; seed
//! 001: units ordered after a readiness target). The daemon writes each app's
//! unit and its `berth.target.wants/` link into `--unit-dir` as part of the
//! install, removes them on uninstall, installs the two targets at start-up,
//! and asks systemd to reload where systemd is PID 1.

use crate::error::OpError;
use crate::files::atomic_write;
use crate::registry::Inner;
use berth_core::units::{self, UnitSettings};
use berth_core::AppName;
use std::path::{Path, PathBuf};

/// Writes the readiness and apps targets (idempotent; at every start-up).
pub fn install_targets(unit_dir: &Path) -> Result<(), OpError> {
    std::fs::create_dir_all(unit_dir.join(format!("{}.wants", units::APPS_TARGET))).map_err(OpError::io(unit_dir))?;
    atomic_write(&unit_dir.join(units::READY_TARGET), units::render_ready_target().as_bytes())?;
    atomic_write(&unit_dir.join(units::APPS_TARGET), units::render_apps_target().as_bytes())?;
    Ok(())
}

/// The settings every app unit is rendered with: this very binary, and the
/// socket the daemon serves.
pub fn settings(inner: &Inner) -> Result<UnitSettings, OpError> {
    let binary = std::env::current_exe().map_err(OpError::io("/proc/self/exe"))?;
    let socket = std::path::absolute(&inner.config.socket).map_err(OpError::io(&inner.config.socket))?;
    let settings = UnitSettings {
        berth_binary: binary.to_string_lossy().into_owned(),
        socket: socket.to_string_lossy().into_owned(),
    };
    settings.validate().map_err(|e| OpError::InvalidValue { what: "systemd unit", reason: e.to_string() })?;
    Ok(settings)
}

/// Writes the app's unit and enables it (the `berth.target.wants/` link).
pub fn write_app_unit(inner: &Inner, app: &AppName) -> Result<(), OpError> {
    // The targets are written at start-up; only the enable link's directory is needed here.
    let dir = &inner.config.unit_dir;
    let wants = dir.join(format!("{}.wants", units::APPS_TARGET));
    std::fs::create_dir_all(&wants).map_err(OpError::io(&wants))?;
    let unit = dir.join(units::app_unit_name(app));
    atomic_write(&unit, units::render_app_unit(app, &settings(inner)?).as_bytes())?;
    let link = dir.join(units::app_wants_link(app));
    let target = PathBuf::from("..").join(units::app_unit_name(app));
    match std::fs::read_link(&link) {
        Ok(existing) if existing == target => {}
        _ => {
            remove_if_present(&link)?;
            std::os::unix::fs::symlink(&target, &link).map_err(OpError::io(&link))?;
        }
    }
    if inner.systemd {
        systemctl(&["daemon-reload"]);
    }
    Ok(())
}

/// Removes the app's unit and link; what is already gone is fine.
pub fn remove_app_unit(inner: &Inner, app: &str) -> Result<(), OpError> {
    let Ok(app) = AppName::parse(app) else { return Ok(()) };
    let unit_dir = &inner.config.unit_dir;
    if inner.systemd {
        // Without blocking: the unit's run-app may be waiting on this very daemon.
        systemctl(&["stop", "--no-block", &units::app_unit_name(&app)]);
    }
    remove_if_present(&unit_dir.join(units::app_wants_link(&app)))?;
    remove_if_present(&unit_dir.join(units::app_unit_name(&app)))?;
    if inner.systemd {
        systemctl(&["daemon-reload"]);
    }
    Ok(())
}

/// Where systemd supervises: have it run the app's unit (which attaches
/// `berth run-app` to the app), without waiting for it.
pub fn start_app_unit(inner: &Inner, app: &AppName) {
    if inner.systemd {
        systemctl(&["start", "--no-block", &units::app_unit_name(app)]);
    }
}

fn remove_if_present(path: &Path) -> Result<(), OpError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(OpError::io(path)(e)),
        _ => Ok(()),
    }
}

/// Runs `systemctl` with these arguments (no shell involved). A failure is
/// logged: the daemon's own state is already right, systemd catches up.
fn systemctl(args: &[&str]) {
    match std::process::Command::new("systemctl").args(args).status() {
        Ok(status) if status.success() => {}
        Ok(status) => tracing::warn!(?args, %status, "systemctl failed"),
        Err(e) => tracing::warn!(?args, error = %e, "cannot run systemctl"),
    }
}
