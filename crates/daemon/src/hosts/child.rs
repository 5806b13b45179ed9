//! Hosts' daemons as child processes, where systemd is not PID 1: each is
//! started, restarted with a growing pause when it exits, and stopped with
//! SIGTERM (then SIGKILL after a grace period). Stopping this daemon stops
//! them; one left running by a daemon that was killed is found on its socket
//! and stopped before it is started again under supervision
//! ([`super::Hosts::start_all`]).

use crate::services::lock;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a stopped host's daemon gets to stop its work.
const STOP_GRACE: Duration = Duration::from_secs(25);
const MAX_PAUSE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Running {
        pid: u32,
    },
    /// It exited; it is started again after a pause.
    Exited {
        exits: u32,
        last: String,
    },
}

pub struct ChildSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Appended with the child's stdout and stderr.
    pub output: PathBuf,
}

struct Child {
    stop: CancellationToken,
    status: Arc<Mutex<Status>>,
    task: JoinHandle<()>,
}

#[derive(Default)]
pub struct Children {
    children: Mutex<BTreeMap<String, Child>>,
}

impl Children {
    /// Starts `name`'s daemon under supervision (a second call while it is
    /// supervised does nothing).
    pub fn start(&self, name: &str, spec: ChildSpec, shutdown: CancellationToken) {
        let mut children = lock(&self.children);
        if children.get(name).is_some_and(|c| !c.task.is_finished()) {
            return;
        }
        let stop = shutdown.child_token();
        let status = Arc::new(Mutex::new(Status::Exited { exits: 0, last: "starting".into() }));
        let task = tokio::spawn(supervise(name.to_owned(), spec, stop.clone(), status.clone()));
        children.insert(name.to_owned(), Child { stop, status, task });
    }

    pub fn is_supervised(&self, name: &str) -> bool {
        lock(&self.children).get(name).is_some_and(|c| !c.task.is_finished())
    }

    pub fn status(&self, name: &str) -> Option<Status> {
        lock(&self.children).get(name).map(|c| lock(&c.status).clone())
    }

    /// Stops `name`'s daemon and waits until it has exited.
    pub async fn stop(&self, name: &str) {
        let child = lock(&self.children).remove(name);
        if let Some(child) = child {
            child.stop.cancel();
            let _ = child.task.await;
        }
    }
}

async fn supervise(name: String, spec: ChildSpec, stop: CancellationToken, status: Arc<Mutex<Status>>) {
    let mut exits = 0u32;
    loop {
        let mut child = match spawn(&spec) {
            Ok(child) => child,
            Err(e) => {
                exits += 1;
                tracing::warn!(host = %name, error = %e, "cannot start the host's daemon");
                *lock(&status) = Status::Exited { exits, last: e.to_string() };
                if pause(exits, &stop).await {
                    return;
                }
                continue;
            }
        };
        let pid = child.id().unwrap_or_default();
        *lock(&status) = Status::Running { pid };
        tracing::info!(host = %name, pid, "the host's daemon runs");
        tokio::select! {
            exited = child.wait() => {
                exits += 1;
                let last = exited.map_or_else(|e| e.to_string(), |s| s.to_string());
                tracing::warn!(host = %name, %last, "the host's daemon exited; it is started again");
                *lock(&status) = Status::Exited { exits, last };
                if pause(exits, &stop).await {
                    return;
                }
            }
            _ = stop.cancelled() => {
                terminate(&mut child, pid).await;
                tracing::info!(host = %name, "the host's daemon stopped");
                return;
            }
        }
    }
}

/// Waits before the next start (1 s, doubling, at most 30 s); true when
/// the child is to stay stopped.
async fn pause(exits: u32, stop: &CancellationToken) -> bool {
    let pause = Duration::from_secs(1 << exits.min(5)).min(MAX_PAUSE);
    tokio::select! {
        _ = tokio::time::sleep(pause) => false,
        _ = stop.cancelled() => true,
    }
}

fn spawn(spec: &ChildSpec) -> std::io::Result<tokio::process::Child> {
    let output = std::fs::OpenOptions::new().create(true).append(true).open(&spec.output)?;
    let mut command = tokio::process::Command::new(&spec.program);
    command
        .args(&spec.args)
        .stdin(std::process::Stdio::null())
        .stdout(output.try_clone()?)
        .stderr(output)
        // Its own process group: a Ctrl-C at the parent's terminal is not its.
        .process_group(0);
    command.spawn()
}

async fn terminate(child: &mut tokio::process::Child, pid: u32) {
    signal(pid, rustix::process::Signal::TERM);
    if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

pub fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}
