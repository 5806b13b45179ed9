//! The states an app is shown in. They are derived from the journal, the
//! supervisor and the engine's events; none of them is stored as truth.

use serde::{Deserialize, Serialize};
use std::fmt;
use strum::{EnumString, IntoStaticStr};

/// What the user wants an app to be doing. This one *is* stored: it is the
/// difference between "stopped by the user" and "crashed".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, EnumString)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub enum DesiredState {
    Running,
    Stopped,
}

impl DesiredState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, EnumString)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub enum AppState {
    /// The install operation is running.
    Installing,
    /// The container is being created or started.
    Starting,
    Running,
    /// The container exited and the supervisor waits out its backoff.
    Restarting,
    /// Stopped by the user.
    Stopped,
    /// The supervisor gave up; the reason is shown beside the state.
    Failed,
    /// The uninstall operation is running.
    Uninstalling,
    /// An upgrade or rollback is running.
    Upgrading,
}

impl fmt::Display for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.into())
    }
}

/// Docker's health status, or `None` when the image has no health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub enum Health {
    #[default]
    None,
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn parse(text: &str) -> Self {
        match text {
            "starting" => Health::Starting,
            "healthy" => Health::Healthy,
            "unhealthy" => Health::Unhealthy,
            _ => Health::None,
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Health::None => "-",
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        };
        f.write_str(text)
    }
}
