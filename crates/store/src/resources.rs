//! The resource manager's state: resource types, instances, transition
//! requests and the outbox of asynchronous responses. Times are milliseconds
//! since the Unix epoch. A request and the instance it changes are written in
//! the same transaction as the journal entry that runs it (`AppChange::Resource`),
//! and a finished request's response message in the same transaction as its
//! end, so no response is ever lost or sent for a request that did not end.

use crate::{sql, to_json, Result, Store, StoreError};
use rusqlite::{params, OptionalExtension, Row, Transaction};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// An onboarded resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredType {
    /// `resource::<name>::<version>`.
    pub name: String,
    /// The descriptor's YAML text, as onboarded.
    pub descriptor: String,
    /// PUBLISHED, UNPUBLISHED or DELETED.
    pub state: String,
    /// The package's digest (what decides whether it must be rebuilt).
    pub digest: String,
    /// The image's tag (`dockerrm_<name>`); empty for built-in types.
    pub image: String,
    /// What the daemon needs besides the descriptor (script maps), as JSON.
    pub package: serde_json::Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Something berth made for an instance (its container, networks, volumes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternalResource {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// Serialisable: a resource container keeps its instance's record as JSON
/// (`berth doctor --rebuild` reads it back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredInstance {
    pub id: String,
    pub name: String,
    pub type_name: String,
    pub location: String,
    /// Installing, Inactive (installed, not started), Active, Stopped, Broken.
    pub state: String,
    pub properties: BTreeMap<String, String>,
    pub internal: Vec<InternalResource>,
    /// The container's id, for types that run one.
    pub container: Option<String>,
    /// The image the instance runs (a re-onboarded type does not change it).
    pub image_id: Option<String>,
    pub metric_key: Option<String>,
    /// Discovered (made outside berth): its lifecycle cannot be driven.
    pub discovered: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredRequest {
    pub id: String,
    pub instance_id: String,
    /// `Install`, …, or an operation's name.
    pub transition: String,
    pub type_name: String,
    pub location: String,
    pub resource_name: String,
    /// PENDING, IN_PROGRESS, COMPLETED, FAILED.
    pub state: String,
    pub reason: Option<String>,
    pub failure_code: Option<String>,
    /// The request's properties (passwords masked).
    pub properties: BTreeMap<String, String>,
    pub context: BTreeMap<String, String>,
    /// The orchestrator's tracing headers.
    pub tracing: BTreeMap<String, String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl StoredRequest {
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "COMPLETED" | "FAILED" | "CANCELLED")
    }
}

/// A response waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: i64,
    pub topic: String,
    pub payload: String,
    pub attempts: i64,
}

/// What a resource transition's journal writes do to the resource tables.
#[derive(Debug, Clone)]
pub enum ResourceChange {
    /// A request is accepted (PENDING); an Install reserves its instance,
    /// refused when the location has one of that name.
    Accept { request: Box<StoredRequest>, reserve: Option<Box<StoredInstance>> },
    /// The request completed: the instance as it is now (or deleted), and
    /// the response to deliver.
    Complete {
        request_id: String,
        /// "Transition successfully completed in N msecs".
        reason: String,
        instance: Option<Box<StoredInstance>>,
        delete_instance: Option<String>,
        outbox: Option<(String, String)>,
    },
}

pub(crate) const TABLES: &str = "
CREATE TABLE resource_types (
    name        TEXT PRIMARY KEY,
    descriptor  TEXT NOT NULL,
    state       TEXT NOT NULL,
    digest      TEXT NOT NULL,
    image       TEXT NOT NULL,
    package     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE TABLE resource_instances (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    type        TEXT NOT NULL,
    location    TEXT NOT NULL,
    state       TEXT NOT NULL,
    properties  TEXT NOT NULL,
    internal    TEXT NOT NULL,
    container   TEXT,
    image_id    TEXT,
    metric_key  TEXT,
    discovered  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX one_instance_name_per_location ON resource_instances(location, name);
CREATE TABLE resource_requests (
    id             TEXT PRIMARY KEY,
    instance_id    TEXT NOT NULL,
    transition     TEXT NOT NULL,
    type           TEXT NOT NULL,
    location       TEXT NOT NULL,
    resource_name  TEXT NOT NULL,
    state          TEXT NOT NULL,
    reason         TEXT,
    failure_code   TEXT,
    pending_reason TEXT,
    pending_code   TEXT,
    properties     TEXT NOT NULL,
    context        TEXT NOT NULL,
    tracing        TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    started_at     INTEGER,
    finished_at    INTEGER
);
CREATE INDEX requests_by_instance ON resource_requests(instance_id);
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    topic       TEXT NOT NULL,
    payload     TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  INTEGER NOT NULL
);
";

fn json<T: for<'de> Deserialize<'de>>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt { what: what.to_owned(), reason: e.to_string() })
}

