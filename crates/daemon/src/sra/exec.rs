//! Running an SRA command, as the SRA specification's "Detailed Running
//! Procedure" says: an execution container per (image id, tmp dir, log dir),
//! found by its `srm.sra.eid` label, reused when running, started when
//! stopped, created like `docker run -di` otherwise — plus the image's
//! configuration bound at /srm/sra/conf — then `/srm/sra/command` executed in
//! it with the XML on stdin. Every update of the command's status file is a
//! progress event and moves the timeout.

use super::conf;
use super::state::Slot;
use super::{execution_id, sra_image, SraError, COMMAND_PATH, EID_LABEL};
use crate::error::OpError;
use crate::registry::{lock, Inner};
use berth_api::{SraEvent, SraExecRequest, SraExecResult, SraResponseError, SraRunRequest, SraTarget};
use berth_core::engine::{ExecRequest, PlainContainer, StopSignal};
use berth_core::sra_xml::{self, Envelope};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, OwnedRwLockReadGuard};

/// SRM's own default command timeout.
const DEFAULT_TIMEOUT_SECS: u64 = 300;
/// A week: longer is a mistake, not a slow array.
const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;
/// The SRM appliance's srm user.
const DEFAULT_USER: &str = "660:660";
/// How often the status file is looked at.
const STATUS_POLL: Duration = Duration::from_millis(100);
/// A status or output file larger than this is not read whole.
const MAX_STATUS_BYTES: u64 = 64 * 1024;
const MAX_OUTPUT_BYTES: u64 = 64 << 20;
/// Marks execution containers as this daemon's (the eid label is the
/// spec's, and other runners on the engine may use it too).
pub const SRA_CONTAINER_LABEL: &str = "berth.sra";

type Progress = mpsc::UnboundedSender<SraEvent>;

/// `berth sra exec`: the caller's envelope, given as is.
pub async fn exec(inner: &Inner, request: SraExecRequest, progress: Progress) -> Result<SraExecResult, OpError> {
    let command = sra_xml::parse_command(&request.input)
        .map_err(|error| SraError::MalformedXml { what: "the command XML".into(), error })?;
    execute(inner, &request.target, Bytes::from(request.input), command.status_file.as_deref(), progress).await
}

/// `berth sra run`: berth writes the envelope, runs it, and reads the
/// response from the output file (which it then removes, with the status
/// file, as SRM does).
pub async fn run(inner: &Inner, request: SraRunRequest, progress: Progress) -> Result<SraExecResult, OpError> {
    if request.command.is_empty() || !request.command.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(OpError::InvalidValue {
            what: "command",
            reason: format!("{:?} is not an SRA command name (e.g. queryInfo)", request.command),
        });
    }
    let log_level = request.log_level.clone().unwrap_or_else(|| "info".into());
    if log_level.is_empty() || !log_level.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(OpError::InvalidValue { what: "--log-level", reason: format!("{log_level:?} is not a log level") });
    }
    for (what, fragment, root) in
        [("--connections", &request.connections, Some("Connections")), ("--parameters", &request.parameters, None)]
    {
        if let Some(fragment) = fragment {
            sra_xml::check_fragment(fragment, root)
                .map_err(|error| SraError::MalformedXml { what: what.into(), error })?;
        }
    }
    let token = super::hex(&rand::random::<[u8; 8]>());
    let (output_name, status_name) = (format!("sra-output-{token}.xml"), format!("sra-status-{token}.xml"));
    let envelope = Envelope {
        name: request.command.clone(),
        output_file: format!("/tmp/{output_name}"),
        status_file: format!("/tmp/{status_name}"),
        log_level,
        log_directory: "/srm/sra/log".into(),
        connections: request.connections.clone(),
        parameters: request.parameters.clone(),
    };
    let xml = envelope.to_xml();
    let result = execute(inner, &request.target, Bytes::from(xml), Some(&envelope.status_file), progress).await;
    let tmp = Path::new(&request.target.tmp_dir);
    let (output_path, status_path) = (tmp.join(&output_name), tmp.join(&status_name));
    let output = read_bounded(&output_path, MAX_OUTPUT_BYTES);
    let _ = std::fs::remove_file(&output_path);
    let _ = std::fs::remove_file(&status_path);
    let mut result = result?;
    let shown = output_path.display().to_string();
    match output {
        Ok(response) => {
            let error = sra_xml::response_error(&response)
                .map_err(|error| SraError::MalformedResponse { path: shown, error })?;
            result.sra_error = error.map(|e| SraResponseError {
                message: e.to_string(),
                code: e.code,
                description: e.description,
                fix_hint: e.fix_hint,
            });
            result.response = Some(response);
            Ok(result)
        }
        // A failing command's exit code and stderr say more than a missing file.
        Err(_) if result.exit_code != 0 => Ok(result),
        Err(_) => Err(SraError::NoOutput { path: shown }.into()),
    }
}

