//! Where an install's or upgrade's image comes from, as the CLI sends it:
//! the daemon never opens a path, socket or key on the user's behalf. A
//! local archive is read here, with the user's own permissions, and
//! streamed; a CA file, an identity and the user's known_hosts are sent as
//! their content; where the user's ssh agent is to be used, the CLI makes
//! the scp/sftp copy itself and streams what it receives.

use crate::args::SourceOptions;
use crate::exit::Failure;
use berth_api::client::ArchiveStream;
use berth_api::{KnownHosts, PrivateKey, RegistryAuth, SourceRequest, SshSource};
use berth_core::source::{looks_like_path, SshProtocol};
use berth_core::HostPort;
use futures::StreamExt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// The keys `ssh` tries by default, in its order.
const DEFAULT_KEYS: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];
const SYSTEM_KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts";

/// A source ready to send: the request's part, and the bytes to stream.
pub struct Prepared {
    pub source: SourceRequest,
    pub archive: Option<ArchiveStream>,
    /// For the confirmation question.
    pub shown: String,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::Input(message.into())
}

/// The source the user named, with its options.
pub async fn prepare(source: &str, from: &SourceOptions) -> Result<Prepared, Failure> {
    if let Some(protocol) = &from.protocol {
        return ssh(source, protocol, from).await;
    }
    if from.server.is_some()
        || from.username.is_some()
        || from.password.is_some()
        || from.identity.is_some()
        || from.accept_host_key.is_some()
    {
        return Err(usage(
            "--server, --username, --password, --identity and --accept-host-key need --protocol scp or sftp",
        ));
    }
    if source.starts_with("http://") || source.starts_with("https://") {
        if from.registry_auth.is_some() {
            return Err(usage("--registry-auth applies to registry images only"));
        }
        if from.allow_downgrade && !source.starts_with("https://") {
            return Err(usage("--allow-downgrade applies to https sources only"));
        }
        let ca_pem = match &from.ca_file {
            Some(_) if !source.starts_with("https://") => return Err(usage("--ca-file applies to https sources only")),
            Some(path) => {
                let pem = read_text(path, "--ca-file").await?;
                // The daemon checks the certificates; the file's name is only known here.
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(usage(format!("--ca-file {}: holds no PEM certificate", path.display())));
                }
                Some(pem)
            }
            None => None,
        };
        let shown = berth_core::source::redact_url(source);
        return Ok(Prepared {
            source: SourceRequest::Url { url: source.to_owned(), ca_pem, allow_downgrade: from.allow_downgrade },
            archive: None,
            shown,
        });
    }
    let path = expand_home(source);
    if looks_like_path(source) || tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
        if from.ca_file.is_some() || from.allow_downgrade || from.registry_auth.is_some() {
            return Err(usage(
                "--ca-file and --allow-downgrade apply to https sources, --registry-auth to registry images",
            ));
        }
        return upload(&path).await;
    }
    if from.allow_downgrade {
        return Err(usage("--allow-downgrade applies to https sources only"));
    }
    if from.ca_file.is_some() {
        return Err(usage("--ca-file applies to https sources only"));
    }
    let auth = match &from.registry_auth {
        Some(text) => match text.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                Some(RegistryAuth { username: user.to_owned(), password: password.to_owned() })
            }
            _ => return Err(usage("--registry-auth must be USER:PASSWORD")),
        },
        None => None,
    };
    Ok(Prepared {
        source: SourceRequest::Registry { reference: source.to_owned(), auth },
        archive: None,
        shown: source.to_owned(),
    })
}

fn expand_home(source: &str) -> PathBuf {
    match (source.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(source),
    }
}

/// A local archive, streamed from the file.
pub async fn upload(path: &Path) -> Result<Prepared, Failure> {
    let (archive, size, origin) = open_archive(path).await?;
    Ok(Prepared {
        shown: origin.clone(),
        source: SourceRequest::Upload { origin, size: Some(size) },
        archive: Some(archive),
    })
}

/// Opens a local archive for streaming: its bytes, size and absolute path.
pub async fn open_archive(path: &Path) -> Result<(ArchiveStream, u64, String), Failure> {
    let origin = std::path::absolute(path).unwrap_or_else(|_| path.to_owned()).display().to_string();
    let file = tokio::fs::File::open(path).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Failure::BadSource(format!("{origin}: no such file")),
        _ => Failure::BadSource(format!("{origin}: cannot read: {e}")),
    })?;
    let metadata = file.metadata().await.map_err(|e| Failure::BadSource(format!("{origin}: {e}")))?;
    if !metadata.is_file() {
        return Err(Failure::BadSource(format!("{origin} is not a regular file")));
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).boxed();
    Ok((stream, metadata.len(), origin))
}

