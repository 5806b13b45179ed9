//! `berth resource …`: the resource manager's API (`/api/resource-manager`)
//! for a person or a script. Each command is one request, or a few (every
//! location's instances, an instance with its requests, a status and the
//! outbox); `--output json` prints the API's JSON as it came.

use crate::args::{Output, Resource, ResourceInstances, ResourceTransition};
use crate::exit::Failure;
use crate::output::{self, printable};
use crate::say;
use berth_api::client::{Client, ClientError, RmAnswer};
use berth_api::routes::resources::MAX_PACKAGE_BYTES;
use berth_api::{
    RmDeploymentLocation, RmInstanceQuery, RmOutboxState, RmResourceInstance, RmResourceType, RmTransitionAccepted,
    RmTransitionRequest, RmTransitionStatus,
};
use berth_core::resource::Transition;
use berth_daemon::resources::packages::{self, PackageTree};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

/// How often `transition --wait` asks for the status.
const POLL: Duration = Duration::from_millis(200);
/// The location an Install (or a transition by name) goes to unless told.
const DEFAULT_LOCATION: &str = "local";
const ARCHIVE_SUFFIXES: [&str; 4] = [".tar.gz", ".tgz", ".tar", ".zip"];

pub async fn run(client: &Client, command: Resource) -> Result<(), Failure> {
    match command {
        Resource::Types(read) => emit(&client.rm_types().await?, read.output, |types| types_table(types)),
        Resource::Type { name, read } => emit(&client.rm_type(&name).await?, read.output, |t| type_fields(t, true)),
        Resource::Onboard { package, read } => {
            let archive = package_bytes(&package)?;
            emit(&client.rm_onboard(archive).await?, read.output, |t| type_fields(t, false))
        }
        Resource::RemoveType { name, read } => emit(&client.rm_remove_type(&name).await?, read.output, |t| {
            say(&format!("removed resource type {}", printable(&t.name)))
        }),
        Resource::Reload(read) => emit(&client.rm_reload().await?, read.output, |types| types_table(types)),
        Resource::BaseImage(read) => emit(&client.rm_base_image().await?, read.output, |b| {
            for (location, id) in &b.images {
                say(&format!("{} in {}: {}", b.tag, printable(location), printable(id)))?;
            }
            Ok(())
        }),
        Resource::Locations(read) => emit(&client.rm_locations().await?, read.output, |l| locations_table(l)),
        Resource::Instances(args) => instances(client, args).await,
        Resource::Show { id, read } => show(client, &id, read.output).await,
        Resource::Transition(args) => transition(client, args).await,
        Resource::Status { request_id, read } => {
            let status = client.rm_status(&request_id).await?;
            if read.output.is_json() {
                return output::raw_json(&status.raw);
            }
            status_fields(&status.value)?;
            say(&outbox_line(&client.rm_outbox().await?.value))
        }
    }
}

/// The answer's JSON as it came, or `text` of it.
fn emit<T>(answer: &RmAnswer<T>, output: Output, text: impl FnOnce(&T) -> Result<(), Failure>) -> Result<(), Failure> {
    if output.is_json() {
        output::raw_json(&answer.raw)
    } else {
        text(&answer.value)
    }
}

fn json_values(answer: &RmAnswer<impl Sized>) -> Result<serde_json::Value, Failure> {
    serde_json::from_slice(&answer.raw).map_err(|e| Failure::Client(ClientError::Protocol(e.to_string())))
}

/// `--location`: that location's instances; otherwise every location's.
async fn instances(client: &Client, args: ResourceInstances) -> Result<(), Failure> {
    let query = RmInstanceQuery { instance_type: args.kind, instance_name: args.name };
    if let Some(location) = &args.location {
        return emit(&client.rm_instances(location, &query).await?, args.read.output, |i| instances_table(i));
    }
    let (mut all, mut json) = (Vec::new(), Vec::new());
    for location in client.rm_locations().await?.value {
        let answer = client.rm_instances(&location.name, &query).await?;
        if args.read.output.is_json() {
            if let serde_json::Value::Array(values) = json_values(&answer)? {
                json.extend(values);
            }
        }
        all.extend(answer.value);
    }
    if args.read.output.is_json() {
        output::json(&json)
    } else {
        instances_table(&all)
    }
}

