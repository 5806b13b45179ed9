//! A tiny blocking HTTP/1.1 client over unix sockets, for tests: it talks to
//! the Docker Engine (to check what berth did, independently of berth's own
//! adapter) and to berth's API (to check raw responses).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

pub struct Response {
    pub status: u16,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("bad json ({err}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn request(socket: &Path, method: &str, path: &str, content_type: &str, body: &[u8]) -> io::Result<Response> {
    request_with_headers(socket, method, path, content_type, &[], body)
}

pub fn request_with_headers(
    socket: &Path,
    method: &str,
    path: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut stream = UnixStream::connect(socket)?;
    // Loading an image can take a while on a busy box; never hang forever.
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    exchange(&mut stream, method, path, content_type, headers, body)
}

/// A request over plain TCP to `address` (a loopback listener of berth's).
pub fn request_tcp(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    exchange(&mut stream, method, path, "application/json", headers, body)
}

fn exchange(
    stream: &mut (impl Read + Write),
    method: &str,
    path: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect::<String>()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

/// A request to the Docker Engine, API 1.41 (Docker 20.10 and later).
pub fn docker(method: &str, path: &str, body: Option<&serde_json::Value>) -> Response {
    let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default()).unwrap_or_default();
    request(Path::new(DOCKER_SOCKET), method, &format!("/v1.41{path}"), "application/json", &bytes)
        .unwrap_or_else(|e| panic!("docker {method} {path}: {e}"))
}

/// Loads a `docker save` archive into the engine; returns the engine's answer.
pub fn docker_load(archive: &Path) -> Response {
    let bytes = std::fs::read(archive).unwrap_or_else(|e| panic!("{}: {e}", archive.display()));
    request(Path::new(DOCKER_SOCKET), "POST", "/v1.41/images/load?quiet=1", "application/x-tar", &bytes)
        .unwrap_or_else(|e| panic!("docker load: {e}"))
}

/// Pushes `repository:tag` from the engine to its (unauthenticated) registry.
pub fn docker_push(repository: &str, tag: &str) -> Response {
    docker_push_as(repository, tag, None)
}

/// Pushes with a login (`user`, `password`) when given.
pub fn docker_push_as(repository: &str, tag: &str, login: Option<(&str, &str)>) -> Response {
    use base64::Engine as _;
    // The engine insists on an auth header even for an open registry: "{}".
    let auth = match login {
        Some((user, password)) => serde_json::json!({ "username": user, "password": password }).to_string(),
        None => "{}".to_owned(),
    };
    let header = base64::engine::general_purpose::URL_SAFE.encode(auth);
    let path = format!("/v1.41/images/{repository}/push?tag={}", encode(tag));
    request_with_headers(
        Path::new(DOCKER_SOCKET),
        "POST",
        &path,
        "application/json",
        &[("X-Registry-Auth", &header)],
        b"",
    )
    .unwrap_or_else(|e| panic!("docker push: {e}"))
}

/// Percent-encodes a query value (for Docker's JSON `filters`).
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn parse_response(raw: &[u8]) -> io::Result<Response> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no header end"))?;
    let text = String::from_utf8_lossy(&raw[..split]).into_owned();
    let head = text.to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).ok_or_else(|| bad("no status"))?;
    let headers = text
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let body = if head.contains("transfer-encoding: chunked") { dechunk(rest)? } else { rest.to_vec() };
    Ok(Response { status, headers, body })
}

fn dechunk(mut data: &[u8]) -> io::Result<Vec<u8>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad chunk");
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| bad())?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(data.get(..size).ok_or_else(bad)?);
        data = data.get(size + 2..).ok_or_else(bad)?;
    }
}
