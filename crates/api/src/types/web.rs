//! Wire types of `/v1/web`: the web UI's administrator account and listeners.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `PUT /v1/web/admin`: the client sends the password itself; the daemon
/// keeps only its Argon2id hash.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebAdminRequest {
    pub user: String,
    pub password: String,
}

// Never print the password.
impl std::fmt::Debug for WebAdminRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebAdminRequest").field("user", &self.user).finish_non_exhaustive()
    }
}

/// `GET /v1/web`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebStatus {
    /// The administrator's name; none: password sign-in is off (client certificates still work).
    pub admin: Option<String>,
    /// Where a browser reaches the UI: `http://127.0.0.1:PORT` (`[web] listen`)
    /// and `https://ADDR:PORT` (each `--listen`).
    pub urls: Vec<String>,
    /// Whether the front end was built into this binary.
    pub ui_built: bool,
}
