//! A small HTTP/1.1 (and HTTPS) file server on loopback for download tests:
//! files, redirects, error statuses, `Range` requests honoured only while
//! `If-Range` still matches, and the ways a real server misbehaves: transfers
//! that break off after a given number of bytes (to test resuming), a file
//! replaced between two requests, a body that trickles one byte and then goes
//! silent, a server that never answers, one that ignores `Range` or `If-Range`.
//! The HTTPS variant uses a certificate from its own throwaway CA.
//!
//! Every connection is served on its own thread, one request per connection.
//! A stalled connection waits for the client to hang up (a read that returns
//! nothing), so no thread outlives its test by sleeping.

use rustls::pki_types::pem::PemObject;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
enum Route {
    /// The versions of a file: request k gets version k (the last one stays).
    File(Vec<PathBuf>),
    Redirect(String),
    Status(u16),
}

/// What a file response carries to let a client resume it safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validator {
    /// `ETag: "berth-<version>"`, usable in `If-Range`.
    StrongETag,
    /// `ETag: W/"berth-<version>"`, which `If-Range` must not use.
    WeakETag,
    /// `Last-Modified:` a date that moves on with every version.
    LastModified,
}

/// Files carry these unless told otherwise, as common servers do.
const DEFAULT_VALIDATORS: &[Validator] = &[Validator::StrongETag, Validator::LastModified];

/// What went over the wire for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub path: String,
    pub range: Option<String>,
    pub if_range: Option<String>,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    /// Path → requests answered so far (which file version comes next).
    served: HashMap<String, usize>,
    /// Path → (bytes to send before breaking off, how many more times).
    breaks: HashMap<String, (u64, u32)>,
    /// Paths whose server ignores `Range` (answers 200 with everything).
    ignore_range: HashMap<String, bool>,
    /// Paths whose server honours `Range` even when `If-Range` does not match.
    ignore_if_range: HashMap<String, bool>,
    /// Paths answered without `Content-Length` (the body ends when the connection closes).
    hide_length: HashMap<String, bool>,
    /// Paths that send their head and one body byte, then nothing.
    trickle: HashMap<String, bool>,
    /// Paths that read the request and never answer.
    silent: HashMap<String, bool>,
    validators: HashMap<String, Vec<Validator>>,
    requests: Vec<Request>,
    /// Path → stalled responses (trickle, silent) whose client has hung up.
    hangups: HashMap<String, usize>,
}

/// A CA and a server certificate it signed, for `localhost` and `127.0.0.1`.
pub struct TestCertificates {
    pub ca_pem: String,
    pub server_pem: String,
    pub server_der: rustls::pki_types::CertificateDer<'static>,
    pub key_pem: String,
    pub key_der: Vec<u8>,
}

impl TestCertificates {
    pub fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "berth test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().expect("server key");
        let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).expect("params");
        let certificate = params.signed_by(&key, &issuer).expect("server certificate");
        TestCertificates {
            ca_pem: ca.pem(),
            server_pem: certificate.pem(),
            server_der: certificate.der().clone(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }

    /// One HTTPS exchange with a server this CA vouches for (`Connection: close`).
    pub fn get(&self, port: u16, path: &str) -> std::io::Result<(u16, String)> {
        use std::io::{Read, Write};
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.map_err(std::io::Error::other)?).map_err(std::io::Error::other)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").map_err(std::io::Error::other)?;
        let connection = rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
        let mut stream = rustls::StreamOwned::new(connection, std::net::TcpStream::connect(("127.0.0.1", port))?);
        write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
        let mut answer = Vec::new();
        match stream.read_to_end(&mut answer) {
            Ok(_) => {}
            // A server that closes without close_notify after a complete answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {}
            Err(e) => return Err(e),
        }
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok((status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()))
    }
}

impl Default for TestCertificates {
    fn default() -> Self {
        Self::new()
    }
}

pub struct FileServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    scheme: &'static str,
}

impl FileServer {
    pub fn start() -> Self {
        Self::listen(None)
    }

    /// An HTTPS server for `localhost` and `127.0.0.1`; returns it with the PEM
    /// of the CA that signed its certificate.
    pub fn start_tls() -> (Self, String) {
        let certs = TestCertificates::new();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![certs.server_der.clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(certs.key_der.clone().into()),
            )
            .expect("TLS config");
        (Self::listen(Some(Arc::new(config))), certs.ca_pem)
    }

