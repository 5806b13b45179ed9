//! Long operations can be cancelled, and a cancelled one is undone (issue 8,
//! defect 10): `berth cancel <name>` from another process, Ctrl-C of the
//! CLI, or a client that goes away. Before issue 8 there was no `cancel`
//! verb (exit 2), Ctrl-C killed the CLI, and an operation whose client went
//! away ran on to the end ("a client that hangs up does not cut it short"):
//! the app ended up installed.
//!
//! An install is held where it is slow on purpose: in the start check (the
//! container runs; `start_check_ms` is two minutes here), or in a download
//! from a server that sends one byte and then nothing. The marker that it
//! got there is the running container, or the server having the request.

use crate::bin;

use berth_testkit::harness::{finish, image_exists, inspect, unique, Run, TestDaemon, TEST_SETTINGS};
use berth_testkit::http_server::FileServer;
use berth_testkit::ImageBuilder;
use std::process::Child;
use std::time::Duration;

/// Long enough never to end by itself while a test runs.
const HOLD_MS: &str = "start_check_ms = 120000";

fn settings(hold: &str) -> String {
    TEST_SETTINGS.replace("start_check_ms = 400", hold).replace("probation_secs = 1", "probation_secs = 120")
}

fn service(tag: &str) -> ImageBuilder {
    ImageBuilder::new(&format!("berth-test/{tag}:1")).service().label("berth.test.sweep", "1").layer_marker(tag)
}

/// Where an install is held.
#[derive(Debug, Clone, Copy)]
enum Hold {
    /// In the start check, its container running.
    StartCheck,
    /// In the download of a server that trickles.
    Download,
}

/// How the install is given up.
#[derive(Debug, Clone, Copy, PartialEq)]
enum GiveUp {
    /// `berth cancel <name>` from another process.
    CancelVerb,
    /// Ctrl-C (SIGINT) of the installing CLI.
    CtrlC,
    /// The CLI is killed: its connection goes away.
    Disconnect,
}

/// An install that was held: its app, image and (for a download) url path.
struct Held {
    name: String,
    image: String,
    path: String,
}

/// Starts an install and returns once it is held, with its CLI.
fn start_held(daemon: &mut TestDaemon, server: &FileServer, hold: Hold) -> (Held, Child) {
    let name = unique("held");
    let archive = daemon.archive(&service(&name), true);
    let (source, path) = match hold {
        Hold::StartCheck => (archive.path.to_string_lossy().into_owned(), String::new()),
        Hold::Download => {
            let path = format!("/files/{name}.tar.gz");
            server.file(&path, &archive.path);
            server.trickle(&path);
            (server.url(&path), path)
        }
    };
    let cli = daemon.berth_spawn(&[], &["install", &name, &source, "-y"]);
    match hold {
        Hold::StartCheck => daemon.wait_for("the install's start check", Duration::from_secs(60), |_| {
            inspect(&name).filter(|c| c["State"]["Running"] == true).map(drop)
        }),
        Hold::Download => daemon.wait_for("the download to begin", Duration::from_secs(60), |_| {
            (!server.requests_for(&path).is_empty()).then_some(())
        }),
    }
    (Held { name, image: archive.image_id, path }, cli)
}

fn signal(child: &Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, signal).expect("signal the CLI");
}

/// Nothing of the install is left: row, container, image, directory, unit.
fn undone(daemon: &TestDaemon, held: &Held) -> bool {
    daemon.app(&held.name).is_none()
        && inspect(&held.name).is_none()
        && !image_exists(&held.image)
        && !daemon.private_dir(&held.name).exists()
        && !daemon.unit_dir().join(format!("berth-app-{}.service", held.name)).exists()
}

fn give_up(daemon: &TestDaemon, server: &FileServer, hold: Hold, how: GiveUp, held: Held, mut cli: Child) {
    let what = format!("{how:?} during the {hold:?}");
    let run: Option<Run> = match how {
        GiveUp::CancelVerb => {
            let cancel = daemon.berth(&["cancel", &held.name]);
            assert_eq!(cancel.code, 0, "{what}: {cancel:?}");
            Some(finish(cli, &what, Duration::from_secs(60)))
        }
        GiveUp::CtrlC => {
            signal(&cli, rustix::process::Signal::INT);
            Some(finish(cli, &what, Duration::from_secs(60)))
        }
        GiveUp::Disconnect => {
            cli.kill().expect("kill the CLI");
            let _ = cli.wait();
            None
        }
    };
    if let Some(run) = &run {
        assert_eq!(run.code, 13, "{what}: cancelled and undone: {run:?}");
        assert!(run.stderr.contains("cancel"), "{what}: {run:?}");
        // The CLI answers once the undo is done.
        assert!(undone(daemon, &held), "{what}: something is left");
    }
    // Without a client to answer, the marker is the undo's result.
    daemon.wait_for(&format!("{what}: the install to be undone"), Duration::from_secs(60), |d| {
        undone(d, &held).then_some(())
    });
    if let Hold::Download = hold {
        assert_eq!(server.requests_for(&held.path).len(), 1, "{what}: not fetched again");
    }
}

