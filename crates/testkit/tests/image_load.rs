//! Loads testkit archives into the real local Docker Engine (API 1.41) over
//! its unix socket, and checks the malformed-archive writers offline.
//!
//! Engine tests are skipped (with a note) only when the socket does not
//! exist; if it exists, any engine error fails the test.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_testkit::http::{request, Response, DOCKER_SOCKET};
use berth_testkit::image::{BUSYBOX_APPLETS, SERVICE_CMD};
use berth_testkit::{
    write_corrupt_gzip, write_empty_manifest_tar, write_multi_image_tar, write_plain_tar, write_truncated_tar,
    ImageArchive, ImageBuilder,
};
use flate2::read::GzDecoder;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const API: &str = "/v1.41";
const SWEEP_LABEL: &str = "berth.test.sweep";

// ---------------------------------------------------------------------------
// The engine over its socket, through the testkit's HTTP client.
// ---------------------------------------------------------------------------

fn docker(method: &str, path: &str, content_type: &str, body: &[u8]) -> io::Result<Response> {
    request(Path::new(DOCKER_SOCKET), method, &format!("{API}{path}"), content_type, body)
}

fn docker_json(method: &str, path: &str, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap();
    docker(method, path, "application/json", &bytes).unwrap()
}

fn docker_empty(method: &str, path: &str) -> Response {
    docker(method, path, "application/json", b"").unwrap()
}

// ---------------------------------------------------------------------------
// Engine helpers.
// ---------------------------------------------------------------------------

fn engine_available() -> bool {
    let present = Path::new(DOCKER_SOCKET).exists();
    if !present {
        eprintln!("skipping: {DOCKER_SOCKET} does not exist");
    }
    present
}

fn unique_name() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{}-{nanos}", std::process::id())
}

fn unique_tag() -> String {
    format!("berth-test/{}:1", unique_name())
}

/// POST /images/load; the engine reports load errors inside a 200 stream.
fn load_archive(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let response = docker("POST", "/images/load?quiet=1", "application/x-tar", &bytes).unwrap();
    let text = response.text();
    assert_eq!(response.status, 200, "load failed: {text}");
    assert!(!text.contains("errorDetail"), "load reported an error: {text}");
}

/// Removes the image when dropped, so failed assertions don't leak images.
struct ImageGuard(String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = docker("DELETE", &format!("/images/{}?force=1", self.0), "application/json", b"");
    }
}

/// Removes the container when dropped.
struct ContainerGuard(String);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let _ = docker("DELETE", &format!("/containers/{}?force=1", self.0), "application/json", b"");
    }
}

fn inspect_image(id: &str) -> Value {
    let response = docker_empty("GET", &format!("/images/{id}/json"));
    assert_eq!(response.status, 200, "inspect {id}: {}", response.text());
    response.json()
}

fn assert_loaded(archive: &ImageArchive) -> Value {
    let inspect = inspect_image(&archive.image_id);
    assert_eq!(inspect["Id"], json!(archive.image_id));
    let expected_tags: Vec<&str> = archive.repo_tag.iter().map(String::as_str).collect();
    assert_eq!(inspect["RepoTags"], json!(expected_tags));
    inspect
}

fn delete_image(id: &str) {
    let response = docker_empty("DELETE", &format!("/images/{id}?force=1"));
    assert_eq!(response.status, 200, "delete {id}: {}", response.text());
    assert_eq!(docker_empty("GET", &format!("/images/{id}/json")).status, 404);
}

fn inspect_container(id: &str) -> Value {
    let response = docker_empty("GET", &format!("/containers/{id}/json"));
    assert_eq!(response.status, 200, "inspect container: {}", response.text());
    response.json()
}

// ---------------------------------------------------------------------------
// Engine tests.
// ---------------------------------------------------------------------------

