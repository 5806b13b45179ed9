//! The `/v1` router. Handlers only translate HTTP to [`Manager`] calls and
//! back; the daemon implements the manager.

use crate::{
    ApiError, AppView, DaemonInfo, ErrorKind, InstallEvent, InstallRequest, LoginRequest, LogsQuery, MigrationResult,
    MigrationStatus, SraConfigCopyRequest, SraConfigState, SraEvent, SraExecRequest, SraExecResult, SraImage,
    SraLoadRequest, SraResponseError, SraRunRequest, SraTarget, UninstallQuery, Uninstalled, UpgradeRequest,
};
use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use std::sync::Arc;
use tokio::sync::mpsc;
use utoipa::OpenApi;

/// Sends install progress to the client; dropping it is fine.
pub type ProgressSender = mpsc::UnboundedSender<InstallEvent>;
/// Sends SRA command progress to the client; dropping it is fine.
pub type SraProgressSender = mpsc::UnboundedSender<SraEvent>;

#[async_trait]
pub trait Manager: Send + Sync + 'static {
    async fn info(&self) -> Result<DaemonInfo, ApiError>;
    async fn list(&self) -> Result<Vec<AppView>, ApiError>;
    async fn show(&self, name: &str) -> Result<AppView, ApiError>;
    /// Installs and returns once the app runs. Progress goes to `progress`.
    async fn install(&self, request: InstallRequest, progress: ProgressSender) -> Result<AppView, ApiError>;
    async fn uninstall(&self, name: &str, keep_data: bool) -> Result<Uninstalled, ApiError>;
    /// Upgrades and returns once the new version passed probation (or the old one is back).
    async fn upgrade(&self, name: &str, request: UpgradeRequest, progress: ProgressSender)
        -> Result<AppView, ApiError>;
    /// Saves every app into the migration store.
    async fn migrate_export(&self) -> Result<MigrationStatus, ApiError>;
    /// Restores every app of a pending migration.
    async fn migrate_import(&self) -> Result<MigrationStatus, ApiError>;
    async fn migrate_status(&self) -> Result<MigrationStatus, ApiError>;
    /// Loads an SRA image archive (refused without the SRA label).
    async fn sra_load(&self, request: SraLoadRequest) -> Result<SraImage, ApiError>;
    async fn sra_list(&self) -> Result<Vec<SraImage>, ApiError>;
    /// Removes an SRA image and its execution containers.
    async fn sra_remove(&self, image: &str) -> Result<SraImage, ApiError>;
    /// Runs an SRA command per the SRA specification's running procedure.
    async fn sra_exec(&self, request: SraExecRequest, progress: SraProgressSender) -> Result<SraExecResult, ApiError>;
    /// Writes the envelope of an SRA command, runs it and reads its response.
    async fn sra_run(&self, request: SraRunRequest, progress: SraProgressSender) -> Result<SraExecResult, ApiError>;
    /// The image's configuration as a `.tar.gz` with `sra-configuration-version.txt`.
    async fn sra_config_download(&self, image: &str) -> Result<Vec<u8>, ApiError>;
    /// Replaces the configuration when the archive's version digest is current.
    async fn sra_config_upload(&self, image: &str, archive: Bytes) -> Result<SraConfigState, ApiError>;
    /// Copies the configuration of one image (version) to another.
    async fn sra_config_copy(&self, request: SraConfigCopyRequest) -> Result<SraConfigState, ApiError>;
    /// Puts back the configuration shipped in the image.
    async fn sra_config_reset(&self, image: &str) -> Result<SraConfigState, ApiError>;
    /// Stores a registry login (never echoed back).
    async fn login(&self, request: LoginRequest) -> Result<(), ApiError>;
    /// Forgets a registry login; `false` when there was none.
    async fn logout(&self, registry: &str) -> Result<bool, ApiError>;
    /// Returns to the previous version.
    async fn rollback(&self, name: &str, progress: ProgressSender) -> Result<AppView, ApiError>;
    async fn start(&self, name: &str) -> Result<AppView, ApiError>;
    async fn stop(&self, name: &str) -> Result<AppView, ApiError>;
    async fn restart(&self, name: &str) -> Result<AppView, ApiError>;
    async fn logs(
        &self,
        name: &str,
        follow: bool,
        tail: Option<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, ApiError>>, ApiError>;
}

