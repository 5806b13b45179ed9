//! berth-raw-exec: runs one command in a running container straight through
//! the Docker Engine API, with standard input passed in and the command's
//! stdout, stderr and exit code passed back — what `docker exec -i` does,
//! without the docker CLI and without berth.
//!
//! It is a measuring baseline for `scripts/bench-sra.sh` (the fewest requests
//! an SRA command round trip can take: create the exec, start it attached,
//! read its exit code), not a tool: it uses only std and serde_json, one new
//! connection per request, and no API version negotiation.
//!
//! ```text
//! berth-raw-exec [--socket /var/run/docker.sock] --container <id> [--user 660:660] [--env N=V]... \
//!     /srm/sra/command [ARG]... < command.xml
//! ```
//!
//! Exits with the command's exit code; 1 with a message on stderr when the
//! engine could not be asked or refused.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

/// API 1.41 is Docker 20.10's; later engines still accept it.
const API: &str = "/v1.41";
const USAGE: &str = "usage: berth-raw-exec [--socket PATH] --container ID [--user U:G] [--env N=V]... CMD [ARG]...";

type Result<T> = std::result::Result<T, String>;

struct Args {
    socket: String,
    container: String,
    user: Option<String>,
    env: Vec<String>,
    cmd: Vec<String>,
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)).and_then(|args| run(&args)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("berth-raw-exec: {err}");
            ExitCode::from(1)
        }
    }
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args> {
    let mut args = Args {
        socket: "/var/run/docker.sock".into(),
        container: String::new(),
        user: None,
        env: Vec::new(),
        cmd: Vec::new(),
    };
    while let Some(arg) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or_else(|| format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--socket" => args.socket = value("--socket")?,
            "--container" => args.container = value("--container")?,
            "--user" => args.user = Some(value("--user")?),
            "--env" => args.env.push(value("--env")?),
            "--" => break,
            "-h" | "--help" => return Err(USAGE.into()),
            option if option.starts_with("--") => return Err(format!("unknown option {option}\n{USAGE}")),
            _ => {
                args.cmd.push(arg);
                break;
            }
        }
    }
    args.cmd.extend(argv);
    if args.container.is_empty() || args.cmd.is_empty() {
        return Err(USAGE.into());
    }
    Ok(args)
}

