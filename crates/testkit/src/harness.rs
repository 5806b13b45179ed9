//! A berth daemon for one integration test: its own root, socket and
//! instance label, against the real engine. Everything it leaves in the
//! engine (containers of its instance, images the test built) is swept when
//! it is dropped, so tests run in parallel and clean up even when they fail.

use crate::http::{self, docker, encode, Response};
use crate::image::{ImageArchive, ImageBuilder};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Settings that keep tests quick: a short start check and fast backoff.
pub const TEST_SETTINGS: &str =
    "start_check_ms = 400\nstop_timeout_secs = 3\nprobation_secs = 1\nhook_timeout_secs = 5\n\
[restart]\ninitial_backoff_ms = 200\nmax_backoff_ms = 1000\nmax_crashes = 3\nstable_after_secs = 30\n";

/// Test daemons run side by side: unless a test configures the resource
/// manager itself, none opens the default TCP listener.
fn quiet_listener(settings: &str) -> String {
    if settings.contains("[resource]") {
        settings.to_owned()
    } else {
        format!("{settings}\n[resource]\nlisten = \"\"\n")
    }
}

/// A name no other test (or test process) uses: `<prefix>-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

pub struct TestDaemon {
    bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    child: Option<Child>,
    pub instance: String,
    images: Vec<String>,
    docker_host: Option<String>,
    /// More arguments of `berth daemon` (e.g. `--listen`).
    daemon_args: Vec<String>,
    /// The root is a tmpfs of its own (unmounted when the daemon is dropped).
    tmpfs_root: bool,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

impl TestDaemon {
    pub fn start(bin: &Path) -> Self {
        Self::start_with(bin, TEST_SETTINGS, &[], None)
    }

    /// Starts a daemon with `settings` as its berth.toml, extra environment
    /// and optionally another engine endpoint.
    pub fn start_with(bin: &Path, settings: &str, env: &[(&str, &str)], docker_host: Option<&str>) -> Self {
        let mut daemon = Self::prepare(bin, docker_host, None);
        std::fs::write(daemon.root().join("berth.toml"), quiet_listener(settings)).expect("settings");
        daemon.launch(env);
        daemon
    }

    /// Starts a daemon with more arguments of `berth daemon` (kept for relaunches).
    pub fn start_with_args(bin: &Path, settings: &str, args: &[&str]) -> Self {
        let mut daemon = Self::prepare(bin, None, None);
        daemon.daemon_args = args.iter().map(|a| a.to_string()).collect();
        std::fs::write(daemon.root().join("berth.toml"), quiet_listener(settings)).expect("settings");
        daemon.launch(&[]);
        daemon
    }

    /// Starts a daemon whose root (state, private directories, snapshots) is
    /// a tmpfs of `bytes`: a small disk that a test can fill.
    pub fn start_on_small_disk(bin: &Path, settings: &str, bytes: u64) -> Self {
        let mut daemon = Self::prepare(bin, None, Some(bytes));
        std::fs::write(daemon.root().join("berth.toml"), quiet_listener(settings)).expect("settings");
        daemon.launch(&[]);
        daemon
    }

