//! The broker scripts/setup.sh starts (scripts/kafka.sh manages it), found
//! the way the script publishes it, and a lock that keeps the tests that stop
//! or restart it from pulling it away under the others.

#![allow(dead_code)]

use std::fs::File;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{flock, FlockOperation};

pub const TIMEOUT: Duration = Duration::from_secs(10);

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kafka.sh")
}

/// Runs `scripts/kafka.sh ARG` and returns what it printed.
pub fn kafka_sh(arg: &str) -> String {
    let out = Command::new("bash").arg(script()).arg(arg).output().expect("running scripts/kafka.sh");
    assert!(
        out.status.success(),
        "scripts/kafka.sh {arg} failed ({}): {}{}\n(run scripts/setup.sh to install and start the broker)",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The broker's address, which must answer.
pub fn broker() -> Vec<String> {
    let addr = kafka_sh("addr");
    if let Err(e) = TcpStream::connect_timeout(&addr.parse().expect("scripts/kafka.sh addr prints host:port"), TIMEOUT)
    {
        panic!("no Kafka broker answers at {addr} ({e}): run scripts/setup.sh");
    }
    vec![addr]
}

/// A topic no other test (or earlier run) uses.
pub fn topic(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("berth-kafka-test-{name}-{}-{nanos}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Held for a test's whole run: shared by tests that only use the broker,
/// exclusive for those that stop or restart it (across test processes too).
pub struct BrokerLock {
    _file: File,
}

impl BrokerLock {
    fn take(op: FlockOperation) -> BrokerLock {
        let path = std::env::temp_dir().join("berth-kafka-tests.lock");
        let file = File::options().create(true).truncate(false).write(true).open(&path).expect("opening the lock file");
        flock(&file, op).expect("locking the broker");
        BrokerLock { _file: file }
    }

    pub fn shared() -> BrokerLock {
        Self::take(FlockOperation::LockShared)
    }

    pub fn exclusive() -> BrokerLock {
        Self::take(FlockOperation::LockExclusive)
    }
}

/// Starts the broker again when dropped, so a failed test does not leave it stopped.
pub struct StartOnDrop;

impl Drop for StartOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).arg("start").status();
    }
}
