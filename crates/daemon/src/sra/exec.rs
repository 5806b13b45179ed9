//! Running an SRA command, as the SRA specification's "Detailed Running
//! Procedure" says: an execution container per (image id, tmp dir, log dir),
//! found by its `srm.sra.eid` label, reused when running, started when
//! stopped, created like `docker run -di` otherwise — plus the image's
//! configuration bound at /srm/sra/conf — then `/srm/sra/command` executed in
//! it with the XML on stdin. Every update of the command's status file is a
//! progress event and moves the timeout.
//!
//! Only this daemon's containers are used (matched on berth's instance
//! label as well as the execution id and configuration generation). The
//! files the SRA names (status, output) are read without following links,
//! only when they are regular files, and with bounded size, never blocking
//! the runtime: the SRA controls what is at those paths.

use super::error::SraError;
use super::state::Slot;
use super::{conf, execution_id, Sra, COMMAND_PATH, EID_LABEL, SRA_CONTAINER_LABEL};
use crate::fs::{blocking, NoFollowError};
use crate::services::lock;
use berth_api::{Operation, SraEvent, SraExecRequest, SraExecResult, SraResponseError, SraRunRequest, SraTarget};
use berth_core::engine::{ContainerConfig, ExecRequest, Filter, StopSignal};
use berth_core::run_args::MountSpec;
use berth_core::sra_xml::{self, Envelope, ErrorDefinitions};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OwnedRwLockReadGuard;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// SRM's own default command timeout.
const DEFAULT_TIMEOUT_SECS: u64 = 300;
/// A week: longer is a mistake, not a slow array.
const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;
/// The SRM appliance's srm user.
const DEFAULT_USER: &str = "660:660";
/// How often the status file is looked at.
const STATUS_POLL: Duration = Duration::from_millis(100);
/// A status or output file larger than this is not read.
const MAX_STATUS_BYTES: u64 = 64 * 1024;
const MAX_OUTPUT_BYTES: u64 = 64 << 20;
/// Host directories an SRA's tmp or log directory may not be, or be in:
/// binding them into a container would hand it the host.
const SYSTEM_DIRS: &[&str] =
    &["/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/sbin", "/sys", "/usr"];

/// `berth sra exec`: the caller's envelope, given as is.
pub async fn exec(sra: &Sra, request: SraExecRequest, op: Operation<SraEvent>) -> Result<SraExecResult, SraError> {
    let command = sra_xml::parse_command(&request.input)
        .map_err(|error| SraError::MalformedXml { what: "the command XML".into(), error })?;
    let target = check_target(sra, &request.target).await?;
    execute(sra, &target, Bytes::from(request.input), command.status_file.as_deref(), &op).await
}

/// `berth sra run`: berth writes the envelope, runs it, and reads the
/// response from the output file (which it then removes, with the status
/// file, as SRM does).
pub async fn run(sra: &Sra, request: SraRunRequest, op: Operation<SraEvent>) -> Result<SraExecResult, SraError> {
    if request.command.is_empty() || !request.command.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(SraError::InvalidValue {
            what: "command",
            reason: format!("{:?} is not an SRA command name (e.g. queryInfo)", berth_api::short(&request.command)),
        });
    }
    let log_level = request.log_level.clone().unwrap_or_else(|| "info".into());
    if log_level.is_empty() || !log_level.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(SraError::InvalidValue {
            what: "--log-level",
            reason: format!("{log_level:?} is not a log level"),
        });
    }
    for (what, fragment, root) in
        [("--connections", &request.connections, Some("Connections")), ("--parameters", &request.parameters, None)]
    {
        if let Some(fragment) = fragment {
            sra_xml::check_fragment(fragment, root)
                .map_err(|error| SraError::MalformedXml { what: what.into(), error })?;
        }
    }
    let target = check_target(sra, &request.target).await?;
    let mut result =
        run_command(sra, &target, &request.command, &log_level, request.connections, request.parameters, &op).await?;
    if let Some(error) = result.sra_error.as_mut().filter(|e| e.description.is_none()) {
        // A bare code: the SRA's own definitions say what it means.
        let image = sra.sra_image(&target.request.image).await?;
        let definitions = error_definitions(sra, &target, &image.id).await;
        let mut explained =
            sra_xml::ResponseError { code: error.code.clone(), description: None, fix_hint: error.fix_hint.clone() };
        explained.explain(&definitions);
        *error = response_error(explained);
    }
    Ok(result)
}

