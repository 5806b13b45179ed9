//! What an installed app is: its image, its docker-run options and limits, and
//! the container configuration derived from them. The derived configuration is
//! hashed and the hash is written into a container label, so the daemon can tell
//! from the engine alone whether a container still matches its app.

use crate::run_args::RunOptions;
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

    /// A stable digest of what determines the container's behaviour. berth's
    /// own labels are left out so that the hash does not depend on itself.
    pub fn hash(&self) -> String {
        let mut canonical = self.clone();
        canonical.labels.retain(|k, _| !k.starts_with("berth."));
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        let digest = Sha256::digest(&bytes);
        digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
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
    fn default_cpu_limit_is_a_fifth_of_the_host() {
        assert!((default_cpu_limit(2, DEFAULT_CPU_SHARE) - 0.4).abs() < 1e-9);
        assert!((default_cpu_limit(0, DEFAULT_CPU_SHARE) - 0.2).abs() < 1e-9);
    }
}
