//! berth's durable state: the apps and the journal of multi-step operations,
//! in one SQLite database in WAL mode with `synchronous=FULL`, so a committed
//! journal write survives a power cut. Every call is one transaction.
//!
//! Every journal write names the entry's id, kind and the phase it must be
//! in, and checks that exactly one row changed: a write that does not match
//! the journal's state machine (`berth_core::journal::Phase::may_become`) is
//! an error, never a silent no-op.
//!
//! The store is synchronous and short: callers on an async runtime run it on
//! the blocking pool. The connection sits behind a mutex that is never held
//! outside one of these calls.

mod events;
mod resources;
mod schema;

pub use events::{NewEvent, StoredEvent};
pub use resources::{
    now_ms, InternalResource, OutboxMessage, ResourceChange, StoredInstance, StoredRequest, StoredType,
};

use berth_core::journal::{Effect, Entry, OperationKind, Phase};
use berth_core::spec::AppSpec;
use berth_core::status::DesiredState;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

pub use schema::SCHEMA_VERSION;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("cannot open the state database {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the state database {path} is damaged: {reason}; restore it from a backup (the containers of this instance are kept)")]
    Damaged { path: PathBuf, reason: String },
    #[error("the state database {path} has schema version {found}, but this berth knows versions up to {supported}; it was written by a newer berth")]
    TooNew { path: PathBuf, found: i64, supported: i64 },
    #[error("state database error while {context}: {source}")]
    Sqlite { context: &'static str, source: rusqlite::Error },
    #[error("an app named {name:?} already exists")]
    AppExists { name: String },
    #[error("no app named {name:?} is installed")]
    AppNotFound { name: String },
    #[error("{subject} is busy with another operation ({kind}); try again when it has finished")]
    Busy { subject: String, kind: String },
    #[error("journal entry {id} ({kind}) is not {expected}; refusing to write it")]
    JournalMismatch { id: i64, kind: &'static str, expected: String },
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("a resource named {name:?} already exists in location {location:?}")]
    ResourceExists { name: String, location: String },
    #[error("resource type {name} has {instances} instance(s); uninstall them first")]
    TypeInUse { name: String, instances: i64 },
}

impl StoreError {
    pub fn kind(&self) -> berth_core::ErrorKind {
        use berth_core::ErrorKind;
        match self {
            StoreError::AppExists { .. } | StoreError::ResourceExists { .. } | StoreError::TypeInUse { .. } => {
                ErrorKind::Conflict
            }
            StoreError::AppNotFound { .. } => ErrorKind::NotFound,
            StoreError::Busy { .. } => ErrorKind::Busy,
            StoreError::Damaged { .. } | StoreError::TooNew { .. } | StoreError::Corrupt { .. } => {
                ErrorKind::CorruptState
            }
            StoreError::JournalMismatch { .. }
            | StoreError::Open { .. }
            | StoreError::Io { .. }
            | StoreError::Sqlite { .. } => ErrorKind::Internal,
        }
    }
}

pub(crate) type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) fn sql(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { context, source }
}

/// An app as stored. `installed` is false while its install is in flight.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredApp {
    pub spec: AppSpec,
    /// The version the last upgrade replaced, for rollback.
    pub previous: Option<AppSpec>,
    pub desired: DesiredState,
    pub installed: bool,
    pub created_at: i64,
}

/// What an operation's first or last write does to the `apps` table, in
/// the same transaction as the journal write.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // built once per operation, never stored in bulk
pub enum AppChange {
    None,
    /// Reserve the name: a new row, not yet installed; refused when it exists.
    Reserve(AppSpec),
    /// The app must be installed (an upgrade or uninstall of it begins).
    RequireInstalled(String),
    /// The install is committed: the row becomes installed with this spec.
    Install(AppSpec),
    /// An upgrade (or rollback) is committed: the new spec, the old one kept as previous.
    Upgrade {
        spec: AppSpec,
        previous: AppSpec,
    },
    /// A migrated app: created or replaced, installed.
    Migrated {
        spec: AppSpec,
        desired: DesiredState,
    },
    /// A resource transition is accepted or completes.
    Resource(ResourceChange),
}

/// A new journal entry.
#[derive(Debug, Clone)]
pub struct NewEntry<'a, C: Serialize> {
    pub kind: OperationKind,
    pub subject: &'a str,
    /// `Running`, or `Committed` for operations that commit when they begin.
    pub phase: Phase,
    pub context: &'a C,
    pub undo: &'a [Effect],
    pub forward: &'a [Effect],
    pub app: AppChange,
}

