//! The daemon's logic against the scripted fake engine, on tokio's paused
//! clock: supervision with backoff, user stops, reconciliation, and the
//! install's undo. The same behaviours are tested against the real engine in
//! `crates/cli/tests`; here each decision is pinned down exactly.

use crate::actor::{self, Command};
use crate::config::{DaemonConfig, RestartSettings, Settings};
use crate::install;
use crate::registry::{AppHandle, Inner, Runtime};
use berth_api::InstallRequest;
use berth_core::engine::EngineError;
use berth_core::source::Source;
use berth_core::spec::AppSpec;
use berth_core::status::{AppState, DesiredState};
use berth_core::AppName;
use berth_store::Store;
use berth_testkit::fake::{FakeEngine, OnStart};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

const IMAGE: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn inner(engine: &FakeEngine, dir: &tempfile::TempDir) -> Arc<Inner> {
    let settings = Settings {
        start_check_ms: 100,
        stop_timeout_secs: 1,
        restart: RestartSettings {
            initial_backoff_ms: 1000,
            max_backoff_ms: 8000,
            max_crashes: 3,
            stable_after_secs: 60,
            jitter: 0.2,
        },
        ..Settings::default()
    };
    let config = DaemonConfig {
        root: dir.path().to_owned(),
        socket: dir.path().join("sock"),
        data_root: dir.path().join("tpc"),
        docker_host: None,
        unit_dir: dir.path().join("units"),
        settings,
    };
    Arc::new(Inner {
        config,
        instance: "test".into(),
        engine: Arc::new(engine.clone()),
        store: Store::open(&dir.path().join("berth.db")).unwrap(),
        apps: RwLock::new(BTreeMap::new()),
        online_cpus: Mutex::new(2),
        engine_version: Mutex::new(None),
        sra: Default::default(),
        recovered: AtomicBool::new(true),
        systemd: false,
    })
}

/// An installed, running app with its task; returns the task's channel.
async fn running_app(inner: &Arc<Inner>, engine: &FakeEngine, name: &str) -> mpsc::Sender<Command> {
    engine.add_image(IMAGE, &["app:1"]);
    let spec = AppSpec {
        name: AppName::parse(name).unwrap(),
        source: Source::parse("app:1").unwrap(),
        image_ref: "app:1".into(),
        image_id: IMAGE.into(),
        args: String::new(),
        options: Default::default(),
        cpus: 0.4,
        memory: None,
    };
    let op = inner.store.begin_install(&spec, &0).unwrap();
    inner.store.commit_install(op, &spec, &0).unwrap();
    let runtime = Runtime::new(spec, DesiredState::Running, AppState::Starting, 0);
    let commands = actor::spawn(inner.clone(), runtime.clone(), true);
    inner.insert(name, AppHandle { runtime, commands: Some(commands.clone()) });
    settle().await;
    commands
}

