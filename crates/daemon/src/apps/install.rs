//! The install operation, run by the new app's task: reserve the name in the
//! journal, then fetch → directory → container → start → commit. Each step
//! is recorded before it acts, with the effect that takes it back; a failure
//! (or a cancellation) replays those in reverse, and so does recovery after
//! a crash.

use super::error::AppError;
use super::registry::SharedRuntime;
use super::start::start_and_check;
use super::{progress_sink, say, Apps};
use crate::fs::blocking;
use crate::intake::{self, FetchRequest, ForOperation};
use crate::journal::{JournalError, Settled};
use crate::services::lock;
use berth_api::{InstallEvent, Operation};
use berth_core::journal::{Effect, InstallRecord, OperationKind, Subject};
use berth_core::spec::AppSpec;
use berth_store::AppChange;
use tokio_util::sync::CancellationToken;

/// Installs `spec`; returns it as installed (with its image).
pub async fn run(
    apps: &Apps,
    runtime: &SharedRuntime,
    spec: AppSpec,
    fetch: FetchRequest,
    op: &Operation<InstallEvent>,
    cancel: &CancellationToken,
) -> Result<AppSpec, AppError> {
    let journal = &apps.services.journal;
    let name = spec.name.clone();
    let mut record = InstallRecord { spec: spec.clone() };
    let undo = vec![Effect::DeleteApp { app: name.clone() }];
    let mut entry = journal
        .begin(OperationKind::Install, &Subject::App(name.clone()), &record, undo, AppChange::Reserve(spec))
        .await?;
    let error = match steps(apps, runtime, &mut entry, &mut record, fetch, op, cancel).await {
        Ok(()) => {
            let forward = vec![Effect::StartUnit { app: name.clone() }];
            match journal.commit(&entry, &record, forward, AppChange::Install(record.spec.clone())).await {
                Ok(Settled::Halted(halted)) => return Err(JournalError::from(halted).into()),
                Ok(_) => return Ok(record.spec),
                Err(e) => AppError::from(e),
            }
        }
        Err(e) => e,
    };
    if error.is_halted() {
        // A crash point (tests): the daemon "died" here; recovery decides.
        return Err(error);
    }
    say(op, "undoing the install");
    journal.roll_back(entry, &error.to_string()).await;
    Err(error)
}

async fn steps(
    apps: &Apps,
    runtime: &SharedRuntime,
    entry: &mut crate::journal::Op,
    record: &mut InstallRecord,
    fetch: FetchRequest,
    op: &Operation<InstallEvent>,
    cancel: &CancellationToken,
) -> Result<(), AppError> {
    let services = &apps.services;
    let journal = &services.journal;
    let name = record.spec.name.clone();

    journal.step(entry, "fetching_image", record, vec![]).await?;
    let intake = intake::fetch(
        services,
        fetch,
        ForOperation { journal, op: entry, app: Some(&name), cancel, progress: progress_sink(op) },
    )
    .await?;
    record.spec.image_id = intake.image_id;
    record.spec.image_ref = intake.image_ref;
    lock(runtime).spec = record.spec.clone();
    journal.step(entry, "image_ready", record, vec![]).await?;

    let dir = apps.private_dir(name.as_str());
    let existed = blocking("looking at the private directory", {
        let dir = dir.clone();
        move || Ok::<_, AppError>(dir.exists())
    })
    .await?;
    let undo = if existed { vec![] } else { vec![Effect::RemoveTree { path: dir.clone() }] };
    journal.step(entry, "directory_ready", record, undo).await?;
    blocking("creating the private directory", move || crate::fs::create_dir(&dir, 0o755).map_err(AppError::from))
        .await?;

    journal.step(entry, "volumes_ready", record, vec![]).await?;
    super::preflight::make_volumes(services, journal, entry, &record.spec).await?;

    if cancel.is_cancelled() {
        return Err(AppError::Cancelled { app: name.to_string() });
    }
    say(op, "creating container");
    let undo = vec![Effect::RemoveContainer { container: name.to_string() }, Effect::RemoveUnit { app: name.clone() }];
    journal.step(entry, "container_created", record, undo).await?;
    let engine = services.engine.as_ref();
    // A leftover of ours from an earlier crash goes first (a foreign one was refused before).
    if engine.inspect(name.as_str()).await?.is_some_and(|c| services.ownership.owns(&c)) {
        engine.remove(name.as_str()).await?;
    }
    let config = apps.container_config(&apps.container_spec(&record.spec, entry.id), &apps.kept(&record.spec, None));
    let container = engine.create(&config).await?;
    super::units::write_app_unit(services, &name).await?;
    lock(runtime).container_id = Some(container);

    say(op, "starting");
    start_and_check(services, name.as_str(), cancel).await
}
