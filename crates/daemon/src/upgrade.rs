//! Upgrades and rollbacks. TPCM's own sequence removes the old container
//! before the new one has proven anything; berth keeps the old one (stopped,
//! renamed aside) and the data (a snapshot) until the new version has run
//! its post hook and survived probation, and undoes everything otherwise —
//! on any failure, and after a crash at any step.
//!
//! Steps (journaled before each acts): fetch the new image while the old app
//! runs → snapshot the private directory → pre hook (old image, old
//! container) → stop the old container and rename it aside → create and
//! start the new one → post hook (new image, new container) → probation →
//! commit (the new spec becomes the app, the old one its previous version;
//! the old container is removed, its image kept for `berth rollback`).

use crate::error::OpError;
use crate::hooks::{self, HookRun};
use crate::install::{self, start_and_check};
use crate::intake::{self, FetchOptions};
use crate::registry::Inner;
use crate::snapshot;
use berth_api::{InstallEvent, InstallRequest, ProgressSender, UpgradeRequest};
use berth_core::engine::{EngineError, Progress, ProgressSink};
use berth_core::journal::{OperationState, UpgradeRecord, UpgradeStep};
use berth_core::spec::{AppSpec, LABEL_INSTANCE};
use berth_core::status::Health;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the data of the version before the last upgrade is kept, for rollback.
pub fn kept_snapshot(inner: &Inner, app: &str) -> PathBuf {
    inner.config.root.join("snapshots").join(app).join("kept")
}

fn operation_snapshot(inner: &Inner, app: &str, operation: i64) -> PathBuf {
    inner.config.root.join("snapshots").join(app).join(format!("operation-{operation}"))
}

/// Upgrades `current` as `request` says; returns the new spec.
pub async fn upgrade(
    inner: &Arc<Inner>,
    current: &AppSpec,
    previous: Option<&AppSpec>,
    request: UpgradeRequest,
    progress: ProgressSender,
) -> Result<AppSpec, OpError> {
    // The same options as install; what is not given stays as it was.
    let as_install = InstallRequest {
        name: current.name.to_string(),
        source: request.source.clone(),
        args: request.args.clone().unwrap_or_else(|| current.args.clone()),
        cpus: request.cpus.or(Some(current.cpus)),
        memory: request.memory.clone().or(current.memory.map(|m| m.to_string())),
        sha256: request.sha256.clone(),
        ca_file: request.ca_file.clone(),
        registry_auth: request.registry_auth.clone(),
        ssh: request.ssh.clone(),
    };
    let new = install::validate(inner, &as_install)?;
    let fetch = install::fetch_options(&as_install, &new.source, &inner.config.root)?;
    run(inner, current, previous, new, Some(fetch), request.skip_data, false, progress).await
}

/// Returns to the previous version: its image and settings, and the data as
/// it was before the upgrade that replaced it.
pub async fn rollback(
    inner: &Arc<Inner>,
    current: &AppSpec,
    previous: Option<&AppSpec>,
    progress: ProgressSender,
) -> Result<AppSpec, OpError> {
    let target = previous.cloned().ok_or_else(|| OpError::NoPreviousVersion { app: current.name.to_string() })?;
    if inner.engine.inspect_image(&target.image_id).await?.is_none() {
        return Err(EngineError::NotFound {
            what: format!("previous image {} ({})", target.image_ref, target.image_id),
        }
        .into());
    }
    // After a rollback the version rolled away from becomes the previous one.
    run(inner, current, Some(current), target, None, true, true, progress).await
}

