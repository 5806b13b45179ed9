//! What `host ls` and `host inspect` show: the record, the journal's word
//! on an operation under way, the supervisor's on the daemon, and what the
//! host's own API answers.

use super::child::Status;
use super::record::{HostRecord, Supervisor};
use super::{client_of, Hosts};
use berth_api::{HostQuota, HostView};
use berth_core::journal::{OperationKind, Subject};
use std::time::Duration;

/// How long a host's API gets to answer a view's questions.
const ASK: Duration = Duration::from_secs(5);

pub async fn of(hosts: &Hosts, record: &HostRecord, detailed: bool) -> HostView {
    let paths = hosts.paths(&record.name);
    let client = client_of(&paths);
    let open = hosts.services.journal.open_entry_of(&Subject::Host(record.name.clone())).await.ok().flatten();
    let info = tokio::time::timeout(ASK, client.info()).await.ok().and_then(Result::ok);
    let (state, message) = match (open.map(|e| e.kind), &info) {
        (Some(OperationKind::HostCreate), _) => ("creating", None),
        (Some(_), _) => ("deleting", None),
        (None, Some(info)) => match &info.degraded {
            Some(degraded) => ("degraded", Some(degraded.clone())),
            None => ("running", None),
        },
        (None, None) => match (record.supervisor, hosts.children.status(&record.name)) {
            (Supervisor::Process, Some(Status::Exited { exits, last })) if exits > 0 => (
                "failed",
                Some(format!("its daemon exited {exits} times, last: {last}; see {}", paths.output().display())),
            ),
            (Supervisor::Process, Some(_)) => ("starting", None),
            (Supervisor::Process, None) => ("stopped", Some("this daemon does not supervise it".to_owned())),
            (Supervisor::Systemd, _) => (
                "stopped",
                Some(format!("its unit {} does not run", berth_core::units::host_unit_name_str(&record.name))),
            ),
        },
    };
    let mut view = HostView {
        name: record.name.clone(),
        state: state.to_owned(),
        message,
        root: paths.root().display().to_string(),
        socket: paths.socket().display().to_string(),
        endpoint: record.listen.map(|l| format!("tcp://{l}")),
        engine: record.engine.clone().unwrap_or_else(|| hosts.services.engine.endpoint()),
        supervisor: record.supervisor.as_str().to_owned(),
        instance: record.instance.clone(),
        created_at: record.created_at,
        version: info.as_ref().map(|i| i.version.clone()),
        apps: info.as_ref().map(|i| i.apps),
        apps_running: None,
        quota: HostQuota {
            cpus: record.cpus,
            memory: record.memory.as_deref().and_then(|m| berth_core::run_args::parse_size(m).ok()),
            cpus_used: 0.0,
            memory_used: 0,
        },
        cert_not_after: None,
        cert_days_left: None,
    };
    if !detailed || info.is_none() {
        return view;
    }
    if let Ok(Ok(apps)) = tokio::time::timeout(ASK, client.list(false)).await {
        view.apps_running = Some(apps.iter().filter(|a| a.state == berth_core::status::AppState::Running).count());
        view.quota.cpus_used = apps.iter().fold(0.0, |sum, a| sum + a.cpus);
        view.quota.memory_used = apps.iter().filter_map(|a| a.memory).sum();
    }
    if let Ok(Ok(certs)) = tokio::time::timeout(ASK, client.certs_show()).await {
        view.cert_not_after = Some(certs.server.not_after);
        view.cert_days_left = Some(certs.server.days_left);
    }
    view
}
