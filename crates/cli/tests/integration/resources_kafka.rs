//! An orchestrator's view, from this process over TCP as a real one would
//! drive berth: configuration → types → type → locations → transition →
//! status polled and the response read from Kafka; responses that outlive a
//! broker outage and a daemon restart in the durable outbox; the trace file
//! with the tracing headers and no password in it. The broker is the suite's
//! tansu (scripts/kafka.sh); this is the only test of the binary that stops it.

use crate::bin;
use crate::resources_support::*;
use berth_testkit::harness::{poll, unique, TestDaemon, TEST_SETTINGS};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

pub fn kafka_sh(command: &str) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kafka.sh");
    let out = std::process::Command::new("bash").arg(script).arg(command).output().expect("bash scripts/kafka.sh");
    assert!(out.status.success(), "kafka.sh {command}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Every record of the topic, as JSON (the topic may not exist yet).
pub fn messages(broker: &str, topic: &str) -> Vec<Value> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let records = runtime
        .block_on(berth_kafka::read_all(&[broker.to_owned()], topic, Duration::from_secs(10)))
        .unwrap_or_default();
    records.iter().filter_map(|r| serde_json::from_slice(r).ok()).collect()
}

fn message_for(broker: &str, topic: &str, request_id: &str) -> Value {
    poll(Duration::from_secs(60), || messages(broker, topic).into_iter().find(|m| m["requestId"] == request_id))
        .unwrap_or_else(|| panic!("no Kafka message for {request_id} on {topic}: {:?}", messages(broker, topic)))
}

/// One HTTP/1.1 exchange over TCP, as any orchestrator's client makes it.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the TCP listener answers");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status: u16 = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())))
}

fn outbox_depth(daemon: &TestDaemon) -> i64 {
    rm(daemon, "GET", "/outbox", None).1["depth"].as_i64().unwrap_or(-1)
}