#[allow(clippy::too_many_arguments)]
async fn run(
    inner: &Arc<Inner>,
    current: &AppSpec,
    previous: Option<&AppSpec>,
    new: AppSpec,
    fetch: Option<FetchOptions>,
    skip_data: bool,
    rollback: bool,
    progress: ProgressSender,
) -> Result<AppSpec, OpError> {
    let name = current.name.to_string();
    let mut record = UpgradeRecord {
        step: UpgradeStep::Accepted,
        old: current.clone(),
        new,
        preexisting_images: Vec::new(),
        aside: current.name.aside(),
        snapshot: String::new(),
        skip_data,
        rollback,
    };
    let operation = {
        let (name, record) = (name.clone(), record.clone());
        inner.db(move |s| s.begin_upgrade(&name, &record)).await?
    };
    record.snapshot = operation_snapshot(inner, &name, operation).to_string_lossy().into_owned();
    let sink = install::progress_sink(progress.clone());
    match steps(inner, operation, &mut record, fetch.as_ref(), sink).await {
        Ok(()) => {
            commit(inner, operation, &record, previous).await?;
            Ok(record.new)
        }
        Err(cause) => {
            let step = step_name(record.step);
            let _ = progress.send(InstallEvent::Progress {
                phase: format!("failed at {step}; rolling back"),
                current: 0,
                total: None,
            });
            undo(inner, operation, &record, &cause.to_string()).await;
            Err(OpError::UpgradeFailed { app: name, step, cause: Box::new(cause) })
        }
    }
}

async fn steps(
    inner: &Arc<Inner>,
    operation: i64,
    record: &mut UpgradeRecord,
    fetch: Option<&FetchOptions>,
    progress: ProgressSink,
) -> Result<(), OpError> {
    let engine = inner.engine.as_ref();
    let name = record.old.name.to_string();
    let private_dir = inner.private_dir(&name);
    let say = |phase: String| progress(Progress { phase, current: 0, total: None });

    preflight(inner, &record.new, &private_dir).await?;
    if let Some(fetch) = fetch {
        let preexisting: HashSet<String> = engine.image_ids().await?;
        record.preexisting_images = preexisting.iter().cloned().collect();
        step(inner, operation, record, UpgradeStep::FetchingImage).await?;
        let fetched = intake::fetch(engine, &record.new.source, fetch, &preexisting, progress.clone()).await?;
        record.new.image_id = fetched.image_id;
        record.new.image_ref = fetched.image_ref;
    }
    step(inner, operation, record, UpgradeStep::ImageReady).await?;

    step(inner, operation, record, UpgradeStep::Snapshotting).await?;
    say("snapshotting the private directory".into());
    blocking({
        let (from, to) = (private_dir.clone(), PathBuf::from(&record.snapshot));
        move || snapshot::copy_tree(&from, &to)
    })
    .await?;

    let old_running = engine.inspect_container(&name).await?.is_some_and(|c| c.state.is_running());
    step(inner, operation, record, UpgradeStep::PreHook).await?;
    if !record.skip_data && !record.rollback {
        if old_running {
            let timeout = Duration::from_secs(inner.config.settings.hook_timeout_secs);
            let run = hooks::run(engine, &name, &record.old.image_id, &name, &private_dir, "pre", timeout).await?;
            say(describe("pre", &run));
        } else {
            say("pre hook: skipped, the old version is not running".into());
        }
    }

    step(inner, operation, record, UpgradeStep::OldStopped).await?;
    say("stopping the old version (kept aside)".into());
    engine.stop_container(&name, inner.config.settings.stop_timeout_secs).await?;
    if engine.inspect_container(&name).await?.is_some() {
        engine.rename_container(&name, &record.aside).await?;
    }
    if record.rollback {
        let (kept, dir) = (kept_snapshot(inner, &name), private_dir.clone());
        blocking(move || snapshot::restore(&kept, &dir)).await?;
    }

    step(inner, operation, record, UpgradeStep::NewStarted).await?;
    say(format!("starting {}", record.new.image_ref));
    engine.create_container(&inner.container_spec(&record.new, operation)).await?;
    start_and_check(inner, &name).await?;

    step(inner, operation, record, UpgradeStep::PostHook).await?;
    if !record.skip_data && !record.rollback {
        let timeout = Duration::from_secs(inner.config.settings.hook_timeout_secs);
        let run = hooks::run(engine, &name, &record.new.image_id, &name, &private_dir, "post", timeout).await?;
        say(describe("post", &run));
    }

    step(inner, operation, record, UpgradeStep::Probation).await?;
    say(format!("probation: {}s", inner.config.settings.probation_secs));
    probation(inner, &name).await
}

