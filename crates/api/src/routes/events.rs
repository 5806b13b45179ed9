//! `/v1/events`: server-sent events. Each event is sent as `id:` (its id),
//! `event:` (its kind) and `data:` (the event as JSON); a gap as `event: gap`
//! without an id, so the follower's `Last-Event-ID` stays where it was.

use crate::error::Query;
use crate::{ApiError, EventItem, EventView, EventsQuery};
use async_trait::async_trait;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::stream::BoxStream;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use utoipa::OpenApi;

#[async_trait]
pub trait EventsManager: Send + Sync + 'static {
    /// The events after `query.since` that pass its filters; with `follow`,
    /// then every new one, until the client goes away.
    async fn stream(&self, query: EventsQuery) -> Result<BoxStream<'static, EventItem>, ApiError>;
}

type Shared = State<Arc<dyn EventsManager>>;

#[derive(OpenApi)]
#[openapi(paths(events), components(schemas(EventView)))]
pub struct Doc;

pub fn routes(manager: Arc<dyn EventsManager>) -> Router {
    Router::new().route("/v1/events", get(events)).with_state(manager)
}

/// The event stream (`text/event-stream`), resumable with `Last-Event-ID`.
#[utoipa::path(get, path = "/v1/events", params(EventsQuery),
    responses((status = 200, description = "server-sent events", content_type = "text/event-stream"),
        (status = 400, body = ApiError)))]
async fn events(State(m): Shared, headers: HeaderMap, Query(mut query): Query<EventsQuery>) -> Response {
    if let Some(last) = headers.get("last-event-id") {
        match last.to_str().ok().and_then(|v| v.trim().parse::<i64>().ok()) {
            Some(id) => query.since = Some(id),
            None => {
                return ApiError::new(crate::ErrorKind::InvalidInput, "Last-Event-ID is not an event id")
                    .into_response()
            }
        }
    }
    match m.stream(query).await {
        Err(e) => e.into_response(),
        Ok(stream) => {
            let frames = stream.map(|item| Ok::<_, std::convert::Infallible>(frame(item)));
            Sse::new(frames).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
        }
    }
}

fn frame(item: EventItem) -> Event {
    match item {
        EventItem::Event(e) => Event::default()
            .id(e.id.to_string())
            .event(e.kind.clone())
            .data(serde_json::to_string(&e).unwrap_or_default()),
        EventItem::Gap { after, next } => Event::default().event("gap").data(
            serde_json::json!({
                "after": after,
                "next": next,
                "message": format!("events {} to {} are no longer kept", after + 1, next - 1),
            })
            .to_string(),
        ),
    }
}
