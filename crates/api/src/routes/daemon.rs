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
    /// The daemon's health, check by check.
    async fn doctor(&self) -> Result<crate::DoctorReport, ApiError>;
}

type Shared = State<Arc<dyn DaemonManager>>;

#[derive(OpenApi)]
#[openapi(paths(info, doctor), components(schemas(DaemonInfo, ApiError, crate::DoctorReport, crate::DoctorCheck)))]
pub struct Doc;

pub fn routes(manager: Arc<dyn DaemonManager>) -> Router {
    Router::new()
        .route("/v1/openapi.json", get(|| async { Json(crate::openapi_document()) }))
        .route("/v1/info", get(info))
        .route("/v1/doctor", get(doctor))
        .with_state(manager)
}

#[utoipa::path(get, path = "/v1/info", responses((status = 200, body = DaemonInfo)))]
async fn info(State(m): Shared) -> Result<Json<DaemonInfo>, ApiError> {
    m.info().await.map(Json)
}

/// The engine, the database, the disks, the certificates, the units, orphans and the journal, each checked.
#[utoipa::path(get, path = "/v1/doctor", responses((status = 200, body = crate::DoctorReport)))]
async fn doctor(State(m): Shared) -> Result<Json<crate::DoctorReport>, ApiError> {
    m.doctor().await.map(Json)
}
