//! berth's integration tests: the real binary against the real Docker
//! Engine (and real registries, sshd, http servers), in one test binary so
//! that it is linked once and its tests run in parallel. Each test uses its
//! own daemon root, socket and instance label and sweeps what it made.

mod bad_input;
mod cancel;
mod deb;
mod engine_restart;
mod events;
mod hostile;
mod hosts;
mod http_source;
mod interfaces;
mod journal;
mod leaks;
mod lifecycle;
mod metrics;
mod migrate;
mod rebuild;
mod registry;
mod remote;
mod resources;
mod resources_health;
mod resources_journal;
mod resources_kafka;
mod resources_support;
mod self_upgrade;
mod sra;
mod sra_config;
mod sra_hostile;
mod sra_support;
mod ssh_source;
mod supervision;
mod units;
mod upgrade;
mod web;
mod web_ui;

use std::path::Path;

/// The state schema this release writes (`berth version`, `<root>/version`).
pub const SCHEMA: i64 = 5;

/// The suite's Kafka broker (tansu) keeps its topics in memory, so a
/// restart empties them: the one test that stops it holds this for writing,
/// and tests that read their topics back hold it for reading.
pub static KAFKA_BROKER: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// A loopback TCP port nobody listens on (for a test's own listener).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The berth binary under test.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}
