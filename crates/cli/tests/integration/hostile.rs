//! berth tried as an attacker and a careless user would (issue 13). Each
//! table below is read as *input → the refusal it must get*: the exit code
//! (README, "Exit codes"), what the message must name, and — every time —
//! that nothing changed: no app, no container, no image of the input left
//! in the engine, no other app's tag moved. The SRA face has its own
//! table in `sra_hostile.rs`.

use crate::bin;
use berth_testkit::harness::{finish, image_exists, inspect, poll, unique, Run, TestDaemon, TEST_SETTINGS};
use berth_testkit::http::{self, docker};
use berth_testkit::http_server::FileServer;
use berth_testkit::{write_multi_image_tar, ImageBuilder};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const EXIT_INVALID: i32 = 2;
const EXIT_BAD_SOURCE: i32 = 5;
const EXIT_ENGINE_UNAVAILABLE: i32 = 6;
const EXIT_DAEMON_UNREACHABLE: i32 = 7;
const EXIT_TOO_LARGE: i32 = 14;
const EXIT_CORRUPT_STATE: i32 = 15;
const EXIT_CONFIG: i32 = 78;

fn service(tag: &str) -> ImageBuilder {
    ImageBuilder::new(&format!("berth-test/{tag}:1")).service().label("berth.test.sweep", "1").layer_marker(tag)
}

fn assert_refused(run: &Run, code: i32, needles: &[&str], case: &str) {
    assert_eq!(run.code, code, "{case}: {run:?}");
    for needle in needles {
        assert!(run.stderr.contains(needle), "{case}: stderr should name {needle:?}: {run:?}");
    }
    assert!(!run.stderr.contains("panicked"), "{case}: {run:?}");
}

/// Nothing of `name` or `images` is left: no app, no container, no image.
fn assert_untouched(daemon: &TestDaemon, name: &str, images: &[&str], case: &str) {
    assert!(daemon.app(name).is_none(), "{case}: the app {name} exists: {:?}", daemon.list());
    assert!(inspect(name).is_none(), "{case}: a container {name} exists");
    assert!(!daemon.private_dir(name).exists(), "{case}: a private directory exists");
    for image in images {
        assert!(!image_exists(image), "{case}: image {image} was left in the engine");
    }
}

// ----- archives ----------------------------------------------------------------

/// `source` as a tar with its members rewritten: `manifest.json` is replaced
/// by what `replace` makes of it (any number of members).
fn rewrite_manifest(source: &[u8], replace: impl Fn(&Value) -> Vec<(&'static str, Value)>) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    let mut archive = tar::Archive::new(source);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if path == Path::new("manifest.json") {
            let manifest: Value = serde_json::from_slice(&data).unwrap();
            for (name, value) in replace(&manifest) {
                let bytes = serde_json::to_vec(&value).unwrap();
                let mut header = tar::Header::new_ustar();
                header.set_size(bytes.len() as u64);
                header.set_mode(0o644);
                header.set_entry_type(tar::EntryType::Regular);
                // `set_path` would normalise "./manifest.json" away.
                header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
                header.set_cksum();
                out.append(&header, bytes.as_slice()).unwrap();
            }
        } else {
            let mut header = entry.header().clone();
            out.append_data(&mut header, &path, data.as_slice()).unwrap();
        }
    }
    out.into_inner().unwrap()
}

/// Issue 13 (4): smuggled images. A second manifest under another spelling
/// of its name, and a bad tag listed after a good one — the tag of an
/// installed app. Both refused; nothing loaded; the app keeps its tag.
#[test]
fn smuggled_images_are_refused_and_leave_nothing() {
    let mut daemon = TestDaemon::start(bin());
    let victim = unique("victim");
    let victim_image = service(&victim);
    let installed = daemon.archive(&victim_image, false);
    let run = daemon.berth(&["install", &victim, &installed.path.to_string_lossy(), "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    let victim_tag = format!("berth-test/{victim}:1");

    let shown = unique("shown");
    let hidden = unique("hidden");
    let both = daemon.dir.path().join("both.tar");
    let archives = write_multi_image_tar(&both, &[service(&shown), service(&hidden)]).unwrap();
    for archive in &archives {
        daemon.sweep_image(&archive.image_id);
    }
    let both = std::fs::read(&both).unwrap();
    let smuggled = rewrite_manifest(&both, |manifest| {
        vec![("manifest.json", Value::Array(vec![manifest[0].clone()])), ("./manifest.json", manifest.clone())]
    });
    let stealer = daemon.archive(&service(&unique("stealer")), false);
    let stealer_id = stealer.image_id.clone();
    let stealing = std::fs::read(&stealer.path).unwrap();
    let bad_tag = rewrite_manifest(&stealing, |manifest| {
        let mut entry = manifest[0].clone();
        entry["RepoTags"] = serde_json::json!([victim_tag, "Not A Tag!"]);
        vec![("manifest.json", Value::Array(vec![entry]))]
    });

    struct Case<'a> {
        case: &'a str,
        archive: &'a [u8],
        named: &'a [&'a str],
        images: Vec<&'a str>,
    }
    let cases = [
        Case {
            case: "manifest.json and ./manifest.json",
            archive: &smuggled,
            named: &["manifest.json", "twice"],
            images: archives.iter().map(|a| a.image_id.as_str()).collect(),
        },
        Case {
            case: "a bad tag after an installed app's tag",
            archive: &bad_tag,
            named: &["Not A Tag!", "not a valid image reference"],
            images: vec![&stealer_id],
        },
    ];
    for Case { case, archive, named, images } in cases {
        let path = daemon.dir.path().join(format!("{}.tar", unique("case")));
        std::fs::write(&path, archive).unwrap();
        let name = unique("smuggle");
        let run = daemon.berth(&["install", &name, &path.to_string_lossy(), "-y"]);
        assert_refused(&run, EXIT_BAD_SOURCE, named, case);
        assert_untouched(&daemon, &name, &images, case);
        let tagged = docker("GET", &format!("/images/{victim_tag}/json"), None).json();
        assert_eq!(tagged["Id"], installed.image_id.as_str(), "{case}: the installed app's tag was moved");
    }
}

