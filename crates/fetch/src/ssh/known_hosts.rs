//! Host keys checked against known_hosts *content*, as OpenSSH reads it
//! (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"): ssh-key parses each line; the
//! matching is here, because neither russh nor ssh-key matches content
//! (russh's `check_known_hosts_path` reads a file and knows no globs,
//! negations or markers).
//!
//! - The name looked up is `host` on port 22 and `[host]:port` otherwise,
//!   lower-cased, as OpenSSH writes it.
//! - A line's host field is a comma list of patterns with `*` and `?`; a
//!   `!pattern` that matches excludes the line whatever else matches. Or it is
//!   one hashed name, `|1|salt|hash`, the HMAC-SHA1 of the name keyed by salt.
//! - `@revoked` keys are refused, for any host (a revoked key is not
//!   trustworthy anywhere). `@cert-authority` lines are skipped: host
//!   certificates are not trusted.
//! - Lines that cannot be read are skipped, as OpenSSH does.

use super::KnownHosts;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::known_hosts::{Entry, HostPatterns, Marker};
use russh::keys::{Algorithm, PublicKey};
use sha1::Sha1;

/// What the known hosts say about one key offered by one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Recorded for this host.
    Known,
    /// Nothing is recorded for this host.
    Unknown,
    /// Other keys are recorded for this host; `origin` is the first, as `file:line`.
    Changed { origin: String },
    /// The key is marked `@revoked` at `origin`.
    Revoked { origin: String },
}

/// One readable line and where it came from.
struct Line<'a> {
    origin: &'a str,
    number: usize,
    entry: Entry,
}

impl Line<'_> {
    fn at(&self) -> String {
        format!("{}:{}", self.origin, self.number)
    }
}

fn lines(files: &[KnownHosts]) -> impl Iterator<Item = Line<'_>> {
    files.iter().flat_map(|file| {
        file.content.lines().enumerate().filter_map(move |(index, text)| {
            // ssh-key separates fields by single spaces; OpenSSH allows any white space.
            let text = text.split('#').next().unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ");
            if text.is_empty() {
                return None;
            }
            match text.parse::<Entry>() {
                Ok(entry) => Some(Line { origin: &file.origin, number: index + 1, entry }),
                Err(e) => {
                    tracing::debug!(origin = %file.origin, line = index + 1, error = %e, "known_hosts line skipped");
                    None
                }
            }
        })
    })
}

/// The name OpenSSH records a server under.
pub(crate) fn lookup_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

pub(crate) fn check(files: &[KnownHosts], host: &str, port: u16, key: &PublicKey) -> Verdict {
    let same_key = |line: &Line| line.entry.public_key().key_data() == key.key_data();
    if let Some(line) = lines(files).find(|line| line.entry.marker() == Some(&Marker::Revoked) && same_key(line)) {
        return Verdict::Revoked { origin: line.at() };
    }
    let name = lookup_name(host, port);
    let mut changed = None;
    for line in lines(files).filter(|line| line.entry.marker().is_none() && matches(line.entry.host_patterns(), &name))
    {
        if same_key(&line) {
            return Verdict::Known;
        }
        changed.get_or_insert_with(|| line.at());
    }
    match changed {
        Some(origin) => Verdict::Changed { origin },
        None => Verdict::Unknown,
    }
}

/// The key algorithms recorded for the server, first seen first: offered
/// first in the key exchange, so that a server with several host keys shows
/// the one on record rather than one that would look changed.
pub(crate) fn recorded_algorithms(files: &[KnownHosts], host: &str, port: u16) -> Vec<Algorithm> {
    let name = lookup_name(host, port);
    let mut algorithms = Vec::new();
    for line in lines(files) {
        if line.entry.marker().is_none() && matches(line.entry.host_patterns(), &name) {
            let algorithm = line.entry.public_key().algorithm();
            if !algorithms.contains(&algorithm) {
                algorithms.push(algorithm);
            }
        }
    }
    algorithms
}

