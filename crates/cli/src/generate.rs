//! `berth generate …` (hidden): what a distribution package ships beside the
//! binary — shell completions (clap_complete) and manual pages (clap_mangen) —
//! made from the very command line this binary parses, so they cannot drift
//! from it. `scripts/package-deb.sh` runs it. The systemd units need no verb:
//! `packaging/*.service|target` are what `berth_core::units` renders (a unit
//! test keeps them so).

use crate::args::Cli;
use clap::{CommandFactory, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum Generate {
    /// Print the completion script of a shell (bash, zsh, fish, …) for `berth`.
    Completions { shell: clap_complete::Shell },
    /// Write the manual pages into DIR: berth.1 and one per subcommand (berth-install.1, …).
    Man { dir: PathBuf },
}

pub fn run(what: Generate) -> ExitCode {
    let done = match what {
        Generate::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut completed_command(), "berth", &mut script);
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&script).and_then(|()| stdout.flush()) {
                // A closed pipe ends the command quietly, as it does every verb.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return failed(),
                written => written.map_err(|e| format!("standard output: {e}")),
            }
        }
        Generate::Man { dir } => man_pages(&dir),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            note!("berth generate: {e}");
            failed()
        }
    }
}

fn failed() -> ExitCode {
    ExitCode::from(berth_core::ExitCode::Internal.code())
}

/// The command line as completions offer it: without hidden verbs, which
/// clap_complete would offer too (clap-rs/clap#1335). `clap::Command` cannot
/// drop a subcommand, so the root is put together again from `Cli`'s own
/// arguments and its visible subcommands; nothing of it is restated here.
fn completed_command() -> clap::Command {
    let cli = Cli::command();
    clap::Command::new("berth")
        .version(env!("CARGO_PKG_VERSION"))
        .args(cli.get_arguments().cloned())
        .subcommands(cli.get_subcommands().filter(|verb| !verb.is_hide_set()).cloned())
}

fn man_pages(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Hidden verbs (this one) get no page.
    clap_mangen::generate_to(Cli::command(), dir)
        .map_err(|e| format!("writing manual pages into {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `packaging/berth.toml`, as the package installs it as /etc/berth/berth.toml.
    const PACKAGED: &str = include_str!("../../../packaging/berth.toml");

    /// The file with every setting line (`#key = value`, `#[section]`; no
    /// space after the `#`) made live. Explanations (`# …`) stay comments.
    fn uncommented() -> String {
        PACKAGED
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase() || c == '[') => rest,
                _ => line,
            })
            .fold(String::new(), |text, line| text + line + "\n")
    }

    fn load(text: &str) -> berth_daemon::Settings {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, text).unwrap();
        berth_daemon::Settings::load(&path, true).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn packaged_config_parses_and_states_the_defaults() {
        let defaults = berth_daemon::Settings::default();
        assert_eq!(load(PACKAGED), defaults, "as shipped, everything commented: the defaults");
        let live = uncommented();
        assert_ne!(live, PACKAGED, "the setting lines are commented as `#key = value`");
        assert_eq!(load(&live), defaults, "every value written in the file is the default:\n{live}");
        // Every field of the settings (as their Debug form names them) is in
        // the file, as a setting line or, where it has no default, an example.
        let shown = format!("{defaults:?}");
        let fields = shown.split([' ', '{', '(']).filter_map(|word| word.strip_suffix(':'));
        for field in fields {
            let mentioned = PACKAGED.lines().any(|line| {
                let line = line.trim_start_matches(['#', ' ']);
                line.starts_with(&format!("{field} =")) || line.starts_with('[') && line.contains(field)
            });
            assert!(mentioned, "packaging/berth.toml does not mention {field}");
        }
    }

    #[test]
    fn completions_and_man_pages_cover_the_verbs() {
        let mut script = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut completed_command(), "berth", &mut script);
        let script = String::from_utf8(script).unwrap();
        let verbs = script.lines().find(|l| l.trim_start().starts_with("opts=\"-h -V --socket")).unwrap_or_default();
        assert!(verbs.contains(" install ") && verbs.contains(" self-upgrade "), "{script}");
        assert!(!script.contains("generate"), "the hidden verb is not offered");
        assert!(script.contains("berth__subcmd__install)"), "{script}");
        let dir = tempfile::tempdir().unwrap();
        man_pages(dir.path()).unwrap();
        for page in ["berth.1", "berth-install.1", "berth-sra-config-download.1"] {
            let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
            assert!(text.contains(".TH ") && text.contains(".SH NAME"), "{page}: {text}");
        }
        assert!(!dir.path().join("berth-generate.1").exists(), "the hidden verb has no page");
    }
}
