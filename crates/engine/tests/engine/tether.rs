//! The tether against the real engine: the same commands give the same
//! answers through the agent as through the exec, a stopped command is
//! killed with its children (a shell-less image's too), the agent is
//! started again after a crash and after a container restart, and without a
//! usable agent every command still goes by exec.

use super::*;
use berth_engine::TetherPlacement;
use std::os::unix::fs::PermissionsExt;

/// A placement in a fresh directory, as the daemon makes it: root's, 0700.
struct Placement {
    _dir: tempfile::TempDir,
    placement: TetherPlacement,
}

fn placement(agent: &[u8]) -> Placement {
    let dir = tempfile::tempdir().unwrap();
    let (agent_dir, run_root) = (dir.path().join("agent"), dir.path().join("run"));
    for d in [&agent_dir, &run_root] {
        std::fs::create_dir(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let file = agent_dir.join("berth-tether");
    std::fs::write(&file, agent).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    Placement { _dir: dir, placement: TetherPlacement { agent_dir, run_root } }
}

async fn tethered(placement: &Placement) -> DockerEngine {
    engine().await.with_tether(placement.placement.clone())
}

/// The service image with users and groups, a working directory and `HOME` unset.
fn users_image(shell: bool) -> ImageBuilder {
    let base = if shell { service_image() } else { shell_less_image() };
    base.file("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nsrm:x:660:661:SRA:/home/srm:/bin/sh\n", 0o644)
        .file("/etc/group", "root:x:0:\nwheel:x:10:srm\nsrm:x:661:\nextra:x:700:srm,root\n", 0o644)
        .dir("/home/srm", 0o755)
        .workdir("/etc/app")
}

/// The parent of a command run by `engine`: the agent's pid through the
/// tether; 0 by exec (the engine's shim is outside the container).
async fn parent_of_a_command(engine: &DockerEngine, container: &str) -> u32 {
    let said = engine.exec(container, request(&["/bin/busybox", "sh", "-c", "echo $PPID"]), never()).await.unwrap();
    String::from_utf8_lossy(&said.stdout).trim().parse().unwrap()
}

async fn agents(plain: &DockerEngine, container: &str) -> Vec<String> {
    let pids = plain.exec(container, request(&["/bin/busybox", "pidof", "berth-tether"]), never()).await.unwrap();
    String::from_utf8_lossy(&pids.stdout).split_whitespace().map(str::to_owned).collect()
}

/// The cases beyond the exec's own: users by name and number with their
/// groups, the container's default directory and user, `HOME`, the whole
/// environment, the ownership of the files a command makes, signals.
fn tether_cases(busybox: &str) -> Vec<ExecRequest> {
    let cmd = |argv: &[&str]| {
        let mut full = vec![busybox];
        full.extend_from_slice(argv);
        request(&full)
    };
    let owned = "rm -f /tmp/owned; touch /tmp/owned; stat -c '%u:%g %a' /tmp/owned; rm /tmp/owned";
    let mut cases: Vec<ExecRequest> = ["", "srm", "660", "660:661", "srm:extra", "root", "1234", "1234:5", "0:700"]
        .iter()
        .flat_map(|user| {
            let user = (!user.is_empty()).then(|| (*user).to_owned());
            [
                ExecRequest { user: user.clone(), ..cmd(&["id"]) },
                ExecRequest { user: user.clone(), ..cmd(&["sh", "-c", owned]) },
                ExecRequest { user: user.clone(), ..cmd(&["sh", "-c", "echo \"$HOME\" \"$(pwd)\"; umask"]) },
            ]
        })
        .collect();
    cases.extend([
        ExecRequest { env: vec!["A=1".into(), "PATH=/bin".into(), "HOSTNAME".into()], ..cmd(&["env"]) },
        cmd(&["env"]),
        ExecRequest { env: vec!["HOME=/given".into()], user: Some("srm".into()), ..cmd(&["sh", "-c", "echo $HOME"]) },
        ExecRequest { workdir: Some("/tmp".into()), user: Some("660".into()), ..cmd(&["pwd"]) },
        cmd(&["sh", "-c", "kill -TERM $$"]),
        cmd(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
        ExecRequest { stdin: Some(Bytes::from(vec![b'x'; 3 << 20])), ..cmd(&["wc", "-c"]) },
        ExecRequest { stdin: Some(Bytes::from_static(b"ignored")), ..cmd(&["true"]) },
        cmd(&["sh", "-c", "ls -l /proc/self/fd | wc -l"]),
        cmd(&["sh", "-c", "head -c 5000000 /dev/zero | wc -c; echo done >&2"]),
    ]);
    cases
}

/// Output that names what legitimately differs between two containers.
fn comparable(mut result: ExecResult, tethered_id: &str, plain_id: &str) -> ExecResult {
    let scrub = |bytes: &mut Vec<u8>| {
        let text = String::from_utf8_lossy(bytes).replace(&tethered_id[..12], "ID").replace(&plain_id[..12], "ID");
        *bytes = text.into_bytes();
    };
    scrub(&mut result.stdout);
    scrub(&mut result.stderr);
    scrub(&mut result.combined);
    result
}

fn sorted_lines(mut result: ExecResult) -> ExecResult {
    let mut lines: Vec<String> = String::from_utf8_lossy(&result.stdout).lines().map(str::to_owned).collect();
    lines.sort();
    result.stdout = lines.join("\n").into_bytes();
    result
}

#[tokio::test]
async fn the_tether_answers_as_the_exec_does() {
    let sweep = Sweep::default();
    let agent = placement(berth_tether::AGENT);
    let (through, plain) = (tethered(&agent).await, engine().await);
    for shell in [true, false] {
        let image = load(&plain, &sweep, users_image(shell)).await;
        let tethered_id = running(&through, &sweep, &image).await;
        let plain_id = running(&plain, &sweep, &image).await;
        let mut cases: Vec<ExecRequest> = exec_cases("/bin/busybox").into_iter().map(|(r, _)| r).collect();
        cases.extend(tether_cases("/bin/busybox"));
        // The first command starts the agent.
        let agent_pid = parent_of_a_command(&through, &tethered_id).await;
        assert_ne!(agent_pid, 0, "through the tether");
        assert_eq!(agents(&plain, &tethered_id).await, [agent_pid.to_string()]);
        for case in &cases {
            let got =
                comparable(through.exec(&tethered_id, case.clone(), never()).await.unwrap(), &tethered_id, &plain_id);
            let want = comparable(plain.exec(&plain_id, case.clone(), never()).await.unwrap(), &tethered_id, &plain_id);
            // The exec's wrapper shell passes the environment on in its own order.
            let (got, want) = if case.argv.last().is_some_and(|a| a == "env") {
                (sorted_lines(got), sorted_lines(want))
            } else {
                (got, want)
            };
            assert_eq!(
                (got.exit_code, String::from_utf8_lossy(&got.stdout), String::from_utf8_lossy(&got.stderr)),
                (want.exit_code, String::from_utf8_lossy(&want.stdout), String::from_utf8_lossy(&want.stderr)),
                "{case:?} (shell: {shell})"
            );
            assert_eq!(got.combined.len(), want.combined.len(), "{case:?}");
        }
        assert_eq!(parent_of_a_command(&through, &tethered_id).await, agent_pid, "the same agent answers");

        // What it cannot run as the exec would, the exec runs: the engine's own errors.
        for case in [
            ExecRequest { user: Some("nobody".into()), ..request(&["/bin/busybox", "true"]) },
            request(&["/bin/none"]),
            ExecRequest { workdir: Some("/none".into()), ..request(&["/bin/busybox", "true"]) },
        ] {
            let got = through.exec(&tethered_id, case.clone(), never()).await;
            let want = plain.exec(&plain_id, case.clone(), never()).await;
            let shape = |r: Result<ExecResult, EngineError>| {
                r.map(|r| (r.exit_code, comparable(r, &tethered_id, &plain_id).combined))
                    .map_err(|e| e.to_string().replace(&tethered_id, "ID").replace(&plain_id, "ID"))
            };
            assert_eq!(shape(got), shape(want), "{case:?}");
        }
        // Its filesystem shows only the mount points, under `/dev` (which
        // the container's own tmpfs hides whenever an image made from it runs).
        let diff = raw("GET", &format!("/containers/{tethered_id}/changes"), None).json();
        for change in diff.as_array().into_iter().flatten() {
            let path = change["Path"].as_str().unwrap_or_default();
            assert!(path == "/dev" || path.starts_with("/dev/.berth-tether"), "{diff}");
        }
        // A container made without the tether (by someone else) is exec'd as before.
        assert_eq!(parent_of_a_command(&through, &plain_id).await, 0);

        through.remove(&tethered_id).await.unwrap();
    }
    let left: Vec<_> = std::fs::read_dir(&agent.placement.run_root).unwrap().collect();
    assert!(left.is_empty(), "a removed container's socket directory goes with it: {left:?}");
}

#[tokio::test]
async fn a_stopped_command_is_killed_through_the_tether_even_without_a_shell() {
    let sweep = Sweep::default();
    let agent = placement(berth_tether::AGENT);
    let engine = Arc::new(tethered(&agent).await);
    let plain = super::engine().await;
    for shell in [true, false] {
        let image = load(&plain, &sweep, users_image(shell)).await;
        let container = running(&engine, &sweep, &image).await;
        let sleeps = || async {
            let ps = plain.exec(&container, request(&["/bin/busybox", "ps"]), never()).await.unwrap();
            String::from_utf8_lossy(&ps.stdout).lines().filter(|l| l.ends_with("sleep 303")).count()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let command =
            request(&["/bin/busybox", "sh", "-c", "/bin/busybox sleep 303 & /bin/busybox sleep 303; echo never"]);
        let run = tokio::spawn({
            let (engine, container) = (engine.clone(), container.clone());
            async move { engine.exec(&container, command, stopped.map(drop).boxed()).await }
        });
        let deadline = Instant::now() + PATIENCE;
        while sleeps().await < 2 {
            assert!(Instant::now() < deadline, "the sleeps did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(()).unwrap();
        let result = bounded(run).await.unwrap().unwrap();
        assert_eq!((result.exit_code, result.killed), (None, true), "{result:?} (shell: {shell})");
        assert!(!String::from_utf8_lossy(&result.combined).contains("never"));
        assert_eq!(sleeps().await, 0, "every process of the command is gone (shell: {shell})");
        // Stopped before it began.
        let result = bounded(engine.exec(
            &container,
            request(&["/bin/busybox", "sleep", "304"]),
            futures::future::ready(()).boxed(),
        ))
        .await
        .unwrap();
        assert_eq!((result.exit_code, result.killed), (None, true), "{result:?}");
    }
}

#[tokio::test]
async fn the_agent_comes_back_after_a_crash_and_a_container_restart() {
    let sweep = Sweep::default();
    let agent = placement(berth_tether::AGENT);
    let (engine, plain) = (tethered(&agent).await, super::engine().await);
    let image = load(&plain, &sweep, users_image(true)).await;
    let container = running(&engine, &sweep, &image).await;
    let first = parent_of_a_command(&engine, &container).await;
    assert_ne!(first, 0);

    // The agent dies: the next command starts it again and is answered.
    let killed =
        plain.exec(&container, request(&["sh", "-c", "kill -9 $(pidof berth-tether)"]), never()).await.unwrap();
    assert_eq!(killed.exit_code, Some(0), "{killed:?}");
    let second = parent_of_a_command(&engine, &container).await;
    assert!(second != 0 && second != first, "a new agent: {first} then {second}");
    assert_eq!(parent_of_a_command(&engine, &container).await, second);

    // A restart takes the agent with it; the stale socket is replaced.
    engine.stop(&container, 1).await.unwrap();
    engine.start(&container).await.unwrap();
    let after_restart = parent_of_a_command(&engine, &container).await;
    assert_eq!(agents(&plain, &container).await, [after_restart.to_string()]);

    // Commands at once, before any agent runs: one agent comes up, all are answered.
    engine.stop(&container, 1).await.unwrap();
    engine.start(&container).await.unwrap();
    let all = futures::future::join_all((0..8).map(|i| {
        let engine = &engine;
        let container = &container;
        async move { engine.exec(container, request(&["sh", "-c", &format!("echo {i}")]), never()).await.unwrap() }
    }))
    .await;
    for (i, result) in all.into_iter().enumerate() {
        assert_eq!(result.stdout, format!("{i}\n").into_bytes());
    }
    assert_eq!(agents(&plain, &container).await.len(), 1, "one agent");
}

#[tokio::test]
async fn without_a_usable_agent_commands_go_by_exec() {
    let sweep = Sweep::default();
    // An agent that cannot run here (as one built for another architecture would not).
    let broken = placement(b"\x7fELF not really an executable");
    let (engine, plain) = (tethered(&broken).await, super::engine().await);
    let image = load(&plain, &sweep, users_image(true)).await;
    let container = running(&engine, &sweep, &image).await;
    let plain_id = running(&plain, &sweep, &image).await;
    for (case, _) in exec_cases("/bin/busybox") {
        let got = comparable(engine.exec(&container, case.clone(), never()).await.unwrap(), &container, &plain_id);
        let want = comparable(plain.exec(&plain_id, case.clone(), never()).await.unwrap(), &container, &plain_id);
        assert_eq!(got, want, "{case:?}");
    }
    assert_eq!(parent_of_a_command(&engine, &container).await, 0, "by exec");
    assert!(agents(&plain, &container).await.is_empty());
}
