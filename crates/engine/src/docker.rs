//! [`Engine`] over the Docker Engine API.

use crate::config::create_body;
use crate::convert::{
    container_event, image_from_inspect, image_from_summary, label_filters, observation_from_inspect,
    observation_from_summary, path_stat,
};
use crate::errors::{timeout, translate};
use async_trait::async_trait;
use berth_core::engine::{
    ByteStream, ContainerConfig, ContainerEvent, ContainerObservation, ContainerStats, Engine, EngineError, EngineInfo,
    ExecRequest, ExecResult, Filter, ImageInfo, NetworkConfig, NetworkInfo, PathStat, Progress, ProgressSink,
    RegistryCredentials, StopSignal, VolumeInfo,
};
use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{
    ContainerArchiveInfoOptions, CreateContainerOptions, CreateImageOptions, DownloadFromContainerOptions,
    EventsOptions, ImportImageOptions, InspectContainerOptions, ListContainersOptions, ListImagesOptions,
    ListVolumesOptions, LogsOptions, RemoveContainerOptions, RemoveImageOptions, RemoveVolumeOptions,
    RenameContainerOptions, StartContainerOptions, StatsOptions, StopContainerOptions,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use futures::FutureExt;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The client's own timeout, which is all that bounds the calls that stream
/// (loads, pulls, saves, logs, events, exec output, archives): the engine's
/// progress is what tells berth it is alive.
pub const STREAM_TIMEOUT_SECS: u64 = 3600;
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// How long berth waits for the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineTimeouts {
    /// Calls that only change or read state (inspect, create, start, remove,
    /// rename, list, info, stat, exec create/start/inspect, image inspect and
    /// remove): past this an engine counts as hung ([`EngineError::Timeout`]).
    /// `stop` gets its grace period on top.
    pub control: Duration,
}

impl Default for EngineTimeouts {
    fn default() -> Self {
        Self { control: Duration::from_secs(60) }
    }
}

pub struct DockerEngine {
    pub(crate) connection: Arc<Connection>,
    /// Whether a container (by id) has `/bin/sh`, so that its commands can be
    /// killed inside it, and the environment its wrapper puts back (see
    /// `exec.rs`). Both are fixed when the container is made, so the answer
    /// holds for its life.
    pub(crate) shells: Mutex<HashMap<String, Arc<crate::exec::ContainerFacts>>>,
    /// Where berth places its tether in the containers it creates (a local
    /// engine only: the agent's socket is a path on this host).
    pub(crate) tether: Option<crate::tether::Tether>,
}

pub(crate) struct Connection {
    pub endpoint: String,
    pub timeouts: EngineTimeouts,
    /// Made on first use (a unix socket that does not exist yet — dockerd
    /// still starting at boot — must not stop berth from starting) and
    /// replaced when the API version is negotiated again after the engine
    /// comes back (it may have been upgraded). Cloning a `Docker` is cheap and
    /// the lock is never held across an await.
    client: RwLock<Option<Client>>,
    /// Control calls under way at most. Each is a connection to the engine
    /// (HTTP/1.1): a storm of calls (1,000 at once) must not open a socket
    /// each, past systemd's default limit of 1,024 open files. The callers
    /// pace their own bulk work below this (the apps' reconciles at boot).
    turns: tokio::sync::Semaphore,
}

/// See [`Connection::turns`].
const CONTROL_CALLS_MAX: usize = 256;

#[derive(Clone)]
struct Client {
    docker: Docker,
    negotiated: bool,
}

impl Connection {
    /// The client, its API version negotiated with the engine once it answers.
    pub async fn docker(&self) -> Result<Docker, EngineError> {
        let current = self.client.read().unwrap_or_else(|e| e.into_inner()).clone();
        let client = match current {
            Some(Client { docker, negotiated: true }) => return Ok(docker),
            Some(Client { docker, negotiated: false }) => docker,
            None => {
                let docker = client_for(&self.endpoint)?;
                self.store(Client { docker: docker.clone(), negotiated: false });
                docker
            }
        };
        match self.control("the version negotiation", "the engine", client.clone().negotiate_version()).await {
            Ok(negotiated) => {
                self.store(Client { docker: negotiated.clone(), negotiated: true });
                Ok(negotiated)
            }
            Err(e) if e.is_unavailable() => Err(e),
            // An engine that answers oddly still gets the call, which says more.
            Err(_) => Ok(client),
        }
    }

