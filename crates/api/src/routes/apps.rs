//! `/v1/apps`: install, list, show, the lifecycle verbs, logs, upgrade,
//! rollback, uninstall, cancel.

use super::upload::WithArchive;
use crate::error::{Json, Path, Query};
use crate::streaming::{self, Operation, StreamedEvent, Upload};
use crate::{
    ApiError, AppView, InstallEvent, InstallRequest, LogsQuery, UninstallQuery, Uninstalled, UpgradeRequest, ViewQuery,
};
use async_trait::async_trait;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use std::sync::Arc;
use utoipa::OpenApi;

#[async_trait]
pub trait AppsManager: Send + Sync + 'static {
    /// The apps; `secrets` shows environment values in `args`.
    async fn list(&self, secrets: bool) -> Result<Vec<AppView>, ApiError>;
    async fn show(&self, name: &str, secrets: bool) -> Result<AppView, ApiError>;
    /// Installs and returns once the app runs; undone when `op` is cancelled.
    async fn install(
        &self,
        request: InstallRequest,
        archive: Option<Upload>,
        op: Operation<InstallEvent>,
    ) -> Result<AppView, ApiError>;
    /// Upgrades and returns once the new version passed probation (or the old one is back).
    async fn upgrade(
        &self,
        name: &str,
        request: UpgradeRequest,
        archive: Option<Upload>,
        op: Operation<InstallEvent>,
    ) -> Result<AppView, ApiError>;
    /// Returns to the previous version.
    async fn rollback(&self, name: &str, op: Operation<InstallEvent>) -> Result<AppView, ApiError>;
    async fn uninstall(&self, name: &str, keep_data: bool) -> Result<Uninstalled, ApiError>;
    async fn start(&self, name: &str) -> Result<AppView, ApiError>;
    async fn stop(&self, name: &str) -> Result<AppView, ApiError>;
    async fn restart(&self, name: &str) -> Result<AppView, ApiError>;
    /// Cancels the install, upgrade or rollback running on the app (it is undone).
    async fn cancel(&self, name: &str) -> Result<(), ApiError>;
    async fn logs(
        &self,
        name: &str,
        follow: bool,
        tail: Option<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, ApiError>>, ApiError>;
}

type Shared = State<Arc<dyn AppsManager>>;

impl StreamedEvent for InstallEvent {
    type Outcome = AppView;
    fn finished(result: Result<AppView, ApiError>) -> Self {
        match result {
            Ok(app) => InstallEvent::Done { app: Box::new(app) },
            Err(error) => InstallEvent::Error { error },
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_apps,
        install,
        show_app,
        uninstall,
        start_app,
        stop_app,
        restart_app,
        cancel_app,
        logs,
        upgrade_app,
        rollback_app
    ),
    components(schemas(
        AppView,
        InstallEvent,
        InstallRequest,
        UpgradeRequest,
        Uninstalled,
        crate::SourceRequest,
        crate::SshSource,
        crate::RegistryAuth,
        crate::PrivateKey,
        crate::KnownHosts,
        berth_core::status::AppState,
        berth_core::status::DesiredState,
        berth_core::status::Health,
        berth_core::source::SshProtocol
    ))
)]
pub struct Doc;

pub fn routes(manager: Arc<dyn AppsManager>) -> Router {
    Router::new()
        .route("/v1/apps", get(list_apps).post(install))
        .route("/v1/apps/{name}", get(show_app).delete(uninstall))
        .route("/v1/apps/{name}/start", post(start_app))
        .route("/v1/apps/{name}/stop", post(stop_app))
        .route("/v1/apps/{name}/restart", post(restart_app))
        .route("/v1/apps/{name}/cancel", post(cancel_app))
        .route("/v1/apps/{name}/logs", get(logs))
        .route("/v1/apps/{name}/upgrade", post(upgrade_app))
        .route("/v1/apps/{name}/rollback", post(rollback_app))
        // Archives stream through; the daemon applies its own limits.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(manager)
}

#[utoipa::path(get, path = "/v1/apps", params(ViewQuery), responses((status = 200, body = Vec<AppView>)))]
async fn list_apps(State(m): Shared, Query(q): Query<ViewQuery>) -> Result<Json<Vec<AppView>>, ApiError> {
    m.list(q.secrets).await.map(Json)
}

#[utoipa::path(get, path = "/v1/apps/{name}", params(("name" = String, Path), ViewQuery),
    responses((status = 200, body = AppView), (status = 404, body = ApiError)))]
async fn show_app(
    State(m): Shared,
    Path(name): Path<String>,
    Query(q): Query<ViewQuery>,
) -> Result<Json<AppView>, ApiError> {
    m.show(&name, q.secrets).await.map(Json)
}

/// Installs an app. A local archive is sent as `multipart/form-data`: a
/// `request` part (this JSON, with `source.kind = "upload"`) then an
/// `archive` part; remote sources are plain JSON. With `Accept:
/// application/x-ndjson` the answer streams `InstallEvent` lines; otherwise
/// it is the app (201) or an error once the install has finished. A client
/// that goes away cancels the install, which is then undone.
#[utoipa::path(post, path = "/v1/apps", request_body = InstallRequest,
    responses((status = 201, body = AppView), (status = 200, description = "ndjson stream of InstallEvent", content_type = "application/x-ndjson", body = InstallEvent),
        (status = 400, body = ApiError), (status = 409, body = ApiError), (status = 422, body = ApiError), (status = 503, body = ApiError)))]
async fn install(State(m): Shared, headers: HeaderMap, body: WithArchive<InstallRequest>) -> Response {
    let WithArchive { request, archive } = body;
    streaming::run(&headers, StatusCode::CREATED, move |op| async move { m.install(request, archive, op).await }).await
}

/// Upgrades an app; sent and answered like an install.
#[utoipa::path(post, path = "/v1/apps/{name}/upgrade", params(("name" = String, Path)), request_body = UpgradeRequest,
    responses((status = 200, body = AppView), (status = 404, body = ApiError), (status = 409, body = ApiError), (status = 500, body = ApiError)))]
async fn upgrade_app(
    State(m): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: WithArchive<UpgradeRequest>,
) -> Response {
    let WithArchive { request, archive } = body;
    streaming::run(&headers, StatusCode::OK, move |op| async move { m.upgrade(&name, request, archive, op).await })
        .await
}

/// Returns an app to its previous version (image, settings, data).
#[utoipa::path(post, path = "/v1/apps/{name}/rollback", params(("name" = String, Path)),
    responses((status = 200, body = AppView), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
async fn rollback_app(State(m): Shared, Path(name): Path<String>, headers: HeaderMap) -> Response {
    streaming::run(&headers, StatusCode::OK, move |op| async move { m.rollback(&name, op).await }).await
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

/// Cancels the install, upgrade or rollback running on the app; it is undone
/// (its own request then ends with a `cancelled` error).
#[utoipa::path(post, path = "/v1/apps/{name}/cancel", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
async fn cancel_app(State(m): Shared, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    m.cancel(&name).await.map(|()| StatusCode::NO_CONTENT)
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
