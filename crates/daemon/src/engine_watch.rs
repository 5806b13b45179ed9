//! Follows the engine: recovery once it first answers, then its event stream,
//! routed to the app tasks. When the stream breaks (the engine stopped or
//! restarted), it reconnects with backoff; then operations that waited for
//! the engine are finished or undone, and every app reconciles, since
//! containers may have been stopped or lost meanwhile.

use crate::daemon::Daemon;
use berth_core::spec::LABEL_APP;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

pub async fn follow_engine(daemon: Arc<Daemon>) {
    let services = daemon.services.clone();
    let mut retry = RETRY_MIN;
    // Whether the engine was lost (the daemon runs degraded): its loss and
    // its return are events, once each.
    let mut lost = false;
    let endpoint = services.engine.endpoint();
    loop {
        // Subscribe first, then look: nothing that happens in between is missed.
        let mut events = services.engine.events(&services.ownership.filter());
        match connect(&daemon).await {
            Ok(()) => {
                retry = RETRY_MIN;
                services.engine_state.set_lost(None);
                if std::mem::take(&mut lost) {
                    services.events.emit("daemon.engine_back", &endpoint, serde_json::json!({}));
                }
            }
            Err(e) => {
                services.engine_state.set_lost(Some(e.clone()));
                if !std::mem::replace(&mut lost, true) {
                    services.events.emit("daemon.engine_lost", &endpoint, serde_json::json!({ "reason": e }));
                }
                tracing::warn!(error = %e, "container engine not usable; retrying in {retry:?}");
                tokio::select! {
                    _ = tokio::time::sleep(retry) => {}
                    _ = services.shutdown.cancelled() => return,
                }
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        }
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                _ = services.shutdown.cancelled() => return,
            };
            match event {
                // Every kind of event is a reason to look again; the app's
                // task reads the container's state itself rather than trusting
                // the event's order.
                Some(Ok(event)) => {
                    if let Some(app) = event.labels.get(LABEL_APP) {
                        daemon.apps.observe(app);
                    }
                }
                Some(Err(e)) => {
                    services.engine_state.set_lost(Some(e.to_string()));
                    tracing::warn!(error = %e, "engine event stream broke");
                    if !std::mem::replace(&mut lost, true) {
                        let reason = e.to_string();
                        services.events.emit("daemon.engine_lost", &endpoint, serde_json::json!({ "reason": reason }));
                    }
                    break;
                }
                None => break,
            }
        }
        tracing::warn!("lost the engine's event stream; reconnecting");
        tokio::select! {
            _ = tokio::time::sleep(RETRY_MIN) => {}
            _ = services.shutdown.cancelled() => return,
        }
    }
}

/// Recovery on the first successful contact; on every later one, the
/// operations that waited for the engine, and reconciliation.
async fn connect(daemon: &Arc<Daemon>) -> Result<(), String> {
    let services = &daemon.services;
    let info = services.engine.info().await.map_err(|e| e.to_string())?;
    services.engine_state.connected(info.version.clone(), info.online_cpus);
    if services.engine_state.is_ready() {
        match services.journal.resume_open().await {
            Ok(0) => {}
            Ok(waiting) => tracing::warn!(waiting, "operations still wait for the engine"),
            Err(e) => tracing::error!(error = %e, "the journal could not be resumed"),
        }
        daemon.apps.reconcile_all();
        return Ok(());
    }
    tracing::info!(engine = %info.version, api = %info.api_version, "engine answered; recovering");
    daemon.recover().await.map_err(|e| e.to_string())
}
