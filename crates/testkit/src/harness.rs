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
        let dir = tempfile::Builder::new().prefix("berth-test-").tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("root")).expect("root dir");
        std::fs::write(dir.path().join("root/berth.toml"), settings).expect("settings");
        let socket = dir.path().join("berth.sock");
        let mut daemon = TestDaemon {
            bin: bin.to_owned(),
            dir,
            socket,
            child: None,
            instance: String::new(),
            images: Vec::new(),
            docker_host: docker_host.map(str::to_owned),
        };
        daemon.launch(env);
        daemon
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
        for (k, v) in env {
            command.env(k, v);
        }
        self.child = Some(command.spawn().expect("spawn berth daemon"));
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
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
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

    /// Runs the CLI in the working directory `cwd`.
    pub fn berth_in(&self, cwd: &Path, args: &[&str]) -> Run {
        self.run(Command::new(&self.bin).args(args).current_dir(cwd))
    }

    fn run(&self, command: &mut Command) -> Run {
        command.env("BERTH_SOCKET", &self.socket).stdin(Stdio::null()).output().expect("run berth").into()
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
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = probe(self) {
                return value;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default();
                panic!("timed out waiting for {what}; daemon log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
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
        }
        for image in &self.images {
            docker("DELETE", &format!("/images/{image}?force=1"), None);
        }
    }
}
