//! The daemon's API as documented (OpenAPI, JSON errors) and the command
//! line under its two names (`berth`, and `tpcm` as SONiC's TPCM spells it).

use crate::bin;

use berth_testkit::harness::{image_exists, inspect, unique, TestDaemon};
use berth_testkit::http;
use berth_testkit::ImageBuilder;
use serde_json::{json, Value};

fn service(tag: &str) -> ImageBuilder {
    ImageBuilder::new(&format!("berth-test/{tag}:1")).service().label("berth.test.sweep", "1").layer_marker(tag)
}

/// Asserts an error response: `status` and a JSON body `{code, message}`.
fn assert_api_error(response: &http::Response, status: u16, code: &str) -> String {
    assert_eq!(response.status, status, "{}", response.text());
    let body = response.json();
    assert_eq!(body["code"], code, "{body}");
    let message = body["message"].as_str().unwrap_or_default().to_owned();
    assert!(!message.is_empty(), "{body}");
    message
}

#[test]
fn the_openapi_document_lists_every_endpoint_of_the_cli() {
    let daemon = TestDaemon::start(bin());
    let response = daemon.api("GET", "/v1/openapi.json", None).unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let doc = response.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')), "{}", doc["openapi"]);
    let paths = &doc["paths"];
    // Every client verb is one documented endpoint.
    let endpoints = [
        ("/v1/info", "get"),                             // (daemon status)
        ("/v1/apps", "get"),                             // list
        ("/v1/apps", "post"),                            // install
        ("/v1/apps/{name}", "get"),                      // show
        ("/v1/apps/{name}", "delete"),                   // uninstall
        ("/v1/apps/{name}/start", "post"),               // start
        ("/v1/apps/{name}/stop", "post"),                // stop
        ("/v1/apps/{name}/restart", "post"),             // restart
        ("/v1/apps/{name}/logs", "get"),                 // logs
        ("/v1/sra/images", "post"),                      // sra load
        ("/v1/sra/images", "get"),                       // sra list
        ("/v1/sra/images/{image}", "delete"),            // sra remove
        ("/v1/sra/exec", "post"),                        // sra exec
        ("/v1/sra/run", "post"),                         // sra run
        ("/v1/sra/images/{image}/config", "get"),        // sra config download
        ("/v1/sra/images/{image}/config", "put"),        // sra config upload
        ("/v1/sra/images/{image}/config/reset", "post"), // sra config reset
        ("/v1/sra/config/copy", "post"),                 // sra config copy
        ("/v1/web", "get"),                              // web status
        ("/v1/web/admin", "put"),                        // web passwd
        ("/v1/web/admin", "delete"),                     // web remove-admin
    ];
    for (path, method) in endpoints {
        assert!(paths[path][method].is_object(), "{method} {path} is documented: {}", paths[path]);
    }
    for schema in ["ApiError", "ErrorKind", "AppView", "InstallRequest", "InstallEvent", "SraEvent", "SraRunRequest"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "schema {schema}");
    }
    // ...and the command line offers each of those verbs.
    let verbs = daemon.berth(&["--help"]);
    for verb in ["install", "list", "show", "start", "stop", "restart", "logs", "uninstall"] {
        assert!(verbs.stdout.contains(verb), "{verb}: {verbs:?}");
    }
}

