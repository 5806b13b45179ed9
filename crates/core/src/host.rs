//! `host[:port]`, the one parser for every place berth is given a server:
//! ssh servers (`--server`), registries (`berth login`, the first component of
//! an image reference) and, later, listen addresses. IPv6 addresses are
//! written in brackets when a port follows (`[::1]:22`); a bare IPv6 address
//! has no port.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// A DNS name, an IPv4 address, or an IPv6 address without brackets.
    pub host: String,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a host[:port]: {reason}")]
pub struct HostPortError {
    pub text: String,
    pub reason: &'static str,
}

impl HostPort {
    pub fn parse(text: &str) -> Result<Self, HostPortError> {
        let bad = |reason| HostPortError { text: text.to_owned(), reason };
        if text.is_empty() || text.len() > 261 {
            return Err(bad("it is empty or too long"));
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (address, after) = rest.split_once(']').ok_or(bad("a '[' without its ']'"))?;
            address.parse::<Ipv6Addr>().map_err(|_| bad("the address in brackets is not an IPv6 address"))?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or(bad("only :port may follow ']'"))?),
            };
            (address, port)
        } else if text.matches(':').count() > 1 {
            // A bare IPv6 address: it cannot carry a port without brackets.
            text.parse::<Ipv6Addr>().map_err(|_| bad("write an IPv6 address with a port as [address]:port"))?;
            (text, None)
        } else {
            match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        let port = match port {
            None => None,
            Some(port) => match port.parse::<u16>() {
                Ok(0) | Err(_) => return Err(bad("the port must be a number from 1 to 65535")),
                Ok(port) => Some(port),
            },
        };
        if host.parse::<IpAddr>().is_err() && !is_dns_name(host) {
            return Err(bad("the host is neither an IP address nor a DNS name"));
        }
        Ok(Self { host: host.to_owned(), port })
    }

    pub fn port_or(&self, default: u16) -> u16 {
        self.port.unwrap_or(default)
    }

    pub fn is_ipv6(&self) -> bool {
        self.host.parse::<Ipv6Addr>().is_ok()
    }
}

/// Labels of letters, digits and inner hyphens, separated by dots.
fn is_dns_name(host: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    !host.is_empty() && host.len() <= 253 && host.split('.').all(label_ok)
}

impl fmt::Display for HostPort {
    /// The form it was given in: brackets around an IPv6 address with a port.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.port, self.is_ipv6()) {
            (Some(port), true) => write!(f, "[{}]:{port}", self.host),
            (Some(port), false) => write!(f, "{}:{port}", self.host),
            (None, _) => f.write_str(&self.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> (String, Option<u16>) {
        let parsed = HostPort::parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.to_string(), text, "prints as given");
        (parsed.host, parsed.port)
    }

    #[test]
    fn names_addresses_and_ports() {
        assert_eq!(ok("host"), ("host".into(), None));
        assert_eq!(ok("reg.example:5000"), ("reg.example".into(), Some(5000)));
        assert_eq!(ok("127.0.0.1:2222"), ("127.0.0.1".into(), Some(2222)));
        assert_eq!(ok("[::1]:22"), ("::1".into(), Some(22)));
        assert_eq!(ok("::1"), ("::1".into(), None));
        assert_eq!(ok("fe80::1"), ("fe80::1".into(), None));
        assert_eq!(HostPort::parse("[::1]").unwrap().to_string(), "::1");
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in [
            "",
            "host:",
            "host:0",
            "host:65536",
            "host:x",
            "[::1",
            "[::1]x",
            "[nothost]:1",
            "a::b::c",
            "a b",
            "a/b",
            "-a.example",
            "a..b",
            "user@host",
            ":22",
        ] {
            assert!(HostPort::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
