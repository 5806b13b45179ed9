//! An instance's container: made from its type's image with the Docker
//! RM's runtime contract — `RM_PROP_<name>` environment, the hostname from
//! `docker_hostname`, the networks of `docker_network`, `docker_network2`, …
//! (their addresses recorded in `docker_ipaddr`, `docker_ipaddr2`, …), the
//! volumes of `docker_volume`, `docker_volume2`, … (`volume:/path`) — the
//! default CPU limit of apps, and berth's labels.

use crate::resources::error::{failure, Failure};
use crate::resources::transitions::Accepted;
use crate::resources::Resources;
use berth_core::engine::{ContainerConfig, ContainerObservation};
use berth_core::run_args::{MountSpec, RunOptions};
use berth_core::spec::LABEL_INSTANCE;
use berth_store::InternalResource;
use std::collections::BTreeMap;

pub const LABEL_RESOURCE: &str = "berth.resource";
pub const LABEL_RESOURCE_TYPE: &str = "berth.resource.type";
pub const LABEL_LOCATION: &str = "berth.resource.location";

/// The numbered forms of a property: `docker_network`, `docker_network2`, …
/// in order (`docker_network1` counts as the first too).
fn numbered<'a>(properties: &'a BTreeMap<String, String>, base: &str) -> Vec<(u32, &'a str)> {
    let mut found: Vec<(u32, &str)> = properties
        .iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix(base)?;
            let n = if rest.is_empty() { 1 } else { rest.parse::<u32>().ok()? };
            (!v.trim().is_empty()).then_some((n, v.as_str()))
        })
        .collect();
    found.sort();
    found
}

/// A container name from the instance's (docker's rules), unique by its id.
pub fn container_name(instance_name: &str, instance_id: &str) -> String {
    let clean: String = instance_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '-' })
        .take(48)
        .collect();
    let short = instance_id.split('-').next().unwrap_or(instance_id);
    format!("dockerrm_{}_{short}", clean.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
}

pub fn config(resources: &Resources, a: &Accepted, image: &str) -> Result<ContainerConfig, Failure> {
    let props = &a.properties;
    let mut env: Vec<String> = props
        .iter()
        .filter(|(k, _)| k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(|(k, v)| format!("RM_PROP_{k}={v}"))
        .collect();
    env.sort();
    let networks = numbered(props, "docker_network");
    let mut mounts = Vec::new();
    for (_, binding) in numbered(props, "docker_volume") {
        let (volume, path) = berth_core::resource::volume_binding(binding).ok_or_else(|| {
            Failure::new(failure::INTERNAL_ERROR, format!("docker_volume {binding:?} is not volume:/absolute/path"))
        })?;
        mounts.push(MountSpec { source: Some(volume.to_owned()), target: path.to_owned(), read_only: false });
    }
    let mut labels = BTreeMap::from([
        (LABEL_INSTANCE.to_owned(), resources.services.ownership.instance().to_owned()),
        (LABEL_RESOURCE.to_owned(), a.instance.id.clone()),
        (LABEL_RESOURCE_TYPE.to_owned(), a.instance.type_name.clone()),
        (LABEL_LOCATION.to_owned(), a.location.name.clone()),
    ]);
    labels.retain(|_, v| !v.is_empty());
    let options = RunOptions {
        env,
        hostname: props.get("docker_hostname").filter(|h| !h.is_empty()).cloned(),
        network: networks.first().map(|(_, n)| (*n).to_owned()),
        mounts,
        ..Default::default()
    };
    Ok(ContainerConfig {
        name: Some(container_name(&a.instance.name, &a.instance.id)),
        image: image.to_owned(),
        options,
        mounts: Vec::new(),
        nano_cpus: Some((resources.services.default_cpus() * 1e9).round() as i64),
        memory: None,
        labels,
        open_stdin: false,
        log_rotation: resources.services.config.settings.logs.rotation(),
    })
}

/// Networks beyond the first, joined before the container starts.
pub fn extra_networks(properties: &BTreeMap<String, String>) -> Vec<String> {
    numbered(properties, "docker_network").into_iter().skip(1).map(|(_, n)| n.to_owned()).collect()
}

/// `docker_ipaddr[N]` ← the container's address on `docker_network[N]`.
pub fn record_addresses(properties: &mut BTreeMap<String, String>, addresses: &BTreeMap<String, String>) {
    let pairs: Vec<(u32, String)> =
        numbered(properties, "docker_network").into_iter().map(|(n, net)| (n, net.to_owned())).collect();
    for (n, network) in pairs {
        if let Some(address) = addresses.get(&network) {
            let key = if n == 1 && !properties.contains_key("docker_network1") {
                "docker_ipaddr".to_owned()
            } else {
                format!("docker_ipaddr{n}")
            };
            properties.insert(key, address.clone());
        }
    }
}

/// What berth made or joined for the instance, for `internalResourceInstances`.
pub fn internal_resources(
    container: &ContainerObservation,
    _properties: &BTreeMap<String, String>,
) -> Vec<InternalResource> {
    let mut internal = vec![InternalResource {
        id: container.id.clone(),
        name: container.name.clone(),
        kind: "docker_container".into(),
    }];
    for network in container.networks.keys() {
        internal.push(InternalResource { id: network.clone(), name: network.clone(), kind: "docker_network".into() });
    }
    internal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_properties_and_addresses() {
        let mut props: BTreeMap<String, String> = [
            ("docker_network", "front"),
            ("docker_network2", "back"),
            ("docker_network3", ""),
            ("docker_networkx", "no"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(extra_networks(&props), vec!["back"]);
        let addresses =
            [("front".to_string(), "10.0.0.2".to_string()), ("back".to_string(), "10.0.1.2".to_string())].into();
        record_addresses(&mut props, &addresses);
        assert_eq!(props["docker_ipaddr"], "10.0.0.2");
        assert_eq!(props["docker_ipaddr2"], "10.0.1.2");
        assert_eq!(container_name("dev network/1", "c675e0bd-9c6c"), "dockerrm_dev-network-1_c675e0bd");
    }
}
