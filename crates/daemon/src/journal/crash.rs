//! Crash points: named places in every operation where the journal's tests
//! stop the daemon dead. In the daemon, `BERTH_TEST_CRASH_AT=<point>` makes it
//! SIGKILL itself on reaching that point — exactly what `kill -9` does, at
//! exactly that moment (the integration tests). In unit tests the journal is
//! told to *halt* there instead: the operation stops without undoing
//! anything, as if the process had died, and a fresh daemon state then runs
//! recovery against the same store and fake engine. Unset (always, outside
//! tests), a point costs one comparison.
//!
//! Points are named `<kind>:before_<step>`, `<kind>:before_commit`,
//! `<kind>:after_commit`, `<kind>:undo_<n>` and `<kind>:forward_<n>` (before
//! the effect with `n` effects left in its log).

use std::sync::Mutex;

#[derive(Debug)]
enum Mode {
    Off,
    Kill(String),
    Halt(String),
}

#[derive(Debug)]
pub struct CrashPoints {
    mode: Mode,
    record: bool,
    visited: Mutex<Vec<String>>,
}

/// The operation stopped at a crash point (unit tests only).
#[derive(Debug, Clone, thiserror::Error)]
#[error("halted at crash point {point}")]
pub struct Halted {
    pub point: String,
}

impl CrashPoints {
    /// As the environment says (`BERTH_TEST_CRASH_AT`).
    pub fn from_env() -> Self {
        match std::env::var("BERTH_TEST_CRASH_AT").ok().filter(|v| !v.is_empty()) {
            Some(point) => Self { mode: Mode::Kill(point), record: false, visited: Mutex::default() },
            None => Self::off(),
        }
    }

    pub fn off() -> Self {
        Self { mode: Mode::Off, record: false, visited: Mutex::default() }
    }

    /// Records every point reached (to learn a scenario's points).
    pub fn recording() -> Self {
        Self { mode: Mode::Off, record: true, visited: Mutex::default() }
    }

    /// Halts the operation at `point`.
    pub fn halt_at(point: &str) -> Self {
        Self { mode: Mode::Halt(point.to_owned()), record: true, visited: Mutex::default() }
    }

    pub fn reach(&self, point: &str) -> Result<(), Halted> {
        if self.record {
            self.visited.lock().unwrap_or_else(|e| e.into_inner()).push(point.to_owned());
        }
        match &self.mode {
            Mode::Off => Ok(()),
            Mode::Kill(target) if target == point => {
                tracing::warn!(point, "crash point reached; killing the daemon");
                let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
                // SIGKILL cannot be caught; this is never reached.
                std::process::abort()
            }
            Mode::Halt(target) if target == point => Err(Halted { point: point.to_owned() }),
            _ => Ok(()),
        }
    }

    /// The points reached so far, in order (when recording).
    pub fn visited(&self) -> Vec<String> {
        self.visited.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
