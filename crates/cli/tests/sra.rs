//! SRA images and commands, per the SRA specification's "Detailed Running
//! Procedure", against the real engine with an SRA image built offline.

use berth_testkit::harness::{image_exists, inspect, unique, TestDaemon};
use berth_testkit::http::{docker, encode};
use berth_testkit::ImageBuilder;
use sha1::{Digest, Sha1};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

const COMMAND: &str = r#"#!/bin/sh
input=$(cat)
out=$(echo "$input" | sed -n 's:.*<OutputFile>\(.*\)</OutputFile>.*:\1:p')
name=$(echo "$input" | sed -n 's:.*<Name>\(.*\)</Name>.*:\1:p')
echo "<Response><Name>$name</Name></Response>" > "$out"
echo "ran $name as $(id -u):$(id -g) FOO=$FOO"
echo "log line" >> /srm/sra/log/sra.log
echo "to stderr" >&2
case "$name" in slow) sleep 30;; fail) exit 3;; esac
exit 0
"#;

fn xml(name: &str) -> String {
    format!("<?xml version=\"1.0\"?><Command xmlns=\"http://www.vmware.com/srm/sra/v2\"><Name>{name}</Name><OutputFile>/tmp/out-{name}.xml</OutputFile><StatusFile>/tmp/status</StatusFile></Command>")
}

struct Sra {
    daemon: TestDaemon,
    image: String,
}

