//! A container host's record, `<root>/hosts/<name>/host.json`, written
//! atomically beside the host's own root. The record is the host's
//! existence: `host ls` lists the records, the delete's last step removes
//! the directory and the record with it.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Who keeps the host's daemon running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Supervisor {
    /// Its own unit, `berth-host-<name>.service` (systemd is PID 1).
    Systemd,
    /// A child process of this daemon, restarted when it exits.
    Process,
}

impl Supervisor {
    pub fn as_str(self) -> &'static str {
        match self {
            Supervisor::Systemd => "systemd",
            Supervisor::Process => "process",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRecord {
    pub name: String,
    /// `None`: this daemon's engine.
    pub engine: Option<String>,
    pub listen: Option<SocketAddr>,
    pub cpus: Option<f64>,
    pub memory: Option<String>,
    /// The `berth.instance` label of everything the host makes.
    pub instance: String,
    pub created_at: i64,
    pub supervisor: Supervisor,
}

/// Where a host's files are: all of them under one directory.
#[derive(Debug, Clone)]
pub struct HostPaths {
    pub dir: PathBuf,
}

impl HostPaths {
    pub fn new(hosts_dir: &Path, name: &str) -> Self {
        Self { dir: hosts_dir.join(name) }
    }

    pub fn record(&self) -> PathBuf {
        self.dir.join("host.json")
    }

    /// The host's berth root (database, certificates, logs, app data).
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    pub fn socket(&self) -> PathBuf {
        self.root().join("berth.sock")
    }

    /// What the host's daemon writes to stdout and stderr (its own log is
    /// `root/logs/berth.log`).
    pub fn output(&self) -> PathBuf {
        self.dir.join("daemon.out")
    }

    /// The app units the host's daemon writes (it supervises its apps itself).
    pub fn unit_dir(&self) -> PathBuf {
        self.dir.join("units")
    }

    /// `berth daemon`'s arguments for this host.
    pub fn daemon_args(&self, record: &HostRecord) -> Vec<String> {
        let mut args = vec![
            "--socket".to_owned(),
            self.socket().display().to_string(),
            "daemon".to_owned(),
            "--root".to_owned(),
            self.root().display().to_string(),
            "--unit-dir".to_owned(),
            self.unit_dir().display().to_string(),
        ];
        if let Some(engine) = &record.engine {
            args.extend(["--docker-host".to_owned(), engine.clone()]);
        }
        if let Some(listen) = record.listen {
            args.extend(["--listen".to_owned(), format!("tcp://{listen}")]);
        }
        args
    }

    /// The host's `berth.toml`: its quota, its apps supervised by itself,
    /// and no resource-manager TCP listener (the parent's may hold the port).
    pub fn settings(record: &HostRecord) -> String {
        let mut text = String::from(
            "# Written by `berth host create`; the host's own settings.\n\
             supervisor = \"berth\"\n\n[resource]\nlisten = \"\"\n",
        );
        if record.cpus.is_some() || record.memory.is_some() {
            text.push_str("\n[quota]\n");
            if let Some(cpus) = record.cpus {
                text.push_str(&format!("cpus = {cpus:?}\n"));
            }
            if let Some(memory) = &record.memory {
                text.push_str(&format!("memory = {memory:?}\n"));
            }
        }
        text
    }
}

pub fn read(path: &Path) -> Option<HostRecord> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}