#[test]
fn tagged_tar_loads_with_expected_id_tag_and_config() {
    if !engine_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let builder = ImageBuilder::new(&unique_tag())
        .service()
        .label(SWEEP_LABEL, "1")
        .env("GREETING=hi")
        .workdir("/srv/app")
        .file("/srv/app/config.txt", "port=80\n", 0o640)
        .healthcheck(&["true"], 500, 3);
    let archive = builder.write_tar(&dir.path().join("image.tar")).unwrap();
    let _guard = ImageGuard(archive.image_id.clone());

    load_archive(&archive.path);
    let inspect = assert_loaded(&archive);
    let config = &inspect["Config"];
    assert_eq!(config["Cmd"], json!(SERVICE_CMD));
    assert_eq!(config["Labels"][SWEEP_LABEL], "1");
    assert_eq!(config["WorkingDir"], "/srv/app");
    assert_eq!(
        config["Env"],
        json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hi"])
    );
    assert_eq!(config["Healthcheck"]["Test"], json!(["CMD", "true"]));
    assert_eq!(config["Healthcheck"]["Interval"], 500_000_000u64);
    assert_eq!(config["Healthcheck"]["Retries"], 3);
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Architecture"], json!(expected_docker_arch()));
    delete_image(&archive.image_id);
}

#[test]
fn gzip_and_untagged_archives_load() {
    if !engine_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let marker = unique_name();
    let untagged = ImageBuilder::untagged().busybox().label(SWEEP_LABEL, "1").layer_marker(&marker);
    let archive = untagged.write_tar_gz(&dir.path().join("untagged.tar.gz")).unwrap();
    let _guard = ImageGuard(archive.image_id.clone());
    assert_eq!(archive.repo_tag, None);

    load_archive(&archive.path);
    assert_loaded(&archive);
    delete_image(&archive.image_id);
}

#[test]
fn multi_image_archive_loads_every_image() {
    if !engine_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let images: Vec<ImageBuilder> = ["a", "b"]
        .iter()
        .map(|which| ImageBuilder::new(&unique_tag()).busybox().label(SWEEP_LABEL, "1").layer_marker(which))
        .collect();
    let archives = write_multi_image_tar(&dir.path().join("multi.tar"), &images).unwrap();
    let _guards: Vec<ImageGuard> = archives.iter().map(|a| ImageGuard(a.image_id.clone())).collect();

    load_archive(&archives[0].path);
    for archive in &archives {
        assert_loaded(archive);
    }
    for archive in &archives {
        delete_image(&archive.image_id);
    }
}

/// The service image must run until stopped, exit 0 on SIGTERM well before
/// the stop timeout (the trap), and its healthcheck must pass (busybox applets work).
#[test]
fn service_image_runs_is_healthy_and_stops_promptly_on_term() {
    if !engine_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let builder = ImageBuilder::new(&unique_tag()).service().label(SWEEP_LABEL, "1").healthcheck(&["true"], 300, 3);
    let archive = builder.write_tar(&dir.path().join("service.tar")).unwrap();
    let _image_guard = ImageGuard(archive.image_id.clone());
    load_archive(&archive.path);

    let name = format!("berth-test-{}", unique_name());
    let create_body = json!({ "Image": archive.image_id, "Labels": { SWEEP_LABEL: "1" } });
    let created = docker_json("POST", &format!("/containers/create?name={name}"), &create_body);
    assert_eq!(created.status, 201, "create: {}", created.text());
    let container_id = created.json()["Id"].as_str().unwrap().to_owned();
    let _container_guard = ContainerGuard(container_id.clone());

    let started = docker_empty("POST", &format!("/containers/{container_id}/start"));
    assert_eq!(started.status, 204, "start: {}", started.text());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(inspect_container(&container_id)["State"]["Running"], true);
    wait_until_healthy(&container_id, Duration::from_secs(20));

    let stop_started = Instant::now();
    let stopped = docker_empty("POST", &format!("/containers/{container_id}/stop?t=5"));
    let stop_took = stop_started.elapsed();
    assert_eq!(stopped.status, 204, "stop: {}", stopped.text());
    // Without the trap, PID 1 ignores SIGTERM and stop takes the full 5 s + SIGKILL.
    assert!(stop_took < Duration::from_secs(5), "stop took {stop_took:?}: TERM trap not working");
    let state = &inspect_container(&container_id)["State"];
    assert_eq!(state["Running"], false);
    assert_eq!(state["ExitCode"], 0, "trap should exit 0: {state}");

    let removed = docker_empty("DELETE", &format!("/containers/{container_id}?force=1"));
    assert_eq!(removed.status, 204, "remove: {}", removed.text());
    delete_image(&archive.image_id);
}

