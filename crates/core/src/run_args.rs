//! The docker-run options given to `--args`, as one string.
//!
//! TPCM passes container options as a single string, e.g.
//! `--args "-e TZ=UTC -p 8080:80 -v /srv/data:/data:ro"`. berth never hands that
//! string to a shell: it is split into words with POSIX quoting rules
//! ([`shlex`]: quotes and backslashes only — no expansion, substitution or
//! globbing; like a shell, a word starting with `#` begins a comment), and the
//! words are parsed as the subset of `docker run` options berth can map onto a
//! container. Every value is validated here, so a mistake fails the install
//! with a message naming the option instead of failing later in the engine.
//!
//! Option syntax follows docker's flag parser (pflag): `--opt value`,
//! `--opt=value`, `-o value`, `-ovalue` and `-o=value`; boolean flags take
//! `--flag` or `--flag=true|false`; repeatable options accumulate and for the
//! others the last occurrence wins.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// Most ports one app may publish, summed over all `-p` options. Ranges are
/// expanded into one binding per port, so this bounds what a short string can
/// make berth (and the engine) allocate.
pub const MAX_PUBLISHED_PORTS: usize = 1024;

/// docker's smallest memory limit (6 MiB); below it a container cannot even
/// start its first process.
pub const MIN_MEMORY: u64 = 6 << 20;

/// Label keys berth uses to mark and track the containers it owns.
const RESERVED_LABEL_PREFIX: &str = "berth.";

/// The options `--args` accepts, as listed in the unknown-option error. A test
/// keeps this in step with the parser's table.
pub const SUPPORTED_OPTIONS: &[&str] = &[
    "-e, --env",
    "-v, --volume",
    "-p, --publish",
    "--network",
    "-h, --hostname",
    "-u, --user",
    "-w, --workdir",
    "--entrypoint",
    "--privileged",
    "--cap-add",
    "--cap-drop",
    "--device",
    "-l, --label",
    "--cpus",
    "-m, --memory",
    "--read-only",
    "--tmpfs",
    "--add-host",
    "--dns",
    "--shm-size",
    "--init",
    "--stop-signal",
    "--stop-timeout",
    "--log-opt",
];

/// The parsed `--args`: what the engine adapter maps onto the container
/// configuration. Missing fields deserialize to their defaults so that stored
/// specs survive new options being added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunOptions {
    /// `NAME=VALUE`, in the order given.
    pub env: Vec<String>,
    pub mounts: Vec<MountSpec>,
    /// One entry per published port; ranges are already expanded.
    pub ports: Vec<PortSpec>,
    pub network: Option<String>,
    pub hostname: Option<String>,
    /// `name|uid[:group|gid]`.
    pub user: Option<String>,
    pub workdir: Option<String>,
    /// `Some(vec![])` clears the image's entrypoint (`--entrypoint ""`).
    /// Otherwise the value is a single executable, as in docker: a value
    /// with spaces is not split into arguments.
    pub entrypoint: Option<Vec<String>>,
    pub privileged: bool,
    /// Capability names without the `CAP_` prefix, upper case, or `ALL`.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub devices: Vec<DeviceSpec>,
    pub labels: BTreeMap<String, String>,
    pub cpus: Option<f64>,
    /// Bytes.
    pub memory: Option<u64>,
    pub read_only: bool,
    /// `/path[:options]`.
    pub tmpfs: Vec<String>,
    /// `host:ip`.
    pub add_hosts: Vec<String>,
    pub dns: Vec<String>,
    /// Bytes.
    pub shm_size: Option<u64>,
    pub init: bool,
    pub stop_signal: Option<String>,
    /// Seconds; -1 waits forever.
    pub stop_timeout: Option<i64>,
    /// `--log-opt max-size=SIZE`, bytes: this app's json-file log is rotated
    /// past it (else `[logs] app_max_size`).
    pub log_max_size: Option<u64>,
    /// `--log-opt max-file=N`: rotated files kept (else `[logs] app_max_files`).
    pub log_max_files: Option<u32>,
}

impl RunOptions {
    /// Whether no option was given at all.
    pub fn is_empty(&self) -> bool {
        *self == RunOptions::default()
    }
}

/// One `-v`: a bind mount, a named volume or an anonymous volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MountSpec {
    /// Absolute host path or volume name; `None` is an anonymous volume.
    pub source: Option<String>,
    pub target: String,
    pub read_only: bool,
}

/// One published port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortSpec {
    /// Without brackets, e.g. `::1`; `None` binds all addresses.
    pub host_ip: Option<String>,
    /// `None` lets the engine choose an ephemeral port.
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `--device`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceSpec {
    pub host_path: String,
    pub container_path: String,
    /// Cgroup permissions, a subset of `rwm`.
    pub permissions: String,
}

