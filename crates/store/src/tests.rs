use super::*;
use berth_core::journal::ImageHandle;
use berth_core::source::Source;
use berth_core::AppName;
use std::os::unix::fs::PermissionsExt;

fn spec(name: &str, image: &str) -> AppSpec {
    AppSpec {
        name: AppName::parse(name).unwrap(),
        source: Source::parse("/a.tar").unwrap(),
        image_ref: "a:1".into(),
        image_id: image.into(),
        args: String::new(),
        options: Default::default(),
        cpus: 0.4,
        memory: None,
    }
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("berth.db")).unwrap();
    (dir, store)
}

fn release(id: &str) -> Effect {
    Effect::ReleaseImage { image: ImageHandle::Id { id: id.into() }, app: None }
}

fn begin_install(store: &Store, spec: &AppSpec) -> Result<i64> {
    store.begin(NewEntry {
        kind: OperationKind::Install,
        subject: &format!("app:{}", spec.name),
        phase: Phase::Running,
        context: &"ctx",
        undo: &[Effect::DeleteApp { app: spec.name.clone() }],
        forward: &[],
        app: AppChange::Reserve(spec.clone()),
    })
}

fn install(store: &Store, name: &str, image: &str) {
    let s = spec(name, image);
    let id = begin_install(store, &s).unwrap();
    store.commit(id, OperationKind::Install, &"ctx", &[], AppChange::Install(s.clone())).unwrap();
    // No forward work: the commit closed it.
    assert_eq!(store.entry(id).unwrap().unwrap().phase, Phase::Done);
}

#[test]
fn an_install_reserves_the_name_once_and_commits() {
    let (_dir, store) = store();
    let s = spec("aa", "");
    let id = begin_install(&store, &s).unwrap();
    assert!(matches!(begin_install(&store, &s), Err(StoreError::Busy { .. })));
    assert!(!store.app("aa").unwrap().unwrap().installed);
    store.record_step(id, OperationKind::Install, "fetching_image", &"ctx", &[release("sha256:1")]).unwrap();
    let entry = store.open_entry_of("app:aa").unwrap().unwrap();
    assert_eq!((entry.step.as_str(), entry.undo.len(), entry.phase), ("fetching_image", 1, Phase::Running));
    store
        .commit(
            id,
            OperationKind::Install,
            &"done",
            &[Effect::StartUnit { app: s.name.clone() }],
            AppChange::Install(spec("aa", "sha256:1")),
        )
        .unwrap();
    let entry = store.entry(id).unwrap().unwrap();
    assert_eq!((entry.phase, entry.undo.len(), entry.forward.len()), (Phase::Committed, 0, 1));
    let app = store.app("aa").unwrap().unwrap();
    assert!(app.installed);
    assert_eq!(app.spec.image_id, "sha256:1");
    store.set_forward(id, OperationKind::Install, &[]).unwrap();
    store.close(id, OperationKind::Install, Phase::Committed, Phase::Done, None).unwrap();
    assert!(store.open_entries().unwrap().is_empty());
}

#[test]
fn every_journal_write_is_checked_against_the_state_machine() {
    let (_dir, store) = store();
    let id = begin_install(&store, &spec("aa", "")).unwrap();
    // Wrong kind, wrong phase, unknown id: refused, nothing written.
    let wrong_kind = store.record_step(id, OperationKind::Upgrade, "x", &"c", &[]);
    assert!(matches!(wrong_kind, Err(StoreError::JournalMismatch { .. })), "{wrong_kind:?}");
    assert!(matches!(store.set_undo(id, OperationKind::Install, &[]), Err(StoreError::JournalMismatch { .. })));
    assert!(matches!(
        store.record_step(999, OperationKind::Install, "x", &"c", &[]),
        Err(StoreError::JournalMismatch { .. })
    ));
    assert!(matches!(
        store.close(id, OperationKind::Install, Phase::Running, Phase::Done, None),
        Err(StoreError::JournalMismatch { .. })
    ));
    assert_eq!(store.entry(id).unwrap().unwrap().step, "accepted");
    // A rollback: running → rolling_back (repeatable) → rolled_back, never back.
    store.start_rollback(id, OperationKind::Install, "boom").unwrap();
    store.start_rollback(id, OperationKind::Install, "again").unwrap();
    assert_eq!(store.entry(id).unwrap().unwrap().error.as_deref(), Some("boom"), "the first cause is kept");
    assert!(matches!(
        store.record_step(id, OperationKind::Install, "x", &"c", &[]),
        Err(StoreError::JournalMismatch { .. })
    ));
    store.set_undo(id, OperationKind::Install, &[]).unwrap();
    store.close(id, OperationKind::Install, Phase::RollingBack, Phase::RolledBack, None).unwrap();
    assert!(matches!(store.start_rollback(id, OperationKind::Install, "x"), Err(StoreError::JournalMismatch { .. })));
}

