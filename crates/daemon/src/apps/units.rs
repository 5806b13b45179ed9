//! The systemd side of an app (TPCM: "a systemd service for each TPC"; seed
//! 001: units ordered after a readiness target). The daemon writes each app's
//! unit and its `berth.target.wants/` link into `--unit-dir` as part of the
//! install, removes them on uninstall, installs the two targets at start-up,
//! and asks systemd to reload where systemd supervises. File work runs on the
//! blocking pool and `systemctl` through tokio's process support, so neither
//! stalls the async workers.

use crate::fs::{atomic_write, blocking, FsError, TaskFailed};
use crate::services::Services;
use berth_core::units::{self, UnitSettings};
use berth_core::AppName;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("the systemd unit cannot be written: {0}")]
    Settings(String),
    #[error(transparent)]
    Task(#[from] TaskFailed),
}

/// Writes the readiness and apps targets (idempotent; at every start-up).
pub fn install_targets(unit_dir: &Path) -> Result<(), UnitError> {
    let wants = unit_dir.join(format!("{}.wants", units::APPS_TARGET));
    std::fs::create_dir_all(&wants).map_err(|e| FsError::new(&wants, e))?;
    atomic_write(&unit_dir.join(units::READY_TARGET), units::render_ready_target().as_bytes())?;
    atomic_write(&unit_dir.join(units::APPS_TARGET), units::render_apps_target().as_bytes())?;
    Ok(())
}

/// The settings every app unit is rendered with: this very binary, and the
/// socket the daemon serves.
fn settings(socket: &Path) -> Result<UnitSettings, UnitError> {
    let binary = std::env::current_exe().map_err(|e| FsError::new("/proc/self/exe", e))?;
    let socket = std::path::absolute(socket).map_err(|e| FsError::new(socket, e))?;
    let settings = UnitSettings {
        berth_binary: binary.to_string_lossy().into_owned(),
        socket: socket.to_string_lossy().into_owned(),
    };
    settings.validate().map_err(|e| UnitError::Settings(e.to_string()))?;
    Ok(settings)
}

/// Writes the app's unit and enables it (the `berth.target.wants/` link).
pub async fn write_app_unit(services: &Services, app: &AppName) -> Result<(), UnitError> {
    let (dir, socket, app_name) = (services.config.unit_dir.clone(), services.config.socket.clone(), app.clone());
    blocking("writing a systemd unit", move || {
        let wants = dir.join(format!("{}.wants", units::APPS_TARGET));
        std::fs::create_dir_all(&wants).map_err(|e| FsError::new(&wants, e))?;
        let unit = dir.join(units::app_unit_name(&app_name));
        atomic_write(&unit, units::render_app_unit(&app_name, &settings(&socket)?).as_bytes())?;
        let link = dir.join(units::app_wants_link(&app_name));
        let target = PathBuf::from("..").join(units::app_unit_name(&app_name));
        match std::fs::read_link(&link) {
            Ok(existing) if existing == target => {}
            _ => {
                remove_if_present(&link)?;
                std::os::unix::fs::symlink(&target, &link).map_err(|e| FsError::new(&link, e))?;
            }
        }
        Ok::<_, UnitError>(())
    })
    .await?;
    if services.systemd {
        systemctl(&["daemon-reload"]).await;
    }
    Ok(())
}

/// Removes the app's unit and link; what is already gone is fine.
pub async fn remove_app_unit(services: &Services, app: &AppName) -> Result<(), UnitError> {
    if services.systemd {
        // Without blocking: the unit's run-app may be waiting on this very daemon.
        systemctl(&["stop", "--no-block", &units::app_unit_name(app)]).await;
    }
    let (dir, app_name) = (services.config.unit_dir.clone(), app.clone());
    blocking("removing a systemd unit", move || {
        remove_if_present(&dir.join(units::app_wants_link(&app_name)))?;
        remove_if_present(&dir.join(units::app_unit_name(&app_name)))?;
        Ok::<_, UnitError>(())
    })
    .await?;
    if services.systemd {
        systemctl(&["daemon-reload"]).await;
    }
    Ok(())
}

/// Where systemd supervises: have it run the app's unit (which attaches
/// `berth run-app` to the app), without waiting for it.
pub async fn start_app_unit(services: &Services, app: &AppName) {
    if services.systemd {
        systemctl(&["start", "--no-block", &units::app_unit_name(app)]).await;
    }
}

fn remove_if_present(path: &Path) -> Result<(), FsError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(FsError::new(path, e)),
        _ => Ok(()),
    }
}

/// Runs `systemctl` with these arguments (no shell involved), without
/// blocking the runtime. A failure is logged: the daemon's own state is
/// already right, systemd catches up.
pub async fn systemctl(args: &[&str]) {
    run_systemctl(Path::new("systemctl"), args).await
}

async fn run_systemctl(program: &Path, args: &[&str]) {
    match tokio::process::Command::new(program).args(args).kill_on_drop(true).status().await {
        Ok(status) if status.success() => {}
        Ok(status) => tracing::warn!(?args, %status, "systemctl failed"),
        Err(e) => tracing::warn!(?args, error = %e, "cannot run systemctl"),
    }
}

#[cfg(test)]
mod tests {
    use super::run_systemctl;
    use std::os::unix::fs::PermissionsExt;

    /// A `systemctl` that hangs must not stall the runtime: on a single
    /// worker thread, another task still runs while it waits. The fake waits
    /// for that other task's file (giving up after a while, so that a stalled
    /// runtime fails the test instead of hanging it).
    #[tokio::test(flavor = "current_thread")]
    async fn a_hanging_systemctl_does_not_stall_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let (release, gave_up) = (dir.path().join("release"), dir.path().join("gave-up"));
        let fake = dir.path().join("systemctl");
        let script = format!(
            "#!/bin/sh\ni=0\nwhile [ ! -e {r} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done\n[ -e {r} ] || touch {g}\n",
            r = release.display(),
            g = gave_up.display()
        );
        std::fs::write(&fake, script).unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let hanging = tokio::spawn(async move { run_systemctl(&fake, &["daemon-reload"]).await });
        let other = tokio::spawn(async move { std::fs::write(&release, b"go").unwrap() });
        other.await.unwrap();
        hanging.await.unwrap();
        assert!(!gave_up.exists(), "systemctl blocked the only worker thread");
    }
}
