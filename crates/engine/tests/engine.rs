//! The adapter against the real local Docker Engine (`scripts/setup.sh`
//! starts it). Every test builds its own images offline (busybox-static),
//! names everything uniquely, labels it for the sweep and removes it in a
//! guard, so the tests run in parallel and clean up when they fail.

use berth_core::engine::{
    ContainerConfig, ContainerEventKind, Engine, EngineError, ExecRequest, ExecResult, Filter, RunState, StopSignal,
};
use berth_core::run_args::MountSpec;
use berth_core::spec::{LABEL_APP, LABEL_INSTANCE};
use berth_core::status::Health;
use berth_engine::{DockerEngine, EngineTimeouts};
use berth_testkit::harness::unique;
use berth_testkit::http::docker as raw;
use berth_testkit::image::HOST_BUSYBOX;
use berth_testkit::ImageBuilder;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SWEEP_LABEL: &str = "berth.test.sweep";
/// How long a test waits for a condition before it fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// What a test made in the engine, removed when the test ends however it ends.
#[derive(Default)]
struct Sweep {
    containers: Mutex<Vec<String>>,
    images: Mutex<Vec<String>>,
}

impl Sweep {
    fn container(&self, id: &str) {
        self.containers.lock().unwrap().push(id.to_owned());
    }
}

impl Drop for Sweep {
    fn drop(&mut self) {
        for id in self.containers.lock().unwrap().iter() {
            raw("DELETE", &format!("/containers/{id}?force=1&v=1"), None);
        }
        for id in self.images.lock().unwrap().iter() {
            raw("DELETE", &format!("/images/{id}?force=1"), None);
        }
    }
}

async fn engine() -> DockerEngine {
    DockerEngine::connect(None, EngineTimeouts::default()).await.expect("connect")
}

fn never() -> StopSignal {
    futures::future::pending().boxed()
}

/// Loads `builder` (tagged uniquely, with the sweep label) through the
/// adapter's own `load_image`; returns the image id.
async fn load(engine: &DockerEngine, sweep: &Sweep, builder: ImageBuilder) -> String {
    let bytes = builder.label(SWEEP_LABEL, "1").to_tar_bytes().expect("archive");
    let archive = futures::stream::iter([Ok(Bytes::from(bytes))]).boxed();
    let loaded = engine.load_image(archive, Arc::new(|_| {})).await.expect("load");
    let reference = loaded.first().expect("something loaded").clone();
    let id = engine.inspect_image(&reference).await.unwrap().expect("loaded image").id;
    sweep.images.lock().unwrap().push(id.clone());
    id
}

/// A busybox image with a shell, running until stopped, with some files.
fn service_image() -> ImageBuilder {
    let name = unique("berth-test/engine");
    ImageBuilder::new(&format!("{name}:1")).service().layer_marker(&name).file("/etc/app/conf", "x=1", 0o644).file(
        "/etc/app/sub/more",
        "more",
        0o600,
    )
}

/// busybox without `/bin/sh` (nor any applet link): commands name `/bin/busybox`.
fn shell_less_image() -> ImageBuilder {
    let name = unique("berth-test/engine-nosh");
    ImageBuilder::new(&format!("{name}:1"))
        .dir("/bin", 0o755)
        .host_file("/bin/busybox", HOST_BUSYBOX, 0o755)
        .dir("/tmp", 0o1777)
        .dir("/etc", 0o755)
        .layer_marker(&name)
        .cmd(&["/bin/busybox", "sh", "-c", "trap 'exit 0' TERM INT; while :; do /bin/busybox sleep 1 & wait $!; done"])
}

