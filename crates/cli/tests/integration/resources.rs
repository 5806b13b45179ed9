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
        install_body(&package.type_name(), &name, json!({"color": "blue", "awkward": AWKWARD, "docker_hostname": "ignored"})),
    );
    assert!(status["requestStateReason"].as_str().unwrap().starts_with("Transition successfully completed in "), "{status}");
    let view = instance(&daemon, &id).expect("the instance");
    let p = &view["properties"];
    assert_eq!(p["color"], "blue");
    assert_eq!(p["installed"], "yes", "the script's setProperty is read back: {view}");
    assert_eq!(p["awkward"], AWKWARD, "a value round-trips through the files and the utilities");
    assert!(p["echoed"].as_str().unwrap().starts_with("hello from "), "{view}");
    assert_eq!(p["secret"], "********", "passwords are masked");
    assert_eq!(view["resourceName"], name);
    let internal = view["internalResourceInstances"].as_array().unwrap();
    let container = internal.iter().find(|r| r["type"] == "docker_container").expect("container")["id"].as_str().unwrap().to_owned();
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

    // A custom operation: its properties are its own, and only declared
    // instance properties are taken back from it.
    transition(&daemon, next_body(&id, "shout", json!({"input": "hey"})));
    let view = instance(&daemon, &id).unwrap();
    assert!(view["properties"].get("ignored").is_none(), "{view}");

    // The history, newest first.
    let (_, history) = rm(&daemon, "GET", &format!("/topology/instances/{id}/requests"), None);
    assert_eq!(history.as_array().unwrap().len(), 9, "{history}");
    assert_eq!(history[0]["transitionName"], "shout");

    // The location lists it; filters by type (exact) and name (partial).
    let (_, found) = rm(&daemon, "GET", &format!("/topology/deployment-locations/local/instances?instanceType={}&instanceName={}", package.type_name(), &name[..6]), None);
    assert!(found.as_array().unwrap().iter().any(|i| i["resourceId"] == id), "{found}");
    let (_, none) = rm(&daemon, "GET", &format!("/topology/deployment-locations/local/instances?instanceType={}x", package.type_name()), None);
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
            "Install" => Some("if [ \"$(getProperty mode)\" = fail ]; then echo 'the install broke' >&2; exit 7; fi\n".into()),
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
    let (_, net_id) = transition(
        &daemon,
        json!({"deploymentLocation": "local", "resourceType": "resource::docker-network::1.0", "transitionName": "Install",
               "resourceName": net, "properties": {"subnet": format!("10.{octet}.7.0/24"), "gateway": format!("10.{octet}.7.1")}}),
    );
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
    let (_, id) = transition(&daemon, install_body(&package.type_name(), &unique("onnet"), json!({"docker_network": net})));
    let view = instance(&daemon, &id).unwrap();
    let address = view["properties"]["docker_ipaddr"].as_str().unwrap();
    assert!(address.starts_with(&format!("10.{octet}.7.")), "{view}");
    let second = unique("rmnet");
    let (_, second_id) = transition(
        &daemon,
        json!({"deploymentLocation": "local", "resourceType": "resource::docker-network::1.0", "transitionName": "Install",
               "resourceName": second, "properties": {"subnet": format!("10.{octet}.8.0/24"), "gateway": format!("10.{octet}.8.1")}}),
    );
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
    let (_, vol_id) = transition(
        &daemon,
        json!({"deploymentLocation": "local", "resourceType": "resource::docker-volume::1.0", "transitionName": "Install", "resourceName": vol}),
    );
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
    let (_, all) = rm(&daemon, "GET", "/topology/deployment-locations/local/instances?instanceType=resource::docker-network::1.0", None);
    let discovered = all.as_array().unwrap().iter().find(|i| i["resourceName"] == foreign).cloned().expect("discovered");
    assert_eq!(discovered["resourceState"], "Discovered");
    let (status, body) = rm(&daemon, "POST", "/lifecycle/transitions", Some(&next_body(discovered["resourceId"].as_str().unwrap(), "Uninstall", json!({}))));
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
        (json!({"deploymentLocation": "mars", "resourceType": t, "transitionName": "Install", "resourceName": "x"}), 400, "no deployment location mars"),
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
