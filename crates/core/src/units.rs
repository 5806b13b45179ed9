//! systemd units: one `berth-app-<name>.service` per app, the two targets that
//! order them, and the daemon's own `berth.service`. Pure text rendering — the
//! daemon writes the files (atomically) and reloads systemd.
//!
//! The shape follows the appliance rules of the VIC design (seed 001):
//!
//! ```text
//! docker.service ◄── berth.service ◄── berth-ready.target ◄── berth-app-<name>.service ──► berth.target
//!   (engine)         (Type=notify)     (engine + daemon up)   Requires= + After=            WantedBy= / PartOf=
//! ```
//!
//! - every app unit has `Requires=` and `After=` on [`READY_TARGET`] and
//!   `WantedBy=` [`APPS_TARGET`] (seed 001's `vic-appliance-ready` and
//!   `vic-appliance.target`);
//! - its `ExecStart=` runs the app in the foreground (`berth run-app <name>`,
//!   attached to the container like `docker start -a`), so systemd sees the
//!   app's real state rather than that of a launcher script;
//! - [`READY_TARGET`] is reached once `berth.service` has reported READY=1,
//!   which it does only after `docker.service` is up and its API is served.
//!
//! Nothing a unit file would interpret is ever escaped: paths that contain
//! whitespace, quotes, a backslash, `%` (specifiers), `$` (variables) or control
//! characters are refused by [`UnitSettings::validate`] and
//! [`DaemonUnitSettings::validate`]. App names need no check: [`AppName`]'s
//! alphabet is plain.

use crate::AppName;
use std::fmt;

/// Reached when the engine and the berth daemon are up; every app unit
/// requires it and is ordered after it.
pub const READY_TARGET: &str = "berth-ready.target";
/// Groups the app units (their `WantedBy=`); wanted by `multi-user.target`.
pub const APPS_TARGET: &str = "berth.target";
/// The daemon's own unit.
pub const DAEMON_SERVICE: &str = "berth.service";
/// The engine's unit, which the daemon requires.
pub const ENGINE_SERVICE: &str = "docker.service";
/// Prefix of every app unit's name.
pub const APP_UNIT_PREFIX: &str = "berth-app-";
/// First line of every unit berth renders.
pub const HEADER: &str = "# Written by berth; changes are overwritten.";
/// `berth daemon`'s exit statuses that a restart cannot cure: damaged or
/// newer state (15), a directory it cannot write (16), unusable certificates
/// (17), no engine installed (18), a configuration error (78, sysexits'
/// `EX_CONFIG`). `berth.service` lists them in `RestartPreventExitStatus=`,
/// so systemd does not restart a daemon that cannot work until someone fixes
/// something.
pub const UNRECOVERABLE_EXITS: &str = "15 16 17 18 78";

/// The daemon's open files limit (`LimitNOFILE=`): systemd's default of
/// 1,024 is too few with 1,000 apps' logs followed and clients connected.
pub const OPEN_FILES_LIMIT: u32 = 65536;

/// Where the shipped units (`packaging/`) expect berth: the executable, the
/// state root and the API socket (also the CLI's defaults).
pub const PACKAGED_BINARY: &str = "/usr/bin/berth";
pub const PACKAGED_ROOT: &str = "/var/lib/berth";
pub const PACKAGED_SOCKET: &str = "/run/berth/berth.sock";

/// Why a path cannot go into a unit file as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathProblem {
    /// systemd runs units from `/`; a relative path would mean something else.
    NotAbsolute,
    /// systemd refuses an executable path that names a directory.
    TrailingSlash,
    /// A character systemd would split on, unquote, unescape or expand.
    Character(char),
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathProblem::NotAbsolute => f.write_str("it is not absolute"),
            PathProblem::TrailingSlash => f.write_str("it ends with '/'"),
            PathProblem::Character(c) => write!(f, "it contains {c:?}, which systemd would interpret"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("{what} {path:?} cannot be written into a systemd unit: {problem}")]
    UnsafePath { what: &'static str, path: String, problem: PathProblem },
}

/// What an app unit needs to know about berth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSettings {
    /// Absolute path of the berth executable.
    pub berth_binary: String,
    /// The daemon's API socket, passed to `run-app` as `--socket`.
    pub socket: String,
}

