//! What an installed app is: its image, its docker-run options and limits, and
//! the container configuration derived from them. The derived configuration is
//! hashed and the hash is written into a container label, so the daemon can tell
//! from the engine alone whether a container still matches its app.

use crate::engine::ContainerConfig;
use crate::run_args::{MountSpec, RunOptions};
use crate::source::Source;
use crate::AppName;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Ownership label: berth never touches a container without it.
pub const LABEL_APP: &str = "berth.app";
/// Hash of the [`ContainerSpec`] the container was created from.
pub const LABEL_SPEC_HASH: &str = "berth.spec-hash";
/// Which berth instance (state database) owns the container. Several daemons
/// may share one engine (tests do); each touches only its own containers.
pub const LABEL_INSTANCE: &str = "berth.instance";
/// Journal operation that created the container (crash recovery uses it).
pub const LABEL_OPERATION: &str = "berth.operation";
/// Where an app's private directory is mounted inside its container (seed 003:
/// "the volume '/tpc/' is mounted from host partition '/host/tpc/<tpc-name>'").
pub const PRIVATE_MOUNT: &str = "/tpc";
/// TPCM's default CPU share of the host: 20 % of its total capacity.
pub const DEFAULT_CPU_SHARE: f64 = 0.2;

/// An image id as people read it: the first 12 hex digits, without `sha256:`.
pub fn short_image_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// The default CPU limit for a host with `online_cpus` CPUs, in CPUs.
pub fn default_cpu_limit(online_cpus: u32, share: f64) -> f64 {
    (f64::from(online_cpus.max(1)) * share).max(0.01)
}

/// An installed app as the user asked for it and as berth resolved it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppSpec {
    pub name: AppName,
    pub source: Source,
    /// What the user sees as the image: `repo:tag`, or the id when untagged.
    pub image_ref: String,
    /// Full engine image id, `sha256:…`; containers are created from this, so a
    /// re-tag in the engine never changes what an app runs.
    pub image_id: String,
    /// The `--args` string as given, kept for display and upgrades.
    pub args: String,
    pub options: RunOptions,
    /// Effective CPU limit in CPUs (per-app value, else the daemon default).
    pub cpus: f64,
    /// Effective memory limit in bytes, if any.
    pub memory: Option<u64>,
}

/// Everything the engine needs to create an app's container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub name: String,
    pub image_id: String,
    pub options: RunOptions,
    pub nano_cpus: i64,
    pub memory: Option<u64>,
    /// Host path bound at [`PRIVATE_MOUNT`].
    pub private_dir: String,
    pub labels: BTreeMap<String, String>,
}

/// The version of [`ContainerSpec::hash`], written in front of the digest so
/// that a later berth can tell which rule a container's label was made by.
pub const SPEC_HASH_VERSION: &str = "v2";

impl ContainerSpec {
    /// Derives the container configuration of `app`, labelled for ownership,
    /// with its spec hash and the operation that creates it.
    pub fn for_app(app: &AppSpec, private_dir: &str, instance: &str, operation: i64) -> Self {
        let mut spec = ContainerSpec {
            name: app.name.to_string(),
            image_id: app.image_id.clone(),
            options: app.options.clone(),
            nano_cpus: (app.cpus * 1e9).round() as i64,
            memory: app.memory,
            private_dir: private_dir.to_owned(),
            labels: app.options.labels.clone(),
        };
        spec.labels.insert(LABEL_APP.into(), app.name.to_string());
        spec.labels.insert(LABEL_INSTANCE.into(), instance.to_owned());
        spec.labels.insert(LABEL_SPEC_HASH.into(), spec.hash());
        spec.labels.insert(LABEL_OPERATION.into(), operation.to_string());
        spec
    }

    /// A stable digest of what determines the container's behaviour:
    /// `v2-` and the SHA-256 (first 12 bytes, hex) of a canonical JSON form
    /// that leaves out berth's own labels and every field at its default
    /// (null, false, empty list or map). So a field added to the spec later
    /// changes the hash only of containers that use it, and upgrading berth
    /// does not recreate every app's container.
    pub fn hash(&self) -> String {
        let mut value = serde_json::to_value(self.without_berth_labels()).unwrap_or_default();
        strip_defaults(&mut value);
        // serde_json's maps are sorted by key: the text is canonical.
        let digest = Sha256::digest(value.to_string().as_bytes());
        format!("{SPEC_HASH_VERSION}-{}", hex::encode(&digest[..12]))
    }

