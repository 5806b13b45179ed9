//! The daemon's settings: command-line flags over `<root>/berth.toml` over
//! built-in defaults.

use berth_core::spec::DEFAULT_CPU_SHARE;
use berth_core::supervise::RestartPolicy;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub root: PathBuf,
    pub socket: PathBuf,
    pub data_root: PathBuf,
    pub docker_host: Option<String>,
    pub unit_dir: PathBuf,
    /// The certificates directory (default `<root>/certs`).
    pub certs_dir: PathBuf,
    /// The state database (default `<root>/berth.db`; `--db-dir`).
    pub db_path: PathBuf,
    /// Mutual-TLS listeners of the whole API (`--listen tcp://ADDR:PORT`).
    pub listen: Vec<std::net::SocketAddr>,
    pub settings: Settings,
}

/// What `<root>/berth.toml` may set. Unknown keys are refused, so a typo is
/// not silently ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Default CPU limit of an app as a share of the host's CPUs (TPCM: 0.2).
    pub cpu_share: f64,
    /// Seconds a container gets to stop before it is killed.
    pub stop_timeout_secs: i64,
    /// How long a freshly started app must stay up for install and start to succeed.
    pub start_check_ms: u64,
    /// How long a new version must stay up (and healthy, with a health check) before an upgrade commits.
    pub probation_secs: u64,
    /// How long an upgrade hook may run.
    pub hook_timeout_secs: u64,
    /// Who restarts crashed apps: `berth` (the daemon), `systemd` (each app's
    /// unit, `Restart=on-failure`), or `auto`: systemd where it is PID 1.
    pub supervisor: SupervisorMode,
    pub restart: RestartSettings,
    pub sra: SraSettings,
    pub engine: EngineSettings,
    pub fetch: FetchSettings,
    pub resource: ResourceSettings,
    pub logs: LogSettings,
    pub quota: QuotaSettings,
    pub events: EventSettings,
    pub web: WebSettings,
    pub metrics: MetricsSettings,
}

/// `[metrics]`: what `/metrics` samples in the background.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Seconds between samples of each running app's CPU and memory (0: off).
    pub stats_interval_secs: u64,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self { stats_interval_secs: 15 }
    }
}

/// `[web]`: the web UI. The TLS `--listen` addresses always serve it; this
/// adds a plain-http listener for a browser on the same machine.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSettings {
    /// `127.0.0.1:PORT` (or another loopback address); none by default.
    pub listen: Option<std::net::SocketAddr>,
    /// How long a signed-in browser stays signed in.
    pub session_hours: u64,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self { listen: None, session_hours: 12 }
    }
}

impl WebSettings {
    fn validate(&self) -> Result<(), String> {
        if let Some(address) = self.listen {
            if !address.ip().is_loopback() {
                return Err(format!(
                    "web.listen {address} is not a loopback address: plain http is for this machine only; \
                     serve the UI to others on a TLS --listen address"
                ));
            }
        }
        if self.session_hours == 0 || self.session_hours > 24 * 30 {
            return Err("web.session_hours must be between 1 and 720".into());
        }
        Ok(())
    }
}

/// `[events]`: how many events, and how old, the event log keeps.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventSettings {
    pub max_count: u64,
    pub max_age_days: u64,
    /// Publish the events to Kafka as well (none by default).
    pub kafka: Option<EventKafkaSettings>,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self { max_count: 100_000, max_age_days: 7, kafka: None }
    }
}

/// `[events.kafka]`: the event log published to a topic, in order, at least once.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventKafkaSettings {
    pub bootstrap_servers: Vec<String>,
    #[serde(default = "default_events_topic")]
    pub topic: String,
    /// Only these kinds (prefixes of whole dotted words: `app`, `resource.request`); none: all.
    #[serde(default)]
    pub kinds: Vec<String>,
}

fn default_events_topic() -> String {
    "berth-events".into()
}

impl EventSettings {
    pub fn max_age_ms(&self) -> i64 {
        (self.max_age_days.saturating_mul(86_400_000)).min(i64::MAX as u64) as i64
    }
}

/// `[quota]`: a container host's share of its engine (`berth host create
/// --cpus --memory`). The sum of its apps' limits may not exceed it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaSettings {
    pub cpus: Option<f64>,
    /// As `--memory` takes it: `2g`, `512m`.
    pub memory: Option<String>,
}

impl QuotaSettings {
    pub fn memory_bytes(&self) -> Option<u64> {
        self.memory.as_deref().and_then(|m| berth_core::run_args::parse_size(m).ok())
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(cpus) = self.cpus {
            if !(cpus.is_finite() && cpus > 0.0) {
                return Err(format!("quota.cpus must be a positive number, not {cpus}"));
            }
        }
        if let Some(memory) = &self.memory {
            berth_core::run_args::parse_size(memory).map_err(|e| format!("quota.memory: {e}"))?;
        }
        Ok(())
    }
}