impl UnitSettings {
    /// Refuses paths that cannot be written into `ExecStart=` verbatim. Call it
    /// before rendering: the render functions do not check again.
    pub fn validate(&self) -> Result<(), UnitError> {
        check_path("berth executable", &self.berth_binary)?;
        check_path("API socket", &self.socket)
    }
}

/// What the daemon's own unit needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonUnitSettings {
    /// Absolute path of the berth executable.
    pub berth_binary: String,
    /// The daemon's state root (`--root`).
    pub root: String,
    /// The daemon's API socket (`--socket`).
    pub socket: String,
}

impl DaemonUnitSettings {
    /// The settings `packaging/berth.service` is rendered with.
    pub fn packaged() -> Self {
        Self { berth_binary: PACKAGED_BINARY.into(), root: PACKAGED_ROOT.into(), socket: PACKAGED_SOCKET.into() }
    }

    /// As [`UnitSettings::validate`].
    pub fn validate(&self) -> Result<(), UnitError> {
        check_path("berth executable", &self.berth_binary)?;
        check_path("state root", &self.root)?;
        check_path("API socket", &self.socket)
    }
}

fn check_path(what: &'static str, path: &str) -> Result<(), UnitError> {
    let refuse = |problem| Err(UnitError::UnsafePath { what, path: path.to_owned(), problem });
    if let Some(c) = path.chars().find(|c| is_interpreted(*c)) {
        return refuse(PathProblem::Character(c));
    }
    if !path.starts_with('/') {
        return refuse(PathProblem::NotAbsolute);
    }
    if path.len() > 1 && path.ends_with('/') {
        return refuse(PathProblem::TrailingSlash);
    }
    Ok(())
}

/// Characters that mean something on an `Exec*=` line: word splitting
/// (whitespace), quoting, C-style escapes, specifiers (`%`), variable expansion
/// (`$`), command separators (`;`) and anything that could end the line.
fn is_interpreted(c: char) -> bool {
    c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\' | '%' | '$' | ';')
}

/// `berth-app-<name>.service`.
///
/// No escaping (`systemd-escape`) is needed: an [`AppName`] is
/// `[a-z0-9][a-z0-9_.-]{1,62}`, all of which systemd allows in unit names
/// (it allows `[a-zA-Z0-9:_.\-\\@]`); there is no `/` to map to `-`, no `\`
/// or `@` (templates) and no `%` (specifiers) to misread. The longest name
/// gives 81 characters, far below systemd's 255. A `-` in the name only adds
/// prefix drop-in directories (`berth-app-.service.d/` applies to all apps).
pub fn app_unit_name(app: &AppName) -> String {
    format!("{APP_UNIT_PREFIX}{app}.service")
}

/// Where `systemctl enable` would put the app unit's `WantedBy=` symlink,
/// relative to the unit directory: `berth.target.wants/berth-app-<name>.service`
/// (pointing at `../berth-app-<name>.service`).
pub fn app_wants_link(app: &AppName) -> String {
    format!("{APPS_TARGET}.wants/{}", app_unit_name(app))
}

/// The unit that runs `app`. `settings` must have passed [`UnitSettings::validate`].
///
/// Stopping: there is no `ExecStop=`. `systemctl stop` (or shutdown) sends
/// SIGTERM to `run-app` only (`KillMode=mixed`); `run-app` then stops the
/// container through the daemon's API, so the stop goes through berth's own
/// path, and exits when the container has stopped. `TimeoutStopSec=` bounds
/// that, after which systemd kills `run-app`. An `ExecStop=berth stop <name>`
/// would run while `run-app` is still attached and race it; with none, a stop
/// (by the user or at shutdown) has a single path.
pub fn render_app_unit(app: &AppName, settings: &UnitSettings) -> String {
    debug_assert!(settings.validate().is_ok(), "render_app_unit with unvalidated settings");
    let unit = app_unit_name(app);
    let UnitSettings { berth_binary, socket } = settings;
    lines(&[
        HEADER,
        &format!("# Local changes belong in a drop-in: systemctl edit {unit}"),
        "",
        "[Unit]",
        &format!("Description=berth app {app}"),
        &format!("Requires={READY_TARGET}"),
        &format!("After={READY_TARGET}"),
        &format!("PartOf={APPS_TARGET}"),
        "",
        "[Service]",
        "Type=simple",
        "# In the foreground, attached to the container: this process lives as long as the app.",
        &format!("ExecStart={berth_binary} --socket {socket} run-app {app}"),
        "# No ExecStop=: on SIGTERM run-app stops the container through berth, then exits.",
        "Restart=on-failure",
        "RestartSec=2",
        "TimeoutStopSec=30",
        "KillMode=mixed",
        &format!("SyslogIdentifier={APP_UNIT_PREFIX}{app}"),
        "",
        "[Install]",
        &format!("WantedBy={APPS_TARGET}"),
    ])
}

