//! berth's REST API, `/v1/…` over a unix socket. This crate holds what both
//! sides share: the wire types, the error body, one router per capability
//! (each over a manager trait the daemon implements), the OpenAPI document,
//! and the client the CLI uses.

pub mod client;
mod error;
pub mod routes;
pub mod streaming;
mod types;

pub use error::{short, ApiError, ErrorKind, Json as ApiJson};
pub use routes::{openapi_document, router, Managers};
pub use streaming::{Operation, Upload};
pub use types::*;
