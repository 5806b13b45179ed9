//! `/v1/migrate`: moving every app across a host OS replacement.

use crate::error::Json;
use crate::{ApiError, MigrationOutcome, MigrationResult, MigrationState, MigrationStatus};
use async_trait::async_trait;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use utoipa::OpenApi;

#[async_trait]
pub trait MigrationManager: Send + Sync + 'static {
    /// Saves every app into the migration store.
    async fn export(&self) -> Result<MigrationStatus, ApiError>;
    /// Restores every app of a pending migration.
    async fn import(&self) -> Result<MigrationStatus, ApiError>;
    async fn status(&self) -> Result<MigrationStatus, ApiError>;
}

type Shared = State<Arc<dyn MigrationManager>>;

#[derive(OpenApi)]
#[openapi(
    paths(migrate_export, migrate_import, migrate_status),
    components(schemas(MigrationStatus, MigrationResult, MigrationState, MigrationOutcome))
)]
pub struct Doc;

pub fn routes(manager: Arc<dyn MigrationManager>) -> Router {
    Router::new()
        .route("/v1/migrate", get(migrate_status))
        .route("/v1/migrate/export", post(migrate_export))
        .route("/v1/migrate/import", post(migrate_import))
        .with_state(manager)
}

/// Saves every app (committed container, settings, private directory) into the migration store.
#[utoipa::path(post, path = "/v1/migrate/export", responses((status = 200, body = MigrationStatus)))]
async fn migrate_export(State(m): Shared) -> Result<Json<MigrationStatus>, ApiError> {
    m.export().await.map(Json)
}

/// Restores every app of the pending migration (idempotent).
#[utoipa::path(post, path = "/v1/migrate/import", responses((status = 200, body = MigrationStatus)))]
async fn migrate_import(State(m): Shared) -> Result<Json<MigrationStatus>, ApiError> {
    m.import().await.map(Json)
}

#[utoipa::path(get, path = "/v1/migrate", responses((status = 200, body = MigrationStatus)))]
async fn migrate_status(State(m): Shared) -> Result<Json<MigrationStatus>, ApiError> {
    m.status().await.map(Json)
}
