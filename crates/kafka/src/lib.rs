//! Publishing on a Kafka topic: berth, as an OSLM resource manager, answers
//! transitions asynchronously by publishing the responses on a Kafka topic.
//!
//! The client is [rskafka] (pure Rust, tokio). The API is deliberately small:
//! a [`Publisher`] bound to one topic (partition 0, which it creates with one
//! partition when missing, as a broker that auto-creates topics would), and
//! [`read_all`] for tests.
//!
//! Every call is bounded by the timeout given to it (or to
//! [`Publisher::connect`]); within it, a broken connection is retried with a
//! short backoff, so a broker that comes back within the timeout is used.
//!
//! # Reconnection
//!
//! The same [`Publisher`] keeps working across a broker restart: its next
//! [`Publisher::publish`] reconnects, and when the broker lost the topic
//! (in-memory storage) creates it again and publishes. No re-`connect` is
//! needed. While no broker answers, `publish` fails within its timeout with
//! [`KafkaError::Unreachable`].
//!
//! Delivery is at least once: a publish that failed or timed out after the
//! broker received it may, when the caller repeats it, store its records twice.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rskafka::chrono::{DateTime, Utc};
use rskafka::client::error::{Error as ClientError, ProtocolError, RequestError};
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use rskafka::{BackoffConfig, BackoffError, ConnectionError};

/// The only partition berth writes and reads.
const PARTITION: i32 = 0;
/// Upper bound of one fetch response in [`read_all`].
const FETCH_MAX_BYTES: i32 = 8 * 1024 * 1024;
/// How long the broker may hold a fetch that has nothing yet.
const FETCH_MAX_WAIT_MS: i32 = 100;
/// Pause between two attempts when a just-created topic is not visible yet.
const TOPIC_POLL: Duration = Duration::from_millis(50);

/// What went wrong, with the broker address (the bootstrap list, comma
/// separated) and the topic.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// No broker could be reached (refused, reset, or no answer within the timeout).
    #[error("Kafka broker {broker} is unreachable (topic {topic}): {detail}")]
    Unreachable { broker: String, topic: String, detail: String },
    /// A broker answered, with an error or an answer that could not be used.
    #[error("Kafka broker {broker} failed to {operation} (topic {topic}): {source}")]
    Broker {
        broker: String,
        topic: String,
        operation: &'static str,
        #[source]
        source: Box<ClientError>,
    },
    /// The bootstrap list is empty.
    #[error("no Kafka broker given (topic {topic})")]
    NoBroker { topic: String },
}

/// Publishes records on partition 0 of one topic.
#[derive(Debug)]
pub struct Publisher {
    broker: String,
    topic: String,
    timeout: Duration,
    client: Client,
    partition: PartitionClient,
}

impl Publisher {
    /// Connects to the brokers in `bootstrap` (`host:port` each) and creates
    /// `topic` with one partition if it does not exist. Bounded by `timeout`,
    /// which also bounds each later [`publish`](Self::publish).
    pub async fn connect(bootstrap: &[String], topic: &str, timeout: Duration) -> Result<Publisher, KafkaError> {
        let ctx = Ctx::new(bootstrap, topic, timeout)?;
        let last = LastError::default();
        let (client, partition) = ctx
            .bounded(&last, async {
                let client = ctx.client().await.map_err(|e| (e, "connect"))?;
                ensure_topic(&client, topic, timeout).await.map_err(|e| (e, "create the topic"))?;
                let partition = loop {
                    match client.partition_client(topic, PARTITION, UnknownTopicHandling::Error).await {
                        Ok(p) => break p,
                        // Created a moment ago, not in the metadata yet.
                        Err(e) if topic_missing(&e) => {
                            last.set(e, "find the topic's leader");
                            tokio::time::sleep(TOPIC_POLL).await;
                        }
                        Err(e) => return Err((e, "find the topic's leader")),
                    }
                };
                Ok((client, partition))
            })
            .await?;
        Ok(Publisher { broker: ctx.broker, topic: topic.to_owned(), timeout, client, partition })
    }