    fn listen(tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (state, tls) = (shared.clone(), tls.clone());
                std::thread::spawn(move || {
                    let _ = match tls {
                        Some(config) => match rustls::ServerConnection::new(config) {
                            Ok(connection) => serve(rustls::StreamOwned::new(connection, stream), &state),
                            Err(_) => Ok(()),
                        },
                        None => serve(stream, &state),
                    };
                });
            }
        });
        FileServer { addr, state, scheme }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    pub fn file(&self, path: &str, file: &Path) {
        self.versions(path, &[file]);
    }

    /// Serves `files[k]` to the k-th request for `path` (the last one from then
    /// on): a file replaced on the server between two requests. Each version
    /// has its own validators.
    pub fn versions(&self, path: &str, files: &[&Path]) {
        assert!(!files.is_empty(), "a file needs at least one version");
        let files = files.iter().map(|f| f.to_path_buf()).collect();
        self.with(|s| {
            s.routes.insert(path.into(), Route::File(files));
            s.served.remove(path);
        });
    }

    pub fn redirect(&self, path: &str, to: &str) {
        self.with(|s| s.routes.insert(path.into(), Route::Redirect(to.into())));
    }

    pub fn status(&self, path: &str, status: u16) {
        self.with(|s| s.routes.insert(path.into(), Route::Status(status)));
    }

    /// The next `times` responses for `path` close the connection after `bytes` body bytes.
    pub fn break_after(&self, path: &str, bytes: u64, times: u32) {
        self.with(|s| s.breaks.insert(path.into(), (bytes, times)));
    }

    pub fn ignore_range(&self, path: &str) {
        self.with(|s| s.ignore_range.insert(path.into(), true));
    }

    /// Honour `Range` even when `If-Range` names another version (a broken server).
    pub fn ignore_if_range(&self, path: &str) {
        self.with(|s| s.ignore_if_range.insert(path.into(), true));
    }

    /// Answer without `Content-Length`: the body ends when the connection closes.
    pub fn hide_length(&self, path: &str) {
        self.with(|s| s.hide_length.insert(path.into(), true));
    }

    /// Send the head and the first body byte, then nothing until the client hangs up.
    pub fn trickle(&self, path: &str) {
        self.with(|s| s.trickle.insert(path.into(), true));
    }

    /// Read the request and never answer it.
    pub fn silent(&self, path: &str) {
        self.with(|s| s.silent.insert(path.into(), true));
    }

    /// The validators `path` is served with (by default a strong `ETag` and `Last-Modified`).
    pub fn validators(&self, path: &str, validators: &[Validator]) {
        self.with(|s| s.validators.insert(path.into(), validators.to_vec()));
    }

    /// Requests seen: (path, Range header).
    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.with(|s| s.requests.iter().map(|r| (r.path.clone(), r.range.clone())).collect())
    }

    /// Requests seen for `path`, with their `Range` and `If-Range` headers.
    pub fn requests_for(&self, path: &str) -> Vec<Request> {
        self.with(|s| s.requests.iter().filter(|r| r.path == path).cloned().collect())
    }

    /// How many stalled responses for `path` (trickle, silent) saw their
    /// client hang up: a client that gave the transfer up.
    pub fn hangups(&self, path: &str) -> usize {
        self.with(|s| s.hangups.get(path).copied().unwrap_or(0))
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Reads the request head byte by byte (it is small), so that the same
/// stream can then be written to, plain or TLS.
fn read_head(stream: &mut impl Read) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Blocks until the client hangs up (or sends something, which it does not).
fn wait_for_hangup(stream: &mut impl Read) {
    let mut byte = [0u8; 1];
    let _ = stream.read(&mut byte);
}

fn hung_up(state: &Mutex<State>, path: &str) {
    *state.lock().unwrap_or_else(|e| e.into_inner()).hangups.entry(path.to_owned()).or_default() += 1;
}

/// Everything one request is answered with, decided under the lock.
struct Plan {
    route: Option<Route>,
    version: usize,
    break_after: Option<u64>,
    ignore_range: bool,
    ignore_if_range: bool,
    hide_length: bool,
    trickle: bool,
    silent: bool,
    validators: Vec<Validator>,
}

fn plan(state: &Mutex<State>, request: Request) -> Plan {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let path = request.path.clone();
    s.requests.push(request);
    let version = {
        let served = s.served.entry(path.clone()).or_default();
        *served += 1;
        *served - 1
    };
    let break_after = match s.breaks.get_mut(&path) {
        Some((bytes, times)) if *times > 0 => {
            *times -= 1;
            Some(*bytes)
        }
        _ => None,
    };
    let flag = |map: &HashMap<String, bool>| map.get(&path).copied().unwrap_or(false);
    Plan {
        route: s.routes.get(&path).cloned(),
        version,
        break_after,
        ignore_range: flag(&s.ignore_range),
        ignore_if_range: flag(&s.ignore_if_range),
        hide_length: flag(&s.hide_length),
        trickle: flag(&s.trickle),
        silent: flag(&s.silent),
        validators: s.validators.get(&path).cloned().unwrap_or_else(|| DEFAULT_VALIDATORS.to_vec()),
    }
}

fn serve(mut out: impl Read + Write, state: &Mutex<State>) -> std::io::Result<()> {
    let head = read_head(&mut out)?;
    let mut lines = head.lines();
    let path = lines.next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or("/").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|h| h.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let request = Request { path: path.clone(), range: header("range"), if_range: header("if-range") };
    let (range, if_range) = (request.range.clone(), request.if_range.clone());
    let plan = plan(state, request);
    if plan.silent {
        wait_for_hangup(&mut out);
        hung_up(state, &path);
        return Ok(());
    }
    match plan.route {
        None => write!(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        Some(Route::Status(code)) => {
            write!(out, "HTTP/1.1 {code} Scripted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        }
        Some(Route::Redirect(to)) => {
            write!(out, "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        }
        Some(Route::File(versions)) => {
            let version = plan.version.min(versions.len() - 1);
            let mut file = std::fs::File::open(&versions[version])?;
            let len = file.metadata()?.len();
            let etag = plan.validators.iter().find_map(|v| match v {
                Validator::StrongETag => Some(format!("\"berth-{version}\"")),
                Validator::WeakETag => Some(format!("W/\"berth-{version}\"")),
                Validator::LastModified => None,
            });
            // 2024-01-01 was a Monday; the seconds count the versions.
            let last_modified = plan
                .validators
                .contains(&Validator::LastModified)
                .then(|| format!("Mon, 01 Jan 2024 00:00:{:02} GMT", version % 60));
            // RFC 9110, 13.1.5: a range is served only while If-Range matches
            // exactly, a strong ETag or the Last-Modified date.
            let if_range_holds = match &if_range {
                None => true,
                Some(_) if plan.ignore_if_range => true,
                Some(value) if value.starts_with('"') => etag.as_deref() == Some(value.as_str()),
                Some(value) if value.starts_with("W/") => false,
                Some(value) => last_modified.as_deref() == Some(value.as_str()),
            };
            let start = range
                .filter(|_| !plan.ignore_range && if_range_holds)
                .and_then(|r| {
                    r.strip_prefix("bytes=").and_then(|r| r.strip_suffix('-')).and_then(|n| n.parse::<u64>().ok())
                })
                .filter(|start| *start < len);
            let mut head = match start {
                Some(start) => {
                    format!("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{len}\r\n", len - 1)
                }
                None => "HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\n".to_owned(),
            };
            if !plan.hide_length {
                head.push_str(&format!("Content-Length: {}\r\n", len - start.unwrap_or(0)));
            }
            if let Some(etag) = &etag {
                head.push_str(&format!("ETag: {etag}\r\n"));
            }
            if let Some(date) = &last_modified {
                head.push_str(&format!("Last-Modified: {date}\r\n"));
            }
            head.push_str("Connection: close\r\n\r\n");
            out.write_all(head.as_bytes())?;
            file.seek(SeekFrom::Start(start.unwrap_or(0)))?;
            if plan.trickle {
                std::io::copy(&mut file.take(1), &mut out)?;
                out.flush()?;
                wait_for_hangup(&mut out);
                hung_up(state, &path);
                return Ok(());
            }
            let limit = plan.break_after.unwrap_or(u64::MAX);
            std::io::copy(&mut file.take(limit), &mut out)?;
            out.flush()?;
            Ok(())
        }
    }
}
