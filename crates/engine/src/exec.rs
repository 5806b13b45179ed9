//! Running a command in a container through the exec API, and giving it up.
//!
//! The Engine API has no "kill exec", and the pid it reports is a host pid,
//! of no use when the engine is on another machine. So where the container
//! has `/bin/sh`, the command is started through a wrapper that reports its
//! pid in the container's own namespace and then `exec`s the command (which
//! keeps that pid); a command that is stopped is killed, with every process
//! it started, by a second exec inside the container. A shell's `sleep` would
//! otherwise keep the output stream, and the container, busy. Without a
//! shell the command is only abandoned.

use crate::docker::DockerEngine;
use crate::tether::Outcome;
use berth_core::engine::{Engine, EngineError, ExecRequest, ExecResult, StopSignal, EXEC_OUTPUT_LIMIT};
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::InspectContainerOptions;
use bollard::Docker;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// `$0` of the wrapper: what the shell names itself in its own messages.
const WRAPPER_NAME: &str = "berth-exec";
/// Reports the pid of the command-to-be on the first line of stderr, then
/// `exec`s the command (which keeps that pid) with its arguments untouched
/// (`"$@"`) and its stdin, user and directory unchanged.
///
/// The environment is the command's own too: shells add `PWD` and `SHLVL` at
/// startup, so they are unset and the values the command would have had
/// (given before `--`) put back. bash also changes `SHLVL` on `exec` — except
/// in a subshell, where `$BASHPID` is the pid.
const WRAPPER_SCRIPT: &str = r#"unset PWD SHLVL OLDPWD
while :; do case $1 in --) shift; break ;; esac; export "$1"; shift; done
case ${BASH_VERSION-} in
'') echo "$$" >&2; exec "$@" ;;
*) (echo "$BASHPID" >&2; exec "$@") ;;
esac"#;
/// The variables [`WRAPPER_SCRIPT`] unsets and puts back.
const SHELL_VARIABLES: &[&str] = &["PWD", "SHLVL", "OLDPWD"];

/// SIGKILLs `$1` and all its descendants, with shell builtins only (`read`,
/// `set`, `case`, `kill`, `for`): an image need not have grep, awk or ps.
/// The tree is frozen (SIGSTOP) while it is walked, so that nothing forks
/// away from it or is reparented out of it, and killed once it is complete.
/// In `/proc/<pid>/stat` the parent pid follows the state after the *last*
/// `)`, since the command name may hold spaces and parentheses.
const KILL_SCRIPT: &str = r#"tree=" $1 "
kill -STOP "$1" 2>/dev/null || exit 0
while :; do
  grown=
  for stat in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null < "$stat" || continue
    pid=${line%% *}
    case $tree in *" $pid "*) continue ;; esac
    set -f
    set -- ${line##*\)}
    set +f
    case $tree in *" $2 "*) tree="$tree$pid "; kill -STOP "$pid" 2>/dev/null; grown=1 ;; esac
  done
  case $grown in '') break ;; esac
done
for pid in $tree; do kill -KILL "$pid" 2>/dev/null; done
exit 0"#;

/// When stopped before its pid line came, how long a command gets to report it.
const PID_WAIT: Duration = Duration::from_secs(5);
/// How long the kill script may take.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// After the kill, how long the output stream gets to end.
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(5);
/// A pid line is short; anything longer is the shell's own complaint.
const PID_LINE_MAX: usize = 32;
/// How many containers' shell answers are kept.
const SHELL_CACHE_MAX: usize = 1024;

/// The argv that runs `argv` through the wrapper, `presets` being the
/// wrapper's variables as the command would have them (`NAME=VALUE`).
pub fn wrapped(presets: &[String], argv: Vec<String>) -> Vec<String> {
    let mut wrapped = vec!["/bin/sh".to_owned(), "-c".to_owned(), WRAPPER_SCRIPT.to_owned(), WRAPPER_NAME.to_owned()];
    wrapped.extend(presets.iter().cloned());
    wrapped.push("--".to_owned());
    wrapped.extend(argv);
    wrapped
}