fn run(args: &Args) -> Result<u8> {
    // Read all of stdin first, as `berth sra exec` does, so both start the exec with the XML in hand.
    let mut input = Vec::new();
    io::stdin().read_to_end(&mut input).map_err(|e| format!("reading stdin: {e}"))?;

    // 1. POST /containers/{id}/exec
    let mut create = json!({
        "AttachStdin": true,
        "AttachStdout": true,
        "AttachStderr": true,
        "Tty": false,
        "Cmd": args.cmd,
        "Env": args.env,
    });
    if let Some(user) = &args.user {
        create["User"] = json!(user);
    }
    let created = call(&args.socket, "POST", &format!("/containers/{}/exec", args.container), Some(&create))?;
    let exec_id = created["Id"].as_str().ok_or_else(|| format!("no exec Id in {created}"))?.to_owned();

    // 2. POST /exec/{id}/start, hijacked: the connection becomes the command's stdin and output.
    let stream = connect(&args.socket)?;
    let body = br#"{"Detach":false,"Tty":false}"#;
    let head = format!(
        "POST {API}/exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    (&stream)
        .write_all(head.as_bytes())
        .and_then(|()| (&stream).write_all(body))
        .map_err(|e| io_error("exec start", e))?;
    let mut reader = BufReader::new(&stream);
    let (status, _) = read_head(&mut reader).map_err(|e| io_error("exec start", e))?;
    if status != 101 && status != 200 {
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        return Err(format!("exec start: HTTP {status}: {}", String::from_utf8_lossy(&rest).trim()));
    }

    // 3. stdin in, then half-close: end of input is what tells the command the XML is complete.
    //    Written from a second thread, so a command that talks before it reads cannot block us.
    std::thread::scope(|scope| -> Result<()> {
        let writer = scope.spawn(|| {
            (&stream).write_all(&input)?;
            stream.shutdown(Shutdown::Write)
        });
        demultiplex(&mut reader, &mut io::stdout().lock(), &mut io::stderr().lock())
            .map_err(|e| io_error("reading the command's output", e))?;
        match writer.join() {
            Ok(Ok(())) => Ok(()),
            // The command may exit without reading all of its input: not an error of ours.
            Ok(Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Ok(Err(e)) => Err(io_error("writing stdin", e)),
            Err(_) => Err("the stdin writer panicked".into()),
        }
    })?;

    // 4. GET /exec/{id}/json for the exit code. The output ends when the process
    //    exits, but the engine may record the exit a moment later: ask again briefly.
    for _ in 0..500 {
        let inspected = call(&args.socket, "GET", &format!("/exec/{exec_id}/json"), None)?;
        if inspected["Running"] == json!(false) {
            let code = inspected["ExitCode"].as_i64().ok_or_else(|| format!("no ExitCode in {inspected}"))?;
            return Ok(u8::try_from(code.rem_euclid(256)).unwrap_or(1));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!("exec {exec_id} still runs after its output ended"))
}

/// Copies the engine's multiplexed stream (8-byte header: stream, 0, 0, 0,
/// big-endian length) to `stdout` and `stderr` until the engine closes it.
fn demultiplex(reader: &mut impl Read, stdout: &mut impl Write, stderr: &mut impl Write) -> io::Result<()> {
    let mut header = [0u8; 8];
    loop {
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let len = u64::from(u32::from_be_bytes([header[4], header[5], header[6], header[7]]));
        let out: &mut dyn Write = if header[0] == 2 { stderr } else { stdout };
        let copied = io::copy(&mut reader.take(len), out)?;
        if copied != len {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the output ended inside a frame"));
        }
    }
    stdout.flush()
}

/// One JSON request on its own connection (`Connection: close`, read to EOF).
fn call(socket: &str, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
    let what = format!("{method} {path}");
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = connect(socket)?;
    let head = format!(
        "{method} {API}{path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .map_err(|e| io_error(&what, e))?;
    let mut reader = BufReader::new(stream);
    let (status, chunked) = read_head(&mut reader).map_err(|e| io_error(&what, e))?;
    let mut raw = Vec::new();
    reader.read_to_end(&mut raw).map_err(|e| io_error(&what, e))?;
    let body = if chunked { dechunk(&raw).ok_or_else(|| format!("{what}: bad chunked body"))? } else { raw };
    if !(200..300).contains(&status) {
        return Err(format!("{what}: HTTP {status}: {}", String::from_utf8_lossy(&body).trim()));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{what}: bad JSON ({e}): {}", String::from_utf8_lossy(&body)))
}

fn connect(socket: &str) -> Result<UnixStream> {
    UnixStream::connect(socket).map_err(|e| format!("connecting to {socket}: {e}"))
}

/// Reads the status line and headers; returns the status and whether the body is chunked.
fn read_head(reader: &mut impl BufRead) -> io::Result<(u16, bool)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("not an HTTP response: {line:?}")))?;
    let mut chunked = false;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the response head was cut short"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            return Ok((status, chunked));
        }
        if let Some((name, value)) = header.split_once(':') {
            chunked |= name.eq_ignore_ascii_case("transfer-encoding") && value.trim().eq_ignore_ascii_case("chunked");
        }
    }
}

/// Decodes a complete `Transfer-Encoding: chunked` body (extensions and trailers ignored).
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

fn io_error(what: &str, err: io::Error) -> String {
    format!("{what}: {err}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_decoded() {
        assert_eq!(dechunk(b"4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n").as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(dechunk(b"4\r\n{\"a"), None);
    }

    #[test]
    fn frames_go_to_their_stream_and_a_cut_frame_is_an_error() {
        let mut frames = vec![1, 0, 0, 0, 0, 0, 0, 3];
        frames.extend_from_slice(b"out");
        frames.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 3]);
        frames.extend_from_slice(b"err");
        frames.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        demultiplex(&mut &frames[..], &mut stdout, &mut stderr).unwrap();
        assert_eq!((&stdout[..], &stderr[..]), (&b"out"[..], &b"err"[..]));

        frames.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 5]);
        frames.extend_from_slice(b"cut");
        assert!(demultiplex(&mut &frames[..], &mut Vec::new(), &mut Vec::new()).is_err());
    }

    #[test]
    fn the_command_starts_at_the_first_operand() {
        let argv = ["--container", "c1", "--env", "A=1", "/srm/sra/command", "--user", "x"].map(String::from);
        let args = parse_args(argv.into_iter()).unwrap();
        assert_eq!((args.container.as_str(), args.user, args.env), ("c1", None, vec!["A=1".to_owned()]));
        assert_eq!(args.cmd, ["/srm/sra/command", "--user", "x"]);
        assert!(parse_args(["--container", "c1"].map(String::from).into_iter()).is_err());
    }
}
