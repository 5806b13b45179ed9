//! The resource manager against the real engine: packages onboarded from
//! directories the tests write, instances driven through their whole
//! lifecycle with property read-back, operations, the built-in network and
//! volume types, failing and hung scripts, and every refusal of a bad
//! package or request (with nothing changed).

use crate::bin;
use crate::resources_support::*;
use berth_testkit::harness::{inspect, unique, TestDaemon, TEST_SETTINGS};
use berth_testkit::http::docker;
use serde_json::{json, Value};

/// A value that must survive the params files and the utilities unchanged.
const AWKWARD: &str = "it's \"quoted\": a colon, # not a comment,  spaces  \nsecond line ünïcødé ✓ \\ back";

fn props_yaml() -> &'static str {
    "  greeting:\n    type: string\n    default: hello\n  color:\n    type: string\n    required: true\n  secret:\n    type: password\n    default: s3cret\n  echoed:\n    type: string\n  awkward:\n    type: string\n"
}

fn script(t: &str) -> Option<String> {
    Some(match t {
        // Reads a property and writes others back through the utilities.
        "Install" => "setProperty echoed \"$(getProperty greeting) from $(hostname)\"\nsetProperty installed yes\nsetProperty awkward \"$(getProperty awkward)\"\necho Install >> /tmp/transitions\n".into(),
        "Configure" => "setProperty configured \"$(getProperty color)\"\necho Configure >> /tmp/transitions\n".into(),
        "Integrity" => "grep -q Start /tmp/transitions\necho Integrity >> /tmp/transitions\n".into(),
        "Reconfigure" => "setProperty color \"$(getProperty color)-again\"\necho Reconfigure >> /tmp/transitions\n".into(),
        _ => return None,
    })
}

fn transitions_file(container: &str) -> String {
    // The engine's archive endpoint, as the test's own check (not berth's path).
    let response = docker("GET", &format!("/containers/{container}/archive?path=/tmp/transitions"), None);
    assert_eq!(response.status, 200, "{}", response.text());
    let mut archive = tar::Archive::new(response.body.as_slice());
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
    text
}

