//! `berth`: runs the daemon (`berth daemon`) or talks to it. Under the name
//! `tpcm` it accepts the TPCM command line of SONiC (seed 003, "CLI"). Every
//! client verb is one request to the daemon's API; files named on the
//! command line are read here, with the user's permissions, and their
//! content is sent.

/// `eprintln!` that does not panic when stderr is a closed pipe
/// (`berth install … 2>&1 | head -1`): a message nobody can read is dropped
/// and the command goes on to its own end and exit code.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// A question on stderr, without a newline, flushed; never panics.
macro_rules! prompt {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stderr = std::io::stderr();
        let _ = write!(stderr, $($arg)*);
        let _ = stderr.flush();
    }};
}

mod args;
mod certs;
mod exit;
mod generate;
mod hosts;
mod logfile;
mod output;
mod password;
mod progress;
mod resources;
mod self_upgrade;
mod sources;
mod web;

use args::{Cli, Verb};
use berth_api::client::Client;
use berth_api::{AppView, InstallRequest, LoginRequest, SraExecRequest, SraRunRequest, SraTarget, UpgradeRequest};
use berth_core::ExitCode as Code;
use clap::{CommandFactory, FromArgMatches};
use exit::Failure;
use futures::StreamExt;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let invoked_as = std::env::args_os()
        .next()
        .and_then(|a| Path::new(&a).file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let tpcm = invoked_as == "tpcm";
    let command = if tpcm { Cli::command().name("tpcm").bin_name("tpcm") } else { Cli::command() };
    let cli = match command.try_get_matches().and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { Code::InvalidInput.code() } else { 0 });
        }
    };
    if tpcm && !cli.verb.is_tpcm() {
        note!("tpcm: supported operations are install, uninstall, upgrade and list");
        return ExitCode::from(Code::InvalidInput.code());
    }
    match cli.verb {
        Verb::Daemon(options) => run_daemon(options, cli.socket),
        Verb::Generate(what) => generate::run(what),
        verb => match remote_client(cli.host.as_deref(), cli.cert_path.as_deref(), &cli.tls_verify) {
            Ok(remote) => run_client(&cli.socket, remote, verb),
            Err(e) => {
                note!("berth: {e}");
                ExitCode::from(Code::InvalidInput.code())
            }
        },
    }
}

/// Log lines queued for the log file's writer thread at most.
const LOG_LINES_IN_FLIGHT: usize = 8192;

fn run_daemon(options: args::DaemonOptions, socket: std::path::PathBuf) -> ExitCode {
    let log_dir = options.log_dir.clone().unwrap_or_else(|| options.root.join("logs"));
    let config = match options.into_config(socket) {
        Ok(config) => config,
        Err(e) => {
            note!("berth daemon: {e}");
            return ExitCode::from(Code::Config.code());
        }
    };
    let logs = &config.settings.logs;
    let file = match logfile::RotatingFile::open(&log_dir, logs.daemon_max_bytes, logs.daemon_max_files) {
        Ok(file) => file,
        Err(e) => {
            note!("berth daemon: cannot write the log file in {}: {e}", log_dir.display());
            return ExitCode::from(Code::NotWritable.code());
        }
    };
    // tracing-appender's default queue is 128,000 lines, allocated and
    // touched up front: 4 MiB of resident memory for an idle daemon. 8,192
    // lines is a burst of a thousand installs' steps; past it a log call
    // waits for the writer rather than losing the line.
    let (file, _flush_at_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_LINES_IN_FLIGHT)
        .lossy(false)
        .finish(file);
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
        tracing_subscriber::registry()
            .with(filter)
            // Colours only for a person at a terminal, not into files or the journal.
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .with(tracing_subscriber::fmt::layer().with_writer(file).with_ansi(false))
            .init();
    }
    berth_daemon::memory::limit_arenas();
    // At most 64 blocking threads (tokio's default is 512): a burst of file
    // and database work at 1,000 apps otherwise leaves hundreds of idle
    // threads, each with its stack and malloc arena, in the daemon's memory.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).max_blocking_threads(64).enable_all().build();
    let result = match runtime {
        Ok(runtime) => {
            let result = runtime.block_on(berth_daemon::run(config));
            // Blocking work that does not end (a stalled download's reader) must not hold the exit.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            result
        }
        Err(e) => {
            note!("berth daemon: cannot start the async runtime: {e}");
            return ExitCode::from(Code::Internal.code());
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            note!("berth daemon: {e}");
            ExitCode::from(e.exit_code().code())
        }
    }
}