    /// Publishes one record per payload (no key, the payload as value), in
    /// order, in one batch acknowledged by all in-sync replicas. Bounded by
    /// the timeout given to [`connect`](Self::connect). Reconnects, and
    /// creates the topic again, when the broker was restarted.
    pub async fn publish(&self, payloads: &[Vec<u8>]) -> Result<(), KafkaError> {
        if payloads.is_empty() {
            return Ok(());
        }
        let ctx = Ctx { broker: self.broker.clone(), topic: self.topic.clone(), timeout: self.timeout };
        let last = LastError::default();
        ctx.bounded(&last, async {
            let mut created = false;
            loop {
                let timestamp = now();
                let records = payloads
                    .iter()
                    .map(|p| Record { key: None, value: Some(p.clone()), headers: BTreeMap::new(), timestamp })
                    .collect();
                match self.partition.produce(records, Compression::NoCompression).await {
                    Ok(_) => return Ok(()),
                    // The broker lost the topic (restarted with in-memory storage).
                    Err(e) if topic_missing(&e) => {
                        last.set(e, "publish");
                        if created {
                            tokio::time::sleep(TOPIC_POLL).await;
                        } else {
                            ensure_topic(&self.client, &self.topic, self.timeout)
                                .await
                                .map_err(|e| (e, "create the topic"))?;
                            created = true;
                        }
                    }
                    Err(e) => return Err((e, "publish")),
                }
            }
        })
        .await
    }

