//! `/metrics`: Prometheus metrics in the OpenMetrics text format, on the
//! socket and on the mutual-TLS listeners (the same router).

use crate::ApiError;
use async_trait::async_trait;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[async_trait]
pub trait MetricsManager: Send + Sync + 'static {
    async fn render(&self) -> Result<String, ApiError>;
}

pub fn routes(manager: Arc<dyn MetricsManager>) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(manager)
}

async fn metrics(State(m): State<Arc<dyn MetricsManager>>) -> Response {
    match m.render().await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => e.into_response(),
    }
}