impl Drop for Sra {
    fn drop(&mut self) {
        // Execution containers are the SRA procedure's, not an app's: sweep them by image.
        let filters = format!(r#"{{"ancestor":["{}"],"label":["srm.sra.eid"]}}"#, self.image);
        let list = docker("GET", &format!("/containers/json?all=1&filters={}", encode(&filters)), None).json();
        for c in list.as_array().cloned().unwrap_or_default() {
            docker("DELETE", &format!("/containers/{}?force=1", c["Id"].as_str().unwrap_or_default()), None);
        }
    }
}

fn loaded() -> Sra {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("sra");
    let builder = ImageBuilder::new(&format!("berth-test/{name}:1"))
        .service()
        .label("berth.test.sweep", "1")
        .label("com.vmware.srm.sra", "vendor-x")
        .layer_marker(&name)
        .file("/srm/sra/command", COMMAND, 0o755);
    let archive = daemon.archive(&builder, true);
    let run = daemon.berth(&["sra", "load", &archive.path.to_string_lossy()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("vendor-x"), "{run:?}");
    Sra { daemon, image: archive.image_id }
}

fn dir(sra: &Sra, name: &str) -> PathBuf {
    let dir = sra.daemon.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    // The command runs as 660:660 and writes here.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

fn exec(sra: &Sra, tmp: &Path, log: &Path, command: &str, extra: &[&str]) -> berth_testkit::harness::Run {
    let mut child = Command::new(bin())
        .args(["sra", "exec", "--image", &sra.image, "--tmp-dir"])
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
    child.stdin.take().unwrap().write_all(xml(command).as_bytes()).unwrap();
    child.wait_with_output().unwrap().into()
}

fn eid(image: &str, tmp: &Path, log: &Path) -> String {
    let text = format!("{image}{}{}", tmp.display(), log.display());
    Sha1::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn containers_of(eid: &str) -> Vec<serde_json::Value> {
    let filters = format!(r#"{{"label":["srm.sra.eid={eid}"]}}"#);
    docker("GET", &format!("/containers/json?all=1&filters={}", encode(&filters)), None)
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn an_image_without_the_sra_label_is_refused_and_taken_out() {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("notsra");
    let archive =
        daemon.archive(&ImageBuilder::new(&format!("berth-test/{name}:1")).service().layer_marker(&name), false);
    let run = daemon.berth(&["sra", "load", &archive.path.to_string_lossy()]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("com.vmware.srm.sra"), "{run:?}");
    assert!(!image_exists(&archive.image_id));
}

#[test]
fn commands_run_as_the_procedure_says_and_containers_are_reused() {
    let sra = loaded();
    let (tmp, log) = (dir(&sra, "tmp"), dir(&sra, "log"));
    let run = exec(&sra, &tmp, &log, "queryInfo", &["--env", "FOO=bar"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("ran queryInfo as 660:660 FOO=bar"), "{run:?}");
    assert!(run.stderr.contains("to stderr"), "{run:?}");
    assert_eq!(
        std::fs::read_to_string(tmp.join("out-queryInfo.xml")).unwrap(),
        "<Response><Name>queryInfo</Name></Response>\n"
    );
    assert!(std::fs::read_to_string(log.join("sra.log")).unwrap().contains("log line"));

    let id = eid(&sra.image, &tmp, &log);
    let containers = containers_of(&id);
    assert_eq!(containers.len(), 1, "one container per execution id");
    let container = containers[0]["Id"].as_str().unwrap().to_owned();
    let inspected = inspect(&container).unwrap();
    assert_eq!(inspected["Config"]["OpenStdin"], true, "docker run -di");
    assert_eq!(inspected["Config"]["Tty"], false);
    let binds: Vec<String> = serde_json::from_value(inspected["HostConfig"]["Binds"].clone()).unwrap();
    assert_eq!(binds, [format!("{}:/tmp", tmp.display()), format!("{}:/srm/sra/log", log.display())]);

    // Reused while running; started again when stopped.
    assert_eq!(exec(&sra, &tmp, &log, "queryStrings", &[]).code, 0);
    assert_eq!(docker("POST", &format!("/containers/{container}/stop?t=1"), None).status, 204);
    assert_eq!(exec(&sra, &tmp, &log, "queryCapabilities", &["--user", "1234:1234"]).code, 0);
    assert_eq!(containers_of(&id).len(), 1);
    assert_eq!(inspect(&container).unwrap()["State"]["Running"], true);

    // Another (tmp, log) pair is another container; a failing command passes its code on.
    let other_log = dir(&sra, "log2");
    let run = exec(&sra, &tmp, &other_log, "fail", &[]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(containers_of(&eid(&sra.image, &tmp, &other_log)).len(), 1);
}

#[test]
fn concurrent_commands_of_one_execution_id_share_one_container() {
    let sra = loaded();
    let (tmp, log) = (dir(&sra, "ctmp"), dir(&sra, "clog"));
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..4)
            .map(|i| {
                scope.spawn({
                    let (sra, tmp, log) = (&sra, &tmp, &log);
                    move || exec(sra, tmp, log, &format!("query{i}"), &[])
                })
            })
            .collect();
        for run in runs {
            let run = run.join().unwrap();
            assert_eq!(run.code, 0, "{run:?}");
        }
    });
    assert_eq!(containers_of(&eid(&sra.image, &tmp, &log)).len(), 1);
}

#[test]
fn a_hung_command_times_out_and_bad_directories_are_refused() {
    let sra = loaded();
    let (tmp, log) = (dir(&sra, "ttmp"), dir(&sra, "tlog"));
    let run = exec(&sra, &tmp, &log, "slow", &["--timeout", "2"]);
    assert_eq!(run.code, 9, "{run:?}");
    assert!(run.stderr.contains("did not finish within 2s"), "{run:?}");
    let run = exec(&sra, &sra.daemon.dir.path().join("missing"), &log, "queryInfo", &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--tmp-dir"), "{run:?}");
}

#[test]
fn list_counts_execution_containers_and_remove_takes_them_with_the_image() {
    let sra = loaded();
    let (tmp, log) = (dir(&sra, "ltmp"), dir(&sra, "llog"));
    assert_eq!(exec(&sra, &tmp, &log, "queryInfo", &[]).code, 0);
    let run = sra.daemon.berth(&["sra", "list", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let images: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    let ours = images.iter().find(|i| i["id"] == sra.image.as_str()).expect("listed");
    assert_eq!((ours["label"].as_str(), ours["containers"].as_u64()), (Some("vendor-x"), Some(1)));
    let table = sra.daemon.berth(&["sra", "list"]).stdout;
    assert!(table.contains(&sra.image) && table.contains("vendor-x"), "{table}");

    let run = sra.daemon.berth(&["sra", "remove", &sra.image]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!image_exists(&sra.image));
    assert!(containers_of(&eid(&sra.image, &tmp, &log)).is_empty());

    // Not an SRA image: refused, untouched.
    let run = sra.daemon.berth(&["sra", "remove", "berth-test/none:404"]);
    assert_eq!(run.code, 5, "{run:?}");
}
