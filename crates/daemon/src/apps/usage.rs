//! Each running app's CPU and memory, sampled in the background every
//! `[metrics] stats_interval_secs` with at most `CONCURRENT` engine calls at
//! a time, so that a `/metrics` scrape costs no engine call however many
//! apps there are. CPU is a rate: the CPU time between two samples over the
//! wall time between them, in cores.
//!
//! Sampling runs only while the samples are read (a scrape within the last
//! `READ_LATELY` intervals, and at least `READ_LATELY_MIN`): an appliance that
//! nobody scrapes costs no engine call per app per interval, which at 1,000
//! apps is most of what an idle daemon would otherwise do.

use crate::apps::Apps;
use crate::services::lock;
use berth_core::status::AppState;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Engine stats calls under way at most.
const CONCURRENT: usize = 8;
/// Sampling goes on for this many intervals after the last read…
const READ_LATELY: u32 = 10;
/// …and for at least this long.
const READ_LATELY_MIN: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq)]
pub struct AppUsage {
    /// CPUs in use over the last interval (none until the second sample).
    pub cpu_cores: Option<f64>,
    pub memory_bytes: u64,
    pub memory_limit: Option<u64>,
    container: String,
    cpu_ns: u64,
    at: Instant,
}

#[derive(Debug, Default)]
pub struct Usage {
    samples: Mutex<HashMap<String, AppUsage>>,
    /// When the samples were last read.
    read_at: Mutex<Option<Instant>>,
}

impl Usage {
    /// The latest sample of each running app, by name; reading them keeps
    /// the sampling going.
    pub fn latest(&self) -> Vec<(String, AppUsage)> {
        *lock(&self.read_at) = Some(Instant::now());
        let mut all: Vec<_> = lock(&self.samples).iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Whether the samples were read lately enough to be worth taking.
    fn wanted(&self, every: Duration) -> bool {
        let lately = (every * READ_LATELY).max(READ_LATELY_MIN);
        lock(&self.read_at).is_some_and(|at| at.elapsed() <= lately)
    }

    fn record(&self, app: &str, container: &str, stats: berth_core::engine::ContainerStats, at: Instant) {
        let mut samples = lock(&self.samples);
        // A rate only between two samples of the same container (a restart resets its CPU time).
        let cpu_cores = samples.get(app).filter(|before| before.container == container).and_then(|before| {
            berth_core::engine::cpu_cores_between(before.cpu_ns, stats.cpu_ns, at.duration_since(before.at))
        });
        let sample = AppUsage {
            cpu_cores,
            memory_bytes: stats.memory_bytes,
            memory_limit: stats.memory_limit,
            container: container.to_owned(),
            cpu_ns: stats.cpu_ns,
            at,
        };
        samples.insert(app.to_owned(), sample);
    }
}

/// Samples until the daemon shuts down; off when the interval is 0.
pub async fn sample(apps: Arc<Apps>) {
    let every = apps.services.config.settings.metrics.stats_interval_secs;
    if every == 0 {
        return;
    }
    let shutdown = apps.services.shutdown.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if !apps.services.engine_state.is_ready() || apps.services.engine_state.lost().is_some() {
            continue;
        }
        if !apps.usage.wanted(Duration::from_secs(every)) {
            lock(&apps.usage.samples).clear();
            continue;
        }
        let running: Vec<(String, String)> = apps
            .registry
            .handles()
            .iter()
            .filter_map(|h| {
                let r = lock(&h.runtime);
                (r.state == AppState::Running)
                    .then(|| Some((r.spec.name.to_string(), r.container_id.clone()?)))
                    .flatten()
            })
            .collect();
        lock(&apps.usage.samples).retain(|name, _| running.iter().any(|(n, _)| n == name));
        let engine = apps.services.engine.clone();
        futures::stream::iter(running)
            .for_each_concurrent(CONCURRENT, |(app, container)| {
                let (engine, apps) = (engine.clone(), apps.clone());
                async move {
                    match engine.stats(&container).await {
                        Ok(Some(stats)) => apps.usage.record(&app, &container, stats, Instant::now()),
                        Ok(None) => {}
                        Err(e) => tracing::debug!(%app, error = %e, "no stats for the app's container"),
                    }
                }
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::engine::ContainerStats;

    #[test]
    fn cpu_is_a_rate_between_two_samples_of_one_container() {
        let usage = Usage::default();
        let start = Instant::now();
        let stats = |cpu_ns| ContainerStats { cpu_ns, memory_bytes: 5 << 20, memory_limit: Some(64 << 20) };
        usage.record("web", "c1", stats(1_000_000_000), start);
        assert_eq!(usage.latest()[0].1.cpu_cores, None, "one sample is no rate");
        usage.record("web", "c1", stats(3_000_000_000), start + Duration::from_secs(4));
        let (_, web) = &usage.latest()[0];
        assert!((web.cpu_cores.unwrap() - 0.5).abs() < 1e-9, "{web:?}");
        assert_eq!(web.memory_bytes, 5 << 20);
        usage.record("web", "c2", stats(10), start + Duration::from_secs(5));
        assert_eq!(usage.latest()[0].1.cpu_cores, None, "a new container starts afresh");
    }

    #[test]
    fn samples_are_taken_only_while_they_are_read() {
        let usage = Usage::default();
        assert!(!usage.wanted(Duration::from_secs(15)), "never read: no sampling");
        usage.latest();
        assert!(usage.wanted(Duration::from_secs(15)));
        *lock(&usage.read_at) = Some(Instant::now() - Duration::from_secs(301));
        assert!(!usage.wanted(Duration::from_secs(15)), "read long ago");
        assert!(usage.wanted(Duration::from_secs(31)), "ten intervals of 31 s is longer");
    }
}
