//! Asynchronous transition responses: each one is written to the store's
//! outbox in the same transaction as its request's end, and delivered from
//! there to the Kafka topic — at least once, in order, across broker outages
//! and restarts of either side, retried with backoff. The outbox is bounded
//! (`[resource.kafka] outbox_limit`): past it the oldest are dropped, and
//! logged. Its depth is on `GET /outbox` and in `berth resource status`.

use crate::config::KafkaSettings;
use crate::resources::Resources;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

const BATCH: i64 = 100;
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Outbox {
    settings: Option<KafkaSettings>,
    /// Rung when a message is queued.
    pub wake: Notify,
    connected: AtomicBool,
}

impl Outbox {
    pub fn new(settings: Option<KafkaSettings>) -> Self {
        Self { settings, wake: Notify::new(), connected: AtomicBool::new(false) }
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }
}

/// Delivers the outbox until the daemon shuts down.
pub async fn deliver(resources: Arc<Resources>) {
    let Some(settings) = resources.outbox.settings.clone() else {
        return;
    };
    let shutdown = resources.services.shutdown.clone();
    let mut backoff = BACKOFF_MIN;
    let mut publisher: Option<berth_kafka::Publisher> = None;
    loop {
        let batch = match resources.db(|s| s.outbox_batch(BATCH)).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                Vec::new()
            }
        };
        if batch.is_empty() {
            backoff = BACKOFF_MIN;
            tokio::select! {
                _ = resources.outbox.wake.notified() => {}
                // Also looks now and then: a message queued by a request that ended while this loop was busy.
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = shutdown.cancelled() => return,
            }
            continue;
        }
        let result = async {
            if publisher.is_none() {
                publisher = Some(
                    berth_kafka::Publisher::connect(&settings.bootstrap_servers, &settings.topic, BROKER_TIMEOUT)
                        .await?,
                );
            }
            let payloads: Vec<Vec<u8>> = batch.iter().map(|m| m.payload.clone().into_bytes()).collect();
            match publisher.as_ref() {
                Some(p) => p.publish(&payloads).await,
                None => Ok(()),
            }
        }
        .await;
        let ids: Vec<i64> = batch.iter().map(|m| m.id).collect();
        match result {
            Ok(()) => {
                resources.outbox.connected.store(true, Ordering::Release);
                backoff = BACKOFF_MIN;
                if let Err(e) = resources.db(move |s| s.outbox_delivered(&ids)).await {
                    tracing::error!(error = %e, "cannot clear delivered messages; they will be sent again");
                }
                tracing::debug!(messages = batch.len(), topic = %settings.topic, "responses delivered");
            }
            Err(e) => {
                resources.outbox.connected.store(false, Ordering::Release);
                publisher = None;
                let message = e.to_string();
                tracing::warn!(error = %message, waiting = batch.len(), retry_in_ms = backoff.as_millis() as u64, "responses not delivered; retrying");
                let _ = resources.db(move |s| s.outbox_failed(&ids, &message)).await;
                let limit = settings.outbox_limit;
                if let Ok(dropped) = resources.db(move |s| s.trim_outbox(limit)).await {
                    if dropped > 0 {
                        tracing::error!(dropped, limit, "the outbox is full; the oldest responses were dropped");
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}
