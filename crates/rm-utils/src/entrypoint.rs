//! berth-rm-entrypoint: the container's PID 1.
//!
//! It keeps the resource container alive between the `docker exec`s that run
//! lifecycle and operation scripts, reaps every process that is orphaned
//! onto it (so background daemons started by scripts never pile up as
//! zombies), and exits 0 as soon as it receives SIGTERM or SIGINT, so that
//! `docker stop` does not wait for its grace period. It runs nothing itself:
//! arguments (a CMD, or `docker run IMAGE ARGS…`) are ignored, with a note on
//! stderr.

use crate::sys;

pub fn run(args: &[String]) -> i32 {
    if !args.is_empty() {
        eprintln!(
            "berth-rm-entrypoint: ignoring arguments {args:?} (this entrypoint only keeps the \
             container alive; resource software is started by the lifecycle scripts)"
        );
    }
    // Blocked signals stay pending and are collected by sigwait below. This
    // also works for PID 1, which the kernel shields from signals that have
    // no handler: blocked signals are queued, not discarded.
    let set = match sys::block_signals(&[sys::SIGTERM, sys::SIGINT, sys::SIGCHLD]) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("berth-rm-entrypoint: cannot block signals: {e}");
            return 1;
        }
    };
    loop {
        // Reap first: SIGCHLD coalesces, and children may predate the mask.
        sys::reap_children();
        match sys::wait_signal(&set) {
            Ok(sys::SIGTERM) | Ok(sys::SIGINT) => {
                sys::reap_children();
                return 0;
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("berth-rm-entrypoint: sigwait failed: {e}");
                return 1;
            }
        }
    }
}
