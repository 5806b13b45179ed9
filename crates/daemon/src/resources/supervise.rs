//! Resource containers are supervised like apps: one that exits while its
//! instance is installed is started again, with the apps' backoff — except
//! after a Stop transition, and never while a transition runs on it.

use crate::resources::transitions::{ACTIVE, INACTIVE};
use crate::resources::Resources;
use berth_core::engine::ContainerEventKind;
use berth_core::journal::Subject;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Follows each location's container events until the daemon shuts down.
pub async fn supervise(resources: Arc<Resources>) {
    let mut tasks = Vec::new();
    for location in resources.locations().cloned().collect::<Vec<_>>() {
        let resources = resources.clone();
        tasks.push(tokio::spawn(async move { follow(resources, location).await }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

async fn follow(resources: Arc<Resources>, location: Arc<crate::resources::locations::Location>) {
    let shutdown = resources.services.shutdown.clone();
    let filter = resources.services.ownership.filter().has_label(crate::resources::containers::LABEL_RESOURCE);
    let policy = resources.services.config.settings.restart_policy();
    // Per instance: (consecutive crashes, when the last one was).
    let mut crashes: HashMap<String, (u32, Instant)> = HashMap::new();
    loop {
        let mut events = location.engine.events(&filter);
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                _ = shutdown.cancelled() => return,
            };
            let Some(Ok(event)) = event else { break };
            if !matches!(event.kind, ContainerEventKind::Die { .. }) {
                continue;
            }
            let Some(instance_id) = event.labels.get(crate::resources::containers::LABEL_RESOURCE).cloned() else {
                continue;
            };
            let key = instance_id.clone();
            let Ok(Some(instance)) = resources.db(move |s| s.resource_instance(&key)).await else { continue };
            if !matches!(instance.state.as_str(), ACTIVE | INACTIVE) {
                tracing::info!(instance = %instance_id, state = %instance.state, "a resource container exited; it is not restarted in this state");
                continue;
            }
            if resources
                .services
                .journal
                .open_entry_of(&Subject::Resource(instance_id.clone()))
                .await
                .ok()
                .flatten()
                .is_some()
            {
                continue;
            }
            let entry = crashes.entry(instance_id.clone()).or_insert((0, Instant::now()));
            if entry.1.elapsed() > policy.stable_after {
                entry.0 = 0;
            }
            entry.0 += 1;
            entry.1 = Instant::now();
            if entry.0 > policy.max_crashes {
                tracing::error!(instance = %instance_id, crashes = entry.0, "a resource container keeps crashing; it is left stopped");
                let mut broken = instance.clone();
                broken.state = "Broken".into();
                let _ = resources.db(move |s| s.put_instance(&broken)).await;
                continue;
            }
            let base = policy.initial_backoff.saturating_mul(1 << (entry.0 - 1).min(16)).min(policy.max_backoff);
            // ± jitter, as apps get it, so restarts of many instances spread out.
            let spread = 1.0 + policy.jitter * (2.0 * (resources.services.jitter)() - 1.0);
            let delay = base.mul_f64(spread.max(0.0));
            tracing::warn!(instance = %instance_id, container = %event.container_id, delay_ms = delay.as_millis() as u64, "a resource container exited; restarting it");
            let engine = location.engine.clone();
            let id = event.container_id.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return,
                }
                if let Err(e) = engine.start(&id).await {
                    tracing::warn!(container = %id, error = %e, "cannot restart a resource container");
                }
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