/// `berth-ready.target`: the engine and the berth daemon are up.
/// `berth.service` is `Type=notify`, so `After=` waits for its READY=1.
///
/// `Requires=` propagates restarts: `systemctl restart berth.service`, and
/// also systemd's automatic restart of a crashed daemon (it queues a restart
/// job, which follows `Requires=` back), restarts this target and so every app
/// unit. After a crash the app units are stopped while the daemon is down, so
/// `run-app` must exit promptly on SIGTERM when the daemon cannot be reached,
/// leaving the container running for the restarted daemon to find.
pub fn render_ready_target() -> String {
    lines(&[
        HEADER,
        &format!("# Local changes belong in a drop-in: systemctl edit {READY_TARGET}"),
        "",
        "[Unit]",
        "Description=berth ready: container engine and berth daemon up",
        &format!("Requires={DAEMON_SERVICE}"),
        &format!("After={DAEMON_SERVICE}"),
    ])
}

/// `berth.target`: all apps. Enabled into `multi-user.target`, it starts every
/// enabled app unit at boot; stopping it stops them (`PartOf=`).
pub fn render_apps_target() -> String {
    lines(&[
        HEADER,
        &format!("# Local changes belong in a drop-in: systemctl edit {APPS_TARGET}"),
        "",
        "[Unit]",
        "Description=berth apps",
        &format!("Wants={READY_TARGET}"),
        &format!("After={READY_TARGET}"),
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ])
}

/// `berth.service`, the daemon. `packaging/berth.service` is this for
/// [`DaemonUnitSettings::packaged`]. `settings` must have passed
/// [`DaemonUnitSettings::validate`].
pub fn render_daemon_service(settings: &DaemonUnitSettings) -> String {
    debug_assert!(settings.validate().is_ok(), "render_daemon_service with unvalidated settings");
    let DaemonUnitSettings { berth_binary, root, socket } = settings;
    lines(&[
        HEADER,
        &format!("# Local changes belong in a drop-in: systemctl edit {DAEMON_SERVICE}"),
        "",
        "[Unit]",
        "Description=berth container manager",
        &format!("Requires={ENGINE_SERVICE}"),
        // The engine's socket, and the mounts its state directory is on (an
        // appliance's /storage/… disks), come first.
        &format!("After={ENGINE_SERVICE} docker.socket"),
        &format!("RequiresMountsFor={root}"),
        "",
        "[Service]",
        "# READY=1 (sd_notify) once the API socket is served.",
        "Type=notify",
        &format!("ExecStart={berth_binary} --socket {socket} daemon --root {root}"),
        "Restart=on-failure",
        "RestartSec=2",
        "# Damaged state, an unwritable directory, unusable certificates, no engine, a wrong",
        "# configuration (README, exit codes): restarting will not help.",
        &format!("RestartPreventExitStatus={UNRECOVERABLE_EXITS}"),
        "# Logs followed, uploads and API clients each hold a file; 1,024 is too few at 1,000 apps.",
        &format!("LimitNOFILE={OPEN_FILES_LIMIT}"),
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ])
}

/// `berth-host-<name>.service`: a container host's own daemon, where
/// systemd is PID 1. `name` is an app-style name (see [`app_unit_name`]).
pub fn host_unit_name(name: &AppName) -> String {
    host_unit_name_str(name.as_str())
}

/// [`host_unit_name`] of a name already checked.
pub fn host_unit_name_str(name: &str) -> String {
    format!("berth-host-{name}.service")
}

