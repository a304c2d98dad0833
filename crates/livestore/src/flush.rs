//! The flusher: completed traces of the live-store become vParquet5 blocks in the backend (the
//! live-store cuts blocks itself in monolithic mode, as Tempo 3's does), and the queue may drop
//! what the blocks hold.
//!
//! Order of a flush (a crash at any point loses nothing and shows no half block):
//! 1. take a tenant's completed chunks (they stay in memory and keep their log segments),
//! 2. write `data.parquet` and the blooms, then `meta.json` last — a block without `meta.json`
//!    is invisible to every reader (ours and Tempo's),
//! 3. add the block to the queried list, mark the chunks flushed,
//! 4. the sweep loop ([`crate::consume::sweep_loop`]) commits the live-store's offset; the queue
//!    drops what no consumer needs.
//!
//! A crash between 2 and 4 replays those traces into a second block: trace by ID combines and
//! deduplicates spans across blocks, and compaction merges the copies.
//!
//! When blocks cannot be written (the backend is unreachable) completed traces pile up in
//! memory until `max_complete_bytes`; past it the live-store releases the oldest
//! ([`LiveStore`]'s spill), keeping only which traces and which range of the queue hold them.
//! The queue keeps those records (the live-store's committed offset stays below them), and once
//! the backend is back this loop reads them back from the queue — oldest first, before the
//! traces still in memory — and writes them as blocks. Memory stays bounded whatever the outage's
//! length; the log grows instead. Released traces are not readable until their block is written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use vivace_block::{BlockRef, BlockWriter, FinishedBlock, WriterConfig, set_file_facts};
use vivace_common::TraceId;
use vivace_queue::{Queue, QueueRecord};
use vivace_store::{Backend, SharedBlockList};

use crate::{LiveStore, PendingBlock, Spilled};

/// A fresh block's time range is clamped to the time of writing ± this (Tempo's
/// `ingestion_time_range_slack`, 2m).
const INGESTION_SLACK_SECS: i64 = 120;

/// Why a block could not be written; its traces stay in memory and in the queue.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error("writing block {block_id}: {source}")]
    Write {
        block_id: String,
        #[source]
        source: vivace_block::WriteError,
    },
    #[error(transparent)]
    Chunk(#[from] crate::store::ChunkError),
    #[error("the block writer thread failed")]
    Thread,
    #[error("uploading block {block_id}: {source}")]
    Upload {
        block_id: String,
        #[source]
        source: vivace_block::BackendError,
    },
    #[error("reading released traces back from the queue: {0}")]
    Queue(#[from] vivace_queue::Error),
}

impl FlushError {
    /// What kind of failure this is (all are worth retrying: the traces are kept).
    pub fn status(&self) -> vivace_common::StatusCode {
        vivace_common::StatusCode::Unavailable
    }
}

/// Writes one block of `pending` to the backend with the codecs and sizes of `template`;
/// returns it.
pub async fn write_block(
    backend: &Backend,
    template: &WriterConfig,
    pending: &PendingBlock,
) -> Result<BlockRef, FlushError> {
    let block_id = uuid::Uuid::new_v4().to_string();
    let mut wcfg = template.clone();
    wcfg.tenant = pending.tenant.to_string();
    wcfg.block_id = block_id.clone();
    let now = vivace_store::now_secs();
    wcfg.time_bounds = Some((now - INGESTION_SLACK_SECS, now + INGESTION_SLACK_SECS));
    let pending_owned = pending.clone();
    let (done, data) =
        vivace_common::background::run("vivace-flush", move || cut(&pending_owned, wcfg))
            .await
            .ok_or(FlushError::Thread)??;
    vivace_store::upload(backend, done, data)
        .await
        .map_err(|source| FlushError::Upload { block_id, source })
}

/// `pending` written as block `wcfg.block_id` (blocking work): meta and `data.parquet`. Public
/// for the `cut_blocks` example, which measures it.
pub fn cut(
    pending: &PendingBlock,
    wcfg: WriterConfig,
) -> Result<(FinishedBlock, Vec<u8>), FlushError> {
    let block_id = wcfg.block_id.clone();
    let write = |source| FlushError::Write {
        block_id: block_id.clone(),
        source,
    };
    let mut w = BlockWriter::new(Vec::new(), wcfg).map_err(write)?;
    pending.for_each_trace(|tid, t, encoded| w.push_view(tid, t, encoded).map_err(&write))?;
    let (mut done, data) = w.finish().map_err(write)?;
    set_file_facts(&mut done.meta, data.len() as u64, &data);
    Ok((done, data))
}

/// The traces of a released range, read back from the queue: the tenant's parts of those traces
/// in `[from, to)`.
fn read_spilled(
    queue: &dyn Queue,
    tenant: &vivace_common::TenantId,
    spilled: &Spilled,
) -> Result<PendingBlock, FlushError> {
    let mut reader = queue.reader(spilled.from)?;
    let mut pieces: Vec<(TraceId, Bytes)> = Vec::new();
    'read: loop {
        let batch = reader.read(16 << 20)?;
        if batch.is_empty() {
            break;
        }
        for rec in batch {
            if rec.offset >= spilled.to {
                break 'read;
            }
            if rec.version != vivace_queue::wal::RECORD_VERSION {
                continue;
            }
            let Ok(r) = QueueRecord::decode(rec.payload.as_ref()) else {
                continue; // logged by the replay that first read it
            };
            if r.tenant != tenant.as_str() {
                continue;
            }
            for (id, bytes) in r.ids.iter().zip(r.traces) {
                if let Some(id) = TraceId::from_slice(id)
                    && spilled.traces.contains(&id)
                {
                    pieces.push((id, bytes));
                }
            }
        }
    }
    if reader.skipped() > 0 {
        tracing::error!(%tenant, skipped = reader.skipped(), "queue records of released traces could not be read back");
    }
    Ok(PendingBlock::from_pieces(tenant.clone(), pieces))
}

