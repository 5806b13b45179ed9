//! Resource metrics and heal policies (seed 002 §3.2.1.3 and §4.2.3): the
//! metrics a descriptor declares are read for each Active instance every
//! `publication-period` seconds (`[resource] metric_period_secs` when it
//! gives none), kept for `/metrics`, and published to Kafka
//! (`[resource.kafka] metrics_topic`).
//!
//! - `metric::integrity`: 1 when the instance is intact, 0 when not. Read by
//!   the type's operation of the metric's name when it has one, else its
//!   Integrity lifecycle script (exit status 0: intact), else whether the
//!   container runs.
//! - `metric::load`: the number the operation of the metric's name prints,
//!   else the container's CPU use in percent of one CPU over the period (as
//!   `docker stats` shows it).
//! - `policy::heal` on an integrity metric: after `smoothing` failed readings
//!   in a row the instance is healed — Stop then Start transitions where its
//!   lifecycle has both (journaled, in its request history), else a restart
//!   of its container. A heal that does not bring it back is tried again
//!   after the apps' backoff; past `[restart] max_crashes` heals in a row the
//!   instance is marked Broken, as supervision marks a crashing container.
//!
//! One task owns the schedule and every decision; readings and heals run in
//! tasks of their own and report back on a channel, so a slow script holds
//! nothing else up.

use crate::resources::transitions::ACTIVE;
use crate::resources::Resources;
use berth_api::RmTransitionRequest;
use berth_core::engine::{ExecRequest, StopSignal};
use berth_core::journal::Subject;
use berth_core::resource::{MetricDef, Package, Transition};
use berth_store::StoredInstance;
use futures::FutureExt;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub const INTEGRITY: &str = "metric::integrity";
pub const LOAD: &str = "metric::load";
pub const HEAL: &str = "policy::heal";
/// An instance that could not be healed.
pub const BROKEN: &str = "Broken";
/// Metric messages waiting for Kafka at most; past this, new ones are dropped.
const PUBLISH_QUEUE: usize = 4096;

/// One reading, as `/metrics` shows it and Kafka gets it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reading {
    pub metric_key: Option<String>,
    /// The metric's name in the descriptor.
    pub metric: String,
    /// `metric::integrity` or `metric::load`.
    #[serde(rename = "type")]
    pub kind: String,
    pub value: f64,
    pub resource_id: String,
    pub resource_name: String,
    pub resource_type: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
}

/// The latest reading of each (instance, metric).
#[derive(Debug, Default)]
pub struct Readings(Mutex<BTreeMap<(String, String), Reading>>);

impl Readings {
    pub fn latest(&self) -> Vec<Reading> {
        crate::services::lock(&self.0).values().cloned().collect()
    }

    fn put(&self, reading: Reading) {
        crate::services::lock(&self.0).insert((reading.resource_id.clone(), reading.metric.clone()), reading);
    }

    /// Readings of instances that are no longer watched go.
    fn keep_only(&self, watched: &HashSet<String>) {
        crate::services::lock(&self.0).retain(|(instance, _), _| watched.contains(instance));
    }
}

/// What a reading task measured.
enum Measured {
    Value(f64),
    /// CPU time so far (ns): a rate needs the reading before.
    CpuTime(u64),
}

