//! What an app's task is asked to do. Its own module, so that the registry
//! (which holds the senders) and the task (which receives) do not depend on
//! each other.

use super::error::AppError;
use super::migration::MigratedApp;
use crate::intake::FetchRequest;
use berth_api::{AppView, InstallEvent, MigrationOutcome, Operation, Uninstalled, UpgradeRequest, Upload};
use berth_core::spec::AppSpec;
use tokio::sync::oneshot;

pub type Reply<T> = oneshot::Sender<Result<T, AppError>>;

/// Each app's task has a queue of these, whose first block (32 of them) is
/// allocated with the queue: the large fields are boxed, so that 1,000 apps
/// do not hold 7 KiB of queue each.
pub enum Command {
    Install {
        spec: Box<AppSpec>,
        fetch: Box<FetchRequest>,
        op: Operation<InstallEvent>,
        reply: Reply<AppView>,
    },
    Import {
        app: Box<MigratedApp>,
        reply: Reply<MigrationOutcome>,
    },
    Start(Reply<AppView>),
    Stop(Reply<AppView>),
    Restart(Reply<AppView>),
    Uninstall {
        keep_data: bool,
        reply: Reply<Uninstalled>,
    },
    Upgrade {
        request: Box<UpgradeRequest>,
        archive: Option<Upload>,
        op: Operation<InstallEvent>,
        reply: Reply<AppView>,
    },
    Rollback {
        op: Operation<InstallEvent>,
        reply: Reply<AppView>,
    },
    /// Something happened to the container: look at it.
    Observe,
    /// The engine (re)connected: make the container match the app.
    Reconcile,
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_command_is_small_enough_to_queue_for_every_app() {
        // 32 of them are allocated per app; see [`super::Command`].
        assert!(std::mem::size_of::<super::Command>() <= 64, "{}", std::mem::size_of::<super::Command>());
    }
}
