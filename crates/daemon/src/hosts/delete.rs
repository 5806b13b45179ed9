//! `berth host delete`: committed when it begins (the user asked for the
//! host to be gone, and every step is safe to repeat), so a delete cut short
//! — the daemon killed, the engine away — is finished at the next start or
//! when asked again.
//!
//! ```text
//! forward: StopHost → RemoveHostContainers → RemoveHostVolumesAndNetworks
//!          → ReleaseHostImages → RemoveTree <root>/hosts/<name> (record, root, certificates)
//! ```
//!
//! What the host used but did not make — a network that existed before, an
//! image other containers use — is named in the answer and left.

use super::record::HostRecord;
use super::{HostError, Hosts};
use berth_api::HostDeleted;
use berth_core::engine::{ContainerObservation, Engine, Filter, Ownership};
use berth_core::journal::{Effect, OperationKind, Phase, Subject};
use berth_core::spec::LABEL_APP;
use berth_store::AppChange;
use std::collections::BTreeSet;

/// The networks every engine has; no host makes or takes them.
const ENGINE_NETWORKS: [&str; 3] = ["bridge", "host", "none"];

pub async fn run(hosts: &Hosts, name: &str, force: bool) -> Result<HostDeleted, HostError> {
    berth_core::AppName::parse(name).map_err(|e| HostError::Invalid {
        what: "host name",
        value: name.to_owned(),
        reason: e.to_string(),
    })?;
    let journal = &hosts.services.journal;
    let subject = Subject::Host(name.to_owned());
    match journal.open_entry_of(&subject).await? {
        // A delete cut short: finish it.
        Some(entry) if entry.kind == OperationKind::HostDelete => return finish(hosts, entry.id, entry.context).await,
        Some(entry) => {
            return Err(HostError::Busy { name: name.to_owned(), kind: entry.kind.as_str().replace('_', " ") })
        }
        None => {}
    }
    let Some(record) = hosts.record(name).await? else {
        // Finished already (at the start after a crash, say): what it did.
        return match journal.last_entry_of(&subject).await? {
            Some(entry) if entry.kind == OperationKind::HostDelete && entry.phase == Phase::Done => {
                Ok(answer(entry.context))
            }
            _ => Err(HostError::NotFound { name: name.to_owned() }),
        };
    };
    let engine = hosts.engine_for(record.engine.as_deref()).await?;
    let containers = engine.list(&Ownership::new(&record.instance).filter()).await?;
    let running: Vec<&str> =
        containers.iter().filter(|c| c.state.is_running()).filter_map(|c| c.label(LABEL_APP)).collect();
    if !running.is_empty() && !force {
        return Err(HostError::RunningApps { name: name.to_owned(), apps: running.join(", ") });
    }
    let plan = plan(hosts, &record, engine.as_ref(), &containers).await?;
    let forward = vec![
        Effect::StopHost { host: record.name.clone() },
        Effect::RemoveHostContainers {
            host: record.name.clone(),
            instance: record.instance.clone(),
            engine: record.engine.clone(),
        },
        Effect::RemoveHostVolumesAndNetworks {
            host: record.name.clone(),
            instance: record.instance.clone(),
            engine: record.engine.clone(),
        },
        Effect::ReleaseHostImages {
            host: record.name.clone(),
            images: plan.images.clone(),
            engine: record.engine.clone(),
        },
        Effect::RemoveTree { path: hosts.paths(name).dir },
    ];
    let context = serde_json::to_value(&plan.answer).unwrap_or_default();
    let id = journal.begin_committed(OperationKind::HostDelete, &subject, &context, forward, AppChange::None).await?;
    finish(hosts, id, context).await
}

