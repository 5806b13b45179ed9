//! What the resource manager's tests share: resource packages written by the
//! test (shell lifecycle scripts on berth's base image), and the Resource
//! Manager API driven over the daemon's socket as an orchestrator would.

use berth_testkit::harness::{poll, unique, TestDaemon};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const RM: &str = "/api/resource-manager";
/// A transition of the test packages (a few execs) ends well within this.
pub const TRANSITION_TIMEOUT: Duration = Duration::from_secs(120);

/// A package directory under the daemon's test directory.
pub struct TestPackage {
    pub dir: PathBuf,
    pub name: String,
}

impl TestPackage {
    pub fn type_name(&self) -> String {
        format!("resource::{}::1.0", self.name)
    }

    pub fn write(&self, relative: &str, contents: &str) {
        let path = self.dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
    }

    pub fn remove(&self, relative: &str) {
        std::fs::remove_file(self.dir.join(relative)).unwrap();
    }
}

/// The lifecycle every test package has, each script recording that it ran.
pub const FULL_LIFECYCLE: [&str; 7] =
    ["Install", "Configure", "Start", "Integrity", "Stop", "Reconfigure", "Uninstall"];

/// A package in the seed's layout: `resource.yaml` with `properties_yaml`
/// (indented under `properties:`), a script per transition of `lifecycle`
/// (the body from `script_for`, defaulting to recording the transition), the
/// operations of `operations` (name → script body) and a seed-style
/// Dockerfile on `dockerrm_baseimage`.
pub fn package(
    under: &Path,
    properties_yaml: &str,
    lifecycle: &[&str],
    script_for: &dyn Fn(&str) -> Option<String>,
    operations: &[(&str, &str)],
) -> TestPackage {
    let name = unique("rmt").replace('-', "_");
    let dir = under.join(&name);
    let p = TestPackage { dir, name: name.clone() };
    let mut descriptor =
        format!("name: resource::{name}::1.0\ndescription: a test resource\nproperties:\n{properties_yaml}");
    descriptor.push_str("lifecycle:\n");
    for t in lifecycle {
        descriptor.push_str(&format!("  - {t}\n"));
    }
    if !operations.is_empty() {
        descriptor.push_str("operations:\n");
        for (op, _) in operations {
            descriptor.push_str(&format!(
                "  {op}:\n    properties:\n      input:\n        type: string\n        required: true\n      result:\n        type: string\n"
            ));
        }
    }
    p.write("resource.yaml", &descriptor);
    let mut map = String::from("version: 1\nlifecycle:\n");
    for t in lifecycle {
        let key = t.to_lowercase();
        map.push_str(&format!("  {key}: /opt/lifecycle/{key}.sh\n"));
        let body = script_for(t).unwrap_or_else(|| format!("echo {t} >> /tmp/transitions\n"));
        p.write(&format!("lifecycle/{key}.sh"), &format!("#!/bin/sh\nset -e\n{body}"));
    }
    p.write("lifecycle/lifecycle.yaml", &map);
    if !operations.is_empty() {
        let mut ops = String::from("version: 1\noperations:\n");
        for (op, body) in operations {
            ops.push_str(&format!("  {op}: /opt/lifecycle/{op}.sh\n"));
            p.write(&format!("operations/{op}.sh"), &format!("#!/bin/sh\nset -e\n{body}"));
        }
        p.write("operations/operations.yaml", &ops);
    }
    let copy_operations = if operations.is_empty() { "" } else { "ADD operations /opt/lifecycle\n" };
    p.write(
        "Dockerfile",
        &format!(
            // The package's name in the first step: concurrent tests never
            // share the legacy builder's cached steps (their sweeps remove them).
            "FROM dockerrm_baseimage\nRUN mkdir -p /opt/lifecycle && chmod 777 /opt/lifecycle && echo {name} > /opt/package\nADD lifecycle /opt/lifecycle\n{copy_operations}RUN chmod 755 /opt/lifecycle/*\n"
        ),
    );
    p
}

/// Onboards with the CLI; panics with its output when refused.
pub fn onboard(daemon: &TestDaemon, package: &TestPackage) -> Value {
    let run = daemon.berth(&["resource", "onboard", &package.dir.to_string_lossy(), "--output", "json"]);
    assert_eq!(run.code, 0, "onboarding {}: {run:?}\n{}", package.name, daemon.log());
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

pub fn rm(daemon: &TestDaemon, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let response = daemon.api(method, &format!("{RM}{path}"), body).expect("the resource manager answers");
    let status = response.status;
    let text = response.text();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Requests a transition; returns (requestId, resourceId).
pub fn request(daemon: &TestDaemon, body: Value) -> (String, String) {
    let (status, answer) = rm(daemon, "POST", "/lifecycle/transitions", Some(&body));
    assert_eq!(status, 202, "{body}: {answer}\n{}", daemon.log());
    assert_eq!(answer["requestState"], "PENDING");
    (answer["requestId"].as_str().unwrap().to_owned(), answer["resourceId"].as_str().unwrap().to_owned())
}

/// Polls a request until it ends; returns its status.
pub fn wait_request(daemon: &TestDaemon, request_id: &str) -> Value {
    poll(TRANSITION_TIMEOUT, || {
        let (status, body) = rm(daemon, "GET", &format!("/lifecycle/transitions/{request_id}/status"), None);
        assert_eq!(status, 200, "{body}");
        matches!(body["requestState"].as_str(), Some("COMPLETED" | "FAILED")).then_some(body)
    })
    .unwrap_or_else(|| panic!("request {request_id} did not end; log:\n{}", daemon.log()))
}

/// Runs a transition to its end and asserts it COMPLETED.
pub fn transition(daemon: &TestDaemon, body: Value) -> (Value, String) {
    let (request_id, resource_id) = request(daemon, body.clone());
    let status = wait_request(daemon, &request_id);
    assert_eq!(status["requestState"], "COMPLETED", "{body}: {status}\n{}", daemon.log());
    (status, resource_id)
}

pub fn install_body(package_type: &str, name: &str, properties: Value) -> Value {
    json!({
        "deploymentLocation": "local",
        "resourceType": package_type,
        "transitionName": "Install",
        "resourceName": name,
        "properties": properties,
    })
}

pub fn next_body(resource_id: &str, transition: &str, properties: Value) -> Value {
    json!({"resourceId": resource_id, "transitionName": transition, "properties": properties})
}

pub fn instance(daemon: &TestDaemon, id: &str) -> Option<Value> {
    let (status, body) = rm(daemon, "GET", &format!("/topology/instances/{id}"), None);
    (status == 200).then_some(body)
}

/// An Install of the built-in network type.
pub fn network_body(location: &str, name: &str, subnet: &str, gateway: &str) -> Value {
    json!({"deploymentLocation": location, "resourceType": "resource::docker-network::1.0", "transitionName": "Install",
           "resourceName": name, "properties": {"subnet": subnet, "gateway": gateway}})
}

/// An Install of the built-in volume type in `local`.
pub fn volume_body(name: &str) -> Value {
    json!({"deploymentLocation": "local", "resourceType": "resource::docker-volume::1.0", "transitionName": "Install", "resourceName": name})
}
