//! `berth`: runs the daemon (`berth daemon`) or talks to it. Under the name
//! `tpcm` it accepts the TPCM command line of SONiC (seed 003, "CLI").

mod args;
mod exit;
mod output;
mod progress;

use args::{Cli, Verb};
use berth_api::client::Client;
use berth_api::{InstallRequest, LoginRequest, SraExecRequest, SraRunRequest, SraTarget, SshSource, UpgradeRequest};
use clap::{CommandFactory, FromArgMatches};
use exit::Failure;
use futures::StreamExt;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
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
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    if tpcm && !cli.verb.is_tpcm() {
        eprintln!("tpcm: supported operations are install, uninstall, upgrade and list");
        return ExitCode::from(exit::USAGE);
    }
    match cli.verb {
        Verb::Daemon(options) => run_daemon(options, cli.socket),
        verb => run_client(&cli.socket, verb),
    }
}

fn run_daemon(options: args::DaemonOptions, socket: PathBuf) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not into files or the journal.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = match options.into_config(socket) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("berth daemon: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(berth_daemon::run(config)),
        Err(e) => {
            eprintln!("berth daemon: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth daemon: {e}");
            ExitCode::from(if e.is_configuration() { exit::CONFIG } else { 1 })
        }
    }
}

fn run_client(socket: &Path, verb: Verb) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("berth: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let client = Client::new(socket);
    match runtime.block_on(dispatch(&client, verb)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("berth: error: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

async fn dispatch(client: &Client, verb: Verb) -> Result<(), Failure> {
    match verb {
        Verb::Daemon(_) => unreachable!("handled in main"),
        Verb::Install(install) => {
            let source = source_of(&install.source, &install.from);
            confirm(install.yes, &format!("Install {} from {source}?", install.name))?;
            let fetched = Fetch::from(install.from)?;
            let request = InstallRequest {
                name: install.name,
                source,
                args: fetched.args.unwrap_or_default(),
                cpus: fetched.cpus,
                memory: fetched.memory,
                sha256: fetched.sha256,
                ca_file: fetched.ca_file,
                registry_auth: fetched.registry_auth,
                ssh: fetched.ssh,
            };
            let mut bar = progress::Reporter::new();
            let app = client.install(&request, |event| bar.event(event)).await;
            bar.finish();
            output::app(&app?, install.output)?;
        }
        Verb::List(read) => {
            if read.output.is_json() {
                let raw = client.list_raw().await?;
                output::raw_json(&raw)?;
            } else {
                output::apps(&client.list().await?)?;
            }
        }
        Verb::Show(target) => output::app(&client.show(&target.name).await?, target.output)?,
        Verb::Start(target) => output::app(&client.lifecycle(&target.name, "start").await?, target.output)?,
        Verb::Stop(target) => output::app(&client.lifecycle(&target.name, "stop").await?, target.output)?,
        Verb::Restart(target) => output::app(&client.lifecycle(&target.name, "restart").await?, target.output)?,
        Verb::Logs(logs) => {
            let mut stream = client.logs(&logs.name, logs.follow, logs.tail).await?;
            let mut stdout = std::io::stdout().lock();
            while let Some(chunk) = stream.next().await {
                stdout.write_all(&chunk?).map_err(Failure::output)?;
                stdout.flush().map_err(Failure::output)?;
            }
        }
        Verb::Upgrade(upgrade) => {
            let source = source_of(&upgrade.source, &upgrade.from);
            confirm(upgrade.yes, &format!("Upgrade {} to {source}?", upgrade.name))?;
            let fetched = Fetch::from(upgrade.from)?;
            let request = UpgradeRequest {
                source,
                args: fetched.args,
                cpus: fetched.cpus,
                memory: fetched.memory,
                sha256: fetched.sha256,
                ca_file: fetched.ca_file,
                registry_auth: fetched.registry_auth,
                ssh: fetched.ssh,
                skip_data: upgrade.skip_data,
            };
            let mut bar = progress::Reporter::new();
            let app = client.upgrade(&upgrade.name, &request, |event| bar.event(event)).await;
            bar.finish();
            output::app(&app?, upgrade.output)?;
        }
        Verb::Rollback(target) => {
            confirm(target.yes, &format!("Roll {} back to its previous version?", target.name))?;
            let mut bar = progress::Reporter::new();
            let app = client.rollback(&target.name, |event| bar.event(event)).await;
            bar.finish();
            output::app(&app?, target.output)?;
        }
        Verb::Sra(args::Sra::Load { file }) => {
            let path = absolute(&file).map_err(Failure::output)?;
            let image = client.sra_load(&path).await?;
            println!(
                "loaded SRA image {} ({}), com.vmware.srm.sra={}",
                image.repo_tags.join(", "),
                image.id,
                image.label
            );
        }
        Verb::Sra(args::Sra::List(read)) => output::sra_images(&client.sra_list().await?, read.output)?,
        Verb::Sra(args::Sra::Remove { image }) => {
            let removed = client.sra_remove(&image).await?;
            println!("removed SRA image {} and {} execution container(s)", removed.id, removed.containers);
        }
        Verb::Sra(args::Sra::Exec(exec)) => {
            let mut input = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut input).map_err(Failure::output)?;
            let request = SraExecRequest { target: sra_target(exec.target)?, input };
            let mut bar = progress::Percent::new("SRA command");
            let result = client.sra_exec(&request, |p| bar.update(p)).await;
            bar.finish();
            let result = result?;
            std::io::stdout().write_all(result.stdout.as_bytes()).map_err(Failure::output)?;
            std::io::stderr().write_all(result.stderr.as_bytes()).map_err(Failure::output)?;
            if result.exit_code != 0 {
                return Err(Failure::Command(result.exit_code));
            }
        }
        Verb::Sra(args::Sra::Run(run)) => {
            let read_fragment = |path: &Option<PathBuf>| -> Result<Option<String>, Failure> {
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
                std::io::stdout().write_all(response.as_bytes()).map_err(Failure::output)?;
            }
            std::io::stderr().write_all(result.stderr.as_bytes()).map_err(Failure::output)?;
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
                std::io::stdout().write_all(&archive).map_err(Failure::output)?;
            } else {
                // All there or not there: the daemon's own atomic writer.
                berth_daemon::files::atomic_write(&output, &archive)
                    .map_err(|e| Failure::output(std::io::Error::other(e.to_string())))?;
                println!("wrote the configuration of {image} to {}", output.display());
            }
        }
        Verb::Sra(args::Sra::Config(args::SraConfig::Upload { image, file })) => {
            let archive = if file == Path::new("-") {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
                    .map_err(|e| Failure::Input(format!("cannot read standard input: {e}")))?;
                bytes
            } else {
                std::fs::read(&file).map_err(|e| Failure::Input(format!("cannot read {}: {e}", file.display())))?
            };
            let state = client.sra_config_upload(&image, archive).await?;
            println!("configuration of {image} replaced: digest {} ({} entries)", state.digest, state.entries);
        }
        Verb::Sra(args::Sra::Config(args::SraConfig::Copy { from, to })) => {
            let state = client.sra_config_copy(&from, &to).await?;
            println!("configuration of {from} copied to {to}: digest {}", state.digest);
        }
        Verb::Sra(args::Sra::Config(args::SraConfig::Reset { image })) => {
            let state = client.sra_config_reset(&image).await?;
            println!("configuration of {image} reset to the image's own: digest {}", state.digest);
        }
        Verb::Login(login) => {
            let password = read_password(login.password_stdin)?;
            let request = LoginRequest { registry: login.registry.clone(), username: login.username, password };
            client.login(&request).await?;
            println!("login for {} stored", login.registry);
        }
        Verb::Logout(registry) => {
            client.logout(&registry.registry).await?;
            println!("login for {} removed", registry.registry);
        }
        Verb::Migrate(migrate) => {
            let (verb, read) = match migrate {
                args::Migrate::Export(read) => (Some("export"), read),
                args::Migrate::Import(read) => (Some("import"), read),
                args::Migrate::Status(read) => (None, read),
            };
            let status = client.migrate(verb).await?;
            output::migration(&status, read.output)?;
            if status.apps.iter().any(|a| a.result.starts_with("failed")) {
                return Err(Failure::AppStopped("some apps failed; see the results above".into()));
            }
        }
        Verb::RunApp(target) => run_app(client, &target.name).await?,
        Verb::Uninstall(uninstall) => {
            confirm(
                uninstall.yes,
                &format!(
                    "Uninstall {}{}?",
                    uninstall.name,
                    if uninstall.keep_data { " (keeping its data)" } else { " and delete its data" }
                ),
            )?;
            let done = client.uninstall(&uninstall.name, uninstall.keep_data).await?;
            output::uninstalled(&done, uninstall.output)?;
        }
    }
    Ok(())
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
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            chunk = output.next() => match chunk {
                Some(chunk) => {
                    stdout.write_all(&chunk?).map_err(Failure::output)?;
                    stdout.flush().map_err(Failure::output)?;
                }
                None => break,
            },
            _ = term.recv() => return client.lifecycle(name, "stop").await.map(drop).map_err(Failure::from),
            _ = int.recv() => return client.lifecycle(name, "stop").await.map(drop).map_err(Failure::from),
        }
    }
    // The output ended: the container stopped. Stopped on purpose, or not?
    let app = client.show(name).await?;
    if app.desired == "stopped" {
        Ok(())
    } else {
        Err(Failure::AppStopped(app.failure.unwrap_or_else(|| format!("{name} is {}", app.state))))
    }
}

