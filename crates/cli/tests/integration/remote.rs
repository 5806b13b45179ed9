//! Remote access over mutual TLS: `--listen tcp://…` serves the whole API
//! to clients with a certificate of the daemon's CA; `berth certs client`
//! writes a bundle that `berth --host` uses for every verb (local archives
//! streamed); a client without a certificate gets 401 for every API call,
//! a revoked one from its next connection on, without a restart.

use crate::bin;
use berth_testkit::harness::{unique, TestDaemon, TEST_SETTINGS};
use berth_testkit::ImageBuilder;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

/// A TLS client that trusts the CA but has no certificate of its own: does
/// the server answer it at all?
/// One GET over TLS to the listener, verifying the daemon by `ca_pem`,
/// with the bundle's client certificate when `client` names its directory;
/// the whole answer (status line, headers, body).
fn tls_get(port: u16, ca_pem: &str, client: Option<&std::path::Path>, path: &str) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(bundle) => {
            let chain = CertificateDer::pem_file_iter(bundle.join("cert.pem")).unwrap().map(Result::unwrap).collect();
            let key = PrivateKeyDer::from_pem_file(bundle.join("key.pem")).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn answers_without_a_certificate(port: u16, ca_pem: &str) -> bool {
    let answer = tls_get(port, ca_pem, None, "/v1/info");
    // Without a certificate a client is not signed in: 401, and nothing else.
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    answer.contains("HTTP/1.1 200")
}

#[test]
fn a_remote_session_over_mutual_tls_and_revocation() {
    let port = crate::free_port();
    let listen = format!("tcp://127.0.0.1:{port}");
    let mut daemon = TestDaemon::start_with_args(bin(), TEST_SETTINGS, &["--listen", &listen]);
    // The certificates directory, made at start.
    let run = daemon.berth(&["certs", "show", "--output", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let view: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(view["kind"], "self-signed");
    assert!(view["server"]["sans"].as_array().unwrap().iter().any(|s| s == "IP:127.0.0.1"), "{view}");
    assert_eq!(view["listen"][0], listen);
    for file in ["cert_gen_type", "ca.crt", "ca.key", "ca.srl", "server.csr", "server.crt", "server.key", "extfile.cnf"]
    {
        assert!(daemon.root().join("certs").join(file).exists(), "{file}");
    }
    let text = daemon.berth(&["certs", "show"]);
    assert!(text.stdout.contains("SHA-256:") && text.stdout.contains("days left"), "{text:?}");

    // A bundle for a client.
    let bundle = daemon.dir.path().join("ops-bundle");
    let run = daemon.berth(&["certs", "client", "ops", "--out", &bundle.to_string_lossy()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&format!("BERTH_HOST={listen}")), "{run:?}");
    assert!(run.stdout.contains("BERTH_TLS_VERIFY=1"), "{run:?}");
    for file in ["ca.pem", "cert.pem", "key.pem"] {
        let mode = std::fs::metadata(bundle.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    let ca_pem = std::fs::read_to_string(bundle.join("ca.pem")).unwrap();
    assert!(!answers_without_a_certificate(port, &ca_pem), "a client without a certificate must be refused");
    // A browser without one gets the web UI's page (to sign in); with one, it is signed in by it.
    assert!(tls_get(port, &ca_pem, None, "/").starts_with("HTTP/1.1 200"));
    assert!(tls_get(port, &ca_pem, None, "/ui/session").starts_with("HTTP/1.1 401"));
    let session = tls_get(port, &ca_pem, Some(&bundle), "/ui/session");
    assert!(session.starts_with("HTTP/1.1 200") && session.contains("\"method\":\"certificate\""), "{session}");

    // Every verb works remotely; a local archive is streamed to the daemon.
    let name = unique("remote");
    let archive = daemon.archive(&ImageBuilder::new(&format!("berth-test/{name}:1")).service(), true);
    let v2 = daemon.archive(&ImageBuilder::new(&format!("berth-test/{name}:2")).service().layer_marker("two"), true);
    let bundle_path = bundle.to_string_lossy().into_owned();
    let remote = |args: &[&str]| {
        // No socket (the flag wins over the harness's BERTH_SOCKET): the session cannot be using it.
        let mut all =
            vec!["--socket", "/nonexistent/berth.sock", "--host", listen.as_str(), "--cert-path", bundle_path.as_str()];
        all.extend_from_slice(args);
        daemon.berth(&all)
    };
    let run = remote(&["install", &name, &archive.path.to_string_lossy(), "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = remote(&["list", "--output", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&name), "{run:?}");
    assert_eq!(remote(&["logs", &name]).code, 0);
    let run = remote(&["upgrade", &name, &v2.path.to_string_lossy(), "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = remote(&["uninstall", &name, "-y"]);
    assert_eq!(run.code, 0, "{run:?}");

    // Revoked: refused from the next connection on, without a restart.
    let run = daemon.berth(&["certs", "revoke", "ops"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = remote(&["list"]);
    assert_eq!(run.code, 7, "a revoked client is refused: {run:?}");
    assert!(run.stderr.contains("TLS handshake"), "{run:?}");
    let clients = daemon.berth(&["certs", "clients", "--output", "json"]);
    assert!(clients.stdout.contains("\"revoked\": true"), "{clients:?}");
    // A new bundle of the name works again.
    let again = daemon.dir.path().join("ops-again");
    assert_eq!(daemon.berth(&["certs", "client", "ops", "--out", &again.to_string_lossy()]).code, 0);
    let run =
        daemon.berth_env(&[("BERTH_HOST", std::path::Path::new(&listen)), ("BERTH_CERT_PATH", &again)], &["list"]);
    assert_eq!(run.code, 0, "BERTH_HOST and BERTH_CERT_PATH: {run:?}");
    // The bundle is refused elsewhere: a wrong --tls-verify, a missing bundle.
    let run = daemon.berth(&["--host", &listen, "--cert-path", "/nonexistent", "list"]);
    assert_eq!(run.code, 2, "{run:?}");
    let run = daemon.berth(&["--host", &listen, "--cert-path", &again.to_string_lossy(), "--tls-verify", "0", "list"]);
    assert_eq!(run.code, 2, "{run:?}");

    // Bad certificates are refused, naming what is wrong; nothing changes.
    let before = std::fs::read(daemon.root().join("certs/server.crt")).unwrap();
    let garbage = daemon.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let key = bundle.join("key.pem");
    let cert = again.join("cert.pem");
    let run = daemon.berth(&[
        "certs",
        "install",
        "--cert",
        &garbage.to_string_lossy(),
        "--key",
        &key.to_string_lossy(),
        "--ca",
        &again.join("ca.pem").to_string_lossy(),
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("not PEM"), "{run:?}");
    let run = daemon.berth(&[
        "certs",
        "install",
        "--cert",
        &cert.to_string_lossy(),
        "--key",
        &key.to_string_lossy(),
        "--ca",
        &again.join("ca.pem").to_string_lossy(),
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("does not match"), "{run:?}");
    assert_eq!(std::fs::read(daemon.root().join("certs/server.crt")).unwrap(), before);

    // A user's certificate and CA (here another berth's), installed: the
    // listener serves it at once, and clients of the new CA are let in while
    // those of the old one are not, without a restart.
    let other = TestDaemon::start(bin());
    let user_bundle = daemon.dir.path().join("user-ca-client");
    assert_eq!(other.berth(&["certs", "client", "ops", "--out", &user_bundle.to_string_lossy()]).code, 0);
    let user = other.root().join("certs");
    let run = daemon.berth(&[
        "certs",
        "install",
        "--cert",
        &user.join("server.crt").to_string_lossy(),
        "--key",
        &user.join("server.key").to_string_lossy(),
        "--ca",
        &user.join("ca.crt").to_string_lossy(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = daemon.berth(&["--host", &listen, "--cert-path", &user_bundle.to_string_lossy(), "list"]);
    assert_eq!(run.code, 0, "a client of the installed CA is let in at once: {run:?}");
    let run = daemon.berth(&["--host", &listen, "--cert-path", &again.to_string_lossy(), "list"]);
    assert_eq!(run.code, 7, "a client of the replaced CA is refused: {run:?}");
    let view = daemon.berth(&["certs", "show", "--output", "json"]);
    assert!(view.stdout.contains("\"kind\": \"custom\""), "{view:?}");
    daemon.terminate();
}

/// `berth version`, the version file, and the engine's log rotation on the
/// containers berth makes (no app can fill the disk with its output).
#[test]
fn version_file_and_container_log_rotation() {
    let mut daemon = TestDaemon::start(bin());
    let run = daemon.berth(&["version", "--output", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["schema"], crate::SCHEMA);
    assert!(!v["git"].as_str().unwrap().is_empty());
    assert_eq!(v["daemon"]["version"], v["version"]);
    let name = unique("ver");
    let archive = daemon.archive(&ImageBuilder::new(&format!("berth-test/{name}:1")).service(), true);
    assert_eq!(daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "-y"]).code, 0);
    let file = std::fs::read_to_string(daemon.root().join("version")).unwrap();
    assert!(file.starts_with("berth="), "{file}");
    assert!(file.contains(&format!("schema={}\n", crate::SCHEMA)), "{file}");
    let short = archive.image_id.trim_start_matches("sha256:")[..12].to_owned();
    assert!(file.contains(&format!("{name}=berth-test/{name}:1 {short}\n")), "{file}");
    let container = berth_testkit::harness::inspect(&name).unwrap();
    assert_eq!(container["HostConfig"]["LogConfig"]["Type"], "json-file");
    assert_eq!(container["HostConfig"]["LogConfig"]["Config"]["max-size"], "10m");
    assert_eq!(container["HostConfig"]["LogConfig"]["Config"]["max-file"], "3");
    assert_eq!(daemon.berth(&["uninstall", &name, "-y"]).code, 0);
    let file = std::fs::read_to_string(daemon.root().join("version")).unwrap();
    assert!(!file.contains(&name), "{file}");
    // The daemon's own log file, beside stderr; a normal run logs no error.
    let log = std::fs::read_to_string(daemon.root().join("logs/berth.log")).unwrap();
    assert!(log.contains("berth daemon starting"), "{log}");
    assert!(!log.contains(" ERROR "), "a normal run logged an error:\n{log}");
    assert!(!daemon.log().contains(" ERROR "), "a normal run logged an error:\n{}", daemon.log());
}

/// A chatty app with its own `--log-opt`: the engine rotates its log, so what
/// it keeps on disk stays within max-size × max-file however much it writes.
#[test]
fn a_chatty_app_cannot_fill_the_disk_with_its_log() {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("chatty");
    // Numbered lines of 100 bytes, as fast as busybox's shell writes them.
    let chatty = ImageBuilder::new(&format!("berth-test/{name}:1")).busybox().cmd(&[
        "/bin/sh",
        "-c",
        "i=0; while :; do i=$((i+1)); printf 'line %08d %085d\\n' $i 0; done",
    ]);
    let archive = daemon.archive(&chatty, true);
    let max_size = 64 * 1024;
    let run = daemon.berth(&[
        "install",
        &name,
        &archive.path.to_string_lossy(),
        "--args",
        "--log-opt max-size=64k --log-opt max-file=2",
        "-y",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let container = berth_testkit::harness::inspect(&name).unwrap();
    assert_eq!(container["HostConfig"]["LogConfig"]["Config"]["max-size"], max_size.to_string());
    assert_eq!(container["HostConfig"]["LogConfig"]["Config"]["max-file"], "2");
    let log_path = std::path::PathBuf::from(container["LogPath"].as_str().unwrap());
    let id = container["Id"].as_str().unwrap().to_owned();
    let on_disk = || -> u64 {
        std::fs::read_dir(log_path.parent().unwrap())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{id}-json.log")))
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum()
    };
    // The last line number in the current file: how much the app has written.
    let written = || -> u64 {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let last = text.lines().rev().find_map(|l| l.split("line ").nth(1)?.get(..8)?.parse::<u64>().ok());
        last.unwrap_or(0) * 100
    };
    let wrote = berth_testkit::harness::poll(std::time::Duration::from_secs(60), || {
        let w = written();
        (w > 40 * max_size).then_some(w)
    })
    .expect("the chatty app writes");
    let kept = on_disk();
    // json-file wraps each 100-byte line in about 80 bytes of JSON and rotates
    // once a file passes max-size: two files, each at most max-size and a line.
    assert!(kept <= 2 * (max_size + 400), "{kept} bytes kept on disk after {wrote} written");
    assert!(kept > 0, "the log is kept");
    let logs = daemon.berth(&["logs", &name, "--tail", "3"]);
    assert!(logs.stdout.contains("line "), "{logs:?}");
    assert_eq!(daemon.berth(&["uninstall", &name, "-y"]).code, 0);
}

/// `berth doctor`: every check on a healthy daemon, then a missing unit file
/// found and told, with the exit code of its class.
#[test]
fn doctor_checks_the_daemon() {
    let mut daemon = TestDaemon::start(bin());
    let run = daemon.berth(&["doctor", "--output", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let names: Vec<&str> = report["checks"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    for name in ["engine", "database", "disk", "certificates", "units", "orphans", "journal"] {
        assert!(names.contains(&name), "{name} in {report}");
    }
    assert!(report["checks"].as_array().unwrap().iter().all(|c| c["status"] != "problem"), "{report}");
    let name = unique("doc");
    let archive = daemon.archive(&ImageBuilder::new(&format!("berth-test/{name}:1")).service(), true);
    assert_eq!(daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "-y"]).code, 0);
    std::fs::remove_file(daemon.unit_dir().join(format!("berth-app-{name}.service"))).unwrap();
    let run = daemon.berth(&["doctor"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("problem") && run.stdout.contains(&format!("berth-app-{name}.service")), "{run:?}");
}

/// The appliance layout: data, logs and the database each where the flags say.
#[test]
fn data_log_and_database_directories() {
    let dir = tempfile::tempdir().unwrap();
    let (data, logs, db) = (dir.path().join("data"), dir.path().join("log"), dir.path().join("db"));
    let mut daemon = TestDaemon::start_with_args(
        bin(),
        TEST_SETTINGS,
        &[
            "--data-dir",
            &data.to_string_lossy(),
            "--log-dir",
            &logs.to_string_lossy(),
            "--db-dir",
            &db.to_string_lossy(),
        ],
    );
    let name = unique("layout");
    let archive = daemon.archive(&ImageBuilder::new(&format!("berth-test/{name}:1")).service(), true);
    assert_eq!(daemon.berth(&["install", &name, &archive.path.to_string_lossy(), "-y"]).code, 0);
    assert!(db.join("berth.db").exists(), "the database is in --db-dir");
    assert!(!daemon.root().join("berth.db").exists(), "and not in the root");
    assert!(data.join(&name).is_dir(), "the app's private directory is in --data-dir");
    assert!(logs.join("berth.log").exists(), "the log is in --log-dir");
    assert_eq!(daemon.berth(&["uninstall", &name, "-y"]).code, 0);
}

/// A server certificate that expires within 60 days is warned of at start,
/// as the event `daemon.cert_expiring` (here a user's certificate, made by
/// openssl, valid for 30 days).
#[test]
fn a_certificate_near_its_expiry_is_an_event() {
    let mut daemon = TestDaemon::start(bin());
    let dir = daemon.dir.path().join("expiring");
    std::fs::create_dir_all(&dir).unwrap();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(&dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"]);
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-subj",
        "/CN=expiry-test-ca",
        "-days",
        "365",
        "-out",
        "ca.crt",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key"]);
    openssl(&["req", "-new", "-key", "server.key", "-subj", "/CN=expiring", "-out", "server.csr"]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "30",
        "-out",
        "server.crt",
        "-extfile",
        "ext.cnf",
    ]);
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let run = daemon.berth(&[
        "certs",
        "install",
        "--cert",
        &path("server.crt"),
        "--key",
        &path("server.key"),
        "--ca",
        &path("ca.crt"),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    daemon.terminate();
    daemon.launch(&[]);
    let run = daemon.berth(&["events", "--kind", "daemon.cert_expiring", "--output", "json"]);
    let event: serde_json::Value = serde_json::from_str(run.stdout.lines().last().expect("an event")).unwrap();
    let days = event["data"]["days_left"].as_i64().unwrap();
    assert!((28..=30).contains(&days), "{event}");
    assert!(event["name"].as_str().unwrap().contains("expiring"), "the subject: {event}");
}