/// The remote daemon of `--host` (with the bundle of `--cert-path`, default
/// `~/.berth`), or `None` for the socket.
fn remote_client(
    host: Option<&str>,
    cert_path: Option<&Path>,
    tls_verify: &str,
) -> Result<Option<berth_api::client::Remote>, String> {
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    if tls_verify != "1" {
        return Err(format!(
            "BERTH_TLS_VERIFY={tls_verify:?}: the remote API is mutual TLS only; the daemon's certificate is always verified"
        ));
    }
    let dir = match cert_path {
        Some(dir) => dir.to_owned(),
        None => std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".berth"),
    };
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .map_err(|e| format!("cannot read {} (set --cert-path or BERTH_CERT_PATH): {e}", dir.join(name).display()))
    };
    berth_api::client::Remote::new(host, &read("ca.pem")?, &read("cert.pem")?, &read("key.pem")?)
        .map(Some)
        .map_err(|e| format!("the client bundle in {}: {e}", dir.display()))
}

fn run_client(socket: &Path, remote: Option<berth_api::client::Remote>, verb: Verb) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            note!("berth: cannot start the async runtime: {e}");
            return ExitCode::from(Code::Internal.code());
        }
    };
    let client = match remote {
        Some(remote) => Client::remote(remote),
        None => Client::new(socket),
    };
    match runtime.block_on(dispatch(&client, verb)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) if failure.is_quiet() => ExitCode::from(failure.code()),
        Err(failure) => {
            let _ = writeln!(std::io::stderr(), "berth: error: {}", output::printable(&failure.to_string()));
            ExitCode::from(failure.code())
        }
    }
}

/// Writes to stdout; a closed pipe ends the command quietly.
fn out(bytes: &[u8]) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes).and_then(|()| stdout.flush()).map_err(Failure::output)
}

fn say(line: &str) -> Result<(), Failure> {
    out(format!("{line}\n").as_bytes())
}

