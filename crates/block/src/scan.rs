//! A whole block read into TraceQL's columnar [`SpanBatch`], for search and tag collection.
//!
//! vParquet5 blocks are read column by column (`columnar.rs`); vParquet4 blocks (written by
//! Tempo, read-only here) go through the record reader and `vivace_model::append_trace`. The
//! batch is the contract: the evaluator cannot tell the two apart.

use vivace_traceql::batch::{BatchBuilder, Projection, SpanBatch};

use crate::block_ref::BlockRef;
use crate::error::{Error, Result};
use crate::objects::Objects;
use crate::read::TraceRows;

/// Reads `block` into one batch: vParquet5 blocks by ranged reads of the column chunks `proj`
/// asks for, in the row groups whose dictionaries do not rule out `needles` (`prune.rs`) —
/// of those in `only_opt` when given —; vParquet4 blocks whole through the record reader (a
/// row-group range is refused). Returns the batch, the bytes read and whether every row group
/// is in the batch.
pub async fn read_batch(
    backend: &dyn Objects,
    block: &BlockRef,
    proj: Projection,
    needles: &[crate::prune::Needle],
    names_opt: Option<&vivace_traceql::batch::AttrNames>,
    only_opt: Option<crate::prune::RowGroups>,
) -> Result<(SpanBatch, u64, bool)> {
    if block.meta.format == crate::FORMAT {
        let r =
            crate::prune::read_pruned(backend, block, proj, needles, names_opt, only_opt).await?;
        return Ok((r.batch, r.bytes, r.complete));
    }
    let key = block.key("data.parquet");
    if only_opt.is_some() {
        return Err(Error::Schema {
            path: key.into(),
            what: "row-group ranges are read from vParquet5 blocks only".into(),
        });
    }
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
    Ok((batch, len, true))
}
