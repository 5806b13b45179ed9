//! berth-rm: the utilities of the dockerrm_baseimage, as one static
//! multi-call binary installed as `/usr/local/bin/berth-rm` with symlinks
//! named after each utility. The utility is chosen by the file name of
//! argv[0], or given as the first argument (`berth-rm getProperty NAME`).
//!
//! | utility | arguments | prints |
//! |---|---|---|
//! | getProperty | NAME | the lifecycle property NAME (`/opt/rmparams`) |
//! | setProperty | NAME VALUE | sets it, rewriting the file atomically |
//! | getOperationProperty | NAME | the operation property NAME (`/opt/opparams`) |
//! | setOperationProperty | NAME VALUE | sets it |
//! | getInterfaces | | non-loopback interfaces with an IPv4 address |
//! | getInterfaceIP | IFACE, CIDR or IP | the container's IPv4 address there |
//! | getInterfacesSub | IFACE, CIDR or IP | that interface's network, as CIDR |
//! | berth-rm-entrypoint | (ignored) | nothing: PID 1, reaps, exits on TERM/INT |
//! | bash | shell arguments | runs `/bin/busybox sh` (the image's `/bin/bash`) |
//! | transition | lifecycle\|operation SCRIPT | berth's own: a transition in one exec (see `transition.rs`) |
//!
//! Exit status: 0 success; 1 property not set / no matching address; 2
//! usage error, malformed or unreadable params file, or system error.
//!
//! `BERTH_RMPARAMS` / `BERTH_OPPARAMS` override the two file paths.
//!
//! std only, no dependencies: berth-baseimage's build script compiles this
//! file with a plain `rustc -C target-feature=+crt-static` call.

mod entrypoint;
mod net;
mod params;
mod shell;
mod store;
mod sys;
mod transition;

use std::io::Write;
use std::path::PathBuf;

/// Names the binary answers to, as installed in /usr/local/bin.
const UTILITIES: &[&str] = &[
    "getProperty",
    "setProperty",
    "getOperationProperty",
    "setOperationProperty",
    "getInterfaces",
    "getInterfacesSub",
    "getInterfaceIP",
    "berth-rm-entrypoint",
    "transition",
];

const USAGE: &str = "\
usage: berth-rm <utility> [args...]   (or run it through a symlink named after the utility)
  getProperty NAME                 print lifecycle property NAME (from /opt/rmparams)
  setProperty NAME VALUE           set lifecycle property NAME to VALUE
  getOperationProperty NAME        print operation property NAME (from /opt/opparams)
  setOperationProperty NAME VALUE  set operation property NAME to VALUE
  getInterfaces                    list the non-loopback interfaces that have an IPv4 address
  getInterfaceIP X                 print the IPv4 address on X: an interface name,
                                   a network (10.1.1.0/24) or an address in that network
  getInterfacesSub X               print the network (CIDR) of X, same forms as getInterfaceIP
  berth-rm-entrypoint              PID 1: keep the container alive, reap children,
                                   exit 0 on SIGTERM/SIGINT (arguments are ignored)
  transition lifecycle|operation SCRIPT
                                   what berth runs for a transition: params (YAML) on stdin
                                   written to the file, SCRIPT run, the file printed on stdout
  (invoked as bash)                runs /bin/busybox sh with the same arguments
exit status: 0 ok, 1 not found, 2 usage or file error
environment: BERTH_RMPARAMS, BERTH_OPPARAMS override the params file paths";

/// Which params file a property utility works on.
#[derive(Clone, Copy)]
enum File {
    Lifecycle,
    Operation,
}

impl File {
    fn path(self) -> PathBuf {
        let (var, default) = match self {
            File::Lifecycle => ("BERTH_RMPARAMS", "/opt/rmparams"),
            File::Operation => ("BERTH_OPPARAMS", "/opt/opparams"),
        };
        match std::env::var_os(var) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(default),
        }
    }
}

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let mut args = Vec::new();
    for arg in std::env::args_os() {
        match arg.into_string() {
            Ok(a) => args.push(a),
            Err(bad) => {
                eprintln!("berth-rm: argument {bad:?} is not valid UTF-8");
                return 2;
            }
        }
    }
    let argv0 = args.first().map(String::as_str).unwrap_or("berth-rm");
    let invoked = argv0.rsplit('/').next().unwrap_or(argv0).to_owned();
    if invoked == "bash" || invoked == "-bash" {
        return shell::run(invoked.starts_with('-'), &args[1..]);
    }
    let (utility, rest) = if UTILITIES.contains(&invoked.as_str()) {
        (invoked, &args[1..])
    } else {
        match args.get(1).map(String::as_str) {
            Some("-h" | "--help" | "help") => {
                println!("{USAGE}");
                return 0;
            }
            Some(u) if UTILITIES.contains(&u) => (u.to_owned(), &args[2..]),
            Some(u) => {
                eprintln!("berth-rm: unknown utility {u:?}\n{USAGE}");
                return 2;
            }
            None => {
                eprintln!("{USAGE}");
                return 2;
            }
        }
    };
    dispatch(&utility, rest)
}