#[derive(Clone)]
pub struct Store {
    connection: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    // Serialising berth's own plain data types cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

impl Store {
    /// Opens (or creates) the database and brings its schema up to date.
    /// A damaged file or one from a newer berth is refused, unchanged.
    pub fn open(path: &Path) -> Result<Self> {
        let connection = schema::open(path)?;
        Ok(Self { connection: Arc::new(Mutex::new(connection)) })
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut connection)
    }

    /// What `PRAGMA integrity_check` finds wrong (nothing: an empty list).
    pub fn integrity(&self) -> Result<Vec<String>> {
        self.with(|c| {
            let mut statement = c.prepare("PRAGMA integrity_check").map_err(sql("checking integrity"))?;
            let rows = statement.query_map([], |r| r.get::<_, String>(0)).map_err(sql("checking integrity"))?;
            let found: Vec<String> = rows.collect::<Result<_, _>>().map_err(sql("checking integrity"))?;
            Ok(found.into_iter().filter(|r| r != "ok").take(5).collect())
        })
    }

    /// Opens a journal entry (and makes its change to the app's row), atomically:
    /// of two operations on one subject, exactly one gets here.
    pub fn begin<C: Serialize>(&self, entry: NewEntry<'_, C>) -> Result<i64> {
        debug_assert!(matches!(entry.phase, Phase::Running | Phase::Committed));
        self.with(|c| {
            let tx =
                c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql("opening an operation"))?;
            if let Some(kind) = open_kind(&tx, entry.subject)? {
                return Err(StoreError::Busy { subject: entry.subject.to_owned(), kind });
            }
            let t = now();
            apply_app_change(&tx, entry.app, t)?;
            tx.execute(
                "INSERT INTO operations (subject, kind, state, step, record, undo, forward, started_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                params![
                    entry.subject,
                    entry.kind.as_str(),
                    entry.phase.as_str(),
                    berth_core::journal::ACCEPTED,
                    to_json(entry.context),
                    to_json(entry.undo),
                    to_json(entry.forward),
                    t
                ],
            )
            .map_err(sql("opening an operation"))?;
            let id = tx.last_insert_rowid();
            tx.commit().map_err(sql("opening an operation"))?;
            Ok(id)
        })
    }

    /// Records the step an operation is about to take, its context and its
    /// undo log (with the effect that takes the step back appended).
    pub fn record_step<C: Serialize>(
        &self,
        id: i64,
        kind: OperationKind,
        step: &str,
        context: &C,
        undo: &[Effect],
    ) -> Result<()> {
        self.with(|c| {
            let changed = c
                .execute(
                    "UPDATE operations SET step = ?4, record = ?5, undo = ?6, updated_at = ?7
                     WHERE id = ?1 AND kind = ?2 AND state = ?3",
                    params![id, kind.as_str(), Phase::Running.as_str(), step, to_json(context), to_json(undo), now()],
                )
                .map_err(sql("recording a journal step"))?;
            expect_one(changed, id, kind, Phase::Running)
        })
    }

    /// Commits an operation: its change to the app's row, its final context
    /// and its forward log, in one transaction. It will not be undone. An
    /// operation with no forward work is closed (done) by the same write.
    pub fn commit<C: Serialize>(
        &self,
        id: i64,
        kind: OperationKind,
        context: &C,
        forward: &[Effect],
        app: AppChange,
    ) -> Result<()> {
        // Nothing left to do after the commit: the entry closes with it, so
        // that whoever sees the change (a request COMPLETED) finds the
        // subject free, not busy for one more write.
        let state = if forward.is_empty() { Phase::Done } else { Phase::Committed };
        self.with(|c| {
            let tx = c.transaction().map_err(sql("committing an operation"))?;
            let t = now();
            let changed = tx
                .execute(
                    "UPDATE operations SET state = ?4, step = 'committed', record = ?5, forward = ?6, undo = '[]', updated_at = ?7
                     WHERE id = ?1 AND kind = ?2 AND state = ?3",
                    params![
                        id,
                        kind.as_str(),
                        Phase::Running.as_str(),
                        state.as_str(),
                        to_json(context),
                        to_json(forward),
                        t
                    ],
                )
                .map_err(sql("committing an operation"))?;
            expect_one(changed, id, kind, Phase::Running)?;
            apply_app_change(&tx, app, t)?;
            tx.commit().map_err(sql("committing an operation"))
        })
    }

    /// The operation failed (or was found cut short): its undo log is to be
    /// replayed. Repeating it is fine (a rollback interrupted by a crash).
    pub fn start_rollback(&self, id: i64, kind: OperationKind, error: &str) -> Result<()> {
        self.with(|c| {
            let changed = c
                .execute(
                    "UPDATE operations SET state = ?3, error = COALESCE(error, ?4), updated_at = ?5
                     WHERE id = ?1 AND kind = ?2 AND state IN ('running', 'rolling_back')",
                    params![id, kind.as_str(), Phase::RollingBack.as_str(), error, now()],
                )
                .map_err(sql("starting a rollback"))?;
            expect_one(changed, id, kind, Phase::Running)
        })
    }

    /// What is left of the undo log while rolling back.
    pub fn set_undo(&self, id: i64, kind: OperationKind, undo: &[Effect]) -> Result<()> {
        self.set_log(id, kind, Phase::RollingBack, "undo", undo)
    }

    /// What is left of the forward log after the commit.
    pub fn set_forward(&self, id: i64, kind: OperationKind, forward: &[Effect]) -> Result<()> {
        self.set_log(id, kind, Phase::Committed, "forward", forward)
    }

    fn set_log(&self, id: i64, kind: OperationKind, phase: Phase, column: &'static str, log: &[Effect]) -> Result<()> {
        self.with(|c| {
            let statement = format!(
                "UPDATE operations SET {column} = ?4, updated_at = ?5 WHERE id = ?1 AND kind = ?2 AND state = ?3"
            );
            let changed = c
                .execute(&statement, params![id, kind.as_str(), phase.as_str(), to_json(log), now()])
                .map_err(sql("updating a journal log"))?;
            expect_one(changed, id, kind, phase)
        })
    }

    /// Closes an entry: `Committed → Done` or `RollingBack → RolledBack`.
    pub fn close(&self, id: i64, kind: OperationKind, from: Phase, to: Phase, error: Option<&str>) -> Result<()> {
        if !from.may_become(to) || to.is_open() {
            return Err(StoreError::JournalMismatch {
                id,
                kind: kind.as_str(),
                expected: format!("able to become {}", to.as_str()),
            });
        }
        self.with(|c| {
            let changed = c
                .execute(
                    "UPDATE operations SET state = ?4, error = COALESCE(?5, error), updated_at = ?6
                     WHERE id = ?1 AND kind = ?2 AND state = ?3",
                    params![id, kind.as_str(), from.as_str(), to.as_str(), error, now()],
                )
                .map_err(sql("closing an operation"))?;
            expect_one(changed, id, kind, from)
        })
    }

    /// Entries that are not closed: under way, or cut short by a crash.
    pub fn open_entries(&self) -> Result<Vec<Entry>> {
        self.entries_where("state IN ('running', 'committed', 'rolling_back')", &[])
    }

    /// The open entry of `subject`, if any.
    pub fn open_entry_of(&self, subject: &str) -> Result<Option<Entry>> {
        Ok(self.entries_where("state IN ('running', 'committed', 'rolling_back') AND subject = ?1", &[&subject])?.pop())
    }

    /// The latest entry of `subject`, open or closed (pruned after a week).
    pub fn last_entry_of(&self, subject: &str) -> Result<Option<Entry>> {
        Ok(self.entries_where("subject = ?1", &[&subject])?.pop())
    }

    pub fn entry(&self, id: i64) -> Result<Option<Entry>> {
        Ok(self.entries_where("id = ?1", &[&id])?.pop())
    }

    fn entries_where(&self, condition: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<Entry>> {
        self.with(|c| {
            let query = format!(
                "SELECT id, subject, kind, state, step, record, undo, forward, error FROM operations WHERE {condition} ORDER BY id"
            );
            let mut statement = c.prepare(&query).map_err(sql("reading the journal"))?;
            let rows = statement.query_map(args, row_to_entry).map_err(sql("reading the journal"))?;
            rows.map(|row| row.map_err(sql("reading the journal")).and_then(|r| r)).collect()
        })
    }

    /// Forgets closed entries older than `before` (seconds since the epoch).
    pub fn prune_entries(&self, before: i64) -> Result<usize> {
        self.with(|c| {
            c.execute("DELETE FROM operations WHERE state IN ('done', 'rolled_back') AND updated_at < ?1", [before])
                .map_err(sql("pruning the journal"))
        })
    }

    pub fn set_desired(&self, name: &str, desired: DesiredState) -> Result<()> {
        self.with(|c| {
            let changed = c
                .execute(
                    "UPDATE apps SET desired = ?2, updated_at = ?3 WHERE name = ?1 AND installed = 1",
                    params![name, desired.as_str(), now()],
                )
                .map_err(sql("recording the desired state"))?;
            if changed == 0 {
                return Err(StoreError::AppNotFound { name: name.to_owned() });
            }
            Ok(())
        })
    }

    /// Records an installed app rebuilt from its container's kept record
    /// (`berth doctor --rebuild`), unless the name is recorded already: the
    /// database wins over a container. Whether it was recorded now.
    pub fn restore_app(&self, app: &StoredApp) -> Result<bool> {
        self.with(|c| {
            let inserted = c
                .execute(
                    "INSERT INTO apps (name, spec, desired, installed, created_at, updated_at, previous_spec)
                     VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6) ON CONFLICT(name) DO NOTHING",
                    params![
                        app.spec.name.as_str(),
                        to_json(&app.spec),
                        app.desired.as_str(),
                        app.created_at,
                        now(),
                        app.previous.as_ref().map(to_json)
                    ],
                )
                .map_err(sql("recording a rebuilt app"))?;
            Ok(inserted == 1)
        })
    }

    /// Removes the app's row; one that is gone already is fine.
    pub fn delete_app(&self, name: &str) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM apps WHERE name = ?1", [name]).map_err(sql("removing an app"))?;
            Ok(())
        })
    }

    pub fn apps(&self) -> Result<Vec<StoredApp>> {
        self.with(|c| {
            let mut statement = c
                .prepare_cached(
                    "SELECT name, spec, desired, installed, created_at, previous_spec FROM apps ORDER BY name",
                )
                .map_err(sql("listing apps"))?;
            let rows = statement.query_map([], row_to_app).map_err(sql("listing apps"))?;
            rows.map(|row| row.map_err(sql("listing apps")).and_then(|r| r)).collect()
        })
    }

    pub fn app(&self, name: &str) -> Result<Option<StoredApp>> {
        self.with(|c| {
            c.query_row(
                "SELECT name, spec, desired, installed, created_at, previous_spec FROM apps WHERE name = ?1",
                [name],
                row_to_app,
            )
            .optional()
            .map_err(sql("reading an app"))?
            .transpose()
        })
    }

    /// Whether `image_id` is used by an app other than `except_app` (as its
    /// current or previous version), or named by an open journal entry other
    /// than `except_entry` (an install or upgrade bringing it right now).
    pub fn image_in_use(&self, image_id: &str, except_app: Option<&str>, except_entry: Option<i64>) -> Result<bool> {
        self.with(|c| {
            let by_app: bool = c
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM apps WHERE name <> ?2 AND (json_extract(spec, '$.image_id') = ?1 \
                     OR json_extract(previous_spec, '$.image_id') = ?1))",
                    params![image_id, except_app.unwrap_or_default()],
                    |r| r.get(0),
                )
                .map_err(sql("checking image use"))?;
            if by_app {
                return Ok(true);
            }
            // Image ids are long hex strings: a substring match on the stored
            // JSON finds every mention and nothing else.
            let pattern = format!("%{}%", image_id.replace(['%', '_'], ""));
            c.query_row(
                "SELECT EXISTS(SELECT 1 FROM operations WHERE state IN ('running', 'committed', 'rolling_back') \
                 AND id <> ?2 AND (record LIKE ?1 OR undo LIKE ?1 OR forward LIKE ?1))",
                params![pattern, except_entry.unwrap_or(-1)],
                |r| r.get(0),
            )
            .map_err(sql("checking image use"))
        })
    }
}

