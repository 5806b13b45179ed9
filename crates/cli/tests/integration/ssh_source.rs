//! Installing from scp and sftp servers with TPCM's syntax, against a real
//! sshd on loopback: password and key login, host keys checked against
//! known_hosts or accepted by fingerprint, and every failure leaving nothing.
//!
//! The daemon never opens a key, a known_hosts file or an agent socket for a
//! client (issue 8, defect 2): the CLI reads them with the user's own
//! permissions and sends their content, or — for the user's agent — makes
//! the copy itself and streams it. The test sshd tells which process
//! connected and which key (or password) it accepted.

use crate::bin;

use berth_testkit::harness::{finish, inspect, unique, Lines, RefusedPort, Run, TestDaemon, TEST_SETTINGS};
use berth_testkit::sshd::{fingerprint, keygen, TestSshd, PASSWORD, USER};
use berth_testkit::ImageBuilder;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Setup {
    daemon: TestDaemon,
    sshd: TestSshd,
    /// A HOME whose .ssh/known_hosts knows the server.
    home: PathBuf,
    remote: String,
}

fn setup() -> Setup {
    setup_with(TestDaemon::start(bin()))
}

fn setup_with(mut daemon: TestDaemon) -> Setup {
    let sshd = TestSshd::start();
    let name = unique("sshimg");
    let archive = daemon.archive(
        &ImageBuilder::new(&format!("berth-test/{name}:1"))
            .service()
            .label("berth.test.sweep", "1")
            .layer_marker(&name),
        true,
    );
    let remote = sshd.publish(&archive.path, "tpc image.tar.gz");
    let home = daemon.dir.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/known_hosts"), format!("{}\n", sshd.known_hosts_line())).unwrap();
    Setup { daemon, sshd, home, remote }
}

impl Setup {
    fn tpcm(&self, home: &Path, args: &[&str]) -> Run {
        let tpcm = self.daemon.dir.path().join("tpcm");
        if !tpcm.exists() {
            std::os::unix::fs::symlink(bin(), &tpcm).unwrap();
        }
        self.daemon.berth_env(&[("HOME", home)], args)
    }

    fn assert_nothing(&self, name: &str, run: &Run) {
        assert_eq!(run.code, 5, "{run:?}");
        assert!(self.daemon.app(name).is_none() && self.daemon.containers().is_empty(), "{run:?}");
        assert!(!run.stderr.contains(PASSWORD), "the password is never shown: {run:?}");
    }
}

