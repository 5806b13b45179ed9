//! `/v1/hosts`: berth instances this daemon creates, supervises and deletes.

use crate::error::{Json, Path, Query};
use crate::{ApiError, HostCreateRequest, HostCreated, HostDeleteQuery, HostDeleted, HostView};
use async_trait::async_trait;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use utoipa::OpenApi;

#[async_trait]
pub trait HostsManager: Send + Sync + 'static {
    /// Creates the host and waits until its daemon answers.
    async fn create(&self, request: HostCreateRequest) -> Result<HostCreated, ApiError>;
    async fn list(&self) -> Result<Vec<HostView>, ApiError>;
    async fn inspect(&self, name: &str) -> Result<HostView, ApiError>;
    /// Removes what the host created; a delete cut short finishes when asked again.
    async fn delete(&self, name: &str, force: bool) -> Result<HostDeleted, ApiError>;
}

type Shared = State<Arc<dyn HostsManager>>;

#[derive(OpenApi)]
#[openapi(
    paths(hosts_create, hosts_list, hosts_inspect, hosts_delete),
    components(schemas(HostCreateRequest, HostCreated, HostView, crate::HostQuota, HostDeleted))
)]
pub struct Doc;

pub fn routes(manager: Arc<dyn HostsManager>) -> Router {
    Router::new()
        .route("/v1/hosts", get(hosts_list).post(hosts_create))
        .route("/v1/hosts/{name}", get(hosts_inspect).delete(hosts_delete))
        .with_state(manager)
}

/// Creates a host: its own root, socket, certificates, client bundle and supervisor.
#[utoipa::path(post, path = "/v1/hosts", request_body = HostCreateRequest,
    responses((status = 200, body = HostCreated), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
async fn hosts_create(State(m): Shared, Json(request): Json<HostCreateRequest>) -> Result<Json<HostCreated>, ApiError> {
    m.create(request).await.map(Json)
}

#[utoipa::path(get, path = "/v1/hosts", responses((status = 200, body = Vec<HostView>)))]
async fn hosts_list(State(m): Shared) -> Result<Json<Vec<HostView>>, ApiError> {
    m.list().await.map(Json)
}

#[utoipa::path(get, path = "/v1/hosts/{name}", params(("name" = String, Path)),
    responses((status = 200, body = HostView), (status = 404, body = ApiError)))]
async fn hosts_inspect(State(m): Shared, Path(name): Path<String>) -> Result<Json<HostView>, ApiError> {
    m.inspect(&name).await.map(Json)
}

/// Deletes a host and what it created; names what it leaves.
#[utoipa::path(delete, path = "/v1/hosts/{name}", params(("name" = String, Path), HostDeleteQuery),
    responses((status = 200, body = HostDeleted), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
async fn hosts_delete(
    State(m): Shared,
    Path(name): Path<String>,
    Query(q): Query<HostDeleteQuery>,
) -> Result<Json<HostDeleted>, ApiError> {
    m.delete(&name, q.force).await.map(Json)
}