/// An app-like configuration: named, owned by `instance`, its private directory bound.
fn app_config(name: &str, image: &str, instance: &str, private_dir: &str) -> ContainerConfig {
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    labels.insert(LABEL_APP.into(), name.into());
    labels.insert(LABEL_INSTANCE.into(), instance.into());
    labels.insert(SWEEP_LABEL.into(), "1".into());
    ContainerConfig {
        name: Some(name.to_owned()),
        image: image.to_owned(),
        mounts: vec![MountSpec { source: Some(private_dir.to_owned()), target: "/tpc".into(), read_only: false }],
        nano_cpus: Some(500_000_000),
        memory: Some(64 << 20),
        labels,
        ..Default::default()
    }
}

async fn running(engine: &DockerEngine, sweep: &Sweep, image: &str) -> String {
    let instance = unique("inst");
    let config = ContainerConfig {
        image: image.to_owned(),
        labels: [(SWEEP_LABEL.to_string(), "1".to_string()), (LABEL_INSTANCE.to_string(), instance)].into(),
        ..Default::default()
    };
    let id = engine.create(&config).await.expect("create");
    sweep.container(&id);
    engine.start(&id).await.expect("start");
    id
}

fn request(argv: &[&str]) -> ExecRequest {
    ExecRequest { argv: argv.iter().map(|a| (*a).to_owned()).collect(), ..Default::default() }
}

/// A call that must end (or the test fails rather than hangs).
async fn bounded<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, call).await.expect("the call ended")
}