const TYPE_COLUMNS: &str = "name, descriptor, state, digest, image, package, created_at, updated_at";

fn row_to_type(row: &Row<'_>) -> rusqlite::Result<Result<StoredType>> {
    let name: String = row.get(0)?;
    let package: String = row.get(5)?;
    let (descriptor, state, digest, image, created_at, updated_at) =
        (row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(6)?, row.get(7)?);
    Ok(json(&package, &format!("resource type {name}")).map(|package| StoredType {
        name,
        descriptor,
        state,
        digest,
        image,
        package,
        created_at,
        updated_at,
    }))
}

const INSTANCE_COLUMNS: &str =
    "id, name, type, location, state, properties, internal, container, image_id, metric_key, discovered, created_at, updated_at";

fn row_to_instance(row: &Row<'_>) -> rusqlite::Result<Result<StoredInstance>> {
    let id: String = row.get(0)?;
    let properties: String = row.get(5)?;
    let internal: String = row.get(6)?;
    let what = format!("resource instance {id}");
    let (name, type_name, location, state) = (row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?);
    let (container, image_id, metric_key, discovered, created_at, updated_at) =
        (row.get(7)?, row.get(8)?, row.get(9)?, row.get(10)?, row.get(11)?, row.get(12)?);
    Ok((|| {
        Ok(StoredInstance {
            properties: json(&properties, &what)?,
            internal: json(&internal, &what)?,
            id,
            name,
            type_name,
            location,
            state,
            container,
            image_id,
            metric_key,
            discovered,
            created_at,
            updated_at,
        })
    })())
}

const REQUEST_COLUMNS: &str =
    "id, instance_id, transition, type, location, resource_name, state, reason, failure_code, \
     properties, context, tracing, created_at, started_at, finished_at";

fn row_to_request(row: &Row<'_>) -> rusqlite::Result<Result<StoredRequest>> {
    let id: String = row.get(0)?;
    let what = format!("transition request {id}");
    let (properties, context, tracing): (String, String, String) = (row.get(9)?, row.get(10)?, row.get(11)?);
    let (instance_id, transition, type_name, location, resource_name, state, reason, failure_code) =
        (row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?, row.get(8)?);
    let (created_at, started_at, finished_at) = (row.get(12)?, row.get(13)?, row.get(14)?);
    Ok((|| {
        Ok(StoredRequest {
            properties: json(&properties, &what)?,
            context: json(&context, &what)?,
            tracing: json(&tracing, &what)?,
            id,
            instance_id,
            transition,
            type_name,
            location,
            resource_name,
            state,
            reason,
            failure_code,
            created_at,
            started_at,
            finished_at,
        })
    })())
}

fn collect<T>(rows: impl Iterator<Item = rusqlite::Result<Result<T>>>, context: &'static str) -> Result<Vec<T>> {
    rows.map(|row| row.map_err(sql(context)).and_then(|r| r)).collect()
}

fn insert_instance(tx: &Transaction<'_>, i: &StoredInstance) -> Result<()> {
    tx.execute(
        &format!("INSERT INTO resource_instances ({INSTANCE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
        params![
            i.id,
            i.name,
            i.type_name,
            i.location,
            i.state,
            to_json(&i.properties),
            to_json(&i.internal),
            i.container,
            i.image_id,
            i.metric_key,
            i.discovered,
            i.created_at,
            i.updated_at
        ],
    )
    .map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => {
            StoreError::ResourceExists { name: i.name.clone(), location: i.location.clone() }
        }
        _ => sql("recording a resource instance")(e),
    })?;
    Ok(())
}

fn update_instance(tx: &Transaction<'_>, i: &StoredInstance) -> Result<()> {
    tx.execute(
        "UPDATE resource_instances SET state = ?2, properties = ?3, internal = ?4, container = ?5, image_id = ?6,
         metric_key = ?7, updated_at = ?8 WHERE id = ?1",
        params![
            i.id,
            i.state,
            to_json(&i.properties),
            to_json(&i.internal),
            i.container,
            i.image_id,
            i.metric_key,
            now_ms()
        ],
    )
    .map_err(sql("updating a resource instance"))?;
    Ok(())
}

