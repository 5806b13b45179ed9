//! SRA images: load (label and entry point checked), list, remove. Loading
//! and removal run on the journal: a load refused or cut short takes the
//! image it brought back out; a removal, once begun, is finished.

use super::error::SraError;
use super::exec::check_entry_point;
use super::{Sra, EID_LABEL, SRA_LABEL};
use crate::intake::{self, FetchRequest, FetchSource, ForOperation};
use crate::journal::{JournalError, Settled};
use berth_api::{SraImage, Upload};
use berth_core::engine::{Filter, ImageInfo, ProgressSink};
use berth_core::journal::{Effect, OperationKind, Subject};
use berth_store::AppChange;
use futures::StreamExt;
use std::sync::Arc;

/// What the API shows of an SRA image.
fn view(image: ImageInfo, containers: usize, foreign_containers: usize, config_digest: Option<String>) -> SraImage {
    SraImage {
        label: image.labels.get(SRA_LABEL).cloned().unwrap_or_default(),
        id: image.id,
        repo_tags: image.repo_tags,
        containers,
        foreign_containers,
        config_digest,
    }
}

/// Loads an SRA image archive. An image without the label, or without an
/// executable /srm/sra/command, is refused and taken out of the engine again.
pub async fn load(sra: &Sra, archive: Upload, origin: String) -> Result<SraImage, SraError> {
    let journal = &sra.services.journal;
    let subject = Subject::SraLoad(hex::encode(rand::random::<[u8; 8]>()));
    let context = serde_json::json!({ "origin": origin });
    let mut entry = journal.begin(OperationKind::SraLoad, &subject, &context, vec![], AppChange::None).await?;
    let cancel = sra.services.shutdown.child_token();
    let result = async {
        journal.step(&mut entry, "loading", &context, vec![]).await?;
        let quiet: ProgressSink = Arc::new(|_| {});
        let fetch = FetchRequest {
            source: FetchSource::Upload { origin: origin.clone(), size: None, body: archive.body.boxed() },
            sha256: None,
        };
        let loaded = intake::fetch(
            &sra.services,
            fetch,
            ForOperation { journal, op: &mut entry, app: None, cancel: &cancel, progress: quiet },
        )
        .await?;
        let image = sra.services.engine.inspect_image(&loaded.image_id).await?.ok_or_else(|| {
            berth_core::engine::EngineError::Load { reason: format!("the engine did not keep {}", loaded.image_id) }
        })?;
        if !image.labels.contains_key(SRA_LABEL) {
            return Err(SraError::InvalidValue {
                what: "SRA image",
                reason: format!("{origin} holds an image without the label {SRA_LABEL}; it is not an SRA"),
            });
        }
        check_entry_point(sra, &image.id, &origin).await?;
        let configured = sra.current(&image.id).await.is_ok();
        let undo = if configured { vec![] } else { vec![Effect::RemoveSraConfig { image_id: image.id.clone() }] };
        journal.step(&mut entry, "checking", &context, undo).await?;
        sra.ensure_config(&image.id).await?;
        Ok::<_, SraError>(image)
    }
    .await;
    let image = match result {
        Ok(image) => image,
        Err(e) if e.is_halted() => return Err(e),
        Err(e) => {
            journal.roll_back(entry, &e.to_string()).await;
            return Err(e);
        }
    };
    match journal.commit(&entry, &context, vec![], AppChange::None).await? {
        Settled::Halted(halted) => return Err(JournalError::from(halted).into()),
        Settled::Failed(e) => return Err(e.into()),
        _ => {}
    }
    let config_digest = sra.config_digest(&image.id).await.ok();
    let loaded = view(image, 0, 0, config_digest);
    let data = serde_json::json!({ "tags": loaded.repo_tags, "label": loaded.label, "origin": origin });
    sra.services.events.emit("sra.image_loaded", &loaded.id, data);
    Ok(loaded)
}

