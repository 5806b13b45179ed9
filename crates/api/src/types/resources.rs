//! Wire types of the Resource Manager API 1.0 (the Open Service Lifecycle
//! Manager's), field names exactly as the specification and its
//! implementations put them on the wire (camelCase). Served under
//! `/api/resource-manager` and `/api/v1.0/resource-manager`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// `GET /configuration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RmConfiguration {
    pub name: String,
    pub version: String,
    pub supported_api_versions: Vec<String>,
    /// `AsynchronousTransitionResponses`: "true" when responses go to Kafka.
    pub supported_features: BTreeMap<String, String>,
    /// `responseKafkaConnectionUrl`, `responseKafkaTopicName` where Kafka is configured.
    pub properties: BTreeMap<String, String>,
}

/// A resource type; `descriptor` (the YAML text) only from `GET /types/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RmResourceType {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<String>,
    /// PUBLISHED, UNPUBLISHED or DELETED.
    pub state: String,
    pub created_at: String,
    pub last_modified_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RmDeploymentLocation {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// berth adds `description`, `engine` and `status` (available | unavailable).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RmInternalResource {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RmResourceInstance {
    pub resource_id: String,
    pub resource_name: String,
    pub resource_type: String,
    pub resource_manager_id: String,
    pub deployment_location: String,
    /// Passwords are masked.
    pub properties: BTreeMap<String, String>,
    pub created_at: String,
    pub last_modified_at: String,
    pub internal_resource_instances: Vec<RmInternalResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_key: Option<String>,
    /// berth's own: Installing, Inactive, Active, Stopped, Broken, Discovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_state: Option<String>,
}

/// `GET /topology/deployment-locations/{name}/instances` filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct RmInstanceQuery {
    /// Exact type name.
    #[serde(default)]
    pub instance_type: Option<String>,
    /// Part of the instance's name.
    #[serde(default)]
    pub instance_name: Option<String>,
}

/// `POST /lifecycle/transitions`. Property values may be given as JSON
/// strings, numbers or booleans; they are kept as text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RmTransitionRequest {
    #[serde(default)]
    pub resource_manager_id: Option<String>,
    #[serde(default)]
    pub deployment_location: Option<String>,
    #[serde(default)]
    pub resource_type: Option<String>,
    /// `Install`, `Transition::Install`, …, or an operation's name.
    #[serde(default)]
    pub transition_name: Option<String>,
    /// Absent on Install; names the instance for every later transition.
    #[serde(default)]
    pub resource_id: Option<String>,
    #[serde(default)]
    pub resource_name: Option<String>,
    #[serde(default)]
    pub metric_key: Option<String>,
    #[serde(default)]
    pub resource_state: Option<String>,
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    pub properties: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    pub context: BTreeMap<String, serde_json::Value>,
    // Fields a client may echo back from a status; ignored.
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub request_id: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub request_state: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub request_state_reason: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub started_at: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub finished_at: Option<serde_json::Value>,
}

/// 202 answer to `POST /lifecycle/transitions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RmTransitionAccepted {
    pub request_id: String,
    pub request_state: String,
    /// berth's own: the instance the request is about (known at once, Install included).
    pub resource_id: String,
    pub context: BTreeMap<String, String>,
}

/// `GET /lifecycle/transitions/{id}/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RmTransitionStatus {
    pub request_id: String,
    /// PENDING, IN_PROGRESS, COMPLETED or FAILED.
    pub request_state: String,
    #[serde(default)]
    pub request_state_reason: Option<String>,
    /// RESOURCE_NOT_FOUND, RESOURCE_ALREADY_EXISTS, INFRASTRUCTURE_ERROR,
    /// INSUFFICIENT_CAPACITY or INTERNAL_ERROR, when FAILED.
    #[serde(default)]
    pub request_failure_code: Option<String>,
    pub resource_id: String,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    pub context: BTreeMap<String, String>,
    /// berth's own: the transition or operation, and the type and location.
    #[serde(default)]
    pub transition_name: Option<String>,
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub deployment_location: Option<String>,
}

/// The error body of this API (the reference implementation's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{localized_message}")]
pub struct RmError {
    pub localized_message: String,
    /// The path asked for.
    #[serde(default)]
    pub url: String,
    /// The HTTP status, repeated.
    pub status: u16,
}

impl RmError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { localized_message: message.into(), url: String::new(), status: 400 }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self { localized_message: message.into(), url: String::new(), status: 404 }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self { localized_message: message.into(), url: String::new(), status: 409 }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self { localized_message: message.into(), url: String::new(), status: 500 }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { localized_message: message.into(), url: String::new(), status: 503 }
    }
}

/// berth's own: the delivery of asynchronous responses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RmOutboxState {
    /// Whether Kafka is configured.
    pub enabled: bool,
    /// Responses not delivered yet.
    pub depth: i64,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// berth's own: `dockerrm_baseimage`, built in every location that answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RmBaseImage {
    pub tag: String,
    /// Location → the image's id there.
    pub images: BTreeMap<String, String>,
}
