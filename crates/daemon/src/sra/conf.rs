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
//! no container binds any more are removed. Locks are never held across an
//! engine call: what is read out of the image is read before locking.

use super::error::SraError;
use super::{Sra, EID_LABEL};
use crate::fs::blocking;
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

impl Sra {
    fn conf_root(&self, image_id: &str) -> PathBuf {
        let hex = image_id.strip_prefix("sha256:").unwrap_or(image_id);
        self.services.config.data_root.join(".berth-sra").join(hex)
    }

    fn limits(&self) -> Limits {
        let sra = &self.services.config.settings.sra;
        Limits { max_bytes: sra.config_max_bytes, max_entries: sra.config_max_entries }
    }

    /// The current generation's number and directory.
    pub async fn current(&self, image_id: &str) -> Result<(u64, PathBuf), SraError> {
        let root = self.conf_root(image_id);
        blocking("reading the SRA configuration state", move || current_in(&root)).await
    }

    /// Makes generation 1 from the image's own /srm/sra/conf, once.
    pub async fn ensure_config(&self, image_id: &str) -> Result<(), SraError> {
        let root = self.conf_root(image_id);
        if exists(root.join(CURRENT_FILE)).await {
            return Ok(());
        }
        // Read out of the image before taking the lock: an engine call.
        let limits = self.limits();
        let archive = crate::intake::scratch::image_files(
            &self.services,
            image_id,
            CONF_IN_CONTAINER,
            limits.max_bytes.saturating_mul(2),
        )
        .await?;
        let tree = match archive {
            Some(archive) => {
                blocking("reading the image's configuration", move || {
                    berth_sra_conf::read_image_tree(archive.as_slice(), "conf", &limits).map_err(SraError::from)
                })
                .await?
            }
            None => Tree::default(),
        };
        let config = self.state.config_lock(image_id);
        let _config = config.write().await;
        blocking("making the SRA configuration", move || {
            if root.join(CURRENT_FILE).is_file() {
                return Ok(());
            }
            std::fs::create_dir_all(&root).map_err(|e| crate::fs::FsError::new(&root, e))?;
            let factory = root.join(FACTORY_DIR);
            if !factory.is_dir() {
                let staged = staging(&root);
                tree.write_to(&staged, None)?;
                crate::fs::rename_durably(&staged, &factory)?;
            }
            install(&root, 0, Source::Copy(factory))?;
            Ok::<_, SraError>(())
        })
        .await
    }

    /// Digest of the current configuration.
    pub async fn config_digest(&self, image_id: &str) -> Result<String, SraError> {
        let config = self.state.config_lock(image_id);
        let _config = config.read().await;
        let (_, dir) = self.current(image_id).await?;
        blocking("digesting the SRA configuration", move || berth_sra_conf::digest(&dir).map_err(SraError::from)).await
    }

    async fn config_state(&self, image_id: &str, changed: bool) -> Result<SraConfigState, SraError> {
        let (_, dir) = self.current(image_id).await?;
        let summary = blocking("digesting the SRA configuration", move || {
            berth_sra_conf::summarize(&dir).map_err(SraError::from)
        })
        .await?;
        Ok(SraConfigState { image_id: image_id.to_owned(), digest: summary.digest, entries: summary.entries, changed })
    }

    /// The download archive: the configuration plus its version file.
    pub async fn config_download(&self, reference: &str) -> Result<Vec<u8>, SraError> {
        let image = self.sra_image(reference).await?;
        self.ensure_config(&image.id).await?;
        let config = self.state.config_lock(&image.id);
        let _config = config.read().await;
        let (_, dir) = self.current(&image.id).await?;
        blocking("packing the SRA configuration", move || {
            let mut archive = Vec::new();
            berth_sra_conf::pack(&dir, &mut archive)?;
            Ok::<_, SraError>(archive)
        })
        .await
    }

    /// Replaces the configuration with the upload if it was made from the
    /// current one; of concurrent uploads made from one download, one wins.
    pub async fn config_upload(&self, reference: &str, archive: Bytes) -> Result<SraConfigState, SraError> {
        let image = self.sra_image(reference).await?;
        // Every check of the untrusted archive happens before anything is written.
        let limits = self.limits();
        let upload = blocking("reading the uploaded configuration", move || {
            berth_sra_conf::read_upload(archive.as_ref(), &limits).map_err(SraError::from)
        })
        .await?;
        self.ensure_config(&image.id).await?;
        let root = self.conf_root(&image.id);
        {
            let config = self.state.config_lock(&image.id);
            let _config = config.write().await;
            let (image_name, base) = (reference.to_owned(), upload.base_digest.clone());
            blocking("installing the uploaded configuration", move || {
                let (generation, dir) = current_in(&root)?;
                let now = berth_sra_conf::digest(&dir)?;
                if now != base {
                    return Err(SraError::StaleConfiguration { image: image_name, uploaded: base, current: now });
                }
                install(&root, generation, Source::Tree(upload.tree))
            })
            .await?;
        }
        self.collect_garbage(&image.id).await;
        self.config_state(&image.id, true).await
    }

    /// Copies the current configuration of `from` over that of `to`.
    pub async fn config_copy(&self, from: &str, to: &str) -> Result<SraConfigState, SraError> {
        let source = self.sra_image(from).await?;
        let target = self.sra_image(to).await?;
        self.ensure_config(&source.id).await?;
        self.ensure_config(&target.id).await?;
        if source.id == target.id {
            // Two names of one image: one configuration, nothing to copy.
            return self.config_state(&target.id, false).await;
        }
        // Staged under the source's lock, installed under the target's: never both held.
        let staged = staging(&self.conf_root(&target.id));
        {
            let config = self.state.config_lock(&source.id);
            let _config = config.read().await;
            let (_, dir) = self.current(&source.id).await?;
            let into = staged.clone();
            blocking("staging a configuration copy", move || {
                berth_sra_conf::copy_tree(&dir, &into, None).map_err(SraError::from)
            })
            .await?;
        }
        let installed = self.replace(&target.id, Source::Copy(staged.clone())).await;
        let _ =
            blocking("removing a staged copy", move || crate::fs::remove_tree(&staged).map_err(SraError::from)).await;
        installed?;
        self.config_state(&target.id, true).await
    }