// ----- names and options ---------------------------------------------------------

/// Issue 13 (14, 15, 16): what the engine or systemd would refuse only
/// after the image was loaded is refused first, naming the option, briefly.
#[test]
fn names_and_options_the_engine_would_refuse_are_refused_first() {
    let mut daemon = TestDaemon::start(bin());
    let archive = daemon.archive(&service(&unique("opts")), false);
    let path = archive.path.to_string_lossy().into_owned();
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("x", &[], &["\"x\"", "at least 2 characters"]),
        ("dots..", &[], &["two dots"]),
        ("trailing.", &[], &["ends with a dot"]),
        ("", &["--cpus", "1e308"], &["--cpus"]),
        ("", &["--cpus", "0.001"], &["--cpus", "0.01"]),
        ("", &["--args", "--network berth-no-such-network"], &["--network", "berth-no-such-network"]),
        ("", &["--args", "--network container:berth-no-such-container"], &["--network", "berth-no-such-container"]),
        ("", &["--args", "-v xx:/tpc"], &["-v", "/tpc"]),
        ("", &["--args", "-v /srv:/tpc/sub"], &["-v", "/tpc"]),
        ("", &["--args", "--tmpfs /tpc"], &["--tmpfs", "/tpc"]),
    ];
    for (name, options, needles) in cases {
        let name = if name.is_empty() { unique("opt") } else { (*name).to_owned() };
        let mut args = vec!["install", "-y", "--", &name, &path];
        args.splice(2..2, options.iter().copied());
        let run = daemon.berth(&args);
        let case = format!("{name} {options:?}");
        assert_refused(&run, EXIT_INVALID, needles, &case);
        assert!(run.stderr.len() < 400, "{case}: a short message: {run:?}");
        assert_untouched(&daemon, &name, &[&archive.image_id], &case);
    }
}

// ----- the REST API ----------------------------------------------------------------

