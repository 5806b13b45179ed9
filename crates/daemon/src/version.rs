//! berth's version, and the version file (`<root>/version`, the VIC
//! appliance's key=value form): `berth=<git describe>`, `schema=<state
//! schema>` and `<app>=<image reference> <short image id>` for each
//! installed app. Written atomically at start and after each install,
//! upgrade, rollback or uninstall.

use crate::services::Services;
use berth_store::StoredApp;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT: &str = env!("BERTH_GIT_DESCRIBE");
pub const BUILD: &str = env!("BERTH_BUILD_NUMBER");
/// The state database's schema this berth writes.
pub const SCHEMA: i64 = berth_store::SCHEMA_VERSION;

pub fn render(apps: &[StoredApp]) -> String {
    let mut text =
        format!("berth={GIT}\nberth_version={VERSION}\nbuild={BUILD}\nschema={}\n", berth_store::SCHEMA_VERSION);
    for app in apps.iter().filter(|a| a.installed) {
        let id = berth_core::spec::short_image_id(&app.spec.image_id);
        text.push_str(&format!("{}={} {id}\n", app.spec.name, app.spec.image_ref));
    }
    text
}

/// Rewrites the version file; a failure is logged (it must not fail the operation).
pub async fn write(services: &Services) {
    let apps = match services.db::<_, crate::apps::error::AppError, _>("listing apps", |s| s.apps()).await {
        Ok(apps) => apps,
        Err(e) => return tracing::warn!(error = %e, "the version file is not updated"),
    };
    let path = services.config.root.join("version");
    let text = render(&apps);
    let written = crate::fs::blocking("writing the version file", move || {
        crate::fs::atomic_write_mode(&path, text.as_bytes(), 0o644)
            .map_err(|e| crate::fs::TaskFailed { what: "writing the version file", reason: e.to_string() })
    })
    .await;
    if let Err(e) = written {
        tracing::warn!(error = %e, "the version file is not updated");
    }
}
