//! berth's web UI: the front end (built from `web/` by Vite, embedded in the
//! binary so berth stays one file) and the browser's way in.
//!
//! A browser reaches the API on the daemon's TLS listeners (a client
//! certificate of berth's CA signs it in, as for the CLI) or on the plain
//! loopback listener of a local demo. Without a certificate it signs in as
//! the administrator: the password is kept as an Argon2id hash, the session
//! lives in an `HttpOnly; Secure; SameSite=Strict` cookie, every request that
//! changes something carries the session's CSRF token, and failed sign-ins
//! are rate-limited per address and overall.

mod account;
mod assets;
mod guard;
mod limiter;
mod routes;
mod sessions;

pub use account::{AccountError, AdminAccount};
pub use guard::Peer;

use axum::Router;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The sign-in state of one daemon: its administrator account file, the
/// open sessions, the failed-attempt counters.
pub struct WebAuth {
    account_file: PathBuf,
    sessions: sessions::Sessions,
    limiter: limiter::LoginLimiter,
    /// Argon2 takes tens of milliseconds of CPU: two verifications at a time
    /// at most, so a flood of sign-ins cannot starve the daemon's workers.
    hashing: tokio::sync::Semaphore,
}

impl WebAuth {
    /// `account_file` holds the administrator's name and password hash
    /// (absent: password sign-in is off, certificates still work).
    pub fn new(account_file: PathBuf, session_lifetime: Duration) -> Arc<Self> {
        Arc::new(Self {
            account_file,
            sessions: sessions::Sessions::new(session_lifetime),
            limiter: limiter::LoginLimiter::default(),
            hashing: tokio::sync::Semaphore::new(2),
        })
    }

    /// The administrator's name, if one is set.
    pub async fn admin(&self) -> Result<Option<String>, AccountError> {
        Ok(self.read_account().await?.map(|account| account.user))
    }

    /// Sets the administrator account (replacing any), and signs out every
    /// session: a changed password must lock out whoever had the old one.
    pub async fn set_admin(&self, user: &str, password: &str) -> Result<(), AccountError> {
        let _permit = self.hashing.acquire().await.map_err(|_| AccountError::Closed)?;
        let (file, user, password) = (self.account_file.clone(), user.to_owned(), password.to_owned());
        tokio::task::spawn_blocking(move || AdminAccount::create(&user, &password)?.save(&file))
            .await
            .map_err(|_| AccountError::Closed)??;
        self.sessions.clear();
        Ok(())
    }

    /// Removes the administrator account; its sessions end.
    pub async fn remove_admin(&self) -> Result<bool, AccountError> {
        let file = self.account_file.clone();
        let removed = tokio::task::spawn_blocking(move || AdminAccount::remove(&file))
            .await
            .map_err(|_| AccountError::Closed)??;
        self.sessions.clear();
        Ok(removed)
    }

    async fn read_account(&self) -> Result<Option<AdminAccount>, AccountError> {
        let file = self.account_file.clone();
        tokio::task::spawn_blocking(move || AdminAccount::load(&file)).await.map_err(|_| AccountError::Closed)?
    }
}

/// Everything a browser-facing listener serves: the UI's files, its sign-in
/// endpoints and `api` (the whole API), all behind the guard. `peer` of each
/// request is set by the listener ([`Peer`] in the request's extensions).
pub fn app(auth: Arc<WebAuth>, api: Router) -> Router {
    Router::new()
        .merge(routes::routes(auth.clone()))
        .merge(assets::routes())
        .merge(api)
        .layer(axum::middleware::from_fn_with_state(auth, guard::guard))
}

/// Whether the front end was built into this binary.
pub fn ui_built() -> bool {
    assets::built()
}
