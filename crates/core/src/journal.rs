//! Multi-step operations as recorded plans. Each step is written to the journal
//! *before* it acts on the engine or the disk, and every step is idempotent, so
//! after a crash the daemon can finish or undo whatever was under way.
//!
//! Install rolls back unless it reached `Committed`: the user's command failed
//! (the daemon died under it), so leaving nothing is the honest result.
//! Uninstall rolls forward: the user asked for the app to be gone and every
//! remaining step is safe to repeat.

use crate::spec::AppSpec;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    Install,
    Uninstall,
    Upgrade,
}

impl OperationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Install => "install",
            OperationKind::Uninstall => "uninstall",
            OperationKind::Upgrade => "upgrade",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "install" => Some(Self::Install),
            "uninstall" => Some(Self::Uninstall),
            "upgrade" => Some(Self::Upgrade),
            _ => None,
        }
    }
}

/// Where an operation stands. `Running` is the only state recovery looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationState {
    Running,
    Done,
    RolledBack,
}

impl OperationState {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationState::Running => "running",
            OperationState::Done => "done",
            OperationState::RolledBack => "rolled_back",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "running" => Some(Self::Running),
            "done" => Some(Self::Done),
            "rolled_back" => Some(Self::RolledBack),
            _ => None,
        }
    }
}

/// The steps of an install, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallStep {
    /// The name is reserved; nothing exists yet.
    Accepted,
    /// The image is being loaded or pulled; `preexisting_images` says which
    /// images were there before, so an undo removes only what this install added.
    FetchingImage,
    /// The image is in the engine (its id is in the record).
    ImageReady,
    /// The private directory exists.
    DirectoryReady,
    /// The container exists.
    ContainerCreated,
    /// The app is installed; nothing will be undone.
    Committed,
}

/// Everything an install's undo needs, written as the install progresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstallRecord {
    pub step: InstallStep,
    /// The app as requested; `image_id` is filled in at `ImageReady`.
    pub spec: AppSpec,
    pub private_dir: String,
    pub preexisting_images: Vec<String>,
    /// Whether the private directory existed before (then it is kept on undo).
    pub directory_preexisted: bool,
}

impl InstallRecord {
    /// The image this install added to the engine, if any, for removal on undo.
    pub fn added_image(&self) -> Option<&str> {
        let id = self.spec.image_id.as_str();
        let added =
            self.step >= InstallStep::ImageReady && !id.is_empty() && !self.preexisting_images.iter().any(|p| p == id);
        added.then_some(id)
    }
}

/// The steps of an uninstall, in order; all of them are repeated on recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UninstallStep {
    Accepted,
    ContainerRemoved,
    DirectoryRemoved,
    ImageRemoved,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UninstallRecord {
    pub step: UninstallStep,
    pub app: String,
    pub image_id: String,
    /// The image of the version kept for rollback, removed too when unused.
    #[serde(default)]
    pub previous_image_id: Option<String>,
    pub private_dir: String,
    pub keep_data: bool,
}

/// The steps of an upgrade (TPCM "TPC Docker Upgrade", made safe): the old
/// app keeps running until the new image is in; it is stopped but kept; the
/// new one must survive probation; only then is the old one removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpgradeStep {
    Accepted,
    FetchingImage,
    ImageReady,
    /// The private directory is being copied to the snapshot.
    Snapshotting,
    /// The old image's pre hook is running in the old container.
    PreHook,
    /// The old container is being stopped and renamed aside.
    OldStopped,
    /// The new container is being created and started.
    NewStarted,
    /// The new image's post hook is running in the new container.
    PostHook,
    Probation,
    /// The new version is the app; the old container is being removed.
    Committed,
}

/// What an upgrade (or a rollback to the previous version) needs to finish
/// or to undo itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpgradeRecord {
    pub step: UpgradeStep,
    /// The app as it was: what an undo restores.
    pub old: AppSpec,
    /// The app as it will be; `image_id` is filled in at `ImageReady`.
    pub new: AppSpec,
    pub preexisting_images: Vec<String>,
    /// Name the old container is kept under until commit.
    pub aside: String,
    /// Where this operation copies the private directory before touching it.
    pub snapshot: String,
    pub skip_data: bool,
    /// A manual rollback: the data comes back from the kept snapshot, no hooks run.
    pub rollback: bool,
}

impl UpgradeRecord {
    /// The image this upgrade added to the engine, to remove on undo.
    pub fn added_image(&self) -> Option<&str> {
        let id = self.new.image_id.as_str();
        // A rollback brings nothing: its image is the kept previous one.
        let added = self.step >= UpgradeStep::ImageReady
            && !self.rollback
            && !id.is_empty()
            && id != self.old.image_id
            && !self.preexisting_images.iter().any(|p| p == id);
        added.then_some(id)
    }
}

pub fn recovery_for_upgrade(record: &UpgradeRecord) -> Recovery {
    if record.step == UpgradeStep::Committed {
        Recovery::RollForward
    } else {
        Recovery::RollBack
    }
}

/// What recovery does with an operation that was `Running` at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    RollBack,
    RollForward,
    /// The operation had finished its last step; only the mark is missing.
    MarkDone,
}

pub fn recovery_for_install(record: &InstallRecord) -> Recovery {
    if record.step == InstallStep::Committed {
        Recovery::MarkDone
    } else {
        Recovery::RollBack
    }
}

pub fn recovery_for_uninstall(_record: &UninstallRecord) -> Recovery {
    Recovery::RollForward
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Source;
    use crate::AppName;

    fn record(step: InstallStep, image_id: &str, preexisting: &[&str]) -> InstallRecord {
        InstallRecord {
            step,
            spec: AppSpec {
                name: AppName::parse("a").unwrap(),
                source: Source::parse("/a.tar").unwrap(),
                image_ref: String::new(),
                image_id: image_id.into(),
                args: String::new(),
                options: Default::default(),
                cpus: 0.2,
                memory: None,
            },
            private_dir: "/d/a".into(),
            preexisting_images: preexisting.iter().map(|s| s.to_string()).collect(),
            directory_preexisted: false,
        }
    }

    #[test]
    fn install_undoes_only_the_image_it_added() {
        assert_eq!(record(InstallStep::ImageReady, "sha256:n", &["sha256:o"]).added_image(), Some("sha256:n"));
        assert_eq!(record(InstallStep::ImageReady, "sha256:o", &["sha256:o"]).added_image(), None);
        assert_eq!(record(InstallStep::FetchingImage, "", &[]).added_image(), None);
    }

    #[test]
    fn recovery_rules() {
        for step in [InstallStep::Accepted, InstallStep::FetchingImage, InstallStep::ContainerCreated] {
            assert_eq!(recovery_for_install(&record(step, "x", &[])), Recovery::RollBack);
        }
        assert_eq!(recovery_for_install(&record(InstallStep::Committed, "x", &[])), Recovery::MarkDone);
    }

    #[test]
    fn states_round_trip_through_text() {
        for s in [OperationState::Running, OperationState::Done, OperationState::RolledBack] {
            assert_eq!(OperationState::parse(s.as_str()), Some(s));
        }
        for k in [OperationKind::Install, OperationKind::Uninstall] {
            assert_eq!(OperationKind::parse(k.as_str()), Some(k));
        }
    }
}
