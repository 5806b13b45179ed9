//! Places the tether agent where the engine adapter mounts it from:
//! `<root>/tether/agent/berth-tether` (read-only in the containers) and
//! `<root>/tether/run/` (one socket directory per container). All of it is
//! root's and 0700: only root reaches an agent's socket, and that placement
//! is how the agent knows its caller is berth.

use berth_engine::{DockerEngine, TetherPlacement};
use berth_fs::{atomic_write_mode, create_dir, FsError};
use std::path::Path;

/// The engine with the tether placed; without it (and a warning) where the
/// agent cannot be written: commands then go by exec, as before.
pub fn with_tether(engine: DockerEngine, root: &Path) -> DockerEngine {
    match place_agent(root) {
        Ok(placement) => engine.with_tether(placement),
        Err(error) => {
            tracing::warn!(%error, "the tether is not placed; commands go by exec");
            engine
        }
    }
}

/// Writes the agent (when the one there is not this build's) and makes the
/// directories. Blocking: it runs once, before the daemon serves.
///
/// The agent's id is kept beside it, outside the mounted directory, so that
/// a daemon that starts with the agent in place reads neither the file nor
/// its own embedded copy.
pub fn place_agent(root: &Path) -> Result<TetherPlacement, FsError> {
    let base = root.join("tether");
    let (agent_dir, run_root) = (base.join("agent"), base.join("run"));
    for dir in [&base, &agent_dir, &run_root] {
        create_dir(dir, 0o700)?;
    }
    let file = agent_dir.join(berth_tether_agent::AGENT_FILE);
    let id_file = base.join("agent.id");
    let placed = std::fs::read_to_string(&id_file).ok().filter(|id| id == berth_tether::AGENT_ID);
    if placed.is_none() || !file.is_file() {
        atomic_write_mode(&file, berth_tether::AGENT, 0o755)?;
        atomic_write_mode(&id_file, berth_tether::AGENT_ID.as_bytes(), 0o600)?;
    }
    Ok(TetherPlacement { agent_dir, run_root })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_agent_is_placed_once_and_replaced_when_it_differs() {
        let root = tempfile::tempdir().unwrap();
        let placement = place_agent(root.path()).unwrap();
        let file = placement.agent_dir.join("berth-tether");
        assert_eq!(std::fs::read(&file).unwrap(), berth_tether::AGENT);
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o755);
        for dir in [root.path().join("tether"), placement.agent_dir.clone(), placement.run_root.clone()] {
            assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700, "{}", dir.display());
        }
        std::fs::remove_file(&file).unwrap();
        assert_eq!(place_agent(root.path()).unwrap(), placement);
        assert_eq!(std::fs::read(&file).unwrap(), berth_tether::AGENT, "a missing agent is placed again");
        std::fs::write(root.path().join("tether/agent.id"), "another build").unwrap();
        std::fs::write(&file, b"old").unwrap();
        place_agent(root.path()).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), berth_tether::AGENT, "another build's agent is replaced");
    }
}
