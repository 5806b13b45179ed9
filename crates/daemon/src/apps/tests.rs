//! The apps capability against the complete fake engine.
//!
//! - Supervision on tokio's paused clock: backoff, give-up, user stops,
//!   reconciliation, a panicking task.
//! - The journal: every operation is cut short at every one of its crash
//!   points (learnt by running it once), then a fresh daemon over the same
//!   store and engine recovers, and the result must be the whole operation
//!   or none of it. These run on the real clock: blocking work (SQLite, the
//!   archive checker) must not let paused time race ahead of it.

use super::{Apps, AppsApi};
use crate::config::{RestartSettings, Settings};
use crate::daemon::Daemon;
use crate::journal::crash::CrashPoints;
use crate::testing::{at_every_crash_point, boxed, upload, Fixture};
use berth_api::routes::apps::AppsManager;
use berth_api::{InstallRequest, Operation, SourceRequest, UpgradeRequest};
use berth_core::engine::EngineError;
use berth_core::source::Source;
use berth_core::spec::AppSpec;
use berth_core::status::{AppState, DesiredState};
use berth_core::AppName;
use berth_store::{AppChange, NewEntry};
use berth_testkit::fake::{FakeImage, Method, OnStart};
use berth_testkit::ImageBuilder;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const IMAGE: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn settings() -> Settings {
    Settings {
        start_check_ms: 1,
        stop_timeout_secs: 1,
        probation_secs: 0,
        restart: RestartSettings {
            initial_backoff_ms: 1000,
            max_backoff_ms: 8000,
            max_crashes: 3,
            stable_after_secs: 60,
            jitter: 0.2,
        },
        ..Settings::default()
    }
}

fn fixture() -> Fixture {
    Fixture::new(settings())
}

impl Fixture {
    fn private_dir(&self, app: &str) -> PathBuf {
        self.root().join("tpc").join(app)
    }

    /// A real `docker save` archive whose image the fake loads when it is streamed in.
    fn archive(&self, tag: &str, marker: &str) -> (PathBuf, String) {
        let path = self.dir.path().join(format!("{marker}.tar"));
        let archive = ImageBuilder::new(tag).layer_marker(marker).write_tar(&path).unwrap();
        (path, archive.image_id)
    }

    fn load_next(&self, image: &str, tag: &str) {
        self.engine.load_next([FakeImage::new(image).tag(tag)]);
    }
}

fn api(daemon: &Arc<Daemon>) -> AppsApi {
    AppsApi(daemon.apps.clone())
}

fn install_request(name: &str, path: &Path) -> InstallRequest {
    InstallRequest {
        name: name.into(),
        source: SourceRequest::Upload { origin: path.display().to_string(), size: None },
        args: String::new(),
        cpus: None,
        memory: None,
        sha256: None,
    }
}

fn upgrade_request(path: &Path) -> UpgradeRequest {
    UpgradeRequest {
        source: SourceRequest::Upload { origin: path.display().to_string(), size: None },
        args: None,
        cpus: None,
        memory: None,
        sha256: None,
        skip_data: false,
    }
}

async fn install(daemon: &Arc<Daemon>, name: &str, path: &Path) -> Result<berth_api::AppView, berth_api::ApiError> {
    install_with(daemon, name, path, "").await
}

async fn install_with(
    daemon: &Arc<Daemon>,
    name: &str,
    path: &Path,
    args: &str,
) -> Result<berth_api::AppView, berth_api::ApiError> {
    let request = InstallRequest { args: args.into(), ..install_request(name, path) };
    api(daemon).install(request, Some(upload(path)), Operation::detached()).await
}

/// An installed app written straight into the store, with its image in the engine.
fn stored_app(fixture: &Fixture, name: &str) {
    fixture.engine.add_image(FakeImage::new(IMAGE).tag("app:1"));
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
    let store = fixture.store();
    let subject = format!("app:{name}");
    let id = store
        .begin(NewEntry {
            kind: berth_core::journal::OperationKind::Install,
            subject: &subject,
            phase: berth_core::journal::Phase::Running,
            context: &"test",
            undo: &[],
            forward: &[],
            app: AppChange::Reserve(spec.clone()),
        })
        .unwrap();
    // No forward work: the commit closes the entry too.
    store.commit(id, berth_core::journal::OperationKind::Install, &"test", &[], AppChange::Install(spec)).unwrap();
}

fn state(apps: &Apps, name: &str) -> (AppState, Option<String>) {
    let handle = apps.registry.get(name).expect("the app is known");
    let r = handle.runtime.lock().unwrap();
    (r.state, r.failure.clone())
}

