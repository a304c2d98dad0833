//! The flusher: completed traces of the live-store become vParquet5 blocks in the backend, and
//! the write-ahead log is truncated past what the blocks hold.
//!
//! Order of a flush (a crash at any point loses nothing and shows no half block):
//! 1. take a tenant's completed chunks (they stay in memory and keep their log segments),
//! 2. write `data.parquet` and the blooms, then `meta.json` last — a block without `meta.json`
//!    is invisible to every reader (ours and Tempo's),
//! 3. add the block to the queried list, mark the chunks flushed,
//! 4. the sweep loop removes log segments below the live-store's low watermark.
//!
//! A crash between 2 and 4 replays those traces into a second block: trace by ID combines and
//! deduplicates spans across blocks, and compaction merges the copies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use vivace_block::{Backend, BlockRef, BlockWriter, WriterConfig, set_file_facts};
use vivace_livestore::{LiveStore, PendingBlock};

use crate::config::BlockConfig;
use crate::sources::BlockSource;

/// Writes one block of `pending` to the backend; returns it.
pub(crate) async fn write_block(
    backend: &Backend,
    block_cfg: &BlockConfig,
    pending: &PendingBlock,
) -> Result<BlockRef, String> {
    let tenant = pending.tenant.to_string();
    let block_id = uuid::Uuid::new_v4().to_string();
    let mut wcfg = WriterConfig::new(&tenant, &block_id);
    wcfg.row_group_bytes = block_cfg.parquet_row_group_size_bytes;
    wcfg.bloom_false_positive = block_cfg.bloom_filter_false_positive;
    wcfg.bloom_shard_bytes = block_cfg.bloom_filter_shard_size_bytes;
    let traces = pending.traces()?;
    let (done, data) = tokio::task::spawn_blocking(move || {
        let mut w = BlockWriter::new(Vec::new(), wcfg).map_err(|e| e.to_string())?;
        for (id, t) in &traces {
            w.push(*id, t).map_err(|e| e.to_string())?;
        }
        let (mut done, data) = w.finish().map_err(|e| e.to_string())?;
        set_file_facts(&mut done.meta, data.len() as u64, &data);
        Ok::<_, String>((done, data))
    })
    .await
    .map_err(|e| e.to_string())??;
    let key = |f: &str| format!("{tenant}/{block_id}/{f}");
    let put = |k: String, b: Bytes| async move {
        backend
            .put(&k, b)
            .await
            .map_err(|e| format!("writing {k}: {e}"))
    };
    put(key("data.parquet"), Bytes::from(data)).await?;
    for (i, b) in done.blooms.into_iter().enumerate() {
        put(key(&format!("bloom-{i}")), Bytes::from(b)).await?;
    }
    put(key("meta.json"), Bytes::from(done.meta.to_json())).await?;
    Ok(BlockRef::new(&tenant, done.meta))
}

/// Every second: cut the tenants whose completed traces are old or big enough, one block each.
pub(crate) async fn flush_loop(
    live: Arc<LiveStore>,
    backend: Backend,
    block_cfg: BlockConfig,
    blocks: BlockSource,
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
            match write_block(&backend, &block_cfg, &pending).await {
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
