//! Storage Replication Adapters (seed 000): SRA images are recognised by the
//! `com.vmware.srm.sra` label; a command runs exactly as the "Detailed
//! Running Procedure" says (see [`exec`]); each image's configuration lives
//! on the host and is bound at /srm/sra/conf (see [`conf`]); idle execution
//! containers are stopped (see [`idle`]). berth touches only the execution
//! containers it made (its instance label); another runner's container with
//! the same execution id is reported and left alone.

mod conf;
mod error;
mod exec;
pub mod idle;
mod images;
mod state;

pub use error::SraError;
pub use state::SraState;

use crate::services::Services;
use async_trait::async_trait;
use berth_api::routes::sra::SraManager;
use berth_api::{
    ApiError, Operation, SraConfigCopyRequest, SraConfigState, SraEvent, SraExecRequest, SraExecResult, SraImage,
    SraRunRequest, Upload,
};
use berth_core::engine::{EngineError, Filter, ImageInfo};
use berth_core::sra_xml::ErrorDefinitions;
use bytes::Bytes;
use sha1::{Digest, Sha1};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const SRA_LABEL: &str = "com.vmware.srm.sra";
pub const EID_LABEL: &str = "srm.sra.eid";
/// The SRA entry point every image must have.
pub const COMMAND_PATH: &str = "/srm/sra/command";
/// Marks execution containers as this daemon's, with its instance as the
/// value (the eid label is the specification's, and other runners on the
/// engine use it too).
pub const SRA_CONTAINER_LABEL: &str = "berth.sra";

/// SRA spec, Detailed Running Procedure: sha1 of image id, tmp dir and log
/// dir, concatenated in that order.
pub fn execution_id(image_id: &str, tmp_dir: &str, log_dir: &str) -> String {
    hex::encode(Sha1::digest(format!("{image_id}{tmp_dir}{log_dir}").as_bytes()))
}

/// The SRA capability: its coordination state and what it learnt of each
/// image's error codes.
pub struct Sra {
    pub services: Arc<Services>,
    pub state: SraState,
    /// `queryErrorDefinitions` (and `queryStrings`) of each image, by id.
    definitions: Mutex<HashMap<String, Arc<ErrorDefinitions>>>,
}

impl Sra {
    pub fn new(services: Arc<Services>) -> Self {
        Self { services, state: SraState::default(), definitions: Mutex::default() }
    }

    /// Every execution container this daemon made.
    fn ours(&self) -> Filter {
        Filter::default().label(SRA_CONTAINER_LABEL, self.services.ownership.instance())
    }

    /// The SRA image `reference` names; refused when it is not one.
    pub async fn sra_image(&self, reference: &str) -> Result<ImageInfo, SraError> {
        let image = self
            .services
            .engine
            .inspect_image(reference)
            .await?
            .ok_or_else(|| EngineError::NotFound { what: format!("image {reference}") })?;
        if !image.labels.contains_key(SRA_LABEL) {
            return Err(SraError::NotSra { reference: reference.to_owned(), label: SRA_LABEL });
        }
        Ok(image)
    }
}

/// The SRA capability as the API sees it.
pub struct SraApi(pub Arc<Sra>);

impl std::ops::Deref for SraApi {
    type Target = Arc<Sra>;
    fn deref(&self) -> &Arc<Sra> {
        &self.0
    }
}

#[async_trait]
impl SraManager for SraApi {
    async fn load(&self, archive: Upload, origin: Option<String>) -> Result<SraImage, ApiError> {
        self.services.require_ready().map_err(SraError::from)?;
        Ok(images::load(self, archive, origin.unwrap_or_else(|| "the uploaded archive".into())).await?)
    }

    async fn list(&self) -> Result<Vec<SraImage>, ApiError> {
        Ok(images::list(self).await?)
    }

    async fn remove(&self, image: &str, force: bool) -> Result<SraImage, ApiError> {
        Ok(images::remove(self, image, force).await?)
    }

    async fn exec(&self, request: SraExecRequest, op: Operation<SraEvent>) -> Result<SraExecResult, ApiError> {
        let (image, started) = (request.target.image.clone(), std::time::Instant::now());
        let result = exec::exec(self, request, op).await;
        self.command_event(&image, "exec", started, &result);
        Ok(result?)
    }

    async fn run(&self, request: SraRunRequest, op: Operation<SraEvent>) -> Result<SraExecResult, ApiError> {
        let (image, command, started) =
            (request.target.image.clone(), request.command.clone(), std::time::Instant::now());
        let result = exec::run(self, request, op).await;
        self.command_event(&image, &command, started, &result);
        Ok(result?)
    }

    async fn config_download(&self, image: &str) -> Result<Vec<u8>, ApiError> {
        Ok(Sra::config_download(self, image).await?)
    }

    async fn config_upload(&self, image: &str, archive: Bytes) -> Result<SraConfigState, ApiError> {
        let state = Sra::config_upload(self, image, archive).await?;
        self.config_event("uploaded", image, &state);
        Ok(state)
    }

    async fn config_copy(&self, request: SraConfigCopyRequest) -> Result<SraConfigState, ApiError> {
        let state = Sra::config_copy(self, &request.from, &request.to).await?;
        self.config_event("copied", &request.to, &state);
        Ok(state)
    }

    async fn config_reset(&self, image: &str) -> Result<SraConfigState, ApiError> {
        let state = Sra::config_reset(self, image).await?;
        self.config_event("reset", image, &state);
        Ok(state)
    }
}

impl SraApi {
    /// An SRA command that ran (or was refused) is an event.
    fn command_event(
        &self,
        image: &str,
        command: &str,
        started: std::time::Instant,
        result: &Result<SraExecResult, SraError>,
    ) {
        let data = match result {
            Ok(r) => serde_json::json!({
                "command": command,
                "exit_code": r.exit_code,
                "execution_id": r.execution_id,
                "sra_error": r.sra_error.as_ref().map(|e| e.code.clone()),
                "ms": started.elapsed().as_millis() as u64,
            }),
            Err(e) => {
                serde_json::json!({ "command": command, "error": e.to_string(), "ms": started.elapsed().as_millis() as u64 })
            }
        };
        self.services.events.emit("sra.command", image, data);
    }

    fn config_event(&self, how: &str, image: &str, state: &SraConfigState) {
        if state.changed || how == "reset" {
            let data = serde_json::json!({ "how": how, "image_id": state.image_id, "digest": state.digest });
            self.services.events.emit("sra.config", image, data);
        }
    }
}

#[cfg(test)]
mod tests;
