//! The Resource Manager API 1.0 (OSLM), under both prefixes real
//! orchestrators use: `/api/resource-manager` (the Docker RM, the UCD RM) and
//! `/api/v1.0/resource-manager` (the Ansible and OSM RMs). Errors have the
//! reference implementation's body, `{"localizedMessage", "url", "status"}`.
//! Every exchange is handed to [`ResourceManager::trace`] (the trace file).

use crate::{
    RmBaseImage, RmConfiguration, RmDeploymentLocation, RmError, RmInstanceQuery, RmInternalResource, RmOutboxState,
    RmResourceInstance, RmResourceType, RmTransitionAccepted, RmTransitionRequest, RmTransitionStatus,
};
use async_trait::async_trait;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use utoipa::OpenApi;

pub const PREFIXES: [&str; 2] = ["/api/resource-manager", "/api/v1.0/resource-manager"];
/// The orchestrator's tracing headers, carried into logs and the trace file.
pub const TRACING_HEADERS: [&str; 2] = ["X-Tracectx-TransactionId", "X-Tracectx-ProcessId"];
/// Largest package upload taken.
pub const MAX_PACKAGE_BYTES: usize = 512 << 20;
/// Bodies kept whole in a trace record; longer ones are cut.
const TRACE_BODY_MAX: usize = 64 << 10;

/// One request and its response, for the trace file.
#[derive(Debug, Clone)]
pub struct TraceRecord {
    /// Milliseconds since the Unix epoch, when the request arrived.
    pub at_ms: i64,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub duration_ms: u64,
    pub tracing: BTreeMap<String, String>,
    pub request_body: String,
    pub response_body: String,
}

#[async_trait]
pub trait ResourceManager: Send + Sync + 'static {
    async fn configuration(&self) -> Result<RmConfiguration, RmError>;
    async fn types(&self) -> Result<Vec<RmResourceType>, RmError>;
    async fn resource_type(&self, name: &str) -> Result<RmResourceType, RmError>;
    /// Onboards a package archive (`.tar.gz`, `.tar` or `.zip` of the package directory).
    async fn onboard(&self, archive: Bytes) -> Result<RmResourceType, RmError>;
    /// Removes a type; refused while it has instances.
    async fn remove_type(&self, name: &str) -> Result<RmResourceType, RmError>;
    /// Onboards every package under the configured package directories again.
    async fn reload(&self) -> Result<Vec<RmResourceType>, RmError>;
    async fn locations(&self) -> Result<Vec<RmDeploymentLocation>, RmError>;
    async fn location(&self, name: &str) -> Result<RmDeploymentLocation, RmError>;
    async fn instances(&self, location: &str, query: RmInstanceQuery) -> Result<Vec<RmResourceInstance>, RmError>;
    async fn instance(&self, id: &str) -> Result<RmResourceInstance, RmError>;
    /// The requests of an instance, newest first.
    async fn requests_of(&self, id: &str) -> Result<Vec<RmTransitionStatus>, RmError>;
    async fn transition(
        &self,
        request: RmTransitionRequest,
        tracing: BTreeMap<String, String>,
    ) -> Result<RmTransitionAccepted, RmError>;
    async fn status(&self, request_id: &str) -> Result<RmTransitionStatus, RmError>;
    async fn outbox(&self) -> Result<RmOutboxState, RmError>;
    /// Builds `dockerrm_baseimage` (when missing or out of date) in every location that answers.
    async fn base_image(&self) -> Result<RmBaseImage, RmError>;
    /// Records an exchange (where the trace file is on); must not block.
    fn trace(&self, record: TraceRecord);
}

type Shared = State<Arc<dyn ResourceManager>>;

impl IntoResponse for RmError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self)).into_response()
    }
}

/// A JSON body refused in this API's error shape.
pub struct RmJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for RmJson<T> {
    type Rejection = RmError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(RmJson(value)),
            Err(rejection) => Err(RmError::bad_request(format!(
                "the request body is not accepted: {}",
                crate::short(&rejection.body_text())
            ))),
        }
    }
}

