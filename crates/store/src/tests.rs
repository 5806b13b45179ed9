use super::*;
use berth_core::source::Source;
use berth_core::AppName;

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

#[test]
fn install_reserves_the_name_once() {
    let (_dir, store) = store();
    let op = store.begin_install(&spec("a", ""), &"rec").unwrap();
    assert!(matches!(store.begin_install(&spec("a", ""), &"rec"), Err(StoreError::AppExists { .. })));
    let app = store.app("a").unwrap().unwrap();
    assert!(!app.installed);
    assert!(matches!(store.begin_uninstall("a", &"u"), Err(StoreError::Busy { .. })));
    store.commit_install(op, &spec("a", "sha256:1"), &"done").unwrap();
    let app = store.app("a").unwrap().unwrap();
    assert!(app.installed);
    assert_eq!(app.spec.image_id, "sha256:1");
    assert_eq!(store.operation(op).unwrap().unwrap().state, OperationState::Done);
}

#[test]
fn journal_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let op = {
        let store = Store::open(&path).unwrap();
        let op = store.begin_install(&spec("a", ""), &1).unwrap();
        store.record_step(op, &2).unwrap();
        op
    };
    let store = Store::open(&path).unwrap();
    let running = store.running_operations().unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!((running[0].id, running[0].record::<i32>().unwrap()), (op, 2));
    store.finish_operation(op, OperationState::RolledBack, Some("daemon died"), Some("a")).unwrap();
    assert!(store.running_operations().unwrap().is_empty());
    assert!(store.app("a").unwrap().is_none());
}

#[test]
fn one_operation_per_app() {
    let (_dir, store) = store();
    let op = store.begin_install(&spec("a", "sha256:1"), &0).unwrap();
    store.commit_install(op, &spec("a", "sha256:1"), &0).unwrap();
    store.begin_uninstall("a", &0).unwrap();
    assert!(matches!(store.begin_uninstall("a", &0), Err(StoreError::Busy { kind, .. }) if kind == "uninstall"));
    assert!(matches!(store.begin_uninstall("b", &0), Err(StoreError::AppNotFound { .. })));
}

#[test]
fn image_use_and_desired_state() {
    let (_dir, store) = store();
    for name in ["a", "b"] {
        let op = store.begin_install(&spec(name, "sha256:same"), &0).unwrap();
        store.commit_install(op, &spec(name, "sha256:same"), &0).unwrap();
    }
    assert!(store.image_in_use("sha256:same", "a").unwrap());
    assert!(!store.image_in_use("sha256:other", "a").unwrap());
    store.set_desired("a", DesiredState::Stopped).unwrap();
    assert_eq!(store.app("a").unwrap().unwrap().desired, DesiredState::Stopped);
    assert!(matches!(store.set_desired("zz", DesiredState::Stopped), Err(StoreError::AppNotFound { .. })));
    assert_eq!(store.apps().unwrap().len(), 2);
}