/// A container host's daemon: its command line (every word checked as
/// [`DaemonUnitSettings::validate`] does), independent of the daemon that
/// made it — it keeps running when that one stops.
pub fn render_host_service(name: &AppName, berth_binary: &str, args: &[String]) -> Result<String, UnitError> {
    check_path("berth executable", berth_binary)?;
    for arg in args {
        if let Some(c) = arg.chars().find(|c| is_interpreted(*c)) {
            return Err(UnitError::UnsafePath {
                what: "argument",
                path: arg.clone(),
                problem: PathProblem::Character(c),
            });
        }
    }
    let root = args.windows(2).find(|w| w[0] == "--root").map_or("/", |w| w[1].as_str());
    Ok(lines(&[
        HEADER,
        "",
        "[Unit]",
        &format!("Description=berth container host {name}"),
        // The engine may be another machine's (--docker-host): wanted, not required.
        &format!("Wants={ENGINE_SERVICE}"),
        &format!("After={ENGINE_SERVICE} docker.socket"),
        &format!("RequiresMountsFor={root}"),
        "",
        "[Service]",
        "Type=notify",
        &format!("ExecStart={berth_binary} {}", args.join(" ")),
        "Restart=on-failure",
        "RestartSec=2",
        &format!("RestartPreventExitStatus={UNRECOVERABLE_EXITS}"),
        &format!("LimitNOFILE={OPEN_FILES_LIMIT}"),
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]))
}