fn response_error(e: sra_xml::ResponseError) -> SraResponseError {
    SraResponseError { message: e.to_string(), code: e.code, description: e.description, fix_hint: e.fix_hint }
}

/// Runs `command` with an envelope berth writes; reads its output file.
async fn run_command(
    sra: &Sra,
    target: &Target,
    command: &str,
    log_level: &str,
    connections: Option<String>,
    parameters: Option<String>,
    op: &Operation<SraEvent>,
) -> Result<SraExecResult, SraError> {
    let token = hex::encode(rand::random::<[u8; 8]>());
    let (output_name, status_name) = (format!("sra-output-{token}.xml"), format!("sra-status-{token}.xml"));
    let envelope = Envelope {
        name: command.to_owned(),
        output_file: format!("/tmp/{output_name}"),
        status_file: format!("/tmp/{status_name}"),
        log_level: log_level.to_owned(),
        log_directory: "/srm/sra/log".into(),
        connections,
        parameters,
    };
    let result = execute(sra, target, Bytes::from(envelope.to_xml()), Some(&envelope.status_file), op).await;
    let tmp = target.tmp_dir.clone();
    let output = blocking("reading the SRA's output file", move || {
        let output = crate::fs::read_regular_nofollow(&tmp, Path::new(&output_name), MAX_OUTPUT_BYTES);
        let _ = crate::fs::remove_nofollow(&tmp, Path::new(&output_name));
        let _ = crate::fs::remove_nofollow(&tmp, Path::new(&status_name));
        Ok::<_, SraError>(output)
    })
    .await?;
    let mut result = result?;
    let shown = envelope.output_file.clone();
    match output {
        Ok(bytes) => {
            let response = String::from_utf8_lossy(&bytes).into_owned();
            let error = sra_xml::response_error(&response)
                .map_err(|error| SraError::MalformedResponse { path: shown, error })?;
            result.sra_error = error.map(response_error);
            result.response = Some(response);
            Ok(result)
        }
        // A failing command's exit code and output say more than a missing file.
        Err(e) if e.is_not_found() && result.exit_code != 0 => {
            let missing = format!(
                "the SRA exited with code {} without writing its output file ({} in the container, {} on the host)",
                result.exit_code,
                shown,
                target.tmp_dir.join(shown.trim_start_matches("/tmp/")).display()
            );
            // Another runner's containers (the note so far) are still worth knowing.
            result.note = Some(match result.note.take() {
                Some(earlier) => format!("{missing}; {earlier}"),
                None => missing,
            });
            Ok(result)
        }
        Err(e) if e.is_not_found() => Err(SraError::NoOutput { path: shown }),
        Err(error) => Err(SraError::BadFile { what: "output file", error }),
    }
}

/// What the SRA's `queryErrorDefinitions` (and `queryStrings` for the texts
/// it only names) say, once per image; empty when the SRA cannot tell.
async fn error_definitions(sra: &Sra, target: &Target, image_id: &str) -> Arc<ErrorDefinitions> {
    if let Some(known) = lock(&sra.definitions).get(image_id).cloned() {
        return known;
    }
    let quiet = Operation::detached();
    let query = |command: &'static str, parameters: Option<String>| {
        let quiet = quiet.clone();
        async move {
            let result = run_command(sra, target, command, "info", None, parameters, &quiet).await.ok()?;
            result.response.filter(|_| result.exit_code == 0 && result.sra_error.is_none())
        }
    };
    let Some(response) = query("queryErrorDefinitions", None).await else { return Arc::default() };
    let errors = sra_xml::error_definitions(&response).unwrap_or_default();
    let needs_strings = errors.values().any(|d| {
        (d.description.is_none() && d.description_id.is_some()) || (d.fix_hint.is_none() && d.fix_hint_id.is_some())
    });
    let strings = if needs_strings {
        let parameters = "<QueryStringsParameters><Locale>en</Locale></QueryStringsParameters>".to_owned();
        match query("queryStrings", Some(parameters)).await {
            Some(response) => sra_xml::strings(&response).unwrap_or_default(),
            None => BTreeMap::new(),
        }
    } else {
        BTreeMap::new()
    };
    let definitions = Arc::new(ErrorDefinitions { errors, strings });
    lock(&sra.definitions).insert(image_id.to_owned(), definitions.clone());
    definitions
}

