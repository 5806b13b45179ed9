//! Frames on the agent's socket: a tag byte, a big-endian `u32` length and
//! the payload. One connection runs one command:
//!
//! - berth sends `REQUEST`, then, if the command takes stdin, `STDIN` frames
//!   and `STDIN_END`; `KILL` at any time gives the command up (as does
//!   closing the connection);
//! - the agent answers `REFUSED` (it cannot run the command exactly as an
//!   exec would; berth then uses the exec), or `STARTED`, `STDOUT` and
//!   `STDERR` frames as the command writes, and `EXIT` last.

use std::io::{self, Read, Write};

pub const VERSION: u8 = 1;

pub const REQUEST: u8 = 1;
pub const STDIN: u8 = 2;
pub const STDIN_END: u8 = 3;
pub const KILL: u8 = 4;

pub const REFUSED: u8 = 16;
pub const STARTED: u8 = 17;
pub const STDOUT: u8 = 18;
pub const STDERR: u8 = 19;
pub const EXIT: u8 = 20;

/// Larger frames are refused: nothing berth or the agent sends comes near.
pub const FRAME_MAX: u32 = 16 << 20;

pub fn write_frame(out: &mut impl Write, tag: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len()).ok().filter(|len| *len <= FRAME_MAX).ok_or_else(too_large)?;
    let mut frame = Vec::with_capacity(5 + payload.len());
    frame.push(tag);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    out.write_all(&frame)
}

/// The next frame; `None` at a clean end of the stream.
pub fn read_frame(input: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut header = [0u8; 5];
    match input.read_exact(&mut header[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    input.read_exact(&mut header[1..])?;
    let (tag, len) = split_header(header)?;
    let mut payload = vec![0u8; len];
    input.read_exact(&mut payload)?;
    Ok(Some((tag, payload)))
}

/// A frame header's tag and payload length.
pub fn split_header(header: [u8; 5]) -> io::Result<(u8, usize)> {
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    if len > FRAME_MAX {
        return Err(too_large());
    }
    Ok((header[0], len as usize))
}

fn too_large() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("a tether frame is larger than {FRAME_MAX} bytes"))
}

/// A command, as an exec request has it; the caller has resolved the
/// defaults the engine would (the container's user and working directory).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    pub argv: Vec<String>,
    /// `name|uid[:group|gid]`; empty is root.
    pub user: String,
    /// `NAME=VALUE` over the container's environment; `NAME` removes it.
    pub env: Vec<String>,
    /// Empty is `/`.
    pub workdir: String,
    /// Whether `STDIN` frames follow; else stdin is `/dev/null`.
    pub stdin: bool,
}

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION, u8::from(self.stdin)];
        put_list(&mut out, &self.argv);
        put_str(&mut out, &self.user);
        put_list(&mut out, &self.env);
        put_str(&mut out, &self.workdir);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader(bytes);
        let version = r.byte()?;
        if version != VERSION {
            return Err(format!("protocol version {version}; this agent speaks {VERSION}"));
        }
        let stdin = r.byte()? != 0;
        let command = Command { stdin, argv: r.list()?, user: r.string()?, env: r.list()?, workdir: r.string()? };
        if !r.0.is_empty() {
            return Err("trailing bytes after the command".into());
        }
        Ok(command)
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// As the engine reports it: the exit status, or 128 + the signal.
    pub code: i64,
    /// Whether berth gave it up and the agent killed it.
    pub killed: bool,
}

impl Exit {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.code.to_be_bytes().to_vec();
        out.push(u8::from(self.killed));
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        match bytes {
            [code @ .., killed] if code.len() == 8 => {
                let code = i64::from_be_bytes(code.try_into().map_err(|_| "a malformed exit")?);
                Ok(Exit { code, killed: *killed != 0 })
            }
            _ => Err("a malformed exit".into()),
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_list(out: &mut Vec<u8>, items: &[String]) {
    out.extend_from_slice(&(items.len() as u32).to_be_bytes());
    for item in items {
        put_str(out, item);
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("a truncated command".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn number(&mut self) -> Result<usize, String> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
    }

    fn string(&mut self) -> Result<String, String> {
        let len = self.number()?;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| "a string that is not UTF-8".to_owned())
    }

    fn list(&mut self) -> Result<Vec<String>, String> {
        let count = self.number()?;
        // Each item takes at least its length: a count beyond that is a lie.
        if count > self.0.len() / 4 {
            return Err("a truncated command".into());
        }
        (0..count).map(|_| self.string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_exits_survive_the_wire() {
        let command = Command {
            argv: vec!["sh".into(), "-c".into(), "echo é".into(), String::new()],
            user: "660:660".into(),
            env: vec!["A=1".into(), "B".into()],
            workdir: "/tmp".into(),
            stdin: true,
        };
        assert_eq!(Command::decode(&command.encode()), Ok(command.clone()));
        let exit = Exit { code: -3, killed: true };
        assert_eq!(Exit::decode(&exit.encode()), Ok(exit));
        let encoded = command.encode();
        for cut in 0..encoded.len() {
            assert!(Command::decode(&encoded[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Command::decode(&[VERSION + 1, 0]).unwrap_err().contains("version"));
        assert!(Command::decode(&[VERSION, 0, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn frames_round_trip_and_oversize_is_refused() {
        let mut wire = Vec::new();
        write_frame(&mut wire, STDOUT, b"abc").unwrap();
        write_frame(&mut wire, EXIT, b"").unwrap();
        let mut input = &wire[..];
        assert_eq!(read_frame(&mut input).unwrap(), Some((STDOUT, b"abc".to_vec())));
        assert_eq!(read_frame(&mut input).unwrap(), Some((EXIT, vec![])));
        assert_eq!(read_frame(&mut input).unwrap(), None);
        let huge = [STDOUT, 0xff, 0xff, 0xff, 0xff];
        assert!(read_frame(&mut &huge[..]).is_err());
        assert!(read_frame(&mut &wire[..3]).is_err(), "a cut header is an error, not an end");
    }
}