async fn execute(
    inner: &Inner,
    target: &SraTarget,
    input: Bytes,
    status_file: Option<&str>,
    progress: Progress,
) -> Result<SraExecResult, OpError> {
    check_target(target)?;
    let user = target.user.clone().unwrap_or_else(|| DEFAULT_USER.into());
    let timeout = Duration::from_secs(target.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS));
    let image = sra_image(inner, &target.image, "--image").await?;
    conf::ensure(inner, &image.id).await?;
    let eid = execution_id(&image.id, &target.tmp_dir, &target.log_dir);
    let slot = inner.sra.slot(&eid);
    let (container, running) = acquire(inner, &slot, &image.id, target, &eid).await?;

    let deadline = Arc::new(Mutex::new(Instant::now() + timeout));
    let (finished, finished_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = status_file.and_then(|file| host_path(file, &target.tmp_dir, &target.log_dir)).map(|path| {
        // Taken before the command starts: its first update must not be mistaken for the old state.
        let before = snapshot(&path);
        tokio::spawn(watch_status(path, before, deadline.clone(), timeout, progress, finished_rx))
    });
    let request = ExecRequest {
        argv: vec![COMMAND_PATH.into()],
        user: Some(user.clone()),
        env: target.env.clone(),
        stdin: Some(input),
    };
    let result = inner.engine.exec_with(&container, request, stop_at(deadline)).await;
    let _ = finished.send(());
    if let Some(watcher) = watcher {
        let _ = watcher.await;
    }
    *lock(&slot.last_used) = Instant::now();
    drop(running);

    let result = result?;
    let Some(exit_code) = result.exit_code else {
        return Err(SraError::TimedOut { secs: timeout.as_secs(), container: short(&container).into() }.into());
    };
    let (stdout, stderr) =
        (String::from_utf8_lossy(&result.stdout).into_owned(), String::from_utf8_lossy(&result.stderr).into_owned());
    // 126/127 with the runtime's message: the entry point could not be run at all.
    if matches!(exit_code, 126 | 127) && format!("{stdout}{stderr}").contains(COMMAND_PATH) {
        if let Some(diagnosis) = diagnose(inner, &image.id, &target.image, &user).await {
            return Err(diagnosis.into());
        }
    }
    Ok(SraExecResult {
        execution_id: eid,
        container_id: container,
        exit_code,
        stdout,
        stderr,
        response: None,
        sra_error: None,
    })
}

