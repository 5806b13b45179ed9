//! Failed sign-ins, counted per client address and overall in fixed
//! windows: a guesser gets a handful of tries a minute, and a swarm of
//! addresses cannot turn the daemon into an Argon2 furnace.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Failed sign-ins one address may make in a window.
pub const PER_ADDRESS: u32 = 5;
/// Failed sign-ins all addresses together may make in a window.
pub const OVERALL: u32 = 30;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

impl Window {
    fn new(now: Instant) -> Self {
        Self { started: now, failures: 0 }
    }

    /// The window as of `now` (a new one once the old has passed).
    fn current(self, now: Instant) -> Self {
        if now.duration_since(self.started) >= WINDOW {
            Self::new(now)
        } else {
            self
        }
    }

    /// When another attempt is allowed, if not now.
    fn blocked(self, limit: u32, now: Instant) -> Option<Duration> {
        (self.failures >= limit).then(|| (self.started + WINDOW).saturating_duration_since(now))
    }
}

struct Counts {
    by_address: HashMap<IpAddr, Window>,
    overall: Window,
}

pub struct LoginLimiter {
    counts: Mutex<Counts>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self { counts: Mutex::new(Counts { by_address: HashMap::new(), overall: Window::new(Instant::now()) }) }
    }
}

impl LoginLimiter {
    /// `Err(wait)` when `address` may not try now.
    pub fn check(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.overall = counts.overall.current(now);
        let mine = counts.by_address.get(&address).map_or(Window::new(now), |w| w.current(now));
        let wait = [mine.blocked(PER_ADDRESS, now), counts.overall.blocked(OVERALL, now)].into_iter().flatten().max();
        match wait {
            Some(wait) => Err(wait.max(Duration::from_secs(1))),
            None => Ok(()),
        }
    }

    pub fn failed(&self, address: IpAddr, now: Instant) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        // Windows that have passed are forgotten, so the map stays small.
        counts.by_address.retain(|_, w| now.duration_since(w.started) < WINDOW);
        let window = counts.by_address.entry(address).or_insert_with(|| Window::new(now));
        window.failures += 1;
        counts.overall = counts.overall.current(now);
        counts.overall.failures += 1;
    }

    /// A right password clears the address's count (not the overall one).
    pub fn succeeded(&self, address: IpAddr) {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).by_address.remove(&address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_held_off_after_its_failures_until_the_window_ends() {
        let limiter = LoginLimiter::default();
        let (guesser, other) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let start = Instant::now();
        for _ in 0..PER_ADDRESS {
            assert!(limiter.check(guesser, start).is_ok());
            limiter.failed(guesser, start);
        }
        let wait = limiter.check(guesser, start + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(limiter.check(other, start).is_ok(), "another address is not held off");
        assert!(limiter.check(guesser, start + WINDOW).is_ok(), "a new window starts afresh");
    }

    #[test]
    fn many_addresses_together_hit_the_overall_limit() {
        let limiter = LoginLimiter::default();
        let start = Instant::now();
        for i in 0..OVERALL {
            limiter.failed(IpAddr::from([10, 0, (i / 200) as u8, (i % 200) as u8]), start);
        }
        assert!(limiter.check(IpAddr::from([192, 168, 1, 1]), start).is_err());
    }

    #[test]
    fn a_success_clears_the_address() {
        let limiter = LoginLimiter::default();
        let me = IpAddr::from([127, 0, 0, 1]);
        let now = Instant::now();
        for _ in 0..PER_ADDRESS {
            limiter.failed(me, now);
        }
        limiter.succeeded(me);
        assert!(limiter.check(me, now).is_ok());
    }
}
