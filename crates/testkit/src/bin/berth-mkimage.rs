//! berth-mkimage: writes an offline busybox service image as a `docker save`
//! archive and prints its image id. Used by the demo and benchmark scripts
//! (`--file` adds host files, e.g. an SRA's `/srm/sra/command`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_testkit::ImageBuilder;
use clap::Parser;

/// Pad file location inside the image.
const PAD_PATH: &str = "/opt/pad.bin";
/// Fixed so the same arguments always give the same image id.
const PAD_SEED: u64 = 0x0062_6572_7468; // "berth" in ASCII
const MIB: u64 = 1024 * 1024;
/// Mode of a `--file` given without one.
const DEFAULT_FILE_MODE: u32 = 0o644;

#[derive(Debug, Parser)]
#[command(about = "Build an offline busybox image archive (docker save format)")]
struct Args {
    /// Image reference, e.g. berth-demo/web:1
    #[arg(long)]
    tag: String,
    /// Archive to write
    #[arg(long)]
    out: PathBuf,
    /// Gzip the archive
    #[arg(long)]
    gzip: bool,
    /// Text stored in /etc/berth-marker, to get a distinct image id
    #[arg(long)]
    marker: Option<String>,
    /// Add /opt/pad.bin with N MiB of incompressible deterministic bytes
    #[arg(long, value_name = "N")]
    pad_mb: Option<u64>,
    /// Extra image label KEY=VALUE (repeatable)
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Copy HOSTFILE into the image at PATH with the octal MODE (default 644), e.g.
    /// --file /srm/sra/command=./command.sh:755 (repeatable)
    #[arg(long, value_name = "PATH=HOSTFILE[:MODE]")]
    file: Vec<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let builder = image_builder(&args)?;
    let archive = if args.gzip { builder.write_tar_gz(&args.out) } else { builder.write_tar(&args.out) }
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("{}", archive.image_id);
    Ok(())
}

fn image_builder(args: &Args) -> Result<ImageBuilder> {
    let mut builder = ImageBuilder::new(&args.tag).service();
    if let Some(marker) = &args.marker {
        builder = builder.layer_marker(marker);
    }
    if let Some(pad_mb) = args.pad_mb {
        let len = pad_mb.checked_mul(MIB).context("--pad-mb is too large")?;
        builder = builder.pseudorandom_file(PAD_PATH, len, PAD_SEED);
    }
    for label in &args.label {
        let Some((key, value)) = label.split_once('=') else {
            bail!("--label expects KEY=VALUE, got {label:?}");
        };
        builder = builder.label(key, value);
    }
    for file in &args.file {
        let (path, host_file, mode) = parse_file(file)?;
        if !host_file.is_file() {
            bail!("--file {file}: {} is not a file", host_file.display());
        }
        builder = builder.host_file(path, host_file, mode);
    }
    Ok(builder)
}

/// `PATH=HOSTFILE[:MODE]`: the image path must be absolute; a last `:` part
/// that is an octal number is the mode, else the whole rest is the host file.
fn parse_file(spec: &str) -> Result<(&str, PathBuf, u32)> {
    let Some((path, rest)) = spec.split_once('=') else {
        bail!("--file expects PATH=HOSTFILE[:MODE], got {spec:?}");
    };
    if !path.starts_with('/') || rest.is_empty() {
        bail!("--file expects an absolute image PATH and a HOSTFILE, got {spec:?}");
    }
    let (host_file, mode) = match rest.rsplit_once(':') {
        Some((host_file, mode)) if !mode.is_empty() && mode.len() <= 4 => match u32::from_str_radix(mode, 8) {
            Ok(mode) => (host_file, mode),
            Err(_) => (rest, DEFAULT_FILE_MODE),
        },
        _ => (rest, DEFAULT_FILE_MODE),
    };
    Ok((path, PathBuf::from(host_file), mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_specs_take_an_optional_octal_mode() {
        let parsed = parse_file("/srm/sra/command=./cmd.sh:755").unwrap();
        assert_eq!(parsed, ("/srm/sra/command", PathBuf::from("./cmd.sh"), 0o755));
        assert_eq!(parse_file("/etc/x=/a:b").unwrap(), ("/etc/x", PathBuf::from("/a:b"), 0o644));
        assert_eq!(parse_file("/etc/x=/a").unwrap(), ("/etc/x", PathBuf::from("/a"), 0o644));
        assert!(parse_file("etc/x=/a").is_err());
        assert!(parse_file("/etc/x").is_err());
    }
}
