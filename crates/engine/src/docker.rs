//! [`Engine`] over the Docker Engine API.

use crate::config::create_body;
use crate::convert::{container_event, observation_from_inspect, observation_from_summary};
use crate::errors::translate;
use async_trait::async_trait;
use berth_core::engine::{
    ByteStream, ContainerEvent, ContainerObservation, Engine, EngineError, EngineInfo, ExecOutcome, ExecRequest,
    ExecResult, ImageInfo, PlainContainer, Progress, ProgressSink, RegistryCredentials, StopSignal,
};
use berth_core::spec::{ContainerSpec, LABEL_APP, LABEL_INSTANCE};
use bollard::exec::CreateExecOptions;
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, DownloadFromContainerOptions, EventsOptions, ImportImageOptions,
    InspectContainerOptions, ListContainersOptions, ListImagesOptions, LogsOptions, RemoveContainerOptions,
    RemoveImageOptions, RenameContainerOptions, StartContainerOptions, StopContainerOptions,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
use std::time::Duration;

/// Requests that stream (loads, pulls, logs, events) may take long; the
/// engine's own progress is what tells berth it is alive.
const REQUEST_TIMEOUT_SECS: u64 = 3600;
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

pub struct DockerEngine {
    endpoint: String,
    /// Made on first use (a unix socket that does not exist yet — dockerd
    /// still starting at boot — must not stop berth from starting) and
    /// replaced when the API version is negotiated again after the engine
    /// comes back (it may have been upgraded). Cloning a `Docker` is cheap and
    /// the lock is never held across an await.
    client: RwLock<Option<Docker>>,
}

impl DockerEngine {
    /// Connects to `host` (`unix://…`, `tcp://…`, `http://…`), or `DOCKER_HOST`,
    /// or the local socket. An engine that does not answer yet is not an error:
    /// the version is negotiated again by [`Engine::info`].
    pub async fn connect(host: Option<&str>) -> Result<Self, EngineError> {
        let endpoint = host
            .map(str::to_owned)
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| DEFAULT_HOST.to_owned());
        let engine = Self { endpoint, client: RwLock::new(None) };
        if let Ok(client) = engine.docker() {
            let negotiated = client.clone().negotiate_version().await.unwrap_or(client);
            *engine.client.write().unwrap_or_else(|e| e.into_inner()) = Some(negotiated);
        }
        Ok(engine)
    }

    fn docker(&self) -> Result<Docker, EngineError> {
        if let Some(client) = self.client.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Ok(client.clone());
        }
        let client = client_for(&self.endpoint)?;
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
        Ok(client)
    }

    /// The exit code of a finished exec; `None` for one that was stopped.
    async fn exit_code(
        &self,
        docker: &Docker,
        exec_id: &str,
        captured: &crate::exec::Captured,
        what: &str,
    ) -> Result<Option<i64>, EngineError> {
        if !captured.finished {
            return Ok(None);
        }
        Ok(docker.inspect_exec(exec_id).await.map_err(self.fail(what))?.exit_code)
    }

    fn fail(&self, what: &str) -> impl Fn(bollard::errors::Error) -> EngineError + '_ {
        let what = what.to_owned();
        move |e| translate(e, &self.endpoint, &what)
    }
}

fn client_for(endpoint: &str) -> Result<Docker, EngineError> {
    let unreachable =
        |e: bollard::errors::Error| EngineError::Unreachable { endpoint: endpoint.to_owned(), reason: e.to_string() };
    if let Some(path) = endpoint.strip_prefix("unix://") {
        Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION).map_err(unreachable)
    } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
        Docker::connect_with_http(endpoint, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION).map_err(unreachable)
    } else {
        Err(EngineError::Unreachable {
            endpoint: endpoint.to_owned(),
            reason: "unsupported scheme; use unix://, tcp:// or http://".into(),
        })
    }
}

fn owned_filter(instance: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![LABEL_APP.to_owned(), format!("{LABEL_INSTANCE}={instance}")])])
}

