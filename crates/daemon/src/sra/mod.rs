//! Storage Replication Adapters (seed 000): SRA images are recognised by the
//! `com.vmware.srm.sra` label; a command runs exactly as the "Detailed
//! Running Procedure" says (see [`exec`]); each image's configuration lives
//! on the host and is bound at /srm/sra/conf (see [`conf`]); idle execution
//! containers are stopped (see [`idle`]).

pub mod conf;
mod error;
pub mod exec;
pub mod idle;
mod state;

pub use error::SraError;
pub use state::SraState;

use crate::archive::ArchiveInput;
use crate::error::OpError;
use crate::registry::Inner;
use berth_api::SraImage;
use berth_core::engine::{EngineError, ImageInfo, ProgressSink};
use sha1::{Digest, Sha1};
use std::path::Path;
use std::sync::Arc;

pub const SRA_LABEL: &str = "com.vmware.srm.sra";
pub const EID_LABEL: &str = "srm.sra.eid";
/// The SRA entry point every image must have.
pub const COMMAND_PATH: &str = "/srm/sra/command";

/// SRA spec, Detailed Running Procedure: sha1 of image id, tmp dir and log
/// dir, concatenated in that order.
pub fn execution_id(image_id: &str, tmp_dir: &str, log_dir: &str) -> String {
    hex(&Sha1::digest(format!("{image_id}{tmp_dir}{log_dir}").as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SRA image `reference` names; refused when it is not one.
pub async fn sra_image(inner: &Inner, reference: &str, what: &'static str) -> Result<ImageInfo, OpError> {
    let image = inner
        .engine
        .inspect_image(reference)
        .await?
        .ok_or_else(|| EngineError::NotFound { what: format!("image {reference}") })?;
    if !image.labels.contains_key(SRA_LABEL) {
        return Err(OpError::InvalidValue {
            what,
            reason: format!("{reference} has no {SRA_LABEL} label; it is not an SRA"),
        });
    }
    Ok(image)
}

/// Loads an SRA image archive. An image without the label, or without an
/// executable /srm/sra/command, is refused and taken out of the engine again.
pub async fn load(inner: &Inner, path: &str) -> Result<SraImage, OpError> {
    let engine = inner.engine.as_ref();
    let preexisting = engine.image_ids().await?;
    let quiet: ProgressSink = Arc::new(|_| {});
    let input = ArchiveInput::file(Path::new(path))?;
    let loaded = crate::intake::load(engine, input, None, &preexisting, quiet).await?;
    let image = engine
        .inspect_image(&loaded.image_id)
        .await?
        .ok_or_else(|| EngineError::Load { reason: format!("the engine did not keep {}", loaded.image_id) })?;
    let checked = async {
        if !image.labels.contains_key(SRA_LABEL) {
            return Err(OpError::InvalidValue {
                what: "SRA image",
                reason: format!("{path} holds an image without the label {SRA_LABEL}; it is not an SRA"),
            });
        }
        exec::check_entry_point(inner, &image.id, path).await?;
        conf::ensure(inner, &image.id).await
    };
    if let Err(refusal) = checked.await {
        if !preexisting.contains(&image.id) {
            let _ = engine.remove_image(&image.id).await;
            conf::forget(inner, &image.id).await;
        }
        return Err(refusal);
    }
    let config_digest = conf::digest(inner, &image.id).await.ok();
    Ok(view(image, 0, config_digest))
}

/// What the API shows of an SRA image.
fn view(image: ImageInfo, containers: usize, config_digest: Option<String>) -> SraImage {
    SraImage {
        label: image.labels.get(SRA_LABEL).cloned().unwrap_or_default(),
        id: image.id,
        repo_tags: image.repo_tags,
        containers,
        config_digest,
    }
}

/// The SRA images in the engine, with their execution containers counted
/// and the digest of their current configuration.
pub async fn list(inner: &Inner) -> Result<Vec<SraImage>, OpError> {
    let engine = inner.engine.as_ref();
    let containers = engine.containers_labelled(EID_LABEL, "").await?;
    let mut images = Vec::new();
    for image in engine.images_labelled(SRA_LABEL).await? {
        // An image loaded by other means gets its configuration on first sight.
        let config_digest = match conf::ensure(inner, &image.id).await {
            Ok(()) => conf::digest(inner, &image.id).await.ok(),
            Err(e) => {
                tracing::warn!(image = %image.id, "no SRA configuration: {e}");
                None
            }
        };
        let count = containers.iter().filter(|c| c.image_id == image.id).count();
        images.push(view(image, count, config_digest));
    }
    images.sort_by(|a, b| a.repo_tags.cmp(&b.repo_tags).then(a.id.cmp(&b.id)));
    Ok(images)
}

/// Removes an SRA image, its execution containers and its configuration.
pub async fn remove(inner: &Inner, reference: &str) -> Result<SraImage, OpError> {
    let engine = inner.engine.as_ref();
    let image = sra_image(inner, reference, "SRA image").await?;
    let containers: Vec<_> =
        engine.containers_labelled(EID_LABEL, "").await?.into_iter().filter(|c| c.image_id == image.id).collect();
    for container in &containers {
        engine.remove_container(&container.id).await?;
    }
    // Every tag goes with it: the image is what is removed, not one name of it.
    for tag in &image.repo_tags {
        engine.remove_image(tag).await?;
    }
    engine.remove_image(&image.id).await?;
    conf::forget(inner, &image.id).await;
    Ok(view(image, containers.len(), None))
}

#[cfg(test)]
mod tests {
    use super::execution_id;

    #[test]
    fn execution_id_is_sha1_of_the_concatenation() {
        use sha1::{Digest, Sha1};
        let expected: String = Sha1::digest(b"sha256:abc/tmp/a/log/a").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(execution_id("sha256:abc", "/tmp/a", "/log/a"), expected);
        assert_eq!(execution_id("", "", ""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }
}
