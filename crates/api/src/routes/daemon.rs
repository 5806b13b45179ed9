//! `/v1/info` and the OpenAPI document.

use crate::error::Json;
use crate::{ApiError, DaemonInfo};
use async_trait::async_trait;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use utoipa::OpenApi;

#[async_trait]
pub trait DaemonManager: Send + Sync + 'static {
    async fn info(&self) -> Result<DaemonInfo, ApiError>;
    /// The daemon's health, check by check.
    async fn doctor(&self) -> Result<crate::DoctorReport, ApiError>;
    /// Records the apps and resources the engine keeps and the database does not know.
    async fn rebuild(&self) -> Result<crate::RebuildReport, ApiError>;
}

type Shared = State<Arc<dyn DaemonManager>>;

#[derive(OpenApi)]
#[openapi(
    paths(info, doctor, rebuild),
    components(schemas(
        DaemonInfo,
        ApiError,
        crate::DoctorReport,
        crate::DoctorCheck,
        crate::RebuildReport,
        crate::RebuildItem
    ))
)]
pub struct Doc;

pub fn routes(manager: Arc<dyn DaemonManager>) -> Router {
    Router::new()
        .route("/v1/openapi.json", get(|| async { Json(crate::openapi_document()) }))
        .route("/v1/info", get(info))
        .route("/v1/doctor", get(doctor))
        .route("/v1/doctor/rebuild", post(rebuild))
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

/// Rebuilds the database from the engine: apps from their containers' kept
/// records, resource types from their saved packages, resource instances
/// from the records their containers, networks and volumes keep. What the
/// database knows already is left as it is.
#[utoipa::path(post, path = "/v1/doctor/rebuild", responses((status = 200, body = crate::RebuildReport)))]
async fn rebuild(State(m): Shared) -> Result<Json<crate::RebuildReport>, ApiError> {
    m.rebuild().await.map(Json)
}