type Shared = State<Arc<dyn Manager>>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self)).into_response()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "berth", description = "berth's native API, served over the daemon's unix socket."),
    paths(
        info,
        list_apps,
        install,
        show_app,
        uninstall,
        start_app,
        stop_app,
        restart_app,
        logs,
        upgrade_app,
        rollback_app,
        migrate_export,
        migrate_import,
        migrate_status,
        login,
        logout,
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
        ApiError,
        ErrorKind,
        AppView,
        DaemonInfo,
        InstallEvent,
        InstallRequest,
        Uninstalled,
        UpgradeRequest,
        MigrationStatus,
        MigrationResult,
        LoginRequest,
        SraTarget,
        SraExecRequest,
        SraRunRequest,
        SraExecResult,
        SraResponseError,
        SraEvent,
        SraImage,
        SraLoadRequest,
        SraConfigState,
        SraConfigCopyRequest
    ))
)]
struct ApiDoc;

pub fn openapi_document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub fn router(manager: Arc<dyn Manager>) -> Router {
    Router::new()
        .route("/v1/openapi.json", get(|| async { Json(openapi_document()) }))
        .route("/v1/info", get(info))
        .route("/v1/apps", get(list_apps).post(install))
        .route("/v1/apps/{name}", get(show_app).delete(uninstall))
        .route("/v1/apps/{name}/start", post(start_app))
        .route("/v1/apps/{name}/stop", post(stop_app))
        .route("/v1/apps/{name}/restart", post(restart_app))
        .route("/v1/apps/{name}/logs", get(logs))
        .route("/v1/apps/{name}/upgrade", post(upgrade_app))
        .route("/v1/apps/{name}/rollback", post(rollback_app))
        .route("/v1/sra/images", post(sra_load).get(sra_list))
        .route("/v1/sra/images/{image}", axum::routing::delete(sra_remove))
        .route("/v1/sra/exec", post(sra_exec))
        .route("/v1/sra/run", post(sra_run))
        .route(
            "/v1/sra/images/{image}/config",
            get(sra_config_download)
                .put(sra_config_upload)
                // The daemon applies its own, configurable limits to what the archive holds.
                .layer(axum::extract::DefaultBodyLimit::max(CONFIG_UPLOAD_MAX_BYTES)),
        )
        .route("/v1/sra/images/{image}/config/reset", post(sra_config_reset))
        .route("/v1/sra/config/copy", post(sra_config_copy))
        .route("/v1/registries", post(login))
        .route("/v1/registries/{registry}", axum::routing::delete(logout))
        .route("/v1/migrate", get(migrate_status))
        .route("/v1/migrate/export", post(migrate_export))
        .route("/v1/migrate/import", post(migrate_import))
        .fallback(|| async { ApiError::new(ErrorKind::NotFound, "no such endpoint; see /v1/openapi.json") })
        .with_state(manager)
}

#[utoipa::path(get, path = "/v1/info", responses((status = 200, body = DaemonInfo)))]
async fn info(State(m): Shared) -> Result<Json<DaemonInfo>, ApiError> {
    m.info().await.map(Json)
}

#[utoipa::path(get, path = "/v1/apps", responses((status = 200, body = Vec<AppView>)))]
async fn list_apps(State(m): Shared) -> Result<Json<Vec<AppView>>, ApiError> {
    m.list().await.map(Json)
}

#[utoipa::path(get, path = "/v1/apps/{name}", params(("name" = String, Path)),
    responses((status = 200, body = AppView), (status = 404, body = ApiError)))]
async fn show_app(State(m): Shared, Path(name): Path<String>) -> Result<Json<AppView>, ApiError> {
    m.show(&name).await.map(Json)
}

/// Installs an app. With `Accept: application/x-ndjson` the answer streams
/// `InstallEvent` lines (progress, then `done` or `error`); otherwise it is
/// the app (201) or an error once the install has finished.
#[utoipa::path(post, path = "/v1/apps", request_body = InstallRequest,
    responses((status = 201, body = AppView), (status = 200, description = "ndjson stream of InstallEvent", content_type = "application/x-ndjson", body = InstallEvent),
        (status = 400, body = ApiError), (status = 409, body = ApiError), (status = 422, body = ApiError), (status = 503, body = ApiError)))]
