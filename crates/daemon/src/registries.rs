//! Registry logins (`berth login`), kept in `<root>/registries.json`, mode
//! 0600, written atomically. Passwords are never logged or shown.

use crate::error::OpError;
use berth_core::engine::RegistryCredentials;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn file(root: &Path) -> PathBuf {
    root.join("registries.json")
}

pub fn load(root: &Path) -> Result<BTreeMap<String, RegistryCredentials>, OpError> {
    let path = file(root);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| OpError::InvalidValue { what: "registry logins", reason: format!("{}: {e}", path.display()) }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(OpError::io(&path)(e)),
    }
}

pub fn for_registry(root: &Path, registry: &str) -> Result<Option<RegistryCredentials>, OpError> {
    Ok(load(root)?.remove(registry))
}

pub fn store(root: &Path, registry: &str, credentials: Option<RegistryCredentials>) -> Result<bool, OpError> {
    let mut all = load(root)?;
    let changed = match credentials {
        Some(c) => {
            all.insert(registry.to_owned(), c);
            true
        }
        None => all.remove(registry).is_some(),
    };
    crate::files::atomic_write_mode(&file(root), &serde_json::to_vec_pretty(&all).unwrap_or_default(), 0o600)?;
    Ok(changed)
}

/// `user:password` as given to `--registry-auth`.
pub fn parse_auth(text: &str) -> Result<RegistryCredentials, OpError> {
    match text.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => {
            Ok(RegistryCredentials { username: user.to_owned(), password: password.to_owned() })
        }
        _ => Err(OpError::InvalidValue { what: "--registry-auth", reason: "must be USER:PASSWORD".into() }),
    }
}

/// A registry is named by its host and optional port, nothing else.
pub fn validate_registry(registry: &str) -> Result<(), OpError> {
    let ok = !registry.is_empty()
        && registry.len() <= 255
        && registry.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if ok {
        Ok(())
    } else {
        Err(OpError::InvalidValue { what: "registry", reason: format!("{registry:?} is not a host[:port]") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn logins_are_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let login = RegistryCredentials { username: "u".into(), password: "p".into() };
        store(dir.path(), "reg.example:5000", Some(login.clone())).unwrap();
        assert_eq!(for_registry(dir.path(), "reg.example:5000").unwrap(), Some(login));
        let mode = std::fs::metadata(dir.path().join("registries.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(store(dir.path(), "reg.example:5000", None).unwrap());
        assert_eq!(for_registry(dir.path(), "reg.example:5000").unwrap(), None);
        assert!(parse_auth("nopassword").is_err() && parse_auth("u:p:q").is_ok());
        assert!(validate_registry("a/b").is_err() && validate_registry("127.0.0.1:5114").is_ok());
    }
}
