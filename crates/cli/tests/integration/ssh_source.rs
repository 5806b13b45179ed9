//! Installing from scp and sftp servers with TPCM's syntax, against a real
//! sshd on loopback: password and key login, host keys checked against
//! known_hosts or accepted by fingerprint, and every failure leaving nothing.

use crate::bin;

use berth_testkit::harness::{inspect, unique, Run, TestDaemon};
use berth_testkit::sshd::{TestSshd, PASSWORD, USER};
use berth_testkit::ImageBuilder;
use std::path::{Path, PathBuf};


struct Setup {
    daemon: TestDaemon,
    sshd: TestSshd,
    /// A HOME whose .ssh/known_hosts knows the server.
    home: PathBuf,
    remote: String,
}

fn setup() -> Setup {
    let mut daemon = TestDaemon::start(bin());
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

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let run = install(&format!("127.0.0.1:{port}"), PASSWORD, &s.remote);
    s.assert_nothing(&name, &run);

    let scp_missing = s.tpcm(
        &s.home,
        &[
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
            "/nonexistent/x.tar",
            "-y",
        ],
    );
    s.assert_nothing(&name, &scp_missing);
    assert!(scp_missing.stderr.contains("No such file"), "{scp_missing:?}");

    let bad = s.daemon.berth(&["install", &name, "--protocol", "ftp", "--server", &server, &s.remote, "-y"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    let relative = s.tpcm(
        &s.home,
        &[
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
            "image.tar",
            "-y",
        ],
    );
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

    let socket = s.daemon.dir.path().join("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !socket.exists() {
        assert!(std::time::Instant::now() < deadline, "ssh-agent did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let added =
        std::process::Command::new("ssh-add").arg(s.sshd.client_key()).env("SSH_AUTH_SOCK", &socket).output().unwrap();
    assert!(added.status.success(), "{added:?}");
    let run = s.daemon.berth_env(&[("HOME", &s.home), ("SSH_AUTH_SOCK", &socket)], &args);
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(inspect(&name).unwrap()["State"]["Running"], true);
}
