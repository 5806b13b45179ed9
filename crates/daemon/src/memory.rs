//! The daemon's memory, as glibc's allocator holds it. By default glibc
//! makes up to eight arenas per CPU, one per thread that contends, and keeps
//! what is freed in each for reuse: after a burst of installs (archives
//! streamed, JSON parsed, SQLite pages) the daemon would hold tens of MiB it
//! no longer uses. So the arenas are limited to two, and once work is over
//! (no event for a few seconds) free memory is handed back to the system.
//!
//! Two glibc calls through libc: the only `unsafe` in the daemon.
#![allow(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Quiet this long after the last event before memory is handed back.
const QUIET: Duration = Duration::from_secs(3);

/// Limits the allocator to two arenas; call before the runtime's threads start.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes two integers and changes only the allocator's settings.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Hands the allocator's free memory back to the system.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes an integer and only releases free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// After each spell of work (events), once it has been quiet for [`QUIET`],
/// hands free memory back; waits on the events alone, so an idle daemon does
/// nothing here.
pub async fn give_back_after_work<T: Clone>(mut live: broadcast::Receiver<Arc<T>>) {
    loop {
        match live.recv().await {
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
        loop {
            match tokio::time::timeout(QUIET, live.recv()).await {
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) => return,
                Err(_) => break,
            }
        }
        let _ = tokio::task::spawn_blocking(give_back).await;
    }
}
