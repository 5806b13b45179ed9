//! berth's domain core. Everything here is pure: no files, sockets, clocks or
//! randomness are touched directly — the engine, the store and time come in
//! through the [`engine::Engine`] trait and plain arguments, so the rules can be
//! tested as functions.

pub mod engine;
pub mod error;
pub mod host;
pub mod journal;
pub mod kept;
pub mod name;
pub mod reconcile;
pub mod resource;
pub mod run_args;
pub mod source;
pub mod spec;
pub mod sra_xml;
pub mod status;
pub mod supervise;
pub mod units;

pub use error::{ErrorKind, ExitCode};
pub use host::HostPort;
pub use name::{AppName, NameError};
