//! OSLM resource packages, the pure part: the resource descriptor
//! (`resource.yaml`, Resource Descriptor Specification 1.0), the lifecycle and
//! operations maps of a Docker RM package (Docker RM guide §4.1–4.2), the
//! built-in network and volume types (§3.3) and operations (§3.4), how a
//! request's property values are resolved, and the params files the scripts
//! read (§3.2.1.2). Reading files and running scripts is the caller's.
//!
//! Every error about a package names the file, the line and the key path.

mod builtin;
mod descriptor;
mod error;
mod names;
mod package;
mod params;
mod properties;
mod yaml;

#[cfg(test)]
mod tests;

pub use builtin::{builtin_package, builtin_packages, DOCKER_NETWORK_DESCRIPTOR, DOCKER_VOLUME_DESCRIPTOR};
pub use descriptor::{
    parse_descriptor, volume_binding, Descriptor, MetricDef, OperationDef, PolicyDef, PropertyDef, BUILTIN_OPERATIONS,
    MAX_FILE_BYTES,
};
pub use error::PackageError;
pub use names::{
    PropertyType, PropertyTypeError, Transition, TransitionError, TypeName, TypeNameError, MAX_TYPE_NAME_LEN,
};
pub use package::{
    is_builtin_operation, parse_lifecycle_map, parse_operations_map, validate_package, Package, PackageFiles,
    LIFECYCLE_FILE, OPERATIONS_FILE, RESOURCE_FILE,
};
pub use params::{parse_params, render_params, ParamsError, MAX_PARAMS_BYTES};
pub use properties::{
    mask_secrets, resolve_properties, InstanceRef, PropertyDefs, PropertyError, MAX_COMPUTED_BYTES,
    MAX_PROPERTY_NAME_LEN, SECRET_MASK,
};
pub use yaml::MAX_DEPTH;