#[test]
fn an_orchestrator_over_tcp_gets_every_response_on_kafka_through_outages() {
    let _broker = crate::KAFKA_BROKER.write().unwrap_or_else(|e| e.into_inner());
    kafka_sh("start");
    let broker = kafka_sh("addr");
    let topic = unique("lm-responses");
    let port = crate::free_port();
    let settings = format!(
        "{TEST_SETTINGS}\n[resource]\nname = \"berth-rm::test\"\nlisten = \"127.0.0.1:{port}\"\ngenerate_trace_file = true\n[resource.kafka]\nbootstrap_servers = [\"{broker}\"]\ntopic = \"{topic}\"\n"
    );
    let mut daemon = TestDaemon::start_with(bin(), &settings, &[], None);

    // Onboarding as the orchestrator does it.
    let (status, config) = http(port, "GET", "/api/resource-manager/configuration", None, &[]);
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["name"], "berth-rm::test");
    assert_eq!(config["supportedFeatures"]["AsynchronousTransitionResponses"], "true");
    assert_eq!(config["properties"]["responseKafkaTopicName"], topic);
    let (_, types) = http(port, "GET", "/api/resource-manager/types", None, &[]);
    assert!(types.as_array().unwrap().iter().any(|t| t["name"] == "resource::docker-volume::1.0"), "{types}");
    let (status, one) = http(port, "GET", "/api/v1.0/resource-manager/types/resource::docker-volume::1.0", None, &[]);
    assert_eq!(status, 200);
    assert!(one["descriptor"].as_str().unwrap().contains("volumename"));
    let (_, locations) = http(port, "GET", "/api/resource-manager/topology/deployment-locations", None, &[]);
    assert_eq!(locations[0]["name"], "local");

    // A transition with a password property, and the orchestrator's tracing headers.
    let package = package(
        daemon.dir.path(),
        "  secret:\n    type: password\n    required: true\n",
        &["Install", "Start", "Uninstall"],
        &|t| (t == "Start").then(|| "echo start broke >&2; exit 5\n".to_owned()),
        &[],
    );
    onboard(&daemon, &package);
    let body = install_body(&package.type_name(), &unique("orch"), json!({"secret": "hunter2-secret"}));
    let headers = [("X-Tracectx-TransactionId", "tx-4711"), ("X-Tracectx-ProcessId", "proc-42")];
    let (status, accepted) = http(port, "POST", "/api/resource-manager/lifecycle/transitions", Some(&body), &headers);
    assert_eq!(status, 202, "{accepted}");
    let request_id = accepted["requestId"].as_str().unwrap().to_owned();
    assert_eq!(request_id.len(), 36, "a UUID: {request_id}");
    let final_status = poll(TRANSITION_TIMEOUT, || {
        let (_, s) =
            http(port, "GET", &format!("/api/resource-manager/lifecycle/transitions/{request_id}/status"), None, &[]);
        (s["requestState"] == "COMPLETED" || s["requestState"] == "FAILED").then_some(s)
    })
    .expect("the request ends");
    assert_eq!(final_status["requestState"], "COMPLETED", "{final_status}");
    let message = message_for(&broker, &topic, &request_id);
    assert_eq!(message["requestState"], "COMPLETED");
    assert_eq!(message["transitionName"], "Install");
    assert_eq!(message["resourceManagerId"], "berth-rm::test");
    assert_eq!(message["deploymentLocation"], "local");
    assert_eq!(message["resourceInstance"]["resourceId"], accepted["resourceId"]);
    assert_eq!(message["resourceInstance"]["properties"]["secret"], "********", "{message}");
    let resource_id = accepted["resourceId"].as_str().unwrap().to_owned();
    // A failing transition's response says why, its passwords masked too.
    let (failed, _) = request(&daemon, next_body(&resource_id, "Start", json!({})));
    assert_eq!(wait_request(&daemon, &failed)["requestState"], "FAILED");
    let message = message_for(&broker, &topic, &failed);
    assert_eq!(message["requestState"], "FAILED", "{message}");
    assert_eq!(message["requestFailureCode"], "INTERNAL_ERROR");
    assert!(message["requestStateReason"].as_str().unwrap().contains("start broke"), "{message}");
    assert_eq!(message["resourceInstance"]["properties"]["secret"], "********", "{message}");

    // The trace file has the exchange with its headers, and no password; nor has the log.
    let trace = std::fs::read_to_string(daemon.root().join("logs/trace.csv")).expect("trace file");
    assert!(trace.starts_with("time,method,path,status,duration_ms,transaction_id,process_id,request,response\n"));
    assert!(trace.contains(",POST,/api/resource-manager/lifecycle/transitions,202,"), "{trace}");
    assert!(trace.contains("tx-4711") && trace.contains("proc-42"), "{trace}");
    assert!(!trace.contains("hunter2-secret"), "a password reached the trace file");
    assert!(!daemon.log().contains("hunter2-secret"), "a password reached the log");

    // The broker goes away: the response waits in the outbox, and is
    // delivered once the broker is back (in-memory: it starts empty).
    kafka_sh("stop");
    let volume = unique("vol");
    let (_, vol_id) = transition(&daemon, volume_body(&volume));
    let (during, _) = request(&daemon, next_body(&vol_id, "Uninstall", json!({})));
    wait_request(&daemon, &during);
    poll(Duration::from_secs(30), || (outbox_depth(&daemon) >= 2).then_some(()))
        .expect("the responses wait in the outbox");
    let run = daemon.berth(&["resource", "status", &during]);
    assert!(run.stdout.contains("responses waiting for Kafka:"), "{run:?}");
    kafka_sh("start");
    poll(Duration::from_secs(60), || (outbox_depth(&daemon) == 0).then_some(())).expect("the outbox drains");
    message_for(&broker, &topic, &during);

    // The daemon restarts with responses still queued: they are sent after the start.
    kafka_sh("stop");
    let (queued, _) = request(&daemon, next_body(&resource_id, "Uninstall", json!({})));
    assert_eq!(wait_request(&daemon, &queued)["requestState"], "COMPLETED");
    poll(Duration::from_secs(30), || (outbox_depth(&daemon) >= 1).then_some(())).expect("queued");
    daemon.kill9();
    kafka_sh("start");
    daemon.launch(&[]);
    let message = message_for(&broker, &topic, &queued);
    assert_eq!(message["transitionName"], "Uninstall");
}