    /// Back to the configuration shipped in the image.
    pub async fn config_reset(&self, reference: &str) -> Result<SraConfigState, SraError> {
        let image = self.sra_image(reference).await?;
        self.ensure_config(&image.id).await?;
        let factory = self.conf_root(&image.id).join(FACTORY_DIR);
        self.replace(&image.id, Source::Copy(factory)).await?;
        self.config_state(&image.id, true).await
    }

    async fn replace(&self, image_id: &str, source: Source) -> Result<(), SraError> {
        {
            let config = self.state.config_lock(image_id);
            let _config = config.write().await;
            let root = self.conf_root(image_id);
            blocking("installing a configuration", move || {
                let (generation, _) = current_in(&root)?;
                install(&root, generation, source)
            })
            .await?;
        }
        self.collect_garbage(image_id).await;
        Ok(())
    }

    /// Removes the generations that are not current and that none of this
    /// daemon's execution containers binds (another runner's generation
    /// label names its own configuration, not this one), and staging left by
    /// a crash. Best effort; the engine is asked before the lock is taken.
    pub async fn collect_garbage(&self, image_id: &str) {
        let filter = self.ours().has_label(EID_LABEL);
        let bound: BTreeSet<String> = match self.services.engine.list(&filter).await {
            Ok(containers) => containers
                .iter()
                .filter(|c| c.image_id == image_id)
                .filter_map(|c| c.label(GENERATION_LABEL).map(str::to_owned))
                .collect(),
            Err(_) => return,
        };
        let config = self.state.config_lock(image_id);
        let _config = config.write().await;
        let root = self.conf_root(image_id);
        let _ = blocking("collecting old configurations", move || {
            let Ok((current, _)) = current_in(&root) else { return Ok(()) };
            let Ok(entries) = std::fs::read_dir(&root) else { return Ok(()) };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let unused = match name.strip_prefix(GENERATION_PREFIX) {
                    Some(number) => number != current.to_string() && !bound.contains(number),
                    None => false,
                };
                if unused {
                    let _ = crate::fs::remove_tree(&entry.path());
                }
            }
            Ok::<_, SraError>(())
        })
        .await;
    }

    /// Removes the image's configuration (the image is gone).
    pub async fn forget_config(&self, image_id: &str) -> Result<(), SraError> {
        let config = self.state.config_lock(image_id);
        let _config = config.write().await;
        let root = self.conf_root(image_id);
        blocking("removing an SRA configuration", move || crate::fs::remove_tree(&root).map_err(SraError::from))
            .await?;
        self.state.forget_config_lock(image_id);
        // What the image's error codes mean goes with it.
        crate::services::lock(&self.definitions).remove(image_id);
        Ok(())
    }

    /// Staging directories a crash left behind (at daemon start).
    pub async fn remove_leftover_staging(&self) {
        let base = self.services.config.data_root.join(".berth-sra");
        let _ = blocking("removing leftover staging", move || {
            let Ok(images) = std::fs::read_dir(&base) else { return Ok(()) };
            for image in images.flatten() {
                let Ok(entries) = std::fs::read_dir(image.path()) else { continue };
                for entry in entries.flatten() {
                    if entry.file_name().to_string_lossy().starts_with(STAGING_PREFIX) {
                        let _ = crate::fs::remove_tree(&entry.path());
                    }
                }
            }
            Ok::<_, SraError>(())
        })
        .await;
    }
}

async fn exists(path: PathBuf) -> bool {
    tokio::fs::try_exists(&path).await.unwrap_or(false)
}

fn generation_dir(root: &Path, generation: u64) -> PathBuf {
    root.join(format!("{GENERATION_PREFIX}{generation}"))
}

fn current_in(root: &Path) -> Result<(u64, PathBuf), SraError> {
    let path = root.join(CURRENT_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| crate::fs::FsError::new(&path, e))?;
    let generation = text.trim().parse().map_err(|_| SraError::CorruptConfig {
        path: path.display().to_string(),
        reason: format!("{:?} is not a generation number", text.trim()),
    })?;
    Ok((generation, generation_dir(root, generation)))
}

enum Source {
    Tree(Tree),
    Copy(PathBuf),
}

/// Writes generation `after + 1` completely, then makes it current.
fn install(root: &Path, after: u64, source: Source) -> Result<(), SraError> {
    let generation = after + 1;
    let staged = staging(root);
    match source {
        Source::Tree(tree) => tree.write_to(&staged, Some(SRM_OWNER))?,
        Source::Copy(from) => berth_sra_conf::copy_tree(&from, &staged, Some(SRM_OWNER))?,
    }
    let dir = generation_dir(root, generation);
    // Left by a crash between writing it and moving `current`.
    crate::fs::remove_tree(&dir)?;
    crate::fs::rename_durably(&staged, &dir)?;
    crate::fs::atomic_write(&root.join(CURRENT_FILE), format!("{generation}\n").as_bytes())?;
    Ok(())
}

fn staging(root: &Path) -> PathBuf {
    root.join(format!("{STAGING_PREFIX}{}", hex::encode(rand::random::<[u8; 8]>())))
}
