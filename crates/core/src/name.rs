//! App names. They become container names, directory names under the data
//! root and (later) systemd unit names, so the alphabet is deliberately small.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest name accepted: 63 characters, the DNS label limit, which also keeps
/// `berth-app-<name>.service` well under systemd's unit name limit.
pub const MAX_NAME_LEN: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("app name is empty")]
    Empty,
    #[error("app name {name:?} is {len} characters long; at most {MAX_NAME_LEN} are allowed")]
    TooLong { name: String, len: usize },
    #[error("app name {name:?} must start with a lowercase letter or digit")]
    BadStart { name: String },
    #[error("app name {name:?} contains {found:?}; allowed are a-z, 0-9, '_', '.' and '-'")]
    BadCharacter { name: String, found: char },
    #[error("app name {name:?} contains \".berth-\", which berth reserves for containers it keeps aside")]
    Reserved { name: String },
    #[error("app name {name:?} is too short: the container engine needs at least 2 characters")]
    TooShort { name: String },
    #[error("app name {name:?} has two dots in a row or ends with a dot; it names a directory and a systemd unit")]
    BadDots { name: String },
}

/// Container names berth uses besides the app's own: `<name>.berth-old`.
const RESERVED: &str = ".berth-";

/// A validated app name matching `[a-z0-9][a-z0-9_.-]{1,62}`, without `..`
/// and not ending in `.`: what the engine takes as a container name (two
/// characters at least), a directory name and a systemd unit name all accept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppName(String);

impl AppName {
    /// The name the app's previous container is kept under during an upgrade.
    pub fn aside(&self) -> String {
        format!("{}{RESERVED}old", self.0)
    }

    pub fn parse(text: &str) -> Result<Self, NameError> {
        let mut chars = text.chars();
        let first = chars.next().ok_or(NameError::Empty)?;
        let len = text.chars().count();
        if len > MAX_NAME_LEN {
            return Err(NameError::TooLong { name: text.to_owned(), len });
        }
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(NameError::BadStart { name: text.to_owned() });
        }
        if let Some(found) = chars.find(|c| !is_name_char(*c)) {
            return Err(NameError::BadCharacter { name: text.to_owned(), found });
        }
        if text.contains(RESERVED) {
            return Err(NameError::Reserved { name: text.to_owned() });
        }
        if len < 2 {
            return Err(NameError::TooShort { name: text.to_owned() });
        }
        if text.contains("..") || text.ends_with('.') {
            return Err(NameError::BadDots { name: text.to_owned() });
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for AppName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<AppName> for String {
    fn from(value: AppName) -> Self {
        value.0
    }
}

impl AsRef<str> for AppName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in ["ab", "01", "my-app", "tpc_1.2", "a-", &"a".repeat(63)] {
            assert_eq!(AppName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_everything_else_with_a_reason() {
        assert_eq!(AppName::parse(""), Err(NameError::Empty));
        assert!(matches!(AppName::parse("x"), Err(NameError::TooShort { .. })), "the engine refuses one character");
        for dots in ["a..", "a..b", "ab."] {
            assert!(matches!(AppName::parse(dots), Err(NameError::BadDots { .. })), "{dots}");
        }
        assert!(matches!(AppName::parse(&"a".repeat(64)), Err(NameError::TooLong { len: 64, .. })));
        for bad_start in ["-a", ".a", "_a", "Abc"] {
            assert!(matches!(AppName::parse(bad_start), Err(NameError::BadStart { .. })), "{bad_start}");
        }
        for (bad, c) in [("a/b", '/'), ("a b", ' '), ("aB", 'B'), ("a.\u{e9}", '\u{e9}'), ("a;rm", ';')] {
            assert_eq!(AppName::parse(bad), Err(NameError::BadCharacter { name: bad.into(), found: c }));
        }
    }

    #[test]
    fn berths_own_suffixes_are_reserved() {
        assert!(matches!(AppName::parse("web.berth-old"), Err(NameError::Reserved { .. })));
        assert!(AppName::parse("web.berth").is_ok());
    }

    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<AppName>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<AppName>("\"a\"").is_err());
        assert!(serde_json::from_str::<AppName>("\"../etc\"").is_err());
    }
}