impl Default for DeviceSpec {
    fn default() -> Self {
        DeviceSpec { host_path: String::new(), container_path: String::new(), permissions: "rwm".into() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunArgsError {
    #[error("--args cannot be split into words: {reason}")]
    Quoting { reason: String },
    #[error("unknown option {option:?} in --args; supported options are: {}", SUPPORTED_OPTIONS.join(", "))]
    UnknownOption { option: String },
    #[error("{option} is not accepted in --args: {reason}")]
    NotSupported { option: String, reason: String },
    #[error("{option} needs a value: {option} {}", value_hint(.option))]
    MissingValue { option: String },
    #[error("invalid value {value:?} for {option}: {reason}")]
    InvalidValue { option: String, value: String, reason: String },
    #[error("unexpected argument {argument:?}: --args takes options only; the image comes from the install source")]
    UnexpectedArgument { argument: String },
    #[error("label {key:?} is reserved: keys starting with \"berth.\" are how berth marks the containers it owns")]
    ReservedLabel { key: String },
}

/// Parses the `--args` string. Blank input gives [`RunOptions::default`].
pub fn parse_run_args(args: &str) -> Result<RunOptions, RunArgsError> {
    let mut options = RunOptions::default();
    // shlex only treats space, tab and newline as separators; other blanks
    // (say a stray "\r") would otherwise become a word.
    if args.trim().is_empty() {
        return Ok(options);
    }
    let words = shlex::split(args).ok_or_else(|| RunArgsError::Quoting {
        reason: "a quote is not closed or the string ends in a backslash; \
                 quote values with ' or \" and close every quote"
            .into(),
    })?;
    let mut words = words.into_iter().peekable();
    while let Some(word) = words.next() {
        let Written { def, name, inline } = recognise(&word)?;
        match def.kind {
            Kind::Flag(set) => {
                let on = match inline {
                    None => true,
                    Some(value) => parse_bool(value).ok_or_else(|| RunArgsError::InvalidValue {
                        option: name.clone(),
                        value: value.to_owned(),
                        reason: "a flag is either true or false".into(),
                    })?,
                };
                set(&mut options, on);
            }
            Kind::Value { apply, .. } => {
                let value = match inline {
                    Some(value) => value.to_owned(),
                    // pflag would take the next word whatever it is; when it is
                    // one of our own options the value was clearly forgotten.
                    None => match words.next_if(|next| !is_known_option(next)) {
                        Some(next) => next,
                        None => return Err(RunArgsError::MissingValue { option: name }),
                    },
                };
                let invalid =
                    |reason: String| RunArgsError::InvalidValue { option: name.clone(), value: value.clone(), reason };
                if value.contains('\0') {
                    return Err(invalid("it contains a NUL character".into()));
                }
                apply(&mut options, &value).map_err(|problem| match problem {
                    Problem::Invalid(reason) => invalid(reason),
                    Problem::ReservedLabel(key) => RunArgsError::ReservedLabel { key },
                })?;
            }
        }
    }
    check_private_mount(&options)?;
    Ok(options)
}

/// Nothing may be mounted over (or into) the app's private directory at
/// `/tpc`: berth mounts it there, and the upgrade hooks live in it.
fn check_private_mount(options: &RunOptions) -> Result<(), RunArgsError> {
    let private = crate::spec::PRIVATE_MOUNT;
    let inside = |path: &str| {
        let path = path.trim_end_matches('/');
        path == private || path.starts_with(&format!("{private}/"))
    };
    let reason = format!("berth mounts the app's private directory at {private}; mount elsewhere");
    if let Some(mount) = options.mounts.iter().find(|m| inside(&m.target)) {
        return Err(RunArgsError::InvalidValue { option: "-v".into(), value: mount.target.clone(), reason });
    }
    if let Some(tmpfs) = options.tmpfs.iter().find(|t| inside(t.split(':').next().unwrap_or_default())) {
        return Err(RunArgsError::InvalidValue { option: "--tmpfs".into(), value: tmpfs.clone(), reason });
    }
    Ok(())
}

/// The `--args` string with the values of `-e NAME=VALUE` hidden
/// (`NAME=…`), for showing: environment values are often secrets.
pub fn redact_env(args: &str) -> String {
    let Some(words) = shlex::split(args) else { return "(unreadable; hidden)".into() };
    let mut shown = Vec::with_capacity(words.len());
    let mut next_is_env = false;
    let hide = |pair: &str| match pair.split_once('=') {
        Some((name, _)) => format!("{name}=…"),
        None => pair.to_owned(),
    };
    for word in words {
        if next_is_env {
            shown.push(hide(&word));
            next_is_env = false;
        } else if word == "-e" || word == "--env" {
            shown.push(word);
            next_is_env = true;
        } else if let Some(pair) = word.strip_prefix("--env=") {
            shown.push(format!("--env={}", hide(pair)));
        } else if let Some(pair) = word.strip_prefix("-e").filter(|rest| !rest.is_empty() && !word.starts_with("--")) {
            let pair = pair.strip_prefix('=').unwrap_or(pair);
            shown.push(format!("-e{}", hide(pair)));
        } else {
            shown.push(word);
        }
    }
    // For reading, not for a shell: words with blanks or quotes are quoted.
    let quote = |word: &String| {
        if word.is_empty() || word.chars().any(|c| c.is_whitespace() || matches!(c, '\'' | '"' | '\\')) {
            format!("'{}'", word.replace('\'', "'\\''"))
        } else {
            word.clone()
        }
    };
    shown.iter().map(quote).collect::<Vec<_>>().join(" ")
}

/// Parses a size the way docker's `RAMInBytes` does: a number, decimals
/// allowed, an optional space, then an optional unit `b k m g t p` (powers of
/// 1024) optionally followed by `i` and/or `b`, in any case: `512m`, `1.5g`,
/// `64MiB`, `100kb`, `4096`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{text:?} is not a size; give a number with an optional unit \
             b, k, m, g, t or p (powers of 1024), e.g. 512m or 1.5g"
        )
    };
    let too_large = || format!("{text:?} is too large");
    let number_len = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_len);
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (number, None),
    };
    if whole.is_empty() || fraction.is_some_and(|f| f.is_empty() || f.contains('.')) {
        return Err(bad());
    }
    let suffix = suffix.strip_prefix(' ').unwrap_or(suffix).to_ascii_lowercase();
    let units = [('k', 10), ('m', 20), ('g', 30), ('t', 40), ('p', 50)];
    let (multiplier, rest) = units
        .iter()
        .find_map(|(unit, shift)| suffix.strip_prefix(*unit).map(|rest| (1u64 << shift, rest)))
        .unwrap_or((1, suffix.as_str()));
    let rest = rest.strip_prefix('i').unwrap_or(rest);
    let rest = rest.strip_prefix('b').unwrap_or(rest);
    if !rest.is_empty() {
        return Err(bad());
    }
    // The engine stores sizes as signed 64-bit numbers.
    let limit = i64::MAX as u64;
    match fraction {
        // Whole numbers stay exact; floats lose precision above 2^53.
        None => whole
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(multiplier))
            .filter(|bytes| *bytes <= limit)
            .ok_or_else(too_large),
        Some(_) => {
            let bytes = number.parse::<f64>().map_err(|_| bad())? * multiplier as f64;
            if bytes.is_finite() && bytes < limit as f64 {
                Ok(bytes as u64) // truncates, as docker does
            } else {
                Err(too_large())
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The option table: the one place that knows each option's spelling, whether
// it takes a value, and what to do with it.

struct OptionDef {
    /// Without the leading `--`.
    long: &'static str,
    short: Option<char>,
    kind: Kind,
}

enum Kind {
    /// Takes no value, or an inline `=true|false`.
    Flag(fn(&mut RunOptions, bool)),
    /// Takes a value; `hint` shows its form in the missing-value error.
    Value { hint: &'static str, apply: Apply },
}

type Apply = fn(&mut RunOptions, &str) -> Result<(), Problem>;

/// A docker option berth refuses on purpose: short form, long form, why.
type Refused = (Option<char>, &'static str, &'static str);

/// What an option's handler can object to; the parser adds the option's name
/// and value to make a [`RunArgsError`].
enum Problem {
    Invalid(String),
    ReservedLabel(String),
}

fn invalid<T>(reason: impl Into<String>) -> Result<T, Problem> {
    Err(Problem::Invalid(reason.into()))
}

const fn value(long: &'static str, short: Option<char>, hint: &'static str, apply: Apply) -> OptionDef {
    OptionDef { long, short, kind: Kind::Value { hint, apply } }
}

const fn flag(long: &'static str, set: fn(&mut RunOptions, bool)) -> OptionDef {
    OptionDef { long, short: None, kind: Kind::Flag(set) }
}

const OPTIONS: &[OptionDef] = &[
    value("env", Some('e'), "NAME=VALUE", apply_env),
    value("volume", Some('v'), "/host/path:/container/path[:ro|rw]", apply_volume),
    value("publish", Some('p'), "[ip:][hostPort:]containerPort[/tcp|udp|sctp]", apply_publish),
    value("network", None, "NETWORK", |o, v| set_text(&mut o.network, v, "network name")),
    value("hostname", Some('h'), "HOSTNAME", apply_hostname),
    value("user", Some('u'), "name|uid[:group|gid]", apply_user),
    value("workdir", Some('w'), "/absolute/path", |o, v| {
        absolute(v, "the working directory")?;
        o.workdir = Some(v.to_owned());
        Ok(())
    }),
    value("entrypoint", None, "/path/to/executable (\"\" clears it)", apply_entrypoint),
    flag("privileged", |o, on| o.privileged = on),
    value("cap-add", None, "CAPABILITY", |o, v| {
        o.cap_add.push(capability(v)?);
        Ok(())
    }),
    value("cap-drop", None, "CAPABILITY", |o, v| {
        o.cap_drop.push(capability(v)?);
        Ok(())
    }),
    value("device", None, "/dev/host[:/dev/container[:rwm]]", apply_device),
    value("label", Some('l'), "key[=value]", apply_label),
    value("cpus", None, "NUMBER, e.g. 0.5", apply_cpus),
    value("memory", Some('m'), "SIZE, e.g. 512m", apply_memory),
    flag("read-only", |o, on| o.read_only = on),
    value("tmpfs", None, "/path[:options]", apply_tmpfs),
    value("add-host", None, "host:ip", apply_add_host),
    value("dns", None, "IP", apply_dns),
    value("shm-size", None, "SIZE, e.g. 64m", |o, v| {
        o.shm_size = Some(parse_size(v).map_err(Problem::Invalid)?);
        Ok(())
    }),
    flag("init", |o, on| o.init = on),
    value("stop-signal", None, "SIGNAL, e.g. SIGTERM", apply_stop_signal),
    value("stop-timeout", None, "SECONDS", apply_stop_timeout),
    value("log-opt", None, "max-size=SIZE or max-file=N", apply_log_opt),
];

/// docker options people copy along that make no sense for an app berth
/// manages; refused with the reason rather than as unknown.
const NOT_SUPPORTED: &[Refused] = &[
    (Some('d'), "detach", "berth always runs apps in the background"),
    (Some('i'), "interactive", "apps run unattended, without a terminal"),
    (Some('t'), "tty", "apps run unattended, without a terminal"),
    (None, "rm", "berth owns the container and removes it when the app is uninstalled"),
    (None, "name", "the container is named after the app"),
    (None, "restart", "berth restarts apps itself, with backoff"),
];

/// An option word split into the option it names, how it was written (for
/// messages) and a value written in the same word.
struct Written<'a> {
    def: &'static OptionDef,
    name: String,
    inline: Option<&'a str>,
}

fn recognise(word: &str) -> Result<Written<'_>, RunArgsError> {
    if let Some(body) = word.strip_prefix("--").filter(|body| !body.is_empty()) {
        let (long, inline) = match body.split_once('=') {
            Some((long, value)) => (long, Some(value)),
            None => (body, None),
        };
        let name = format!("--{long}");
        return match OPTIONS.iter().find(|def| def.long == long) {
            Some(def) => Ok(Written { def, name, inline }),
            None => Err(unknown(&name, |(_, l, _)| *l == long)),
        };
    }
    // A lone "-" or "--", or anything not starting with "-", is positional.
    let Some(short) = word.strip_prefix('-').and_then(|rest| rest.chars().next()).filter(|c| *c != '-') else {
        return Err(RunArgsError::UnexpectedArgument { argument: word.to_owned() });
    };
    let name = format!("-{short}");
    // Past the "-" and the option letter: an attached value, as in "-eA=1";
    // pflag also drops a leading "=", as in "-e=A=1".
    let rest = word.get(1 + short.len_utf8()..).unwrap_or_default();
    let inline = (!rest.is_empty()).then(|| rest.strip_prefix('=').unwrap_or(rest));
    match OPTIONS.iter().find(|def| def.short == Some(short)) {
        Some(def) => Ok(Written { def, name, inline }),
        None => Err(unknown(&name, |(s, _, _)| *s == Some(short))),
    }
}

fn unknown(name: &str, matches: impl Fn(&&Refused) -> bool) -> RunArgsError {
    match NOT_SUPPORTED.iter().find(matches) {
        Some((_, _, reason)) => RunArgsError::NotSupported { option: name.to_owned(), reason: (*reason).to_owned() },
        None => RunArgsError::UnknownOption { option: name.to_owned() },
    }
}

/// Whether `word` is one of the options above, as `--long[=…]` or a bare `-x`.
fn is_known_option(word: &str) -> bool {
    if let Some(body) = word.strip_prefix("--") {
        let long = body.split_once('=').map_or(body, |(long, _)| long);
        return OPTIONS.iter().any(|def| def.long == long) || NOT_SUPPORTED.iter().any(|(_, l, _)| *l == long);
    }
    let mut chars = word.chars();
    match (chars.next(), chars.next(), chars.next()) {
        (Some('-'), Some(c), None) => OPTIONS.iter().any(|def| def.short == Some(c)),
        _ => false,
    }
}

/// The value form shown when `option` (as written) lacks its value.
fn value_hint(option: &str) -> &'static str {
    let def = match option.strip_prefix("--") {
        Some(long) => OPTIONS.iter().find(|def| def.long == long),
        None => {
            let short = option.strip_prefix('-').and_then(|s| s.chars().next());
            OPTIONS.iter().find(|def| def.short.is_some() && def.short == short)
        }
    };
    match def.map(|def| &def.kind) {
        Some(Kind::Value { hint, .. }) => hint,
        _ => "VALUE",
    }
}