/// Lets the app's task work through what it was sent: 300 ms of (paused)
/// time, enough for the 100 ms start check.
async fn settle() {
    for _ in 0..30 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Installs `web` from `archive`, expecting it to fail.
async fn install_web(inner: &Arc<Inner>, archive: &std::path::Path) -> crate::OpError {
    let request = InstallRequest {
        name: "web".into(),
        source: archive.to_string_lossy().into_owned(),
        args: String::new(),
        cpus: None,
        memory: None,
        sha256: None,
        ca_file: None,
        registry_auth: None,
        ssh: Default::default(),
    };
    let (progress, _events) = mpsc::unbounded_channel();
    install::install(inner, request, progress).await.unwrap_err()
}

fn state(inner: &Inner, name: &str) -> (AppState, Option<String>) {
    let runtime = inner.runtime(name).unwrap();
    let r = runtime.lock().unwrap();
    (r.state, r.failure.clone())
}

#[tokio::test(start_paused = true)]
async fn reconcile_creates_and_starts_a_missing_container() {
    let (engine, dir) = (FakeEngine::new(), tempfile::tempdir().unwrap());
    let inner = inner(&engine, &dir);
    running_app(&inner, &engine, "web").await;
    let container = engine.container("web").expect("created");
    assert_eq!(container.starts, 1);
    assert_eq!(container.spec.labels["berth.instance"], "test");
    assert_eq!(state(&inner, "web").0, AppState::Running);
}

#[tokio::test(start_paused = true)]
async fn crashes_are_restarted_after_backoff_until_berth_gives_up() {
    let (engine, dir) = (FakeEngine::new(), tempfile::tempdir().unwrap());
    let inner = inner(&engine, &dir);
    let commands = running_app(&inner, &engine, "web").await;
    // Every restart dies again at once.
    engine.on_start("web", &[OnStart::Exit(3), OnStart::Exit(3)]);

    engine.exit("web", 3);
    commands.send(Command::Observe).await.unwrap();
    settle().await;
    assert_eq!(state(&inner, "web"), (AppState::Restarting, Some("exited with code 3".into())));

    // Backoff 1 s ± 20 %: nothing before 0.8 s (300 ms have passed in
    // settle), a restart by 1.2 s (and its 100 ms start check by 1.3 s).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(engine.container("web").unwrap().starts, 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    settle().await;
    assert_eq!(engine.container("web").unwrap().starts, 2);
    assert_eq!(state(&inner, "web").0, AppState::Restarting);

    // Second backoff is 2 s ± 20 %; the third crash in a row gives up.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    settle().await;
    assert_eq!(engine.container("web").unwrap().starts, 3);
    let (app_state, failure) = state(&inner, "web");
    assert_eq!(app_state, AppState::Failed);
    assert!(failure.unwrap().starts_with("crashed 3 times in a row"));

    // Given up: no more starts, however long we wait.
    tokio::time::sleep(Duration::from_secs(120)).await;
    settle().await;
    assert_eq!(engine.container("web").unwrap().starts, 3);

    // The user's start is a fresh chance.
    let (reply, answer) = oneshot::channel();
    commands.send(Command::Start(reply)).await.unwrap();
    let view = answer.await.unwrap().unwrap();
    assert_eq!((view.state.as_str(), view.restarts), ("running", 0));
}

#[tokio::test(start_paused = true)]
async fn a_user_stop_is_not_a_crash() {
    let (engine, dir) = (FakeEngine::new(), tempfile::tempdir().unwrap());
    let inner = inner(&engine, &dir);
    let commands = running_app(&inner, &engine, "web").await;
    let (reply, answer) = oneshot::channel();
    commands.send(Command::Stop(reply)).await.unwrap();
    assert_eq!(answer.await.unwrap().unwrap().state, "stopped");
    commands.send(Command::Observe).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    settle().await;
    assert_eq!(engine.container("web").unwrap().starts, 1);
    assert_eq!(state(&inner, "web").0, AppState::Stopped);
    assert_eq!(inner.store.app("web").unwrap().unwrap().desired, DesiredState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_container_removed_behind_berths_back_is_recreated() {
    let (engine, dir) = (FakeEngine::new(), tempfile::tempdir().unwrap());
    let inner = inner(&engine, &dir);
    let commands = running_app(&inner, &engine, "web").await;
    let old = engine.container("web").unwrap().id;
    engine.remove_behind_back("web");
    commands.send(Command::Observe).await.unwrap();
    settle().await;
    let new = engine.container("web").expect("recreated");
    assert_ne!(new.id, old);
    assert_eq!(state(&inner, "web").0, AppState::Running);
}

#[tokio::test(start_paused = true)]
async fn an_install_that_fails_at_create_undoes_every_step() {
    let (engine, dir) = (FakeEngine::new(), tempfile::tempdir().unwrap());
    let inner = inner(&engine, &dir);
    let builder = berth_testkit::ImageBuilder::new("app:2").service();
    let archive = builder.write_tar(&dir.path().join("app.tar")).unwrap();
    engine.load_next(&archive.image_id, &["app:2"]);
    engine.fail_next("create_container", EngineError::Rejected { status: 400, message: "scripted".into() });
    let error = install_web(&inner, &archive.path).await;
    assert!(error.to_string().contains("scripted"), "{error}");
    assert!(!engine.has_image(&archive.image_id), "the loaded image is removed");
    assert!(engine.container("web").is_none());
    assert!(!dir.path().join("tpc/web").exists(), "the private directory is removed");
    assert!(inner.store.app("web").unwrap().is_none(), "the name is free again");
    assert!(inner.store.running_operations().unwrap().is_empty());
    assert!(inner.runtime("web").is_none());
}

#[tokio::test(start_paused = true)]
async fn an_undo_keeps_an_image_that_was_there_before() {
    let (engine, dir) = (FakeEngine::new(), tempfile::tempdir().unwrap());
    let inner = inner(&engine, &dir);
    let builder = berth_testkit::ImageBuilder::new("app:3").service();
    let archive = builder.write_tar(&dir.path().join("app.tar")).unwrap();
    engine.add_image(&archive.image_id, &["app:3"]);
    engine.load_next(&archive.image_id, &["app:3"]);
    engine.on_start("web", &[OnStart::Exit(1)]);
    let error = install_web(&inner, &archive.path).await;
    assert!(error.to_string().contains("exited with code 1"), "{error}");
    assert!(engine.has_image(&archive.image_id), "an image another install brought stays");
    assert!(engine.container("web").is_none());
}

#[tokio::test(start_paused = true)]
async fn an_uninstall_cut_short_by_the_engine_is_finished_by_the_next_one() {
    let (engine, dir) = (FakeEngine::new(), tempfile::tempdir().unwrap());
    let inner = inner(&engine, &dir);
    let commands = running_app(&inner, &engine, "web").await;
    let uninstall = |keep_data| {
        let commands = commands.clone();
        async move {
            let (reply, answer) = oneshot::channel();
            commands.send(Command::Uninstall { keep_data, reply }).await.unwrap();
            answer.await.unwrap()
        }
    };
    engine.set_unreachable(true);
    let error = uninstall(false).await.unwrap_err();
    assert!(matches!(error, crate::OpError::Engine(EngineError::Unreachable { .. })), "{error}");
    assert_eq!(state(&inner, "web").0, AppState::Running, "the app is shown as it was");
    assert_eq!(inner.store.running_operations().unwrap().len(), 1);

    engine.set_unreachable(false);
    let done = uninstall(true).await.unwrap();
    assert!(!done.kept_data, "the earlier uninstall's options win");
    assert!(engine.container("web").is_none());
    assert!(!engine.has_image(IMAGE));
    assert!(inner.store.app("web").unwrap().is_none());
    assert!(inner.store.running_operations().unwrap().is_empty());
}