/// `[logs]`: the daemon's own log file and the apps' container logs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// Each app container's json-file log is rotated past this size (docker's `max-size`); "" leaves the engine's default.
    pub app_max_size: String,
    /// How many rotated files an app's log keeps (docker's `max-file`); 0 leaves the engine's default.
    pub app_max_files: u32,
    /// The daemon's `berth.log` is rotated past this size…
    pub daemon_max_bytes: u64,
    /// …keeping this many older files (`berth.log.1` …).
    pub daemon_max_files: u32,
}

impl LogSettings {
    /// The rotation containers berth makes get; `None`: the engine's default.
    pub fn rotation(&self) -> Option<berth_core::engine::LogRotation> {
        (self.app_max_files > 0 && !self.app_max_size.is_empty()).then(|| berth_core::engine::LogRotation {
            max_size: self.app_max_size.clone(),
            max_files: self.app_max_files,
        })
    }

    /// An app's rotation: its own `--log-opt max-size`/`max-file` over these
    /// defaults, each on its own.
    pub fn rotation_for(&self, options: &berth_core::run_args::RunOptions) -> Option<berth_core::engine::LogRotation> {
        let default = self.rotation();
        if options.log_max_size.is_none() && options.log_max_files.is_none() {
            return default;
        }
        let max_size = match options.log_max_size {
            Some(bytes) => bytes.to_string(),
            None => default.as_ref().map_or_else(|| self.app_max_size.clone(), |d| d.max_size.clone()),
        };
        let max_files = options.log_max_files.or(default.map(|d| d.max_files)).unwrap_or(1);
        // No size anywhere: the engine keeps one unbounded file, as without rotation.
        (!max_size.is_empty()).then_some(berth_core::engine::LogRotation { max_size, max_files })
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { app_max_size: "10m".into(), app_max_files: 3, daemon_max_bytes: 10 << 20, daemon_max_files: 5 }
    }
}

/// `[resource]`: the resource manager (the OSLM Resource Manager API).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceSettings {
    /// Whether the resource manager runs at all.
    pub enabled: bool,
    /// `resourceManagerId` and `/configuration`'s name.
    pub name: String,
    /// TCP listener of the API (`ADDR:PORT`); empty: the unix socket only.
    pub listen: String,
    /// PEM certificate chain and key: the TCP listener speaks TLS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Directories whose every sub-directory is a resource package, onboarded at start.
    pub package_dirs: Vec<PathBuf>,
    /// How long one lifecycle script may run.
    pub transition_timeout_secs: u64,
    /// Static busybox the base image is built from (Debian's busybox-static).
    pub busybox: PathBuf,
    pub kafka: Option<KafkaSettings>,
    /// Appends every request and response of the API to `trace_file` (CSV).
    pub generate_trace_file: bool,
    /// Default: `<root>/logs/trace.csv`.
    pub trace_file: Option<PathBuf>,
    /// The trace file is rotated (to `<file>.1`) past this size.
    pub trace_max_bytes: u64,
    /// Deployment locations; none configured means one, `local`, on the daemon's engine.
    pub locations: Vec<LocationSettings>,
    /// Seconds between readings of a metric whose descriptor gives no `publication-period`.
    pub metric_period_secs: u64,
}

/// `[resource.kafka]`: asynchronous transition responses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub bootstrap_servers: Vec<String>,
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Undelivered responses kept at most (the oldest are dropped, and logged, beyond).
    #[serde(default = "default_outbox_limit")]
    pub outbox_limit: i64,
    /// Where the instances' metric readings go (empty: not published to Kafka).
    #[serde(default = "default_metrics_topic")]
    pub metrics_topic: String,
}

fn default_metrics_topic() -> String {
    "berth-rm-metrics".into()
}

fn default_topic() -> String {
    "berth-rm".into()
}

fn default_outbox_limit() -> i64 {
    100_000
}

/// `[[resource.locations]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationSettings {
    pub name: String,
    #[serde(rename = "type", default = "default_location_type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    /// The Docker Engine (`unix://…`, `tcp://…`); default: the daemon's.
    #[serde(default)]
    pub engine: Option<String>,
}

fn default_location_type() -> String {
    "docker".into()
}

