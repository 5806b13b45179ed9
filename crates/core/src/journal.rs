//! The journal: every multi-step operation as a recorded plan.
//!
//! One mechanism for all of them. An entry has a kind, a subject (the app,
//! image or store it is about), the step it has reached, a context (what the
//! kind needs to know, e.g. the spec being installed) and two logs of
//! [`Effect`]s:
//!
//! - the **undo log**: before the operation changes anything, it appends the
//!   effect that takes the change back (and the step it is at), in one durable
//!   write. Failing, or after a crash before the commit, the undo log is
//!   replayed in reverse, each effect removed once done.
//! - the **forward log**: the commit writes, in the same transaction as the
//!   operation's change of state (an app becoming installed, upgraded), the
//!   work left to do afterwards (remove the old container, keep the snapshot,
//!   release an image). It runs in order, each effect removed once done, and
//!   is repeated after a crash until it is empty. Operations the user cannot
//!   take back once asked (uninstall, SRA image removal) commit when they
//!   begin: their whole plan is forward work.
//!
//! Every effect is idempotent, so replaying one that had already happened
//! before a crash is harmless. The state machine of an entry:
//!
//! ```text
//!            ┌──────── fail / crash ───────┐
//! running ───┤                             ▼
//!            └── commit ──► committed    rolling_back ──► rolled_back
//!                               │
//!                               └─ forward log empty ──► done
//! ```
//!
//! An effect that cannot be done yet because the engine is away keeps its
//! entry open (`rolling_back` or `committed`); the daemon retries open entries
//! when the engine answers again.

use crate::spec::AppSpec;
use crate::AppName;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use strum::{EnumString, IntoStaticStr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr, EnumString)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum OperationKind {
    Install,
    Upgrade,
    Rollback,
    Uninstall,
    MigrationExport,
    MigrationImport,
    SraLoad,
    SraRemove,
    /// A resource instance's transition or operation (Install … Uninstall).
    ResourceTransition,
    /// `berth host create`: a berth instance made, started and answering.
    HostCreate,
    /// `berth host delete`: everything the host made removed.
    HostDelete,
}

impl OperationKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }

    /// Operations that commit when they begin: the user asked for something
    /// to be gone, and every step left is safe to repeat, so a crash is
    /// finished rather than undone.
    pub fn commits_at_begin(self) -> bool {
        matches!(self, OperationKind::Uninstall | OperationKind::SraRemove | OperationKind::HostDelete)
    }
}

/// Where an entry stands (the `state` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr, EnumString)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Phase {
    /// Steps are running; the undo log says how to take them back.
    Running,
    /// The operation's change is made; the forward log is being worked off.
    Committed,
    /// The undo log is being replayed.
    RollingBack,
    Done,
    RolledBack,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }

    /// Open entries hold their subject: no other operation may start on it.
    pub fn is_open(self) -> bool {
        matches!(self, Phase::Running | Phase::Committed | Phase::RollingBack)
    }

    /// The phases an entry may move to from this one.
    pub fn may_become(self, next: Phase) -> bool {
        matches!(
            (self, next),
            (Phase::Running, Phase::Running)
                | (Phase::Running, Phase::Committed)
                | (Phase::Running, Phase::RollingBack)
                | (Phase::Committed, Phase::Committed)
                | (Phase::Committed, Phase::Done)
                | (Phase::RollingBack, Phase::RollingBack)
                | (Phase::RollingBack, Phase::RolledBack)
        )
    }
}

/// What recovery does with an entry it finds open at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Replay the undo log, then close the entry as rolled back.
    RollBack,
    /// Work off the forward log, then close the entry as done.
    RollForward,
}

/// The recovery rule: an operation cut short before its commit is undone (the
/// user's command failed, so leaving nothing is the honest result); one cut
/// short after it is finished.
pub fn recovery(phase: Phase) -> Option<Recovery> {
    match phase {
        Phase::Running | Phase::RollingBack => Some(Recovery::RollBack),
        Phase::Committed => Some(Recovery::RollForward),
        Phase::Done | Phase::RolledBack => None,
    }
}

/// What an entry is about. One open entry per subject at a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    App(AppName),
    /// The migration store (export and import of all apps).
    Migration,
    /// An SRA image, by its full id.
    SraImage(String),
    /// An SRA image archive being loaded (its image id is not known yet).
    SraLoad(String),
    /// A resource instance, by its id: one transition at a time.
    Resource(String),
    /// A container host this daemon created, by name.
    Host(String),
}

