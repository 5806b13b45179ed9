//! The install operation: validate everything, reserve the name in the
//! journal, then fetch → directory → container → start → commit, writing
//! each step before acting on it. A failure at any step undoes the earlier
//! ones; a crash is undone by `recovery` with the same [`undo`].

use crate::actor;
use crate::error::OpError;
use crate::intake::{self, FetchOptions};
use crate::registry::{lock, now_secs, AppHandle, Inner, Runtime};
use berth_api::{AppView, InstallEvent, InstallRequest, ProgressSender};
use berth_core::engine::{Engine, EngineError, Progress, ProgressSink, RunState};
use berth_core::journal::{InstallRecord, InstallStep, OperationState};
use berth_core::run_args::{parse_run_args, parse_size};
use berth_core::source::Source;
use berth_core::spec::{AppSpec, LABEL_APP, LABEL_INSTANCE};
use berth_core::status::{AppState, DesiredState};
use berth_core::AppName;
use futures::StreamExt;
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// docker's own lower bound for a memory limit.
const MIN_MEMORY: u64 = 6 << 20;
/// Log lines shown when an app dies right after starting.
const FAILURE_LOG_LINES: u64 = 10;

pub async fn install(
    inner: &Arc<Inner>,
    request: InstallRequest,
    progress: ProgressSender,
) -> Result<AppView, OpError> {
    let spec = validate(inner, &request)?;
    let fetch = fetch_options(&request, &spec.source, &inner.config.root)?;
    preflight(inner, &spec).await?;
    let name = spec.name.to_string();
    let private_dir = inner.private_dir(&name);
    let mut record = InstallRecord {
        step: InstallStep::Accepted,
        spec: spec.clone(),
        private_dir: private_dir.to_string_lossy().into_owned(),
        preexisting_images: Vec::new(),
        directory_preexisted: private_dir.exists(),
    };
    let operation = inner
        .db({
            let (spec, record) = (spec.clone(), record.clone());
            move |s| s.begin_install(&spec, &record)
        })
        .await?;
    let runtime = Runtime::new(spec.clone(), DesiredState::Running, AppState::Installing, now_secs());
    inner.insert(&name, AppHandle { runtime: runtime.clone(), commands: None });

    let sink = progress_sink(progress.clone());
    match run_steps(inner, operation, &mut record, &runtime, &fetch, sink).await {
        Ok(()) => {
            let commands = actor::spawn(inner.clone(), runtime.clone(), false);
            inner.insert(&name, AppHandle { runtime, commands: Some(commands) });
            crate::units::start_app_unit(inner, &record.spec.name);
            inner.view(&name)
        }
        Err(error) => {
            let _ =
                progress.send(InstallEvent::Progress { phase: "undoing the install".into(), current: 0, total: None });
            undo(inner, operation, &record, &error.to_string()).await;
            inner.remove(&name);
            Err(error)
        }
    }
}

/// Everything that can be checked without changing anything.
pub fn validate(inner: &Inner, request: &InstallRequest) -> Result<AppSpec, OpError> {
    let name = AppName::parse(&request.name)?;
    let source = match &request.ssh.protocol {
        Some(protocol) => Source::ssh(
            protocol,
            request.ssh.server.as_deref().unwrap_or_default(),
            request.ssh.username.as_deref().unwrap_or_default(),
            &request.source,
        )?,
        None => Source::parse(&request.source)?,
    };
    let options = parse_run_args(&request.args)?;
    let online = *lock(&inner.online_cpus);
    let cpus = request.cpus.or(options.cpus).unwrap_or_else(|| inner.default_cpus());
    if !(cpus.is_finite() && cpus > 0.0 && cpus <= f64::from(online.max(1))) {
        return Err(OpError::InvalidValue {
            what: "--cpus",
            reason: format!("{cpus} is not between 0 and the host's {online} CPUs"),
        });
    }
    let memory = match &request.memory {
        Some(text) => Some(parse_size(text).map_err(|reason| OpError::InvalidValue { what: "--memory", reason })?),
        None => options.memory,
    };
    if let Some(bytes) = memory.filter(|m| *m < MIN_MEMORY) {
        return Err(OpError::InvalidValue {
            what: "--memory",
            reason: format!("{bytes} bytes is below the minimum of 6 MiB"),
        });
    }
    if let Source::Archive { path } = &source {
        crate::archive::open(path)?;
    }
    Ok(AppSpec {
        name,
        source,
        image_ref: String::new(),
        image_id: String::new(),
        args: request.args.clone(),
        options,
        cpus,
        memory,
    })
}

