//! A private registry for one test (Debian's docker-registry), optionally
//! behind a login (htpasswd, bcrypt). It binds loopback port 0 itself and the
//! port it got is read from its socket (`/proc`), so no port is picked,
//! released and then hoped to be still free.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct PrivateRegistry {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl PrivateRegistry {
    pub fn start(login: Option<(&str, &str)>) -> Self {
        let dir = tempfile::Builder::new().prefix("berth-registry-").tempdir().expect("temp dir");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:0\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = login {
            let hash = bcrypt::hash(password, 5).expect("bcrypt");
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("htpasswd");
            config.push_str(&format!("auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n", htpasswd.display()));
        }
        let path = dir.path().join("config.yml");
        std::fs::write(&path, config).expect("config");
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (scripts/setup.sh installs it)");
        // Listening is the marker that it is ready: it binds once set up.
        let pid = child.id();
        let port =
            crate::harness::poll(Duration::from_secs(20), || crate::harness::listening_ports(pid).first().copied());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the registry did not start listening");
        };
        PrivateRegistry { dir, child, port }
    }

    /// `127.0.0.1:<port>`, the registry part of references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for PrivateRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