/// Lets the app's task work through what it was sent (paused time).
async fn settle() {
    for _ in 0..30 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn send(apps: &Apps, name: &str, command: super::actor::Command) {
    let sender = apps.registry.get(name).unwrap().commands.unwrap();
    sender.send(command).await.unwrap();
}

// ----- supervision ---------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn reconcile_creates_and_starts_a_missing_container() {
    let fixture = fixture();
    stored_app(&fixture, "web");
    let daemon = fixture.started(CrashPoints::off()).await;
    settle().await;
    let container = fixture.engine.container("web").expect("created");
    assert_eq!(container.starts, 1);
    assert_eq!(container.config.labels["berth.instance"], "test");
    assert_eq!(state(&daemon.apps, "web").0, AppState::Running);
}

#[tokio::test(start_paused = true)]
async fn crashes_are_restarted_after_backoff_until_berth_gives_up() {
    let fixture = fixture();
    stored_app(&fixture, "web");
    let daemon = fixture.started(CrashPoints::off()).await;
    settle().await;
    // Every restart dies again at once.
    fixture.engine.on_start("web", [OnStart::Exit(3), OnStart::Exit(3)]);
    fixture.engine.exit("web", 3);
    send(&daemon.apps, "web", super::actor::Command::Observe).await;
    settle().await;
    assert_eq!(state(&daemon.apps, "web"), (AppState::Restarting, Some("exited with code 3".into())));

    // Backoff 1 s with the jitter at its middle: nothing before, a restart after.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(fixture.engine.container("web").unwrap().starts, 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    settle().await;
    assert_eq!(fixture.engine.container("web").unwrap().starts, 2);
    assert_eq!(state(&daemon.apps, "web").0, AppState::Restarting);

    // The second backoff is 2 s; the third crash in a row gives up.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    settle().await;
    assert_eq!(fixture.engine.container("web").unwrap().starts, 3);
    let (app_state, failure) = state(&daemon.apps, "web");
    assert_eq!(app_state, AppState::Failed);
    assert!(failure.unwrap().starts_with("crashed 3 times in a row"));

    // Given up: no more starts, however long we wait.
    tokio::time::sleep(Duration::from_secs(120)).await;
    settle().await;
    assert_eq!(fixture.engine.container("web").unwrap().starts, 3);

    // The user's start is a fresh chance.
    let view = api(&daemon).start("web").await.unwrap();
    assert_eq!((view.state, view.restarts), (AppState::Running, 0));
}