#[test]
fn the_whole_lifecycle_with_properties_read_back_and_operations() {
    let daemon = TestDaemon::start(bin());
    let package = package(
        daemon.dir.path(),
        props_yaml(),
        &FULL_LIFECYCLE,
        &script,
        &[("shout", "setOperationProperty result \"$(getOperationProperty input)!\"\nsetProperty ignored yes\n")],
    );
    let onboarded = onboard(&daemon, &package);
    assert_eq!(onboarded["name"], package.type_name());
    assert_eq!(onboarded["state"], "PUBLISHED");
    // The type is listed, with its descriptor on its own page.
    let (_, types) = rm(&daemon, "GET", "/types", None);
    let listed = types.as_array().unwrap().iter().find(|t| t["name"] == package.type_name()).expect("listed");
    assert!(listed.get("descriptor").is_none(), "{listed}");
    let (status, one) = rm(&daemon, "GET", &format!("/types/{}", package.type_name()), None);
    assert_eq!(status, 200);
    assert!(one["descriptor"].as_str().unwrap().contains("greeting:"), "{one}");
    for builtin in ["resource::docker-network::1.0", "resource::docker-volume::1.0"] {
        assert!(types.as_array().unwrap().iter().any(|t| t["name"] == builtin), "{builtin} missing: {types}");
    }

    let name = unique("inst");
    let (status, id) = transition(
        &daemon,
        install_body(
            &package.type_name(),
            &name,
            json!({"color": "blue", "awkward": AWKWARD, "docker_hostname": "ignored"}),
        ),
    );
    assert!(
        status["requestStateReason"].as_str().unwrap().starts_with("Transition successfully completed in "),
        "{status}"
    );
    let view = instance(&daemon, &id).expect("the instance");
    let p = &view["properties"];
    assert_eq!(p["color"], "blue");
    assert_eq!(p["installed"], "yes", "the script's setProperty is read back: {view}");
    assert_eq!(p["awkward"], AWKWARD, "a value round-trips through the files and the utilities");
    assert!(p["echoed"].as_str().unwrap().starts_with("hello from "), "{view}");
    assert_eq!(p["secret"], "********", "passwords are masked");
    assert_eq!(view["resourceName"], name);
    let internal = view["internalResourceInstances"].as_array().unwrap();
    let container = internal.iter().find(|r| r["type"] == "docker_container").expect("container")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = inspect(&container).expect("the container exists");
    assert_eq!(c["State"]["Running"], true);
    assert_eq!(c["Config"]["Labels"]["berth.instance"], daemon.instance);
    let env: Vec<&str> = c["Config"]["Env"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(env.contains(&"RM_PROP_color=blue"), "{env:?}");

    for t in ["Configure", "Start", "Integrity", "Stop", "Start", "Reconfigure"] {
        transition(&daemon, next_body(&id, t, json!({})));
    }
    let view = instance(&daemon, &id).unwrap();
    assert_eq!(view["properties"]["configured"], "blue");
    assert_eq!(view["properties"]["color"], "blue-again");
    assert_eq!(view["resourceState"], "Active");
    assert_eq!(
        transitions_file(&container),
        "Install\nConfigure\nStart\nIntegrity\nStop\nStart\nReconfigure\n",
        "each script ran once, in order"
    );

    // On the base image each script ran in one exec (berth-rm transition),
    // not through the params file's three engine calls.
    assert!(!daemon.log().contains("params_written"), "the one-exec way was not taken:\n{}", daemon.log());
    // A custom operation: its properties are its own, and only declared
    // instance properties are taken back from it.
    transition(&daemon, next_body(&id, "shout", json!({"input": "hey"})));
    let view = instance(&daemon, &id).unwrap();
    assert!(view["properties"].get("ignored").is_none(), "{view}");

    // The history, newest first.
    let (_, history) = rm(&daemon, "GET", &format!("/topology/instances/{id}/requests"), None);
    assert_eq!(history.as_array().unwrap().len(), 8, "{history}");
    assert_eq!(history[0]["transitionName"], "shout");

    // The location lists it; filters by type (exact) and name (partial).
    let (_, found) = rm(
        &daemon,
        "GET",
        &format!(
            "/topology/deployment-locations/local/instances?instanceType={}&instanceName={}",
            package.type_name(),
            &name[..6]
        ),
        None,
    );
    assert!(found.as_array().unwrap().iter().any(|i| i["resourceId"] == id), "{found}");
    let (_, none) = rm(
        &daemon,
        "GET",
        &format!("/topology/deployment-locations/local/instances?instanceType={}x", package.type_name()),
        None,
    );
    assert!(none.as_array().unwrap().is_empty());

    transition(&daemon, next_body(&id, "Uninstall", json!({})));
    assert!(instance(&daemon, &id).is_none(), "the instance is gone");
    assert!(inspect(&container).is_none(), "its container is gone");
    // A type without instances can be removed.
    let (status, _) = rm(&daemon, "DELETE", &format!("/types/{}", package.type_name()), None);
    assert_eq!(status, 200);
}

#[test]
fn failing_and_hung_scripts_fail_the_request_and_leave_nothing() {
    let settings = format!("{TEST_SETTINGS}\n[resource]\nlisten = \"\"\ntransition_timeout_secs = 3\n");
    let daemon = TestDaemon::start_with(bin(), &settings, &[], None);
    let failing = package(
        daemon.dir.path(),
        "  mode:\n    type: string\n    default: fail\n",
        &["Install", "Start", "Uninstall"],
        &|t| match t {
            "Install" => {
                Some("if [ \"$(getProperty mode)\" = fail ]; then echo 'the install broke' >&2; exit 7; fi\n".into())
            }
            "Start" => Some("sleep 600\n".into()),
            _ => None,
        },
        &[],
    );
    onboard(&daemon, &failing);
    let (request_id, id) = request(&daemon, install_body(&failing.type_name(), &unique("bad"), json!({})));
    let status = wait_request(&daemon, &request_id);
    assert_eq!(status["requestState"], "FAILED", "{status}");
    let reason = status["requestStateReason"].as_str().unwrap();
    assert!(reason.contains("exited with status 7") && reason.contains("the install broke"), "{reason}");
    assert_eq!(status["requestFailureCode"], "INTERNAL_ERROR");
    assert!(instance(&daemon, &id).is_none(), "a failed Install leaves no instance");
    assert!(daemon.containers().is_empty(), "nor a container: {:?}", daemon.containers());

    // A script that never ends is killed at the timeout.
    let (_, id) = transition(&daemon, install_body(&failing.type_name(), &unique("hung"), json!({"mode": "ok"})));
    let (request_id, _) = request(&daemon, next_body(&id, "Start", json!({})));
    let status = wait_request(&daemon, &request_id);
    assert_eq!(status["requestState"], "FAILED", "{status}");
    assert!(status["requestStateReason"].as_str().unwrap().contains("did not finish within 3s"), "{status}");
    // The instance is still there and can be uninstalled.
    assert!(instance(&daemon, &id).is_some());
    transition(&daemon, next_body(&id, "Uninstall", json!({})));
    assert!(daemon.containers().is_empty());
}

#[test]
fn built_in_networks_and_volumes_and_the_network_operations() {
    let daemon = TestDaemon::start(bin());
    let net = unique("rmnet");
    let octet = 100 + (std::process::id() % 100);
    let (_, net_id) =
        transition(&daemon, network_body("local", &net, &format!("10.{octet}.7.0/24"), &format!("10.{octet}.7.1")));
    let view = instance(&daemon, &net_id).unwrap();
    let bridge = view["properties"]["bridgename"].as_str().unwrap().to_owned();
    assert!(bridge.len() <= 15 && bridge.starts_with("rmnet-"), "{bridge}");
    let network = docker("GET", &format!("/networks/{net}"), None).json();
    assert_eq!(network["Options"]["com.docker.network.bridge.name"], bridge);
    assert_eq!(network["IPAM"]["Config"][0]["Subnet"], format!("10.{octet}.7.0/24"));
    assert_eq!(view["properties"]["networkid"], network["Id"]);
    // The kernel has the readable bridge.
    assert!(std::path::Path::new(&format!("/sys/class/net/{bridge}")).exists(), "no bridge {bridge}");

    // An instance on it gets its address as docker_ipaddr; addNetwork and
    // removeNetwork join and leave a second network.
    let package = package(
        daemon.dir.path(),
        "  docker_network:\n    type: string\n    required: true\n  docker_ipaddr:\n    type: string\n    read-only: true\n",
        &["Install", "Uninstall"],
        &|_| None,
        &[],
    );
    let mut descriptor = std::fs::read_to_string(package.dir.join("resource.yaml")).unwrap();
    descriptor.push_str("operations:\n  addNetwork:\n    properties:\n      networkid:\n        type: string\n        required: true\n  removeNetwork:\n    properties:\n      networkid:\n        type: string\n        required: true\n");
    package.write("resource.yaml", &descriptor);
    onboard(&daemon, &package);
    let (_, id) =
        transition(&daemon, install_body(&package.type_name(), &unique("onnet"), json!({"docker_network": net})));
    let view = instance(&daemon, &id).unwrap();
    let address = view["properties"]["docker_ipaddr"].as_str().unwrap();
    assert!(address.starts_with(&format!("10.{octet}.7.")), "{view}");
    let second = unique("rmnet");
    let (_, second_id) =
        transition(&daemon, network_body("local", &second, &format!("10.{octet}.8.0/24"), &format!("10.{octet}.8.1")));
    transition(&daemon, next_body(&id, "addNetwork", json!({"networkid": second})));
    let container = daemon.containers()[0]["Id"].as_str().unwrap().to_owned();
    assert!(inspect(&container).unwrap()["NetworkSettings"]["Networks"].get(&second).is_some());
    // A network in use cannot be uninstalled: the request fails, the network stays.
    let (request_id, _) = request(&daemon, next_body(&second_id, "Uninstall", json!({})));
    let status = wait_request(&daemon, &request_id);
    assert_eq!(status["requestState"], "FAILED", "{status}");
    assert!(status["requestStateReason"].as_str().unwrap().contains("in use"), "{status}");
    transition(&daemon, next_body(&id, "removeNetwork", json!({"networkid": second})));
    assert!(inspect(&container).unwrap()["NetworkSettings"]["Networks"].get(&second).is_none());
    transition(&daemon, next_body(&second_id, "Uninstall", json!({})));
    transition(&daemon, next_body(&id, "Uninstall", json!({})));
    transition(&daemon, next_body(&net_id, "Uninstall", json!({})));
    assert_eq!(docker("GET", &format!("/networks/{net}"), None).status, 404, "the network is removed");

    // Volumes.
    let vol = unique("rmvol");
    let (_, vol_id) = transition(&daemon, volume_body(&vol));
    let v = docker("GET", &format!("/volumes/{vol}"), None);
    assert_eq!(v.status, 200);
    assert_eq!(v.json()["Labels"]["berth.instance"], daemon.instance);
    transition(&daemon, next_body(&vol_id, "Uninstall", json!({})));
    assert_eq!(docker("GET", &format!("/volumes/{vol}"), None).status, 404);

    // A network made outside berth is discovered at start, not driveable.
    let foreign = unique("foreign");
    let made = docker("POST", "/networks/create", Some(&json!({"Name": foreign, "Labels": {"berth.test.sweep": "1"}})));
    assert!(made.status < 300, "{}", made.text());
    let mut daemon = daemon;
    daemon.terminate();
    daemon.launch(&[]);
    let (_, all) = rm(
        &daemon,
        "GET",
        "/topology/deployment-locations/local/instances?instanceType=resource::docker-network::1.0",
        None,
    );
    let discovered =
        all.as_array().unwrap().iter().find(|i| i["resourceName"] == foreign).cloned().expect("discovered");
    assert_eq!(discovered["resourceState"], "Discovered");
    let (status, body) = rm(
        &daemon,
        "POST",
        "/lifecycle/transitions",
        Some(&next_body(discovered["resourceId"].as_str().unwrap(), "Uninstall", json!({}))),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["localizedMessage"].as_str().unwrap().contains("cannot be driven"), "{body}");
    docker("DELETE", &format!("/networks/{foreign}"), None);
}

/// Each bad request: 400 or 404 with a message naming what was wrong, and
/// no request, instance or container made.
#[test]
fn bad_requests_are_refused_naming_what_is_wrong() {
    let daemon = TestDaemon::start(bin());
    let package = package(daemon.dir.path(), props_yaml(), &["Install", "Uninstall"], &|_| None, &[]);
    onboard(&daemon, &package);
    let t = package.type_name();
    let (_, id) = transition(&daemon, install_body(&t, &unique("ok"), json!({"color": "red"})));
    let cases: Vec<(Value, u16, &str)> = vec![
        (install_body("resource::nope::1.0", "x", json!({})), 400, "no resource type resource::nope::1.0"),
        (
            json!({"deploymentLocation": "mars", "resourceType": t, "transitionName": "Install", "resourceName": "x"}),
            400,
            "no deployment location mars",
        ),
        (install_body(&t, "x", json!({})), 400, "Missing mandatory property: color"),
        (next_body(&id, "Start", json!({})), 400, "Start is not in the lifecycle"),
        (next_body(&id, "dance", json!({})), 400, "dance is neither a transition nor an operation"),
        (next_body("no-such-id", "Uninstall", json!({})), 404, "no resource instance no-such-id"),
        (json!({"resourceType": t, "resourceName": "x"}), 400, "transitionName is required"),
        (install_body(&t, "", json!({"color": "red"})), 400, "resourceName is required"),
    ];
    for (body, expected, message) in cases {
        let (status, answer) = rm(&daemon, "POST", "/lifecycle/transitions", Some(&body));
        assert_eq!(status, expected, "{body}: {answer}");
        let text = answer["localizedMessage"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{body}: {text:?} should say {message:?}");
        assert_eq!(answer["url"], format!("{RM}/lifecycle/transitions"), "{answer}");
    }
    let (status, answer) = rm(&daemon, "GET", "/lifecycle/transitions/nope/status", None);
    assert_eq!((status, answer["localizedMessage"].as_str().unwrap_or_default()), (404, "no transition request nope"));
    let (status, _) = rm(&daemon, "GET", "/topology/deployment-locations/mars", None);
    assert_eq!(status, 404);
    let (status, body) = rm(&daemon, "POST", "/lifecycle/transitions", None);
    assert_eq!(status, 400, "{body}");
    // A type with instances cannot be removed.
    let (status, body) = rm(&daemon, "DELETE", &format!("/types/{t}"), None);
    assert_eq!(status, 409, "{body}");
    // Only the one good instance exists, with one container.
    let (_, all) = rm(&daemon, "GET", "/topology/deployment-locations/local/instances", None);
    let ours: Vec<&Value> = all.as_array().unwrap().iter().filter(|i| i["resourceType"] == t).collect();
    assert_eq!(ours.len(), 1, "{all}");
    assert_eq!(daemon.containers().len(), 1);
    // Both prefixes serve the same API.
    let response = daemon.api("GET", "/api/v1.0/resource-manager/configuration", None).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["supportedApiVersions"], json!(["1.0"]));
    let response = daemon.api("GET", &format!("/api/v1.0/resource-manager/topology/instances/{id}"), None).unwrap();
    assert_eq!(response.status, 200);
}

/// One transition at a time per instance: a second request while the
/// first runs is refused as busy.
#[test]
fn an_instance_busy_with_a_transition_refuses_another() {
    let daemon = TestDaemon::start(bin());
    let package = package(
        daemon.dir.path(),
        "  wait:\n    type: string\n    default: none\n",
        &["Install", "Start", "Uninstall"],
        &|t| (t == "Start").then(|| "while [ ! -f /tmp/go ]; do sleep 0.1; done\n".to_owned()),
        &[],
    );
    onboard(&daemon, &package);
    let (_, id) = transition(&daemon, install_body(&package.type_name(), &unique("busy"), json!({})));
    let (first, _) = request(&daemon, next_body(&id, "Start", json!({})));
    let (status, body) = rm(&daemon, "POST", "/lifecycle/transitions", Some(&next_body(&id, "Uninstall", json!({}))));
    assert_eq!(status, 400, "{body}");
    assert!(body["localizedMessage"].as_str().unwrap().contains("busy with another transition"), "{body}");
    let container = daemon.containers()[0]["Id"].as_str().unwrap().to_owned();
    let exec = docker("POST", &format!("/containers/{container}/exec"), Some(&json!({"Cmd": ["touch", "/tmp/go"]})));
    let exec_id = exec.json()["Id"].as_str().unwrap().to_owned();
    docker("POST", &format!("/exec/{exec_id}/start"), Some(&json!({"Detach": false})));
    assert_eq!(wait_request(&daemon, &first)["requestState"], "COMPLETED");
    transition(&daemon, next_body(&id, "Uninstall", json!({})));
}

/// Two locations, two engines: the test suite's private dockerd (its own
/// network namespace) is the second. Networks, images and instances are
/// made where their location says; an engine that goes away makes its
/// location unavailable and its transitions fail, and the other is unaffected.
#[test]
fn two_locations_on_two_engines() {
    let mut engine = berth_testkit::engine::PrivateEngine::start();
    let settings = format!(
        "{TEST_SETTINGS}\n[resource]\nlisten = \"\"\n[[resource.locations]]\nname = \"local\"\ndescription = \"the shared engine\"\n[[resource.locations]]\nname = \"edge\"\ntype = \"docker\"\ndescription = \"the private engine\"\nengine = \"{}\"\n",
        engine.host()
    );
    let daemon = TestDaemon::start_with(bin(), &settings, &[], None);
    let (_, locations) = rm(&daemon, "GET", "/topology/deployment-locations", None);
    let names: Vec<&str> = locations.as_array().unwrap().iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(names, ["edge", "local"], "{locations}");
    assert_eq!(locations[0]["properties"]["status"], "available");

    let package = package(
        daemon.dir.path(),
        "  docker_network:\n    type: string\n    required: true\n  docker_ipaddr:\n    type: string\n    read-only: true\n",
        &["Install", "Uninstall"],
        &|_| None,
        &[],
    );
    onboard(&daemon, &package);
    // The type's image is in both engines.
    let tag = format!("dockerrm_{}", package.name);
    assert!(engine.get(&format!("/images/{tag}/json")).is_some_and(|r| r.status == 200), "built in the second engine");
    let net = unique("edgenet");
    let (_, net_id) = transition(&daemon, network_body("edge", &net, "10.77.0.0/24", "10.77.0.1"));
    assert!(
        engine.get(&format!("/networks/{net}")).is_some_and(|r| r.status == 200),
        "the network is in the second engine"
    );
    assert_eq!(docker("GET", &format!("/networks/{net}"), None).status, 404, "and not in the shared one");
    let mut body = install_body(&package.type_name(), &unique("edge"), json!({"docker_network": net}));
    body["deploymentLocation"] = json!("edge");
    let (_, id) = transition(&daemon, body);
    let view = instance(&daemon, &id).unwrap();
    assert_eq!(view["deploymentLocation"], "edge");
    assert!(view["properties"]["docker_ipaddr"].as_str().unwrap().starts_with("10.77.0."), "{view}");
    let container = view["internalResourceInstances"][0]["id"].as_str().unwrap().to_owned();
    assert!(engine.inspect(&container).is_some(), "the container is in the second engine");
    assert!(inspect(&container).is_none(), "and not in the shared one");

    // The second engine goes away: its location is unavailable and its
    // transitions fail as infrastructure errors; the local one still works.
    engine.stop();
    let (_, edge) = rm(&daemon, "GET", "/topology/deployment-locations/edge", None);
    assert_eq!(edge["properties"]["status"], "unavailable", "{edge}");
    let (request_id, _) = request(&daemon, next_body(&id, "Uninstall", json!({})));
    let status = wait_request(&daemon, &request_id);
    assert_eq!(status["requestState"], "FAILED", "{status}");
    assert_eq!(status["requestFailureCode"], "INFRASTRUCTURE_ERROR", "{status}");
    let (_, local_id) = transition(&daemon, volume_body(&unique("vol")));
    transition(&daemon, next_body(&local_id, "Uninstall", json!({})));

    // Back: the instance can be uninstalled there.
    engine.launch();
    transition(&daemon, next_body(&id, "Uninstall", json!({})));
    transition(&daemon, next_body(&net_id, "Uninstall", json!({})));
    assert!(engine.inspect(&container).is_none());
}

fn edit(p: &TestPackage, file: &str, from: &str, to: &str) {
    let text = std::fs::read_to_string(p.dir.join(file)).unwrap();
    assert!(text.contains(from), "{file} has no {from:?}");
    p.write(file, &text.replacen(from, to, 1));
}

/// Each kind of invalid package is refused whole, with a message naming the
/// file, line and key (or what is missing), and nothing is onboarded.
#[test]
fn invalid_packages_are_refused_naming_file_line_and_key() {
    let daemon = TestDaemon::start(bin());
    let base = || package(daemon.dir.path(), "  a:\n    type: string\n", &["Install", "Uninstall"], &|_| None, &[]);
    type Mutation<'a> = Box<dyn Fn(&TestPackage) + 'a>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "unknown key",
            Box::new(|p| edit(p, "resource.yaml", "description:", "colour: red\ndescription:")),
            "resource.yaml line 2 (colour): unknown key",
        ),
        (
            "unknown property key",
            Box::new(|p| edit(p, "resource.yaml", "    type: string", "    type: string\n    requird: true")),
            "resource.yaml line 6 (properties.a.requird): unknown key",
        ),
        ("unknown type", Box::new(|p| edit(p, "resource.yaml", "type: string", "type: strin")), "properties.a.type"),
        (
            "unknown transition",
            Box::new(|p| edit(p, "resource.yaml", "  - Install", "  - Deploy\n  - Install")),
            "Deploy",
        ),
        (
            "no Uninstall",
            Box::new(|p| {
                edit(p, "resource.yaml", "  - Uninstall\n", "");
                edit(p, "lifecycle/lifecycle.yaml", "  uninstall: /opt/lifecycle/uninstall.sh\n", "");
            }),
            "Uninstall",
        ),
        (
            "transition without script",
            Box::new(|p| edit(p, "lifecycle/lifecycle.yaml", "  uninstall: /opt/lifecycle/uninstall.sh\n", "")),
            "Uninstall",
        ),
        (
            "script not listed",
            Box::new(|p| {
                edit(p, "lifecycle/lifecycle.yaml", "  uninstall:", "  start: /opt/lifecycle/start.sh\n  uninstall:")
            }),
            "a script for Start, which resource.yaml does not list in its lifecycle",
        ),
        (
            "relative script",
            Box::new(|p| edit(p, "lifecycle/lifecycle.yaml", "/opt/lifecycle/install.sh", "install.sh")),
            "must be an absolute path inside the container",
        ),
        (
            "read-only required",
            Box::new(|p| {
                edit(
                    p,
                    "resource.yaml",
                    "    type: string",
                    "    type: string\n    read-only: true\n    required: true",
                )
            }),
            "a is read-only and so cannot be required",
        ),
        (
            "unresolvable reference",
            Box::new(|p| edit(p, "resource.yaml", "    type: string", "    type: string\n    value: ${nope}")),
            "${nope} does not name a declared property",
        ),
        (
            "cyclic references",
            Box::new(|p| {
                edit(
                    p,
                    "resource.yaml",
                    "    type: string",
                    "    type: string\n    value: ${b}\n  b:\n    type: string\n    value: ${a}",
                )
            }),
            "value references form a cycle",
        ),
        (
            "network without address",
            Box::new(|p| edit(p, "resource.yaml", "  a:\n", "  docker_network2:\n    type: string\n  a:\n")),
            "docker_network2 needs a read-only docker_ipaddr2 property",
        ),
        (
            "duplicate key",
            Box::new(|p| {
                edit(p, "resource.yaml", "  a:\n    type: string\n", "  a:\n    type: string\n  a:\n    type: string\n")
            }),
            "a",
        ),
        ("no Dockerfile", Box::new(|p| p.remove("Dockerfile")), "the package has no Dockerfile"),
        ("no descriptor", Box::new(|p| p.remove("resource.yaml")), "the package has no resource.yaml"),
        (
            "base image not in the engine",
            Box::new(|p| edit(p, "Dockerfile", "FROM dockerrm_baseimage", "FROM berth-test/not-here:1")),
            "which is not in location local's engine (builds are offline)",
        ),
        (
            "failing build step",
            Box::new(|p| edit(p, "Dockerfile", "ADD lifecycle", "RUN exit 3\nADD lifecycle")),
            "failed",
        ),
        (
            "symbolic link",
            Box::new(|p| std::os::unix::fs::symlink("/etc/passwd", p.dir.join("passwd")).unwrap()),
            "symbolic link",
        ),
        ("not YAML", Box::new(|p| p.write("resource.yaml", "name: [unclosed\n")), "resource.yaml line"),
    ];
    let types_before = rm(&daemon, "GET", "/types", None).1;
    for (what, mutate, message) in cases {
        let p = base();
        mutate(&p);
        let run = daemon.berth(&["resource", "onboard", &p.dir.to_string_lossy()]);
        assert_ne!(run.code, 0, "{what}: accepted: {run:?}");
        assert!(run.stderr.contains(message), "{what}: {:?} should say {message:?}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{what}: {run:?}");
    }
    assert_eq!(rm(&daemon, "GET", "/types", None).1, types_before, "nothing was onboarded");
    // The name must be the directory's (the Docker RM's rule).
    let p = base();
    let moved = daemon.dir.path().join(format!("{}x", p.name));
    std::fs::rename(&p.dir, &moved).unwrap();
    let run = daemon.berth(&["resource", "onboard", &moved.to_string_lossy()]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains(&format!("{}x", p.name)), "{run:?}");
}

