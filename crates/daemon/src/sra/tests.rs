//! The SRA capability against the complete fake engine.
//!
//! - Ownership: another runner's execution container with the same
//!   execution id is never used, stopped or removed, and is reported.
//! - Locks: no lock is held across an engine call that may take long (the
//!   factory configuration read out of the image, the wait for running
//!   commands, garbage collection); the idle sweep stops containers
//!   concurrently. Engine calls are held with the fake's holds, and the test
//!   looks at the locks while they are held.
//! - The journal: an SRA load and an SRA removal are cut short at every one
//!   of their crash points (learnt by running them once), and a fresh daemon
//!   over the same store and engine recovers: a load is there entirely or
//!   not at all (no image, no configuration), a removal is finished.
//!
//! These run on the real clock: blocking work (SQLite, the configuration
//! trees) must not let paused time race ahead of it. Waiting is polling for
//! a condition with a deadline, never a sleep standing in for an event.

use super::conf::GENERATION_LABEL;
use super::{exec, execution_id, idle, images, Sra, EID_LABEL, SRA_CONTAINER_LABEL, SRA_LABEL};
use crate::config::{Settings, SraSettings};
use crate::daemon::Daemon;
use crate::journal::crash::CrashPoints;
use crate::testing::{at_every_crash_point, boxed, upload, Fixture, Given, INSTANCE};
use berth_api::{Operation, SraExecRequest, SraTarget};
use berth_core::engine::{ContainerConfig, Engine, RunState};
use berth_core::spec::LABEL_INSTANCE;
use berth_testkit::fake::{FakeEngine, FakeImage, Method};
use berth_testkit::ImageBuilder;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const IMAGE: &str = "sha256:5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
/// How long a condition polled for may take before the test gives up (a
/// deadline against hanging, not a measurement).
const PATIENCE: Duration = Duration::from_secs(20);

