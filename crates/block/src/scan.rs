//! A whole block read into TraceQL's columnar [`SpanBatch`], for search and tag collection.
//!
//! Today the rows go through the same record reader as trace by ID and are appended to the
//! batch trace by trace (`vivace_model::append_trace`); the batch is the contract, so a
//! column-projecting reader can replace this without touching the evaluator.

use vivace_traceql::batch::{BatchBuilder, SpanBatch};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::list::BlockRef;
use crate::read::TraceRows;

/// Reads every trace of `block` into one batch. Returns the batch and the bytes read.
pub async fn read_batch(backend: &Backend, block: &BlockRef) -> Result<(SpanBatch, u64)> {
    let key = block.key("data.parquet");
    let data = backend.get(&key).await.map_err(Error::Backend)?;
    let len = data.len() as u64;
    let meta = block.meta.clone();
    let batch = tokio::task::spawn_blocking(move || -> Result<SpanBatch> {
        let mut bb = BatchBuilder::new();
        for row in TraceRows::new(data, &meta, &key)? {
            let (id, trace) = row?;
            vivace_model::append_trace(&mut bb, &id, &trace);
        }
        Ok(bb.finish())
    })
    .await
    .map_err(|e| Error::Schema {
        path: Default::default(),
        what: format!("block scan task failed: {e}"),
    })??;
    Ok((batch, len))
}
