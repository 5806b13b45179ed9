//! A small HTTP/1.1 file server on loopback for download tests: files,
//! redirects, error statuses, `Range` requests, and transfers that break
//! off after a given number of bytes (to test resuming).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
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
}

impl FileServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &state);
                });
            }
        });
        FileServer { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
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

fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_owned());
            }
        }
    }
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
    let mut out = stream;
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
            out.flush()
        }
    }
}