fn expect_one(changed: usize, id: i64, kind: OperationKind, expected: Phase) -> Result<()> {
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::JournalMismatch { id, kind: kind.as_str(), expected: format!("open as {}", expected.as_str()) })
    }
}

fn apply_app_change(tx: &rusqlite::Transaction<'_>, change: AppChange, t: i64) -> Result<()> {
    match change {
        AppChange::None => Ok(()),
        AppChange::Reserve(ref spec) => {
            let name = spec.name.as_str();
            let exists: bool = tx
                .query_row("SELECT EXISTS(SELECT 1 FROM apps WHERE name = ?1)", [name], |r| r.get(0))
                .map_err(sql("checking the name"))?;
            if exists {
                return Err(StoreError::AppExists { name: name.to_owned() });
            }
            tx.execute(
                "INSERT INTO apps (name, spec, desired, installed, created_at, updated_at) VALUES (?1, ?2, 'running', 0, ?3, ?3)",
                params![name, to_json(spec), t],
            )
            .map_err(sql("reserving the name"))?;
            Ok(())
        }
        AppChange::RequireInstalled(ref name) => {
            let name = name.as_str();
            let installed: Option<bool> = tx
                .query_row("SELECT installed FROM apps WHERE name = ?1", [name], |r| r.get(0))
                .optional()
                .map_err(sql("finding the app"))?;
            match installed {
                None => Err(StoreError::AppNotFound { name: name.to_owned() }),
                Some(false) => Err(StoreError::Busy { subject: format!("app {name:?}"), kind: "install".into() }),
                Some(true) => Ok(()),
            }
        }
        AppChange::Install(ref spec) => {
            let changed = tx
                .execute(
                    "UPDATE apps SET spec = ?2, installed = 1, updated_at = ?3 WHERE name = ?1 AND installed = 0",
                    params![spec.name.as_str(), to_json(spec), t],
                )
                .map_err(sql("committing an install"))?;
            if changed != 1 {
                return Err(StoreError::AppNotFound { name: spec.name.to_string() });
            }
            Ok(())
        }
        AppChange::Upgrade { ref spec, ref previous } => {
            let changed = tx
                .execute(
                    "UPDATE apps SET spec = ?2, previous_spec = ?3, desired = 'running', updated_at = ?4 WHERE name = ?1 AND installed = 1",
                    params![spec.name.as_str(), to_json(spec), to_json(previous), t],
                )
                .map_err(sql("committing an upgrade"))?;
            if changed != 1 {
                return Err(StoreError::AppNotFound { name: spec.name.to_string() });
            }
            Ok(())
        }
        AppChange::Resource(change) => resources::apply(tx, change),
        AppChange::Migrated { ref spec, desired } => {
            tx.execute(
                "INSERT INTO apps (name, spec, desired, installed, created_at, updated_at) VALUES (?1, ?2, ?3, 1, ?4, ?4)
                 ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, desired = excluded.desired, installed = 1,
                 updated_at = excluded.updated_at",
                params![spec.name.as_str(), to_json(spec), desired.as_str(), t],
            )
            .map_err(sql("recording a migrated app"))?;
            Ok(())
        }
    }
}