#[test]
fn the_journal_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let id = {
        let store = Store::open(&path).unwrap();
        let id = begin_install(&store, &spec("aa", "")).unwrap();
        store
            .record_step(
                id,
                OperationKind::Install,
                "image_ready",
                &serde_json::json!({"n": 2}),
                &[release("sha256:9")],
            )
            .unwrap();
        id
    };
    let store = Store::open(&path).unwrap();
    let open = store.open_entries().unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!((open[0].id, open[0].context["n"].as_i64()), (id, Some(2)));
    assert_eq!(open[0].undo[0], release("sha256:9"));
}

#[test]
fn one_open_operation_per_subject() {
    let (_dir, store) = store();
    install(&store, "aa", "sha256:1");
    let uninstall = |store: &Store| {
        store.begin(NewEntry {
            kind: OperationKind::Uninstall,
            subject: "app:aa",
            phase: Phase::Committed,
            context: &"u",
            undo: &[],
            forward: &[Effect::DeleteApp { app: AppName::parse("aa").unwrap() }],
            app: AppChange::RequireInstalled("aa".into()),
        })
    };
    uninstall(&store).unwrap();
    assert!(matches!(uninstall(&store), Err(StoreError::Busy { kind, .. }) if kind == "uninstall"));
    let missing = store.begin(NewEntry {
        kind: OperationKind::Uninstall,
        subject: "app:bb",
        phase: Phase::Committed,
        context: &"u",
        undo: &[],
        forward: &[],
        app: AppChange::RequireInstalled("bb".into()),
    });
    assert!(matches!(missing, Err(StoreError::AppNotFound { .. })));
}

#[test]
fn images_in_use_by_apps_or_open_operations() {
    let (_dir, store) = store();
    install(&store, "aa", "sha256:same");
    install(&store, "bb", "sha256:same");
    assert!(store.image_in_use("sha256:same", Some("aa"), None).unwrap());
    assert!(!store.image_in_use("sha256:other", Some("aa"), None).unwrap());
    // An install bringing the image right now holds it too.
    let id = begin_install(&store, &spec("cc", "")).unwrap();
    store.record_step(id, OperationKind::Install, "fetching_image", &"c", &[release("sha256:new")]).unwrap();
    assert!(store.image_in_use("sha256:new", None, None).unwrap());
    assert!(!store.image_in_use("sha256:new", None, Some(id)).unwrap(), "except the entry asking");
}

#[test]
fn desired_state_and_deletion() {
    let (_dir, store) = store();
    install(&store, "aa", "sha256:1");
    store.set_desired("aa", DesiredState::Stopped).unwrap();
    assert_eq!(store.app("aa").unwrap().unwrap().desired, DesiredState::Stopped);
    assert!(matches!(store.set_desired("zz", DesiredState::Stopped), Err(StoreError::AppNotFound { .. })));
    store.delete_app("aa").unwrap();
    store.delete_app("aa").unwrap();
    assert!(store.apps().unwrap().is_empty());
}

#[test]
fn the_database_is_private() {
    let (dir, store) = store();
    install(&store, "aa", "sha256:1");
    for name in ["berth.db", "berth.db-wal"] {
        let mode = std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{name} is {mode:o}");
    }
    drop(store);
    // A file an earlier berth left readable is made private.
    let path = dir.path().join("berth.db");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    Store::open(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_database_of_a_newer_berth_is_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    Store::open(&path).unwrap();
    Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 999;").unwrap();
    assert!(matches!(Store::open(&path), Err(StoreError::TooNew { found: 999, .. })));
    let version: i64 = Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 999);
}

#[test]
fn a_damaged_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    {
        let store = Store::open(&path).unwrap();
        for n in 0..200 {
            install(&store, &format!("app{n}"), &format!("sha256:{n:064}"));
        }
    }
    // Checkpoint the WAL into the file, then overwrite a page in the middle.
    Connection::open(&path).unwrap().execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    for (i, b) in bytes[middle..middle + 4096].iter_mut().enumerate() {
        *b = (i * 7 + 13) as u8;
    }
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(Store::open(&path), Err(StoreError::Damaged { .. })), "{:?}", Store::open(&path).err());
    std::fs::write(&path, b"this is not a database at all, just text that fills the header and more").unwrap();
    assert!(matches!(Store::open(&path), Err(StoreError::Damaged { .. })));
}