fn enqueue(tx: &Transaction<'_>, outbox: &Option<(String, String)>) -> Result<()> {
    if let Some((topic, payload)) = outbox {
        tx.execute(
            "INSERT INTO outbox (topic, payload, created_at) VALUES (?1, ?2, ?3)",
            params![topic, payload, now_ms()],
        )
        .map_err(sql("queueing a response"))?;
    }
    Ok(())
}

pub(crate) fn apply(tx: &Transaction<'_>, change: ResourceChange) -> Result<()> {
    match change {
        ResourceChange::Accept { request: r, reserve } => {
            if let Some(instance) = reserve {
                insert_instance(tx, &instance)?;
            }
            tx.execute(
                &format!(
                    "INSERT INTO resource_requests ({REQUEST_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
                ),
                params![
                    r.id,
                    r.instance_id,
                    r.transition,
                    r.type_name,
                    r.location,
                    r.resource_name,
                    r.state,
                    r.reason,
                    r.failure_code,
                    to_json(&r.properties),
                    to_json(&r.context),
                    to_json(&r.tracing),
                    r.created_at,
                    r.started_at,
                    r.finished_at
                ],
            )
            .map_err(sql("recording a transition request"))?;
            Ok(())
        }
        ResourceChange::Complete { request_id, reason, instance, delete_instance, outbox } => {
            if let Some(instance) = instance {
                update_instance(tx, &instance)?;
            }
            if let Some(id) = delete_instance {
                tx.execute("DELETE FROM resource_instances WHERE id = ?1", [id])
                    .map_err(sql("removing a resource instance"))?;
            }
            let changed = tx
                .execute(
                    "UPDATE resource_requests SET state = 'COMPLETED', reason = ?2, failure_code = NULL, finished_at = ?3,
                     started_at = COALESCE(started_at, ?3) WHERE id = ?1 AND state IN ('PENDING', 'IN_PROGRESS')",
                    params![request_id, reason, now_ms()],
                )
                .map_err(sql("completing a transition request"))?;
            if changed != 1 {
                return Err(StoreError::Corrupt {
                    what: format!("transition request {request_id}"),
                    reason: "it is not open".into(),
                });
            }
            enqueue(tx, &outbox)
        }
    }
}

impl Store {
    /// Adds or replaces a resource type (keeping its creation time).
    pub fn put_type(&self, t: &StoredType) -> Result<()> {
        self.with(|c| {
            c.execute(
                &format!(
                    "INSERT INTO resource_types ({TYPE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT(name) DO UPDATE SET descriptor = excluded.descriptor, state = excluded.state,
                     digest = excluded.digest, image = excluded.image, package = excluded.package,
                     updated_at = excluded.updated_at"
                ),
                params![
                    t.name,
                    t.descriptor,
                    t.state,
                    t.digest,
                    t.image,
                    to_json(&t.package),
                    t.created_at,
                    t.updated_at
                ],
            )
            .map_err(sql("recording a resource type"))?;
            Ok(())
        })
    }

    pub fn resource_types(&self) -> Result<Vec<StoredType>> {
        self.with(|c| {
            let mut s = c
                .prepare_cached(&format!("SELECT {TYPE_COLUMNS} FROM resource_types ORDER BY name"))
                .map_err(sql("listing resource types"))?;
            let rows = s.query_map([], row_to_type).map_err(sql("listing resource types"))?;
            collect(rows, "listing resource types")
        })
    }

    pub fn resource_type(&self, name: &str) -> Result<Option<StoredType>> {
        self.with(|c| {
            c.query_row(&format!("SELECT {TYPE_COLUMNS} FROM resource_types WHERE name = ?1"), [name], row_to_type)
                .optional()
                .map_err(sql("reading a resource type"))?
                .transpose()
        })
    }