impl Subject {
    /// The stored form: `app:<name>`, `migration`, `sra:<image id>`.
    pub fn key(&self) -> String {
        match self {
            Subject::App(name) => format!("app:{name}"),
            Subject::Migration => "migration".into(),
            Subject::SraImage(id) => format!("sra:{id}"),
            Subject::SraLoad(token) => format!("sra-load:{token}"),
            Subject::Resource(id) => format!("resource:{id}"),
            Subject::Host(name) => format!("host:{name}"),
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        if key == "migration" {
            return Some(Subject::Migration);
        }
        if let Some(name) = key.strip_prefix("app:") {
            return AppName::parse(name).ok().map(Subject::App);
        }
        if let Some(id) = key.strip_prefix("resource:") {
            return Some(Subject::Resource(id.to_owned()));
        }
        if let Some(name) = key.strip_prefix("host:") {
            return Some(Subject::Host(name.to_owned()));
        }
        if let Some(token) = key.strip_prefix("sra-load:") {
            return Some(Subject::SraLoad(token.to_owned()));
        }
        key.strip_prefix("sra:").map(|id| Subject::SraImage(id.to_owned()))
    }

    pub fn app(&self) -> Option<&AppName> {
        match self {
            Subject::App(name) => Some(name),
            _ => None,
        }
    }
}

/// An image an effect releases: by id, or (for a registry pull, whose id is
/// only known once it is done) by the reference it was pulled as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum ImageHandle {
    Id {
        id: String,
    },
    /// The image `reference` names now, unless it is the one it named
    /// before the pull (`before`).
    Reference {
        reference: String,
        before: Option<String>,
    },
}

/// One idempotent change, as the undo and forward logs hold it. Effects on
/// containers touch only containers of this berth instance; images are only
/// released when nothing else uses them (see the daemon's `intake::release`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Stop and remove a container of this instance (by name or id).
    RemoveContainer { container: String },
    /// Rename a container of this instance (an upgrade's old container back).
    RenameContainer { from: String, to: String },
    /// Start the app's container when the app should run and it does not.
    StartIfDesired { app: AppName },
    /// Remove an image this operation added, unless another app, another
    /// open operation or something outside berth still uses it.
    ReleaseImage { image: ImageHandle, app: Option<AppName> },
    /// Remove a directory tree (missing is fine).
    RemoveTree { path: PathBuf },
    /// Remove a file (missing is fine).
    RemoveFile { path: PathBuf },
    /// Make `target` hold exactly what the complete snapshot `snapshot`
    /// holds; refused (and nothing changed) when the snapshot is missing or
    /// incomplete.
    RestoreSnapshot { snapshot: PathBuf, target: PathBuf },
    /// Replace `to` by `from` (renaming, durably); nothing when `from` is
    /// gone and `to` exists (it was done already).
    MoveTree { from: PathBuf, to: PathBuf },
    /// Remove the app's systemd unit and its enable link (stopping the unit
    /// where systemd supervises).
    RemoveUnit { app: AppName },
    /// Start the app's unit where systemd supervises.
    StartUnit { app: AppName },
    /// Remove the app's row (the end of an install's undo or of an uninstall).
    DeleteApp { app: AppName },
    /// Remove an SRA image's configuration directory and forget its locks.
    RemoveSraConfig { image_id: String },
    /// Remove an SRA image: its tags, then the image itself.
    RemoveSraImage { image_id: String, tags: Vec<String> },
    /// Remove a named volume this operation made (it carries this
    /// instance's label; one without it is left alone).
    RemoveVolume { name: String },
    /// Remove every named volume berth made for the app (an uninstall
    /// that does not keep the data).
    RemoveAppVolumes { app: AppName },
    /// Remove a resource instance's container in its location's engine
    /// (only one carrying this instance's label).
    RemoveResourceContainer { location: String, container: String },
    /// Remove a network berth made for a resource instance (labelled as this instance's).
    RemoveResourceNetwork { location: String, network: String },
    /// Remove a volume berth made for a resource instance (labelled as this instance's).
    RemoveResourceVolume { location: String, volume: String },
    /// Forget a resource instance's row (the end of an Install's undo).
    DeleteResourceInstance { id: String },
    /// End a transition request as FAILED, unless it has ended: with the
    /// reason its run recorded, or `interrupted` after a crash.
    FailResourceRequest { request_id: String },
    /// Stop a container host's daemon (its process, or its systemd unit,
    /// which is removed) so that nothing it runs changes under a delete.
    StopHost { host: String },
    /// Stop and remove every container carrying the host's instance label,
    /// in the host's engine (`None`: this daemon's).
    RemoveHostContainers { host: String, instance: String, engine: Option<String> },
    /// Remove every volume and network carrying the host's instance label.
    RemoveHostVolumesAndNetworks { host: String, instance: String, engine: Option<String> },
    /// Remove the images the host's apps used, unless a container (anyone's)
    /// or an app of this daemon still uses them.
    ReleaseHostImages { host: String, images: Vec<String>, engine: Option<String> },
}

