//! The command line. Every client verb maps to one API endpoint.

use berth_daemon::{ConfigError, DaemonConfig, Settings};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "berth", version, about = "Installs, supervises and removes vendor containers on a Docker host.")]
pub struct Cli {
    /// The daemon's API socket (the daemon listens on it, the client verbs connect to it).
    #[arg(long, global = true, env = "BERTH_SOCKET", default_value = "/run/berth/berth.sock")]
    pub socket: PathBuf,
    /// A remote daemon's mutual-TLS listener, tcp://HOST:PORT, instead of the socket.
    #[arg(long, global = true, env = "BERTH_HOST")]
    pub host: Option<String>,
    /// The client bundle for --host (ca.pem, cert.pem, key.pem), as `berth certs client` writes it.
    #[arg(long, global = true, env = "BERTH_CERT_PATH")]
    pub cert_path: Option<PathBuf>,
    /// Verify the daemon's certificate against the bundle's ca.pem (1, the default; 0 is refused:
    /// the remote API is mutual TLS only).
    #[arg(long, global = true, env = "BERTH_TLS_VERIFY", default_value = "1")]
    pub tls_verify: String,
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(Subcommand, Debug)]
pub enum Verb {
    /// Run the manager.
    Daemon(DaemonOptions),
    /// Install an app from an image archive or a registry and start it.
    Install(Install),
    /// List installed apps.
    List(ListOptions),
    /// Show one app.
    Show(ShowOptions),
    /// Start an app (and keep it running).
    Start(Target),
    /// Stop an app (it stays stopped until started).
    Stop(Target),
    /// Restart an app.
    Restart(Target),
    /// Print an app's output.
    Logs(Logs),
    /// Stop and remove an app, its private directory and its image.
    Uninstall(Uninstall),
    /// Upgrade an app to a new image (same sources and options as install), with
    /// its pre/post hooks, probation and automatic rollback.
    Upgrade(Upgrade),
    /// Return an app to the version its last upgrade replaced (image, settings, data).
    Rollback(Confirmed),
    /// Cancel the install, upgrade or rollback running on an app (it is undone).
    Cancel(Target),
    /// Storage Replication Adapters (VMware SRM).
    #[command(subcommand)]
    Sra(Sra),
    /// Store a login for a registry (kept 0600 in berth's root).
    Login(Login),
    /// Forget the login for a registry.
    Logout(Registry),
    /// Move every app across a host OS replacement.
    #[command(subcommand)]
    Migrate(Migrate),
    /// Run an app in the foreground, attached to its container's output, until
    /// it stops (what its systemd unit runs). SIGTERM stops the app.
    RunApp(Target),
    /// The resource manager (OSLM Resource Manager API): types, locations, instances, transitions.
    #[command(subcommand)]
    Resource(Resource),
    /// The daemon's certificates and the clients of its mutual-TLS listeners.
    #[command(subcommand)]
    Certs(Certs),
    /// Container hosts: independent berth instances created, listed and deleted with one command.
    #[command(subcommand)]
    Host(Host),
    /// The web UI: where it is served, and its administrator account.
    #[command(subcommand)]
    Web(Web),
    /// berth's version (git describe, build number), its state schema, and the daemon's version.
    Version(ReadOptions),
    /// Check the daemon's health: engine, database, disks, certificates, units, orphans, journal;
    /// with --rebuild, rebuild the state database from what the containers keep.
    Doctor(DoctorOptions),
    /// The daemon: version, instance, engine, apps, open operations, and whether it runs degraded.
    Info(ReadOptions),
    /// The event log: every state change, in order; with -f, new ones as they happen.
    Events(EventsOptions),
    /// Replace this berth binary with a newer one and restart the daemon on it; put the old one
    /// back if the new daemon does not become healthy.
    SelfUpgrade { binary: PathBuf },
    /// Shell completions and manual pages, for packages (scripts/package-deb.sh).
    #[command(subcommand, hide = true)]
    Generate(crate::generate::Generate),
}

