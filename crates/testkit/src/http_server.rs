//! A small HTTP/1.1 (and HTTPS) file server on loopback for download tests:
//! files, redirects, error statuses, `Range` requests, and transfers that
//! break off after a given number of bytes (to test resuming). The HTTPS
//! variant uses a certificate from its own throwaway CA.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
enum Route {
    File(PathBuf),
    Redirect(String),
    Status(u16),
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    /// Path → (bytes to send before breaking off, how many more times).
    breaks: HashMap<String, (u64, u32)>,
    /// Path → ignore `Range` (answer 200 with everything).
    ignore_range: HashMap<String, bool>,
    requests: Vec<(String, Option<String>)>,
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
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "berth test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().expect("server key");
        let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).expect("params");
        let certificate = params.signed_by(&key, &issuer).expect("server certificate");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![certificate.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("TLS config");
        (Self::listen(Some(Arc::new(config))), ca.pem())
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
        self.with(|s| s.routes.insert(path.into(), Route::File(file.to_owned())));
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

    /// Requests seen: (path, Range header).
    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.with(|s| s.requests.clone())
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

fn serve(mut out: impl Read + Write, state: &Mutex<State>) -> std::io::Result<()> {
    let head = read_head(&mut out)?;
    let mut lines = head.lines();
    let path = lines.next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or("/").to_owned();
    let range = lines
        .filter_map(|h| h.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("range"))
        .map(|(_, value)| value.trim().to_owned());
    let (route, break_after, ignore_range) = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.requests.push((path.clone(), range.clone()));
        let route = s.routes.get(&path).cloned();
        let break_after = match s.breaks.get_mut(&path) {
            Some((bytes, times)) if *times > 0 => {
                *times -= 1;
                Some(*bytes)
            }
            _ => None,
        };
        (route, break_after, s.ignore_range.get(&path).copied().unwrap_or(false))
    };
    match route {
        None => write!(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        Some(Route::Status(code)) => {
            write!(out, "HTTP/1.1 {code} Scripted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        }
        Some(Route::Redirect(to)) => {
            write!(out, "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        }
        Some(Route::File(file)) => {
            let mut file = std::fs::File::open(file)?;
            let len = file.metadata()?.len();
            let start = range
                .filter(|_| !ignore_range)
                .and_then(|r| {
                    r.strip_prefix("bytes=").and_then(|r| r.strip_suffix('-')).and_then(|n| n.parse::<u64>().ok())
                })
                .filter(|start| *start < len);
            match start {
                Some(start) => write!(
                    out,
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{len}\r\n\
                     Connection: close\r\n\r\n",
                    len - start,
                    len - 1
                )?,
                None => write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n"
                )?,
            }
            file.seek(SeekFrom::Start(start.unwrap_or(0)))?;
            let limit = break_after.unwrap_or(u64::MAX);
            std::io::copy(&mut file.take(limit), &mut out)?;
            out.flush()?;
            Ok(())
        }
    }
}
