//! `/v1/certs`: the daemon's certificates and its remote clients.

use crate::error::{Json, Path};
use crate::{ApiError, CertsView, ClientBundle, ClientCertInfo, ClientCertRequest, InstallCertRequest};
use async_trait::async_trait;
use axum::extract::State;
use axum::routing::{delete, get};
use axum::Router;
use std::sync::Arc;
use utoipa::OpenApi;

#[async_trait]
pub trait CertsManager: Send + Sync + 'static {
    async fn show(&self) -> Result<CertsView, ApiError>;
    /// Installs a user's certificate (checked whole first).
    async fn install(&self, request: InstallCertRequest) -> Result<CertsView, ApiError>;
    async fn issue_client(&self, request: ClientCertRequest) -> Result<ClientBundle, ApiError>;
    async fn clients(&self) -> Result<Vec<ClientCertInfo>, ApiError>;
    /// The client is refused from its next connection on.
    async fn revoke(&self, name: &str) -> Result<ClientCertInfo, ApiError>;
}

type Shared = State<Arc<dyn CertsManager>>;

#[derive(OpenApi)]
#[openapi(
    paths(certs_show, certs_install, certs_issue_client, certs_clients, certs_revoke),
    components(schemas(
        CertsView,
        crate::CertInfo,
        ClientCertInfo,
        InstallCertRequest,
        ClientCertRequest,
        ClientBundle
    ))
)]
pub struct Doc;

pub fn routes(manager: Arc<dyn CertsManager>) -> Router {
    Router::new()
        .route("/v1/certs", get(certs_show).post(certs_install))
        .route("/v1/certs/clients", get(certs_clients).post(certs_issue_client))
        .route("/v1/certs/clients/{name}", delete(certs_revoke))
        .with_state(manager)
}

/// The server and CA certificates, the listeners and the clients.
#[utoipa::path(get, path = "/v1/certs", responses((status = 200, body = CertsView)))]
async fn certs_show(State(m): Shared) -> Result<Json<CertsView>, ApiError> {
    m.show().await.map(Json)
}

/// Installs a user's certificate, key and CA.
#[utoipa::path(post, path = "/v1/certs", request_body = InstallCertRequest,
    responses((status = 200, body = CertsView), (status = 400, body = ApiError)))]
async fn certs_install(State(m): Shared, Json(request): Json<InstallCertRequest>) -> Result<Json<CertsView>, ApiError> {
    m.install(request).await.map(Json)
}

/// Issues a client certificate signed by the CA.
#[utoipa::path(post, path = "/v1/certs/clients", request_body = ClientCertRequest,
    responses((status = 200, body = ClientBundle), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
async fn certs_issue_client(
    State(m): Shared,
    Json(request): Json<ClientCertRequest>,
) -> Result<Json<ClientBundle>, ApiError> {
    m.issue_client(request).await.map(Json)
}

#[utoipa::path(get, path = "/v1/certs/clients", responses((status = 200, body = Vec<ClientCertInfo>)))]
async fn certs_clients(State(m): Shared) -> Result<Json<Vec<ClientCertInfo>>, ApiError> {
    m.clients().await.map(Json)
}

/// Revokes a client certificate.
#[utoipa::path(delete, path = "/v1/certs/clients/{name}", params(("name" = String, Path)),
    responses((status = 200, body = ClientCertInfo), (status = 404, body = ApiError)))]
async fn certs_revoke(State(m): Shared, Path(name): Path<String>) -> Result<Json<ClientCertInfo>, ApiError> {
    m.revoke(&name).await.map(Json)
}
