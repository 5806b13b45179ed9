//! Registry logins (`berth login`), kept in `<root>/registries.json`, mode
//! 0600, written atomically. Passwords are never logged or shown.

use crate::fs::{blocking, TaskFailed};
use async_trait::async_trait;
use berth_api::routes::logins::LoginsManager;
use berth_api::{ApiError, LoginRequest};
use berth_core::engine::RegistryCredentials;
use berth_core::{ErrorKind, HostPort};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LoginsError {
    #[error("registry {registry:?} is not a host[:port]: {reason}")]
    BadRegistry { registry: String, reason: &'static str },
    #[error("a login needs a user name and a password")]
    Empty,
    #[error("the stored registry logins {path} are unreadable: {reason}; remove the file and log in again")]
    Corrupt { path: PathBuf, reason: String },
    #[error(transparent)]
    Fs(#[from] crate::fs::FsError),
    #[error(transparent)]
    Task(#[from] TaskFailed),
}

impl LoginsError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            LoginsError::BadRegistry { .. } | LoginsError::Empty => ErrorKind::InvalidInput,
            LoginsError::Corrupt { .. } => ErrorKind::CorruptState,
            LoginsError::Fs(_) | LoginsError::Task(_) => ErrorKind::Internal,
        }
    }
}

impl From<LoginsError> for ApiError {
    fn from(e: LoginsError) -> Self {
        ApiError::new(e.kind(), e.to_string())
    }
}

fn file(root: &Path) -> PathBuf {
    root.join("registries.json")
}

fn load(root: &Path) -> Result<BTreeMap<String, RegistryCredentials>, LoginsError> {
    let path = file(root);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LoginsError::Corrupt { path, reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(crate::fs::FsError::new(path, e).into()),
    }
}

/// The stored login for `registry` (`host[:port]`), if any.
pub async fn for_registry(root: &Path, registry: &str) -> Result<Option<RegistryCredentials>, LoginsError> {
    let (root, registry) = (root.to_owned(), registry.to_owned());
    blocking("reading registry logins", move || Ok(load(&root)?.remove(&registry))).await
}

fn store(root: &Path, registry: &str, credentials: Option<RegistryCredentials>) -> Result<bool, LoginsError> {
    let mut all = load(root)?;
    let changed = match credentials {
        Some(c) => {
            all.insert(registry.to_owned(), c);
            true
        }
        None => all.remove(registry).is_some(),
    };
    crate::fs::atomic_write_mode(&file(root), &serde_json::to_vec_pretty(&all).unwrap_or_default(), 0o600)?;
    Ok(changed)
}

/// A registry is named by its host and optional port, nothing else.
fn validate_registry(registry: &str) -> Result<(), LoginsError> {
    HostPort::parse(registry)
        .map(drop)
        .map_err(|e| LoginsError::BadRegistry { registry: registry.to_owned(), reason: e.reason })
}

/// The login capability behind `/v1/registries`.
pub struct Logins {
    root: PathBuf,
}

impl Logins {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }
}

#[async_trait]
impl LoginsManager for Logins {
    async fn login(&self, request: LoginRequest) -> Result<(), ApiError> {
        validate_registry(&request.registry)?;
        if request.username.is_empty() || request.password.is_empty() {
            return Err(LoginsError::Empty.into());
        }
        let login = RegistryCredentials { username: request.username, password: request.password };
        let (root, registry) = (self.root.clone(), request.registry);
        blocking("storing a registry login", move || store(&root, &registry, Some(login))).await?;
        Ok(())
    }

    async fn logout(&self, registry: &str) -> Result<bool, ApiError> {
        validate_registry(registry)?;
        let (root, registry) = (self.root.clone(), registry.to_owned());
        Ok(blocking("removing a registry login", move || store(&root, &registry, None)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn logins_are_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let logins = Logins::new(dir.path().to_owned());
        let request = LoginRequest { registry: "reg.example:5000".into(), username: "u".into(), password: "p".into() };
        logins.login(request).await.unwrap();
        let stored = for_registry(dir.path(), "reg.example:5000").await.unwrap().unwrap();
        assert_eq!((stored.username.as_str(), stored.password.as_str()), ("u", "p"));
        let mode = std::fs::metadata(dir.path().join("registries.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(logins.logout("reg.example:5000").await.unwrap());
        assert!(!logins.logout("reg.example:5000").await.unwrap());
        assert!(logins.logout("a/b").await.is_err());
        assert!(logins.logout("[::1]:5000").await.is_ok(), "IPv6 registries are host:port too");
    }
}
