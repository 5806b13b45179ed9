//! Stops this daemon's execution containers nobody has used for
//! `sra.idle_stop_secs`. A container is only stopped when no command runs in
//! it and none is being set up; the next command starts it again (the
//! procedure's "stopped container" case). Containers are stopped
//! concurrently: an entry point that ignores SIGTERM (`cat`) takes the whole
//! grace period, and one such container must not delay the others.

use super::{Sra, EID_LABEL};
use crate::services::lock;
use std::sync::Arc;
use std::time::Duration;

/// How long the image's entry point gets between SIGTERM and SIGKILL (the
/// SRA specification: "SIGKILL about 10 seconds after that").
const STOP_GRACE_SECS: i64 = 10;

pub async fn stop_idle_containers(sra: Arc<Sra>) {
    sra.remove_leftover_staging().await;
    let idle = Duration::from_secs(sra.services.config.settings.sra.idle_stop_secs);
    let period = (idle / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = sra.services.shutdown.cancelled() => return,
        }
        if let Err(e) = sweep(&sra, idle).await {
            tracing::debug!("idle SRA containers not checked: {e}");
        }
    }
}

pub(super) async fn sweep(sra: &Sra, idle: Duration) -> Result<(), berth_core::engine::EngineError> {
    // Only this daemon's: containers another runner made are not berth's to stop.
    let containers = sra.services.engine.list(&sra.ours()).await?;
    sra.state.prune_slots(|eid| containers.iter().any(|c| c.label(EID_LABEL) == Some(eid)));
    let mut stops = Vec::new();
    for container in containers {
        let Some(eid) = container.label(EID_LABEL) else { continue };
        if !container.state.is_running() {
            continue;
        }
        // A container from before this daemon started counts as used now.
        let slot = sra.state.slot(eid);
        if lock(&slot.last_used).elapsed() < idle {
            continue;
        }
        let Ok(setup) = slot.setup.clone().try_lock_owned() else { continue };
        let Ok(idle_guard) = slot.running.clone().try_write_owned() else { continue };
        let engine = sra.services.engine.clone();
        stops.push(async move {
            tracing::info!(container = %container.id, "stopping idle SRA execution container");
            let stopped = engine.stop(&container.id, STOP_GRACE_SECS).await;
            *lock(&slot.last_used) = tokio::time::Instant::now();
            drop((setup, idle_guard));
            stopped
        });
    }
    for stopped in futures::future::join_all(stops).await {
        stopped?;
    }
    Ok(())
}
