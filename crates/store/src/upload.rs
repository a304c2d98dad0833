//! Putting a finished block into the backend, in the order that keeps readers safe.

use bytes::Bytes;

use vivace_block::{BackendError, BlockRef, FinishedBlock};

use crate::backend::Backend;

/// Uploads `data.parquet`, the bloom shards, then `meta.json` last: until it exists the block
/// is invisible to every reader (vivace's and Tempo's), so a crash mid-upload leaves nothing
/// half-visible. Returns the block, ready to be queried, with what lookups keep primed from the
/// bytes just written (`vivace_block::warm`: a first lookup reads only its row's pages).
pub async fn upload(
    backend: &Backend,
    done: FinishedBlock,
    data: Vec<u8>,
) -> Result<BlockRef, BackendError> {
    let tenant = done.meta.tenant_id.clone();
    let key = |f: &str| format!("{tenant}/{}/{f}", done.meta.block_id);
    let data = Bytes::from(data);
    backend.put(&key("data.parquet"), data.clone()).await?;
    let blooms: Vec<Bytes> = done.blooms.into_iter().map(Bytes::from).collect();
    for (i, b) in blooms.iter().enumerate() {
        backend.put(&key(&format!("bloom-{i}")), b.clone()).await?;
    }
    backend
        .put(&key("meta.json"), Bytes::from(done.meta.to_json()))
        .await?;
    let block = BlockRef::new(&tenant, done.meta);
    if let Err(e) = vivace_block::warm(&block, data, &blooms).await {
        // Lookups read what they need from the bucket instead.
        tracing::warn!(block = %block.meta.block_id, error = %e, "priming a written block's lookups failed");
    }
    Ok(block)
}