impl Default for ResourceSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            name: "berth-rm".into(),
            listen: "127.0.0.1:8081".into(),
            tls_cert: None,
            tls_key: None,
            package_dirs: Vec::new(),
            transition_timeout_secs: 300,
            busybox: PathBuf::from("/bin/busybox"),
            kafka: None,
            generate_trace_file: false,
            trace_file: None,
            trace_max_bytes: 64 << 20,
            locations: Vec::new(),
            metric_period_secs: 30,
        }
    }
}

impl ResourceSettings {
    fn validate(&self) -> Result<(), String> {
        if self.transition_timeout_secs == 0 || self.metric_period_secs == 0 {
            return Err("resource.transition_timeout_secs and resource.metric_period_secs must be positive".into());
        }
        if !self.listen.is_empty() && self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("resource.listen must be ADDR:PORT, not {:?}", self.listen));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("resource.tls_cert and resource.tls_key go together".into());
        }
        if let Some(kafka) = &self.kafka {
            if kafka.bootstrap_servers.is_empty() || kafka.topic.is_empty() || kafka.outbox_limit < 1 {
                return Err("resource.kafka needs bootstrap_servers, a topic and a positive outbox_limit".into());
            }
        }
        let mut seen = std::collections::HashSet::new();
        for location in &self.locations {
            if location.name.is_empty() || !seen.insert(location.name.as_str()) {
                return Err(format!("resource.locations: names must be unique and non-empty ({:?})", location.name));
            }
            if let Some(engine) = &location.engine {
                if !["unix://", "tcp://", "http://"].iter().any(|scheme| engine.starts_with(scheme)) {
                    return Err(format!(
                        "resource.locations {:?}: engine must be unix://, tcp:// or http://, not {engine:?}",
                        location.name
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `[engine]`: how long berth waits for the container engine.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// A control call (inspect, create, start, remove, …) the engine has not
    /// answered after this long fails as `engine unavailable`; streams (loads,
    /// pulls, logs) are not limited by it.
    pub control_timeout_secs: u64,
    /// Whether berth places its tether in the containers it creates, and
    /// runs their commands through it (a local engine only).
    pub tether: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self { control_timeout_secs: 60, tether: true }
    }
}

/// `[fetch]`: limits of image downloads and copies (http, https, scp, sftp)
/// and of archives streamed in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchSettings {
    /// A source that sends nothing for this long has failed (it is retried, then the install fails).
    pub idle_timeout_secs: u64,
    /// The whole fetch, retries included, may take at most this long.
    pub overall_timeout_secs: u64,
    /// Largest archive accepted, in bytes (compressed, as sent).
    pub max_archive_bytes: u64,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self { idle_timeout_secs: 30, overall_timeout_secs: 3600, max_archive_bytes: 64 << 30 }
    }
}

/// `[sra]`: storage replication adapters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SraSettings {
    /// An execution container with no command for this long is stopped (never while a command runs).
    pub idle_stop_secs: u64,
    /// Upper bound of the file content in an uploaded configuration archive.
    pub config_max_bytes: u64,
    /// Upper bound of the files, directories and links in an uploaded configuration archive.
    pub config_max_entries: u64,
}

