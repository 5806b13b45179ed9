//! SRA images and commands, per the SRA specification's "Detailed Running
//! Procedure", against the real engine with an SRA image built offline.

use crate::bin;
use crate::sra_support::*;
use berth_testkit::harness::{image_exists, inspect, unique, TestDaemon};
use berth_testkit::http::{docker, docker_load};
use berth_testkit::ImageBuilder;
use std::time::{Duration, Instant};

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
fn an_image_without_an_executable_entry_point_is_refused() {
    let mut daemon = TestDaemon::start(bin());
    let base = |name: &str| {
        ImageBuilder::new(&format!("berth-test/{name}:1"))
            .service()
            .label("berth.test.sweep", "1")
            .label("com.vmware.srm.sra", "x")
            .layer_marker(name)
    };
    let missing = daemon.archive(&base(&unique("nocmd")), false);
    let run = daemon.berth(&["sra", "load", &missing.path.to_string_lossy()]);
    assert_eq!(run.code, 5, "{run:?}");
    assert!(run.stderr.contains("has no /srm/sra/command"), "{run:?}");
    assert!(!image_exists(&missing.image_id));

    let private = daemon.archive(&base(&unique("privcmd")).file("/srm/sra/command", "#!/bin/sh\n", 0o644), false);
    let run = daemon.berth(&["sra", "load", &private.path.to_string_lossy()]);
    assert_eq!(run.code, 5, "{run:?}");
    assert!(run.stderr.contains("mode 0644") && run.stderr.contains("not executable by anyone"), "{run:?}");
    assert!(!image_exists(&private.image_id));

    // Loaded behind berth's back: the command itself fails with a clear message.
    assert_eq!(docker_load(&missing.path).status, 200);
    let sra = Sra { daemon, image: missing.image_id.clone(), tag: String::new() };
    let (tmp, log) = (dir(&sra, "ntmp"), dir(&sra, "nlog"));
    let run = exec(&sra, &tmp, &log, "queryInfo", &[]);
    assert_eq!(run.code, 5, "{run:?}");
    assert!(run.stderr.contains("has no /srm/sra/command"), "{run:?}");
    assert_eq!(docker_load(&private.path).status, 200);
    let run = exec_input(&sra, &private.image_id, &tmp, &log, &envelope("queryInfo"), &[]);
    assert_eq!(run.code, 5, "{run:?}");
    assert!(run.stderr.contains("is not executable by 660:660"), "{run:?}");
    for image in [&missing.image_id, &private.image_id] {
        remove_execution_containers(image);
        docker("DELETE", &format!("/images/{image}?force=1"), None);
    }
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
        "<Response xmlns=\"http://www.vmware.com/srm/sra/v2\"><Name>queryInfo</Name></Response>\n"
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
    assert_eq!(binds[..2], [format!("{}:/tmp", tmp.display()), format!("{}:/srm/sra/log", log.display())]);
    assert!(binds[2].ends_with(":/srm/sra/conf"), "{binds:?}");

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
fn status_updates_are_progress_and_move_the_timeout() {
    let sra = loaded();
    let (tmp, log) = (dir(&sra, "ptmp"), dir(&sra, "plog"));
    // Four updates a second apart: 4 s in all, more than the 2 s timeout,
    // but never 2 s without an update.
    let run = exec(&sra, &tmp, &log, "progress", &["--timeout", "2"]);
    assert_eq!(run.code, 0, "{run:?}");
    for percent in [10, 40, 70, 100] {
        assert!(run.stderr.contains(&format!("SRA command: {percent}%")), "{percent}: {run:?}");
    }

    // The REST answer streams the same events.
    let body = serde_json::json!({
        "image": sra.image, "tmp_dir": tmp, "log_dir": log, "input": envelope("progress"), "timeout_secs": 2
    });
    let response = berth_testkit::http::request_with_headers(
        &sra.daemon.socket,
        "POST",
        "/v1/sra/exec",
        "application/json",
        &[("Accept", "application/x-ndjson")],
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(response.status, 200);
    // Empty lines are the daemon's keepalives.
    let events: Vec<serde_json::Value> = response
        .text()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let percents: Vec<_> = events.iter().filter(|e| e["event"] == "progress").map(|e| e["percent"].clone()).collect();
    assert_eq!(percents, [10, 40, 70, 100].map(serde_json::Value::from), "{events:?}");
    let last = events.last().unwrap();
    assert_eq!((last["event"].as_str(), last["result"]["exit_code"].as_i64()), (Some("done"), Some(0)), "{last}");
}

#[test]
fn a_hung_command_is_killed_and_bad_input_is_refused() {
    let sra = loaded();
    let (tmp, log) = (dir(&sra, "ttmp"), dir(&sra, "tlog"));
    let started = Instant::now();
    let run = exec(&sra, &tmp, &log, "hang", &["--timeout", "2"]);
    assert_eq!(run.code, 9, "{run:?}");
    assert!(run.stderr.contains("did not finish within 2s"), "{run:?}");
    assert!(run.stderr.contains("SRA command: 5%"), "{run:?}");
    // What it wrote before it was killed is kept (defect 12).
    assert!(run.stderr.contains("its output so far:") && run.stderr.contains("ran hang as 660:660"), "{run:?}");
    assert!(run.stderr.contains("its error output so far:\nto stderr"), "{run:?}");
    assert!(started.elapsed() < Duration::from_secs(25), "killed, not waited for");
    // Killed, with what it started: no `sleep 30` is left in the container.
    let container = containers_of(&eid(&sra.image, &tmp, &log))[0]["Id"].as_str().unwrap().to_owned();
    let left = processes(&container);
    assert!(!left.iter().any(|p| p.contains("sleep 30")), "{left:?}");

    let run = exec(&sra, &sra.daemon.dir.path().join("missing"), &log, "queryInfo", &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--tmp-dir"), "{run:?}");
    let run = exec_input(&sra, &sra.image, &tmp, &log, "<Command><Name>x</Name>", &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("the command XML is not well-formed XML: line 1"), "{run:?}");
    let run = exec_input(&sra, &sra.image, &tmp, &log, "<Response/>", &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("not <Command>"), "{run:?}");
    for (option, value, expected) in
        [("--user", "srm", "--user"), ("--env", "NOEQUALS", "--env"), ("--timeout", "0", "--timeout")]
    {
        let run = exec(&sra, &tmp, &log, "queryInfo", &[option, value]);
        assert_eq!(run.code, 2, "{run:?}");
        assert!(run.stderr.contains(expected), "{run:?}");
    }
}

#[test]
fn run_writes_the_envelope_and_shows_the_response() {
    let sra = loaded();
    let (tmp, log) = (dir(&sra, "rtmp"), dir(&sra, "rlog"));
    let connections = sra.daemon.dir.path().join("connections.xml");
    std::fs::write(
        &connections,
        r#"<Connections><Connection id="array"><Addresses><Address id="mgmt">10.0.0.1</Address></Addresses><Username>u</Username><Password>p</Password></Connection></Connections>"#,
    )
    .unwrap();
    let run =
        sra_run(&sra, &sra.image, &tmp, &log, "discoverArrays", &["--connections", &connections.to_string_lossy()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout.trim(),
        r#"<Response xmlns="http://www.vmware.com/srm/sra/v2"><Name>discoverArrays</Name></Response>"#
    );
    let envelope = std::fs::read_to_string(log.join("last-input.xml")).unwrap();
    for part in [
        "<Name>discoverArrays</Name>",
        "<OutputFile>/tmp/sra-output-",
        "<StatusFile>/tmp/sra-status-",
        "<LogLevel>info</LogLevel>",
        "<LogDirectory>/srm/sra/log</LogDirectory>",
        r#"<Address id="mgmt">10.0.0.1</Address>"#,
    ] {
        assert!(envelope.contains(part), "{part}: {envelope}");
    }
    // The output and status files are gone afterwards, as with SRM.
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "{left:?}");

    let failed = sra_run(&sra, &sra.image, &tmp, &log, "error", &[]);
    assert_eq!(failed.code, 12, "{failed:?}");
    assert!(
        failed.stderr.contains("the SRA reported error 42: Array unreachable (fix: Check the address)"),
        "{failed:?}"
    );
    let json = sra_run(&sra, &sra.image, &tmp, &log, "error", &["-o", "json"]);
    let result: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(result["sra_error"]["code"], "42");

    let silent = sra_run(&sra, &sra.image, &tmp, &log, "noout", &[]);
    assert_eq!(silent.code, 9, "{silent:?}");
    assert!(silent.stderr.contains("wrote no output file"), "{silent:?}");

    std::fs::write(&connections, "<Connections><Connection id=\"a\"></Connections>").unwrap();
    let bad =
        sra_run(&sra, &sra.image, &tmp, &log, "discoverArrays", &["--connections", &connections.to_string_lossy()]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("--connections is not well-formed XML: line 1"), "{bad:?}");
    let bad = sra_run(&sra, &sra.image, &tmp, &log, "query Info", &[]);
    assert_eq!(bad.code, 2, "{bad:?}");
}

#[test]
fn idle_containers_are_stopped_but_never_under_a_command() {
    let daemon = TestDaemon::start_with(
        bin(),
        &format!("{}[sra]\nidle_stop_secs = 1\n", berth_testkit::harness::TEST_SETTINGS),
        &[],
        None,
    );
    let sra = loaded_with(daemon);
    let (tmp, log) = (dir(&sra, "itmp"), dir(&sra, "ilog"));
    // Runs 4 s, four times the idle time: it must not be stopped under it.
    let run = exec(&sra, &tmp, &log, "progress", &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let container = containers_of(&eid(&sra.image, &tmp, &log))[0]["Id"].as_str().unwrap().to_owned();
    sra.daemon.wait_for("the idle container to stop", Duration::from_secs(30), |_| {
        (inspect(&container)?["State"]["Running"] == false).then_some(())
    });
    let run = exec(&sra, &tmp, &log, "queryInfo", &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(containers_of(&eid(&sra.image, &tmp, &log)).len(), 1);
}

#[test]
fn list_shows_containers_and_digest_and_remove_takes_everything() {
    let sra = loaded();
    let (tmp, log) = (dir(&sra, "ltmp"), dir(&sra, "llog"));
    assert_eq!(exec(&sra, &tmp, &log, "queryInfo", &[]).code, 0);
    let run = sra.daemon.berth(&["sra", "list", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let images: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    let ours = images.iter().find(|i| i["id"] == sra.image.as_str()).expect("listed");
    assert_eq!((ours["label"].as_str(), ours["containers"].as_u64()), (Some("vendor-x"), Some(1)));
    let digest = ours["config_digest"].as_str().expect("a digest").to_owned();
    assert_eq!(digest.len(), 40);
    let table = sra.daemon.berth(&["sra", "list"]).stdout;
    assert!(table.contains(&sra.image) && table.contains("vendor-x") && table.contains(&digest), "{table}");
    assert!(config_root(&sra, &sra.image).is_dir());

    let run = sra.daemon.berth(&["sra", "remove", &sra.image]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!image_exists(&sra.image));
    assert!(containers_of(&eid(&sra.image, &tmp, &log)).is_empty());
    assert!(!config_root(&sra, &sra.image).exists(), "the configuration goes with the image");
    // The load and the removal are events of the image.
    let events = sra.daemon.berth(&["events", "--kind", "sra", "--name", &sra.image, "--output", "json"]).stdout;
    let kinds: Vec<String> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|e| e["kind"].as_str().map(str::to_owned))
        .collect();
    assert!(kinds.contains(&"sra.image_loaded".to_owned()), "{events}");
    assert_eq!(kinds.last().map(String::as_str), Some("sra.image_removed"), "{events}");

    // Not an SRA image: refused, untouched.
    let run = sra.daemon.berth(&["sra", "remove", "berth-test/none:404"]);
    assert_eq!(run.code, 5, "{run:?}");
}

/// Defects 4 and 12: an execution container with the same execution id that
/// another runner made (the specification's procedure by hand) is never used
/// nor removed; `exec` and `list` report it, `remove` leaves it, and with it
/// the image.
#[test]
fn another_runners_execution_container_is_reported_and_left_alone() {
    let sra = loaded();
    let (tmp, log) = (dir(&sra, "ftmp"), dir(&sra, "flog"));
    let id = eid(&sra.image, &tmp, &log);
    let foreign = foreign_container(&sra.image, &id, &tmp, &log);

    let run = exec(&sra, &tmp, &log, "queryInfo", &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("1 execution container(s) of another runner have the same execution id"), "{run:?}");
    let containers = containers_of(&id);
    assert_eq!(containers.len(), 2, "{containers:?}");
    let ours: Vec<&serde_json::Value> =
        containers.iter().filter(|c| c["Labels"]["berth.sra"] == sra.daemon.instance.as_str()).collect();
    assert_eq!(ours.len(), 1, "{containers:?}");
    let ours = ours[0]["Id"].as_str().unwrap().to_owned();
    assert_ne!(ours, foreign);
    // The command ran in ours (a container's hostname is its short id).
    assert!(run.stdout.contains(&format!("host {}", &ours[..12])), "{run:?}");
    assert_eq!(inspect(&foreign).unwrap()["State"]["Running"], true);

    let list: Vec<serde_json::Value> =
        serde_json::from_str(&sra.daemon.berth(&["sra", "list", "-o", "json"]).stdout).unwrap();
    let listed = list.iter().find(|i| i["id"] == sra.image.as_str()).unwrap();
    assert_eq!((listed["containers"].as_u64(), listed["foreign_containers"].as_u64()), (Some(1), Some(1)), "{listed}");
    let table = sra.daemon.berth(&["sra", "list"]).stdout;
    assert!(table.contains("1 (+1 not berth's)"), "{table}");

    let run = sra.daemon.berth(&["sra", "remove", &sra.image]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("1 container(s) of another runner use it and were left (so is the image)"), "{run:?}");
    assert!(inspect(&ours).is_none(), "berth's own container is removed");
    assert_eq!(inspect(&foreign).unwrap()["State"]["Running"], true, "the other runner's is left running");
    assert!(image_exists(&sra.image), "the image is kept for the other runner");
}

/// Defect 12: two daemons on one engine, running the same image with the
/// same tmp and log directories, each use their own execution container and
/// their own configuration; each sees the other's container as another runner's.
#[test]
fn two_daemons_on_one_engine_keep_to_their_own_containers_and_configurations() {
    let (mut first, mut second) = (TestDaemon::start(bin()), TestDaemon::start(bin()));
    let archive = first.archive(&sra_image(&unique("shared"), "factory"), false);
    second.sweep_image(&archive.image_id);
    for daemon in [&first, &second] {
        let run = daemon.berth(&["sra", "load", &archive.path.to_string_lossy()]);
        assert_eq!(run.code, 0, "{run:?}");
    }
    let a = Sra { daemon: first, image: archive.image_id.clone(), tag: String::new() };
    let b = Sra { daemon: second, image: archive.image_id.clone(), tag: String::new() };
    let (tmp, log) = (dir(&a, "stmp"), dir(&a, "slog"));
    let conf = |sra: &Sra| {
        let run = sra_run(sra, &sra.image, &tmp, &log, "conf", &[]);
        assert_eq!(run.code, 0, "{run:?}");
        run.stdout
    };

    assert!(conf(&a).contains("<Conf>factory</Conf>"));
    let id = eid(&archive.image_id, &tmp, &log);
    let of = |sra: &Sra| -> Option<String> {
        let containers = containers_of(&id);
        let mine = containers.iter().find(|c| c["Labels"]["berth.sra"] == sra.daemon.instance.as_str())?;
        mine["Id"].as_str().map(str::to_owned)
    };
    let a_container = of(&a).expect("a made its own container");
    // b's own configuration changes; a's does not, nor does a's container.
    let edited = crate::sra_config::edited(&b, &b.image, "from-b", "from-b");
    let run = b.daemon.berth(&["sra", "config", "upload", &b.image, &edited.to_string_lossy()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(conf(&b).contains("<Conf>from-b</Conf>"));
    assert_eq!(of(&a).as_deref(), Some(a_container.as_str()), "b replaced or removed a's container");
    assert!(conf(&a).contains("<Conf>factory</Conf>"), "a ran in b's container, or with b's configuration");
    assert_eq!(of(&a).as_deref(), Some(a_container.as_str()));

    let containers = containers_of(&id);
    let mut owners: Vec<String> =
        containers.iter().map(|c| c["Labels"]["berth.sra"].as_str().unwrap_or_default().to_owned()).collect();
    owners.sort();
    let mut expected = vec![a.daemon.instance.clone(), b.daemon.instance.clone()];
    expected.sort();
    assert_eq!(owners, expected, "one container each");
    let run = exec(&a, &tmp, &log, "queryInfo", &[]);
    assert!(run.stderr.contains("of another runner"), "{run:?}");

    // a removes the image: b's container stays, and b goes on working.
    let run = a.daemon.berth(&["sra", "remove", &a.image]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(image_exists(&archive.image_id));
    assert!(conf(&b).contains("<Conf>from-b</Conf>"));
}

/// Defect 4: removal is refused (exit 4) while a command runs in one of this
/// daemon's execution containers of the image; `--force` kills it, then removes.
#[test]
fn removal_waits_for_no_running_command_unless_forced() {
    let sra = loaded();
    let (tmp, log) = (dir(&sra, "btmp"), dir(&sra, "blog"));
    std::thread::scope(|scope| {
        let hanging = scope.spawn(|| exec(&sra, &tmp, &log, "block", &["--timeout", "7200"]));
        let container = sra.daemon.wait_for("the command to run", Duration::from_secs(30), |_| {
            let id = containers_of(&eid(&sra.image, &tmp, &log)).first()?["Id"].as_str()?.to_owned();
            processes(&id).iter().any(|p| p.contains("sleep 3600")).then_some(id)
        });

        let refused = sra.daemon.berth(&["sra", "remove", &sra.image]);
        assert_eq!(refused.code, 4, "{refused:?}");
        assert!(refused.stderr.contains("1 command(s) still run") && refused.stderr.contains("--force"), "{refused:?}");
        let answer = sra.daemon.api("DELETE", &format!("/v1/sra/images/{}", sra.image), None).unwrap();
        assert_eq!(answer.status, 409, "{}", answer.text());
        assert_eq!(answer.json()["code"], "busy", "{}", answer.text());
        assert!(image_exists(&sra.image) && inspect(&container).is_some(), "a refused removal changed something");
        assert!(config_root(&sra, &sra.image).is_dir());
        assert!(!hanging.is_finished(), "the refusal touched the command");

        let forced = sra.daemon.berth(&["sra", "remove", "--force", &sra.image]);
        assert_eq!(forced.code, 0, "{forced:?}");
        let killed = hanging.join().unwrap();
        assert_eq!(killed.code, 13, "{killed:?}");
        assert!(killed.stderr.contains("was cancelled"), "{killed:?}");
        assert!(!image_exists(&sra.image));
        assert!(inspect(&container).is_none());
        assert!(!config_root(&sra, &sra.image).exists());
    });
}

/// Defect 12: an SRA that exits non-zero without writing its output file:
/// `sra run` says so, and where the file was expected, and shows the SRA's
/// stdout on stderr.
#[test]
fn run_says_when_a_failing_sra_wrote_no_output_file() {
    let sra = loaded();
    let (tmp, log) = (dir(&sra, "otmp"), dir(&sra, "olog"));
    let run = sra_run(&sra, &sra.image, &tmp, &log, "fail", &[]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains("the SRA exited with code 3 without writing its output file (/tmp/sra-output-"),
        "{run:?}"
    );
    assert!(run.stderr.contains(&format!("{}/sra-output-", tmp.display())), "the host path: {run:?}");
    assert!(run.stderr.contains("ran fail as 660:660"), "the SRA's stdout: {run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
}

/// Defect 12: `<Error code="N"/>` without a description is described by the
/// SRA's own `queryErrorDefinitions` (and `queryStrings` for a text it only
/// names), asked once per image.
#[test]
fn a_bare_error_code_is_described_by_the_sras_own_definitions() {
    let sra = loaded();
    let (tmp, log) = (dir(&sra, "etmp"), dir(&sra, "elog"));
    for _ in 0..2 {
        let run = sra_run(&sra, &sra.image, &tmp, &log, "bareerror", &[]);
        assert_eq!(run.code, 12, "{run:?}");
        assert!(
            run.stderr.contains("the SRA reported error 77: Array powered off (fix: Power the array on)"),
            "{run:?}"
        );
    }
    let json = sra_run(&sra, &sra.image, &tmp, &log, "bareerror", &["-o", "json"]);
    let result: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(result["sra_error"]["description"], "Array powered off", "{result}");
    assert_eq!(result["sra_error"]["fix_hint"], "Power the array on", "{result}");
    let asked = commands_run(&log);
    let count = |name: &str| asked.iter().filter(|c| *c == name).count();
    assert_eq!((count("queryErrorDefinitions"), count("queryStrings")), (1, 1), "cached per image: {asked:?}");
}

/// Defect 12: `sra list` shows every tag of an image; `sra config copy`
/// between two tags of one image copies nothing and says so.
#[test]
fn every_tag_is_listed_and_a_copy_between_two_tags_of_one_image_changes_nothing() {
    let sra = loaded();
    let (repo, tag) = (format!("berth-test/{}", unique("alias")), "2");
    let tagged = docker("POST", &format!("/images/{}/tag?repo={repo}&tag={tag}", sra.image), None);
    assert_eq!(tagged.status, 201, "{}", tagged.text());
    let alias = format!("{repo}:{tag}");

    let list: Vec<serde_json::Value> =
        serde_json::from_str(&sra.daemon.berth(&["sra", "list", "-o", "json"]).stdout).unwrap();
    let listed = list.iter().find(|i| i["id"] == sra.image.as_str()).unwrap();
    let mut tags: Vec<&str> = listed["repo_tags"].as_array().unwrap().iter().filter_map(|t| t.as_str()).collect();
    tags.sort();
    let mut expected = vec![sra.tag.as_str(), alias.as_str()];
    expected.sort();
    assert_eq!(tags, expected);
    let table = sra.daemon.berth(&["sra", "list"]).stdout;
    assert!(table.contains(&sra.tag) && table.contains(&alias), "{table}");

    let digest = listed["config_digest"].as_str().unwrap().to_owned();
    let run = sra.daemon.berth(&["sra", "config", "copy", &sra.tag, &alias]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("are the same image: one configuration, nothing copied"), "{run:?}");
    let body = serde_json::json!({ "from": sra.tag, "to": alias });
    let answer = sra.daemon.api("POST", "/v1/sra/config/copy", Some(&body)).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["changed"], false);
    assert_eq!(answer.json()["digest"], digest.as_str());
    assert!(!config_root(&sra, &sra.image).join("gen-2").exists(), "a copy onto itself made a generation");
}
