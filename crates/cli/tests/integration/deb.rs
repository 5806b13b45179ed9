//! The Debian package (issue 10, Distribution). `scripts/package-deb.sh`
//! packages the binary under test (this run's debug build, stripped by the
//! script: a release build would cost minutes), `dpkg -i` installs it on this
//! machine, the daemon runs exactly as the installed `berth.service` says
//! (`ExecStart=`, systemd's environment) and serves an app installed through
//! `tpcm`; `dpkg --purge` removes what the package installed and keeps the
//! apps' data, unless `BERTH_PURGE_DATA=1`.
//!
//! A package installs to fixed paths (/usr/bin, /etc/berth, /var/lib/berth,
//! /run/berth, /etc/systemd/system), so the test holds a lock against every
//! other run of itself on this machine, refuses to touch a berth that it did
//! not install, and puts the machine back as it found it, also when it fails.

use crate::bin;
use berth_testkit::harness::{poll, unique, Run};
use berth_testkit::http::{docker, encode};
use berth_testkit::ImageBuilder;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ROOT: &str = "/var/lib/berth";
const SERVICE: &str = "/lib/systemd/system/berth.service";
/// Written before the first `dpkg -i`: what carries it is this test's to clean up.
const MARKER: &str = "/var/lib/berth/.installed-by-berth-deb-test";
/// Where berth and the package could leave something on this machine.
const TOUCHED: &[&str] = &[
    "/usr/bin/berth",
    "/usr/bin/tpcm",
    "/etc/berth",
    ROOT,
    "/run/berth",
    SERVICE,
    "/etc/systemd/system/berth.service",
    "/etc/systemd/system/berth.target",
    "/etc/systemd/system/berth-ready.target",
    "/etc/systemd/system/berth.target.wants",
    "/etc/systemd/system/multi-user.target.wants/berth.service",
    "/etc/systemd/system/multi-user.target.wants/berth.target",
];

fn exists(path: impl AsRef<Path>) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn run(command: &mut Command) -> Run {
    let program = command.get_program().to_string_lossy().into_owned();
    command.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{program}: {e}")).into()
}

fn dpkg(args: &[&str], purge_data: bool) -> Run {
    let mut command = Command::new("dpkg");
    command.args(args).env("DEBIAN_FRONTEND", "noninteractive").env_remove("BERTH_PURGE_DATA");
    if purge_data {
        command.env("BERTH_PURGE_DATA", "1");
    }
    run(&mut command)
}

/// What dpkg says of the package: `install ok installed`, `deinstall ok
/// config-files`, or nothing once it is gone.
fn status() -> String {
    run(Command::new("dpkg-query").args(["--show", "--showformat=${Status}", "berth"])).stdout
}

/// The installed CLI, with nothing of the test's environment pointing it elsewhere.
fn berth(program: &str, args: &[&str]) -> Run {
    run(Command::new(program).args(args).env_remove("BERTH_SOCKET").env_remove("BERTH_HOST"))
}

/// This machine while the test has berth installed on it.
struct Machine {
    _lock: std::fs::File,
    daemon: Option<Child>,
    instance: String,
    images: Vec<String>,
    app_unit: Option<PathBuf>,
}

impl Machine {
    fn take() -> Self {
        let version = Command::new("dpkg").arg("--version").output();
        assert!(
            version.is_ok_and(|v| v.status.success()),
            "dpkg is missing: the suite runs on Debian, where dpkg is always there"
        );
        let lock = std::fs::File::create("/run/lock/berth-deb-test.lock").expect("/run/lock/berth-deb-test.lock");
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("lock");
        let found: Vec<&str> = TOUCHED.iter().copied().filter(|p| exists(p)).collect();
        let leftovers = !found.is_empty() || !status().is_empty();
        // A run of this test that was killed leaves its marker; anything else is not ours.
        assert!(
            !leftovers || exists(MARKER),
            "berth is on this machine already ({found:?}, dpkg: {:?}); this test installs the package \
             to those paths and does not touch a berth it did not install",
            status()
        );
        let mut machine =
            Machine { _lock: lock, daemon: None, instance: String::new(), images: vec![], app_unit: None };
        if leftovers {
            machine.restore();
        }
        std::fs::create_dir_all(ROOT).unwrap();
        std::fs::write(MARKER, "").unwrap();
        machine
    }