/// Issue 13 (11, 12, 14): every refusal of the API is `{"code","message"}`
/// JSON with the status of its kind (README, "REST API"), an unknown field
/// is named, and a traversal is answered alike for every method.
#[test]
fn every_api_refusal_is_json_in_the_documented_shape() {
    let daemon = TestDaemon::start(bin());
    /// A request, and the status, `code` and message text its refusal must have.
    struct Case {
        method: &'static str,
        path: &'static str,
        content_type: &'static str,
        body: &'static str,
        status: u16,
        code: &'static str,
        named: &'static str,
    }
    const JSON: &str = "application/json";
    let install = |body, status, named| Case {
        method: "POST",
        path: "/v1/apps",
        content_type: JSON,
        body,
        status,
        code: "invalid_input",
        named,
    };
    let get =
        |method, path, status, code, named| Case { method, path, content_type: JSON, body: "", status, code, named };
    let cases = [
        install("{not json", 400, "JSON"),
        Case { content_type: "text/plain", ..install("{}", 400, "application/json") },
        install(r#"{"name":"aa"}"#, 400, "source"),
        install(
            r#"{"name":"aa","source":{"kind":"url","url":"http://127.0.0.1:9/x.tar"},"sha_256":"00"}"#,
            400,
            "sha_256",
        ),
        install(r#"{"name":"aa","source":{"kind":"carrier_pigeon"}}"#, 400, "carrier_pigeon"),
        get("PATCH", "/v1/apps", 400, "invalid_input", "PATCH"),
        get("GET", "/v1/apps?secrets=maybe", 400, "invalid_input", "secrets"),
        get("GET", "/v1/apps/..%2Fetc", 400, "invalid_input", "app name"),
        get("DELETE", "/v1/apps/..%2Fetc", 400, "invalid_input", "app name"),
        get("GET", "/v1/nothing-here", 404, "not_found", "/v1/nothing-here"),
    ];
    for Case { method, path, content_type, body, status, code, named } in cases {
        let case = format!("{method} {path} {body}");
        let response = http::request(&daemon.socket, method, path, content_type, body.as_bytes()).unwrap();
        assert_eq!(response.status, status, "{case}: {}", response.text());
        let error: Value = serde_json::from_slice(&response.body)
            .unwrap_or_else(|e| panic!("{case}: not JSON ({e}): {}", response.text()));
        assert_eq!(error["code"], code, "{case}: {error}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{case}: the message should name {named:?}: {error}");
        assert!(message.len() < 400, "{case}: a short message: {error}");
        assert_eq!(error.as_object().map(|o| o.len()), Some(2), "{case}: exactly code and message: {error}");
    }
    assert!(daemon.list().is_empty());
}

// ----- stalls ------------------------------------------------------------------------

/// A server that lies: it trickles, or never stops after a valid archive.
enum Lie {
    /// `Content-Length` of the whole body, its first `burst` bytes at once,
    /// then one byte every `every`.
    Trickle { body: Vec<u8>, burst: usize, every: Duration },
    /// Chunked: the body, then chunks of junk until the client hangs up.
    EndlessAfter { body: Vec<u8> },
    /// Reads the request and never answers (a registry that hangs).
    Silent,
}

struct LyingServer {
    port: u16,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
    hangups: Arc<AtomicUsize>,
}

impl LyingServer {
    fn start(lie: Lie) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, hangups) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let connections = Arc::new(AtomicUsize::new(0));
        let lie = Arc::new(lie);
        let (stopping, counted, connected) = (stop.clone(), hangups.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                connected.fetch_add(1, Ordering::Relaxed);
                let (lie, stopping, counted) = (lie.clone(), stopping.clone(), counted.clone());
                std::thread::spawn(move || {
                    if lie_to(stream, &lie, &stopping).is_err() {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        Self { port, stop, connections, hangups }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// How many clients hung up on a lie.
    fn hangups(&self) -> usize {
        self.hangups.load(Ordering::Relaxed)
    }
}

impl Drop for LyingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Serves one connection; an error is the client hanging up.
fn lie_to(mut stream: TcpStream, lie: &Lie, stop: &AtomicBool) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    match lie {
        Lie::Trickle { body, burst, every } => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            stream.write_all(head.as_bytes())?;
            let (burst, rest) = body.split_at((*burst).min(body.len()));
            stream.write_all(burst)?;
            for byte in rest {
                stream.write_all(&[*byte])?;
                std::thread::sleep(*every);
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
            Ok(())
        }
        Lie::EndlessAfter { body } => {
            stream.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            let junk = vec![b'x'; 64 * 1024];
            for chunk in std::iter::once(body.as_slice()).chain(std::iter::repeat(junk.as_slice())) {
                write!(stream, "{:x}\r\n", chunk.len())?;
                stream.write_all(chunk)?;
                stream.write_all(b"\r\n")?;
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
            Ok(())
        }
        Lie::Silent => {
            // Holds the connection until the client gives up.
            stream.set_read_timeout(Some(Duration::from_millis(200)))?;
            let mut buffer = [0u8; 512];
            loop {
                match stream.read(&mut buffer) {
                    Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) => {}
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        if stop.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

const STALL_SETTINGS: &str = "\n[fetch]\nidle_timeout_secs = 2\noverall_timeout_secs = 6\n";

/// Issue 13 (6): stalled and endless sources end, with a message that
/// names the limit, and leave nothing.
#[test]
fn stalled_and_endless_sources_end_and_leave_nothing() {
    let mut daemon = TestDaemon::start_with(bin(), &format!("{TEST_SETTINGS}{STALL_SETTINGS}"), &[], None);
    let archive = daemon.archive(&service(&unique("stall")), false);
    let body = std::fs::read(&archive.path).unwrap();
    let trickling =
        LyingServer::start(Lie::Trickle { body: body.clone(), burst: 0, every: Duration::from_millis(500) });
    let endless = LyingServer::start(Lie::EndlessAfter { body });
    let registry = LyingServer::start(Lie::Silent);
    let silent_files = FileServer::start();
    silent_files.silent("/silent.tar");
    let cases = [
        ("a server that trickles below the idle timeout", trickling.url("/a.tar"), vec!["within 6 s"]),
        ("an endless body after a valid archive", endless.url("/a.tar"), vec!["after the end of its tar archive"]),
        ("an http server that never answers", silent_files.url("/silent.tar"), vec!["within 6 s"]),
        (
            "a registry that never answers",
            format!("127.0.0.1:{}/berth-test/never:1", registry.port),
            vec!["idle_timeout_secs"],
        ),
    ];
    for (case, source, needles) in cases {
        let name = unique("stall");
        let run = daemon.berth(&["install", &name, &source, "-y"]);
        assert_refused(&run, EXIT_BAD_SOURCE, &needles, case);
        assert_untouched(&daemon, &name, &[&archive.image_id], case);
    }
    assert!(endless.hangups() >= 1, "the endless download was hung up on");
    // The engine did ask (whether it hangs up on the registry is its business).
    assert!(registry.connections() >= 1, "the pull reached the registry");
}

/// Issue 13 (7): SIGTERM during a download that never ends: the daemon
/// cancels it, undoes the install and exits; the next start finds nothing.
#[test]
fn sigterm_during_a_stalled_download_ends_the_daemon_and_undoes_the_install() {
    let mut daemon = TestDaemon::start(bin());
    let archive = daemon.archive(&service(&unique("term")), false);
    let body = std::fs::read(&archive.path).unwrap();
    let server = LyingServer::start(Lie::Trickle { body, burst: 0, every: Duration::from_millis(200) });
    let name = unique("term");
    let cli = daemon.berth_spawn(&[], &["install", &name, &server.url("/a.tar"), "-y"]);
    daemon.wait_state(&name, "installing", Duration::from_secs(30));
    let pid = rustix::process::Pid::from_raw(daemon.pid().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    // Liveness, not speed: the daemon ends by itself (SHUTDOWN_GRACE is 20s).
    let status = daemon.wait_exit(Duration::from_secs(60)).expect("the daemon exits after SIGTERM");
    assert!(status.success(), "{status:?}; log:\n{}", daemon.log());
    let run = finish(cli, "the CLI", Duration::from_secs(30));
    assert!(
        [13, EXIT_DAEMON_UNREACHABLE].contains(&run.code),
        "the CLI says the install was cancelled or the daemon went away: {run:?}"
    );
    daemon.launch(&[]);
    assert_untouched(&daemon, &name, &[&archive.image_id], "after the restart");
}

/// Issue 13 (10): a CLI whose daemon dies under it says so, with the
/// daemon-unreachable code; the next start undoes the install.
#[test]
fn a_cli_whose_daemon_dies_exits_7() {
    let mut daemon = TestDaemon::start(bin());
    let archive = daemon.archive(&service(&unique("dies")), false);
    let body = std::fs::read(&archive.path).unwrap();
    let server = LyingServer::start(Lie::Trickle { body, burst: 0, every: Duration::from_millis(200) });
    let name = unique("dies");
    let cli = daemon.berth_spawn(&[], &["install", &name, &server.url("/a.tar"), "-y"]);
    daemon.wait_state(&name, "installing", Duration::from_secs(30));
    daemon.kill9();
    let run = finish(cli, "the CLI", Duration::from_secs(30));
    assert_refused(&run, EXIT_DAEMON_UNREACHABLE, &["went away"], "daemon killed");
    daemon.launch(&[]);
    assert_untouched(&daemon, &name, &[&archive.image_id], "after the restart");
}

/// A unix socket in front of the real engine that can be cut off (the
/// engine dies) and brought back.
struct EngineProxy {
    path: PathBuf,
    cut: Arc<AtomicBool>,
    load_seen: Arc<AtomicBool>,
}

impl EngineProxy {
    fn start(path: &Path) -> Self {
        let proxy = Self {
            path: path.to_owned(),
            cut: Arc::new(AtomicBool::new(false)),
            load_seen: Arc::new(AtomicBool::new(false)),
        };
        proxy.listen();
        proxy
    }

    fn listen(&self) {
        let _ = std::fs::remove_file(&self.path);
        let listener = std::os::unix::net::UnixListener::bind(&self.path).unwrap();
        self.cut.store(false, Ordering::Relaxed);
        let (cut, load_seen) = (self.cut.clone(), self.load_seen.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if cut.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(engine) = std::os::unix::net::UnixStream::connect(http::DOCKER_SOCKET) else { continue };
                let (cut, load_seen) = (cut.clone(), load_seen.clone());
                std::thread::spawn(move || pipe(client, engine, &cut, &load_seen));
            }
        });
    }

    /// The engine "dies": every connection is cut and nobody answers.
    fn kill(&self) {
        self.cut.store(true, Ordering::Relaxed);
        let _ = std::fs::remove_file(&self.path);
        let _ = std::os::unix::net::UnixStream::connect(&self.path);
    }

    fn revive(&self) {
        self.listen();
    }
}

fn pipe(
    client: std::os::unix::net::UnixStream,
    engine: std::os::unix::net::UnixStream,
    cut: &Arc<AtomicBool>,
    load_seen: &Arc<AtomicBool>,
) {
    let copy = |mut from: std::os::unix::net::UnixStream,
                mut to: std::os::unix::net::UnixStream,
                cut: Arc<AtomicBool>,
                watch: Option<Arc<AtomicBool>>| {
        std::thread::spawn(move || {
            let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                if cut.load(Ordering::Relaxed) {
                    break;
                }
                match from.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => {
                        if let Some(seen) = &watch {
                            if buffer[..n].windows(12).any(|w| w == b"/images/load") {
                                seen.store(true, Ordering::Relaxed);
                            }
                        }
                        if to.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
            let _ = from.shutdown(std::net::Shutdown::Both);
            let _ = to.shutdown(std::net::Shutdown::Both);
        })
    };
    let (client2, engine2) = (client.try_clone().unwrap(), engine.try_clone().unwrap());
    copy(client, engine, cut.clone(), Some(load_seen.clone()));
    copy(engine2, client2, cut.clone(), None);
}

/// Issue 13 (10, 9): the engine dies while it reads an install's archive:
/// exit 6 (engine unavailable), not 5; when it is back, the undo finishes
/// and nothing is left.
#[test]
fn an_engine_that_dies_while_loading_is_engine_unavailable_and_the_undo_waits_for_it() {
    let scratch = tempfile::tempdir().unwrap();
    let proxy = EngineProxy::start(&scratch.path().join("engine.sock"));
    let host = format!("unix://{}", proxy.path.display());
    let mut daemon = TestDaemon::start_with(bin(), TEST_SETTINGS, &[], Some(&host));
    // Larger than what the checker holds back before the manifest, sent at
    // once up to past that, then slow: the load is under way for a while.
    let padded = service(&unique("outage")).pseudorandom_file("/pad", 6 << 20, 13);
    let archive = daemon.archive(&padded, false);
    let body = std::fs::read(&archive.path).unwrap();
    let server = LyingServer::start(Lie::Trickle { body, burst: 5 << 20, every: Duration::from_millis(20) });
    let name = unique("outage");
    let cli = daemon.berth_spawn(&[], &["install", &name, &server.url("/a.tar"), "-y"]);
    poll(Duration::from_secs(30), || proxy.load_seen.load(Ordering::Relaxed).then_some(()))
        .expect("the load reaches the engine");
    proxy.kill();
    let run = finish(cli, "the CLI", Duration::from_secs(60));
    assert_refused(&run, EXIT_ENGINE_UNAVAILABLE, &[], "the engine died");
    proxy.revive();
    // The engine watch reconnects and the undo finishes.
    daemon.wait_for("the undone install to be gone", Duration::from_secs(60), |d| d.app(&name).is_none().then_some(()));
    assert_untouched(&daemon, &name, &[&archive.image_id], "after the engine is back");
}

// ----- state --------------------------------------------------------------------------

/// Runs `berth daemon` on `daemon`'s root until it exits by itself.
fn daemon_exit(daemon: &TestDaemon, extra: &[&str]) -> Run {
    let socket = daemon.dir.path().join(format!("{}.sock", unique("other")));
    let child = Command::new(bin())
        .arg("daemon")
        .arg("--root")
        .arg(daemon.root())
        .arg("--socket")
        .arg(&socket)
        .arg("--unit-dir")
        .arg(daemon.unit_dir())
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, "berth daemon", Duration::from_secs(60))
}

/// Issue 13 (8): a damaged or newer database is refused at start with its
/// own exit code and a message naming the file; it is left as it was.
#[test]
fn a_damaged_or_newer_database_is_refused_at_start() {
    type Damage = fn(&Path);
    let cases: [(&str, Damage, i32, &[&str]); 2] = [
        (
            "random bytes in the middle",
            |db| {
                let mut bytes = std::fs::read(db).unwrap();
                let middle = bytes.len() / 2;
                let end = (middle + 8192).min(bytes.len());
                for (i, byte) in bytes[middle..end].iter_mut().enumerate() {
                    *byte = (i as u8).wrapping_mul(151).wrapping_add(7);
                }
                std::fs::write(db, bytes).unwrap();
            },
            EXIT_CORRUPT_STATE,
            &["berth.db"],
        ),
        (
            "user_version 999",
            |db| {
                let mut bytes = std::fs::read(db).unwrap();
                bytes[60..64].copy_from_slice(&999u32.to_be_bytes());
                std::fs::write(db, bytes).unwrap();
            },
            EXIT_CORRUPT_STATE,
            &["berth.db", "999"],
        ),
    ];
    for (case, damage, code, needles) in cases {
        let mut daemon = TestDaemon::start(bin());
        // Some state, so that the file has pages to damage.
        let archive = daemon.archive(&service(&unique("db")), false);
        let name = unique("db");
        let run = daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "-y"]);
        assert_eq!(run.code, 0, "{run:?}");
        daemon.terminate();
        let db = daemon.root().join("berth.db");
        damage(&db);
        let damaged = std::fs::read(&db).unwrap();
        let run = daemon_exit(&daemon, &[]);
        assert_refused(&run, code, needles, case);
        assert_eq!(std::fs::read(&db).unwrap(), damaged, "{case}: the database is left as it was");
        assert!(inspect(&name).is_some(), "{case}: the app's container is kept");
    }
}

/// Issue 13 (8): an empty database beside containers of this instance:
/// the containers are kept (the state was lost, not the apps), and said so.
#[test]
fn an_empty_database_never_removes_the_apps_containers() {
    let mut daemon = TestDaemon::start(bin());
    let archive = daemon.archive(&service(&unique("empty")), false);
    let name = unique("empty");
    let run = daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    let before = inspect(&name).unwrap()["Id"].clone();
    daemon.terminate();
    for suffix in ["", "-wal", "-shm"] {
        let path = daemon.root().join(format!("berth.db{suffix}"));
        if suffix.is_empty() {
            std::fs::write(&path, b"").unwrap();
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
    daemon.launch(&[]);
    assert_eq!(inspect(&name).map(|c| c["Id"].clone()), Some(before), "the container is kept");
    assert!(daemon.log().contains("the engine holds containers of this berth instance"), "{}", daemon.log());
}

/// Issue 13 (5): the lock is on the root directory itself: deleting files
/// does not let a second daemon in, and the first keeps its work.
#[test]
fn a_second_daemon_on_the_same_root_is_refused() {
    let daemon = TestDaemon::start(bin());
    let _ = std::fs::remove_file(daemon.root().join("berth.lock"));
    let run = daemon_exit(&daemon, &[]);
    assert_refused(&run, EXIT_CONFIG, &["another berth daemon already uses"], "second daemon");
    assert_eq!(daemon.api("GET", "/v1/info", None).unwrap().status, 200, "the first one still serves");
}

/// Issue 13 (19): an explicit `--config` that does not exist is refused.
#[test]
fn a_missing_explicit_config_file_is_refused() {
    let daemon = TestDaemon::start(bin());
    let missing = daemon.dir.path().join("no-such-berth.toml");
    let run = daemon_exit(&daemon, &["--config", &missing.to_string_lossy()]);
    assert_refused(&run, EXIT_CONFIG, &["no-such-berth.toml"], "missing --config");
}

/// Issue 10 (degraded mode): what the daemon cannot survive exits at once with
/// its own code and a message naming the cause, leaving the root as it was:
/// a root on a read-only file system (16), certificates that cannot be used
/// (17), no engine installed (18).
#[test]
fn failures_the_daemon_cannot_survive_have_their_own_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let daemon_on = |root: &Path, envs: &[(&str, &str)], extra: &[&str]| {
        let mut command = Command::new(bin());
        command
            .arg("--socket")
            .arg(dir.path().join(format!("{}.sock", unique("exit"))))
            .arg("daemon")
            .arg("--root")
            .arg(root)
            .arg("--unit-dir")
            .arg(dir.path().join("units"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in envs {
            command.env(key, value);
        }
        finish(command.spawn().unwrap(), "berth daemon", Duration::from_secs(60))
    };

    // A read-only mount: the root exists and cannot be written.
    let read_only = dir.path().join("read-only");
    std::fs::create_dir(&read_only).unwrap();
    let mounted =
        Command::new("mount").args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"]).arg(&read_only).status().unwrap();
    assert!(mounted.success(), "the test mounts a read-only tmpfs (it runs as root)");
    let logs = dir.path().join("logs");
    let run = daemon_on(&read_only, &[], &["--log-dir", &logs.to_string_lossy()]);
    let _ = Command::new("umount").arg(&read_only).status();
    assert_refused(&run, 16, &["Read-only file system", "cannot be written"], "read-only root");

    // Custom certificates whose server certificate is not a certificate.
    let root = dir.path().join("bad-certs");
    let certs = root.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("cert_gen_type"), "custom\n").unwrap();
    std::fs::write(certs.join("server.crt"), "not a certificate\n").unwrap();
    std::fs::write(certs.join("server.key"), "not a key\n").unwrap();
    let run = daemon_on(&root, &[], &[]);
    assert_refused(&run, 17, &["certificates cannot be used", "server.crt"], "garbage custom certificate");
    assert_eq!(std::fs::read_to_string(certs.join("server.crt")).unwrap(), "not a certificate\n", "left as it was");
    assert!(!root.join("berth.db").exists(), "no database was made");

    // No engine socket and no dockerd on PATH.
    let empty_path = dir.path().join("empty-path");
    std::fs::create_dir(&empty_path).unwrap();
    let missing = format!("unix://{}", dir.path().join("no-engine.sock").display());
    let run = daemon_on(
        &dir.path().join("no-engine"),
        &[("PATH", &empty_path.to_string_lossy())],
        &["--docker-host", &missing],
    );
    assert_refused(&run, 18, &["no container engine is installed", "no-engine.sock"], "no engine");
}

// ----- secrets ------------------------------------------------------------------------

/// Issue 13 (1): state is private; environment values and URL passwords
/// are never shown (unless asked for) nor logged.
#[test]
fn secrets_stay_private() {
    let mut daemon = TestDaemon::start(bin());
    let archive = daemon.archive(&service(&unique("secret")), false);
    let server = FileServer::start();
    server.file("/app.tar", &archive.path);
    let url = server.url("/app.tar").replacen("http://", "http://berth-user:s3cr3t-pw@", 1);
    let name = unique("secret");
    let run = daemon.berth(&["install", &name, &url, "--args", "-e DB_PASSWORD=hunter2-secret -e PLAIN=1", "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    for secret in ["hunter2-secret", "s3cr3t-pw"] {
        for args in [vec!["list"], vec!["list", "-o", "json"], vec!["show", &name], vec!["show", &name, "-o", "json"]] {
            let run = daemon.berth(&args);
            assert_eq!(run.code, 0, "{run:?}");
            assert!(!run.stdout.contains(secret), "{args:?} shows {secret}: {run:?}");
        }
        let response = daemon.api("GET", "/v1/apps", None).unwrap();
        assert!(!response.text().contains(secret), "the API shows {secret}");
        assert!(!daemon.log().contains(secret), "the daemon logged {secret}");
    }
    let run = daemon.berth(&["show", &name, "--show-secrets"]);
    assert!(run.stdout.contains("hunter2-secret"), "asked for, it is shown: {run:?}");
    assert!(!run.stdout.contains("s3cr3t-pw"), "a URL's password is never shown: {run:?}");

    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&daemon.root()), 0o700);
    for file in ["berth.db", "berth.db-wal", "berth.db-shm"] {
        let path = daemon.root().join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }
}

// ----- the CLI's own output -----------------------------------------------------------

/// Issue 13 (17): a closed pipe on stdout or stderr ends nothing and
/// panics nothing: the operation finishes and the exit code says how.
#[test]
fn closed_pipes_are_quiet() {
    let mut daemon = TestDaemon::start(bin());
    let archive = daemon.archive(&service(&unique("pipe")), false);
    let name = unique("pipe");
    // stderr closed before the install says anything (`2>&1 | head -0`).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = Command::new(bin())
        .args(["install", &name, &archive.path.to_string_lossy(), "-y"])
        .env("BERTH_SOCKET", &daemon.socket)
        .stdin(Stdio::null())
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0), "the install finishes although nobody reads its output");
    assert_eq!(daemon.app(&name).unwrap()["state"], "running");
    for args in [vec!["list"], vec!["show", &name], vec!["list", "-o", "json"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = Command::new(bin())
            .args(&args)
            .env("BERTH_SOCKET", &daemon.socket)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?} prints nothing about the closed pipe: {stderr}");
    }
}

/// Runs the CLI with stdout and stderr on a pseudo-terminal; returns what it wrote.
fn on_terminal(daemon: &TestDaemon, args: &[&str]) -> String {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave = std::fs::OpenOptions::new().read(true).write(true).open(name.to_str().unwrap()).unwrap();
    let mut child = Command::new(bin())
        .args(args)
        .env("BERTH_SOCKET", &daemon.socket)
        .stdin(Stdio::null())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(master);
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        // EIO once the last writer (the child) is gone.
        let _ = master.read_to_end(&mut seen);
        seen
    });
    child.wait().unwrap();
    String::from_utf8_lossy(&reader.join().unwrap()).into_owned()
}

/// Issue 13 (18): escape sequences and raw newlines in what an app or a
/// user gave are shown escaped on a terminal, never interpreted.
#[test]
fn control_characters_are_escaped_on_a_terminal() {
    let mut daemon = TestDaemon::start(bin());
    let archive = daemon.archive(&service(&unique("ctl")), false);
    let name = unique("ctl");
    let args = "-e 'GREETING=\x1b[2Jcleared\nnext-line'";
    let run = daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "--args", args, "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    let shown = on_terminal(&daemon, &["show", &name, "--show-secrets"]);
    assert!(shown.contains("cleared"), "{shown:?}");
    assert!(!shown.contains('\x1b'), "no raw escape reaches the terminal: {shown:?}");
    assert!(shown.contains("\\u{1b}[2Jcleared\\nnext-line"), "{shown:?}");
}

/// Issue 13 (13): standard input beyond the documented limit is refused
/// with its own exit code, without the CLI buffering it all.
#[test]
fn too_much_standard_input_is_too_large() {
    let daemon = TestDaemon::start(bin());
    let mut child = Command::new(bin())
        .args(["sra", "exec", "--image", "berth-test/none:1", "--tmp-dir", "/tmp", "--log-dir", "/tmp"])
        .env("BERTH_SOCKET", &daemon.socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // 200 MB, as in the trial: the CLI stops reading after its limit.
    let writer = std::thread::spawn(move || {
        let block = vec![b'<'; 1 << 20];
        let mut written = 0usize;
        for _ in 0..200 {
            if stdin.write_all(&block).is_err() {
                break;
            }
            written += block.len();
        }
        written
    });
    let run = finish(child, "sra exec", Duration::from_secs(60));
    let written = writer.join().unwrap();
    assert_refused(&run, EXIT_TOO_LARGE, &["16 MiB"], "200 MB on stdin");
    assert!(written < 200 << 20, "the CLI stopped reading: {written} bytes were taken");
}

/// Issue 13 (19): a user without access to the socket is told so.
#[test]
fn a_user_without_access_to_the_socket_is_told_so() {
    use std::os::unix::process::CommandExt;
    let daemon = TestDaemon::start(bin());
    // The binary where `nobody` may run it.
    let public = tempfile::tempdir().unwrap();
    std::fs::set_permissions(public.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = public.path().join("berth");
    std::fs::copy(bin(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = Command::new(&copy)
        .arg("list")
        .env("BERTH_SOCKET", &daemon.socket)
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = Run::from(output);
    assert_refused(&run, EXIT_DAEMON_UNREACHABLE, &["no permission to use the berth daemon's socket"], "nobody");
}

/// Issue 13 (19): an https source redirected to plain http is refused
/// unless the user allows the downgrade.
#[test]
fn an_https_to_http_redirect_is_refused() {
    let mut daemon = TestDaemon::start(bin());
    let archive = daemon.archive(&service(&unique("downgrade")), false);
    let plain = FileServer::start();
    plain.file("/app.tar", &archive.path);
    let (secure, ca_pem) = FileServer::start_tls();
    secure.redirect("/app.tar", &plain.url("/app.tar"));
    let ca = daemon.dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let name = unique("downgrade");
    let run = daemon.berth(&["install", &name, &secure.url("/app.tar"), "--ca-file", &ca.to_string_lossy(), "-y"]);
    assert_refused(&run, EXIT_BAD_SOURCE, &["not https", "--allow-downgrade"], "https → http");
    assert_untouched(&daemon, &name, &[&archive.image_id], "https → http");
    // Allowed, it is followed.
    let run = daemon.berth(&[
        "install",
        &name,
        &secure.url("/app.tar"),
        "--ca-file",
        &ca.to_string_lossy(),
        "--allow-downgrade",
        "-y",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
}

/// Issue 13 (19): a named volume made by `-v name:/path` went on living
/// after uninstall. What the install made is berth's (labelled) and goes
/// with the app; a volume that existed is the user's and stays.
#[test]
fn named_volumes_berth_made_go_with_the_app_and_others_stay() {
    struct Volume(String);
    impl Drop for Volume {
        fn drop(&mut self) {
            docker("DELETE", &format!("/volumes/{}", self.0), None);
        }
    }
    let mut daemon = TestDaemon::start(bin());
    let archive = daemon.archive(&service(&unique("vol")), false);
    let (made, theirs) = (Volume(unique("berth-made")), Volume(unique("users-own")));
    let created = docker("POST", "/volumes/create", Some(&serde_json::json!({ "Name": theirs.0 })));
    assert_eq!(created.status, 201, "{}", created.text());
    let name = unique("vol");
    let args = format!("-v {}:/data -v {}:/theirs", made.0, theirs.0);
    let run = daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "--args", &args, "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    let labels = docker("GET", &format!("/volumes/{}", made.0), None).json()["Labels"].clone();
    assert_eq!(labels["berth.instance"], daemon.instance.as_str(), "{labels}");
    assert_eq!(labels["berth.app"], name.as_str(), "{labels}");
    let run = daemon.berth(&["uninstall", &name, "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(docker("GET", &format!("/volumes/{}", made.0), None).status, 404, "the volume berth made is gone");
    assert_eq!(docker("GET", &format!("/volumes/{}", theirs.0), None).status, 200, "the user's volume stays");
}
