//! Moving every app across a host OS replacement (TPCM, "SONiC image
//! upgrade"): export saves each app's container as a new image (so changes
//! inside the container's filesystem survive), its settings and its private
//! directory into the migration store (`<root>/migration`, which an
//! appliance keeps on storage shared across OS images). After the OS — and
//! so the engine — is replaced, the daemon finds the pending migration at
//! start and restores every app; `berth migrate import` does it on demand.
//! One app failing does not stop the others; results are kept per app.

use crate::archive::ArchiveInput;
use crate::error::OpError;
use crate::files::atomic_write;
use crate::registry::{lock, now_secs, Inner};
use berth_api::{MigrationResult, MigrationStatus};
use berth_core::engine::{EngineError, ProgressSink};
use berth_core::spec::{AppSpec, LABEL_INSTANCE};
use berth_core::status::DesiredState;
use bytes::Bytes;
use flate2::write::GzEncoder;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    exported_at: i64,
    /// `pending`, `imported` or `partial`.
    state: String,
    apps: Vec<MigratedApp>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MigratedApp {
    spec: AppSpec,
    desired: DesiredState,
    result: String,
}

pub fn directory(inner: &Inner) -> PathBuf {
    inner.config.root.join("migration")
}

fn read_manifest(dir: &Path) -> Result<Option<Manifest>, OpError> {
    let path = dir.join(MANIFEST);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| OpError::InvalidValue {
            what: "migration manifest",
            reason: format!("{}: {e}", path.display()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(OpError::io(&path)(e)),
    }
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), OpError> {
    let json = serde_json::to_vec_pretty(manifest).unwrap_or_default();
    atomic_write(&dir.join(MANIFEST), &json)
}

pub fn status(inner: &Inner) -> Result<MigrationStatus, OpError> {
    let dir = directory(inner);
    let manifest = read_manifest(&dir)?;
    Ok(MigrationStatus {
        state: manifest.as_ref().map_or_else(|| "none".to_owned(), |m| m.state.clone()),
        exported_at: manifest.as_ref().map(|m| m.exported_at),
        directory: dir.display().to_string(),
        apps: manifest
            .map(|m| {
                m.apps
                    .into_iter()
                    .map(|a| MigrationResult { name: a.spec.name.to_string(), result: a.result })
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Saves every app into the migration store. The manifest is written last:
/// an export cut short leaves no pending migration behind.
pub async fn export(inner: &Arc<Inner>) -> Result<MigrationStatus, OpError> {
    let dir = directory(inner);
    std::fs::create_dir_all(&dir).map_err(OpError::io(&dir))?;
    let exported_at = now_secs();
    let apps: Vec<(AppSpec, DesiredState)> = {
        let registry = inner.apps.read().unwrap_or_else(|e| e.into_inner());
        registry.values().map(|h| lock(&h.runtime)).map(|r| (r.spec.clone(), r.desired)).collect()
    };
    let mut migrated = Vec::new();
    for (spec, desired) in apps {
        let result = match export_app(inner, &dir, &spec, exported_at).await {
            Ok(()) => "exported".to_owned(),
            Err(e) => {
                tracing::warn!(app = %spec.name, error = %e, "export failed");
                format!("failed: {e}")
            }
        };
        migrated.push(MigratedApp { spec, desired, result });
    }
    write_manifest(&dir, &Manifest { exported_at, state: "pending".into(), apps: migrated })?;
    status(inner)
}

async fn export_app(inner: &Inner, dir: &Path, spec: &AppSpec, exported_at: i64) -> Result<(), OpError> {
    let engine = inner.engine.as_ref();
    let name = spec.name.to_string();
    let app_dir = dir.join(&name);
    std::fs::create_dir_all(&app_dir).map_err(OpError::io(&app_dir))?;
    let reference = format!("berth-migrated/{name}:{exported_at}");
    let committed = engine.commit_container(&name, &reference).await?;
    let saved = write_gzip(&app_dir.join("image.tar.gz"), engine.save_image(&committed)).await;
    // The committed image is only a vehicle: the archive holds it now.
    let _ = engine.remove_image(&reference).await;
    saved?;
    let (data, private_dir) = (app_dir.join("data.tar.gz"), inner.private_dir(&name));
    tokio::task::spawn_blocking(move || archive_directory(&private_dir, &data))
        .await
        .map_err(|_| OpError::ShuttingDown)?
}

/// Streams `bytes` gzip-compressed into `path` (temp file, fsync, rename).
async fn write_gzip(
    path: &Path,
    mut bytes: futures::stream::BoxStream<'static, Result<Bytes, EngineError>>,
) -> Result<(), OpError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(8);
    let temp = path.with_extension("partial");
    let writer = {
        let (temp, path) = (temp.clone(), path.to_owned());
        tokio::task::spawn_blocking(move || -> Result<(), OpError> {
            let file = std::fs::File::create(&temp).map_err(OpError::io(&temp))?;
            let mut gzip = GzEncoder::new(file, flate2::Compression::fast());
            for chunk in rx {
                gzip.write_all(&chunk).map_err(OpError::io(&temp))?;
            }
            let file = gzip.finish().map_err(OpError::io(&temp))?;
            file.sync_all().map_err(OpError::io(&temp))?;
            std::fs::rename(&temp, &path).map_err(OpError::io(&path))
        })
    };
    let mut failure = None;
    while let Some(chunk) = bytes.next().await {
        match chunk {
            Ok(chunk) => {
                if tx.send(chunk).is_err() {
                    break;
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let written = writer.await.map_err(|_| OpError::ShuttingDown)?;
    if let Some(e) = failure {
        let _ = std::fs::remove_file(&temp);
        return Err(e.into());
    }
    written
}

fn archive_directory(dir: &Path, target: &Path) -> Result<(), OpError> {
    let temp = target.with_extension("partial");
    let file = std::fs::File::create(&temp).map_err(OpError::io(&temp))?;
    let mut builder = tar::Builder::new(GzEncoder::new(file, flate2::Compression::fast()));
    builder.follow_symlinks(false);
    if dir.is_dir() {
        builder.append_dir_all(".", dir).map_err(OpError::io(dir))?;
    }
    let file = builder.into_inner().and_then(|gz| gz.finish()).map_err(OpError::io(&temp))?;
    file.sync_all().map_err(OpError::io(&temp))?;
    std::fs::rename(&temp, target).map_err(OpError::io(target))
}

/// Restores every app of a pending migration. Idempotent: an app already
/// running from its migrated image is left alone.
pub async fn import(inner: &Arc<Inner>) -> Result<MigrationStatus, OpError> {
    let dir = directory(inner);
    let Some(mut manifest) = read_manifest(&dir)? else {
        return status(inner);
    };
    let mut all_ok = true;
    for app in &mut manifest.apps {
        if app.result.starts_with("failed") && !dir.join(app.spec.name.as_str()).join("image.tar.gz").exists() {
            all_ok = false;
            continue;
        }
        app.result = match import_app(inner, &dir, app).await {
            Ok(result) => result,
            Err(e) => {
                all_ok = false;
                tracing::warn!(app = %app.spec.name, error = %e, "import failed");
                format!("failed: {e}")
            }
        };
    }
    manifest.state = if all_ok { "imported" } else { "partial" }.into();
    write_manifest(&dir, &manifest)?;
    status(inner)
}

/// At start-up: a pending migration is imported before the apps reconcile.
pub async fn import_pending(inner: &Arc<Inner>) {
    match read_manifest(&directory(inner)) {
        Ok(Some(manifest)) if manifest.state == "pending" => {
            tracing::info!(apps = manifest.apps.len(), "importing a pending migration");
            if let Err(e) = import(inner).await {
                tracing::error!(error = %e, "the pending migration could not be imported");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "cannot read the migration store"),
    }
}

async fn import_app(inner: &Arc<Inner>, dir: &Path, app: &MigratedApp) -> Result<String, OpError> {
    let engine = inner.engine.as_ref();
    let name = app.spec.name.to_string();
    let app_dir = dir.join(&name);
    let input = ArchiveInput::file(&app_dir.join("image.tar.gz"))?;
    let preexisting = engine.image_ids().await?;
    let quiet: ProgressSink = Arc::new(|_| {});
    let image_id = crate::intake::load(engine, input, None, &preexisting, quiet).await?.image_id;

    let existing = engine.inspect_container(&name).await?;
    let ours = existing.as_ref().is_some_and(|c| c.label(LABEL_INSTANCE) == Some(inner.instance.as_str()));
    if ours && existing.as_ref().is_some_and(|c| c.image_id == image_id && c.state.is_running()) {
        return Ok("already present".into());
    }
    if existing.is_some() && !ours {
        return Err(OpError::ForeignContainer { name });
    }

    let private_dir = inner.private_dir(&name);
    let empty = std::fs::read_dir(&private_dir).map_or(true, |mut d| d.next().is_none());
    if empty {
        let (data, target) = (app_dir.join("data.tar.gz"), private_dir.clone());
        tokio::task::spawn_blocking(move || unpack(&data, &target)).await.map_err(|_| OpError::ShuttingDown)??;
    }

    let mut spec = app.spec.clone();
    spec.image_id = image_id;
    let (stored, desired) = (spec.clone(), app.desired);
    inner.db(move |s| s.put_migrated(&stored, desired)).await?;
    if ours {
        engine.remove_container(&name).await?;
    }
    // A daemon already running (import on demand) hands the app to its task.
    if let Some(runtime) = inner.runtime(&name) {
        lock(&runtime).spec = spec;
        if let Ok(commands) = inner.commands(&name) {
            let _ = commands.send(crate::actor::Command::Reconcile).await;
        }
    } else if inner.recovered.load(std::sync::atomic::Ordering::Acquire) {
        let runtime = crate::registry::Runtime::new(spec, desired, berth_core::status::AppState::Starting, now_secs());
        let commands = crate::actor::spawn(inner.clone(), runtime.clone(), true);
        inner.insert(&name, crate::registry::AppHandle { runtime, commands: Some(commands) });
    }
    Ok("imported".into())
}

fn unpack(archive: &Path, target: &Path) -> Result<(), OpError> {
    std::fs::create_dir_all(target).map_err(OpError::io(target))?;
    let file = std::fs::File::open(archive).map_err(OpError::io(archive))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    tar.set_preserve_permissions(true);
    tar.set_preserve_ownerships(true);
    // `unpack` refuses members that would land outside `target`.
    tar.unpack(target).map_err(OpError::io(archive))
}
