//! Putting a finished block into the backend, in the order that keeps readers safe.

use bytes::Bytes;

use vivace_block::{BackendError, BlockRef, FinishedBlock};

use crate::backend::Backend;

/// Uploads `data.parquet`, the bloom shards, then `meta.json` last: until it exists the block
/// is invisible to every reader (vivace's and Tempo's), so a crash mid-upload leaves nothing
/// half-visible. Returns the block, ready to be queried.
pub async fn upload(
    backend: &Backend,
    done: FinishedBlock,
    data: Vec<u8>,
) -> Result<BlockRef, BackendError> {
    let tenant = done.meta.tenant_id.clone();
    let key = |f: &str| format!("{tenant}/{}/{f}", done.meta.block_id);
    backend.put(&key("data.parquet"), Bytes::from(data)).await?;
    for (i, b) in done.blooms.iter().enumerate() {
        backend
            .put(&key(&format!("bloom-{i}")), Bytes::from(b.clone()))
            .await?;
    }
    backend
        .put(&key("meta.json"), Bytes::from(done.meta.to_json()))
        .await?;
    Ok(BlockRef::new(&tenant, done.meta))
}
