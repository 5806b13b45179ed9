//! The built-in types, run by berth itself (Docker RM guide 3.3, 3.4):
//! `resource::docker-network::1.0` (a bridge network whose Linux bridge gets
//! a readable name), `resource::docker-volume::1.0` (a named volume), and the
//! `addNetwork` / `removeNetwork` operations of any type that declares them.

use crate::resources::error::{failure, Failure};
use crate::resources::transitions::{Accepted, Action, Finish, ACTIVE};
use crate::resources::Resources;
use berth_core::engine::{EngineError, NetworkConfig};
use berth_core::journal::Effect;
use berth_core::resource::Transition;
use berth_core::spec::LABEL_INSTANCE;
use berth_store::InternalResource;
use std::collections::BTreeMap;

/// Linux limits interface names to 15 bytes.
pub const MAX_BRIDGE_NAME: usize = 15;

/// A readable, unique bridge name: the instance's name (letters, digits,
/// `-`), cut to fit, and 4 hex digits of its id.
pub fn bridge_name(instance_name: &str, instance_id: &str) -> String {
    let clean: String = instance_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .chars()
        .take(MAX_BRIDGE_NAME - 5)
        .collect();
    let suffix: String = instance_id.chars().filter(char::is_ascii_hexdigit).take(4).collect();
    let clean = clean.trim_end_matches('-');
    if clean.is_empty() {
        format!("rm-{suffix}")
    } else {
        format!("{clean}-{suffix}")
    }
}

/// Ownership, and the instance's record as made (an installed network or
/// volume is not changed by later transitions; the engine fills in its id).
fn labels(resources: &Resources, a: &Accepted) -> BTreeMap<String, String> {
    let mut kept = a.instance.clone();
    kept.properties = a.properties.clone();
    kept.state = ACTIVE.into();
    BTreeMap::from([
        (LABEL_INSTANCE.to_owned(), resources.services.ownership.instance().to_owned()),
        (crate::resources::containers::LABEL_RESOURCE.to_owned(), a.instance.id.clone()),
        (crate::resources::containers::LABEL_RESOURCE_TYPE.to_owned(), a.instance.type_name.clone()),
        (crate::resources::containers::LABEL_LOCATION.to_owned(), a.location.name.clone()),
        (berth_core::kept::LABEL_KEPT.to_owned(), berth_core::kept::encode(&kept)),
    ])
}

fn in_use(e: EngineError, what: &str) -> Failure {
    match e {
        EngineError::Conflict { .. } => Failure::new(
            failure::INFRASTRUCTURE_ERROR,
            format!("Failure from Virtual Infrastructure: {what} is in use by containers; remove them first"),
        ),
        other => Failure::from(other),
    }
}

fn exists_already(e: EngineError, what: &str) -> Failure {
    match e {
        EngineError::Conflict { .. } => {
            Failure::new(failure::RESOURCE_ALREADY_EXISTS, format!("a {what} exists already"))
        }
        other => Failure::from(other),
    }
}

pub async fn run(resources: &Resources, a: &mut Accepted) -> Result<Finish, Failure> {
    let transition = match &a.action {
        Action::Lifecycle(t) => *t,
        Action::Operation(op) => return Err(Failure::internal(format!("built-in types have no operation {op}"))),
    };
    match (a.instance.type_name.as_str(), transition) {
        ("resource::docker-network::1.0", Transition::Install) => install_network(resources, a).await,
        ("resource::docker-network::1.0", Transition::Uninstall) => {
            let network = a.instance.properties.get("networkname").cloned().unwrap_or_else(|| a.instance.name.clone());
            a.record.container = None;
            resources.step(a, "container_removed").await?;
            remove_owned_network(resources, a, &network).await?;
            Ok(Finish::Delete)
        }
        ("resource::docker-volume::1.0", Transition::Install) => install_volume(resources, a).await,
        ("resource::docker-volume::1.0", Transition::Uninstall) => {
            let volume = a.instance.properties.get("volumename").cloned().unwrap_or_else(|| a.instance.name.clone());
            resources.step(a, "container_removed").await?;
            let engine = a.location.engine.as_ref();
            match engine.inspect_volume(&volume).await.map_err(Failure::from)? {
                Some(v) if resources.services.ownership.owns_labels(&v.labels) => {
                    engine.remove_volume(&volume).await.map_err(|e| in_use(e, &format!("volume {volume}")))?
                }
                Some(_) => return Err(Failure::internal(format!("volume {volume} is not this resource manager's"))),
                None => {}
            }
            Ok(Finish::Delete)
        }
        (other, t) => Err(Failure::internal(format!("{other} has no {t}"))),
    }
}