async fn install(State(m): Shared, headers: HeaderMap, Json(request): Json<InstallRequest>) -> Response {
    operation(&headers, StatusCode::CREATED, move |progress| async move { m.install(request, progress).await }).await
}

/// Upgrades an app; answers like an install (progress lines with
/// `Accept: application/x-ndjson`, else the app once done).
#[utoipa::path(post, path = "/v1/apps/{name}/upgrade", params(("name" = String, Path)), request_body = UpgradeRequest,
    responses((status = 200, body = AppView), (status = 404, body = ApiError), (status = 409, body = ApiError), (status = 500, body = ApiError)))]
async fn upgrade_app(
    State(m): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(request): Json<UpgradeRequest>,
) -> Response {
    operation(&headers, StatusCode::OK, move |progress| async move { m.upgrade(&name, request, progress).await }).await
}

/// Returns an app to its previous version (image, settings, data).
#[utoipa::path(post, path = "/v1/apps/{name}/rollback", params(("name" = String, Path)),
    responses((status = 200, body = AppView), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
async fn rollback_app(State(m): Shared, Path(name): Path<String>, headers: HeaderMap) -> Response {
    operation(&headers, StatusCode::OK, move |progress| async move { m.rollback(&name, progress).await }).await
}

/// Loads an SRA image archive from a path on the daemon's host.
#[utoipa::path(post, path = "/v1/sra/images", request_body = SraLoadRequest,
    responses((status = 200, body = SraImage), (status = 400, body = ApiError), (status = 422, body = ApiError)))]
async fn sra_load(State(m): Shared, Json(request): Json<SraLoadRequest>) -> Result<Json<SraImage>, ApiError> {
    m.sra_load(request).await.map(Json)
}

/// The SRA images, with their execution containers counted.
#[utoipa::path(get, path = "/v1/sra/images", responses((status = 200, body = Vec<SraImage>)))]
async fn sra_list(State(m): Shared) -> Result<Json<Vec<SraImage>>, ApiError> {
    m.sra_list().await.map(Json)
}

/// Removes an SRA image (reference or id) and its execution containers.
#[utoipa::path(delete, path = "/v1/sra/images/{image}", params(("image" = String, Path)),
    responses((status = 200, body = SraImage), (status = 404, body = ApiError)))]
async fn sra_remove(State(m): Shared, Path(image): Path<String>) -> Result<Json<SraImage>, ApiError> {
    m.sra_remove(&image).await.map(Json)
}

/// Runs `/srm/sra/command` in the execution container of (image, tmp dir,
/// log dir). With `Accept: application/x-ndjson` the answer streams
/// `SraEvent` lines (a `progress` line per status-file update, then `done`
/// or `error`); otherwise it is the result once the command has ended.
#[utoipa::path(post, path = "/v1/sra/exec", request_body = SraExecRequest,
    responses((status = 200, body = SraExecResult), (status = 400, body = ApiError), (status = 422, body = ApiError), (status = 500, body = ApiError)))]
async fn sra_exec(State(m): Shared, headers: HeaderMap, Json(request): Json<SraExecRequest>) -> Response {
    operation(&headers, StatusCode::OK, move |progress| async move { m.sra_exec(request, progress).await }).await
}

/// Writes the command envelope, runs the command like `/v1/sra/exec` and
/// answers with the response XML of the output file and its `<Error>`.
#[utoipa::path(post, path = "/v1/sra/run", request_body = SraRunRequest,
    responses((status = 200, body = SraExecResult), (status = 400, body = ApiError), (status = 422, body = ApiError), (status = 500, body = ApiError)))]
async fn sra_run(State(m): Shared, headers: HeaderMap, Json(request): Json<SraRunRequest>) -> Response {
    operation(&headers, StatusCode::OK, move |progress| async move { m.sra_run(request, progress).await }).await
}

