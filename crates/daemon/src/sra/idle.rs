//! Stops this daemon's execution containers nobody has used for
//! `sra.idle_stop_secs`. A container is only stopped when no command runs in
//! it and none is being set up; the next command starts it again (the
//! procedure's "stopped container" case).

use super::exec::SRA_CONTAINER_LABEL;
use super::EID_LABEL;
use crate::registry::{lock, Inner};
use std::sync::Arc;
use std::time::Duration;

/// How long the image's entry point gets between SIGTERM and SIGKILL (the
/// SRA specification: "SIGKILL about 10 seconds after that").
const STOP_GRACE_SECS: i64 = 10;

pub async fn stop_idle_containers(inner: Arc<Inner>) {
    super::conf::remove_leftover_staging(&inner);
    let idle = Duration::from_secs(inner.config.settings.sra.idle_stop_secs);
    let period = (idle / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
    loop {
        tokio::time::sleep(period).await;
        if let Err(e) = sweep(&inner, idle).await {
            tracing::debug!("idle SRA containers not checked: {e}");
        }
    }
}

async fn sweep(inner: &Inner, idle: Duration) -> Result<(), berth_core::engine::EngineError> {
    // Only this daemon's: containers another runner made are not berth's to stop.
    let containers = inner.engine.containers_labelled(SRA_CONTAINER_LABEL, &inner.instance).await?;
    inner.sra.prune_slots(|eid| containers.iter().any(|c| c.label(EID_LABEL) == Some(eid)));
    for container in containers {
        let Some(eid) = container.label(EID_LABEL) else { continue };
        if !container.state.is_running() {
            continue;
        }
        // A container from before this daemon started counts as used now.
        let slot = inner.sra.slot(eid);
        if lock(&slot.last_used).elapsed() < idle {
            continue;
        }
        let Ok(_setup) = slot.setup.try_lock() else { continue };
        let Ok(_idle) = slot.running.clone().try_write_owned() else { continue };
        tracing::info!(container = %container.id, "stopping idle SRA execution container");
        inner.engine.stop_container(&container.id, STOP_GRACE_SECS).await?;
        *lock(&slot.last_used) = std::time::Instant::now();
    }
    Ok(())
}
