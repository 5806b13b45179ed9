//! Engine API models to berth's observations.

use crate::time::parse_rfc3339;
use berth_core::engine::NetworkInfo;
use berth_core::engine::{
    ContainerEvent, ContainerEventKind, ContainerObservation, Filter, ImageInfo, PathStat, RunState,
};
use berth_core::status::Health;
use bollard::container::PathStatResponse;
use bollard::models::{
    ContainerInspectResponse, ContainerSummary, EndpointSettings, EventMessage, ImageInspect, ImageSummary, Ipam,
    Network, NetworkInspect,
};
use std::collections::{BTreeMap, HashMap};

pub fn observation_from_inspect(inspect: ContainerInspectResponse) -> ContainerObservation {
    let state = inspect.state.unwrap_or_default();
    let networks = addresses(inspect.network_settings.and_then(|n| n.networks));
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
        networks,
    }
}

/// A listed container. The list has no start time and, before API 1.52, no
/// health or exit code but in its status text ("Exited (137) 2 minutes ago",
/// "Up 5 seconds (healthy)"), which is read for them.
pub fn observation_from_summary(summary: ContainerSummary) -> ContainerObservation {
    let name = summary.names.unwrap_or_default().into_iter().next().unwrap_or_default();
    let status = summary.status.unwrap_or_default();
    let state = summary.state.map_or(RunState::Created, |s| RunState::parse(s.as_ref()));
    let health = summary
        .health
        .and_then(|h| h.status)
        .map(|s| Health::parse(s.as_ref()))
        .filter(|h| *h != Health::None)
        .unwrap_or_else(|| health_from_status(&status));
    ContainerObservation {
        id: summary.id.unwrap_or_default(),
        name: name.trim_start_matches('/').to_owned(),
        image_id: summary.image_id.unwrap_or_default(),
        labels: summary.labels.unwrap_or_default().into_iter().collect(),
        state,
        exit_code: if state == RunState::Exited { exit_code_from_status(&status) } else { None },
        error: None,
        started_at: None,
        health,
        oom_killed: false,
        networks: addresses(summary.network_settings.and_then(|n| n.networks)),
    }
}

/// Network name → IPv4 address, from a container's endpoints.
fn addresses(endpoints: Option<HashMap<String, EndpointSettings>>) -> BTreeMap<String, String> {
    endpoints
        .unwrap_or_default()
        .into_iter()
        .map(|(name, endpoint)| (name, endpoint.ip_address.unwrap_or_default()))
        .collect()
}

/// The bridge driver's option naming the Linux bridge.
pub const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";

fn network_info(
    id: Option<String>,
    name: Option<String>,
    driver: Option<String>,
    ipam: Option<Ipam>,
    options: Option<HashMap<String, String>>,
    labels: Option<HashMap<String, String>>,
    containers: Vec<String>,
) -> NetworkInfo {
    let configs = ipam.and_then(|i| i.config).unwrap_or_default();
    NetworkInfo {
        id: id.unwrap_or_default(),
        name: name.unwrap_or_default(),
        driver: driver.unwrap_or_default(),
        labels: labels.unwrap_or_default().into_iter().collect(),
        subnets: configs.iter().filter_map(|c| c.subnet.clone()).collect(),
        gateways: configs.iter().filter_map(|c| c.gateway.clone()).collect(),
        bridge_name: options.unwrap_or_default().remove(BRIDGE_NAME_OPTION),
        containers,
    }
}

pub fn network_from_inspect(n: NetworkInspect) -> NetworkInfo {
    let mut containers: Vec<String> = n.containers.unwrap_or_default().into_keys().collect();
    containers.sort();
    network_info(n.id, n.name, n.driver, n.ipam, n.options, n.labels, containers)
}

/// A listed network (the list does not say which containers use it).
pub fn network_from_summary(n: Network) -> NetworkInfo {
    network_info(n.id, n.name, n.driver, n.ipam, n.options, n.labels, Vec::new())
}

fn exit_code_from_status(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest[..rest.find(')')?].parse().ok()
}

fn health_from_status(status: &str) -> Health {
    if status.contains("(healthy)") {
        Health::Healthy
    } else if status.contains("(unhealthy)") {
        Health::Unhealthy
    } else if status.contains("(health: starting)") {
        Health::Starting
    } else {
        Health::None
    }
}