#[derive(Subcommand, Debug)]
pub enum Certs {
    /// Type, subject, SANs, validity and fingerprints of the server and CA certificates; the clients.
    Show(ReadOptions),
    /// Install your own certificate (PEM; PKCS#1 and SEC1 keys are converted, one-line PEM is re-wrapped).
    Install {
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        ca: PathBuf,
        #[command(flatten)]
        read: ReadOptions,
    },
    /// Issue a client certificate and write its bundle (ca.pem, cert.pem, key.pem, mode 0600).
    Client {
        name: String,
        /// Where the bundle goes (default: ./<name>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the client certificates issued.
    Clients(ReadOptions),
    /// Refuse a client from its next connection on.
    Revoke { name: String },
}

#[derive(Args, Debug)]
pub struct EventsOptions {
    /// Keep following: new events as they happen (Ctrl-C ends it).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only events after this id (resume where an earlier run stopped).
    #[arg(long)]
    pub since: Option<i64>,
    /// Start with the last N events stored instead of all that are kept.
    #[arg(long, conflicts_with = "since")]
    pub tail: Option<u64>,
    /// Only kinds starting with these, comma-separated: app, operation.committed, resource, sra, daemon, …
    #[arg(long)]
    pub kind: Option<String>,
    /// Only events about this name (an app, an operation's subject, a request id).
    #[arg(long)]
    pub name: Option<String>,
    /// json: one event per line.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Subcommand, Debug)]
pub enum Web {
    /// Where the web UI is served and who its administrator is.
    Status(ReadOptions),
    /// Set the administrator's password (asked twice on the terminal, or read from stdin);
    /// signed-in browsers are signed out.
    Passwd {
        /// The administrator's user name.
        #[arg(long, default_value = "admin")]
        user: String,
        /// Read the password from stdin (one line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove the administrator account: only client certificates sign in to the UI.
    RemoveAdmin,
}

#[derive(Subcommand, Debug)]
pub enum Host {
    /// Create a host: its own root, socket, certificates and client bundle, kept running; prints
    /// how to reach it.
    Create {
        name: String,
        /// The host's engine: unix:///path or tcp://host:port (default: this daemon's).
        #[arg(long)]
        engine: Option<String>,
        /// Serve the host's API over mutual TLS on ADDR:PORT (a client bundle is written).
        #[arg(long)]
        listen: Option<String>,
        /// The host's CPU quota: the sum of its apps' CPU limits may not exceed it.
        #[arg(long)]
        cpus: Option<f64>,
        /// The host's memory quota (512m, 2g): the sum of its apps' memory limits may not exceed it.
        #[arg(long)]
        memory: Option<String>,
        /// Where the client bundle goes (default: ./<name>).
        #[arg(long)]
        cert_dir: Option<PathBuf>,
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// List the hosts.
    Ls(ReadOptions),
    /// A host's version, state, endpoint, apps, quota use and certificate expiry.
    Inspect {
        name: String,
        #[command(flatten)]
        read: ReadOptions,
    },
    /// Delete a host and everything it created; names what it leaves because it did not create it.
    Delete {
        name: String,
        /// Delete it even though apps run on it.
        #[arg(long)]
        force: bool,
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

impl Verb {
    /// The operations of TPCM's `tpcm` command.
    pub fn is_tpcm(&self) -> bool {
        matches!(self, Verb::Install(_) | Verb::Uninstall(_) | Verb::List(_) | Verb::Upgrade(_))
    }
}

#[derive(Args, Debug)]
pub struct DaemonOptions {
    /// State directory: database, journal, logs.
    #[arg(long, default_value = "/var/lib/berth")]
    pub root: PathBuf,
    /// Where apps' private directories live (default: <root>/tpc; an appliance sets /storage/data/berth).
    #[arg(long, alias = "data-dir")]
    pub data_root: Option<PathBuf>,
    /// Where the state database berth.db lives (default: <root>; an appliance sets /storage/db/berth).
    #[arg(long)]
    pub db_dir: Option<PathBuf>,
    /// The engine: unix:///path or tcp://host:port (default: DOCKER_HOST or the local socket).
    #[arg(long)]
    pub docker_host: Option<String>,
    /// Where systemd units of apps are written.
    #[arg(long, default_value = "/etc/systemd/system")]
    pub unit_dir: PathBuf,
    /// Settings file (default: <root>/berth.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Certificates directory (default: <root>/certs; an appliance sets /storage/data/certs).
    #[arg(long)]
    pub certs_dir: Option<PathBuf>,
    /// The daemon's log file goes here (default: <root>/logs; an appliance sets /storage/log/berth).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Serve the whole API over mutual TLS on tcp://ADDR:PORT (repeatable; none by default).
    #[arg(long, value_parser = parse_listen)]
    pub listen: Vec<std::net::SocketAddr>,
    /// Serve the web UI over plain http on this loopback ADDR:PORT, e.g.
    /// 127.0.0.1:8470 (overrides `[web] listen`; the --listen addresses serve it over TLS).
    #[arg(long, value_name = "ADDR:PORT")]
    pub web: Option<std::net::SocketAddr>,
}

fn parse_listen(text: &str) -> Result<std::net::SocketAddr, String> {
    let address = text.strip_prefix("tcp://").ok_or_else(|| format!("{text:?} is not tcp://ADDR:PORT"))?;
    address.parse().map_err(|_| format!("{text:?} is not tcp://ADDR:PORT (an IP address and a port)"))
}

impl DaemonOptions {
    /// The daemon listens on the global `--socket`.
    pub fn into_config(self, socket: PathBuf) -> Result<DaemonConfig, ConfigError> {
        let explicit = self.config.is_some();
        let web = self.web;
        let settings =
            Settings::load_with(&self.config.unwrap_or_else(|| self.root.join("berth.toml")), explicit, |s| {
                if web.is_some() {
                    s.web.listen = web;
                }
            })?;
        let certs_dir = self.certs_dir.unwrap_or_else(|| self.root.join("certs"));
        let db_path = self.db_dir.unwrap_or_else(|| self.root.clone()).join("berth.db");
        Ok(DaemonConfig {
            data_root: self.data_root.unwrap_or_else(|| self.root.join("tpc")),
            root: self.root,
            socket,
            docker_host: self.docker_host,
            unit_dir: self.unit_dir,
            certs_dir,
            db_path,
            listen: self.listen,
            settings,
        })
    }
}

#[derive(Args, Debug)]
pub struct Install {
    /// App name: [a-z0-9][a-z0-9_.-]{1,62}, without ".." and not ending in ".".
    pub name: String,
    /// An image archive (.tar, .tar.gz, .tgz), an http(s) URL of one, a registry reference
    /// image[:tag], or with --protocol a path on an ssh server.
    pub source: String,
    #[command(flatten)]
    pub from: SourceOptions,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct Upgrade {
    pub name: String,
    /// The new image, given as for install.
    pub source: String,
    #[command(flatten)]
    pub from: SourceOptions,
    /// Skip the data backup and restore hooks (TPCM's --skip_data).
    #[arg(long = "skip_data", alias = "skip-data")]
    pub skip_data: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// What install and upgrade share: the container's options and how to fetch the image.
#[derive(Args, Debug)]
pub struct SourceOptions {
    /// docker-run options for the container, e.g. "-e A=1 -p 8080:80" (upgrade: default keeps the current ones).
    #[arg(long, allow_hyphen_values = true)]
    pub args: Option<String>,
    /// CPU limit in CPUs (default: 20% of the host's CPUs).
    #[arg(long, value_parser = parse_cpus, allow_hyphen_values = true)]
    pub cpus: Option<f64>,
    /// Memory limit, e.g. 256m.
    #[arg(long)]
    pub memory: Option<String>,
    /// Expected SHA-256 of the archive (file or download), checked before the image is used.
    #[arg(long)]
    pub sha256: Option<String>,
    /// Extra CA certificates (PEM) to trust for an https source.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Follow a redirect of an https source to plain http (refused without it).
    #[arg(long)]
    pub allow_downgrade: bool,
    /// USER:PASSWORD for a registry source, for this pull only (see also `berth login`).
    #[arg(long)]
    pub registry_auth: Option<String>,
    /// TPCM: copy the image from an ssh server with `scp` or `sftp`; SOURCE is then the remote path.
    #[arg(long, value_parser = ["scp", "sftp"])]
    pub protocol: Option<String>,
    /// host[:port] of the ssh server.
    #[arg(long)]
    pub server: Option<String>,
    #[arg(long)]
    pub username: Option<String>,
    /// The ssh password (asked for on a terminal when neither this nor --identity is given).
    #[arg(long)]
    pub password: Option<String>,
    /// A private key file for the ssh server.
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// Accept this host key (its SHA256:… fingerprint) although no known_hosts file has it.
    #[arg(long)]
    pub accept_host_key: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Sra {
    /// Load an SRA image archive (.tar or .tar.gz); refused without the com.vmware.srm.sra label or an executable /srm/sra/command.
    Load { file: PathBuf },
    /// List the SRA images (repository:tag, image id, label value, execution containers, configuration digest).
    List(ReadOptions),
    /// Remove an SRA image, this daemon's execution containers of it and its configuration.
    Remove {
        image: String,
        /// Kill commands still running in its execution containers (without it, removal is refused while one runs).
        #[arg(long)]
        force: bool,
    },
    /// Run an SRA command: the command XML on stdin; the command's stdout, stderr and exit code are passed on.
    Exec(SraExec),
    /// Run an SRA command by name: berth writes the envelope and prints the response XML (or the SRA's <Error>).
    Run(SraRun),
    /// The SRA configuration service: download, upload, copy, reset.
    #[command(subcommand)]
    Config(SraConfig),
}

#[derive(Args, Debug)]
pub struct SraTargetArgs {
    /// The SRA image (reference or id).
    #[arg(long)]
    pub image: String,
    /// Host directory bound at /tmp in the execution container.
    #[arg(long)]
    pub tmp_dir: PathBuf,
    /// Host directory bound at /srm/sra/log.
    #[arg(long)]
    pub log_dir: PathBuf,
    /// UID:GID to run the command as (default 660:660).
    #[arg(long)]
    pub user: Option<String>,
    /// NAME=VALUE for the command's environment (repeatable).
    #[arg(long)]
    pub env: Vec<String>,
    /// Seconds without a status-file update before the command is killed (default 300).
    #[arg(long)]
    pub timeout: Option<u64>,
}

#[derive(Args, Debug)]
pub struct SraExec {
    #[command(flatten)]
    pub target: SraTargetArgs,
}

#[derive(Args, Debug)]
pub struct SraRun {
    /// The SRA command, e.g. queryInfo, queryCapabilities, discoverArrays.
    pub command: String,
    #[command(flatten)]
    pub target: SraTargetArgs,
    /// A file holding the <Connections> element for the envelope.
    #[arg(long)]
    pub connections: Option<PathBuf>,
    /// A file holding the command's parameters element (e.g. <DiscoverDevicesParameters>).
    #[arg(long)]
    pub parameters: Option<PathBuf>,
    /// <LogLevel> of the envelope (default info).
    #[arg(long)]
    pub log_level: Option<String>,
    #[command(flatten)]
    pub read: ReadOptions,
}

#[derive(Subcommand, Debug)]
pub enum SraConfig {
    /// Write the image's configuration as a .tar.gz with sra-configuration-version.txt.
    Download {
        image: String,
        /// The archive to write (`-`: standard output).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Replace the configuration with an edited download (refused, exit 11, if it changed since).
    Upload {
        image: String,
        /// The archive (`-`: standard input).
        file: PathBuf,
    },
    /// Copy the configuration from one image (version) to another.
    Copy { from: String, to: String },
    /// Put back the configuration shipped in the image.
    Reset { image: String },
}

#[derive(Subcommand, Debug)]
pub enum Resource {
    /// List the resource types (name, state, created, modified).
    Types(ReadOptions),
    /// Show a resource type and its descriptor.
    Type {
        /// e.g. resource::docker-network::1.0
        name: String,
        #[command(flatten)]
        read: ReadOptions,
    },
    /// Onboard a resource package: a directory (packed here; files and directories only) or a
    /// .tar.gz, .tgz, .tar or .zip of one (sent as is).
    Onboard {
        package: PathBuf,
        #[command(flatten)]
        read: ReadOptions,
    },
    /// Remove a resource type (refused while it has instances).
    RemoveType {
        name: String,
        #[command(flatten)]
        read: ReadOptions,
    },
    /// Onboard the packages of the daemon's package directories again.
    Reload(ReadOptions),
    /// Build dockerrm_baseimage (busybox and berth's utilities) in every location, for `FROM dockerrm_baseimage`.
    BaseImage(ReadOptions),
    /// List the deployment locations (name, type, status, engine, description).
    Locations(ReadOptions),
    /// List resource instances (id, name, type, location, state), of every location by default.
    Instances(ResourceInstances),
    /// Show a resource instance: its properties, internal resources and requests.
    Show {
        id: String,
        #[command(flatten)]
        read: ReadOptions,
    },
    /// Request a transition (Install, Configure, Start, Integrity, Stop, Reconfigure, Uninstall) or an
    /// operation on an instance, named by --type and --name or by --id.
    Transition(ResourceTransition),
    /// Show where a transition request stands, and the responses waiting for Kafka.
    Status {
        request_id: String,
        #[command(flatten)]
        read: ReadOptions,
    },
}

#[derive(Args, Debug)]
pub struct ResourceInstances {
    /// Only this deployment location.
    #[arg(long)]
    pub location: Option<String>,
    /// Only instances of this type (exact name).
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    /// Only instances whose name contains this.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub read: ReadOptions,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("instance").required(true).args(["id", "kind"])))]
pub struct ResourceTransition {
    /// Install, Configure, Start, Integrity, Stop, Reconfigure, Uninstall (or Transition::…), or an operation's name.
    pub transition: String,
    /// The instance's type (with --name): the one to install, or an existing one by its name.
    #[arg(long = "type", value_name = "TYPE", requires = "name")]
    pub kind: Option<String>,
    /// The instance's name (with --type).
    #[arg(long, requires = "kind")]
    pub name: Option<String>,
    /// The instance's id (not for Install).
    #[arg(long, conflicts_with_all = ["kind", "name"])]
    pub id: Option<String>,
    /// The deployment location (default: local; with --id: the instance's own).
    #[arg(long)]
    pub location: Option<String>,
    /// A property, KEY=VALUE, split at the first `=` (repeatable).
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = crate::resources::parse_property)]
    pub properties: Vec<(String, String)>,
    /// Wait until the request is COMPLETED or FAILED (exit 9 when FAILED).
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub read: ReadOptions,
}

#[derive(Args, Debug)]
pub struct Login {
    /// host[:port] of the registry, as in image references.
    pub registry: String,
    #[arg(short, long)]
    pub username: String,
    /// Read the password from standard input (else it is asked for on the terminal, not echoed).
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Args, Debug)]
pub struct Registry {
    pub registry: String,
}

#[derive(Subcommand, Debug)]
pub enum Migrate {
    /// Save every app (its container as an image, settings, private directory) into <root>/migration.
    Export(ReadOptions),
    /// Restore every app of the pending migration (the daemon also does this at start).
    Import(ReadOptions),
    /// Show the migration store's state and the result per app.
    Status(ReadOptions),
}

#[derive(Args, Debug)]
pub struct Confirmed {
    pub name: String,
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct ListOptions {
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Show the values of `-e NAME=VALUE` in the apps' args (hidden by default).
    #[arg(long)]
    pub show_secrets: bool,
}

#[derive(Args, Debug)]
pub struct ShowOptions {
    pub name: String,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Show the values of `-e NAME=VALUE` in the app's args (hidden by default).
    #[arg(long)]
    pub show_secrets: bool,
}

#[derive(Args, Debug)]
pub struct DoctorOptions {
    /// Record the apps, resource types and resource instances that the engine's containers,
    /// networks and volumes keep records of and the database does not know (after berth.db
    /// was lost or set aside); what the database knows is left as it is.
    #[arg(long)]
    pub rebuild: bool,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct ReadOptions {
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct Target {
    pub name: String,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct Logs {
    pub name: String,
    /// Keep printing new output.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<u64>,
}

#[derive(Args, Debug)]
pub struct Uninstall {
    pub name: String,
    /// Keep the app's private directory.
    #[arg(long)]
    pub keep_data: bool,
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

impl Output {
    pub fn is_json(self) -> bool {
        self == Output::Json
    }
}

/// A positive, finite number of CPUs. (JSON has no NaN or infinity: such a
/// value would reach the daemon as "no value" and silently mean the default.)
fn parse_cpus(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(cpus) if cpus.is_finite() && cpus > 0.0 => Ok(cpus),
        _ => Err(format!("{text:?} is not a positive number of CPUs")),
    }
}