/// Treats "already so" as success: removing what is gone, stopping what is stopped.
fn ignore_not_found(result: Result<(), EngineError>) -> Result<(), EngineError> {
    match result {
        Err(EngineError::NotFound { .. }) => Ok(()),
        other => other,
    }
}

#[async_trait]
impl Engine for DockerEngine {
    fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    async fn info(&self) -> Result<EngineInfo, EngineError> {
        let fresh = client_for(&self.endpoint)?.negotiate_version().await.map_err(self.fail("the engine"))?;
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = Some(fresh.clone());
        let version = fresh.version().await.map_err(self.fail("the engine"))?;
        let info = fresh.info().await.map_err(self.fail("the engine"))?;
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
        let mut replies =
            self.docker()?.import_image_stream(ImportImageOptions { quiet: true, platform: None }, archive, None);
        let mut loaded = Vec::new();
        while let Some(reply) = replies.next().await {
            let info = reply.map_err(|e| match translate(e, &self.endpoint, "image archive") {
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
        let mut replies = self.docker()?.create_image(Some(options), None, credentials);
        // Layers report independently; the sum over layers is what a user wants to see.
        let mut layers: HashMap<String, (u64, u64)> = HashMap::new();
        while let Some(reply) = replies.next().await {
            let info = reply.map_err(|e| match translate(e, &self.endpoint, reference) {
                EngineError::Rejected { message, .. } | EngineError::NotFound { what: message } => {
                    EngineError::Pull { reference: reference.to_owned(), reason: message }
                }
                other => other,
            })?;
            if let (Some(id), Some(detail)) = (info.id, info.progress_detail) {
                let entry = layers.entry(id).or_default();
                entry.0 = detail.current.unwrap_or(entry.0 as i64).max(0) as u64;
                entry.1 = detail.total.unwrap_or(entry.1 as i64).max(0) as u64;
                let (current, total) = layers.values().fold((0, 0), |(c, t), (lc, lt)| (c + lc, t + lt));
                progress(Progress {
                    phase: format!("pulling {reference}"),
                    current,
                    total: (total > 0).then_some(total),
                });
            }
        }
        Ok(())
    }

    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        match self.docker()?.inspect_image(reference).await.map_err(self.fail(reference)) {
            Ok(image) => Ok(Some(ImageInfo {
                id: image.id.unwrap_or_default(),
                repo_tags: image.repo_tags.unwrap_or_default(),
                size: image.size.unwrap_or_default().max(0) as u64,
                labels: image.config.and_then(|c| c.labels).unwrap_or_default().into_iter().collect(),
            })),
            Err(EngineError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn image_ids(&self) -> Result<HashSet<String>, EngineError> {
        let options = ListImagesOptions { all: true, ..Default::default() };
        let images = self.docker()?.list_images(Some(options)).await.map_err(self.fail("images"))?;
        Ok(images.into_iter().map(|i| i.id).collect())
    }

    async fn remove_image(&self, id: &str) -> Result<(), EngineError> {
        // Not forced: an image that another container uses or that carries
        // other tags is refused by the engine (Conflict) and so kept.
        let options = RemoveImageOptions { force: false, ..Default::default() };
        let result = self.docker()?.remove_image(id, Some(options), None).await.map(drop).map_err(self.fail(id));
        ignore_not_found(result)
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        let options = CreateContainerOptions { name: Some(spec.name.clone()), platform: String::new() };
        let what = format!("container {}", spec.name);
        let created =
            self.docker()?.create_container(Some(options), create_body(spec)).await.map_err(self.fail(&what))?;
        Ok(created.id)
    }

    async fn start_container(&self, name: &str) -> Result<(), EngineError> {
        let what = format!("container {name}");
        self.docker()?.start_container(name, None::<StartContainerOptions>).await.map_err(self.fail(&what))
    }

    async fn stop_container(&self, name: &str, timeout_secs: i64) -> Result<(), EngineError> {
        let options = StopContainerOptions { t: Some(timeout_secs.clamp(0, i64::from(i32::MAX)) as i32), signal: None };
        let what = format!("container {name}");
        ignore_not_found(self.docker()?.stop_container(name, Some(options)).await.map_err(self.fail(&what)))
    }

    async fn remove_container(&self, name: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptions { force: true, v: true, link: false };
        let what = format!("container {name}");
        ignore_not_found(self.docker()?.remove_container(name, Some(options)).await.map_err(self.fail(&what)))
    }

    async fn inspect_container(&self, name: &str) -> Result<Option<ContainerObservation>, EngineError> {
        let what = format!("container {name}");
        match self.docker()?.inspect_container(name, None::<InspectContainerOptions>).await.map_err(self.fail(&what)) {
            Ok(inspect) => Ok(Some(observation_from_inspect(inspect))),
            Err(EngineError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn owned_containers(&self, instance: &str) -> Result<Vec<ContainerObservation>, EngineError> {
        let options = ListContainersOptions { all: true, filters: Some(owned_filter(instance)), ..Default::default() };
        let list = self.docker()?.list_containers(Some(options)).await.map_err(self.fail("containers"))?;
        Ok(list.into_iter().map(observation_from_summary).collect())
    }

    async fn rename_container(&self, name: &str, new_name: &str) -> Result<(), EngineError> {
        let what = format!("container {name}");
        let options = RenameContainerOptions { name: new_name.to_owned() };
        self.docker()?.rename_container(name, options).await.map_err(self.fail(&what))
    }

    async fn exec(&self, container: &str, argv: &[String], timeout: Duration) -> Result<ExecOutcome, EngineError> {
        let docker = self.docker()?;
        let what = format!("container {container}");
        let options = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(argv.to_vec()),
            ..Default::default()
        };
        let exec = docker.create_exec(container, options).await.map_err(self.fail(&what))?;
        let captured = crate::exec::run(&docker, &exec.id, None, Box::pin(tokio::time::sleep(timeout)))
            .await
            .map_err(self.fail(&what))?;
        let exit_code = self.exit_code(&docker, &exec.id, &captured, &what).await?;
        Ok(ExecOutcome { exit_code, output: String::from_utf8_lossy(&captured.combined).into_owned() })
    }

    async fn image_files(&self, image: &str, path: &str) -> Result<Option<Vec<u8>>, EngineError> {
        // The Engine API reads files from containers, not images: a container
        // that is created but never started is the way in.
        let docker = self.docker()?;
        let body = bollard::models::ContainerCreateBody {
            image: Some(image.to_owned()),
            entrypoint: Some(vec!["/berth-never-runs".to_owned()]),
            labels: Some(HashMap::from([("berth.scratch".to_owned(), "1".to_owned())])),
            ..Default::default()
        };
        let scratch = docker.create_container(None::<CreateContainerOptions>, body).await.map_err(self.fail(image))?.id;
        let options = DownloadFromContainerOptions { path: path.to_owned() };
        let mut archive = Vec::new();
        let mut stream = docker.download_from_container(&scratch, Some(options));
        let mut result = Ok(Some(()));
        while let Some(chunk) = stream.next().await {
            match chunk.map_err(self.fail(path)) {
                Ok(bytes) => archive.extend_from_slice(&bytes),
                Err(EngineError::NotFound { .. }) => {
                    result = Ok(None);
                    break;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        drop(stream);
        let _ = self.remove_container(&scratch).await;
        result.map(|found| found.map(|()| archive))
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
        let what = format!("container {name}");
        let committed = self
            .docker()?
            .commit_container(options, bollard::models::ContainerConfig::default())
            .await
            .map_err(self.fail(&what))?;
        Ok(committed.id)
    }

    fn save_image(&self, image: &str) -> BoxStream<'static, Result<Bytes, EngineError>> {
        let docker = match self.docker() {
            Ok(docker) => docker,
            Err(e) => return futures::stream::iter([Err(e)]).boxed(),
        };
        let (endpoint, what) = (self.endpoint.clone(), format!("image {image}"));
        docker.export_image(image).map(move |chunk| chunk.map_err(|e| translate(e, &endpoint, &what))).boxed()
    }

    async fn exec_with(
        &self,
        container: &str,
        request: ExecRequest,
        stop: StopSignal,
    ) -> Result<ExecResult, EngineError> {
        let docker = self.docker()?;
        let what = format!("container {container}");
        let options = CreateExecOptions {
            attach_stdin: Some(request.stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(request.argv),
            user: request.user,
            env: (!request.env.is_empty()).then_some(request.env),
            ..Default::default()
        };
        let exec = docker.create_exec(container, options).await.map_err(self.fail(&what))?;
        let captured = crate::exec::run(&docker, &exec.id, request.stdin, stop).await.map_err(self.fail(&what))?;
        let exit_code = self.exit_code(&docker, &exec.id, &captured, &what).await?;
        Ok(ExecResult { exit_code, stdout: captured.stdout, stderr: captured.stderr })
    }

    async fn containers_labelled(&self, key: &str, value: &str) -> Result<Vec<ContainerObservation>, EngineError> {
        let label = if value.is_empty() { key.to_owned() } else { format!("{key}={value}") };
        let filters = HashMap::from([("label".to_owned(), vec![label])]);
        let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let list = self.docker()?.list_containers(Some(options)).await.map_err(self.fail("containers"))?;
        Ok(list.into_iter().map(observation_from_summary).collect())
    }

    async fn images_labelled(&self, key: &str) -> Result<Vec<ImageInfo>, EngineError> {
        let filters = HashMap::from([("label".to_owned(), vec![key.to_owned()])]);
        let options = ListImagesOptions { filters: Some(filters), ..Default::default() };
        let images = self.docker()?.list_images(Some(options)).await.map_err(self.fail("images"))?;
        Ok(images
            .into_iter()
            .map(|i| ImageInfo {
                id: i.id,
                repo_tags: i.repo_tags.into_iter().filter(|t| t != "<none>:<none>").collect(),
                size: i.size.max(0) as u64,
                labels: i.labels.into_iter().collect(),
            })
            .collect())
    }

    async fn create_plain_container(&self, spec: &PlainContainer) -> Result<String, EngineError> {
        let body = bollard::models::ContainerCreateBody {
            image: Some(spec.image.clone()),
            // `docker run -di`: stdin open, no tty, the image's own entry point.
            open_stdin: Some(true),
            attach_stdin: Some(false),
            tty: Some(false),
            labels: Some(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            host_config: Some(bollard::models::HostConfig { binds: Some(spec.binds.clone()), ..Default::default() }),
            ..Default::default()
        };
        let created = self
            .docker()?
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .map_err(self.fail(&format!("a container of {}", spec.image)))?;
        Ok(created.id)
    }

    fn events(&self, instance: &str) -> BoxStream<'static, Result<ContainerEvent, EngineError>> {
        let mut filters = owned_filter(instance);
        filters.insert("type".into(), vec!["container".into()]);
        let options = EventsOptions { filters: Some(filters), ..Default::default() };
        let endpoint = self.endpoint.clone();
        let docker = match self.docker() {
            Ok(docker) => docker,
            Err(e) => return futures::stream::iter([Err(e)]).boxed(),
        };
        docker
            .events(Some(options))
            .filter_map(move |event| {
                let item = match event {
                    Ok(message) => container_event(message).map(Ok),
                    Err(e) => Some(Err(translate(e, &endpoint, "the event stream"))),
                };
                futures::future::ready(item)
            })
            .boxed()
    }

    fn logs(&self, name: &str, follow: bool, tail: Option<u64>) -> BoxStream<'static, Result<Bytes, EngineError>> {
        let options = LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_owned(), |n| n.to_string()),
            ..Default::default()
        };
        let endpoint = self.endpoint.clone();
        let what = format!("container {name}");
        let docker = match self.docker() {
            Ok(docker) => docker,
            Err(e) => return futures::stream::iter([Err(e)]).boxed(),
        };
        docker
            .logs(name, Some(options))
            .map(move |chunk| chunk.map(|c| c.into_bytes()).map_err(|e| translate(e, &endpoint, &what)))
            .boxed()
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
