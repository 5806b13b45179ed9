//! The event log: every state change, with an id that only grows
//! (`AUTOINCREMENT`: an id is never reused, even after the oldest events are
//! trimmed), kept for a bounded count and age. Times are milliseconds since
//! the Unix epoch.

use crate::{sql, Result, Store};
use rusqlite::params;

pub(crate) const TABLES: &str = "
CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    name    TEXT NOT NULL,
    data    TEXT NOT NULL
);
CREATE INDEX events_at ON events(at);
";

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub at: i64,
    /// `app.running`, `operation.committed`, `daemon.engine_lost`, …
    pub kind: String,
    /// What it is about: an app, an operation's subject, a request id.
    pub name: String,
    /// JSON.
    pub data: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub name: String,
    pub data: String,
}

impl Store {
    /// Appends `events` in one transaction; returns them with their ids.
    pub fn append_events(&self, events: &[NewEvent]) -> Result<Vec<StoredEvent>> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("appending events"))?;
            let mut stored = Vec::with_capacity(events.len());
            {
                let mut insert = tx
                    .prepare_cached("INSERT INTO events (at, kind, name, data) VALUES (?1, ?2, ?3, ?4)")
                    .map_err(sql("appending events"))?;
                for e in events {
                    insert.execute(params![e.at, e.kind, e.name, e.data]).map_err(sql("appending events"))?;
                    stored.push(StoredEvent {
                        id: tx.last_insert_rowid(),
                        at: e.at,
                        kind: e.kind.clone(),
                        name: e.name.clone(),
                        data: e.data.clone(),
                    });
                }
            }
            tx.commit().map_err(sql("appending events"))?;
            Ok(stored)
        })
    }

    /// Up to `limit` events after id `after`, oldest first.
    pub fn events_after(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>> {
        self.with(|c| {
            let mut query = c
                .prepare_cached("SELECT id, at, kind, name, data FROM events WHERE id > ?1 ORDER BY id LIMIT ?2")
                .map_err(sql("reading events"))?;
            let rows = query
                .query_map(params![after, limit], |r| {
                    Ok(StoredEvent { id: r.get(0)?, at: r.get(1)?, kind: r.get(2)?, name: r.get(3)?, data: r.get(4)? })
                })
                .map_err(sql("reading events"))?;
            rows.map(|r| r.map_err(sql("reading events"))).collect()
        })
    }

    /// The oldest and newest ids kept (`None` when there are none), and the
    /// last id ever given (0 before the first event).
    pub fn event_bounds(&self) -> Result<(Option<i64>, i64)> {
        self.with(|c| {
            let first: Option<i64> =
                c.query_row("SELECT MIN(id) FROM events", [], |r| r.get(0)).map_err(sql("reading events"))?;
            let last: i64 = c
                .query_row("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)", [], |r| {
                    r.get(0)
                })
                .map_err(sql("reading events"))?;
            Ok((first, last))
        })
    }

    /// Forgets events beyond the newest `keep` and those older than `before`.
    pub fn trim_events(&self, keep: i64, before: i64) -> Result<usize> {
        self.with(|c| {
            let old = c.execute("DELETE FROM events WHERE at < ?1", params![before]).map_err(sql("trimming events"))?;
            let many = c
                .execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?1", params![keep])
                .map_err(sql("trimming events"))?;
            Ok(old + many)
        })
    }
}