/// The attributes Docker adds to a container event besides its labels (and
/// over labels of the same name, which the event therefore cannot carry).
const EVENT_ATTRIBUTES: &[&str] = &["image", "name", "exitCode", "signal", "execID", "execDuration"];

/// Reads one engine event about a container; others give `None`.
pub fn container_event(message: EventMessage) -> Option<ContainerEvent> {
    let actor = message.actor?;
    let mut attributes = actor.attributes.unwrap_or_default();
    let kind = match message.action?.as_str() {
        "start" => ContainerEventKind::Start,
        "die" => ContainerEventKind::Die { exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()) },
        "destroy" => ContainerEventKind::Destroy,
        "oom" => ContainerEventKind::Oom,
        other => {
            let status = other.strip_prefix("health_status:")?.trim();
            ContainerEventKind::Health(Health::parse(status))
        }
    };
    attributes.retain(|k, _| !EVENT_ATTRIBUTES.contains(&k.as_str()));
    Some(ContainerEvent {
        container_id: actor.id.unwrap_or_default(),
        labels: attributes.into_iter().collect(),
        kind,
        time: message.time.unwrap_or_default(),
    })
}

/// Docker's `label` filter for the matchers of `filter`.
pub fn label_filters(filter: &Filter) -> HashMap<String, Vec<String>> {
    let labels: Vec<String> = filter
        .labels
        .iter()
        .map(|m| match &m.value {
            Some(value) => format!("{}={value}", m.key),
            None => m.key.clone(),
        })
        .collect();
    if labels.is_empty() {
        HashMap::new()
    } else {
        HashMap::from([("label".to_owned(), labels)])
    }
}

fn tags(repo_tags: Vec<String>) -> Vec<String> {
    repo_tags.into_iter().filter(|t| t != "<none>:<none>").collect()
}

pub fn image_from_inspect(image: ImageInspect) -> ImageInfo {
    ImageInfo {
        id: image.id.unwrap_or_default(),
        repo_tags: tags(image.repo_tags.unwrap_or_default()),
        size: image.size.unwrap_or_default().max(0) as u64,
        labels: image.config.and_then(|c| c.labels).unwrap_or_default().into_iter().collect(),
    }
}

pub fn image_from_summary(image: ImageSummary) -> ImageInfo {
    ImageInfo {
        id: image.id,
        repo_tags: tags(image.repo_tags),
        size: image.size.max(0) as u64,
        labels: image.labels.into_iter().collect::<BTreeMap<_, _>>(),
    }
}

/// Go's `os.FileMode` bits, as the archive endpoint reports them.
const GO_MODE_DIR: u32 = 1 << 31;
const GO_MODE_SETUID: u32 = 1 << 23;
const GO_MODE_SETGID: u32 = 1 << 22;
const GO_MODE_STICKY: u32 = 1 << 20;

/// The permission bits (with set-uid, set-gid and sticky as in `chmod`).
pub fn path_stat(stat: &PathStatResponse) -> PathStat {
    let go = stat.file_mode;
    let mut mode = go & 0o777;
    for (bit, unix) in [(GO_MODE_SETUID, 0o4000), (GO_MODE_SETGID, 0o2000), (GO_MODE_STICKY, 0o1000)] {
        if go & bit != 0 {
            mode |= unix;
        }
    }
    PathStat { mode, size: stat.size.max(0) as u64, is_dir: go & GO_MODE_DIR != 0 }
}

