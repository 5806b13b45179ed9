//! `berth host …`: container hosts. The client bundle of `create` is written
//! here (the daemon never writes files for a client).

use crate::args::Host;
use crate::certs::{day, save_bundle};
use crate::exit::Failure;
use crate::output::{self, printable};
use crate::say;
use berth_api::client::Client;
use berth_api::{HostCreateRequest, HostView};
use std::path::PathBuf;

pub async fn run(client: &Client, command: Host) -> Result<(), Failure> {
    match command {
        Host::Create { name, engine, listen, cpus, memory, cert_dir, output } => {
            let request = HostCreateRequest { name: name.clone(), engine, listen, cpus, memory };
            let created = client.host_create(&request).await?;
            if let Some(bundle) = &created.bundle {
                save_bundle(bundle, &cert_dir.unwrap_or_else(|| PathBuf::from(&name)))?;
            }
            if output.is_json() {
                return output::json(&created.host);
            }
            say(&format!("host {} is running ({})", printable(&created.host.name), created.host.supervisor))?;
            say(&format!("BERTH_SOCKET={}", printable(&created.host.socket)))?;
            say(&format!("berth --socket {} list", printable(&created.host.socket)))
        }
        Host::Ls(read) => {
            let hosts = client.hosts().await?;
            if read.output.is_json() {
                return output::json(&hosts);
            }
            say("NAME  STATE  APPS  ENDPOINT  ENGINE")?;
            for h in &hosts {
                let apps = h.apps.map_or_else(|| "-".to_owned(), |n| n.to_string());
                let endpoint = h.endpoint.as_deref().unwrap_or(&h.socket);
                say(&format!("{}  {}  {apps}  {}  {}", printable(&h.name), h.state, printable(endpoint), h.engine))?;
            }
            Ok(())
        }
        Host::Inspect { name, read } => {
            let host = client.host(&name).await?;
            if read.output.is_json() {
                return output::json(&host);
            }
            inspect_lines(&host)
        }
        Host::Delete { name, force, output } => {
            let deleted = client.host_delete(&name, force).await?;
            if output.is_json() {
                return output::json(&deleted);
            }
            for thing in &deleted.removed {
                say(&format!("removed {}", printable(thing)))?;
            }
            for thing in &deleted.left {
                say(&printable(thing))?;
            }
            say(&format!("host {} is deleted", printable(&deleted.name)))
        }
    }
}

fn inspect_lines(h: &HostView) -> Result<(), Failure> {
    say(&format!("host:        {}", printable(&h.name)))?;
    say(&format!("state:       {}", h.state))?;
    if let Some(message) = &h.message {
        say(&format!("             {}", printable(message)))?;
    }
    say(&format!("version:     {}", h.version.as_deref().unwrap_or("-")))?;
    say(&format!("socket:      {}", printable(&h.socket)))?;
    if let Some(endpoint) = &h.endpoint {
        say(&format!("endpoint:    {endpoint} (mutual TLS)"))?;
    }
    say(&format!("engine:      {}", h.engine))?;
    say(&format!("supervisor:  {}", h.supervisor))?;
    say(&format!("root:        {}", printable(&h.root)))?;
    say(&format!(
        "apps:        {} ({} running)",
        h.apps.map_or_else(|| "-".to_owned(), |n| n.to_string()),
        h.apps_running.map_or_else(|| "-".to_owned(), |n| n.to_string())
    ))?;
    let q = &h.quota;
    let cpus = q.cpus.map_or_else(|| "no quota".to_owned(), |c| format!("quota {c}"));
    say(&format!("cpus:        {} used, {cpus}", q.cpus_used))?;
    let mib = |b: u64| format!("{} MiB", b >> 20);
    let memory = q.memory.map_or_else(|| "no quota".to_owned(), |m| format!("quota {}", mib(m)));
    say(&format!("memory:      {} used, {memory}", mib(q.memory_used)))?;
    if let (Some(until), Some(days)) = (h.cert_not_after, h.cert_days_left) {
        say(&format!("certificate: valid until {} ({days} days left)", day(until)))?;
    }
    Ok(())
}
