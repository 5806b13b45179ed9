//! Requests to specs: everything about an install or upgrade that can be
//! checked without changing anything, and the fetch it will make. The daemon
//! takes no path from the client: a local archive arrives as the request's
//! upload, keys and certificates as their content.

use super::error::AppError;
use crate::intake::{FetchRequest, FetchSource};
use crate::services::Services;
use berth_api::{InstallRequest, SourceRequest, UpgradeRequest, Upload};
use berth_core::run_args::{parse_run_args, parse_size, MIN_MEMORY};
use berth_core::source::{ImageReference, Source};
use berth_core::spec::AppSpec;
use berth_core::{AppName, HostPort};
use berth_fetch::http::HttpOptions;
use berth_fetch::ssh::{Credential, KnownHosts, SshTarget, Trust};
use futures::StreamExt;
use std::path::PathBuf;
use std::time::Duration;

/// Docker's smallest CPU limit.
const MIN_CPUS: f64 = 0.01;

/// A checked request: the app as it will be (its image still to fetch) and the fetch.
#[derive(Debug)]
pub struct Validated {
    pub spec: AppSpec,
    pub fetch: FetchRequest,
}

pub fn install(services: &Services, request: InstallRequest, archive: Option<Upload>) -> Result<Validated, AppError> {
    let name = AppName::parse(&request.name)?;
    let options = Options { args: request.args, cpus: request.cpus, memory: request.memory, sha256: request.sha256 };
    validate(services, name, request.source, archive, options)
}

/// The same options as an install; what is left out keeps its current value.
pub fn upgrade(
    services: &Services,
    current: &AppSpec,
    request: UpgradeRequest,
    archive: Option<Upload>,
) -> Result<Validated, AppError> {
    let options = Options {
        args: request.args.unwrap_or_else(|| current.args.clone()),
        cpus: request.cpus.or(Some(current.cpus)),
        memory: request.memory.or(current.memory.map(|m| m.to_string())),
        sha256: request.sha256,
    };
    validate(services, current.name.clone(), request.source, archive, options)
}

struct Options {
    args: String,
    cpus: Option<f64>,
    memory: Option<String>,
    sha256: Option<String>,
}

fn invalid(what: &'static str, reason: impl Into<String>) -> AppError {
    AppError::InvalidValue { what, reason: reason.into() }
}

fn validate(
    services: &Services,
    name: AppName,
    source: SourceRequest,
    archive: Option<Upload>,
    o: Options,
) -> Result<Validated, AppError> {
    let options = parse_run_args(&o.args)?;
    let online = services.engine_state.online_cpus();
    let cpus = o.cpus.or(options.cpus).unwrap_or_else(|| services.default_cpus());
    if !(cpus.is_finite() && (MIN_CPUS..=f64::from(online)).contains(&cpus)) {
        let shown = if cpus.is_finite() && cpus.abs() < 1e6 { format!("{cpus}") } else { "the value".to_owned() };
        return Err(invalid("--cpus", format!("{shown} is not between {MIN_CPUS} and the host's {online} CPUs")));
    }
    let memory = match &o.memory {
        Some(text) => Some(parse_size(text).map_err(|reason| invalid("--memory", reason))?),
        None => options.memory,
    };
    if let Some(bytes) = memory.filter(|m| *m < MIN_MEMORY) {
        return Err(invalid("--memory", format!("{bytes} bytes is below the minimum of 6 MiB")));
    }
    let is_registry = matches!(source, SourceRequest::Registry { .. });
    let sha256 = match o.sha256.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(_) if is_registry => {
            return Err(invalid("--sha256", "applies to archive files and downloads, not to registry images"))
        }
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => Some(hex.to_ascii_lowercase()),
        Some(_) => return Err(invalid("--sha256", "must be 64 hexadecimal digits")),
    };
    let (stored, fetch_source) = fetch_source(services, source, archive)?;
    let spec = AppSpec {
        name,
        source: stored,
        image_ref: String::new(),
        image_id: String::new(),
        args: o.args,
        options,
        cpus,
        memory,
    };
    Ok(Validated { spec, fetch: FetchRequest { source: fetch_source, sha256 } })
}