/// A path parameter (names of types hold `::`), refused in this API's shape.
pub struct RmPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RmPath {
    type Rejection = RmError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(RmPath(value)),
            Err(rejection) => Err(RmError::bad_request(format!("bad path: {}", crate::short(&rejection.body_text())))),
        }
    }
}

/// Query parameters, refused in this API's shape.
pub struct RmQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for RmQuery<T> {
    type Rejection = RmError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(RmQuery(value)),
            Err(rejection) => {
                Err(RmError::bad_request(format!("bad query parameters: {}", crate::short(&rejection.body_text()))))
            }
        }
    }
}

/// The tracing headers of a request, by their canonical names.
pub fn tracing_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    TRACING_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            Some((name.to_string(), crate::short(value)))
        })
        .collect()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "berth resource manager",
        description = "The OSLM Resource Manager API 1.0, served by berth under /api/resource-manager and /api/v1.0/resource-manager."
    ),
    paths(
        configuration,
        types,
        resource_type,
        onboard,
        remove_type,
        reload,
        locations,
        location,
        instances,
        instance,
        requests_of,
        transition,
        status,
        outbox,
        base_image
    ),
    components(schemas(
        RmConfiguration,
        RmResourceType,
        RmDeploymentLocation,
        RmResourceInstance,
        RmInternalResource,
        RmTransitionRequest,
        RmTransitionAccepted,
        RmTransitionStatus,
        RmOutboxState,
        RmBaseImage,
        RmError
    ))
)]
pub struct Doc;

/// The OpenAPI document of this API (paths relative to either prefix).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = Doc::openapi();
    doc.servers = Some(PREFIXES.iter().map(|p| utoipa::openapi::server::Server::new(*p)).collect::<Vec<_>>());
    doc
}

fn relative_routes(manager: Arc<dyn ResourceManager>) -> Router {
    Router::new()
        .route("/configuration", get(configuration))
        .route("/types", get(types).post(onboard).layer(axum::extract::DefaultBodyLimit::max(MAX_PACKAGE_BYTES)))
        .route("/types/{name}", get(resource_type).delete(remove_type))
        .route("/onboarding", put(reload))
        .route("/topology/deployment-locations", get(locations))
        .route("/topology/deployment-locations/{name}", get(location))
        .route("/topology/deployment-locations/{name}/instances", get(instances))
        .route("/topology/instances/{id}", get(instance))
        .route("/topology/instances/{id}/requests", get(requests_of))
        .route("/lifecycle/transitions", post(transition))
        .route("/lifecycle/transitions/{id}/status", get(status))
        .route("/lifecycle/transitions/{id}", get(status))
        .route("/outbox", get(outbox))
        .route("/base-image", post(base_image))
        .route("/openapi.json", get(|| async { axum::Json(openapi_document()) }))
        .fallback(|uri: axum::http::Uri| async move {
            RmError::not_found(format!("no endpoint {}; see openapi.json", crate::short(uri.path())))
        })
        .method_not_allowed_fallback(|method: Method, uri: axum::http::Uri| async move {
            RmError {
                localized_message: format!("{} does not take {method}", crate::short(uri.path())),
                url: String::new(),
                status: 405,
            }
        })
        .with_state(manager)
}

/// The API under both prefixes, every exchange traced.
pub fn routes(manager: Arc<dyn ResourceManager>) -> Router {
    let relative = relative_routes(manager.clone());
    let mut router = Router::new();
    for prefix in PREFIXES {
        router = router.nest(prefix, relative.clone());
    }
    router.layer(axum::middleware::from_fn(move |request: Request, next: Next| {
        let manager = manager.clone();
        async move { traced(manager, request, next).await }
    }))
}

