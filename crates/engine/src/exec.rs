//! Running a command in a container through the exec API, and giving it up:
//! the Engine API has no "kill exec", so a command that is stopped is killed
//! from the host, with every process it started (a shell's `sleep` would
//! otherwise keep the output stream, and the container, busy).

use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::Docker;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use std::collections::HashMap;
use std::time::Duration;

/// After the kill, how long the output stream gets to end.
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Captured {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Both, interleaved as produced.
    pub combined: Vec<u8>,
    /// False when `stop` came first.
    pub finished: bool,
}

impl Captured {
    /// Keeps one chunk of output: stderr apart, everything else as stdout.
    fn push(&mut self, chunk: LogOutput) {
        let to_stderr = matches!(chunk, LogOutput::StdErr { .. });
        let bytes = chunk.into_bytes();
        self.combined.extend_from_slice(&bytes);
        if to_stderr {
            self.stderr.extend_from_slice(&bytes);
        } else {
            self.stdout.extend_from_slice(&bytes);
        }
    }
}

/// Starts the created exec `exec_id`, feeds `stdin` (then closes it) and
/// collects the output until the command ends or `stop` resolves.
pub async fn run(
    docker: &Docker,
    exec_id: &str,
    stdin: Option<Bytes>,
    stop: BoxFuture<'static, ()>,
) -> Result<Captured, bollard::errors::Error> {
    let started = docker.start_exec(exec_id, None::<StartExecOptions>).await?;
    let mut captured = Captured::default();
    let StartExecResults::Attached { mut output, mut input } = started else {
        captured.finished = true;
        return Ok(captured);
    };
    if let Some(bytes) = stdin {
        use tokio::io::AsyncWriteExt;
        // A command that does not read stdin may exit first; that is not an error.
        let _ = input.write_all(&bytes).await;
        // Closing stdin is what tells the command its input is complete.
        let _ = input.shutdown().await;
    }
    drop(input);
    let mut stop = stop;
    loop {
        tokio::select! {
            chunk = output.next() => match chunk {
                Some(Ok(chunk)) => captured.push(chunk),
                Some(Err(_)) | None => {
                    captured.finished = true;
                    return Ok(captured);
                }
            },
            () = &mut stop => break,
        }
    }
    // Stopped: kill what runs, then keep what it still wrote.
    if let Ok(inspected) = docker.inspect_exec(exec_id).await {
        if inspected.running == Some(true) {
            if let Some(pid) = inspected.pid.filter(|p| *p > 0) {
                kill_tree(pid as i32);
            }
        }
    }
    let _ = tokio::time::timeout(DRAIN_AFTER_KILL, async {
        while let Some(Ok(chunk)) = output.next().await {
            captured.push(chunk);
        }
    })
    .await;
    Ok(captured)
}

/// SIGKILLs `root` and all its descendants, found through /proc. The exec's
/// pid is a host pid, so this works when the engine runs on this host in the
/// host's pid namespace — where SRA tmp and log binds already require it to
/// be; elsewhere nothing is found and the command is only abandoned.
pub fn kill_tree(root: i32) {
    let parents = process_parents();
    let mut doomed = vec![root];
    let mut index = 0;
    while index < doomed.len() {
        let parent = doomed[index];
        doomed.extend(parents.iter().filter(|(_, p)| **p == parent).map(|(child, _)| *child));
        index += 1;
    }
    for pid in doomed {
        // SAFETY: kill(2) with a pid and a signal number has no memory effects.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// pid → parent pid of every process visible in /proc.
fn process_parents() -> HashMap<i32, i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            Some((pid, parent_from_stat(&stat)?))
        })
        .collect()
}

/// `/proc/<pid>/stat` is "pid (comm) state ppid …"; comm may hold spaces and
/// parentheses, so the fields start after the last ')'.
fn parent_from_stat(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_is_read_after_the_command_name() {
        assert_eq!(parent_from_stat("42 (sh) S 7 42 42 0"), Some(7));
        assert_eq!(parent_from_stat("42 (a) b) (c) R 9 1"), Some(9));
        assert_eq!(parent_from_stat("garbage"), None);
    }

    #[test]
    fn a_process_tree_is_killed_with_its_descendants() {
        // sh starts a sleep; killing the tree must take both.
        let mut child = std::process::Command::new("sh").args(["-c", "sleep 60 & wait"]).spawn().unwrap();
        let root = child.id() as i32;
        let grandchild = (0..100)
            .find_map(|_| {
                std::thread::sleep(Duration::from_millis(20));
                process_parents().into_iter().find(|(_, p)| *p == root).map(|(c, _)| c)
            })
            .expect("sleep started");
        kill_tree(root);
        let status = child.wait().unwrap();
        assert!(!status.success());
        // The grandchild is gone (reaped by init) or a zombie on its way out.
        std::thread::sleep(Duration::from_millis(100));
        let state = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
        assert!(state.is_empty() || state.contains(") Z"), "{state}");
    }
}
