//! An instance's record kept with what berth made for it, so `berth doctor
//! --rebuild` can restore the instance after the database was lost: a
//! container keeps it in a file, `/opt/.berth-instance.json`, rewritten after
//! every committed transition (a label cannot change once the container
//! exists); a network or volume of the built-in types keeps it in the label
//! `berth.kept`, as it was when made (nothing changes it later but its
//! removal).

use crate::resources::runtime::{file_archive, file_text, PARAMS_DIR};
use berth_core::engine::Engine;
use berth_store::StoredInstance;
use bytes::Bytes;

pub const KEPT_FILE: &str = ".berth-instance.json";
/// A record larger than this is not read back.
const MAX_KEPT_BYTES: u64 = 1 << 20;

/// Writes the instance's record into its container. A failure is a warning:
/// the database holds the record; only a later rebuild would miss it.
pub async fn keep_in_container(engine: &dyn Engine, container: &str, instance: &StoredInstance) {
    let text = serde_json::to_string(instance).unwrap_or_default();
    let written = match file_archive(KEPT_FILE, &text) {
        Ok(archive) => engine.copy_to(container, PARAMS_DIR, Bytes::from(archive)).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = written {
        tracing::warn!(instance = %instance.id, container, error = %e, "cannot keep the instance's record in its container; a rebuild of the database would not find it");
    }
}

/// The record a container keeps, if it keeps one that can be read.
pub async fn read_from_container(engine: &dyn Engine, container: &str) -> Result<StoredInstance, String> {
    let path = format!("{PARAMS_DIR}/{KEPT_FILE}");
    let archive = engine
        .copy_from(container, &path, MAX_KEPT_BYTES)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the container has no {path}"))?;
    let text = file_text(&archive, &path)?;
    serde_json::from_str(&text).map_err(|e| format!("{path} is not an instance record: {e}"))
}
