//! Upgrades and rollbacks, run by the app's task (supervision pauses).
//! TPCM's own sequence removes the old container before the new one has
//! proven anything; berth keeps the old one (stopped, renamed aside) and the
//! data (a synced snapshot) until the new version has run its post hook and
//! survived probation, and undoes everything otherwise — on any failure, on
//! cancellation, and after a crash at any step.
//!
//! Upgrade steps (each journaled with its undo before it acts): fetch the new
//! image while the old app runs → snapshot the private directory → pre hook
//! (old image, old container) → stop the old container and rename it aside →
//! create and start the new one → post hook → probation → commit. The commit
//! makes the new spec the app's and the old one its previous version, in one
//! transaction with the work left: remove the old container, keep the
//! snapshot (for rollback), release the image of the version no longer kept.
//! That work is journaled too, so a crash right after the commit finishes it.

use super::error::AppError;
use super::hooks::{self, HookRun};
use super::start::{start_and_check, stop};
use super::{progress_sink, say, Apps};
use crate::fs::blocking;
use crate::intake::{self, FetchRequest, ForOperation};
use crate::journal::{JournalError, Op, Settled};
use berth_api::{InstallEvent, Operation};
use berth_core::journal::{Effect, ImageHandle, OperationKind, Subject, UpgradeRecord};
use berth_core::spec::AppSpec;
use berth_core::status::Health;
use berth_store::AppChange;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often probation looks at the new version.
const PROBATION_POLL: Duration = Duration::from_millis(250);

/// Where the data of the version before the last upgrade is kept, for rollback.
pub fn kept_snapshot(apps: &Apps, app: &str) -> PathBuf {
    snapshots(apps, app).join("kept")
}

pub fn snapshots(apps: &Apps, app: &str) -> PathBuf {
    apps.services.config.root.join("snapshots").join(app)
}

fn operation_snapshot(apps: &Apps, app: &str) -> PathBuf {
    snapshots(apps, app).join(format!("op-{}", hex::encode(rand::random::<[u8; 6]>())))
}

/// Upgrades `current` to `new` (validated; its image still to fetch).
#[allow(clippy::too_many_arguments)]
pub async fn upgrade(
    apps: &Apps,
    current: &AppSpec,
    previous: Option<&AppSpec>,
    new: AppSpec,
    fetch: FetchRequest,
    skip_data: bool,
    op: &Operation<InstallEvent>,
    cancel: &CancellationToken,
) -> Result<AppSpec, AppError> {
    let name = current.name.to_string();
    // TPCM upgrade step 1, made safe: before anything is fetched or journaled.
    let image_bytes = match &fetch.source {
        // The archive's size is a lower bound of what the engine will store.
        crate::intake::FetchSource::Upload { size: Some(size), .. } => *size,
        _ => 0,
    };
    super::quota::check(&apps.services.config.settings.quota, &apps.registry, &new, true)?;
    preflight(apps, image_bytes, &name).await?;
    super::preflight::check(&apps.services, &new.options).await?;
    let record = UpgradeRecord {
        old: current.clone(),
        new,
        aside: current.name.aside(),
        snapshot: operation_snapshot(apps, &name),
        skip_data,
    };
    let kind = OperationKind::Upgrade;
    let mut plan = Plan { apps, op, cancel, record, kind };
    let mut entry = plan.begin().await?;
    let result = plan.upgrade_steps(&mut entry, fetch).await;
    plan.finish(entry, result, previous).await
}

/// Returns to the previous version: its image and settings, and the data as
/// it was before the upgrade that replaced it. Refused — with nothing
/// changed — when there is no previous version, its image is gone, or its
/// data snapshot is missing or incomplete.
pub async fn rollback(
    apps: &Apps,
    current: &AppSpec,
    previous: Option<&AppSpec>,
    op: &Operation<InstallEvent>,
    cancel: &CancellationToken,
) -> Result<AppSpec, AppError> {
    let name = current.name.to_string();
    let target = previous.cloned().ok_or_else(|| AppError::NoPreviousVersion { app: name.clone() })?;
    if apps.services.engine.inspect_image(&target.image_id).await?.is_none() {
        return Err(berth_core::engine::EngineError::NotFound {
            what: format!("previous image {} ({})", target.image_ref, target.image_id),
        }
        .into());
    }
    let kept = kept_snapshot(apps, &name);
    let complete = blocking("looking at the kept snapshot", {
        let kept = kept.clone();
        move || Ok::<_, AppError>(crate::fs::is_complete_snapshot(&kept))
    })
    .await?;
    if !complete {
        return Err(AppError::NoKeptSnapshot { app: name, path: kept.display().to_string() });
    }
    let record = UpgradeRecord {
        old: current.clone(),
        new: target,
        aside: current.name.aside(),
        snapshot: operation_snapshot(apps, &name),
        skip_data: true,
    };
    let mut plan = Plan { apps, op, cancel, record, kind: OperationKind::Rollback };
    let mut entry = plan.begin().await?;
    let result = plan.rollback_steps(&mut entry, &kept).await;
    // After a rollback the version rolled away from becomes the previous one.
    plan.finish(entry, result, Some(current)).await
}

