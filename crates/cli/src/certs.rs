//! `berth certs …`: the daemon's certificates and the clients of its
//! mutual-TLS listeners. The PEM files given to `install` are read here and
//! their content sent; the bundle of `client` is written here, 0600.

use crate::args::Certs;
use crate::exit::Failure;
use crate::output::{self, printable};
use crate::say;
use berth_api::client::Client;
use berth_api::{CertInfo, InstallCertRequest};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub async fn run(client: &Client, command: Certs) -> Result<(), Failure> {
    match command {
        Certs::Show(read) => {
            let view = client.certs_show().await?;
            if read.output.is_json() {
                return output::json(&view);
            }
            say(&format!("type: {}   directory: {}", view.kind, printable(&view.dir)))?;
            cert_lines("server", &view.server)?;
            cert_lines("CA", &view.ca)?;
            for listen in &view.listen {
                say(&format!("listening (mutual TLS): {listen}"))?;
            }
            say(&format!("clients: {}", view.clients.len()))
        }
        Certs::Install { cert, key, ca, read } => {
            let request =
                InstallCertRequest { cert_pem: read_pem(&cert)?, key_pem: read_pem(&key)?, ca_pem: read_pem(&ca)? };
            let view = client.certs_install(&request).await?;
            if read.output.is_json() {
                return output::json(&view);
            }
            say(&format!("installed a custom certificate for {}", printable(&view.server.subject)))?;
            say("the remote listeners serve it from now on")
        }
        Certs::Client { name, out } => {
            let bundle = client.certs_issue_client(&name).await?;
            let dir = out.unwrap_or_else(|| PathBuf::from(&name));
            save_bundle(&bundle, &dir)?;
            if bundle.listen.is_empty() {
                say("(the daemon has no --listen address yet: start it with --listen tcp://ADDR:PORT)")?;
            }
            Ok(())
        }
        Certs::Clients(read) => {
            let clients = client.certs_clients().await?;
            if read.output.is_json() {
                return output::json(&clients);
            }
            for c in &clients {
                let state = if c.revoked { "revoked" } else { "valid" };
                say(&format!("{}  {state}  until {}  {}", printable(&c.name), day(c.not_after), c.sha256))?;
            }
            Ok(())
        }
        Certs::Revoke { name } => {
            let revoked = client.certs_revoke(&name).await?;
            say(&format!("client {} is revoked: it is refused from its next connection on", printable(&revoked.name)))
        }
    }
}

/// Writes a client bundle into `dir` and prints the connection lines, as
/// vic-machine does.
pub fn save_bundle(bundle: &berth_api::ClientBundle, dir: &Path) -> Result<(), Failure> {
    write_bundle(dir, &[("ca.pem", &bundle.ca_pem), ("cert.pem", &bundle.cert_pem), ("key.pem", &bundle.key_pem)])?;
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    say(&format!("client certificate {} written to {}", printable(&bundle.client.name), dir.display()))?;
    for listen in &bundle.listen {
        say(&format!("BERTH_HOST={listen}"))?;
        say("BERTH_TLS_VERIFY=1")?;
        say(&format!("BERTH_CERT_PATH={}", dir.display()))?;
        say(&format!("berth --host {listen} --cert-path {} list", dir.display()))?;
    }
    Ok(())
}

pub fn day(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).map(|t| t.strftime("%Y-%m-%d").to_string()).unwrap_or_default()
}

fn cert_lines(what: &str, c: &CertInfo) -> Result<(), Failure> {
    say(&format!("{what}: {}", printable(&c.subject)))?;
    say(&format!("  issuer:  {}", printable(&c.issuer)))?;
    if !c.sans.is_empty() {
        say(&format!("  SANs:    {}", c.sans.join(", ")))?;
    }
    say(&format!("  valid:   {} to {} ({} days left)", day(c.not_before), day(c.not_after), c.days_left))?;
    say(&format!("  SHA-256: {}", c.sha256))?;
    say(&format!("  SHA-1:   {}", c.sha1))
}

fn read_pem(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::Input(format!("cannot read {}: {e}", path.display())))
}

/// The bundle's files, 0600, in a directory made 0700 if it is new.
fn write_bundle(dir: &Path, files: &[(&str, &str)]) -> Result<(), Failure> {
    let failed = |e: std::io::Error| Failure::Input(format!("cannot write the bundle into {}: {e}", dir.display()));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(failed)?;
    for (name, contents) in files {
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(failed)?;
        std::io::Write::write_all(&mut file, contents.as_bytes()).map_err(failed)?;
    }
    Ok(())
}
