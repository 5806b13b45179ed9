//! Reading a password: from stdin (`--password-stdin`), or asked for on the
//! terminal with echo off. Never an argument: other processes can read those.

use crate::exit::Failure;
use std::io::IsTerminal;

pub fn read(from_stdin: bool) -> Result<String, Failure> {
    read_as(from_stdin, "Password: ")
}

/// A new password: on a terminal it is asked twice and must match.
pub fn read_new(from_stdin: bool) -> Result<String, Failure> {
    let password = read_as(from_stdin, "New password: ")?;
    if !from_stdin && read_as(false, "Again: ")? != password {
        return Err(Failure::NotConfirmed("the two passwords differ".into()));
    }
    Ok(password)
}

fn read_as(from_stdin: bool, label: &str) -> Result<String, Failure> {
    let stdin = std::io::stdin();
    if !from_stdin && !stdin.is_terminal() {
        return Err(Failure::NotConfirmed("no terminal to ask for the password on; use --password-stdin".into()));
    }
    if !from_stdin {
        prompt!("{label}");
    }
    let echo = (!from_stdin).then(EchoOff::new).flatten();
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    drop(echo);
    if !from_stdin {
        note!();
    }
    read.map_err(Failure::output)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(Failure::NotConfirmed("empty password".into()));
    }
    Ok(password)
}

/// Terminal echo off while it lives.
struct EchoOff(rustix::termios::Termios);

impl EchoOff {
    fn new() -> Option<Self> {
        let stdin = rustix::stdio::stdin();
        let saved = rustix::termios::tcgetattr(stdin).ok()?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &quiet).ok()?;
        Some(EchoOff(saved))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(rustix::stdio::stdin(), rustix::termios::OptionalActions::Now, &self.0);
    }
}