/// `--sha256` and `--ca-file`, checked against the source they apply to.
pub fn fetch_options(request: &InstallRequest, source: &Source, root: &Path) -> Result<FetchOptions, OpError> {
    let invalid = |what, reason: &str| OpError::InvalidValue { what, reason: reason.to_owned() };
    let sha256 = match request.sha256.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(_) if matches!(source, Source::Registry { .. }) => {
            return Err(invalid("--sha256", "applies to archive files and downloads, not to registry images"))
        }
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => Some(hex.to_ascii_lowercase()),
        Some(_) => return Err(invalid("--sha256", "must be 64 hexadecimal digits")),
    };
    let ca_file = match request.ca_file.as_deref() {
        None | Some("") => None,
        Some(path) => {
            if !matches!(source, Source::Url { url } if url.starts_with("https://")) {
                return Err(invalid("--ca-file", "applies to https sources only"));
            }
            if !path.starts_with('/') {
                return Err(invalid("--ca-file", "must be an absolute path"));
            }
            Some(std::path::PathBuf::from(path))
        }
    };
    let registry_auth = match request.registry_auth.as_deref() {
        None | Some("") => None,
        Some(_) if !matches!(source, Source::Registry { .. }) => {
            return Err(invalid("--registry-auth", "applies to registry images only"))
        }
        Some(auth) => Some(crate::registries::parse_auth(auth)?),
    };
    let ssh = ssh_options(request, source)?;
    Ok(FetchOptions { sha256, ca_file, registry_auth, root: root.to_owned(), ssh })
}

/// Authentication and trust for an scp/sftp source; refused for others.
fn ssh_options(request: &InstallRequest, source: &Source) -> Result<crate::ssh::SshOptions, OpError> {
    let given = &request.ssh;
    let is_ssh = matches!(source, Source::Ssh { .. });
    let has_ssh_options = given.password.is_some() || given.identity.is_some() || given.accept_host_key.is_some();
    if !is_ssh {
        if has_ssh_options || given.server.is_some() || given.username.is_some() {
            return Err(OpError::InvalidValue {
                what: "--server/--username/--password",
                reason: "need --protocol scp or sftp".into(),
            });
        }
        return Ok(crate::ssh::SshOptions::default());
    }
    let absolute = |what: &'static str, path: &str| {
        if path.starts_with('/') {
            Ok(std::path::PathBuf::from(path))
        } else {
            Err(OpError::InvalidValue { what, reason: format!("{path:?} must be an absolute path") })
        }
    };
    if let Some(fingerprint) = &given.accept_host_key {
        if !fingerprint.starts_with("SHA256:") {
            return Err(OpError::InvalidValue {
                what: "--accept-host-key",
                reason: "give the SHA256:… fingerprint".into(),
            });
        }
    }
    let mut known_hosts = vec![std::path::PathBuf::from("/etc/ssh/ssh_known_hosts")];
    let mut default_identities = Vec::new();
    if let Some(dir) = &given.user_ssh_dir {
        let dir = absolute("ssh directory", dir)?;
        known_hosts.push(dir.join("known_hosts"));
        default_identities.extend(["id_ed25519", "id_ecdsa", "id_rsa"].map(|k| dir.join(k)));
    }
    Ok(crate::ssh::SshOptions {
        password: given.password.clone(),
        identity: given.identity.as_deref().map(|p| absolute("--identity", p)).transpose()?,
        known_hosts,
        accept_host_key: given.accept_host_key.clone(),
        default_identities,
        agent: given.agent_socket.as_deref().map(|p| absolute("SSH_AUTH_SOCK", p)).transpose()?,
    })
}