/// The daemon reads archives itself, so a path is made absolute here, where
/// the user's working directory is known.
fn resolve_source(source: &str) -> String {
    if source.starts_with("http://") || source.starts_with("https://") {
        return source.to_owned();
    }
    let expanded = match source.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(rest)),
        None => None,
    };
    let path = expanded.unwrap_or_else(|| PathBuf::from(source));
    let is_path = berth_core::source::looks_like_path(source) || path.is_file();
    match (is_path, std::path::absolute(&path)) {
        (true, Ok(absolute)) => absolute.to_string_lossy().into_owned(),
        _ => source.to_owned(),
    }
}

fn sra_target(target: args::SraTargetArgs) -> Result<SraTarget, Failure> {
    Ok(SraTarget {
        image: target.image,
        tmp_dir: absolute(&target.tmp_dir).map_err(Failure::output)?,
        log_dir: absolute(&target.log_dir).map_err(Failure::output)?,
        user: target.user,
        env: target.env,
        timeout_secs: target.timeout,
    })
}

fn absolute(path: &Path) -> std::io::Result<String> {
    std::path::absolute(path).map(|p| p.to_string_lossy().into_owned())
}

/// A remote path (scp/sftp) is the server's; a local one is made absolute here.
fn source_of(source: &str, from: &args::SourceOptions) -> String {
    if from.protocol.is_some() {
        source.to_owned()
    } else {
        resolve_source(source)
    }
}

