//! Reading files out of an image. The Engine API reads files from
//! containers, not images: a container that is created but never started is
//! the way in. It carries this instance's label and `berth.scratch`, so one
//! left behind by a crash is found and removed at the next start.

use crate::services::Services;
use berth_core::engine::{ContainerConfig, EngineError};
use berth_core::run_args::RunOptions;
use std::collections::BTreeMap;

/// Marks scratch containers.
pub const LABEL_SCRATCH: &str = "berth.scratch";

/// The files under `path` in `image` as a tar of at most `limit` bytes;
/// `None` when the image has no such path.
pub async fn image_files(
    services: &Services,
    image: &str,
    path: &str,
    limit: u64,
) -> Result<Option<Vec<u8>>, EngineError> {
    let engine = services.engine.as_ref();
    let mut labels = BTreeMap::from([(LABEL_SCRATCH.to_owned(), "1".to_owned())]);
    services.ownership.mark(&mut labels);
    let config = ContainerConfig {
        image: image.to_owned(),
        options: RunOptions { entrypoint: Some(vec!["/berth-never-runs".to_owned()]), ..Default::default() },
        labels,
        ..Default::default()
    };
    let scratch = engine.create(&config).await?;
    let files = engine.copy_from(&scratch, path, limit).await;
    if let Err(e) = engine.remove(&scratch).await {
        tracing::warn!(container = %scratch, error = %e, "could not remove a scratch container; it goes at the next start");
    }
    files
}
