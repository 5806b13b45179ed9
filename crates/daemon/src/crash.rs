//! Deterministic crash points for the journal's tests. When the environment
//! variable `BERTH_TEST_CRASH_AT` names a point (e.g. `install:container_created`),
//! the daemon SIGKILLs itself on reaching it — exactly what `kill -9` does,
//! at exactly that moment. Unset (always, outside tests), it costs one
//! comparison.

use std::sync::OnceLock;

pub fn point(name: &str) {
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    let target = TARGET.get_or_init(|| std::env::var("BERTH_TEST_CRASH_AT").ok().filter(|v| !v.is_empty()));
    if target.as_deref() == Some(name) {
        tracing::warn!(point = name, "crash point reached; killing the daemon");
        // SAFETY: raising a signal at our own process touches no memory.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
