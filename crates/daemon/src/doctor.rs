//! `berth doctor`: the daemon's health, check by check, in plain words —
//! the engine, the database's integrity, the disks, the certificates, the
//! apps' unit files, containers of this instance that nothing owns, and
//! operations left waiting in the journal.

use crate::daemon::Daemon;
use berth_api::{DoctorCheck, DoctorReport};
use berth_core::spec::LABEL_APP;
use std::collections::HashSet;

const OK: &str = "ok";
const WARNING: &str = "warning";
const PROBLEM: &str = "problem";
/// Free space below this share of a file system is a warning.
const LOW_DISK: f64 = 0.10;

fn check(name: &str, status: &str, message: impl Into<String>) -> DoctorCheck {
    DoctorCheck { name: name.to_owned(), status: status.to_owned(), message: message.into() }
}

pub async fn run(daemon: &Daemon) -> DoctorReport {
    let services = &daemon.services;
    let mut checks = Vec::new();
    checks.push(match services.engine.info().await {
        Ok(info) => check("engine", OK, format!("Docker Engine {} (API {}) answers at {}", info.version, info.api_version, services.engine.endpoint())),
        Err(e) => check(
            "engine",
            PROBLEM,
            format!("the container engine does not answer ({e}); apps cannot be installed or changed until it does, and berth recovers on its own when it is back"),
        ),
    });
    let store = services.store.clone();
    let integrity = crate::fs::blocking("checking the database", move || {
        store.integrity().map_err(|e| crate::fs::TaskFailed { what: "checking the database", reason: e.to_string() })
    })
    .await;
    checks.push(match integrity {
        Ok(problems) if problems.is_empty() => check("database", OK, "berth.db passes SQLite's integrity check"),
        Ok(problems) => check(
            "database",
            PROBLEM,
            format!("berth.db is damaged ({}); restore it from a backup", problems.join("; ")),
        ),
        Err(e) => check("database", PROBLEM, format!("berth.db cannot be checked: {e}")),
    });
    for (what, path) in [("state", services.config.root.clone()), ("app data", services.config.data_root.clone())] {
        let shown = path.display().to_string();
        let space = crate::fs::blocking("reading disk space", move || {
            let existing = path.ancestors().find(|p| p.exists()).map(|p| p.to_owned());
            let stats = existing.and_then(|p| rustix::fs::statvfs(&p).ok());
            Ok::<_, crate::fs::TaskFailed>(
                stats.map(|s| (s.f_bavail.saturating_mul(s.f_frsize), s.f_blocks.saturating_mul(s.f_frsize))),
            )
        })
        .await
        .ok()
        .flatten();
        checks.push(match space {
            Some((free, total)) if total > 0 && (free as f64) < (total as f64) * LOW_DISK => check(
                "disk",
                WARNING,
                format!(
                    "{what} ({shown}): only {} MiB of {} MiB free; make room before the next upgrade",
                    free >> 20,
                    total >> 20
                ),
            ),
            Some((free, total)) => {
                check("disk", OK, format!("{what} ({shown}): {} MiB of {} MiB free", free >> 20, total >> 20))
            }
            None => check("disk", WARNING, format!("{what} ({shown}): free space cannot be read")),
        });
    }
    let certs = daemon.certs.clone();
    let listen: Vec<String> = services.config.listen.iter().map(|a| format!("tcp://{a}")).collect();
    let view = crate::fs::blocking("reading the certificates", move || {
        crate::certs::api::view(&certs, &listen)
            .map_err(|e| crate::fs::TaskFailed { what: "reading the certificates", reason: e.to_string() })
    })
    .await;
    checks.push(match view {
        Ok(v) if v.server.days_left < 0 => check(
            "certificates",
            PROBLEM,
            format!(
                "the server certificate ({}) has expired; install a new one or remove it to have one made",
                v.server.subject
            ),
        ),
        Ok(v) if v.server.days_left < crate::certs::EXPIRY_WARNING_DAYS => check(
            "certificates",
            WARNING,
            format!("the server certificate ({}) expires in {} days; renew it", v.server.subject, v.server.days_left),
        ),
        Ok(v) => check(
            "certificates",
            OK,
            format!("{} server certificate {} valid for {} more days", v.kind, v.server.subject, v.server.days_left),
        ),
        Err(e) => check("certificates", PROBLEM, format!("the certificates cannot be read: {e}")),
    });
    let apps =
        services.db::<_, crate::apps::error::AppError, _>("listing apps", |s| s.apps()).await.unwrap_or_default();
    let missing: Vec<String> = apps
        .iter()
        .filter(|a| a.installed)
        .map(|a| berth_core::units::app_unit_name(&a.spec.name))
        .filter(|unit| !services.config.unit_dir.join(unit).exists())
        .collect();
    checks.push(if missing.is_empty() {
        check(
            "units",
            OK,
            format!("every installed app has its systemd unit in {}", services.config.unit_dir.display()),
        )
    } else {
        check(
            "units",
            PROBLEM,
            format!(
                "units missing in {}: {}; reinstall those apps or restore the units",
                services.config.unit_dir.display(),
                missing.join(", ")
            ),
        )
    });
    match services.engine.list(&services.ownership.filter().has_label(LABEL_APP)).await {
        Ok(containers) => {
            let known: HashSet<String> = apps.iter().map(|a| a.spec.name.to_string()).collect();
            let orphans: Vec<String> = containers
                .into_iter()
                .filter(|c| c.label(LABEL_APP).is_some_and(|app| !known.contains(app)))
                .map(|c| c.name)
                .collect();
            checks.push(if orphans.is_empty() {
                check("orphans", OK, "no container of this instance is without its app")
            } else {
                check(
                    "orphans",
                    WARNING,
                    format!(
                        "containers of this instance without an app: {} (removed at the next start)",
                        orphans.join(", ")
                    ),
                )
            });
        }
        Err(_) => checks.push(check("orphans", WARNING, "not checked: the engine does not answer")),
    }
    match services.journal.open_entries().await {
        Ok(open) if open.is_empty() => checks.push(check("journal", OK, "no operation is left open")),
        Ok(open) => checks.push(check(
            "journal",
            WARNING,
            format!(
                "{} operation(s) open: {} (finished or undone when the engine answers)",
                open.len(),
                open.iter().map(|e| format!("{} of {}", e.kind.as_str(), e.subject)).collect::<Vec<_>>().join(", ")
            ),
        )),
        Err(e) => checks.push(check("journal", PROBLEM, format!("the journal cannot be read: {e}"))),
    }
    match daemon.hosts.views().await {
        Ok(hosts) if hosts.is_empty() => {}
        Ok(hosts) => {
            let unwell: Vec<String> = hosts
                .iter()
                .filter(|h| h.state != "running")
                .map(|h| {
                    format!(
                        "{} is {}{}",
                        h.name,
                        h.state,
                        h.message.as_ref().map_or(String::new(), |m| format!(" ({m})"))
                    )
                })
                .collect();
            let down = hosts.iter().any(|h| matches!(h.state.as_str(), "failed" | "stopped"));
            checks.push(match (unwell.is_empty(), down) {
                (true, _) => check("hosts", OK, format!("{} container host(s), all running", hosts.len())),
                (false, true) => check("hosts", PROBLEM, unwell.join("; ")),
                (false, false) => check("hosts", WARNING, unwell.join("; ")),
            });
        }
        Err(e) => checks.push(check("hosts", PROBLEM, format!("the container hosts cannot be read: {e}"))),
    }
    DoctorReport { checks }
}

/// `berth doctor --rebuild`: the apps, then the resource types and instances
/// the engine keeps records of and the database does not know. The SRA
/// configuration needs nothing: it lives in files, and each execution
/// container names the generation it binds in a label.
pub async fn rebuild(daemon: &Daemon) -> Result<berth_api::RebuildReport, berth_api::ApiError> {
    if !daemon.services.engine_state.is_ready() {
        return Err(crate::apps::error::AppError::from(berth_core::engine::EngineError::Unreachable {
            endpoint: daemon.services.engine.endpoint(),
            reason: "the container engine does not answer; the rebuild reads what it keeps".into(),
        })
        .into());
    }
    let mut items = crate::apps::rebuild::rebuild(&daemon.apps).await?;
    let resources = daemon.resources.rebuild().await.map_err(|e| {
        let kind = match &e {
            crate::resources::error::ResourceError::Engine(engine) if engine.is_unavailable() => {
                berth_core::ErrorKind::EngineUnavailable
            }
            _ => berth_core::ErrorKind::Internal,
        };
        berth_api::ApiError::new(kind, e.to_string())
    })?;
    items.extend(resources);
    Ok(berth_api::RebuildReport { items })
}
