use std::fmt::Write as _;

/// Why a resource package is refused: the file (relative to the package
/// directory), the 1-based line and the key path (`properties.port.type`,
/// `lifecycle[1]`) where that is known, and what is wrong. Displayed as
/// `resource.yaml line 7 (properties.port.type): unknown property type "strin"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", location(.line, .key))]
pub struct PackageError {
    pub file: String,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl PackageError {
    pub(crate) fn new(file: &str, line: Option<usize>, key: &str, message: impl Into<String>) -> Self {
        PackageError {
            file: file.to_owned(),
            line,
            key: (!key.is_empty()).then(|| key.to_owned()),
            message: message.into(),
        }
    }
}

pub(crate) fn location(line: &Option<usize>, key: &Option<String>) -> String {
    let mut out = String::new();
    if let Some(line) = line {
        let _ = write!(out, " line {line}");
    }
    if let Some(key) = key {
        let _ = write!(out, " ({key})");
    }
    out
}
