//! Opening the database: its file private to root (it holds environment
//! values and source URLs), WAL with `synchronous=FULL`, an integrity check,
//! and the schema brought up to [`SCHEMA_VERSION`] by migrations applied in
//! order, each in its own transaction with the version it reaches. A file
//! that is damaged, is not a database, or was written by a newer berth is
//! refused and left as it is.

use crate::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The schema this berth writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 5;

pub(crate) const TABLES: &str = "
CREATE TABLE apps (
    name          TEXT PRIMARY KEY,
    spec          TEXT NOT NULL,
    desired       TEXT NOT NULL,
    installed     INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    previous_spec TEXT
);
CREATE TABLE operations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    subject     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    step        TEXT NOT NULL DEFAULT 'accepted',
    record      TEXT NOT NULL,
    undo        TEXT NOT NULL DEFAULT '[]',
    forward     TEXT NOT NULL DEFAULT '[]',
    error       TEXT,
    started_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
-- One open operation per subject (app, SRA image, the migration store), enforced by the database itself.
CREATE UNIQUE INDEX one_open_operation_per_subject ON operations(subject)
    WHERE state IN ('running', 'committed', 'rolling_back');
";

/// Migrations from version `n - 1` to `n`, as `(n, statements)`.
const MIGRATIONS: &[(i64, &str)] = &[
    // 2: the version an upgrade replaced, kept for `berth rollback`.
    (2, "ALTER TABLE apps ADD COLUMN previous_spec TEXT;"),
    // 3: one journal for every operation: subjects instead of app names, the
    // step, and the undo and forward logs. Entries an earlier berth left open
    // have no undo log to replay; they are closed (the containers of this
    // instance that no app owns are still removed at start).
    (
        3,
        "ALTER TABLE operations RENAME COLUMN app TO subject;
         UPDATE operations SET subject = 'app:' || subject;
         ALTER TABLE operations ADD COLUMN step TEXT NOT NULL DEFAULT 'accepted';
         ALTER TABLE operations ADD COLUMN undo TEXT NOT NULL DEFAULT '[]';
         ALTER TABLE operations ADD COLUMN forward TEXT NOT NULL DEFAULT '[]';
         UPDATE operations SET state = 'rolled_back',
             error = COALESCE(error, 'left open by an earlier berth; not resumed') WHERE state = 'running';
         DROP INDEX IF EXISTS one_running_operation_per_app;
         CREATE UNIQUE INDEX one_open_operation_per_subject ON operations(subject)
             WHERE state IN ('running', 'committed', 'rolling_back');",
    ),
    // 4: the resource manager: types, instances, transition requests and the outbox.
    (4, crate::resources::TABLES),
    // 5: the event log.
    (5, crate::events::TABLES),
];

pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open { path: path.to_owned(), source };
    let damaged = |reason: String| StoreError::Damaged { path: path.to_owned(), reason };
    make_private(path).map_err(|source| StoreError::Io { path: path.to_owned(), source })?;
    let connection =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)
            .map_err(open_err)?;
    let classify = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => damaged(e.to_string()),
        _ => open_err(e),
    };
    connection
        .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;")
        .map_err(classify)?;
    check_integrity(&connection).map_err(|e| match e {
        Check::Failed(reason) => damaged(reason),
        Check::Sqlite(e) => classify(e),
    })?;
    migrate(path, &connection).map_err(|e| match e {
        Migration::TooNew(found) => StoreError::TooNew { path: path.to_owned(), found, supported: SCHEMA_VERSION },
        Migration::Sqlite(e) => classify(e),
    })?;
    Ok(connection)
}

/// Creates the file 0600, or takes away what others may do with an existing
/// one; SQLite gives its `-wal` and `-shm` files the same mode.
fn make_private(path: &Path) -> std::io::Result<()> {
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
            }
            for suffix in ["-wal", "-shm"] {
                let side = path.with_file_name(format!(
                    "{}{suffix}",
                    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
                ));
                if let Ok(meta) = std::fs::metadata(&side) {
                    let mode = meta.permissions().mode();
                    if mode & 0o077 != 0 {
                        std::fs::set_permissions(&side, std::fs::Permissions::from_mode(mode & 0o700))?;
                    }
                }
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A consistent copy of the database as it was before a migration, in
/// `<dir>/backup/berth.db.schema-<version>` (made once: a migration run
/// again, or the old binary's, finds it there and keeps the first).
fn backup(path: &Path, connection: &Connection, version: i64) -> rusqlite::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new(".")).join("backup");
    let copy = dir.join(format!("berth.db.schema-{version}"));
    if copy.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&dir).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    let temp = dir.join(format!(".berth.db.schema-{version}.tmp"));
    let _ = std::fs::remove_file(&temp);
    connection.execute("VACUUM INTO ?1", [temp.to_string_lossy()])?;
    let _ = std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600));
    std::fs::rename(&temp, &copy).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    Ok(())
}

enum Check {
    Failed(String),
    Sqlite(rusqlite::Error),
}

fn check_integrity(connection: &Connection) -> Result<(), Check> {
    let mut statement = connection.prepare("PRAGMA quick_check").map_err(Check::Sqlite)?;
    let problems: Vec<String> = statement
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(Check::Sqlite)?
        .collect::<Result<_, _>>()
        .map_err(Check::Sqlite)?;
    match problems.as_slice() {
        [ok] if ok == "ok" => Ok(()),
        _ => Err(Check::Failed(problems.into_iter().take(3).collect::<Vec<_>>().join("; "))),
    }
}

enum Migration {
    TooNew(i64),
    Sqlite(rusqlite::Error),
}

fn migrate(path: &Path, connection: &Connection) -> Result<(), Migration> {
    let sqlite = Migration::Sqlite;
    let mut version: i64 = connection.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sqlite)?;
    if version > SCHEMA_VERSION {
        return Err(Migration::TooNew(version));
    }
    let has_tables: bool = connection
        .query_row("SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'apps')", [], |r| {
            r.get(0)
        })
        .map_err(sqlite)?;
    if version == 0 && !has_tables {
        connection
            .execute_batch(&format!(
                "BEGIN; {TABLES} {} {} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;",
                crate::resources::TABLES,
                crate::events::TABLES
            ))
            .map_err(sqlite)?;
        return Ok(());
    }
    // The first berth wrote its tables without a version.
    version = version.max(1);
    if version < SCHEMA_VERSION {
        backup(path, connection, version).map_err(sqlite)?;
    }
    for (to, statements) in MIGRATIONS.iter().filter(|(to, _)| *to > version) {
        connection
            .execute_batch(&format!("BEGIN; {statements} PRAGMA user_version = {to}; COMMIT;"))
            .map_err(sqlite)?;
    }
    Ok(())
}
