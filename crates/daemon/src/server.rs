//! Start-up, the API's unix socket, and shutdown.

use crate::config::{ConfigError, DaemonConfig};
use crate::daemon::Daemon;
use crate::journal::crash::CrashPoints;
use crate::journal::Journal;
use crate::services::{EngineState, Services};
use berth_core::engine::Ownership;
use berth_engine::{DockerEngine, EngineTimeouts};
use berth_store::{Store, StoreError};
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long running operations get to undo themselves at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} cannot be written ({source}); berth keeps its state there")]
    NotWritable { path: PathBuf, source: std::io::Error },
    #[error("no container engine is installed: nothing listens at {endpoint} and there is no dockerd (install Debian's docker.io)")]
    EngineMissing { endpoint: String },
    #[error("another berth daemon already uses {root}")]
    AlreadyRunning { root: PathBuf },
    #[error("a berth daemon already answers on {socket}")]
    SocketInUse { socket: PathBuf },
    #[error("cannot install systemd targets: {0}")]
    Units(String),
    #[error("the certificates cannot be used: {0}")]
    Certificates(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] berth_core::engine::EngineError),
}

impl DaemonError {
    /// The exit status of `berth daemon` for this failure (configuration
    /// problems are not worth a restart by systemd: packaging/berth.service,
    /// RestartPreventExitStatus).
    pub fn exit_code(&self) -> berth_core::ExitCode {
        use berth_core::ExitCode;
        match self {
            DaemonError::Config(_)
            | DaemonError::AlreadyRunning { .. }
            | DaemonError::SocketInUse { .. }
            | DaemonError::Units(_) => ExitCode::Config,
            DaemonError::Certificates(_) => ExitCode::CertificatesUnusable,
            DaemonError::NotWritable { .. } => ExitCode::NotWritable,
            DaemonError::EngineMissing { .. } => ExitCode::EngineMissing,
            DaemonError::Store(e) if e.kind() == berth_core::ErrorKind::CorruptState => ExitCode::CorruptState,
            DaemonError::Store(_) | DaemonError::Io { .. } => ExitCode::Internal,
            DaemonError::Engine(_) => ExitCode::EngineUnavailable,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Io { path: path.to_owned(), source }
}

/// For the directories berth writes: a read-only file system or a denied
/// write is its own failure (exit 16), not berth's.
fn io_writing(path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| match source.kind() {
        std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied => {
            DaemonError::NotWritable { path: path.to_owned(), source }
        }
        _ => DaemonError::Io { path: path.to_owned(), source },
    }
}

/// Makes `dir` and proves it can be written: a directory that exists on a
/// read-only mount is refused at start, not at the first install.
fn writable_dir(dir: &Path) -> Result<(), DaemonError> {
    std::fs::create_dir_all(dir).map_err(io_writing(dir))?;
    let probe = dir.join(format!(".berth-write-check-{}", std::process::id()));
    let written = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&probe);
    let _ = std::fs::remove_file(&probe);
    written.map(drop).map_err(io_writing(dir))
}

/// Refuses to start where no engine can ever answer: a local socket that is
/// not there and no dockerd to start it. An engine that is installed but
/// down (or remote) is waited for, degraded.
fn check_engine_installed(docker_host: Option<&str>) -> Result<(), DaemonError> {
    let endpoint = DockerEngine::endpoint_of(docker_host);
    let Some(socket) = endpoint.strip_prefix("unix://") else { return Ok(()) };
    if Path::new(socket).exists() || dockerd_installed() {
        return Ok(());
    }
    Err(DaemonError::EngineMissing { endpoint })
}

/// `dockerd` on the daemon's PATH (systemd's, under the unit).
fn dockerd_installed() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin".into());
    std::env::split_paths(&path).any(|dir| dir.join("dockerd").is_file())
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    prepare_root(&config.root)?;
    let _lock = lock_root(&config.root)?;
    writable_dir(&config.data_root)?;
    if let Some(dir) = config.db_path.parent() {
        writable_dir(dir)?;
    }
    check_engine_installed(config.docker_host.as_deref())?;
    // Before the database is opened: unusable certificates change nothing.
    let expiring = prepare_certificates(&config)?;
    let store = Store::open(&config.db_path)?;
    let timeouts = EngineTimeouts { control: Duration::from_secs(config.settings.engine.control_timeout_secs) };
    let engine = DockerEngine::connect(config.docker_host.as_deref(), timeouts).await?;
    let engine = match config.settings.engine.tether {
        true => crate::tether::with_tether(engine, &config.root),
        false => engine,
    };
    let instance = instance_id(&config.root);
    tracing::info!(root = %config.root.display(), %instance, engine = %config.docker_host.as_deref().unwrap_or("default"), "berth daemon starting");
    // The socket first: a daemon refused because another serves it writes nothing.
    let listener = bind(&config.socket).await?;
    crate::apps::units::install_targets(&config.unit_dir).map_err(|e| DaemonError::Units(e.to_string()))?;
    let systemd = config.settings.supervisor.is_systemd();
    let journal = Journal::new(store.clone(), CrashPoints::from_env());
    let (events, event_writer) = crate::events::Events::new(store.clone());
    journal.set_events(events.clone());
    let services = Arc::new(Services {
        config,
        ownership: Ownership::new(instance),
        engine: Arc::new(engine),
        store,
        journal,
        engine_state: EngineState::new(std::thread::available_parallelism().map_or(1, |n| n.get() as u32)),
        jitter: Arc::new(rand::random::<f64>),
        systemd,
        shutdown: CancellationToken::new(),
        events: events.clone(),
    });
    tokio::spawn(event_writer.write(
        events.clone(),
        services.config.settings.events.clone(),
        services.shutdown.clone(),
    ));
    events.emit(
        "daemon.started",
        &services.config.root.display().to_string(),
        serde_json::json!({ "version": env!("CARGO_PKG_VERSION") }),
    );
    if let Some((days, subject)) = expiring {
        events.emit("daemon.cert_expiring", &subject, serde_json::json!({ "days_left": days }));
    }
    let locations = crate::resources::locations::connect(&services, &services.config.settings.resource).await;
    let daemon = Daemon::assemble(services.clone(), locations);
    if let Err(e) = daemon.apps.show_stored().await {
        tracing::warn!(error = %e, "cannot list the stored apps");
    }
    tokio::spawn(crate::engine_watch::follow_engine(daemon.clone()));
    tokio::spawn(crate::sra::idle::stop_idle_containers(daemon.sra.clone()));
    tokio::spawn(crate::resources::outbox::deliver(daemon.resources.clone()));
    tokio::spawn(crate::resources::supervise::supervise(daemon.resources.clone()));
    tokio::spawn(crate::resources::monitor::monitor(daemon.resources.clone()));
    tokio::spawn(crate::apps::usage::sample(daemon.apps.clone()));
    tokio::spawn(crate::memory::give_back_after_work(services.events.subscribe()));
    tokio::spawn(crate::events_kafka::publish(services.clone()));
    let managers = daemon.managers();
    serve_resource_manager(&services, managers.resources.clone()).await;
    let router = berth_api::router(managers);
    serve_remote(&daemon, router.clone()).await?;
    crate::web::serve_loopback(&daemon, router.clone()).await?;
    let socket = services.config.socket.clone();
    notify_ready();
    let shutdown = services.shutdown.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            // Running operations undo themselves; their requests then end.
            shutdown.cancel();
        }
    });
    let served = tokio::select! {
        served = server => served,
        // Requests that do not end in time (a client that stopped reading)
        // do not hold the daemon: the journal finishes their work at the next start.
        _ = async { shutdown.cancelled().await; tokio::time::sleep(SHUTDOWN_GRACE).await } => Ok(()),
    };
    let _ = std::fs::remove_file(&socket);
    served.map_err(io(&socket))
}

