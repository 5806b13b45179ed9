//! An offline SRA image and helpers shared by the SRA test files: the image's
//! /srm/sra/command is a shell script that reads the envelope, logs it,
//! writes status updates and the output file, per command name.

#![allow(dead_code)]

use crate::bin;
use berth_testkit::harness::{Run, TestDaemon};
use berth_testkit::http::{docker, encode};
use berth_testkit::ImageBuilder;
use sha1::{Digest, Sha1};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const COMMAND: &str = r#"#!/bin/sh
input=$(cat)
field() { echo "$input" | sed -n "s:.*<$1>\(.*\)</$1>.*:\1:p"; }
out=$(field OutputFile)
status=$(field StatusFile)
name=$(field Name)
progress() {
    printf '<?xml version="1.0" encoding="UTF-8" ?>\n<ProgressUpdate xmlns="http://www.vmware.com/srm/sra/v2">%s</ProgressUpdate>\n' "$1" > "$status"
}
respond() { echo "<Response xmlns=\"http://www.vmware.com/srm/sra/v2\">$1</Response>" > "$out"; }
echo "$input" > /srm/sra/log/last-input.xml
echo "ran $name as $(id -u):$(id -g) FOO=$FOO"
echo "host $(cat /etc/hostname)"
echo "log line" >> /srm/sra/log/sra.log
echo "$name" >> /srm/sra/log/commands.log
echo "to stderr" >&2
case "$name" in
    slow) sleep 30 ;;
    fail) exit 3 ;;
    progress) for p in 10 40 70 100; do progress $p; sleep 1; done ;;
    hang) progress 5; sleep 30 ;;
    block) sleep 3600 ;;
    error) respond '<Error code="42"><Description>Array unreachable</Description><FixHint>Check the address</FixHint></Error>'; exit 0 ;;
    noout) exit 0 ;;
    conf) respond "<Conf>$(cat /srm/sra/conf/settings.txt)</Conf>"; exit 0 ;;
    confowner) respond "<Owner>$(stat -c %u:%g /srm/sra/conf/settings.txt)</Owner>"; exit 0 ;;
    confwrite) echo "written at runtime" > /srm/sra/conf/runtime.txt || exit 5; respond "<Ok/>"; exit 0 ;;
    confslow) a=$(cat /srm/sra/conf/settings.txt); b=$(cat /srm/sra/conf/sub/more.txt);
              echo "confslow has read" >> /srm/sra/log/commands.log; sleep 3;
              c=$(cat /srm/sra/conf/settings.txt); d=$(cat /srm/sra/conf/sub/more.txt);
              respond "<Conf>$a,$b|$c,$d</Conf>"; exit 0 ;;
    # What the SRA's own error codes mean (INTERFACES.md 2.5): a description
    # by string id only, spelt out by queryStrings, and a plain fix hint.
    queryErrorDefinitions)
        respond '<ErrorDefinitions><ErrorDefinition code="77"><Description stringId="Description77"/><FixHint>Power the array on</FixHint></ErrorDefinition></ErrorDefinitions>'; exit 0 ;;
    queryStrings) respond '<Strings locale="en"><String id="Description77">Array powered off</String></Strings>'; exit 0 ;;
    bareerror) respond '<Error code="77"/>'; exit 0 ;;
    # Hostile SRAs: the files berth reads replaced by a link to $TARGET (a
    # host path, meaningless inside the container) or by a fifo.
    linkout) busybox ln -sf "$TARGET" "$out"; exit 0 ;;
    linkstatus) busybox ln -sf "$TARGET" "$status"; respond '<Linked/>'; exit 0 ;;
    fifoout) busybox mkfifo "$out"; exit 0 ;;
    fifostatus) busybox mkfifo "$status"; while [ ! -e /tmp/release ]; do sleep 1; done; respond '<Released/>'; exit 0 ;;
esac
respond "<Name>$name</Name>"
exit 0
"#;

pub fn envelope(name: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><Command xmlns=\"http://www.vmware.com/srm/sra/v2\"><Name>{name}</Name>\
<OutputFile>/tmp/out-{name}.xml</OutputFile><StatusFile>/tmp/status-{name}.xml</StatusFile></Command>"
    )
}

/// A daemon with an SRA image loaded through `berth sra load`.
pub struct Sra {
    pub daemon: TestDaemon,
    pub image: String,
    pub tag: String,
}

impl Drop for Sra {
    fn drop(&mut self) {
        // Execution containers are the SRA procedure's, not an app's: sweep them by image.
        remove_execution_containers(&self.image);
    }
}

