//! The berth daemon: the one source of truth for what is installed.
//!
//! Data flow of an operation: API handler → [`manager`] validates → the
//! journal records the plan (`berth-store`) → steps run against the engine
//! (`install`, `uninstall`) → the journal marks it done → the app's task
//! (`actor`) supervises it from then on. At start-up `recovery` finishes or
//! undoes what a crash interrupted, and `events` keeps every app's task
//! informed of what the engine does.

mod actor;
mod archive;
pub mod config;
mod crash;
mod disk;
mod download;
mod error;
mod events;
pub mod files;
mod hooks;
mod install;
mod intake;
mod manager;
mod migrate;
mod recovery;
mod registries;
mod registry;
mod server;
mod snapshot;
mod sra;
mod ssh;
mod uninstall;
mod units;
mod upgrade;

pub use config::{ConfigError, DaemonConfig, Settings};
pub use error::OpError;
pub use server::{run, DaemonError};

#[cfg(test)]
mod tests;
