//! Job selection, the compaction of one job, and retention.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use vivace_block::{
    BlockMeta, BlockRef, BlockWriter, WriterConfig, rfc3339, rfc3339_seconds, set_file_facts,
};
use vivace_common::TraceId;
use vivace_store::{Backend, BlockList, now_secs};

use crate::config::CompactionConfig;

/// What one compaction did.
#[derive(Debug, Clone)]
pub struct CompactionResult {
    pub output: BlockRef,
    pub inputs: usize,
    pub input_traces: u64,
    /// Spans dropped because their trace passed `max_bytes_per_trace`.
    pub discarded_spans: u64,
}

/// What one retention pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionResult {
    /// Blocks past `block_retention`, marked compacted: (tenant, block ID).
    pub retired: Vec<(String, String)>,
    /// Compacted blocks past `compacted_block_retention`, deleted.
    pub deleted: usize,
}

const DAY: i64 = 24 * 3600;

/// Compaction jobs for one tenant's blocks, each 2..=max_input_blocks blocks, most urgent first.
pub fn select(blocks: &[BlockRef], now: i64, cfg: &CompactionConfig) -> Vec<Vec<BlockRef>> {
    let window = cfg.compaction_window.as_secs().max(1) as i64;
    let mut groups: BTreeMap<(i64, u32, String), Vec<&BlockRef>> = BTreeMap::new();
    for b in blocks {
        let m = &b.meta;
        if m.format != vivace_block::FORMAT
            || (cfg.max_compaction_level > 0 && m.compaction_level >= cfg.max_compaction_level)
        {
            continue;
        }
        let Some((_, end)) = b.time_range_opt else {
            continue;
        };
        // Recent blocks compact level by level; older ones across levels.
        let level = if end >= now - DAY {
            m.compaction_level
        } else {
            u32::MAX
        };
        let dedicated = serde_json_key(m);
        groups
            .entry((end / window, level, dedicated))
            .or_default()
            .push(b);
    }
    let mut jobs = Vec::new();
    // Newest windows first: that is where the small fresh blocks are.
    for (_, mut group) in groups.into_iter().rev() {
        if group.len() < cfg.min_input_blocks.max(2) {
            continue;
        }
        group.sort_by_key(|b| (b.meta.total_objects, b.meta.block_id.clone()));
        let mut job: Vec<BlockRef> = Vec::new();
        let (mut objects, mut bytes) = (0u64, 0u64);
        for b in group {
            if job.len() >= cfg.max_input_blocks.max(2)
                || (!job.is_empty()
                    && (objects + b.meta.total_objects > cfg.max_compaction_objects
                        || bytes + b.meta.size > cfg.max_block_bytes))
            {
                break;
            }
            objects += b.meta.total_objects;
            bytes += b.meta.size;
            job.push(b.clone());
        }
        if job.len() >= cfg.min_input_blocks.max(2) {
            jobs.push(job);
        }
    }
    jobs
}

