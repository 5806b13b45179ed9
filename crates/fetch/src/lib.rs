//! Bytes from remote sources: http(s) downloads that resume safely ([`http`])
//! and files on ssh servers over scp or sftp ([`ssh`]). Used by the daemon's
//! intake and, for an ssh copy through the user's own agent, by the CLI.

pub mod http;
pub mod ssh;