    fn prepare(bin: &Path, docker_host: Option<&str>, tmpfs_bytes: Option<u64>) -> Self {
        let dir = tempfile::Builder::new().prefix("berth-test-").tempdir().expect("temp dir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).expect("root dir");
        if let Some(bytes) = tmpfs_bytes {
            let status = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0755"), "berth-test-root"])
                .arg(&root)
                .status()
                .expect("mount (util-linux)");
            assert!(status.success(), "mounting a tmpfs at {}", root.display());
        }
        let socket = dir.path().join("berth.sock");
        TestDaemon {
            bin: bin.to_owned(),
            dir,
            socket,
            child: None,
            instance: String::new(),
            images: Vec::new(),
            docker_host: docker_host.map(str::to_owned),
            daemon_args: Vec::new(),
            tmpfs_root: tmpfs_bytes.is_some(),
        }
    }

    /// Points the next `launch` at another engine (a replaced host OS).
    pub fn set_docker_host(&mut self, host: &str) {
        self.docker_host = Some(host.to_owned());
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Where this daemon writes systemd units (never the system's).
    pub fn unit_dir(&self) -> PathBuf {
        self.dir.path().join("units")
    }

    pub fn private_dir(&self, app: &str) -> PathBuf {
        self.root().join("tpc").join(app)
    }

    /// (Re)starts the daemon process on the same root and waits until it
    /// answers (and, with a reachable engine, has recovered).
    pub fn launch(&mut self, env: &[(&str, &str)]) {
        let mut command = Command::new(&self.bin);
        command
            .arg("daemon")
            .arg("--root")
            .arg(self.root())
            .arg("--socket")
            .arg(&self.socket)
            .arg("--unit-dir")
            .arg(self.unit_dir())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("daemon.log"))
                    .map_or_else(|_| Stdio::null(), Stdio::from),
            );
        if let Some(host) = &self.docker_host {
            command.arg("--docker-host").arg(host);
        }
        command.args(&self.daemon_args);
        for (k, v) in env {
            command.env(k, v);
        }
        self.child = Some(retry_busy(|| command.spawn()).expect("spawn berth daemon"));
        // Against an engine that cannot exist, "answering" is all there is to wait for.
        let ready_needed =
            self.docker_host.as_deref().is_none_or(|h| Path::new(h.trim_start_matches("unix://")).exists());
        let info = self.wait_for("the daemon to answer", Duration::from_secs(30), |d| {
            let info = d.api("GET", "/v1/info", None).ok().filter(|r| r.status == 200)?.json();
            (!ready_needed || info["ready"] == true).then_some(info)
        });
        self.instance = info["instance"].as_str().unwrap_or_default().to_owned();
    }

    /// `kill -9` of the daemon, waiting until it is gone.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the daemon to die by itself (a crash point) and reports how.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let status = wait_child(self.child.as_mut()?, timeout)?;
        self.child = None;
        Some(status)
    }

    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the daemon logged so far (every launch).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// SIGTERM, as systemd stops it.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let _ = child.wait();
        }
    }

    /// Runs the CLI against this daemon.
    pub fn berth(&self, args: &[&str]) -> Run {
        self.berth_as(&self.bin, args)
    }

    /// Runs the CLI through another path to the binary (the `tpcm` symlink).
    pub fn berth_as(&self, program: &Path, args: &[&str]) -> Run {
        self.run(Command::new(program).args(args))
    }

    /// Runs the CLI with extra environment (e.g. another `HOME`).
    pub fn berth_env(&self, env: &[(&str, &Path)], args: &[&str]) -> Run {
        let mut command = Command::new(&self.bin);
        command.args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        self.run(&mut command)
    }

    /// Runs the CLI with `input` on its stdin (a password for `--password-stdin`).
    pub fn berth_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        use std::io::Write as _;
        let mut child = Command::new(&self.bin)
            .args(args)
            .env("BERTH_SOCKET", &self.socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        child.stdin.take().expect("stdin").write_all(input).expect("write stdin");
        child.wait_with_output().expect("run berth").into()
    }

    /// Runs the CLI in the working directory `cwd`.
    pub fn berth_in(&self, cwd: &Path, args: &[&str]) -> Run {
        self.run(Command::new(&self.bin).args(args).current_dir(cwd))
    }

    fn run(&self, command: &mut Command) -> Run {
        command.env("BERTH_SOCKET", &self.socket).stdin(Stdio::null());
        retry_busy(|| command.output()).expect("run berth").into()
    }

    /// Starts the CLI without waiting for it (stdout and stderr piped), with
    /// extra environment: for a test that acts while it runs.
    pub fn berth_spawn(&self, env: &[(&str, &Path)], args: &[&str]) -> Child {
        let mut command = Command::new(&self.bin);
        command.args(args).env("BERTH_SOCKET", &self.socket);
        for (key, value) in env {
            command.env(key, value);
        }
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn berth")
    }

    /// A raw request to the daemon's API.
    pub fn api(&self, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<Response> {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default()).unwrap_or_default();
        http::request(&self.socket, method, path, "application/json", &bytes)
    }

    pub fn list(&self) -> Vec<Value> {
        let response = self.api("GET", "/v1/apps", None).expect("GET /v1/apps");
        assert_eq!(response.status, 200, "{}", response.text());
        response.json().as_array().cloned().unwrap_or_default()
    }

    pub fn app(&self, name: &str) -> Option<Value> {
        self.list().into_iter().find(|a| a["name"] == name)
    }

    /// Polls `probe` until it gives a value; panics with `what` after `timeout`.
    pub fn wait_for<T>(&self, what: &str, timeout: Duration, mut probe: impl FnMut(&Self) -> Option<T>) -> T {
        poll(timeout, || probe(self))
            .unwrap_or_else(|| panic!("timed out waiting for {what}; daemon log:\n{}", self.log()))
    }

    /// Waits until the app is in `state` and returns its view.
    pub fn wait_state(&self, app: &str, state: &str, timeout: Duration) -> Value {
        self.wait_for(&format!("{app} to be {state}"), timeout, |d| d.app(app).filter(|a| a["state"] == state))
    }

    /// This daemon's containers, as the engine lists them.
    pub fn containers(&self) -> Vec<Value> {
        let filters = format!(r#"{{"label":["berth.instance={}"]}}"#, self.instance);
        let response = docker("GET", &format!("/containers/json?all=1&filters={}", encode(&filters)), None);
        response.json().as_array().cloned().unwrap_or_default()
    }

    /// Builds an image archive in the test's directory; the image is removed
    /// from the engine when the daemon is dropped.
    pub fn archive(&mut self, builder: &ImageBuilder, gzip: bool) -> ImageArchive {
        let name = unique("img");
        let path = self.dir.path().join(if gzip { format!("{name}.tar.gz") } else { format!("{name}.tar") });
        let archive = if gzip { builder.write_tar_gz(&path) } else { builder.write_tar(&path) }.expect("write archive");
        self.images.push(archive.image_id.clone());
        archive
    }

    /// Registers an image id for removal at the end of the test.
    pub fn sweep_image(&mut self, id: &str) {
        self.images.push(id.to_owned());
    }
}

