//! The routers, one per capability, merged into one. A new face (the
//! resource manager) adds its module here without touching the others.

pub mod apps;
pub mod certs;
pub mod daemon;
pub mod events;
pub mod hosts;
pub mod logins;
pub mod metrics;
pub mod migration;
pub mod resources;
pub mod sra;
pub(crate) mod upload;
pub mod web;

use crate::{ApiError, ErrorKind};
use axum::Router;
use std::sync::Arc;
use utoipa::OpenApi;

/// The daemon's implementations of every capability.
pub struct Managers {
    pub daemon: Arc<dyn daemon::DaemonManager>,
    pub apps: Arc<dyn apps::AppsManager>,
    pub sra: Arc<dyn sra::SraManager>,
    pub migration: Arc<dyn migration::MigrationManager>,
    pub logins: Arc<dyn logins::LoginsManager>,
    pub resources: Arc<dyn resources::ResourceManager>,
    pub certs: Arc<dyn certs::CertsManager>,
    pub hosts: Arc<dyn hosts::HostsManager>,
    pub events: Arc<dyn events::EventsManager>,
    pub metrics: Arc<dyn metrics::MetricsManager>,
    pub web: Arc<dyn web::WebManager>,
}

pub fn router(managers: Managers) -> Router {
    Router::new()
        .merge(daemon::routes(managers.daemon))
        .merge(apps::routes(managers.apps))
        .merge(sra::routes(managers.sra))
        .merge(migration::routes(managers.migration))
        .merge(logins::routes(managers.logins))
        .merge(resources::routes(managers.resources))
        .merge(certs::routes(managers.certs))
        .merge(hosts::routes(managers.hosts))
        .merge(events::routes(managers.events))
        .merge(metrics::routes(managers.metrics))
        .merge(web::routes(managers.web))
        .fallback(|uri: axum::http::Uri| async move {
            let path = crate::error::short(uri.path());
            ApiError::new(ErrorKind::NotFound, format!("no endpoint {path}; see /v1/openapi.json"))
        })
        .method_not_allowed_fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
            let path = crate::error::short(uri.path());
            ApiError::new(ErrorKind::InvalidInput, format!("{path} does not take {method}; see /v1/openapi.json"))
        })
}

/// The OpenAPI document of everything the router serves.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = daemon::Doc::openapi();
    doc.info.title = "berth".into();
    doc.info.description = Some("berth's native API, served over the daemon's unix socket.".into());
    doc.merge(apps::Doc::openapi());
    doc.merge(sra::Doc::openapi());
    doc.merge(migration::Doc::openapi());
    doc.merge(logins::Doc::openapi());
    doc.merge(certs::Doc::openapi());
    doc.merge(hosts::Doc::openapi());
    doc.merge(events::Doc::openapi());
    doc.merge(web::Doc::openapi());
    doc
}
