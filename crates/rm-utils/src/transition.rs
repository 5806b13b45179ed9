//! `berth-rm transition lifecycle|operation SCRIPT`: a whole transition in
//! the one exec berth makes for it. The properties come as YAML on stdin and
//! are written to the params file; the script runs with its output on this
//! process's stderr (stdin closed); then the params file as the script left
//! it is printed on stdout. The exit status is the script's (128 + signal
//! when it was killed; 127 when it cannot be found, 126 when it cannot be
//! run; 2 when the params cannot be written).

use crate::params::Params;
use crate::store;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// The params berth sends are far smaller; more is refused.
const MAX_PARAMS_BYTES: u64 = 8 << 20;

pub fn run(file: &Path, script: &str) -> i32 {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().take(MAX_PARAMS_BYTES + 1).read_to_end(&mut input) {
        eprintln!("berth-rm: cannot read the params from stdin: {e}");
        return 2;
    }
    if input.len() as u64 > MAX_PARAMS_BYTES {
        eprintln!("berth-rm: the params are larger than {MAX_PARAMS_BYTES} bytes");
        return 2;
    }
    let params = match String::from_utf8(input)
        .map_err(|e| e.to_string())
        .and_then(|text| Params::parse(&text).map_err(|e| format!("line {}: {}", e.line, e.message)))
    {
        Ok(params) => params,
        Err(e) => {
            eprintln!("berth-rm: the params are not readable: {e}");
            return 2;
        }
    };
    if let Err(e) = store::replace(file, &params) {
        eprintln!("berth-rm: {e}");
        return 2;
    }
    let code = run_script(script);
    // The file as the script left it; a removed file is an empty one.
    let text = std::fs::read(file).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(&text).and_then(|()| out.flush()) {
        eprintln!("berth-rm: cannot write the params to stdout: {e}");
        return 2;
    }
    code
}

fn run_script(script: &str) -> i32 {
    // The script's stdout goes where its stderr goes: stdout is the params'.
    let stdout = match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => Stdio::from(fd),
        Err(e) => {
            eprintln!("berth-rm: {e}");
            return 2;
        }
    };
    let mut command = Command::new(script);
    command.stdin(Stdio::null()).stdout(stdout).stderr(Stdio::inherit());
    // A script written an instant ago may still be open for writing in
    // another process (ETXTBSY); that passes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let status = loop {
        match command.status() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other,
        }
    };
    match status {
        Ok(status) => status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        Err(e) => {
            eprintln!("berth-rm: cannot run {script}: {e}");
            if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            }
        }
    }
}
