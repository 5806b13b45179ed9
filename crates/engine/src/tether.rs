//! Commands through the tether (crates/tether-agent): one unix-socket round
//! trip into an agent that runs in the container, in place of an exec's
//! three engine calls and its shim. The agent is placed when berth creates a
//! container (two bind mounts under `/dev`) and started by one exec the
//! first time a command needs it after each container start.
//!
//! Whatever the tether cannot do exactly as the exec would — no placement,
//! an agent that does not start, a user or a program it cannot run — falls
//! back to the exec path, which then gives the engine's own answer.

use crate::exec::Capture;
use berth_core::engine::{ContainerConfig, EngineError, ExecRequest, ExecResult, StopSignal, EXEC_OUTPUT_LIMIT};
use berth_core::run_args::MountSpec;
use berth_tether_agent::protocol::{self, Command, Exit};
use berth_tether_agent::{AGENT_DIR, AGENT_FILE, MOUNT_ROOT, READY_LINE, RUN_DIR, SOCKET_FILE};
use bollard::models::ContainerInspectResponse;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// Where the daemon keeps the agent and the containers' socket directories
/// (each 0700, root's): `agent_dir` holds the agent's executable, mounted
/// read-only; `run_root/<token>` is one container's socket directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TetherPlacement {
    pub agent_dir: PathBuf,
    pub run_root: PathBuf,
}

/// A unix socket's path holds at most this many bytes (`sun_path`, with its NUL).
const SOCKET_PATH_MAX: usize = 107;
/// How long a starting agent gets to say it listens.
pub(crate) const START_WAIT: Duration = Duration::from_secs(5);
/// A container whose agent did not start is not asked again for this long.
const UNUSABLE_FOR: Duration = Duration::from_secs(300);
/// After a kill, how long the agent gets to report the end.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How much of stdin goes in one frame.
const STDIN_CHUNK: usize = 256 << 10;

/// A container's tether, from its inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The socket on the host.
    pub socket: PathBuf,
    /// What an exec without `--user` and `--workdir` would use.
    pub user: String,
    pub workdir: String,
    /// Whether the container's environment sets `HOME` itself.
    pub container_home: bool,
}

pub(crate) struct Tether {
    placement: TetherPlacement,
    /// Containers (by id) whose agent did not start, and when.
    unusable: Mutex<HashMap<String, Instant>>,
}

/// How a conversation with an agent went: it had the command (whatever
/// came of it), or it was gone before it took it — an agent that died (a
/// `kill -9`) can still take a connection while it exits.
enum Conversation {
    Had(Outcome),
    AgentGone(String),
}

/// What a try through the tether came to.
pub(crate) enum Outcome {
    Ran(ExecResult),
    /// Use the exec, saying why (for the log).
    FallBack(String),
}

impl Tether {
    pub fn new(placement: TetherPlacement) -> Self {
        Self { placement, unusable: Mutex::new(HashMap::new()) }
    }

    /// The socket directory for a new container, and `config` with the
    /// tether's mounts; `None` where the container cannot have one (its own
    /// `/dev` is the host's, or the path would not fit a socket address).
    pub async fn place(&self, config: &ContainerConfig) -> Option<(PathBuf, ContainerConfig)> {
        let options = &config.options;
        let dev_is_its_own = !options.mounts.iter().chain(&config.mounts).any(|m| covers_tether(&m.target))
            && !options.tmpfs.iter().any(|t| covers_tether(t.split(':').next().unwrap_or_default()));
        if !dev_is_its_own {
            return None;
        }
        let run_dir = self.placement.run_root.join(token());
        if run_dir.join(SOCKET_FILE).as_os_str().len() > SOCKET_PATH_MAX {
            tracing::debug!(dir = %run_dir.display(), "no tether: the socket's path would be too long");
            return None;
        }
        let mut builder = tokio::fs::DirBuilder::new();
        builder.mode(0o700);
        if let Err(error) = builder.create(&run_dir).await {
            tracing::warn!(dir = %run_dir.display(), %error, "no tether: its directory could not be made");
            return None;
        }
        let mut placed = config.clone();
        let agent_dir = self.placement.agent_dir.to_string_lossy().into_owned();
        let run = run_dir.to_string_lossy().into_owned();
        placed.mounts.push(MountSpec { source: Some(agent_dir), target: AGENT_DIR.to_owned(), read_only: true });
        placed.mounts.push(MountSpec { source: Some(run), target: RUN_DIR.to_owned(), read_only: false });
        Some((run_dir, placed))
    }