/// Go's `strconv.ParseBool`, which docker's flags use.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Handlers, one per option that takes a value.

fn apply_env(o: &mut RunOptions, value: &str) -> Result<(), Problem> {
    match value.split_once('=') {
        // docker would copy NAME from the caller's environment; berth runs
        // apps from a daemon whose environment is not the user's.
        None => invalid("give NAME=VALUE; a bare NAME is not taken from any environment"),
        Some(("", _)) => invalid("the variable name before '=' is empty"),
        Some(_) => {
            o.env.push(value.to_owned());
            Ok(())
        }
    }
}

fn apply_volume(o: &mut RunOptions, value: &str) -> Result<(), Problem> {
    let parts: Vec<&str> = value.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [target] => (None, *target, None),
        [_, "ro" | "rw"] => {
            return invalid("a mode needs a source, as in /host:/container:ro; an anonymous volume is just /container")
        }
        [source, target] => (Some(*source), *target, None),
        [source, target, mode] => (Some(*source), *target, Some(*mode)),
        _ => return invalid("too many ':'; use /host:/container[:ro|rw], volume:/container[:ro|rw] or /container"),
    };
    if let Some(source) = source {
        if source.is_empty() {
            return invalid("the source before ':' is empty");
        }
        if !source.starts_with('/') && !is_volume_name(source) {
            return invalid(format!(
                "the source {source:?} is neither an absolute host path nor a volume name \
                 ([a-zA-Z0-9][a-zA-Z0-9_.-]+); relative paths are not allowed"
            ));
        }
    }
    absolute(target, "the container path")?;
    if target == "/" {
        return invalid("the container path cannot be /");
    }
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(other) => return invalid(format!("unknown mode {other:?}; use ro or rw")),
    };
    o.mounts.push(MountSpec { source: source.map(str::to_owned), target: target.to_owned(), read_only });
    Ok(())
}

fn is_volume_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.len() >= 2
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn apply_publish(o: &mut RunOptions, value: &str) -> Result<(), Problem> {
    let (address, protocol) = match value.split_once('/') {
        Some((address, protocol)) => (address, parse_protocol(protocol)?),
        None => (value, Protocol::Tcp),
    };
    let (ip, host, container) = split_publish(address)?;
    let host_ip = ip.filter(|ip| !ip.is_empty()).map(parse_host_ip).transpose()?;
    let (first, last) = port_range(container, "container port")?;
    let host = host.filter(|h| !h.is_empty()).map(|h| port_range(h, "host port")).transpose()?;
    if let Some((host_first, host_last)) = host {
        if host_last - host_first != last - first {
            return invalid(format!(
                "the host ports {host_first}-{host_last} and container ports {first}-{last} \
                 differ in number; give ranges of equal length"
            ));
        }
    }
    let count = usize::from(last - first) + 1;
    if o.ports.len() + count > MAX_PUBLISHED_PORTS {
        return invalid(format!("at most {MAX_PUBLISHED_PORTS} ports can be published in all"));
    }
    for container_port in first..=last {
        // Cannot overflow: the host range is as long as the container range
        // and ends at or below 65535.
        let host_port = host.map(|(host_first, _)| host_first + (container_port - first));
        o.ports.push(PortSpec { host_ip: host_ip.clone(), host_port, container_port, protocol });
    }
    Ok(())
}

/// Splits `[ip:][hostPort:]containerPort` into its parts. As in docker, an
/// unbracketed IPv6 address works because the ports are taken from the right.
fn split_publish(address: &str) -> Result<(Option<&str>, Option<&str>, &str), Problem> {
    if let Some(after) = address.strip_prefix('[') {
        let Some((ip, ports)) = after.split_once("]:") else {
            return invalid("close the IPv6 address with ']:', as in [::1]:8080:80");
        };
        let Some((host, container)) = ports.split_once(':') else {
            return invalid("after a host address give hostPort:containerPort; hostPort may be empty, as in [::1]::80");
        };
        return Ok((Some(ip), Some(host), container));
    }
    let mut fields = address.rsplitn(3, ':');
    let container = fields.next().unwrap_or_default();
    let host = fields.next();
    Ok((fields.next(), host, container))
}

