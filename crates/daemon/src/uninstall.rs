//! The uninstall operation: container, private directory, image (when no
//! other app uses it), then the app's row. It rolls forward: once journaled,
//! it is finished even across a crash, and every step may be repeated.

use crate::error::OpError;
use crate::registry::Inner;
use berth_api::Uninstalled;
use berth_core::engine::EngineError;
use berth_core::journal::{OperationKind, OperationState, UninstallRecord, UninstallStep};
use berth_core::spec::{AppSpec, LABEL_INSTANCE};
use berth_store::StoreError;
use std::path::Path;

pub async fn uninstall(
    inner: &Inner,
    spec: &AppSpec,
    previous: Option<&AppSpec>,
    keep_data: bool,
) -> Result<Uninstalled, OpError> {
    let name = spec.name.to_string();
    let record = UninstallRecord {
        step: UninstallStep::Accepted,
        app: name.clone(),
        image_id: spec.image_id.clone(),
        previous_image_id: previous.map(|p| p.image_id.clone()).filter(|id| *id != spec.image_id),
        private_dir: inner.private_dir(&name).to_string_lossy().into_owned(),
        keep_data,
    };
    let begun = {
        let (name, record) = (name.clone(), record.clone());
        inner.db(move |s| s.begin_uninstall(&name, &record)).await
    };
    match begun {
        Ok(operation) => finish(inner, operation, record).await,
        // An earlier uninstall stopped half-way (the engine went away): this
        // one finishes it, with the options it was started with.
        Err(OpError::Store(StoreError::Busy { kind, .. })) if kind == OperationKind::Uninstall.as_str() => {
            let earlier = inner.db(move |s| s.running_operation_of(&name)).await?;
            let earlier = earlier.ok_or_else(|| OpError::NotFound { name: spec.name.to_string() })?;
            let record: UninstallRecord = earlier.record()?;
            finish(inner, earlier.id, record).await
        }
        Err(e) => Err(e),
    }
}

/// Runs the remaining steps of an uninstall (also from recovery).
pub async fn finish(inner: &Inner, operation: i64, mut record: UninstallRecord) -> Result<Uninstalled, OpError> {
    let engine = inner.engine.as_ref();
    let name = record.app.clone();
    if let Some(c) = engine.inspect_container(&name).await? {
        // Never touch a container that is not this instance's.
        if c.label(LABEL_INSTANCE) == Some(inner.instance.as_str()) {
            engine.stop_container(&name, inner.config.settings.stop_timeout_secs).await?;
            engine.remove_container(&name).await?;
        }
    }
    crate::units::remove_app_unit(inner, &name)?;
    step(inner, operation, &mut record, UninstallStep::ContainerRemoved).await?;

    if !record.keep_data {
        remove_dir(Path::new(&record.private_dir)).await?;
        remove_dir(&inner.config.root.join("snapshots").join(&name)).await?;
    }
    step(inner, operation, &mut record, UninstallStep::DirectoryRemoved).await?;

    let removed_image = remove_image_if_unused(inner, &record.image_id, &name).await?;
    if let Some(previous) = record.previous_image_id.clone() {
        remove_image_if_unused(inner, &previous, &name).await?;
    }
    step(inner, operation, &mut record, UninstallStep::ImageRemoved).await?;

    crate::crash::point("uninstall:before_done");
    inner.db(move |s| s.finish_operation(operation, OperationState::Done, None, Some(&name))).await?;
    Ok(Uninstalled { name: record.app, kept_data: record.keep_data, removed_image })
}

async fn step(
    inner: &Inner,
    operation: i64,
    record: &mut UninstallRecord,
    reached: UninstallStep,
) -> Result<(), OpError> {
    // The step's action is done and not yet recorded.
    crate::crash::point(&format!("uninstall:before_{}", crate::install::step_name(reached)));
    tracing::info!(app = %record.app, operation, step = %crate::install::step_name(reached), "uninstall");
    record.step = reached;
    let snapshot = record.clone();
    inner.db(move |s| s.record_step(operation, &snapshot)).await
}

async fn remove_dir(dir: &Path) -> Result<(), OpError> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(OpError::io(&dir)(e)),
        _ => Ok(()),
    })
    .await
    .map_err(|_| OpError::ShuttingDown)?
}

/// Removes the app's image unless another app uses it, or the engine refuses
/// because a foreign container or another tag still holds it.
async fn remove_image_if_unused(inner: &Inner, image_id: &str, app: &str) -> Result<bool, OpError> {
    if image_id.is_empty() {
        return Ok(false);
    }
    let in_use = {
        let (image_id, app) = (image_id.to_owned(), app.to_owned());
        inner.db(move |s| s.image_in_use(&image_id, &app)).await?
    };
    if in_use {
        return Ok(false);
    }
    match inner.engine.remove_image(image_id).await {
        Ok(()) => Ok(true),
        Err(EngineError::Conflict { what }) => {
            tracing::info!(image = image_id, %what, "image kept: still in use outside berth");
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}
