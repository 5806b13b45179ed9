//! Compiles the berth-rm utilities (`../rm-utils/src/main.rs`) into a static
//! executable in OUT_DIR, which `src/lib.rs` embeds with include_bytes!.
//!
//! berth itself links glibc dynamically, so the utilities cannot simply be
//! the berth binary: they are compiled here, with the same rustc, as a
//! separate self-contained program (`-C target-feature=+crt-static`; static
//! glibc needs libc.a, i.e. the libc6-dev package). berth-rm-utils has no
//! dependencies precisely so that a plain rustc call suffices.
//!
//! The call is made with std::process::Command and explicit arguments; no
//! shell is involved. RUSTC_WRAPPER and RUSTFLAGS are deliberately not
//! applied to this inner build.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let src_dir = manifest_dir.join("..").join("rm-utils").join("src");
    let main_rs = src_dir.join("main.rs");

    println!("cargo:rerun-if-changed={}", src_dir.display());
    println!("cargo:rerun-if-changed=build.rs");
    let mut sources = Vec::new();
    collect_sources(&src_dir, &mut sources);
    sources.sort();
    for source in &sources {
        println!("cargo:rerun-if-changed={}", source.display());
    }
    if !main_rs.is_file() {
        panic!(
            "berth-baseimage: {} not found (the berth-rm utilities sources must sit next to \
             this crate in crates/rm-utils)",
            main_rs.display()
        );
    }

    let target = env::var("TARGET").expect("TARGET");
    if !(target.contains("-linux-gnu") || target.contains("-linux-musl")) {
        panic!(
            "berth-baseimage: the base image utilities must be a static Linux executable, but the \
             build target is {target:?}, which is not a linux-gnu or linux-musl target"
        );
    }

    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let binary = out_dir.join("berth-rm");
    let canonical_src = fs::canonicalize(&src_dir).unwrap_or_else(|_| src_dir.clone());
    let mut remap = OsString::from("--remap-path-prefix=");
    remap.push(canonical_src.as_os_str());
    remap.push("=berth-rm");

    let output = Command::new(&rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "bin",
            "--crate-name",
            "berth_rm",
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
            "-C",
            "debuginfo=0",
            "-C",
            "codegen-units=1",
            "-C",
            "target-feature=+crt-static",
            "--target",
            &target,
        ])
        .arg(&remap)
        .arg(&main_rs)
        .arg("-o")
        .arg(&binary)
        .output()
        .unwrap_or_else(|e| panic!("berth-baseimage: cannot run {rustc:?}: {e}"));
    if !output.status.success() {
        panic!(
            "berth-baseimage: compiling the static berth-rm utilities failed ({}):\n{}\n\
             (a static glibc build needs libc.a: install libc6-dev)",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let bytes = fs::read(&binary).unwrap_or_else(|e| panic!("berth-baseimage: cannot read {}: {e}", binary.display()));
    if let Err(problem) = check_static_elf(&bytes) {
        panic!("berth-baseimage: {} is not a static executable: {problem}", binary.display());
    }
}

fn collect_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// ELF magic and no PT_INTERP program header (64-bit little-endian only,
/// which is what every supported target produces).
fn check_static_elf(b: &[u8]) -> Result<(), String> {
    if b.len() < 64 || &b[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if b[4] != 2 || b[5] != 1 {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[32..40].try_into().expect("8 bytes")) as usize;
    let phentsize = u16_at(54);
    let phnum = u16_at(56);
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        if o + 4 > b.len() {
            return Err("truncated program headers".into());
        }
        if u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes")) == 3 {
            return Err("it has a PT_INTERP header (dynamically linked)".into());
        }
    }
    Ok(())
}