fn parse_protocol(text: &str) -> Result<Protocol, Problem> {
    match text.to_ascii_lowercase().as_str() {
        // docker reads "80/" as tcp too.
        "" | "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "sctp" => Ok(Protocol::Sctp),
        _ => invalid(format!("unknown protocol {text:?}; use tcp, udp or sctp")),
    }
}

fn parse_host_ip(text: &str) -> Result<String, Problem> {
    let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    match bare.parse::<IpAddr>() {
        Ok(ip) => Ok(ip.to_string()),
        Err(_) => invalid(format!("the host address {text:?} is not an IP address")),
    }
}

/// `N` or `N-M` with `N <= M`.
fn port_range(text: &str, what: &str) -> Result<(u16, u16), Problem> {
    let (first, last) = match text.split_once('-') {
        Some((first, last)) => (port(first, what)?, port(last, what)?),
        None => {
            let port = port(text, what)?;
            (port, port)
        }
    };
    if first > last {
        return invalid(format!("the {what} range {text} runs backwards"));
    }
    Ok((first, last))
}

fn port(text: &str, what: &str) -> Result<u16, Problem> {
    if text.is_empty() {
        return invalid(format!("the {what} is missing"));
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return invalid(format!("the {what} {text:?} is not a number"));
    }
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => invalid(format!("the {what} {text} is not between 1 and 65535")),
    }
}

fn set_text(slot: &mut Option<String>, value: &str, what: &str) -> Result<(), Problem> {
    if value.trim().is_empty() {
        return invalid(format!("the {what} is empty"));
    }
    *slot = Some(value.to_owned());
    Ok(())
}

fn apply_hostname(o: &mut RunOptions, value: &str) -> Result<(), Problem> {
    // RFC 1123 labels, dot-separated, within the 63 characters that Linux
    // and DNS allow a host name label.
    if value.len() > 63 || !value.split('.').all(is_rfc1123_label) {
        return invalid(
            "a host name is up to 63 letters, digits, '-' and '.', \
             each dot-separated part starting and ending with a letter or digit",
        );
    }
    o.hostname = Some(value.to_owned());
    Ok(())
}

fn is_rfc1123_label(label: &str) -> bool {
    !label.is_empty()
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn apply_user(o: &mut RunOptions, value: &str) -> Result<(), Problem> {
    let well_formed =
        |part: &str| !part.is_empty() && !part.contains(|c: char| c == ':' || c.is_whitespace() || c.is_control());
    let ok = match value.split_once(':') {
        Some((user, group)) => well_formed(user) && well_formed(group),
        None => well_formed(value),
    };
    if !ok {
        return invalid("give name|uid or name|uid:group|gid, without spaces");
    }
    o.user = Some(value.to_owned());
    Ok(())
}

fn absolute(path: &str, what: &str) -> Result<(), Problem> {
    if path.starts_with('/') {
        Ok(())
    } else {
        invalid(format!("{what} must be an absolute path (starting with /)"))
    }
}

fn apply_entrypoint(o: &mut RunOptions, value: &str) -> Result<(), Problem> {
    // docker treats the value as one executable path, never as a command line.
    o.entrypoint = Some(if value.is_empty() { Vec::new() } else { vec![value.to_owned()] });
    Ok(())
}

/// `net_admin`, `CAP_NET_ADMIN` → `NET_ADMIN`; `all` → `ALL`.
fn capability(value: &str) -> Result<String, Problem> {
    let upper = value.to_ascii_uppercase();
    let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
        return invalid("give a capability name such as NET_ADMIN (CAP_ prefix optional) or ALL");
    }
    Ok(name.to_owned())
}

fn apply_device(o: &mut RunOptions, value: &str) -> Result<(), Problem> {
    let parts: Vec<&str> = value.split(':').collect();
    let (host_path, container_path, permissions) = match parts.as_slice() {
        [host] => (*host, *host, "rwm"),
        // As in docker, "/dev/x:rw" gives permissions, not a container path.
        [host, permissions] if is_device_permissions(permissions) => (*host, *host, *permissions),
        [host, container] => (*host, *container, "rwm"),
        [host, container, permissions] => (*host, *container, *permissions),
        _ => return invalid("too many ':'; use /dev/host[:/dev/container[:rwm]]"),
    };
    absolute(host_path, "the host device")?;
    absolute(container_path, "the container device")?;
    if !is_device_permissions(permissions) {
        return invalid(format!("permissions {permissions:?} must be letters from \"rwm\", each at most once"));
    }
    o.devices.push(DeviceSpec {
        host_path: host_path.to_owned(),
        container_path: container_path.to_owned(),
        permissions: permissions.to_owned(),
    });
    Ok(())
}

fn is_device_permissions(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 3
        && text.chars().all(|c| "rwm".contains(c))
        && "rwm".chars().all(|c| text.matches(c).count() <= 1)
}

fn apply_label(o: &mut RunOptions, value: &str) -> Result<(), Problem> {
    // As in docker, a bare key gets an empty value.
    let (key, label) = value.split_once('=').unwrap_or((value, ""));
    if key.is_empty() {
        return invalid("the label key before '=' is empty");
    }
    if key.starts_with(RESERVED_LABEL_PREFIX) {
        return Err(Problem::ReservedLabel(key.to_owned()));
    }
    o.labels.insert(key.to_owned(), label.to_owned());
    Ok(())
}

fn apply_cpus(o: &mut RunOptions, value: &str) -> Result<(), Problem> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return invalid("give a decimal number of CPUs, e.g. 0.5 or 2");
    }
    // The engine counts billionths of a CPU; finer values would round to
    // zero, which the engine reads as "no limit".
    if fraction.len() > 9 {
        return invalid("at most 9 decimal places");
    }
    match value.parse::<f64>() {
        Ok(cpus) if !cpus.is_finite() => invalid("too large"),
        Ok(cpus) if cpus > 0.0 => {
            o.cpus = Some(cpus);
            Ok(())
        }
        _ => invalid("must be greater than 0"),
    }
}

fn apply_memory(o: &mut RunOptions, value: &str) -> Result<(), Problem> {
    let bytes = parse_size(value).map_err(Problem::Invalid)?;
    if bytes < MIN_MEMORY {
        return invalid("the smallest memory limit is 6m (6 MiB), as in docker");
    }
    o.memory = Some(bytes);
    Ok(())
}

fn apply_tmpfs(o: &mut RunOptions, value: &str) -> Result<(), Problem> {
    let path = value.split_once(':').map_or(value, |(path, _)| path);
    absolute(path, "the tmpfs mount point")?;
    o.tmpfs.push(value.to_owned());
    Ok(())
}

fn apply_add_host(o: &mut RunOptions, value: &str) -> Result<(), Problem> {
    // docker takes host:ip and, since 25.0, host=ip; the engine API wants
    // host:ip, and splits at the first ':' so IPv6 addresses need no brackets.
    let Some((host, ip)) = value.split_once('=').or_else(|| value.split_once(':')) else {
        return invalid("give host:ip");
    };
    if host.is_empty() || host.contains(|c: char| c == ':' || c.is_whitespace() || c.is_control()) {
        return invalid("give host:ip, with a host name before the ':'");
    }
    let ip = if ip == "host-gateway" { ip.to_owned() } else { parse_host_ip(ip)? };
    o.add_hosts.push(format!("{host}:{ip}"));
    Ok(())
}

fn apply_dns(o: &mut RunOptions, value: &str) -> Result<(), Problem> {
    match value.parse::<IpAddr>() {
        Ok(ip) => {
            o.dns.push(ip.to_string());
            Ok(())
        }
        Err(_) => invalid("give the IP address of a DNS server"),
    }
}

/// Linux signal names without the `SIG` prefix, as docker knows them.
const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE", "POLL",
    "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1",
    "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
];

