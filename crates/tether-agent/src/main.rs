//! berth-tether: started once per container start by one engine exec, as
//! root, from a read-only mount. It listens on a unix socket in a directory
//! only root can reach (on the host and in the container), and runs each
//! command it is sent as the engine's exec would run it: see the library.
//!
//! `berth-tether serve SOCKET [--container-home]`: `--container-home` says
//! that the container's environment sets `HOME` itself (else the runtime
//! set it for the agent, and a command's `HOME` comes from its user).

// Dropping to a user with its supplementary groups needs setgroups between
// fork and exec, and a command is killed by signals: libc calls, each
// commented. The protocol and the rules live in the (safe) library.
#![allow(unsafe_code)]

use berth_tether_agent::protocol::{self, Command, Exit};
use berth_tether_agent::{env, user, LOCK_FILE, READY_LINE};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// How much a pipe read takes at once.
const CHUNK: usize = 64 << 10;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (socket, container_home) = match args.as_slice() {
        [_, serve, socket] if serve == "serve" => (socket.clone(), false),
        [_, serve, socket, flag] if serve == "serve" && flag == "--container-home" => (socket.clone(), true),
        _ => {
            eprintln!("usage: berth-tether serve SOCKET [--container-home]");
            std::process::exit(2);
        }
    };
    let listener = match listen(Path::new(&socket)) {
        Ok(Some(listener)) => listener,
        // Another agent serves this container already.
        Ok(None) => {
            println!("{READY_LINE}");
            return;
        }
        Err(e) => {
            eprintln!("berth-tether: {socket}: {e}");
            std::process::exit(1);
        }
    };
    println!("{READY_LINE}");
    let _ = io::stdout().flush();
    // The exec that started the agent ends its output here; the agent lives on.
    detach_stdio();
    let base: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect();
    let base = Arc::new(base);
    for connection in listener.incoming() {
        let Ok(connection) = connection else { continue };
        let base = Arc::clone(&base);
        thread::spawn(move || serve(connection, &base, container_home));
    }
}

/// Binds the socket unless a live agent has it; one agent at a time
/// decides, under a lock beside the socket.
fn listen(socket: &Path) -> io::Result<Option<UnixListener>> {
    let lock_path = socket.with_file_name(LOCK_FILE);
    let lock = File::options().create(true).truncate(false).write(true).open(&lock_path)?;
    // SAFETY: flock on a descriptor this function owns; released when `lock` drops.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if UnixStream::connect(socket).is_ok() {
        return Ok(None);
    }
    match std::fs::remove_file(socket) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(socket)?;
    std::fs::set_permissions(socket, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(Some(listener))
}

