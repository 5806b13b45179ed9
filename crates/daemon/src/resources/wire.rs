//! The store's rows as the Resource Manager API puts them on the wire, and
//! the asynchronous response message (spec 2.6.1).

use berth_api::{RmInternalResource, RmResourceInstance, RmResourceType, RmTransitionStatus};
use berth_core::resource::{mask_secrets, Descriptor};
use berth_store::{StoredInstance, StoredRequest, StoredType};

/// RFC 3339 in UTC to the second (`2017-05-01T12:00:00Z`), as the Ansible RM writes it.
pub fn time(ms: i64) -> String {
    jiff::Timestamp::from_second(ms.div_euclid(1000)).map(|t| t.to_string()).unwrap_or_default()
}

pub fn resource_type(t: &StoredType, with_descriptor: bool) -> RmResourceType {
    RmResourceType {
        name: t.name.clone(),
        descriptor: with_descriptor.then(|| t.descriptor.clone()),
        state: t.state.clone(),
        created_at: time(t.created_at),
        last_modified_at: time(t.updated_at),
    }
}

/// An instance, its passwords masked by its type's descriptor.
pub fn instance(i: &StoredInstance, manager: &str, descriptor: Option<&Descriptor>) -> RmResourceInstance {
    let properties = match descriptor {
        Some(d) => mask_secrets(&d.properties, &i.properties),
        None => i.properties.clone(),
    };
    RmResourceInstance {
        resource_id: i.id.clone(),
        resource_name: i.name.clone(),
        resource_type: i.type_name.clone(),
        resource_manager_id: manager.to_owned(),
        deployment_location: i.location.clone(),
        properties,
        created_at: time(i.created_at),
        last_modified_at: time(i.updated_at),
        internal_resource_instances: i
            .internal
            .iter()
            .map(|r| RmInternalResource { id: r.id.clone(), name: r.name.clone(), kind: r.kind.clone() })
            .collect(),
        metric_key: i.metric_key.clone(),
        resource_state: Some(if i.discovered { "Discovered".to_owned() } else { i.state.clone() }),
    }
}

pub fn status(r: &StoredRequest) -> RmTransitionStatus {
    RmTransitionStatus {
        request_id: r.id.clone(),
        request_state: r.state.clone(),
        request_state_reason: r.reason.clone(),
        request_failure_code: r.failure_code.clone(),
        resource_id: r.instance_id.clone(),
        started_at: r.started_at.map(time),
        finished_at: r.finished_at.map(time),
        context: r.context.clone(),
        transition_name: Some(r.transition.clone()),
        resource_type: Some(r.type_name.clone()),
        deployment_location: Some(r.location.clone()),
    }
}

/// The spec's 2.6.1 message for a request that ended; `instance` as it is
/// after the request (absent when it is gone).
pub fn response_message(r: &StoredRequest, instance: Option<&RmResourceInstance>, manager: &str) -> String {
    let resource_instance = match instance {
        Some(i) => serde_json::to_value(i).unwrap_or_default(),
        None => serde_json::json!({
            "resourceId": r.instance_id,
            "resourceName": r.resource_name,
            "resourceType": r.type_name,
            "resourceManagerId": manager,
            "deploymentLocation": r.location,
            "properties": {},
            "internalResourceInstances": [],
        }),
    };
    let message = serde_json::json!({
        "requestId": r.id,
        "resourceManagerId": manager,
        "deploymentLocation": r.location,
        "resourceType": r.type_name,
        "transitionName": r.transition,
        "resourceId": r.instance_id,
        "resourceInstance": resource_instance,
        "context": r.context,
        "requestState": r.state,
        "requestStateReason": r.reason,
        "requestFailureCode": r.failure_code,
        "startedAt": r.started_at.map(time),
        "finishedAt": r.finished_at.map(time),
    });
    message.to_string()
}
