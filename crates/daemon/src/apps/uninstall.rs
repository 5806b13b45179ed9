//! The uninstall operation, run by the app's task. The user asked for the
//! app to be gone and every step is safe to repeat, so it commits when it
//! begins: its whole plan — container, unit, private directory, snapshots,
//! the named volumes berth made for it, images (when nothing else uses
//! them), the app's row — is forward work, finished even across a crash or
//! an engine outage.

use super::error::AppError;
use super::upgrade::snapshots;
use super::Apps;
use crate::journal::Settled;
use berth_api::Uninstalled;
use berth_core::journal::{Effect, ImageHandle, OperationKind, Subject, UninstallRecord};
use berth_core::spec::AppSpec;
use berth_store::AppChange;

pub async fn run(
    apps: &Apps,
    spec: &AppSpec,
    previous: Option<&AppSpec>,
    keep_data: bool,
) -> Result<Uninstalled, AppError> {
    let journal = &apps.services.journal;
    let app = spec.name.clone();
    let subject = Subject::App(app.clone());
    // An earlier uninstall cut short (the engine went away) is finished, with the options it was given.
    let (id, keep_data) = match journal.open_entry_of(&subject).await? {
        Some(entry) if entry.kind == OperationKind::Uninstall => {
            let record: Option<UninstallRecord> = serde_json::from_value(entry.context.clone()).ok();
            (entry.id, record.map_or(keep_data, |r| r.keep_data))
        }
        Some(entry) => return Err(AppError::Busy { app: app.to_string(), kind: entry.kind.as_str().into() }),
        None => {
            let mut forward =
                vec![Effect::RemoveContainer { container: app.to_string() }, Effect::RemoveUnit { app: app.clone() }];
            if !keep_data {
                forward.push(Effect::RemoveTree { path: apps.private_dir(app.as_str()) });
                forward.push(Effect::RemoveTree { path: snapshots(apps, app.as_str()) });
                forward.push(Effect::RemoveAppVolumes { app: app.clone() });
            }
            let images = std::iter::once(spec.image_id.clone())
                .chain(previous.map(|p| p.image_id.clone()).filter(|id| *id != spec.image_id))
                .filter(|id| !id.is_empty());
            // The app's own row still names its images until the last step.
            forward.extend(
                images.map(|id| Effect::ReleaseImage { image: ImageHandle::Id { id }, app: Some(app.clone()) }),
            );
            forward.push(Effect::DeleteApp { app: app.clone() });
            let record = UninstallRecord { app: app.clone(), keep_data };
            let id = journal
                .begin_committed(
                    OperationKind::Uninstall,
                    &subject,
                    &record,
                    forward,
                    AppChange::RequireInstalled(app.to_string()),
                )
                .await?;
            (id, keep_data)
        }
    };
    match journal.finish(id, OperationKind::Uninstall).await {
        Settled::Closed => {}
        Settled::Waiting { effect, reason } => {
            return Err(AppError::Waiting { app: app.to_string(), what: "the uninstall", effect, reason })
        }
        Settled::Halted(halted) => return Err(crate::journal::JournalError::from(halted).into()),
        Settled::Failed(e) => return Err(e.into()),
    }
    let removed_image = apps.services.engine.inspect_image(&spec.image_id).await.is_ok_and(|i| i.is_none());
    Ok(Uninstalled { name: app.to_string(), kept_data: keep_data, removed_image })
}
