//! `/v1/registries`: registry logins.

use crate::error::{Json, Path};
use crate::{ApiError, ErrorKind, LoginRequest};
use async_trait::async_trait;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::Router;
use std::sync::Arc;
use utoipa::OpenApi;

#[async_trait]
pub trait LoginsManager: Send + Sync + 'static {
    /// Stores a registry login (never echoed back).
    async fn login(&self, request: LoginRequest) -> Result<(), ApiError>;
    /// Forgets a registry login; `false` when there was none.
    async fn logout(&self, registry: &str) -> Result<bool, ApiError>;
}

type Shared = State<Arc<dyn LoginsManager>>;

#[derive(OpenApi)]
#[openapi(paths(login, logout), components(schemas(LoginRequest)))]
pub struct Doc;

pub fn routes(manager: Arc<dyn LoginsManager>) -> Router {
    Router::new()
        .route("/v1/registries", post(login))
        .route("/v1/registries/{registry}", delete(logout))
        .with_state(manager)
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
