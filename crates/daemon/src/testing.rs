//! What the daemon's unit tests share: a daemon's lasting state (its
//! directory and its fake engine) that daemons are started over, and the
//! crash-point driver that cuts an operation short at every one of its
//! points and checks what recovery leaves.

use crate::config::{DaemonConfig, Settings};
use crate::daemon::Daemon;
use crate::journal::crash::CrashPoints;
use crate::journal::Journal;
use crate::services::{EngineState, Services};
use berth_api::Upload;
use berth_core::engine::Ownership;
use berth_store::Store;
use berth_testkit::fake::FakeEngine;
use bytes::Bytes;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The instance label of every test daemon.
pub const INSTANCE: &str = "test";

/// A daemon's state that outlives the daemon: its directory and its engine.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub engine: FakeEngine,
    settings: Settings,
}

impl Fixture {
    pub fn new(settings: Settings) -> Self {
        Self { dir: tempfile::tempdir().unwrap(), engine: FakeEngine::new(), settings }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn config(&self) -> DaemonConfig {
        DaemonConfig {
            root: self.root(),
            socket: self.dir.path().join("sock"),
            data_root: self.root().join("tpc"),
            docker_host: None,
            unit_dir: self.dir.path().join("units"),
            certs_dir: self.root().join("certs"),
            db_path: self.root().join("berth.db"),
            listen: Vec::new(),
            settings: self.settings.clone(),
        }
    }

    /// A daemon over this state (as after a start), not yet recovered.
    pub fn daemon(&self, crash: CrashPoints) -> Arc<Daemon> {
        std::fs::create_dir_all(self.root().join("tpc")).unwrap();
        let store = Store::open(&self.root().join("berth.db")).unwrap();
        let services = Arc::new(Services {
            config: self.config(),
            ownership: Ownership::new(INSTANCE),
            engine: Arc::new(self.engine.clone()),
            store: store.clone(),
            journal: Journal::new(store.clone(), crash),
            engine_state: EngineState::new(2),
            jitter: Arc::new(|| 0.5),
            systemd: false,
            shutdown: CancellationToken::new(),
            events: crate::events::Events::new(store).0,
        });
        let local = crate::resources::locations::Location {
            name: crate::resources::locations::LOCAL.into(),
            kind: "docker".into(),
            description: "the fake engine".into(),
            engine: services.engine.clone(),
        };
        Daemon::assemble(services, [(local.name.clone(), Arc::new(local))].into())
    }

    /// A daemon that has recovered, as the engine watch makes it at start.
    pub async fn started(&self, crash: CrashPoints) -> Arc<Daemon> {
        let daemon = self.daemon(crash);
        daemon.recover().await.unwrap();
        daemon
    }

    pub fn store(&self) -> Store {
        std::fs::create_dir_all(self.root()).unwrap();
        Store::open(&self.root().join("berth.db")).unwrap()
    }
}

/// What a scenario's preparation hands to the scenario and the check.
pub type Given = Arc<dyn std::any::Any + Send + Sync>;

/// Runs `scenario` once recording its crash points, then once per point
/// halted there, each time on a fresh fixture (`fixture`) prepared by
/// `prepare`, and has a fresh daemon recover; `check` then sees the fixture
/// and whether the point came after the operation's commit.
pub async fn at_every_crash_point<F, P, S, C>(fixture: F, prepare: P, scenario: S, check: C)
where
    F: Fn() -> Fixture,
    P: Fn(&Fixture) -> Given,
    S: for<'a> Fn(&'a Fixture, Arc<Daemon>, Given) -> futures::future::BoxFuture<'a, ()>,
    C: Fn(&Fixture, &str, bool, &Given),
{
    let learning = fixture();
    let given = prepare(&learning);
    let daemon = learning.started(CrashPoints::recording()).await;
    scenario(&learning, daemon.clone(), given.clone()).await;
    let points = daemon.services.journal.crash_points().visited();
    daemon.services.shutdown.cancel();
    assert!(points.len() >= 2, "the scenario reached crash points: {points:?}");
    for point in points {
        let f = fixture();
        let given = prepare(&f);
        let daemon = f.started(CrashPoints::halt_at(&point)).await;
        scenario(&f, daemon.clone(), given.clone()).await;
        // The daemon "dies" here.
        daemon.services.shutdown.cancel();
        drop(daemon);
        tokio::task::yield_now().await;
        let _recovered = f.started(CrashPoints::off()).await;
        let committed = point.contains("after_commit") || point.contains(":forward_");
        assert!(f.store().open_entries().unwrap().is_empty(), "{point}: an entry is left open");
        check(&f, &point, committed, &given);
    }
}

pub fn boxed<'a>(f: impl std::future::Future<Output = ()> + Send + 'a) -> futures::future::BoxFuture<'a, ()> {
    Box::pin(f)
}

/// A file's bytes as an upload stream.
pub fn upload(path: &Path) -> Upload {
    let bytes = Bytes::from(std::fs::read(path).unwrap());
    Upload { body: futures::stream::iter([Ok(bytes)]).boxed() }
}