async fn dispatch(client: &Client, verb: Verb) -> Result<(), Failure> {
    match verb {
        Verb::Daemon(_) | Verb::Generate(_) => unreachable!("handled in main"),
        Verb::Install(install) => {
            let prepared = sources::prepare(&install.source, &install.from).await?;
            confirm(install.yes, &format!("Install {} from {}?", install.name, prepared.shown))?;
            let request = InstallRequest {
                name: install.name.clone(),
                source: prepared.source,
                args: install.from.args.clone().unwrap_or_default(),
                cpus: install.from.cpus,
                memory: install.from.memory.clone(),
                sha256: install.from.sha256.clone(),
            };
            let mut bar = progress::Reporter::new();
            let app = cancellable(
                client,
                &install.name,
                client.install(&request, prepared.archive, |event| bar.event(event)),
            )
            .await;
            bar.finish();
            output::app(&app?, install.output)?;
        }
        Verb::List(read) => {
            if read.output.is_json() {
                let raw = client.list_raw(read.show_secrets).await?;
                output::raw_json(&raw)?;
            } else {
                output::apps(&client.list(read.show_secrets).await?)?;
            }
        }
        Verb::Show(target) => output::app(&client.show(&target.name, target.show_secrets).await?, target.output)?,
        Verb::Start(target) => output::app(&client.lifecycle(&target.name, "start").await?, target.output)?,
        Verb::Stop(target) => output::app(&client.lifecycle(&target.name, "stop").await?, target.output)?,
        Verb::Restart(target) => output::app(&client.lifecycle(&target.name, "restart").await?, target.output)?,
        Verb::Cancel(target) => {
            client.cancel(&target.name).await?;
            say(&format!("cancelling what runs on {}; it is undone", target.name))?;
        }
        Verb::Logs(logs) => {
            let mut stream = client.logs(&logs.name, logs.follow, logs.tail).await?;
            while let Some(chunk) = stream.next().await {
                out(&chunk?)?;
            }
        }
        Verb::Upgrade(upgrade) => {
            let prepared = sources::prepare(&upgrade.source, &upgrade.from).await?;
            confirm(upgrade.yes, &format!("Upgrade {} to {}?", upgrade.name, prepared.shown))?;
            let request = UpgradeRequest {
                source: prepared.source,
                args: upgrade.from.args.clone(),
                cpus: upgrade.from.cpus,
                memory: upgrade.from.memory.clone(),
                sha256: upgrade.from.sha256.clone(),
                skip_data: upgrade.skip_data,
            };
            let mut bar = progress::Reporter::new();
            let app = cancellable(
                client,
                &upgrade.name,
                client.upgrade(&upgrade.name, &request, prepared.archive, |event| bar.event(event)),
            )
            .await;
            bar.finish();
            output::app(&app?, upgrade.output)?;
        }
        Verb::Rollback(target) => {
            confirm(target.yes, &format!("Roll {} back to its previous version?", target.name))?;
            let mut bar = progress::Reporter::new();
            let app = cancellable(client, &target.name, client.rollback(&target.name, |event| bar.event(event))).await;
            bar.finish();
            output::app(&app?, target.output)?;
        }
        Verb::Sra(args::Sra::Load { file }) => {
            let (archive, _, origin) = sources::open_archive(&file).await?;
            let image = client.sra_load(archive, &origin).await?;
            say(&format!(
                "loaded SRA image {} ({}), com.vmware.srm.sra={}",
                image.repo_tags.join(", "),
                image.id,
                image.label
            ))?;
        }
        Verb::Sra(args::Sra::List(read)) => output::sra_images(&client.sra_list().await?, read.output)?,
        Verb::Sra(args::Sra::Remove { image, force }) => {
            let removed = client.sra_remove(&image, force).await?;
            let mut line =
                format!("removed SRA image {} and {} execution container(s)", removed.id, removed.containers);
            if removed.foreign_containers > 0 {
                line.push_str(&format!(
                    "; {} container(s) of another runner use it and were left (so is the image)",
                    removed.foreign_containers
                ));
            }
            say(&line)?;
        }
        Verb::Sra(args::Sra::Exec(exec)) => {
            let input = read_stdin_text(berth_api::routes::sra::MAX_COMMAND_BYTES).await?;
            let request = SraExecRequest { target: sra_target(exec.target)?, input };
            let mut bar = progress::Percent::new("SRA command");
            let result = client.sra_exec(&request, |p| bar.update(p)).await;
            bar.finish();
            let result = result?;
            out(result.stdout.as_bytes())?;
            let _ = std::io::stderr().write_all(result.stderr.as_bytes());
            if let Some(note) = &result.note {
                note!("berth: {note}");
            }
            if result.exit_code != 0 {
                return Err(Failure::Command(result.exit_code));
            }
        }
        Verb::Sra(args::Sra::Run(run)) => {
            let read_fragment = |path: &Option<std::path::PathBuf>| -> Result<Option<String>, Failure> {
                path.as_ref()
                    .map(|p| {
                        std::fs::read_to_string(p)
                            .map_err(|e| Failure::Input(format!("cannot read {}: {e}", p.display())))
                    })
                    .transpose()
            };
            let request = SraRunRequest {
                connections: read_fragment(&run.connections)?,
                parameters: read_fragment(&run.parameters)?,
                target: sra_target(run.target)?,
                command: run.command.clone(),
                log_level: run.log_level,
            };
            let mut bar = progress::Percent::new(&run.command);
            let result = client.sra_run(&request, |p| bar.update(p)).await;
            bar.finish();
            let result = result?;
            if run.read.output.is_json() {
                output::json(&result)?;
            } else if let Some(response) = &result.response {
                out(response.as_bytes())?;
            }
            let _ = std::io::stderr().write_all(result.stderr.as_bytes());
            // No response: what the SRA printed is all there is to go by.
            if result.response.is_none() && !run.read.output.is_json() {
                let _ = std::io::stderr().write_all(result.stdout.as_bytes());
            }
            if let Some(note) = &result.note {
                note!("berth: {note}");
            }
            if let Some(error) = &result.sra_error {
                return Err(Failure::SraReported(error.message.clone()));
            }
            if result.exit_code != 0 {
                return Err(Failure::Command(result.exit_code));
            }
        }
        Verb::Sra(args::Sra::Config(args::SraConfig::Download { image, output })) => {
            let archive = client.sra_config_download(&image).await?;
            if output == Path::new("-") {
                out(&archive)?;
            } else {
                // All there or not there.
                berth_fs::atomic_write(&output, &archive)
                    .map_err(|e| Failure::Output(std::io::Error::other(e.to_string())))?;
                say(&format!("wrote the configuration of {image} to {}", output.display()))?;
            }
        }
        Verb::Sra(args::Sra::Config(args::SraConfig::Upload { image, file })) => {
            let archive = if file == Path::new("-") {
                read_stdin(256 << 20).await?
            } else {
                std::fs::read(&file).map_err(|e| Failure::Input(format!("cannot read {}: {e}", file.display())))?
            };
            let state = client.sra_config_upload(&image, archive).await?;
            say(&format!("configuration of {image} replaced: digest {} ({} entries)", state.digest, state.entries))?;
        }
        Verb::Sra(args::Sra::Config(args::SraConfig::Copy { from, to })) => {
            let state = client.sra_config_copy(&from, &to).await?;
            if state.changed {
                say(&format!("configuration of {from} copied to {to}: digest {}", state.digest))?;
            } else {
                say(&format!(
                    "{from} and {to} are the same image: one configuration, nothing copied (digest {})",
                    state.digest
                ))?;
            }
        }
        Verb::Sra(args::Sra::Config(args::SraConfig::Reset { image })) => {
            let state = client.sra_config_reset(&image).await?;
            say(&format!("configuration of {image} reset to the image's own: digest {}", state.digest))?;
        }
        Verb::Login(login) => {
            let password = password::read(login.password_stdin)?;
            let request = LoginRequest { registry: login.registry.clone(), username: login.username, password };
            client.login(&request).await?;
            say(&format!("login for {} stored", login.registry))?;
        }
        Verb::Logout(registry) => {
            client.logout(&registry.registry).await?;
            say(&format!("login for {} removed", registry.registry))?;
        }
        Verb::Migrate(migrate) => {
            let (verb, read) = match migrate {
                args::Migrate::Export(read) => (Some("export"), read),
                args::Migrate::Import(read) => (Some("import"), read),
                args::Migrate::Status(read) => (None, read),
            };
            let status = client.migrate(verb).await?;
            output::migration(&status, read.output)?;
            if status.apps.iter().any(|a| a.outcome == berth_api::MigrationOutcome::Failed) {
                return Err(Failure::Migration("some apps failed; see the results above".into()));
            }
        }
        Verb::RunApp(target) => run_app(client, &target.name).await?,
        Verb::Resource(command) => resources::run(client, command).await?,
        Verb::Certs(command) => certs::run(client, command).await?,
        Verb::Host(command) => hosts::run(client, command).await?,
        Verb::Web(command) => web::run(client, command).await?,
        Verb::Events(options) => events(client, options).await?,
        Verb::SelfUpgrade { binary } => self_upgrade::run(client, &binary).await?,
        Verb::Info(read) => {
            let info = client.info().await?;
            if read.output.is_json() {
                output::json(&info)?;
            } else {
                say(&format!(
                    "berth {} (instance {}), root {}",
                    info.version,
                    info.instance,
                    output::printable(&info.root)
                ))?;
                let engine = info.engine_version.as_deref().unwrap_or("not reached yet");
                say(&format!("engine: {} ({engine})", output::printable(&info.engine_endpoint)))?;
                say(&format!("apps: {}, open operations: {}, ready: {}", info.apps, info.open_operations, info.ready))?;
                if let Some(degraded) = &info.degraded {
                    say(&format!("DEGRADED: {}", output::printable(degraded)))?;
                }
            }
        }
        Verb::Doctor(read) if read.rebuild => {
            let report = client.rebuild().await?;
            if read.output.is_json() {
                output::json(&report)?;
            } else {
                if report.items.is_empty() {
                    say("nothing to rebuild: the engine keeps no record of this instance's apps or resources")?;
                }
                for i in &report.items {
                    let shown = format!("{} {}", i.kind.replace('_', " "), output::printable(&i.name));
                    say(&format!("{:<9} {shown}: {}", i.outcome, output::printable(&i.message)))?;
                }
            }
            if report.items.iter().any(|i| i.outcome == "skipped") {
                return Err(Failure::Doctor(Code::Internal));
            }
        }
        Verb::Doctor(read) => {
            let report = client.doctor().await?;
            if read.output.is_json() {
                output::json(&report)?;
            } else {
                for c in &report.checks {
                    say(&format!("{:<8} {:<13} {}", c.status, c.name, output::printable(&c.message)))?;
                }
            }
            // The exit code of the gravest problem's class (documented in the README).
            let class = |name: &str| match name {
                "database" => Code::CorruptState,
                "engine" => Code::EngineUnavailable,
                _ => Code::Internal,
            };
            let problems: Vec<Code> =
                report.checks.iter().filter(|c| c.status == "problem").map(|c| class(&c.name)).collect();
            if let Some(code) =
                [Code::CorruptState, Code::EngineUnavailable, Code::Internal].into_iter().find(|c| problems.contains(c))
            {
                return Err(Failure::Doctor(code));
            }
        }
        Verb::Version(read) => {
            // The daemon's answer is shown when it answers; this binary's always.
            let daemon = client.info().await.ok();
            let version = serde_json::json!({
                "version": berth_daemon::version::VERSION,
                "git": berth_daemon::version::GIT,
                "build": berth_daemon::version::BUILD,
                "schema": berth_daemon::version::SCHEMA,
                "daemon": daemon.as_ref().map(|d| serde_json::json!({"version": d.version, "root": d.root})),
            });
            if read.output.is_json() {
                output::json(&version)?;
            } else {
                say(&format!(
                    "berth {} ({}, build {}), state schema {}",
                    berth_daemon::version::VERSION,
                    berth_daemon::version::GIT,
                    berth_daemon::version::BUILD,
                    berth_daemon::version::SCHEMA
                ))?;
                match daemon {
                    Some(d) => say(&format!("daemon: berth {} (root {})", d.version, d.root))?,
                    None => say("daemon: not reachable")?,
                }
            }
        }
        Verb::Uninstall(uninstall) => {
            let what = if uninstall.keep_data { " (keeping its data)" } else { " and delete its data" };
            confirm(uninstall.yes, &format!("Uninstall {}{what}?", uninstall.name))?;
            let done = client.uninstall(&uninstall.name, uninstall.keep_data).await?;
            output::uninstalled(&done, uninstall.output)?;
        }
    }
    Ok(())
}

