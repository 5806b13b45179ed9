//! Install progress: a bar on a terminal, plain lines otherwise (logs, CI).

use berth_api::InstallEvent;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

pub struct Reporter {
    bar: Option<ProgressBar>,
    phase: String,
    last_percent: Option<u64>,
}

impl Reporter {
    pub fn new() -> Self {
        let bar = terminal_bar(0, "{msg:20} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}");
        Self { bar, phase: String::new(), last_percent: None }
    }

    pub fn event(&mut self, event: &InstallEvent) {
        let InstallEvent::Progress { phase, current, total } = event else {
            return;
        };
        match &self.bar {
            Some(bar) => {
                bar.set_message(phase.clone());
                if let Some(total) = total {
                    bar.set_length(*total);
                }
                bar.set_position(*current);
            }
            None => {
                // Plain output: a line per phase and per quarter of a transfer.
                let percent = total.filter(|t| *t > 0).map(|t| current * 100 / t / 25 * 25);
                if *phase != self.phase || percent != self.last_percent {
                    match percent {
                        Some(p) => note!("{phase}: {p}%"),
                        None => note!("{phase}"),
                    }
                    self.phase = phase.clone();
                    self.last_percent = percent;
                }
            }
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// SRA command progress (percentages from the status file): a bar on a
/// terminal, a line per update otherwise.
pub struct Percent {
    bar: Option<ProgressBar>,
    label: String,
}

impl Percent {
    pub fn new(label: &str) -> Self {
        let bar = terminal_bar(100, "{msg:20} [{bar:30}] {pos:>3}%");
        if let Some(bar) = &bar {
            bar.set_message(label.to_owned());
        }
        Self { bar, label: label.to_owned() }
    }

    pub fn update(&mut self, percent: Option<u8>) {
        match (&self.bar, percent) {
            (Some(bar), Some(p)) => bar.set_position(u64::from(p)),
            (Some(bar), None) => bar.tick(),
            (None, Some(p)) => note!("{}: {p}%", self.label),
            (None, None) => note!("{}: status updated", self.label),
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// A bar of `length` drawn with `template`, when stderr is a terminal.
fn terminal_bar(length: u64, template: &str) -> Option<ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(length);
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    })
}