fn detach_stdio() {
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which stay open.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

type Writer = Arc<Mutex<UnixStream>>;

fn send(writer: &Writer, tag: u8, payload: &[u8]) -> io::Result<()> {
    let mut stream = writer.lock().unwrap_or_else(|e| e.into_inner());
    protocol::write_frame(&mut *stream, tag, payload)
}

/// One connection, one command.
fn serve(connection: UnixStream, base: &[(String, String)], container_home: bool) {
    let Ok(mut reader) = connection.try_clone() else { return };
    let writer: Writer = Arc::new(Mutex::new(connection));
    let command = match protocol::read_frame(&mut reader) {
        Ok(Some((protocol::REQUEST, payload))) => Command::decode(&payload),
        Ok(Some((tag, _))) => Err(format!("expected a request, got frame {tag}")),
        Ok(None) => return,
        Err(e) => Err(e.to_string()),
    };
    let child = command.and_then(|command| spawn(&command, base, container_home));
    let mut child = match child {
        Ok(child) => child,
        Err(reason) => {
            let _ = send(&writer, protocol::REFUSED, reason.as_bytes());
            return;
        }
    };
    let pid = child.id();
    if send(&writer, protocol::STARTED, &pid.to_be_bytes()).is_err() {
        kill_tree(pid);
    }
    let pumps: Vec<_> = [
        child.stdout.take().map(|out| pump(out, protocol::STDOUT, Arc::clone(&writer))),
        child.stderr.take().map(|err| pump(err, protocol::STDERR, Arc::clone(&writer))),
    ]
    .into_iter()
    .flatten()
    .collect();
    let command = Arc::new(Running { reaped: Mutex::new(false), killed: AtomicBool::new(false), pid });
    let stdin = child.stdin.take();
    {
        let command = Arc::clone(&command);
        thread::spawn(move || control(reader, stdin, &command));
    }
    wait_exited(pid);
    for pump in pumps {
        let _ = pump.join();
    }
    let status = {
        let mut reaped = command.reaped.lock().unwrap_or_else(|e| e.into_inner());
        *reaped = true;
        child.wait()
    };
    let code = match status {
        Ok(status) => status.code().map_or_else(|| 128 + i64::from(status.signal().unwrap_or(0)), i64::from),
        Err(_) => -1,
    };
    let exit = Exit { code, killed: command.killed.load(Ordering::SeqCst) };
    let _ = send(&writer, protocol::EXIT, &exit.encode());
}

/// A command that runs, as its control thread sees it.
struct Running {
    /// Set, under the lock, just before the command is reaped: until then
    /// its pid cannot be anyone else's, and it may be killed.
    reaped: Mutex<bool>,
    killed: AtomicBool,
    pid: u32,
}

/// Feeds stdin and waits for a kill, or for berth to go away (which is one).
fn control(mut reader: UnixStream, mut stdin: Option<std::process::ChildStdin>, command: &Running) {
    loop {
        match protocol::read_frame(&mut reader) {
            Ok(Some((protocol::STDIN, bytes))) => {
                // A command that does not read its stdin may have exited: not an error.
                if let Some(input) = stdin.as_mut() {
                    if input.write_all(&bytes).is_err() {
                        stdin = None;
                    }
                }
            }
            Ok(Some((protocol::STDIN_END, _))) => stdin = None,
            Ok(Some((protocol::KILL, _))) | Ok(None) | Err(_) => break,
            Ok(Some(_)) => break,
        }
    }
    drop(stdin);
    let reaped = command.reaped.lock().unwrap_or_else(|e| e.into_inner());
    if !*reaped {
        command.killed.store(true, Ordering::SeqCst);
        kill_tree(command.pid);
    }
}

fn pump(mut from: impl Read + Send + 'static, tag: u8, writer: Writer) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buffer = vec![0u8; CHUNK];
        let mut connected = true;
        loop {
            match from.read(&mut buffer) {
                Ok(0) => break,
                // Read on after berth is gone, so that the command never blocks on a full pipe.
                Ok(n) if connected => connected = send(&writer, tag, &buffer[..n]).is_ok(),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    })
}

fn spawn(command: &Command, base: &[(String, String)], container_home: bool) -> Result<Child, String> {
    let Some(program) = command.argv.first() else { return Err("no command to run".into()) };
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let identity = user::resolve(&command.user, &read("/etc/passwd"), &read("/etc/group"))?;
    let mut process = std::process::Command::new(program);
    process
        .args(&command.argv[1..])
        .env_clear()
        .envs(env::command_env(base, container_home, &command.env, &identity.home))
        .current_dir(if command.workdir.is_empty() { "/" } else { &command.workdir })
        .stdin(if command.stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let groups: Vec<libc::gid_t> = identity.groups.clone();
    let (uid, gid) = (identity.uid, identity.gid);
    // SAFETY: between fork and exec only async-signal-safe calls are made
    // (setgroups, setgid, setuid), on data prepared before the fork.
    unsafe {
        process.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    process.spawn().map_err(|e| format!("{program}: {e}"))
}

/// Waits until `pid` has exited, leaving it to be reaped.
fn wait_exited(pid: u32) {
    loop {
        // SAFETY: waitid writes into the zeroed siginfo it is given; WNOWAIT leaves the child unreaped.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let done = unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if done == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// SIGKILLs `pid`, its process group and every process descended from it.
/// The tree is frozen (SIGSTOP) while it is walked, so that nothing forks
/// away from it, and killed once complete.
fn kill_tree(pid: u32) {
    let signal = |pid: u32, signal: i32| {
        // SAFETY: kill takes plain integers.
        unsafe { libc::kill(pid as libc::pid_t, signal) };
    };
    let mut tree = vec![pid];
    signal(pid, libc::SIGSTOP);
    loop {
        let mut grown = false;
        for (child, parent) in processes() {
            if tree.contains(&parent) && !tree.contains(&child) {
                tree.push(child);
                signal(child, libc::SIGSTOP);
                grown = true;
            }
        }
        if !grown {
            break;
        }
    }
    // SAFETY: a negative pid signals the process group the command leads.
    unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
    for pid in tree {
        signal(pid, libc::SIGKILL);
    }
}

/// `(pid, parent pid)` of every process in the container. The parent
/// follows the state after the *last* `)` of `/proc/<pid>/stat`: the
/// command name may hold spaces and parentheses.
fn processes() -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return vec![] };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let after = &stat[stat.rfind(')')? + 1..];
            let parent = after.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, parent))
        })
        .collect()
}