fn body_text(bytes: &[u8], content_type: Option<&str>) -> String {
    let textual = match content_type {
        Some(t) => t.starts_with("application/json") || t.starts_with("text/"),
        // Unlabelled: text only if it is UTF-8 (an archive is not).
        None => std::str::from_utf8(bytes).is_ok(),
    };
    if !textual {
        return format!("<{} bytes of {}>", bytes.len(), content_type.unwrap_or("data"));
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(TRACE_BODY_MAX)]).into_owned();
    if bytes.len() > TRACE_BODY_MAX {
        format!("{text}…")
    } else {
        text
    }
}

/// Buffers the exchange (bodies of this API are small JSON; uploads are
/// recorded by size), fills the error's `url`, and hands it to the tracer.
async fn traced(manager: Arc<dyn ResourceManager>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let at_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let (method, path) = (request.method().to_string(), request.uri().path().to_owned());
    let tracing = tracing_headers(request.headers());
    let request_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_PACKAGE_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let error = RmError { localized_message: "the request body is too large".into(), url: path, status: 413 };
            return error.into_response();
        }
    };
    let request_body = body_text(&bytes, request_type.as_deref());
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let (mut parts, body) = response.into_parts();
    let mut bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let response_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if !parts.status.is_success() {
        // Errors name the path they are about.
        if let Ok(mut error) = serde_json::from_slice::<RmError>(&bytes) {
            error.url = path.clone();
            bytes = Bytes::from(serde_json::to_vec(&error).unwrap_or_default());
            parts.headers.remove(header::CONTENT_LENGTH);
        }
    }
    manager.trace(TraceRecord {
        at_ms,
        method,
        path,
        status: parts.status.as_u16(),
        duration_ms: started.elapsed().as_millis() as u64,
        tracing,
        request_body,
        response_body: body_text(&bytes, response_type.as_deref()),
    });
    Response::from_parts(parts, Body::from(bytes))
}

/// The resource manager's name, version, API versions and features.
#[utoipa::path(get, path = "/configuration", responses((status = 200, body = RmConfiguration)))]
async fn configuration(State(m): Shared) -> Result<axum::Json<RmConfiguration>, RmError> {
    m.configuration().await.map(axum::Json)
}

/// The resource types, without their descriptors.
#[utoipa::path(get, path = "/types", responses((status = 200, body = Vec<RmResourceType>)))]
async fn types(State(m): Shared) -> Result<axum::Json<Vec<RmResourceType>>, RmError> {
    m.types().await.map(axum::Json)
}

/// A resource type with its descriptor (YAML text).
#[utoipa::path(get, path = "/types/{name}", params(("name" = String, Path, description = "e.g. resource::docker-network::1.0")),
    responses((status = 200, body = RmResourceType), (status = 404, body = RmError)))]
async fn resource_type(State(m): Shared, RmPath(name): RmPath) -> Result<axum::Json<RmResourceType>, RmError> {
    m.resource_type(&name).await.map(axum::Json)
}

/// Onboards a resource package: the body is a `.tar.gz`, `.tar` or `.zip`
/// of the package directory. Validated whole before anything changes; the
/// image is built then (unchanged packages are not rebuilt).
#[utoipa::path(post, path = "/types", request_body(content = Vec<u8>, content_type = "application/gzip"),
    responses((status = 200, body = RmResourceType), (status = 400, body = RmError)))]
async fn onboard(State(m): Shared, body: Bytes) -> Result<axum::Json<RmResourceType>, RmError> {
    m.onboard(body).await.map(axum::Json)
}

/// Removes a resource type; refused while it has instances.
#[utoipa::path(delete, path = "/types/{name}", params(("name" = String, Path)),
    responses((status = 200, body = RmResourceType), (status = 404, body = RmError), (status = 409, body = RmError)))]
async fn remove_type(State(m): Shared, RmPath(name): RmPath) -> Result<axum::Json<RmResourceType>, RmError> {
    m.remove_type(&name).await.map(axum::Json)
}

/// Reloads the packages of the configured package directories (the Docker RM's "Reload Resource Descriptors").
#[utoipa::path(put, path = "/onboarding", responses((status = 200, body = Vec<RmResourceType>), (status = 400, body = RmError)))]
async fn reload(State(m): Shared) -> Result<axum::Json<Vec<RmResourceType>>, RmError> {
    m.reload().await.map(axum::Json)
}

