//! `/v1/info` and the OpenAPI document.

use crate::error::Json;
use crate::{ApiError, DaemonInfo};
use async_trait::async_trait;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use utoipa::OpenApi;

#[async_trait]
pub trait DaemonManager: Send + Sync + 'static {
    async fn info(&self) -> Result<DaemonInfo, ApiError>;
}

type Shared = State<Arc<dyn DaemonManager>>;

#[derive(OpenApi)]
#[openapi(paths(info), components(schemas(DaemonInfo, ApiError)))]
pub struct Doc;

pub fn routes(manager: Arc<dyn DaemonManager>) -> Router {
    Router::new()
        .route("/v1/openapi.json", get(|| async { Json(crate::openapi_document()) }))
        .route("/v1/info", get(info))
        .with_state(manager)
}

#[utoipa::path(get, path = "/v1/info", responses((status = 200, body = DaemonInfo)))]
async fn info(State(m): Shared) -> Result<Json<DaemonInfo>, ApiError> {
    m.info().await.map(Json)
}
