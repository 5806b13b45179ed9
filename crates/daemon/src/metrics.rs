//! Prometheus metrics (`GET /metrics`, OpenMetrics text, prometheus-client):
//! what is counted follows the event log — one task reads the live feed and
//! counts operations, SRA commands, resource transitions and crashes, so no
//! code path needs a second hook — and what is a level (apps by state,
//! restarts, the engine, open operations, the outbox) is read at scrape
//! time from what the daemon holds, at a cost that grows with the number of
//! apps only (no engine call, two small queries).

use crate::services::lock;
use berth_core::status::AppState;
use berth_store::StoredEvent;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

type Labels = Vec<(String, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Every app state, so that a state with no app reads 0 rather than vanishing.
const STATES: [AppState; 8] = [
    AppState::Installing,
    AppState::Starting,
    AppState::Running,
    AppState::Restarting,
    AppState::Stopped,
    AppState::Failed,
    AppState::Uninstalling,
    AppState::Upgrading,
];

fn seconds() -> Histogram {
    // 5 ms to about 80 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Levels read at scrape time.
pub struct Levels {
    pub apps: Vec<(String, AppState, u32)>,
    pub engine_up: bool,
    pub open_operations: i64,
    pub outbox_depth: i64,
    /// The background samples of the running apps.
    pub usage: Vec<(String, crate::apps::usage::AppUsage)>,
    /// The resource instances' latest metric readings.
    pub readings: Vec<crate::resources::monitor::Reading>,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

pub struct Metrics {
    registry: Mutex<Registry>,
    apps: Family<Labels, Gauge>,
    restarts: Family<Labels, Gauge>,
    engine_up: Gauge,
    open_operations: Gauge,
    outbox_depth: Gauge,
    operations: Family<Labels, Counter>,
    operation_seconds: Histograms,
    sra_commands: Family<Labels, Counter>,
    sra_command_seconds: Histograms,
    transitions: Family<Labels, Counter>,
    crashes: Family<Labels, Counter>,
    app_cpu: Family<Labels, FloatGauge>,
    app_memory: Family<Labels, Gauge>,
    app_memory_limit: Family<Labels, Gauge>,
    resource_metric: Family<Labels, FloatGauge>,
    heals: Family<Labels, Counter>,
    /// Operations under way: their kind and when they began (ms).
    begun: Mutex<HashMap<i64, i64>>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("berth");
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            apps: Family::default(),
            restarts: Family::default(),
            engine_up: Gauge::default(),
            open_operations: Gauge::default(),
            outbox_depth: Gauge::default(),
            operations: Family::default(),
            operation_seconds: Family::new_with_constructor(seconds),
            sra_commands: Family::default(),
            sra_command_seconds: Family::new_with_constructor(seconds),
            transitions: Family::default(),
            crashes: Family::default(),
            app_cpu: Family::default(),
            app_memory: Family::default(),
            app_memory_limit: Family::default(),
            resource_metric: Family::default(),
            heals: Family::default(),
            begun: Mutex::default(),
        };
        let info = Family::<Labels, Gauge>::default();
        info.get_or_create(&labels(&[("version", env!("CARGO_PKG_VERSION")), ("git", crate::version::GIT)])).set(1);
        registry.register("build_info", "berth's version and git describe", info);
        registry.register("apps", "Apps by state", m.apps.clone());
        registry.register("app_restarts", "Restarts of each app since it last ran stably", m.restarts.clone());
        registry.register("app_crashes", "Unexpected exits of each app", m.crashes.clone());
        registry.register("engine_up", "Whether the container engine answers", m.engine_up.clone());
        registry.register("journal_open_operations", "Operations not finished yet", m.open_operations.clone());
        registry.register(
            "outbox_depth",
            "Resource-manager responses not yet delivered to Kafka",
            m.outbox_depth.clone(),
        );
        registry.register("operations", "Operations ended, by kind and outcome", m.operations.clone());
        registry.register(
            "operation_duration_seconds",
            "How long operations took, by kind and outcome",
            m.operation_seconds.clone(),
        );
        registry.register("sra_commands", "SRA commands run, by outcome", m.sra_commands.clone());
        registry.register(
            "sra_command_duration_seconds",
            "How long SRA commands took, by outcome",
            m.sra_command_seconds.clone(),
        );
        registry.register(
            "resource_transitions",
            "Resource transition requests ended, by type and state",
            m.transitions.clone(),
        );
        registry.register(
            "app_cpu_cores",
            "CPUs each running app used over the last sample interval",
            m.app_cpu.clone(),
        );
        registry.register(
            "app_memory_bytes",
            "Memory each running app uses, less the page cache",
            m.app_memory.clone(),
        );
        registry.register("app_memory_limit_bytes", "Each running app's memory limit", m.app_memory_limit.clone());
        registry.register(
            "resource_metric",
            "The latest reading of each resource instance's declared metric (integrity: 1 intact, 0 not)",
            m.resource_metric.clone(),
        );
        registry.register(
            "resource_heals",
            "Heals of resource instances by their heal policy, by outcome",
            m.heals.clone(),
        );
        *lock(&m.registry) = registry;
        Arc::new(m)
    }

    /// Counts what the event log says, until the daemon stops.
    pub async fn follow(self: Arc<Self>, mut live: broadcast::Receiver<Arc<StoredEvent>>) {
        loop {
            match live.recv().await {
                Ok(event) => self.count(&event),
                // Counting is best effort when the daemon is swamped.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    fn count(&self, event: &StoredEvent) {
        let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
        let text = |key: &str| data[key].as_str().unwrap_or_default().to_owned();
        match event.kind.as_str() {
            "operation.begun" | "operation.committed" => {
                if let Some(id) = data["operation"].as_i64() {
                    lock(&self.begun).entry(id).or_insert(event.at);
                }
            }
            "operation.done" | "operation.rolled_back" => {
                let outcome = if event.kind == "operation.done" { "done" } else { "rolled_back" };
                let set = labels(&[("kind", &text("kind")), ("outcome", outcome)]);
                self.operations.get_or_create(&set).inc();
                let began = data["operation"].as_i64().and_then(|id| lock(&self.begun).remove(&id));
                if let Some(began) = began {
                    self.operation_seconds.get_or_create(&set).observe((event.at - began).max(0) as f64 / 1000.0);
                }
            }
            "sra.command" => {
                let outcome = if data["error"].is_string() {
                    "refused"
                } else if !data["sra_error"].is_null() {
                    "sra_error"
                } else if data["exit_code"] == 0 {
                    "ok"
                } else {
                    "failed"
                };
                let set = labels(&[("outcome", outcome)]);
                self.sra_commands.get_or_create(&set).inc();
                if let Some(ms) = data["ms"].as_u64() {
                    self.sra_command_seconds.get_or_create(&set).observe(ms as f64 / 1000.0);
                }
            }
            "resource.request" => {
                self.transitions.get_or_create(&labels(&[("type", &text("type")), ("state", &text("state"))])).inc();
            }
            "resource.healed" => {
                self.heals.get_or_create(&labels(&[("outcome", &text("outcome"))])).inc();
            }
            "app.restarting" | "app.failed" if data["from"] == "running" => {
                self.crashes.get_or_create(&labels(&[("app", &event.name)])).inc();
            }
            _ => {}
        }
    }

    /// The text a scrape gets, with the levels as they are now.
    pub fn render(&self, levels: Levels) -> String {
        // One scrape at a time: the levels are set and encoded together.
        let registry = lock(&self.registry);
        self.apps.clear();
        self.restarts.clear();
        for state in STATES {
            let name: &'static str = state.into();
            self.apps.get_or_create(&labels(&[("state", name)])).set(0);
        }
        for (app, state, restarts) in &levels.apps {
            let name: &'static str = (*state).into();
            self.apps.get_or_create(&labels(&[("state", name)])).inc();
            self.restarts.get_or_create(&labels(&[("app", app)])).set(i64::from(*restarts));
        }
        self.app_cpu.clear();
        self.app_memory.clear();
        self.app_memory_limit.clear();
        for (app, usage) in &levels.usage {
            let set = labels(&[("app", app)]);
            if let Some(cores) = usage.cpu_cores {
                self.app_cpu.get_or_create(&set).set(cores);
            }
            self.app_memory.get_or_create(&set).set(i64::try_from(usage.memory_bytes).unwrap_or(i64::MAX));
            if let Some(limit) = usage.memory_limit {
                self.app_memory_limit.get_or_create(&set).set(i64::try_from(limit).unwrap_or(i64::MAX));
            }
        }
        self.resource_metric.clear();
        for r in &levels.readings {
            let set = labels(&[
                ("instance", &r.resource_id),
                ("name", &r.resource_name),
                ("type", &r.resource_type),
                ("metric", &r.metric),
                ("kind", &r.kind),
                ("metric_key", r.metric_key.as_deref().unwrap_or_default()),
            ]);
            self.resource_metric.get_or_create(&set).set(r.value);
        }
        self.engine_up.set(i64::from(levels.engine_up));
        self.open_operations.set(levels.open_operations);
        self.outbox_depth.set(levels.outbox_depth);
        let mut text = String::new();
        let _ = encode(&mut text, &registry);
        text
    }
}