/// The machine's name, as the server certificate's CN.
fn hostname() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}

/// The certificates directory, made or brought up to date (the hostname and
/// the listen addresses as SANs); one expiring within 60 days is warned of
/// (and returned: days left and subject, for the event log).
fn prepare_certificates(config: &DaemonConfig) -> Result<Option<(i64, String)>, DaemonError> {
    let certs = crate::certs::CertsDir::new(config.certs_dir.clone());
    let mut ips: std::collections::BTreeSet<std::net::IpAddr> =
        config.listen.iter().map(|a| a.ip()).filter(|ip| !ip.is_unspecified()).collect();
    ips.insert(std::net::IpAddr::from([127, 0, 0, 1]));
    let unusable = |e: crate::certs::CertError| DaemonError::Certificates(e.to_string());
    if let Some(done) = certs.ensure(&hostname(), &ips).map_err(unusable)? {
        tracing::info!(dir = %config.certs_dir.display(), "{done}");
    }
    let (chain, _) = certs.server().map_err(unusable)?;
    let summary =
        crate::certs::summary(chain.first().map(Vec::as_slice).unwrap_or_default(), "server.crt").map_err(unusable)?;
    let days = (summary.not_after - crate::certs::now_secs()).div_euclid(86_400);
    if days < crate::certs::EXPIRY_WARNING_DAYS {
        tracing::warn!(days, subject = %summary.subject, "the server certificate expires soon; renew it");
        return Ok(Some((days, summary.subject)));
    }
    Ok(None)
}