    /// Removes a type; refused while instances of it exist.
    pub fn delete_type(&self, name: &str) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("removing a resource type"))?;
            let users: i64 = tx
                .query_row("SELECT COUNT(*) FROM resource_instances WHERE type = ?1 AND discovered = 0", [name], |r| {
                    r.get(0)
                })
                .map_err(sql("removing a resource type"))?;
            if users > 0 {
                return Err(StoreError::TypeInUse { name: name.to_owned(), instances: users });
            }
            tx.execute("DELETE FROM resource_types WHERE name = ?1", [name])
                .map_err(sql("removing a resource type"))?;
            tx.commit().map_err(sql("removing a resource type"))
        })
    }

    /// Instances, optionally of one location, oldest first.
    pub fn resource_instances(&self, location: Option<&str>) -> Result<Vec<StoredInstance>> {
        self.with(|c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {INSTANCE_COLUMNS} FROM resource_instances WHERE ?1 IS NULL OR location = ?1 ORDER BY created_at, id"
                ))
                .map_err(sql("listing resource instances"))?;
            let rows = s.query_map([location], row_to_instance).map_err(sql("listing resource instances"))?;
            collect(rows, "listing resource instances")
        })
    }

    pub fn resource_instance(&self, id: &str) -> Result<Option<StoredInstance>> {
        self.one_instance("id = ?1", &[&id])
    }

    pub fn resource_instance_named(&self, location: &str, name: &str) -> Result<Option<StoredInstance>> {
        self.one_instance("location = ?1 AND name = ?2", &[&location, &name])
    }

    fn one_instance(&self, condition: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Option<StoredInstance>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {INSTANCE_COLUMNS} FROM resource_instances WHERE {condition}"),
                args,
                row_to_instance,
            )
            .optional()
            .map_err(sql("reading a resource instance"))?
            .transpose()
        })
    }

    /// Records an instance's state outside a transition (discovery, a crash seen).
    pub fn put_instance(&self, instance: &StoredInstance) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("recording a resource instance"))?;
            let exists: bool = tx
                .query_row("SELECT EXISTS(SELECT 1 FROM resource_instances WHERE id = ?1)", [&instance.id], |r| {
                    r.get(0)
                })
                .map_err(sql("recording a resource instance"))?;
            if exists {
                update_instance(&tx, instance)?;
            } else {
                insert_instance(&tx, instance)?;
            }
            tx.commit().map_err(sql("recording a resource instance"))
        })
    }

    /// Removes an instance's row; one that is gone already is fine.
    pub fn delete_instance(&self, id: &str) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM resource_instances WHERE id = ?1", [id])
                .map_err(sql("removing a resource instance"))?;
            Ok(())
        })
    }

    pub fn resource_request(&self, id: &str) -> Result<Option<StoredRequest>> {
        self.with(|c| {
            c.query_row(&format!("SELECT {REQUEST_COLUMNS} FROM resource_requests WHERE id = ?1"), [id], row_to_request)
                .optional()
                .map_err(sql("reading a transition request"))?
                .transpose()
        })
    }

    /// The requests of an instance, newest first.
    pub fn requests_of(&self, instance_id: &str) -> Result<Vec<StoredRequest>> {
        self.with(|c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {REQUEST_COLUMNS} FROM resource_requests WHERE instance_id = ?1 ORDER BY created_at DESC, id"
                ))
                .map_err(sql("listing transition requests"))?;
            let rows = s.query_map([instance_id], row_to_request).map_err(sql("listing transition requests"))?;
            collect(rows, "listing transition requests")
        })
    }

    /// PENDING → IN_PROGRESS.
    pub fn start_request(&self, id: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE resource_requests SET state = 'IN_PROGRESS', started_at = ?2 WHERE id = ?1 AND state = 'PENDING'",
                params![id, now_ms()],
            )
            .map_err(sql("starting a transition request"))?;
            Ok(())
        })
    }

    /// Remembers why a request is failing, for when its undo is done.
    pub fn set_pending_failure(&self, id: &str, reason: &str, code: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE resource_requests SET pending_reason = ?2, pending_code = ?3 WHERE id = ?1",
                params![id, reason, code],
            )
            .map_err(sql("recording a failure"))?;
            Ok(())
        })
    }

    /// Ends an open request as FAILED with its pending reason (or these
    /// defaults) and queues `outbox(reason, code)`'s response in the same
    /// transaction. Returns the request as ended; `None` when it had ended already.
    pub fn fail_request(
        &self,
        id: &str,
        default_reason: &str,
        default_code: &str,
        outbox: &dyn Fn(&StoredRequest) -> Option<(String, String)>,
    ) -> Result<Option<StoredRequest>> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("failing a transition request"))?;
            let changed = tx
                .execute(
                    "UPDATE resource_requests SET state = 'FAILED', reason = COALESCE(pending_reason, ?2),
                     failure_code = COALESCE(pending_code, ?3), finished_at = ?4,
                     started_at = COALESCE(started_at, ?4)
                     WHERE id = ?1 AND state IN ('PENDING', 'IN_PROGRESS')",
                    params![id, default_reason, default_code, now_ms()],
                )
                .map_err(sql("failing a transition request"))?;
            if changed == 0 {
                return Ok(None);
            }
            let request = tx
                .query_row(
                    &format!("SELECT {REQUEST_COLUMNS} FROM resource_requests WHERE id = ?1"),
                    [id],
                    row_to_request,
                )
                .map_err(sql("failing a transition request"))??;
            enqueue(&tx, &outbox(&request))?;
            tx.commit().map_err(sql("failing a transition request"))?;
            Ok(Some(request))
        })
    }

    /// Requests left PENDING or IN_PROGRESS without an open journal entry
    /// (cut short before their entry existed, or by an older berth).
    pub fn orphaned_requests(&self) -> Result<Vec<String>> {
        self.with(|c| {
            let mut s = c
                .prepare(
                    "SELECT id FROM resource_requests WHERE state IN ('PENDING', 'IN_PROGRESS') AND NOT EXISTS (
                       SELECT 1 FROM operations WHERE state IN ('running', 'committed', 'rolling_back')
                       AND json_extract(record, '$.request_id') = resource_requests.id)",
                )
                .map_err(sql("finding open requests"))?;
            let rows = s.query_map([], |r| r.get::<_, String>(0)).map_err(sql("finding open requests"))?;
            rows.map(|r| r.map_err(sql("finding open requests"))).collect()
        })
    }

    /// Queues a message outside a transition (published events).
    pub fn enqueue(&self, topic: &str, payload: &str, limit: i64) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("queueing a message"))?;
            enqueue(&tx, &Some((topic.to_owned(), payload.to_owned())))?;
            trim_outbox(&tx, limit)?;
            tx.commit().map_err(sql("queueing a message"))
        })
    }

    /// The oldest messages waiting.
    pub fn outbox_batch(&self, limit: i64) -> Result<Vec<OutboxMessage>> {
        self.with(|c| {
            let mut s = c
                .prepare_cached("SELECT id, topic, payload, attempts FROM outbox ORDER BY id LIMIT ?1")
                .map_err(sql("reading the outbox"))?;
            let rows = s
                .query_map([limit], |r| {
                    Ok(OutboxMessage { id: r.get(0)?, topic: r.get(1)?, payload: r.get(2)?, attempts: r.get(3)? })
                })
                .map_err(sql("reading the outbox"))?;
            rows.map(|r| r.map_err(sql("reading the outbox"))).collect()
        })
    }

    pub fn outbox_delivered(&self, ids: &[i64]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("clearing the outbox"))?;
            for id in ids {
                tx.execute("DELETE FROM outbox WHERE id = ?1", [id]).map_err(sql("clearing the outbox"))?;
            }
            tx.commit().map_err(sql("clearing the outbox"))
        })
    }

    pub fn outbox_failed(&self, ids: &[i64], error: &str) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("recording a delivery failure"))?;
            for id in ids {
                tx.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                    params![id, error],
                )
                .map_err(sql("recording a delivery failure"))?;
            }
            tx.commit().map_err(sql("recording a delivery failure"))
        })
    }

    /// (messages waiting, the last delivery error).
    pub fn outbox_depth(&self) -> Result<(i64, Option<String>)> {
        self.with(|c| {
            let depth: i64 =
                c.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0)).map_err(sql("reading the outbox"))?;
            let error: Option<String> = c
                .query_row("SELECT last_error FROM outbox WHERE last_error IS NOT NULL ORDER BY id LIMIT 1", [], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(sql("reading the outbox"))?;
            Ok((depth, error))
        })
    }

    /// Drops the oldest messages beyond `limit`; returns how many.
    pub fn trim_outbox(&self, limit: i64) -> Result<usize> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("trimming the outbox"))?;
            let dropped = trim_outbox(&tx, limit)?;
            tx.commit().map_err(sql("trimming the outbox"))?;
            Ok(dropped)
        })
    }
}

fn trim_outbox(tx: &Transaction<'_>, limit: i64) -> Result<usize> {
    tx.execute("DELETE FROM outbox WHERE id NOT IN (SELECT id FROM outbox ORDER BY id DESC LIMIT ?1)", [limit.max(1)])
        .map_err(sql("trimming the outbox"))
}