#[tokio::test(start_paused = true)]
async fn a_user_stop_is_not_a_crash() {
    let fixture = fixture();
    stored_app(&fixture, "web");
    let daemon = fixture.started(CrashPoints::off()).await;
    settle().await;
    assert_eq!(api(&daemon).stop("web").await.unwrap().state, AppState::Stopped);
    send(&daemon.apps, "web", super::actor::Command::Observe).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    settle().await;
    assert_eq!(fixture.engine.container("web").unwrap().starts, 1);
    assert_eq!(state(&daemon.apps, "web").0, AppState::Stopped);
    assert_eq!(fixture.store().app("web").unwrap().unwrap().desired, DesiredState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_container_removed_behind_berths_back_is_recreated() {
    let fixture = fixture();
    stored_app(&fixture, "web");
    let daemon = fixture.started(CrashPoints::off()).await;
    settle().await;
    let old = fixture.engine.container("web").unwrap().id;
    fixture.engine.remove_behind_back("web");
    send(&daemon.apps, "web", super::actor::Command::Observe).await;
    settle().await;
    let new = fixture.engine.container("web").expect("recreated");
    assert_ne!(new.id, old);
    assert_eq!(state(&daemon.apps, "web").0, AppState::Running);
}

/// Defect: a panicking app task died silently and the app then answered
/// "not found". Now the panic is logged, the task goes on, and an app whose
/// task keeps panicking is shown as failed.
#[tokio::test(start_paused = true)]
async fn a_panicking_app_task_is_kept_and_marked_failed_if_it_keeps_panicking() {
    let fixture = fixture();
    stored_app(&fixture, "web");
    let daemon = fixture.started(CrashPoints::off()).await;
    settle().await;
    fixture.engine.panic_next(Method::Inspect);
    send(&daemon.apps, "web", super::actor::Command::Observe).await;
    settle().await;
    assert!(api(&daemon).show("web", false).await.is_ok(), "the app is still known after a panic");
    // The task still answers.
    assert_eq!(api(&daemon).stop("web").await.unwrap().state, AppState::Stopped);
    for _ in 0..3 {
        fixture.engine.panic_next(Method::Inspect);
        send(&daemon.apps, "web", super::actor::Command::Observe).await;
        settle().await;
    }
    let (app_state, failure) = state(&daemon.apps, "web");
    assert_eq!(app_state, AppState::Failed);
    assert!(failure.unwrap().contains("failed"), "the reason is shown");
}

// ----- install and uninstall -------------------------------------------------

#[tokio::test]
async fn an_install_that_fails_at_create_undoes_every_step() {
    let fixture = fixture();
    let daemon = fixture.started(CrashPoints::off()).await;
    let (path, image) = fixture.archive("app:2", "create-fails");
    fixture.load_next(&image, "app:2");
    fixture.engine.fail_next(Method::Create, EngineError::Rejected { status: 400, message: "scripted".into() });
    let error = install(&daemon, "web", &path).await.unwrap_err();
    assert!(error.message.contains("scripted"), "{error}");
    assert!(!fixture.engine.has_image(&image), "the loaded image is removed");
    assert!(fixture.engine.container("web").is_none());
    assert!(!fixture.private_dir("web").exists(), "the private directory is removed");
    assert!(fixture.store().app("web").unwrap().is_none(), "the name is free again");
    assert!(fixture.store().open_entries().unwrap().is_empty());
    assert!(daemon.apps.registry.get("web").is_none());
}

#[tokio::test]
async fn an_undo_keeps_an_image_that_was_there_before() {
    let fixture = fixture();
    let daemon = fixture.started(CrashPoints::off()).await;
    let (path, image) = fixture.archive("app:3", "was-there");
    fixture.engine.add_image(FakeImage::new(&image).tag("app:3"));
    fixture.load_next(&image, "app:3");
    fixture.engine.on_start("web", [OnStart::Exit(1)]);
    let error = install(&daemon, "web", &path).await.unwrap_err();
    assert!(error.message.contains("exited with code 1"), "{error}");
    assert!(fixture.engine.has_image(&image), "an image another install brought stays");
    assert!(fixture.engine.container("web").is_none());
}

#[tokio::test]
async fn an_uninstall_cut_short_by_the_engine_is_finished_when_it_is_back() {
    let fixture = fixture();
    stored_app(&fixture, "web");
    let daemon = fixture.started(CrashPoints::off()).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while fixture.engine.container("web").is_none_or(|c| c.starts == 0) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    fixture.engine.set_unreachable(true);
    let error = api(&daemon).uninstall("web", false).await.unwrap_err();
    assert_eq!(error.code, berth_core::ErrorKind::EngineUnavailable, "{error}");
    assert_eq!(fixture.store().open_entries().unwrap().len(), 1, "the uninstall waits, committed");
    fixture.engine.set_unreachable(false);
    // What the engine watch does when the engine is back.
    assert_eq!(daemon.services.journal.resume_open().await.unwrap(), 0);
    assert!(fixture.engine.container("web").is_none());
    assert!(!fixture.engine.has_image(IMAGE));
    assert!(fixture.store().app("web").unwrap().is_none());
    assert!(fixture.store().open_entries().unwrap().is_empty());
}

/// Issue 13 (19): a named volume made by `-v name:/path` was left after
/// uninstall. What the install made goes with the app; what existed stays.
#[tokio::test]
async fn volumes_the_install_made_go_with_the_app_and_others_stay() {
    let fixture = fixture();
    let daemon = fixture.started(CrashPoints::off()).await;
    fixture.engine.add_volume("shared", &[("owner", "someone")]);
    let (path, image) = fixture.archive("app:1", "volumes");
    fixture.load_next(&image, "app:1");
    install_with(&daemon, "web", &path, "-v webdata:/data -v shared:/shared").await.unwrap();
    let volume = berth_core::engine::Engine::inspect_volume(&fixture.engine, "webdata").await.unwrap().expect("made");
    assert_eq!((volume.labels["berth.instance"].as_str(), volume.labels["berth.app"].as_str()), ("test", "web"));
    api(&daemon).uninstall("web", false).await.unwrap();
    assert_eq!(fixture.engine.volume_names(), ["shared"]);

    // Kept data keeps the volumes; an install that fails keeps what was there.
    let (path, image) = fixture.archive("app:2", "volumes-kept");
    fixture.load_next(&image, "app:2");
    install_with(&daemon, "web", &path, "-v webdata:/data").await.unwrap();
    api(&daemon).uninstall("web", true).await.unwrap();
    assert_eq!(fixture.engine.volume_names(), ["shared", "webdata"]);
    let (path, image) = fixture.archive("app:3", "volumes-failed");
    fixture.load_next(&image, "app:3");
    fixture.engine.on_start("web", [OnStart::Exit(1)]);
    install_with(&daemon, "web", &path, "-v webdata:/data -v fresh:/fresh").await.unwrap_err();
    assert_eq!(fixture.engine.volume_names(), ["shared", "webdata"], "only the volume it made is removed");
}

/// Issue 13 (16): `--network` naming a network that does not exist failed
/// after the image was loaded, with "container … does not exist".
#[tokio::test]
async fn a_missing_network_is_refused_before_anything_changes() {
    let fixture = fixture();
    let daemon = fixture.started(CrashPoints::off()).await;
    let (path, image) = fixture.archive("app:1", "network");
    fixture.load_next(&image, "app:1");
    for (args, named) in
        [("--network nosuch", "network \"nosuch\""), ("--network container:nobody", "container \"nobody\"")]
    {
        fixture.engine.clear_calls();
        let error = install_with(&daemon, "web", &path, args).await.unwrap_err();
        assert_eq!(error.code, berth_core::ErrorKind::InvalidInput, "{error}");
        assert!(error.message.contains("--network") && error.message.contains(named), "{error}");
        assert!(!fixture.engine.calls().iter().any(|c| c.starts_with("load_image")), "{args}: nothing is loaded");
        assert!(fixture.store().app("web").unwrap().is_none());
    }
    fixture.engine.add_network("backend");
    install_with(&daemon, "web", &path, "--network backend").await.unwrap();
}

/// Issue 13 (9): when the engine went away after an install had loaded its
/// image, the rollback left the image in the engine forever. The undo waits
/// (its entry open) and is finished when the engine is back.
#[tokio::test]
async fn an_install_cut_off_from_the_engine_releases_its_image_when_it_is_back() {
    let fixture = fixture();
    let daemon = fixture.started(CrashPoints::off()).await;
    let (path, image) = fixture.archive("app:1", "outage");
    fixture.load_next(&image, "app:1");
    let away = || EngineError::Unreachable { endpoint: "fake".into(), reason: "scripted".into() };
    fixture.engine.fail_next(Method::Create, away());
    fixture.engine.fail_next(Method::RemoveImage, away());
    let error = install(&daemon, "web", &path).await.unwrap_err();
    assert_eq!(error.code, berth_core::ErrorKind::EngineUnavailable, "{error}");
    assert!(fixture.engine.has_image(&image), "the removal could not be made yet");
    assert_eq!(fixture.store().open_entries().unwrap().len(), 1, "the undo waits");
    // What the engine watch does when the engine is back.
    assert_eq!(daemon.services.journal.resume_open().await.unwrap(), 0);
    assert!(!fixture.engine.has_image(&image));
    assert!(fixture.store().open_entries().unwrap().is_empty());
    assert!(fixture.store().app("web").unwrap().is_none());
}

/// Issue 13 (9): an upgrade cut off from the engine after the old version
/// was set aside: the `.berth-old` container is renamed back (and the new
/// image released) when the engine is back, not at the next berth start.
#[tokio::test]
async fn an_upgrade_cut_off_from_the_engine_is_undone_when_it_is_back() {
    let fixture = fixture();
    let (old_path, old_image) = fixture.archive("app:1", "outage-old");
    fixture.load_next(&old_image, "app:1");
    let daemon = fixture.started(CrashPoints::off()).await;
    install(&daemon, "web", &old_path).await.unwrap();
    let (path, new_image) = fixture.archive("app:2", "outage-new");
    fixture.load_next(&new_image, "app:2");
    // The engine goes away as the new container is being started.
    let hold = fixture.engine.hold_next(Method::Start);
    let apps = api(&daemon);
    let path2 = path.clone();
    let running = tokio::spawn(async move {
        apps.upgrade("web", upgrade_request(&path2), Some(upload(&path2)), Operation::detached()).await
    });
    hold.entered().await;
    fixture.engine.set_unreachable(true);
    hold.release();
    let error = running.await.unwrap().unwrap_err();
    assert_eq!(error.code, berth_core::ErrorKind::EngineUnavailable, "{error}");
    fixture.engine.set_unreachable(false);
    assert!(fixture.engine.container("web.berth-old").is_some(), "the rename back waits");
    assert!(fixture.engine.has_image(&new_image));
    assert_eq!(daemon.services.journal.resume_open().await.unwrap(), 0);
    assert!(fixture.engine.container("web.berth-old").is_none());
    assert!(fixture.engine.container("web").is_some_and(|c| c.image_id == old_image && c.state.is_running()));
    assert!(!fixture.engine.has_image(&new_image));
    assert!(fixture.store().open_entries().unwrap().is_empty());
}

/// A container owns what is in its private directory: a link it puts in
/// place of `hook/` must not make berth (root) write the hook script
/// wherever the link points. The upgrade is refused and undone.
#[tokio::test]
async fn a_hook_directory_replaced_by_a_link_is_not_followed() {
    let fixture = fixture();
    let (old_path, old_image) = fixture.archive("app:1", "hook-old");
    fixture.engine.load_next([FakeImage::new(&old_image).tag("app:1").file("/tpc/hook/pre.sh", "#!/bin/sh\n")]);
    let daemon = fixture.started(CrashPoints::off()).await;
    install(&daemon, "web", &old_path).await.unwrap();
    let outside = fixture.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, fixture.private_dir("web").join("hook")).unwrap();
    let (path, new_image) = fixture.archive("app:2", "hook-new");
    fixture.load_next(&new_image, "app:2");
    let error = api(&daemon)
        .upgrade("web", upgrade_request(&path), Some(upload(&path)), Operation::detached())
        .await
        .unwrap_err();
    assert!(error.message.contains("symbolic link"), "{error}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing is written through the link");
    assert!(fixture.engine.container("web").is_some_and(|c| c.image_id == old_image));
}

/// The engine coming back resumes the open entries: one whose operation is
/// under way in this daemon is left to it, not undone under its feet.
#[tokio::test]
async fn the_engine_coming_back_leaves_a_running_operation_alone() {
    let fixture = fixture();
    let daemon = fixture.started(CrashPoints::off()).await;
    let (path, image) = fixture.archive("app:1", "live");
    fixture.load_next(&image, "app:1");
    let hold = fixture.engine.hold_next(Method::Start);
    let apps = api(&daemon);
    let path2 = path.clone();
    let running = tokio::spawn(async move {
        apps.install(install_request("web", &path2), Some(upload(&path2)), Operation::detached()).await
    });
    hold.entered().await;
    assert_eq!(daemon.services.journal.resume_open().await.unwrap(), 0);
    assert_eq!(fixture.store().open_entries().unwrap().len(), 1, "the install's entry is still open");
    assert!(fixture.engine.has_image(&image));
    hold.release();
    running.await.unwrap().unwrap();
    assert!(fixture.store().app("web").unwrap().is_some_and(|a| a.installed));
}

// ----- crashes at every step, recovered ----------------------------------------

#[tokio::test]
async fn an_install_cut_short_anywhere_is_undone_or_finished() {
    at_every_crash_point(
        fixture,
        |f| {
            let (path, image) = f.archive("app:1", "install");
            f.load_next(&image, "app:1");
            Arc::new((path, image))
        },
        |_f, daemon, given| {
            boxed(async move {
                let (path, _) = given.downcast_ref::<(PathBuf, String)>().unwrap();
                let _ = install_with(&daemon, "web", path, "-v webdata:/data").await;
            })
        },
        |f, point, committed, given| {
            let (_, image) = given.downcast_ref::<(PathBuf, String)>().unwrap();
            let app = f.store().app("web").unwrap();
            if committed {
                assert!(app.is_some_and(|a| a.installed), "{point}: the committed install is kept");
                assert!(f.engine.container("web").is_some(), "{point}: its container is kept");
                assert!(f.engine.has_image(image), "{point}");
                assert_eq!(f.engine.volume_names(), ["webdata"], "{point}");
            } else {
                assert!(app.is_none(), "{point}: the app's row is left");
                assert!(f.engine.container("web").is_none(), "{point}: a container is left");
                assert!(!f.engine.has_image(image), "{point}: the image is left");
                assert!(f.engine.volume_names().is_empty(), "{point}: the volume it made is left");
                assert!(!f.private_dir("web").exists(), "{point}: the private directory is left");
                assert!(!f.dir.path().join("units/berth-app-web.service").exists(), "{point}: the unit is left");
            }
        },
    )
    .await;
}

/// An installed app `web` (image `app:1`, data file `data/x` = "old"), an
/// archive of `app:2` scripted to load next.
fn installed_for_upgrade(f: &Fixture) -> Arc<dyn std::any::Any + Send + Sync> {
    let rt = tokio::runtime::Handle::current();
    let (old_path, old_image) = f.archive("app:1", "old");
    f.load_next(&old_image, "app:1");
    let daemon = tokio::task::block_in_place(|| rt.block_on(f.started(CrashPoints::off())));
    tokio::task::block_in_place(|| rt.block_on(install(&daemon, "web", &old_path))).unwrap();
    daemon.services.shutdown.cancel();
    std::fs::create_dir_all(f.private_dir("web").join("data")).unwrap();
    std::fs::write(f.private_dir("web").join("data/x"), "old").unwrap();
    let (new_path, new_image) = f.archive("app:2", "new");
    f.load_next(&new_image, "app:2");
    Arc::new((new_path, new_image, old_image))
}

fn no_operation_snapshots(f: &Fixture, point: &str) {
    let dir = f.root().join("snapshots/web");
    let left: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("op-")).collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{point}: snapshots left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_cut_short_anywhere_is_undone_or_finished() {
    at_every_crash_point(
        fixture,
        installed_for_upgrade,
        |_f, daemon, given| {
            boxed(async move {
                let (path, _, _) = given.downcast_ref::<(PathBuf, String, String)>().unwrap();
                let _ =
                    api(&daemon).upgrade("web", upgrade_request(path), Some(upload(path)), Operation::detached()).await;
            })
        },
        |f, point, committed, given| {
            let (_, new_image, old_image) = given.downcast_ref::<(PathBuf, String, String)>().unwrap();
            let app = f.store().app("web").unwrap().expect("the app stays installed");
            let container = f.engine.container("web").expect("the app has a container");
            assert!(f.engine.container("web.berth-old").is_none(), "{point}: the old container is left aside");
            no_operation_snapshots(f, point);
            if committed {
                assert_eq!(app.spec.image_id, *new_image, "{point}");
                assert_eq!(app.previous.as_ref().map(|p| p.image_id.clone()), Some(old_image.clone()), "{point}");
                assert_eq!(container.image_id, *new_image, "{point}");
                assert!(
                    berth_fs::is_complete_snapshot(&f.root().join("snapshots/web/kept")),
                    "{point}: the data is kept for rollback"
                );
            } else {
                assert_eq!(app.spec.image_id, *old_image, "{point}: the app is back at its old version");
                assert_eq!(container.image_id, *old_image, "{point}: the old container is back");
                assert!(!f.engine.has_image(new_image), "{point}: the new image is left");
                assert_eq!(
                    std::fs::read_to_string(f.private_dir("web").join("data/x")).unwrap(),
                    "old",
                    "{point}: the data"
                );
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_cut_short_anywhere_is_undone_or_finished() {
    at_every_crash_point(
        fixture,
        |f| {
            let given = installed_for_upgrade(f);
            let (path, new_image, old_image) = given.downcast_ref::<(PathBuf, String, String)>().unwrap().clone();
            let rt = tokio::runtime::Handle::current();
            let daemon = tokio::task::block_in_place(|| rt.block_on(f.started(CrashPoints::off())));
            tokio::task::block_in_place(|| {
                rt.block_on(api(&daemon).upgrade(
                    "web",
                    upgrade_request(&path),
                    Some(upload(&path)),
                    Operation::detached(),
                ))
            })
            .unwrap();
            daemon.services.shutdown.cancel();
            std::fs::write(f.private_dir("web").join("data/x"), "new").unwrap();
            Arc::new((new_image, old_image))
        },
        |_f, daemon, _| {
            boxed(async move {
                let _ = api(&daemon).rollback("web", Operation::detached()).await;
            })
        },
        |f, point, committed, given| {
            let (new_image, old_image) = given.downcast_ref::<(String, String)>().unwrap();
            let app = f.store().app("web").unwrap().expect("the app stays installed");
            let container = f.engine.container("web").expect("the app has a container");
            assert!(f.engine.container("web.berth-old").is_none(), "{point}: the old container is left aside");
            no_operation_snapshots(f, point);
            let data = std::fs::read_to_string(f.private_dir("web").join("data/x")).unwrap();
            if committed {
                assert_eq!(
                    (app.spec.image_id.as_str(), container.image_id.as_str()),
                    (old_image.as_str(), old_image.as_str()),
                    "{point}"
                );
                assert_eq!(data, "old", "{point}: the data of the version rolled back to");
                assert!(f.engine.has_image(new_image), "{point}: the version rolled away from is kept");
            } else {
                assert_eq!(
                    (app.spec.image_id.as_str(), container.image_id.as_str()),
                    (new_image.as_str(), new_image.as_str()),
                    "{point}"
                );
                assert_eq!(data, "new", "{point}: the data is as it was");
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uninstall_cut_short_anywhere_is_finished() {
    at_every_crash_point(
        fixture,
        |f| {
            let (path, image) = f.archive("app:1", "uninstall");
            f.load_next(&image, "app:1");
            let rt = tokio::runtime::Handle::current();
            let daemon = tokio::task::block_in_place(|| rt.block_on(f.started(CrashPoints::off())));
            tokio::task::block_in_place(|| rt.block_on(install(&daemon, "web", &path))).unwrap();
            daemon.services.shutdown.cancel();
            Arc::new(image)
        },
        |_f, daemon, _| {
            boxed(async move {
                let _ = api(&daemon).uninstall("web", false).await;
            })
        },
        |f, point, _committed, given| {
            let image = given.downcast_ref::<String>().unwrap();
            assert!(f.store().app("web").unwrap().is_none(), "{point}: the app's row is left");
            assert!(f.engine.container("web").is_none(), "{point}: the container is left");
            assert!(!f.engine.has_image(image), "{point}: the image is left");
            assert!(!f.private_dir("web").exists(), "{point}: the private directory is left");
        },
    )
    .await;
}

/// Defect 1: after a crash right after an upgrade committed, the work after
/// the commit (old container, snapshot kept, old image) was never done, and a
/// later rollback restored a `kept` snapshot that did not exist — emptying
/// the app's data. Now that work is journaled and finished by recovery, and a
/// rollback without a complete kept snapshot is refused, changing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_never_restores_a_missing_snapshot() {
    let fixture = fixture();
    let given = installed_for_upgrade(&fixture);
    let (path, _, _) = given.downcast_ref::<(PathBuf, String, String)>().unwrap();
    let daemon = fixture.started(CrashPoints::halt_at("upgrade:after_commit")).await;
    let _ = api(&daemon).upgrade("web", upgrade_request(path), Some(upload(path)), Operation::detached()).await;
    daemon.services.shutdown.cancel();
    let daemon = fixture.started(CrashPoints::off()).await;
    assert!(berth_fs::is_complete_snapshot(&fixture.root().join("snapshots/web/kept")), "recovery kept the snapshot");
    assert!(fixture.engine.container("web.berth-old").is_none(), "recovery removed the old container");

    // Without the kept snapshot, a rollback is refused and the data stays.
    std::fs::remove_dir_all(fixture.root().join("snapshots/web/kept")).unwrap();
    std::fs::write(fixture.private_dir("web").join("data/x"), "precious").unwrap();
    let error = api(&daemon).rollback("web", Operation::detached()).await.unwrap_err();
    assert_eq!(error.code, berth_core::ErrorKind::Conflict, "{error}");
    assert!(error.message.contains("snapshot"), "{error}");
    assert_eq!(std::fs::read_to_string(fixture.private_dir("web").join("data/x")).unwrap(), "precious");
}

/// Defect 3: a full disk on upgrade was reported as a failed operation
/// (exit 9) instead of insufficient space (exit 10), and only after the
/// journal entry was opened.
#[tokio::test]
async fn a_full_disk_refuses_an_upgrade_before_it_begins() {
    let fixture = fixture();
    let (old_path, old_image) = fixture.archive("app:1", "disk-old");
    fixture.load_next(&old_image, "app:1");
    let daemon = fixture.started(CrashPoints::off()).await;
    install(&daemon, "web", &old_path).await.unwrap();
    let (path, _) = fixture.archive("app:2", "disk-new");
    let mut request = upgrade_request(&path);
    // An upload the client says is larger than any disk.
    request.source = SourceRequest::Upload { origin: path.display().to_string(), size: Some(u64::MAX / 4) };
    fixture.engine.set_info(berth_core::engine::EngineInfo {
        version: "fake".into(),
        api_version: "1.41".into(),
        online_cpus: 2,
        root_dir: Some(fixture.root().display().to_string()),
    });
    let before = fixture.store().entry(1).unwrap();
    let error = api(&daemon).upgrade("web", request, Some(upload(&path)), Operation::detached()).await.unwrap_err();
    assert_eq!(error.code, berth_core::ErrorKind::InsufficientSpace, "{error}");
    assert_eq!(error.code.exit_code(), berth_core::ExitCode::InsufficientSpace);
    assert!(fixture.store().open_entries().unwrap().is_empty());
    assert_eq!(fixture.store().entry(3).unwrap(), None, "no upgrade entry was opened");
    let _ = before;
}

/// Defect 10: a client that goes away (or `berth cancel`) gets its install
/// undone, not abandoned.
#[tokio::test]
async fn a_cancelled_install_is_undone() {
    let fixture = fixture();
    let daemon = fixture.started(CrashPoints::off()).await;
    let (path, image) = fixture.archive("app:1", "cancel");
    fixture.load_next(&image, "app:1");
    let hold = fixture.engine.hold_next(Method::Start);
    let op = Operation::detached();
    let cancel = op.cancel.clone();
    let apps = api(&daemon);
    let path2 = path.clone();
    let running =
        tokio::spawn(async move { apps.install(install_request("web", &path2), Some(upload(&path2)), op).await });
    hold.entered().await;
    cancel.cancel();
    hold.release();
    let error = running.await.unwrap().unwrap_err();
    assert_eq!(error.code, berth_core::ErrorKind::Cancelled, "{error}");
    assert!(fixture.store().app("web").unwrap().is_none());
    assert!(fixture.engine.container("web").is_none());
    assert!(!fixture.engine.has_image(&image));
}

/// `berth cancel <name>` does the same from another client.
#[tokio::test]
async fn berth_cancel_undoes_a_running_upgrade() {
    let fixture = fixture();
    let (old_path, old_image) = fixture.archive("app:1", "cancel-old");
    fixture.load_next(&old_image, "app:1");
    let daemon = fixture.started(CrashPoints::off()).await;
    install(&daemon, "web", &old_path).await.unwrap();
    let (path, new_image) = fixture.archive("app:2", "cancel-new");
    fixture.load_next(&new_image, "app:2");
    let hold = fixture.engine.hold_next(Method::LoadImage);
    let apps = api(&daemon);
    let path2 = path.clone();
    let running = tokio::spawn(async move {
        apps.upgrade("web", upgrade_request(&path2), Some(upload(&path2)), Operation::detached()).await
    });
    hold.entered().await;
    api(&daemon).cancel("web").await.unwrap();
    hold.release();
    let error = running.await.unwrap().unwrap_err();
    assert_eq!(error.code, berth_core::ErrorKind::Cancelled, "{error}");
    assert_eq!(fixture.store().app("web").unwrap().unwrap().spec.image_id, old_image);
    assert!(!fixture.engine.has_image(&new_image));
    assert!(fixture.engine.container("web").is_some_and(|c| c.image_id == old_image));
}

// ----- migration ------------------------------------------------------------

fn migration_api(daemon: &Arc<Daemon>) -> super::migration::Migration {
    super::migration::Migration { apps: daemon.apps.clone() }
}

fn staging_left(f: &Fixture) -> Vec<String> {
    std::fs::read_dir(f.root().join("migration"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".export-"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_export_cut_short_anywhere_leaves_the_store_whole() {
    use berth_api::routes::migration::MigrationManager;
    at_every_crash_point(
        fixture,
        |f| {
            let (path, image) = f.archive("app:1", "export");
            f.load_next(&image, "app:1");
            let rt = tokio::runtime::Handle::current();
            let daemon = tokio::task::block_in_place(|| rt.block_on(f.started(CrashPoints::off())));
            tokio::task::block_in_place(|| rt.block_on(install(&daemon, "web", &path))).unwrap();
            daemon.services.shutdown.cancel();
            Arc::new(())
        },
        |_f, daemon, _| {
            boxed(async move {
                let _ = migration_api(&daemon).export().await;
            })
        },
        |f, point, committed, _| {
            assert!(staging_left(f).is_empty(), "{point}: staging left: {:?}", staging_left(f));
            let vehicles: Vec<_> = f
                .engine
                .images()
                .into_iter()
                .filter(|i| i.tags.iter().any(|t| t.starts_with("berth-migrated/")))
                .collect();
            assert!(vehicles.is_empty(), "{point}: the committed vehicle image is left");
            let manifest = f.root().join("migration/manifest.json");
            if committed {
                assert!(manifest.is_file(), "{point}: the export's manifest is in place");
                assert!(f.root().join("migration/web/image.tar.gz").is_file(), "{point}");
                assert!(f.root().join("migration/web/data.tar.gz").is_file(), "{point}");
            } else {
                assert!(!manifest.exists(), "{point}: an export cut short leaves no pending migration");
            }
        },
    )
    .await;
}

/// A migration store as an export on another host left it: `web`, its image
/// archive (a real one) and its data.
fn migration_store(f: &Fixture) -> Arc<dyn std::any::Any + Send + Sync> {
    let dir = f.root().join("migration/web");
    std::fs::create_dir_all(&dir).unwrap();
    let archive = ImageBuilder::new("berth-migrated/web:1")
        .layer_marker("migrated")
        .write_tar_gz(&dir.join("image.tar.gz"))
        .unwrap();
    f.load_next(&archive.image_id, "berth-migrated/web:1");
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("x"), "migrated data").unwrap();
    let file = std::fs::File::create(dir.join("data.tar.gz")).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()));
    tar.append_dir_all(".", data.path()).unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    let spec = AppSpec {
        name: AppName::parse("web").unwrap(),
        source: Source::parse("app:1").unwrap(),
        image_ref: "app:1".into(),
        image_id: "sha256:old".into(),
        args: String::new(),
        options: Default::default(),
        cpus: 0.4,
        memory: None,
    };
    let manifest = serde_json::json!({
        "exported_at": 1,
        "state": "pending",
        "apps": [{ "spec": spec, "desired": "running", "outcome": "exported" }],
    });
    std::fs::write(f.root().join("migration/manifest.json"), manifest.to_string()).unwrap();
    Arc::new(archive.image_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_import_cut_short_anywhere_is_undone_or_finished() {
    use berth_api::routes::migration::MigrationManager;
    at_every_crash_point(
        fixture,
        migration_store,
        |_f, daemon, _| {
            boxed(async move {
                let _ = migration_api(&daemon).import().await;
            })
        },
        |f, point, _committed, given| {
            let image = given.downcast_ref::<String>().unwrap();
            let app = f.store().app("web").unwrap();
            match app {
                // Finished (recovery imports a still pending migration again).
                Some(app) => {
                    assert!(app.installed, "{point}");
                    assert_eq!(app.spec.image_id, *image, "{point}: the migrated image");
                    assert!(f.engine.has_image(image), "{point}");
                    assert_eq!(
                        std::fs::read_to_string(f.private_dir("web").join("x")).unwrap(),
                        "migrated data",
                        "{point}"
                    );
                }
                None => {
                    assert!(!f.engine.has_image(image), "{point}: the loaded image is left");
                    assert!(!f.private_dir("web").exists(), "{point}: the restored data is left");
                }
            }
        },
    )
    .await;
}