impl Effect {
    /// A short description for logs and errors ("remove container web").
    pub fn describe(&self) -> String {
        match self {
            Effect::RemoveContainer { container } => format!("remove container {container}"),
            Effect::RenameContainer { from, to } => format!("rename container {from} to {to}"),
            Effect::StartIfDesired { app } => format!("start {app} if it should run"),
            Effect::ReleaseImage { image: ImageHandle::Id { id }, .. } => format!("release image {id}"),
            Effect::ReleaseImage { image: ImageHandle::Reference { reference, .. }, .. } => {
                format!("release image {reference}")
            }
            Effect::RemoveTree { path } => format!("remove {}", path.display()),
            Effect::RemoveFile { path } => format!("remove {}", path.display()),
            Effect::RestoreSnapshot { snapshot, target } => {
                format!("restore {} from {}", target.display(), snapshot.display())
            }
            Effect::MoveTree { from, to } => format!("move {} to {}", from.display(), to.display()),
            Effect::RemoveUnit { app } => format!("remove the systemd unit of {app}"),
            Effect::StartUnit { app } => format!("start the systemd unit of {app}"),
            Effect::DeleteApp { app } => format!("forget app {app}"),
            Effect::RemoveSraConfig { image_id } => format!("remove the SRA configuration of {image_id}"),
            Effect::RemoveSraImage { image_id, .. } => format!("remove SRA image {image_id}"),
            Effect::RemoveVolume { name } => format!("remove volume {name}"),
            Effect::RemoveAppVolumes { app } => format!("remove the volumes berth made for {app}"),
            Effect::RemoveResourceContainer { location, container } => {
                format!("remove container {container} in location {location}")
            }
            Effect::RemoveResourceNetwork { location, network } => {
                format!("remove network {network} in location {location}")
            }
            Effect::RemoveResourceVolume { location, volume } => {
                format!("remove volume {volume} in location {location}")
            }
            Effect::DeleteResourceInstance { id } => format!("forget resource instance {id}"),
            Effect::FailResourceRequest { request_id } => format!("end transition request {request_id} as failed"),
            Effect::StopHost { host } => format!("stop the daemon of host {host}"),
            Effect::RemoveHostContainers { host, .. } => format!("remove the containers of host {host}"),
            Effect::RemoveHostVolumesAndNetworks { host, .. } => {
                format!("remove the volumes and networks of host {host}")
            }
            Effect::ReleaseHostImages { host, .. } => format!("remove the images of host {host}"),
        }
    }
}

/// An entry as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: i64,
    pub kind: OperationKind,
    pub subject: String,
    pub phase: Phase,
    /// The step reached (`fetching_image`, …); `accepted` at the start.
    pub step: String,
    /// The kind's own record, as JSON.
    pub context: serde_json::Value,
    pub undo: Vec<Effect>,
    pub forward: Vec<Effect>,
    pub error: Option<String>,
}

/// The first step of every operation.
pub const ACCEPTED: &str = "accepted";

