//! The source side of scp's old protocol (`scp -f`), as OpenSSH speaks it:
//! the receiver sends a zero byte whenever it is ready; the source answers
//! with a line (`C<mode> <size> <name>` announces a file, `T…` times, `D…` a
//! directory, `\x01`/`\x02` and a message a warning or an error), then the
//! file's bytes, then one status byte of its own.

use tokio::io::{AsyncRead, AsyncReadExt};

/// A command line the remote shell runs as `scp -f <path>`, the path single-quoted.
pub(crate) fn command(path: &str) -> String {
    format!("scp -f {}", shell_quote(path))
}

/// Single-quotes `text` for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// What the source said before the file's bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Header {
    /// `C<mode> <size> <name>`: the file follows, `size` bytes.
    File { size: u64 },
    /// `T<mtime> 0 <atime> 0`: times, answered with a zero byte like a file header.
    Times,
}

/// Reads one line of the source and says what it means; `Err` carries the
/// reason to show (the remote scp's own message for `\x01`/`\x02`).
pub(crate) async fn read_header(stream: &mut (impl AsyncRead + Unpin)) -> Result<Header, String> {
    let mut line = Vec::new();
    loop {
        let byte = match stream.read_u8().await {
            Ok(byte) => byte,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && line.is_empty() => {
                return Err("the remote scp ended without sending the file (is scp installed there?)".into())
            }
            Err(e) => return Err(format!("the scp transfer ended: {e}")),
        };
        if byte == b'\n' {
            break;
        }
        line.push(byte);
        if line.len() > 4096 {
            return Err("scp sent an overlong header".into());
        }
    }
    let text = String::from_utf8_lossy(&line).into_owned();
    match line.first() {
        Some(b'C') => text
            .split_whitespace()
            .nth(1)
            .and_then(|size| size.parse().ok())
            .map(|size| Header::File { size })
            .ok_or_else(|| format!("scp sent a file header it should not: {text:?}")),
        Some(b'T') => Ok(Header::Times),
        Some(1 | 2) => Err(text[1..].trim().to_owned()),
        Some(b'D') => Err("it is a directory".into()),
        _ => Err(format!("scp sent {text:?} instead of a file header")),
    }
}

/// Reads the status byte that follows the file's bytes: `Ok` when the source
/// read the whole file, else its message.
pub(crate) async fn read_status(stream: &mut (impl AsyncRead + Unpin)) -> Result<(), String> {
    match stream.read_u8().await {
        Ok(0) => Ok(()),
        Ok(1 | 2) => {
            let mut message = Vec::new();
            while let Ok(byte) = stream.read_u8().await {
                if byte == b'\n' || message.len() > 4096 {
                    break;
                }
                message.push(byte);
            }
            Err(String::from_utf8_lossy(&message).trim().to_owned())
        }
        Ok(other) => Err(format!("scp ended the file with status byte {other}")),
        Err(e) => Err(format!("scp did not confirm the end of the file: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(command("/a b/it's.tar"), "scp -f '/a b/it'\\''s.tar'");
        assert_eq!(command("/$(reboot)`x`"), "scp -f '/$(reboot)`x`'");
    }

    #[tokio::test]
    async fn headers() {
        let mut ok: &[u8] = b"C0644 1234 app.tar\n";
        assert_eq!(read_header(&mut ok).await, Ok(Header::File { size: 1234 }));
        let mut times: &[u8] = b"T1700000000 0 1700000000 0\n";
        assert_eq!(read_header(&mut times).await, Ok(Header::Times));
        let mut error: &[u8] = b"\x01scp: /x: No such file or directory\n";
        assert_eq!(read_header(&mut error).await, Err("scp: /x: No such file or directory".into()));
        let mut directory: &[u8] = b"D0755 0 dir\n";
        assert_eq!(read_header(&mut directory).await, Err("it is a directory".into()));
        let mut nothing: &[u8] = b"";
        assert!(read_header(&mut nothing).await.unwrap_err().contains("is scp installed"));
        let mut bad: &[u8] = b"C0644 many app.tar\n";
        assert!(read_header(&mut bad).await.is_err());
        let mut endless: &[u8] = &[b'C'; 5000];
        assert_eq!(read_header(&mut endless).await, Err("scp sent an overlong header".into()));
    }

    #[tokio::test]
    async fn statuses() {
        assert_eq!(read_status(&mut &b"\0"[..]).await, Ok(()));
        assert_eq!(read_status(&mut &b"\x01scp: read error\n"[..]).await, Err("scp: read error".into()));
        assert!(read_status(&mut &b""[..]).await.is_err());
    }
}
