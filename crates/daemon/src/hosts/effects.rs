//! The journal effects of hosts. Each is idempotent; everything a host made
//! is found by the host's instance label, in the host's engine.

use super::record::{HostPaths, Supervisor};
use super::{client_of, Hosts};
use crate::journal::EffectError;
use berth_core::engine::{Engine, EngineError, Ownership};
use berth_core::journal::Effect;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a host's daemon gets to stop after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(25);

pub async fn apply(hosts: &Hosts, effect: &Effect, entry: i64) -> Result<(), EffectError> {
    match effect {
        Effect::StopHost { host } => stop(hosts, host).await,
        Effect::RemoveHostContainers { instance, engine, .. } => {
            let engine = engine_of(hosts, engine.as_deref()).await?;
            let stop_secs = hosts.services.config.settings.stop_timeout_secs;
            for container in engine.list(&Ownership::new(instance).filter()).await.map_err(EffectError::engine)? {
                engine.stop(&container.id, stop_secs).await.map_err(EffectError::engine)?;
                engine.remove(&container.id).await.map_err(EffectError::engine)?;
            }
            Ok(())
        }
        Effect::RemoveHostVolumesAndNetworks { host, instance, engine } => {
            let engine = engine_of(hosts, engine.as_deref()).await?;
            let filter = Ownership::new(instance).filter();
            for volume in engine.list_volumes(&filter).await.map_err(EffectError::engine)? {
                match engine.remove_volume(&volume.name).await {
                    Ok(()) => {}
                    Err(e @ EngineError::Conflict { .. }) => {
                        tracing::warn!(%host, volume = %volume.name, error = %e, "volume left: something else uses it")
                    }
                    Err(e) => return Err(EffectError::engine(e)),
                }
            }
            for network in engine.list_networks(&filter).await.map_err(EffectError::engine)? {
                match engine.remove_network(&network.id).await {
                    Ok(()) => {}
                    Err(e @ EngineError::Conflict { .. }) => {
                        tracing::warn!(%host, network = %network.name, error = %e, "network left: something else uses it")
                    }
                    Err(e) => return Err(EffectError::engine(e)),
                }
            }
            Ok(())
        }
        Effect::ReleaseHostImages { images, engine: uri, .. } => {
            let engine = engine_of(hosts, uri.as_deref()).await?;
            for image in images {
                // This daemon's own apps (and other operations, not this
                // one) may use the same image on the same engine.
                if uri.is_none() {
                    let id = image.clone();
                    let used = hosts
                        .services
                        .db::<_, super::HostError, _>("checking image use", move |s| {
                            s.image_in_use(&id, None, Some(entry))
                        })
                        .await
                        .map_err(|e| EffectError::permanent(e.to_string()))?;
                    if used {
                        continue;
                    }
                }
                crate::intake::remove_unused_image(engine.as_ref(), image).await.map_err(EffectError::engine)?;
            }
            Ok(())
        }
        other => Err(EffectError::permanent(format!("{} is not a host effect", other.describe()))),
    }
}

async fn engine_of(hosts: &Hosts, uri: Option<&str>) -> Result<Arc<dyn Engine>, EffectError> {
    hosts.engine_for(uri).await.map_err(|e| EffectError::retry(e.to_string()))
}

/// Stops the host's daemon, however it runs: the supervised child, its
/// systemd unit (removed with it), or one a killed predecessor left.
async fn stop(hosts: &Hosts, host: &str) -> Result<(), EffectError> {
    hosts.children.stop(host).await;
    let paths = hosts.paths(host);
    if let Some(record) = hosts.record(host).await.map_err(|e| EffectError::retry(e.to_string()))? {
        if record.supervisor == Supervisor::Systemd {
            let unit = berth_core::units::host_unit_name_str(host);
            crate::apps::units::systemctl(&["disable", "--now", &unit]).await;
            let file = hosts.services.config.unit_dir.join(&unit);
            crate::fs::blocking("removing a host's unit", move || {
                crate::fs::remove_tree(&file).map_err(|e| EffectError::permanent(e.to_string()))
            })
            .await?;
            crate::apps::units::systemctl(&["daemon-reload"]).await;
        }
    }
    if stop_stray_daemon(&paths).await {
        Ok(())
    } else {
        Err(EffectError::permanent(format!(
            "another daemon answers on {}; it is not host {host}'s, so it is left alone",
            paths.socket().display()
        )))
    }
}

/// A daemon answering on the host's socket for the host's root is stopped
/// (SIGTERM, SIGKILL after the grace period). False when the socket is
/// answered for another root.
pub async fn stop_stray_daemon(paths: &HostPaths) -> bool {
    let client = client_of(paths);
    let Ok(Ok(info)) = tokio::time::timeout(Duration::from_secs(5), client.info()).await else { return true };
    let root = paths.root();
    let same = std::path::Path::new(&info.root) == root
        || std::path::Path::new(&info.root).canonicalize().ok() == root.canonicalize().ok();
    if !same || info.pid == 0 {
        return false;
    }
    tracing::info!(root = %info.root, pid = info.pid, "stopping a host daemon this daemon does not supervise");
    super::child::signal(info.pid, rustix::process::Signal::TERM);
    // Until it has exited, not only stopped answering: while it winds down
    // it still supervises its apps, and would restart what the delete stops.
    if !exited_within(info.pid, STOP_GRACE).await {
        super::child::signal(info.pid, rustix::process::Signal::KILL);
        exited_within(info.pid, Duration::from_secs(5)).await;
    }
    true
}

async fn exited_within(pid: u32, grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if has_exited(pid) {
            return true;
        }
        // A process that is not our child cannot be waited for.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    has_exited(pid)
}

/// Gone, or a zombie nobody has reaped yet.
fn has_exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S …": the state follows the last ')'.
        Ok(stat) => {
            stat.rsplit_once(')').is_none_or(|(_, rest)| matches!(rest.trim_start().chars().next(), Some('Z' | 'X')))
        }
    }
}
