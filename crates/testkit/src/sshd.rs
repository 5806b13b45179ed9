//! An sshd of its own for one test, with a fresh host key, password and key
//! login for the `berth-ssh-test` account (made by scripts/setup.sh), and
//! sftp.
//!
//! The listening socket is the test's own, bound to port 0 before anything
//! else, so it is ready at once and no two tests can race for a port; each
//! connection is handed to `sshd -i` (inetd mode), one process per
//! connection, as inetd would. Each connection's client process is looked
//! up as it is accepted (who made the copy: the daemon, or the CLI through
//! the user's agent), and sshd logs which key or password it accepted.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub const USER: &str = "berth-ssh-test";
pub const PASSWORD: &str = "berth-ssh-test-pw";

pub struct TestSshd {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    sessions: Arc<Mutex<Vec<Child>>>,
    /// Per connection, the process that made it (`None`: not found).
    clients: Arc<Mutex<Vec<Option<u32>>>>,
}

/// Writes a new ed25519 key pair without a passphrase to `path` and `path.pub`.
pub fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (openssh-client)");
    assert!(status.success(), "ssh-keygen failed");
}

/// The `SHA256:…` fingerprint of a key (its public half, or the private
/// file), as `ssh-keygen -l` and sshd's log print it.
pub fn fingerprint(key: &Path) -> String {
    let out = Command::new("ssh-keygen").args(["-l", "-E", "sha256", "-f"]).arg(key).output().expect("ssh-keygen -l");
    String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1).unwrap_or_default().to_owned()
}

impl TestSshd {
    /// On 127.0.0.1.
    pub fn start() -> Self {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// On `address`, a loopback address (`::1` for IPv6).
    pub fn start_on(address: IpAddr) -> Self {
        let dir = tempfile::Builder::new().prefix("berth-sshd-").tempdir().expect("temp dir");
        // The test account must reach the files, so the directory is world-readable.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).expect("authorized_keys");
        std::fs::set_permissions(d.join("authorized_keys"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::fs::create_dir(d.join("files")).expect("files dir");
        std::fs::set_permissions(d.join("files"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let config = format!(
            "HostKey {key}\nPidFile none\nAuthorizedKeysFile {auth}\n\
             StrictModes no\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\n\
             PubkeyAuthentication yes\nAllowUsers {USER}\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n",
            key = d.join("host_key").display(),
            auth = d.join("authorized_keys").display(),
        );
        std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
        let _ = std::fs::create_dir_all("/run/sshd");
        let listener = TcpListener::bind((address, 0)).expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let stopping = Arc::new(AtomicBool::new(false));
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let clients = Arc::new(Mutex::new(Vec::new()));
        let (config, log) = (d.join("sshd_config"), d.join("sshd.log"));
        let (stop, running, connected) = (stopping.clone(), sessions.clone(), clients.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                // Recorded before sshd runs: the client waits for its banner,
                // so it is still there, and done only after this is written.
                let client = crate::harness::peer_process(&stream);
                connected.lock().unwrap_or_else(|e| e.into_inner()).push(client);
                match session(&config, &log, stream) {
                    Ok(child) => running.lock().unwrap_or_else(|e| e.into_inner()).push(child),
                    Err(e) => eprintln!("sshd -i did not start (openssh-server; scripts/setup.sh installs it): {e}"),
                }
            }
        });
        TestSshd { dir, addr, stopping, sessions, clients }
    }

    /// `host:port`, with the address in brackets for IPv6.
    pub fn server(&self) -> String {
        self.addr.to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The known_hosts line for this server.
    pub fn known_hosts_line(&self) -> String {
        format!("[{}]:{} {}", self.addr.ip(), self.addr.port(), self.host_public_key())
    }

    /// The host's public key, `ssh-ed25519 AAAA… comment`.
    pub fn host_public_key(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("host_key.pub")).expect("host key").trim().to_owned()
    }

    /// The host key's `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.dir.path().join("host_key.pub"))
    }

    /// A private key the server accepts for [`USER`].
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// Lets the public key `line` (`ssh-rsa AAAA… comment`) log in as [`USER`] too.
    pub fn authorize(&self, line: &str) {
        use std::io::Write;
        let mut keys = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("authorized_keys"))
            .expect("authorized_keys");
        writeln!(keys, "{}", line.trim()).expect("authorize");
    }

    /// What sshd logged (logins accepted and refused, errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// The processes that connected, in order (`None`: not found in time).
    pub fn clients(&self) -> Vec<Option<u32>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How the logins that succeeded authenticated, in order: `password`, or
    /// the `SHA256:…` fingerprint of the key.
    pub fn accepted(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|line| {
                // "Accepted publickey for USER from … ssh2: ED25519 SHA256:…", "Accepted password for …".
                let rest = line.split("Accepted ").nth(1)?;
                if rest.starts_with("password for ") {
                    return Some("password".to_owned());
                }
                if !rest.starts_with("publickey for ") {
                    return None;
                }
                rest.split_whitespace().find(|word| word.starts_with("SHA256:")).map(str::to_owned)
            })
            .collect()
    }

    /// Puts `file` where [`USER`] can read it; returns the remote path.
    pub fn publish(&self, file: &Path, name: &str) -> String {
        let target = self.dir.path().join("files").join(name);
        std::fs::copy(file, &target).expect("publish");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        target.display().to_string()
    }
}

/// One `sshd -i` serving `stream` on its standard input and output.
fn session(config: &Path, log: &Path, stream: TcpStream) -> std::io::Result<Child> {
    let output = stream.try_clone()?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    Command::new("/usr/sbin/sshd")
        .args(["-i", "-e", "-f"])
        .arg(config)
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(stream)))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(output)))
        .stderr(Stdio::from(log))
        .spawn()
}

impl Drop for TestSshd {
    fn drop(&mut self) {
        // Wake the accepting thread so that it sees it is to stop.
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        for mut child in self.sessions.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