/// An unchanged package is not rebuilt; a changed one updates the type, and
/// an instance of the older version keeps its image.
#[test]
fn onboarding_again_rebuilds_only_a_changed_package() {
    let daemon = TestDaemon::start(bin());
    let p = package(daemon.dir.path(), "  a:\n    type: string\n", &["Install", "Uninstall"], &|_| None, &[]);
    let first = onboard(&daemon, &p);
    let tag = format!("dockerrm_{}", p.name);
    let image = docker("GET", &format!("/images/{tag}/json"), None).json()["Id"].clone();
    let again = onboard(&daemon, &p);
    assert_eq!(again["lastModifiedAt"], first["lastModifiedAt"]);
    assert_eq!(docker("GET", &format!("/images/{tag}/json"), None).json()["Id"], image, "not rebuilt");
    let (_, id) = transition(&daemon, install_body(&p.type_name(), &unique("old"), json!({})));
    p.write("lifecycle/install.sh", "#!/bin/sh\necho version two\n");
    onboard(&daemon, &p);
    let rebuilt = docker("GET", &format!("/images/{tag}/json"), None).json()["Id"].clone();
    assert_ne!(rebuilt, image, "a changed package is rebuilt");
    // Onboarded, then changed: two events; the unchanged second onboarding is none.
    let run = daemon.berth(&["events", "--kind", "resource.type", "--name", &p.type_name(), "--output", "json"]);
    assert_eq!(run.stdout.lines().filter(|l| l.contains("\"onboarded\"")).count(), 2, "{run:?}");
    let container = daemon.containers()[0]["Id"].as_str().unwrap().to_owned();
    assert_eq!(inspect(&container).unwrap()["Image"], image, "the running instance keeps its image");
    transition(&daemon, next_body(&id, "Uninstall", json!({})));
    // The archive forms are onboarded too (zip and tar.gz made by the test).
    let q = package(daemon.dir.path(), "  a:\n    type: string\n", &["Install", "Uninstall"], &|_| None, &[]);
    let tgz = daemon.dir.path().join("pkg.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(daemon.dir.path())
        .arg(&q.name)
        .status()
        .unwrap();
    assert!(status.success());
    let run = daemon.berth(&["resource", "onboard", &tgz.to_string_lossy(), "--output", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&q.type_name()), "{run:?}");
}

/// A crashed resource container is restarted, as an app's would be; after
/// a Stop transition it is left stopped.
#[test]
fn resource_containers_are_supervised_except_after_stop() {
    let daemon = TestDaemon::start(bin());
    let p = package(
        daemon.dir.path(),
        "  a:\n    type: string\n",
        &["Install", "Start", "Stop", "Uninstall"],
        &|_| None,
        &[],
    );
    onboard(&daemon, &p);
    let (_, id) = transition(&daemon, install_body(&p.type_name(), &unique("sup"), json!({})));
    transition(&daemon, next_body(&id, "Start", json!({})));
    let container = daemon.containers()[0]["Id"].as_str().unwrap().to_owned();
    let started = inspect(&container).unwrap()["State"]["StartedAt"].clone();
    assert!(docker("POST", &format!("/containers/{container}/kill"), None).status < 300);
    daemon.wait_for("the container to be restarted", std::time::Duration::from_secs(30), |_| {
        inspect(&container).filter(|c| c["State"]["Running"] == true && c["State"]["StartedAt"] != started)
    });
    transition(&daemon, next_body(&id, "Stop", json!({})));
    assert!(docker("POST", &format!("/containers/{container}/kill"), None).status < 300);
    daemon.wait_for("the supervisor to leave it stopped", std::time::Duration::from_secs(30), |d| {
        d.log().contains("it is not restarted in this state").then_some(())
    });
    assert_eq!(inspect(&container).unwrap()["State"]["Running"], false);
    // Start runs the script again in a container started for it.
    transition(&daemon, next_body(&id, "Start", json!({})));
    assert_eq!(inspect(&container).unwrap()["State"]["Running"], true);
    // Stopped while the daemon is down (a reboot): started again at the next start.
    let mut daemon = daemon;
    daemon.terminate();
    assert!(docker("POST", &format!("/containers/{container}/stop?t=1"), None).status < 300);
    daemon.launch(&[]);
    daemon.wait_for("the container to run again after the start", std::time::Duration::from_secs(30), |_| {
        inspect(&container).filter(|c| c["State"]["Running"] == true)
    });
    transition(&daemon, next_body(&id, "Uninstall", json!({})));
}

/// `[resource] package_dirs` is onboarded at start and again on `PUT
/// /onboarding`; a bad package there refuses the reload whole.
#[test]
fn package_directories_are_onboarded_at_start_and_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let p = package(dir.path(), "  a:\n    type: string\n", &["Install", "Uninstall"], &|_| None, &[]);
    let settings =
        format!("{TEST_SETTINGS}\n[resource]\nlisten = \"\"\npackage_dirs = [\"{}\"]\n", dir.path().display());
    let mut daemon = TestDaemon::start_with(bin(), &settings, &[], None);
    daemon.sweep_image(&format!("dockerrm_{}", p.name));
    daemon.wait_for("the package directory to be onboarded", std::time::Duration::from_secs(120), |d| {
        let (_, types) = rm(d, "GET", "/types", None);
        types.as_array()?.iter().any(|t| t["name"] == p.type_name()).then_some(())
    });
    let q = package(dir.path(), "  b:\n    type: string\n", &["Install", "Uninstall"], &|_| None, &[]);
    daemon.sweep_image(&format!("dockerrm_{}", q.name));
    let run = daemon.berth(&["resource", "reload", "--output", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&q.type_name()), "{run:?}");
    let bad = package(dir.path(), "  c:\n    type: strin\n", &["Install", "Uninstall"], &|_| None, &[]);
    let (status, body) = rm(&daemon, "PUT", "/onboarding", None);
    assert_eq!(status, 400, "{body}");
    assert!(body["localizedMessage"].as_str().unwrap().contains(&bad.name), "{body}");
}