enum Report {
    Read { instance: String, metric: String, measured: Result<Measured, String> },
    Healed { instance: Box<StoredInstance>, outcome: Result<&'static str, String> },
}

/// What the monitor knows of one instance.
#[derive(Default)]
struct Watch {
    next: HashMap<String, Instant>,
    busy: HashSet<String>,
    /// Failed integrity readings in a row, per metric.
    failed: HashMap<String, u32>,
    /// Integrity metrics whose last event said "not intact".
    reported_broken: HashSet<String>,
    /// Heals in a row that did not bring the instance back.
    heals: u32,
    last_heal: Option<Instant>,
    healing: bool,
    cpu: Option<(u64, Instant)>,
}

/// Reads and heals until the daemon shuts down.
pub async fn monitor(resources: Arc<Resources>) {
    let shutdown = resources.services.shutdown.clone();
    let (reports, mut inbox) = mpsc::unbounded_channel();
    let publish = publisher(&resources);
    let mut watches: HashMap<String, Watch> = HashMap::new();
    let mut instances: HashMap<String, (StoredInstance, Package)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                instances = watched(&resources).await;
                // An instance being healed is Stopped for a while: its watch stays.
                watches.retain(|id, watch| watch.healing || instances.contains_key(id));
                resources.readings.keep_only(&instances.keys().cloned().collect());
                schedule(&resources, &instances, &mut watches, &reports).await;
            }
            Some(report) = inbox.recv() => {
                handle(&resources, &instances, &mut watches, &reports, &publish, report).await;
            }
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Active instances whose type declares metrics, with their packages.
async fn watched(resources: &Resources) -> HashMap<String, (StoredInstance, Package)> {
    if !resources.services.engine_state.is_ready() || resources.services.engine_state.lost().is_some() {
        return HashMap::new();
    }
    let Ok(all) = resources.db(|s| s.resource_instances(None)).await else { return HashMap::new() };
    let mut packages: HashMap<String, Option<Package>> = HashMap::new();
    let mut watched = HashMap::new();
    for instance in all.into_iter().filter(|i| i.state == ACTIVE && i.container.is_some() && !i.discovered) {
        if !packages.contains_key(&instance.type_name) {
            let package = resources.package_cached(&instance.type_name).await;
            packages.insert(instance.type_name.clone(), package);
        }
        if let Some(Some(package)) = packages.get(&instance.type_name) {
            if !package.descriptor.metrics.is_empty() {
                watched.insert(instance.id.clone(), (instance, package.clone()));
            }
        }
    }
    watched
}

fn period(resources: &Resources, def: &MetricDef) -> Duration {
    Duration::from_secs(def.publication_period.unwrap_or(resources.settings.metric_period_secs).max(1))
}

async fn schedule(
    resources: &Arc<Resources>,
    instances: &HashMap<String, (StoredInstance, Package)>,
    watches: &mut HashMap<String, Watch>,
    reports: &mpsc::UnboundedSender<Report>,
) {
    let now = Instant::now();
    for (id, (instance, package)) in instances {
        let watch = watches.entry(id.clone()).or_default();
        if watch.healing {
            continue;
        }
        for (metric, def) in &package.descriptor.metrics {
            let due = watch.next.get(metric).is_none_or(|next| *next <= now);
            if !due || watch.busy.contains(metric) || !matches!(def.kind.as_str(), INTEGRITY | LOAD) {
                continue;
            }
            // A transition under way changes the instance: its readings would mislead.
            let subject = Subject::Resource(id.clone());
            if resources.services.journal.open_entry_of(&subject).await.ok().flatten().is_some() {
                continue;
            }
            watch.next.insert(metric.clone(), now + period(resources, def));
            watch.busy.insert(metric.clone());
            let (resources, reports) = (resources.clone(), reports.clone());
            let (instance, package, metric, def) = (instance.clone(), package.clone(), metric.clone(), def.clone());
            tokio::spawn(async move {
                let measured = measure(&resources, &instance, &package, &metric, &def).await;
                let _ = reports.send(Report::Read { instance: instance.id, metric, measured });
            });
        }
    }
}

/// One reading of `metric` (see the module's comment for what is run).
async fn measure(
    resources: &Resources,
    instance: &StoredInstance,
    package: &Package,
    metric: &str,
    def: &MetricDef,
) -> Result<Measured, String> {
    let location = resources.location(&instance.location).ok_or("the instance's location is gone")?;
    let engine = location.engine.clone();
    let container = instance.container.clone().ok_or("the instance has no container")?;
    let timeout = period(resources, def).min(Duration::from_secs(resources.settings.transition_timeout_secs));
    let script = package.operation_script(metric).map(str::to_owned).or_else(|| {
        (def.kind == INTEGRITY).then(|| package.lifecycle_script(Transition::Integrity).map(str::to_owned)).flatten()
    });
    let Some(script) = script else {
        return match def.kind.as_str() {
            INTEGRITY => {
                let running = engine.inspect(&container).await.map_err(|e| e.to_string())?;
                Ok(Measured::Value(if running.is_some_and(|c| c.state.is_running()) { 1.0 } else { 0.0 }))
            }
            _ => match engine.stats(&container).await.map_err(|e| e.to_string())? {
                Some(stats) => Ok(Measured::CpuTime(stats.cpu_ns)),
                None => Err("the container does not run".into()),
            },
        };
    };
    let stop: StopSignal = tokio::time::sleep(timeout).boxed();
    let request = ExecRequest { argv: vec![script.clone()], ..Default::default() };
    let result = engine.exec(&container, request, stop).await.map_err(|e| e.to_string())?;
    match def.kind.as_str() {
        INTEGRITY => Ok(Measured::Value(if result.exit_code == Some(0) { 1.0 } else { 0.0 })),
        _ => {
            let text = String::from_utf8_lossy(&result.stdout);
            let text = text.trim();
            text.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && result.exit_code == Some(0))
                .map(Measured::Value)
                .ok_or_else(|| format!("{script} printed {:?}, not a number", berth_api::short(text)))
        }
    }
}

