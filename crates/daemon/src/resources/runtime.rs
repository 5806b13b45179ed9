//! A lifecycle script inside a resource instance's container (Docker RM guide
//! 3.2.1.2): the properties are written as YAML to `/opt/rmparams`
//! (transitions) or `/opt/opparams` (operations) through the Engine API's
//! archive endpoint — no shell string is ever built from a value — the
//! mapped script is run with the transition timeout, and the file is read
//! back for the properties the script changed.

use crate::resources::error::{failure, Failure};
use berth_core::engine::{Engine, ExecRequest, StopSignal};
use berth_core::resource::{parse_params, render_params, MAX_PARAMS_BYTES};
use bytes::Bytes;
use futures::FutureExt;
use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

/// Where the scripts find their properties.
pub const PARAMS_DIR: &str = "/opt";
pub const LIFECYCLE_PARAMS: &str = "rmparams";
pub const OPERATION_PARAMS: &str = "opparams";
/// Bytes of a failing script's output kept in the request's reason.
const OUTPUT_TAIL: usize = 2000;

/// Which file a script reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamsFile {
    Lifecycle,
    Operation,
}

impl ParamsFile {
    fn name(self) -> &'static str {
        match self {
            ParamsFile::Lifecycle => LIFECYCLE_PARAMS,
            ParamsFile::Operation => OPERATION_PARAMS,
        }
    }
}

/// A tar archive of one root-owned file, for the Engine API's archive endpoint.
pub fn file_archive(name: &str, text: &str) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, name, text.as_bytes())?;
    builder.into_inner()
}

pub async fn write_params(
    engine: &dyn Engine,
    container: &str,
    file: ParamsFile,
    properties: &BTreeMap<String, String>,
) -> Result<(), Failure> {
    let archive = file_archive(file.name(), &render_params(properties))
        .map_err(|e| Failure::internal(format!("cannot write the properties file: {e}")))?;
    engine.copy_to(container, PARAMS_DIR, Bytes::from(archive)).await.map_err(|e| {
        let mut f = Failure::from(e);
        f.reason = format!("cannot write {PARAMS_DIR}/{} in the container: {}", file.name(), f.reason);
        f
    })
}

pub async fn read_params(
    engine: &dyn Engine,
    container: &str,
    file: ParamsFile,
) -> Result<BTreeMap<String, String>, Failure> {
    let path = format!("{PARAMS_DIR}/{}", file.name());
    let archive = engine
        .copy_from(container, &path, MAX_PARAMS_BYTES as u64 + 4096)
        .await
        .map_err(Failure::from)?
        .ok_or_else(|| Failure::internal(format!("the script removed {path}")))?;
    let text = file_text(&archive, &path).map_err(Failure::internal)?;
    parse_params(&text).map_err(|e| Failure::internal(format!("{path} as the script left it: {e}")))
}

/// The text of the one file in an archive the Engine API gave for `path`.
pub fn file_text(archive: &[u8], path: &str) -> Result<String, String> {
    let mut entries = tar::Archive::new(archive);
    for entry in entries.entries().map_err(|e| format!("cannot read {path}: {e}"))? {
        let mut entry = entry.map_err(|e| format!("cannot read {path}: {e}"))?;
        if entry.header().entry_type().is_file() {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(|e| format!("{path} is not UTF-8 text: {e}"))?;
            return Ok(text);
        }
    }
    Err(format!("{path} is not a file"))
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end();
    let start = text.char_indices().rev().nth(OUTPUT_TAIL).map_or(0, |(i, _)| i);
    text[start..].to_owned()
}

/// Runs `script` in the container; a non-zero exit or the timeout fail
/// with the exit status and the end of the output.
pub async fn run_script(
    engine: &dyn Engine,
    container: &str,
    what: &str,
    script: &str,
    timeout: Duration,
) -> Result<(), Failure> {
    let stop: StopSignal = tokio::time::sleep(timeout).boxed();
    let request = ExecRequest { argv: vec![script.to_owned()], ..Default::default() };
    let result = engine.exec(container, request, stop).await.map_err(Failure::from)?;
    match result.exit_code {
        Some(0) => Ok(()),
        Some(code) => Err(Failure::new(
            failure::INTERNAL_ERROR,
            format!("{what} failed: {script} exited with status {code}: {}", tail(&result.combined)),
        )),
        None => Err(Failure::new(
            failure::INTERNAL_ERROR,
            format!(
                "{what} failed: {script} did not finish within {}s and was killed: {}",
                timeout.as_secs(),
                tail(&result.combined)
            ),
        )),
    }
}

/// The base image's utility that runs a whole transition in one exec.
pub const UTILITY: &str = "/usr/local/bin/berth-rm";

/// A transition in one exec of the base image's `berth-rm transition`: the
/// properties go in on its stdin, the script runs, the params file as the
/// script left it comes back on stdout (the script's own output on
/// stderr). `None`: the image's utility is older than this berth and does
/// not know `transition` (the caller takes the three-step way).
pub async fn run_in_one_exec(
    engine: &dyn Engine,
    container: &str,
    file: ParamsFile,
    properties: &BTreeMap<String, String>,
    what: &str,
    script: &str,
    timeout: Duration,
) -> Result<Option<BTreeMap<String, String>>, Failure> {
    let kind = match file {
        ParamsFile::Lifecycle => "lifecycle",
        ParamsFile::Operation => "operation",
    };
    let stop: StopSignal = tokio::time::sleep(timeout).boxed();
    let request = ExecRequest {
        argv: vec![UTILITY.to_owned(), "transition".to_owned(), kind.to_owned(), script.to_owned()],
        stdin: Some(Bytes::from(render_params(properties))),
        ..Default::default()
    };
    let result = engine.exec(container, request, stop).await.map_err(Failure::from)?;
    match result.exit_code {
        Some(0) => {
            let text = String::from_utf8(result.stdout)
                .map_err(|_| Failure::internal(format!("{PARAMS_DIR}/{} is not UTF-8 text", file.name())))?;
            parse_params(&text)
                .map(Some)
                .map_err(|e| Failure::internal(format!("{PARAMS_DIR}/{} as the script left it: {e}", file.name())))
        }
        Some(2) if String::from_utf8_lossy(&result.stderr).contains("unknown utility \"transition\"") => Ok(None),
        Some(code) => Err(Failure::new(
            failure::INTERNAL_ERROR,
            format!("{what} failed: {script} exited with status {code}: {}", tail(&result.stderr)),
        )),
        None => Err(Failure::new(
            failure::INTERNAL_ERROR,
            format!(
                "{what} failed: {script} did not finish within {}s and was killed: {}",
                timeout.as_secs(),
                tail(&result.stderr)
            ),
        )),
    }
}

/// The properties the script changed or added (removals are not taken).
pub fn changed(before: &BTreeMap<String, String>, after: BTreeMap<String, String>) -> BTreeMap<String, String> {
    after.into_iter().filter(|(k, v)| before.get(k) != Some(v)).collect()
}