fn matches(patterns: &HostPatterns, name: &str) -> bool {
    match patterns {
        HostPatterns::HashedName { salt, hash } => match Hmac::<Sha1>::new_from_slice(salt) {
            Ok(mac) => mac.chain_update(name.as_bytes()).verify_slice(hash).is_ok(),
            Err(_) => false,
        },
        HostPatterns::Patterns(patterns) => {
            let mut positive = false;
            for pattern in patterns {
                let pattern = pattern.to_ascii_lowercase();
                match pattern.strip_prefix('!') {
                    Some(negated) if glob(negated.as_bytes(), name.as_bytes()) => return false,
                    Some(_) => {}
                    None => positive |= glob(pattern.as_bytes(), name.as_bytes()),
                }
            }
            positive
        }
    }
}

/// `*` matches any run of characters, `?` exactly one (OpenSSH's match_pattern).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it is trying to cover up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIYoB232LLmzSYjChcefEUF8uNacmkqtdF3GOaBTFPaj a";
    const KEY_B: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMJJEKISbrAz9Ur8RD8+Rz59/3A0F3jUJYV4cSfxmHrI b";

    fn key(text: &str) -> PublicKey {
        text.parse().unwrap()
    }

    fn file(content: &str) -> Vec<KnownHosts> {
        vec![KnownHosts { origin: "known_hosts".into(), content: content.into() }]
    }

    fn verdict(content: &str, host: &str, port: u16, offered: &str) -> Verdict {
        check(&file(content), host, port, &key(offered))
    }

    /// `|1|salt|hash` for `name`, as `ssh-keygen -H` writes it.
    fn hashed(name: &str, salt: &[u8]) -> String {
        use russh::keys::ssh_key::known_hosts::HostPatterns;
        let mac = Hmac::<Sha1>::new_from_slice(salt).unwrap().chain_update(name.as_bytes()).finalize();
        let hash: [u8; 20] = mac.into_bytes().into();
        HostPatterns::HashedName { salt: salt.to_vec(), hash }.to_string()
    }

    #[test]
    fn globs() {
        for (pattern, text) in [("*", ""), ("*", "abc"), ("a*c", "abbbc"), ("a?c", "abc"), ("*.example", "x.example")] {
            assert!(glob(pattern.as_bytes(), text.as_bytes()), "{pattern} ~ {text}");
        }
        for (pattern, text) in [("a?c", "ac"), ("*.example", "example"), ("a*b", "abc"), ("", "a"), ("abc", "ab")] {
            assert!(!glob(pattern.as_bytes(), text.as_bytes()), "{pattern} !~ {text}");
        }
        assert!(glob(b"*a*a*a*", b"banana a"), "backtracking");
    }

    #[test]
    fn plain_names_lists_and_ports() {
        assert_eq!(verdict(&format!("host.example {KEY_A}"), "host.example", 22, KEY_A), Verdict::Known);
        assert_eq!(verdict(&format!("Host.Example {KEY_A}"), "HOST.example", 22, KEY_A), Verdict::Known, "case");
        assert_eq!(verdict(&format!("other,host.example,10.0.0.1 {KEY_A}"), "10.0.0.1", 22, KEY_A), Verdict::Known);
        // Port 22 is recorded bare; any other port in brackets, and only so.
        assert_eq!(verdict(&format!("[host.example]:2222 {KEY_A}"), "host.example", 2222, KEY_A), Verdict::Known);
        assert_eq!(verdict(&format!("host.example {KEY_A}"), "host.example", 2222, KEY_A), Verdict::Unknown);
        assert_eq!(verdict(&format!("[host.example]:2222 {KEY_A}"), "host.example", 22, KEY_A), Verdict::Unknown);
        assert_eq!(verdict(&format!("[::1]:2222 {KEY_A}"), "::1", 2222, KEY_A), Verdict::Known);
        assert_eq!(verdict(&format!("::1 {KEY_A}"), "::1", 22, KEY_A), Verdict::Known);
        assert_eq!(verdict(&format!("*.example {KEY_A}"), "host.example", 22, KEY_A), Verdict::Known);
        assert_eq!(verdict(&format!("[*.example]:* {KEY_A}"), "host.example", 2222, KEY_A), Verdict::Known);
        assert_eq!(verdict(&format!("10.0.0.? {KEY_A}"), "10.0.0.10", 22, KEY_A), Verdict::Unknown);
    }

    #[test]
    fn negations_exclude_the_line() {
        let content = format!("*.example,!secret.example {KEY_A}");
        assert_eq!(verdict(&content, "host.example", 22, KEY_A), Verdict::Known);
        assert_eq!(verdict(&content, "secret.example", 22, KEY_A), Verdict::Unknown);
        assert_eq!(verdict(&content, "secret.example", 22, KEY_B), Verdict::Unknown, "not recorded, so not changed");
        assert_eq!(verdict(&format!("!host.example {KEY_A}"), "host.example", 22, KEY_A), Verdict::Unknown);
    }

    #[test]
    fn hashed_names() {
        let entry = format!("{} {KEY_A}", hashed("[127.0.0.1]:2222", b"twenty bytes of salt"));
        assert_eq!(verdict(&entry, "127.0.0.1", 2222, KEY_A), Verdict::Known);
        assert_eq!(verdict(&entry, "127.0.0.1", 2223, KEY_A), Verdict::Unknown);
        assert_eq!(verdict(&entry, "127.0.0.1", 2222, KEY_B), Verdict::Changed { origin: "known_hosts:1".into() });
        let bare = format!("{} {KEY_A}", hashed("host.example", b"salt"));
        assert_eq!(verdict(&bare, "HOST.example", 22, KEY_A), Verdict::Known, "hashed names are lower case");
    }

    #[test]
    fn a_different_key_is_a_change_unless_the_right_one_is_recorded_too() {
        let content = format!("# comment\n\nhost.example {KEY_B}\nhost.example {KEY_A}\n");
        assert_eq!(verdict(&content, "host.example", 22, KEY_A), Verdict::Known);
        let content = format!("# comment\n\nhost.example {KEY_B}\n");
        assert_eq!(verdict(&content, "host.example", 22, KEY_A), Verdict::Changed { origin: "known_hosts:3".into() });
        // Across files too, naming the file that records the other key.
        let files = vec![
            KnownHosts { origin: "/etc/ssh/ssh_known_hosts".into(), content: format!("other {KEY_A}\n") },
            KnownHosts { origin: "~/.ssh/known_hosts".into(), content: format!("host.example {KEY_B}\n") },
        ];
        assert_eq!(
            check(&files, "host.example", 22, &key(KEY_A)),
            Verdict::Changed { origin: "~/.ssh/known_hosts:1".into() }
        );
    }

    #[test]
    fn markers() {
        let content = format!("host.example {KEY_A}\n@revoked * {KEY_A}\n");
        assert_eq!(verdict(&content, "host.example", 22, KEY_A), Verdict::Revoked { origin: "known_hosts:2".into() });
        let content = format!("@revoked other.example {KEY_A}\n");
        assert_eq!(verdict(&content, "host.example", 22, KEY_A), Verdict::Revoked { origin: "known_hosts:1".into() });
        let content = format!("@cert-authority *.example {KEY_A}\n");
        assert_eq!(verdict(&content, "host.example", 22, KEY_A), Verdict::Unknown, "a CA key is not a host key");
        assert_eq!(verdict(&content, "host.example", 22, KEY_B), Verdict::Unknown);
    }

    #[test]
    fn unreadable_lines_are_skipped_and_white_space_is_loose() {
        let content =
            format!("garbage\nhost.example not-a-key\n@bogus x {KEY_B}\n\thost.example\t  {KEY_A}  # trailing\r\n");
        assert_eq!(verdict(&content, "host.example", 22, KEY_A), Verdict::Known);
        assert_eq!(verdict("", "host.example", 22, KEY_A), Verdict::Unknown);
    }

    #[test]
    fn recorded_algorithms_come_in_file_order() {
        let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC88Fmmy9ZQHAR5SBn2tB2RLOLKUlFAATMXyQfOIa0xWjeFmyA96aSVR/9s2jmDYNjKTRJpkPY9Leidn8G0Q49ct2Tx6i2+ONpDh2375EGveUwtzIFCUUcTFvS2THxKkky/cVLx8LD7oPyGJ4c0moJDicX+68hvtb0vWXH/CQctqw== c";
        let content = format!("host.example {KEY_A}\nhost.example {rsa}\nother {KEY_B}\n");
        let algorithms = recorded_algorithms(&file(&content), "host.example", 22);
        assert_eq!(algorithms, [Algorithm::Ed25519, Algorithm::Rsa { hash: None }]);
    }
}