async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(what: &str, mut probe: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_app_container_lives_and_goes() {
    let (engine, sweep) = (engine().await, Sweep::default());
    let image = load(&engine, &sweep, service_image()).await;
    let private = tempfile::tempdir().unwrap();
    std::fs::write(private.path().join("seed"), "from the host").unwrap();
    let (name, instance) = (unique("berth-engine-app"), unique("inst"));
    let config = app_config(&name, &image, &instance, &private.path().display().to_string());

    let id = engine.create(&config).await.unwrap();
    sweep.container(&id);
    assert!(matches!(engine.create(&config).await, Err(EngineError::Conflict { .. })));
    let missing = ContainerConfig {
        name: Some(unique("berth-engine-none")),
        image: "berth-test/none:0".into(),
        ..config.clone()
    };
    match engine.create(&missing).await {
        Err(EngineError::NotFound { what }) => assert!(what.contains("berth-test/none:0"), "{what}"),
        other => panic!("{other:?}"),
    }

    let created = engine.inspect(&name).await.unwrap().unwrap();
    assert_eq!(
        (created.id.as_str(), created.state, created.image_id.as_str()),
        (id.as_str(), RunState::Created, image.as_str())
    );
    assert_eq!(created.started_at, None, "Docker's zero time is no start");
    engine.start(&name).await.unwrap();
    engine.start(&id).await.unwrap();
    let started = engine.inspect(&id).await.unwrap().unwrap();
    assert_eq!(started.state, RunState::Running);
    assert!(started.started_at.is_some());
    assert_eq!(started.label(LABEL_INSTANCE), Some(instance.as_str()));

    let seen = engine.exec(&name, request(&["cat", "/tpc/seed"]), never()).await.unwrap();
    assert_eq!(seen.stdout, b"from the host");
    let inspected = raw("GET", &format!("/containers/{id}/json"), None).json();
    assert_eq!(inspected["HostConfig"]["NanoCpus"], 500_000_000);
    assert_eq!(inspected["HostConfig"]["RestartPolicy"]["Name"], "no");
    assert_eq!(inspected["Config"]["OpenStdin"], false);

    let mine = engine.list(&Filter::default().label(LABEL_INSTANCE, &instance)).await.unwrap();
    assert_eq!(
        mine.iter().map(|c| (c.id.as_str(), c.name.as_str())).collect::<Vec<_>>(),
        [(id.as_str(), name.as_str())]
    );
    assert_eq!(mine[0].state, RunState::Running);
    let with_app = Filter::default().label(LABEL_INSTANCE, &instance).has_label(LABEL_APP);
    assert_eq!(engine.list(&with_app).await.unwrap().len(), 1);
    assert!(engine.list(&Filter::default().label(LABEL_INSTANCE, &unique("other"))).await.unwrap().is_empty());

    let renamed = format!("{name}-old");
    engine.rename(&name, &renamed).await.unwrap();
    assert!(engine.inspect(&name).await.unwrap().is_none());
    assert_eq!(engine.inspect(&renamed).await.unwrap().unwrap().id, id);
    assert!(matches!(engine.rename(&name, "x").await, Err(EngineError::NotFound { .. })));

    engine.stop(&renamed, 10).await.unwrap();
    let stopped = engine.inspect(&id).await.unwrap().unwrap();
    assert_eq!((stopped.state, stopped.exit_code), (RunState::Exited, Some(0)));
    engine.stop(&id, 10).await.unwrap();
    let listed = engine.list(&Filter::default().label(LABEL_INSTANCE, &instance)).await.unwrap();
    assert_eq!((listed[0].state, listed[0].exit_code), (RunState::Exited, Some(0)));

    engine.remove(&id).await.unwrap();
    assert!(engine.inspect(&id).await.unwrap().is_none());
    engine.remove(&id).await.unwrap();
    engine.stop(&id, 1).await.unwrap();
}

#[tokio::test]
async fn an_open_stdin_container_waits_on_its_input() {
    let (engine, sweep) = (engine().await, Sweep::default());
    let name = unique("berth-test/engine-cat");
    let image =
        load(&engine, &sweep, ImageBuilder::new(&format!("{name}:1")).busybox().layer_marker(&name).cmd(&["cat"]))
            .await;
    let instance = unique("inst");
    let labels: BTreeMap<String, String> =
        [(SWEEP_LABEL.to_string(), "1".to_string()), (LABEL_INSTANCE.to_string(), instance.clone())].into();
    let open = ContainerConfig { image: image.clone(), labels: labels.clone(), open_stdin: true, ..Default::default() };
    let closed = ContainerConfig { open_stdin: false, ..open.clone() };
    let open_id = engine.create(&open).await.unwrap();
    sweep.container(&open_id);
    let closed_id = engine.create(&closed).await.unwrap();
    sweep.container(&closed_id);
    let inspected = raw("GET", &format!("/containers/{open_id}/json"), None).json();
    assert_eq!(
        (inspected["Config"]["OpenStdin"].clone(), inspected["Config"]["Tty"].clone()),
        (true.into(), false.into())
    );
    assert_eq!(inspected["Config"]["StdinOnce"], false);

    engine.start(&open_id).await.unwrap();
    engine.start(&closed_id).await.unwrap();
    // Without stdin `cat` ends at once; with it, it waits as `docker run -di` does.
    let (e, closed) = (&engine, &closed_id);
    let exited = wait_for("the container without stdin to exit", || async move {
        e.inspect(closed).await.unwrap().filter(|c| c.state == RunState::Exited)
    })
    .await;
    assert_eq!(exited.exit_code, Some(0));
    assert_eq!(engine.inspect(&open_id).await.unwrap().unwrap().state, RunState::Running);
    let listed = engine.list(&Filter::default().label(LABEL_INSTANCE, &instance)).await.unwrap();
    assert_eq!(listed.len(), 2);
    engine.stop(&open_id, 1).await.unwrap();
    engine.remove(&open_id).await.unwrap();
    engine.remove(&closed_id).await.unwrap();
}

/// The cases every exec must get right, as `(request, expected)`: stdin
/// (closed after), user, environment, directory, exit code and both streams.
fn exec_cases(busybox: &str) -> Vec<(ExecRequest, ExecResult)> {
    let cmd = |argv: &[&str]| {
        let mut full = vec![busybox];
        full.extend_from_slice(argv);
        request(&full)
    };
    let result = |exit: i64, stdout: &str, stderr: &str| ExecResult {
        exit_code: Some(exit),
        stdout: stdout.into(),
        stderr: stderr.into(),
        combined: format!("{stdout}{stderr}").into_bytes(),
        killed: false,
    };
    vec![
        (
            ExecRequest { stdin: Some(Bytes::from_static(b"line one\nline two")), ..cmd(&["cat"]) },
            result(0, "line one\nline two", ""),
        ),
        (ExecRequest { stdin: Some(Bytes::new()), ..cmd(&["wc", "-c"]) }, result(0, "0\n", "")),
        (ExecRequest { user: Some("1:2".into()), ..cmd(&["id", "-u"]) }, result(0, "1\n", "")),
        (ExecRequest { user: Some("1:2".into()), ..cmd(&["id", "-g"]) }, result(0, "2\n", "")),
        (
            ExecRequest { env: vec!["GREETING=hello there".into()], ..cmd(&["sh", "-c", "echo \"$GREETING\""]) },
            result(0, "hello there\n", ""),
        ),
        (ExecRequest { workdir: Some("/etc".into()), ..cmd(&["pwd"]) }, result(0, "/etc\n", "")),
        (cmd(&["sh", "-c", "exit 7"]), result(7, "", "")),
        (cmd(&["sh", "-c", "echo to-err >&2; exit 1"]), result(1, "", "to-err\n")),
        (
            cmd(&["sh", "-c", "printf '%s|' \"$0\" \"$@\"", "zero", "a b", "$HOME", ""]),
            result(0, "zero|a b|$HOME||", ""),
        ),
    ]
}

#[tokio::test]
async fn exec_honours_its_request_with_and_without_the_wrapper() {
    let (engine, sweep) = (engine().await, Sweep::default());
    let with_shell = load(&engine, &sweep, service_image()).await;
    let without = load(&engine, &sweep, shell_less_image()).await;
    let wrapped = running(&engine, &sweep, &with_shell).await;
    let direct = running(&engine, &sweep, &without).await;
    assert!(engine.stat(&wrapped, "/bin/sh").await.unwrap().is_some());
    assert!(engine.stat(&direct, "/bin/sh").await.unwrap().is_none());

    for (request, expected) in exec_cases("/bin/busybox") {
        let through = engine.exec(&wrapped, request.clone(), never()).await.unwrap();
        let plain = engine.exec(&direct, request.clone(), never()).await.unwrap();
        assert_eq!(through, expected, "{request:?} through the wrapper");
        assert_eq!(plain, expected, "{request:?} without it");
    }

    // The whole environment, as the command sees it, is the same either way
    // (its order is the shell's).
    let env = ExecRequest { env: vec!["A=1".into(), "PWD=/given".into()], ..request(&["/bin/busybox", "env"]) };
    let sorted = |result: ExecResult| {
        let mut lines: Vec<String> = String::from_utf8(result.stdout).unwrap().lines().map(str::to_owned).collect();
        lines.retain(|l| !l.starts_with("HOSTNAME="));
        lines.sort();
        lines
    };
    let through = sorted(engine.exec(&wrapped, env.clone(), never()).await.unwrap());
    let plain = sorted(engine.exec(&direct, env, never()).await.unwrap());
    assert_eq!(through, plain);
    assert!(
        through.contains(&"PWD=/given".to_owned()) && !through.iter().any(|l| l.starts_with("SHLVL=")),
        "{through:?}"
    );

    // Interleaved output keeps each stream's order.
    let both =
        engine.exec(&wrapped, request(&["sh", "-c", "echo 1; echo 2 >&2; echo 3; echo 4 >&2"]), never()).await.unwrap();
    assert_eq!((&both.stdout[..], &both.stderr[..]), (&b"1\n3\n"[..], &b"2\n4\n"[..]));
    let mut combined: Vec<&str> = std::str::from_utf8(&both.combined).unwrap().lines().collect();
    combined.sort_unstable();
    assert_eq!(combined, ["1", "2", "3", "4"]);

    // Refusals.
    assert!(matches!(
        engine.exec(&wrapped, request(&[]), never()).await,
        Err(EngineError::Rejected { status: 400, .. })
    ));
    assert!(matches!(
        engine.exec(&unique("berth-none"), request(&["true"]), never()).await,
        Err(EngineError::NotFound { .. })
    ));
    engine.stop(&wrapped, 1).await.unwrap();
    assert!(matches!(engine.exec(&wrapped, request(&["true"]), never()).await, Err(EngineError::Conflict { .. })));
}

/// A container whose main process (`cat`, stdin open) starts nothing, so
/// that every other process in it was started by an exec.
async fn quiet_container(engine: &DockerEngine, sweep: &Sweep) -> String {
    let name = unique("berth-test/engine-quiet");
    let image =
        load(engine, sweep, ImageBuilder::new(&format!("{name}:1")).busybox().layer_marker(&name).cmd(&["cat"])).await;
    let config = ContainerConfig {
        image,
        labels: [(SWEEP_LABEL.to_string(), "1".to_string())].into(),
        open_stdin: true,
        ..Default::default()
    };
    let id = engine.create(&config).await.unwrap();
    sweep.container(&id);
    engine.start(&id).await.unwrap();
    id
}

/// How many live processes in the container run exactly `command` (a
/// zombie shows as `[name]`, without arguments; `[s]` keeps grep from
/// counting itself).
async fn count(engine: &DockerEngine, container: &str, command: &str) -> usize {
    let script = format!("ps | grep -c ' [{}]{}$'", &command[..1], &command[1..]);
    let found = engine.exec(container, request(&["sh", "-c", &script]), never()).await.unwrap();
    String::from_utf8(found.stdout).unwrap().trim().parse().unwrap()
}

#[tokio::test]
async fn a_stopped_command_is_killed_with_its_children() {
    let sweep = Sweep::default();
    let engine = Arc::new(engine().await);
    let container = quiet_container(&engine, &sweep).await;

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let command = request(&["sh", "-c", "sleep 300 & sleep 300; echo never"]);
    let run = tokio::spawn({
        let (engine, container) = (engine.clone(), container.clone());
        async move { engine.exec(&container, command, stopped.map(drop).boxed()).await }
    });
    let (e, c) = (&*engine, container.as_str());
    wait_for("both sleeps to run", || async move { (count(e, c, "sleep 300").await == 2).then_some(()) }).await;
    stop.send(()).unwrap();
    let result = bounded(run).await.unwrap().unwrap();
    assert_eq!((result.exit_code, result.killed), (None, true), "{result:?}");
    assert!(!String::from_utf8_lossy(&result.combined).contains("never"));
    assert_eq!(count(&engine, &container, "sleep 300").await, 0);
    assert_eq!(engine.inspect(&container).await.unwrap().unwrap().state, RunState::Running);

    // Stopped before it could even begin: killed all the same.
    let result = bounded(engine.exec(&container, request(&["sleep", "301"]), futures::future::ready(()).boxed())).await;
    let result = result.unwrap();
    assert_eq!((result.exit_code, result.killed), (None, true), "{result:?}");
    assert_eq!(count(&engine, &container, "sleep 301").await, 0);
}

#[tokio::test]
async fn without_a_shell_a_stopped_command_is_abandoned() {
    let (engine, sweep) = (engine().await, Sweep::default());
    let image = load(&engine, &sweep, shell_less_image()).await;
    let container = running(&engine, &sweep, &image).await;
    let stop = tokio::time::sleep(Duration::from_millis(200)).boxed();
    let result = bounded(engine.exec(&container, request(&["/bin/busybox", "sleep", "302"]), stop)).await.unwrap();
    assert_eq!((result.exit_code, result.killed), (None, false));
    engine.remove(&container).await.unwrap();
}

#[tokio::test]
async fn files_are_copied_out_and_stat_ed() {
    let (engine, sweep) = (engine().await, Sweep::default());
    let image = load(&engine, &sweep, service_image()).await;
    // Never started: the way to read an image's files.
    let scratch = engine
        .create(&ContainerConfig {
            image,
            labels: [(SWEEP_LABEL.to_string(), "1".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    sweep.container(&scratch);

    let entries = |tar: Vec<u8>| -> Vec<(String, Vec<u8>)> {
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut entries = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut contents = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut contents).unwrap();
            entries.push((entry.path().unwrap().display().to_string(), contents));
        }
        entries
    };
    let file = engine.copy_from(&scratch, "/etc/app/conf", 1 << 20).await.unwrap().unwrap();
    assert_eq!(entries(file), [("conf".to_owned(), b"x=1".to_vec())]);
    let dir = entries(engine.copy_from(&scratch, "/etc/app", 1 << 20).await.unwrap().unwrap());
    let names: Vec<&str> = dir.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["app/", "app/conf", "app/sub/", "app/sub/more"]);
    assert_eq!(engine.copy_from(&scratch, "/etc/nope", 1 << 20).await.unwrap(), None);
    assert!(matches!(
        engine.copy_from(&scratch, "/bin/busybox", 4096).await,
        Err(EngineError::Rejected { status: 413, .. })
    ));
    assert!(matches!(
        engine.copy_from(&unique("berth-none"), "/etc", 1 << 20).await,
        Err(EngineError::NotFound { .. })
    ));

    let conf = engine.stat(&scratch, "/etc/app/conf").await.unwrap().unwrap();
    assert_eq!((conf.mode, conf.size, conf.is_dir), (0o644, 3, false));
    let more = engine.stat(&scratch, "/etc/app/sub/more").await.unwrap().unwrap();
    assert_eq!(more.mode, 0o600);
    assert!(engine.stat(&scratch, "/etc/app").await.unwrap().unwrap().is_dir);
    assert_eq!(engine.stat(&scratch, "/tmp").await.unwrap().unwrap().mode, 0o1777);
    assert_eq!(engine.stat(&scratch, "/etc/nope").await.unwrap(), None);
    assert!(matches!(engine.stat(&unique("berth-none"), "/etc").await, Err(EngineError::NotFound { .. })));
}

#[tokio::test]
async fn events_carry_the_container_s_labels() {
    let (engine, sweep) = (engine().await, Sweep::default());
    let name = unique("berth-test/engine-health");
    let builder =
        ImageBuilder::new(&format!("{name}:1")).service().layer_marker(&name).healthcheck(&["/bin/true"], 300, 1);
    let image = load(&engine, &sweep, builder).await;
    let instance = unique("inst");
    let config = app_config(&unique("berth-engine-ev"), &image, &instance, "/tmp");
    let id = engine.create(&config).await.unwrap();
    sweep.container(&id);

    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let mut stream = engine.events(&Filter::default().label(LABEL_INSTANCE, &instance));
    let collector = tokio::spawn(async move {
        while let Some(event) = stream.next().await {
            if tx.send(event).is_err() {
                break;
            }
        }
    });
    // The stream is live once the engine has it: until a start is seen, start again.
    let deadline = Instant::now() + PATIENCE;
    let start = 'started: loop {
        engine.start(&id).await.unwrap();
        while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(2), events.recv()).await {
            let event = event.unwrap();
            if event.kind == ContainerEventKind::Start {
                break 'started event;
            }
        }
        assert!(Instant::now() < deadline, "no event came");
        engine.stop(&id, 1).await.unwrap();
    };
    assert_eq!(start.kind, ContainerEventKind::Start);
    assert_eq!(start.container_id, id);
    assert_eq!(start.labels, config.labels);
    let healthy = loop {
        let event = next_event(&mut events).await;
        if event.kind == ContainerEventKind::Health(Health::Healthy) {
            break event;
        }
    };
    assert_eq!(healthy.labels, config.labels);
    engine.stop(&id, 5).await.unwrap();
    loop {
        if let ContainerEventKind::Die { exit_code } = next_event(&mut events).await.kind {
            assert_eq!(exit_code, Some(0));
            break;
        }
    }
    engine.remove(&id).await.unwrap();
    while next_event(&mut events).await.kind != ContainerEventKind::Destroy {}
    collector.abort();
}