fn cancelled_installs_are_undone(how: GiveUp) {
    let mut daemon = TestDaemon::start_with(bin(), &settings(HOLD_MS), &[], None);
    let server = FileServer::start();
    let held: Vec<_> = [Hold::StartCheck, Hold::Download]
        .into_iter()
        .map(|hold| (hold, start_held(&mut daemon, &server, hold)))
        .collect();
    std::thread::scope(|scope| {
        for (hold, (held, cli)) in held {
            let (daemon, server) = (&daemon, &server);
            scope.spawn(move || give_up(daemon, server, hold, how, held, cli));
        }
    });
    assert!(daemon.containers().is_empty(), "{:?}", daemon.containers());
}

#[test]
fn berth_cancel_from_another_process_undoes_an_install() {
    cancelled_installs_are_undone(GiveUp::CancelVerb);
}

#[test]
fn ctrl_c_of_the_cli_undoes_an_install() {
    cancelled_installs_are_undone(GiveUp::CtrlC);
}

#[test]
fn a_client_that_goes_away_has_its_install_undone() {
    cancelled_installs_are_undone(GiveUp::Disconnect);
}

/// A cancelled download is given up at once: the daemon hangs up on the
/// server (rather than reading on until the fetch's idle timeout).
#[test]
fn a_cancelled_download_hangs_up_on_the_server() {
    let settings = format!("{}[fetch]\nidle_timeout_secs = 600\n", settings(HOLD_MS));
    let mut daemon = TestDaemon::start_with(bin(), &settings, &[], None);
    let server = FileServer::start();
    let (held, cli) = start_held(&mut daemon, &server, Hold::Download);
    let cancel = daemon.berth(&["cancel", &held.name]);
    assert_eq!(cancel.code, 0, "{cancel:?}");
    assert_eq!(finish(cli, "the cancelled install", Duration::from_secs(60)).code, 13);
    // Far less than the idle timeout: a hang-up is what a cancel does.
    daemon.wait_for("the daemon to hang up", Duration::from_secs(20), |_| {
        (server.hangups(&held.path) == 1).then_some(())
    });
}

/// An upgrade cancelled during its probation: the old version runs again,
/// the very same container, and the new image is taken back out.
#[test]
fn berth_cancel_undoes_an_upgrade() {
    let mut daemon = TestDaemon::start_with(bin(), &settings("start_check_ms = 400"), &[], None);
    let name = unique("cancelupg");
    let v1 = daemon.archive(&service(&name), false);
    let run = daemon.berth(&["install", &name, &v1.path.to_string_lossy(), "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    let old = inspect(&name).unwrap()["Id"].clone();
    let v2 = daemon.archive(&service(&format!("{name}-2")), false);
    let cli = daemon.berth_spawn(&[], &["upgrade", &name, &v2.path.to_string_lossy(), "--skip_data", "-y"]);
    // In probation: the new container runs under the app's name.
    daemon.wait_for("the upgrade's probation", Duration::from_secs(60), |_| {
        inspect(&name).filter(|c| c["Id"] != old && c["State"]["Running"] == true).map(drop)
    });
    let cancel = daemon.berth(&["cancel", &name]);
    assert_eq!(cancel.code, 0, "{cancel:?}");
    let run = finish(cli, "the cancelled upgrade", Duration::from_secs(60));
    assert_eq!(run.code, 13, "{run:?}");
    let app = daemon.wait_state(&name, "running", Duration::from_secs(30));
    assert_eq!(app["image_id"], v1.image_id.as_str());
    let container = inspect(&name).unwrap();
    assert_eq!((container["Id"].clone(), container["State"]["Running"].clone()), (old, true.into()));
    assert!(inspect(&format!("{name}.berth-old")).is_none());
    assert!(!image_exists(&v2.image_id), "the new image is taken back");

    // Nothing runs now: a cancel is refused, and changes nothing.
    let nothing = daemon.berth(&["cancel", &name]);
    assert_eq!(nothing.code, 4, "{nothing:?}");
    assert_eq!(daemon.app(&name).unwrap()["state"], "running");
}
