//! Storage Replication Adapters (seed 000): SRA images are recognised by the
//! `com.vmware.srm.sra` label, and a command runs exactly as the "Detailed
//! Running Procedure" says — an execution container per (image id, tmp dir,
//! log dir), found by its `srm.sra.eid` label, reused when running, started
//! when stopped, created like `docker run -di` otherwise; then
//! `/srm/sra/command` is executed in it with the XML on stdin.

use crate::archive::ArchiveInput;
use crate::error::OpError;
use crate::registry::Inner;
use berth_api::{SraExecRequest, SraExecResult, SraImage};
use berth_core::engine::{EngineError, ExecRequest, PlainContainer, ProgressSink};
use bytes::Bytes;
use sha1::{Digest, Sha1};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub const SRA_LABEL: &str = "com.vmware.srm.sra";
pub const EID_LABEL: &str = "srm.sra.eid";
/// SRM's own default command timeout.
const DEFAULT_TIMEOUT_SECS: u64 = 300;
/// The SRM appliance's srm user.
const DEFAULT_USER: &str = "660:660";

/// SRA spec, Detailed Running Procedure: sha1 of image id, tmp dir and log
/// dir, concatenated in that order.
pub fn execution_id(image_id: &str, tmp_dir: &str, log_dir: &str) -> String {
    let digest = Sha1::digest(format!("{image_id}{tmp_dir}{log_dir}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Loads an SRA image archive; an image without the label is refused and
/// taken out of the engine again.
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
    match image.labels.get(SRA_LABEL) {
        Some(label) => Ok(SraImage { id: image.id, repo_tags: image.repo_tags, label: label.clone(), containers: 0 }),
        None => {
            if !preexisting.contains(&image.id) {
                let _ = engine.remove_image(&image.id).await;
            }
            Err(OpError::InvalidValue {
                what: "SRA image",
                reason: format!("{path} holds an image without the label {SRA_LABEL}; it is not an SRA"),
            })
        }
    }
}

/// The SRA images in the engine, with how many execution containers each has.
pub async fn list(inner: &Inner) -> Result<Vec<SraImage>, OpError> {
    let engine = inner.engine.as_ref();
    let containers = engine.containers_labelled(EID_LABEL, "").await?;
    let mut images: Vec<SraImage> = engine
        .images_labelled(SRA_LABEL)
        .await?
        .into_iter()
        .map(|i| SraImage {
            containers: containers.iter().filter(|c| c.image_id == i.id).count(),
            label: i.labels.get(SRA_LABEL).cloned().unwrap_or_default(),
            id: i.id,
            repo_tags: i.repo_tags,
        })
        .collect();
    images.sort_by(|a, b| a.repo_tags.cmp(&b.repo_tags).then(a.id.cmp(&b.id)));
    Ok(images)
}

/// Removes an SRA image and its execution containers.
pub async fn remove(inner: &Inner, reference: &str) -> Result<SraImage, OpError> {
    let engine = inner.engine.as_ref();
    let image = engine
        .inspect_image(reference)
        .await?
        .ok_or_else(|| EngineError::NotFound { what: format!("image {reference}") })?;
    let label = image.labels.get(SRA_LABEL).cloned().ok_or_else(|| OpError::InvalidValue {
        what: "SRA image",
        reason: format!("{reference} has no {SRA_LABEL} label; berth removes only SRA images"),
    })?;
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
    Ok(SraImage { id: image.id, repo_tags: image.repo_tags, label, containers: containers.len() })
}

pub async fn exec(inner: &Inner, request: SraExecRequest) -> Result<SraExecResult, OpError> {
    let engine = inner.engine.as_ref();
    for (what, dir) in [("--tmp-dir", &request.tmp_dir), ("--log-dir", &request.log_dir)] {
        if !dir.starts_with('/') || !Path::new(dir).is_dir() {
            return Err(OpError::InvalidValue {
                what,
                reason: format!("{dir:?} is not an existing absolute directory"),
            });
        }
    }
    let image = engine
        .inspect_image(&request.image)
        .await?
        .ok_or_else(|| EngineError::NotFound { what: format!("image {}", request.image) })?;
    if !image.labels.contains_key(SRA_LABEL) {
        return Err(OpError::InvalidValue {
            what: "--image",
            reason: format!("{} has no {SRA_LABEL} label", request.image),
        });
    }
    let eid = execution_id(&image.id, &request.tmp_dir, &request.log_dir);
    let container = {
        // Single flight per execution id: two requests never create two containers.
        let lock = inner.sra_lock(&eid);
        let _guard = lock.lock().await;
        ensure_container(inner, &image.id, &request, &eid).await?
    };
    let timeout = Duration::from_secs(request.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS));
    let result = engine
        .exec_with(
            &container,
            ExecRequest {
                argv: vec!["/srm/sra/command".into()],
                user: Some(request.user.clone().unwrap_or_else(|| DEFAULT_USER.into())),
                env: request.env.clone(),
                stdin: Some(Bytes::from(request.input.clone())),
                timeout,
            },
        )
        .await?;
    let exit_code = result.exit_code.ok_or_else(|| OpError::DidNotStart {
        name: format!("SRA command in {}", short(&container)),
        reason: format!("it did not finish within {}s and was abandoned", timeout.as_secs()),
    })?;
    Ok(SraExecResult {
        execution_id: eid,
        container_id: container,
        exit_code,
        stdout: String::from_utf8_lossy(&result.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&result.stderr).into_owned(),
    })
}

/// SRA spec: a running container with the eid is reused; else a stopped one
/// is started; else one is created like `docker run -di -v tmp:/tmp -v log:/srm/sra/log -l srm.sra.eid=…`.
async fn ensure_container(
    inner: &Inner,
    image_id: &str,
    request: &SraExecRequest,
    eid: &str,
) -> Result<String, OpError> {
    let engine = inner.engine.as_ref();
    let found = engine.containers_labelled(EID_LABEL, eid).await?;
    if let Some(running) = found.iter().find(|c| c.state.is_running()) {
        return Ok(running.id.clone());
    }
    if let Some(stopped) = found.first() {
        engine.start_container(&stopped.id).await?;
        return Ok(stopped.id.clone());
    }
    let spec = PlainContainer {
        image: image_id.to_owned(),
        binds: vec![format!("{}:/tmp", request.tmp_dir), format!("{}:/srm/sra/log", request.log_dir)],
        labels: BTreeMap::from([(EID_LABEL.to_owned(), eid.to_owned()), ("berth.sra".to_owned(), "1".to_owned())]),
    };
    let id = engine.create_plain_container(&spec).await?;
    engine.start_container(&id).await?;
    Ok(id)
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::execution_id;

    #[test]
    fn execution_id_is_sha1_of_the_concatenation() {
        // sha1("sha256:abc/tmp/a/log/a")
        assert_eq!(execution_id("sha256:abc", "/tmp/a", "/log/a"), {
            use sha1::{Digest, Sha1};
            Sha1::digest(b"sha256:abc/tmp/a/log/a").iter().map(|b| format!("{b:02x}")).collect::<String>()
        });
        assert_eq!(execution_id("", "", "").len(), 40);
        assert_eq!(execution_id("", "", ""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }
}
