//! The event log, a shared service: every state change is emitted here
//! (without waiting), written to the store in batches by one task, and sent
//! to the followers of `/v1/events` once it is stored — so a follower sees
//! exactly what a reconnecting one would read back. A follower subscribes
//! before it reads the stored backlog and skips what it has sent, so nothing
//! falls between the two; one that falls behind the live feed reads the
//! store again, and one that asks for events no longer kept gets a gap.

use crate::config::EventSettings;
use crate::fs::{blocking, TaskFailed};
use async_trait::async_trait;
use berth_api::routes::events::EventsManager;
use berth_api::{ApiError, EventItem, EventView, EventsQuery};
use berth_store::{NewEvent, Store, StoredEvent};
use futures::stream::BoxStream;
use futures::StreamExt;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Events written in one transaction at most.
const BATCH: usize = 512;
/// Events read from the store at a time by a follower.
const PAGE: i64 = 500;
/// Live events a follower may fall behind by before it reads the store again.
const LIVE: usize = 4096;
/// Retention is applied after this many events (and at start).
const TRIM_EVERY: usize = 1000;

pub struct Events {
    queue: mpsc::UnboundedSender<NewEvent>,
    live: broadcast::Sender<Arc<StoredEvent>>,
    store: Store,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// The log, and its writer (run it with [`Events::write`]).
    pub fn new(store: Store) -> (Arc<Self>, Writer) {
        let (queue, pending) = mpsc::unbounded_channel();
        let (live, _) = broadcast::channel(LIVE);
        (Arc::new(Self { queue, live, store }), Writer { pending })
    }

    /// Records that something changed. Never waits; after shutdown it is dropped.
    pub fn emit(&self, kind: &str, name: &str, data: serde_json::Value) {
        let event = NewEvent {
            at: berth_store::now_ms(),
            kind: kind.to_owned(),
            name: name.to_owned(),
            data: data.to_string(),
        };
        let _ = self.queue.send(event);
    }

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, berth_store::StoreError> + Send + 'static,
    ) -> Result<T, String> {
        let store = self.store.clone();
        blocking("the event log", move || {
            f(&store).map_err(|e| TaskFailed { what: "the event log", reason: e.to_string() })
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// The live feed of stored events (for the metrics).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.live.subscribe()
    }

    /// The events `query` asks for, as a stream (see the module's comment).
    pub fn stream(self: &Arc<Self>, query: EventsQuery) -> BoxStream<'static, EventItem> {
        self.stream_after(query.since.unwrap_or(0), query.since.is_none(), query)
    }

    /// The stream from after id `after`; `no_gap`: a reader that named no
    /// position (all that is kept, or a tail) is told of no gap.
    fn stream_after(self: &Arc<Self>, after: i64, no_gap: bool, query: EventsQuery) -> BoxStream<'static, EventItem> {
        let follower = Follower {
            events: self.clone(),
            live: self.live.subscribe(),
            after,
            checked_gap: no_gap,
            backlog: std::collections::VecDeque::new(),
            reading_store: true,
            query,
        };
        futures::stream::unfold(follower, |mut f| async move { f.next().await.map(|item| (item, f)) }).boxed()
    }
}

/// The one task that writes events.
pub struct Writer {
    pending: mpsc::UnboundedReceiver<NewEvent>,
}

impl Writer {
    pub async fn write(mut self, events: Arc<Events>, settings: EventSettings, shutdown: CancellationToken) {
        let mut since_trim = TRIM_EVERY;
        loop {
            let first = tokio::select! {
                event = self.pending.recv() => event,
                // What is queued at shutdown is still written.
                _ = shutdown.cancelled() => self.pending.try_recv().ok(),
            };
            let Some(first) = first else { return };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match self.pending.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
            since_trim += batch.len();
            match events.db(move |s| s.append_events(&batch)).await {
                Ok(stored) => {
                    for event in stored {
                        let _ = events.live.send(Arc::new(event));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "events could not be recorded"),
            }
            if since_trim >= TRIM_EVERY {
                since_trim = 0;
                let (keep, before) = (settings.max_count as i64, berth_store::now_ms() - settings.max_age_ms());
                if let Err(e) = events.db(move |s| s.trim_events(keep, before)).await {
                    tracing::warn!(error = %e, "old events could not be trimmed");
                }
            }
        }
    }
}

struct Follower {
    events: Arc<Events>,
    live: broadcast::Receiver<Arc<StoredEvent>>,
    /// The last id sent (or skipped by the filters).
    after: i64,
    checked_gap: bool,
    backlog: std::collections::VecDeque<StoredEvent>,
    /// Reading the stored events; false once caught up with the live feed.
    reading_store: bool,
    query: EventsQuery,
}

impl Follower {
    async fn next(&mut self) -> Option<EventItem> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                if let Some(item) = self.pass(&event) {
                    return Some(item);
                }
                continue;
            }
            if self.reading_store {
                if !self.checked_gap {
                    self.checked_gap = true;
                    if let Ok((first, last)) = self.events.db(|s| s.event_bounds()).await {
                        let oldest = first.unwrap_or(last + 1);
                        if self.after + 1 < oldest && self.after < last {
                            let gap = EventItem::Gap { after: self.after, next: oldest };
                            self.after = oldest - 1;
                            return Some(gap);
                        }
                    }
                }
                let after = self.after;
                match self.events.db(move |s| s.events_after(after, PAGE)).await {
                    Ok(page) if !page.is_empty() => self.backlog.extend(page),
                    Ok(_) => {
                        self.reading_store = false;
                        if !self.query.follow {
                            return None;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "a follower cannot read the event log");
                        return None;
                    }
                }
                continue;
            }
            match self.live.recv().await {
                Ok(event) => {
                    if let Some(item) = self.pass(&event) {
                        return Some(item);
                    }
                }
                // Fell behind: what it missed is in the store (or, trimmed, a gap).
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.reading_store = true;
                    self.checked_gap = false;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The item for `event`, if it is new to this follower and selected.
    fn pass(&mut self, event: &StoredEvent) -> Option<EventItem> {
        if event.id <= self.after {
            return None;
        }
        self.after = event.id;
        let view = view(event);
        self.query.selects(&view).then_some(EventItem::Event(view))
    }
}

/// A stored event as the API shows it.
pub fn view(event: &StoredEvent) -> EventView {
    EventView {
        id: event.id,
        at: event.at,
        kind: event.kind.clone(),
        name: event.name.clone(),
        data: serde_json::from_str(&event.data).unwrap_or_default(),
    }
}

pub struct EventsApi(pub Arc<Events>);

#[async_trait]
impl EventsManager for EventsApi {
    async fn stream(&self, query: EventsQuery) -> Result<BoxStream<'static, EventItem>, ApiError> {
        if query.since.is_some_and(|s| s < 0) {
            return Err(ApiError::new(berth_api::ErrorKind::InvalidInput, "since must not be negative"));
        }
        match (query.since, query.tail) {
            (Some(_), Some(_)) => {
                Err(ApiError::new(berth_api::ErrorKind::InvalidInput, "give since or tail, not both"))
            }
            (None, Some(tail)) => {
                // What is stored after the bounds are read has a later id: the follower reads it from the store.
                let (_, last) = self
                    .0
                    .db(|s| s.event_bounds())
                    .await
                    .map_err(|e| ApiError::new(berth_api::ErrorKind::Internal, e))?;
                let after = last.saturating_sub(i64::try_from(tail).unwrap_or(i64::MAX)).max(0);
                Ok(self.0.stream_after(after, true, query))
            }
            _ => Ok(self.0.stream(query)),
        }
    }
}