async fn read_text(path: &Path, what: &str) -> Result<String, Failure> {
    tokio::fs::read_to_string(path).await.map_err(|e| usage(format!("{what} {}: {e}", path.display())))
}

/// TPCM's `--protocol scp|sftp --server --username`: with `--password` or
/// `--identity` (or a password typed at the terminal) the daemon makes the
/// copy with what it is given; otherwise the user's agent is used — by the
/// CLI, which then streams the copy — or the user's default keys.
async fn ssh(path: &str, protocol: &str, from: &SourceOptions) -> Result<Prepared, Failure> {
    let protocol = match protocol {
        "scp" => SshProtocol::Scp,
        "sftp" => SshProtocol::Sftp,
        other => return Err(usage(format!("--protocol must be scp or sftp, not {other:?}"))),
    };
    let (Some(server), Some(username)) = (&from.server, &from.username) else {
        return Err(usage("--protocol needs --server and --username"));
    };
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut known_hosts = Vec::new();
    if let Some(file) = home.as_ref().map(|h| h.join(".ssh/known_hosts")) {
        if let Ok(content) = tokio::fs::read_to_string(&file).await {
            known_hosts.push(KnownHosts { origin: file.display().to_string(), content });
        }
    }
    let password = match (&from.password, &from.identity) {
        (Some(password), _) => Some(password.clone()),
        (None, None) if std::io::stdin().is_terminal() => Some(crate::password::read(false)?),
        _ => None,
    };
    let mut private_keys = Vec::new();
    if let Some(identity) = &from.identity {
        let pem = read_text(identity, "--identity").await?;
        private_keys.push(PrivateKey { origin: identity.display().to_string(), pem });
    } else if password.is_none() {
        for name in DEFAULT_KEYS {
            if let Some(file) = home.as_ref().map(|h| h.join(".ssh").join(name)) {
                if let Ok(pem) = tokio::fs::read_to_string(&file).await {
                    private_keys.push(PrivateKey { origin: file.display().to_string(), pem });
                }
            }
        }
    }
    let agent = std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from).filter(|p| p.exists());
    if let (None, None, Some(agent)) = (&password, &from.identity, agent) {
        return copy_through_agent(protocol, server, username, path, agent, private_keys, known_hosts, from).await;
    }
    if password.is_none() && private_keys.is_empty() {
        return Err(usage(format!(
            "{server}: no way to authenticate: give --password, --identity, or have a key in ~/.ssh"
        )));
    }
    let shown = format!("{protocol}://{username}@{server}{path}");
    let source = SshSource {
        protocol,
        server: server.clone(),
        username: username.clone(),
        path: path.to_owned(),
        password,
        private_keys,
        known_hosts,
        accept_host_key: from.accept_host_key.clone(),
    };
    Ok(Prepared { source: SourceRequest::Ssh(source), archive: None, shown })
}

/// The copy made here, through the user's agent, and streamed to the daemon.
#[allow(clippy::too_many_arguments)]
async fn copy_through_agent(
    protocol: SshProtocol,
    server: &str,
    username: &str,
    path: &str,
    agent: PathBuf,
    keys: Vec<PrivateKey>,
    mut known_hosts: Vec<KnownHosts>,
    from: &SourceOptions,
) -> Result<Prepared, Failure> {
    use berth_fetch::ssh::{self, Credential, SshTarget, Trust};
    let server = HostPort::parse(server).map_err(|e| usage(format!("--server: {e}")))?;
    if let Ok(content) = tokio::fs::read_to_string(SYSTEM_KNOWN_HOSTS).await {
        known_hosts.insert(0, KnownHosts { origin: SYSTEM_KNOWN_HOSTS.into(), content });
    }
    let target = SshTarget { protocol, server, username: username.to_owned(), path: path.to_owned() };
    let mut credentials = vec![Credential::Agent(agent)];
    credentials.extend(keys.into_iter().map(|k| Credential::PrivateKey { origin: k.origin, pem: k.pem }));
    let trust = Trust {
        known_hosts: known_hosts
            .into_iter()
            .map(|k| ssh::KnownHosts { origin: k.origin, content: k.content })
            .collect(),
        accept_fingerprint: from.accept_host_key.clone(),
    };
    let remote = ssh::open(&target, &credentials, &trust, &ssh::SshOptions::default())
        .await
        .map_err(|e| Failure::Fetch(e.kind(), e.to_string()))?;
    let origin = remote.origin.clone();
    let size = remote.size;
    let archive = remote.into_stream().map(|chunk| chunk.map_err(std::io::Error::other)).boxed();
    Ok(Prepared { shown: origin.clone(), source: SourceRequest::Upload { origin, size }, archive: Some(archive) })
}
