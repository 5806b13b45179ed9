//! The names a descriptor is made of: its type name, the standard lifecycle
//! transitions and the property types.

use serde::{Deserialize, Serialize};
use std::fmt;
use strum::{EnumIter, IntoEnumIterator, IntoStaticStr};

/// Longest `<name>` part of a type name accepted. It becomes part of image and
/// container names (`dockerrm_<name>`), so it is kept short.
pub const MAX_TYPE_NAME_LEN: usize = 64;

/// A resource type, `resource::<name>::<version>` (Resource Descriptor
/// Specification 1.0, "Naming"): the name starts with a letter and holds
/// letters, digits, `_` and `-`; the version is digits separated by dots.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TypeName {
    name: String,
    version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeNameError {
    #[error("resource type {text:?} must look like resource::<name>::<version>")]
    Shape { text: String },
    #[error("resource type {text:?}: the name must start with a letter and hold only letters, digits, '_' and '-'")]
    BadName { text: String },
    #[error("resource type {text:?}: the name is longer than {MAX_TYPE_NAME_LEN} characters")]
    TooLong { text: String },
    #[error("resource type {text:?}: the version must be digits separated by dots, like 1.0")]
    BadVersion { text: String },
}

impl TypeName {
    pub fn new(name: &str, version: &str) -> Result<Self, TypeNameError> {
        Self::parse(&format!("resource::{name}::{version}"))
    }

    pub fn parse(text: &str) -> Result<Self, TypeNameError> {
        let shape = || TypeNameError::Shape { text: text.to_owned() };
        let rest = text.strip_prefix("resource::").ok_or_else(shape)?;
        let (name, version) = rest.split_once("::").ok_or_else(shape)?;
        let mut chars = name.chars();
        let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
        if !starts_with_letter || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(TypeNameError::BadName { text: text.to_owned() });
        }
        if name.len() > MAX_TYPE_NAME_LEN {
            return Err(TypeNameError::TooLong { text: text.to_owned() });
        }
        if version.split('.').any(|part| part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit())) {
            return Err(TypeNameError::BadVersion { text: text.to_owned() });
        }
        Ok(TypeName { name: name.to_owned(), version: version.to_owned() })
    }

    /// The `<name>` part, e.g. `docker-network`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `<version>` part, e.g. `1.0`.
    pub fn version(&self) -> &str {
        &self.version
    }
}

impl fmt::Display for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "resource::{}::{}", self.name, self.version)
    }
}

impl TryFrom<String> for TypeName {
    type Error = TypeNameError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<TypeName> for String {
    fn from(name: TypeName) -> String {
        name.to_string()
    }
}

/// A standard lifecycle transition (Resource Descriptor Specification 1.0;
/// the Docker RM adds `Reconfigure`). The order is the declaration order, so
/// maps keyed by transitions list them as a lifecycle runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, IntoStaticStr, EnumIter)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub enum Transition {
    Install,
    Configure,
    Start,
    Integrity,
    Stop,
    Reconfigure,
    Uninstall,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown transition {text:?}; known are {}", known_transitions())]
pub struct TransitionError {
    pub text: String,
}

impl Transition {
    /// The canonical name, `Install`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The key naming this transition in `lifecycle/lifecycle.yaml`: `install`.
    pub fn lifecycle_key(self) -> &'static str {
        match self {
            Transition::Install => "install",
            Transition::Configure => "configure",
            Transition::Start => "start",
            Transition::Integrity => "integrity",
            Transition::Stop => "stop",
            Transition::Reconfigure => "reconfigure",
            Transition::Uninstall => "uninstall",
        }
    }

    /// `Install` or `Transition::Install`, case-sensitive.
    pub fn parse(text: &str) -> Result<Self, TransitionError> {
        let bare = text.strip_prefix("Transition::").unwrap_or(text);
        Transition::iter().find(|t| t.as_str() == bare).ok_or_else(|| TransitionError { text: text.to_owned() })
    }

    /// A key of `lifecycle/lifecycle.yaml`: `install`, case-sensitive.
    pub fn from_lifecycle_key(key: &str) -> Option<Self> {
        Transition::iter().find(|t| t.lifecycle_key() == key)
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn known_transitions() -> String {
    Transition::iter().map(Transition::as_str).collect::<Vec<_>>().join(", ")
}

/// The type of a property (`type:`); `password` marks a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, IntoStaticStr, EnumIter)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub enum PropertyType {
    String,
    Password,
    Integer,
    Float,
    Boolean,
    Timestamp,
    Map,
    List,
    Key,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown property type {text:?}; known are {}", known_property_types())]
pub struct PropertyTypeError {
    pub text: String,
}

impl PropertyType {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(text: &str) -> Result<Self, PropertyTypeError> {
        PropertyType::iter().find(|t| t.as_str() == text).ok_or_else(|| PropertyTypeError { text: text.to_owned() })
    }
}

impl fmt::Display for PropertyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn known_property_types() -> String {
    PropertyType::iter().map(PropertyType::as_str).collect::<Vec<_>>().join(", ")
}
