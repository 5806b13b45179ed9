//! berth's REST API, `/v1/…` over a unix socket. This crate holds what both
//! sides share: the wire types, the error codes with their HTTP statuses and
//! CLI exit codes, the router (over a [`Manager`] the daemon implements), the
//! OpenAPI document, and the client the CLI uses.

pub mod client;
mod error;
mod server;
mod types;

pub use error::{ApiError, ErrorKind};
pub use server::{openapi_document, router, Manager, ProgressSender, SraProgressSender, StreamedEvent};
pub use types::*;