/// A checked target: the request, and its directories with links resolved.
struct Target {
    request: SraTarget,
    tmp_dir: PathBuf,
    log_dir: PathBuf,
    user: String,
    timeout: Duration,
}

async fn check_target(sra: &Sra, target: &SraTarget) -> Result<Target, SraError> {
    let invalid = |what, reason: String| SraError::InvalidValue { what, reason };
    if let Some(user) = &target.user {
        if parse_user(user).is_none() {
            return Err(invalid("--user", format!("{:?} is not UID:GID", berth_api::short(user))));
        }
    }
    if let Some(bad) = target.env.iter().find(|e| e.split_once('=').is_none_or(|(name, _)| name.is_empty())) {
        return Err(invalid("--env", format!("{:?} is not NAME=VALUE", berth_api::short(bad))));
    }
    let secs = target.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if secs == 0 || secs > MAX_TIMEOUT_SECS {
        return Err(invalid("--timeout", format!("{secs} is not between 1 and {MAX_TIMEOUT_SECS} seconds")));
    }
    let own = [sra.services.config.root.clone(), sra.services.config.data_root.clone()];
    let dirs = [("--tmp-dir", target.tmp_dir.clone()), ("--log-dir", target.log_dir.clone())];
    let resolved = blocking("checking the SRA directories", move || {
        let mut out = Vec::new();
        for (what, dir) in dirs {
            out.push(resolve_dir(what, &dir, &own)?);
        }
        Ok::<_, SraError>(out)
    })
    .await?;
    Ok(Target {
        request: target.clone(),
        tmp_dir: resolved[0].clone(),
        log_dir: resolved[1].clone(),
        user: target.user.clone().unwrap_or_else(|| DEFAULT_USER.into()),
        timeout: Duration::from_secs(secs),
    })
}

/// An existing absolute directory, links resolved, that is neither a system
/// directory nor inside berth's own state.
fn resolve_dir(what: &'static str, dir: &str, own: &[PathBuf]) -> Result<PathBuf, SraError> {
    let invalid = |reason: String| SraError::InvalidValue { what, reason };
    if !dir.starts_with('/') || dir.contains(':') || dir.chars().any(char::is_control) {
        return Err(invalid(format!("{:?} is not an absolute directory path (without ':')", berth_api::short(dir))));
    }
    let canonical = std::fs::canonicalize(dir).map_err(|e| invalid(format!("{dir}: {e}")))?;
    if !canonical.is_dir() {
        return Err(invalid(format!("{dir} is not a directory")));
    }
    let system = canonical == Path::new("/") || SYSTEM_DIRS.iter().any(|s| canonical.starts_with(s));
    let berths = own
        .iter()
        .filter_map(|o| std::fs::canonicalize(o).ok())
        .any(|o| canonical.starts_with(&o) || o.starts_with(&canonical));
    if system || berths {
        return Err(invalid(format!(
            "{dir} (which is {}) is a system directory or holds berth's own state; give the SRA a directory of its own",
            canonical.display()
        )));
    }
    Ok(canonical)
}