    /// The tether of an inspected container, where berth placed one.
    pub fn target_of(&self, inspected: &ContainerInspectResponse) -> Option<Target> {
        let mounts = inspected.mounts.as_deref().unwrap_or_default();
        let source_of = |destination: &str| {
            mounts.iter().find(|m| m.destination.as_deref() == Some(destination)).and_then(|m| m.source.clone())
        };
        let run_dir = PathBuf::from(source_of(RUN_DIR)?);
        let agent_dir = PathBuf::from(source_of(AGENT_DIR)?);
        // Only berth's own directories: a mount someone else made is no tether.
        if agent_dir != self.placement.agent_dir || run_dir.parent() != Some(self.placement.run_root.as_path()) {
            return None;
        }
        // `--group-add` groups are the engine's to add: such a container's commands go by exec.
        let host = inspected.host_config.as_ref();
        if host.and_then(|h| h.group_add.as_ref()).is_some_and(|groups| !groups.is_empty()) {
            return None;
        }
        let config = inspected.config.as_ref();
        Some(Target {
            socket: run_dir.join(SOCKET_FILE),
            user: config.and_then(|c| c.user.clone()).unwrap_or_default(),
            workdir: config.and_then(|c| c.working_dir.clone()).unwrap_or_default(),
            container_home: config
                .and_then(|c| c.env.as_ref())
                .is_some_and(|env| env.iter().any(|e| e.starts_with("HOME="))),
        })
    }

    /// The socket directory of a container about to be removed, to remove after it.
    pub fn run_dir_of(&self, inspected: &ContainerInspectResponse) -> Option<PathBuf> {
        self.target_of(inspected).and_then(|t| t.socket.parent().map(Path::to_path_buf))
    }

    pub fn forget(&self, id: &str) {
        self.unusable.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    fn usable(&self, id: &str) -> bool {
        let mut unusable = self.unusable.lock().unwrap_or_else(|e| e.into_inner());
        match unusable.get(id) {
            Some(since) if since.elapsed() < UNUSABLE_FOR => false,
            Some(_) => {
                unusable.remove(id);
                true
            }
            None => true,
        }
    }

    fn mark_unusable(&self, id: &str) {
        self.unusable.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_owned(), Instant::now());
    }

    /// Runs `request` through the container's agent, starting it first when
    /// it does not answer (`start` runs the agent by one exec and says
    /// whether it came up).
    pub async fn run<S, F>(
        &self,
        id: &str,
        target: &Target,
        request: &ExecRequest,
        stop: &mut StopSignal,
        start: S,
    ) -> Result<Outcome, EngineError>
    where
        S: Fn(Vec<String>) -> F,
        F: std::future::Future<Output = Result<bool, EngineError>>,
    {
        if !self.usable(id) {
            return Ok(Outcome::FallBack("its agent did not start lately".into()));
        }
        if let Ok(stream) = UnixStream::connect(&target.socket).await {
            match converse(stream, target, request, stop).await? {
                Conversation::Had(outcome) => return Ok(outcome),
                Conversation::AgentGone(reason) => tracing::debug!(container = id, reason, "its agent is gone"),
            }
        }
        let stream = {
            let mut argv =
                vec![format!("{AGENT_DIR}/{AGENT_FILE}"), "serve".into(), format!("{RUN_DIR}/{SOCKET_FILE}")];
            if target.container_home {
                argv.push("--container-home".into());
            }
            // Twice at most: an agent killed a moment ago can still take
            // a connection while it dies, and the new one, finding it,
            // says ready and leaves; the second start finds it gone.
            let mut retried = false;
            loop {
                match start(argv.clone()).await {
                    Ok(true) => {}
                    Ok(false) => {
                        self.mark_unusable(id);
                        return Ok(Outcome::FallBack("its agent did not start".into()));
                    }
                    // Not running, gone, the engine away: the exec path says so as the engine does.
                    Err(e) => return Ok(Outcome::FallBack(e.to_string())),
                }
                match UnixStream::connect(&target.socket).await {
                    Ok(stream) => break stream,
                    Err(_) if !retried => retried = true,
                    Err(e) => {
                        self.mark_unusable(id);
                        return Ok(Outcome::FallBack(format!("its agent does not answer: {e}")));
                    }
                }
            }
        };
        match converse(stream, target, request, stop).await? {
            Conversation::Had(outcome) => Ok(outcome),
            Conversation::AgentGone(reason) => Ok(Outcome::FallBack(reason)),
        }
    }
}

/// Whether a mount at `target` would hide or replace the container's own
/// `/dev`, or the tether's place in it: the one is a path prefix of the other.
fn covers_tether(target: &str) -> bool {
    let target = target.trim_end_matches('/');
    let within = |inner: &str, outer: &str| inner == outer || inner.starts_with(&format!("{outer}/"));
    within(MOUNT_ROOT, target) || within(target, MOUNT_ROOT)
}

/// A name for a container's socket directory, unique on this host.
fn token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{:x}-{:x}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Reads the starting agent's output until it says it listens: the exec's
/// stream does not end while the agent lives, so its end is not awaited.
pub(crate) fn ready_in(output: &[u8]) -> bool {
    String::from_utf8_lossy(output).lines().any(|line| line.trim() == READY_LINE)
}

async fn write_frame(out: &mut OwnedWriteHalf, tag: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(5 + payload.len());
    protocol::write_frame(&mut frame, tag, payload)?;
    out.write_all(&frame).await
}