fn log_written(pending: &PendingBlock, block: &BlockRef, started: Instant, what: &str) {
    tracing::info!(
        tenant = %pending.tenant,
        block = %block.meta.block_id,
        traces = block.meta.total_objects,
        bytes = block.meta.size,
        raw_bytes = pending.raw_bytes(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "{what}"
    );
}

/// Every second: write the ranges released from memory (read back from the queue), then cut the
/// tenants whose completed traces are old or big enough, one block each, and list each block in
/// `blocks` as soon as it is written.
pub async fn flush_loop(
    live: Arc<LiveStore>,
    queue: Arc<dyn Queue>,
    backend: Backend,
    template: WriterConfig,
    blocks: SharedBlockList,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let cfg = live.config().clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff_until = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let (_, _, age) = live.backlog(Instant::now());
        live.metrics().backlog_seconds.set(age.as_secs() as i64);
        if Instant::now() < backoff_until {
            continue;
        }
        let mut failed = false;
        for (tenant, spilled) in live.take_spilled() {
            let started = Instant::now();
            let q = queue.clone();
            let (t2, s2) = (tenant.clone(), spilled.clone());
            let result =
                match tokio::task::spawn_blocking(move || read_spilled(q.as_ref(), &t2, &s2)).await
                {
                    Ok(Ok(pending)) => write_block(&backend, &template, &pending)
                        .await
                        .map(|block| (pending, block)),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(FlushError::Thread),
                };
            match result {
                Ok((pending, block)) => {
                    log_written(
                        &pending,
                        &block,
                        started,
                        "block of released traces written from the queue",
                    );
                    blocks.add(block);
                    live.mark_spill_flushed(&tenant, &spilled);
                }
                Err(e) => {
                    live.metrics().flush_failures.inc();
                    tracing::error!(%tenant, error = %e, "writing a block of released traces failed; retrying in 10s");
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            backoff_until = Instant::now() + Duration::from_secs(10);
            continue;
        }
        let ready = live.take_ready(
            Instant::now(),
            cfg.max_block_duration,
            cfg.max_block_bytes as usize,
            false,
        );
        let mut ready = ready.into_iter();
        for pending in ready.by_ref() {
            let started = Instant::now();
            match write_block(&backend, &template, &pending).await {
                Ok(block) => {
                    log_written(&pending, &block, started, "block written");
                    blocks.add(block);
                    live.mark_flushed(&pending);
                }
                Err(e) => {
                    // The traces stay in memory (or, past the memory bound, in the log); try
                    // again shortly.
                    live.metrics().flush_failures.inc();
                    live.write_failed(&pending);
                    tracing::error!(tenant = %pending.tenant, error = %e, "writing a block failed; retrying in 10s");
                    backoff_until = Instant::now() + Duration::from_secs(10);
                    break;
                }
            }
        }
        // Taken but not attempted after a failure: free to be released again.
        for pending in ready {
            live.write_failed(&pending);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{Config, LiveStoreMetrics};
    use vivace_common::TenantId;
    use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};
    use vivace_proto::tempopb::Trace;
    use vivace_queue::{Wal, WalConfig, WalMetrics};

    fn trace(id: u8, span: u8) -> Trace {
        Trace {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![id; 16],
                        span_id: vec![span; 8],
                        name: format!("span {span}"),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    /// Traces released from memory are read back from the queue, each whole (its parts from
    /// several records combined), only the tenant's and only those released, and written as one
    /// block.
    #[tokio::test]
    async fn released_traces_are_read_back_from_the_queue_and_written() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open_for_consumers(
            WalConfig::new(dir.path().join("wal")),
            WalMetrics::default(),
        )
        .unwrap();
        let wal = Arc::new(wal);
        let store = LiveStore::new(
            Config {
                max_complete_bytes: 10,
                ..Config::default()
            },
            LiveStoreMetrics::default(),
        );
        let (tenant, other) = (TenantId::single(), TenantId::new("other").unwrap());
        let now = Instant::now();
        // Each trace in two records (two spans), and another tenant's record with the same IDs.
        for round in 0..2u8 {
            for (t, base) in [(&tenant, 0u8), (&other, 100)] {
                let traces: Vec<Trace> = (0..30u8).map(|i| trace(i, base + round)).collect();
                let rec = QueueRecord {
                    tenant: t.to_string(),
                    traces: traces
                        .iter()
                        .map(|t| Bytes::from(t.encode_to_vec()))
                        .collect(),
                    ids: (0..30u8).map(|i| Bytes::from(vec![i; 16])).collect(),
                };
                let offset = wal.append(Bytes::from(rec.encode_to_vec())).await.unwrap();
                for (i, tr) in traces.iter().enumerate() {
                    let id = TraceId([i as u8; 16]);
                    let enc = Bytes::from(tr.encode_to_vec());
                    let keys = crate::consume::span_keys(&enc).unwrap();
                    store.push(t, id, &keys, enc, now, offset);
                }
            }
        }
        store.sweep(now + Duration::from_secs(60), true);
        let spilled = store.take_spilled();
        let (_, s) = spilled.iter().find(|(t, _)| *t == tenant).unwrap();
        assert_eq!(s.traces.len(), 30);
        let pending = read_spilled(wal.as_ref(), &tenant, s).unwrap();
        assert_eq!(pending.trace_count(), 30);
        let traces = pending.traces().unwrap();
        for (id, t) in &traces {
            let mut spans: Vec<u8> = t
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .map(|s| s.span_id[0])
                .collect();
            spans.sort_unstable();
            assert_eq!(
                spans,
                [0, 1],
                "trace {id}: both records, not the other tenant's"
            );
        }
        let backend = Backend::local(&dir.path().join("blocks")).unwrap();
        let block = write_block(&backend, &WriterConfig::new("", ""), &pending)
            .await
            .unwrap();
        assert_eq!(block.meta.total_objects, 30);
        store.mark_spill_flushed(&tenant, s);
        assert_eq!(
            store.backlog(now).1,
            30,
            "the other tenant's are still released"
        );
    }
}