    /// Whether a container labelled `label` was made from this spec: by the
    /// current rule, or by the rule of berth before hash versions (its label
    /// has no version prefix).
    pub fn hash_matches(&self, label: &str) -> bool {
        if label.starts_with(&format!("{SPEC_HASH_VERSION}-")) {
            label == self.hash()
        } else {
            label == legacy::v1_hash(self)
        }
    }

    fn without_berth_labels(&self) -> ContainerSpec {
        let mut canonical = self.clone();
        canonical.labels.retain(|k, _| !k.starts_with("berth."));
        canonical
    }

    /// The engine's configuration: the private directory first, then the options' own mounts.
    pub fn config(&self) -> ContainerConfig {
        ContainerConfig {
            name: Some(self.name.clone()),
            image: self.image_id.clone(),
            options: self.options.clone(),
            mounts: vec![MountSpec {
                source: Some(self.private_dir.clone()),
                target: PRIVATE_MOUNT.to_owned(),
                read_only: false,
            }],
            nano_cpus: Some(self.nano_cpus),
            memory: self.memory,
            labels: self.labels.clone(),
            open_stdin: false,
            log_rotation: None,
        }
    }
}

/// Removes nulls, `false`, empty arrays and empty objects, recursively.
fn strip_defaults(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for child in map.values_mut() {
                strip_defaults(child);
            }
            map.retain(|_, v| !is_default(v));
        }
        Value::Array(items) => items.iter_mut().for_each(strip_defaults),
        _ => {}
    }
}

