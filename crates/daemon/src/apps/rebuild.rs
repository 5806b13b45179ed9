//! `berth doctor --rebuild` for apps: every app container of this instance
//! keeps its app's record (label `berth.kept`); an app the database does not
//! know is recorded from it, its unit written and its task started. The
//! desired state is the container's: a running container's app is to run; a
//! stopped one's stays stopped (berth never starts what it cannot tell the
//! user did not stop). A name the database knows, or an operation is under
//! way on, is left as it is.

use super::error::AppError;
use super::registry::Runtime;
use super::{actor, Apps};
use berth_api::RebuildItem;
use berth_core::journal::Subject;
use berth_core::kept::{decode, KeptApp, LABEL_KEPT};
use berth_core::spec::{short_image_id, LABEL_APP};
use berth_core::status::{AppState, DesiredState};
use berth_store::StoredApp;
use std::sync::Arc;

const KIND: &str = "app";

pub async fn rebuild(apps: &Arc<Apps>) -> Result<Vec<RebuildItem>, AppError> {
    let services = &apps.services;
    let containers = services.engine.list(&services.ownership.filter().has_label(LABEL_APP)).await?;
    let mut items = Vec::new();
    // An app's current container is named after it; one kept aside by an
    // upgrade under way (or left by one cut short) is not the app.
    for container in containers.iter().filter(|c| c.label(LABEL_APP) == Some(c.name.as_str())) {
        let name = container.name.clone();
        let skipped = |message: String| RebuildItem::new(KIND, &name, "skipped", message);
        let Some(label) = container.label(LABEL_KEPT) else {
            items.push(skipped(format!(
                "container {name} was made by a berth that kept no record in it; reinstall the app (its data in the private directory stays)"
            )));
            continue;
        };
        let kept: KeptApp = match decode(label) {
            Ok(kept) => kept,
            Err(e) => {
                items.push(skipped(format!("the record container {name} keeps cannot be read: {e}")));
                continue;
            }
        };
        if kept.spec.name.as_str() != name {
            items.push(skipped(format!("container {name} keeps the record of another app, {}", kept.spec.name)));
            continue;
        }
        if services.journal.open_entry_of(&Subject::App(kept.spec.name.clone())).await?.is_some() {
            items.push(RebuildItem::new(KIND, &name, "recorded", "an operation is under way on it; left as it is"));
            continue;
        }
        let desired = if container.state.is_running() { DesiredState::Running } else { DesiredState::Stopped };
        let stored = StoredApp {
            spec: kept.spec.clone(),
            previous: kept.previous.clone(),
            desired,
            installed: true,
            created_at: kept.created_at,
        };
        let row = stored.clone();
        if !services.db::<_, AppError, _>("recording a rebuilt app", move |s| s.restore_app(&row)).await? {
            items.push(RebuildItem::new(KIND, &name, "recorded", "the database knows it; left as it is"));
            continue;
        }
        super::units::write_app_unit(services, &kept.spec.name).await?;
        let runtime = Runtime::shared(stored.spec, desired, AppState::Starting, stored.created_at, stored.previous);
        let handle = actor::spawn(apps.clone(), runtime);
        if let Some(sender) = &handle.commands {
            // Its task looks at the container, as every task does at start.
            let _ = sender.try_send(super::command::Command::Reconcile);
        }
        apps.registry.insert(&name, handle);
        let previous = kept.previous.map(|p| format!(", previous version {}", p.image_ref)).unwrap_or_default();
        tracing::info!(app = %name, desired = desired.as_str(), "app rebuilt from its container's record");
        items.push(RebuildItem::new(
            KIND,
            &name,
            "restored",
            format!(
                "{} ({}){previous}, {}",
                kept.spec.image_ref,
                short_image_id(&kept.spec.image_id),
                desired.as_str()
            ),
        ));
    }
    Ok(items)
}