async fn handle(
    resources: &Arc<Resources>,
    instances: &HashMap<String, (StoredInstance, Package)>,
    watches: &mut HashMap<String, Watch>,
    reports: &mpsc::UnboundedSender<Report>,
    publish: &Option<mpsc::Sender<Vec<u8>>>,
    report: Report,
) {
    match report {
        Report::Read { instance, metric, measured } => {
            let Some(watch) = watches.get_mut(&instance) else { return };
            watch.busy.remove(&metric);
            let Some((stored, package)) = instances.get(&instance) else { return };
            let Some(def) = package.descriptor.metrics.get(&metric) else { return };
            let value = match measured {
                Ok(Measured::Value(v)) => v,
                Ok(Measured::CpuTime(ns)) => {
                    let now = Instant::now();
                    let before = watch.cpu.replace((ns, now));
                    // The first reading only starts the clock.
                    let Some((then_ns, then)) = before else { return };
                    let Some(cores) = berth_core::engine::cpu_cores_between(then_ns, ns, now.duration_since(then))
                    else {
                        return;
                    };
                    cores * 100.0
                }
                Err(reason) => {
                    return tracing::debug!(instance = %instance, %metric, %reason, "a metric could not be read");
                }
            };
            let reading = Reading {
                metric_key: stored.metric_key.clone(),
                metric: metric.clone(),
                kind: def.kind.clone(),
                value,
                resource_id: stored.id.clone(),
                resource_name: stored.name.clone(),
                resource_type: stored.type_name.clone(),
                timestamp: jiff::Timestamp::now().to_string(),
            };
            resources.readings.put(reading.clone());
            send(publish, &reading);
            if def.kind == INTEGRITY {
                integrity(resources, stored, package, watch, &metric, value >= 1.0, reports).await;
            }
        }
        Report::Healed { instance: stored, outcome } => {
            let instance = stored.id.clone();
            let Some(watch) = watches.get_mut(&instance) else { return };
            watch.healing = false;
            watch.last_heal = Some(Instant::now());
            watch.failed.clear();
            // The next readings tell whether it worked.
            watch.next.clear();
            let (method, reason) = match &outcome {
                Ok(method) => (*method, None),
                Err(reason) => ("", Some(reason.clone())),
            };
            let outcome = if reason.is_none() { "done" } else { "failed" };
            let data =
                serde_json::json!({ "attempt": watch.heals, "method": method, "outcome": outcome, "reason": reason });
            if let Some(queue) = publish {
                let message = serde_json::json!({
                    "metricKey": stored.metric_key, "type": HEAL, "resourceId": stored.id,
                    "resourceName": stored.name, "resourceType": stored.type_name,
                    "attempt": watch.heals, "method": method, "outcome": outcome, "reason": reason,
                    "timestamp": jiff::Timestamp::now().to_string(),
                });
                let _ = queue.try_send(message.to_string().into_bytes());
            }
            resources.services.events.emit("resource.healed", &instance, data);
        }
    }
}