    /// The topic this publisher writes.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

/// Reads every record of partition 0 of `topic`, from the earliest kept
/// offset up to the end as it is when the call starts, and returns their
/// values (an empty one for a record without value). A topic that does not
/// exist reads as empty. Bounded by `timeout`.
pub async fn read_all(bootstrap: &[String], topic: &str, timeout: Duration) -> Result<Vec<Vec<u8>>, KafkaError> {
    let ctx = Ctx::new(bootstrap, topic, timeout)?;
    ctx.bounded(&LastError::default(), async {
        let client = ctx.client().await.map_err(|e| (e, "connect"))?;
        let partition = match client.partition_client(topic, PARTITION, UnknownTopicHandling::Error).await {
            Ok(p) => p,
            Err(e) if topic_missing(&e) => return Ok(Vec::new()),
            Err(e) => return Err((e, "find the topic's leader")),
        };
        let mut offset = partition.get_offset(OffsetAt::Earliest).await.map_err(|e| (e, "read the start offset"))?;
        // The end is the high watermark of the first fetch: tansu 0.6.0 answers
        // ListOffsets(latest) with the last batch's base offset + 1, not the end.
        let mut end = None;
        let mut values = Vec::new();
        loop {
            let (records, high_watermark) = partition
                .fetch_records(offset, 1..FETCH_MAX_BYTES, FETCH_MAX_WAIT_MS)
                .await
                .map_err(|e| (e, "fetch records"))?;
            let end = *end.get_or_insert(high_watermark);
            for r in records {
                if r.offset < offset {
                    continue;
                }
                if r.offset >= end {
                    break;
                }
                values.push(r.record.value.unwrap_or_default());
                offset = r.offset + 1;
            }
            if offset >= end {
                break;
            }
        }
        Ok(values)
    })
    .await
}

/// Broker address, topic and timeout of one call, to bound it and name them in its error.
struct Ctx {
    broker: String,
    topic: String,
    timeout: Duration,
}

/// An error and the operation that met it.
type Failure = (ClientError, &'static str);

/// The last error a call retried on before its timeout ran out.
#[derive(Default)]
struct LastError(std::sync::Mutex<Option<Failure>>);

impl LastError {
    fn set(&self, e: ClientError, operation: &'static str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((e, operation));
    }

    fn take(&self) -> Option<Failure> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl Ctx {
    fn new(bootstrap: &[String], topic: &str, timeout: Duration) -> Result<Ctx, KafkaError> {
        if bootstrap.is_empty() {
            return Err(KafkaError::NoBroker { topic: topic.to_owned() });
        }
        Ok(Ctx { broker: bootstrap.join(","), topic: topic.to_owned(), timeout })
    }

    async fn client(&self) -> Result<Client, ClientError> {
        let bootstrap = self.broker.split(',').map(str::to_owned).collect();
        ClientBuilder::new(bootstrap).client_id("berth").backoff_config(backoff()).build().await
    }

    /// Runs `work` within the timeout. `work` may record in `last` the error
    /// it retried on, which the error names when the timeout runs out.
    async fn bounded<T>(
        &self,
        last: &LastError,
        work: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, KafkaError> {
        // Most of the time for the work; the rest to find out why it got no answer.
        let budget = self.timeout.mul_f64(0.9);
        let outcome = tokio::time::timeout(budget, work).await;
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err((e, operation))) => Err(self.error(e, operation)),
            Err(_elapsed) => match last.take() {
                Some((e, operation)) if !is_transport(&e) => Err(self.error(e, operation)),
                _ => Err(KafkaError::Unreachable {
                    broker: self.broker.clone(),
                    topic: self.topic.clone(),
                    detail: format!("no answer within {budget:?}; {}", self.probe(self.timeout - budget).await),
                }),
            },
        }
    }

    /// Whether each broker accepts a TCP connection, said in words, within `limit`.
    async fn probe(&self, limit: Duration) -> String {
        let brokers: Vec<&str> = self.broker.split(',').collect();
        let each = limit / u32::try_from(brokers.len()).unwrap_or(u32::MAX).max(1);
        let mut said = Vec::new();
        for broker in brokers {
            said.push(match tokio::time::timeout(each, tokio::net::TcpStream::connect(broker)).await {
                Ok(Ok(_)) => format!("{broker} accepts connections, but the request got no usable answer"),
                Ok(Err(e)) => format!("{broker}: {e}"),
                Err(_) => format!("{broker}: no connection within {each:?}"),
            });
        }
        said.join("; ")
    }

    fn error(&self, e: ClientError, operation: &'static str) -> KafkaError {
        if is_transport(&e) {
            KafkaError::Unreachable { broker: self.broker.clone(), topic: self.topic.clone(), detail: e.to_string() }
        } else {
            KafkaError::Broker {
                broker: self.broker.clone(),
                topic: self.topic.clone(),
                operation,
                source: Box::new(e),
            }
        }
    }
}

/// Retries within rskafka (reconnecting after a broken connection, waiting
/// for a leader) back off briefly and go on until the caller's timeout, so a
/// broker that comes back within it is used.
fn backoff() -> BackoffConfig {
    BackoffConfig {
        init_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        base: 3.0,
        deadline: None,
    }
}

/// The record timestamp (rskafka's chrono comes without its clock feature).
fn now() -> DateTime<Utc> {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    DateTime::from_timestamp_millis(i64::try_from(millis).unwrap_or(i64::MAX)).unwrap_or_default()
}

/// Creates the topic with one partition (replication factor 1); an existing one is fine.
async fn ensure_topic(client: &Client, topic: &str, timeout: Duration) -> Result<(), ClientError> {
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    match client.controller_client()?.create_topic(topic, 1, 1, timeout_ms).await {
        Ok(()) => Ok(()),
        Err(e) if topic_exists(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The error rskafka's retries gave up on, or `e` itself.
fn innermost(e: &ClientError) -> &ClientError {
    match e {
        ClientError::RetryFailed(BackoffError::DeadlineExceded { source, .. }) => {
            source.downcast_ref::<ClientError>().map_or(e, innermost)
        }
        _ => e,
    }
}

fn topic_missing(e: &ClientError) -> bool {
    match innermost(e) {
        ClientError::ServerError { protocol_error: ProtocolError::UnknownTopicOrPartition, .. } => true,
        // A broker that answers metadata for a missing topic without its partitions.
        ClientError::InvalidResponse(m) => m.starts_with("Could not find metadata for partition"),
        _ => false,
    }
}

fn topic_exists(e: &ClientError) -> bool {
    matches!(innermost(e), ClientError::ServerError { protocol_error: ProtocolError::TopicAlreadyExists, .. })
}

/// Whether `e` means no broker could be talked to (as opposed to a broker's answer).
fn is_transport(e: &ClientError) -> bool {
    match e {
        ClientError::Connection(_) | ClientError::Timeout => true,
        ClientError::Request(r) => matches!(r, RequestError::IO(_) | RequestError::Poisoned(_)),
        ClientError::RetryFailed(BackoffError::DeadlineExceded { source, .. }) => {
            if let Some(inner) = source.downcast_ref::<ClientError>() {
                is_transport(inner)
            } else if let Some(r) = source.downcast_ref::<RequestError>() {
                matches!(r, RequestError::IO(_) | RequestError::Poisoned(_))
            } else {
                source.downcast_ref::<ConnectionError>().is_some()
            }
        }
        _ => false,
    }
}