#[test]
fn execution_id_is_sha1_of_the_concatenation() {
    use sha1::{Digest, Sha1};
    let expected = hex::encode(Sha1::digest(b"sha256:abc/tmp/a/log/a"));
    assert_eq!(execution_id("sha256:abc", "/tmp/a", "/log/a"), expected);
    assert_eq!(execution_id("", "", ""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

fn fixture() -> Fixture {
    Fixture::new(Settings {
        stop_timeout_secs: 1,
        sra: SraSettings { config_max_entries: 50, ..SraSettings::default() },
        ..Settings::default()
    })
}

impl Fixture {
    /// Where the daemon keeps an image's configuration.
    fn conf_root(&self, image: &str) -> PathBuf {
        self.root().join("tpc/.berth-sra").join(image.trim_start_matches("sha256:"))
    }

    /// The current configuration generation of an image, as the daemon wrote it.
    fn generation(&self, image: &str) -> Option<String> {
        std::fs::read_to_string(self.conf_root(image).join("current")).ok().map(|g| g.trim().to_owned())
    }

    /// A tmp and a log directory for execution requests.
    fn dirs(&self) -> (String, String) {
        let (tmp, log) = (self.dir.path().join("sra-tmp"), self.dir.path().join("sra-log"));
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::create_dir_all(&log).unwrap();
        (tmp.display().to_string(), log.display().to_string())
    }

    fn request(&self) -> SraExecRequest {
        let (tmp_dir, log_dir) = self.dirs();
        SraExecRequest {
            target: SraTarget { image: IMAGE.into(), tmp_dir, log_dir, user: None, env: vec![], timeout_secs: None },
            input: "<Command xmlns=\"http://www.vmware.com/srm/sra/v2\"><Name>queryInfo</Name></Command>".into(),
        }
    }

    fn eid(&self) -> String {
        let (tmp, log) = self.dirs();
        execution_id(IMAGE, &tmp, &log)
    }

    /// A running container with `labels`, as another runner (or berth) made it.
    async fn container_with(&self, labels: &[(&str, &str)]) -> String {
        let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let config = ContainerConfig { image: IMAGE.into(), labels, open_stdin: true, ..Default::default() };
        let id = self.engine.create(&config).await.unwrap();
        self.engine.start(&id).await.unwrap();
        id
    }
}

/// An SRA image as the fake keeps it: the label, an executable entry point
/// and a factory configuration.
fn sra_image(id: &str) -> FakeImage {
    FakeImage::new(id)
        .tag("vendor/sra:1")
        .label(SRA_LABEL, "vendor-x")
        .file_with_mode("/srm/sra/command", "#!/bin/sh\n", 0o755)
        .file("/srm/sra/conf/settings.txt", "factory")
}

async fn run_exec(sra: &Sra, request: SraExecRequest) -> Result<berth_api::SraExecResult, super::SraError> {
    exec::exec(sra, request, Operation::detached()).await
}

/// Polls `condition` until it holds; panics after [`PATIENCE`].
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn calls_of(engine: &FakeEngine, method: Method) -> usize {
    engine.calls().iter().filter(|c| c.split(' ').next() == Some(method.as_str())).count()
}

// ----- other runners' execution containers --------------------------------------

/// Defects 4 and 12: a container with the same `srm.sra.eid` that this daemon
/// did not make (no `berth.sra`/instance label of its own, even with a
/// generation label that matches) is never used, stopped or removed; it is
/// reported by exec and list, and removal leaves it and therefore the image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_runners_container_is_reported_and_never_used_stopped_or_removed() {
    let f = fixture();
    f.engine.add_image(sra_image(IMAGE));
    let daemon = f.started(CrashPoints::off()).await;
    let sra = daemon.sra.clone();
    let eid = f.eid();
    // Generation 1 is also what this daemon's first container binds: only the instance tells them apart.
    let foreign = f.container_with(&[(EID_LABEL, &eid), (GENERATION_LABEL, "1"), (SRA_CONTAINER_LABEL, "other")]).await;

    let result = run_exec(&sra, f.request()).await.unwrap();
    assert_ne!(result.container_id, foreign, "the command ran in another runner's container");
    assert!(result.note.as_deref().is_some_and(|n| n.contains("another runner")), "{:?}", result.note);
    let ours = f.engine.container(&result.container_id).unwrap();
    assert_eq!(ours.config.labels.get(SRA_CONTAINER_LABEL).map(String::as_str), Some(INSTANCE));
    assert_eq!(ours.config.labels.get(LABEL_INSTANCE).map(String::as_str), Some(INSTANCE));
    assert!(f.engine.execs().iter().all(|e| e.container_id != foreign));

    // The idle sweep leaves it running.
    idle::sweep(&sra, Duration::ZERO).await.unwrap();
    assert_eq!(f.engine.container(&foreign).unwrap().state, RunState::Running);
    assert_eq!(f.engine.container(&result.container_id).unwrap().state, RunState::Exited);

    let listed = images::list(&sra).await.unwrap();
    assert_eq!((listed[0].containers, listed[0].foreign_containers), (1, 1));

    // Its generation label names its runner's configuration, not this one:
    // it keeps no generation of this daemon's alive.
    sra.config_reset(IMAGE).await.unwrap();
    let again = run_exec(&sra, f.request()).await.unwrap();
    assert_ne!(again.container_id, result.container_id, "the container bound to generation 1 is replaced");
    assert!(!f.conf_root(IMAGE).join("gen-1").exists(), "generation 1 is kept for another runner's container");
    assert_eq!(f.engine.container(&foreign).unwrap().state, RunState::Running);

    let removed = images::remove(&sra, IMAGE, false).await.unwrap();
    assert_eq!((removed.containers, removed.foreign_containers), (1, 1));
    assert!(f.engine.container(&again.container_id).is_none(), "ours is removed");
    assert_eq!(f.engine.container(&foreign).map(|c| c.state), Some(RunState::Running), "theirs is left running");
    assert!(f.engine.has_image(IMAGE), "the image is kept for the other runner's container");
    assert!(!f.conf_root(IMAGE).exists(), "this daemon's configuration of it is gone");
}

// ----- removal and running commands --------------------------------------------------

/// Defect 4: removal is refused while a command runs in one of this daemon's
/// execution containers of the image; forced, it kills the command first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_is_refused_under_a_running_command_and_forced_kills_it_first() {
    let f = fixture();
    f.engine.add_image(sra_image(IMAGE));
    f.engine.on_exec_default(|_| berth_testkit::fake::ExecScript::hang().out("working\n"));
    let daemon = f.started(CrashPoints::off()).await;
    let sra = daemon.sra.clone();
    let running = tokio::spawn({
        let (sra, request) = (sra.clone(), f.request());
        async move { run_exec(&sra, request).await }
    });
    until("the command to run", || f.engine.execs().len() == 1).await;

    let refused = images::remove(&sra, IMAGE, false).await.unwrap_err();
    assert!(matches!(refused, super::SraError::Busy { commands: 1, .. }), "{refused}");
    assert_eq!(refused.kind(), berth_core::ErrorKind::Busy);
    assert!(!running.is_finished(), "the refusal touched the command");
    assert!(f.engine.has_image(IMAGE) && f.conf_root(IMAGE).exists(), "a refused removal changed something");

    images::remove(&sra, IMAGE, true).await.unwrap();
    let killed = running.await.unwrap().unwrap_err();
    assert!(matches!(killed, super::SraError::Cancelled { .. }), "{killed}");
    assert!(killed.to_string().contains("working"), "the output so far is kept: {killed}");
    assert!(f.engine.containers().is_empty(), "{:?}", f.engine.containers());
    assert!(!f.engine.has_image(IMAGE));
    assert!(!f.conf_root(IMAGE).exists());
}

// ----- locks -------------------------------------------------------------------------------

/// Defect 7: the image's factory configuration is read out through a scratch
/// container without the configuration lock; meanwhile another user of the
/// image's configuration gets through (here a download, which makes the
/// configuration itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_lock_is_free_while_the_image_is_read_out() {
    let f = fixture();
    f.engine.add_image(sra_image(IMAGE));
    let daemon = f.started(CrashPoints::off()).await;
    let sra = daemon.sra.clone();
    let hold = f.engine.hold_next(Method::CopyFrom);
    let first = tokio::spawn({
        let sra = sra.clone();
        async move { sra.ensure_config(IMAGE).await }
    });
    hold.entered().await;
    let lock = sra.state.config_lock(IMAGE);
    assert!(lock.try_write().is_ok(), "the configuration lock is held while the image is read out");
    let downloaded = tokio::time::timeout(PATIENCE, sra.config_download(IMAGE))
        .await
        .expect("a download waited for the read-out of another request")
        .unwrap();
    assert_eq!(&downloaded[..2], b"\x1f\x8b");
    assert!(!first.is_finished(), "the first read-out is still held");
    hold.release();
    first.await.unwrap().unwrap();
    assert_eq!(f.generation(IMAGE).as_deref(), Some("1"), "two first uses make one generation");
}

