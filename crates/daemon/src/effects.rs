//! What each journal effect does. The journal knows no capability; this is
//! where an effect meets the engine, the disk, systemd and the SRA
//! configurations. Every effect is idempotent: done twice, the second time
//! finds it done. Containers are only touched when they carry this
//! instance's label; the engine being away is worth a retry, anything else
//! is reported and not retried.

use crate::apps::units;
use crate::fs::{blocking, RestoreError, TaskFailed};
use crate::journal::{EffectError, EffectRunner};
use crate::resources::Resources;
use crate::services::Services;
use crate::sra::Sra;
use async_trait::async_trait;
use berth_core::engine::EngineError;
use berth_core::journal::Effect;
use berth_core::spec::LABEL_APP;
use berth_core::status::DesiredState;
use std::sync::{Arc, Weak};

pub struct Effects {
    pub services: Weak<Services>,
    pub sra: Weak<Sra>,
    pub resources: Weak<Resources>,
    pub hosts: Weak<crate::hosts::Hosts>,
}

fn engine_error(e: EngineError) -> EffectError {
    EffectError::engine(e)
}

fn fs_error(e: impl std::fmt::Display) -> EffectError {
    EffectError::permanent(e.to_string())
}

impl From<TaskFailed> for EffectError {
    fn from(e: TaskFailed) -> Self {
        EffectError::retry(e.to_string())
    }
}

#[async_trait]
impl EffectRunner for Effects {
    async fn apply(&self, effect: &Effect, entry: i64) -> Result<(), EffectError> {
        let services = self.services.upgrade().ok_or_else(|| EffectError::retry("the daemon is shutting down"))?;
        let engine = services.engine.as_ref();
        match effect {
            Effect::RemoveContainer { container } => remove_owned_container(&services, engine, container).await,
            Effect::RenameContainer { from, to } => match engine.inspect(from).await.map_err(engine_error)? {
                // Renamed already (or never set aside).
                None => Ok(()),
                Some(c) if !services.ownership.owns(&c) => {
                    Err(EffectError::permanent(format!("container {from} is not this berth's; it is left alone")))
                }
                Some(c) => engine.rename(&c.id, to).await.map_err(engine_error),
            },
            Effect::StartIfDesired { app } => {
                let name = app.to_string();
                let stored = services
                    .db::<_, crate::apps::error::AppError, _>("reading an app", move |s| s.app(&name))
                    .await
                    .map_err(fs_error)?;
                if !stored.is_some_and(|a| a.installed && a.desired == DesiredState::Running) {
                    return Ok(());
                }
                if services.systemd {
                    units::start_app_unit(&services, app).await;
                    return Ok(());
                }
                match engine.inspect(app.as_str()).await.map_err(engine_error)? {
                    Some(c) if services.ownership.owns(&c) && !c.state.is_running() => {
                        engine.start(&c.id).await.map_err(engine_error)
                    }
                    _ => Ok(()),
                }
            }
            Effect::ReleaseImage { image, app } => crate::intake::release(&services, image, app.as_ref(), entry).await,
            Effect::RemoveTree { path } | Effect::RemoveFile { path } => {
                let path = path.clone();
                blocking("removing files", move || crate::fs::remove_tree(&path).map_err(fs_error)).await
            }
            Effect::RestoreSnapshot { snapshot, target } => {
                let (snapshot, target) = (snapshot.clone(), target.clone());
                blocking("restoring a snapshot", move || match crate::fs::restore_tree(&snapshot, &target) {
                    Ok(()) => Ok(()),
                    Err(e @ RestoreError::NoSnapshot { .. }) => Err(EffectError::permanent(e.to_string())),
                    Err(e) => Err(fs_error(e)),
                })
                .await
            }
            Effect::MoveTree { from, to } => {
                let (from, to) = (from.clone(), to.clone());
                blocking("moving files into place", move || {
                    if std::fs::symlink_metadata(&from).is_err() {
                        return Ok(());
                    }
                    crate::fs::remove_tree(&to).map_err(fs_error)?;
                    crate::fs::rename_durably(&from, &to).map_err(fs_error)
                })
                .await
            }
            Effect::RemoveUnit { app } => units::remove_app_unit(&services, app).await.map_err(fs_error),
            Effect::StartUnit { app } => {
                units::start_app_unit(&services, app).await;
                Ok(())
            }
            Effect::DeleteApp { app } => {
                let name = app.to_string();
                services
                    .db::<_, crate::apps::error::AppError, _>("removing an app", move |s| s.delete_app(&name))
                    .await
                    .map_err(fs_error)
            }
            Effect::RemoveSraConfig { image_id } => match self.sra.upgrade() {
                Some(sra) => sra.forget_config(image_id).await.map_err(fs_error),
                None => Err(EffectError::retry("the daemon is shutting down")),
            },
            Effect::RemoveVolume { name } => match engine.inspect_volume(name).await.map_err(engine_error)? {
                None => Ok(()),
                Some(v) if !services.ownership.owns_labels(&v.labels) => {
                    Err(EffectError::permanent(format!("volume {name} is not this berth's; it is left alone")))
                }
                Some(_) => remove_volume(engine, name).await,
            },
            Effect::RemoveAppVolumes { app } => {
                let filter = services.ownership.filter().label(LABEL_APP, app.as_str());
                for volume in engine.list_volumes(&filter).await.map_err(engine_error)? {
                    remove_volume(engine, &volume.name).await?;
                }
                Ok(())
            }
            Effect::RemoveResourceContainer { .. }
            | Effect::RemoveResourceNetwork { .. }
            | Effect::RemoveResourceVolume { .. }
            | Effect::DeleteResourceInstance { .. }
            | Effect::FailResourceRequest { .. } => match self.resources.upgrade() {
                Some(resources) => resource_effect(&resources, effect).await,
                None => Err(EffectError::retry("the daemon is shutting down")),
            },
            Effect::StopHost { .. }
            | Effect::RemoveHostContainers { .. }
            | Effect::RemoveHostVolumesAndNetworks { .. }
            | Effect::ReleaseHostImages { .. } => match self.hosts.upgrade() {
                Some(hosts) => crate::hosts::effects::apply(&hosts, effect, entry).await,
                None => Err(EffectError::retry("the daemon is shutting down")),
            },
            Effect::RemoveSraImage { image_id, tags } => {
                for tag in tags {
                    match engine.remove_image(tag).await {
                        Ok(()) | Err(EngineError::NotFound { .. }) => {}
                        Err(e) => return Err(engine_error(e)),
                    }
                }
                match engine.remove_image(image_id).await {
                    Ok(()) | Err(EngineError::NotFound { .. }) => Ok(()),
                    Err(e) => Err(engine_error(e)),
                }
            }
        }
    }
}

