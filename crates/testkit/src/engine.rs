//! A private Docker Engine for tests that must stop, restart or replace the
//! engine (which the shared one must never be): its own data root, exec root
//! and socket, and its own network namespace — a second dockerd in the host's
//! namespace would tear down the shared engine's `docker0` bridge.

use crate::http::{request, Response};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct PrivateEngine {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateEngine {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("berth-engine-").tempdir().expect("temp dir");
        let mut engine = PrivateEngine { dir, child: None };
        engine.launch();
        engine
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// The endpoint for `berth daemon --docker-host`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// (Re)starts dockerd on the same data root and waits until it answers.
    pub fn launch(&mut self) {
        let d = self.dir.path();
        let log = std::fs::File::options().create(true).append(true).open(d.join("dockerd.log")).expect("log");
        let child = Command::new("unshare")
            .args(["--net", "--", "dockerd"])
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .arg("--host")
            .arg(self.host())
            .args(["--bridge", "none", "--iptables=false", "--ip-masq=false"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn unshare dockerd (are util-linux and docker.io installed?)");
        self.child = Some(child);
        let answered =
            crate::harness::poll(Duration::from_secs(60), || (self.get("/_ping")?.status == 200).then_some(()));
        assert!(answered.is_some(), "private dockerd did not answer; log in {}", d.display());
    }

    /// Stops dockerd the way a shutdown does (SIGTERM: it stops its containers).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let _ = child.wait();
        }
    }

    pub fn get(&self, path: &str) -> Option<Response> {
        request(&self.socket(), "GET", &format!("/v1.41{path}"), "application/json", b"").ok()
    }

    pub fn inspect(&self, container: &str) -> Option<serde_json::Value> {
        self.get(&format!("/containers/{container}/json")).filter(|r| r.status == 200).map(|r| r.json())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        self.stop();
    }
}