/// The deployment locations.
#[utoipa::path(get, path = "/topology/deployment-locations", responses((status = 200, body = Vec<RmDeploymentLocation>)))]
async fn locations(State(m): Shared) -> Result<axum::Json<Vec<RmDeploymentLocation>>, RmError> {
    m.locations().await.map(axum::Json)
}

#[utoipa::path(get, path = "/topology/deployment-locations/{name}", params(("name" = String, Path)),
    responses((status = 200, body = RmDeploymentLocation), (status = 404, body = RmError)))]
async fn location(State(m): Shared, RmPath(name): RmPath) -> Result<axum::Json<RmDeploymentLocation>, RmError> {
    m.location(&name).await.map(axum::Json)
}

/// The instances of a location: `instanceType` matches exactly, `instanceName` in part.
#[utoipa::path(get, path = "/topology/deployment-locations/{name}/instances", params(("name" = String, Path), RmInstanceQuery),
    responses((status = 200, body = Vec<RmResourceInstance>), (status = 404, body = RmError)))]
async fn instances(
    State(m): Shared,
    RmPath(name): RmPath,
    RmQuery(query): RmQuery<RmInstanceQuery>,
) -> Result<axum::Json<Vec<RmResourceInstance>>, RmError> {
    m.instances(&name, query).await.map(axum::Json)
}

/// An instance with what berth made for it (`internalResourceInstances`).
#[utoipa::path(get, path = "/topology/instances/{id}", params(("id" = String, Path)),
    responses((status = 200, body = RmResourceInstance), (status = 404, body = RmError)))]
async fn instance(State(m): Shared, RmPath(id): RmPath) -> Result<axum::Json<RmResourceInstance>, RmError> {
    m.instance(&id).await.map(axum::Json)
}

/// berth's own: the transition requests of an instance, newest first.
#[utoipa::path(get, path = "/topology/instances/{id}/requests", params(("id" = String, Path)),
    responses((status = 200, body = Vec<RmTransitionStatus>), (status = 404, body = RmError)))]
async fn requests_of(State(m): Shared, RmPath(id): RmPath) -> Result<axum::Json<Vec<RmTransitionStatus>>, RmError> {
    m.requests_of(&id).await.map(axum::Json)
}

/// Requests a transition or operation; it runs asynchronously (202).
#[utoipa::path(post, path = "/lifecycle/transitions", request_body = RmTransitionRequest,
    responses((status = 202, body = RmTransitionAccepted), (status = 400, body = RmError), (status = 404, body = RmError)))]
async fn transition(
    State(m): Shared,
    headers: HeaderMap,
    RmJson(request): RmJson<RmTransitionRequest>,
) -> Result<(StatusCode, axum::Json<RmTransitionAccepted>), RmError> {
    let accepted = m.transition(request, tracing_headers(&headers)).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(accepted)))
}

/// Where a request stands.
#[utoipa::path(get, path = "/lifecycle/transitions/{id}/status", params(("id" = String, Path)),
    responses((status = 200, body = RmTransitionStatus), (status = 400, body = RmError), (status = 404, body = RmError)))]
async fn status(State(m): Shared, RmPath(id): RmPath) -> Result<axum::Json<RmTransitionStatus>, RmError> {
    m.status(&id).await.map(axum::Json)
}

/// berth's own: the asynchronous responses waiting for delivery.
#[utoipa::path(get, path = "/outbox", responses((status = 200, body = RmOutboxState)))]
async fn outbox(State(m): Shared) -> Result<axum::Json<RmOutboxState>, RmError> {
    m.outbox().await.map(axum::Json)
}

/// berth's own: builds the base image for resource developers.
#[utoipa::path(post, path = "/base-image", responses((status = 200, body = RmBaseImage), (status = 400, body = RmError)))]
async fn base_image(State(m): Shared) -> Result<axum::Json<RmBaseImage>, RmError> {
    m.base_image().await.map(axum::Json)
}