/// A volume that a container outside berth still uses is left (and said so):
/// the data is someone's, and waiting for them would hold the operation.
async fn remove_volume(engine: &dyn berth_core::engine::Engine, name: &str) -> Result<(), EffectError> {
    match engine.remove_volume(name).await {
        Ok(()) => Ok(()),
        Err(e @ EngineError::Conflict { .. }) => {
            tracing::warn!(volume = name, error = %e, "volume left in place");
            Ok(())
        }
        Err(e) => Err(engine_error(e)),
    }
}

/// Stops and removes a container of this instance; one that is gone is fine,
/// one that is not this instance's is left alone.
async fn remove_owned_container(
    services: &Services,
    engine: &dyn berth_core::engine::Engine,
    container: &str,
) -> Result<(), EffectError> {
    match engine.inspect(container).await.map_err(engine_error)? {
        None => Ok(()),
        Some(c) if !services.ownership.owns(&c) => {
            Err(EffectError::permanent(format!("container {container} is not this berth's; it is left alone")))
        }
        Some(c) => {
            engine.stop(&c.id, services.config.settings.stop_timeout_secs).await.map_err(engine_error)?;
            engine.remove(&c.id).await.map_err(engine_error)
        }
    }
}

/// The resource manager's effects, in the engine of the location they name.
async fn resource_effect(resources: &Resources, effect: &Effect) -> Result<(), EffectError> {
    let services = &resources.services;
    let engine_of = |location: &str| {
        resources
            .location(location)
            .map(|l| l.engine.clone())
            .ok_or_else(|| EffectError::permanent(format!("location {location} is no longer configured")))
    };
    match effect {
        Effect::RemoveResourceContainer { location, container } => {
            remove_owned_container(services, engine_of(location)?.as_ref(), container).await
        }
        Effect::RemoveResourceNetwork { location, network } => {
            let engine = engine_of(location)?;
            match engine.inspect_network(network).await.map_err(engine_error)? {
                None => Ok(()),
                Some(n) if !services.ownership.owns_labels(&n.labels) => {
                    Err(EffectError::permanent(format!("network {network} is not this berth's; it is left alone")))
                }
                Some(n) => engine.remove_network(&n.id).await.map_err(engine_error),
            }
        }
        Effect::RemoveResourceVolume { location, volume } => {
            let engine = engine_of(location)?;
            match engine.inspect_volume(volume).await.map_err(engine_error)? {
                None => Ok(()),
                Some(v) if !services.ownership.owns_labels(&v.labels) => {
                    Err(EffectError::permanent(format!("volume {volume} is not this berth's; it is left alone")))
                }
                Some(_) => remove_volume(engine.as_ref(), volume).await,
            }
        }
        Effect::DeleteResourceInstance { id } => {
            let id = id.clone();
            resources.db(move |s| s.delete_instance(&id)).await.map_err(fs_error)
        }
        Effect::FailResourceRequest { request_id } => resources
            .end_failed(request_id, "interrupted", crate::resources::error::failure::INTERNAL_ERROR)
            .await
            .map_err(|e| EffectError::retry(e.to_string())),
        other => Err(EffectError::permanent(format!("{} is not a resource effect", other.describe()))),
    }
}

/// The effect runner of a daemon whose capabilities are assembled.
pub fn runner(
    services: &Arc<Services>,
    sra: &Arc<Sra>,
    resources: &Arc<Resources>,
    hosts: &Arc<crate::hosts::Hosts>,
) -> Arc<Effects> {
    Arc::new(Effects {
        services: Arc::downgrade(services),
        sra: Arc::downgrade(sra),
        resources: Arc::downgrade(resources),
        hosts: Arc::downgrade(hosts),
    })
}
