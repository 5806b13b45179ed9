//! Start-up and the API's unix socket.

use crate::config::{ConfigError, DaemonConfig};
use crate::events;
use crate::manager::DaemonManager;
use crate::registry::Inner;
use berth_engine::DockerEngine;
use berth_store::{Store, StoreError};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("another berth daemon already uses {root}")]
    AlreadyRunning { root: PathBuf },
    #[error("a berth daemon already answers on {socket}")]
    SocketInUse { socket: PathBuf },
    #[error("cannot install systemd targets: {0}")]
    Units(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] berth_core::engine::EngineError),
}

impl DaemonError {
    /// Configuration problems are not worth a restart by systemd (see
    /// packaging/berth.service, RestartPreventExitStatus).
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            DaemonError::Config(_)
                | DaemonError::AlreadyRunning { .. }
                | DaemonError::SocketInUse { .. }
                | DaemonError::Units(_)
        )
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Io { path: path.to_owned(), source }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    std::fs::create_dir_all(&config.root).map_err(io(&config.root))?;
    let _lock = lock_root(&config.root)?;
    std::fs::create_dir_all(&config.data_root).map_err(io(&config.data_root))?;
    let store = Store::open(&config.root.join("berth.db"))?;
    let engine = DockerEngine::connect(config.docker_host.as_deref()).await?;
    let instance = instance_id(&config.root);
    tracing::info!(root = %config.root.display(), %instance, engine = %config.docker_host.as_deref().unwrap_or("default"), "berth daemon starting");

    crate::units::install_targets(&config.unit_dir).map_err(|e| DaemonError::Units(e.to_string()))?;
    let listener = bind(&config.socket).await?;
    let systemd = config.settings.supervisor.is_systemd();
    let inner = Arc::new(Inner {
        config,
        instance,
        engine: Arc::new(engine),
        store,
        apps: RwLock::new(BTreeMap::new()),
        online_cpus: Mutex::new(std::thread::available_parallelism().map_or(1, |n| n.get() as u32)),
        engine_version: Mutex::new(None),
        sra: Default::default(),
        recovered: AtomicBool::new(false),
        systemd,
    });
    if let Err(e) = crate::recovery::show_stored_apps(&inner).await {
        tracing::warn!(error = %e, "cannot list the stored apps");
    }
    tokio::spawn(events::follow_engine(inner.clone()));
    tokio::spawn(crate::sra::idle::stop_idle_containers(inner.clone()));
    let router = berth_api::router(Arc::new(DaemonManager { inner: inner.clone() }));
    let socket = inner.config.socket.clone();
    notify_ready();
    let served = axum::serve(listener, router).with_graceful_shutdown(shutdown_signal()).await;
    let _ = std::fs::remove_file(&socket);
    served.map_err(io(&socket))
}

/// Tells systemd (`Type=notify`) that the API is served. Without
/// `NOTIFY_SOCKET` (not started by systemd) there is no one to tell.
fn notify_ready() {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let socket = socket.to_string_lossy().into_owned();
    let sent = (|| -> std::io::Result<()> {
        let datagram = std::os::unix::net::UnixDatagram::unbound()?;
        match socket.strip_prefix('@') {
            // An abstract socket: its name starts with a NUL byte.
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                datagram.send_to_addr(b"READY=1", &address)?;
            }
            None => {
                datagram.send_to(b"READY=1", &socket)?;
            }
        }
        Ok(())
    })();
    if let Err(e) = sent {
        tracing::warn!(%socket, error = %e, "cannot notify systemd");
    }
}

/// Identifies this daemon's containers: one per state root.
fn instance_id(root: &Path) -> String {
    let canonical = root.canonicalize().unwrap_or_else(|_| root.to_owned());
    let digest = Sha256::digest(canonical.to_string_lossy().as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// One daemon per root: an exclusive lock held for the daemon's life.
fn lock_root(root: &Path) -> Result<File, DaemonError> {
    let path = root.join("berth.lock");
    let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(io(&path))?;
    // SAFETY: flock on a file descriptor we own; no memory is shared.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !locked {
        return Err(DaemonError::AlreadyRunning { root: root.to_owned() });
    }
    Ok(file)
}

async fn bind(socket: &Path) -> Result<tokio::net::UnixListener, DaemonError> {
    if let Some(parent) = socket.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    if socket.exists() {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            return Err(DaemonError::SocketInUse { socket: socket.to_owned() });
        }
        // A stale socket of a daemon that died.
        std::fs::remove_file(socket).map_err(io(socket))?;
    }
    let listener = tokio::net::UnixListener::bind(socket).map_err(io(socket))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660)).map_err(io(socket))?;
    Ok(listener)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("shutting down");
}