/// TPCM upgrade step 1, made safe: refuse before anything is fetched when
/// the disks cannot hold the new image and the snapshot of the data.
async fn preflight(inner: &Inner, new: &AppSpec, private_dir: &std::path::Path) -> Result<(), OpError> {
    let image_bytes = match &new.source {
        // The archive's size is a lower bound of what the engine will store.
        berth_core::source::Source::Archive { path } => std::fs::metadata(path).map_or(0, |m| m.len()),
        _ => 0,
    };
    let engine_root = inner.engine.info().await.ok().and_then(|info| info.root_dir).map(PathBuf::from);
    let (dir, snapshots) = (private_dir.to_owned(), inner.config.root.join("snapshots"));
    blocking(move || {
        let data_bytes = crate::disk::tree_size(&dir);
        let mut needs = vec![(snapshots.as_path(), data_bytes)];
        if let Some(root) = &engine_root {
            needs.push((root.as_path(), image_bytes));
        }
        crate::disk::check(&needs)
    })
    .await
}

fn describe(hook: &str, run: &HookRun) -> String {
    match run {
        HookRun::Skipped(why) => format!("{hook} hook: skipped ({why})"),
        HookRun::Succeeded(_) => format!("{hook} hook: done"),
    }
}

/// The new version must keep running (and, with a health check, become and
/// stay healthy) for `probation_secs`.
async fn probation(inner: &Inner, name: &str) -> Result<(), OpError> {
    let period = Duration::from_secs(inner.config.settings.probation_secs);
    let started = Instant::now();
    loop {
        let container = inner.engine.inspect_container(name).await?;
        let fail = |reason: String| OpError::DidNotStart { name: name.to_owned(), reason };
        let Some(c) = container.filter(|c| c.state.is_running()) else {
            return Err(fail("it stopped during probation".into()));
        };
        if c.health == Health::Unhealthy {
            return Err(fail("its health check reports unhealthy".into()));
        }
        let elapsed = started.elapsed();
        // A health check still starting gets as long again to decide.
        let settled = c.health != Health::Starting || elapsed >= period * 2;
        if elapsed >= period && settled {
            return if c.health == Health::Starting {
                Err(fail("its health check never reported healthy".into()))
            } else {
                Ok(())
            };
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn step(inner: &Inner, operation: i64, record: &mut UpgradeRecord, next: UpgradeStep) -> Result<(), OpError> {
    crate::crash::point(&format!("upgrade:before_{}", step_name(next)));
    tracing::info!(app = %record.old.name, operation, step = %step_name(next), "upgrade");
    record.step = next;
    let snapshot = record.clone();
    inner.db(move |s| s.record_step(operation, &snapshot)).await
}

fn step_name(step: UpgradeStep) -> String {
    install::step_name(step)
}

/// The new version is the app from here on.
async fn commit(
    inner: &Inner,
    operation: i64,
    record: &UpgradeRecord,
    previous: Option<&AppSpec>,
) -> Result<(), OpError> {
    let mut committed = record.clone();
    committed.step = UpgradeStep::Committed;
    let (new, old) = (record.new.clone(), record.old.clone());
    inner.db(move |s| s.commit_upgrade(operation, &new, &old, &committed)).await?;
    crate::crash::point("upgrade:after_committed");
    finish_commit(inner, record, previous).await;
    Ok(())
}

/// After the commit: the old container goes, the snapshot becomes the kept
/// one, and the image of the version that is no longer kept goes when unused.
/// Everything here is repeated by recovery if it is cut short.
pub async fn finish_commit(inner: &Inner, record: &UpgradeRecord, dropped: Option<&AppSpec>) {
    let engine = inner.engine.as_ref();
    if let Ok(Some(c)) = engine.inspect_container(&record.aside).await {
        if c.label(LABEL_INSTANCE) == Some(inner.instance.as_str()) {
            warn_on_error("removing the old container", engine.remove_container(&record.aside).await);
        }
    }
    let app = record.old.name.to_string();
    let (from, kept) = (PathBuf::from(&record.snapshot), kept_snapshot(inner, &app));
    let rotated = blocking(move || {
        if from.is_dir() {
            snapshot::remove_tree(&kept)?;
            std::fs::rename(&from, &kept).map_err(OpError::io(&kept))?;
        }
        Ok(())
    })
    .await;
    if let Err(e) = rotated {
        tracing::warn!(%app, error = %e, "could not keep the data snapshot");
    }
    if let Some(dropped) = dropped.filter(|d| d.image_id != record.new.image_id && d.image_id != record.old.image_id) {
        let (image, name) = (dropped.image_id.clone(), app.clone());
        if !inner.db(move |s| s.image_in_use(&image, &name)).await.unwrap_or(true) {
            match engine.remove_image(&dropped.image_id).await {
                Ok(()) | Err(EngineError::Conflict { .. }) => {}
                Err(e) => {
                    tracing::warn!(image = %dropped.image_id, error = %e, "could not remove an image no longer kept")
                }
            }
        }
    }
}

/// Puts the old version back: its container (running again when it should
/// run), its data (from this operation's snapshot); removes the new container
/// and the image the upgrade brought. Safe to repeat; used on failure and by
/// recovery after a crash.
pub async fn undo(inner: &Inner, operation: i64, record: &UpgradeRecord, reason: &str) {
    let engine = inner.engine.as_ref();
    let name = record.old.name.to_string();
    let ours = |c: &Option<berth_core::engine::ContainerObservation>| {
        c.as_ref().is_some_and(|c| c.label(LABEL_INSTANCE) == Some(inner.instance.as_str()))
    };
    let aside = engine.inspect_container(&record.aside).await.unwrap_or(None);
    if ours(&aside) {
        if record.step >= UpgradeStep::NewStarted && ours(&engine.inspect_container(&name).await.unwrap_or(None)) {
            warn_on_error("removing the new container", engine.remove_container(&name).await);
        }
        warn_on_error("renaming the old container back", engine.rename_container(&record.aside, &name).await);
    }
    if record.step > UpgradeStep::Snapshotting {
        let (snapshot, dir) = (PathBuf::from(&record.snapshot), inner.private_dir(&name));
        if let Err(e) = blocking(move || snapshot::restore(&snapshot, &dir)).await {
            tracing::error!(app = %name, error = %e, "could not restore the data snapshot");
        }
    }
    let snapshot = PathBuf::from(&record.snapshot);
    let _ = blocking(move || snapshot::remove_tree(&snapshot)).await;
    let should_run = inner
        .db({
            let name = name.clone();
            move |s| s.app(&name)
        })
        .await
        .ok()
        .flatten()
        .is_some_and(|a| a.desired == berth_core::status::DesiredState::Running);
    let running = engine.inspect_container(&name).await.ok().flatten().is_some_and(|c| c.state.is_running());
    if should_run && !running {
        warn_on_error("starting the old version again", engine.start_container(&name).await);
    }
    let image = match record.added_image() {
        Some(id) => Some(id.to_owned()),
        // Cut short while fetching: the journal does not know the id yet;
        // the archive says which image it is.
        None if record.step == UpgradeStep::FetchingImage => intake::identify(engine, &record.new.source)
            .await
            .filter(|id| *id != record.old.image_id && !record.preexisting_images.contains(id)),
        None => None,
    };
    if let Some(image) = image {
        let (id, app) = (image.clone(), name.clone());
        if !inner.db(move |s| s.image_in_use(&id, &app)).await.unwrap_or(true) {
            warn_on_error("removing the new image", engine.remove_image(&image).await);
        }
    }
    let reason = reason.to_owned();
    if let Err(e) =
        inner.db(move |s| s.finish_operation(operation, OperationState::RolledBack, Some(&reason), None)).await
    {
        tracing::error!(operation, error = %e, "could not close the rolled back upgrade in the journal");
    }
}

fn warn_on_error(what: &str, result: Result<(), EngineError>) {
    if let Err(e) = result {
        tracing::warn!(error = %e, "{what} failed");
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, OpError> + Send + 'static) -> Result<T, OpError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| OpError::ShuttingDown)?
}
