//! berth-mkimage: writes an offline busybox service image as a `docker save`
//! archive and prints its image id. Used by the demo and benchmark scripts.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_testkit::ImageBuilder;
use clap::Parser;

/// Pad file location inside the image.
const PAD_PATH: &str = "/opt/pad.bin";
/// Fixed so the same arguments always give the same image id.
const PAD_SEED: u64 = 0x0062_6572_7468; // "berth" in ASCII
const MIB: u64 = 1024 * 1024;

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
    Ok(builder)
}