/// Checks against the engine, still changing nothing.
async fn preflight(inner: &Inner, spec: &AppSpec) -> Result<(), OpError> {
    if !inner.recovered.load(std::sync::atomic::Ordering::Acquire) {
        return Err(EngineError::Unreachable {
            endpoint: inner.engine.endpoint(),
            reason: "berth is waiting for the engine to answer".into(),
        }
        .into());
    }
    if inner.runtime(spec.name.as_str()).is_some() {
        return Err(berth_store::StoreError::AppExists { name: spec.name.to_string() }.into());
    }
    if let Some(existing) = inner.engine.inspect_container(spec.name.as_str()).await? {
        let ours = existing.label(LABEL_INSTANCE) == Some(inner.instance.as_str())
            && existing.label(LABEL_APP) == Some(spec.name.as_str());
        if !ours {
            return Err(OpError::ForeignContainer { name: spec.name.to_string() });
        }
    }
    Ok(())
}

async fn run_steps(
    inner: &Arc<Inner>,
    operation: i64,
    record: &mut InstallRecord,
    runtime: &Mutex<Runtime>,
    fetch: &FetchOptions,
    progress: ProgressSink,
) -> Result<(), OpError> {
    let engine = inner.engine.as_ref();
    let name = record.spec.name.to_string();

    let preexisting: HashSet<String> = engine.image_ids().await?;
    record.preexisting_images = preexisting.iter().cloned().collect();
    step(inner, operation, record, InstallStep::FetchingImage).await?;
    let fetched = intake::fetch(engine, &record.spec.source, fetch, &preexisting, progress.clone()).await?;
    record.spec.image_id = fetched.image_id;
    record.spec.image_ref = fetched.image_ref;
    lock(runtime).spec = record.spec.clone();
    step(inner, operation, record, InstallStep::ImageReady).await?;

    step(inner, operation, record, InstallStep::DirectoryReady).await?;
    create_private_dir(Path::new(&record.private_dir)).await?;

    progress(Progress { phase: "creating container".into(), current: 0, total: None });
    step(inner, operation, record, InstallStep::ContainerCreated).await?;
    // A leftover of ours (checked in preflight) from an earlier crash goes first.
    engine.remove_container(&name).await?;
    let container = engine.create_container(&inner.container_spec(&record.spec, operation)).await?;
    crate::units::write_app_unit(inner, &record.spec.name)?;
    lock(runtime).container_id = Some(container);

    progress(Progress { phase: "starting".into(), current: 0, total: None });
    start_and_check(inner, &name).await?;
    let observed = engine.inspect_container(&name).await?;

    crate::crash::point("install:before_committed");
    record.step = InstallStep::Committed;
    let (spec, committed) = (record.spec.clone(), record.clone());
    inner.db(move |s| s.commit_install(operation, &spec, &committed)).await?;
    crate::crash::point("install:after_committed");
    let mut r = lock(runtime);
    r.state = AppState::Running;
    if let Some(c) = observed {
        r.started_at = c.started_at;
        r.health = c.health;
    }
    Ok(())
}

async fn step(inner: &Inner, operation: i64, record: &mut InstallRecord, next: InstallStep) -> Result<(), OpError> {
    // The previous step is done and the next one not yet recorded.
    crate::crash::point(&format!("install:before_{}", step_name(next)));
    tracing::info!(app = %record.spec.name, operation, step = %step_name(next), "install");
    record.step = next;
    let snapshot = record.clone();
    inner.db(move |s| s.record_step(operation, &snapshot)).await
}

async fn create_private_dir(dir: &Path) -> Result<(), OpError> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(OpError::io(parent))?;
        }
        match std::fs::create_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(OpError::io(&dir)(e)),
            _ => Ok(()),
        }
    })
    .await
    .map_err(|_| OpError::ShuttingDown)?
}

