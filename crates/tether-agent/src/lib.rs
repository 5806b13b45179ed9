//! The tether's wire protocol, and the rules by which the agent runs a
//! command as the engine's exec would: who it runs as ([`user`]) and with
//! which environment ([`env`]).
//!
//! std only: the agent is linked statically and kept small.

pub mod env;
pub mod protocol;
pub mod user;

/// Where berth mounts the tether in a container. Under `/dev`, a tmpfs of
/// the container's own, so the mount points leave nothing in the
/// container's filesystem (`docker diff`, `docker commit`).
pub const MOUNT_ROOT: &str = "/dev/.berth-tether";
/// The agent's directory (read-only): it holds [`AGENT_FILE`].
pub const AGENT_DIR: &str = "/dev/.berth-tether/agent";
pub const AGENT_FILE: &str = "berth-tether";
/// The container's own directory (the socket, the start lock).
pub const RUN_DIR: &str = "/dev/.berth-tether/run";
pub const SOCKET_FILE: &str = "agent.sock";
pub const LOCK_FILE: &str = "start.lock";
/// What the agent prints on its stdout once it listens.
pub const READY_LINE: &str = "berth-tether ready";
