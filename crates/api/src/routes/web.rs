//! `/v1/web`: the web UI's administrator account (set, removed) and where
//! the UI is served.

use crate::error::Json;
use crate::{ApiError, WebAdminRequest, WebStatus};
use async_trait::async_trait;
use axum::extract::State;
use axum::routing::{get, put};
use axum::Router;
use std::sync::Arc;
use utoipa::OpenApi;

#[async_trait]
pub trait WebManager: Send + Sync + 'static {
    async fn status(&self) -> Result<WebStatus, ApiError>;
    /// Sets (or replaces) the administrator account; every session ends.
    async fn set_admin(&self, request: WebAdminRequest) -> Result<WebStatus, ApiError>;
    /// Removes the administrator account: only certificates sign in.
    async fn remove_admin(&self) -> Result<WebStatus, ApiError>;
}

type Shared = State<Arc<dyn WebManager>>;

#[derive(OpenApi)]
#[openapi(paths(web_status, web_set_admin, web_remove_admin), components(schemas(WebAdminRequest, WebStatus)))]
pub struct Doc;

pub fn routes(manager: Arc<dyn WebManager>) -> Router {
    Router::new()
        .route("/v1/web", get(web_status))
        .route("/v1/web/admin", put(web_set_admin).delete(web_remove_admin))
        .with_state(manager)
}

/// The administrator's name (never the password) and the UI's addresses.
#[utoipa::path(get, path = "/v1/web", responses((status = 200, body = WebStatus)))]
async fn web_status(State(m): Shared) -> Result<Json<WebStatus>, ApiError> {
    m.status().await.map(Json)
}

/// Sets the administrator account of the web UI (a password of 12 characters or more).
#[utoipa::path(put, path = "/v1/web/admin", request_body = WebAdminRequest,
    responses((status = 200, body = WebStatus), (status = 400, body = ApiError)))]
async fn web_set_admin(State(m): Shared, Json(request): Json<WebAdminRequest>) -> Result<Json<WebStatus>, ApiError> {
    m.set_admin(request).await.map(Json)
}

/// Removes the administrator account; signed-in browsers are signed out.
#[utoipa::path(delete, path = "/v1/web/admin", responses((status = 200, body = WebStatus)))]
async fn web_remove_admin(State(m): Shared) -> Result<Json<WebStatus>, ApiError> {
    m.remove_admin().await.map(Json)
}