/// One upgrade or rollback under way.
struct Plan<'a> {
    apps: &'a Apps,
    op: &'a Operation<InstallEvent>,
    cancel: &'a CancellationToken,
    record: UpgradeRecord,
    kind: OperationKind,
}

impl Plan<'_> {
    fn name(&self) -> String {
        self.record.old.name.to_string()
    }

    async fn begin(&mut self) -> Result<Op, AppError> {
        let journal = &self.apps.services.journal;
        let subject = Subject::App(self.record.old.name.clone());
        // The first undo entry is the last replayed: the old version runs
        // again if it should.
        let undo = vec![Effect::StartIfDesired { app: self.record.old.name.clone() }];
        Ok(journal.begin(self.kind, &subject, &self.record, undo, AppChange::RequireInstalled(self.name())).await?)
    }

    async fn step(&self, entry: &mut Op, step: &str, undo: Vec<Effect>) -> Result<(), AppError> {
        if self.cancel.is_cancelled() {
            return Err(AppError::Cancelled { app: self.name() });
        }
        Ok(self.apps.services.journal.step(entry, step, &self.record, undo).await?)
    }

    async fn upgrade_steps(&mut self, entry: &mut Op, fetch: FetchRequest) -> Result<(), AppError> {
        let services = &self.apps.services;
        let journal = &services.journal;
        let name = self.name();
        let app = self.record.old.name.clone();
        let private_dir = self.apps.private_dir(&name);

        self.step(entry, "fetching_image", vec![]).await?;
        let intake = intake::fetch(
            services,
            fetch,
            ForOperation { journal, op: entry, app: Some(&app), cancel: self.cancel, progress: progress_sink(self.op) },
        )
        .await?;
        self.record.new.image_id = intake.image_id;
        self.record.new.image_ref = intake.image_ref;
        self.step(entry, "image_ready", vec![]).await?;

        self.snapshot(entry, &private_dir).await?;

        let old_running = services.engine.inspect(&name).await?.is_some_and(|c| c.state.is_running());
        // The hook may change the data: the snapshot comes back on undo.
        let restore = Effect::RestoreSnapshot { snapshot: self.record.snapshot.clone(), target: private_dir.clone() };
        self.step(entry, "pre_hook", vec![restore]).await?;
        if !self.record.skip_data {
            if old_running {
                let run =
                    hooks::run(services, &name, &self.record.old.image_id, &private_dir, "pre", self.cancel).await?;
                say(self.op, &run.describe("pre"));
            } else {
                say(self.op, &HookRun::Skipped("the old version is not running".into()).describe("pre"));
            }
        }

        self.set_old_aside(entry).await?;
        self.start_new(entry).await?;

        self.step(entry, "post_hook", vec![]).await?;
        if !self.record.skip_data {
            let run = hooks::run(services, &name, &self.record.new.image_id, &private_dir, "post", self.cancel).await?;
            say(self.op, &run.describe("post"));
        }
        self.probation(entry).await
    }

    async fn rollback_steps(&mut self, entry: &mut Op, kept: &Path) -> Result<(), AppError> {
        let private_dir = self.apps.private_dir(&self.name());
        self.snapshot(entry, &private_dir).await?;
        self.set_old_aside(entry).await?;
        let restore = Effect::RestoreSnapshot { snapshot: self.record.snapshot.clone(), target: private_dir.clone() };
        self.step(entry, "data_restored", vec![restore]).await?;
        say(self.op, "restoring the data of the previous version");
        let kept = kept.to_owned();
        blocking("restoring the kept snapshot", move || {
            crate::fs::restore_tree(&kept, &private_dir).map_err(AppError::from)
        })
        .await?;
        self.start_new(entry).await?;
        self.probation(entry).await
    }

    /// A synced copy of the private directory, before anything touches it.
    async fn snapshot(&self, entry: &mut Op, private_dir: &Path) -> Result<(), AppError> {
        self.step(entry, "snapshotting", vec![Effect::RemoveTree { path: self.record.snapshot.clone() }]).await?;
        say(self.op, "snapshotting the private directory");
        let (from, to) = (private_dir.to_owned(), self.record.snapshot.clone());
        blocking("snapshotting the private directory", move || crate::fs::copy_tree(&from, &to).map_err(AppError::from))
            .await
    }

    async fn set_old_aside(&self, entry: &mut Op) -> Result<(), AppError> {
        let services = &self.apps.services;
        let name = self.name();
        let back = Effect::RenameContainer { from: self.record.aside.clone(), to: name.clone() };
        self.step(entry, "old_stopped", vec![back]).await?;
        say(self.op, "stopping the old version (kept aside)");
        stop(services, &name).await?;
        if services.engine.inspect(&name).await?.is_some() {
            services.engine.rename(&name, &self.record.aside).await?;
        }
        Ok(())
    }

    async fn start_new(&self, entry: &mut Op) -> Result<(), AppError> {
        let services = &self.apps.services;
        let name = self.name();
        // Volumes first: their undo then comes after the new container's removal.
        self.step(entry, "volumes_ready", vec![]).await?;
        super::preflight::make_volumes(services, &services.journal, entry, &self.record.new).await?;
        self.step(entry, "new_started", vec![Effect::RemoveContainer { container: name.clone() }]).await?;
        say(self.op, &format!("starting {}", self.record.new.image_ref));
        let spec = self.apps.container_spec(&self.record.new, entry.id);
        let kept = self.apps.kept(&self.record.new, Some(&self.record.old));
        services.engine.create(&self.apps.container_config(&spec, &kept)).await?;
        start_and_check(services, &name, self.cancel).await
    }

    /// The new version must keep running (and, with a health check, become
    /// and stay healthy) for `probation_secs`.
    async fn probation(&self, entry: &mut Op) -> Result<(), AppError> {
        let services = &self.apps.services;
        self.step(entry, "probation", vec![]).await?;
        let period = Duration::from_secs(services.config.settings.probation_secs);
        say(self.op, &format!("probation: {}s", period.as_secs()));
        let name = self.name();
        let started = tokio::time::Instant::now();
        loop {
            let fail = |reason: &str| AppError::DidNotStart { name: name.clone(), reason: reason.to_owned() };
            let Some(c) = services.engine.inspect(&name).await?.filter(|c| c.state.is_running()) else {
                return Err(fail("it stopped during probation"));
            };
            if c.health == Health::Unhealthy {
                return Err(fail("its health check reports unhealthy"));
            }
            let elapsed = started.elapsed();
            // A health check still starting gets as long again to decide.
            let settled = c.health != Health::Starting || elapsed >= period * 2;
            if elapsed >= period && settled {
                return if c.health == Health::Starting {
                    Err(fail("its health check never reported healthy"))
                } else {
                    Ok(())
                };
            }
            tokio::select! {
                _ = tokio::time::sleep(PROBATION_POLL) => {}
                _ = self.cancel.cancelled() => return Err(AppError::Cancelled { app: name }),
            }
        }
    }

    /// Commits a successful run, or rolls a failed one back.
    async fn finish(
        self,
        entry: Op,
        result: Result<(), AppError>,
        previous: Option<&AppSpec>,
    ) -> Result<AppSpec, AppError> {
        let journal = &self.apps.services.journal;
        let name = self.name();
        let what = if self.kind == OperationKind::Rollback { "rollback" } else { "upgrade" };
        let error = match result {
            Ok(()) => {
                let forward = self.forward(previous);
                let change = AppChange::Upgrade { spec: self.record.new.clone(), previous: self.record.old.clone() };
                match journal.commit(&entry, &self.record, forward, change).await {
                    Ok(Settled::Halted(halted)) => return Err(JournalError::from(halted).into()),
                    Ok(_) => return Ok(self.record.new),
                    Err(e) => AppError::from(e),
                }
            }
            Err(e) => e,
        };
        if error.is_halted() {
            return Err(error);
        }
        let step = entry.step().to_owned();
        say(self.op, &format!("failed at {step}; rolling back"));
        journal.roll_back(entry, &error.to_string()).await;
        Err(AppError::OperationFailed { app: name, kind: what, step, cause: Box::new(error) })
    }

    /// The work after the commit: the old container goes, this operation's
    /// snapshot becomes the kept one, and the image of the version that is no
    /// longer kept goes when nothing uses it.
    fn forward(&self, previous: Option<&AppSpec>) -> Vec<Effect> {
        let name = self.name();
        let mut forward = vec![
            Effect::RemoveContainer { container: self.record.aside.clone() },
            Effect::MoveTree { from: self.record.snapshot.clone(), to: kept_snapshot(self.apps, &name) },
        ];
        let (new, old) = (&self.record.new.image_id, &self.record.old.image_id);
        if let Some(dropped) = previous.filter(|p| p.image_id != *new && p.image_id != *old && !p.image_id.is_empty()) {
            forward.push(Effect::ReleaseImage { image: ImageHandle::Id { id: dropped.image_id.clone() }, app: None });
        }
        forward
    }
}

/// Refuses early when the disks cannot hold the new image and the snapshot.
async fn preflight(apps: &Apps, image_bytes: u64, name: &str) -> Result<(), AppError> {
    let engine_root = apps.services.engine.info().await.ok().and_then(|info| info.root_dir).map(PathBuf::from);
    let (dir, snapshots) = (apps.private_dir(name), apps.services.config.root.join("snapshots"));
    blocking("checking disk space", move || {
        let data_bytes = crate::fs::tree_size(&dir);
        let mut needs = vec![(snapshots.as_path(), data_bytes)];
        if let Some(root) = &engine_root {
            needs.push((root.as_path(), image_bytes));
        }
        super::disk::check(&needs)
    })
    .await
}
