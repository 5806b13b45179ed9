//! Start-up: finish or undo what a crash interrupted, remove containers no app
//! owns, then start one task per app which reconciles its container.

use crate::actor;
use crate::error::OpError;
use crate::install;
use crate::registry::{AppHandle, Inner, Runtime};
use crate::uninstall;
use crate::upgrade;
use berth_core::journal::{
    recovery_for_install, recovery_for_uninstall, InstallRecord, OperationKind, Recovery, UninstallRecord,
    UpgradeRecord,
};
use berth_core::spec::LABEL_APP;
use berth_core::status::AppState;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub async fn recover(inner: &Arc<Inner>) -> Result<(), OpError> {
    for operation in inner.db(|s| s.running_operations()).await? {
        let id = operation.id;
        match operation.kind {
            OperationKind::Install => {
                let record: InstallRecord = operation.record()?;
                match recovery_for_install(&record) {
                    Recovery::MarkDone => {
                        let spec = record.spec.clone();
                        inner.db(move |s| s.commit_install(id, &spec, &record)).await?;
                    }
                    Recovery::RollBack | Recovery::RollForward => {
                        tracing::warn!(operation = id, app = %operation.app, step = ?record.step, "undoing an install cut short");
                        install::undo(inner, id, &record, "the daemon stopped during the install").await;
                    }
                }
            }
            OperationKind::Upgrade => {
                let record: UpgradeRecord = operation.record()?;
                tracing::warn!(operation = id, app = %operation.app, step = ?record.step, "undoing an upgrade cut short");
                upgrade::undo(inner, id, &record, "the daemon stopped during the upgrade").await;
            }
            OperationKind::Uninstall => {
                let record: UninstallRecord = operation.record()?;
                debug_assert_eq!(recovery_for_uninstall(&record), Recovery::RollForward);
                tracing::warn!(operation = id, app = %operation.app, step = ?record.step, "finishing an uninstall cut short");
                uninstall::finish(inner, id, record).await?;
            }
        }
    }
    crate::migrate::import_pending(inner).await;
    remove_orphans(inner).await?;
    start_apps(inner).await?;
    inner.recovered.store(true, Ordering::Release);
    // Keep the journal from growing without bound: a week of history.
    let week_ago = crate::registry::now_secs() - 7 * 86_400;
    inner.db(move |s| s.prune_operations(week_ago)).await?;
    Ok(())
}

/// Containers of this instance whose app is not installed (left by a crash
/// between create and the journal's record, or by a lost database).
async fn remove_orphans(inner: &Inner) -> Result<(), OpError> {
    let installed: HashSet<String> =
        inner.db(|s| s.apps()).await?.into_iter().map(|a| a.spec.name.to_string()).collect();
    for container in inner.engine.owned_containers(&inner.instance).await? {
        let app = container.label(LABEL_APP).unwrap_or_default();
        // Also an old version kept aside by an upgrade that committed but
        // did not get to remove it.
        if !installed.contains(app) || container.name != app {
            tracing::warn!(container = %container.name, app, "removing a container no installed app owns");
            inner.engine.remove_container(&container.id).await?;
        }
    }
    Ok(())
}

async fn start_apps(inner: &Arc<Inner>) -> Result<(), OpError> {
    // What was listed before the engine answered goes: the journal may have changed it.
    inner.apps.write().unwrap_or_else(|e| e.into_inner()).clear();
    for app in inner.db(|s| s.apps()).await? {
        if !app.installed {
            continue;
        }
        let name = app.spec.name.to_string();
        let runtime = Runtime::new(app.spec, app.desired, AppState::Starting, app.created_at);
        runtime.lock().unwrap_or_else(|e| e.into_inner()).previous = app.previous;
        let commands = actor::spawn(inner.clone(), runtime.clone(), true);
        inner.insert(&name, AppHandle { runtime, commands: Some(commands) });
    }
    Ok(())
}

/// Before the engine answers: list what the database knows, so `berth list`
/// is not empty while the engine starts (apps show as `starting`, with why).
pub async fn show_stored_apps(inner: &Arc<Inner>) -> Result<(), OpError> {
    for app in inner.db(|s| s.apps()).await? {
        if !app.installed {
            continue;
        }
        let name = app.spec.name.to_string();
        let runtime = Runtime::new(app.spec, app.desired, AppState::Starting, app.created_at);
        {
            let mut r = runtime.lock().unwrap_or_else(|e| e.into_inner());
            r.previous = app.previous;
            r.failure = Some("waiting for the container engine".into());
        }
        inner.insert(&name, AppHandle { runtime, commands: None });
    }
    Ok(())
}
