//! An sshd of its own for one test, on a free loopback port, with a fresh
//! host key, password and key login for the `berth-ssh-test` account (made
//! by scripts/setup.sh), and sftp.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "berth-ssh-test";
pub const PASSWORD: &str = "berth-ssh-test-pw";

pub struct TestSshd {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (openssh-client)");
    assert!(status.success(), "ssh-keygen failed");
}

impl TestSshd {
    pub fn start() -> Self {
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
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {pid}\nAuthorizedKeysFile {auth}\n\
             StrictModes no\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\n\
             PubkeyAuthentication yes\nAllowUsers {USER}\nSubsystem sftp internal-sftp\nLogLevel ERROR\n",
            key = d.join("host_key").display(),
            pid = d.join("sshd.pid").display(),
            auth = d.join("authorized_keys").display(),
        );
        std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
        let _ = std::fs::create_dir_all("/run/sshd");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("sshd.log")).map_or_else(|_| Stdio::null(), Stdio::from))
            .spawn()
            .expect("sshd (openssh-server; scripts/setup.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not start; see {}", d.join("sshd.log").display());
            std::thread::sleep(Duration::from_millis(50));
        }
        TestSshd { dir, child, port }
    }

    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The known_hosts line for this server.
    pub fn known_hosts_line(&self) -> String {
        let key = std::fs::read_to_string(self.dir.path().join("host_key.pub")).expect("host key");
        format!("[127.0.0.1]:{} {}", self.port, key.trim())
    }

    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(self.dir.path().join("host_key.pub"))
            .output()
            .expect("ssh-keygen -l");
        String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1).unwrap_or_default().to_owned()
    }

    /// A private key the server accepts for [`USER`].
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// Puts `file` where [`USER`] can read it; returns the remote path.
    pub fn publish(&self, file: &Path, name: &str) -> String {
        let target = self.dir.path().join("files").join(name);
        std::fs::copy(file, &target).expect("publish");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        target.display().to_string()
    }
}

impl Drop for TestSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