#[test]
fn errors_are_json_with_a_code_and_a_message() {
    let daemon = TestDaemon::start(bin());

    let missing = daemon.api("GET", "/v1/apps/nope", None).unwrap();
    let message = assert_api_error(&missing, 404, "not_found");
    assert!(message.contains("nope"), "{message}");
    for (method, path) in [
        ("POST", "/v1/apps/nope/start"),
        ("POST", "/v1/apps/nope/stop"),
        ("POST", "/v1/apps/nope/restart"),
        ("GET", "/v1/apps/nope/logs"),
        ("DELETE", "/v1/apps/nope"),
    ] {
        assert_api_error(&daemon.api(method, path, None).unwrap(), 404, "not_found");
    }

    let registry = json!({ "kind": "registry", "reference": "localhost:1/x:1" });
    let bad_name = daemon.api("POST", "/v1/apps", Some(&json!({ "name": "Bad!", "source": registry }))).unwrap();
    let message = assert_api_error(&bad_name, 400, "invalid_input");
    assert!(message.contains("Bad!"), "{message}");

    // The daemon opens no file a client names: an upload comes with its archive.
    let upload = json!({ "kind": "upload", "origin": "/etc/shadow" });
    let no_archive = daemon.api("POST", "/v1/apps", Some(&json!({ "name": unique("api"), "source": upload }))).unwrap();
    let message = assert_api_error(&no_archive, 400, "invalid_input");
    assert!(message.contains("archive"), "{message}");
    // A path where a source is expected is refused as the wrong shape, not opened.
    let path =
        daemon.api("POST", "/v1/apps", Some(&json!({ "name": unique("api"), "source": "/etc/shadow" }))).unwrap();
    assert_api_error(&path, 400, "invalid_input");

    let unknown = daemon.api("GET", "/v1/nothing/here", None).unwrap();
    let message = assert_api_error(&unknown, 404, "not_found");
    assert!(message.contains("openapi"), "{message}");

    let garbage = http::request(&daemon.socket, "POST", "/v1/apps", "application/json", b"{not json").unwrap();
    assert_api_error(&garbage, 400, "invalid_input");
    let incomplete =
        http::request(&daemon.socket, "POST", "/v1/apps", "application/json", b"{\"name\":\"x\"}").unwrap();
    assert_api_error(&incomplete, 400, "invalid_input");
    assert!(daemon.list().is_empty());
}

/// Unknown fields are refused, not ignored: a misspelt option (or one of a
/// request shape that is gone) must not be dropped silently.
#[test]
fn unknown_fields_in_bodies_and_queries_are_refused() {
    let daemon = TestDaemon::start(bin());
    let registry = json!({ "kind": "registry", "reference": "localhost:1/x:1" });
    let install = json!({ "name": unique("api"), "source": registry, "memroy": "64m" });
    let message = assert_api_error(&daemon.api("POST", "/v1/apps", Some(&install)).unwrap(), 400, "invalid_input");
    assert!(message.contains("memroy"), "{message}");
    let source = json!({ "kind": "registry", "reference": "localhost:1/x:1", "insecure": true });
    let install = json!({ "name": unique("api"), "source": source });
    let message = assert_api_error(&daemon.api("POST", "/v1/apps", Some(&install)).unwrap(), 400, "invalid_input");
    assert!(message.contains("insecure"), "{message}");
    let upgrade = json!({ "source": registry, "skip-data": true });
    let response = daemon.api("POST", "/v1/apps/nope/upgrade", Some(&upgrade)).unwrap();
    let message = assert_api_error(&response, 400, "invalid_input");
    assert!(message.contains("skip-data"), "{message}");
    let response = daemon.api("DELETE", "/v1/apps/nope?keep-data=true", None).unwrap();
    let message = assert_api_error(&response, 400, "invalid_input");
    assert!(message.contains("keep-data"), "{message}");
    assert!(daemon.list().is_empty());
}

#[test]
fn install_without_ndjson_answers_201_with_the_app() {
    let mut daemon = TestDaemon::start(bin());
    let name = unique("api");
    let archive = daemon.archive(&service(&name), false);
    let source = json!({ "kind": "upload", "origin": archive.path.to_string_lossy() });
    let body = json!({ "name": name, "source": source, "args": "-e A=1", "memory": "32m" });
    let (content_type, multipart) = multipart(&body, &std::fs::read(&archive.path).unwrap());
    let response = http::request(&daemon.socket, "POST", "/v1/apps", &content_type, &multipart).unwrap();
    assert_eq!(response.status, 201, "{}", response.text());
    let app = response.json();
    assert_eq!(app["name"], name.as_str());
    assert_eq!(app["state"], "running");
    assert_eq!(app["image_id"], archive.image_id.as_str());
    assert_eq!(app["memory"], 32 << 20);
    assert_eq!(app["args"], "-e A=…", "environment values are hidden");
    let container = inspect(&name).expect("container");
    assert_eq!(container["State"]["Running"], true);
    let env: Vec<String> = serde_json::from_value(container["Config"]["Env"].clone()).unwrap();
    assert!(env.contains(&"A=1".to_string()), "{env:?}");
    assert_eq!(daemon.api("GET", &format!("/v1/apps/{name}"), None).unwrap().json()["name"], name.as_str());

    // A second POST is a conflict, as JSON.
    let again = http::request(&daemon.socket, "POST", "/v1/apps", &content_type, &multipart).unwrap();
    assert_api_error(&again, 409, "conflict");

    let removed = daemon.api("DELETE", &format!("/v1/apps/{name}"), None).unwrap();
    assert_eq!(removed.status, 200, "{}", removed.text());
    assert!(inspect(&name).is_none());
    assert!(!image_exists(&archive.image_id));
}