/// An instance and its requests (JSON: `{"instance": …, "requests": […]}`).
async fn show(client: &Client, id: &str, output: Output) -> Result<(), Failure> {
    let instance = client.rm_instance(id).await?;
    let requests = client.rm_requests_of(id).await?;
    if output.is_json() {
        return output::json(&serde_json::json!({
            "instance": json_values(&instance)?,
            "requests": json_values(&requests)?,
        }));
    }
    let i = &instance.value;
    fields(&[
        ("id", i.resource_id.clone()),
        ("name", i.resource_name.clone()),
        ("type", i.resource_type.clone()),
        ("location", i.deployment_location.clone()),
        ("state", i.resource_state.clone().unwrap_or_else(|| "-".into())),
        ("created", i.created_at.clone()),
        ("modified", i.last_modified_at.clone()),
        ("manager", i.resource_manager_id.clone()),
        ("metric key", i.metric_key.clone().unwrap_or_else(|| "-".into())),
    ])?;
    say("properties:")?;
    // A BTreeMap: sorted by name.
    for (key, value) in &i.properties {
        say(&format!("  {} = {}", printable(key), printable(value)))?;
    }
    say("internal resources:")?;
    let internal: Vec<[String; 3]> =
        i.internal_resource_instances.iter().map(|r| [r.kind.clone(), r.name.clone(), r.id.clone()]).collect();
    table("  ", ["TYPE", "NAME", "ID"], &internal)?;
    say("requests:")?;
    let rows: Vec<[String; 6]> = requests
        .value
        .iter()
        .map(|r| {
            [
                r.request_id.clone(),
                dash(&r.transition_name),
                r.request_state.clone(),
                dash(&r.started_at),
                dash(&r.finished_at),
                failure_of(r).unwrap_or_default(),
            ]
        })
        .collect();
    table("  ", ["REQUEST", "TRANSITION", "STATE", "STARTED", "FINISHED", "REASON"], &rows)
}

async fn transition(client: &Client, args: ResourceTransition) -> Result<(), Failure> {
    let request = transition_request(&args).map_err(Failure::Input)?;
    let output = args.read.output;
    let accepted = client.rm_transition(&request).await?;
    if !args.wait {
        return emit(&accepted, output, accepted_fields);
    }
    if !output.is_json() {
        accepted_fields(&accepted.value)?;
    }
    let status = wait(client, &accepted.value.request_id).await?;
    emit(&status, output, status_fields)?;
    match status.value.request_state.as_str() {
        "FAILED" => Err(Failure::TransitionFailed(format!(
            "request {} ({}) FAILED: {}",
            status.value.request_id,
            status.value.transition_name.as_deref().unwrap_or(&args.transition),
            failure_of(&status.value).unwrap_or_else(|| "no reason given".into())
        ))),
        _ => Ok(()),
    }
}

/// Polls the status until the request is COMPLETED or FAILED; a line on a
/// terminal's stderr says where it stands.
async fn wait(client: &Client, request_id: &str) -> Result<RmAnswer<RmTransitionStatus>, Failure> {
    let line = std::io::stderr().is_terminal().then(|| {
        let line = indicatif::ProgressBar::new_spinner();
        line.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        line
    });
    let outcome = loop {
        match client.rm_status(request_id).await {
            Ok(status) if matches!(status.value.request_state.as_str(), "COMPLETED" | "FAILED") => break Ok(status),
            Ok(status) => {
                if let Some(line) = &line {
                    line.set_message(format!("request {request_id}: {}", status.value.request_state));
                    line.tick();
                }
            }
            Err(e) => break Err(Failure::from(e)),
        }
        tokio::time::sleep(POLL).await;
    };
    if let Some(line) = line {
        line.finish_and_clear();
    }
    outcome
}

/// `--property KEY=VALUE`, split at the first `=`; the key must not be empty.
pub fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