fn wait_until_healthy(container_id: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let state = inspect_container(container_id)["State"].clone();
        if state["Health"]["Status"] == "healthy" {
            return;
        }
        assert!(Instant::now() < deadline, "never became healthy: {state}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------
// Offline checks of the archive format.
// ---------------------------------------------------------------------------

/// Member name → bytes, in archive order.
fn tar_members(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(bytes);
    let mut members = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        members.push((name, data));
    }
    members
}

fn member<'a>(members: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    &members.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no member {name}")).1
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn expected_docker_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn archive_layout_matches_docker_save_and_ids_are_content_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let builder = ImageBuilder::new("berth-test/layout:1").service().layer_marker("layout");
    let archive = builder.write_tar(&dir.path().join("layout.tar")).unwrap();
    let bytes = std::fs::read(&archive.path).unwrap();
    let members = tar_members(&bytes);

    assert_eq!(members.last().unwrap().0, "manifest.json", "manifest.json must be last");
    let manifest: Value = serde_json::from_slice(member(&members, "manifest.json")).unwrap();
    let entry = &manifest.as_array().unwrap()[0];
    assert_eq!(entry["RepoTags"], json!(["berth-test/layout:1"]));

    let config_name = entry["Config"].as_str().unwrap();
    let config_bytes = member(&members, config_name);
    let config_hex = sha256_hex(config_bytes);
    assert_eq!(config_name, format!("{config_hex}.json"));
    assert_eq!(archive.image_id, format!("sha256:{config_hex}"));

    let layer_path = entry["Layers"][0].as_str().unwrap();
    let layer_dir = layer_path.strip_suffix("/layer.tar").unwrap();
    assert_eq!(member(&members, &format!("{layer_dir}/VERSION")), b"1.0");
    let legacy: Value = serde_json::from_slice(member(&members, &format!("{layer_dir}/json"))).unwrap();
    assert_eq!(legacy["id"], layer_dir);
    let repositories: Value = serde_json::from_slice(member(&members, "repositories")).unwrap();
    assert_eq!(repositories, json!({ "berth-test/layout": { "1": layer_dir } }));

    let layer = member(&members, layer_path);
    let config: Value = serde_json::from_slice(config_bytes).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"], json!([format!("sha256:{}", sha256_hex(layer))]));
    assert_eq!(config["architecture"], expected_docker_arch());
    assert_eq!(config["config"]["Cmd"], json!(SERVICE_CMD));
    assert_layer_has_busybox_fs(layer);
}

fn assert_layer_has_busybox_fs(layer: &[u8]) {
    let mut entries = BTreeMap::new();
    let mut names = Vec::new();
    for entry in tar::Archive::new(layer).entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        let name = entry.path().unwrap().to_string_lossy().trim_end_matches('/').to_owned();
        let link = entry.link_name().unwrap().map(|l| l.to_string_lossy().into_owned());
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0), "{name}");
        entries.insert(name.clone(), (header.entry_type(), header.mode().unwrap(), header.size().unwrap(), link));
        names.push(name);
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "layer entries must be sorted");

    let busybox_len = std::fs::metadata("/bin/busybox").unwrap().len();
    let (kind, mode, size, _) = &entries["bin/busybox"];
    assert_eq!((kind.is_file(), *mode, *size), (true, 0o755, busybox_len));
    for applet in BUSYBOX_APPLETS {
        let (kind, _, _, link) = &entries[&format!("bin/{applet}")];
        assert!(kind.is_symlink(), "{applet}");
        assert_eq!(link.as_deref(), Some("busybox"));
    }
    assert_eq!(entries["tmp"].1, 0o1777);
    assert!(entries["etc"].0.is_dir());
    assert!(entries["root"].0.is_dir());
    assert_eq!(entries["etc/berth-marker"].0, tar::EntryType::Regular);
}