/// Defect 7: a request whose container is bound to an old configuration
/// waits for the commands running in it without the execution id's setup
/// lock, and collects the old generation after releasing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_setup_lock_is_free_while_waiting_for_commands_and_collecting_garbage() {
    let f = fixture();
    f.engine.add_image(sra_image(IMAGE));
    let daemon = f.started(CrashPoints::off()).await;
    let sra = daemon.sra.clone();
    let slot = sra.state.slot(&f.eid());

    // A command runs (its exec is held) in a container bound to generation 1.
    let exec_hold = f.engine.hold_next(Method::Exec);
    let first = tokio::spawn({
        let (sra, request) = (sra.clone(), f.request());
        async move { run_exec(&sra, request).await }
    });
    exec_hold.entered().await;
    let old = f.engine.containers()[0].id.clone();
    sra.config_reset(IMAGE).await.unwrap();
    assert_eq!(f.generation(IMAGE).as_deref(), Some("2"));

    // The next request finds the container stale and waits for the command.
    let lists = calls_of(&f.engine, Method::List);
    let second = tokio::spawn({
        let (sra, request) = (sra.clone(), f.request());
        async move { run_exec(&sra, request).await }
    });
    until("the second request to look for its container", || calls_of(&f.engine, Method::List) > lists).await;
    until("the setup lock to be free while the second request waits", || slot.setup.try_lock().is_ok()).await;
    assert!(!second.is_finished() && !first.is_finished(), "the second request does not wait for the first");

    // Garbage collection (its engine call held) happens without the setup lock too.
    let gc_hold = f.engine.hold_next(Method::List);
    exec_hold.release();
    first.await.unwrap().unwrap();
    gc_hold.entered().await;
    assert!(f.engine.container(&old).is_none(), "the stale container is replaced once its command is done");
    assert!(slot.setup.try_lock().is_ok(), "the setup lock is held during garbage collection");
    gc_hold.release();
    let result = second.await.unwrap().unwrap();
    assert_ne!(result.container_id, old);
    let new = f.engine.container(&result.container_id).unwrap();
    assert_eq!(new.config.labels.get(GENERATION_LABEL).map(String::as_str), Some("2"));
    until("generation 1 to be collected", || !f.conf_root(IMAGE).join("gen-1").exists()).await;
}

