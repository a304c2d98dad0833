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

/// One unit of a search: fetching one batch of spans (the live-store's recent data, or one
/// block), evaluated by the querier once it arrives.
pub struct SearchJob {
    /// What the job reads, for errors and logs (`live-store`, `block <id>`).
    pub what: String,
    /// Whether the job reads a block (blocks are read after the live-store's jobs).
    pub is_block: bool,
    /// Whether the job counts its block in `totalBlocks`: a block read as several row-group
    /// jobs is counted once, by its first.
    pub counts_block: bool,
    /// Bytes of the block (`totalBlockBytes`) in the job that counts it, else 0.
    pub block_bytes: u64,
    /// The newest time the job's data covers (unix seconds), for most-recent-first ordering.
    pub end_secs: i64,
    pub fetch: futures::future::BoxFuture<'static, Result<FetchedBatch, Status>>,
}

impl std::fmt::Debug for SearchJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchJob")
            .field("what", &self.what)
            .finish()
    }
}

/// A batch a job fetched, with the bytes it inspected.
#[derive(Debug, Default)]
pub struct FetchedBatch {
    pub batch: std::sync::Arc<vivace_traceql::batch::SpanBatch>,
    /// The traces of the batch to read (indexes), when not all of them are current.
    pub traces_opt: Option<Vec<u32>>,
    pub inspected_bytes: u64,
    /// Span-only columns given instead of the batch (which is then empty), when the fetch
    /// asked for them and the source could read them (`Fetch::span_columns_opt`).
    pub columns_opt: Option<vivace_traceql::spans::SpanColumns>,
    /// When a prefilter left traces out (`Fetch::prefilter_opt`): what it looked at, which
    /// `inspectedTraces`/`inspectedSpans` count instead of the batch's traces.
    pub prefiltered_opt: Option<Prefiltered>,
    /// More of the job's traces, to fetch only if the search still wants traces after this
    /// batch (a prefiltered block read in parts).
    pub more_opt: Option<More>,
}

/// The rest of a job, fetched on demand.
pub struct More(pub futures::future::BoxFuture<'static, Result<FetchedBatch, Status>>);

impl std::fmt::Debug for More {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("More")
    }
}

impl FetchedBatch {
    /// No spans, `inspected_bytes` read.
    pub fn empty(inspected_bytes: u64) -> FetchedBatch {
        FetchedBatch {
            inspected_bytes,
            ..FetchedBatch::default()
        }
    }
}

/// Traces, spans and bytes a prefilter read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prefiltered {
    pub traces: u64,
    pub spans: u64,
    pub bytes: u64,
}

impl FetchedBatch {
    /// The trace indexes to read.
    pub fn trace_indexes(&self) -> Box<dyn Iterator<Item = usize> + '_> {
        match &self.traces_opt {
            Some(v) => Box::new(v.iter().map(|i| *i as usize)),
            None => Box::new(0..self.batch.traces.len()),
        }
    }
}

/// Somewhere spans can be searched: the jobs that cover `tenant`'s data overlapping
/// `[start, end]` (unix seconds). A job's batch must hold at least what `fetch.projection`
/// asks for, for every trace that can satisfy `fetch.required`.
#[async_trait::async_trait]
pub trait SearchSource: Send + Sync + std::fmt::Debug + 'static {
    async fn search_jobs(
        &self,
        tenant: &TenantId,
        start: i64,
        end: i64,
        fetch: &vivace_traceql::batch::Fetch,
    ) -> Result<Vec<SearchJob>, Status>;

    /// Attribute names per scope of `tenant`'s data overlapping `[start, end]`, when the source
    /// can list them without reading spans (blocks: from dictionaries). `None`: read batches.
    async fn tag_names(
        &self,
        _tenant: &TenantId,
        _start: i64,
        _end: i64,
        _scopes: &[&'static str],
    ) -> Option<Result<TagNames, Status>> {
        None
    }

    /// The string values of a tag (`scope` resource, span or intrinsic) over `[start, end]`,
    /// when the source can list them without reading spans (blocks: dictionaries of `name`,
    /// `service.name` and dedicated columns). `None`: read batches.
    async fn tag_values(
        &self,
        _tenant: &TenantId,
        _start: i64,
        _end: i64,
        _scope: &'static str,
        _name: &str,
    ) -> Option<Result<TagValues, Status>> {
        None
    }
}

/// Distinct string values of a tag, and the blocks read for them.
#[derive(Debug, Default)]
pub struct TagValues {
    pub values: std::collections::BTreeSet<String>,
    pub blocks: u32,
    pub block_bytes: u64,
}

/// Attribute names by scope, and the blocks and bytes read for them.
#[derive(Debug, Default)]
pub struct TagNames {
    pub names: std::collections::BTreeMap<&'static str, std::collections::BTreeSet<String>>,
    pub blocks: u32,
    pub block_bytes: u64,
    pub inspected_bytes: u64,
}