async fn finish(hosts: &Hosts, id: i64, context: serde_json::Value) -> Result<HostDeleted, HostError> {
    use crate::journal::Settled;
    let journal = &hosts.services.journal;
    match journal.finish(id, OperationKind::HostDelete).await {
        Settled::Closed => {
            let answer = answer(context);
            tracing::info!(host = %answer.name, "host deleted");
            Ok(answer)
        }
        // Start-up recovery is finishing it: its end is this request's answer.
        Settled::Waiting { .. } if journal.is_claimed(id) => {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            while journal.is_claimed(id) && std::time::Instant::now() < deadline {
                // Recovery has no way to call back.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            match journal.entry(id).await? {
                Some(entry) if entry.phase == Phase::Done => Ok(answer(context)),
                _ => Err(HostError::Fs {
                    what: "the delete".into(),
                    reason: "it is not finished yet; it is finished when asked again or at the next start".into(),
                }),
            }
        }
        Settled::Waiting { effect, reason } => Err(HostError::Fs {
            what: format!("the delete waits to {effect}"),
            reason: format!("{reason}; it is finished when asked again or at the next start"),
        }),
        Settled::Halted(halted) => Err(crate::journal::JournalError::from(halted).into()),
        Settled::Failed(e) => Err(e.into()),
    }
}

fn answer(context: serde_json::Value) -> HostDeleted {
    serde_json::from_value(context).unwrap_or_else(|_| HostDeleted {
        name: String::new(),
        removed: Vec::new(),
        left: Vec::new(),
    })
}

struct Plan {
    answer: HostDeleted,
    images: Vec<String>,
}

/// What the delete removes and what it leaves, decided before it begins.
async fn plan(
    hosts: &Hosts,
    record: &HostRecord,
    engine: &dyn Engine,
    containers: &[ContainerObservation],
) -> Result<Plan, HostError> {
    let host = &record.name;
    let owner = Ownership::new(&record.instance);
    let mut removed: Vec<String> = containers.iter().map(|c| format!("container {}", c.name)).collect();
    let mut left = Vec::new();
    for volume in engine.list_volumes(&owner.filter()).await? {
        removed.push(format!("volume {}", volume.name));
    }
    let own_networks: BTreeSet<String> =
        engine.list_networks(&owner.filter()).await?.into_iter().map(|n| n.name).collect();
    removed.extend(own_networks.iter().map(|n| format!("network {n}")));
    let used: BTreeSet<&String> = containers.iter().flat_map(|c| c.networks.keys()).collect();
    for network in used {
        if !own_networks.contains(network) && !ENGINE_NETWORKS.contains(&network.as_str()) {
            left.push(format!("network {network} was not created by host {host}, leaving it"));
        }
    }
    // The images its apps run or keep for rollback, and its resource images.
    let mut images: BTreeSet<String> = containers.iter().map(|c| c.image_id.clone()).collect();
    images.extend(stored_images(hosts, record).await);
    let others = engine.list(&Filter::default()).await?;
    let mine: BTreeSet<&str> = containers.iter().map(|c| c.id.as_str()).collect();
    let mut release = Vec::new();
    for image in images.into_iter().filter(|i| !i.is_empty()) {
        let Some(info) = engine.inspect_image(&image).await? else { continue };
        let shown =
            info.repo_tags.first().cloned().unwrap_or_else(|| berth_core::spec::short_image_id(&info.id).to_owned());
        if others.iter().any(|c| c.image_id == info.id && !mine.contains(c.id.as_str())) {
            left.push(format!("image {shown} is used by containers that are not host {host}'s, leaving it"));
        } else {
            removed.push(format!("image {shown}"));
            release.push(info.id);
        }
    }
    removed.push(format!("the root, certificates and record of host {host}"));
    Ok(Plan { answer: HostDeleted { name: host.clone(), removed, left }, images: release })
}

/// The images the host's database names (a version kept for rollback has
/// no container); nothing when it cannot be read.
async fn stored_images(hosts: &Hosts, record: &HostRecord) -> Vec<String> {
    let db = hosts.paths(&record.name).root().join("berth.db");
    crate::fs::blocking("reading a host's database", move || {
        if !db.exists() {
            return Ok::<_, HostError>(Vec::new());
        }
        let store = berth_store::Store::open(&db)?;
        let mut images = Vec::new();
        for app in store.apps()? {
            images.push(app.spec.image_id);
            images.extend(app.previous.map(|p| p.image_id));
        }
        images.extend(store.resource_instances(None)?.into_iter().filter_map(|i| i.image_id));
        Ok(images)
    })
    .await
    .unwrap_or_default()
}