    fn store(&self, client: Client) {
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = Some(client);
    }

    /// A control call about `what`, bounded by the control timeout.
    pub async fn control<T>(
        &self,
        action: &str,
        what: &str,
        call: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, EngineError> {
        self.within(self.timeouts.control, action, what, call).await
    }

    pub async fn within<T>(
        &self,
        limit: Duration,
        action: &str,
        what: &str,
        call: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, EngineError> {
        // Waiting for a turn is not the engine's slowness: it is not timed.
        let _turn = self.turns.acquire().await;
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result.map_err(|e| translate(e, &self.endpoint, what)),
            Err(_) => Err(timeout(&format!("{action} of {what}"), limit)),
        }
    }

    pub fn translate(&self, what: &str) -> impl Fn(bollard::errors::Error) -> EngineError {
        let (endpoint, what) = (self.endpoint.clone(), what.to_owned());
        move |e| translate(e, &endpoint, &what)
    }
}

impl DockerEngine {
    /// Connects to `host` (`unix://…`, `tcp://…`, `http://…`), or `DOCKER_HOST`,
    /// or the local socket. An engine that does not answer yet is not an
    /// error: the API version is negotiated on the first call that reaches it.
    /// The endpoint `host` means: itself, else `DOCKER_HOST`, else the local socket.
    pub fn endpoint_of(host: Option<&str>) -> String {
        host.map(str::to_owned)
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| DEFAULT_HOST.to_owned())
    }

    pub async fn connect(host: Option<&str>, timeouts: EngineTimeouts) -> Result<Self, EngineError> {
        let endpoint = Self::endpoint_of(host);
        if !["unix://", "tcp://", "http://"].iter().any(|scheme| endpoint.starts_with(scheme)) {
            return Err(EngineError::Unreachable {
                endpoint,
                reason: "unsupported scheme; use unix://, tcp:// or http://".into(),
            });
        }
        // A socket that is not there yet (dockerd still starting) is not an
        // error: the client is made on first use.
        let client = client_for(&endpoint).ok().map(|docker| Client { docker, negotiated: false });
        let connection = Connection {
            endpoint,
            timeouts,
            client: RwLock::new(client),
            turns: tokio::sync::Semaphore::new(CONTROL_CALLS_MAX),
        };
        let engine = Self { connection: Arc::new(connection), shells: Mutex::new(HashMap::new()), tether: None };
        let _ = engine.connection.docker().await;
        Ok(engine)
    }

    /// Places the tether in the containers this engine creates from now on,
    /// and runs commands through it where it is placed. Ignored for an
    /// engine that is not on this host (its containers' sockets would not be).
    pub fn with_tether(mut self, placement: crate::tether::TetherPlacement) -> Self {
        if self.connection.endpoint.starts_with("unix://") {
            self.tether = Some(crate::tether::Tether::new(placement));
        }
        self
    }

    pub fn timeouts(&self) -> EngineTimeouts {
        self.connection.timeouts
    }

    async fn docker(&self) -> Result<Docker, EngineError> {
        self.connection.docker().await
    }

    /// A stream that needs the client first (which may negotiate).
    fn streaming<T: Send + 'static, S>(
        &self,
        open: impl FnOnce(Docker) -> S + Send + 'static,
    ) -> BoxStream<'static, Result<T, EngineError>>
    where
        S: futures::Stream<Item = Result<T, EngineError>> + Send + 'static,
    {
        let connection = self.connection.clone();
        async move {
            match connection.docker().await {
                Ok(docker) => open(docker).boxed(),
                Err(e) => futures::stream::iter([Err(e)]).boxed(),
            }
        }
        .flatten_stream()
        .boxed()
    }
}

fn client_for(endpoint: &str) -> Result<Docker, EngineError> {
    let unreachable =
        |e: bollard::errors::Error| EngineError::Unreachable { endpoint: endpoint.to_owned(), reason: e.to_string() };
    if let Some(path) = endpoint.strip_prefix("unix://") {
        Docker::connect_with_unix(path, STREAM_TIMEOUT_SECS, API_DEFAULT_VERSION).map_err(unreachable)
    } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
        Docker::connect_with_http(endpoint, STREAM_TIMEOUT_SECS, API_DEFAULT_VERSION).map_err(unreachable)
    } else {
        Err(EngineError::Unreachable {
            endpoint: endpoint.to_owned(),
            reason: "unsupported scheme; use unix://, tcp:// or http://".into(),
        })
    }
}