/// Runs a long operation; Ctrl-C asks the daemon to cancel it (it is
/// undone) and waits for that; a second Ctrl-C stops waiting.
async fn cancellable(
    client: &Client,
    name: &str,
    operation: impl std::future::Future<Output = Result<AppView, berth_api::client::ClientError>>,
) -> Result<AppView, Failure> {
    tokio::pin!(operation);
    tokio::select! {
        result = &mut operation => return result.map_err(Failure::from),
        _ = tokio::signal::ctrl_c() => {}
    }
    note!("berth: cancelling {name}; the daemon undoes what was done (Ctrl-C again to stop waiting)");
    if let Err(e) = client.cancel(name).await {
        note!("berth: could not ask for the cancellation: {e}");
    }
    tokio::select! {
        result = &mut operation => result.map_err(Failure::from),
        _ = tokio::signal::ctrl_c() => Err(Failure::Cancelled(format!("{name}: no longer waiting; the daemon finishes the undo"))),
    }
}

/// Starts the app and stays attached to its output until the container
/// stops, like `docker start -a`, so that systemd sees the app's real state.
async fn run_app(client: &Client, name: &str) -> Result<(), Failure> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(e), _) | (_, Err(e)) => return Err(Failure::output(e)),
    };
    client.lifecycle(name, "start").await?;
    let mut output = client.logs(name, true, Some(0)).await?;
    loop {
        tokio::select! {
            chunk = output.next() => match chunk {
                Some(chunk) => out(&chunk?)?,
                None => break,
            },
            _ = term.recv() => return client.lifecycle(name, "stop").await.map(drop).map_err(Failure::from),
            _ = int.recv() => return client.lifecycle(name, "stop").await.map(drop).map_err(Failure::from),
        }
    }
    // The output ended: the container stopped. Stopped on purpose, or not?
    let app = client.show(name, false).await?;
    if app.desired == berth_core::status::DesiredState::Stopped {
        Ok(())
    } else {
        Err(Failure::AppStopped(app.failure.unwrap_or_else(|| format!("{name} is {}", app.state))))
    }
}

