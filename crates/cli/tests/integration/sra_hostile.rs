//! The SRA face as an attacker uses it (issue 13, items 2, 3 and 19): the
//! SRA controls what is at the paths of its output and status files, and the
//! caller controls the command XML and the directories bound into the
//! container. Each test is a table of input → expected refusal, and each row
//! also checks that nothing leaked or changed.

use crate::sra_support::*;
use berth_testkit::harness::{inspect, unique};
use berth_testkit::http::docker;
use berth_testkit::ImageBuilder;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

/// Long enough for a loaded machine; a command that hangs takes forever.
const DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Exec,
    Run,
    RunJson,
}

/// A row: the SRA `command` makes its file a link to `target`; berth exits
/// with `code`, saying `expected`, and `leaked` (from the target) is never shown.
struct LinkCase {
    what: &'static str,
    verb: Verb,
    command: &'static str,
    target: String,
    code: i32,
    expected: &'static str,
    leaked: String,
}

/// Output and status files that are links (to a 0600 host file, to
/// /etc/passwd) are never followed: their targets are never read, printed
/// or changed, and the links are removed afterwards like the files.
#[test]
fn sra_files_that_are_links_are_never_followed() {
    let sra = loaded();
    let secret = sra.daemon.dir.path().join("secret");
    let secret_text = format!("TOPSECRET-{}", unique("s"));
    std::fs::write(&secret, &secret_text).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let passwd_line = passwd.lines().next().unwrap().to_owned();
    let secret = secret.to_string_lossy().into_owned();

    let row = |what, verb, command, target: &str, code, expected, leaked: &str| LinkCase {
        what,
        verb,
        command,
        target: target.to_owned(),
        code,
        expected,
        leaked: leaked.to_owned(),
    };
    let not_followed = "is a symbolic link; it is not followed";
    let cases = [
        row("output file → 0600 host file", Verb::Run, "linkout", &secret, 9, not_followed, &secret_text),
        row("output file → /etc/passwd", Verb::Run, "linkout", "/etc/passwd", 9, not_followed, &passwd_line),
        row("output file → /etc/passwd, json", Verb::RunJson, "linkout", "/etc/passwd", 9, not_followed, &passwd_line),
        row("status file → 0600 host file", Verb::Run, "linkstatus", &secret, 0, "", &secret_text),
        row("status file of exec → /etc/passwd", Verb::Exec, "linkstatus", "/etc/passwd", 0, "", &passwd_line),
    ];
    for (i, LinkCase { what, verb, command, target, code, expected, leaked }) in cases.into_iter().enumerate() {
        let (tmp, log) = (dir(&sra, &format!("ltmp{i}")), dir(&sra, &format!("llog{i}")));
        let env = format!("TARGET={target}");
        let run = match verb {
            Verb::Exec => exec(&sra, &tmp, &log, command, &["--env", &env]),
            Verb::RunJson => sra_run(&sra, &sra.image, &tmp, &log, command, &["--env", &env, "-o", "json"]),
            Verb::Run => sra_run(&sra, &sra.image, &tmp, &log, command, &["--env", &env]),
        };
        assert_eq!(run.code, code, "{what}: {run:?}");
        assert!(run.stderr.contains(expected), "{what}: {run:?}");
        assert!(!run.stdout.contains(&leaked) && !run.stderr.contains(&leaked), "{what}: the target was read: {run:?}");
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), secret_text, "{what}: the secret changed");
        if verb != Verb::Exec {
            // berth removes the files it named, links included (never their targets).
            let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().map(|e| e.file_name()).collect();
            assert!(left.is_empty(), "{what}: {left:?}");
        }
    }
    assert_eq!(std::fs::read_to_string("/etc/passwd").unwrap(), passwd, "/etc/passwd changed");
    // The status file was looked at, and refused.
    let log = std::fs::read_to_string(sra.daemon.dir.path().join("daemon.log")).unwrap_or_default();
    assert!(log.contains("status file is not read") && log.contains("is a symbolic link"), "{log}");
}

