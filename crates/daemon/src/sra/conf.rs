//! The SRA configuration service (seed 000, "Managing SRA Configuration"):
//! each image's /srm/sra/conf lives on the host, apart from any container,
//! and is bound into every execution container of the image.
//!
//! Layout under `<data root>/.berth-sra/<image id hex>/`:
//! - `factory/`: the image's own /srm/sra/conf, taken out once (for reset);
//! - `gen-<n>/`: configuration generations, owned by the srm user 660:660;
//! - `current`: the number of the current generation, replaced atomically.
//!
//! A generation is never changed by berth once current: an upload, copy or
//! reset writes a new one completely (fsynced) and then moves `current`. An
//! execution container binds one generation (label `berth.sra.conf`), so a
//! command sees the old files or the new ones, never a mix; the next command
//! after a change gets a container bound to the new generation. Generations
//! no container binds any more are removed.

use super::{sra_image, SraError, EID_LABEL};
use crate::error::OpError;
use crate::registry::Inner;
use berth_api::SraConfigState;
use berth_sra_conf::{Limits, Tree, SRM_OWNER};
use bytes::Bytes;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub const CONF_IN_CONTAINER: &str = "/srm/sra/conf";
/// The configuration generation an execution container binds.
pub const GENERATION_LABEL: &str = "berth.sra.conf";
const CURRENT_FILE: &str = "current";
const FACTORY_DIR: &str = "factory";
const GENERATION_PREFIX: &str = "gen-";
const STAGING_PREFIX: &str = ".staging-";

fn root_of(inner: &Inner, image_id: &str) -> PathBuf {
    let hex = image_id.strip_prefix("sha256:").unwrap_or(image_id);
    inner.config.data_root.join(".berth-sra").join(hex)
}

fn limits(inner: &Inner) -> Limits {
    let sra = &inner.config.settings.sra;
    Limits { max_bytes: sra.config_max_bytes, max_entries: sra.config_max_entries }
}

fn generation_dir(root: &Path, generation: u64) -> PathBuf {
    root.join(format!("{GENERATION_PREFIX}{generation}"))
}

/// The current generation's number.
pub fn current_generation(inner: &Inner, image_id: &str) -> Result<u64, OpError> {
    let path = root_of(inner, image_id).join(CURRENT_FILE);
    let text = std::fs::read_to_string(&path).map_err(OpError::io(&path))?;
    text.trim().parse().map_err(|_| OpError::Io {
        path,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{text:?} is not a generation number")),
    })
}

/// The current generation and its directory.
pub fn current(inner: &Inner, image_id: &str) -> Result<(u64, PathBuf), OpError> {
    let generation = current_generation(inner, image_id)?;
    Ok((generation, generation_dir(&root_of(inner, image_id), generation)))
}

/// Makes generation 1 from the image's own /srm/sra/conf, once.
pub async fn ensure(inner: &Inner, image_id: &str) -> Result<(), OpError> {
    let root = root_of(inner, image_id);
    if root.join(CURRENT_FILE).is_file() {
        return Ok(());
    }
    let config = inner.sra.config_lock(image_id);
    let _config = config.write().await;
    if root.join(CURRENT_FILE).is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(&root).map_err(OpError::io(&root))?;
    let factory = root.join(FACTORY_DIR);
    if !factory.is_dir() {
        let tree = match inner.engine.image_files(image_id, CONF_IN_CONTAINER).await? {
            Some(archive) => {
                let limits = limits(inner);
                blocking(move || berth_sra_conf::read_image_tree(archive.as_slice(), "conf", &limits)).await?
            }
            None => Tree::default(),
        };
        let staged = staging(&root);
        let target = staged.clone();
        blocking(move || tree.write_to(&target, None)).await?;
        std::fs::rename(&staged, &factory).map_err(OpError::io(&factory))?;
    }
    install(&root, 0, Source::Copy(factory)).await?;
    Ok(())
}

enum Source {
    Tree(Tree),
    Copy(PathBuf),
}