/// The values of the wrapper's variables in an environment made of `layers`
/// in order, as the engine makes an exec's (the container's, then the
/// exec's own; `NAME` without `=` removes the variable).
pub fn shell_presets<'a>(layers: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut presets: Vec<(&str, Option<&str>)> = SHELL_VARIABLES.iter().map(|name| (*name, None)).collect();
    for entry in layers {
        let (name, value) = match entry.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (entry.as_str(), None),
        };
        if let Some(slot) = presets.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
        }
    }
    presets.into_iter().filter_map(|(name, value)| Some(format!("{name}={}", value?))).collect()
}

/// The argv that kills `pid` and its descendants.
pub fn kill_argv(pid: u32) -> Vec<String> {
    ["/bin/sh", "-c", KILL_SCRIPT, "berth-kill"].iter().map(|s| (*s).to_owned()).chain([pid.to_string()]).collect()
}

/// The last `limit` bytes of a stream of output.
struct Tail {
    bytes: VecDeque<u8>,
    limit: usize,
}

impl Tail {
    fn new(limit: usize) -> Self {
        Self { bytes: VecDeque::new(), limit }
    }

    fn push(&mut self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(self.limit)..];
        let excess = (self.bytes.len() + bytes.len()).saturating_sub(self.limit);
        self.bytes.drain(..excess);
        self.bytes.extend(bytes);
    }

    fn into_vec(self) -> Vec<u8> {
        self.bytes.into()
    }
}

/// A command's output as it comes: stdout, stderr and both interleaved, each
/// bounded, with the wrapper's pid line taken out of stderr.
pub struct Capture {
    stdout: Tail,
    stderr: Tail,
    combined: Tail,
    /// `Some` while the wrapper's pid line is awaited (what came of it so far).
    pid_line: Option<Vec<u8>>,
    pub pid: Option<u32>,
}

impl Capture {
    pub fn new(wrapped: bool, limit: usize) -> Self {
        Self {
            stdout: Tail::new(limit),
            stderr: Tail::new(limit),
            combined: Tail::new(limit),
            pid_line: wrapped.then(Vec::new),
            pid: None,
        }
    }

    fn awaits_pid(&self) -> bool {
        self.pid_line.is_some()
    }

    pub fn push(&mut self, chunk: LogOutput) {
        match chunk {
            LogOutput::StdErr { message } => self.push_stderr(&message),
            other => self.push_stdout(&other.into_bytes()),
        }
    }

    pub(crate) fn push_stdout(&mut self, bytes: &[u8]) {
        self.stdout.push(bytes);
        self.combined.push(bytes);
    }

    pub(crate) fn push_stderr(&mut self, bytes: &[u8]) {
        let Some(mut line) = self.pid_line.take() else {
            self.stderr.push(bytes);
            self.combined.push(bytes);
            return;
        };
        line.extend_from_slice(bytes);
        match line.iter().position(|b| *b == b'\n') {
            Some(end) => match std::str::from_utf8(&line[..end]).ok().and_then(|l| l.trim().parse().ok()) {
                Some(pid) => {
                    self.pid = Some(pid);
                    self.push_stderr(&line[end + 1..]);
                }
                // Not the wrapper's line: the shell's own complaint, kept.
                None => self.push_stderr(&line),
            },
            None if line.len() > PID_LINE_MAX => self.push_stderr(&line),
            None => self.pid_line = Some(line),
        }
    }

    pub fn finish(mut self, exit_code: Option<i64>, killed: bool) -> ExecResult {
        if let Some(partial) = self.pid_line.take() {
            self.push_stderr(&partial);
        }
        ExecResult {
            exit_code,
            stdout: self.stdout.into_vec(),
            stderr: self.stderr.into_vec(),
            combined: self.combined.into_vec(),
            killed,
        }
    }
}

type Output = BoxStream<'static, Result<LogOutput, bollard::errors::Error>>;

/// Reads output into `capture` until the stream ends (`true`) or `until`
/// resolves (`false`).
async fn read_until(output: &mut Output, capture: &mut Capture, until: impl std::future::Future<Output = ()>) -> bool {
    tokio::pin!(until);
    loop {
        tokio::select! {
            chunk = output.next() => match chunk {
                Some(Ok(chunk)) => capture.push(chunk),
                // A broken stream ends the command's output all the same;
                // its fate is then asked of the engine.
                Some(Err(_)) | None => return true,
            },
            () = &mut until => return false,
        }
    }
}

fn is_container_id(reference: &str) -> bool {
    reference.len() == 64 && reference.bytes().all(|b| b.is_ascii_hexdigit())
}

