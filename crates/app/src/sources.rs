//! Adapters from the stores to the querier's [`TraceSource`], and the replay of queue records.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use prost::Message;
use vivace_common::{Status, TenantId, TraceId};
use vivace_livestore::LiveStore;
use vivace_proto::tempopb::Trace;
use vivace_querier::{FoundTrace, TraceSource};
use vivace_queue::QueueRecord;

/// The live-store as a trace source of the querier (in-process; a gRPC client in distributed mode).
#[derive(Debug)]
pub(crate) struct LiveStoreSource(pub(crate) Arc<LiveStore>);

#[async_trait::async_trait]
impl TraceSource for LiveStoreSource {
    async fn find_trace_by_id(
        &self,
        tenant: &TenantId,
        id: &TraceId,
        _range_opt: Option<(i64, i64)>,
    ) -> Result<Option<FoundTrace>, Status> {
        // Everything in the live-store is recent; the range only prunes blocks.
        Ok(self
            .0
            .find_trace(tenant, id)
            .map(|(trace, inspected_bytes)| FoundTrace {
                trace,
                inspected_bytes,
            }))
    }
}

/// Counts of a replay, for the start-up log.
#[derive(Debug, Default)]
pub(crate) struct ReplayStats {
    pub(crate) records: u64,
    pub(crate) traces: u64,
    pub(crate) bad_records: u64,
}

/// Applies one queue record to the live-store during replay.
pub(crate) fn replay_record(
    live: &LiveStore,
    version: u8,
    payload: &[u8],
    stats: &mut ReplayStats,
) {
    stats.records += 1;
    if version != vivace_queue::wal::RECORD_VERSION {
        tracing::error!(version, "queue record of an unknown version; skipping it");
        stats.bad_records += 1;
        return;
    }
    let rec = match QueueRecord::decode(payload) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "queue record with an intact checksum does not decode; skipping it");
            stats.bad_records += 1;
            return;
        }
    };
    let tenant = match TenantId::new(&rec.tenant) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "queue record with an invalid tenant; skipping it");
            stats.bad_records += 1;
            return;
        }
    };
    let now = Instant::now();
    for (id, bytes) in rec.ids.iter().zip(rec.traces) {
        let Some(id) = TraceId::from_slice(id) else {
            continue;
        };
        match Trace::decode(bytes.as_ref()) {
            Ok(trace) => {
                live.push(&tenant, id, &trace, Bytes::clone(&bytes), now);
                stats.traces += 1;
            }
            Err(e) => {
                tracing::error!(trace_id = %id, error = %e, "queued trace does not decode; skipping it")
            }
        }
    }
}