/// Standard input, up to `limit` bytes (refused beyond, before anything is sent).
async fn read_stdin(limit: usize) -> Result<Vec<u8>, Failure> {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    tokio::io::stdin()
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| Failure::Input(format!("cannot read standard input: {e}")))?;
    if bytes.len() > limit {
        // Only `limit + 1` bytes were read: the rest is never buffered.
        return Err(Failure::TooLarge(format!(
            "standard input is larger than the {} MiB accepted (nothing was sent)",
            limit >> 20
        )));
    }
    Ok(bytes)
}

async fn read_stdin_text(limit: usize) -> Result<String, Failure> {
    let bytes = read_stdin(limit).await?;
    String::from_utf8(bytes).map_err(|_| Failure::Input("the command XML on standard input is not UTF-8".into()))
}

fn sra_target(target: args::SraTargetArgs) -> Result<SraTarget, Failure> {
    let absolute = |p: &Path| std::path::absolute(p).map(|p| p.to_string_lossy().into_owned()).map_err(Failure::output);
    Ok(SraTarget {
        image: target.image,
        tmp_dir: absolute(&target.tmp_dir)?,
        log_dir: absolute(&target.log_dir)?,
        user: target.user,
        env: target.env,
        timeout_secs: target.timeout,
    })
}

/// Without `-y`, asks on a terminal; refuses when nobody can answer.
fn confirm(yes: bool, question: &str) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::NotConfirmed("standard input is not a terminal; pass -y to confirm".into()));
    }
    prompt!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(Failure::output)?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(Failure::NotConfirmed("not confirmed".into())),
    }
}