impl DockerEngine {
    pub(crate) async fn run_exec(
        &self,
        container: &str,
        request: ExecRequest,
        stop: StopSignal,
    ) -> Result<ExecResult, EngineError> {
        if request.argv.is_empty() {
            return Err(EngineError::Rejected { status: 400, message: "no command to run".into() });
        }
        let docker = self.connection.docker().await?;
        let what = format!("container {container}");
        let facts = self.facts_of(&docker, container).await?;
        let mut stop = stop;
        if let (Some(tether), Some(target)) = (&self.tether, &facts.tether) {
            let start = |argv| self.start_agent(&docker, &facts.id, argv);
            match tether.run(&facts.id, target, &request, &mut stop, start).await? {
                Outcome::Ran(result) => return Ok(result),
                Outcome::FallBack(reason) => tracing::debug!(container, reason, "the command goes by exec"),
            }
        }
        let shell = self.shell_of(&facts).await?;
        let argv = match &shell {
            Some(container_presets) => {
                wrapped(&shell_presets(container_presets.iter().chain(&request.env)), request.argv)
            }
            None => request.argv,
        };
        let shell = shell.is_some();
        let options = CreateExecOptions {
            attach_stdin: Some(request.stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(argv),
            user: request.user,
            env: (!request.env.is_empty()).then_some(request.env),
            working_dir: request.workdir,
            ..Default::default()
        };
        let (exec_id, mut output, input) = self.start_exec(&docker, container, options, &what).await?;
        let mut capture = Capture::new(shell, EXEC_OUTPUT_LIMIT);
        let mut feed = Box::pin(feed_stdin(input, request.stdin));
        let mut fed = false;
        let ended = loop {
            tokio::select! {
                () = &mut feed, if !fed => fed = true,
                finished = read_until(&mut output, &mut capture, &mut stop) => break finished,
            }
        };
        drop(feed);
        if ended {
            let exit_code = self.exit_code(&docker, &exec_id, &what).await?;
            return Ok(capture.finish(exit_code, false));
        }
        self.give_up(&docker, container, &exec_id, shell, output, capture).await
    }

    /// A stopped command: killed where that can be done, else abandoned.
    async fn give_up(
        &self,
        docker: &Docker,
        container: &str,
        exec_id: &str,
        shell: bool,
        mut output: Output,
        mut capture: Capture,
    ) -> Result<ExecResult, EngineError> {
        let what = format!("container {container}");
        if !shell {
            tracing::warn!(container, "a stopped command is abandoned: the container has no /bin/sh to kill it with");
            return Ok(capture.finish(None, false));
        }
        // A command stopped at once may not have reported its pid yet.
        if capture.awaits_pid() {
            let deadline = tokio::time::sleep(PID_WAIT);
            tokio::pin!(deadline);
            while capture.awaits_pid() {
                let next = tokio::select! {
                    chunk = output.next() => chunk,
                    () = &mut deadline => break,
                };
                match next {
                    Some(Ok(chunk)) => capture.push(chunk),
                    // It finished meanwhile: nothing to kill.
                    Some(Err(_)) | None => {
                        let exit_code = self.exit_code(docker, exec_id, &what).await?;
                        return Ok(capture.finish(exit_code, false));
                    }
                }
            }
        }
        let Some(pid) = capture.pid else {
            tracing::warn!(container, "a stopped command is abandoned: it did not report its pid");
            return Ok(capture.finish(None, false));
        };
        let killed = match self.kill_tree(docker, container, pid).await {
            Ok(killed) => killed,
            Err(error) => {
                tracing::warn!(container, pid, %error, "a stopped command could not be killed");
                false
            }
        };
        let drained = read_until(&mut output, &mut capture, tokio::time::sleep(DRAIN_AFTER_KILL)).await;
        if !drained {
            tracing::warn!(container, pid, "the output of a killed command did not end");
        }
        Ok(capture.finish(None, killed && drained))
    }

    /// Runs the kill script as root; whether it ran to its end.
    async fn kill_tree(&self, docker: &Docker, container: &str, pid: u32) -> Result<bool, EngineError> {
        let what = format!("container {container}");
        let options = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(kill_argv(pid)),
            user: Some("0".to_owned()),
            ..Default::default()
        };
        let (exec_id, mut output, input) = self.start_exec(docker, container, options, &what).await?;
        drop(input);
        let mut capture = Capture::new(false, 4096);
        if !read_until(&mut output, &mut capture, tokio::time::sleep(KILL_WAIT)).await {
            return Ok(false);
        }
        let exit_code = self.exit_code(docker, &exec_id, &what).await?;
        if exit_code != Some(0) {
            let said = String::from_utf8_lossy(&capture.finish(exit_code, false).combined).into_owned();
            tracing::warn!(container, pid, ?exit_code, said, "the kill script failed");
        }
        Ok(exit_code == Some(0))
    }

