//! Wire types of registry logins.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/registries`: store a login for a registry.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// `host[:port]`, as in image references.
    pub registry: String,
    pub username: String,
    /// Never echoed back or logged.
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}