fn open_kind(tx: &rusqlite::Transaction<'_>, subject: &str) -> Result<Option<String>> {
    tx.query_row(
        "SELECT kind FROM operations WHERE subject = ?1 AND state IN ('running', 'committed', 'rolling_back')",
        [subject],
        |r| r.get(0),
    )
    .optional()
    .map_err(sql("checking open operations"))
}

fn row_to_app(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<StoredApp>> {
    let name: String = row.get(0)?;
    let spec: String = row.get(1)?;
    let desired: String = row.get(2)?;
    let installed: bool = row.get(3)?;
    let created_at: i64 = row.get(4)?;
    let previous: Option<String> = row.get(5)?;
    let corrupt = |reason: String| StoreError::Corrupt { what: format!("app {name:?}"), reason };
    Ok((|| {
        let spec: AppSpec = serde_json::from_str(&spec).map_err(|e| corrupt(e.to_string()))?;
        let previous = previous.map(|p| serde_json::from_str(&p)).transpose().map_err(|e| corrupt(e.to_string()))?;
        let desired = DesiredState::parse(&desired).ok_or_else(|| corrupt(format!("desired state {desired:?}")))?;
        Ok(StoredApp { spec, previous, desired, installed, created_at })
    })())
}

fn row_to_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Entry>> {
    let id: i64 = row.get(0)?;
    let subject: String = row.get(1)?;
    let kind: String = row.get(2)?;
    let state: String = row.get(3)?;
    let step: String = row.get(4)?;
    let record: String = row.get(5)?;
    let undo: String = row.get(6)?;
    let forward: String = row.get(7)?;
    let error: Option<String> = row.get(8)?;
    let corrupt = |reason: String| StoreError::Corrupt { what: format!("journal entry {id}"), reason };
    Ok((|| {
        let kind = OperationKind::parse(&kind).ok_or_else(|| corrupt(format!("kind {kind:?}")))?;
        let phase = Phase::parse(&state).ok_or_else(|| corrupt(format!("state {state:?}")))?;
        let context = serde_json::from_str(&record).map_err(|e| corrupt(format!("record: {e}")))?;
        let undo = serde_json::from_str(&undo).map_err(|e| corrupt(format!("undo log: {e}")))?;
        let forward = serde_json::from_str(&forward).map_err(|e| corrupt(format!("forward log: {e}")))?;
        Ok(Entry { id, kind, subject, phase, step, context, undo, forward, error })
    })())
}

#[cfg(test)]
mod tests;
