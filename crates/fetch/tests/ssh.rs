//! scp and sftp against a real sshd per test (the testkit's, on loopback,
//! logging in as the `berth-ssh-test` account): each way to log in, host keys
//! from known_hosts content in the forms OpenSSH writes, and each refusal.

use berth_core::source::SshProtocol;
use berth_core::HostPort;
use berth_fetch::ssh::{self, Credential, KnownHosts, RemoteFile, SshError, SshOptions, SshTarget, Trust};
use berth_testkit::sshd::{keygen, TestSshd, PASSWORD, USER};
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Setup {
    sshd: TestSshd,
    dir: tempfile::TempDir,
    remote: String,
    bytes: Vec<u8>,
}

/// A server publishing a 3 MiB file (more than one ssh window) with a space in its name.
fn setup() -> Setup {
    setup_on(TestSshd::start())
}

fn setup_on(sshd: TestSshd) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let file = dir.path().join("image.tar");
    std::fs::write(&file, &bytes).unwrap();
    let remote = sshd.publish(&file, "tpc image.tar");
    Setup { sshd, dir, remote, bytes }
}

impl Setup {
    fn target(&self, protocol: SshProtocol) -> SshTarget {
        SshTarget {
            protocol,
            server: HostPort::parse(&self.sshd.server()).unwrap(),
            username: USER.into(),
            path: self.remote.clone(),
        }
    }

    fn trust(&self) -> Trust {
        known(&format!("{}\n", self.sshd.known_hosts_line()))
    }

    fn key(&self) -> Credential {
        let pem = std::fs::read_to_string(self.sshd.client_key()).unwrap();
        Credential::PrivateKey { origin: "client_key".into(), pem }
    }

    async fn open(
        &self,
        protocol: SshProtocol,
        credentials: &[Credential],
        trust: &Trust,
    ) -> Result<RemoteFile, SshError> {
        ssh::open(&self.target(protocol), credentials, trust, &SshOptions::default()).await
    }

    /// Opens and reads the whole file, checking it against what was published.
    async fn copy(&self, protocol: SshProtocol, credentials: &[Credential], trust: &Trust) {
        let file = self.open(protocol, credentials, trust).await.unwrap_or_else(|e| {
            panic!("{protocol}: {e}\nsshd log: {}", self.sshd.log());
        });
        assert_eq!(file.origin, self.target(protocol).origin());
        assert_eq!(file.size, Some(self.bytes.len() as u64));
        let mut stream = file.into_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.unwrap_or_else(|e| panic!("{protocol}: {e}")));
        }
        assert!(bytes == self.bytes, "{protocol}: the file arrives as published ({} bytes)", bytes.len());
    }
}

fn known(content: &str) -> Trust {
    Trust {
        known_hosts: vec![KnownHosts { origin: "known_hosts".into(), content: content.into() }],
        accept_fingerprint: None,
    }
}

fn password() -> Credential {
    Credential::Password(PASSWORD.into())
}

#[tokio::test]
async fn sftp_and_scp_with_a_password_and_with_a_key_from_its_content() {
    let s = setup();
    for protocol in [SshProtocol::Sftp, SshProtocol::Scp] {
        s.copy(protocol, &[password()], &s.trust()).await;
        s.copy(protocol, &[s.key()], &s.trust()).await;
    }
}

/// OpenSSH refuses RSA signatures over SHA-1, so an RSA key only logs in when
/// rsa-sha2-256/512 is negotiated from the server's `server-sig-algs`.
#[tokio::test]
async fn an_rsa_key_signs_with_sha2_from_its_content_and_from_an_agent() {
    let s = setup();
    let rsa = s.dir.path().join("rsa_key");
    let made = Command::new("ssh-keygen").args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"]).arg(&rsa).status();
    assert!(made.unwrap().success());
    s.sshd.authorize(&std::fs::read_to_string(rsa.with_extension("pub")).unwrap());
    let pem = std::fs::read_to_string(&rsa).unwrap();
    s.copy(SshProtocol::Scp, &[Credential::PrivateKey { origin: "rsa_key".into(), pem }], &s.trust()).await;

    let Some(agent) = Agent::start(s.dir.path()) else { return };
    agent.add(&rsa);
    s.copy(SshProtocol::Sftp, &[Credential::Agent(agent.socket.clone())], &s.trust()).await;
}

#[tokio::test]
async fn credentials_are_tried_in_order_and_a_failure_names_them_but_not_the_password() {
    let s = setup();
    let wrong = Credential::Password("wrong-password".into());
    s.copy(SshProtocol::Sftp, &[wrong.clone(), s.key()], &s.trust()).await;

    let error = s.open(SshProtocol::Sftp, &[wrong], &s.trust()).await.unwrap_err();
    assert!(matches!(error, SshError::AuthenticationFailed { .. }), "{error:?}");
    let message = format!("{error} {error:?}");
    assert!(message.contains("authentication as berth-ssh-test failed"), "{message}");
    assert!(!message.contains("wrong-password"), "{message}");

    // A key the server does not know.
    let other = s.dir.path().join("other_key");
    keygen(&other);
    let stranger = Credential::PrivateKey { origin: "other_key".into(), pem: std::fs::read_to_string(&other).unwrap() };
    let error = s.open(SshProtocol::Scp, &[stranger], &s.trust()).await.unwrap_err();
    assert!(error.to_string().contains("tried key other_key"), "{error}");

    let error = s.open(SshProtocol::Scp, &[], &s.trust()).await.unwrap_err();
    assert!(matches!(error, SshError::NoCredentials { .. }), "{error:?}");
}

