//! Wire types of `/v1`, one module per capability.

mod apps;
mod certs;
mod daemon;
mod events;
mod hosts;
mod logins;
mod migration;
mod resources;
mod sra;
mod web;

pub use apps::*;
pub use certs::*;
pub use daemon::*;
pub use events::*;
pub use hosts::*;
pub use logins::*;
pub use migration::*;
pub use resources::*;
pub use sra::*;
pub use web::*;
