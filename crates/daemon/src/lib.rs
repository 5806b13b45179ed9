//! The berth daemon: the one source of truth for what is installed.
//!
//! Layout (arrows point down only):
//! - capabilities: [`apps`] (install, upgrade, rollback, uninstall,
//!   supervision, units, migration), [`sra`] (storage replication adapters),
//!   [`intake`] (getting images in: archives, downloads, ssh, registries and
//!   their logins; the one rule for releasing an image), [`resources`] (the
//!   OSLM resource manager: types, instances, transitions, locations),
//!   [`hosts`] (container hosts), [`web`] (the web UI's account and listeners);
//! - shared services: [`journal`] (the one journal every operation runs on),
//!   [`engine_watch`] (the engine's events and reconnection), [`fs`] (file
//!   work off the async workers), [`services`] (settings, engine, store);
//! - the composition: [`daemon`] assembles them, [`effects`] carries out the
//!   journal's effects, [`server`] serves the API; [`tether`] places the
//!   agent the engine adapter runs commands through.

pub mod apps;
pub mod certs;
pub mod config;
pub mod daemon;
pub mod doctor;
pub mod effects;
pub mod engine_watch;
pub mod events;
pub mod events_kafka;
pub mod fs;
pub mod hosts;
pub mod intake;
pub mod journal;
pub mod memory;
pub mod metrics;
pub mod resources;
pub mod server;
pub mod services;
pub mod sra;
#[cfg(test)]
mod testing;
pub mod tether;
pub mod tls;
pub mod version;
pub mod web;

pub use config::{ConfigError, DaemonConfig, Settings};
pub use server::{run, DaemonError};