#[test]
fn same_builder_gives_same_bytes_and_markers_give_distinct_ids() {
    let builder = ImageBuilder::new("berth-test/determinism:1").service().layer_marker("one");
    let first = builder.to_tar_bytes().unwrap();
    assert_eq!(first, builder.to_tar_bytes().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let one = builder.write_tar(&dir.path().join("one.tar")).unwrap();
    assert_eq!(std::fs::read(&one.path).unwrap(), first);
    let one_gz = builder.write_tar_gz(&dir.path().join("one.tar.gz")).unwrap();
    assert_eq!(one.image_id, one_gz.image_id);
    let mut gunzipped = Vec::new();
    GzDecoder::new(std::fs::File::open(&one_gz.path).unwrap()).read_to_end(&mut gunzipped).unwrap();
    assert_eq!(gunzipped, first);

    let two = builder.clone().layer_marker("two").write_tar(&dir.path().join("two.tar")).unwrap();
    assert_ne!(one.image_id, two.image_id);
}

#[test]
fn untagged_manifest_has_null_repo_tags_and_no_repositories_file() {
    let bytes = ImageBuilder::untagged().layer_marker("untagged").to_tar_bytes().unwrap();
    let members = tar_members(&bytes);
    let manifest: Value = serde_json::from_slice(member(&members, "manifest.json")).unwrap();
    assert_eq!(manifest[0]["RepoTags"], Value::Null);
    assert!(members.iter().all(|(name, _)| name != "repositories"));
    assert_eq!(ImageBuilder::new("").repo_tag(), None);
    assert_eq!(ImageBuilder::new("berth-test/x").repo_tag(), Some("berth-test/x:latest"));
}

#[test]
fn multi_image_tar_has_one_manifest_entry_per_image() {
    let dir = tempfile::tempdir().unwrap();
    let images = [
        ImageBuilder::new("berth-test/multi-a:1").layer_marker("a"),
        ImageBuilder::new("berth-test/multi-b:1").layer_marker("b"),
        ImageBuilder::untagged().layer_marker("c"),
    ];
    let archives = write_multi_image_tar(&dir.path().join("multi.tar"), &images).unwrap();
    let members = tar_members(&std::fs::read(dir.path().join("multi.tar")).unwrap());
    assert_eq!(members.last().unwrap().0, "manifest.json");
    let manifest: Value = serde_json::from_slice(member(&members, "manifest.json")).unwrap();
    let entries = manifest.as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for (entry, archive) in entries.iter().zip(&archives) {
        let config_hex = archive.image_id.strip_prefix("sha256:").unwrap();
        assert_eq!(entry["Config"], format!("{config_hex}.json"));
        assert_eq!(sha256_hex(member(&members, &format!("{config_hex}.json"))), config_hex);
        let tags: Option<Vec<&str>> = archive.repo_tag.as_deref().map(|t| vec![t]);
        assert_eq!(entry["RepoTags"], json!(tags));
    }
}

#[test]
fn empty_manifest_tar_holds_only_an_empty_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.tar");
    write_empty_manifest_tar(&path).unwrap();
    let members = tar_members(&std::fs::read(&path).unwrap());
    assert_eq!(members, vec![("manifest.json".to_owned(), b"[]".to_vec())]);
}