/// Largest upload body the router takes (the daemon's own limits are tighter).
const CONFIG_UPLOAD_MAX_BYTES: usize = 256 << 20;

/// Downloads the image's configuration: a `.tar.gz` of /srm/sra/conf plus
/// `sra-configuration-version.txt` holding its digest.
#[utoipa::path(get, path = "/v1/sra/images/{image}/config", params(("image" = String, Path)),
    responses((status = 200, content_type = "application/gzip", body = Vec<u8>), (status = 404, body = ApiError)))]
async fn sra_config_download(State(m): Shared, Path(image): Path<String>) -> Result<Response, ApiError> {
    let archive = m.sra_config_download(&image).await?;
    Ok(([(header::CONTENT_TYPE, "application/gzip")], archive).into_response())
}

/// Uploads a configuration archive; 409 (`stale`) when its version file does
/// not name the current digest, 400 for an unsafe or malformed archive.
#[utoipa::path(put, path = "/v1/sra/images/{image}/config", params(("image" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/gzip"),
    responses((status = 200, body = SraConfigState), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
async fn sra_config_upload(
    State(m): Shared,
    Path(image): Path<String>,
    body: Bytes,
) -> Result<Json<SraConfigState>, ApiError> {
    m.sra_config_upload(&image, body).await.map(Json)
}

/// Copies the configuration from one SRA image to another (e.g. to a new version).
#[utoipa::path(post, path = "/v1/sra/config/copy", request_body = SraConfigCopyRequest,
    responses((status = 200, body = SraConfigState), (status = 404, body = ApiError)))]
async fn sra_config_copy(
    State(m): Shared,
    Json(request): Json<SraConfigCopyRequest>,
) -> Result<Json<SraConfigState>, ApiError> {
    m.sra_config_copy(request).await.map(Json)
}

/// Resets the image's configuration to the factory one shipped in the image.
#[utoipa::path(post, path = "/v1/sra/images/{image}/config/reset", params(("image" = String, Path)),
    responses((status = 200, body = SraConfigState), (status = 404, body = ApiError)))]
async fn sra_config_reset(State(m): Shared, Path(image): Path<String>) -> Result<Json<SraConfigState>, ApiError> {
    m.sra_config_reset(&image).await.map(Json)
}

/// Stores a login for a registry (file mode 0600 in berth's root).
#[utoipa::path(post, path = "/v1/registries", request_body = LoginRequest, responses((status = 204), (status = 400, body = ApiError)))]
async fn login(State(m): Shared, Json(request): Json<LoginRequest>) -> Result<StatusCode, ApiError> {
    m.login(request).await.map(|()| StatusCode::NO_CONTENT)
}

/// Forgets the login for a registry.
#[utoipa::path(delete, path = "/v1/registries/{registry}", params(("registry" = String, Path)),
    responses((status = 204), (status = 404, body = ApiError)))]
async fn logout(State(m): Shared, Path(registry): Path<String>) -> Result<StatusCode, ApiError> {
    match m.logout(&registry).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::new(ErrorKind::NotFound, format!("no login for {registry}"))),
    }
}

/// Saves every app (committed container, settings, private directory) into the migration store.
#[utoipa::path(post, path = "/v1/migrate/export", responses((status = 200, body = MigrationStatus)))]
async fn migrate_export(State(m): Shared) -> Result<Json<MigrationStatus>, ApiError> {
    m.migrate_export().await.map(Json)
}

/// Restores every app of the pending migration (idempotent).
#[utoipa::path(post, path = "/v1/migrate/import", responses((status = 200, body = MigrationStatus)))]
async fn migrate_import(State(m): Shared) -> Result<Json<MigrationStatus>, ApiError> {
    m.migrate_import().await.map(Json)
}

#[utoipa::path(get, path = "/v1/migrate", responses((status = 200, body = MigrationStatus)))]
async fn migrate_status(State(m): Shared) -> Result<Json<MigrationStatus>, ApiError> {
    m.migrate_status().await.map(Json)
}