/// A stats reading as berth keeps it. A stopped container's reading has no
/// CPU figures: `None`. The page cache is not memory in use: cgroup v2 calls
/// it `inactive_file`, v1 `total_inactive_file` (as the docker CLI subtracts).
pub fn stats_from_reading(
    reading: &bollard::models::ContainerStatsResponse,
) -> Option<berth_core::engine::ContainerStats> {
    let cpu_ns = reading.cpu_stats.as_ref()?.cpu_usage.as_ref()?.total_usage?;
    let memory = reading.memory_stats.as_ref();
    let usage = memory.and_then(|m| m.usage).unwrap_or(0);
    let cache = memory
        .and_then(|m| m.stats.as_ref())
        .and_then(|s| s.get("inactive_file").or_else(|| s.get("total_inactive_file")).copied())
        .unwrap_or(0);
    Some(berth_core::engine::ContainerStats {
        cpu_ns,
        memory_bytes: usage.saturating_sub(cache),
        memory_limit: memory.and_then(|m| m.limit).filter(|l| *l > 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    #[test]
    fn list_status_text_gives_exit_code_and_health() {
        assert_eq!(exit_code_from_status("Exited (137) 2 minutes ago"), Some(137));
        assert_eq!(exit_code_from_status("Up 2 minutes"), None);
        assert_eq!(health_from_status("Up 5 seconds (healthy)"), Health::Healthy);
        assert_eq!(health_from_status("Up 5 seconds (health: starting)"), Health::Starting);
        assert_eq!(health_from_status("Up 5 seconds (unhealthy)"), Health::Unhealthy);
        assert_eq!(health_from_status("Created"), Health::None);
    }

    #[test]
    fn events_carry_labels_without_docker_attributes() {
        let message = EventMessage {
            action: Some("die".into()),
            actor: Some(EventActor {
                id: Some("c1".into()),
                attributes: Some(HashMap::from([
                    ("berth.app".to_owned(), "web".to_owned()),
                    ("exitCode".to_owned(), "3".to_owned()),
                    ("image".to_owned(), "sha256:1".to_owned()),
                    ("name".to_owned(), "web".to_owned()),
                ])),
            }),
            time: Some(7),
            ..Default::default()
        };
        let event = container_event(message).unwrap();
        assert_eq!(event.kind, ContainerEventKind::Die { exit_code: Some(3) });
        assert_eq!(event.labels, BTreeMap::from([("berth.app".to_owned(), "web".to_owned())]));
        let health = EventMessage { action: Some("health_status: unhealthy".into()), ..event_message() };
        assert_eq!(container_event(health).unwrap().kind, ContainerEventKind::Health(Health::Unhealthy));
        assert!(container_event(EventMessage { action: Some("exec_create: sh".into()), ..event_message() }).is_none());
    }

    fn event_message() -> EventMessage {
        EventMessage { actor: Some(EventActor { id: Some("c1".into()), attributes: None }), ..Default::default() }
    }

    #[test]
    fn go_file_modes() {
        let stat = |file_mode, size| PathStatResponse {
            name: "x".into(),
            size,
            file_mode,
            modification_time: None,
            link_target: String::new(),
        };
        assert_eq!(path_stat(&stat(GO_MODE_DIR | 0o755, 4096)), PathStat { mode: 0o755, size: 4096, is_dir: true });
        assert_eq!(path_stat(&stat(GO_MODE_SETUID | 0o755, 9)), PathStat { mode: 0o4755, size: 9, is_dir: false });
        assert_eq!(
            path_stat(&stat(GO_MODE_DIR | GO_MODE_STICKY | 0o777, 0)),
            PathStat { mode: 0o1777, size: 0, is_dir: true }
        );
    }

    #[test]
    fn label_filters_for_docker() {
        let filter = Filter::default().label("berth.instance", "i1").has_label("berth.app");
        assert_eq!(label_filters(&filter)["label"], ["berth.instance=i1", "berth.app"]);
        assert!(label_filters(&Filter::default()).is_empty());
    }

    #[test]
    fn stats_take_the_page_cache_off_memory_on_cgroup_v1_and_v2() {
        use bollard::models::{ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats, ContainerStatsResponse};
        let reading = |stats: &[(&str, u64)]| ContainerStatsResponse {
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage { total_usage: Some(42), ..Default::default() }),
                ..Default::default()
            }),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(1000),
                limit: Some(4096),
                stats: Some(stats.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let v2 = stats_from_reading(&reading(&[("inactive_file", 300)])).unwrap();
        assert_eq!((v2.cpu_ns, v2.memory_bytes, v2.memory_limit), (42, 700, Some(4096)));
        let v1 = stats_from_reading(&reading(&[("total_inactive_file", 100)])).unwrap();
        assert_eq!(v1.memory_bytes, 900);
        let stopped = ContainerStatsResponse::default();
        assert!(stats_from_reading(&stopped).is_none(), "a stopped container has no CPU figures");
    }
}
