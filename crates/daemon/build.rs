//! Build information for `berth version` and the version file: `git
//! describe` of the checkout (when it is one) and the build number CI gives
//! (`BUILD_NUMBER`). Commands run without a shell; missing git is "unknown".

use std::process::Command;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let describe = Command::new("git")
        .args(["describe", "--always", "--dirty", "--tags"])
        .current_dir(&manifest)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=BERTH_GIT_DESCRIBE={describe}");
    println!("cargo:rustc-env=BERTH_BUILD_NUMBER={}", std::env::var("BUILD_NUMBER").unwrap_or_else(|_| "0".into()));
    println!("cargo:rerun-if-env-changed=BUILD_NUMBER");
    for head in ["../../.git/HEAD", "../../.git/index"] {
        println!("cargo:rerun-if-changed={head}");
    }
}