pub fn remove_execution_containers(image: &str) {
    let filters = format!(r#"{{"ancestor":["{image}"],"label":["srm.sra.eid"]}}"#);
    let list = docker("GET", &format!("/containers/json?all=1&filters={}", encode(&filters)), None).json();
    for c in list.as_array().cloned().unwrap_or_default() {
        docker("DELETE", &format!("/containers/{}?force=1", c["Id"].as_str().unwrap_or_default()), None);
    }
}

/// The test SRA image: the command above and a factory configuration.
pub fn sra_image(name: &str, factory: &str) -> ImageBuilder {
    ImageBuilder::new(&format!("berth-test/{name}:1"))
        .service()
        .label("berth.test.sweep", "1")
        .label("com.vmware.srm.sra", "vendor-x")
        .layer_marker(name)
        .file("/srm/sra/command", COMMAND, 0o755)
        .dir("/srm/sra/conf", 0o755)
        .file("/srm/sra/conf/settings.txt", factory, 0o644)
        .dir("/srm/sra/conf/sub", 0o755)
        .file("/srm/sra/conf/sub/more.txt", "factory-more", 0o644)
}

pub fn loaded() -> Sra {
    loaded_with(TestDaemon::start(bin()))
}

pub fn loaded_with(mut daemon: TestDaemon) -> Sra {
    let name = berth_testkit::harness::unique("sra");
    let builder = sra_image(&name, "factory");
    let archive = daemon.archive(&builder, true);
    let run = daemon.berth(&["sra", "load", &archive.path.to_string_lossy()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("vendor-x"), "{run:?}");
    Sra { daemon, image: archive.image_id, tag: format!("berth-test/{name}:1") }
}

/// Loads another SRA image into the same daemon (e.g. a newer version).
pub fn load_another(sra: &mut Sra, factory: &str) -> String {
    let name = berth_testkit::harness::unique("sra2");
    let archive = sra.daemon.archive(&sra_image(&name, factory), false);
    let run = sra.daemon.berth(&["sra", "load", &archive.path.to_string_lossy()]);
    assert_eq!(run.code, 0, "{run:?}");
    archive.image_id
}

/// A host directory the command (660:660) can write to.
pub fn dir(sra: &Sra, name: &str) -> PathBuf {
    let dir = sra.daemon.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

pub fn exec(sra: &Sra, tmp: &Path, log: &Path, command: &str, extra: &[&str]) -> Run {
    exec_input(sra, &sra.image, tmp, log, &envelope(command), extra)
}

pub fn exec_input(sra: &Sra, image: &str, tmp: &Path, log: &Path, input: &str, extra: &[&str]) -> Run {
    let mut child = Command::new(bin())
        .args(["sra", "exec", "--image", image, "--tmp-dir"])
        .arg(tmp)
        .arg("--log-dir")
        .arg(log)
        .args(extra)
        .env("BERTH_SOCKET", &sra.daemon.socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap().into()
}

/// `berth sra run <command> --image … --tmp-dir … --log-dir … extra…`.
pub fn sra_run(sra: &Sra, image: &str, tmp: &Path, log: &Path, command: &str, extra: &[&str]) -> Run {
    let (tmp, log) = (tmp.to_string_lossy(), log.to_string_lossy());
    let mut args = vec!["sra", "run", command, "--image", image, "--tmp-dir", &tmp, "--log-dir", &log];
    args.extend_from_slice(extra);
    sra.daemon.berth(&args)
}

pub fn eid(image: &str, tmp: &Path, log: &Path) -> String {
    let text = format!("{image}{}{}", tmp.display(), log.display());
    Sha1::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn containers_of(eid: &str) -> Vec<serde_json::Value> {
    let filters = format!(r#"{{"label":["srm.sra.eid={eid}"]}}"#);
    docker("GET", &format!("/containers/json?all=1&filters={}", encode(&filters)), None)
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The command lines of the processes running in a container.
pub fn processes(container: &str) -> Vec<String> {
    let top = docker("GET", &format!("/containers/{container}/top"), None).json();
    top["Processes"].as_array().cloned().unwrap_or_default().iter().map(|p| p.to_string()).collect()
}

/// Where the daemon keeps an image's configuration.
pub fn config_root(sra: &Sra, image: &str) -> PathBuf {
    sra.daemon.root().join("tpc").join(".berth-sra").join(image.trim_start_matches("sha256:"))
}

/// The lines of the log directory's `commands.log`: every command the SRA ran there.
pub fn commands_run(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log.join("commands.log")).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// An execution container as another runner following the specification
/// by hand makes it (`docker run -di -v tmp:/tmp -v log:/srm/sra/log -l
/// srm.sra.eid=<eid> <image>`): none of berth's labels.
pub fn foreign_container(image: &str, eid: &str, tmp: &Path, log: &Path) -> String {
    let body = serde_json::json!({
        "Image": image,
        "OpenStdin": true,
        "Labels": { "srm.sra.eid": eid },
        "HostConfig": { "Binds": [format!("{}:/tmp", tmp.display()), format!("{}:/srm/sra/log", log.display())] },
    });
    let created = docker("POST", "/containers/create", Some(&body));
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["Id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(docker("POST", &format!("/containers/{id}/start"), None).status, 204);
    id
}

/// Runs the CLI against `sra`'s daemon, killing it and failing the test if it
/// has not finished within `deadline` (for commands that hung before a fix).
pub fn berth_within<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(sra: &Sra, deadline: Duration, args: &[S]) -> Run {
    let mut child = Command::new(bin())
        .args(args)
        .env("BERTH_SOCKET", &sra.daemon.socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + deadline;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!("berth {args:?} did not finish within {deadline:?}: {:?}", Run::from(output));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap().into()
}