/// Treats "already so" as success: removing what is gone, stopping what is gone.
fn ignore_not_found(result: Result<(), EngineError>) -> Result<(), EngineError> {
    match result {
        Err(EngineError::NotFound { .. }) => Ok(()),
        other => other,
    }
}

fn container(name: &str) -> String {
    format!("container {name}")
}

fn volume(name: &str) -> String {
    format!("volume {name}")
}

#[async_trait]
impl Engine for DockerEngine {
    fn endpoint(&self) -> String {
        self.connection.endpoint.clone()
    }

    async fn info(&self) -> Result<EngineInfo, EngineError> {
        let c = &self.connection;
        // Negotiated again every time: the engine may have been upgraded.
        let fresh =
            c.control("the version negotiation", "the engine", client_for(&c.endpoint)?.negotiate_version()).await?;
        c.store(Client { docker: fresh.clone(), negotiated: true });
        let version = c.control("version", "the engine", fresh.version()).await?;
        let info = c.control("info", "the engine", fresh.info()).await?;
        Ok(EngineInfo {
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            online_cpus: info.ncpu.and_then(|n| u32::try_from(n).ok()).unwrap_or(1),
            root_dir: info.docker_root_dir,
        })
    }

    async fn load_image(&self, archive: ByteStream, _progress: ProgressSink) -> Result<Vec<String>, EngineError> {
        // Progress is counted by the caller as it reads the archive; the
        // engine only reports once the load is complete.
        let options = ImportImageOptions { quiet: true, platform: None };
        let mut replies = self.docker().await?.import_image_stream(options, archive, None);
        let mut loaded = Vec::new();
        while let Some(reply) = replies.next().await {
            let info = reply.map_err(|e| match translate(e, &self.connection.endpoint, "image archive") {
                EngineError::Rejected { message, .. } => EngineError::Load { reason: message },
                other => other,
            })?;
            for line in info.stream.iter().chain(info.status.iter()).flat_map(|s| s.lines()) {
                if let Some(reference) =
                    line.strip_prefix("Loaded image ID: ").or_else(|| line.strip_prefix("Loaded image: "))
                {
                    loaded.push(reference.trim().to_owned());
                }
            }
        }
        Ok(loaded)
    }