/// Writes generation `after + 1` completely, then makes it current.
async fn install(root: &Path, after: u64, source: Source) -> Result<u64, OpError> {
    let generation = after + 1;
    let staged = staging(root);
    let target = staged.clone();
    blocking(move || match source {
        Source::Tree(tree) => tree.write_to(&target, Some(SRM_OWNER)),
        Source::Copy(from) => berth_sra_conf::copy_tree(&from, &target, Some(SRM_OWNER)),
    })
    .await?;
    let dir = generation_dir(root, generation);
    if dir.exists() {
        // Left by a crash between writing it and moving `current`.
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::rename(&staged, &dir).map_err(OpError::io(&dir))?;
    crate::files::atomic_write(&root.join(CURRENT_FILE), format!("{generation}\n").as_bytes())?;
    Ok(generation)
}

fn staging(root: &Path) -> PathBuf {
    root.join(format!("{STAGING_PREFIX}{}", super::hex(&rand::random::<[u8; 8]>())))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, berth_sra_conf::ConfError> + Send + 'static,
) -> Result<T, OpError> {
    let result = tokio::task::spawn_blocking(work).await.map_err(|_| OpError::ShuttingDown)?;
    result.map_err(|e| SraError::from(e).into())
}

/// Digest of the current configuration.
pub async fn digest(inner: &Inner, image_id: &str) -> Result<String, OpError> {
    let config = inner.sra.config_lock(image_id);
    let _config = config.read().await;
    let (_, dir) = current(inner, image_id)?;
    blocking(move || berth_sra_conf::digest(&dir)).await
}

async fn state(inner: &Inner, image_id: &str) -> Result<SraConfigState, OpError> {
    let (_, dir) = current(inner, image_id)?;
    let summary = blocking(move || berth_sra_conf::summarize(&dir)).await?;
    Ok(SraConfigState { image_id: image_id.to_owned(), digest: summary.digest, entries: summary.entries })
}

/// The download archive: the configuration plus its version file.
pub async fn download(inner: &Inner, reference: &str) -> Result<Vec<u8>, OpError> {
    let image = sra_image(inner, reference, "image").await?;
    ensure(inner, &image.id).await?;
    let config = inner.sra.config_lock(&image.id);
    let _config = config.read().await;
    let (_, dir) = current(inner, &image.id)?;
    blocking(move || {
        let mut archive = Vec::new();
        berth_sra_conf::pack(&dir, &mut archive)?;
        Ok(archive)
    })
    .await
}

/// Replaces the configuration with the upload if it was made from the
/// current one; of concurrent uploads made from one download, one wins.
pub async fn upload(inner: &Inner, reference: &str, archive: Bytes) -> Result<SraConfigState, OpError> {
    let image = sra_image(inner, reference, "image").await?;
    // Every check of the untrusted archive happens before anything is written.
    let limits = limits(inner);
    let upload = blocking(move || berth_sra_conf::read_upload(archive.as_ref(), &limits)).await?;
    ensure(inner, &image.id).await?;
    let root = root_of(inner, &image.id);
    {
        let config = inner.sra.config_lock(&image.id);
        let _config = config.write().await;
        let (generation, dir) = current(inner, &image.id)?;
        let now = blocking(move || berth_sra_conf::digest(&dir)).await?;
        if now != upload.base_digest {
            return Err(SraError::StaleConfiguration {
                image: reference.to_owned(),
                uploaded: upload.base_digest,
                current: now,
            }
            .into());
        }
        install(&root, generation, Source::Tree(upload.tree)).await?;
    }
    collect_garbage(inner, &image.id).await;
    state(inner, &image.id).await
}

/// Copies the current configuration of `from` over that of `to`.
pub async fn copy(inner: &Inner, from: &str, to: &str) -> Result<SraConfigState, OpError> {
    let source = sra_image(inner, from, "from").await?;
    let target = sra_image(inner, to, "to").await?;
    ensure(inner, &source.id).await?;
    ensure(inner, &target.id).await?;
    if source.id == target.id {
        return state(inner, &target.id).await;
    }
    // Staged under the source's lock, installed under the target's: never both held.
    let root = root_of(inner, &target.id);
    let staged = staging(&root);
    {
        let config = inner.sra.config_lock(&source.id);
        let _config = config.read().await;
        let (_, dir) = current(inner, &source.id)?;
        let target_dir = staged.clone();
        blocking(move || berth_sra_conf::copy_tree(&dir, &target_dir, None)).await?;
    }
    let installed = replace(inner, &target.id, Source::Copy(staged.clone())).await;
    let _ = std::fs::remove_dir_all(&staged);
    installed?;
    state(inner, &target.id).await
}

/// Back to the configuration shipped in the image.
pub async fn reset(inner: &Inner, reference: &str) -> Result<SraConfigState, OpError> {
    let image = sra_image(inner, reference, "image").await?;
    ensure(inner, &image.id).await?;
    let factory = root_of(inner, &image.id).join(FACTORY_DIR);
    replace(inner, &image.id, Source::Copy(factory)).await?;
    state(inner, &image.id).await
}

async fn replace(inner: &Inner, image_id: &str, source: Source) -> Result<(), OpError> {
    {
        let config = inner.sra.config_lock(image_id);
        let _config = config.write().await;
        let generation = current_generation(inner, image_id)?;
        install(&root_of(inner, image_id), generation, source).await?;
    }
    collect_garbage(inner, image_id).await;
    Ok(())
}

/// Removes the generations that are not current and that no execution
/// container binds, and staging left by a crash. Best effort.
pub async fn collect_garbage(inner: &Inner, image_id: &str) {
    let bound: BTreeSet<String> = match inner.engine.containers_labelled(EID_LABEL, "").await {
        Ok(containers) => containers
            .iter()
            .filter(|c| c.image_id == image_id)
            .filter_map(|c| c.label(GENERATION_LABEL).map(str::to_owned))
            .collect(),
        Err(_) => return,
    };
    let config = inner.sra.config_lock(image_id);
    let _config = config.write().await;
    let Ok(current) = current_generation(inner, image_id) else { return };
    let root = root_of(inner, image_id);
    let Ok(entries) = std::fs::read_dir(&root) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let unused = match name.strip_prefix(GENERATION_PREFIX) {
            Some(number) => number != current.to_string() && !bound.contains(number),
            None => false,
        };
        if unused {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Removes the image's configuration (the image is gone).
pub async fn forget(inner: &Inner, image_id: &str) {
    let config = inner.sra.config_lock(image_id);
    let _config = config.write().await;
    let _ = std::fs::remove_dir_all(root_of(inner, image_id));
    inner.sra.forget_config_lock(image_id);
}

/// Staging directories a crash left behind (at daemon start).
pub fn remove_leftover_staging(inner: &Inner) {
    let Ok(images) = std::fs::read_dir(inner.config.data_root.join(".berth-sra")) else { return };
    for image in images.flatten() {
        let Ok(entries) = std::fs::read_dir(image.path()) else { continue };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(STAGING_PREFIX) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}