async fn read_frame(input: &mut OwnedReadHalf) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut header = [0u8; 5];
    match input.read_exact(&mut header[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    input.read_exact(&mut header[1..]).await?;
    let (tag, len) = protocol::split_header(header)?;
    let mut payload = vec![0u8; len];
    input.read_exact(&mut payload).await?;
    Ok(Some((tag, payload)))
}

/// Sends the command and its stdin, and reads its output to its end.
async fn converse(
    stream: UnixStream,
    target: &Target,
    request: &ExecRequest,
    stop: &mut StopSignal,
) -> Result<Conversation, EngineError> {
    let broken = |e: std::io::Error| EngineError::Rejected {
        status: 500,
        message: format!("the tether at {} broke off during a command: {e}", target.socket.display()),
    };
    let (mut input, mut output) = stream.into_split();
    let command = Command {
        argv: request.argv.clone(),
        user: request.user.clone().unwrap_or_else(|| target.user.clone()),
        env: request.env.clone(),
        workdir: request.workdir.clone().unwrap_or_else(|| target.workdir.clone()),
        stdin: request.stdin.is_some(),
    };
    if let Err(e) = write_frame(&mut output, protocol::REQUEST, &command.encode()).await {
        return Ok(Conversation::AgentGone(format!("the agent took no request: {e}")));
    }
    match read_frame(&mut input).await {
        Ok(Some((protocol::STARTED, _))) => {}
        Ok(Some((protocol::REFUSED, reason))) => {
            return Ok(Conversation::Had(Outcome::FallBack(String::from_utf8_lossy(&reason).into())))
        }
        Ok(None) => return Ok(Conversation::AgentGone("the agent hung up".into())),
        Ok(Some((tag, _))) => return Ok(Conversation::Had(Outcome::FallBack(format!("the agent answered {tag}")))),
        Err(e) => return Ok(Conversation::AgentGone(format!("the agent did not answer: {e}"))),
    }
    let (kill, killed) = tokio::sync::oneshot::channel::<()>();
    let feed = feed_then_kill(output, request.stdin.clone(), killed);
    tokio::pin!(feed);
    let mut kill = Some(kill);
    let mut capture = Capture::new(false, EXEC_OUTPUT_LIMIT);
    let kill_deadline = tokio::time::sleep(Duration::from_secs(86_400 * 365));
    tokio::pin!(kill_deadline);
    loop {
        tokio::select! {
            () = &mut feed => {}
            () = &mut *stop, if kill.is_some() => {
                if let Some(kill) = kill.take() {
                    let _ = kill.send(());
                }
                kill_deadline.as_mut().reset(tokio::time::Instant::now() + KILL_WAIT);
            }
            () = &mut kill_deadline => {
                tracing::warn!(socket = %target.socket.display(), "a killed command did not report its end");
                return Ok(Conversation::Had(Outcome::Ran(capture.finish(None, false))));
            }
            frame = read_frame(&mut input) => match frame.map_err(broken)? {
                Some((protocol::STDOUT, bytes)) => capture.push_stdout(&bytes),
                Some((protocol::STDERR, bytes)) => capture.push_stderr(&bytes),
                Some((protocol::EXIT, payload)) => {
                    let exit = Exit::decode(&payload).map_err(|e| broken(std::io::Error::other(e)))?;
                    let stopped = kill.is_none();
                    let code = (!stopped || !exit.killed).then_some(exit.code);
                    return Ok(Conversation::Had(Outcome::Ran(capture.finish(code, stopped && exit.killed))));
                }
                Some((tag, _)) => return Err(broken(std::io::Error::other(format!("unexpected frame {tag}")))),
                None => return Err(broken(std::io::ErrorKind::UnexpectedEof.into())),
            },
        }
    }
}

/// Writes stdin (then its end), and a kill when one is asked for, even
/// halfway through stdin (a frame cut short is a kill to the agent too).
/// Never ends: the connection stays open until the conversation is over.
async fn feed_then_kill(
    mut output: OwnedWriteHalf,
    stdin: Option<bytes::Bytes>,
    mut killed: tokio::sync::oneshot::Receiver<()>,
) {
    let feeding = async {
        if let Some(bytes) = stdin {
            for chunk in bytes.chunks(STDIN_CHUNK) {
                write_frame(&mut output, protocol::STDIN, chunk).await?;
            }
            write_frame(&mut output, protocol::STDIN_END, &[]).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    // A command that exits without reading its stdin closes the way in; not an error.
    let kill = tokio::select! {
        _ = feeding => (&mut killed).await.is_ok(),
        _ = &mut killed => true,
    };
    if kill {
        let _ = write_frame(&mut output, protocol::KILL, &[]).await;
    }
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mounts_over_dev_or_the_tether_rule_it_out() {
        for target in ["/", "/dev", "/dev/", "/dev/.berth-tether", "/dev/.berth-tether/run"] {
            assert!(covers_tether(target), "{target}");
        }
        for target in ["/data", "/devices", "/dev/shm", "/dev/.berth-tethered", "/srv/dev"] {
            assert!(!covers_tether(target), "{target}");
        }
    }

    #[test]
    fn tokens_differ_and_the_ready_line_is_found() {
        assert_ne!(token(), token());
        assert!(ready_in(b"berth-tether ready\n"));
        assert!(!ready_in(b"exec format error\n"));
    }
}
