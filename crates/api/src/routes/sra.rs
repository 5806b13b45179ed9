//! `/v1/sra`: SRA images, commands and the configuration service.

use crate::error::{Json, Path, Query};
use crate::streaming::{self, Operation, StreamedEvent, Upload};
use crate::{
    ApiError, SraConfigCopyRequest, SraConfigState, SraEvent, SraExecRequest, SraExecResult, SraImage, SraLoadQuery,
    SraRemoveQuery, SraResponseError, SraRunRequest, SraTarget,
};
use async_trait::async_trait;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;
use std::sync::Arc;
use utoipa::OpenApi;

#[async_trait]
pub trait SraManager: Send + Sync + 'static {
    /// Loads an SRA image archive (refused without the SRA label or entry point).
    async fn load(&self, archive: Upload, origin: Option<String>) -> Result<SraImage, ApiError>;
    async fn list(&self) -> Result<Vec<SraImage>, ApiError>;
    /// Removes an SRA image, its execution containers and its configuration.
    async fn remove(&self, image: &str, force: bool) -> Result<SraImage, ApiError>;
    /// Runs an SRA command per the SRA specification's running procedure.
    async fn exec(&self, request: SraExecRequest, op: Operation<SraEvent>) -> Result<SraExecResult, ApiError>;
    /// Writes the envelope of an SRA command, runs it and reads its response.
    async fn run(&self, request: SraRunRequest, op: Operation<SraEvent>) -> Result<SraExecResult, ApiError>;
    /// The image's configuration as a `.tar.gz` with `sra-configuration-version.txt`.
    async fn config_download(&self, image: &str) -> Result<Vec<u8>, ApiError>;
    /// Replaces the configuration when the archive's version digest is current.
    async fn config_upload(&self, image: &str, archive: Bytes) -> Result<SraConfigState, ApiError>;
    async fn config_copy(&self, request: SraConfigCopyRequest) -> Result<SraConfigState, ApiError>;
    /// Puts back the configuration shipped in the image.
    async fn config_reset(&self, image: &str) -> Result<SraConfigState, ApiError>;
}

type Shared = State<Arc<dyn SraManager>>;

impl StreamedEvent for SraEvent {
    type Outcome = SraExecResult;
    fn finished(result: Result<SraExecResult, ApiError>) -> Self {
        match result {
            Ok(result) => SraEvent::Done { result: Box::new(result) },
            Err(error) => SraEvent::Error { error },
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        sra_load,
        sra_list,
        sra_remove,
        sra_exec,
        sra_run,
        sra_config_download,
        sra_config_upload,
        sra_config_copy,
        sra_config_reset
    ),
    components(schemas(
        SraTarget,
        SraExecRequest,
        SraRunRequest,
        SraExecResult,
        SraResponseError,
        SraEvent,
        SraImage,
        SraConfigState,
        SraConfigCopyRequest
    ))
)]
pub struct Doc;

/// Largest configuration upload the router takes (the daemon's own limits are tighter).
const CONFIG_UPLOAD_MAX_BYTES: usize = 256 << 20;
/// Largest command XML (`sra exec` stdin) taken: SRM's commands are kilobytes.
pub const MAX_COMMAND_BYTES: usize = 16 << 20;

pub fn routes(manager: Arc<dyn SraManager>) -> Router {
    Router::new()
        .route("/v1/sra/images", post(sra_load).get(sra_list).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/v1/sra/images/{image}", axum::routing::delete(sra_remove))
        .route("/v1/sra/exec", post(sra_exec).layer(axum::extract::DefaultBodyLimit::max(MAX_COMMAND_BYTES)))
        .route("/v1/sra/run", post(sra_run).layer(axum::extract::DefaultBodyLimit::max(MAX_COMMAND_BYTES)))
        .route(
            "/v1/sra/images/{image}/config",
            get(sra_config_download)
                .put(sra_config_upload)
                .layer(axum::extract::DefaultBodyLimit::max(CONFIG_UPLOAD_MAX_BYTES)),
        )
        .route("/v1/sra/images/{image}/config/reset", post(sra_config_reset))
        .route("/v1/sra/config/copy", post(sra_config_copy))
        .with_state(manager)
}

/// Loads an SRA image: the body is the archive (`.tar` or `.tar.gz`), streamed.
#[utoipa::path(post, path = "/v1/sra/images", params(SraLoadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = SraImage), (status = 400, body = ApiError), (status = 422, body = ApiError)))]
async fn sra_load(State(m): Shared, Query(q): Query<SraLoadQuery>, body: Body) -> Result<Json<SraImage>, ApiError> {
    let body = body.into_data_stream().map(|chunk| chunk.map_err(std::io::Error::other)).boxed();
    m.load(Upload { body: super::upload::draining(body) }, q.origin).await.map(Json)
}

/// The SRA images, with their execution containers counted.
#[utoipa::path(get, path = "/v1/sra/images", responses((status = 200, body = Vec<SraImage>)))]
async fn sra_list(State(m): Shared) -> Result<Json<Vec<SraImage>>, ApiError> {
    m.list().await.map(Json)
}

/// Removes an SRA image (reference or id), this daemon's execution containers
/// of it and its configuration; refused while a command runs unless `force`.
#[utoipa::path(delete, path = "/v1/sra/images/{image}", params(("image" = String, Path), SraRemoveQuery),
    responses((status = 200, body = SraImage), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
async fn sra_remove(
    State(m): Shared,
    Path(image): Path<String>,
    Query(q): Query<SraRemoveQuery>,
) -> Result<Json<SraImage>, ApiError> {
    m.remove(&image, q.force).await.map(Json)
}

/// Runs `/srm/sra/command` in the execution container of (image, tmp dir,
/// log dir). With `Accept: application/x-ndjson` the answer streams
/// `SraEvent` lines (a `progress` line per status-file update, then `done`
/// or `error`); otherwise it is the result once the command has ended. A
/// client that goes away has its command killed.
#[utoipa::path(post, path = "/v1/sra/exec", request_body = SraExecRequest,
    responses((status = 200, body = SraExecResult), (status = 400, body = ApiError), (status = 413, body = ApiError), (status = 422, body = ApiError), (status = 500, body = ApiError)))]
