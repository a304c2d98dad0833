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

use std::sync::Arc;
use std::time::{Duration, Instant};

use vivace_block::{Backend, BlockRef, BlockWriter, SharedBlockList, WriterConfig, set_file_facts};

use crate::{LiveStore, PendingBlock};

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
    #[error("writing block {block_id}: a completed trace does not decode: {message}")]
    Chunk { block_id: String, message: String },
    #[error("the block writer thread failed")]
    Thread,
    #[error("uploading block {block_id}: {source}")]
    Upload {
        block_id: String,
        #[source]
        source: vivace_block::BackendError,
    },
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
    let now = vivace_block::now_secs();
    wcfg.time_bounds = Some((now - INGESTION_SLACK_SECS, now + INGESTION_SLACK_SECS));
    let pending_owned = pending.clone();
    let id = block_id.clone();
    let (done, data) = vivace_common::background::run("vivace-flush", move || {
        let write = |source| FlushError::Write {
            block_id: id.clone(),
            source,
        };
        let mut w = BlockWriter::new(Vec::new(), wcfg).map_err(write)?;
        let mut failed = None;
        pending_owned
            .for_each_trace(|tid, t| {
                w.push(tid, &t).map_err(|e| {
                    let m = e.to_string();
                    failed = Some(e);
                    m
                })
            })
            .map_err(|message| match failed.take() {
                Some(e) => write(e),
                None => FlushError::Chunk {
                    block_id: id.clone(),
                    message,
                },
            })?;
        let (mut done, data) = w.finish().map_err(write)?;
        set_file_facts(&mut done.meta, data.len() as u64, &data);
        Ok::<_, FlushError>((done, data))
    })
    .await
    .ok_or(FlushError::Thread)??;
    vivace_block::upload(backend, done, data)
        .await
        .map_err(|source| FlushError::Upload { block_id, source })
}

/// Every second: cut the tenants whose completed traces are old or big enough, one block each,
/// and list each block in `blocks` as soon as it is written.
pub async fn flush_loop(
    live: Arc<LiveStore>,
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
        if Instant::now() < backoff_until {
            continue;
        }
        let ready = live.take_ready(
            Instant::now(),
            cfg.max_block_duration,
            cfg.max_block_bytes as usize,
            false,
        );
        for pending in ready {
            let started = Instant::now();
            match write_block(&backend, &template, &pending).await {
                Ok(block) => {
                    tracing::info!(
                        tenant = %pending.tenant,
                        block = %block.meta.block_id,
                        traces = block.meta.total_objects,
                        bytes = block.meta.size,
                        raw_bytes = pending.raw_bytes(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "block written"
                    );
                    blocks.add(block);
                    live.mark_flushed(&pending);
                }
                Err(e) => {
                    // The traces stay in memory and in the log; try again shortly.
                    tracing::error!(tenant = %pending.tenant, error = %e, "writing a block failed; retrying in 10s");
                    backoff_until = Instant::now() + Duration::from_secs(10);
                    break;
                }
            }
        }
    }
}
