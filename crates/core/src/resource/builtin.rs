//! The resource types the resource manager implements itself (Docker RM
//! guide §3.3). They have descriptors but no scripts: berth creates and
//! removes the docker network or volume.

use super::descriptor::parse_descriptor;
use super::names::TypeName;
use super::package::Package;

/// `resource::docker-network::1.0`, as in the Docker RM guide §3.3.1 (whose
/// listing indents `lifecycle` under `properties` by mistake; it is a
/// top-level key).
pub const DOCKER_NETWORK_DESCRIPTOR: &str = r#"name: resource::docker-network::1.0
description: resource package for user defined docker network
properties:
  networkname:
    type: string
    description: name of the network
    value: ${instance.name}
    required: true
  subnet:
    type: string
    description: subnet for new network
    default: "10.1.1.0/24"
  gateway:
    type: string
    description: subnet of user defined network
    default: "10.1.1.1"
  bridgename:
    type: string
    description: name of the assigned linux bridge
    read-only: true
  networkid:
    type: string
    description: docker id of network instance
    read-only: true
lifecycle:
  - Install
  - Uninstall
"#;

/// `resource::docker-volume::1.0` (the guide's §3.3.2 is "not yet
/// implemented"; this follows the network's shape).
pub const DOCKER_VOLUME_DESCRIPTOR: &str = r#"name: resource::docker-volume::1.0
description: resource package for a docker volume
properties:
  volumename:
    type: string
    description: name of the volume
    value: ${instance.name}
    required: true
  driver:
    type: string
    description: volume driver
    default: "local"
  volumeid:
    type: string
    description: docker id of volume instance
    read-only: true
lifecycle:
  - Install
  - Uninstall
"#;

const BUILTIN_DESCRIPTORS: [&str; 2] = [DOCKER_NETWORK_DESCRIPTOR, DOCKER_VOLUME_DESCRIPTOR];

/// The built-in packages, network first.
pub fn builtin_packages() -> Vec<Package> {
    BUILTIN_DESCRIPTORS.iter().map(|text| builtin_from(text)).collect()
}

/// The built-in package of that type, if it is one.
pub fn builtin_package(name: &TypeName) -> Option<Package> {
    builtin_packages().into_iter().find(|p| p.descriptor.name == *name)
}

fn builtin_from(text: &str) -> Package {
    // The constants above are parsed by a unit test; a failure here is a bug in them.
    let descriptor = parse_descriptor("built-in resource.yaml", text).expect("built-in descriptors are valid");
    Package::builtin(descriptor)
}
