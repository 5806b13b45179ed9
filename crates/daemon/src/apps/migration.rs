//! Moving every app across a host OS replacement (TPCM, "SONiC image
//! upgrade"). Export saves each app's container as a new image (so changes
//! inside the container's filesystem survive), its settings and its private
//! directory into the migration store (`<root>/migration`, which an
//! appliance keeps on storage shared across OS images). It is one journaled
//! operation: everything is written into a staging directory inside the
//! store, synced, and moved into place by the commit's forward work, the
//! manifest last — so an export cut short leaves the previous export intact.
//!
//! After the OS — and so the engine — is replaced, the daemon finds the
//! pending migration at start and restores every app; `berth migrate import`
//! does it on demand. Each app is imported by its own task (one journaled
//! operation per app); one failing does not stop the others.

use super::error::AppError;
use super::registry::SharedRuntime;
use super::Apps;
use crate::fs::{blocking, FsError};
use crate::intake::{self, FetchRequest, FetchSource, ForOperation};
use crate::journal::{Op, Settled};
use crate::services::{lock, now_secs};
use async_trait::async_trait;
use berth_api::routes::migration::MigrationManager;
use berth_api::{ApiError, MigrationOutcome, MigrationResult, MigrationState, MigrationStatus};
use berth_core::engine::{EngineError, ProgressSink};
use berth_core::journal::{Effect, ImageHandle, OperationKind, Subject};
use berth_core::spec::AppSpec;
use berth_core::status::DesiredState;
use berth_store::AppChange;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

const MANIFEST: &str = "manifest.json";
const IMAGE_ARCHIVE: &str = "image.tar.gz";
const DATA_ARCHIVE: &str = "data.tar.gz";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    exported_at: i64,
    state: MigrationState,
    apps: Vec<MigratedApp>,
}

/// One app in the migration store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigratedApp {
    pub spec: AppSpec,
    pub desired: DesiredState,
    pub outcome: MigrationOutcome,
    #[serde(default)]
    pub reason: Option<String>,
    /// The store it is read from (set when it is imported).
    #[serde(skip)]
    pub dir: PathBuf,
}

pub fn directory(apps: &Apps) -> PathBuf {
    apps.services.config.root.join("migration")
}

async fn read_manifest(dir: &Path) -> Result<Option<Manifest>, AppError> {
    let path = dir.join(MANIFEST);
    match tokio::fs::read(&path).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AppError::CorruptManifest { path: path.display().to_string(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FsError::new(path, e).into()),
    }
}

async fn write_manifest(path: PathBuf, manifest: &Manifest) -> Result<(), AppError> {
    let json = serde_json::to_vec_pretty(manifest).unwrap_or_default();
    blocking("writing the migration manifest", move || crate::fs::atomic_write(&path, &json).map_err(AppError::from))
        .await
}