/// The whole API and the web UI over TLS on each `--listen` address: a
/// client presents a certificate of the CA that is not revoked, or signs in
/// as the web UI's administrator (berth_web's guard).
async fn serve_remote(daemon: &Arc<Daemon>, router: axum::Router) -> Result<(), DaemonError> {
    let config = &daemon.services.config;
    if config.listen.is_empty() {
        return Ok(());
    }
    let tls = crate::certs::verify::server_config(&daemon.certs, daemon.revoked.clone())
        .map_err(|e| DaemonError::Certificates(e.to_string()))?;
    let acceptor = crate::tls::SharedAcceptor::new(tokio_rustls::TlsAcceptor::from(Arc::new(tls)));
    let _ = daemon.remote_tls.set(acceptor.clone());
    let app = berth_web::app(daemon.web.clone(), router);
    for address in &config.listen {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| DaemonError::Io { path: PathBuf::from(format!("tcp://{address}")), source })?;
        tracing::info!(listen = %format!("tcp://{address}"), "serving the API over mutual TLS");
        tokio::spawn(crate::tls::serve(listener, acceptor.clone(), app.clone(), daemon.services.shutdown.clone()));
    }
    Ok(())
}

/// The Resource Manager API on its TCP listener (`[resource] listen`), with
/// TLS where a certificate is configured. Only that API is served there: the
/// native API stays on the unix socket, whose permissions guard it. A
/// listener that cannot be bound is logged, and the API stays on the socket.
async fn serve_resource_manager(
    services: &Arc<Services>,
    manager: Arc<dyn berth_api::routes::resources::ResourceManager>,
) {
    let settings = &services.config.settings.resource;
    if !settings.enabled || settings.listen.is_empty() {
        return;
    }
    let listener = match tokio::net::TcpListener::bind(&settings.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            return tracing::error!(listen = %settings.listen, error = %e, "the resource manager's listener cannot be bound; its API is on the unix socket only");
        }
    };
    let router = berth_api::routes::resources::routes(manager);
    let shutdown = services.shutdown.clone();
    let tls = match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => match crate::resources::tls::acceptor(cert, key) {
            Ok(acceptor) => Some(acceptor),
            Err(e) => {
                return tracing::error!(error = %e, "the resource manager's TLS certificate cannot be used; its listener is not started");
            }
        },
        _ => None,
    };
    tracing::info!(listen = %settings.listen, tls = tls.is_some(), "serving the resource manager API");
    match tls {
        None => {
            tokio::spawn(async move {
                let served =
                    axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.cancelled().await });
                if let Err(e) = served.await {
                    tracing::error!(error = %e, "the resource manager's listener failed");
                }
            });
        }
        Some(acceptor) => {
            tokio::spawn(crate::tls::serve(listener, crate::tls::SharedAcceptor::new(acceptor), router, shutdown));
        }
    }
}

/// The state root: created private (it holds the database with environment
/// values and the registry logins), made private if it is not.
fn prepare_root(root: &Path) -> Result<(), DaemonError> {
    writable_dir(root)?;
    let mode = std::fs::metadata(root).map_err(io(root))?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode & 0o700)).map_err(io_writing(root))?;
    }
    Ok(())
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
pub(crate) fn instance_id(root: &Path) -> String {
    let canonical = root.canonicalize().unwrap_or_else(|_| root.to_owned());
    let digest = Sha256::digest(canonical.to_string_lossy().as_bytes());
    hex::encode(&digest[..6])
}

/// One daemon per root: an exclusive lock on the root directory itself,
/// held for the daemon's life. Unlike a lock file, it cannot be deleted
/// away from under the running daemon.
fn lock_root(root: &Path) -> Result<std::fs::File, DaemonError> {
    let directory = std::fs::File::open(root).map_err(io(root))?;
    match rustix::fs::flock(&directory, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(directory),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(DaemonError::AlreadyRunning { root: root.to_owned() }),
        Err(e) => Err(DaemonError::Io { path: root.to_owned(), source: e.into() }),
    }
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
    tracing::info!("shutting down: running operations are cancelled and undone");
}
