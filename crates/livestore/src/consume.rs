//! The live-store as a consumer of the queue: replay on start is reading from its committed
//! offset; afterwards the distributor hands it each record it appended (the monolithic fast path:
//! the record is applied before the export is acknowledged, so it is readable by ID at once), and
//! [`sweep_loop`] completes idle traces and commits the offset below which every trace is in a
//! block.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use tokio::sync::watch;
use vivace_common::{TenantId, TraceId};
use vivace_proto::view;
use vivace_queue::{Offset, Queue, QueueRecord};

use crate::LiveStore;

/// The live-store's consumer name in the queue.
pub const CONSUMER: &str = "live-store";

/// During replay, completed traces are compressed (and the oldest released) every this many
/// bytes of records, so a long log never holds more memory than live ingest would.
const REPLAY_SWEEP_BYTES: usize = 64 << 20;

/// Counts of a replay, for the start-up log.
#[derive(Debug, Default, Clone)]
pub struct ReplayStats {
    pub from: Offset,
    pub records: u64,
    pub traces: u64,
    pub bad_records: u64,
    /// Records the queue could not hand over (removed or damaged).
    pub skipped: u64,
}

/// Registers the live-store with the queue and reads everything from its committed offset
/// (blocking: call it on a blocking thread before serving).
pub fn replay(live: &LiveStore, queue: &dyn Queue) -> vivace_queue::Result<ReplayStats> {
    let from = queue.register(CONSUMER)?;
    let mut stats = ReplayStats {
        from,
        ..ReplayStats::default()
    };
    let mut reader = queue.reader(from)?;
    let mut since_sweep = 0usize;
    loop {
        let batch = reader.read(16 << 20)?;
        if batch.is_empty() {
            break;
        }
        for rec in batch {
            since_sweep += rec.payload.len();
            apply(live, rec.offset, rec.version, &rec.payload, &mut stats);
        }
        // Keep replay within the live-store's memory bounds: complete (compress) what was
        // replayed so far, releasing the oldest past max_complete_bytes.
        if since_sweep > REPLAY_SWEEP_BYTES {
            live.sweep(Instant::now(), true);
            since_sweep = 0;
        }
    }
    stats.skipped = reader.skipped();
    Ok(stats)
}

/// Applies one queue record to the live-store.
fn apply(live: &LiveStore, offset: Offset, version: u8, payload: &[u8], stats: &mut ReplayStats) {
    stats.records += 1;
    if version != vivace_queue::wal::RECORD_VERSION {
        tracing::error!(version, %offset, "queue record of an unknown version; skipping it");
        stats.bad_records += 1;
        return;
    }
    let rec = match QueueRecord::decode(payload) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, %offset, "queue record with an intact checksum does not decode; skipping it");
            stats.bad_records += 1;
            return;
        }
    };
    let tenant = match TenantId::new(&rec.tenant) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, %offset, "queue record with an invalid tenant; skipping it");
            stats.bad_records += 1;
            return;
        }
    };
    let now = Instant::now();
    for (id, bytes) in rec.ids.iter().zip(rec.traces) {
        let Some(id) = TraceId::from_slice(id) else {
            continue;
        };
        match span_keys(&bytes) {
            Ok(keys) => {
                live.push(&tenant, id, &keys, bytes, now, offset);
                stats.traces += 1;
            }
            Err(e) => {
                tracing::error!(trace_id = %id, error = %e, "queued trace does not decode; skipping it")
            }
        }
    }
}

/// The [`vivace_model::span_key`]s of an encoded `tempopb.Trace`, in order, read through a
/// zero-copy view.
pub fn span_keys(encoded: &[u8]) -> Result<Vec<u64>, view::DecodeError> {
    let trace = view::Trace::decode(encoded)?;
    Ok(trace
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| vivace_model::span_key_of(s.span_id, s.kind))
        .collect())
}

/// Every second completes idle traces; every 5 s commits the live-store's offset (everything
/// below it is in blocks), which lets the queue drop what no consumer needs.
pub async fn sweep_loop(
    live: Arc<LiveStore>,
    queue: Arc<dyn Queue>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let l = live.clone();
                let _ = tokio::task::spawn_blocking(move || l.sweep(Instant::now(), false)).await;
                ticks += 1;
                if ticks.is_multiple_of(5) {
                    // Read the queue's end first: an append that starts later is either at or
                    // after it, or registered in flight and so in the watermark.
                    let end = queue.next_offset();
                    let l = live.clone();
                    let low = tokio::task::spawn_blocking(move || l.low_watermark()).await.ok().flatten();
                    let mark = low.map_or(end, |m| m.min(end));
                    match queue.commit(CONSUMER, mark).await {
                        Ok(n) if n > 0 => tracing::info!(segments = n, "removed write-ahead log segments no consumer needs"),
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "queue commit failed"),
                    }
                }
            }
            _ = stop.changed() => return,
        }
    }
}