fn serde_json_key(m: &BlockMeta) -> String {
    m.dedicated_columns
        .iter()
        .map(|c| {
            format!(
                "{}/{}/{}/{}",
                c.scope(),
                c.name,
                c.kind,
                c.options.join(",")
            )
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Why a compaction or a retention pass stopped. Nothing is lost either way: inputs are marked
/// compacted only after the output is uploaded, and a failed pass is retried next cycle.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error("no input blocks")]
    NoInputs,
    #[error("reading block {block}: {source}")]
    Read {
        block: String,
        #[source]
        source: vivace_block::Error,
    },
    #[error("copying rows: {0}")]
    Copy(#[source] vivace_block::Error),
    #[error("writing the compacted block: {0}")]
    Write(#[from] vivace_block::WriteError),
    #[error("{action} {key}: {source}")]
    Backend {
        action: &'static str,
        key: String,
        #[source]
        source: vivace_block::BackendError,
    },
    #[error("the compaction thread failed")]
    Thread,
}

impl CompactError {
    fn backend(
        action: &'static str,
        key: &str,
    ) -> impl FnOnce(vivace_block::BackendError) -> CompactError {
        let key = key.to_string();
        move |source| CompactError::Backend {
            action,
            key,
            source,
        }
    }
}

/// Compacts `inputs` (one tenant) into one block; see the crate docs for the order of writes.
/// `template` carries the block settings (row group size, bloom parameters).
pub async fn compact(
    backend: &Backend,
    inputs: &[BlockRef],
    template: &WriterConfig,
    max_bytes_per_trace: usize,
) -> Result<CompactionResult, CompactError> {
    let Some(first) = inputs.first() else {
        return Err(CompactError::NoInputs);
    };
    let tenant = first.tenant.clone();
    let block_id = uuid::Uuid::new_v4().to_string();
    let mut cfg = template.clone();
    cfg.tenant = tenant.clone();
    cfg.block_id = block_id.clone();
    cfg.dedicated_columns = first.meta.dedicated_columns.clone();
    cfg.compaction_level = inputs
        .iter()
        .map(|b| b.meta.compaction_level)
        .max()
        .unwrap_or(0)
        + 1;
    // The output covers the inputs' time range (Tempo: end = max input end), whatever the
    // spans' own timestamps say.
    let ranges: Vec<(i64, i64)> = inputs.iter().filter_map(|b| b.time_range_opt).collect();
    cfg.time_bounds = ranges
        .iter()
        .map(|r| r.0)
        .min()
        .zip(ranges.iter().map(|r| r.1).max());
    // Rows are copied a row group at a time, each fetched by a ranged read when the merge
    // reaches it, so memory does not grow with the blocks.
    let mut copy_inputs = Vec::with_capacity(inputs.len());
    let handle = tokio::runtime::Handle::current();
    for b in inputs {
        copy_inputs.push(
            vivace_block::CopyInput::from_backend(
                std::sync::Arc::new(backend.clone()),
                b,
                handle.clone(),
            )
            .await
            .map_err(|source| CompactError::Read {
                block: b.meta.block_id.clone(),
                source,
            })?,
        );
    }
    let copy_cfg = cfg.clone();
    let copied = vivace_common::background::run("vivace-compact", move || {
        vivace_block::compact_rows(copy_inputs, copy_cfg, max_bytes_per_trace)
            .map_err(CompactError::Copy)
    })
    .await
    .ok_or(CompactError::Thread)??;
    let (done, data, discarded_spans, input_traces) = match copied {
        Some(out) => (out.done, out.data, out.discarded_spans, out.input_rows),
        None => {
            // Inputs of another schema: their files are fetched whole and merged through OTLP.
            let mut sources = Vec::with_capacity(inputs.len());
            for b in inputs {
                let key = b.key("data.parquet");
                let data = backend
                    .get(&key)
                    .await
                    .map_err(CompactError::backend("reading", &key))?;
                sources.push((data, b.meta.clone(), key));
            }
            vivace_common::background::run("vivace-compact", move || {
                merge_through_otlp(sources, cfg, max_bytes_per_trace)
            })
            .await
            .ok_or(CompactError::Thread)??
        }
    };
    let output = vivace_store::upload(backend, done, data)
        .await
        .map_err(CompactError::backend("uploading block", &block_id))?;
    let now = now_secs();
    for b in inputs {
        mark_compacted(backend, b, now).await?;
    }
    Ok(CompactionResult {
        output,
        inputs: inputs.len(),
        input_traces,
        discarded_spans,
    })
}

/// A finished block, its `data.parquet`, spans discarded, input rows read.
type Merged = (vivace_block::FinishedBlock, Vec<u8>, u64, u64);

/// The k-way merge of sorted blocks into one through OTLP, for inputs whose schema is not the
/// writer's (rows decoded one at a time; pieces of a trace combined, spans deduplicated,
/// traces over `max_bytes_per_trace` trimmed).
fn merge_through_otlp(
    sources: Vec<(Bytes, BlockMeta, String)>,
    cfg: WriterConfig,
    max_bytes_per_trace: usize,
) -> Result<Merged, CompactError> {
    let mut rows = Vec::with_capacity(sources.len());
    for (data, meta, key) in &sources {
        rows.push(
            vivace_block::TraceRows::new(data.clone(), meta, key)
                .map_err(|source| CompactError::Read {
                    block: meta.block_id.clone(),
                    source,
                })?
                .peekable(),
        );
    }
    let mut w = BlockWriter::new(Vec::new(), cfg)?;
    let (mut discarded, mut input_rows) = (0u64, 0u64);
    loop {
        let mut next: Option<TraceId> = None;
        for (r, (_, meta, _)) in rows.iter_mut().zip(&sources) {
            match r.peek() {
                Some(Ok((id, _))) => next = Some(next.map_or(*id, |n| n.min(*id))),
                Some(Err(_)) => {
                    if let Some(Err(source)) = r.next() {
                        return Err(CompactError::Read {
                            block: meta.block_id.clone(),
                            source,
                        });
                    }
                }
                None => {}
            }
        }
        let Some(id) = next else { break };
        let mut pieces = Vec::new();
        for r in &mut rows {
            while matches!(r.peek(), Some(Ok((i, _))) if *i == id) {
                if let Some(Ok((_, t))) = r.next() {
                    pieces.push(t);
                    input_rows += 1;
                }
            }
        }
        // Most traces are in one input only: nothing to combine.
        let mut trace = if pieces.len() == 1 {
            pieces.pop().unwrap_or_default()
        } else {
            vivace_model::combine_traces(pieces, &mut HashSet::new())
        };
        if max_bytes_per_trace > 0 {
            discarded += vivace_block::trim_trace(&mut trace, max_bytes_per_trace);
        }
        w.push(id, &trace)?;
    }
    let (mut done, data) = w.finish()?;
    set_file_facts(&mut done.meta, data.len() as u64, &data);
    Ok((done, data, discarded, input_rows))
}

/// `meta.compacted.json` (the meta plus `compactedTime`), then `meta.json` removed.
async fn mark_compacted(backend: &Backend, b: &BlockRef, now: i64) -> Result<(), CompactError> {
    let mut meta = b.meta.clone();
    meta.compacted_time = Some(rfc3339(now));
    let k = b.key("meta.compacted.json");
    backend
        .put(&k, Bytes::from(meta.to_json()))
        .await
        .map_err(CompactError::backend("writing", &k))?;
    let k = b.key("meta.json");
    backend
        .delete(&k)
        .await
        .map_err(CompactError::backend("deleting", &k))
}

/// Applies `block_retention` (per tenant: `retention_of(tenant)`) and
/// `compacted_block_retention` to the blocks of `list`.
pub async fn retention(
    backend: &Backend,
    list: &BlockList,
    now: i64,
    cfg: &CompactionConfig,
    retention_of: impl Fn(&str) -> Option<std::time::Duration>,
) -> Result<RetentionResult, CompactError> {
    let mut out = RetentionResult::default();
    for (tenant, blocks) in &list.tenants {
        let keep = retention_of(tenant)
            .unwrap_or(cfg.block_retention)
            .as_secs() as i64;
        for b in blocks {
            if b.time_range_opt.is_some_and(|(_, end)| end < now - keep) {
                mark_compacted(backend, b, now).await?;
                out.retired.push((tenant.clone(), b.meta.block_id.clone()));
            }
        }
    }
    let keep = cfg.compacted_block_retention.as_secs() as i64;
    let mut seen = HashMap::new();
    for (tenant, metas) in &list.compacted {
        for m in metas {
            let when = m.compacted_time.as_deref().and_then(rfc3339_seconds);
            if when.is_some_and(|t| t < now - keep) && seen.insert(m.block_id.clone(), ()).is_none()
            {
                let dir = format!("{tenant}/{}/", m.block_id);
                let objects = backend
                    .list_all(&dir)
                    .await
                    .map_err(CompactError::backend("listing", &dir))?;
                let last = format!("{dir}meta.compacted.json");
                for (key, _) in objects.iter().filter(|(k, _)| *k != last) {
                    backend
                        .delete(key)
                        .await
                        .map_err(CompactError::backend("deleting", key))?;
                }
                backend
                    .delete(&last)
                    .await
                    .map_err(CompactError::backend("deleting", &last))?;
                out.deleted += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
