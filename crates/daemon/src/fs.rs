//! File work from async code: everything that touches the disk runs on the
//! blocking pool through [`blocking`], so a slow disk (fsync, a big tree)
//! never stalls the two async workers that serve the API and supervise apps.

pub use berth_fs::{
    atomic_write, atomic_write_mode, copy_tree, create_dir, is_complete_snapshot, parent_of, read_regular_nofollow,
    remove_nofollow, remove_tree, rename_durably, restore_tree, temp_name, tree_size, FsError, NoFollowError,
    RestoreError,
};

/// A blocking task that did not finish (it panicked, or the runtime is
/// shutting down).
#[derive(Debug, thiserror::Error)]
#[error("{what} did not finish: {reason}")]
pub struct TaskFailed {
    pub what: &'static str,
    pub reason: String,
}

/// Runs `work` on the blocking pool.
pub async fn blocking<T, E>(what: &'static str, work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<TaskFailed> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join) => Err(TaskFailed {
            what,
            reason: if join.is_panic() { "it panicked".into() } else { "the daemon is shutting down".into() },
        }
        .into()),
    }
}