fn is_default(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// The hash of berth before `v2`: SHA-256 of the spec serialised with every
/// field, in declaration order. Frozen here with the fields it had, so that
/// containers made by that berth are still recognised.
mod legacy {
    use super::ContainerSpec;
    use crate::run_args::{DeviceSpec, MountSpec, PortSpec};
    use serde::Serialize;
    use sha2::{Digest, Sha256};
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct SpecV1<'a> {
        name: &'a str,
        image_id: &'a str,
        options: OptionsV1<'a>,
        nano_cpus: i64,
        memory: Option<u64>,
        private_dir: &'a str,
        labels: BTreeMap<&'a str, &'a str>,
    }

    #[derive(Serialize)]
    struct OptionsV1<'a> {
        env: &'a [String],
        mounts: &'a [MountSpec],
        ports: &'a [PortSpec],
        network: &'a Option<String>,
        hostname: &'a Option<String>,
        user: &'a Option<String>,
        workdir: &'a Option<String>,
        entrypoint: &'a Option<Vec<String>>,
        privileged: bool,
        cap_add: &'a [String],
        cap_drop: &'a [String],
        devices: &'a [DeviceSpec],
        labels: &'a BTreeMap<String, String>,
        cpus: Option<f64>,
        memory: Option<u64>,
        read_only: bool,
        tmpfs: &'a [String],
        add_hosts: &'a [String],
        dns: &'a [String],
        shm_size: Option<u64>,
        init: bool,
        stop_signal: &'a Option<String>,
        stop_timeout: Option<i64>,
    }

    pub fn v1_hash(spec: &ContainerSpec) -> String {
        let o = &spec.options;
        let v1 = SpecV1 {
            name: &spec.name,
            image_id: &spec.image_id,
            options: OptionsV1 {
                env: &o.env,
                mounts: &o.mounts,
                ports: &o.ports,
                network: &o.network,
                hostname: &o.hostname,
                user: &o.user,
                workdir: &o.workdir,
                entrypoint: &o.entrypoint,
                privileged: o.privileged,
                cap_add: &o.cap_add,
                cap_drop: &o.cap_drop,
                devices: &o.devices,
                labels: &o.labels,
                cpus: o.cpus,
                memory: o.memory,
                read_only: o.read_only,
                tmpfs: &o.tmpfs,
                add_hosts: &o.add_hosts,
                dns: &o.dns,
                shm_size: o.shm_size,
                init: o.init,
                stop_signal: &o.stop_signal,
                stop_timeout: o.stop_timeout,
            },
            nano_cpus: spec.nano_cpus,
            memory: spec.memory,
            private_dir: &spec.private_dir,
            labels: spec
                .labels
                .iter()
                .filter(|(k, _)| !k.starts_with("berth."))
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        };
        let bytes = serde_json::to_vec(&v1).unwrap_or_default();
        hex::encode(&Sha256::digest(&bytes)[..12])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_args::parse_run_args;

    fn app(args: &str) -> AppSpec {
        AppSpec {
            name: AppName::parse("web").unwrap(),
            source: Source::parse("/tmp/web.tar").unwrap(),
            image_ref: "web:1".into(),
            image_id: "sha256:abc".into(),
            args: args.into(),
            options: parse_run_args(args).unwrap(),
            cpus: 0.4,
            memory: None,
        }
    }

    #[test]
    fn container_spec_carries_ownership_and_hash() {
        let spec = ContainerSpec::for_app(&app("-e A=1"), "/var/lib/berth/tpc/web", "i1", 7);
        assert_eq!(spec.labels[LABEL_APP], "web");
        assert_eq!(spec.labels[LABEL_OPERATION], "7");
        assert_eq!(spec.labels[LABEL_INSTANCE], "i1");
        assert_eq!(spec.labels[LABEL_SPEC_HASH], spec.hash());
        assert_eq!(spec.nano_cpus, 400_000_000);
    }

    #[test]
    fn hash_changes_with_behaviour_not_with_operation() {
        let a = ContainerSpec::for_app(&app("-e A=1"), "/d", "i", 1);
        let b = ContainerSpec::for_app(&app("-e A=1"), "/d", "i", 2);
        let c = ContainerSpec::for_app(&app("-e A=2"), "/d", "i", 1);
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), c.hash());
    }

    #[test]
    fn the_hash_of_this_release_is_pinned() {
        // Golden values: if one changes, every installed app's container is
        // recreated when berth is upgraded. Change SPEC_HASH_VERSION instead.
        // The legacy value is what the berth before hash versions labelled
        // this spec with (computed with that release).
        let spec = ContainerSpec::for_app(&app("-e A=1 -p 8080:80"), "/var/lib/berth/tpc/web", "i1", 7);
        assert_eq!(spec.hash(), "v2-d2ffbf83be4fc307f39c9cee");
        assert_eq!(legacy::v1_hash(&spec), "5a6fadfd1c5aba66486bdd6c");
    }

    #[test]
    fn fields_at_their_default_do_not_change_the_hash() {
        let spec = ContainerSpec::for_app(&app("-e A=1"), "/d", "i", 1);
        let mut value = serde_json::to_value(spec.without_berth_labels()).unwrap();
        // What a spec with one more option (left at its default) serialises to.
        value["options"]["networks_added_later"] = serde_json::json!([]);
        value["options"]["flag_added_later"] = serde_json::json!(false);
        value["options"]["value_added_later"] = serde_json::Value::Null;
        strip_defaults(&mut value);
        let digest = Sha256::digest(value.to_string().as_bytes());
        assert_eq!(format!("{SPEC_HASH_VERSION}-{}", hex::encode(&digest[..12])), spec.hash());
    }

    #[test]
    fn containers_labelled_by_the_earlier_rule_still_match() {
        let spec = ContainerSpec::for_app(&app("-e A=1"), "/d", "i", 1);
        assert!(spec.hash_matches(&spec.hash()));
        assert!(spec.hash_matches(&legacy::v1_hash(&spec)));
        assert!(!spec.hash_matches("v2-000000000000000000000000"));
        assert!(!spec.hash_matches("000000000000000000000000"));
    }

    #[test]
    fn default_cpu_limit_is_a_fifth_of_the_host() {
        assert!((default_cpu_limit(2, DEFAULT_CPU_SHARE) - 0.4).abs() < 1e-9);
        assert!((default_cpu_limit(0, DEFAULT_CPU_SHARE) - 0.2).abs() < 1e-9);
    }
}
