//! `berth web …`: where the web UI is served and its administrator account.
//! The password goes to the daemon as content; only its hash is kept there.

use crate::args::Web;
use crate::exit::Failure;
use crate::output::{self, printable};
use crate::say;
use berth_api::client::Client;
use berth_api::{WebAdminRequest, WebStatus};

pub async fn run(client: &Client, command: Web) -> Result<(), Failure> {
    match command {
        Web::Status(read) => {
            let status = client.web_status().await?;
            if read.output.is_json() {
                return output::json(&status);
            }
            lines(&status)
        }
        Web::Passwd { user, password_stdin } => {
            let password = crate::password::read_new(password_stdin)?;
            let status = client.web_set_admin(&WebAdminRequest { user, password }).await?;
            say(&format!(
                "the web UI's administrator is {}; signed-in browsers were signed out",
                printable(status.admin.as_deref().unwrap_or_default())
            ))?;
            lines(&status)
        }
        Web::RemoveAdmin => {
            let status = client.web_remove_admin().await?;
            say("the web UI has no administrator account: only client certificates sign in")?;
            lines(&status)
        }
    }
}

fn lines(status: &WebStatus) -> Result<(), Failure> {
    match &status.admin {
        Some(user) => say(&format!("administrator: {}", printable(user)))?,
        None => say("administrator: none (set one with `berth web passwd`)")?,
    }
    if status.urls.is_empty() {
        say("served on: nothing (start the daemon with --web 127.0.0.1:PORT or --listen tcp://ADDR:PORT)")?;
    }
    for url in &status.urls {
        say(&format!("served on: {}", printable(url)))?;
    }
    if !status.ui_built {
        say("this berth was built without its front end: run scripts/build-web.sh and build berth again")?;
    }
    Ok(())
}
