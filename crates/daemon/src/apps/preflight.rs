//! What the engine would refuse only once the image is loaded and the
//! container is being made, checked against the engine before anything
//! changes, with a message that names the option: a `--network` (or
//! `container:` peer) that does not exist. (Limits such as `--cpus` are
//! checked with the request, against the engine's CPU count.)
//! Named volumes are made here too, labelled as berth's, so that the
//! operation that made one can remove it again.

use super::error::AppError;
use crate::journal::{Journal, Op};
use crate::services::Services;
use berth_core::journal::Effect;
use berth_core::run_args::RunOptions;
use berth_core::spec::{AppSpec, LABEL_APP};
use std::collections::BTreeMap;

/// Networks every engine has, whatever is defined.
const BUILT_IN_NETWORKS: &[&str] = &["bridge", "host", "none", "default"];

pub async fn check(services: &Services, options: &RunOptions) -> Result<(), AppError> {
    let engine = services.engine.as_ref();
    if let Some(network) = options.network.as_deref() {
        let exists = match network.strip_prefix("container:") {
            Some(peer) => engine.inspect(peer).await?.is_some(),
            None => BUILT_IN_NETWORKS.contains(&network) || engine.network_exists(network).await?,
        };
        if !exists {
            let what = if network.starts_with("container:") { "container" } else { "network" };
            return Err(AppError::InvalidValue {
                what: "--network",
                reason: format!("there is no {what} {:?} in the engine", network.trim_start_matches("container:")),
            });
        }
    }
    Ok(())
}

/// The named volumes of `spec` that do not exist yet: each is made with
/// berth's labels, its removal recorded in the operation's undo log first.
/// A volume that exists already (made by anyone, or kept by an earlier
/// uninstall) is used as it is and never removed by this operation.
pub async fn make_volumes(
    services: &Services,
    journal: &Journal,
    entry: &mut Op,
    spec: &AppSpec,
) -> Result<(), AppError> {
    let engine = services.engine.as_ref();
    let mut labels = BTreeMap::from([(LABEL_APP.to_owned(), spec.name.to_string())]);
    services.ownership.mark(&mut labels);
    for name in named_volumes(&spec.options) {
        if engine.inspect_volume(name).await?.is_some() {
            continue;
        }
        journal.add_undo(entry, Effect::RemoveVolume { name: name.to_owned() }).await?;
        engine.create_volume(name, &labels).await?;
    }
    Ok(())
}

fn named_volumes(options: &RunOptions) -> impl Iterator<Item = &str> {
    options.mounts.iter().filter_map(|m| m.source.as_deref()).filter(|source| !source.starts_with('/'))
}