/// Defect 12: the idle sweep stops containers concurrently; an entry point
/// that ignores SIGTERM (`cat`) must not delay the others. The first stop is
/// held, and the second must be asked for while it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_sweep_stops_containers_concurrently() {
    let f = fixture();
    f.engine.add_image(sra_image(IMAGE));
    let daemon = f.started(CrashPoints::off()).await;
    let sra = daemon.sra.clone();
    let mut ours = Vec::new();
    for eid in ["eid-a", "eid-b", "eid-c"] {
        ours.push(
            f.container_with(&[(EID_LABEL, eid), (SRA_CONTAINER_LABEL, INSTANCE), (LABEL_INSTANCE, INSTANCE)]).await,
        );
    }
    let hold = f.engine.hold_next(Method::Stop);
    let sweep = tokio::spawn({
        let sra = sra.clone();
        async move { idle::sweep(&sra, Duration::ZERO).await }
    });
    hold.entered().await;
    until("the other stops to be asked for while the first is held", || calls_of(&f.engine, Method::Stop) == 3).await;
    let stopped = ours.iter().filter(|id| f.engine.container(id).unwrap().state == RunState::Exited).count();
    assert_eq!(stopped, 2, "the containers not held are stopped");
    assert!(!sweep.is_finished());
    hold.release();
    sweep.await.unwrap().unwrap();
    assert!(ours.iter().all(|id| f.engine.container(id).unwrap().state == RunState::Exited));
}

// ----- crashes at every step, recovered ------------------------------------------------

/// A real `docker save` archive whose image the fake loads (as `image`
/// makes it) when it is streamed in.
fn archive_loading(f: &Fixture, marker: &str, image: impl Fn(&str) -> FakeImage) -> Given {
    let path = f.dir.path().join(format!("{marker}.tar"));
    let archive = ImageBuilder::new("vendor/sra:1").layer_marker(marker).write_tar(&path).unwrap();
    f.engine.load_next([image(&archive.image_id)]);
    Arc::new((path, archive.image_id))
}

fn load_scenario<'a>(_f: &'a Fixture, daemon: Arc<Daemon>, given: Given) -> futures::future::BoxFuture<'a, ()> {
    boxed(async move {
        let (path, _) = given.downcast_ref::<(PathBuf, String)>().unwrap();
        let _ = images::load(&daemon.sra, upload(path), path.display().to_string()).await;
    })
}

/// An SRA load cut short anywhere is there entirely (image and
/// configuration) after its commit, and not at all before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sra_load_cut_short_anywhere_is_undone_or_kept() {
    at_every_crash_point(
        fixture,
        |f| archive_loading(f, "load", sra_image),
        load_scenario,
        |f, point, committed, given| {
            let (_, image) = given.downcast_ref::<(PathBuf, String)>().unwrap();
            if committed {
                assert!(f.engine.has_image(image), "{point}: the loaded image is gone");
                assert_eq!(f.generation(image).as_deref(), Some("1"), "{point}: its configuration is missing");
            } else {
                assert!(!f.engine.has_image(image), "{point}: the image is left");
                assert!(!f.conf_root(image).exists(), "{point}: a configuration is left");
            }
            assert!(f.engine.containers().is_empty(), "{point}: a scratch container is left");
        },
    )
    .await;
}

/// A refused SRA load (no entry point) cut short while it is being undone
/// is undone by recovery: no image, no configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sra_load_cut_short_while_undone_leaves_nothing() {
    at_every_crash_point(
        fixture,
        |f| archive_loading(f, "refused", |id| FakeImage::new(id).tag("vendor/sra:1").label(SRA_LABEL, "x")),
        load_scenario,
        |f, point, _committed, given| {
            let (_, image) = given.downcast_ref::<(PathBuf, String)>().unwrap();
            assert!(!f.engine.has_image(image), "{point}: the refused image is left");
            assert!(!f.conf_root(image).exists(), "{point}: a configuration is left");
            assert!(f.engine.containers().is_empty(), "{point}: a scratch container is left");
        },
    )
    .await;
}

/// An SRA removal cut short anywhere is finished by recovery: its
/// execution containers, the image and its configuration are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sra_removal_cut_short_anywhere_is_finished() {
    at_every_crash_point(
        fixture,
        |f| {
            f.engine.add_image(sra_image(IMAGE));
            let rt = tokio::runtime::Handle::current();
            let daemon = tokio::task::block_in_place(|| rt.block_on(f.started(CrashPoints::off())));
            let result = tokio::task::block_in_place(|| rt.block_on(run_exec(&daemon.sra, f.request()))).unwrap();
            daemon.services.shutdown.cancel();
            Arc::new(result.container_id)
        },
        |_f, daemon, _| {
            boxed(async move {
                let _ = images::remove(&daemon.sra, IMAGE, false).await;
            })
        },
        |f, point, _committed, given| {
            let container = given.downcast_ref::<String>().unwrap();
            assert!(f.engine.container(container).is_none(), "{point}: the execution container is left");
            assert!(!f.engine.has_image(IMAGE), "{point}: the image is left");
            assert!(!f.conf_root(IMAGE).exists(), "{point}: the configuration is left");
        },
    )
    .await;
}