/// The source options as the API takes them.
struct Fetch {
    args: Option<String>,
    cpus: Option<f64>,
    memory: Option<String>,
    sha256: Option<String>,
    ca_file: Option<String>,
    registry_auth: Option<String>,
    ssh: SshSource,
}

impl Fetch {
    /// Paths are made absolute (the daemon has another working directory).
    /// TPCM's ssh options: without `--password` or `--identity`, the password
    /// is asked for on a terminal; without a terminal, the user's agent and
    /// keys are tried.
    fn from(from: args::SourceOptions) -> Result<Self, Failure> {
        let ca_file = from.ca_file.as_deref().map(absolute).transpose().map_err(Failure::output)?;
        let password = match (&from.protocol, from.password, &from.identity) {
            (Some(_), None, None) if std::io::stdin().is_terminal() => Some(read_password(false)?),
            (_, password, _) => password,
        };
        let identity = from.identity.as_deref().map(absolute).transpose().map_err(Failure::output)?;
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let user_ssh_dir = home.map(|home| home.join(".ssh").to_string_lossy().into_owned());
        let agent_socket = std::env::var_os("SSH_AUTH_SOCK")
            .and_then(|p| std::path::absolute(PathBuf::from(p)).ok())
            .map(|p| p.to_string_lossy().into_owned());
        let ssh = SshSource {
            protocol: from.protocol,
            server: from.server,
            username: from.username,
            password,
            identity,
            accept_host_key: from.accept_host_key,
            user_ssh_dir,
            agent_socket,
        };
        Ok(Fetch {
            args: from.args,
            cpus: from.cpus,
            memory: from.memory,
            sha256: from.sha256,
            ca_file,
            registry_auth: from.registry_auth,
            ssh,
        })
    }
}

/// A password from stdin (`--password-stdin`), or asked for on the terminal
/// with echo off. Never an argument: other processes can read those.
fn read_password(from_stdin: bool) -> Result<String, Failure> {
    let stdin = std::io::stdin();
    if !from_stdin && !stdin.is_terminal() {
        return Err(Failure::NotConfirmed("no terminal to ask for the password on; use --password-stdin".into()));
    }
    if !from_stdin {
        eprint!("Password: ");
        let _ = std::io::stderr().flush();
    }
    let echo = (!from_stdin).then(EchoOff::new).flatten();
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    drop(echo);
    if !from_stdin {
        eprintln!();
    }
    read.map_err(Failure::output)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(Failure::NotConfirmed("empty password".into()));
    }
    Ok(password)
}

/// Terminal echo off while it lives.
struct EchoOff(libc::termios);

impl EchoOff {
    fn new() -> Option<Self> {
        // SAFETY: tcgetattr/tcsetattr on stdin with a termios we own.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
                return None;
            }
            let mut quiet = saved;
            quiet.c_lflag &= !libc::ECHO;
            (libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &quiet) == 0).then_some(EchoOff(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings saved in `new`.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.0);
        }
    }
}

/// Without `-y`, asks on a terminal; refuses when nobody can answer.
fn confirm(yes: bool, question: &str) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::NotConfirmed("standard input is not a terminal; pass -y to confirm".into()));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(Failure::output)?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(Failure::NotConfirmed("not confirmed".into())),
    }
}