/// The source as the app records it (for display) and the fetch to make.
fn fetch_source(
    services: &Services,
    source: SourceRequest,
    archive: Option<Upload>,
) -> Result<(Source, FetchSource), AppError> {
    let fetch = &services.config.settings.fetch;
    if archive.is_some() && !matches!(source, SourceRequest::Upload { .. }) {
        return Err(invalid("source", "an archive was sent, but the source is not an upload"));
    }
    match source {
        SourceRequest::Upload { origin, size } => {
            let Some(archive) = archive else {
                return Err(invalid(
                    "source",
                    "an upload needs the archive as the `archive` part of a multipart body; the daemon does not open files on a client's behalf",
                ));
            };
            let body = archive.body.boxed();
            Ok((Source::Archive { path: PathBuf::from(&origin) }, FetchSource::Upload { origin, size, body }))
        }
        SourceRequest::Url { url, ca_pem, allow_downgrade } => {
            let stored = Source::parse(&url)?;
            if !matches!(stored, Source::Url { .. }) {
                return Err(invalid("source", "a URL source must be http:// or https://"));
            }
            if ca_pem.is_some() && !url.starts_with("https://") {
                return Err(invalid("--ca-file", "applies to https sources only"));
            }
            let http = HttpOptions {
                extra_roots_pem: ca_pem.map(String::into_bytes),
                idle_timeout: Duration::from_secs(fetch.idle_timeout_secs),
                overall_timeout: Duration::from_secs(fetch.overall_timeout_secs),
                max_bytes: Some(fetch.max_archive_bytes),
                allow_downgrade,
                ..HttpOptions::default()
            };
            Ok((stored, FetchSource::Url { url, http }))
        }
        SourceRequest::Registry { reference, auth } => {
            let parsed = ImageReference::parse(&reference)?;
            let auth = match auth {
                Some(auth) if auth.username.is_empty() || auth.password.is_empty() => {
                    return Err(invalid("--registry-auth", "must be USER:PASSWORD"))
                }
                Some(auth) => {
                    Some(berth_core::engine::RegistryCredentials { username: auth.username, password: auth.password })
                }
                None => None,
            };
            Ok((Source::Registry { reference: parsed.clone() }, FetchSource::Registry { reference: parsed, auth }))
        }
        SourceRequest::Ssh(ssh) => {
            let stored = Source::ssh(protocol_name(ssh.protocol), &ssh.server, &ssh.username, &ssh.path)?;
            let server = HostPort::parse(&ssh.server).map_err(|e| invalid("--server", e.to_string()))?;
            if let Some(fingerprint) = &ssh.accept_host_key {
                if !fingerprint.starts_with("SHA256:") {
                    return Err(invalid("--accept-host-key", "give the SHA256:… fingerprint"));
                }
            }
            let mut credentials = Vec::new();
            if let Some(password) = ssh.password {
                credentials.push(Credential::Password(password));
            }
            credentials
                .extend(ssh.private_keys.into_iter().map(|k| Credential::PrivateKey { origin: k.origin, pem: k.pem }));
            if credentials.is_empty() {
                return Err(invalid("--password/--identity", "an ssh source needs a password or a private key"));
            }
            let known_hosts: Vec<KnownHosts> =
                ssh.known_hosts.into_iter().map(|k| KnownHosts { origin: k.origin, content: k.content }).collect();
            let target = SshTarget { protocol: ssh.protocol, server, username: ssh.username, path: ssh.path };
            let trust = Trust { known_hosts, accept_fingerprint: ssh.accept_host_key };
            Ok((stored, FetchSource::Ssh { target, credentials, trust }))
        }
    }
}

fn protocol_name(protocol: berth_core::source::SshProtocol) -> &'static str {
    match protocol {
        berth_core::source::SshProtocol::Scp => "scp",
        berth_core::source::SshProtocol::Sftp => "sftp",
    }
}