fn lines(lines: &[&str]) -> String {
    lines.iter().fold(String::new(), |text, line| text + line + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> AppName {
        AppName::parse(name).unwrap()
    }

    fn settings() -> UnitSettings {
        UnitSettings { berth_binary: PACKAGED_BINARY.into(), socket: PACKAGED_SOCKET.into() }
    }

    fn section<'a>(unit: &'a str, name: &str) -> Vec<&'a str> {
        let header = format!("[{name}]");
        unit.lines()
            .skip_while(|l| *l != header)
            .skip(1)
            .take_while(|l| !l.starts_with('['))
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    }

    #[test]
    fn unit_names() {
        assert_eq!(app_unit_name(&app("web")), "berth-app-web.service");
        assert_eq!(app_unit_name(&app("tpc_1.2-x")), "berth-app-tpc_1.2-x.service");
        assert_eq!(app_wants_link(&app("web")), "berth.target.wants/berth-app-web.service");
        let longest = app_unit_name(&app(&"a".repeat(crate::name::MAX_NAME_LEN)));
        assert!(longest.len() < 256, "{}", longest.len());
    }

    #[test]
    fn app_unit_has_the_appliance_rules() {
        let unit = render_app_unit(&app("web"), &settings());
        assert!(unit.starts_with("# Written by berth; changes are overwritten.\n"));
        assert_eq!(
            section(&unit, "Unit"),
            [
                "Description=berth app web",
                "Requires=berth-ready.target",
                "After=berth-ready.target",
                "PartOf=berth.target"
            ]
        );
        assert_eq!(
            section(&unit, "Service"),
            [
                "Type=simple",
                "ExecStart=/usr/bin/berth --socket /run/berth/berth.sock run-app web",
                "Restart=on-failure",
                "RestartSec=2",
                "TimeoutStopSec=30",
                "KillMode=mixed",
                "SyslogIdentifier=berth-app-web",
            ]
        );
        assert_eq!(section(&unit, "Install"), ["WantedBy=berth.target"]);
        assert!(!unit.lines().any(|l| l.starts_with("ExecStop")), "stopping goes through run-app's SIGTERM handling");
    }

    #[test]
    fn targets_and_daemon_unit() {
        assert_eq!(
            section(&render_ready_target(), "Unit"),
            [
                "Description=berth ready: container engine and berth daemon up",
                "Requires=berth.service",
                "After=berth.service"
            ]
        );
        let apps = render_apps_target();
        assert_eq!(section(&apps, "Install"), ["WantedBy=multi-user.target"]);
        let daemon = render_daemon_service(&DaemonUnitSettings {
            berth_binary: "/opt/berth/bin/berth".into(),
            root: "/data/berth".into(),
            socket: "/run/b.sock".into(),
        });
        assert_eq!(
            section(&daemon, "Unit")[1..],
            ["Requires=docker.service", "After=docker.service docker.socket", "RequiresMountsFor=/data/berth"]
        );
        assert_eq!(
            section(&daemon, "Service"),
            [
                "Type=notify",
                "ExecStart=/opt/berth/bin/berth --socket /run/b.sock daemon --root /data/berth",
                "Restart=on-failure",
                "RestartSec=2",
                "RestartPreventExitStatus=15 16 17 18 78",
                "LimitNOFILE=65536",
            ]
        );
        assert_eq!(section(&daemon, "Install"), ["WantedBy=multi-user.target"]);
        for unit in [render_ready_target(), apps, daemon] {
            assert!(unit.starts_with(HEADER), "{unit}");
            assert!(unit.ends_with('\n') && !unit.ends_with("\n\n"), "{unit:?}");
        }
    }

    #[test]
    fn rendering_is_deterministic() {
        let s = settings();
        assert_eq!(render_app_unit(&app("web"), &s), render_app_unit(&app("web"), &s.clone()));
        assert_ne!(render_app_unit(&app("web"), &s), render_app_unit(&app("db"), &s));
        assert_eq!(
            render_daemon_service(&DaemonUnitSettings::packaged()),
            render_daemon_service(&DaemonUnitSettings::packaged())
        );
        assert_eq!(render_ready_target(), render_ready_target());
        assert_eq!(render_apps_target(), render_apps_target());
    }

    #[test]
    fn packaging_files_are_what_berth_renders() {
        assert_eq!(
            include_str!("../../../packaging/berth.service"),
            render_daemon_service(&DaemonUnitSettings::packaged())
        );
        assert_eq!(include_str!("../../../packaging/berth-ready.target"), render_ready_target());
        assert_eq!(include_str!("../../../packaging/berth.target"), render_apps_target());
        assert!(DaemonUnitSettings::packaged().validate().is_ok());
    }

    #[test]
    fn unsafe_paths_are_refused_not_escaped() {
        assert_eq!(settings().validate(), Ok(()));
        let unsafe_binaries = [
            ("berth", PathProblem::NotAbsolute),
            ("", PathProblem::NotAbsolute),
            ("./berth", PathProblem::NotAbsolute),
            ("/usr/bin/", PathProblem::TrailingSlash),
            ("/opt/my berth/berth", PathProblem::Character(' ')),
            ("/opt/b\terth", PathProblem::Character('\t')),
            ("/opt/b\nExecStartPre=/bin/rm", PathProblem::Character('\n')),
            ("/opt/\"b\"", PathProblem::Character('"')),
            ("/opt/'b'", PathProblem::Character('\'')),
            ("/opt/b\\x20", PathProblem::Character('\\')),
            ("/opt/%h/berth", PathProblem::Character('%')),
            ("/opt/$HOME/berth", PathProblem::Character('$')),
            ("/opt/b;c", PathProblem::Character(';')),
            ("/opt/b\u{0}", PathProblem::Character('\u{0}')),
            ("/opt/b\u{a0}", PathProblem::Character('\u{a0}')),
        ];
        for (path, problem) in unsafe_binaries {
            let s = UnitSettings { berth_binary: path.into(), socket: PACKAGED_SOCKET.into() };
            assert_eq!(
                s.validate(),
                Err(UnitError::UnsafePath { what: "berth executable", path: path.into(), problem }),
                "{path:?}"
            );
        }
        let s = UnitSettings { berth_binary: PACKAGED_BINARY.into(), socket: "run/berth.sock".into() };
        let err = s.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "API socket \"run/berth.sock\" cannot be written into a systemd unit: it is not absolute"
        );
        let d = DaemonUnitSettings { root: "/var/lib/my berth".into(), ..DaemonUnitSettings::packaged() };
        assert!(matches!(d.validate(), Err(UnitError::UnsafePath { what: "state root", .. })));
        for ok in ["/", "/usr/local/bin/berth-0.1", "/opt/b_e.r+t=h@x:y,z/berth", "/run/berth/berth.sock"] {
            assert_eq!(check_path("x", ok), Ok(()), "{ok}");
        }
    }
}
