//! Where an app's image comes from. TPCM (seed 003, "TPC Install") lists http,
//! scp/sftp, local media and a registry; this module knows the local archive and
//! registry forms and how to tell them apart from one command-line word.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// A `docker save` archive on the daemon's host, plain or gzip-compressed.
    Archive { path: PathBuf },
    /// An archive on an http or https server, streamed into the engine.
    Url { url: String },
    /// An image in a registry, pulled by the engine.
    Registry { reference: ImageReference },
    /// An archive on an ssh server, copied with scp or sftp.
    Ssh { protocol: SshProtocol, server: String, username: String, path: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub enum SshProtocol {
    Scp,
    Sftp,
}

impl SshProtocol {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "scp" => Some(Self::Scp),
            "sftp" => Some(Self::Sftp),
            _ => None,
        }
    }
}

impl fmt::Display for SshProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SshProtocol::Scp => "scp",
            SshProtocol::Sftp => "sftp",
        })
    }
}

impl Source {
    /// TPCM's `--protocol scp|sftp --server <host[:port]> --username <user> <path>`.
    pub fn ssh(protocol: &str, server: &str, username: &str, path: &str) -> Result<Self, SourceError> {
        let bad = |reason: &'static str| SourceError::BadSsh { reason };
        let protocol = SshProtocol::parse(protocol).ok_or(bad("--protocol must be scp or sftp"))?;
        let clean = |t: &str| !t.is_empty() && !t.chars().any(|c| c.is_whitespace() || c.is_control());
        if crate::host::HostPort::parse(server).is_err() {
            return Err(bad(
                "--server must be a host name or address, with an optional :port ([address]:port for IPv6)",
            ));
        }
        if !clean(username) || username.contains(':') || username.contains('@') {
            return Err(bad("--username must be a plain user name"));
        }
        if !path.starts_with('/') || path.chars().any(|c| c.is_control()) {
            return Err(bad("the remote image path must be absolute"));
        }
        Ok(Source::Ssh { protocol, server: server.to_owned(), username: username.to_owned(), path: path.to_owned() })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("install source is empty")]
    Empty,
    #[error("archive path {path:?} must be absolute")]
    RelativePath { path: String },
    #[error("{reason}")]
    BadSsh { reason: &'static str },
    #[error("URL {url:?} is not valid: {reason}")]
    BadUrl { url: String, reason: &'static str },
    #[error("{text:?} is neither a file nor a valid image reference: {reason}")]
    BadReference { text: String, reason: String },
}

impl Source {
    /// Reads one word as a source. Anything that looks like a path is an
    /// archive (the caller has already made it absolute); everything else must
    /// be a well-formed image reference, so a typo in a file name is reported
    /// as a missing file rather than as a failed pull.
    pub fn parse(text: &str) -> Result<Self, SourceError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SourceError::Empty);
        }
        if let Some(rest) = text.strip_prefix("http://").or_else(|| text.strip_prefix("https://")) {
            let bad = |reason| SourceError::BadUrl { url: text.to_owned(), reason };
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if host.is_empty() || host.starts_with(':') {
                return Err(bad("it names no host"));
            }
            if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(bad("it contains white space or control characters"));
            }
            return Ok(Source::Url { url: text.to_owned() });
        }
        if looks_like_path(text) {
            if !text.starts_with('/') {
                return Err(SourceError::RelativePath { path: text.to_owned() });
            }
            return Ok(Source::Archive { path: PathBuf::from(text) });
        }
        Ok(Source::Registry { reference: ImageReference::parse(text)? })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Archive { path } => write!(f, "{}", path.display()),
            Source::Url { url } => f.write_str(&redact_url(url)),
            Source::Ssh { protocol, server, username, path } => write!(f, "{protocol}://{username}@{server}{path}"),
            Source::Registry { reference } => write!(f, "{reference}"),
        }
    }
}

/// The URL with any `user:password@` taken out, for showing and logging:
/// credentials in a source URL are used, never printed.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{path}"),
        None => url.to_owned(),
    }
}

/// True for words a user means as a file: explicit paths and archive names.
pub fn looks_like_path(text: &str) -> bool {
    const ARCHIVE_SUFFIXES: [&str; 4] = [".tar", ".tar.gz", ".tgz", ".gz"];
    text.starts_with('/')
        || text.starts_with("./")
        || text.starts_with("../")
        || text.starts_with('~')
        || ARCHIVE_SUFFIXES.iter().any(|s| text.ends_with(s))
}