/// A fifo as the output file does not hang `sra run`; fifos as status files
/// (two commands at once) stall neither the command nor the daemon: other
/// requests are answered and a killed app is restarted while they are there.
#[test]
fn fifos_as_sra_files_hang_nothing() {
    let mut sra = loaded();
    let (tmp, log) = (dir(&sra, "qtmp"), dir(&sra, "qlog"));
    let run_args = |command: &str, tmp: &Path, log: &Path| -> Vec<String> {
        let (tmp, log) = (tmp.to_string_lossy(), log.to_string_lossy());
        ["sra", "run", command, "--image", &sra.image, "--tmp-dir", &tmp, "--log-dir", &log].map(str::to_owned).to_vec()
    };

    let run = berth_within(&sra, DEADLINE, &run_args("fifoout", &tmp, &log));
    assert_eq!(run.code, 9, "{run:?}");
    assert!(run.stderr.contains("is not a regular file"), "{run:?}");
    assert!(std::fs::read_dir(&tmp).unwrap().next().is_none(), "the fifo is removed");

    // An app to kill while the fifos are there.
    let app = unique("fifoapp");
    let archive = sra.daemon.archive(
        &ImageBuilder::new(&format!("berth-test/{app}:1")).service().label("berth.test.sweep", "1").layer_marker(&app),
        false,
    );
    assert_eq!(sra.daemon.berth(&["install", &app, &archive.path.to_string_lossy(), "-y"]).code, 0);
    let started_at = inspect(&app).unwrap()["State"]["StartedAt"].clone();

    std::thread::scope(|scope| {
        let pairs: Vec<_> = (0..2).map(|i| (dir(&sra, &format!("ftmp{i}")), dir(&sra, &format!("flog{i}")))).collect();
        let stalled: Vec<_> = pairs
            .iter()
            .map(|(tmp, log)| {
                let (sra, args) = (&sra, run_args("fifostatus", tmp, log));
                scope.spawn(move || berth_within(sra, DEADLINE, &args))
            })
            .collect();
        let is_fifo =
            |dir: &Path| std::fs::read_dir(dir).unwrap().flatten().any(|e| e.file_type().is_ok_and(|t| t.is_fifo()));
        sra.daemon.wait_for("both status files to be fifos", DEADLINE, |_| {
            pairs.iter().all(|(t, _)| is_fifo(t)).then_some(())
        });

        // Meanwhile: the daemon answers, runs other commands, and restarts a killed app.
        for args in [vec!["list"], vec!["sra", "list"]] {
            let run = berth_within(&sra, DEADLINE, &args);
            assert_eq!(run.code, 0, "{args:?}: {run:?}");
        }
        let run = berth_within(&sra, DEADLINE, &run_args("queryInfo", &tmp, &log));
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(docker("POST", &format!("/containers/{app}/kill"), None).status, 204);
        sra.daemon.wait_for("the killed app to be restarted", DEADLINE, |_| {
            let state = inspect(&app)?["State"].clone();
            (state["Running"] == true && state["StartedAt"] != started_at).then_some(())
        });
        assert!(pairs.iter().all(|(t, _)| is_fifo(t)), "the fifos went away before the checks were done");

        for (tmp, _) in &pairs {
            std::fs::write(tmp.join("release"), "").unwrap();
        }
        for run in stalled {
            let run = run.join().unwrap();
            assert_eq!(run.code, 0, "{run:?}");
            assert!(run.stdout.contains("<Released/>"), "{run:?}");
        }
    });
    // Refused once per command, not at every look (ten a second) for as long as it runs.
    let log = std::fs::read_to_string(sra.daemon.dir.path().join("daemon.log")).unwrap_or_default();
    let refusals: Vec<&str> = log.lines().filter(|l| l.contains("status file is not read")).collect();
    assert_eq!(refusals.len(), 2, "{refusals:#?}");
    assert!(refusals.iter().all(|l| l.contains("is not a regular file")), "{refusals:#?}");
}