/// The request the command line asks for: Install names a new instance by
/// type and name (in `local` unless told); a later transition names an
/// existing one by id, or by type and name in its location.
pub fn transition_request(args: &ResourceTransition) -> Result<RmTransitionRequest, String> {
    if args.transition.trim().is_empty() {
        return Err("the transition or operation must not be empty".into());
    }
    let mut properties = BTreeMap::new();
    for (key, value) in &args.properties {
        if properties.insert(key.clone(), serde_json::Value::String(value.clone())).is_some() {
            return Err(format!("--property {key} is given twice"));
        }
    }
    let install = matches!(Transition::parse(&args.transition), Ok(Transition::Install));
    let mut request =
        RmTransitionRequest { transition_name: Some(args.transition.clone()), properties, ..Default::default() };
    match (&args.id, &args.kind, &args.name) {
        (Some(_), _, _) if install => {
            return Err("Install makes a new instance: name it with --type and --name, not --id".into());
        }
        (Some(id), _, _) => {
            request.resource_id = Some(id.clone());
            request.deployment_location = args.location.clone();
        }
        (None, Some(kind), Some(name)) => {
            request.resource_type = Some(kind.clone());
            request.resource_name = Some(name.clone());
            request.deployment_location = Some(args.location.clone().unwrap_or_else(|| DEFAULT_LOCATION.into()));
        }
        _ => return Err("name the instance with --type and --name, or with --id".into()),
    }
    Ok(request)
}

/// What `onboard` sends: a directory packed here, or a package archive as it is.
fn package_bytes(path: &Path) -> Result<Vec<u8>, Failure> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Failure::BadSource(format!("{shown}: no such file or directory")),
        _ => Failure::BadSource(format!("{shown}: {e}")),
    })?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let bytes = if metadata.is_dir() {
        pack_dir(path)?
    } else if metadata.is_file() && ARCHIVE_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        if metadata.len() > MAX_PACKAGE_BYTES as u64 {
            return Err(too_large(path));
        }
        std::fs::read(path).map_err(|e| Failure::BadSource(format!("{shown}: cannot read: {e}")))?
    } else {
        return Err(Failure::Input(format!(
            "{shown} is neither a package directory nor a .tar.gz, .tgz, .tar or .zip of one"
        )));
    };
    if bytes.len() > MAX_PACKAGE_BYTES {
        return Err(too_large(path));
    }
    Ok(bytes)
}

fn too_large(path: &Path) -> Failure {
    Failure::TooLarge(format!(
        "{}: the package is larger than the {} MiB the resource manager takes (nothing was sent)",
        path.display(),
        MAX_PACKAGE_BYTES >> 20
    ))
}

/// A package directory as a tar archive, in memory, under the directory's
/// own name (the type's name, by the Docker RM's rule). Files and
/// directories only (a symbolic link is refused, as the daemon refuses it),
/// sorted, with fixed times and owners: the same directory packs to the same
/// bytes. Read by the daemon's own rules for package directories.
pub fn pack_dir(dir: &Path) -> Result<Vec<u8>, Failure> {
    let dir = std::fs::canonicalize(dir).map_err(|e| Failure::BadSource(format!("{}: {e}", dir.display())))?;
    let tree = packages::read_dir(&dir).map_err(|e| Failure::Input(format!("{}: {e}", dir.display())))?;
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&dir).map_or(0o755, |m| m.permissions().mode() & 0o7777)
    };
    let mut entries = BTreeMap::from([(tree.dir_name.clone(), (mode, None))]);
    entries.extend(tree.entries.into_iter().map(|(path, entry)| (format!("{}/{path}", tree.dir_name), entry)));
    PackageTree { dir_name: tree.dir_name, entries }
        .to_tar()
        .map_err(|e| Failure::BadSource(format!("cannot pack {}: {e}", dir.display())))
}

fn dash(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".into())
}

/// `reason (CODE)` of a failed request.
fn failure_of(status: &RmTransitionStatus) -> Option<String> {
    match (&status.request_state_reason, &status.request_failure_code) {
        (Some(reason), Some(code)) => Some(format!("{reason} ({code})")),
        (Some(reason), None) => Some(reason.clone()),
        (None, Some(code)) => Some(code.clone()),
        (None, None) => None,
    }
}

fn types_table(types: &[RmResourceType]) -> Result<(), Failure> {
    let rows: Vec<[String; 4]> = types
        .iter()
        .map(|t| [t.name.clone(), t.state.clone(), t.created_at.clone(), t.last_modified_at.clone()])
        .collect();
    table("", ["NAME", "STATE", "CREATED", "MODIFIED"], &rows)
}

fn type_fields(t: &RmResourceType, descriptor: bool) -> Result<(), Failure> {
    fields(&[
        ("name", t.name.clone()),
        ("state", t.state.clone()),
        ("created", t.created_at.clone()),
        ("modified", t.last_modified_at.clone()),
    ])?;
    match &t.descriptor {
        Some(text) if descriptor => {
            say("descriptor:")?;
            text.lines().try_for_each(|line| say(&printable(line)))
        }
        _ => Ok(()),
    }
}