#[test]
fn tpcm_is_the_same_program_with_tpcms_command_line() {
    let mut daemon = TestDaemon::start(bin());
    let tpcm = daemon.dir.path().join("tpcm");
    std::os::unix::fs::symlink(bin(), &tpcm).unwrap();
    let name = unique("tpcm");
    let archive = daemon.archive(&service(&name), true);
    let path = archive.path.to_string_lossy().into_owned();

    // TPCM's order: options before the image path.
    let run = daemon.berth_as(&tpcm, &["install", &name, "--args", "-e A=1", &path, "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    let container = inspect(&name).expect("container");
    assert_eq!(container["State"]["Running"], true);
    let env: Vec<String> = serde_json::from_value(container["Config"]["Env"].clone()).unwrap();
    assert!(env.contains(&"A=1".to_string()), "{env:?}");

    let list = daemon.berth_as(&tpcm, &["list"]);
    assert_eq!(list.code, 0, "{list:?}");
    assert!(list.stdout.lines().any(|l| l.starts_with(&name) && l.contains("running")), "{list:?}");

    for verb in ["start", "stop", "restart", "show", "logs"] {
        let refused = daemon.berth_as(&tpcm, &[verb, &name]);
        assert_eq!(refused.code, 2, "{verb}: {refused:?}");
        assert!(refused.stderr.contains("tpcm") && refused.stderr.contains("install"), "{refused:?}");
    }
    assert_eq!(inspect(&name).unwrap()["State"]["StartedAt"], container["State"]["StartedAt"], "nothing restarted");

    let run = daemon.berth_as(&tpcm, &["uninstall", &name, "-y"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(inspect(&name).is_none());
    assert!(!daemon.private_dir(&name).exists());
    assert!(!image_exists(&archive.image_id));
    assert!(daemon.list().is_empty());

    let help = daemon.berth_as(&tpcm, &["--help"]);
    assert_eq!(help.code, 0, "{help:?}");
    assert!(help.stdout.contains("tpcm"), "{help:?}");
    let usage = daemon.berth_as(&tpcm, &["install"]);
    assert_eq!(usage.code, 2, "{usage:?}");
    assert!(usage.stderr.contains("tpcm"), "usage names tpcm: {usage:?}");
}

#[test]
fn version_help_and_usage_errors() {
    let daemon = TestDaemon::start(bin());
    let version = daemon.berth(&["--version"]);
    assert_eq!(version.code, 0, "{version:?}");
    assert!(version.stdout.starts_with("berth "), "{version:?}");
    let help = daemon.berth(&["install", "--help"]);
    assert_eq!(help.code, 0, "{help:?}");
    assert!(help.stdout.contains("--args") && help.stdout.contains("--yes"), "{help:?}");

    let usage = daemon.berth(&["install"]);
    assert_eq!(usage.code, 2, "{usage:?}");
    assert!(usage.stderr.contains("<NAME>") && usage.stderr.contains("<SOURCE>"), "{usage:?}");
    let nothing = daemon.berth(&[]);
    assert_eq!(nothing.code, 2, "{nothing:?}");
    assert!(nothing.stderr.contains("Usage"), "{nothing:?}");
    let info: Value = daemon.api("GET", "/v1/info", None).unwrap().json();
    assert_eq!(info["apps"], 0);
    assert_eq!(info["version"].as_str(), version.stdout.trim().strip_prefix("berth "));
}

/// A `multipart/form-data` body as the CLI sends it: the request, then the archive.
fn multipart(request: &serde_json::Value, archive: &[u8]) -> (String, Vec<u8>) {
    let boundary = "berth-test-boundary-7f3a";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"request\"\r\nContent-Type: application/json\r\n\r\n{request}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"a.tar\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(archive);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
