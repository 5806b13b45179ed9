//! The few libc calls std does not expose, behind safe wrappers.
//!
//! This binary must stay dependency free (it is compiled by a plain `rustc`
//! call from berth-baseimage's build script), so instead of the `libc` or
//! `rustix` crates the handful of functions it needs are declared here by
//! hand: getifaddrs(3)/freeifaddrs(3) for the network utilities,
//! sigemptyset/sigaddset/sigprocmask/sigwait and waitpid(2) for the PID 1
//! entrypoint, and flock(2) to serialise concurrent setProperty calls.
//! All of them exist in glibc and musl with the layouts below on every Linux
//! architecture this module admits.

// FFI is the only way to reach these calls without a dependency; every
// unsafe block is confined to this module and documented.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

#[cfg(not(target_os = "linux"))]
compile_error!("berth-rm only supports Linux");

// The signal numbers and SIG_BLOCK below are the "generic" Linux values, which
// differ on mips, sparc and alpha.
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "powerpc64",
    target_arch = "s390x",
    target_arch = "loongarch64"
)))]
compile_error!("berth-rm: signal constants are not defined for this architecture");

pub const SIGINT: c_int = 2;
pub const SIGTERM: c_int = 15;
pub const SIGCHLD: c_int = 17;
const SIG_BLOCK: c_int = 0;
const WNOHANG: c_int = 1;
const LOCK_EX: c_int = 2;
const AF_INET: u16 = 2;
const IFF_LOOPBACK: c_uint = 0x8;
const EINTR: i32 = 4;

/// `struct ifaddrs` (glibc and musl agree).
#[repr(C)]
#[allow(dead_code)] // layout only: some fields are never read
struct IfAddrsRaw {
    ifa_next: *mut IfAddrsRaw,
    ifa_name: *mut c_char,
    ifa_flags: c_uint,
    ifa_addr: *mut SockAddrIn,
    ifa_netmask: *mut SockAddrIn,
    ifa_ifu: *mut c_void,
    ifa_data: *mut c_void,
}

/// `struct sockaddr_in`; `sin_family` is read first to know whether the
/// `struct sockaddr` really is one.
#[repr(C)]
#[allow(dead_code)] // layout only: some fields are never read
struct SockAddrIn {
    sin_family: u16,
    sin_port: u16,
    sin_addr: [u8; 4],
    sin_zero: [u8; 8],
}

/// `sigset_t`: 1024 bits in glibc and musl.
#[repr(C)]
pub struct SigSet {
    bits: [u64; 16],
}

extern "C" {
    fn getifaddrs(ifap: *mut *mut IfAddrsRaw) -> c_int;
    fn freeifaddrs(ifa: *mut IfAddrsRaw);
    fn sigemptyset(set: *mut SigSet) -> c_int;
    fn sigaddset(set: *mut SigSet, signum: c_int) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, oldset: *mut SigSet) -> c_int;
    fn sigwait(set: *const SigSet, sig: *mut c_int) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn flock(fd: c_int, operation: c_int) -> c_int;
}

/// One IPv4 address of an interface, as reported by getifaddrs(3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    pub name: String,
    pub addr: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub loopback: bool,
}

/// Every IPv4 address of every interface, in the kernel's order.
pub fn ipv4_addresses() -> io::Result<Vec<IfAddr>> {
    let mut head: *mut IfAddrsRaw = std::ptr::null_mut();
    // SAFETY: getifaddrs only writes the list head through the pointer we pass.
    if unsafe { getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, which stays
        // valid until freeifaddrs below; the name is a NUL-terminated string
        // and ifa_addr/ifa_netmask are null or point to a sockaddr at least as
        // large as sockaddr_in when sa_family is AF_INET.
        unsafe {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null() && (*ifa.ifa_addr).sin_family == AF_INET {
                let name = if ifa.ifa_name.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned()
                };
                let addr = Ipv4Addr::from((*ifa.ifa_addr).sin_addr);
                let netmask = if ifa.ifa_netmask.is_null() {
                    Ipv4Addr::BROADCAST
                } else {
                    Ipv4Addr::from((*ifa.ifa_netmask).sin_addr)
                };
                out.push(IfAddr { name, addr, netmask, loopback: ifa.ifa_flags & IFF_LOOPBACK != 0 });
            }
            cur = ifa.ifa_next;
        }
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { freeifaddrs(head) };
    Ok(out)
}

/// Blocks `signals` for the process (so that they stay pending, even for PID
/// 1, which the kernel otherwise shields from signals without a handler) and
/// returns the set for [`wait_signal`].
pub fn block_signals(signals: &[c_int]) -> io::Result<SigSet> {
    let mut set = SigSet { bits: [0; 16] };
    // SAFETY: `set` is a properly sized, initialised sigset_t.
    unsafe {
        sigemptyset(&mut set);
        for &sig in signals {
            if sigaddset(&mut set, sig) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if sigprocmask(SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(set)
}

/// Sleeps until one of the (blocked) signals of `set` is pending, consumes it
/// and returns its number.
pub fn wait_signal(set: &SigSet) -> io::Result<c_int> {
    loop {
        let mut sig: c_int = 0;
        // SAFETY: both pointers refer to live, initialised values.
        let rc = unsafe { sigwait(set, &mut sig) };
        match rc {
            0 => return Ok(sig),
            EINTR => continue,
            err => return Err(io::Error::from_raw_os_error(err)),
        }
    }
}

/// Reaps every child that has terminated, without blocking; returns how many.
pub fn reap_children() -> usize {
    let mut reaped = 0;
    loop {
        let mut status: c_int = 0;
        // SAFETY: `status` is a valid out-pointer.
        let pid = unsafe { waitpid(-1, &mut status, WNOHANG) };
        if pid > 0 {
            reaped += 1;
            continue;
        }
        if pid < 0 && io::Error::last_os_error().raw_os_error() == Some(EINTR) {
            continue;
        }
        // 0: children remain but none has exited; -1/ECHILD: no children.
        return reaped;
    }
}

/// Takes an exclusive flock(2) on `file`, released when it is closed.
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    loop {
        // SAFETY: the descriptor is owned by `file` and open for the call.
        if unsafe { flock(file.as_raw_fd(), LOCK_EX) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(EINTR) {
            return Err(err);
        }
    }
}