fn status_of(dir: &Path, manifest: Option<Manifest>) -> MigrationStatus {
    MigrationStatus {
        state: manifest.as_ref().map_or(MigrationState::None, |m| m.state),
        exported_at: manifest.as_ref().map(|m| m.exported_at),
        directory: dir.display().to_string(),
        apps: manifest
            .map(|m| {
                m.apps
                    .into_iter()
                    .map(|a| MigrationResult { name: a.spec.name.to_string(), outcome: a.outcome, reason: a.reason })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Saves every app into the migration store.
async fn export(apps: &Apps) -> Result<MigrationStatus, AppError> {
    let services = &apps.services;
    let journal = &services.journal;
    let dir = directory(apps);
    let staging = dir.join(format!(".export-{}", hex::encode(rand::random::<[u8; 6]>())));
    let exported_at = now_secs();
    let listed: Vec<(AppSpec, DesiredState)> =
        apps.registry.handles().iter().map(|h| lock(&h.runtime)).map(|r| (r.spec.clone(), r.desired)).collect();
    let mut entry = journal
        .begin(
            OperationKind::MigrationExport,
            &Subject::Migration,
            &serde_json::json!({ "staging": staging }),
            vec![Effect::RemoveTree { path: staging.clone() }],
            AppChange::None,
        )
        .await?;
    let result = async {
        journal.step(&mut entry, "exporting", &serde_json::json!({ "staging": staging }), vec![]).await?;
        let made = staging.clone();
        blocking("creating the export's staging directory", move || {
            crate::fs::create_dir(&made, 0o700).map_err(AppError::from)
        })
        .await?;
        let mut migrated = Vec::new();
        for (spec, desired) in listed {
            let (outcome, reason) = match export_app(apps, &mut entry, &staging, &spec, exported_at).await {
                Ok(()) => (MigrationOutcome::Exported, None),
                Err(e) if e.is_halted() => return Err(e),
                Err(e) => {
                    tracing::warn!(app = %spec.name, error = %e, "export failed");
                    (MigrationOutcome::Failed, Some(e.to_string()))
                }
            };
            migrated.push(MigratedApp { spec, desired, outcome, reason, dir: PathBuf::new() });
        }
        journal.step(&mut entry, "manifest_written", &serde_json::json!({ "staging": staging }), vec![]).await?;
        let manifest = Manifest { exported_at, state: MigrationState::Pending, apps: migrated };
        write_manifest(staging.join(MANIFEST), &manifest).await?;
        Ok::<_, AppError>(manifest)
    }
    .await;
    let manifest = match result {
        Ok(manifest) => manifest,
        Err(e) if e.is_halted() => return Err(e),
        Err(e) => {
            journal.roll_back(entry, &e.to_string()).await;
            return Err(e);
        }
    };
    // Into place: each app's files, then the manifest (which makes it pending), then the staging goes.
    let mut forward: Vec<Effect> = manifest
        .apps
        .iter()
        .filter(|a| a.outcome == MigrationOutcome::Exported)
        .map(|a| Effect::MoveTree { from: staging.join(a.spec.name.as_str()), to: dir.join(a.spec.name.as_str()) })
        .collect();
    forward.push(Effect::MoveTree { from: staging.join(MANIFEST), to: dir.join(MANIFEST) });
    forward.push(Effect::RemoveTree { path: staging.clone() });
    match journal.commit(&entry, &serde_json::json!({ "staging": staging }), forward, AppChange::None).await? {
        Settled::Halted(halted) => return Err(crate::journal::JournalError::from(halted).into()),
        Settled::Failed(e) => return Err(e.into()),
        _ => {}
    }
    Ok(status_of(&dir, Some(manifest)))
}

async fn export_app(
    apps: &Apps,
    entry: &mut Op,
    staging: &Path,
    spec: &AppSpec,
    exported_at: i64,
) -> Result<(), AppError> {
    let services = &apps.services;
    let engine = services.engine.as_ref();
    let name = spec.name.to_string();
    let app_dir = staging.join(&name);
    let made = app_dir.clone();
    blocking("creating an export directory", move || crate::fs::create_dir(&made, 0o700).map_err(AppError::from))
        .await?;
    // The committed image is only a vehicle: the archive holds it. Until it
    // is removed, the undo log knows it.
    let reference = format!("berth-migrated/{name}:{exported_at}");
    let vehicle = ImageHandle::Reference { reference: reference.clone(), before: None };
    services.journal.add_undo(entry, Effect::ReleaseImage { image: vehicle, app: None }).await?;
    let committed = engine.commit_container(&name, &reference).await?;
    let saved = write_gzip(&app_dir.join(IMAGE_ARCHIVE), engine.save_image(&committed)).await;
    let _ = engine.remove_image(&reference).await;
    saved?;
    let (data, private_dir) = (app_dir.join(DATA_ARCHIVE), apps.private_dir(&name));
    blocking("archiving the private directory", move || archive_directory(&private_dir, &data)).await
}

/// Streams `bytes` gzip-compressed into `path` (temp file, fsync, rename,
/// fsync the directory), without a thread of its own.
async fn write_gzip(
    path: &Path,
    mut bytes: futures::stream::BoxStream<'static, Result<bytes::Bytes, EngineError>>,
) -> Result<(), AppError> {
    let temp = crate::fs::temp_name(path);
    let io = |e: std::io::Error| AppError::from(FsError::new(&temp, e));
    let file = tokio::fs::File::create(&temp).await.map_err(io)?;
    let mut gzip = async_compression::tokio::write::GzipEncoder::with_quality(file, async_compression::Level::Fastest);
    let written = async {
        while let Some(chunk) = bytes.next().await {
            gzip.write_all(&chunk?).await.map_err(io)?;
        }
        gzip.shutdown().await.map_err(io)?;
        Ok::<_, AppError>(())
    }
    .await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(e);
    }
    let file = gzip.into_inner();
    let (temp_path, target) = (temp.clone(), path.to_owned());
    let file = file.into_std().await;
    blocking("syncing an export archive", move || {
        file.sync_all().map_err(|e| FsError::new(&temp_path, e))?;
        crate::fs::rename_durably(&temp_path, &target)?;
        Ok::<_, AppError>(())
    })
    .await
}

fn archive_directory(dir: &Path, target: &Path) -> Result<(), AppError> {
    use flate2::write::GzEncoder;
    let temp = crate::fs::temp_name(target);
    let io = |e: std::io::Error| AppError::from(FsError::new(&temp, e));
    let file = std::fs::File::create(&temp).map_err(io)?;
    let mut builder = tar::Builder::new(GzEncoder::new(file, flate2::Compression::fast()));
    builder.follow_symlinks(false);
    if dir.is_dir() {
        builder.append_dir_all(".", dir).map_err(|e| FsError::new(dir, e))?;
    }
    let file = builder.into_inner().and_then(|gz| gz.finish()).map_err(io)?;
    file.sync_all().map_err(io)?;
    crate::fs::rename_durably(&temp, target)?;
    Ok(())
}

/// Restores every app of a pending migration, each by its own task.
/// Idempotent: an app already running from its migrated image is left alone.
pub async fn import(apps: &Arc<Apps>) -> Result<MigrationStatus, AppError> {
    let dir = directory(apps);
    let Some(mut manifest) = read_manifest(&dir).await? else {
        return Ok(status_of(&dir, None));
    };
    let mut all_ok = true;
    for app in &mut manifest.apps {
        let name = app.spec.name.to_string();
        let exported = tokio::fs::try_exists(dir.join(&name).join(IMAGE_ARCHIVE)).await.unwrap_or(false);
        if !exported {
            all_ok = false;
            if app.outcome != MigrationOutcome::Failed {
                app.outcome = MigrationOutcome::Failed;
                app.reason = Some(format!("{} is missing from the migration store", dir.join(&name).display()));
            }
            continue;
        }
        app.dir = dir.join(&name);
        let (outcome, reason) = match apps.import_through_task(app).await {
            Ok(outcome) => (outcome, None),
            Err(e) => {
                all_ok = false;
                tracing::warn!(app = %name, error = %e, "import failed");
                (MigrationOutcome::Failed, Some(e.to_string()))
            }
        };
        app.outcome = outcome;
        app.reason = reason;
    }
    manifest.state = if all_ok { MigrationState::Imported } else { MigrationState::Partial };
    write_manifest(dir.join(MANIFEST), &manifest).await?;
    Ok(status_of(&dir, Some(manifest)))
}

/// In the app's task: load the image, restore the data when the private
/// directory is missing or empty, record the app with the migrated image.
pub async fn import_app(apps: &Apps, runtime: &SharedRuntime, app: &MigratedApp) -> Result<MigrationOutcome, AppError> {
    let services = &apps.services;
    let journal = &services.journal;
    let engine = services.engine.as_ref();
    let name = app.spec.name.clone();
    let subject = Subject::App(name.clone());
    let mut spec = app.spec.clone();
    let mut entry = journal.begin(OperationKind::MigrationImport, &subject, &spec, vec![], AppChange::None).await?;
    let cancel = services.shutdown.child_token();
    let steps = async {
        journal.step(&mut entry, "image_loaded", &spec, vec![]).await?;
        let quiet: ProgressSink = Arc::new(|_| {});
        let fetch = FetchRequest { source: FetchSource::OwnFile { path: app.dir.join(IMAGE_ARCHIVE) }, sha256: None };
        let for_op = ForOperation { journal, op: &mut entry, app: Some(&name), cancel: &cancel, progress: quiet };
        let image_id = intake::fetch(services, fetch, for_op).await?.image_id;
        let existing = engine.inspect(name.as_str()).await?;
        let ours = existing.as_ref().is_some_and(|c| services.ownership.owns(c));
        if ours && existing.as_ref().is_some_and(|c| c.image_id == image_id && c.state.is_running()) {
            return Ok((image_id, MigrationOutcome::AlreadyPresent));
        }
        if existing.is_some() && !ours {
            return Err(AppError::ForeignContainer { name: name.to_string() });
        }
        let private_dir = apps.private_dir(name.as_str());
        let probe = private_dir.clone();
        let (existed, empty) = blocking("looking at the private directory", move || {
            Ok::<_, AppError>((probe.exists(), std::fs::read_dir(&probe).map_or(true, |mut d| d.next().is_none())))
        })
        .await?;
        let undo = if existed { vec![] } else { vec![Effect::RemoveTree { path: private_dir.clone() }] };
        journal.step(&mut entry, "data_restored", &spec, undo).await?;
        if empty {
            let data = app.dir.join(DATA_ARCHIVE);
            blocking("restoring the private directory", move || unpack(&data, &private_dir)).await?;
        }
        // The container comes with reconciliation; the named volumes it
        // uses are berth's from now on (an uninstall removes them).
        super::preflight::make_volumes(services, journal, &mut entry, &spec).await?;
        Ok::<_, AppError>((image_id, MigrationOutcome::Imported))
    }
    .await;
    let (image_id, outcome) = match steps {
        Ok(done) => done,
        Err(e) if e.is_halted() => return Err(e),
        Err(e) => {
            journal.roll_back(entry, &e.to_string()).await;
            return Err(e);
        }
    };
    spec.image_id = image_id;
    let change = AppChange::Migrated { spec: spec.clone(), desired: app.desired };
    match journal.commit(&entry, &spec, vec![], change).await? {
        Settled::Halted(halted) => return Err(crate::journal::JournalError::from(halted).into()),
        Settled::Failed(e) => return Err(e.into()),
        _ => {}
    }
    let mut r = lock(runtime);
    r.spec = spec;
    r.desired = app.desired;
    Ok(outcome)
}

fn unpack(archive: &Path, target: &Path) -> Result<(), AppError> {
    std::fs::create_dir_all(target).map_err(|e| FsError::new(target, e))?;
    let file = std::fs::File::open(archive).map_err(|e| FsError::new(archive, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    tar.set_preserve_permissions(true);
    tar.set_preserve_ownerships(true);
    // `unpack` refuses members that would land outside `target`.
    tar.unpack(target).map_err(|e| FsError::new(archive, e))?;
    Ok(())
}

/// At start-up: a pending migration is imported before the apps reconcile.
pub async fn import_pending(apps: &Arc<Apps>) {
    match read_manifest(&directory(apps)).await {
        Ok(Some(manifest)) if manifest.state == MigrationState::Pending => {
            tracing::info!(apps = manifest.apps.len(), "importing a pending migration");
            if let Err(e) = import(apps).await {
                tracing::error!(error = %e, "the pending migration could not be imported");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "cannot read the migration store"),
    }
}

/// The migration capability behind `/v1/migrate`.
pub struct Migration {
    pub apps: Arc<Apps>,
}

#[async_trait]
impl MigrationManager for Migration {
    async fn export(&self) -> Result<MigrationStatus, ApiError> {
        self.apps.services.require_ready().map_err(AppError::from)?;
        Ok(export(&self.apps).await?)
    }

    async fn import(&self) -> Result<MigrationStatus, ApiError> {
        self.apps.services.require_ready().map_err(AppError::from)?;
        Ok(import(&self.apps).await?)
    }

    async fn status(&self) -> Result<MigrationStatus, ApiError> {
        let dir = directory(&self.apps);
        Ok(status_of(&dir, read_manifest(&dir).await?))
    }
}