fn to_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn sftp_with_a_password_and_scp_with_a_key() {
    let s = setup();
    let server = s.sshd.server();
    let name = unique("sftp");
    let run = s.tpcm(
        &s.home,
        &[
            "install",
            &name,
            "--protocol",
            "sftp",
            "--server",
            &server,
            "--username",
            USER,
            "--password",
            PASSWORD,
            &s.remote,
            "-y",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(inspect(&name).unwrap()["State"]["Running"], true);
    let source = s.daemon.app(&name).unwrap()["source"].as_str().unwrap().to_owned();
    assert_eq!(source, format!("sftp://{USER}@{server}{}", s.remote));
    // The daemon made the copy, with the password the CLI sent.
    assert_eq!(s.sshd.accepted(), ["password"], "{}", s.sshd.log());
    assert_eq!(s.sshd.clients(), [s.daemon.pid()]);

    let other = unique("scp");
    let key = s.sshd.client_key();
    let run = s.tpcm(
        &s.home,
        &[
            "install",
            &other,
            "--protocol",
            "scp",
            "--server",
            &server,
            "--username",
            USER,
            "--identity",
            key.to_str().unwrap(),
            &s.remote,
            "-y",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(inspect(&other).unwrap()["State"]["Running"], true);
    // The key the CLI read and sent is the one sshd accepted.
    assert_eq!(s.sshd.accepted().last(), Some(&fingerprint(&key)), "{}", s.sshd.log());
    assert_eq!(s.sshd.clients().last(), Some(&s.daemon.pid()));
}

#[test]
fn host_keys_are_verified() {
    let s = setup();
    let server = s.sshd.server();
    let name = unique("hostkey");
    let stranger = s.daemon.dir.path().join("stranger");
    std::fs::create_dir_all(stranger.join(".ssh")).unwrap();
    let args = |extra: &[&str]| {
        let mut all = vec![
            "install",
            name.as_str(),
            "--protocol",
            "scp",
            "--server",
            server.as_str(),
            "--username",
            USER,
            "--password",
            PASSWORD,
        ];
        all.extend_from_slice(extra);
        all.extend_from_slice(&[s.remote.as_str(), "-y"]);
        all.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };

    let unknown = args(&[]);
    let run = s.tpcm(&stranger, &to_refs(&unknown));
    s.assert_nothing(&name, &run);
    let fingerprint = s.sshd.fingerprint();
    assert!(run.stderr.contains(&fingerprint) && run.stderr.contains("--accept-host-key"), "{run:?}");

    let accepted = args(&["--accept-host-key", &fingerprint]);
    let run = s.tpcm(&stranger, &to_refs(&accepted));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(s.daemon.berth(&["uninstall", &name, "-y"]).code, 0);

    // A recorded key that differs is refused, even with --accept-host-key of the new one.
    let other = s.daemon.dir.path().join("other-key");
    std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", ""])
        .arg("-f")
        .arg(&other)
        .status()
        .unwrap();
    let wrong = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    std::fs::write(
        stranger.join(".ssh/known_hosts"),
        format!("[127.0.0.1]:{} {}", server.rsplit(':').next().unwrap(), wrong),
    )
    .unwrap();
    let run = s.tpcm(&stranger, &to_refs(&accepted));
    s.assert_nothing(&name, &run);
    assert!(run.stderr.contains("differs"), "{run:?}");
}

#[test]
fn ssh_failures_change_nothing() {
    let s = setup();
    let server = s.sshd.server();
    let name = unique("sshfail");
    let install = |server: &str, password: &str, path: &str| {
        s.tpcm(
            &s.home,
            &[
                "install",
                &name,
                "--protocol",
                "sftp",
                "--server",
                server,
                "--username",
                USER,
                "--password",
                password,
                path,
                "-y",
            ],
        )
    };
    let run = install(&server, "wrong-password", &s.remote);
    s.assert_nothing(&name, &run);
    assert!(run.stderr.contains("authentication") && !run.stderr.contains("wrong-password"), "{run:?}");

    let run = install(&server, PASSWORD, "/nonexistent/image.tar");
    s.assert_nothing(&name, &run);

    let nobody = RefusedPort::new();
    let run = install(&format!("127.0.0.1:{}", nobody.port()), PASSWORD, &s.remote);
    s.assert_nothing(&name, &run);

    let tpcm_scp = |path: &str| {
        let args = [
            "install",
            &name,
            "--protocol",
            "scp",
            "--server",
            &server,
            "--username",
            USER,
            "--password",
            PASSWORD,
            path,
            "-y",
        ];
        s.tpcm(&s.home, &args)
    };
    let scp_missing = tpcm_scp("/nonexistent/x.tar");
    s.assert_nothing(&name, &scp_missing);
    assert!(scp_missing.stderr.contains("No such file"), "{scp_missing:?}");

    let bad = s.daemon.berth(&["install", &name, "--protocol", "ftp", "--server", &server, &s.remote, "-y"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    let relative = tpcm_scp("image.tar");
    assert_eq!(relative.code, 2, "{relative:?}");
}

#[test]
fn the_invoking_users_ssh_agent_is_used() {
    let s = setup();
    let server = s.sshd.server();
    let name = unique("agent");
    let args = [
        "install",
        name.as_str(),
        "--protocol",
        "scp",
        "--server",
        server.as_str(),
        "--username",
        USER,
        s.remote.as_str(),
        "-y",
    ];

    // No password, no identity, no terminal, no keys, no agent: nothing to log in with.
    let run = s.daemon.berth_env(&[("HOME", &s.home)], &args);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("no way to authenticate"), "{run:?}");

    let agent = Agent::start(&s.daemon.dir.path().join("agent.sock"), &s.sshd.client_key());
    let cli = s.daemon.berth_spawn(&[("HOME", &s.home), ("SSH_AUTH_SOCK", &agent.socket)], &args);
    let cli_pid = cli.id();
    let run = finish(cli, "an install through the agent", Duration::from_secs(120));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(inspect(&name).unwrap()["State"]["Running"], true);
    // The CLI made the copy through the agent and streamed it: the daemon
    // never saw the agent, and sshd's one client was the CLI.
    assert_eq!(s.sshd.clients(), [Some(cli_pid)], "the connection came from the CLI, not the daemon");
    assert_eq!(s.sshd.accepted(), [fingerprint(&s.sshd.client_key())], "{}", s.sshd.log());
    let app = s.daemon.app(&name).unwrap();
    assert!(app["source"].as_str().unwrap().contains(&s.remote), "{app}");
}

/// An ssh-agent holding one key, for as long as this lives.
struct Agent {
    child: std::process::Child,
    socket: PathBuf,
}

impl Agent {
    fn start(socket: &Path, key: &Path) -> Self {
        let mut child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("ssh-agent (openssh-client)");
        // It prints where it listens once it does: the marker that it is ready.
        Lines::new(child.stdout.take().unwrap()).wait_for("SSH_AUTH_SOCK=", Duration::from_secs(10));
        let added = Command::new("ssh-add").arg(key).env("SSH_AUTH_SOCK", socket).output().unwrap();
        assert!(added.status.success(), "{added:?}");
        Agent { child, socket: socket.to_owned() }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh key pair in `dir` (`<name>`, `<name>.pub`) that the server accepts.
fn authorized_key(sshd: &TestSshd, dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join(name);
    keygen(&key);
    sshd.authorize(&std::fs::read_to_string(key.with_extension("pub")).unwrap());
    key
}

/// Defect 2, at the API: the request shapes that named files on the
/// client's machine — a source path, `identity`, `user_ssh_dir`,
/// `agent_socket` — are refused as JSON 400s naming the field, and nothing
/// is read: each names a key (or an agent holding one) that the server
/// accepts, and no connection is ever made. Before issue 8 the daemon (root)
/// opened each of them and installed the app.
#[test]
fn request_shapes_that_name_paths_on_the_client_are_refused_and_nothing_is_read() {
    let s = setup();
    let server = s.sshd.server();
    let secrets = tempfile::Builder::new().prefix("berth-root-only-").tempdir().unwrap();
    std::fs::set_permissions(secrets.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let key = authorized_key(&s.sshd, secrets.path(), "id_ed25519");
    std::fs::write(secrets.path().join("known_hosts"), format!("{}\n", s.sshd.known_hosts_line())).unwrap();
    let agent = Agent::start(&secrets.path().join("agent.sock"), &key);
    let (key, dir, agent_socket) =
        (key.to_string_lossy(), secrets.path().to_string_lossy(), agent.socket.to_string_lossy());

    let refuse = |body: serde_json::Value, field: &str| {
        let response = s.daemon.api("POST", "/v1/apps", Some(&body)).unwrap();
        assert_eq!(response.status, 400, "{body}: {}", response.text());
        let error = response.json();
        assert_eq!(error["code"], "invalid_input", "{error}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "the message names {field:?}: {message}");
    };
    // The flat shape of before, each with one of its path fields.
    for (field, value) in [("identity", &key), ("user_ssh_dir", &dir), ("agent_socket", &agent_socket)] {
        let mut body = json!({
            "name": unique("oldshape"), "source": s.remote, "protocol": "scp", "server": server, "username": USER,
        });
        body[field] = json!(value);
        // Whichever unknown field the parser meets first is named.
        refuse(body, "unknown field");
    }
    // Today's ssh source with a path field added.
    for (field, value) in [("identity", &key), ("user_ssh_dir", &dir), ("agent_socket", &agent_socket)] {
        let mut source =
            json!({ "kind": "ssh", "protocol": "scp", "server": server, "username": USER, "path": s.remote });
        source[field] = json!(value);
        refuse(json!({ "name": unique("newshape"), "source": source }), field);
    }
    // A local path as the source, in either shape.
    refuse(json!({ "name": unique("path"), "source": key }), "source");
    refuse(json!({ "name": unique("path"), "source": { "kind": "upload", "origin": key } }), "archive");
    refuse(json!({ "name": unique("path"), "source": { "kind": "upload", "path": key } }), "path");

    assert!(s.sshd.clients().is_empty(), "nothing connected to the server: {}", s.sshd.log());
    assert!(s.daemon.list().is_empty() && s.daemon.containers().is_empty());
}

/// Runs the CLI as a client on another machine would: in a mount namespace
/// of its own, where `home` shows the files of `files`. In the daemon's
/// namespace `home` is an empty directory, so a path under it that reached
/// the daemon would name nothing: what works, works by content.
fn remote_cli(daemon: &TestDaemon, files: &Path, home: &Path, args: &[&str]) -> Run {
    Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            "mount --bind \"$1\" \"$2\" && shift 2 && exec \"$@\"",
            "sh",
        ])
        .arg(files)
        .arg(home)
        .arg(bin())
        .args(args)
        .env("HOME", home)
        .env("BERTH_SOCKET", &daemon.socket)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .output()
        .expect("unshare (util-linux)")
        .into()
}

/// Defect 2, through the CLI: keys and known_hosts reach the daemon as
/// content. The daemon runs with a HOME of its own (root's, on an appliance)
/// whose `~/.ssh` holds a key the server accepts; the CLI runs where the
/// daemon cannot see its files. `--identity` and the default keys work, and
/// they are what sshd accepted; a user without keys is refused, and the
/// daemon's own key is never tried. Before issue 8 the CLI sent the paths,
/// which name nothing on the daemon's side.
#[test]
fn keys_and_known_hosts_reach_the_daemon_as_content() {
    let root_home = tempfile::Builder::new().prefix("berth-daemon-home-").tempdir().unwrap();
    let root_home_path = root_home.path().to_string_lossy().into_owned();
    let daemon = TestDaemon::start_with(bin(), TEST_SETTINGS, &[("HOME", &root_home_path)], None);
    let s = setup_with(daemon);
    let server = s.sshd.server();
    let roots_key = authorized_key(&s.sshd, &root_home.path().join(".ssh"), "id_ed25519");
    std::fs::write(root_home.path().join(".ssh/known_hosts"), format!("{}\n", s.sshd.known_hosts_line())).unwrap();

    let files = tempfile::Builder::new().prefix("berth-client-files-").tempdir().unwrap();
    let users_key = authorized_key(&s.sshd, &files.path().join(".ssh"), "id_ed25519");
    let vendor_key = authorized_key(&s.sshd, &files.path().join("keys"), "vendor");
    std::fs::write(files.path().join(".ssh/known_hosts"), format!("{}\n", s.sshd.known_hosts_line())).unwrap();
    let home = s.daemon.dir.path().join("client-home");
    std::fs::create_dir(&home).unwrap();
    let identity = home.join("keys/vendor");
    assert!(!identity.exists(), "the daemon's side does not see the client's files");

    let install = |name: &str, extra: &[&str], files: &Path| {
        let mut args = vec!["install", name, "--protocol", "sftp", "--server", &server, "--username", USER];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[s.remote.as_str(), "-y"]);
        remote_cli(&s.daemon, files, &home, &args)
    };
    let daemon_pid = s.daemon.pid();

    let with_identity = unique("ident");
    let run = install(&with_identity, &["--identity", identity.to_str().unwrap()], files.path());
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(inspect(&with_identity).unwrap()["State"]["Running"], true);
    assert_eq!(s.sshd.accepted(), [fingerprint(&vendor_key)], "{}", s.sshd.log());

    let with_default_key = unique("defkey");
    let run = install(&with_default_key, &[], files.path());
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(s.sshd.accepted().last(), Some(&fingerprint(&users_key)), "{}", s.sshd.log());
    assert_eq!(s.sshd.clients(), [daemon_pid, daemon_pid], "the daemon copied, with what the CLI sent");

    // A user with known_hosts but no key: the daemon does not fall back on its own.
    let keyless = tempfile::Builder::new().prefix("berth-client-files-").tempdir().unwrap();
    std::fs::create_dir(keyless.path().join(".ssh")).unwrap();
    std::fs::write(keyless.path().join(".ssh/known_hosts"), format!("{}\n", s.sshd.known_hosts_line())).unwrap();
    let refused = unique("nokey");
    let run = install(&refused, &[], keyless.path());
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("no way to authenticate"), "{run:?}");
    assert_eq!(s.sshd.clients().len(), 2, "no connection for the user without keys");
    assert!(!s.sshd.accepted().contains(&fingerprint(&roots_key)), "the daemon's own key is never used");
    assert!(s.daemon.app(&refused).is_none());
}

/// Where the CLI runs as an unprivileged user in the socket's group.
struct Unprivileged {
    uid: u32,
    gid: u32,
    /// The berth binary, linked where the user can run it.
    bin: PathBuf,
    _dir: tempfile::TempDir,
}

impl Unprivileged {
    /// The account scripts/setup.sh makes for the ssh tests: it is not root.
    fn new(daemon: &TestDaemon) -> Self {
        use std::os::unix::fs::MetadataExt;
        let home = Path::new("/home").join(USER);
        let (uid, gid) = std::fs::metadata(&home)
            .map(|m| (m.uid(), m.gid()))
            .unwrap_or_else(|_| panic!("{} is missing: scripts/setup.sh makes the {USER} account", home.display()));
        assert_ne!(uid, 0);
        let dir = tempfile::Builder::new().prefix("berth-user-bin-").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let linked = dir.path().join("berth");
        if std::fs::hard_link(bin(), &linked).is_err() {
            std::fs::copy(bin(), &linked).unwrap();
        }
        // The socket's group is the one allowed to talk to the daemon (mode 0660).
        std::fs::set_permissions(daemon.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        std::os::unix::fs::chown(&daemon.socket, None, Some(gid)).unwrap();
        Unprivileged { uid, gid, bin: linked, _dir: dir }
    }

    /// A home of the user's own, with the server in its known_hosts.
    fn home(&self, sshd: &TestSshd) -> tempfile::TempDir {
        let home = tempfile::Builder::new().prefix("berth-user-home-").tempdir().unwrap();
        std::fs::create_dir(home.path().join(".ssh")).unwrap();
        std::fs::write(home.path().join(".ssh/known_hosts"), format!("{}\n", sshd.known_hosts_line())).unwrap();
        for entry in [home.path().to_owned(), home.path().join(".ssh"), home.path().join(".ssh/known_hosts")] {
            std::os::unix::fs::chown(&entry, Some(self.uid), Some(self.gid)).unwrap();
        }
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        home
    }

    fn berth(&self, daemon: &TestDaemon, home: &Path, args: &[&str]) -> Run {
        use std::os::unix::process::CommandExt;
        Command::new(&self.bin)
            .args(args)
            .uid(self.uid)
            .gid(self.gid)
            .env("HOME", home)
            .env("BERTH_SOCKET", &daemon.socket)
            .env_remove("SSH_AUTH_SOCK")
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .expect("run berth as the unprivileged user")
            .into()
    }
}

/// Defect 2, the attack: a member of the socket's group names a key only
/// root can read. The CLI reads it with the user's permissions and fails
/// (exit 2); the server never hears from anyone. The user's own key, which
/// the user can read, is what logs in. Before issue 8 the daemon (root)
/// opened the named key itself and the install succeeded with it.
#[test]
fn a_key_the_user_cannot_read_is_never_used() {
    let s = setup();
    let server = s.sshd.server();
    let user = Unprivileged::new(&s.daemon);
    let home = user.home(&s.sshd);
    let secrets = tempfile::Builder::new().prefix("berth-root-only-").tempdir().unwrap();
    std::fs::set_permissions(secrets.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let roots_key = authorized_key(&s.sshd, secrets.path(), "id_ed25519");

    let name = unique("stolen");
    let args = |extra: &[&str]| {
        let mut args = vec!["install", name.as_str(), "--protocol", "scp", "--server", &server, "--username", USER];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[s.remote.as_str(), "-y"]);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = user.berth(&s.daemon, home.path(), &to_refs(&args(&["--identity", roots_key.to_str().unwrap()])));
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--identity") && run.stderr.contains("ermission denied"), "{run:?}");
    assert!(s.sshd.clients().is_empty(), "nothing connected: {}", s.sshd.log());
    assert!(s.daemon.app(&name).is_none() && s.daemon.containers().is_empty());

    // The user's own default key: read by the CLI as the user, sent, used.
    let users_key = home.path().join(".ssh/id_ed25519");
    keygen(&users_key);
    std::os::unix::fs::chown(&users_key, Some(user.uid), Some(user.gid)).unwrap();
    s.sshd.authorize(&std::fs::read_to_string(users_key.with_extension("pub")).unwrap());
    let run = user.berth(&s.daemon, home.path(), &to_refs(&args(&[])));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(inspect(&name).unwrap()["State"]["Running"], true);
    assert_eq!(s.sshd.accepted(), [fingerprint(&users_key)], "{}", s.sshd.log());
}