/// Characters XML 1.0 forbids (NUL, \x01, also as character references)
/// are not well-formed: refused with exit 2 before anything runs.
#[test]
fn command_xml_with_characters_xml_forbids_is_refused() {
    let sra = loaded();
    let (tmp, log) = (dir(&sra, "xtmp"), dir(&sra, "xlog"));
    let wrap = |inside: &str| {
        format!("<Command xmlns=\"http://www.vmware.com/srm/sra/v2\"><Name>query{inside}Info</Name></Command>")
    };
    let cases = [
        ("NUL", wrap("\u{0}"), "U+0000 is not allowed in XML"),
        ("\\x01", wrap("\u{1}"), "U+0001 is not allowed in XML"),
        ("&#0;", wrap("&#0;"), "0x0 character is not permitted in XML"),
        ("&#1;", wrap("&#1;"), "the character reference to U+0001 is not allowed in XML"),
        ("\\x1b (an escape sequence)", wrap("\u{1b}[2J"), "U+001B is not allowed in XML"),
    ];
    for (what, input, expected) in cases {
        let run = exec_input(&sra, &sra.image, &tmp, &log, &input, &[]);
        assert_eq!(run.code, 2, "{what}: {run:?}");
        assert!(run.stderr.contains("the command XML is not well-formed XML: line 1"), "{what}: {run:?}");
        assert!(run.stderr.contains(expected), "{what}: {run:?}");
    }
    // The same in a fragment `sra run` puts into its envelope.
    let connections = sra.daemon.dir.path().join("connections.xml");
    std::fs::write(&connections, "<Connections><Connection id=\"a\u{1}\"/></Connections>").unwrap();
    let run = sra_run(&sra, &sra.image, &tmp, &log, "queryInfo", &["--connections", &connections.to_string_lossy()]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--connections is not well-formed XML"), "{run:?}");
    assert!(commands_run(&log).is_empty(), "a command ran");
    assert!(containers_of(&eid(&sra.image, &tmp, &log)).is_empty(), "an execution container was made");
}

/// System directories, links to them and berth's own state are never bound
/// into an SRA container as its tmp or log directory: exit 2 naming the
/// option, before any container is made. (The commands run as the default
/// 660:660, so even a regression cannot write into the system directories.)
#[test]
fn system_directories_and_links_to_them_are_refused_as_sra_directories() {
    let sra = loaded();
    let (tmp, log) = (dir(&sra, "dtmp"), dir(&sra, "dlog"));
    let links = sra.daemon.dir.path().join("links");
    std::fs::create_dir_all(&links).unwrap();
    std::os::unix::fs::symlink("/etc", links.join("to-etc")).unwrap();
    std::os::unix::fs::symlink("/", links.join("to-root")).unwrap();
    std::os::unix::fs::symlink(sra.daemon.root(), links.join("to-berth")).unwrap();
    let show = |p: &Path| p.to_string_lossy().into_owned();
    let (tmp_ok, log_ok) = (show(&tmp), show(&log));
    let cases: Vec<(&str, String, String, &str)> = vec![
        ("--tmp-dir /", "/".into(), log_ok.clone(), "--tmp-dir"),
        ("--tmp-dir → /etc", show(&links.join("to-etc")), log_ok.clone(), "--tmp-dir"),
        ("--tmp-dir → /", show(&links.join("to-root")), log_ok.clone(), "--tmp-dir"),
        ("--log-dir /etc", tmp_ok.clone(), "/etc".into(), "--log-dir"),
        ("--log-dir /usr/lib", tmp_ok.clone(), "/usr/lib".into(), "--log-dir"),
        ("--log-dir /proc", tmp_ok.clone(), "/proc".into(), "--log-dir"),
        ("--tmp-dir /etc/../etc", "/etc/../etc".into(), log_ok.clone(), "--tmp-dir"),
        ("--tmp-dir berth's root", show(&sra.daemon.root()), log_ok.clone(), "--tmp-dir"),
        ("--log-dir → berth's root", tmp_ok.clone(), show(&links.join("to-berth")), "--log-dir"),
        ("--tmp-dir with ':'", show(&sra.daemon.dir.path().join("a:b")), log_ok.clone(), "--tmp-dir"),
        ("--tmp-dir missing", show(&sra.daemon.dir.path().join("missing")), log_ok.clone(), "--tmp-dir"),
    ];
    std::fs::create_dir_all(sra.daemon.dir.path().join("a:b")).unwrap();
    for (what, tmp_dir, log_dir, option) in cases {
        for verb in ["exec", "run"] {
            let run = match verb {
                "exec" => {
                    exec_input(&sra, &sra.image, Path::new(&tmp_dir), Path::new(&log_dir), &envelope("queryInfo"), &[])
                }
                _ => sra_run(&sra, &sra.image, Path::new(&tmp_dir), Path::new(&log_dir), "queryInfo", &[]),
            };
            assert_eq!(run.code, 2, "{what} ({verb}): {run:?}");
            assert!(run.stderr.contains(option), "{what} ({verb}): {run:?}");
            assert!(containers_of(&eid(&sra.image, Path::new(&tmp_dir), Path::new(&log_dir))).is_empty(), "{what}");
        }
    }
    assert!(sra.daemon.containers().is_empty(), "a container was made: {:?}", sra.daemon.containers());
    assert!(!Path::new("/etc/out-queryInfo.xml").exists() && !Path::new("/out-queryInfo.xml").exists());
    // The same directories, given properly, work.
    assert_eq!(exec(&sra, &tmp, &log, "queryInfo", &[]).code, 0);
}