/// The json-file rotation options; the log driver itself is berth's choice
/// (its logs command reads json-file).
fn apply_log_opt(o: &mut RunOptions, value: &str) -> Result<(), Problem> {
    match value.split_once('=') {
        Some(("max-size", size)) => {
            let bytes = parse_size(size).map_err(Problem::Invalid)?;
            if bytes < 1024 {
                return invalid(format!("max-size {size:?} is under 1k; give e.g. 10m"));
            }
            o.log_max_size = Some(bytes);
            Ok(())
        }
        Some(("max-file", files)) => match files.parse::<u32>() {
            Ok(n) if (1..=100).contains(&n) => {
                o.log_max_files = Some(n);
                Ok(())
            }
            _ => invalid(format!("max-file {files:?} is not a number from 1 to 100")),
        },
        _ => invalid("berth takes the log options max-size=SIZE and max-file=N"),
    }
}

fn apply_stop_signal(o: &mut RunOptions, value: &str) -> Result<(), Problem> {
    let upper = value.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let offset = |prefix: &str, max: u8| {
        name.strip_prefix(prefix).and_then(|n| n.parse::<u8>().ok()).is_some_and(|n| (1..=max).contains(&n))
    };
    let known = match upper.parse::<u8>() {
        Ok(number) => (1..=64).contains(&number),
        Err(_) => SIGNALS.contains(&name) || offset("RTMIN+", 15) || offset("RTMAX-", 14),
    };
    if !known {
        return invalid("give a signal name such as SIGTERM or SIGINT, or a number from 1 to 64");
    }
    o.stop_signal = Some(upper);
    Ok(())
}