    async fn start_exec(
        &self,
        docker: &Docker,
        container: &str,
        options: CreateExecOptions<String>,
        what: &str,
    ) -> Result<(String, Output, std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>), EngineError> {
        let c = &self.connection;
        let exec = c.control("exec", what, docker.create_exec(container, options)).await?;
        // Only the start is a control call; the output that follows is a stream.
        match c.control("exec start", what, docker.start_exec(&exec.id, None::<StartExecOptions>)).await? {
            StartExecResults::Attached { output, input } => Ok((exec.id, output.boxed(), input)),
            StartExecResults::Detached => Err(EngineError::Rejected {
                status: 500,
                message: format!("the engine started a command in {what} detached"),
            }),
        }
    }

    /// The exit code of an exec whose output has ended. The engine may close
    /// the stream a moment before it records the exit, so a running exec is
    /// asked again, briefly.
    async fn exit_code(&self, docker: &Docker, exec_id: &str, what: &str) -> Result<Option<i64>, EngineError> {
        let deadline = Instant::now() + self.connection.timeouts.control;
        let mut pause = Duration::from_millis(5);
        loop {
            let inspected = self.connection.control("exec inspect", what, docker.inspect_exec(exec_id)).await?;
            if inspected.running != Some(true) || Instant::now() >= deadline {
                return Ok(inspected.exit_code);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// What a command needs to know of its container, asked once per
    /// container id (it is fixed when the container is made).
    async fn facts_of(&self, docker: &Docker, container: &str) -> Result<Arc<ContainerFacts>, EngineError> {
        let cached = |id: &str| self.shells.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned();
        if is_container_id(container) {
            if let Some(known) = cached(container) {
                return Ok(known);
            }
        }
        // By id: a name may be given to another container later.
        let what = format!("container {container}");
        let inspect = docker.inspect_container(container, None::<InspectContainerOptions>);
        let inspected = self.connection.control("inspect", &what, inspect).await?;
        let id = inspected.id.clone().unwrap_or_default();
        if let Some(known) = cached(&id) {
            return Ok(known);
        }
        let facts = Arc::new(ContainerFacts {
            id: id.clone(),
            env: inspected.config.as_ref().and_then(|c| c.env.clone()).unwrap_or_default(),
            tether: self.tether.as_ref().and_then(|t| t.target_of(&inspected)),
            shell: OnceLock::new(),
        });
        let mut shells = self.shells.lock().unwrap_or_else(|e| e.into_inner());
        if shells.len() >= SHELL_CACHE_MAX {
            shells.clear();
        }
        shells.insert(id, Arc::clone(&facts));
        Ok(facts)
    }

    /// Whether the container has `/bin/sh` and, if so, the values of the
    /// wrapper's variables in its environment.
    async fn shell_of(&self, facts: &ContainerFacts) -> Result<Option<Vec<String>>, EngineError> {
        if let Some(known) = facts.shell.get() {
            return Ok(known.clone());
        }
        let shell =
            self.stat(&facts.id, "/bin/sh").await?.is_some_and(|s| !s.is_dir).then(|| shell_presets(&facts.env));
        let _ = facts.shell.set(shell.clone());
        Ok(shell)
    }

    /// Starts the container's tether agent by one exec, as root; whether it
    /// said it listens. Its output does not end while it lives, so only its
    /// first words are read.
    async fn start_agent(&self, docker: &Docker, id: &str, argv: Vec<String>) -> Result<bool, EngineError> {
        let what = format!("container {id}");
        let options = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(argv),
            user: Some("0".to_owned()),
            ..Default::default()
        };
        let (_, mut output, input) = self.start_exec(docker, id, options, &what).await?;
        drop(input);
        let mut said = Vec::new();
        let reading = async {
            while let Some(Ok(chunk)) = output.next().await {
                said.extend_from_slice(&chunk.into_bytes());
                if crate::tether::ready_in(&said) {
                    return true;
                }
            }
            false
        };
        let ready = tokio::time::timeout(crate::tether::START_WAIT, reading).await.unwrap_or(false);
        if !ready {
            let said = String::from_utf8_lossy(&said).into_owned();
            tracing::warn!(container = id, said, "the tether agent did not start; its commands go by exec");
        }
        Ok(ready)
    }
}

/// A container, as its commands need it.
pub(crate) struct ContainerFacts {
    id: String,
    /// Its environment (`NAME=VALUE`), for the wrapper's presets.
    env: Vec<String>,
    tether: Option<crate::tether::Target>,
    /// Whether it has `/bin/sh` (and the presets): asked at its first command by exec.
    shell: OnceLock<Option<Vec<String>>>,
}

/// Writes `stdin` to the command and closes it, which tells the command its
/// input is complete; without stdin, there is nothing to hold open.
async fn feed_stdin(mut input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>, stdin: Option<Bytes>) {
    if let Some(bytes) = stdin {
        // A command that does not read its stdin may exit first; not an error.
        let _ = input.write_all(&bytes).await;
        let _ = input.shutdown().await;
    }
    drop(input);
    // Resolved once: the caller stops polling it.
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> LogOutput {
        LogOutput::StdErr { message: Bytes::copy_from_slice(text.as_bytes()) }
    }

    fn out(text: &str) -> LogOutput {
        LogOutput::StdOut { message: Bytes::copy_from_slice(text.as_bytes()) }
    }

    #[test]
    fn the_pid_line_is_taken_out_of_stderr_and_combined() {
        let mut capture = Capture::new(true, 1024);
        capture.push(err("4"));
        capture.push(err("2\nfirst "));
        capture.push(out("o"));
        capture.push(err("e"));
        assert_eq!(capture.pid, Some(42));
        let result = capture.finish(Some(0), false);
        assert_eq!(result.stderr, b"first e");
        assert_eq!(result.stdout, b"o");
        assert_eq!(result.combined, b"first oe");
    }

    #[test]
    fn what_is_not_a_pid_line_is_kept() {
        let mut capture = Capture::new(true, 1024);
        capture.push(err("sh: can't open\n"));
        assert_eq!(capture.pid, None);
        assert_eq!(capture.finish(Some(2), false).stderr, b"sh: can't open\n");
        let mut partial = Capture::new(true, 1024);
        partial.push(err("12"));
        assert_eq!(partial.finish(None, false).stderr, b"12");
        let mut unwrapped = Capture::new(false, 1024);
        unwrapped.push(err("7\n"));
        assert_eq!((unwrapped.pid, unwrapped.finish(None, false).stderr), (None, b"7\n".to_vec()));
    }

    #[test]
    fn output_keeps_its_tail() {
        let mut capture = Capture::new(false, 4);
        capture.push(out("abc"));
        capture.push(err("de"));
        capture.push(out("fghij"));
        let result = capture.finish(Some(0), false);
        assert_eq!(
            (&result.stdout[..], &result.stderr[..], &result.combined[..]),
            (&b"ghij"[..], &b"de"[..], &b"ghij"[..])
        );
    }

    #[test]
    fn the_wrapper_passes_arguments_untouched() {
        let argv = wrapped(&["PWD=/w".into()], vec!["printf".into(), "%s|".into(), "a b".into(), "$HOME".into()]);
        assert_eq!(argv[..4], ["/bin/sh", "-c", WRAPPER_SCRIPT, WRAPPER_NAME]);
        assert_eq!(argv[4..], ["PWD=/w", "--", "printf", "%s|", "a b", "$HOME"]);
    }

    #[test]
    fn presets_follow_the_engine_s_environment_rules() {
        let container: Vec<String> = vec!["PATH=/bin".into(), "PWD=/a".into(), "SHLVL=2".into()];
        let exec: Vec<String> = vec!["PWD=/b".into(), "SHLVL".into(), "OLDPWD=/c".into()];
        assert_eq!(shell_presets(container.iter().chain(&exec)), ["PWD=/b", "OLDPWD=/c"]);
        assert!(shell_presets(&vec!["HOME=/root".to_owned()]).is_empty());
    }

    /// Runs `argv` with exactly `env`, in `/`.
    fn run_with_env(argv: &[String], env: &[&str]) -> std::process::Output {
        let mut command = std::process::Command::new(&argv[0]);
        command.args(&argv[1..]).env_clear().current_dir("/");
        for entry in env {
            let (k, v) = entry.split_once('=').unwrap();
            command.env(k, v);
        }
        command.output().unwrap()
    }

    /// Every shell at hand (dash, busybox, bash) as `/bin/sh` would be.
    fn shells() -> Vec<Vec<String>> {
        [vec!["/bin/sh"], vec!["/bin/busybox", "sh"], vec!["/bin/bash"], vec!["/bin/dash"]]
            .into_iter()
            .filter(|shell| std::path::Path::new(shell[0]).exists())
            .map(|shell| shell.into_iter().map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn the_wrapper_changes_nothing_of_the_command() {
        let sorted = |bytes: &[u8]| {
            let mut lines: Vec<String> = String::from_utf8_lossy(bytes).lines().map(str::to_owned).collect();
            lines.sort();
            lines
        };
        let commands: [Vec<String>; 2] = [
            vec!["/usr/bin/env".into()],
            ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"].map(str::to_owned).into(),
        ];
        for env in [&["PATH=/usr/bin:/bin", "FOO=a b"][..], &["PATH=/usr/bin:/bin", "PWD=/elsewhere", "SHLVL=7"]] {
            let env_strings: Vec<String> = env.iter().map(|s| (*s).to_owned()).collect();
            for command in &commands {
                let direct = run_with_env(command, env);
                for shell in shells() {
                    let mut argv = shell.clone();
                    argv.extend(wrapped(&shell_presets(&env_strings), command.clone()).into_iter().skip(1));
                    let through = run_with_env(&argv, env);
                    let stderr = String::from_utf8(through.stderr).unwrap();
                    let (pid_line, rest) = stderr.split_once('\n').unwrap();
                    assert!(pid_line.parse::<u32>().is_ok(), "{shell:?}: {stderr}");
                    // The order of the environment is the shell's; its content is the command's.
                    assert_eq!(sorted(&through.stdout), sorted(&direct.stdout), "{shell:?} {env:?}");
                    assert_eq!(rest.as_bytes(), &direct.stderr[..], "{shell:?}");
                    assert_eq!(through.status.code(), direct.status.code(), "{shell:?}");
                }
            }
        }
    }

    /// The kill script on the host's own shell (dash on Debian), as in a container.
    #[test]
    fn the_kill_script_kills_a_tree() {
        // sh starts a sleep, whose comm gets spaces and a parenthesis; both go.
        let mut tree = std::process::Command::new("/bin/sh")
            .args([
                "-c",
                "cp /bin/sleep '/tmp/berth sl) eep' 2>/dev/null; ('/tmp/berth sl) eep' 300 || sleep 300) & sleep 300",
            ])
            .spawn()
            .unwrap();
        let root = tree.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut doomed = descendants(root);
        while doomed.len() < 2 {
            assert!(Instant::now() < deadline, "the tree did not start");
            std::thread::sleep(Duration::from_millis(10));
            doomed = descendants(root);
        }
        let killed = std::process::Command::new("/bin/sh").args(&kill_argv(root)[1..]).status().unwrap();
        assert!(killed.success());
        assert!(!tree.wait().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(alive) = doomed.iter().find(|pid| is_alive(**pid)) {
            assert!(Instant::now() < deadline, "process {alive} survived");
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_file("/tmp/berth sl) eep");
    }

    /// Whether `pid` exists and is not a zombie.
    fn is_alive(pid: u32) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rfind(')').is_some_and(|i| !stat[i + 1..].trim_start().starts_with('Z'))
    }

    /// Live (not zombie) processes whose parent is `root`, or their children.
    fn descendants(root: u32) -> Vec<u32> {
        let mut parents = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields[0] != "Z" {
                parents.push((pid, fields[1].parse::<u32>().unwrap_or(0)));
            }
        }
        let mut found = vec![root];
        let mut index = 0;
        while index < found.len() {
            let parent = found[index];
            found.extend(parents.iter().filter(|(_, p)| *p == parent).map(|(c, _)| *c));
            index += 1;
        }
        found.retain(|p| *p != root);
        found
    }
}
