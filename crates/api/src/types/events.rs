//! Wire types of `/v1/events`: every state change, in order, resumable.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// One event. Its `id` only grows; a follower that reconnects with
/// `Last-Event-ID` (or `since`) gets every event after it that is still kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// `app.running`, `operation.committed`, `resource.request`, `daemon.engine_lost`, …
    pub kind: String,
    /// What it is about: an app, an operation's subject, a request id, …
    pub name: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// What a stream carries: an event, or a gap — events that were missed and
/// are no longer kept (retention) — so a follower knows it lost them.
#[derive(Debug, Clone, PartialEq)]
pub enum EventItem {
    Event(EventView),
    /// Events after `after` and before `next` are gone.
    Gap {
        after: i64,
        next: i64,
    },
}

/// `GET /v1/events?follow=&since=&kind=&name=`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Keep the stream open and send new events as they happen.
    #[serde(default)]
    pub follow: bool,
    /// Events after this id (the `Last-Event-ID` header wins over it).
    #[serde(default)]
    pub since: Option<i64>,
    /// Only kinds starting with one of these, comma-separated (`app,operation.committed`).
    #[serde(default)]
    pub kind: Option<String>,
    /// Only events about this name.
    #[serde(default)]
    pub name: Option<String>,
    /// Without `since`: start with (those of) the last N events stored, not with everything kept.
    #[serde(default)]
    pub tail: Option<u64>,
}

impl EventsQuery {
    /// Whether `event` passes the filters.
    pub fn selects(&self, event: &EventView) -> bool {
        let kind_ok = self.kind.as_deref().is_none_or(|kinds| {
            kinds.split(',').map(str::trim).filter(|k| !k.is_empty()).any(|k| kind_is(&event.kind, k))
        });
        kind_ok && self.name.as_deref().is_none_or(|name| event.name == name)
    }
}

/// Whether `kind` is `selector` or within it, by whole dotted words
/// (`app` selects `app.running`, not `apps.running`).
pub fn kind_is(kind: &str, selector: &str) -> bool {
    kind == selector || kind.strip_prefix(selector).is_some_and(|rest| rest.starts_with('.'))
}
