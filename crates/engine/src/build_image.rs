//! Image builds from a context archive, and archives copied into containers.

use crate::docker::DockerEngine;
use crate::errors::translate;
use berth_core::engine::{EngineError, Progress, ProgressSink};
use bollard::query_parameters::{BuildImageOptions, BuilderVersion, UploadToContainerOptions};
use bytes::Bytes;
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};

impl DockerEngine {
    pub(crate) async fn build_from_context(
        &self,
        context: Bytes,
        tag: &str,
        labels: &BTreeMap<String, String>,
        progress: ProgressSink,
    ) -> Result<String, EngineError> {
        let docker = self.connection.docker().await?;
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".to_owned(),
            t: Some(tag.to_owned()),
            rm: true,
            forcerm: true,
            // Offline: the base must be present (never pulled) and RUN steps
            // get no network.
            pull: None,
            networkmode: Some("none".to_owned()),
            labels: Some(labels.clone().into_iter().collect::<HashMap<_, _>>()),
            version: BuilderVersion::BuilderV1,
            ..Default::default()
        };
        let what = format!("the build of {tag}");
        let mut replies = docker.build_image(options, None, Some(bollard::body_full(context)));
        let (mut image_id, mut steps) = (None, 0u64);
        let mut output = String::new();
        while let Some(reply) = replies.next().await {
            let info = reply.map_err(|e| match translate(e, &self.connection.endpoint, &what) {
                EngineError::Rejected { message, .. } => build_failure(tag, &message, &output),
                other => other,
            })?;
            if let Some(detail) = info.error_detail {
                return Err(build_failure(tag, &detail.message.unwrap_or_default(), &output));
            }
            if let Some(id) = info.aux.and_then(|aux| aux.id) {
                image_id = Some(id);
            }
            if let Some(line) = info.stream {
                if line.starts_with("Step ") {
                    steps += 1;
                }
                if let Some(id) = line.trim().strip_prefix("Successfully built ") {
                    image_id.get_or_insert_with(|| id.to_owned());
                }
                output.push_str(&line);
                progress(Progress { phase: format!("building {tag}: {}", line.trim()), current: steps, total: None });
            }
        }
        match image_id {
            Some(id) => Ok(id),
            None => Err(build_failure(tag, "the engine reported no image", &output)),
        }
    }

    pub(crate) async fn copy_archive_to(&self, container: &str, dir: &str, archive: Bytes) -> Result<(), EngineError> {
        let docker = self.connection.docker().await?;
        let options = UploadToContainerOptions { path: dir.to_owned(), ..Default::default() };
        let upload = docker.upload_to_container(container, Some(options), bollard::body_full(archive));
        self.connection.control("copy", &format!("{dir} in container {container}"), upload).await
    }
}

/// A failed build, with the end of its output (what the Dockerfile's last
/// step said).
fn build_failure(tag: &str, message: &str, output: &str) -> EngineError {
    let tail: Vec<&str> = output.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
    EngineError::Rejected {
        status: 400,
        message: format!("the build of {tag} failed: {}\n{}", message.trim(), tail.join("\n")).trim_end().to_owned(),
    }
}