/// `berth events`: the log, then (with -f) new events as they come.
async fn events(client: &Client, options: args::EventsOptions) -> Result<(), Failure> {
    let query = berth_api::EventsQuery {
        follow: options.follow,
        since: options.since,
        kind: options.kind,
        name: options.name,
        tail: options.tail,
    };
    let mut items = client.events(&query).await?;
    while let Some(item) = items.next().await {
        match (item?, options.output.is_json()) {
            (berth_api::EventItem::Event(e), true) => {
                let line = serde_json::to_string(&e).map_err(|e| Failure::Output(std::io::Error::other(e)))?;
                say(&line)?;
            }
            (berth_api::EventItem::Event(e), false) => {
                let at = jiff::Timestamp::from_millisecond(e.at).map(|t| t.to_string()).unwrap_or_default();
                say(&format!("{:>6}  {at}  {}  {}  {}", e.id, e.kind, output::printable(&e.name), e.data))?;
            }
            (berth_api::EventItem::Gap { after, next }, true) => {
                say(&serde_json::json!({ "gap": { "after": after, "next": next } }).to_string())?;
            }
            (berth_api::EventItem::Gap { after, next }, false) => {
                say(&format!("-- events {} to {} are no longer kept --", after + 1, next - 1))?;
            }
        }
    }
    Ok(())
}