fn locations_table(locations: &[RmDeploymentLocation]) -> Result<(), Failure> {
    let property = |l: &RmDeploymentLocation, key: &str| l.properties.get(key).cloned().unwrap_or_else(|| "-".into());
    let rows: Vec<[String; 5]> = locations
        .iter()
        .map(|l| {
            [l.name.clone(), l.kind.clone(), property(l, "status"), property(l, "engine"), property(l, "description")]
        })
        .collect();
    table("", ["NAME", "TYPE", "STATUS", "ENGINE", "DESCRIPTION"], &rows)
}

fn instances_table(instances: &[RmResourceInstance]) -> Result<(), Failure> {
    let rows: Vec<[String; 5]> = instances
        .iter()
        .map(|i| {
            [
                i.resource_id.clone(),
                i.resource_name.clone(),
                i.resource_type.clone(),
                i.deployment_location.clone(),
                dash(&i.resource_state),
            ]
        })
        .collect();
    table("", ["ID", "NAME", "TYPE", "LOCATION", "STATE"], &rows)
}

fn accepted_fields(accepted: &RmTransitionAccepted) -> Result<(), Failure> {
    fields(&[
        ("request", accepted.request_id.clone()),
        ("resource", accepted.resource_id.clone()),
        ("state", accepted.request_state.clone()),
    ])
}

fn status_fields(status: &RmTransitionStatus) -> Result<(), Failure> {
    let context: Vec<String> = status.context.iter().map(|(k, v)| format!("{k}={v}")).collect();
    fields(&[
        ("request", status.request_id.clone()),
        ("state", status.request_state.clone()),
        ("reason", dash(&status.request_state_reason)),
        ("failure code", dash(&status.request_failure_code)),
        ("transition", dash(&status.transition_name)),
        ("resource", status.resource_id.clone()),
        ("type", dash(&status.resource_type)),
        ("location", dash(&status.deployment_location)),
        ("started", dash(&status.started_at)),
        ("finished", dash(&status.finished_at)),
        ("context", if context.is_empty() { "-".into() } else { context.join(", ") }),
    ])
}

fn outbox_line(outbox: &RmOutboxState) -> String {
    match (&outbox.enabled, &outbox.last_error) {
        (false, _) => format!("responses waiting for Kafka: {} (Kafka is not configured)", outbox.depth),
        (true, Some(error)) => {
            format!("responses waiting for Kafka: {} (last error: {})", outbox.depth, printable(error))
        }
        (true, None) => format!("responses waiting for Kafka: {}", outbox.depth),
    }
}

/// `key: value` lines, the values aligned.
fn fields(rows: &[(&str, String)]) -> Result<(), Failure> {
    let width = rows.iter().map(|(key, _)| key.len() + 1).max().unwrap_or(0);
    rows.iter().try_for_each(|(key, value)| say(&format!("{:<width$} {}", format!("{key}:"), printable(value))))
}

