//! The Docker Engine adapter: the only crate in berth that knows bollard. It
//! implements [`berth_core::engine::Engine`] over the Engine API, translating
//! berth's container specs into Docker's configuration and Docker's errors into
//! [`EngineError`]s that say what went wrong.

mod config;
mod convert;
mod docker;
mod errors;
mod exec;
mod time;

pub use berth_core::engine::EngineError;
pub use docker::DockerEngine;