async fn install_network(resources: &Resources, a: &mut Accepted) -> Result<Finish, Failure> {
    let props = &a.properties;
    let name = props.get("networkname").cloned().filter(|n| !n.is_empty()).unwrap_or_else(|| a.instance.name.clone());
    let bridge = bridge_name(&a.instance.name, &a.instance.id);
    let config = NetworkConfig {
        name: name.clone(),
        subnet: props.get("subnet").cloned().filter(|s| !s.is_empty()),
        gateway: props.get("gateway").cloned().filter(|s| !s.is_empty()),
        bridge_name: Some(bridge.clone()),
        labels: labels(resources, a),
    };
    let undo = vec![Effect::RemoveResourceNetwork { location: a.location.name.clone(), network: name.clone() }];
    resources.step_with(a, "network_created", undo).await?;
    let id =
        a.location.engine.create_network(&config).await.map_err(|e| exists_already(e, &format!("network {name}")))?;
    let mut instance = a.instance.clone();
    instance.properties = a.properties.clone();
    instance.properties.insert("networkname".into(), name.clone());
    instance.properties.insert("networkid".into(), id.clone());
    instance.properties.insert("bridgename".into(), bridge);
    instance.internal = vec![InternalResource { id, name, kind: "docker_network".into() }];
    instance.state = ACTIVE.into();
    Ok(Finish::Keep(Box::new(instance)))
}

async fn install_volume(resources: &Resources, a: &mut Accepted) -> Result<Finish, Failure> {
    let name =
        a.properties.get("volumename").cloned().filter(|n| !n.is_empty()).unwrap_or_else(|| a.instance.name.clone());
    let undo = vec![Effect::RemoveResourceVolume { location: a.location.name.clone(), volume: name.clone() }];
    resources.step_with(a, "volume_created", undo).await?;
    a.location
        .engine
        .create_volume(&name, &labels(resources, a))
        .await
        .map_err(|e| exists_already(e, &format!("volume {name}")))?;
    let mut instance = a.instance.clone();
    instance.properties = a.properties.clone();
    instance.properties.insert("volumename".into(), name.clone());
    instance.properties.insert("volumeid".into(), name.clone());
    instance.internal = vec![InternalResource { id: name.clone(), name, kind: "docker_volume".into() }];
    instance.state = ACTIVE.into();
    Ok(Finish::Keep(Box::new(instance)))
}

async fn remove_owned_network(resources: &Resources, a: &Accepted, network: &str) -> Result<(), Failure> {
    let engine = a.location.engine.as_ref();
    match engine.inspect_network(network).await.map_err(Failure::from)? {
        Some(n) if resources.services.ownership.owns_labels(&n.labels) => {
            engine.remove_network(&n.id).await.map_err(|e| in_use(e, &format!("network {network}")))
        }
        Some(_) => {
            Err(Failure::internal(format!("network {network} is not this resource manager's; it is left alone")))
        }
        None => Ok(()),
    }
}

/// `addNetwork` / `removeNetwork` (property `networkid`: a network's name or id).
pub async fn network_operation(resources: &Resources, a: &mut Accepted, op: &str) -> Result<Finish, Failure> {
    let network = a
        .properties
        .get("networkid")
        .cloned()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Failure::internal(format!("{op} needs the property networkid")))?;
    let container = a
        .instance
        .container
        .clone()
        .ok_or_else(|| Failure::new(failure::RESOURCE_NOT_FOUND, "the instance has no container"))?;
    let engine = a.location.engine.clone();
    let found = engine.inspect_network(&network).await.map_err(Failure::from)?.ok_or_else(|| {
        Failure::new(failure::RESOURCE_NOT_FOUND, format!("Failure from Virtual Infrastructure: no network {network}"))
    })?;
    resources.step(a, "script_ran").await?;
    let mut instance = a.instance.clone();
    if op == "addNetwork" {
        match engine.connect_network(&container, &found.id).await {
            Ok(()) | Err(EngineError::Conflict { .. }) => {}
            Err(e) => return Err(Failure::from(e)),
        }
        if !instance.internal.iter().any(|r| r.name == found.name && r.kind == "docker_network") {
            instance.internal.push(InternalResource {
                id: found.id.clone(),
                name: found.name.clone(),
                kind: "docker_network".into(),
            });
        }
    } else {
        engine.disconnect_network(&container, &found.id).await.map_err(Failure::from)?;
        instance.internal.retain(|r| !(r.kind == "docker_network" && (r.name == found.name || r.id == found.id)));
    }
    Ok(Finish::Keep(Box::new(instance)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_fit_and_read() {
        let name = bridge_name("Dev Network for SIPp tests", "c675e0bd-9c6c-43ca");
        assert!(name.len() <= MAX_BRIDGE_NAME, "{name}");
        assert_eq!(name, "dev-networ-c675");
        assert_eq!(bridge_name("___", "ab12"), "rm-ab12");
    }
}