fn apply_stop_timeout(o: &mut RunOptions, value: &str) -> Result<(), Problem> {
    match value.parse::<i64>() {
        Ok(seconds) if seconds >= -1 => {
            o.stop_timeout = Some(seconds);
            Ok(())
        }
        _ => invalid("give whole seconds, or -1 to wait forever"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &str) -> RunOptions {
        match parse_run_args(args) {
            Ok(options) => options,
            Err(e) => panic!("{args:?} should parse: {e}"),
        }
    }

    fn fail(args: &str) -> RunArgsError {
        match parse_run_args(args) {
            Ok(options) => panic!("{args:?} should fail, got {options:?}"),
            Err(e) => e,
        }
    }

    /// Asserts `args` is refused as an invalid value whose reason mentions `needle`.
    fn invalid_value(args: &str, needle: &str) {
        match fail(args) {
            e @ RunArgsError::InvalidValue { .. } => {
                let message = e.to_string();
                assert!(message.contains(needle), "{args:?}: {message:?} lacks {needle:?}");
            }
            other => panic!("{args:?}: expected InvalidValue, got {other:?}"),
        }
    }

    fn port(host_ip: Option<&str>, host_port: Option<u16>, container_port: u16, protocol: Protocol) -> PortSpec {
        PortSpec { host_ip: host_ip.map(str::to_owned), host_port, container_port, protocol }
    }

    #[test]
    fn blank_input_is_no_options() {
        for args in ["", "   ", "\t\n", " \r\n "] {
            let options = parse(args);
            assert_eq!(options, RunOptions::default());
            assert!(options.is_empty());
        }
        assert!(!parse("--init").is_empty());
    }

    #[test]
    fn env_in_every_form_keeps_order() {
        for args in ["-e A=1", "--env A=1", "--env=A=1", "-eA=1", "-e=A=1"] {
            assert_eq!(parse(args).env, ["A=1"], "{args}");
        }
        let options = parse("-e B=2 --env A=x=y -e EMPTY=");
        assert_eq!(options.env, ["B=2", "A=x=y", "EMPTY="]);
    }

    #[test]
    fn env_needs_a_name_and_a_value() {
        invalid_value("-e NAME", "give NAME=VALUE");
        invalid_value("--env =x", "name before '=' is empty");
        let message = fail("-e PATH").to_string();
        assert!(message.contains("-e") && message.contains("\"PATH\""), "{message}");
    }

    #[test]
    fn quoting_without_a_shell() {
        assert_eq!(parse(r#"-e "A=b c""#).env, ["A=b c"]);
        assert_eq!(parse("-e 'X=y'").env, ["X=y"]);
        assert_eq!(parse(r"-e A=b\ c").env, ["A=b c"]);
        assert_eq!(parse("-e 'A=$HOME `id`'").env, ["A=$HOME `id`"]);
        assert_eq!(parse("-e A=1;-e").env, ["A=1;-e"]);
        for args in [r#"-e "A=b"#, "-e 'X=y", r"-e A\"] {
            let e = fail(args);
            assert!(matches!(e, RunArgsError::Quoting { .. }), "{args}: {e:?}");
            assert!(e.to_string().contains("quote is not closed"), "{e}");
        }
    }

    #[test]
    fn volumes() {
        let options = parse("-v /srv:/data -v /etc/x:/x:ro --volume=cache:/cache:rw -v /anon -v my_vol.1:/v");
        assert_eq!(
            options.mounts,
            [
                MountSpec { source: Some("/srv".into()), target: "/data".into(), read_only: false },
                MountSpec { source: Some("/etc/x".into()), target: "/x".into(), read_only: true },
                MountSpec { source: Some("cache".into()), target: "/cache".into(), read_only: false },
                MountSpec { source: None, target: "/anon".into(), read_only: false },
                MountSpec { source: Some("my_vol.1".into()), target: "/v".into(), read_only: false },
            ]
        );
        assert_eq!(parse("-v/a:/b").mounts.len(), 1);
    }

    #[test]
    fn bad_volumes() {
        invalid_value("-v ./data:/data", "relative paths are not allowed");
        invalid_value("-v _x:/data", "neither an absolute host path nor a volume name");
        invalid_value("-v a:/data", "volume name");
        invalid_value("-v /srv:data", "container path must be an absolute path");
        invalid_value("-v relative", "container path must be an absolute path");
        invalid_value("-v /srv:/", "cannot be /");
        invalid_value("-v /srv:/data:rx", "unknown mode \"rx\"");
        invalid_value("-v /srv:/data:", "unknown mode \"\"");
        invalid_value("-v /a:/b:ro:z", "too many ':'");
        invalid_value("-v /data:ro", "a mode needs a source");
        invalid_value("-v :/data", "source before ':' is empty");
        invalid_value("-v ''", "must be an absolute path");
    }

    #[test]
    fn publish_forms() {
        use Protocol::*;
        let cases = [
            ("-p 80", port(None, None, 80, Tcp)),
            ("-p 8080:80", port(None, Some(8080), 80, Tcp)),
            ("--publish 127.0.0.1:8080:80", port(Some("127.0.0.1"), Some(8080), 80, Tcp)),
            ("--publish=127.0.0.1::80", port(Some("127.0.0.1"), None, 80, Tcp)),
            ("-p :80", port(None, None, 80, Tcp)),
            ("-p 53:53/udp", port(None, Some(53), 53, Udp)),
            ("-p 53:53/UDP", port(None, Some(53), 53, Udp)),
            ("-p 9:9/sctp", port(None, Some(9), 9, Sctp)),
            ("-p 80/", port(None, None, 80, Tcp)),
            ("-p [::1]:8080:80", port(Some("::1"), Some(8080), 80, Tcp)),
            ("-p [::1]::80/udp", port(Some("::1"), None, 80, Udp)),
            ("-p ::1:8080:80", port(Some("::1"), Some(8080), 80, Tcp)),
            ("-p [fe80:0::1]:1:2", port(Some("fe80::1"), Some(1), 2, Tcp)),
            ("-p65535:1", port(None, Some(65535), 1, Tcp)),
        ];
        for (args, expected) in cases {
            assert_eq!(parse(args).ports, [expected], "{args}");
        }
    }

    #[test]
    fn publish_ranges_expand() {
        let options = parse("-p 8000-8002:9000-9002/udp");
        let expected: Vec<PortSpec> = (0..3).map(|i| port(None, Some(8000 + i), 9000 + i, Protocol::Udp)).collect();
        assert_eq!(options.ports, expected);
        let unbound = parse("-p 127.0.0.1::7000-7001").ports;
        assert_eq!(
            unbound,
            [port(Some("127.0.0.1"), None, 7000, Protocol::Tcp), port(Some("127.0.0.1"), None, 7001, Protocol::Tcp)]
        );
        assert_eq!(parse("-p 1-1024").ports.len(), 1024);
        assert_eq!(parse("-p 65535-65535:65535").ports.len(), 1);
    }

    #[test]
    fn bad_publish() {
        invalid_value("-p 8000-8001:9000-9002", "give ranges of equal length");
        invalid_value("-p 8000-8002:80", "give ranges of equal length");
        invalid_value("-p 80:9000-9001", "give ranges of equal length");
        invalid_value("-p 0", "not between 1 and 65535");
        invalid_value("-p 65536", "not between 1 and 65535");
        invalid_value("-p 99999999999999999999999", "not between 1 and 65535");
        invalid_value("-p 90-80", "runs backwards");
        invalid_value("-p http", "\"http\" is not a number");
        invalid_value("-p +80", "is not a number");
        invalid_value("-p 8080:", "container port is missing");
        invalid_value("-p 127.0.0.1:80", "host port \"127.0.0.1\" is not a number");
        invalid_value("-p 1.2.3.999:80:80", "not an IP address");
        invalid_value("-p [::1:80:80", "close the IPv6 address");
        invalid_value("-p [::1]:80", "hostPort:containerPort");
        invalid_value("-p 80/icmp", "unknown protocol \"icmp\"");
        invalid_value("-p 80/tcp/x", "unknown protocol");
        invalid_value("-p 1-1025", "at most 1024 ports");
        invalid_value("-p 1-1000 -p 2000-2024 -p 3000", "at most 1024 ports");
        invalid_value("-p 1-", "container port is missing");
    }

    #[test]
    fn single_valued_options_last_wins() {
        let options = parse(
            "--network a --network=b -h one -h two -u 1 -u 2 -w /a -w /b --cpus 1 --cpus 2 -m 8m -m 16m \
             --shm-size 1m --shm-size 2m --stop-signal INT --stop-signal TERM --stop-timeout 1 --stop-timeout 2 \
             --entrypoint /a --entrypoint /b",
        );
        assert_eq!(options.network.as_deref(), Some("b"));
        assert_eq!(options.hostname.as_deref(), Some("two"));
        assert_eq!(options.user.as_deref(), Some("2"));
        assert_eq!(options.workdir.as_deref(), Some("/b"));
        assert_eq!(options.cpus, Some(2.0));
        assert_eq!(options.memory, Some(16 << 20));
        assert_eq!(options.shm_size, Some(2 << 20));
        assert_eq!(options.stop_signal.as_deref(), Some("TERM"));
        assert_eq!(options.stop_timeout, Some(2));
        assert_eq!(options.entrypoint, Some(vec!["/b".to_string()]));
    }

    #[test]
    fn network() {
        assert_eq!(parse("--network host").network.as_deref(), Some("host"));
        assert_eq!(parse("--network container:db").network.as_deref(), Some("container:db"));
        invalid_value("--network ''", "network name is empty");
    }

    #[test]
    fn hostname() {
        for name in ["box", "Box-1", "a", "db.local", "x".repeat(63).as_str()] {
            assert_eq!(parse(&format!("-h {name}")).hostname.as_deref(), Some(name));
        }
        assert_eq!(parse("--hostname=box").hostname.as_deref(), Some("box"));
        assert_eq!(parse("-hbox").hostname.as_deref(), Some("box"));
        for bad in ["-bad", "bad-", "a_b", "a..b", "a.", "'x y'", "x".repeat(64).as_str(), "''", "é"] {
            invalid_value(&format!("--hostname {bad}"), "host name is up to 63");
        }
    }

    #[test]
    fn user() {
        for user in ["1000", "1000:1000", "app:staff", "app", "nobody:65534"] {
            assert_eq!(parse(&format!("-u {user}")).user.as_deref(), Some(user));
        }
        assert_eq!(parse("--user=app").user.as_deref(), Some("app"));
        for bad in ["a:b:c", "'a b'", ":g", "u:", "''"] {
            invalid_value(&format!("--user {bad}"), "name|uid");
        }
    }

    #[test]
    fn workdir() {
        assert_eq!(parse("-w /srv/app").workdir.as_deref(), Some("/srv/app"));
        assert_eq!(parse("--workdir=/").workdir.as_deref(), Some("/"));
        invalid_value("-w srv", "must be an absolute path");
    }

    #[test]
    fn entrypoint() {
        assert_eq!(parse("--entrypoint ''").entrypoint, Some(vec![]));
        assert_eq!(parse("--entrypoint=").entrypoint, Some(vec![]));
        assert_eq!(parse("--entrypoint /bin/sh").entrypoint, Some(vec!["/bin/sh".to_string()]));
        // One executable, never a command line.
        assert_eq!(parse("--entrypoint '/bin/sh -c'").entrypoint, Some(vec!["/bin/sh -c".to_string()]));
        assert_eq!(parse("").entrypoint, None);
    }

    #[test]
    fn boolean_flags() {
        let options = parse("--privileged --read-only --init");
        assert!(options.privileged && options.read_only && options.init);
        for (args, expected) in [
            ("--privileged=true", true),
            ("--privileged=1", true),
            ("--privileged=True", true),
            ("--privileged=false", false),
            ("--privileged=0", false),
            ("--privileged --privileged=F", false),
        ] {
            assert_eq!(parse(args).privileged, expected, "{args}");
        }
        invalid_value("--init=maybe", "either true or false");
        invalid_value("--read-only=", "either true or false");
        // As in docker, a flag never consumes the next word.
        assert_eq!(fail("--privileged false"), RunArgsError::UnexpectedArgument { argument: "false".into() });
    }

    #[test]
    fn capabilities_are_normalised() {
        let options = parse("--cap-add net_admin --cap-add CAP_SYS_TIME --cap-add=cap_chown --cap-drop all");
        assert_eq!(options.cap_add, ["NET_ADMIN", "SYS_TIME", "CHOWN"]);
        assert_eq!(options.cap_drop, ["ALL"]);
        for bad in ["net-admin", "CAP_", "''", "SYS1", "ß"] {
            invalid_value(&format!("--cap-add {bad}"), "capability name");
        }
        invalid_value("--cap-drop 'NET ADMIN'", "capability name");
    }

    #[test]
    fn devices() {
        let device = |host: &str, container: &str, permissions: &str| DeviceSpec {
            host_path: host.into(),
            container_path: container.into(),
            permissions: permissions.into(),
        };
        let cases = [
            ("--device /dev/ttyUSB0", device("/dev/ttyUSB0", "/dev/ttyUSB0", "rwm")),
            ("--device /dev/a:/dev/b", device("/dev/a", "/dev/b", "rwm")),
            ("--device=/dev/a:/dev/b:r", device("/dev/a", "/dev/b", "r")),
            ("--device /dev/a:rw", device("/dev/a", "/dev/a", "rw")),
            ("--device /dev/a:/dev/b:mwr", device("/dev/a", "/dev/b", "mwr")),
        ];
        for (args, expected) in cases {
            assert_eq!(parse(args).devices, [expected], "{args}");
        }
        assert_eq!(DeviceSpec::default().permissions, "rwm");
        invalid_value("--device dev/a", "host device must be an absolute path");
        invalid_value("--device /dev/a:dev/b", "container device must be an absolute path");
        invalid_value("--device /dev/a:/dev/b:rx", "letters from \"rwm\"");
        invalid_value("--device /dev/a:/dev/b:rr", "each at most once");
        invalid_value("--device /dev/a:/dev/b:", "letters from \"rwm\"");
        invalid_value("--device /a:/b:r:x", "too many ':'");
    }

    #[test]
    fn labels() {
        let options = parse("-l a=1 --label b --label=c=x=y -lz=0 -l a=2");
        let expected: BTreeMap<String, String> =
            [("a", "2"), ("b", ""), ("c", "x=y"), ("z", "0")].into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        assert_eq!(options.labels, expected);
        invalid_value("-l =x", "label key before '=' is empty");
        // Only berth's own prefix is reserved.
        assert!(parse("-l berthx=1 -l my.berth.app=1").labels.contains_key("berthx"));
    }

    #[test]
    fn reserved_labels_are_refused() {
        for args in ["-l berth.app=evil", "--label berth.spec-hash", "--label=berth.=1"] {
            let e = fail(args);
            assert!(matches!(e, RunArgsError::ReservedLabel { .. }), "{args}: {e:?}");
            let message = e.to_string();
            assert!(message.contains("reserved") && message.contains("\"berth.\""), "{message}");
        }
        assert_eq!(fail("-l berth.app=x"), RunArgsError::ReservedLabel { key: "berth.app".into() });
    }

    #[test]
    fn cpus() {
        for (text, expected) in [("0.5", 0.5), ("2", 2.0), (".25", 0.25), ("3.", 3.0), ("0.000000001", 1e-9)] {
            assert_eq!(parse(&format!("--cpus {text}")).cpus, Some(expected), "{text}");
        }
        invalid_value("--cpus 0", "greater than 0");
        invalid_value("--cpus 0.0", "greater than 0");
        invalid_value("--cpus=-1", "decimal number");
        for bad in ["abc", "inf", "NaN", "1e3", "+1", ".", "1.2.3", "''", "1,5"] {
            invalid_value(&format!("--cpus {bad}"), "decimal number");
        }
        invalid_value("--cpus 0.0000000001", "at most 9 decimal places");
        invalid_value(&format!("--cpus {}", "9".repeat(400)), "too large");
    }

    #[test]
    fn memory() {
        assert_eq!(parse("-m 512m").memory, Some(512 << 20));
        assert_eq!(parse("--memory=1g").memory, Some(1 << 30));
        assert_eq!(parse("-m1.5g").memory, Some(3 << 29));
        assert_eq!(parse("-m 6m").memory, Some(MIN_MEMORY));
        invalid_value("-m 5m", "smallest memory limit is 6m");
        invalid_value("-m 1024", "smallest memory limit is 6m");
        invalid_value("-m lots", "not a size");
    }

    #[test]
    fn nothing_is_mounted_over_the_private_directory() {
        for args in ["-v /x:/tpc", "-v /x:/tpc/", "-v vol:/tpc/hook", "--tmpfs /tpc", "--tmpfs /tpc/backup:size=1m"] {
            let error = parse_run_args(args).unwrap_err().to_string();
            assert!(error.contains("/tpc"), "{args}: {error}");
        }
        assert!(parse_run_args("-v /x:/tpcx --tmpfs /tpc2").is_ok());
    }

    #[test]
    fn environment_values_are_hidden_when_shown() {
        assert_eq!(redact_env("-e DB_PASSWORD=s3cret -p 80:80"), "-e DB_PASSWORD=… -p 80:80");
        assert_eq!(redact_env("--env=A=1 --env B=two -eC=3"), "--env=A=… --env B=… -eC=…");
        assert_eq!(redact_env("-e 'A=with space'"), "-e A=…");
        assert!(!redact_env("-e TOKEN=\"x y\"").contains('x'));
    }

    #[test]
    fn tmpfs_hosts_dns_shm() {
        let options = parse(
            "--tmpfs /run --tmpfs /tmp:size=64m,mode=1777 --add-host db:10.0.0.1 --add-host=v6:::1 \
             --add-host gw=host-gateway --add-host x=[::2] --dns 1.1.1.1 --dns 2001:4860:0:0::8888 --shm-size 64m",
        );
        assert_eq!(options.tmpfs, ["/run", "/tmp:size=64m,mode=1777"]);
        assert_eq!(options.add_hosts, ["db:10.0.0.1", "v6:::1", "gw:host-gateway", "x:::2"]);
        assert_eq!(options.dns, ["1.1.1.1", "2001:4860::8888"]);
        assert_eq!(options.shm_size, Some(64 << 20));
        invalid_value("--tmpfs run", "tmpfs mount point must be an absolute path");
        invalid_value("--add-host db", "give host:ip");
        invalid_value("--add-host db:notip", "not an IP address");
        invalid_value("--add-host :1.2.3.4", "host name before");
        invalid_value("--dns dns.google", "IP address of a DNS server");
        invalid_value("--shm-size big", "not a size");
    }

    #[test]
    fn log_options() {
        let options = parse("--log-opt max-size=50m --log-opt=max-file=7");
        assert_eq!(options.log_max_size, Some(50 << 20));
        assert_eq!(options.log_max_files, Some(7));
        invalid_value("--log-opt max-size=big", "not a size");
        invalid_value("--log-opt max-size=10", "under 1k");
        invalid_value("--log-opt max-file=0", "1 to 100");
        invalid_value("--log-opt max-file=x", "1 to 100");
        invalid_value("--log-opt compress=true", "max-size=SIZE and max-file=N");
        invalid_value("--log-opt max-size", "max-size=SIZE and max-file=N");
    }

    #[test]
    fn stop_signal_and_timeout() {
        for (text, expected) in [
            ("SIGINT", "SIGINT"),
            ("term", "TERM"),
            ("sigusr1", "SIGUSR1"),
            ("9", "9"),
            ("SIGRTMIN+3", "SIGRTMIN+3"),
            ("RTMAX-1", "RTMAX-1"),
        ] {
            assert_eq!(parse(&format!("--stop-signal {text}")).stop_signal.as_deref(), Some(expected));
        }
        for bad in ["SIGFOO", "0", "65", "SIG", "RTMIN+16", "RTMAX-0", "''", "-9"] {
            invalid_value(&format!("--stop-signal={bad}"), "signal name such as SIGTERM");
        }
        assert_eq!(parse("--stop-timeout 30").stop_timeout, Some(30));
        assert_eq!(parse("--stop-timeout -1").stop_timeout, Some(-1));
        assert_eq!(parse("--stop-timeout=0").stop_timeout, Some(0));
        for bad in ["-2", "x", "1.5", "''", "99999999999999999999"] {
            invalid_value(&format!("--stop-timeout {bad}"), "whole seconds");
        }
    }

    #[test]
    fn unknown_options_list_the_supported_ones() {
        for (args, option) in
            [("--foo", "--foo"), ("--foo=1", "--foo"), ("-x", "-x"), ("-Zvalue", "-Z"), ("--ENV A=1", "--ENV")]
        {
            let e = fail(args);
            assert_eq!(e, RunArgsError::UnknownOption { option: option.into() }, "{args}");
            let message = e.to_string();
            assert!(message.contains(&format!("{option:?}")), "{message}");
            assert!(message.contains(&SUPPORTED_OPTIONS.join(", ")), "{message}");
        }
    }

    #[test]
    fn docker_only_options_say_why() {
        for (args, option, reason) in [
            ("-d", "-d", "background"),
            ("-it", "-i", "terminal"),
            ("--tty", "--tty", "terminal"),
            ("--rm", "--rm", "uninstalled"),
            ("--name web", "--name", "named after the app"),
            ("--restart=always", "--restart", "restarts apps itself"),
        ] {
            let e = fail(args);
            assert!(matches!(&e, RunArgsError::NotSupported { option: o, .. } if o == option), "{args}: {e:?}");
            let message = e.to_string();
            assert!(message.contains(reason) && message.contains("not accepted"), "{message}");
        }
    }

    #[test]
    fn missing_values() {
        for (args, option, hint) in [
            ("-e", "-e", "NAME=VALUE"),
            ("--env", "--env", "NAME=VALUE"),
            ("--init -p", "-p", "containerPort"),
            ("--env --privileged", "--env", "NAME=VALUE"),
            ("-v -e A=1", "-v", "/container/path"),
            ("--network --rm", "--network", "NETWORK"),
            ("--memory", "--memory", "512m"),
        ] {
            let e = fail(args);
            assert_eq!(e, RunArgsError::MissingValue { option: option.into() }, "{args}");
            let message = e.to_string();
            assert!(message.contains("needs a value") && message.contains(hint), "{message}");
        }
        // A word that is not one of our options is taken as the value, as
        // docker does, so negative numbers work.
        assert_eq!(parse("--stop-timeout -1").stop_timeout, Some(-1));
        assert_eq!(parse("--entrypoint --version").entrypoint, Some(vec!["--version".to_string()]));
    }

    #[test]
    fn positional_arguments_are_refused() {
        for word in ["nginx", "--", "-", "sh -c"] {
            let args = format!("-e A=1 {word}");
            let e = fail(&args);
            let first = word.split(' ').next().unwrap_or_default();
            assert_eq!(e, RunArgsError::UnexpectedArgument { argument: first.into() }, "{args}");
            let message = e.to_string();
            assert!(message.contains("options only") && message.contains("install source"), "{message}");
        }
    }

    #[test]
    fn nul_characters_are_refused() {
        invalid_value("-e A=\0", "NUL character");
        invalid_value("--label k=\0", "NUL character");
    }

    #[test]
    fn size_table() {
        let ok: &[(&str, u64)] = &[
            ("0", 0),
            ("4096", 4096),
            ("1b", 1),
            ("1k", 1 << 10),
            ("1K", 1 << 10),
            ("1kb", 1 << 10),
            ("1KiB", 1 << 10),
            ("1ki", 1 << 10),
            ("512m", 512 << 20),
            ("512 MB", 512 << 20),
            ("1g", 1 << 30),
            ("1.5g", 3 << 29),
            ("0.5k", 512),
            ("1.0001k", 1024),
            ("2t", 2 << 40),
            ("3p", 3 << 50),
            ("10ib", 10),
            ("007m", 7 << 20),
            ("8191p", 8191 << 50),
            ("9223372036854775807", i64::MAX as u64),
            // docker's pattern allows one space before the unit, and no unit.
            ("2 ", 2),
        ];
        for (text, expected) in ok {
            assert_eq!(parse_size(text), Ok(*expected), "{text}");
        }
        let not_a_size =
            ["", "m", "1x", "-1", "+1", "1.", ".5", "1.2.3", "1e3", "1mm", "1bb", "1  m", "1bi", "1 m ", "1,5g", "١"];
        for text in not_a_size {
            let error = parse_size(text).expect_err(text);
            assert!(error.contains("is not a size") && error.contains("512m"), "{text}: {error}");
        }
        for text in ["8192p", "9223372036854775808", "99999999999999999999999", "8192.0p", "9".repeat(400).as_str()] {
            let error = parse_size(text).expect_err(text);
            assert!(error.contains("too large"), "{text}: {error}");
        }
    }

    #[test]
    fn protocol_text() {
        assert_eq!(Protocol::Udp.to_string(), "udp");
        assert_eq!(Protocol::Sctp.to_string(), "sctp");
        assert_eq!(format!("{}", Protocol::default()), "tcp");
        assert_eq!(serde_json::to_string(&Protocol::Sctp).ok().as_deref(), Some("\"sctp\""));
    }

    #[test]
    fn serde_round_trip() {
        let options = parse(
            "-e A=1 -v /srv:/srv:ro -v /cache -p 127.0.0.1:8080:80 -p [::1]::53/udp --network host -h box -u 1:2 \
             -w /w --entrypoint /bin/sh --privileged --cap-add net_admin --cap-drop ALL --device /dev/null:/dev/x:r \
             -l k=v --cpus 1.25 -m 64m --read-only --tmpfs /run:size=1m --add-host db:10.0.0.1 --dns 1.1.1.1 \
             --shm-size 1m --init --stop-signal SIGINT --stop-timeout 3",
        );
        let json = serde_json::to_string(&options).expect("serialize");
        let back: RunOptions = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, options);
        assert!(json.contains("\"protocol\":\"udp\""), "{json}");
        let empty: RunOptions = serde_json::from_str("{}").expect("missing fields default");
        assert!(empty.is_empty());
    }

    #[test]
    fn supported_options_match_the_table() {
        let from_table: Vec<String> = OPTIONS
            .iter()
            .map(|def| match def.short {
                Some(short) => format!("-{short}, --{}", def.long),
                None => format!("--{}", def.long),
            })
            .collect();
        assert_eq!(from_table, SUPPORTED_OPTIONS);
        for (short, long, _) in NOT_SUPPORTED {
            assert!(OPTIONS.iter().all(|def| def.long != *long && (short.is_none() || def.short != *short)));
        }
    }

    /// A tiny deterministic generator, so the odd inputs are the same on
    /// every run without pulling in a crate.
    struct Lcg(u64);

    impl Lcg {
        fn next_u32(&mut self) -> u32 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as u32
        }

        fn below(&mut self, n: usize) -> usize {
            self.next_u32() as usize % n.max(1)
        }
    }

    #[test]
    fn odd_input_never_panics() {
        // Fragments of real options and of the characters the parsers split on.
        #[rustfmt::skip]
        let pieces = [
            "-e", "--env", "-v", "-p", "--publish=", "-h", "-u", "-w", "--entrypoint", "--privileged=",
            "--cap-add", "--device", "-l", "--cpus", "-m", "--tmpfs", "--add-host", "--dns", "--shm-size",
            "--stop-signal", "--stop-timeout", "--", "-", "=", ":", "::", "/", "[", "]", "[::1]", "-", "'",
            "\"", "\\", "#", " ", "\t", "\n", "\0", "é", "🦀", "0", "1", "65535", "65536", "8000-8002", ".",
            "k", "g", "ib", "ro", "rw", "rwm", "A=1", "berth.", "/dev/x", "SIG", "RTMIN+", "true", "-1",
            "9999999999999999999999",
        ];
        let mut rng = Lcg(0x5eed_ba5e);
        for _ in 0..20_000 {
            // Raw bytes, made into a string whatever they were.
            let bytes: Vec<u8> = (0..rng.below(40)).map(|_| rng.next_u32() as u8).collect();
            let _ = parse_run_args(&String::from_utf8_lossy(&bytes));
            let _ = parse_size(&String::from_utf8_lossy(&bytes));
            // Soup of meaningful fragments, mostly space-separated, to get
            // past the first checks into the value handlers.
            let soup: String = (0..rng.below(12))
                .map(|_| {
                    let piece = pieces[rng.below(pieces.len())];
                    let separator = [" ", " ", " ", "", "="][rng.below(5)];
                    format!("{piece}{separator}")
                })
                .collect();
            let _ = parse_size(&soup);
            if let Ok(options) = parse_run_args(&soup) {
                let json = serde_json::to_string(&options).expect("serialize");
                let back: RunOptions = serde_json::from_str(&json).expect("deserialize");
                assert_eq!(back, options, "{soup:?}");
            }
        }
    }

    #[test]
    fn the_engine_example_parses() {
        let options = parse(
            "-e A=1 -v /srv:/srv:ro -v /cache -p 127.0.0.1:8080:80 -p 53:53/udp --network host -h box -u 1:2 -w /w \
             --entrypoint /bin/sh --privileged --cap-add net_admin --cap-drop ALL --device /dev/null:/dev/x:r -l k=v \
             --read-only --tmpfs /run:size=1m --add-host db:10.0.0.1 --dns 1.1.1.1 --shm-size 1m --init \
             --stop-signal SIGINT --stop-timeout 3",
        );
        assert_eq!(options.ports.len(), 2);
        assert_eq!(options.cap_add, ["NET_ADMIN"]);
        assert_eq!(options.devices[0].container_path, "/dev/x");
        assert_eq!(options.stop_timeout, Some(3));
    }
}
