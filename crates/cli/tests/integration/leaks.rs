//! What a crash leaves in the engine is found and removed at the next start
//! (issue 8, defect 9), and only what is this daemon's.

use crate::bin;

use berth_testkit::harness::{engine_clock, engine_events, inspect, unique, TestDaemon};
use berth_testkit::http::docker;
use berth_testkit::ImageBuilder;
use serde_json::{json, Value};
use std::time::Duration;

const APP: &str =
    "mkdir -p /tpc/data; echo data > /tpc/data/state; trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done";
const HOOK: &str = "#!/bin/sh\necho hook-ran\n";

fn version(name: &str, tag: &str) -> ImageBuilder {
    ImageBuilder::new(&format!("berth-test/{name}:{tag}"))
        .service()
        .label("berth.test.sweep", "1")
        .layer_marker(&format!("{name}-{tag}"))
        .cmd(&["/bin/sh", "-c", APP])
        .file("/tpc/hook/pre.sh", HOOK, 0o755)
        .file("/tpc/hook/post.sh", HOOK, 0o755)
}

/// Removes containers this test made behind berth's back.
struct Made(Vec<String>);

impl Drop for Made {
    fn drop(&mut self) {
        for id in &self.0 {
            docker("DELETE", &format!("/containers/{id}?force=1"), None);
        }
    }
}

fn create(image: &str, labels: Value) -> String {
    let created = docker("POST", "/containers/create", Some(&json!({ "Image": image, "Labels": labels })));
    assert_eq!(created.status, 201, "{}", created.text());
    created.json()["Id"].as_str().unwrap().to_owned()
}

/// The scratch containers berth makes to read files out of images (here:
/// the upgrade hooks) carry its instance label — before issue 8 they carried
/// only `berth.scratch`, so one left by a crash was never found again. One
/// of this instance left by a crash goes at the next start; one of another
/// instance, or one without any instance, is not this daemon's and stays.
#[test]
fn scratch_containers_are_this_instances_and_a_crashs_leftover_goes_at_the_next_start() {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("scratch");
    let v1 = daemon.archive(&version(&name, "1"), false);
    assert_eq!(daemon.berth(&["install", &name, &v1.path.to_string_lossy(), "-y"]).code, 0);
    let v2 = daemon.archive(&version(&name, "2"), false);
    let before = engine_clock();
    let run = daemon.berth(&["upgrade", &name, &v2.path.to_string_lossy(), "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("pre hook: done") && run.stderr.contains("post hook: done"), "{run:?}");

    // The engine's record of every scratch container the hooks needed.
    let created =
        engine_events(before, &json!({ "type": ["container"], "event": ["create"], "label": ["berth.scratch"] }));
    let ours: Vec<&Value> = created
        .iter()
        .filter(|e| [&v1.image_id, &v2.image_id].iter().any(|id| e["Actor"]["Attributes"]["image"] == id.as_str()))
        .collect();
    assert!(ours.len() >= 2, "a scratch container per hook: {created:?}");
    for event in &ours {
        assert_eq!(event["Actor"]["Attributes"]["berth.instance"], daemon.instance.as_str(), "{event}");
    }
    assert!(
        daemon.containers().iter().all(|c| c["Labels"]["berth.scratch"].is_null()),
        "none is left after use: {:?}",
        daemon.containers()
    );

    // What a crash between creating and removing one leaves, and look-alikes.
    let scratch = |instance: Option<&str>| {
        let mut labels = json!({ "berth.scratch": "1", "berth.test.sweep": "1" });
        if let Some(instance) = instance {
            labels["berth.instance"] = json!(instance);
        }
        create(&v1.image_id, labels)
    };
    let leftover = scratch(Some(&daemon.instance));
    let other = scratch(Some(&format!("{}-other", daemon.instance)));
    let unlabelled = scratch(None);
    let _made = Made(vec![leftover.clone(), other.clone(), unlabelled.clone()]);

    daemon.kill9();
    daemon.launch(&[]);
    // `launch` returns once the daemon is ready, which it is after recovery.
    assert!(inspect(&leftover).is_none(), "this instance's scratch container goes:\n{}", daemon.log());
    assert!(inspect(&other).is_some(), "another instance's stays");
    assert!(inspect(&unlabelled).is_some(), "one that is not provably ours stays");
    daemon.wait_state(&name, "running", Duration::from_secs(15));
    assert_eq!(inspect(&name).unwrap()["Image"], v2.image_id.as_str());
}