/// Whether the engine has `image` (an id or a reference).
pub fn image_exists(image: &str) -> bool {
    docker("GET", &format!("/images/{image}/json"), None).status == 200
}

/// The engine's view of a container.
pub fn inspect(container: &str) -> Option<Value> {
    let response = docker("GET", &format!("/containers/{container}/json"), None);
    (response.status == 200).then(|| response.json())
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.kill9();
        if !self.instance.is_empty() {
            for container in self.containers() {
                if let Some(id) = container["Id"].as_str() {
                    docker("DELETE", &format!("/containers/{id}?force=1&v=1"), None);
                }
            }
            // Networks and images berth made for this instance's resources.
            let filters = format!(r#"{{"label":["berth.instance={}"]}}"#, self.instance);
            for network in docker("GET", &format!("/networks?filters={}", encode(&filters)), None)
                .json()
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(id) = network["Id"].as_str() {
                    docker("DELETE", &format!("/networks/{id}"), None);
                }
            }
            for image in docker("GET", &format!("/images/json?filters={}", encode(&filters)), None)
                .json()
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(id) = image["Id"].as_str() {
                    docker("DELETE", &format!("/images/{id}?force=1"), None);
                }
            }
            // Named volumes berth made for this instance's apps.
            let filters = format!(r#"{{"label":["berth.instance={}"]}}"#, self.instance);
            let volumes = docker("GET", &format!("/volumes?filters={}", encode(&filters)), None).json();
            for volume in volumes["Volumes"].as_array().into_iter().flatten() {
                if let Some(name) = volume["Name"].as_str() {
                    docker("DELETE", &format!("/volumes/{name}"), None);
                }
            }
        }
        for image in &self.images {
            docker("DELETE", &format!("/images/{image}?force=1"), None);
        }
        if self.tmpfs_root {
            // Lazily: a container that bound a directory of it may still be going away.
            let _ = Command::new("umount").arg("-l").arg(self.root()).status();
        }
    }
}

/// Runs `start` again while the kernel says the program is busy (ETXTBSY): a
/// binary a test has just copied may still be open for writing in a child
/// another test thread forked and has not exec'd yet. The window is that short.
pub fn retry_busy<T>(mut start: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match start() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && Instant::now() < deadline => {
                std::thread::yield_now();
            }
            other => return other,
        }
    }
}

/// Polls `probe` (every 50 ms) until it gives a value, or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for `child` to exit by itself; `None` if it still runs after `timeout`.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    poll(timeout, || child.try_wait().ok().flatten())
}

/// Waits for `child` to exit; kills it and panics (naming `what`) after `timeout`.
pub fn finish(mut child: Child, what: &str, timeout: Duration) -> Run {
    if wait_child(&mut child, timeout).is_none() {
        let _ = child.kill();
        let output = child.wait_with_output().map(Run::from);
        panic!("{what} did not exit within {timeout:?}: {output:?}");
    }
    child.wait_with_output().expect("collect output").into()
}