async fn sra_exec(State(m): Shared, headers: HeaderMap, Json(request): Json<SraExecRequest>) -> Response {
    streaming::run(&headers, StatusCode::OK, move |op| async move { m.exec(request, op).await }).await
}

/// Writes the command envelope, runs the command like `/v1/sra/exec` and
/// answers with the response XML of the output file and its `<Error>`.
#[utoipa::path(post, path = "/v1/sra/run", request_body = SraRunRequest,
    responses((status = 200, body = SraExecResult), (status = 400, body = ApiError), (status = 422, body = ApiError), (status = 500, body = ApiError)))]
async fn sra_run(State(m): Shared, headers: HeaderMap, Json(request): Json<SraRunRequest>) -> Response {
    streaming::run(&headers, StatusCode::OK, move |op| async move { m.run(request, op).await }).await
}

/// Downloads the image's configuration: a `.tar.gz` of /srm/sra/conf plus
/// `sra-configuration-version.txt` holding its digest.
#[utoipa::path(get, path = "/v1/sra/images/{image}/config", params(("image" = String, Path)),
    responses((status = 200, content_type = "application/gzip", body = Vec<u8>), (status = 404, body = ApiError)))]
async fn sra_config_download(State(m): Shared, Path(image): Path<String>) -> Result<Response, ApiError> {
    let archive = m.config_download(&image).await?;
    Ok(([(header::CONTENT_TYPE, "application/gzip")], archive).into_response())
}

/// Uploads a configuration archive; 409 (`stale`) when its version file does
/// not name the current digest, 400 for an unsafe or malformed archive.
#[utoipa::path(put, path = "/v1/sra/images/{image}/config", params(("image" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/gzip"),
    responses((status = 200, body = SraConfigState), (status = 400, body = ApiError), (status = 409, body = ApiError), (status = 413, body = ApiError)))]
async fn sra_config_upload(
    State(m): Shared,
    Path(image): Path<String>,
    body: Body,
) -> Result<Json<SraConfigState>, ApiError> {
    let bytes = axum::body::to_bytes(body, CONFIG_UPLOAD_MAX_BYTES).await.map_err(|_| {
        ApiError::new(
            crate::ErrorKind::TooLarge,
            format!("the configuration archive is larger than {CONFIG_UPLOAD_MAX_BYTES} bytes"),
        )
    })?;
    m.config_upload(&image, bytes).await.map(Json)
}

/// Copies the configuration from one SRA image to another (e.g. to a new version).
#[utoipa::path(post, path = "/v1/sra/config/copy", request_body = SraConfigCopyRequest,
    responses((status = 200, body = SraConfigState), (status = 404, body = ApiError)))]
async fn sra_config_copy(
    State(m): Shared,
    Json(request): Json<SraConfigCopyRequest>,
) -> Result<Json<SraConfigState>, ApiError> {
    m.config_copy(request).await.map(Json)
}

/// Resets the image's configuration to the factory one shipped in the image.
#[utoipa::path(post, path = "/v1/sra/images/{image}/config/reset", params(("image" = String, Path)),
    responses((status = 200, body = SraConfigState), (status = 404, body = ApiError)))]
async fn sra_config_reset(State(m): Shared, Path(image): Path<String>) -> Result<Json<SraConfigState>, ApiError> {
    m.config_reset(&image).await.map(Json)
}
