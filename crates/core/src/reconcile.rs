//! What must change so that the engine matches what berth knows. Engine state
//! is a cache (PRODUCT.md): a container that is gone is recreated, a stopped one
//! started, one created from another configuration replaced.

use crate::engine::ContainerObservation;
use crate::spec::{ContainerSpec, LABEL_SPEC_HASH};
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
pub fn plan(desired: DesiredState, expected: &ContainerSpec, observed: Option<&ContainerObservation>) -> Action {
    let start = desired == DesiredState::Running;
    let Some(container) = observed else {
        return Action::Create { start };
    };
    if !container.label(LABEL_SPEC_HASH).is_some_and(|label| expected.hash_matches(label)) {
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
            networks: Default::default(),
        }
    }

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "web".into(),
            image_id: "sha256:1".into(),
            options: Default::default(),
            nano_cpus: 1,
            memory: None,
            private_dir: "/d".into(),
            labels: Default::default(),
        }
    }

    #[test]
    fn every_combination() {
        use DesiredState::*;
        let expected = spec();
        let h = expected.hash();
        let running = container(RunState::Running, &h);
        let exited = container(RunState::Exited, &h);
        let stale = container(RunState::Running, "v2-old");
        assert_eq!(plan(Running, &expected, None), Action::Create { start: true });
        assert_eq!(plan(Stopped, &expected, None), Action::Create { start: false });
        assert_eq!(plan(Running, &expected, Some(&exited)), Action::Start);
        assert_eq!(plan(Running, &expected, Some(&running)), Action::Nothing);
        assert_eq!(plan(Stopped, &expected, Some(&running)), Action::Stop);
        assert_eq!(plan(Stopped, &expected, Some(&exited)), Action::Nothing);
        assert_eq!(plan(Running, &expected, Some(&stale)), Action::Recreate { start: true });
    }
}
