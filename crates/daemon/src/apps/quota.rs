//! A container host's quota (`[quota]`, set by `berth host create --cpus
//! --memory`): the sum of its apps' CPU and memory limits may not exceed it.
//! Checked synchronously right before an install reserves its name, so two
//! installs at once cannot both take the last of it.

use super::error::AppError;
use super::registry::Registry;
use crate::config::QuotaSettings;
use berth_core::spec::AppSpec;

/// What the apps' limits add up to, leaving out `except` (an app being upgraded).
pub fn used(registry: &Registry, except: Option<&str>) -> (f64, u64) {
    registry
        .handles()
        .iter()
        .map(|h| crate::services::lock(&h.runtime).spec.clone())
        .filter(|spec| Some(spec.name.as_str()) != except)
        .fold((0.0, 0), |(cpus, memory), spec| (cpus + spec.cpus, memory + spec.memory.unwrap_or(0)))
}

/// Refuses `spec` when, with the other apps, it would exceed the quota.
pub fn check(quota: &QuotaSettings, registry: &Registry, spec: &AppSpec, replacing: bool) -> Result<(), AppError> {
    let except = replacing.then(|| spec.name.as_str());
    let (cpus_used, memory_used) = used(registry, except);
    if let Some(limit) = quota.cpus {
        // Limits are kept to the engine's nano-CPU precision.
        if cpus_used + spec.cpus > limit + 1e-9 {
            return Err(AppError::OverQuota {
                name: spec.name.to_string(),
                reason: format!(
                    "its {} CPUs and the {cpus_used} CPUs of the other apps exceed this host's quota of {limit} CPUs",
                    spec.cpus
                ),
            });
        }
    }
    if let Some(limit) = quota.memory_bytes() {
        let Some(memory) = spec.memory else {
            return Err(AppError::OverQuota {
                name: spec.name.to_string(),
                reason: format!("this host has a memory quota ({}); give the app a limit with --memory", mib(limit)),
            });
        };
        if memory_used + memory > limit {
            return Err(AppError::OverQuota {
                name: spec.name.to_string(),
                reason: format!(
                    "its {} and the {} of the other apps exceed this host's quota of {}",
                    mib(memory),
                    mib(memory_used),
                    mib(limit)
                ),
            });
        }
    }
    Ok(())
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes as f64 / f64::from(1 << 20))
}