fn usage(utility: &str, synopsis: &str) -> i32 {
    eprintln!("usage: {utility} {synopsis}");
    2
}

fn dispatch(utility: &str, args: &[String]) -> i32 {
    match (utility, args) {
        ("getProperty", [name]) => get(File::Lifecycle, name),
        ("getOperationProperty", [name]) => get(File::Operation, name),
        ("setProperty", [name, value]) => set(File::Lifecycle, name, value),
        ("setOperationProperty", [name, value]) => set(File::Operation, name, value),
        ("getProperty" | "getOperationProperty", _) => usage(utility, "NAME"),
        ("setProperty" | "setOperationProperty", _) => usage(utility, "NAME VALUE"),
        ("getInterfaces", []) => with_addresses(utility, |addrs| {
            let names = net::interfaces(addrs);
            Ok(names.iter().map(|n| format!("{n}\n")).collect())
        }),
        ("getInterfaces", _) => usage(utility, "(no arguments)"),
        ("getInterfaceIP" | "getInterfacesSub", [arg]) => {
            let target = match net::Target::parse(arg) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{utility}: {e}");
                    return 2;
                }
            };
            with_addresses(utility, |addrs| match net::find(addrs, &target) {
                Some(a) if utility == "getInterfaceIP" => Ok(format!("{}\n", a.addr)),
                Some(a) => Ok(format!("{}\n", net::network_of(a))),
                None => Err(format!("no IPv4 address matches {arg:?}")),
            })
        }
        ("getInterfaceIP" | "getInterfacesSub", _) => {
            usage(utility, "INTERFACE | NETWORK/PREFIX | ADDRESS   (e.g. eth0, 10.1.1.0/24, 10.1.1.1)")
        }
        ("berth-rm-entrypoint", rest) => entrypoint::run(rest),
        ("transition", [kind, script]) if kind == "lifecycle" => transition::run(&File::Lifecycle.path(), script),
        ("transition", [kind, script]) if kind == "operation" => transition::run(&File::Operation.path(), script),
        ("transition", _) => usage(utility, "lifecycle|operation SCRIPT   (params on stdin; berth runs it)"),
        _ => usage("berth-rm", "<utility> [args...]"),
    }
}

fn print(utility: &str, text: &str) -> i32 {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 1,
        Err(e) => {
            eprintln!("{utility}: cannot write to stdout: {e}");
            2
        }
    }
}

fn get(file: File, name: &str) -> i32 {
    let path = file.path();
    let utility = match file {
        File::Lifecycle => "getProperty",
        File::Operation => "getOperationProperty",
    };
    match store::load(&path) {
        Ok(params) => match params.get(name) {
            Some(value) => print(utility, &format!("{value}\n")),
            None => {
                eprintln!("{utility}: {name:?} is not set in {}", path.display());
                1
            }
        },
        Err(e) => {
            eprintln!("{utility}: {e}");
            2
        }
    }
}

fn set(file: File, name: &str, value: &str) -> i32 {
    let utility = match file {
        File::Lifecycle => "setProperty",
        File::Operation => "setOperationProperty",
    };
    match store::update(&file.path(), |params| params.set(name, value)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{utility}: {e}");
            2
        }
    }
}

fn with_addresses(utility: &str, f: impl FnOnce(&[sys::IfAddr]) -> Result<String, String>) -> i32 {
    match sys::ipv4_addresses() {
        Ok(addrs) => match f(&addrs) {
            Ok(text) => print(utility, &text),
            Err(msg) => {
                eprintln!("{utility}: {msg}");
                1
            }
        },
        Err(e) => {
            eprintln!("{utility}: getifaddrs failed: {e}");
            2
        }
    }
}