/// The CLI waits for a request and exits by its outcome; the example
/// package of `examples/` onboards and runs its whole lifecycle.
#[test]
fn the_cli_waits_for_requests_and_the_example_package_works() {
    let daemon = TestDaemon::start(bin());
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/resource-hello");
    let run = daemon.berth(&["resource", "onboard", &example.to_string_lossy(), "--output", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let type_name: Value = serde_json::from_str(&run.stdout).unwrap();
    let type_name = type_name["name"].as_str().unwrap().to_owned();
    let name = unique("hello");
    let descriptor =
        rm(&daemon, "GET", &format!("/types/{type_name}"), None).1["descriptor"].as_str().unwrap().to_owned();
    // Every required property of the example gets a value.
    let mut args: Vec<String> = vec![
        "resource".into(),
        "transition".into(),
        "Install".into(),
        "--type".into(),
        type_name.clone(),
        "--name".into(),
        name.clone(),
        "--wait".into(),
        "--output".into(),
        "json".into(),
    ];
    for required in required_properties(&descriptor) {
        args.push("--property".into());
        args.push(format!("{required}=x"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = daemon.berth(&args);
    assert_eq!(run.code, 0, "{run:?}\n{}", daemon.log());
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["requestState"], "COMPLETED", "{status}");
    let id = status["resourceId"].as_str().unwrap().to_owned();
    for t in ["Configure", "Start", "Integrity", "Stop", "Start", "Reconfigure", "Uninstall"] {
        let run = daemon.berth(&["resource", "transition", t, "--id", &id, "--wait"]);
        assert_eq!(run.code, 0, "{t}: {run:?}\n{}", daemon.log());
    }
    let run = daemon.berth(&["resource", "show", &id]);
    assert_ne!(run.code, 0, "the instance is gone: {run:?}");
    // A request that fails exits 9 with its reason; a bad property form exits 2 before asking.
    let run =
        daemon.berth(&["resource", "transition", "Install", "--type", &type_name, "--name", &unique("x"), "--wait"]);
    let refused = required_properties(&descriptor).is_empty();
    assert!(refused || run.code == 2, "a missing required property is refused: {run:?}");
    let run = daemon.berth(&[
        "resource",
        "transition",
        "Install",
        "--type",
        &type_name,
        "--name",
        "y",
        "--property",
        "novalue",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    let failing = package(
        daemon.dir.path(),
        "  a:\n    type: string\n",
        &["Install", "Uninstall"],
        &|t| (t == "Install").then(|| "echo nope >&2; exit 4\n".into()),
        &[],
    );
    onboard(&daemon, &failing);
    let run = daemon.berth(&[
        "resource",
        "transition",
        "Install",
        "--type",
        &failing.type_name(),
        "--name",
        &unique("f"),
        "--wait",
    ]);
    assert_eq!(run.code, 9, "{run:?}");
    assert!(run.stderr.contains("exited with status 4") && run.stderr.contains("nope"), "{run:?}");
    // The base image on its own, for resource developers' builds.
    let run = daemon.berth(&["resource", "base-image"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("dockerrm_baseimage in local: sha256:"), "{run:?}");
    // The API's OpenAPI document is served beside it.
    let (status, doc) = rm(&daemon, "GET", "/openapi.json", None);
    assert_eq!(status, 200);
    assert!(doc["paths"].get("/lifecycle/transitions").is_some(), "{doc}");
}

/// The names of the required, writable properties of a descriptor (a crude
/// reading, enough for the example's flat layout).
fn required_properties(descriptor: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut current = None;
    let mut in_properties = false;
    for line in descriptor.lines() {
        if !line.starts_with(' ') {
            in_properties = line.starts_with("properties:");
            current = None;
            continue;
        }
        if !in_properties {
            continue;
        }
        if line.starts_with("  ") && !line.starts_with("   ") {
            current = line.trim().strip_suffix(':').map(str::to_owned);
        } else if line.trim() == "required: true" {
            names.extend(current.clone());
        }
    }
    names
}

/// The TCP listener speaks TLS with a configured certificate; docker_volume
/// properties mount volumes into instances.
#[test]
fn tls_listener_and_volumes_in_instances() {
    let certs = berth_testkit::http_server::TestCertificates::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rm.crt"), &certs.server_pem).unwrap();
    std::fs::write(dir.path().join("rm.key"), &certs.key_pem).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let settings = format!(
        "{TEST_SETTINGS}\n[resource]\nlisten = \"127.0.0.1:{port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        dir.path().join("rm.crt").display(),
        dir.path().join("rm.key").display()
    );
    let daemon = TestDaemon::start_with(bin(), &settings, &[], None);
    let (status, body) = berth_testkit::harness::poll(std::time::Duration::from_secs(10), || {
        certs.get(port, "/api/resource-manager/configuration").ok()
    })
    .expect("the TLS listener answers");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"supportedApiVersions\":[\"1.0\"]"), "{body}");
    // Plain http on the TLS port gets no answer.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut plain, b"GET /api/resource-manager/configuration HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut plain, &mut answer);
    assert!(!String::from_utf8_lossy(&answer).contains("supportedApiVersions"));
    // Only the resource manager's API is on TCP, not the native one.
    assert_eq!(certs.get(port, "/v1/apps").unwrap().0, 404);

    let vol = unique("rmvol");
    let (_, vol_id) = transition(&daemon, volume_body(&vol));
    let p = package(
        daemon.dir.path(),
        "  docker_volume:\n    type: string\n    required: true\n",
        &["Install", "Uninstall"],
        &|t| (t == "Install").then(|| "echo kept > /data/file\n".into()),
        &[],
    );
    onboard(&daemon, &p);
    // A volume berth did not make (another app's data, say) is not mounted.
    let foreign = unique("foreignvol");
    let made = docker("POST", "/volumes/create", Some(&json!({"Name": foreign, "Labels": {"berth.test.sweep": "1"}})));
    assert!(made.status < 300, "{}", made.text());
    let body = install_body(&p.type_name(), &unique("novol"), json!({"docker_volume": format!("{foreign}:/data")}));
    let (request_id, _) = request(&daemon, body);
    let status = wait_request(&daemon, &request_id);
    assert_eq!(status["requestState"], "FAILED", "{status}");
    assert!(
        status["requestStateReason"].as_str().unwrap().contains("was not made by this resource manager"),
        "{status}"
    );
    docker("DELETE", &format!("/volumes/{foreign}"), None);
    let (_, id) = transition(
        &daemon,
        install_body(&p.type_name(), &unique("withvol"), json!({"docker_volume": format!("{vol}:/data")})),
    );
    let container = daemon.containers().iter().find(|c| c["Labels"]["berth.resource"] == id.as_str()).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mounts = inspect(&container).unwrap()["Mounts"].clone();
    assert!(
        mounts.as_array().unwrap().iter().any(|m| m["Name"] == vol.as_str() && m["Destination"] == "/data"),
        "{mounts}"
    );
    transition(&daemon, next_body(&id, "Uninstall", json!({})));
    transition(&daemon, next_body(&vol_id, "Uninstall", json!({})));
}
