//! `berth host create`: a journal operation whose undo takes everything
//! back — the host's directory (record, root, certificates) and its daemon.
//!
//! ```text
//! accepted [RemoveTree <root>/hosts/<name>] → root_made → started [StopHost]
//!   → answering (the host's API answers, its client bundle issued) → commit
//! ```

use super::record::{HostPaths, HostRecord, Supervisor};
use super::{client_of, view, HostError, Hosts};
use berth_api::{HostCreateRequest, HostCreated};
use berth_core::journal::{Effect, OperationKind, Subject};
use berth_store::AppChange;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a new host's daemon gets to answer.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// The client certificate `host create` issues for its bundle.
pub const BUNDLE_CLIENT: &str = "admin";

struct Valid {
    name: String,
    engine: Option<String>,
    listen: Option<SocketAddr>,
    cpus: Option<f64>,
    memory: Option<String>,
}

fn validate(request: HostCreateRequest) -> Result<Valid, HostError> {
    let invalid = |what, value: &str, reason: &str| HostError::Invalid {
        what,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let name = berth_core::AppName::parse(&request.name)
        .map_err(|e| invalid("host name", &request.name, &e.to_string()))?
        .to_string();
    if let Some(engine) = &request.engine {
        let ok = match (engine.strip_prefix("unix://"), engine.strip_prefix("tcp://")) {
            (Some(path), _) => path.starts_with('/'),
            (_, Some(address)) => berth_core::host::HostPort::parse(address).is_ok_and(|h| h.port.is_some()),
            _ => false,
        };
        if !ok || engine.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("engine", engine, "give unix:///path/to/docker.sock or tcp://host:port"));
        }
    }
    let listen = match &request.listen {
        None => None,
        Some(text) => Some(
            text.strip_prefix("tcp://")
                .unwrap_or(text)
                .parse::<SocketAddr>()
                .map_err(|_| invalid("listen address", text, "give ADDR:PORT, an IP address and a port"))?,
        ),
    };
    if let Some(cpus) = request.cpus {
        if !(cpus.is_finite() && cpus >= 0.01) {
            return Err(invalid("--cpus", &cpus.to_string(), "give a number of CPUs of at least 0.01"));
        }
    }
    if let Some(memory) = &request.memory {
        let bytes = berth_core::run_args::parse_size(memory).map_err(|e| invalid("--memory", memory, &e))?;
        if bytes < berth_core::run_args::MIN_MEMORY {
            return Err(invalid("--memory", memory, "a host needs at least 6m"));
        }
    }
    Ok(Valid { name, engine: request.engine, listen, cpus: request.cpus, memory: request.memory })
}

pub async fn run(hosts: &Hosts, request: HostCreateRequest) -> Result<HostCreated, HostError> {
    let valid = validate(request)?;
    let journal = &hosts.services.journal;
    let subject = Subject::Host(valid.name.clone());
    if let Some(entry) = journal.open_entry_of(&subject).await? {
        return Err(HostError::Busy { name: valid.name, kind: entry.kind.as_str().replace('_', " ") });
    }
    let paths = hosts.paths(&valid.name);
    let dir = paths.dir.clone();
    if crate::fs::blocking("looking for a host", move || Ok::<_, HostError>(dir.exists())).await? {
        return Err(HostError::Exists { name: valid.name });
    }
    let name = valid.name.clone();
    let mut op = journal
        .begin(
            OperationKind::HostCreate,
            &subject,
            &name,
            vec![Effect::RemoveTree { path: paths.dir.clone() }],
            AppChange::None,
        )
        .await?;
    match steps(hosts, &mut op, &paths, valid).await {
        Ok(created) => match journal.commit(&op, &name, Vec::new(), AppChange::None).await? {
            crate::journal::Settled::Failed(e) => Err(e.into()),
            _ => {
                tracing::info!(host = %name, "host created");
                Ok(created)
            }
        },
        Err(e) => {
            journal.roll_back(op, &e.to_string()).await;
            Err(e)
        }
    }
}

async fn steps(
    hosts: &Hosts,
    op: &mut crate::journal::Op,
    paths: &HostPaths,
    valid: Valid,
) -> Result<HostCreated, HostError> {
    let journal = &hosts.services.journal;
    journal.step(op, "root_made", &valid.name, Vec::new()).await?;
    let record = make_root(hosts, paths, valid).await?;
    journal.step(op, "started", &record.name, vec![Effect::StopHost { host: record.name.clone() }]).await?;
    start(hosts, paths, &record).await?;
    wait_until_answering(hosts, paths, &record).await?;
    let bundle = match record.listen {
        None => None,
        Some(_) => Some(client_of(paths).certs_issue_client(BUNDLE_CLIENT).await.map_err(|e| {
            HostError::DidNotStart { name: record.name.clone(), reason: format!("its client bundle: {e}") }
        })?),
    };
    Ok(HostCreated { host: view::of(hosts, &record, true).await, bundle })
}