/// An integrity reading: counts failures, heals by the policy, gives up.
async fn integrity(
    resources: &Arc<Resources>,
    instance: &StoredInstance,
    package: &Package,
    watch: &mut Watch,
    metric: &str,
    intact: bool,
    reports: &mpsc::UnboundedSender<Report>,
) {
    let policy = resources.services.config.settings.restart_policy();
    let failed_before = watch.failed.get(metric).copied().unwrap_or(0);
    if intact {
        watch.failed.remove(metric);
        if watch.reported_broken.remove(metric) {
            let data = serde_json::json!({ "metric": metric, "intact": true });
            resources.services.events.emit("resource.integrity", &instance.id, data);
        }
        if watch.last_heal.is_some_and(|at| at.elapsed() >= policy.stable_after) {
            watch.heals = 0;
        }
        return;
    }
    let failed = failed_before + 1;
    watch.failed.insert(metric.to_owned(), failed);
    if watch.reported_broken.insert(metric.to_owned()) {
        let data = serde_json::json!({ "metric": metric, "intact": false });
        resources.services.events.emit("resource.integrity", &instance.id, data);
    }
    let Some((policy_name, heal)) =
        package.descriptor.policies.iter().find(|(_, p)| p.kind == HEAL && p.metric == metric)
    else {
        return;
    };
    let smoothing = heal.properties.get("smoothing").and_then(|s| s.trim().parse::<u32>().ok()).unwrap_or(1).max(1);
    if failed < smoothing {
        return;
    }
    if watch.heals >= policy.max_crashes {
        return give_up(resources, instance, watch.heals).await;
    }
    let backoff = policy.initial_backoff.saturating_mul(1 << watch.heals.min(16)).min(policy.max_backoff);
    if watch.heals > 0 && watch.last_heal.is_some_and(|at| at.elapsed() < backoff) {
        return;
    }
    watch.heals += 1;
    watch.healing = true;
    tracing::warn!(instance = %instance.id, %metric, failed, attempt = watch.heals, "an instance failed its integrity checks; healing it");
    let data = serde_json::json!({ "policy": policy_name, "metric": metric, "failed_readings": failed, "attempt": watch.heals });
    resources.services.events.emit("resource.healing", &instance.id, data);
    let (resources, reports, instance, package) =
        (resources.clone(), reports.clone(), instance.clone(), package.clone());
    tokio::spawn(async move {
        let outcome = heal_instance(&resources, &instance, &package).await;
        let _ = reports.send(Report::Healed { instance: Box::new(instance), outcome });
    });
}

/// Stop and Start transitions where the type has them, else a container restart.
async fn heal_instance(
    resources: &Arc<Resources>,
    instance: &StoredInstance,
    package: &Package,
) -> Result<&'static str, String> {
    let lifecycle = &package.descriptor;
    if lifecycle.supports(Transition::Stop) && lifecycle.supports(Transition::Start) {
        for transition in [Transition::Stop, Transition::Start] {
            transition_to_end(resources, instance, transition).await?;
        }
        return Ok("transitions");
    }
    let location = resources.location(&instance.location).ok_or("the instance's location is gone")?;
    let container = instance.container.as_deref().ok_or("the instance has no container")?;
    let grace = resources.services.config.settings.stop_timeout_secs;
    location.engine.stop(container, grace).await.map_err(|e| e.to_string())?;
    location.engine.start(container).await.map_err(|e| e.to_string())?;
    Ok("restart")
}