    async fn pull_image(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
        progress: ProgressSink,
    ) -> Result<(), EngineError> {
        let (repository, tag) = split_tag(reference);
        let options = CreateImageOptions {
            from_image: Some(repository.to_owned()),
            tag: tag.map(str::to_owned),
            ..Default::default()
        };
        let credentials = credentials.map(|c| bollard::auth::DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.clone()),
            ..Default::default()
        });
        let mut replies = self.docker().await?.create_image(Some(options), None, credentials);
        // Layers report independently; the sum over layers is what a user wants to see.
        let mut layers: HashMap<String, (u64, u64)> = HashMap::new();
        while let Some(reply) = replies.next().await {
            let info = reply.map_err(|e| match translate(e, &self.connection.endpoint, reference) {
                EngineError::Rejected { message, .. } | EngineError::NotFound { what: message } => {
                    EngineError::Pull { reference: reference.to_owned(), reason: message }
                }
                other => other,
            })?;
            if let (Some(id), Some(detail)) = (info.id, info.progress_detail) {
                let entry = layers.entry(id).or_default();
                entry.0 = detail.current.unwrap_or(entry.0 as i64).max(0) as u64;
                entry.1 = detail.total.unwrap_or(entry.1 as i64).max(0) as u64;
            }
            // Every reply is reported, status lines too ("Waiting", "Verifying
            // Checksum"): the caller's idle watchdog counts them as signs of life.
            let (current, total) = layers.values().fold((0, 0), |(c, t), (lc, lt)| (c + lc, t + lt));
            progress(Progress { phase: format!("pulling {reference}"), current, total: (total > 0).then_some(total) });
        }
        Ok(())
    }

    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        let docker = self.docker().await?;
        let what = format!("image {reference}");
        match self.connection.control("inspect", &what, docker.inspect_image(reference)).await {
            Ok(image) => Ok(Some(image_from_inspect(image))),
            Err(EngineError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_images(&self, filter: &Filter) -> Result<Vec<ImageInfo>, EngineError> {
        let docker = self.docker().await?;
        // With no filter every image, intermediate ones included (what a
        // disk-usage check must count).
        let options = ListImagesOptions {
            all: filter.labels.is_empty(),
            filters: Some(label_filters(filter)).filter(|f| !f.is_empty()),
            ..Default::default()
        };
        let images = self.connection.control("list", "images", docker.list_images(Some(options))).await?;
        Ok(images.into_iter().map(image_from_summary).collect())
    }

    async fn remove_image(&self, reference: &str) -> Result<(), EngineError> {
        let docker = self.docker().await?;
        // Never forced: an image that a container uses, or that carries other
        // tags when named by id, is refused by the engine (Conflict) and kept;
        // a tag of an image with others is only untagged.
        let options = RemoveImageOptions { force: false, noprune: false, ..Default::default() };
        let what = format!("image {reference}");
        let removal = docker.remove_image(reference, Some(options), None);
        ignore_not_found(self.connection.control("removal", &what, removal).await.map(drop))
    }

    async fn commit_container(&self, name: &str, reference: &str) -> Result<String, EngineError> {
        let (repo, tag) = split_tag(reference);
        let options = bollard::query_parameters::CommitContainerOptions {
            container: Some(name.to_owned()),
            repo: Some(repo.to_owned()),
            tag: tag.map(str::to_owned),
            comment: Some("berth migrate export".to_owned()),
            pause: true,
            ..Default::default()
        };
        // Writing the image takes as long as the container's files do: a stream's timeout.
        let committed = self
            .docker()
            .await?
            .commit_container(options, bollard::models::ContainerConfig::default())
            .await
            .map_err(self.connection.translate(&container(name)))?;
        Ok(committed.id)
    }

    fn save_image(&self, image: &str) -> BoxStream<'static, Result<Bytes, EngineError>> {
        let (image, translate) = (image.to_owned(), self.connection.translate(&format!("image {image}")));
        self.streaming(move |docker| docker.export_image(&image).map(move |chunk| chunk.map_err(&translate)))
    }

    async fn create(&self, config: &ContainerConfig) -> Result<String, EngineError> {
        let docker = self.docker().await?;
        let options = CreateContainerOptions { name: config.name.clone(), platform: String::new() };
        let what = match &config.name {
            Some(name) => container(name),
            None => format!("a container of {}", config.image),
        };
        let placed = match &self.tether {
            Some(tether) => tether.place(config).await,
            None => None,
        };
        let body = create_body(placed.as_ref().map_or(config, |(_, placed)| placed));
        let creation = self.connection.control("creation", &what, docker.create_container(Some(options), body)).await;
        if let (Err(_), Some((run_dir, _))) = (&creation, &placed) {
            let _ = tokio::fs::remove_dir_all(run_dir).await;
        }
        match creation {
            Ok(created) => Ok(created.id),
            // The container does not exist yet: what is missing is its image.
            Err(EngineError::NotFound { .. }) => Err(EngineError::NotFound { what: format!("image {}", config.image) }),
            Err(e) => Err(e),
        }
    }

    async fn start(&self, name: &str) -> Result<(), EngineError> {
        let docker = self.docker().await?;
        let start = docker.start_container(name, None::<StartContainerOptions>);
        self.connection.control("start", &container(name), start).await
    }

    async fn stop(&self, name: &str, grace_secs: i64) -> Result<(), EngineError> {
        let docker = self.docker().await?;
        let grace = grace_secs.clamp(0, i64::from(i32::MAX));
        let options = StopContainerOptions { t: Some(grace as i32), signal: None };
        // The engine answers once the grace period is over and it has killed.
        let limit = Duration::from_secs(grace as u64) + self.connection.timeouts.control;
        let stop = docker.stop_container(name, Some(options));
        ignore_not_found(self.connection.within(limit, "stop", &container(name), stop).await)
    }

    async fn remove(&self, name: &str) -> Result<(), EngineError> {
        let docker = self.docker().await?;
        // The tether's directory goes with the container: where it is, is in the container.
        let run_dir = match &self.tether {
            Some(tether) => {
                let inspect = docker.inspect_container(name, None::<InspectContainerOptions>);
                let inspected = self.connection.control("inspect", &container(name), inspect).await.ok();
                inspected.map(|i| (i.id.clone().unwrap_or_default(), tether.run_dir_of(&i)))
            }
            None => None,
        };
        let options = RemoveContainerOptions { force: true, v: true, link: false };
        let removal = docker.remove_container(name, Some(options));
        let result = ignore_not_found(self.connection.control("removal", &container(name), removal).await);
        if result.is_ok() {
            self.shells.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
            if let (Some(tether), Some((id, run_dir))) = (&self.tether, run_dir) {
                self.shells.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                tether.forget(&id);
                if let Some(dir) = run_dir {
                    let _ = tokio::fs::remove_dir_all(dir).await;
                }
            }
        }
        result
    }

    async fn rename(&self, name: &str, new_name: &str) -> Result<(), EngineError> {
        let docker = self.docker().await?;
        let options = RenameContainerOptions { name: new_name.to_owned() };
        let rename = docker.rename_container(name, options);
        self.connection.control("rename", &container(name), rename).await
    }

    async fn inspect(&self, name: &str) -> Result<Option<ContainerObservation>, EngineError> {
        let docker = self.docker().await?;
        let inspect = docker.inspect_container(name, None::<InspectContainerOptions>);
        match self.connection.control("inspect", &container(name), inspect).await {
            Ok(inspect) => Ok(Some(observation_from_inspect(inspect))),
            Err(EngineError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, filter: &Filter) -> Result<Vec<ContainerObservation>, EngineError> {
        let docker = self.docker().await?;
        let options = ListContainersOptions {
            all: true,
            filters: Some(label_filters(filter)).filter(|f| !f.is_empty()),
            ..Default::default()
        };
        let list = self.connection.control("list", "containers", docker.list_containers(Some(options))).await?;
        Ok(list.into_iter().map(observation_from_summary).collect())
    }

    async fn stats(&self, name: &str) -> Result<Option<ContainerStats>, EngineError> {
        let docker = self.docker().await?;
        let mut readings = docker.stats(name, Some(StatsOptions { stream: false, one_shot: true }));
        let reading = async move { readings.next().await.transpose() };
        match self.connection.control("stats", &container(name), reading).await {
            Ok(Some(reading)) => Ok(crate::convert::stats_from_reading(&reading)),
            Ok(None) | Err(EngineError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn exec(&self, container: &str, request: ExecRequest, stop: StopSignal) -> Result<ExecResult, EngineError> {
        self.run_exec(container, request, stop).await
    }

    async fn build_image(
        &self,
        context: Bytes,
        tag: &str,
        labels: &BTreeMap<String, String>,
        progress: ProgressSink,
    ) -> Result<String, EngineError> {
        self.build_from_context(context, tag, labels, progress).await
    }

    async fn copy_to(&self, container: &str, dir: &str, archive: Bytes) -> Result<(), EngineError> {
        self.copy_archive_to(container, dir, archive).await
    }

    async fn network_exists(&self, network: &str) -> Result<bool, EngineError> {
        Ok(self.inspect_network_by(network).await?.is_some())
    }

    async fn inspect_network(&self, network: &str) -> Result<Option<NetworkInfo>, EngineError> {
        self.inspect_network_by(network).await
    }

    async fn list_networks(&self, filter: &Filter) -> Result<Vec<NetworkInfo>, EngineError> {
        self.list_networks_by(filter).await
    }

    async fn create_network(&self, config: &NetworkConfig) -> Result<String, EngineError> {
        self.create_network_from(config).await
    }

    async fn remove_network(&self, network: &str) -> Result<(), EngineError> {
        self.remove_network_by(network).await
    }

    async fn connect_network(&self, container: &str, network: &str) -> Result<(), EngineError> {
        self.connect_network_to(container, network).await
    }

    async fn disconnect_network(&self, container: &str, network: &str) -> Result<(), EngineError> {
        self.disconnect_network_from(container, network).await
    }

    async fn inspect_volume(&self, name: &str) -> Result<Option<VolumeInfo>, EngineError> {
        let docker = self.docker().await?;
        match self.connection.control("inspect", &volume(name), docker.inspect_volume(name)).await {
            Ok(found) => Ok(Some(VolumeInfo { name: found.name, labels: found.labels.into_iter().collect() })),
            Err(EngineError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_volumes(&self, filter: &Filter) -> Result<Vec<VolumeInfo>, EngineError> {
        let docker = self.docker().await?;
        let options = ListVolumesOptions { filters: Some(label_filters(filter)).filter(|f| !f.is_empty()) };
        let list = self.connection.control("list", "volumes", docker.list_volumes(Some(options))).await?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| VolumeInfo { name: v.name, labels: v.labels.into_iter().collect() })
            .collect())
    }

    async fn create_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<(), EngineError> {
        let docker = self.docker().await?;
        // The engine answers an existing name with that volume, as if made:
        // only a volume that was not there is ours to create.
        if self.inspect_volume(name).await?.is_some() {
            return Err(EngineError::Conflict { what: volume(name) });
        }
        let request = VolumeCreateRequest {
            name: Some(name.to_owned()),
            driver: Some("local".to_owned()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.connection.control("creation", &volume(name), docker.create_volume(request)).await.map(drop)
    }

    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        let docker = self.docker().await?;
        let removal = docker.remove_volume(name, Some(RemoveVolumeOptions { force: false }));
        ignore_not_found(self.connection.control("removal", &volume(name), removal).await)
    }

    async fn copy_from(&self, name: &str, path: &str, limit: u64) -> Result<Option<Vec<u8>>, EngineError> {
        let docker = self.docker().await?;
        let what = format!("{path} in container {name}");
        let options = DownloadFromContainerOptions { path: path.to_owned() };
        let mut stream = docker.download_from_container(name, Some(options));
        let mut archive = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    if (archive.len() + bytes.len()) as u64 > limit {
                        return Err(EngineError::Rejected {
                            status: 413,
                            message: format!("{path} in container {name} is larger than {limit} bytes"),
                        });
                    }
                    archive.extend_from_slice(&bytes);
                }
                // "No such container: …" is the container; "Could not find the file …" the path.
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, message })
                    if !message.contains("No such container") =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(translate(e, &self.connection.endpoint, &what)),
            }
        }
        Ok(Some(archive))
    }

    async fn stat(&self, name: &str, path: &str) -> Result<Option<PathStat>, EngineError> {
        let docker = self.docker().await?;
        let what = format!("{path} in container {name}");
        let options = ContainerArchiveInfoOptions { path: path.to_owned() };
        match self.connection.control("stat", &what, docker.get_container_archive_info(name, Some(options))).await {
            Ok(stat) => Ok(Some(path_stat(&stat))),
            // A HEAD answer has no body: its 404 does not say whether the
            // path or the container is missing.
            Err(EngineError::NotFound { .. }) => match self.inspect(name).await? {
                Some(_) => Ok(None),
                None => Err(EngineError::NotFound { what: container(name) }),
            },
            Err(e) => Err(e),
        }
    }

    fn events(&self, filter: &Filter) -> BoxStream<'static, Result<ContainerEvent, EngineError>> {
        let mut filters = label_filters(filter);
        filters.insert("type".into(), vec!["container".into()]);
        let options = EventsOptions { filters: Some(filters), ..Default::default() };
        let translate = self.connection.translate("the event stream");
        self.streaming(move |docker| {
            docker.events(Some(options)).filter_map(move |event| {
                let item = match event {
                    Ok(message) => container_event(message).map(Ok),
                    Err(e) => Some(Err(translate(e))),
                };
                futures::future::ready(item)
            })
        })
    }

    fn logs(&self, name: &str, follow: bool, tail: Option<u64>) -> BoxStream<'static, Result<Bytes, EngineError>> {
        let options = LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_owned(), |n| n.to_string()),
            ..Default::default()
        };
        let (name, translate) = (name.to_owned(), self.connection.translate(&container(name)));
        self.streaming(move |docker| {
            docker.logs(&name, Some(options)).map(move |chunk| chunk.map(|c| c.into_bytes()).map_err(&translate))
        })
    }
}

/// `repo:tag` to its parts; a colon before the last slash is a registry port.
fn split_tag(reference: &str) -> (&str, Option<&str>) {
    if reference.contains('@') {
        return (reference, None);
    }
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last_slash..].rfind(':') {
        Some(i) => (&reference[..last_slash + i], Some(&reference[last_slash + i + 1..])),
        None => (reference, None),
    }
}

#[cfg(test)]
mod tests {
    use super::split_tag;

    #[test]
    fn splits_tags_not_ports() {
        assert_eq!(split_tag("a:1"), ("a", Some("1")));
        assert_eq!(split_tag("localhost:5000/a"), ("localhost:5000/a", None));
        assert_eq!(split_tag("localhost:5000/a:2"), ("localhost:5000/a", Some("2")));
    }
}
