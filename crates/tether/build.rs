//! Builds the agent (crates/tether-agent) as a static executable, so that it
//! runs in any container of the host's architecture whatever its libc (a
//! busybox image has none), and leaves it in OUT_DIR for `include_bytes!`.
//!
//! A nested cargo with its own target directory and flags: `crt-static`
//! must not reach the workspace's other crates (proc macros cannot be
//! static), and the agent is built small (size, LTO, abort, stripped)
//! whatever profile the workspace is built with.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.join("../..");
    let agent = workspace.join("crates/tether-agent");
    for path in ["src", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", agent.join(path).display());
    }
    println!("cargo:rerun-if-changed={}", workspace.join("Cargo.lock").display());
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let target = std::env::var("TARGET").expect("TARGET");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // OUT_DIR is <target dir>/<profile>/build/<crate>-<hash>/out: one agent
    // build beside the profiles, shared by all of them.
    let target_dir = out_dir.ancestors().nth(4).map_or_else(|| out_dir.join("agent"), |t| t.join("tether-agent"));
    let status = Command::new(cargo)
        .args(["build", "--release", "--locked", "--offline", "-p", "berth-tether-agent", "--bin", "berth-tether"])
        .arg("--target")
        .arg(&target)
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "z")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .env("CARGO_PROFILE_RELEASE_STRIP", "symbols")
        .status()
        .expect("run cargo for the tether agent");
    assert!(status.success(), "building the tether agent failed");
    let built = target_dir.join(&target).join("release/berth-tether");
    copy(&built, &out_dir.join("berth-tether"));
    let bytes = std::fs::read(&built).expect("read the built agent");
    std::fs::write(out_dir.join("berth-tether.id"), format!("{:016x}-{}", fnv1a(&bytes), bytes.len()))
        .expect("write the agent's id");
}

/// FNV-1a, 64 bits: the daemon tells whether the placed agent is this one
/// by this id, without reading the embedded bytes (which would bring them
/// into its resident memory at every start).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
}