/// Requests `transition` on the instance as an orchestrator would, and
/// waits for its request to end.
async fn transition_to_end(
    resources: &Arc<Resources>,
    instance: &StoredInstance,
    transition: Transition,
) -> Result<(), String> {
    let mut ended = resources.services.events.subscribe();
    let request = RmTransitionRequest {
        deployment_location: Some(instance.location.clone()),
        resource_id: Some(instance.id.clone()),
        transition_name: Some(transition.as_str().to_owned()),
        ..Default::default()
    };
    let accepted = resources.accept(request, BTreeMap::new()).await.map_err(|e| e.to_string())?;
    let limit = Duration::from_secs(resources.settings.transition_timeout_secs + 60);
    let wait = async {
        loop {
            match ended.recv().await {
                Ok(event) if event.kind == "resource.request" && event.name == accepted.request_id => {
                    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
                    return match data["state"].as_str() {
                        Some("COMPLETED") => Ok(()),
                        _ => Err(format!(
                            "{transition} failed: {}",
                            data["reason"].as_str().unwrap_or("no reason given")
                        )),
                    };
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return Err("the daemon is stopping".into()),
            }
        }
    };
    tokio::time::timeout(limit, wait).await.map_err(|_| format!("{transition} did not end in {}s", limit.as_secs()))?
}

/// Heals in a row did not bring the instance back: it is marked Broken and
/// no longer watched (an orchestrator's transition takes it from there).
async fn give_up(resources: &Resources, instance: &StoredInstance, heals: u32) {
    tracing::error!(instance = %instance.id, heals, "healing did not bring the instance back; it is marked Broken");
    let mut broken = instance.clone();
    broken.state = BROKEN.into();
    broken.updated_at = berth_store::now_ms();
    if let Err(e) = resources.db(move |s| s.put_instance(&broken)).await {
        tracing::error!(instance = %instance.id, error = %e, "cannot mark the instance Broken");
    }
    let data = serde_json::json!({ "heals": heals, "state": BROKEN });
    resources.services.events.emit("resource.heal_failed", &instance.id, data);
}

/// A task that publishes readings to `[resource.kafka] metrics_topic`; none
/// without Kafka. Readings are not kept for later: one lost while the
/// broker is away is superseded by the next.
fn publisher(resources: &Resources) -> Option<mpsc::Sender<Vec<u8>>> {
    let kafka = resources.settings.kafka.clone().filter(|k| !k.metrics_topic.is_empty())?;
    let (queue, mut waiting) = mpsc::channel::<Vec<u8>>(PUBLISH_QUEUE);
    let shutdown = resources.services.shutdown.clone();
    tokio::spawn(async move {
        let mut publisher: Option<berth_kafka::Publisher> = None;
        loop {
            let first = tokio::select! {
                message = waiting.recv() => match message { Some(m) => m, None => return },
                _ = shutdown.cancelled() => return,
            };
            let mut batch = vec![first];
            while let Ok(more) = waiting.try_recv() {
                batch.push(more);
            }
            if publisher.is_none() {
                let timeout = Duration::from_secs(10);
                match berth_kafka::Publisher::connect(&kafka.bootstrap_servers, &kafka.metrics_topic, timeout).await {
                    Ok(p) => publisher = Some(p),
                    Err(e) => {
                        tracing::warn!(error = %e, dropped = batch.len(), "metric readings not published; Kafka does not answer");
                        continue;
                    }
                }
            }
            if let Some(p) = &publisher {
                if let Err(e) = p.publish(&batch).await {
                    tracing::warn!(error = %e, dropped = batch.len(), "metric readings not published");
                    publisher = None;
                }
            }
        }
    });
    Some(queue)
}

fn send(publish: &Option<mpsc::Sender<Vec<u8>>>, reading: &Reading) {
    if let (Some(queue), Ok(json)) = (publish, serde_json::to_vec(reading)) {
        let _ = queue.try_send(json);
    }
}
