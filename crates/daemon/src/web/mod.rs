//! The web UI: its administrator account (`/v1/web`), and the listeners a
//! browser reaches it on — the TLS `--listen` addresses and, for a browser
//! on this machine, plain http on `[web] listen` (loopback only).

use crate::daemon::Daemon;
use async_trait::async_trait;
use berth_api::routes::web::WebManager;
use berth_api::{ApiError, ErrorKind, WebAdminRequest, WebStatus};
use berth_web::{AccountError, WebAuth};
use std::sync::Arc;

/// The administrator account's file in the state root.
pub const ACCOUNT_FILE: &str = "web-admin.json";

pub fn auth(daemon_root: &std::path::Path, settings: &crate::config::WebSettings) -> Arc<WebAuth> {
    WebAuth::new(daemon_root.join(ACCOUNT_FILE), std::time::Duration::from_secs(settings.session_hours * 3600))
}

/// The addresses a browser reaches the UI on.
pub fn urls(daemon: &Daemon) -> Vec<String> {
    let config = &daemon.services.config;
    let plain = config.settings.web.listen.iter().map(|a| format!("http://{a}"));
    plain.chain(config.listen.iter().map(|a| format!("https://{a}"))).collect()
}

pub struct WebApi(pub Arc<Daemon>);

fn api_error(e: AccountError) -> ApiError {
    let kind = match e {
        AccountError::BadUser(_) | AccountError::ShortPassword | AccountError::LongPassword => ErrorKind::InvalidInput,
        AccountError::Corrupt { .. } => ErrorKind::CorruptState,
        AccountError::Io { .. } | AccountError::Fs(_) | AccountError::Hash(_) | AccountError::Closed => {
            ErrorKind::Internal
        }
    };
    ApiError::new(kind, e.to_string())
}

#[async_trait]
impl WebManager for WebApi {
    async fn status(&self) -> Result<WebStatus, ApiError> {
        let admin = self.0.web.admin().await.map_err(api_error)?;
        Ok(WebStatus { admin, urls: urls(&self.0), ui_built: berth_web::ui_built() })
    }

    async fn set_admin(&self, request: WebAdminRequest) -> Result<WebStatus, ApiError> {
        self.0.web.set_admin(&request.user, &request.password).await.map_err(api_error)?;
        tracing::info!(user = %request.user, "the web UI's administrator account was set");
        self.status().await
    }

    async fn remove_admin(&self) -> Result<WebStatus, ApiError> {
        if self.0.web.remove_admin().await.map_err(api_error)? {
            tracing::info!("the web UI's administrator account was removed");
        }
        self.status().await
    }
}

/// Serves the UI and the API over plain http on `[web] listen`. A listener
/// that cannot be bound is an error of the daemon's start: the user asked
/// for it.
pub async fn serve_loopback(daemon: &Arc<Daemon>, api: axum::Router) -> Result<(), crate::DaemonError> {
    let Some(address) = daemon.services.config.settings.web.listen else { return Ok(()) };
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|source| crate::DaemonError::Io {
        path: std::path::PathBuf::from(format!("http://{address}")),
        source,
    })?;
    tracing::info!(url = %format!("http://{address}"), "serving the web UI on loopback");
    let app = berth_web::app(daemon.web.clone(), api);
    tokio::spawn(crate::tls::serve_plain(listener, app, daemon.services.shutdown.clone()));
    Ok(())
}
