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

use vivace_block::{Backend, BlockRef, BlockWriter, set_file_facts};
use vivace_livestore::{LiveStore, PendingBlock};

use crate::config::BlockConfig;
use crate::sources::BlockSource;

/// A fresh block's time range is clamped to the time of writing ± this (Tempo's
/// `ingestion_time_range_slack`, 2m).
const INGESTION_SLACK_SECS: i64 = 120;

/// Writes one block of `pending` to the backend; returns it.
pub(crate) async fn write_block(
    backend: &Backend,
    block_cfg: &BlockConfig,
    pending: &PendingBlock,
) -> Result<BlockRef, String> {
    let tenant = pending.tenant.to_string();
    let block_id = uuid::Uuid::new_v4().to_string();
    let mut wcfg = block_cfg.writer_config(&tenant, &block_id);
    let now = vivace_block::now_secs();
    wcfg.time_bounds = Some((now - INGESTION_SLACK_SECS, now + INGESTION_SLACK_SECS));
    let pending_owned = pending.clone();
    let (done, data) = vivace_common::background::run("vivace-flush", move || {
        let mut w = BlockWriter::new(Vec::new(), wcfg).map_err(|e| e.to_string())?;
        pending_owned.for_each_trace(|id, t| w.push(id, &t).map_err(|e| e.to_string()))?;
        let (mut done, data) = w.finish().map_err(|e| e.to_string())?;
        set_file_facts(&mut done.meta, data.len() as u64, &data);
        Ok::<_, String>((done, data))
    })
    .await
    .ok_or("the block writer thread failed")??;
    vivace_block::upload(backend, done, data)
        .await
        .map_err(|e| format!("uploading block {block_id}: {e}"))
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

/// The backend-scheduler and backend-worker in one loop: every `compaction_cycle`, every
/// compaction job of each tenant (the smallest blocks of the newest window first), then
/// retention.
pub(crate) async fn compaction_loop(
    cfg: vivace_compactor::CompactionConfig,
    block_cfg: BlockConfig,
    overrides: vivace_common::overrides::Overrides,
    blocks: BlockSource,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let template = block_cfg.writer_config("", "");
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cfg.compaction_cycle) => {}
            _ = stop.changed() => return,
        }
        let list = blocks.current();
        let now = vivace_block::now_secs();
        if !cfg.compaction_disabled {
            for (tenant, tenant_blocks) in &list.tenants {
                if tenant_compaction_disabled(&overrides, tenant) {
                    continue;
                }
                // Every job the selector finds (they share no block), so compaction keeps up
                // when blocks arrive faster than one job per cycle.
                for job in vivace_compactor::select(tenant_blocks, now, &cfg) {
                    if *stop.borrow() {
                        return;
                    }
                    let max_trace = overrides.tenant(tenant).global.max_bytes_per_trace;
                    let started = Instant::now();
                    match vivace_compactor::compact(&blocks.backend, &job, &template, max_trace)
                        .await
                    {
                        Ok(r) => {
                            tracing::info!(
                                tenant,
                                block = %r.output.meta.block_id,
                                inputs = r.inputs,
                                input_traces = r.input_traces,
                                traces = r.output.meta.total_objects,
                                level = r.output.meta.compaction_level,
                                discarded_spans = r.discarded_spans,
                                elapsed_ms = started.elapsed().as_millis() as u64,
                                "blocks compacted"
                            );
                            blocks.replace(&job, r.output);
                        }
                        Err(e) => tracing::error!(tenant, error = %e, "compaction failed"),
                    }
                }
            }
        }
        let list = blocks.current();
        let retention_of = |tenant: &str| tenant_block_retention(&overrides, tenant);
        match vivace_compactor::retention(&blocks.backend, &list, now, &cfg, retention_of).await {
            Ok(r) if !r.retired.is_empty() || r.deleted > 0 => {
                tracing::info!(
                    retired = r.retired.len(),
                    deleted = r.deleted,
                    "retention applied"
                );
                blocks.remove(&r.retired);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "retention failed"),
        }
    }
}

/// The tenant's `compaction.compaction_disabled` override.
fn tenant_compaction_disabled(
    overrides: &vivace_common::overrides::Overrides,
    tenant: &str,
) -> bool {
    let o = overrides.tenant(tenant);
    o.compaction
        .as_ref()
        .and_then(|c| c.get("compaction_disabled"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// The tenant's `compaction.block_retention` override, if set.
fn tenant_block_retention(
    overrides: &vivace_common::overrides::Overrides,
    tenant: &str,
) -> Option<Duration> {
    let o = overrides.tenant(tenant);
    let v = o.compaction.as_ref()?.get("block_retention")?;
    humantime::parse_duration(v.as_str()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_compaction_overrides_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("overrides.yaml");
        std::fs::write(
            &file,
            "overrides:\n  team-a:\n    compaction:\n      block_retention: 48h\n      compaction_disabled: true\n",
        )
        .unwrap();
        let cfg: vivace_common::overrides::OverridesConfig =
            serde_yaml_ng::from_str(&format!("per_tenant_override_config: {}\n", file.display()))
                .unwrap();
        let o = vivace_common::overrides::Overrides::new(&cfg).unwrap();
        assert_eq!(
            tenant_block_retention(&o, "team-a"),
            Some(Duration::from_secs(48 * 3600))
        );
        assert!(tenant_compaction_disabled(&o, "team-a"));
        assert_eq!(tenant_block_retention(&o, "team-b"), None);
        assert!(!tenant_compaction_disabled(&o, "team-b"));
    }
}