    fn stop_daemon(&mut self) -> Option<std::process::ExitStatus> {
        let mut daemon = self.daemon.take()?;
        let pid = rustix::process::Pid::from_raw(daemon.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let stopped = berth_testkit::harness::wait_child(&mut daemon, Duration::from_secs(30));
        if stopped.is_none() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        stopped
    }

    /// Everything back as before the test: the package purged with the data,
    /// what it or the daemon left, the app's container and image.
    fn restore(&mut self) {
        self.stop_daemon();
        if !status().is_empty() {
            dpkg(&["--purge", "berth"], true);
        }
        for path in TOUCHED.iter().map(PathBuf::from).chain(self.app_unit.take()) {
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
        if !self.instance.is_empty() {
            let filters = encode(&format!(r#"{{"label":["berth.instance={}"]}}"#, self.instance));
            let containers = docker("GET", &format!("/containers/json?all=1&filters={filters}"), None).json();
            for id in containers.as_array().into_iter().flatten().filter_map(|c| c["Id"].as_str()) {
                docker("DELETE", &format!("/containers/{id}?force=1&v=1"), None);
            }
        }
        for image in self.images.drain(..) {
            docker("DELETE", &format!("/images/{image}?force=1"), None);
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.restore();
    }
}

/// The package, made by the project's script from the binary under test.
fn package(out: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/package-deb.sh");
    let built = run(Command::new("bash")
        .arg(script)
        .arg("--binary")
        .arg(bin())
        .arg("--out-dir")
        .arg(out)
        .args(["--compression", "zstd"]));
    assert_eq!(built.code, 0, "{built:?}");
    let deb = PathBuf::from(built.stdout.trim());
    assert!(deb.is_file() && deb.starts_with(out), "{built:?}");
    deb
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What the package put in place, each piece usable.
fn check_installed_files() {
    assert_eq!(status(), "install ok installed");
    assert_eq!(std::fs::read_link("/usr/bin/tpcm").unwrap(), Path::new("berth"));
    let version = berth("/usr/bin/berth", &["--version"]);
    assert!(version.code == 0 && version.stdout.starts_with("berth "), "{version:?}");
    assert_eq!(read(SERVICE), include_str!("../../../../packaging/berth.service"));
    assert_eq!(read("/lib/systemd/system/berth.target"), include_str!("../../../../packaging/berth.target"));
    assert_eq!(
        read("/lib/systemd/system/berth-ready.target"),
        include_str!("../../../../packaging/berth-ready.target")
    );

    let verify = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no", SERVICE])
        .args(["/lib/systemd/system/berth.target", "/lib/systemd/system/berth-ready.target"]));
    assert!(verify.code == 0 && !verify.stderr.contains("berth"), "systemd-analyze verify: {verify:?}");

    // The settings: a conffile, read by the daemon through <root>/berth.toml.
    assert_eq!(read("/etc/berth/berth.toml"), include_str!("../../../../packaging/berth.toml"));
    let conffiles = run(Command::new("dpkg-query").args(["--show", "--showformat=${Conffiles}", "berth"]));
    assert!(conffiles.stdout.contains("/etc/berth/berth.toml"), "{conffiles:?}");
    assert_eq!(std::fs::read_link(format!("{ROOT}/berth.toml")).unwrap(), Path::new("/etc/berth/berth.toml"));
    let settings = berth_daemon::Settings::load(Path::new("/etc/berth/berth.toml"), true);
    assert_eq!(settings.unwrap(), berth_daemon::Settings::default());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(ROOT).unwrap().permissions().mode() & 0o777, 0o700);

    // Completions: bash takes its script; zsh's and fish's name the verbs.
    let bash = "source /usr/share/bash-completion/completions/berth && complete -p berth";
    let complete = run(Command::new("bash").args(["-c", bash]));
    assert!(complete.code == 0 && complete.stdout.contains("_berth berth"), "{complete:?}");
    for script in ["/usr/share/zsh/vendor-completions/_berth", "/usr/share/fish/vendor_completions.d/berth.fish"] {
        let text = read(script);
        assert!(text.contains("install") && text.contains("self-upgrade") && !text.contains("generate"), "{script}");
    }

    // Manual pages: one per verb, readable by man (where man is, else valid gzip).
    let man = Command::new("man").arg("--version").output().is_ok();
    for page in ["berth", "berth-install", "berth-daemon", "berth-sra-config-download"] {
        let path = format!("/usr/share/man/man1/{page}.1.gz");
        let shown = if man {
            run(Command::new("man").arg("-l").arg(&path).env("MANPAGER", "cat").env("MANWIDTH", "80"))
        } else {
            run(Command::new("gzip").args(["-t", &path]))
        };
        assert_eq!(shown.code, 0, "{path}: {shown:?}");
        assert!(!man || shown.stdout.contains(page), "{path}: {shown:?}");
    }
    assert!(read("/usr/share/doc/berth/copyright").contains("Apache-2.0"));

    // Enabled as Debian enables units (links only, without systemd running).
    if Command::new("deb-systemd-helper").arg("--help").output().is_ok() {
        for unit in ["berth.service", "berth.target"] {
            let link = format!("/etc/systemd/system/multi-user.target.wants/{unit}");
            assert!(exists(&link), "{link}: enabled by postinst");
        }
    }
}

/// The daemon as berth.service starts it: the `ExecStart=` command, in the
/// environment systemd gives a service.
fn start_as_the_unit_does(log: &Path) -> Child {
    let unit = read(SERVICE);
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart= in berth.service");
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(argv[0], "/usr/bin/berth", "{exec}");
    let log = std::fs::File::create(log).unwrap();
    Command::new(argv[0])
        .args(&argv[1..])
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn the unit's ExecStart")
}

#[test]
fn the_debian_package_installs_a_working_daemon_and_its_purge_keeps_the_apps_data() {
    let mut machine = Machine::take();
    let dir = tempfile::tempdir().unwrap();
    let deb = package(dir.path());
    let deb = deb.to_string_lossy();
    let installed = dpkg(&["--install", &deb], false);
    assert_eq!(installed.code, 0, "{installed:?}");
    check_installed_files();
    let files = run(Command::new("dpkg-query").args(["--listfiles", "berth"])).stdout;

    // Started as the unit is (where systemd runs, postinst has started it).
    let log = dir.path().join("berth.service.log");
    if Path::new("/run/systemd/system").is_dir() {
        assert!(!installed.stderr.contains("systemd is not running"), "{installed:?}");
    } else {
        assert!(installed.stderr.contains("start the daemon as the unit does: /usr/bin/berth"), "{installed:?}");
        machine.daemon = Some(start_as_the_unit_does(&log));
    }
    let info = poll(Duration::from_secs(60), || {
        let run = berth("/usr/bin/berth", &["info", "--output", "json"]);
        let info: Value = serde_json::from_str(&run.stdout).ok()?;
        (info["ready"] == true).then_some(info)
    })
    .unwrap_or_else(|| panic!("the daemon of berth.service does not answer ready: {}", read_log(&log)));
    machine.instance = info["instance"].as_str().unwrap_or_default().to_owned();
    assert!(!machine.instance.is_empty(), "{info}");

    // A working daemon: an app installed with the TPCM command line.
    let name = unique("deb");
    let image = ImageBuilder::new(&format!("berth-test/{name}:1")).service().label("berth.test.sweep", "1");
    let archive = image.layer_marker(&name).write_tar(&dir.path().join("app.tar")).unwrap();
    machine.images.push(archive.image_id.clone());
    machine.app_unit = Some(PathBuf::from(format!("/etc/systemd/system/berth-app-{name}.service")));
    let tpcm = berth("/usr/bin/tpcm", &["install", &name, &archive.path.to_string_lossy(), "-y"]);
    assert_eq!(tpcm.code, 0, "{tpcm:?}\n{}", read_log(&log));
    let listed = berth("/usr/bin/tpcm", &["list"]);
    assert!(listed.code == 0 && listed.stdout.contains(&name), "{listed:?}");
    let data = PathBuf::from(format!("{ROOT}/tpc/{name}"));
    assert!(data.is_dir(), "the app's private directory");
    std::fs::write(data.join("kept.txt"), "the app's data").unwrap();
    assert!(machine.app_unit.as_ref().is_some_and(|u| u.is_file()), "the daemon wrote the app's unit");
    assert!(Path::new(ROOT).join("logs/berth.log").is_file(), "the daemon's log");
    if machine.daemon.is_some() {
        assert_eq!(machine.stop_daemon().and_then(|s| s.code()), Some(0), "SIGTERM: {}", read_log(&log));
    }

    // Purge: the package and the settings and logs go, the apps' data stays.
    let purged = dpkg(&["--purge", "berth"], false);
    assert_eq!(purged.code, 0, "{purged:?}");
    assert!(
        purged.stderr.contains("kept /var/lib/berth") && purged.stderr.contains("BERTH_PURGE_DATA=1"),
        "{purged:?}"
    );
    assert_eq!(status(), "");
    for path in files.lines().filter(|p| !Path::new(p).is_dir()) {
        assert!(!exists(path), "{path} is still there after the purge");
    }
    for gone in ["/etc/berth", "/var/lib/berth/logs", "/var/lib/berth/berth.toml"] {
        assert!(!exists(gone), "{gone} is still there after the purge");
    }
    for link in ["berth.service", "berth.target"] {
        assert!(!exists(format!("/etc/systemd/system/multi-user.target.wants/{link}")), "{link} still enabled");
    }
    assert_eq!(std::fs::read_to_string(data.join("kept.txt")).unwrap(), "the app's data");
    assert!(Path::new(ROOT).join("berth.db").is_file(), "the state is kept with the data");

    // Installed again it finds its state; purged with BERTH_PURGE_DATA=1,
    // nothing of berth is left on the machine (the engine keeps the container).
    let again = dpkg(&["--install", &deb], false);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(std::fs::read_link(format!("{ROOT}/berth.toml")).unwrap(), Path::new("/etc/berth/berth.toml"));
    assert!(data.join("kept.txt").is_file());
    let purged = dpkg(&["--purge", "berth"], true);
    assert_eq!(purged.code, 0, "{purged:?}");
    assert!(purged.stderr.contains("BERTH_PURGE_DATA=1: removed /var/lib/berth"), "{purged:?}");
    let left: Vec<&str> = TOUCHED.iter().copied().filter(|p| exists(p) && *p != "/run/berth").collect();
    assert!(left.is_empty(), "left after a purge with BERTH_PURGE_DATA=1: {left:?}");
    assert!(machine.app_unit.as_ref().is_some_and(|u| !exists(u)), "the app's unit berth wrote is removed");
}

fn read_log(log: &Path) -> String {
    format!("--- daemon log\n{}", std::fs::read_to_string(log).unwrap_or_default())
}
