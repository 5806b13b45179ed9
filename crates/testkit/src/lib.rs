//! berth-testkit: offline fixtures for berth's tests, demo and benchmarks.
//!
//! There is no registry access in tests, so images are built here from the
//! host's busybox-static binary and written as `docker save` archives.

pub mod engine;
pub mod fake;
pub mod harness;
pub mod http;
pub mod http_server;
pub mod image;
pub mod registry;
pub mod sshd;

pub use image::{
    write_corrupt_gzip, write_empty_manifest_tar, write_multi_image_tar, write_plain_tar, write_truncated_tar,
    ImageArchive, ImageBuilder,
};