/// Starts the container and requires it to be running `start_check_ms` later;
/// otherwise the error carries the exit code and the last lines of its output.
pub async fn start_and_check(inner: &Inner, name: &str) -> Result<(), OpError> {
    let engine = inner.engine.as_ref();
    if let Err(e) = engine.start_container(name).await {
        return Err(match e {
            EngineError::Unreachable { .. } => e.into(),
            other => OpError::DidNotStart { name: name.to_owned(), reason: other.to_string() },
        });
    }
    tokio::time::sleep(Duration::from_millis(inner.config.settings.start_check_ms)).await;
    match engine.inspect_container(name).await? {
        Some(c) if c.state == RunState::Running => Ok(()),
        Some(c) => {
            let mut reason = match (c.exit_code, &c.error) {
                (_, Some(error)) => error.clone(),
                (Some(code), None) => {
                    format!("it exited with code {code}{}", if c.oom_killed { " (out of memory)" } else { "" })
                }
                _ => format!("it is {:?}", c.state),
            };
            let output = last_output(engine, name).await;
            if !output.is_empty() {
                reason.push_str("; last output:\n");
                reason.push_str(&output);
            }
            Err(OpError::DidNotStart { name: name.to_owned(), reason })
        }
        None => Err(OpError::DidNotStart { name: name.to_owned(), reason: "its container disappeared".into() }),
    }
}

async fn last_output(engine: &dyn Engine, name: &str) -> String {
    let mut logs = engine.logs(name, false, Some(FAILURE_LOG_LINES));
    let mut text = Vec::new();
    while let Some(Ok(chunk)) = logs.next().await {
        text.extend_from_slice(&chunk);
    }
    String::from_utf8_lossy(&text).trim_end().to_owned()
}

/// Takes back everything an install did, in reverse; safe to repeat. Used
/// both when a step fails and when recovery finds an install cut short.
pub async fn undo(inner: &Inner, operation: i64, record: &InstallRecord, reason: &str) {
    let engine = inner.engine.as_ref();
    let name = record.spec.name.to_string();
    if record.step >= InstallStep::ContainerCreated {
        if let Ok(Some(c)) = engine.inspect_container(&name).await {
            if c.label(LABEL_INSTANCE) == Some(inner.instance.as_str()) {
                warn_on_error("removing the container", engine.remove_container(&name).await);
            }
        }
    }
    if record.step >= InstallStep::ContainerCreated {
        if let Err(e) = crate::units::remove_app_unit(inner, &name) {
            tracing::warn!(app = %name, error = %e, "could not remove the systemd unit");
        }
    }
    if record.step >= InstallStep::DirectoryReady && !record.directory_preexisted {
        let dir = record.private_dir.clone();
        let removed = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await;
        if let Ok(Err(e)) = removed {
            tracing::warn!(app = %name, error = %e, "could not remove the private directory");
        }
    }
    if record.step >= InstallStep::FetchingImage {
        let image = match record.added_image() {
            Some(id) => Some(id.to_owned()),
            None if record.step == InstallStep::FetchingImage => intake::identify(engine, &record.spec.source).await,
            None => None,
        };
        let image = image.filter(|id| !record.preexisting_images.contains(id));
        if let Some(id) = image {
            let other_user = {
                let (id, name) = (id.clone(), name.clone());
                inner.db(move |s| s.image_in_use(&id, &name)).await.unwrap_or(true)
            };
            if !other_user {
                warn_on_error("removing the image", engine.remove_image(&id).await);
            }
        }
    }
    let reason = reason.to_owned();
    let finished =
        inner.db(move |s| s.finish_operation(operation, OperationState::RolledBack, Some(&reason), Some(&name))).await;
    if let Err(e) = finished {
        tracing::error!(operation, error = %e, "could not close the rolled back install in the journal");
    }
}

fn warn_on_error(what: &str, result: Result<(), EngineError>) {
    if let Err(e) = result {
        tracing::warn!(error = %e, "{what} failed during undo");
    }
}

/// The journal's name of a step, as stored (`container_created`, …).
pub fn step_name<T: serde::Serialize>(step: T) -> String {
    serde_json::to_value(step).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

pub fn progress_sink(progress: ProgressSender) -> ProgressSink {
    Arc::new(move |p: Progress| {
        let _ = progress.send(InstallEvent::Progress { phase: p.phase, current: p.current, total: p.total });
    })
}