/// The host's directory (0700), its root, its settings and its record.
async fn make_root(hosts: &Hosts, paths: &HostPaths, valid: Valid) -> Result<HostRecord, HostError> {
    let (paths, supervisor) = (paths.clone(), hosts.supervisor());
    crate::fs::blocking("making a host's root", move || {
        let made = HostError::fs(format!("making {}", paths.dir.display()));
        for dir in [paths.dir.clone(), paths.root(), paths.unit_dir()] {
            crate::fs::create_dir(&dir, 0o700)
                .map_err(|e| HostError::Fs { what: dir.display().to_string(), reason: e.to_string() })?;
        }
        let root = paths.root().canonicalize().map_err(made)?;
        let record = HostRecord {
            name: valid.name,
            engine: valid.engine,
            listen: valid.listen,
            cpus: valid.cpus,
            memory: valid.memory,
            instance: crate::server::instance_id(&root),
            created_at: crate::services::now_secs(),
            supervisor,
        };
        let write = |path: std::path::PathBuf, bytes: &[u8], mode| {
            crate::fs::atomic_write_mode(&path, bytes, mode)
                .map_err(|e| HostError::Fs { what: path.display().to_string(), reason: e.to_string() })
        };
        write(paths.root().join("berth.toml"), HostPaths::settings(&record).as_bytes(), 0o600)?;
        let json = serde_json::to_vec_pretty(&record).unwrap_or_default();
        write(paths.record(), &json, 0o600)?;
        Ok(record)
    })
    .await
}

/// Its own unit where systemd is PID 1; else a supervised child process.
async fn start(hosts: &Hosts, paths: &HostPaths, record: &HostRecord) -> Result<(), HostError> {
    match record.supervisor {
        Supervisor::Process => {
            let spec = hosts.child_spec(paths, record)?;
            hosts.children.start(&record.name, spec, hosts.services.shutdown.clone());
            Ok(())
        }
        Supervisor::Systemd => {
            let name = berth_core::AppName::parse(&record.name).map_err(|e| HostError::Invalid {
                what: "host name",
                value: record.name.clone(),
                reason: e.to_string(),
            })?;
            let binary = super::berth_binary()?.display().to_string();
            let unit = berth_core::units::render_host_service(&name, &binary, &paths.daemon_args(record))
                .map_err(|e| HostError::Fs { what: "the host's unit".into(), reason: e.to_string() })?;
            let file = hosts.services.config.unit_dir.join(berth_core::units::host_unit_name(&name));
            crate::fs::blocking("writing a host's unit", move || {
                crate::fs::atomic_write(&file, unit.as_bytes())
                    .map_err(|e| HostError::Fs { what: file.display().to_string(), reason: e.to_string() })
            })
            .await?;
            let unit = berth_core::units::host_unit_name(&name);
            crate::apps::units::systemctl(&["daemon-reload"]).await;
            crate::apps::units::systemctl(&["enable", "--now", &unit]).await;
            Ok(())
        }
    }
}

/// Until the host's API answers and it has recovered (or says it runs
/// degraded); a daemon that exits is reported with its last words.
async fn wait_until_answering(hosts: &Hosts, paths: &HostPaths, record: &HostRecord) -> Result<(), HostError> {
    let client = client_of(paths);
    let deadline = Instant::now() + START_TIMEOUT;
    let failed = |reason: String| HostError::DidNotStart { name: record.name.clone(), reason };
    loop {
        if let Ok(info) = client.info().await {
            if info.ready || info.degraded.is_some() {
                return Ok(());
            }
        }
        if let Some(super::child::Status::Exited { exits, last }) = hosts.children.status(&record.name) {
            if exits > 0 {
                return Err(failed(format!("it exited ({last}): {}", last_words(&paths.output()).await)));
            }
        }
        if Instant::now() > deadline {
            return Err(failed(format!("it did not answer within {} s", START_TIMEOUT.as_secs())));
        }
        // The host's start is polled: it has no way to call back.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The end of what the host's daemon wrote.
async fn last_words(output: &std::path::Path) -> String {
    let output = output.to_owned();
    let text = crate::fs::blocking("reading a host's output", move || {
        Ok::<_, HostError>(std::fs::read(&output).unwrap_or_default())
    })
    .await
    .unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let tail: Vec<&str> = text.lines().rev().filter(|l| !l.trim().is_empty()).take(3).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
}
