//! berth's durable state: the apps and the journal of multi-step operations,
//! in one SQLite database in WAL mode with `synchronous=FULL`, so a committed
//! journal step survives a power cut. Every write is one transaction.
//!
//! The store is synchronous and short: callers on an async runtime run it on
//! the blocking pool. The connection sits behind a mutex that is never held
//! outside one of these calls.

use berth_core::journal::{OperationKind, OperationState};
use berth_core::spec::AppSpec;
use berth_core::status::DesiredState;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{de::DeserializeOwned, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("state database error while {context}: {source}")]
    Sqlite { context: &'static str, source: rusqlite::Error },
    #[error("an app named {name:?} already exists")]
    AppExists { name: String },
    #[error("no app named {name:?} is installed")]
    AppNotFound { name: String },
    #[error("app {name:?} is busy with another operation ({kind}); try again when it has finished")]
    Busy { name: String, kind: String },
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt { what: String, reason: String },
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

fn sql(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
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

#[derive(Debug, Clone, PartialEq)]
pub struct StoredOperation {
    pub id: i64,
    pub app: String,
    pub kind: OperationKind,
    pub state: OperationState,
    /// The operation's record (an `InstallRecord`, `UninstallRecord`, …) as JSON.
    pub record: String,
    pub error: Option<String>,
}

impl StoredOperation {
    pub fn record<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.record).map_err(|e| StoreError::Corrupt {
            what: format!("journal record of operation {}", self.id),
            reason: e.to_string(),
        })
    }
}

