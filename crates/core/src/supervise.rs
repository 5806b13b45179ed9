//! When to restart a crashed app, and when to give up. Pure arithmetic over
//! durations: the caller supplies the clock and the jitter.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// Delay before the first restart.
    pub initial_backoff: Duration,
    /// Upper bound of the delay, however many crashes came before.
    pub max_backoff: Duration,
    /// Crashes in a row after which the app is `failed`.
    pub max_crashes: u32,
    /// Uptime after which a run counts as stable and the crash count resets.
    pub stable_after: Duration,
    /// Fraction of the delay added or removed at random, so that many apps
    /// crashing together (an engine restart) do not restart in lockstep.
    pub jitter: f64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            max_crashes: 5,
            stable_after: Duration::from_secs(60),
            jitter: 0.2,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RestartDecision {
    RestartAfter { delay: Duration, attempt: u32 },
    GiveUp { crashes: u32 },
}

/// Counts an app's consecutive crashes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CrashCounter {
    crashes: u32,
    started_at: Option<Duration>,
}

impl CrashCounter {
    pub fn crashes(&self) -> u32 {
        self.crashes
    }

    /// The container started at `now` (any monotonic clock).
    pub fn started(&mut self, now: Duration) {
        self.started_at = Some(now);
    }

    /// The user started or restarted the app: crashes before it don't count.
    pub fn reset(&mut self) {
        self.crashes = 0;
    }

    /// The container exited unexpectedly at `now`. `random_unit` in [0, 1)
    /// chooses the jitter.
    pub fn exited(&mut self, policy: &RestartPolicy, now: Duration, random_unit: f64) -> RestartDecision {
        let uptime = self.started_at.take().map(|start| now.saturating_sub(start));
        if uptime.is_some_and(|up| up >= policy.stable_after) {
            self.crashes = 0;
        }
        self.crashes += 1;
        if self.crashes >= policy.max_crashes {
            return RestartDecision::GiveUp { crashes: self.crashes };
        }
        RestartDecision::RestartAfter { delay: backoff(policy, self.crashes, random_unit), attempt: self.crashes }
    }
}

/// `initial × 2^(attempt-1)`, capped, then spread by ± jitter.
pub fn backoff(policy: &RestartPolicy, attempt: u32, random_unit: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(31);
    let base = policy.initial_backoff.saturating_mul(1u32 << exponent).min(policy.max_backoff);
    let spread = policy.jitter.clamp(0.0, 1.0) * (random_unit.clamp(0.0, 1.0) * 2.0 - 1.0);
    base.mul_f64(1.0 + spread).min(policy.max_backoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn no_jitter() -> RestartPolicy {
        RestartPolicy { jitter: 0.0, initial_backoff: secs(1), max_backoff: secs(8), ..Default::default() }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = no_jitter();
        let delays: Vec<_> = (1..=6).map(|n| backoff(&p, n, 0.5)).collect();
        assert_eq!(delays, [secs(1), secs(2), secs(4), secs(8), secs(8), secs(8)]);
        assert_eq!(backoff(&p, u32::MAX, 0.5), secs(8));
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let p = RestartPolicy { jitter: 0.2, initial_backoff: secs(10), max_backoff: secs(100), ..Default::default() };
        assert_eq!(backoff(&p, 1, 0.0), secs(8));
        assert_eq!(backoff(&p, 1, 0.5), secs(10));
        assert!(backoff(&p, 1, 0.999_999) <= secs(12));
    }

    #[test]
    fn repeated_crashes_give_up() {
        let p = no_jitter();
        let mut c = CrashCounter::default();
        let mut now = secs(0);
        for attempt in 1..p.max_crashes {
            c.started(now);
            now += secs(1);
            assert_eq!(
                c.exited(&p, now, 0.5),
                RestartDecision::RestartAfter { delay: backoff(&p, attempt, 0.5), attempt }
            );
        }
        c.started(now);
        assert_eq!(c.exited(&p, now + secs(1), 0.5), RestartDecision::GiveUp { crashes: p.max_crashes });
    }

    #[test]
    fn stable_uptime_resets_the_count() {
        let p = no_jitter();
        let mut c = CrashCounter::default();
        for _ in 0..3 {
            c.started(secs(0));
            c.exited(&p, secs(1), 0.5);
        }
        assert_eq!(c.crashes(), 3);
        c.started(secs(10));
        let decision = c.exited(&p, secs(10) + p.stable_after, 0.5);
        assert_eq!(decision, RestartDecision::RestartAfter { delay: secs(1), attempt: 1 });
    }
}