/// `[registry[:port]/]path[:tag][@sha256:digest]`, the Docker reference grammar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageReference {
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageReference {
    pub fn parse(text: &str) -> Result<Self, SourceError> {
        let bad = |reason: &str| SourceError::BadReference { text: text.to_owned(), reason: reason.to_owned() };
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                let hex = digest.strip_prefix("sha256:").ok_or_else(|| bad("digest must start with sha256:"))?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                    return Err(bad("digest must be sha256: followed by 64 lowercase hex digits"));
                }
                (rest, Some(digest.to_owned()))
            }
            None => (text, None),
        };
        // A colon after the last slash starts the tag; one before it is a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(bad)?;
        }
        validate_repository(repository).map_err(bad)?;
        Ok(Self { repository: repository.to_owned(), tag: tag.map(str::to_owned), digest })
    }

    /// The registry the image lives in: the first path component when it
    /// names a host (has a '.' or ':' or is `localhost`), else Docker Hub.
    pub fn registry(&self) -> &str {
        match self.repository.split_once('/') {
            Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => first,
            _ => "docker.io",
        }
    }

    /// The reference as the engine should pull it: `latest` when no tag or
    /// digest was given (seed 003: "by default 'latest' would be taken").
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository)?;
        match (&self.tag, &self.digest) {
            (Some(tag), _) => write!(f, ":{tag}")?,
            (None, None) => f.write_str(":latest")?,
            (None, Some(_)) => {}
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn validate_tag(tag: &str) -> Result<(), &'static str> {
    let mut chars = tag.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok || tag.len() > 128 || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err("a tag is 1-128 characters of A-Z a-z 0-9 _ . - and cannot start with . or -");
    }
    Ok(())
}

fn validate_repository(repository: &str) -> Result<(), &'static str> {
    if repository.is_empty() || repository.len() > 255 {
        return Err("the repository name is empty or longer than 255 characters");
    }
    let mut components = repository.split('/').peekable();
    let first = components.peek().copied().unwrap_or_default();
    let has_registry = repository.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        validate_registry_host(first)?;
        components.next();
    }
    for component in components {
        validate_path_component(component)?;
    }
    Ok(())
}

fn validate_registry_host(host: &str) -> Result<(), &'static str> {
    crate::host::HostPort::parse(host).map(drop).map_err(|e| e.reason)
}

/// Lowercase alphanumerics separated by `.`, `_`, `__` or runs of `-`.
fn validate_path_component(component: &str) -> Result<(), &'static str> {
    const MSG: &str = "repository path components are lowercase letters and digits, separated by '.', '_', '__' or '-'";
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(MSG);
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let valid = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !valid {
            return Err(MSG);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(text: &str) -> ImageReference {
        match Source::parse(text).unwrap() {
            Source::Registry { reference } => reference,
            other => panic!("{text} parsed as {other:?}"),
        }
    }

    #[test]
    fn paths_are_archives() {
        assert_eq!(
            Source::parse("/media/usb/a.tar.gz").unwrap(),
            Source::Archive { path: "/media/usb/a.tar.gz".into() }
        );
        assert_eq!(
            Source::parse("docker-tpcimage.gz"),
            Err(SourceError::RelativePath { path: "docker-tpcimage.gz".into() })
        );
        assert!(matches!(Source::parse("./x"), Err(SourceError::RelativePath { .. })));
    }

    #[test]
    fn urls_are_downloads() {
        let url = "https://files.example/tpc/app.tar.gz?x=1";
        assert_eq!(Source::parse(url).unwrap(), Source::Url { url: url.into() });
        assert_eq!(Source::parse("http://127.0.0.1:8080/a.tar").unwrap().to_string(), "http://127.0.0.1:8080/a.tar");
        for bad in ["http://", "https:///a.tar", "http://:80/a", "http://a b/c"] {
            assert!(matches!(Source::parse(bad), Err(SourceError::BadUrl { .. })), "{bad}");
        }
    }

    #[test]
    fn credentials_in_urls_are_never_shown() {
        assert_eq!(redact_url("https://u:p@host/a.tar"), "https://***@host/a.tar");
        assert_eq!(redact_url("http://host/a@b.tar"), "http://host/a@b.tar");
        assert_eq!(redact_url("https://u:p@w@host:8443/x?y=@"), "https://***@host:8443/x?y=@");
        let source = Source::parse("https://user:secret@files.example/a.tar").unwrap();
        assert!(!source.to_string().contains("secret"));
    }

    #[test]
    fn references_default_to_latest() {
        let r = reference("busybox");
        assert_eq!((r.repository.as_str(), r.tag_or_latest()), ("busybox", "latest"));
        assert_eq!(r.to_string(), "busybox:latest");
        let r = reference("localhost:5000/team/app:1.2-rc");
        assert_eq!(r.repository, "localhost:5000/team/app");
        assert_eq!(r.tag.as_deref(), Some("1.2-rc"));
        let r = reference("127.0.0.1:5000/app");
        assert_eq!((r.repository.as_str(), r.tag.as_deref()), ("127.0.0.1:5000/app", None));
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = reference(&format!("reg.example/app@{digest}"));
        assert_eq!(r.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(r.to_string(), format!("reg.example/app@{digest}"));
    }

    #[test]
    fn malformed_references_are_refused() {
        for bad in ["UPPER", "app:", "app:-x", "a//b", "a/-b", "reg:99999/a", "app@sha256:zz", "a b", "app:t@x"] {
            assert!(matches!(Source::parse(bad), Err(SourceError::BadReference { .. })), "{bad}");
        }
        assert_eq!(Source::parse("  "), Err(SourceError::Empty));
    }
}