/// The steps of each kind, in order, for tests that crash at each one and
/// for the journal's documentation.
pub fn steps(kind: OperationKind) -> &'static [&'static str] {
    match kind {
        OperationKind::Install => {
            &[ACCEPTED, "fetching_image", "image_ready", "directory_ready", "volumes_ready", "container_created"]
        }
        OperationKind::Upgrade => &[
            ACCEPTED,
            "fetching_image",
            "image_ready",
            "snapshotting",
            "pre_hook",
            "old_stopped",
            "volumes_ready",
            "new_started",
            "post_hook",
            "probation",
        ],
        OperationKind::Rollback => {
            &[ACCEPTED, "snapshotting", "old_stopped", "data_restored", "volumes_ready", "new_started", "probation"]
        }
        OperationKind::Uninstall => &[ACCEPTED],
        OperationKind::MigrationExport => &[ACCEPTED, "exporting", "manifest_written"],
        OperationKind::MigrationImport => &[ACCEPTED, "image_loaded", "data_restored"],
        OperationKind::SraLoad => &[ACCEPTED, "loading", "checking"],
        OperationKind::SraRemove => &[ACCEPTED],
        OperationKind::HostCreate => &[ACCEPTED, "root_made", "started"],
        OperationKind::HostDelete => &[ACCEPTED],
        OperationKind::ResourceTransition => &[
            ACCEPTED,
            "network_created",
            "volume_created",
            "container_created",
            "started",
            "params_written",
            "script_ran",
            "params_read",
            "container_removed",
        ],
    }
}

/// What an install needs to remember: the app as requested (`image_id` is
/// filled in once the image is in the engine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstallRecord {
    pub spec: AppSpec,
}

/// What an upgrade or a rollback needs to remember.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpgradeRecord {
    /// The app as it was: what an undo restores.
    pub old: AppSpec,
    /// The app as it will be; `image_id` is filled in once the image is in.
    pub new: AppSpec,
    /// Name the old container is kept under until the commit.
    pub aside: String,
    /// Where this operation copies the private directory before touching it.
    pub snapshot: PathBuf,
    pub skip_data: bool,
}

/// What a resource transition needs to remember (the request itself is in
/// the store's `resource_requests`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceRecord {
    pub request_id: String,
    pub instance_id: String,
    pub location: String,
    /// `Install`, …, or an operation's name.
    pub transition: String,
    /// The container, once made.
    #[serde(default)]
    pub container: Option<String>,
}

/// What an uninstall was asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UninstallRecord {
    pub app: AppName,
    pub keep_data: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in [
            OperationKind::Install,
            OperationKind::Upgrade,
            OperationKind::Rollback,
            OperationKind::Uninstall,
            OperationKind::MigrationExport,
            OperationKind::MigrationImport,
            OperationKind::SraLoad,
            OperationKind::SraRemove,
            OperationKind::ResourceTransition,
        ] {
            assert_eq!(OperationKind::parse(kind.as_str()), Some(kind));
            assert_eq!(steps(kind)[0], ACCEPTED);
        }
        for phase in [Phase::Running, Phase::Committed, Phase::RollingBack, Phase::Done, Phase::RolledBack] {
            assert_eq!(Phase::parse(phase.as_str()), Some(phase));
        }
    }

    #[test]
    fn the_state_machine() {
        assert!(Phase::Running.may_become(Phase::Committed));
        assert!(Phase::Running.may_become(Phase::RollingBack));
        assert!(Phase::Committed.may_become(Phase::Done));
        assert!(Phase::RollingBack.may_become(Phase::RolledBack));
        assert!(!Phase::Committed.may_become(Phase::RollingBack), "a commit is never undone");
        assert!(!Phase::Done.may_become(Phase::Running));
        assert!(!Phase::RolledBack.may_become(Phase::Committed));
        assert_eq!(recovery(Phase::Running), Some(Recovery::RollBack));
        assert_eq!(recovery(Phase::Committed), Some(Recovery::RollForward));
        assert_eq!(recovery(Phase::Done), None);
    }

    #[test]
    fn subjects() {
        let app = Subject::App(AppName::parse("web").unwrap());
        assert_eq!(Subject::parse(&app.key()), Some(app));
        assert_eq!(Subject::parse("migration"), Some(Subject::Migration));
        assert_eq!(Subject::parse("sra:sha256:1"), Some(Subject::SraImage("sha256:1".into())));
        assert_eq!(Subject::parse("app:../x"), None);
    }

    #[test]
    fn effects_are_stored_as_tagged_json() {
        let effect = Effect::ReleaseImage {
            image: ImageHandle::Id { id: "sha256:1".into() },
            app: Some(AppName::parse("web").unwrap()),
        };
        let json = serde_json::to_value(&effect).unwrap();
        assert_eq!(json["effect"], "release_image");
        assert_eq!(json["image"]["by"], "id");
        assert_eq!(serde_json::from_value::<Effect>(json).unwrap(), effect);
    }
}
