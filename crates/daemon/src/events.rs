//! Follows the engine: recovery once it first answers, then its event stream,
//! routed to the app tasks. When the stream breaks (the engine stopped or
//! restarted), it reconnects with backoff and has every app reconcile, since
//! containers may have been stopped or lost meanwhile.

use crate::actor::Command;
use crate::recovery;
use crate::registry::{lock, Inner};
use futures::StreamExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

pub async fn follow_engine(inner: Arc<Inner>) {
    let mut retry = RETRY_MIN;
    loop {
        // Subscribe first, then look: nothing that happens in between is missed.
        let mut events = inner.engine.events(&inner.instance);
        match connect(&inner).await {
            Ok(()) => retry = RETRY_MIN,
            Err(e) => {
                tracing::warn!(error = %e, "container engine not usable; retrying in {retry:?}");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        }
        while let Some(event) = events.next().await {
            match event {
                // Every kind of event is a reason to look again; the app's
                // task reads the container's state itself rather than trusting
                // the event's order.
                Ok(event) => send(&inner, &event.app, Command::Observe),
                Err(e) => {
                    tracing::warn!(error = %e, "engine event stream broke");
                    break;
                }
            }
        }
        tracing::warn!("lost the engine's event stream; reconnecting");
        tokio::time::sleep(RETRY_MIN).await;
    }
}

/// Recovery on the first successful contact, reconciliation on every later one.
async fn connect(inner: &Arc<Inner>) -> Result<(), crate::OpError> {
    let info = inner.engine.info().await?;
    *lock(&inner.online_cpus) = info.online_cpus;
    *lock(&inner.engine_version) = Some(info.version.clone());
    if inner.recovered.load(Ordering::Acquire) {
        let names: Vec<String> = inner.apps.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        for name in names {
            send(inner, &name, Command::Reconcile);
        }
        return Ok(());
    }
    tracing::info!(engine = %info.version, api = %info.api_version, "engine answered; recovering");
    recovery::recover(inner).await
}

fn send(inner: &Inner, app: &str, command: Command) {
    let sender = inner.apps.read().unwrap_or_else(|e| e.into_inner()).get(app).and_then(|h| h.commands.clone());
    if let Some(sender) = sender {
        // A full queue already holds an observation that will see this change too.
        let _ = sender.try_send(command);
    }
}
