//! The administrator account: a name and an Argon2id password hash (PHC
//! string) in one private file, written atomically.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Shortest password taken: the account guards a root daemon.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password taken (Argon2 would take more, a form field need not).
const MAX_PASSWORD_BYTES: usize = 1024;
/// The file is a few hundred bytes; anything bigger is not ours.
const MAX_FILE_BYTES: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("the user name must be 1 to 64 letters, digits, '.', '_' or '-', not {0:?}")]
    BadUser(String),
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    ShortPassword,
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    LongPassword,
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Fs(#[from] berth_fs::FsError),
    #[error("{path} is not a berth administrator account: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("the daemon is shutting down")]
    Closed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminAccount {
    pub user: String,
    /// `$argon2id$v=19$m=...,t=...,p=...$salt$hash`.
    hash: String,
}

impl AdminAccount {
    /// Hashes `password` with a fresh salt (Argon2id, the crate's default
    /// parameters: 19 MiB, 2 passes, the OWASP recommendation).
    pub fn create(user: &str, password: &str) -> Result<Self, AccountError> {
        check_user(user)?;
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(AccountError::ShortPassword);
        }
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(AccountError::LongPassword);
        }
        let salt =
            SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| AccountError::Hash(e.to_string()))?;
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| AccountError::Hash(e.to_string()))?
            .to_string();
        Ok(Self { user: user.to_owned(), hash })
    }

    /// Whether `user` and `password` are this account's, in time that does
    /// not depend on where a wrong name differs.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let Ok(hash) = PasswordHash::new(&self.hash) else { return false };
        // The hash is checked even for a wrong name, so timing does not tell
        // whether the name was right.
        let password_ok = password.len() <= MAX_PASSWORD_BYTES
            && Argon2::default().verify_password(password.as_bytes(), &hash).is_ok();
        let user_ok = constant_time_eq(user.as_bytes(), self.user.as_bytes());
        password_ok && user_ok
    }

    pub fn load(path: &Path) -> Result<Option<Self>, AccountError> {
        let io = |source| AccountError::Io { path: path.to_owned(), source };
        let text = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
            Ok(meta) if meta.len() > MAX_FILE_BYTES => {
                return Err(AccountError::Corrupt { path: path.to_owned(), reason: format!("{} bytes", meta.len()) })
            }
            Ok(_) => std::fs::read(path).map_err(io)?,
        };
        let account: Self = serde_json::from_slice(&text)
            .map_err(|e| AccountError::Corrupt { path: path.to_owned(), reason: e.to_string() })?;
        PasswordHash::new(&account.hash)
            .map_err(|e| AccountError::Corrupt { path: path.to_owned(), reason: e.to_string() })?;
        Ok(Some(account))
    }

    /// Writes the account readable by root only.
    pub fn save(&self, path: &Path) -> Result<(), AccountError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| AccountError::Hash(e.to_string()))?;
        Ok(berth_fs::atomic_write_mode(path, &json, 0o600)?)
    }

    /// Removes the account file; false when there was none.
    pub fn remove(path: &Path) -> Result<bool, AccountError> {
        match std::fs::remove_file(path) {
            Ok(()) => {
                berth_fs::sync_dir(&berth_fs::parent_of(path))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(AccountError::Io { path: path.to_owned(), source }),
        }
    }
}

fn check_user(user: &str) -> Result<(), AccountError> {
    let ok = (1..=64).contains(&user.len())
        && user.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::BadUser(user.chars().take(80).collect()))
    }
}

/// Compares without an early exit on the first differing byte.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_account_verifies_its_password_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web-admin.json");
        AdminAccount::create("admin", "correct horse battery").unwrap().save(&file).unwrap();
        let account = AdminAccount::load(&file).unwrap().unwrap();
        assert!(account.verify("admin", "correct horse battery"));
        assert!(!account.verify("admin", "correct horse batterY"));
        assert!(!account.verify("root", "correct horse battery"));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("horse"), "the password itself is never written: {text}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(AdminAccount::remove(&file).unwrap());
        assert!(AdminAccount::load(&file).unwrap().is_none());
        assert!(!AdminAccount::remove(&file).unwrap());
    }

    #[test]
    fn bad_names_short_passwords_and_damaged_files_are_refused() {
        assert!(matches!(AdminAccount::create("ad min", "long enough password"), Err(AccountError::BadUser(_))));
        assert!(matches!(AdminAccount::create("", "long enough password"), Err(AccountError::BadUser(_))));
        assert!(matches!(AdminAccount::create("admin", "short"), Err(AccountError::ShortPassword)));
        assert!(matches!(AdminAccount::create("admin", &"x".repeat(2000)), Err(AccountError::LongPassword)));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web-admin.json");
        std::fs::write(&file, br#"{"user":"admin","hash":"plain"}"#).unwrap();
        assert!(matches!(AdminAccount::load(&file), Err(AccountError::Corrupt { .. })));
        std::fs::write(&file, b"not json").unwrap();
        assert!(matches!(AdminAccount::load(&file), Err(AccountError::Corrupt { .. })));
    }
}
