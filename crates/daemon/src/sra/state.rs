//! The SRA capability's in-memory coordination: one slot per execution id
//! and one configuration lock per image.

use crate::services::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::RwLock;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
pub struct SraState {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    configs: Mutex<HashMap<String, Arc<RwLock<()>>>>,
}

/// An execution id's coordination.
#[derive(Debug)]
pub struct Slot {
    /// Held while the container is found, started or created: two requests
    /// never create two containers. Never held while waiting for commands.
    pub setup: Arc<tokio::sync::Mutex<()>>,
    /// Read-held by every command running in the container; write-held to
    /// replace, stop or remove it, which therefore never happens under a command.
    pub running: Arc<RwLock<()>>,
    /// When the last command ended (or the slot was made).
    pub last_used: Mutex<Instant>,
    /// Cancelled to kill the commands running now (`sra remove --force`).
    pub kill: Mutex<CancellationToken>,
}

impl SraState {
    pub fn slot(&self, eid: &str) -> Arc<Slot> {
        lock(&self.slots)
            .entry(eid.to_owned())
            .or_insert_with(|| {
                Arc::new(Slot {
                    setup: Arc::new(tokio::sync::Mutex::new(())),
                    running: Arc::new(RwLock::new(())),
                    last_used: Mutex::new(Instant::now()),
                    kill: Mutex::new(CancellationToken::new()),
                })
            })
            .clone()
    }

    /// Forgets the slots of execution ids that have no container any more and
    /// that nobody holds, so the map does not grow with every (tmp, log) pair
    /// ever used.
    pub fn prune_slots(&self, has_container: impl Fn(&str) -> bool) {
        lock(&self.slots).retain(|eid, slot| has_container(eid) || Arc::strong_count(slot) > 1);
    }

    /// Forgets an image's configuration lock (the image is gone).
    pub fn forget_config_lock(&self, image_id: &str) {
        lock(&self.configs).remove(image_id);
    }

    /// Read-held to bind the current configuration; write-held to change it.
    pub fn config_lock(&self, image_id: &str) -> Arc<RwLock<()>> {
        lock(&self.configs).entry(image_id.to_owned()).or_default().clone()
    }
}

impl Slot {
    /// The token the commands starting now stop on, besides their deadline.
    pub fn kill_token(&self) -> CancellationToken {
        lock(&self.kill).clone()
    }

    /// Kills the commands running now; later ones get a fresh token.
    pub fn kill_running(&self) {
        let mut token = lock(&self.kill);
        token.cancel();
        *token = CancellationToken::new();
    }
}

#[cfg(test)]
mod tests {
    use super::SraState;

    #[test]
    fn slots_without_container_or_holder_are_pruned() {
        let state = SraState::default();
        let held = state.slot("held");
        let _ = state.slot("gone");
        let _ = state.slot("live");
        state.prune_slots(|eid| eid == "live");
        let mut left: Vec<String> = super::lock(&state.slots).keys().cloned().collect();
        left.sort();
        assert_eq!(left, ["held", "live"]);
        drop(held);
    }
}