async fn execute(
    sra: &Sra,
    target: &Target,
    input: Bytes,
    status_file: Option<&str>,
    op: &Operation<SraEvent>,
) -> Result<SraExecResult, SraError> {
    let image = sra.sra_image(&target.request.image).await?;
    sra.ensure_config(&image.id).await?;
    let eid = execution_id(&image.id, &target.request.tmp_dir, &target.request.log_dir);
    let slot = sra.state.slot(&eid);
    let (container, running, foreign) = acquire(sra, &slot, &image.id, target, &eid).await?;

    let deadline = Arc::new(Mutex::new(Instant::now() + target.timeout));
    let (finished, finished_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = status_file.and_then(|file| host_file(file, &target.tmp_dir, &target.log_dir)).map(|(dir, name)| {
        tokio::spawn(watch_status(dir, name, deadline.clone(), target.timeout, op.clone(), finished_rx))
    });
    let kill = slot.kill_token();
    let stopped = CancellationToken::new();
    let stop = stop_signal(deadline, [op.cancel.clone(), kill, sra.services.shutdown.clone()], stopped.clone());
    let request = ExecRequest {
        argv: vec![COMMAND_PATH.into()],
        user: Some(target.user.clone()),
        env: target.request.env.clone(),
        stdin: Some(input),
        workdir: None,
    };
    let result = sra.services.engine.exec(&container, request, stop).await;
    let _ = finished.send(());
    if let Some(watcher) = watcher {
        let _ = watcher.await;
    }
    *lock(&slot.last_used) = Instant::now();
    drop(running);

    let result = result?;
    let (stdout, stderr) =
        (String::from_utf8_lossy(&result.stdout).into_owned(), String::from_utf8_lossy(&result.stderr).into_owned());
    let Some(exit_code) = result.exit_code else {
        let container = short(&container).to_owned();
        return Err(if stopped.is_cancelled() {
            SraError::Cancelled { container, stdout, stderr }
        } else {
            SraError::TimedOut { secs: target.timeout.as_secs(), container, killed: result.killed, stdout, stderr }
        });
    };
    // 126/127 with the runtime's message: the entry point could not be run at all.
    if matches!(exit_code, 126 | 127) && format!("{stdout}{stderr}").contains(COMMAND_PATH) {
        if let Some(diagnosis) = diagnose(sra, &image.id, &target.request.image, &target.user).await {
            return Err(diagnosis);
        }
    }
    let note = (foreign > 0).then(|| {
        format!("{foreign} execution container(s) of another runner have the same execution id; berth used its own and left them alone")
    });
    Ok(SraExecResult {
        execution_id: eid,
        container_id: container,
        exit_code,
        stdout,
        stderr,
        response: None,
        sra_error: None,
        note,
    })
}

/// This daemon's execution containers of `eid`.
fn ours(sra: &Sra, eid: &str) -> Filter {
    sra.ours().label(EID_LABEL, eid)
}

/// Finds, starts, replaces or creates the execution container, and returns
/// it with a read guard that keeps it from being replaced or stopped while
/// the command runs, and the number of other runners' containers with this id.
async fn acquire(
    sra: &Sra,
    slot: &Arc<Slot>,
    image_id: &str,
    target: &Target,
    eid: &str,
) -> Result<(String, OwnedRwLockReadGuard<()>, usize), SraError> {
    let engine = sra.services.engine.as_ref();
    loop {
        let (generation, _) = sra.current(image_id).await?;
        let setup = slot.setup.lock().await;
        let found = engine.list(&ours(sra, eid)).await?;
        // A container bound to an older configuration is replaced, once the
        // commands running in it are done: a command sees one configuration.
        let (current, stale): (Vec<_>, Vec<_>) =
            found.into_iter().partition(|c| c.label(conf::GENERATION_LABEL) == Some(&generation.to_string()));
        if stale.is_empty() {
            let id = if let Some(running) = current.iter().find(|c| c.state.is_running()) {
                running.id.clone()
            } else if let Some(stopped) = current.first() {
                engine.start(&stopped.id).await?;
                stopped.id.clone()
            } else {
                create(sra, image_id, target, eid).await?
            };
            let guard = slot.running.clone().read_owned().await;
            drop(setup);
            let everyone = engine.list(&Filter::default().label(EID_LABEL, eid)).await?;
            let foreign = everyone.iter().filter(|c| !sra.services.ownership.owns(c)).count();
            if foreign > 0 {
                tracing::warn!(
                    eid,
                    foreign,
                    "another runner's execution containers have this execution id; left alone"
                );
            }
            return Ok((id, guard, foreign));
        }
        // Waiting for the commands to end happens without the setup lock,
        // and the old configurations are collected after it is released.
        drop(setup);
        let drained = slot.running.clone().write_owned().await;
        for container in &stale {
            engine.remove(&container.id).await?;
        }
        drop(drained);
        sra.collect_garbage(image_id).await;
    }
}

/// `docker run -di -v tmp:/tmp -v log:/srm/sra/log -l srm.sra.eid=…`, plus
/// the current configuration at /srm/sra/conf.
async fn create(sra: &Sra, image_id: &str, target: &Target, eid: &str) -> Result<String, SraError> {
    let engine = sra.services.engine.as_ref();
    // Read-held until the container exists, so that the generation it binds
    // is not collected in between (configuration writers wait that long).
    let config = sra.state.config_lock(image_id);
    let _config = config.read().await;
    let (generation, dir) = sra.current(image_id).await?;
    let bind = |source: &Path, target: &str| MountSpec {
        source: Some(source.display().to_string()),
        target: target.to_owned(),
        read_only: false,
    };
    let mut labels = BTreeMap::from([
        (EID_LABEL.to_owned(), eid.to_owned()),
        (SRA_CONTAINER_LABEL.to_owned(), sra.services.ownership.instance().to_owned()),
        (conf::GENERATION_LABEL.to_owned(), generation.to_string()),
    ]);
    sra.services.ownership.mark(&mut labels);
    let config = ContainerConfig {
        image: image_id.to_owned(),
        mounts: vec![
            bind(&target.tmp_dir, "/tmp"),
            bind(&target.log_dir, "/srm/sra/log"),
            bind(&dir, conf::CONF_IN_CONTAINER),
        ],
        labels,
        open_stdin: true,
        ..Default::default()
    };
    let id = engine.create(&config).await?;
    engine.start(&id).await?;
    Ok(id)
}

/// Resolves once the (movable) deadline has passed, or one of `cancels`
/// fires (then `stopped` is cancelled too, telling the two apart).
fn stop_signal(
    deadline: Arc<Mutex<Instant>>,
    cancels: [CancellationToken; 3],
    stopped: CancellationToken,
) -> StopSignal {
    Box::pin(async move {
        let [a, b, c] = cancels;
        let expired = async {
            loop {
                let at = *lock(&deadline);
                if Instant::now() >= at {
                    return;
                }
                tokio::time::sleep_until(at).await;
            }
        };
        tokio::select! {
            _ = expired => {}
            _ = a.cancelled() => stopped.cancel(),
            _ = b.cancelled() => stopped.cancel(),
            _ = c.cancelled() => stopped.cancel(),
        }
    })
}

/// Where on the host a file the envelope names is: inside the container the
/// tmp dir is /tmp and the log dir /srm/sra/log; an SRM-style host path in
/// one of the two directories is taken as is. Elsewhere it cannot be
/// watched. Returns the directory and the name within it.
fn host_file(file: &str, tmp_dir: &Path, log_dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let (dir, rest) = [("/tmp/", tmp_dir), ("/srm/sra/log/", log_dir)]
        .into_iter()
        .find_map(|(inside, host)| file.strip_prefix(inside).map(|rest| (host.to_owned(), PathBuf::from(rest))))
        .or_else(|| {
            [tmp_dir, log_dir]
                .into_iter()
                .find_map(|dir| Path::new(file).strip_prefix(dir).ok().map(|rest| (dir.to_owned(), rest.to_owned())))
        })?;
    // Never follow a name out of the two directories.
    let plain = !rest.as_os_str().is_empty() && rest.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    plain.then_some((dir, rest))
}

/// Polls the status file; each change is an update: a progress event, and
/// the deadline moves to `timeout` from now.
async fn watch_status(
    dir: PathBuf,
    name: PathBuf,
    deadline: Arc<Mutex<Instant>>,
    timeout: Duration,
    progress: Operation<SraEvent>,
    mut finished: tokio::sync::oneshot::Receiver<()>,
) {
    // Taken before the command gets far: its first update must not be mistaken for the old state.
    let mut refused = false;
    let mut last = snapshot(&dir, &name, &mut refused).await;
    loop {
        // One more look once the command has ended: its last update may be quick.
        let last_look = tokio::select! {
            _ = tokio::time::sleep(STATUS_POLL) => false,
            _ = &mut finished => true,
        };
        let now = snapshot(&dir, &name, &mut refused).await;
        if now != last {
            last = now;
            if let Some(content) = &last {
                *lock(&deadline) = Instant::now() + timeout;
                progress.send(SraEvent::Progress { percent: sra_xml::progress_percent(content) });
            }
        }
        if last_look {
            return;
        }
    }
}

/// The status file's content, when it is a regular file; never blocking
/// the runtime, never following a link, never opening a fifo for long.
/// A file refused is logged once per command (`refused`), not at every poll.
async fn snapshot(dir: &Path, name: &Path, refused: &mut bool) -> Option<String> {
    let (dir, name) = (dir.to_owned(), name.to_owned());
    let read = tokio::task::spawn_blocking(move || crate::fs::read_regular_nofollow(&dir, &name, MAX_STATUS_BYTES))
        .await
        .ok()?;
    match read {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(NoFollowError::Io { .. }) => None,
        Err(other) => {
            if !std::mem::replace(refused, true) {
                tracing::warn!(error = %other, "the SRA's status file is not read");
            }
            None
        }
    }
}

/// `UID:GID` (or a bare UID) as numbers.
fn parse_user(user: &str) -> Option<(u64, Option<u64>)> {
    let (uid, gid) = match user.split_once(':') {
        Some((uid, gid)) => (uid, Some(gid)),
        None => (user, None),
    };
    let gid = match gid {
        Some(gid) => Some(gid.parse().ok()?),
        None => None,
    };
    Some((uid.parse().ok()?, gid))
}

/// Why /srm/sra/command could not run, from the image's copy of it.
async fn diagnose(sra: &Sra, image_id: &str, reference: &str, user: &str) -> Option<SraError> {
    let archive = match crate::intake::scratch::image_files(&sra.services, image_id, COMMAND_PATH, 1 << 30).await {
        Ok(Some(archive)) => archive,
        Ok(None) => return Some(SraError::NoCommand { image: reference.to_owned(), path: COMMAND_PATH }),
        Err(_) => return None,
    };
    let (mode, uid, gid) = entry_point_mode(&archive)?;
    let (user_uid, user_gid) = parse_user(user)?;
    let runnable = mode & 0o111 != 0 && executable_by(mode, uid, gid, user_uid, user_gid);
    (!runnable).then(|| SraError::NotExecutable {
        image: reference.to_owned(),
        path: COMMAND_PATH,
        mode,
        uid,
        gid,
        user: user.to_owned(),
    })
}

/// At load: the image must have /srm/sra/command with an execute bit. The
/// specification wants it executable by others (SRM's uid is not known in
/// advance); the engine's exec runs it for any user once some execute bit is
/// set (the capabilities it starts with), so that is only warned about.
pub async fn check_entry_point(sra: &Sra, image_id: &str, shown: &str) -> Result<(), SraError> {
    let Some(archive) = crate::intake::scratch::image_files(&sra.services, image_id, COMMAND_PATH, 1 << 30).await?
    else {
        return Err(SraError::NoCommand { image: shown.to_owned(), path: COMMAND_PATH });
    };
    match entry_point_mode(&archive) {
        Some((mode, uid, gid)) if mode & 0o111 == 0 => Err(SraError::NotExecutable {
            image: shown.to_owned(),
            path: COMMAND_PATH,
            mode,
            uid,
            gid,
            user: "anyone".into(),
        }),
        Some((mode, ..)) if mode & 0o001 == 0 => {
            tracing::warn!(image = %shown, "{COMMAND_PATH} has mode {mode:04o}; the SRA specification wants it executable by others");
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Mode, uid and gid of the regular file in a one-file archive; `None` for
/// a link (its target decides) or an unreadable archive.
fn entry_point_mode(archive: &[u8]) -> Option<(u32, u64, u64)> {
    let mut archive = tar::Archive::new(archive);
    let entry = archive.entries().ok()?.next()?.ok()?;
    let header = entry.header();
    if header.entry_type() != tar::EntryType::Regular {
        return None;
    }
    Some((header.mode().ok()? & 0o7777, header.uid().ok()?, header.gid().ok()?))
}

fn executable_by(mode: u32, uid: u64, gid: u64, user_uid: u64, user_gid: Option<u64>) -> bool {
    if user_uid == 0 {
        return mode & 0o111 != 0;
    }
    if uid == user_uid {
        return mode & 0o100 != 0;
    }
    if Some(gid) == user_gid {
        return mode & 0o010 != 0;
    }
    mode & 0o001 != 0
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_paths_map_to_the_host_directories() {
        let (tmp, log) = (Path::new("/var/tmp/srm"), Path::new("/var/log/sra"));
        let at = |dir: &str, name: &str| Some((PathBuf::from(dir), PathBuf::from(name)));
        assert_eq!(host_file("/tmp/status-1", tmp, log), at("/var/tmp/srm", "status-1"));
        assert_eq!(host_file("/srm/sra/log/s", tmp, log), at("/var/log/sra", "s"));
        assert_eq!(host_file("/var/tmp/srm/s", tmp, log), at("/var/tmp/srm", "s"));
        assert_eq!(host_file("/var/tmp/srmx/s", tmp, log), None);
        assert_eq!(host_file("/etc/passwd", tmp, log), None);
        assert_eq!(host_file("/tmp/../etc/passwd", tmp, log), None);
        assert_eq!(host_file("/tmp/", tmp, log), None);
    }

    #[test]
    fn users_and_permissions() {
        assert_eq!(parse_user("660:660"), Some((660, Some(660))));
        assert_eq!(parse_user("0"), Some((0, None)));
        assert_eq!(parse_user("srm"), None);
        assert_eq!(parse_user("1:x"), None);
        assert!(executable_by(0o755, 0, 0, 660, Some(660)));
        assert!(!executable_by(0o754, 0, 0, 660, Some(660)));
        assert!(executable_by(0o750, 0, 660, 660, Some(660)));
        assert!(executable_by(0o700, 660, 0, 660, Some(660)));
        assert!(!executable_by(0o070, 660, 660, 660, Some(660)), "the owner's bits decide for the owner");
        assert!(executable_by(0o100, 5, 5, 0, None));
    }

    #[test]
    fn system_directories_and_berths_own_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let own = [dir.path().join("root")];
        std::fs::create_dir_all(&own[0]).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("to-etc")).unwrap();
        for bad in ["/", "/etc", "/usr/lib", "/proc"] {
            assert!(resolve_dir("--tmp-dir", bad, &own).is_err(), "{bad}");
        }
        assert!(
            resolve_dir("--tmp-dir", &dir.path().join("to-etc").display().to_string(), &own).is_err(),
            "a link to /etc"
        );
        assert!(resolve_dir("--tmp-dir", &own[0].display().to_string(), &own).is_err(), "berth's root");
        assert!(resolve_dir("--tmp-dir", "relative", &own).is_err());
        let fine = dir.path().join("tmp");
        std::fs::create_dir_all(&fine).unwrap();
        assert!(resolve_dir("--tmp-dir", &fine.display().to_string(), &own).is_ok());
    }

    #[test]
    fn the_deadline_can_move() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        runtime.block_on(async {
            let deadline = Arc::new(Mutex::new(Instant::now() + Duration::from_millis(50)));
            let started = Instant::now();
            let none = || CancellationToken::new();
            let stop = stop_signal(deadline.clone(), [none(), none(), none()], CancellationToken::new());
            *lock(&deadline) = Instant::now() + Duration::from_millis(200);
            stop.await;
            assert!(started.elapsed() >= Duration::from_millis(200));
        });
    }
}