#[test]
fn a_database_of_the_previous_layout_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE apps (name TEXT PRIMARY KEY, spec TEXT NOT NULL, desired TEXT NOT NULL, installed INTEGER NOT NULL,
                 created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, previous_spec TEXT);
             CREATE TABLE operations (id INTEGER PRIMARY KEY AUTOINCREMENT, app TEXT NOT NULL, kind TEXT NOT NULL,
                 state TEXT NOT NULL, record TEXT NOT NULL, error TEXT, started_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
             CREATE UNIQUE INDEX one_running_operation_per_app ON operations(app) WHERE state = 'running';
             PRAGMA user_version = 2;",
        )
        .unwrap();
        c.execute(
            "INSERT INTO apps VALUES ('aa', ?1, 'running', 1, 1, 1, NULL)",
            [serde_json::to_string(&spec("aa", "sha256:1")).unwrap()],
        )
        .unwrap();
        c.execute_batch(
            "INSERT INTO operations (app, kind, state, record, started_at, updated_at) VALUES ('aa', 'install', 'done', '{}', 1, 1);
             INSERT INTO operations (app, kind, state, record, started_at, updated_at) VALUES ('aa', 'upgrade', 'running', '{}', 2, 2);",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.apps().unwrap()[0].spec.image_id, "sha256:1");
    assert!(store.open_entries().unwrap().is_empty(), "an old open entry is closed, not replayed");
    let old = store.entry(2).unwrap().unwrap();
    assert_eq!((old.subject.as_str(), old.phase), ("app:aa", Phase::RolledBack));
    // And the new journal works on it.
    install(&store, "bb", "sha256:2");
    // The database as it was is kept, once, readable by the old berth.
    let backup = dir.path().join("backup/berth.db.schema-2");
    let old = Connection::open(&backup).unwrap();
    let version: i64 = old.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 2);
    let apps: i64 = old.query_row("SELECT COUNT(*) FROM apps", [], |r| r.get(0)).unwrap();
    assert_eq!(apps, 1);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o600);
    drop(store);
    Store::open(&path).unwrap();
    assert_eq!(std::fs::read_dir(dir.path().join("backup")).unwrap().count(), 1, "opening again makes no new copy");
}

#[test]
fn a_rebuilt_app_is_recorded_once_and_never_over_a_recorded_one() {
    let (_dir, store) = store();
    let rebuilt = StoredApp {
        spec: spec("web", "sha256:2"),
        previous: Some(spec("web", "sha256:1")),
        desired: DesiredState::Stopped,
        installed: true,
        created_at: 42,
    };
    assert!(store.restore_app(&rebuilt).unwrap());
    assert_eq!(store.app("web").unwrap().unwrap(), rebuilt);
    assert!(!store.restore_app(&StoredApp { spec: spec("web", "sha256:9"), ..rebuilt.clone() }).unwrap());
    assert_eq!(store.app("web").unwrap().unwrap(), rebuilt, "the recorded app wins");
    install(&store, "db", "sha256:3");
    assert!(!store.restore_app(&StoredApp { spec: spec("db", "sha256:9"), ..rebuilt }).unwrap());
    assert_eq!(store.app("db").unwrap().unwrap().spec.image_id, "sha256:3");
}

/// A database of schema 4 (the release before the event log), as that
/// release's own tables make it, with an app: migrated to 5 in one
/// transaction after a backup copy; its app kept; events then work.
#[test]
fn a_schema_4_database_gains_the_event_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(&format!(
            "BEGIN; {} {} PRAGMA user_version = 4; COMMIT;",
            schema::TABLES,
            crate::resources::TABLES
        ))
        .unwrap();
        c.execute(
            "INSERT INTO apps (name, spec, desired, installed, created_at, updated_at) VALUES ('aa', ?1, 'running', 1, 1, 1)",
            [serde_json::to_string(&spec("aa", "sha256:1")).unwrap()],
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.apps().unwrap()[0].spec.image_id, "sha256:1");
    let backup = Connection::open(dir.path().join("backup/berth.db.schema-4")).unwrap();
    assert_eq!(backup.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).unwrap(), 4);
    let event = NewEvent { at: 5, kind: "app.running".into(), name: "aa".into(), data: "{}".into() };
    assert_eq!(store.append_events(&[event]).unwrap()[0].id, 1);
    drop(store);
    // Opened again (a second migration run): nothing changes, nothing is lost.
    let store = Store::open(&path).unwrap();
    assert_eq!(store.events_after(0, 10).unwrap().len(), 1);
    let version: i64 = Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

#[test]
fn event_ids_only_grow_and_retention_trims_the_oldest() {
    let (_dir, store) = store();
    assert_eq!(store.event_bounds().unwrap(), (None, 0));
    let new = |at: i64| NewEvent { at, kind: "app.running".into(), name: format!("a{at}"), data: "{}".into() };
    let stored = store.append_events(&(1..=10).map(new).collect::<Vec<_>>()).unwrap();
    assert_eq!(stored.iter().map(|e| e.id).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    assert_eq!(store.events_after(7, 100).unwrap().iter().map(|e| e.id).collect::<Vec<_>>(), [8, 9, 10]);
    // Older than at=3, and beyond the newest 5.
    assert_eq!(store.trim_events(5, 3).unwrap(), 5);
    assert_eq!(store.event_bounds().unwrap(), (Some(6), 10));
    store.trim_events(0, 0).unwrap();
    assert_eq!(store.event_bounds().unwrap(), (None, 10), "an id is never given again");
    assert_eq!(store.append_events(&[new(11)]).unwrap()[0].id, 11);
}
