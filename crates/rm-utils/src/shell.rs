//! `/bin/bash` of the base image: a symlink to berth-rm that runs busybox's
//! ash.
//!
//! Resource scripts start with `#!/bin/bash`, but Debian's busybox-static has
//! no `bash` applet (it picks the applet from argv[0], so a `/bin/bash ->
//! busybox` symlink only prints "bash: applet not found"). When invoked as
//! `bash` (or `-bash`, a login shell) berth-rm therefore executes
//! `/bin/busybox` as `sh` (`-sh`) with the same arguments. Scripts get a
//! POSIX shell with ash's extensions (`[[ ]]`, `$(( ))`, `local`, `source`),
//! not bash: arrays and other bash-only features are not available.

use std::os::unix::process::CommandExt;
use std::process::Command;

pub const BUSYBOX: &str = "/bin/busybox";

pub fn run(login: bool, args: &[String]) -> i32 {
    let err = Command::new(BUSYBOX).arg0(if login { "-sh" } else { "sh" }).args(args).exec();
    eprintln!("bash: cannot run {BUSYBOX} sh: {err}");
    127
}
