//! Runs the built berth-rm binary.

// Only to send signals to the entrypoint under test (kill(2)); the crate has
// no dependencies, so there is no safe wrapper to use instead.
#![allow(unsafe_code)]

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_berth-rm");

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "berth-rm-test-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `berth-rm ARGS` with both params files pointed into `dir`.
fn run(dir: &TempDir, args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .env("BERTH_RMPARAMS", dir.path("rmparams"))
        .env("BERTH_OPPARAMS", dir.path("opparams"))
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

const VALUES: &[&str] = &[
    "simple",
    "with spaces",
    "  leading and trailing  ",
    "double \" and single ' quotes",
    "key: value, colons: here",
    "# hash at start",
    "a # comment-looking",
    "two\nlines\n",
    "tab\tand\r\ncrlf",
    "back\\slash\\n",
    "emoji 🎉🐳 and ünïcödé 日本語",
    "\u{1}\u{7f}\u{85}\u{2028}",
    "",
    "--flag-looking",
    "10.1.1.0/24",
    "[not, a, list]",
    "{not: a map}",
    "| not a block",
];

#[test]
fn set_then_get_round_trips_and_preserves_other_entries_and_mode() {
    let dir = TempDir::new("roundtrip");
    let file = dir.path("rmparams");
    fs::write(&file, "---\n# written by hand\n\"existing\": \"kept \\u00e9\"\nplain: hand written # comment\nempty:\n")
        .unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();

    for (i, value) in VALUES.iter().enumerate() {
        let key = format!("key{i}");
        let o = run(&dir, &["setProperty", &key, value]);
        assert!(o.status.success(), "{value:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty());
    }
    // A key with awkward characters too.
    let o = run(&dir, &["setProperty", "odd key: \"🎉\"", "x"]);
    assert!(o.status.success(), "{}", stderr(&o));

    for (i, value) in VALUES.iter().enumerate() {
        let o = run(&dir, &["getProperty", &format!("key{i}")]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(stdout(&o), format!("{value}\n"));
    }
    let get = |k: &str| stdout(&run(&dir, &["getProperty", k]));
    assert_eq!(get("existing"), "kept é\n");
    assert_eq!(get("plain"), "hand written\n");
    assert_eq!(get("empty"), "\n");
    assert_eq!(get("odd key: \"🎉\""), "x\n");

    // Overwrite in place: order kept, one line per entry, canonical form.
    let o = run(&dir, &["setProperty", "existing", "new value"]);
    assert!(o.status.success());
    assert_eq!(get("existing"), "new value\n");
    let text = fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3 + VALUES.len() + 1, "{text}");
    assert_eq!(lines[0], r#""existing": "new value""#);
    assert_eq!(lines[1], r#""plain": "hand written""#);
    assert_eq!(lines[2], r#""empty": """#);
    assert!(text.contains(r#""key7": "two\nlines\n""#), "{text}");
    assert!(text.contains(r#""key11": "\u0001\u007F\u0085\u2028""#), "{text}");
    assert!(text.contains("\"key10\": \"emoji 🎉🐳 and ünïcödé 日本語\""), "{text}");

    assert_eq!(mode(&file), 0o640);
    // No temporary file left behind.
    let names: Vec<_> = fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["rmparams"]);
}

#[test]
fn missing_file_is_created_and_unknown_property_exits_1() {
    let dir = TempDir::new("create");
    let o = run(&dir, &["getProperty", "nothing"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("\"nothing\" is not set"), "{}", stderr(&o));

    let o = run(&dir, &["setProperty", "a", "b"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read_to_string(dir.path("rmparams")).unwrap(), "\"a\": \"b\"\n");
    assert_eq!(mode(&dir.path("rmparams")), 0o644);

    let o = run(&dir, &["getProperty", "nothing"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
}

#[test]
fn operation_properties_use_their_own_file() {
    let dir = TempDir::new("ops");
    assert!(run(&dir, &["setProperty", "k", "lifecycle"]).status.success());
    assert!(run(&dir, &["setOperationProperty", "k", "operation"]).status.success());
    assert_eq!(stdout(&run(&dir, &["getProperty", "k"])), "lifecycle\n");
    assert_eq!(stdout(&run(&dir, &["getOperationProperty", "k"])), "operation\n");
    assert_eq!(fs::read_to_string(dir.path("opparams")).unwrap(), "\"k\": \"operation\"\n");
    assert_eq!(run(&dir, &["getOperationProperty", "missing"]).status.code(), Some(1));
}

#[test]
fn symlinked_params_file_is_rewritten_through_the_link() {
    let dir = TempDir::new("link");
    fs::write(dir.path("real"), "a: 1\n").unwrap();
    symlink(dir.path("real"), dir.path("rmparams")).unwrap();
    assert!(run(&dir, &["setProperty", "b", "2"]).status.success());
    assert!(fs::symlink_metadata(dir.path("rmparams")).unwrap().file_type().is_symlink());
    assert_eq!(fs::read_to_string(dir.path("real")).unwrap(), "\"a\": \"1\"\n\"b\": \"2\"\n");
}

#[test]
fn malformed_file_is_an_error_naming_file_and_line_and_is_left_alone() {
    let dir = TempDir::new("malformed");
    let file = dir.path("rmparams");
    let text = "a: 1\nb: |\n  block\n";
    fs::write(&file, text).unwrap();
    for args in [&["getProperty", "a"][..], &["setProperty", "a", "2"][..]] {
        let o = run(&dir, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains(&format!("{}:2:", file.display())), "{err}");
        assert!(err.contains("block scalars"), "{err}");
    }
    assert_eq!(fs::read_to_string(&file).unwrap(), text);

    fs::write(&file, b"a: \xff\n").unwrap();
    let o = run(&dir, &["getProperty", "a"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not valid UTF-8"), "{}", stderr(&o));
}

#[test]
fn wrong_arguments_are_usage_errors() {
    let dir = TempDir::new("usage");
    for args in [
        &["getProperty"][..],
        &["getProperty", "a", "b"],
        &["setProperty", "a"],
        &["setProperty", "a", "b", "c"],
        &["getOperationProperty"],
        &["setOperationProperty", "a"],
        &["getInterfaces", "x"],
        &["getInterfaceIP"],
        &["getInterfacesSub", "a", "b"],
        &["getInterfaceIP", "10.0.0.0/33"],
        &["noSuchUtility"],
        &[],
    ] {
        let o = run(&dir, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains("usage") || stderr(&o).contains("prefix"), "{args:?}");
        assert!(o.stdout.is_empty());
    }
    assert!(!dir.path("rmparams").exists());
    let o = run(&dir, &["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("getInterfacesSub"));
}

#[test]
fn non_utf8_argument_is_refused() {
    use std::os::unix::ffi::OsStrExt;
    let dir = TempDir::new("utf8");
    let o = Command::new(EXE)
        .args(["setProperty", "a"])
        .arg(std::ffi::OsStr::from_bytes(b"\xff"))
        .env("BERTH_RMPARAMS", dir.path("rmparams"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(!dir.path("rmparams").exists());
}

#[test]
fn dispatch_on_argv0_through_symlinks() {
    let dir = TempDir::new("argv0");
    for name in ["setProperty", "getProperty"] {
        symlink(EXE, dir.path(name)).unwrap();
    }
    let with_env = |cmd: &mut Command| cmd.env("BERTH_RMPARAMS", dir.path("rmparams")).output().unwrap();
    let o = with_env(Command::new(dir.path("setProperty")).args(["targetip", "10.1.1.2"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = with_env(Command::new(dir.path("getProperty")).arg("targetip"));
    assert_eq!(stdout(&o), "10.1.1.2\n");
}

#[test]
fn network_utilities_run() {
    let dir = TempDir::new("net");
    let o = run(&dir, &["getInterfaces"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for name in stdout(&o).lines() {
        assert!(!name.is_empty() && name != "lo", "{name:?}");
        let ip = run(&dir, &["getInterfaceIP", name]);
        assert_eq!(ip.status.code(), Some(0));
        let ip = stdout(&ip).trim().to_owned();
        assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip}");
        let sub = run(&dir, &["getInterfacesSub", name]);
        let sub = stdout(&sub).trim().to_owned();
        assert!(sub.contains('/'), "{sub}");
        // The address and the network designate the same interface.
        assert_eq!(stdout(&run(&dir, &["getInterfaceIP", &sub])).trim(), ip);
        assert_eq!(stdout(&run(&dir, &["getInterfacesSub", &ip])).trim(), sub);
    }
    let o = run(&dir, &["getInterfaceIP", "no-such-interface0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no IPv4 address matches"));
    let o = run(&dir, &["getInterfacesSub", "203.0.113.0/24"]);
    assert_eq!(o.status.code(), Some(1));
}

#[repr(C)]
struct SigSet([u64; 16]);

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
    fn sigemptyset(set: *mut SigSet) -> i32;
    fn sigaddset(set: *mut SigSet, sig: i32) -> i32;
    fn sigprocmask(how: i32, set: *const SigSet, old: *mut SigSet) -> i32;
}

fn entrypoint_exits_on(sig: i32, args: &[&str]) -> String {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(EXE);
    cmd.arg("berth-rm-entrypoint").args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    // The child starts with SIGTERM/SIGINT blocked, so a signal sent before
    // the entrypoint has set itself up stays pending instead of killing it
    // (there is no other reliable readiness signal: while the entrypoint
    // sleeps in sigwait, /proc shows its mask without the waited signals).
    // SAFETY: only async-signal-safe calls on a local sigset.
    unsafe {
        cmd.pre_exec(|| {
            let mut set = SigSet([0; 16]);
            sigemptyset(&mut set);
            sigaddset(&mut set, 15);
            sigaddset(&mut set, 2);
            if sigprocmask(0, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "entrypoint exited on its own");
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { kill(child.id() as i32, sig) }, 0);
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(sent.elapsed() < Duration::from_secs(5), "entrypoint ignored signal {sig}");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    err
}

#[test]
fn entrypoint_exits_0_on_sigterm_and_sigint() {
    assert_eq!(entrypoint_exits_on(15, &[]), "");
    let err = entrypoint_exits_on(2, &["some", "cmd"]);
    assert!(err.contains("ignoring arguments"), "{err}");
}

#[test]
fn invoked_as_bash_it_runs_busybox_sh() {
    if !Path::new("/bin/busybox").exists() {
        eprintln!("/bin/busybox not installed; skipping");
        return;
    }
    let dir = TempDir::new("bash");
    symlink(EXE, dir.path("bash")).unwrap();
    let script = dir.path("script.sh");
    fs::write(&script, "#!/bin/bash\necho \"$((1 + 2)) $1 $#\"\nexit 7\n").unwrap();
    let o = Command::new(dir.path("bash")).arg(&script).args(["a b", "c"]).output().unwrap();
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert_eq!(stdout(&o), "3 a b 2\n");
    let o =
        Command::new(dir.path("bash")).args(["-c", "[[ x == x ]] && echo \"$0 $1\"", "zero", "one"]).output().unwrap();
    assert_eq!(stdout(&o), "zero one\n", "{}", stderr(&o));
}

/// `berth-rm transition`: params in on stdin, the script's output on
/// stderr, the file as the script left it on stdout, its exit status.
#[test]
fn a_transition_in_one_run() {
    let dir = TempDir::new("transition");
    let script = dir.path("install.sh");
    fs::write(
        &script,
        format!("#!/bin/sh\necho to stdout\necho to stderr >&2\n{EXE} setProperty done \"$({EXE} getProperty color)!\"\nexit 3\n"),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = Command::new(EXE)
        .args(["transition", "lifecycle", script.to_str().unwrap()])
        .env("BERTH_RMPARAMS", dir.path("rmparams"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), "\"color\": \"blue \\\"sky\\\"\"\n".as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "\"color\": \"blue \\\"sky\\\"\"\n\"done\": \"blue \\\"sky\\\"!\"\n");
    assert!(stderr(&out).contains("to stdout") && stderr(&out).contains("to stderr"), "{}", stderr(&out));
    // A script that is not there is 127; bad params are 2 and run nothing.
    let missing = run(&dir, &["transition", "lifecycle", "/nonexistent/script"]);
    assert_eq!(missing.status.code(), Some(127), "{}", stderr(&missing));
    let mut bad = Command::new(EXE)
        .args(["transition", "operation", script.to_str().unwrap()])
        .env("BERTH_OPPARAMS", dir.path("opparams"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut bad.stdin.take().unwrap(), b"a:\n  nested: 1\n").unwrap();
    let out = bad.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path("opparams").exists(), "nothing was written");
}
