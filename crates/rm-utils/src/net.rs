//! getInterfaces, getInterfaceIP and getInterfacesSub.

use std::net::Ipv4Addr;

use crate::sys::IfAddr;

/// What the argument of getInterfaceIP / getInterfacesSub designates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An interface name (`eth0`).
    Interface(String),
    /// A network in CIDR form (`10.1.1.0/24`; host bits are ignored).
    Network { addr: Ipv4Addr, prefix: u8 },
    /// An IPv4 address (`10.1.1.7`): the interface whose network contains it.
    Address(Ipv4Addr),
}

impl Target {
    /// Anything with a `/` must be a valid CIDR, anything that parses as an
    /// IPv4 address is one, the rest is an interface name.
    pub fn parse(arg: &str) -> Result<Target, String> {
        if let Some((addr, prefix)) = arg.split_once('/') {
            let addr: Ipv4Addr =
                addr.parse().map_err(|_| format!("{arg:?}: invalid network address (expected e.g. 10.1.1.0/24)"))?;
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= 32)
                .ok_or_else(|| format!("{arg:?}: invalid prefix length (expected 0 to 32)"))?;
            return Ok(Target::Network { addr, prefix });
        }
        if let Ok(addr) = arg.parse() {
            return Ok(Target::Address(addr));
        }
        if arg.is_empty() {
            return Err("empty interface name".into());
        }
        Ok(Target::Interface(arg.to_owned()))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// The network of an address: `10.1.1.7` + `255.255.255.0` → `10.1.1.0/24`.
pub fn network_of(a: &IfAddr) -> String {
    let m = u32::from(a.netmask);
    let net = Ipv4Addr::from(u32::from(a.addr) & m);
    format!("{net}/{}", m.count_ones())
}

/// Names of the non-loopback interfaces that have an IPv4 address, each once,
/// in the kernel's order.
pub fn interfaces(addrs: &[IfAddr]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for a in addrs.iter().filter(|a| !a.loopback) {
        if !names.contains(&a.name.as_str()) {
            names.push(&a.name);
        }
    }
    names
}

/// The address `target` designates: for an interface name its first
/// (primary, in the kernel's order) address; for a network or an address the
/// first matching non-loopback address, else a matching loopback one.
pub fn find<'a>(addrs: &'a [IfAddr], target: &Target) -> Option<&'a IfAddr> {
    let matches = |a: &&IfAddr| match target {
        Target::Interface(name) => a.name == *name,
        Target::Network { addr, prefix } => {
            let m = mask(*prefix);
            u32::from(a.addr) & m == u32::from(*addr) & m
        }
        Target::Address(addr) => {
            let m = u32::from(a.netmask);
            u32::from(a.addr) & m == u32::from(*addr) & m
        }
    };
    addrs.iter().filter(|a| !a.loopback).find(matches).or_else(|| addrs.iter().find(matches))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(name: &str, a: &str, m: &str, loopback: bool) -> IfAddr {
        IfAddr { name: name.into(), addr: a.parse().unwrap(), netmask: m.parse().unwrap(), loopback }
    }

    fn sample() -> Vec<IfAddr> {
        vec![
            addr("lo", "127.0.0.1", "255.0.0.0", true),
            addr("eth0", "172.17.0.2", "255.255.0.0", false),
            addr("eth1", "10.1.1.7", "255.255.255.0", false),
            addr("eth1", "10.1.2.9", "255.255.255.0", false),
            addr("eth2", "192.168.5.3", "255.255.255.255", false),
        ]
    }

    fn ip(arg: &str) -> Option<String> {
        let addrs = sample();
        find(&addrs, &Target::parse(arg).unwrap()).map(|a| a.addr.to_string())
    }

    fn sub(arg: &str) -> Option<String> {
        let addrs = sample();
        find(&addrs, &Target::parse(arg).unwrap()).map(network_of)
    }

    #[test]
    fn targets() {
        assert_eq!(Target::parse("10.1.1.0/24"), Ok(Target::Network { addr: "10.1.1.0".parse().unwrap(), prefix: 24 }));
        assert_eq!(Target::parse("10.1.1.1"), Ok(Target::Address("10.1.1.1".parse().unwrap())));
        assert_eq!(Target::parse("eth0"), Ok(Target::Interface("eth0".into())));
        assert!(Target::parse("10.1.1.0/33").is_err());
        assert!(Target::parse("10.1.1/24").is_err());
        assert!(Target::parse("eth0/1").is_err());
        assert!(Target::parse("").is_err());
    }

    #[test]
    fn interface_names_skip_loopback_and_duplicates() {
        assert_eq!(interfaces(&sample()), ["eth0", "eth1", "eth2"]);
    }

    #[test]
    fn interface_ip() {
        assert_eq!(ip("eth1").as_deref(), Some("10.1.1.7"));
        assert_eq!(ip("lo").as_deref(), Some("127.0.0.1"));
        assert_eq!(ip("10.1.1.0/24").as_deref(), Some("10.1.1.7"));
        assert_eq!(ip("10.1.2.0/24").as_deref(), Some("10.1.2.9"));
        assert_eq!(ip("10.1.1.200/24").as_deref(), Some("10.1.1.7"));
        assert_eq!(ip("10.1.0.0/16").as_deref(), Some("10.1.1.7"));
        assert_eq!(ip("10.1.1.1").as_deref(), Some("10.1.1.7"));
        assert_eq!(ip("172.17.200.1").as_deref(), Some("172.17.0.2"));
        assert_eq!(ip("192.168.5.3").as_deref(), Some("192.168.5.3"));
        assert_eq!(ip("192.168.5.4"), None);
        assert_eq!(ip("10.9.0.0/16"), None);
        assert_eq!(ip("eth9"), None);
    }

    #[test]
    fn interface_subnet() {
        assert_eq!(sub("eth0").as_deref(), Some("172.17.0.0/16"));
        assert_eq!(sub("eth1").as_deref(), Some("10.1.1.0/24"));
        assert_eq!(sub("10.1.1.1").as_deref(), Some("10.1.1.0/24"));
        assert_eq!(sub("10.1.0.0/16").as_deref(), Some("10.1.1.0/24"));
        assert_eq!(sub("eth2").as_deref(), Some("192.168.5.3/32"));
        assert_eq!(sub("lo").as_deref(), Some("127.0.0.0/8"));
        assert_eq!(sub("0.0.0.0/0").as_deref(), Some("172.17.0.0/16"));
        assert_eq!(sub("127.0.0.0/8").as_deref(), Some("127.0.0.0/8"));
        assert_eq!(sub("eth9"), None);
    }
}