#[tokio::test]
async fn keys_that_cannot_be_used_are_refused_before_connecting() {
    let s = setup();
    let encrypted = s.dir.path().join("encrypted_key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "a passphrase", "-f"])
        .arg(&encrypted)
        .status()
        .unwrap();
    assert!(made.success());
    let pem = std::fs::read_to_string(&encrypted).unwrap();
    let encrypted = Credential::PrivateKey { origin: "encrypted_key".into(), pem };
    match s.open(SshProtocol::Sftp, &[encrypted], &s.trust()).await.unwrap_err() {
        SshError::Key { origin, reason } => {
            assert_eq!(origin, "encrypted_key");
            assert!(reason.contains("encrypted") && reason.contains("ssh-agent"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let garbage = Credential::PrivateKey { origin: "garbage".into(), pem: "not a key".into() };
    let error = s.open(SshProtocol::Sftp, &[password(), garbage], &s.trust()).await.unwrap_err();
    assert!(matches!(error, SshError::Key { .. }), "{error:?}");
}

/// An ssh-agent of the test's own, stopped with `ssh-agent -k` when dropped.
struct Agent {
    socket: PathBuf,
    pid: String,
}

impl Agent {
    /// `None` (and why, printed) when ssh-agent is not installed.
    fn start(dir: &Path) -> Option<Self> {
        let socket = dir.join("agent.sock");
        // Without -D, ssh-agent forks and its parent exits once the socket is bound.
        let started = match Command::new("ssh-agent").arg("-s").arg("-a").arg(&socket).stderr(Stdio::inherit()).output()
        {
            Ok(out) if out.status.success() => out,
            Ok(out) => panic!("ssh-agent failed: {out:?}"),
            Err(e) => {
                eprintln!("skipped: ssh-agent is not installed (openssh-client): {e}");
                return None;
            }
        };
        let text = String::from_utf8_lossy(&started.stdout);
        let pid = text
            .split(';')
            .find_map(|part| part.trim().strip_prefix("SSH_AGENT_PID="))
            .unwrap_or_else(|| panic!("no SSH_AGENT_PID in {text:?}"))
            .to_owned();
        Some(Agent { socket, pid })
    }

    fn add(&self, key: &Path) {
        let added = Command::new("ssh-add").arg(key).env("SSH_AUTH_SOCK", &self.socket).output().unwrap();
        assert!(added.status.success(), "{added:?}");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("ssh-agent").arg("-k").env("SSH_AGENT_PID", &self.pid).stdout(Stdio::null()).status();
    }
}

#[tokio::test]
async fn the_users_ssh_agent_signs() {
    let s = setup();
    let Some(agent) = Agent::start(s.dir.path()) else { return };
    let credentials = [Credential::Agent(agent.socket.clone())];
    let error = s.open(SshProtocol::Scp, &credentials, &s.trust()).await.unwrap_err();
    assert!(error.to_string().contains("holds no key"), "an empty agent: {error}");

    agent.add(&s.sshd.client_key());
    s.copy(SshProtocol::Scp, &credentials, &s.trust()).await;
    s.copy(SshProtocol::Sftp, &credentials, &s.trust()).await;

    // An agent that is gone is passed over for the next credential.
    let gone = Credential::Agent(s.dir.path().join("no-agent.sock"));
    s.copy(SshProtocol::Sftp, &[gone.clone(), password()], &s.trust()).await;
    let error = s.open(SshProtocol::Sftp, &[gone], &s.trust()).await.unwrap_err();
    assert!(error.to_string().contains("unreachable"), "{error}");
}

#[tokio::test]
async fn known_hosts_content_in_the_forms_openssh_writes() {
    let s = setup();
    let port = s.sshd.port();
    let key = s.sshd.host_public_key();
    let plain = format!("# ours\nother.example {key}\n[localhost]:{port},[127.0.0.1]:{port} {key}\n");
    s.copy(SshProtocol::Sftp, &[password()], &known(&plain)).await;
    let wildcard = format!("[127.0.0.*]:{port},![127.0.0.2]:* {key}\n");
    s.copy(SshProtocol::Sftp, &[password()], &known(&wildcard)).await;

    // Hashed by ssh-keygen itself.
    let file = s.dir.path().join("known_hosts");
    std::fs::write(&file, format!("{}\n", s.sshd.known_hosts_line())).unwrap();
    let hashed = Command::new("ssh-keygen").arg("-H").arg("-f").arg(&file).output().unwrap();
    assert!(hashed.status.success(), "{hashed:?}");
    let content = std::fs::read_to_string(&file).unwrap();
    assert!(content.starts_with("|1|") && !content.contains("127.0.0.1"), "{content}");
    s.copy(SshProtocol::Scp, &[password()], &known(&content)).await;

    // Several files: the one that records the server is enough.
    let trust = Trust {
        known_hosts: vec![
            KnownHosts { origin: "/etc/ssh/ssh_known_hosts".into(), content: String::new() },
            KnownHosts { origin: "~/.ssh/known_hosts".into(), content },
        ],
        accept_fingerprint: None,
    };
    s.copy(SshProtocol::Scp, &[password()], &trust).await;
}

#[tokio::test]
async fn an_unknown_host_key_is_refused_with_its_fingerprint_unless_accepted_by_it() {
    let s = setup();
    let fingerprint = s.sshd.fingerprint();
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    // Recorded for port 22 only, which is another server.
    let elsewhere = known(&format!("127.0.0.1 {}\n", s.sshd.host_public_key()));
    for trust in [Trust::default(), elsewhere] {
        match s.open(SshProtocol::Sftp, &[password()], &trust).await.unwrap_err() {
            SshError::UnknownHostKey { server, fingerprint: offered } => {
                assert_eq!((server, &offered), (s.sshd.server(), &fingerprint));
            }
            other => panic!("{other:?}"),
        }
    }
    let accepting = Trust { accept_fingerprint: Some(fingerprint), ..Trust::default() };
    s.copy(SshProtocol::Sftp, &[password()], &accepting).await;
    let wrong = Trust { accept_fingerprint: Some("SHA256:AAAA".into()), ..Trust::default() };
    let error = s.open(SshProtocol::Sftp, &[password()], &wrong).await.unwrap_err();
    assert!(matches!(error, SshError::UnknownHostKey { .. }), "{error:?}");
}

#[tokio::test]
async fn a_changed_or_revoked_host_key_is_refused_even_when_accepted_by_fingerprint() {
    let s = setup();
    let other = s.dir.path().join("other_host_key");
    keygen(&other);
    let other_key = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let server = s.sshd.server();
    let changed = Trust {
        accept_fingerprint: Some(s.sshd.fingerprint()),
        ..known(&format!("# first\n[127.0.0.1]:{} {}", s.sshd.port(), other_key.trim()))
    };
    match s.open(SshProtocol::Scp, &[password()], &changed).await.unwrap_err() {
        e @ SshError::HostKeyChanged { .. } => {
            let message = e.to_string();
            assert!(message.contains("differs") && message.contains("known_hosts:2"), "{message}");
            assert!(message.contains(&server) && message.contains(&s.sshd.fingerprint()), "{message}");
        }
        other => panic!("{other:?}"),
    }

    let revoked = known(&format!("{}\n@revoked * {}\n", s.sshd.known_hosts_line(), s.sshd.host_public_key()));
    let error = s.open(SshProtocol::Scp, &[password()], &revoked).await.unwrap_err();
    assert!(matches!(error, SshError::HostKeyRevoked { .. }), "{error:?}");
}

#[tokio::test]
async fn missing_files_and_missing_servers_are_named() {
    let s = setup();
    for protocol in [SshProtocol::Sftp, SshProtocol::Scp] {
        let mut target = s.target(protocol);
        target.path = "/nonexistent/x.tar".into();
        let error = ssh::open(&target, &[password()], &s.trust(), &SshOptions::default()).await.unwrap_err();
        assert!(matches!(error, SshError::Remote { .. }), "{protocol}: {error:?}");
        assert!(error.to_string().contains("/nonexistent/x.tar"), "{error}");
        if protocol == SshProtocol::Scp {
            assert!(error.to_string().contains("No such file"), "scp's own words: {error}");
        }
    }
    let mut target = s.target(SshProtocol::Sftp);
    target.path = s.remote.rsplit_once('/').unwrap().0.to_owned();
    let error = ssh::open(&target, &[password()], &s.trust(), &SshOptions::default()).await.unwrap_err();
    assert!(error.to_string().contains("directory"), "{error}");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut target = s.target(SshProtocol::Sftp);
    target.server = HostPort::parse(&format!("127.0.0.1:{port}")).unwrap();
    let error = ssh::open(&target, &[password()], &s.trust(), &SshOptions::default()).await.unwrap_err();
    assert!(matches!(error, SshError::Unreachable { .. }), "{error:?}");
    assert!(error.to_string().contains(&format!("127.0.0.1:{port}")), "{error}");
}

#[tokio::test]
async fn an_ipv6_server_in_brackets() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: this host cannot listen on ::1");
        return;
    }
    let s = setup_on(TestSshd::start_on("::1".parse().unwrap()));
    assert!(s.sshd.server().starts_with("[::1]:"), "{}", s.sshd.server());
    s.copy(SshProtocol::Sftp, &[password()], &s.trust()).await;
    s.copy(SshProtocol::Scp, &[s.key()], &s.trust()).await;
}