async fn next_event(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Result<berth_core::engine::ContainerEvent, EngineError>>,
) -> berth_core::engine::ContainerEvent {
    tokio::time::timeout(PATIENCE, events.recv()).await.expect("an event").expect("the stream goes on").unwrap()
}

#[tokio::test]
async fn images_are_listed_untagged_and_kept_when_in_use() {
    let (engine, sweep) = (engine().await, Sweep::default());
    let mark = unique("mark");
    let builder = service_image().label("berth.test.mark", &mark);
    let tag = builder.repo_tag().unwrap().to_owned();
    let image = load(&engine, &sweep, builder).await;
    let listed = engine.list_images(&Filter::default().label("berth.test.mark", &mark)).await.unwrap();
    assert_eq!(
        listed.iter().map(|i| (i.id.as_str(), i.repo_tags.clone())).collect::<Vec<_>>(),
        [(image.as_str(), vec![tag.clone()])]
    );
    assert!(engine.list_images(&Filter::default()).await.unwrap().iter().any(|i| i.id == image));

    let (repo, _) = tag.rsplit_once(':').unwrap();
    assert_eq!(raw("POST", &format!("/images/{image}/tag?repo={repo}&tag=second"), None).status, 201);
    assert!(matches!(engine.remove_image(&image).await, Err(EngineError::Conflict { .. })), "by id with two tags");
    engine.remove_image(&format!("{repo}:second")).await.unwrap();
    assert_eq!(engine.inspect_image(&image).await.unwrap().unwrap().repo_tags, std::slice::from_ref(&tag));

    let user = engine
        .create(&ContainerConfig {
            image: image.clone(),
            labels: [(SWEEP_LABEL.to_string(), "1".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    sweep.container(&user);
    assert!(matches!(engine.remove_image(&tag).await, Err(EngineError::Conflict { .. })), "in use");
    assert!(engine.inspect_image(&image).await.unwrap().is_some());

    let committed_tag = format!("{repo}:committed");
    let committed = engine.commit_container(&user, &committed_tag).await.unwrap();
    sweep.images.lock().unwrap().push(committed.clone());
    assert_eq!(engine.inspect_image(&committed_tag).await.unwrap().unwrap().id, committed);
    let saved: Vec<u8> = engine.save_image(&committed).map(|c| c.unwrap().to_vec()).concat().await;
    let mut archive = tar::Archive::new(saved.as_slice());
    assert!(archive.entries().unwrap().any(|e| e.unwrap().path().unwrap().ends_with("manifest.json")));
    engine.remove_image(&committed).await.unwrap();

    engine.remove(&user).await.unwrap();
    engine.remove_image(&tag).await.unwrap();
    assert!(engine.inspect_image(&image).await.unwrap().is_none());
    engine.remove_image(&tag).await.unwrap();
    assert!(engine.inspect_image("berth-test/none:0").await.unwrap().is_none());
}

#[tokio::test]
async fn logs_and_info() {
    let (engine, sweep) = (engine().await, Sweep::default());
    let name = unique("berth-test/engine-logs");
    let builder = ImageBuilder::new(&format!("{name}:1")).busybox().layer_marker(&name).cmd(&[
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    let image = load(&engine, &sweep, builder).await;
    let id = running(&engine, &sweep, &image).await;
    let (e, c) = (&engine, id.as_str());
    wait_for(
        "the container to exit",
        || async move { e.inspect(c).await.unwrap().filter(|c| c.state == RunState::Exited) },
    )
    .await;
    let logs: Vec<u8> = engine.logs(&id, false, None).map(|c| c.unwrap().to_vec()).concat().await;
    let mut lines: Vec<&str> = std::str::from_utf8(&logs).unwrap().lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["err", "out"]);
    let followed: Vec<u8> = engine.logs(&id, true, Some(1)).map(|c| c.unwrap().to_vec()).concat().await;
    assert_eq!(followed.iter().filter(|b| **b == b'\n').count(), 1);

    let info = engine.info().await.unwrap();
    assert!(!info.version.is_empty() && !info.api_version.is_empty() && info.online_cpus >= 1);
}

/// An engine that accepts connections and never answers: control calls end
/// with `Timeout` after the configured time, not the streams' hour.
#[tokio::test]
async fn a_hung_engine_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("hung.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            connections.push(connection);
        }
    });
    let timeouts = EngineTimeouts { control: Duration::from_millis(300) };
    let host = format!("unix://{}", socket.display());
    let engine = tokio::time::timeout(PATIENCE, DockerEngine::connect(Some(&host), timeouts)).await.unwrap().unwrap();
    let timed_out = |result: Result<(), EngineError>| match result {
        Err(EngineError::Timeout { what, secs }) => (what, secs),
        other => panic!("{other:?}"),
    };
    let (what, secs) = timed_out(bounded(engine.inspect("web")).await.map(drop));
    assert_eq!(secs, 1);
    assert!(what.contains("negotiation"), "{what}");
    timed_out(bounded(engine.info()).await.map(drop));
    timed_out(bounded(engine.list(&Filter::default())).await.map(drop));
    timed_out(bounded(engine.stat("web", "/bin/sh")).await.map(drop));
    timed_out(bounded(engine.exec("web", request(&["true"]), never())).await.map(drop));
    timed_out(bounded(engine.stop("web", 2)).await);
    assert!(bounded(engine.remove("web")).await.unwrap_err().is_unavailable());
    held.abort();
}

/// An engine that negotiates its version and then answers nothing: every
/// control call times out after its own limit (`stop`: grace on top).
#[tokio::test]
async fn control_calls_of_a_hung_engine_time_out() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("half-hung.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let held = tokio::spawn(async move {
        while let Ok((connection, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut connection = BufReader::new(connection);
                loop {
                    let mut head = Vec::new();
                    loop {
                        let mut line = String::new();
                        if connection.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push(line);
                    }
                    if !head.first().is_some_and(|l| l.contains("/version ")) {
                        // Hung: the connection stays open, unanswered.
                        std::future::pending::<()>().await;
                    }
                    let body = r#"{"Version":"hung","ApiVersion":"1.41"}"#;
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if connection.get_mut().write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let timeouts = EngineTimeouts { control: Duration::from_millis(300) };
    let host = format!("unix://{}", socket.display());
    let engine = bounded(DockerEngine::connect(Some(&host), timeouts)).await.unwrap();
    let timed_out = |result: Result<(), EngineError>| match result {
        Err(EngineError::Timeout { what, secs }) => (what, secs),
        other => panic!("{other:?}"),
    };
    assert_eq!(timed_out(bounded(engine.inspect("web")).await.map(drop)), ("inspect of container web".to_owned(), 1));
    assert_eq!(timed_out(bounded(engine.start("web")).await), ("start of container web".to_owned(), 1));
    assert_eq!(timed_out(bounded(engine.stop("web", 1)).await), ("stop of container web".to_owned(), 2));
    let created = bounded(engine.create(&ContainerConfig { image: "x".into(), ..Default::default() })).await;
    timed_out(created.map(drop));
    timed_out(bounded(engine.list_images(&Filter::default())).await.map(drop));
    timed_out(bounded(engine.remove_image("x")).await);
    timed_out(bounded(engine.rename("web", "web2")).await);
    timed_out(
        bounded(engine.exec(
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            request(&["true"]),
            never(),
        ))
        .await
        .map(drop),
    );
    held.abort();
}

#[path = "engine/tether.rs"]
mod tether;
