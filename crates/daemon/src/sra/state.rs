//! The daemon's in-memory SRA coordination: one slot per execution id and
//! one configuration lock per image.

use crate::registry::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::RwLock;

#[derive(Default)]
pub struct SraState {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    configs: Mutex<HashMap<String, Arc<RwLock<()>>>>,
}

/// An execution id's coordination.
pub struct Slot {
    /// Held while the container is found, started, replaced or created:
    /// two requests never create two containers.
    pub setup: tokio::sync::Mutex<()>,
    /// Read-held by every command running in the container; write-held to
    /// replace or stop it, which therefore never happens under a command.
    pub running: Arc<RwLock<()>>,
    /// When the last command ended (or the slot was made).
    pub last_used: Mutex<Instant>,
}

impl SraState {
    pub fn slot(&self, eid: &str) -> Arc<Slot> {
        lock(&self.slots)
            .entry(eid.to_owned())
            .or_insert_with(|| {
                Arc::new(Slot {
                    setup: tokio::sync::Mutex::new(()),
                    running: Arc::new(RwLock::new(())),
                    last_used: Mutex::new(Instant::now()),
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
        let left: Vec<String> = {
            let mut eids: Vec<String> = super::lock(&state.slots).keys().cloned().collect();
            eids.sort();
            eids
        };
        assert_eq!(left, ["held", "live"]);
        drop(held);
    }
}