/// Runs `check` for every item, at most `limit` at a time, each on its own
/// thread (every item has its own daemon: they are independent), and panics
/// naming every item whose check panicked.
pub fn for_each_concurrently<T: Sync + std::fmt::Debug>(items: &[T], limit: usize, check: impl Fn(&T) + Sync) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..limit.max(1) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(index) else { break };
                if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(item))) {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    failures.lock().unwrap_or_else(|e| e.into_inner()).push(format!("{item:?}: {message}"));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    assert!(failures.is_empty(), "{} of {} failed:\n{}", failures.len(), items.len(), failures.join("\n\n"));
}

/// The engine's events from `since` (seconds since the epoch, as
/// [`engine_clock`] gives it) until now, oldest first; `filters` as the
/// Engine API takes them (`{"type":["container"],"label":["k=v"]}`).
pub fn engine_events(since: f64, filters: &Value) -> Vec<Value> {
    let until = engine_clock();
    let path = format!("/events?since={since:.9}&until={until:.9}&filters={}", encode(&filters.to_string()));
    let response = docker("GET", &path, None);
    assert_eq!(response.status, 200, "{}", response.text());
    let text = response.text();
    text.lines().filter(|l| !l.trim().is_empty()).filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Now, as the engine's event timestamps count it (the host's clock).
pub fn engine_clock() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

/// A loopback TCP port on which nothing listens, and nothing can start to
/// while this lives: it is the local port of a connection this holds open
/// (to a listener of its own), so a connect to it is refused, and the port
/// cannot be handed out to a listener meanwhile.
pub struct RefusedPort {
    _listener: std::net::TcpListener,
    _held: std::net::TcpStream,
    port: u16,
}

impl RefusedPort {
    pub fn new() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let held = std::net::TcpStream::connect(listener.local_addr().expect("address")).expect("connect loopback");
        let port = held.local_addr().expect("local address").port();
        RefusedPort { _listener: listener, _held: held, port }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Default for RefusedPort {
    fn default() -> Self {
        Self::new()
    }
}

/// One row of `/proc/net/tcp` or `tcp6`: local port, remote port, state, socket inode.
struct TcpRow {
    local_port: u16,
    remote_port: u16,
    state: u8,
    inode: u64,
}

fn tcp_rows() -> Vec<TcpRow> {
    let mut rows = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = |field: &str| field.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            let (Some(local), Some(remote), Some(state), Some(inode)) = (
                fields.get(1).and_then(|f| port(f)),
                fields.get(2).and_then(|f| port(f)),
                fields.get(3).and_then(|s| u8::from_str_radix(s, 16).ok()),
                fields.get(9).and_then(|i| i.parse().ok()),
            ) else {
                continue;
            };
            rows.push(TcpRow { local_port: local, remote_port: remote, state, inode });
        }
    }
    rows
}

/// The socket inodes the process `pid` holds open.
fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    fds.filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|link| {
            let text = link.to_string_lossy().into_owned();
            text.strip_prefix("socket:[").and_then(|rest| rest.strip_suffix(']')).and_then(|n| n.parse().ok())
        })
        .collect()
}

const TCP_ESTABLISHED: u8 = 0x01;
const TCP_LISTEN: u8 = 0x0A;

/// The TCP ports the process `pid` listens on (a server told to bind port 0
/// says so here, so no port is picked, released and hoped for).
pub fn listening_ports(pid: u32) -> Vec<u16> {
    let inodes = socket_inodes(pid);
    tcp_rows()
        .into_iter()
        .filter(|r| r.state == TCP_LISTEN && inodes.contains(&r.inode))
        .map(|r| r.local_port)
        .collect()
}

/// The process on this host that holds the client end of `stream` (an
/// accepted loopback connection): who connected.
pub fn peer_process(stream: &std::net::TcpStream) -> Option<u32> {
    let (peer, local) = (stream.peer_addr().ok()?, stream.local_addr().ok()?);
    let inode = tcp_rows()
        .into_iter()
        .find(|r| r.state == TCP_ESTABLISHED && r.local_port == peer.port() && r.remote_port == local.port())?
        .inode;
    let processes = std::fs::read_dir("/proc").ok()?;
    processes
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .find(|pid| socket_inodes(*pid).contains(&inode))
}

/// The lines a child process writes, read on a thread of their own so that
/// a test can wait for a marker line with a deadline (and the pipe never
/// fills up meanwhile).
pub struct Lines {
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    pub fn new(output: impl std::io::Read + Send + 'static) -> Self {
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(output).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { lines, seen: Vec::new() }
    }

    /// Every line read so far, in order.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// Waits for a line containing `needle` and returns it; panics after `timeout`.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!("no line with {needle:?} within {timeout:?} ({e}); lines so far: {:?}", self.seen),
            }
        }
    }
}
