//! `berth self-upgrade <new binary>` (VIC appliance design, "Appliance
//! Upgrade"): checks that the new binary runs and that its version is an
//! allowed upgrade (not older, and a state schema it can read), stops the
//! daemon cleanly, puts the new binary in place (the old one kept beside it
//! as `<binary>.old`), starts the daemon again the way it ran (its unit
//! where systemd runs it, else its own command line), and waits until it
//! answers ready with the new version. If it does not, the old binary is
//! put back and the old daemon started again. Run again after it ended,
//! it finds the binary in place and only checks the daemon's health.

use crate::exit::Failure;
use crate::say;
use berth_api::client::Client;
use berth_core::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the new daemon gets to answer ready.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

fn failed(kind: ErrorKind, message: String) -> Failure {
    Failure::Client(berth_api::client::ClientError::Api(berth_api::ApiError::new(kind, message)))
}

/// `(version, schema)` the binary reports of itself.
fn version_of(binary: &Path) -> Result<(String, i64), Failure> {
    let mut command = Command::new(binary);
    command
        .args(["version", "--output", "json"])
        .env("BERTH_SOCKET", "/nonexistent/berth.sock")
        .env_remove("BERTH_HOST")
        .stdin(Stdio::null());
    // A binary that was just written may be busy for an instant (ETXTBSY)
    // while another process still holds it open for writing.
    let deadline = Instant::now() + Duration::from_secs(5);
    let out = loop {
        match command.output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => break other,
        }
    }
    .map_err(|e| Failure::BadSource(format!("the new binary {} does not run: {e}", binary.display())))?;
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        Failure::BadSource(format!(
            "the new binary {} does not say its version (is it a berth binary?): {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    })?;
    let version = value["version"].as_str().map(str::to_owned);
    let schema = value["schema"].as_i64();
    match (version, schema) {
        (Some(v), Some(s)) => Ok((v, s)),
        _ => Err(Failure::BadSource(format!("the new binary {} gives no version and schema", binary.display()))),
    }
}

fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let core = text.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

fn same_content(a: &Path, b: &Path) -> bool {
    matches!((std::fs::read(a), std::fs::read(b)), (Ok(x), Ok(y)) if x == y)
}

/// The daemon's command line and whether systemd runs it (its cgroup is berth.service's).
fn how_it_runs(pid: u32) -> (Vec<String>, bool) {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args =
        cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    (args, cgroup.contains(&format!("/{}", berth_core::units::DAEMON_SERVICE)))
}

fn stop(pid: u32) -> Result<(), Failure> {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Path::new(&format!("/proc/{pid}")).exists() {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if state.split_whitespace().nth(2) == Some("Z") {
            break;
        }
        if Instant::now() > deadline {
            return Err(failed(
                ErrorKind::Internal,
                format!("the daemon (pid {pid}) did not stop within {}s", STOP_TIMEOUT.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Starts the daemon; returns the process started (none where systemd starts it).
fn start(binary: &Path, args: &[String], systemd: bool) -> Result<Option<u32>, Failure> {
    if systemd {
        let status = Command::new("systemctl").args(["start", berth_core::units::DAEMON_SERVICE]).status();
        return match status {
            Ok(s) if s.success() => Ok(None),
            other => Err(failed(
                ErrorKind::Internal,
                format!("systemctl start {} failed: {other:?}", berth_core::units::DAEMON_SERVICE),
            )),
        };
    }
    use std::os::unix::process::CommandExt;
    // Its own session: it must outlive this command.
    Command::new(binary)
        .args(args.iter().skip(1))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map(|child| Some(child.id()))
        .map_err(|e| failed(ErrorKind::Internal, format!("cannot start {}: {e}", binary.display())))
}

async fn healthy(client: &Client, version: &str, old_pid: u32) -> Result<u32, String> {
    let deadline = Instant::now() + HEALTH_TIMEOUT.min(timeout_override());
    let mut last = String::from("it did not answer");
    while Instant::now() < deadline {
        match client.info().await {
            Ok(info) if info.ready && info.version == version && info.pid != old_pid => return Ok(info.pid),
            Ok(info) => last = format!("it answers as berth {} (ready: {})", info.version, info.ready),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last)
}

/// Tests shorten the health wait (`BERTH_SELF_UPGRADE_TIMEOUT_SECS`).
fn timeout_override() -> Duration {
    std::env::var("BERTH_SELF_UPGRADE_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(HEALTH_TIMEOUT, Duration::from_secs)
}

pub async fn run(client: &Client, new: &Path) -> Result<(), Failure> {
    let new = std::fs::canonicalize(new).map_err(|e| Failure::BadSource(format!("{}: {e}", new.display())))?;
    let (new_version, new_schema) = version_of(&new)?;
    let current = (berth_daemon::version::VERSION, berth_daemon::version::SCHEMA);
    let older = parse_version(&new_version) < parse_version(current.0) || parse_version(&new_version).is_none();
    if older || new_schema < current.1 {
        return Err(failed(
            ErrorKind::Conflict,
            format!(
                "{} is berth {new_version} (state schema {new_schema}); an upgrade from {} (schema {}) must not go back",
                new.display(),
                current.0,
                current.1
            ),
        ));
    }
    let target: PathBuf = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| failed(ErrorKind::Internal, format!("cannot find this binary: {e}")))?;
    let info = client.info().await.ok();
    let old_pid = info.as_ref().map_or(0, |i| i.pid);
    let (args, systemd) = if old_pid > 0 { how_it_runs(old_pid) } else { (Vec::new(), false) };
    let daemon_binary = args.first().map(PathBuf::from).and_then(|p| std::fs::canonicalize(p).ok());
    if same_content(&new, &target) && info.as_ref().is_some_and(|i| i.version == new_version) {
        return say(&format!("berth {new_version} is in place and its daemon answers; nothing to do"));
    }
    if old_pid > 0 && daemon_binary.as_deref() != Some(target.as_path()) && !systemd {
        return Err(failed(
            ErrorKind::Conflict,
            format!("the daemon (pid {old_pid}) runs another binary than {}; upgrade that one", target.display()),
        ));
    }
    say(&format!("upgrading {} from berth {} to {new_version}", target.display(), current.0))?;
    let old_copy = PathBuf::from(format!("{}.old", target.display()));
    let staged = PathBuf::from(format!("{}.new", target.display()));
    std::fs::copy(&new, &staged)
        .map_err(|e| failed(ErrorKind::Internal, format!("cannot stage the new binary: {e}")))?;
    if old_pid > 0 {
        say(&format!("stopping the daemon (pid {old_pid})"))?;
        stop(old_pid)?;
    }
    let swap = (|| {
        std::fs::copy(&target, &old_copy)?;
        std::fs::rename(&staged, &target)
    })();
    if let Err(e) = swap {
        let _ = start(&target, &args, systemd);
        return Err(failed(
            ErrorKind::Internal,
            format!("cannot put the new binary in place ({e}); the old one stays"),
        ));
    }
    if old_pid == 0 {
        return say(&format!("{} is berth {new_version}; no daemon was running", target.display()));
    }
    let started = start(&target, &args, systemd)?;
    match healthy(client, &new_version, old_pid).await {
        Ok(pid) => say(&format!(
            "the daemon runs berth {new_version} (pid {pid}); the old binary is kept as {}",
            old_copy.display()
        )),
        Err(why) => {
            say(&format!("the new daemon did not become healthy ({why}); putting berth {} back", current.0))?;
            // The new daemon, whether it answers or not.
            if let Some(pid) = started.or(client.info().await.ok().map(|i| i.pid)) {
                let _ = stop(pid);
            }
            std::fs::rename(&old_copy, &target)
                .map_err(|e| failed(ErrorKind::Internal, format!("cannot put the old binary back: {e}")))?;
            start(&target, &args, systemd)?;
            let back = healthy(client, current.0, 0).await.is_ok();
            Err(Failure::Migration(format!(
                "the upgrade to berth {new_version} failed: {why}; the old binary is back and its daemon {}",
                if back { "runs again" } else { "did not answer either: look at its log" }
            )))
        }
    }
}