/// The SRA images in the engine, with this daemon's execution containers
/// counted (and other runners' apart), and the digest of their current
/// configuration.
pub async fn list(sra: &Sra) -> Result<Vec<SraImage>, SraError> {
    let engine = sra.services.engine.as_ref();
    let containers = engine.list(&Filter::default().has_label(EID_LABEL)).await?;
    let mut images = Vec::new();
    for image in engine.list_images(&Filter::default().has_label(SRA_LABEL)).await? {
        // An image loaded by other means gets its configuration on first sight.
        let config_digest = match sra.ensure_config(&image.id).await {
            Ok(()) => sra.config_digest(&image.id).await.ok(),
            Err(e) => {
                tracing::warn!(image = %image.id, "no SRA configuration: {e}");
                None
            }
        };
        let of_image: Vec<_> = containers.iter().filter(|c| c.image_id == image.id).collect();
        let ours = of_image.iter().filter(|c| sra.services.ownership.owns(c)).count();
        images.push(view(image, ours, of_image.len() - ours, config_digest));
    }
    images.sort_by(|a, b| a.repo_tags.cmp(&b.repo_tags).then(a.id.cmp(&b.id)));
    Ok(images)
}

/// Removes an SRA image, this daemon's execution containers of it and its
/// configuration. Other runners' containers are left (the engine then keeps
/// the image too, and says so). Refused while a command runs in one of ours,
/// unless `force`, which kills those commands first.
pub async fn remove(sra: &Sra, reference: &str, force: bool) -> Result<SraImage, SraError> {
    let image = sra.sra_image(reference).await?;
    let engine = sra.services.engine.as_ref();
    let all = engine.list(&Filter::default().has_label(EID_LABEL)).await?;
    let (ours, foreign): (Vec<_>, Vec<_>) =
        all.into_iter().filter(|c| c.image_id == image.id).partition(|c| sra.services.ownership.owns(c));
    // No command may run (or start) in the containers while they go.
    let mut held = Vec::new();
    let mut busy = 0;
    for container in &ours {
        let Some(eid) = container.label(EID_LABEL) else { continue };
        let slot = sra.state.slot(eid);
        match slot.running.clone().try_write_owned() {
            Ok(guard) => held.push(guard),
            Err(_) if force => {
                slot.kill_running();
                held.push(slot.running.clone().write_owned().await);
            }
            Err(_) => busy += 1,
        }
    }
    if busy > 0 {
        return Err(SraError::Busy { image: reference.to_owned(), commands: busy });
    }
    let mut forward: Vec<Effect> = ours.iter().map(|c| Effect::RemoveContainer { container: c.id.clone() }).collect();
    if foreign.is_empty() {
        forward.push(Effect::RemoveSraImage { image_id: image.id.clone(), tags: image.repo_tags.clone() });
    } else {
        tracing::warn!(image = %image.id, foreign = foreign.len(), "the image is kept: another runner's execution containers use it");
    }
    forward.push(Effect::RemoveSraConfig { image_id: image.id.clone() });
    let journal = &sra.services.journal;
    let subject = Subject::SraImage(image.id.clone());
    let context = serde_json::json!({ "image": image.id, "force": force });
    let id = journal.begin_committed(OperationKind::SraRemove, &subject, &context, forward, AppChange::None).await?;
    let settled = journal.finish(id, OperationKind::SraRemove).await;
    drop(held);
    match settled {
        Settled::Closed => {}
        Settled::Waiting { effect, reason } => {
            return Err(SraError::Waiting { image: reference.to_owned(), effect, reason })
        }
        Settled::Halted(halted) => return Err(JournalError::from(halted).into()),
        Settled::Failed(e) => return Err(e.into()),
    }
    let removed = view(image, ours.len(), foreign.len(), None);
    let data = serde_json::json!({ "tags": removed.repo_tags, "containers": ours.len(), "kept_for_others": !foreign.is_empty() });
    sra.services.events.emit("sra.image_removed", &removed.id, data);
    Ok(removed)
}