fn check_target(target: &SraTarget) -> Result<(), OpError> {
    for (what, dir) in [("--tmp-dir", &target.tmp_dir), ("--log-dir", &target.log_dir)] {
        if !dir.starts_with('/') || !Path::new(dir).is_dir() || dir.contains(':') {
            return Err(OpError::InvalidValue {
                what,
                reason: format!("{dir:?} is not an existing absolute directory (without ':')"),
            });
        }
    }
    if let Some(user) = &target.user {
        if parse_user(user).is_none() {
            return Err(OpError::InvalidValue { what: "--user", reason: format!("{user:?} is not UID:GID") });
        }
    }
    if let Some(bad) = target.env.iter().find(|e| e.split_once('=').is_none_or(|(name, _)| name.is_empty())) {
        return Err(OpError::InvalidValue { what: "--env", reason: format!("{bad:?} is not NAME=VALUE") });
    }
    match target.timeout_secs {
        Some(secs) if secs == 0 || secs > MAX_TIMEOUT_SECS => Err(OpError::InvalidValue {
            what: "--timeout",
            reason: format!("{secs} is not between 1 and {MAX_TIMEOUT_SECS} seconds"),
        }),
        _ => Ok(()),
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

/// Finds, starts, replaces or creates the execution container, and returns
/// it with a read guard that keeps it from being replaced or stopped while
/// the command runs.
async fn acquire(
    inner: &Inner,
    slot: &Slot,
    image_id: &str,
    target: &SraTarget,
    eid: &str,
) -> Result<(String, OwnedRwLockReadGuard<()>), OpError> {
    let engine = inner.engine.as_ref();
    let _setup = slot.setup.lock().await;
    let found = engine.containers_labelled(EID_LABEL, eid).await?;
    let generation = conf::current_generation(inner, image_id)?;
    // A container bound to an older configuration is replaced, once the
    // commands running in it are done: a command sees one configuration.
    let (current, stale): (Vec<_>, Vec<_>) =
        found.into_iter().partition(|c| c.label(conf::GENERATION_LABEL) == Some(&generation.to_string()));
    if !stale.is_empty() {
        let _drained = slot.running.write().await;
        for container in &stale {
            engine.remove_container(&container.id).await?;
        }
        conf::collect_garbage(inner, image_id).await;
    }
    let id = if let Some(running) = current.iter().find(|c| c.state.is_running()) {
        running.id.clone()
    } else if let Some(stopped) = current.first() {
        engine.start_container(&stopped.id).await?;
        stopped.id.clone()
    } else {
        create(inner, image_id, target, eid).await?
    };
    Ok((id, slot.running.clone().read_owned().await))
}

/// `docker run -di -v tmp:/tmp -v log:/srm/sra/log -l srm.sra.eid=…`, plus
/// the current configuration at /srm/sra/conf.
async fn create(inner: &Inner, image_id: &str, target: &SraTarget, eid: &str) -> Result<String, OpError> {
    let engine = inner.engine.as_ref();
    // Held until the container exists, so that the generation it binds is
    // not collected in between.
    let config = inner.sra.config_lock(image_id);
    let _config = config.read().await;
    let (generation, dir) = conf::current(inner, image_id)?;
    let spec = PlainContainer {
        image: image_id.to_owned(),
        binds: vec![
            format!("{}:/tmp", target.tmp_dir),
            format!("{}:/srm/sra/log", target.log_dir),
            format!("{}:{}", dir.display(), conf::CONF_IN_CONTAINER),
        ],
        labels: BTreeMap::from([
            (EID_LABEL.to_owned(), eid.to_owned()),
            (SRA_CONTAINER_LABEL.to_owned(), inner.instance.clone()),
            (conf::GENERATION_LABEL.to_owned(), generation.to_string()),
        ]),
    };
    let id = engine.create_plain_container(&spec).await?;
    engine.start_container(&id).await?;
    Ok(id)
}

/// Resolves once the (movable) deadline has passed.
fn stop_at(deadline: Arc<Mutex<Instant>>) -> StopSignal {
    Box::pin(async move {
        loop {
            let at = *lock(&deadline);
            if Instant::now() >= at {
                return;
            }
            tokio::time::sleep_until(at.into()).await;
        }
    })
}

/// The host path of a file the envelope names: inside the container the
/// tmp dir is /tmp and the log dir /srm/sra/log; an SRM-style host path in
/// one of the two directories is taken as is. Elsewhere it cannot be watched.
fn host_path(file: &str, tmp_dir: &str, log_dir: &str) -> Option<PathBuf> {
    let mapped = [("/tmp/", tmp_dir), ("/srm/sra/log/", log_dir)]
        .into_iter()
        .find_map(|(inside, host)| file.strip_prefix(inside).map(|rest| Path::new(host).join(rest)))
        .or_else(|| {
            [tmp_dir, log_dir]
                .into_iter()
                .find(|dir| file.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/')))
                .map(|_| PathBuf::from(file))
        })?;
    // Never follow a name out of the two directories.
    mapped.components().all(|c| !matches!(c, std::path::Component::ParentDir)).then_some(mapped)
}

/// Polls the status file; each change is an update: a progress event, and
/// the deadline moves to `timeout` from now.
async fn watch_status(
    path: PathBuf,
    mut last: Option<(std::time::SystemTime, String)>,
    deadline: Arc<Mutex<Instant>>,
    timeout: Duration,
    progress: Progress,
    mut finished: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        // One more look once the command has ended: its last update may be quick.
        let last_look = tokio::select! {
            _ = tokio::time::sleep(STATUS_POLL) => false,
            _ = &mut finished => true,
        };
        let now = snapshot(&path);
        if now != last {
            last = now;
            if let Some((_, content)) = &last {
                *lock(&deadline) = Instant::now() + timeout;
                let _ = progress.send(SraEvent::Progress { percent: sra_xml::progress_percent(content) });
            }
        }
        if last_look {
            return;
        }
    }
}

/// (modification time, content) of a status file, if it exists.
fn snapshot(path: &Path) -> Option<(std::time::SystemTime, String)> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some((modified, read_bounded(path, MAX_STATUS_BYTES).ok()?))
}

fn read_bounded(path: &Path, limit: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?.take(limit).read_to_string(&mut text)?;
    Ok(text)
}

/// Why /srm/sra/command could not run, from the image's copy of it.
async fn diagnose(inner: &Inner, image_id: &str, reference: &str, user: &str) -> Option<SraError> {
    let archive = match inner.engine.image_files(image_id, COMMAND_PATH).await {
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
pub async fn check_entry_point(inner: &Inner, image_id: &str, shown: &str) -> Result<(), OpError> {
    let Some(archive) = inner.engine.image_files(image_id, COMMAND_PATH).await? else {
        return Err(SraError::NoCommand { image: shown.to_owned(), path: COMMAND_PATH }.into());
    };
    match entry_point_mode(&archive) {
        Some((mode, uid, gid)) if mode & 0o111 == 0 => Err(SraError::NotExecutable {
            image: shown.to_owned(),
            path: COMMAND_PATH,
            mode,
            uid,
            gid,
            user: "anyone".into(),
        }
        .into()),
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
        let (tmp, log) = ("/var/tmp/srm", "/var/log/sra");
        assert_eq!(host_path("/tmp/status-1", tmp, log), Some(PathBuf::from("/var/tmp/srm/status-1")));
        assert_eq!(host_path("/srm/sra/log/s", tmp, log), Some(PathBuf::from("/var/log/sra/s")));
        assert_eq!(host_path("/var/tmp/srm/s", tmp, log), Some(PathBuf::from("/var/tmp/srm/s")));
        assert_eq!(host_path("/var/tmp/srmx/s", tmp, log), None);
        assert_eq!(host_path("/etc/passwd", tmp, log), None);
        assert_eq!(host_path("/tmp/../etc/passwd", tmp, log), None);
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
    fn the_deadline_can_move() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(async {
            let deadline = Arc::new(Mutex::new(Instant::now() + Duration::from_millis(50)));
            let started = Instant::now();
            let stop = stop_at(deadline.clone());
            *lock(&deadline) = Instant::now() + Duration::from_millis(200);
            stop.await;
            assert!(started.elapsed() >= Duration::from_millis(200));
        });
    }
}
