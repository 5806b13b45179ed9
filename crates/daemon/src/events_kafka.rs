//! Publishing the event log to Kafka (`[events.kafka]`, opt-in). The event
//! log itself is the durable outbox: the publisher keeps the id of the last
//! event the broker acknowledged in `<root>/events-kafka.json` (written
//! atomically after each batch), and sends what follows it, in order, at
//! least once, across broker outages and restarts of either side. Events
//! trimmed by retention before they could be sent are announced by one
//! `gap` message, as a follower of `/v1/events` is told. A first start
//! begins with the events stored from then on.

use crate::config::EventKafkaSettings;
use crate::services::Services;
use berth_store::StoredEvent;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const BATCH: i64 = 500;
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);
/// Where the publisher keeps its place.
pub const POSITION_FILE: &str = "events-kafka.json";

#[derive(Debug, Serialize, Deserialize)]
struct Position {
    topic: String,
    /// The last event the broker acknowledged.
    published: i64,
}

fn read_position(file: &Path, topic: &str) -> Option<i64> {
    let text = std::fs::read(file).ok()?;
    let position: Position = serde_json::from_slice(&text).ok()?;
    // Another topic starts afresh: it has none of this log.
    (position.topic == topic).then_some(position.published)
}

fn message(event: &StoredEvent) -> Vec<u8> {
    serde_json::to_vec(&crate::events::view(event)).unwrap_or_default()
}

/// Whether `kind` is one the settings select (prefixes of whole dotted words).
fn selected(settings: &EventKafkaSettings, kind: &str) -> bool {
    settings.kinds.is_empty() || settings.kinds.iter().any(|k| berth_api::kind_is(kind, k))
}

/// Publishes until the daemon shuts down.
pub async fn publish(services: Arc<Services>) {
    let Some(settings) = services.config.settings.events.kafka.clone() else { return };
    let file: PathBuf = services.config.root.join(POSITION_FILE);
    let store = services.store.clone();
    let topic = settings.topic.clone();
    let position = {
        let (file, topic, store) = (file.clone(), topic.clone(), store.clone());
        crate::fs::blocking("reading the Kafka position", move || {
            Ok::<_, crate::fs::TaskFailed>(match read_position(&file, &topic) {
                Some(published) => published,
                None => store.event_bounds().map(|(_, last)| last).unwrap_or(0),
            })
        })
        .await
    };
    let Ok(mut published) = position else { return };
    tracing::info!(%topic, after = published, "publishing events to Kafka");
    let mut live = services.events.subscribe();
    let shutdown = services.shutdown.clone();
    let mut publisher: Option<berth_kafka::Publisher> = None;
    let mut backoff = BACKOFF_MIN;
    loop {
        let (first, batch) = {
            let store = store.clone();
            crate::fs::blocking("reading events to publish", move || {
                let first = store.event_bounds().map(|(first, _)| first).unwrap_or(None);
                Ok::<_, crate::fs::TaskFailed>((first, store.events_after(published, BATCH).unwrap_or_default()))
            })
            .await
            .unwrap_or((None, Vec::new()))
        };
        if batch.is_empty() {
            tokio::select! {
                _ = live.recv() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = shutdown.cancelled() => return,
            }
            continue;
        }
        let mut payloads = Vec::new();
        if let Some(first) = first.filter(|first| *first > published + 1) {
            let gap = serde_json::json!({ "kind": "gap", "from": published + 1, "to": first - 1 });
            payloads.push(gap.to_string().into_bytes());
        }
        payloads.extend(batch.iter().filter(|e| selected(&settings, &e.kind)).map(message));
        let last = batch.last().map_or(published, |e| e.id);
        let sent = async {
            if publisher.is_none() {
                publisher =
                    Some(berth_kafka::Publisher::connect(&settings.bootstrap_servers, &topic, BROKER_TIMEOUT).await?);
            }
            match (&publisher, payloads.is_empty()) {
                (Some(p), false) => p.publish(&payloads).await,
                _ => Ok(()),
            }
        }
        .await;
        match sent {
            Ok(()) => {
                backoff = BACKOFF_MIN;
                published = last;
                let position = Position { topic: topic.clone(), published };
                let file = file.clone();
                let written = crate::fs::blocking("writing the Kafka position", move || {
                    berth_fs::atomic_write(&file, &serde_json::to_vec(&position).unwrap_or_default()).map_err(|e| {
                        crate::fs::TaskFailed { what: "writing the Kafka position", reason: e.to_string() }
                    })
                })
                .await;
                if let Err(e) = written {
                    tracing::warn!(error = %e, "cannot record how far events were published; some may be sent again");
                }
            }
            Err(e) => {
                publisher = None;
                tracing::warn!(error = %e, %topic, retry_in_ms = backoff.as_millis() as u64, "events not published to Kafka; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_select_whole_dotted_words() {
        let mut settings =
            EventKafkaSettings { bootstrap_servers: vec!["x:9092".into()], topic: "t".into(), kinds: Vec::new() };
        assert!(selected(&settings, "app.running"));
        settings.kinds = vec!["app".into(), "resource.request".into()];
        assert!(selected(&settings, "app.running"));
        assert!(selected(&settings, "resource.request"));
        assert!(!selected(&settings, "apps.running"));
        assert!(!selected(&settings, "resource.type"));
    }

    #[test]
    fn a_position_of_another_topic_is_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(POSITION_FILE);
        std::fs::write(&file, br#"{"topic":"a","published":41}"#).unwrap();
        assert_eq!(read_position(&file, "a"), Some(41));
        assert_eq!(read_position(&file, "b"), None);
        std::fs::write(&file, b"garbage").unwrap();
        assert_eq!(read_position(&file, "a"), None);
    }
}
