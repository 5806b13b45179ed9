//! Wire types of host OS migration.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The migration store's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    /// No export was made.
    None,
    /// Exported, not yet imported.
    Pending,
    Imported,
    /// Imported with some apps failing.
    Partial,
}

/// `GET /v1/migrate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MigrationStatus {
    pub state: MigrationState,
    pub exported_at: Option<i64>,
    pub directory: String,
    pub apps: Vec<MigrationResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MigrationOutcome {
    Exported,
    Imported,
    AlreadyPresent,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MigrationResult {
    pub name: String,
    pub outcome: MigrationOutcome,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
