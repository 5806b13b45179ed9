//! Container hosts (seed 004, "create and delete with one command"): each
//! is an independent berth instance — its own root, socket, certificates,
//! instance label and quota — that this daemon creates on an engine, keeps
//! running (its own systemd unit, or a supervised child process where
//! systemd is not PID 1) and deletes with everything it made.
//!
//! A host's files live in `<root>/hosts/<name>/` ([`record`]); create and
//! delete are journal operations ([`create`], [`delete`]) whose effects are
//! carried out here ([`effects`]).

mod child;
mod create;
mod delete;
pub mod effects;
mod error;
mod record;
mod view;

pub use error::HostError;

use crate::services::{lock, Services};
use async_trait::async_trait;
use berth_api::routes::hosts::HostsManager;
use berth_api::{ApiError, HostCreateRequest, HostCreated, HostDeleted, HostView};
use berth_core::engine::Engine;
use berth_core::journal::Subject;
use record::{HostPaths, HostRecord, Supervisor};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub struct Hosts {
    pub services: Arc<Services>,
    children: child::Children,
    /// Engines of hosts that are not on this daemon's, by URI.
    engines: Mutex<BTreeMap<String, Arc<dyn Engine>>>,
}

impl Hosts {
    pub fn new(services: Arc<Services>) -> Self {
        Self { services, children: child::Children::default(), engines: Mutex::default() }
    }

    fn hosts_dir(&self) -> PathBuf {
        self.services.config.root.join("hosts")
    }

    fn paths(&self, name: &str) -> HostPaths {
        HostPaths::new(&self.hosts_dir(), name)
    }

    async fn record(&self, name: &str) -> Result<Option<HostRecord>, HostError> {
        let path = self.paths(name).record();
        crate::fs::blocking("reading a host record", move || Ok::<_, HostError>(record::read(&path))).await
    }

    async fn records(&self) -> Result<Vec<HostRecord>, HostError> {
        let dir = self.hosts_dir();
        crate::fs::blocking("reading the host records", move || {
            let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
            let mut records: Vec<HostRecord> =
                entries.flatten().filter_map(|e| record::read(&e.path().join("host.json"))).collect();
            records.sort_by(|a, b| a.name.cmp(&b.name));
            Ok::<_, HostError>(records)
        })
        .await
    }

    /// The engine a host runs on (`HostRecord::engine`), connected once.
    async fn engine_for(&self, uri: Option<&str>) -> Result<Arc<dyn Engine>, HostError> {
        let Some(uri) = uri else { return Ok(self.services.engine.clone()) };
        if let Some(engine) = lock(&self.engines).get(uri) {
            return Ok(engine.clone());
        }
        let engine = self.services.engine_at(Some(uri)).await?;
        lock(&self.engines).insert(uri.to_owned(), engine.clone());
        Ok(engine)
    }

    fn supervisor(&self) -> Supervisor {
        if self.services.systemd {
            Supervisor::Systemd
        } else {
            Supervisor::Process
        }
    }

    fn child_spec(&self, paths: &HostPaths, record: &HostRecord) -> Result<child::ChildSpec, HostError> {
        Ok(child::ChildSpec { program: berth_binary()?, args: paths.daemon_args(record), output: paths.output() })
    }

    /// At start-up, once the journal has finished what a crash cut short:
    /// every host supervised by this daemon is started again (one a killed
    /// predecessor left running is stopped first, so that it runs under this
    /// daemon's supervision). Hosts still being created or deleted (waiting
    /// for an engine) are left to the journal. Run again after an engine
    /// outage, it leaves running hosts alone.
    pub async fn start_all(self: Arc<Self>) {
        let records = match self.records().await {
            Ok(records) => records,
            Err(e) => return tracing::warn!(error = %e, "cannot read the hosts"),
        };
        for record in records.into_iter().filter(|r| r.supervisor == Supervisor::Process) {
            let subject = Subject::Host(record.name.clone());
            if !matches!(self.services.journal.open_entry_of(&subject).await, Ok(None)) {
                continue;
            }
            if self.children.is_supervised(&record.name) {
                continue;
            }
            let paths = self.paths(&record.name);
            effects::stop_stray_daemon(&paths).await;
            match self.child_spec(&paths, &record) {
                Ok(spec) => self.children.start(&record.name, spec, self.services.shutdown.clone()),
                Err(e) => tracing::warn!(host = %record.name, error = %e, "cannot start the host"),
            }
        }
    }
}

impl Hosts {
    /// Every host as `host ls` shows it (for `berth doctor`).
    pub async fn views(&self) -> Result<Vec<HostView>, HostError> {
        let mut views = Vec::new();
        for record in self.records().await? {
            views.push(view::of(self, &record, false).await);
        }
        Ok(views)
    }
}

/// The berth executable hosts run: this one.
fn berth_binary() -> Result<PathBuf, HostError> {
    std::env::current_exe().map_err(HostError::fs("finding the berth executable"))
}

/// A client of a host's own API, on its socket.
fn client_of(paths: &HostPaths) -> berth_api::client::Client {
    berth_api::client::Client::new(paths.socket())
}

pub struct HostsApi(pub Arc<Hosts>);

#[async_trait]
impl HostsManager for HostsApi {
    async fn create(&self, request: HostCreateRequest) -> Result<HostCreated, ApiError> {
        // Its own task: a client that goes away does not cut the operation short.
        let hosts = self.0.clone();
        let task = tokio::spawn(async move { create::run(&hosts, request).await });
        task.await.map_err(|e| ApiError::new(berth_api::ErrorKind::Internal, e.to_string()))?.map_err(Into::into)
    }

    async fn list(&self) -> Result<Vec<HostView>, ApiError> {
        Ok(self.0.views().await?)
    }

    async fn inspect(&self, name: &str) -> Result<HostView, ApiError> {
        let record = self.0.record(name).await?.ok_or_else(|| HostError::NotFound { name: name.to_owned() })?;
        Ok(view::of(&self.0, &record, true).await)
    }

    async fn delete(&self, name: &str, force: bool) -> Result<HostDeleted, ApiError> {
        let (hosts, name) = (self.0.clone(), name.to_owned());
        let task = tokio::spawn(async move { delete::run(&hosts, &name, force).await });
        task.await.map_err(|e| ApiError::new(berth_api::ErrorKind::Internal, e.to_string()))?.map_err(Into::into)
    }
}
