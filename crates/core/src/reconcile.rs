//! What must change so that the engine matches what berth knows. Engine state
//! is a cache (PRODUCT.md): a container that is gone is recreated, a stopped one
//! started, one created from another configuration replaced.

use crate::engine::ContainerObservation;
use crate::spec::LABEL_SPEC_HASH;
use crate::status::DesiredState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Nothing,
    Start,
    Stop,
    /// No container: create it, then start it when the app should run.
    Create {
        start: bool,
    },
    /// The container was made from another configuration: remove it and create anew.
    Recreate {
        start: bool,
    },
}

/// Decides the one action that brings `observed` to `desired`.
pub fn plan(desired: DesiredState, expected_hash: &str, observed: Option<&ContainerObservation>) -> Action {
    let start = desired == DesiredState::Running;
    let Some(container) = observed else {
        return Action::Create { start };
    };
    if container.label(LABEL_SPEC_HASH) != Some(expected_hash) {
        return Action::Recreate { start };
    }
    match (desired, container.state.is_running()) {
        (DesiredState::Running, false) => Action::Start,
        (DesiredState::Stopped, true) => Action::Stop,
        _ => Action::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RunState;
    use crate::status::Health;

    fn container(state: RunState, hash: &str) -> ContainerObservation {
        ContainerObservation {
            id: "c1".into(),
            name: "web".into(),
            image_id: "sha256:1".into(),
            labels: [(LABEL_SPEC_HASH.to_string(), hash.to_string())].into(),
            state,
            exit_code: None,
            error: None,
            started_at: None,
            health: Health::None,
            oom_killed: false,
        }
    }

    #[test]
    fn every_combination() {
        use DesiredState::*;
        let running = container(RunState::Running, "h");
        let exited = container(RunState::Exited, "h");
        let stale = container(RunState::Running, "old");
        assert_eq!(plan(Running, "h", None), Action::Create { start: true });
        assert_eq!(plan(Stopped, "h", None), Action::Create { start: false });
        assert_eq!(plan(Running, "h", Some(&exited)), Action::Start);
        assert_eq!(plan(Running, "h", Some(&running)), Action::Nothing);
        assert_eq!(plan(Stopped, "h", Some(&running)), Action::Stop);
        assert_eq!(plan(Stopped, "h", Some(&exited)), Action::Nothing);
        assert_eq!(plan(Running, "h", Some(&stale)), Action::Recreate { start: true });
    }
}
