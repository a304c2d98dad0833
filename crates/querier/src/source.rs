use vivace_common::{Status, TenantId, TraceId};
use vivace_proto::tempopb::Trace;

/// A trace found in one source, with what it cost to find.
#[derive(Debug, Clone, Default)]
pub struct FoundTrace {
    pub trace: Trace,
    pub inspected_bytes: u64,
}

/// Somewhere traces can be looked up by ID: the live-store, blocks, a remote querier.
#[async_trait::async_trait]
pub trait TraceSource: Send + Sync + std::fmt::Debug + 'static {
    /// The trace's spans held by this source for `tenant`, or `None`. `range_opt` is the
    /// optional `[start, end]` in unix seconds given by the client.
    async fn find_trace_by_id(
        &self,
        tenant: &TenantId,
        id: &TraceId,
        range_opt: Option<(i64, i64)>,
    ) -> Result<Option<FoundTrace>, Status>;
}
