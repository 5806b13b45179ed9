//! Engine API models to berth's observations.

use crate::time::parse_rfc3339;
use berth_core::engine::{ContainerEvent, ContainerEventKind, ContainerObservation, RunState};
use berth_core::spec::LABEL_APP;
use berth_core::status::Health;
use bollard::models::{ContainerInspectResponse, ContainerSummary, EventMessage};

pub fn observation_from_inspect(inspect: ContainerInspectResponse) -> ContainerObservation {
    let state = inspect.state.unwrap_or_default();
    let labels = inspect.config.and_then(|c| c.labels).unwrap_or_default().into_iter().collect();
    ContainerObservation {
        id: inspect.id.unwrap_or_default(),
        name: inspect.name.unwrap_or_default().trim_start_matches('/').to_owned(),
        image_id: inspect.image.unwrap_or_default(),
        labels,
        state: state.status.map_or(RunState::Created, |s| RunState::parse(s.as_ref())),
        exit_code: state.exit_code,
        error: state.error.filter(|e| !e.is_empty()),
        started_at: state.started_at.as_deref().and_then(parse_rfc3339),
        health: state.health.and_then(|h| h.status).map_or(Health::None, |s| Health::parse(s.as_ref())),
        oom_killed: state.oom_killed.unwrap_or(false),
    }
}

pub fn observation_from_summary(summary: ContainerSummary) -> ContainerObservation {
    let name = summary.names.unwrap_or_default().into_iter().next().unwrap_or_default();
    ContainerObservation {
        id: summary.id.unwrap_or_default(),
        name: name.trim_start_matches('/').to_owned(),
        image_id: summary.image_id.unwrap_or_default(),
        labels: summary.labels.unwrap_or_default().into_iter().collect(),
        state: summary.state.map_or(RunState::Created, |s| RunState::parse(s.as_ref())),
        exit_code: None,
        error: None,
        started_at: None,
        health: Health::None,
        oom_killed: false,
    }
}

/// Reads one engine event about a berth-owned container; others give `None`.
pub fn container_event(message: EventMessage) -> Option<ContainerEvent> {
    let actor = message.actor?;
    let attributes = actor.attributes.unwrap_or_default();
    let app = attributes.get(LABEL_APP)?.clone();
    let action = message.action?;
    let kind = match action.as_str() {
        "start" => ContainerEventKind::Start,
        "die" => ContainerEventKind::Die { exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()) },
        "destroy" => ContainerEventKind::Destroy,
        "oom" => ContainerEventKind::Oom,
        other => {
            let status = other.strip_prefix("health_status:")?.trim();
            ContainerEventKind::Health(Health::parse(status))
        }
    };
    Some(ContainerEvent {
        container_id: actor.id.unwrap_or_default(),
        app,
        kind,
        time: message.time.unwrap_or_default(),
    })
}