/// Columns as wide as their widest cell; `indent` before every line.
fn table<const N: usize>(indent: &str, header: [&str; N], rows: &[[String; N]]) -> Result<(), Failure> {
    let rows: Vec<[String; N]> = rows.iter().map(|row| row.clone().map(|cell| printable(&cell))).collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let text: Vec<String> = cells.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        say(format!("{indent}{}", text.join("  ")).trim_end())
    };
    line(&header.map(String::from))?;
    rows.iter().try_for_each(|row| line(row))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Verb};
    use clap::Parser;

    fn request(line: &[&str]) -> Result<RmTransitionRequest, String> {
        let argv = ["berth", "resource", "transition"].iter().chain(line);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let Verb::Resource(Resource::Transition(args)) = cli.verb else { panic!("not a transition") };
        transition_request(&args)
    }

    #[test]
    fn properties_are_split_at_the_first_equals_sign() {
        assert_eq!(parse_property("a=b"), Ok(("a".into(), "b".into())));
        assert_eq!(parse_property("url=http://x/?q=1"), Ok(("url".into(), "http://x/?q=1".into())));
        assert_eq!(parse_property("empty="), Ok(("empty".into(), String::new())));
        assert!(parse_property("=b").is_err());
        assert!(parse_property("novalue").is_err());
        assert!(parse_property("").is_err());
    }

    #[test]
    fn install_names_type_and_name_in_local_unless_told() {
        let r = request(&["Install", "--type", "resource::t::1.0", "--name", "n", "--property", "a=1=2"]).unwrap();
        assert_eq!(r.transition_name.as_deref(), Some("Install"));
        assert_eq!(r.resource_type.as_deref(), Some("resource::t::1.0"));
        assert_eq!(r.resource_name.as_deref(), Some("n"));
        assert_eq!(r.deployment_location.as_deref(), Some("local"));
        assert_eq!(r.resource_id, None);
        assert_eq!(r.properties.get("a"), Some(&serde_json::Value::String("1=2".into())));
        let r = request(&["Transition::Install", "--type", "t", "--name", "n", "--location", "edge"]).unwrap();
        assert_eq!(r.deployment_location.as_deref(), Some("edge"));
        assert!(request(&["Install", "--id", "abc"]).unwrap_err().contains("--type and --name"));
    }

    #[test]
    fn later_transitions_name_the_instance_by_id_or_by_name() {
        let r = request(&["Start", "--id", "abc"]).unwrap();
        assert_eq!((r.resource_id.as_deref(), r.deployment_location.as_deref()), (Some("abc"), None));
        assert_eq!(r.resource_name, None);
        let r = request(&["restart-it", "--type", "t", "--name", "n"]).unwrap();
        assert_eq!(r.transition_name.as_deref(), Some("restart-it"));
        assert_eq!((r.resource_name.as_deref(), r.deployment_location.as_deref()), (Some("n"), Some("local")));
    }

    #[test]
    fn bad_command_lines_are_refused_before_any_request() {
        assert!(request(&["Start"]).is_err(), "no instance named");
        assert!(request(&["Start", "--name", "n"]).is_err(), "--name needs --type");
        assert!(request(&["Start", "--id", "x", "--type", "t", "--name", "n"]).is_err());
        assert!(request(&["Start", "--id", "x", "--property", "novalue"]).is_err());
        assert!(request(&["Start", "--id", "x", "--property", "a=1", "--property", "a=2"])
            .unwrap_err()
            .contains("twice"));
        assert!(request(&["", "--id", "x"]).is_err());
    }

    fn package(root: &Path) -> std::path::PathBuf {
        let dir = root.join("hello");
        std::fs::create_dir_all(dir.join("lifecycle")).unwrap();
        std::fs::write(dir.join("resource.yaml"), "name: resource::hello::1.0\n").unwrap();
        std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.join("lifecycle/lifecycle.yaml"), "install: install.sh\n").unwrap();
        std::fs::create_dir(dir.join("empty")).unwrap();
        dir
    }

    #[test]
    fn a_directory_packs_under_its_name_the_same_every_time_and_reads_back() {
        let root = tempfile::tempdir().unwrap();
        let dir = package(root.path());
        let archive = pack_dir(&dir).unwrap();
        assert_eq!(archive, pack_dir(&dir).unwrap(), "deterministic");
        let read = packages::read_archive(&archive).unwrap();
        assert_eq!(read.dir_name, "hello");
        assert_eq!(read.entries, packages::read_dir(&dir).unwrap().entries);
        assert!(read.entries.contains_key("empty") && read.entries.contains_key("lifecycle/lifecycle.yaml"));
        let mut names = Vec::new();
        for entry in tar::Archive::new(archive.as_slice()).entries().unwrap() {
            names.push(entry.unwrap().path().unwrap().display().to_string());
        }
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "in sorted order");
        assert_eq!(names[0], "hello/");
    }

    #[test]
    fn a_symbolic_link_in_a_package_directory_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = package(root.path());
        std::os::unix::fs::symlink("/etc/passwd", dir.join("lifecycle/passwd")).unwrap();
        let error = pack_dir(&dir).unwrap_err();
        assert!(matches!(error, Failure::Input(_)));
        assert!(error.to_string().contains("lifecycle/passwd in the package is a symbolic link"), "{error}");
    }

    #[test]
    fn only_directories_and_package_archives_are_sent() {
        let root = tempfile::tempdir().unwrap();
        let text = root.path().join("notes.txt");
        std::fs::write(&text, "x").unwrap();
        assert!(matches!(package_bytes(&text), Err(Failure::Input(_))));
        let archive = root.path().join("p.TGZ");
        std::fs::write(&archive, b"\x1f\x8b rest").unwrap();
        assert_eq!(package_bytes(&archive).unwrap(), b"\x1f\x8b rest");
        assert!(matches!(package_bytes(&root.path().join("missing")), Err(Failure::BadSource(_))));
    }
}