impl Default for SraSettings {
    fn default() -> Self {
        Self { idle_stop_secs: 900, config_max_bytes: 64 << 20, config_max_entries: 10_000 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SupervisorMode {
    #[default]
    Auto,
    Berth,
    Systemd,
}

impl SupervisorMode {
    /// Whether systemd supervises the apps on this host.
    pub fn is_systemd(self) -> bool {
        match self {
            SupervisorMode::Auto => Path::new("/run/systemd/system").is_dir(),
            SupervisorMode::Berth => false,
            SupervisorMode::Systemd => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartSettings {
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub max_crashes: u32,
    pub stable_after_secs: u64,
    pub jitter: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cpu_share: DEFAULT_CPU_SHARE,
            stop_timeout_secs: 10,
            start_check_ms: 1000,
            probation_secs: 10,
            hook_timeout_secs: 300,
            supervisor: SupervisorMode::Auto,
            restart: RestartSettings::default(),
            sra: SraSettings::default(),
            engine: EngineSettings::default(),
            fetch: FetchSettings::default(),
            resource: ResourceSettings::default(),
            logs: LogSettings::default(),
            quota: QuotaSettings::default(),
            events: EventSettings::default(),
            web: WebSettings::default(),
            metrics: MetricsSettings::default(),
        }
    }
}

impl Default for RestartSettings {
    fn default() -> Self {
        let p = RestartPolicy::default();
        Self {
            initial_backoff_ms: p.initial_backoff.as_millis() as u64,
            max_backoff_ms: p.max_backoff.as_millis() as u64,
            max_crashes: p.max_crashes,
            stable_after_secs: p.stable_after.as_secs(),
            jitter: p.jitter,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl Settings {
    /// Reads `path`. A missing file means the defaults when it is the
    /// default location, and is an error when it was named (`--config`): a
    /// typo in the path must not silently mean "all defaults".
    pub fn load(path: &Path, explicit: bool) -> Result<Self, ConfigError> {
        Self::load_with(path, explicit, |_| {})
    }

    /// [`Settings::load`], with command-line flags applied (`apply`) before
    /// the whole is validated.
    pub fn load_with(path: &Path, explicit: bool, apply: impl FnOnce(&mut Settings)) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => String::new(),
            Err(source) => return Err(ConfigError::Read { path: path.to_owned(), source }),
        };
        let mut settings: Settings =
            toml::from_str(&text).map_err(|e| ConfigError::Invalid { path: path.to_owned(), reason: e.to_string() })?;
        apply(&mut settings);
        settings.validate().map_err(|reason| ConfigError::Invalid { path: path.to_owned(), reason })?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), String> {
        if !(self.cpu_share > 0.0 && self.cpu_share <= 1.0) {
            return Err(format!("cpu_share must be in (0, 1], not {}", self.cpu_share));
        }
        if self.stop_timeout_secs < 0 {
            return Err("stop_timeout_secs must not be negative".into());
        }
        if self.restart.max_crashes == 0 {
            return Err("restart.max_crashes must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.restart.jitter) {
            return Err("restart.jitter must be between 0 and 1".into());
        }
        if self.sra.idle_stop_secs == 0 || self.sra.config_max_bytes == 0 || self.sra.config_max_entries == 0 {
            return Err("sra.idle_stop_secs, sra.config_max_bytes and sra.config_max_entries must be positive".into());
        }
        if self.engine.control_timeout_secs == 0 {
            return Err("engine.control_timeout_secs must be positive".into());
        }
        self.resource.validate()?;
        self.quota.validate()?;
        self.web.validate()?;
        if self.events.max_count == 0 || self.events.max_age_days == 0 {
            return Err("events.max_count and events.max_age_days must be positive".into());
        }
        if let Some(kafka) = &self.events.kafka {
            if kafka.bootstrap_servers.is_empty() || kafka.topic.is_empty() {
                return Err("events.kafka needs bootstrap_servers and a topic".into());
            }
        }
        let f = &self.fetch;
        if f.idle_timeout_secs == 0 || f.overall_timeout_secs == 0 || f.max_archive_bytes == 0 {
            return Err(
                "fetch.idle_timeout_secs, fetch.overall_timeout_secs and fetch.max_archive_bytes must be positive"
                    .into(),
            );
        }
        Ok(())
    }

    pub fn restart_policy(&self) -> RestartPolicy {
        let r = &self.restart;
        RestartPolicy {
            initial_backoff: Duration::from_millis(r.initial_backoff_ms),
            max_backoff: Duration::from_millis(r.max_backoff_ms.max(r.initial_backoff_ms)),
            max_crashes: r.max_crashes,
            stable_after: Duration::from_secs(r.stable_after_secs),
            jitter: r.jitter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_gives_defaults_and_typos_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        assert_eq!(Settings::load(&path, false).unwrap(), Settings::default());
        assert!(matches!(Settings::load(&path, true), Err(ConfigError::Read { .. })), "a named file must exist");
        std::fs::write(&path, "cpu_share = 0.5\n[restart]\nmax_crashes = 3\n").unwrap();
        let s = Settings::load(&path, false).unwrap();
        assert_eq!((s.cpu_share, s.restart.max_crashes), (0.5, 3));
        std::fs::write(&path, "cpu_shares = 0.5\n").unwrap();
        assert!(matches!(Settings::load(&path, false), Err(ConfigError::Invalid { .. })));
        std::fs::write(&path, "cpu_share = 2.0\n").unwrap();
        assert!(matches!(Settings::load(&path, false), Err(ConfigError::Invalid { .. })));
    }

    #[test]
    fn a_quota_is_read_and_a_bad_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, "[quota]\ncpus = 1.5\nmemory = \"2g\"\n").unwrap();
        let quota = Settings::load(&path, false).unwrap().quota;
        assert_eq!((quota.cpus, quota.memory_bytes()), (Some(1.5), Some(2 << 30)));
        for bad in ["[quota]\ncpus = 0.0\n", "[quota]\ncpus = -1.0\n", "[quota]\nmemory = \"lots\"\n"] {
            std::fs::write(&path, bad).unwrap();
            let refused = Settings::load(&path, false);
            assert!(
                matches!(&refused, Err(ConfigError::Invalid { reason, .. }) if reason.contains("quota")),
                "{bad}: {refused:?}"
            );
        }
    }
}
