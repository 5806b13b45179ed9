//! The Docker Engine adapter: the only crate in berth that knows bollard. It
//! implements [`berth_core::engine::Engine`] over the Engine API, translating
//! berth's container configurations into Docker's and Docker's errors into
//! [`EngineError`]s that say what went wrong. Calls that only change or read
//! state are bounded by a short timeout ([`EngineTimeouts`]), so a hung engine
//! holds no app for long; calls that stream are bounded by the engine's
//! progress.

mod build_image;
mod config;
mod convert;
mod docker;
mod errors;
mod exec;
mod networks;
mod tether;
mod time;

pub use berth_core::engine::EngineError;
pub use docker::{DockerEngine, EngineTimeouts};
pub use tether::TetherPlacement;