/// Runs a long operation on its own task — a client that hangs up does not
/// cut it short between two journal steps — and answers with ndjson progress
/// lines then one `done` or `error` line, or (without that `Accept`) with the
/// result once it is there.
async fn operation<E, F, Fut>(headers: &HeaderMap, success: StatusCode, run: F) -> Response
where
    E: StreamedEvent,
    F: FnOnce(mpsc::UnboundedSender<E>) -> Fut,
    Fut: std::future::Future<Output = Result<E::Outcome, ApiError>> + Send + 'static,
{
    let streaming =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("application/x-ndjson"));
    let (progress, mut events) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(progress));
    if !streaming {
        return match task.await {
            Ok(Ok(outcome)) => (success, Json(outcome)).into_response(),
            Ok(Err(error)) => error.into_response(),
            Err(join) => ApiError::new(ErrorKind::Internal, format!("operation task failed: {join}")).into_response(),
        };
    }
    let (lines_tx, lines_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let _ = lines_tx.send(event);
        }
        let last = match task.await {
            Ok(result) => E::finished(result),
            Err(join) => E::finished(Err(ApiError::new(ErrorKind::Internal, format!("operation task failed: {join}")))),
        };
        let _ = lines_tx.send(last);
    });
    let lines = tokio_stream::wrappers::UnboundedReceiverStream::new(lines_rx).map(|event| {
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(line))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(lines))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[utoipa::path(delete, path = "/v1/apps/{name}", params(("name" = String, Path), UninstallQuery),
    responses((status = 200, body = Uninstalled), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
async fn uninstall(
    State(m): Shared,
    Path(name): Path<String>,
    Query(q): Query<UninstallQuery>,
) -> Result<Json<Uninstalled>, ApiError> {
    m.uninstall(&name, q.keep_data).await.map(Json)
}

#[utoipa::path(post, path = "/v1/apps/{name}/start", params(("name" = String, Path)), responses((status = 200, body = AppView), (status = 404, body = ApiError)))]
async fn start_app(State(m): Shared, Path(name): Path<String>) -> Result<Json<AppView>, ApiError> {
    m.start(&name).await.map(Json)
}

#[utoipa::path(post, path = "/v1/apps/{name}/stop", params(("name" = String, Path)), responses((status = 200, body = AppView), (status = 404, body = ApiError)))]
async fn stop_app(State(m): Shared, Path(name): Path<String>) -> Result<Json<AppView>, ApiError> {
    m.stop(&name).await.map(Json)
}

#[utoipa::path(post, path = "/v1/apps/{name}/restart", params(("name" = String, Path)), responses((status = 200, body = AppView), (status = 404, body = ApiError)))]
async fn restart_app(State(m): Shared, Path(name): Path<String>) -> Result<Json<AppView>, ApiError> {
    m.restart(&name).await.map(Json)
}

/// The container's output (stdout and stderr), as plain bytes; with
/// `follow=true` the response stays open and streams new output.
#[utoipa::path(get, path = "/v1/apps/{name}/logs", params(("name" = String, Path), LogsQuery),
    responses((status = 200, content_type = "application/octet-stream", body = String), (status = 404, body = ApiError)))]
async fn logs(State(m): Shared, Path(name): Path<String>, Query(q): Query<LogsQuery>) -> Result<Response, ApiError> {
    let stream = m.logs(&name, q.follow, q.tail).await?;
    let body = Body::from_stream(stream.map(|chunk| chunk.map_err(std::io::Error::other)));
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

/// An ndjson progress line type whose last line carries the outcome.
pub trait StreamedEvent: serde::Serialize + Send + 'static {
    type Outcome: serde::Serialize + Send + 'static;
    fn finished(result: Result<Self::Outcome, ApiError>) -> Self;
}

impl StreamedEvent for InstallEvent {
    type Outcome = AppView;
    fn finished(result: Result<AppView, ApiError>) -> Self {
        match result {
            Ok(app) => InstallEvent::Done { app: Box::new(app) },
            Err(error) => InstallEvent::Error { error },
        }
    }
}

impl StreamedEvent for SraEvent {
    type Outcome = SraExecResult;
    fn finished(result: Result<SraExecResult, ApiError>) -> Self {
        match result {
            Ok(result) => SraEvent::Done { result: Box::new(result) },
            Err(error) => SraEvent::Error { error },
        }
    }
}
