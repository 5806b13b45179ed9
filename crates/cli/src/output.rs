//! What the CLI prints: tables for people, JSON for programs.

use crate::args::Output;
use crate::exit::Failure;
use berth_api::{AppView, MigrationOutcome, MigrationStatus, SraImage, Uninstalled};
use berth_core::status::AppState;
use std::io::Write;

pub fn raw_json(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).and_then(|_| out.write_all(b"\n")).map_err(Failure::output)
}

pub fn json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure::Output(std::io::Error::other(e)))?;
    raw_json(text.as_bytes())
}

pub fn apps(apps: &[AppView]) -> Result<(), Failure> {
    let header =
        ["NAME", "SOURCE", "IMAGE", "IMAGE ID", "STATE", "HEALTH", "UPTIME", "CPUS", "MEMORY", "PREVIOUS", "NOTE"];
    let rows: Vec<[String; 11]> = apps
        .iter()
        .map(|a| {
            [
                a.name.clone(),
                a.source.clone(),
                a.image.clone(),
                short_id(&a.image_id),
                a.state.to_string(),
                a.health.to_string(),
                a.uptime_seconds.map_or_else(|| "-".into(), duration),
                format!("{:.2}", a.cpus),
                a.memory.map_or_else(|| "-".into(), size),
                a.previous_image.clone().unwrap_or_else(|| "-".into()),
                a.failure.clone().filter(|_| a.state != AppState::Running).map(|f| printable(&f)).unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let mut line = |cells: &[String]| {
        let text: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        writeln!(out, "{}", text.join("  ").trim_end())
    };
    line(&header.map(String::from)).map_err(Failure::output)?;
    for row in &rows {
        line(row).map_err(Failure::output)?;
    }
    Ok(())
}

pub fn app(app: &AppView, output: Output) -> Result<(), Failure> {
    if output.is_json() {
        return json(app);
    }
    let fields = [
        ("name", app.name.clone()),
        ("image", app.image.clone()),
        ("image id", app.image_id.clone()),
        ("source", app.source.clone()),
        ("state", app.state.to_string()),
        ("desired", app.desired.as_str().to_owned()),
        ("health", app.health.to_string()),
        ("uptime", app.uptime_seconds.map_or_else(|| "-".into(), duration)),
        ("restarts", app.restarts.to_string()),
        ("failure", app.failure.as_deref().map_or_else(|| "-".into(), printable)),
        ("cpus", format!("{:.2}", app.cpus)),
        ("memory", app.memory.map_or_else(|| "-".into(), size)),
        ("args", if app.args.is_empty() { "-".into() } else { printable(&app.args) }),
        ("container", app.container_id.as_deref().map_or_else(|| "-".into(), short_id)),
        ("private dir", app.private_dir.clone()),
        ("previous", app.previous_image.clone().unwrap_or_else(|| "-".into())),
    ];
    let mut out = std::io::stdout().lock();
    for (key, value) in fields {
        writeln!(out, "{:<12} {value}", format!("{key}:")).map_err(Failure::output)?;
    }
    Ok(())
}

pub fn uninstalled(done: &Uninstalled, output: Output) -> Result<(), Failure> {
    if output.is_json() {
        return json(done);
    }
    let data = if done.kept_data { "data kept" } else { "data removed" };
    let image = if done.removed_image { "image removed" } else { "image kept" };
    writeln!(std::io::stdout().lock(), "uninstalled {} ({data}, {image})", done.name).map_err(Failure::output)
}

pub fn sra_images(images: &[SraImage], output: Output) -> Result<(), Failure> {
    if output.is_json() {
        return json(&images);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<40}  {:<71}  {:<16}  {:<10}  CONFIG DIGEST", "IMAGE", "ID", "LABEL", "CONTAINERS")
        .map_err(Failure::output)?;
    for image in images {
        let names = if image.repo_tags.is_empty() { "-".to_owned() } else { image.repo_tags.join(",") };
        let digest = image.config_digest.as_deref().unwrap_or("-");
        let containers = match image.foreign_containers {
            0 => image.containers.to_string(),
            foreign => format!("{} (+{foreign} not berth's)", image.containers),
        };
        writeln!(out, "{names:<40}  {:<71}  {:<16}  {containers:<10}  {digest}", image.id, image.label)
            .map_err(Failure::output)?;
    }
    Ok(())
}

pub fn migration(status: &MigrationStatus, output: Output) -> Result<(), Failure> {
    if output.is_json() {
        return json(status);
    }
    let mut out = std::io::stdout().lock();
    let when = status.exported_at.map_or_else(|| "-".to_owned(), |t| t.to_string());
    let state = serde_json::to_value(status.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    writeln!(out, "migration: {state} (exported at {when}, in {})", status.directory).map_err(Failure::output)?;
    for app in &status.apps {
        let outcome = match app.outcome {
            MigrationOutcome::Exported => "exported".to_owned(),
            MigrationOutcome::Imported => "imported".to_owned(),
            MigrationOutcome::AlreadyPresent => "already present".to_owned(),
            MigrationOutcome::Failed => format!("failed: {}", app.reason.as_deref().map(printable).unwrap_or_default()),
        };
        writeln!(out, "  {:<24} {outcome}", app.name).map_err(Failure::output)?;
    }
    Ok(())
}

/// Text that came from an app or a user, made safe to print on a
/// terminal: control characters (escape sequences, raw newlines) are shown
/// escaped, not interpreted.
pub fn printable(text: &str) -> String {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() && !std::io::stderr().is_terminal() {
        return text.to_owned();
    }
    escape_controls(text)
}

pub fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => "\\n".to_owned(),
            '\t' => "\t".to_owned(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn short_id(id: &str) -> String {
    berth_core::spec::short_image_id(id).to_owned()
}

fn duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    UNITS
        .iter()
        .find(|(_, unit)| bytes >= *unit && bytes.is_multiple_of(*unit))
        .map_or_else(|| format!("{bytes}B"), |(name, unit)| format!("{}{name}", bytes / unit))
}