#[test]
fn plain_tar_is_valid_but_has_no_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.tar");
    write_plain_tar(&path).unwrap();
    let members = tar_members(&std::fs::read(&path).unwrap());
    assert!(members.len() >= 2);
    assert!(members.iter().all(|(name, _)| name != "manifest.json"));
}

#[test]
fn corrupt_gzip_decodes_a_valid_prefix_then_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.tar.gz");
    write_corrupt_gzip(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");

    let mut decoder = GzDecoder::new(bytes.as_slice());
    let mut decoded = Vec::new();
    let mut buf = [0u8; 4096];
    let error = loop {
        match decoder.read(&mut buf) {
            Ok(0) => panic!("corrupt gzip decoded to the end ({} bytes)", decoded.len()),
            Ok(n) => decoded.extend_from_slice(&buf[..n]),
            Err(err) => break err,
        }
    };
    assert!(decoded.len() >= 4096, "should fail mid-stream, not at once: {error}");
    // What did decode is the start of a real image archive.
    let mut partial = tar::Archive::new(decoded.as_slice());
    let first = partial.entries().unwrap().next().unwrap().unwrap();
    let first_name = first.path().unwrap().to_string_lossy().into_owned();
    assert_eq!(first_name.len(), 64 + 1, "first member is a layer dir: {first_name}");
}

#[test]
fn truncated_tar_is_cut_inside_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truncated.tar");
    let builder = ImageBuilder::new("berth-test/truncated:1").service();
    write_truncated_tar(&path, &builder).unwrap();
    let truncated = std::fs::read(&path).unwrap();
    let full = builder.to_tar_bytes().unwrap();
    assert!(truncated.len() < full.len() / 2 + 1024 * 1024);
    assert_eq!(&full[..truncated.len()], truncated.as_slice(), "a prefix of the real archive");

    // Reading succeeds up to layer.tar, whose data then ends early.
    let mut archive = tar::Archive::new(truncated.as_slice());
    let mut saw_layer = false;
    for entry in archive.entries().unwrap() {
        let Ok(mut entry) = entry else { break };
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name.ends_with("/layer.tar") {
            saw_layer = true;
            let declared = entry.header().size().unwrap();
            // The tar crate reports a short read rather than an error.
            let readable = io::copy(&mut entry, &mut io::sink()).unwrap_or(0);
            assert!(readable < declared, "layer data must be cut short: {readable} of {declared}");
        }
        assert_ne!(name, "manifest.json");
    }
    assert!(saw_layer);
}

#[test]
fn mkimage_cli_writes_padded_archive_and_prints_id() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cli.tar.gz");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_berth-mkimage"))
        .args(["--tag", "berth-test/cli:1", "--gzip", "--marker", "cli", "--pad-mb", "2"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout).unwrap().trim().to_owned();

    let mut tar_bytes = Vec::new();
    GzDecoder::new(std::fs::File::open(&out).unwrap()).read_to_end(&mut tar_bytes).unwrap();
    let members = tar_members(&tar_bytes);
    let manifest: Value = serde_json::from_slice(member(&members, "manifest.json")).unwrap();
    let config_name = manifest[0]["Config"].as_str().unwrap();
    assert_eq!(printed, format!("sha256:{}", config_name.trim_end_matches(".json")));

    // The pad must not compress away: the gzip stays at least as big as the pad.
    let compressed_len = std::fs::metadata(&out).unwrap().len();
    assert!(compressed_len > 2 * 1024 * 1024, "gzip is only {compressed_len} bytes");
    let layer = member(&members, manifest[0]["Layers"][0].as_str().unwrap());
    let mut layer_archive = tar::Archive::new(layer);
    let pad = layer_archive
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap().to_str() == Some("opt/pad.bin"))
        .expect("opt/pad.bin in layer");
    assert_eq!(pad.header().size().unwrap(), 2 * 1024 * 1024);
}