#[derive(Clone)]
pub struct Store {
    connection: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS apps (
    name        TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,
    desired     TEXT NOT NULL,
    installed   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS operations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    app         TEXT NOT NULL,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    record      TEXT NOT NULL,
    error       TEXT,
    started_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
-- One operation at a time per app, enforced by the database itself.
CREATE UNIQUE INDEX IF NOT EXISTS one_running_operation_per_app ON operations(app) WHERE state = 'running';
";

/// Schema changes after the first version, applied in order, each once.
const MIGRATIONS: &[&str] = &[
    // 2: the version an upgrade replaced, kept for `berth rollback`.
    "ALTER TABLE apps ADD COLUMN previous_spec TEXT;",
];

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serialising berth's own plain data types cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

impl Store {
    pub fn open(path: &Path) -> Result<Self> {
        let open_err = |source| StoreError::Open { path: path.to_owned(), source };
        let connection = Connection::open(path).map_err(open_err)?;
        connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;")
            .map_err(open_err)?;
        connection.execute_batch(SCHEMA).map_err(open_err)?;
        migrate(&connection).map_err(open_err)?;
        Ok(Self { connection: Arc::new(Mutex::new(connection)) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut connection)
    }

    /// Reserves the name and opens the install's journal entry, atomically: of
    /// two installs of one name, exactly one gets here.
    pub fn begin_install<R: Serialize>(&self, spec: &AppSpec, record: &R) -> Result<i64> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql("starting an install"))?;
            let name = spec.name.as_str();
            let exists: bool = tx
                .query_row("SELECT EXISTS(SELECT 1 FROM apps WHERE name = ?1)", [name], |r| r.get(0))
                .map_err(sql("checking the name"))?;
            if exists {
                return Err(StoreError::AppExists { name: name.to_owned() });
            }
            let t = now();
            tx.execute(
                "INSERT INTO apps (name, spec, desired, installed, created_at, updated_at) VALUES (?1, ?2, 'running', 0, ?3, ?3)",
                params![name, to_json(spec), t],
            )
            .map_err(sql("reserving the name"))?;
            let id = insert_operation(&tx, name, OperationKind::Install, &to_json(record), t)?;
            tx.commit().map_err(sql("starting an install"))?;
            Ok(id)
        })
    }

    /// Writes an operation's next step (its whole record) before it is acted on.
    pub fn record_step<R: Serialize>(&self, operation: i64, record: &R) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE operations SET record = ?2, updated_at = ?3 WHERE id = ?1",
                params![operation, to_json(record), now()],
            )
            .map_err(sql("recording a journal step"))?;
            Ok(())
        })
    }

    /// Marks the app installed with its final spec and closes the operation, in
    /// one transaction: from here on the install will never be undone.
    pub fn commit_install<R: Serialize>(&self, operation: i64, spec: &AppSpec, record: &R) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("committing an install"))?;
            let t = now();
            tx.execute(
                "UPDATE apps SET spec = ?2, installed = 1, updated_at = ?3 WHERE name = ?1",
                params![spec.name.as_str(), to_json(spec), t],
            )
            .map_err(sql("committing an install"))?;
            tx.execute(
                "UPDATE operations SET state = 'done', record = ?2, updated_at = ?3 WHERE id = ?1",
                params![operation, to_json(record), t],
            )
            .map_err(sql("committing an install"))?;
            tx.commit().map_err(sql("committing an install"))
        })
    }

    /// Opens an uninstall's journal entry; refused while another operation runs.
    pub fn begin_uninstall<R: Serialize>(&self, name: &str, record: &R) -> Result<i64> {
        self.begin_on_installed(name, OperationKind::Uninstall, record)
    }

    /// Opens an upgrade's (or rollback's) journal entry; refused while another operation runs.
    pub fn begin_upgrade<R: Serialize>(&self, name: &str, record: &R) -> Result<i64> {
        self.begin_on_installed(name, OperationKind::Upgrade, record)
    }

    /// Makes the new version the app, keeping `previous` for rollback, and
    /// closes the operation, in one transaction.
    pub fn commit_upgrade<R: Serialize>(
        &self,
        operation: i64,
        spec: &AppSpec,
        previous: &AppSpec,
        record: &R,
    ) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("committing an upgrade"))?;
            let t = now();
            tx.execute(
                "UPDATE apps SET spec = ?2, previous_spec = ?3, desired = 'running', updated_at = ?4 WHERE name = ?1",
                params![spec.name.as_str(), to_json(spec), to_json(previous), t],
            )
            .map_err(sql("committing an upgrade"))?;
            tx.execute(
                "UPDATE operations SET state = 'done', record = ?2, updated_at = ?3 WHERE id = ?1",
                params![operation, to_json(record), t],
            )
            .map_err(sql("committing an upgrade"))?;
            tx.commit().map_err(sql("committing an upgrade"))
        })
    }

    fn begin_on_installed<R: Serialize>(&self, name: &str, kind: OperationKind, record: &R) -> Result<i64> {
        self.with(|c| {
            let tx =
                c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql("starting an operation"))?;
            let installed: Option<bool> = tx
                .query_row("SELECT installed FROM apps WHERE name = ?1", [name], |r| r.get(0))
                .optional()
                .map_err(sql("finding the app"))?;
            match installed {
                None => return Err(StoreError::AppNotFound { name: name.to_owned() }),
                Some(false) => return Err(StoreError::Busy { name: name.to_owned(), kind: "install".into() }),
                Some(true) => {}
            }
            if let Some(kind) = running_kind(&tx, name)? {
                return Err(StoreError::Busy { name: name.to_owned(), kind });
            }
            let id = insert_operation(&tx, name, kind, &to_json(record), now())?;
            tx.commit().map_err(sql("starting an operation"))?;
            Ok(id)
        })
    }

    /// Closes an operation as done or rolled back; with `delete_app`, the app's
    /// row goes in the same transaction (end of an uninstall or of an undo).
    pub fn finish_operation(
        &self,
        operation: i64,
        state: OperationState,
        error: Option<&str>,
        delete_app: Option<&str>,
    ) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("finishing an operation"))?;
            tx.execute(
                "UPDATE operations SET state = ?2, error = ?3, updated_at = ?4 WHERE id = ?1",
                params![operation, state.as_str(), error, now()],
            )
            .map_err(sql("finishing an operation"))?;
            if let Some(name) = delete_app {
                tx.execute("DELETE FROM apps WHERE name = ?1", [name]).map_err(sql("removing an app"))?;
            }
            tx.commit().map_err(sql("finishing an operation"))
        })
    }

    /// Records an app brought in by a migration: its row is created, or its
    /// spec replaced (the image id changes to the migrated image's).
    pub fn put_migrated(&self, spec: &AppSpec, desired: DesiredState) -> Result<()> {
        self.with(|c| {
            let t = now();
            c.execute(
                "INSERT INTO apps (name, spec, desired, installed, created_at, updated_at) VALUES (?1, ?2, ?3, 1, ?4, ?4)
                 ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, desired = excluded.desired, installed = 1,
                 updated_at = excluded.updated_at",
                params![spec.name.as_str(), to_json(spec), desired.as_str(), t],
            )
            .map_err(sql("recording a migrated app"))?;
            Ok(())
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

    /// Operations that were under way when the daemon last stopped.
    pub fn running_operations(&self) -> Result<Vec<StoredOperation>> {
        self.operations_where("state = 'running'", &[])
    }

    /// The operation under way for `app`, if any.
    pub fn running_operation_of(&self, app: &str) -> Result<Option<StoredOperation>> {
        Ok(self.operations_where("state = 'running' AND app = ?1", &[&app])?.into_iter().next())
    }

    pub fn operation(&self, id: i64) -> Result<Option<StoredOperation>> {
        Ok(self.operations_where("id = ?1", &[&id])?.into_iter().next())
    }

    fn operations_where(&self, condition: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<StoredOperation>> {
        self.with(|c| {
            let query =
                format!("SELECT id, app, kind, state, record, error FROM operations WHERE {condition} ORDER BY id");
            let mut statement = c.prepare(&query).map_err(sql("reading the journal"))?;
            let rows = statement.query_map(args, row_to_operation).map_err(sql("reading the journal"))?;
            rows.map(|row| row.map_err(sql("reading the journal")).and_then(|r| r)).collect()
        })
    }

    /// Whether an app other than `except` runs (or is installing with) `image_id`.
    pub fn image_in_use(&self, image_id: &str, except: &str) -> Result<bool> {
        self.with(|c| {
            c.query_row(
                "SELECT EXISTS(SELECT 1 FROM apps WHERE name <> ?2 AND (json_extract(spec, '$.image_id') = ?1 \
                 OR json_extract(previous_spec, '$.image_id') = ?1))",
                params![image_id, except],
                |r| r.get(0),
            )
            .map_err(sql("checking image use"))
        })
    }

    /// Forgets finished operations older than `before` (seconds since the epoch).
    pub fn prune_operations(&self, before: i64) -> Result<usize> {
        self.with(|c| {
            c.execute("DELETE FROM operations WHERE state <> 'running' AND updated_at < ?1", [before])
                .map_err(sql("pruning the journal"))
        })
    }
}

fn migrate(connection: &Connection) -> rusqlite::Result<()> {
    let version: usize = connection.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (index, statement) in MIGRATIONS.iter().enumerate().skip(version.saturating_sub(1)) {
        connection.execute_batch(&format!("BEGIN; {statement} PRAGMA user_version = {}; COMMIT;", index + 2))?;
    }
    if version == 0 {
        connection.execute_batch(&format!("PRAGMA user_version = {};", MIGRATIONS.len() + 1))?;
    }
    Ok(())
}

fn insert_operation(
    tx: &rusqlite::Transaction<'_>,
    app: &str,
    kind: OperationKind,
    record: &str,
    t: i64,
) -> Result<i64> {
    tx.execute(
        "INSERT INTO operations (app, kind, state, record, started_at, updated_at) VALUES (?1, ?2, 'running', ?3, ?4, ?4)",
        params![app, kind.as_str(), record, t],
    )
    .map_err(sql("opening a journal entry"))?;
    Ok(tx.last_insert_rowid())
}

fn running_kind(tx: &rusqlite::Transaction<'_>, app: &str) -> Result<Option<String>> {
    tx.query_row("SELECT kind FROM operations WHERE app = ?1 AND state = 'running'", [app], |r| r.get(0))
        .optional()
        .map_err(sql("checking running operations"))
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

fn row_to_operation(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<StoredOperation>> {
    let id: i64 = row.get(0)?;
    let app: String = row.get(1)?;
    let kind: String = row.get(2)?;
    let state: String = row.get(3)?;
    let record: String = row.get(4)?;
    let error: Option<String> = row.get(5)?;
    let corrupt = |reason: String| StoreError::Corrupt { what: format!("operation {id}"), reason };
    Ok((|| {
        let kind = OperationKind::parse(&kind).ok_or_else(|| corrupt(format!("kind {kind:?}")))?;
        let state = OperationState::parse(&state).ok_or_else(|| corrupt(format!("state {state:?}")))?;
        Ok(StoredOperation { id, app, kind, state, record, error })
    })())
}

#[cfg(test)]
mod tests;
