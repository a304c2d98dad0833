//! Adapters from the stores to the querier's [`TraceSource`], and the replay of queue records.

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use vivace_block::BlockRef;
use vivace_common::{Status, TenantId, TraceId};
use vivace_livestore::LiveStore;
use vivace_querier::{
    FetchedBatch, FoundTrace, Prefiltered, SearchJob, SearchSource, TagNames, TagValues,
    TraceSource,
};
use vivace_store::{Backend, BlockList, SharedBlockList};

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

#[async_trait::async_trait]
impl SearchSource for LiveStoreSource {
    /// One job per completed chunk not yet in a block (its batch built once, by the first job
    /// that needs it, and kept) and one per segment of the traces still receiving spans — or, when every match needs one trace ID, one job
    /// of that trace alone; the snapshot is taken here, on a blocking thread.
    async fn search_jobs(
        &self,
        tenant: &TenantId,
        _start: i64,
        end: i64,
        fetch: &vivace_traceql::batch::Fetch,
    ) -> Result<Vec<SearchJob>, Status> {
        let (live, tenant) = (self.0.clone(), tenant.clone());
        // A search for one trace ID (`{ trace:id = "…" && … }`) reads only that trace.
        let only_opt = vivace_block::required_trace_id(&fetch.required);
        let (batches, inspected) = tokio::task::spawn_blocking(move || match only_opt {
            Some(id) => live.search_trace(&tenant, &id),
            None => live.search_batches(&tenant),
        })
        .await
        .map_err(|e| Status::internal(format!("live-store search task failed: {e}")))?;
        let n = batches.len().max(1) as u64;
        Ok(batches
            .into_iter()
            .map(|b| {
                let fetch = async move {
                    // A completed chunk's batch not built yet is built by this job.
                    let (batch, traces_opt) = if b.is_ready() {
                        b.get()
                    } else {
                        tokio::task::spawn_blocking(move || b.get())
                            .await
                            .map_err(|e| {
                                Status::internal(format!("live-store batch task failed: {e}"))
                            })?
                    };
                    Ok(FetchedBatch {
                        batch,
                        traces_opt,
                        inspected_bytes: inspected / n,
                        ..FetchedBatch::empty(0)
                    })
                };
                SearchJob {
                    what: "live-store".into(),
                    is_block: false,
                    counts_block: false,
                    block_bytes: 0,
                    end_secs: end,
                    fetch: Box::pin(fetch),
                }
            })
            .collect())
    }
}

/// Blocks in the bucket as a trace source: the current block list, searched concurrently
/// (at most [`LOOKUP_CONCURRENCY`] blocks at a time). Blocks whose time range does not overlap
/// the request's are skipped; so is every block whose bloom says no.
#[derive(Debug, Clone)]
pub(crate) struct BlockSource {
    pub(crate) backend: Backend,
    /// The list the poller, the flusher and the compactor keep current.
    pub(crate) list: SharedBlockList,
    /// `querier.trace_by_id.query_timeout`.
    pub(crate) timeout: std::time::Duration,
    /// Blocks already decoded for search.
    pub(crate) cache: Arc<vivace_store::BatchCache>,
    /// Compressed row-group bytes of one span-only metrics job at least
    /// (`query_frontend.search.target_bytes_per_job`).
    pub(crate) shard_bytes: u64,
}

/// Blocks read at once by one trace-by-ID lookup.
const LOOKUP_CONCURRENCY: usize = 32;

impl BlockSource {
    pub(crate) fn new(
        backend: Backend,
        list: SharedBlockList,
        timeout: std::time::Duration,
        cache: Arc<vivace_store::BatchCache>,
        shard_bytes: u64,
    ) -> BlockSource {
        BlockSource {
            shard_bytes,
            backend,
            list,
            timeout,
            cache,
        }
    }

    /// The tenant's blocks whose time range overlaps `[start, end]` (unix seconds); a block
    /// without a range always does.
    fn overlapping(&self, tenant: &TenantId, start: i64, end: i64) -> Vec<BlockRef> {
        self.current()
            .blocks(tenant.as_str())
            .iter()
            .filter(|b| {
                let (bs, be) = b.time_range_opt.unwrap_or((i64::MIN, i64::MAX));
                bs <= end && be >= start
            })
            .cloned()
            .collect()
    }

    pub(crate) fn current(&self) -> Arc<BlockList> {
        self.list.current()
    }
}

#[async_trait::async_trait]
impl TraceSource for BlockSource {
    async fn find_trace_by_id(
        &self,
        tenant: &TenantId,
        id: &TraceId,
        range_opt: Option<(i64, i64)>,
    ) -> Result<Option<FoundTrace>, Status> {
        let list = self.current();
        let blocks: Vec<BlockRef> = list
            .blocks(tenant.as_str())
            .iter()
            .filter(|b| match (b.time_range_opt, range_opt) {
                (Some((bs, be)), Some((s, e))) => bs <= e && be >= s,
                _ => true,
            })
            .cloned()
            .collect();
        if blocks.is_empty() {
            return Ok(None);
        }
        let lookups = futures::stream::iter(blocks)
            .map(|b| {
                let (backend, id) = (self.backend.clone(), *id);
                async move {
                    let read = vivace_block::Counted::new(&backend);
                    let r = vivace_block::find_trace_by_id(&read, &b, &id).await;
                    (b, r, read.bytes())
                }
            })
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .collect::<Vec<_>>();
        let Ok(results) = tokio::time::timeout(self.timeout, lookups).await else {
            return Err(Status::new(
                vivace_common::StatusCode::Timeout,
                format!(
                    "trace by ID timed out after {:?} (querier.trace_by_id.query_timeout)",
                    self.timeout
                ),
            ));
        };
        let mut pieces = Vec::new();
        let mut inspected_bytes = 0;
        for (b, r, read) in results {
            // What the lookups read (bloom words, footers and indexes not yet kept, pages).
            inspected_bytes += read;
            match r {
                Ok(Some(t)) => pieces.push(t),
                Ok(None) => {}
                // Compacted away between the poll and the read: its traces are in the new block.
                Err(vivace_block::Error::Backend(e)) if e.is_not_found() => {}
                Err(e) => {
                    return Err(Status::internal(format!(
                        "reading block {}: {e}",
                        b.meta.block_id
                    )));
                }
            }
        }
        if pieces.is_empty() {
            return Ok(None);
        }
        let trace = vivace_model::combine_traces(pieces, &mut Default::default());
        Ok(Some(FoundTrace {
            trace,
            inspected_bytes,
        }))
    }
}

/// One block job (the whole block, or the run of row groups `shard_opt`): the cached
/// batch, else span-only columns when the fetch asks for them and the block gives them, else a
/// batch read (cached when nothing was pruned). A search with a prefilter reads its span-only
/// columns first, then only the row groups holding candidates: those of the first `limit`
/// candidates at once, the others as the batch's continuation, read only if the search still
/// wants traces.
async fn fetch_block(
    backend: Backend,
    block: vivace_block::BlockRef,
    cache: Arc<vivace_store::BatchCache>,
    fetch: vivace_traceql::batch::Fetch,
    shard_opt: Option<(std::ops::Range<usize>, u64)>,
) -> Result<FetchedBatch, Status> {
    let proj = fetch.projection;
    let needles = vivace_block::needles(&block.meta, &fetch.required);
    let tenant = block.tenant.as_str();
    // A shard's batch is cached on its own: the whole block's entry and a shard's never
    // stand for each other. A batch from the cache counts the bytes it was read from.
    let (cache_key, scope_bytes) = match &shard_opt {
        None => (block.meta.block_id.clone(), block.meta.size),
        Some((r, bytes)) => (
            format!("{}/{}-{}", block.meta.block_id, r.start, r.end),
            *bytes,
        ),
    };
    let shard_opt = shard_opt.map(|(r, _)| vivace_block::RowGroups::Range(r));
    let failed = read_failed(block.clone());
    let read = match cache.get(tenant, &cache_key, proj) {
        Ok(batch) => {
            return Ok(FetchedBatch {
                batch,
                inspected_bytes: scope_bytes,
                ..FetchedBatch::empty(0)
            });
        }
        Err(read) => read,
    };
    if let (Some(cols), Some(names)) = (&fetch.span_columns_opt, &fetch.names_opt) {
        match vivace_block::read_span_columns(
            &backend,
            &block,
            cols,
            &needles,
            names,
            shard_opt.clone(),
        )
        .await
        {
            Ok(Some(r)) => {
                return Ok(FetchedBatch {
                    inspected_bytes: r.bytes,
                    columns_opt: Some(r.columns),
                    ..FetchedBatch::empty(0)
                });
            }
            Ok(None) => {}
            Err(e) => return failed(e),
        }
    }
    // A search for one trace ID (`{ trace:id = "…" && … }`, never sharded): only that trace
    // can match here, so it is read as trace by ID reads it (bloom, page index, its pages)
    // instead of its row group, and evaluated alone.
    if fetch.span_columns_opt.is_none()
        && shard_opt.is_none()
        && let Some(trace_id) = needles.iter().find_map(vivace_block::Needle::trace_id)
    {
        let read = vivace_block::Counted::new(&backend);
        let found = vivace_block::find_trace_by_id(&read, &block, &trace_id).await;
        let inspected_bytes = read.bytes();
        return match found {
            Ok(found) => {
                let found = found.into_iter().map(|t| (trace_id, t)).collect();
                traces_batch(found, inspected_bytes).await
            }
            Err(e) => failed(e),
        };
    }
    // Strings every match needs that only a few traces of the block hold: those traces alone,
    // read as trace by ID reads them, instead of their row groups.
    let mut needle_bytes = 0;
    if fetch.span_columns_opt.is_none() && !needles.is_empty() {
        let read = vivace_block::Counted::new(&backend);
        let found = vivace_block::read_needle_traces(
            &read,
            &block,
            &needles,
            shard_opt.clone(),
            NEEDLE_TRACES,
        )
        .await;
        needle_bytes = read.bytes();
        match found {
            Ok(Some(found)) => return traces_batch(found, needle_bytes).await,
            Ok(None) => {}
            Err(e) => return failed(e),
        }
    }
    let reader = RowReader {
        backend,
        block,
        cache,
        cache_key,
        shard_opt,
        read,
        needles,
        names_opt: fetch.names_opt.clone(),
    };
    let mut fetched = read_rows(reader, &fetch).await?;
    fetched.inspected_bytes += needle_bytes;
    Ok(fetched)
}

/// Whole traces a job read one by one (a trace ID's, a needle's), as its batch.
async fn traces_batch(
    found: Vec<(TraceId, vivace_proto::tempopb::Trace)>,
    inspected_bytes: u64,
) -> Result<FetchedBatch, Status> {
    let batch = tokio::task::spawn_blocking(move || {
        vivace_model::batch_of(found.iter().map(|(id, t)| (id, t)))
    })
    .await
    .map_err(|e| Status::internal(format!("trace batch task failed: {e}")))?;
    Ok(FetchedBatch {
        batch: Arc::new(batch),
        ..FetchedBatch::empty(inspected_bytes)
    })
}

/// At most this many traces of a block are read one by one when they alone hold a search's
/// needles (each costs a trace-by-ID read: a few ms); more, and their row groups are read.
const NEEDLE_TRACES: usize = 8;

/// [`fetch_block`]'s read of the job's rows as a batch: through the prefilter when the search
/// has one, else the row groups pruning leaves.
async fn read_rows(
    reader: RowReader,
    fetch: &vivace_traceql::batch::Fetch,
) -> Result<FetchedBatch, Status> {
    let failed = read_failed(reader.block.clone());
    let Some(pre) = fetch.prefilter_opt.clone() else {
        return reader.read(None, None).await.or_else(failed);
    };
    let footer = match reader.block.footer(&reader.backend).await {
        Ok(f) => f,
        Err(e) => return failed(e),
    };
    let rgs: Vec<usize> = (0..footer.num_row_groups())
        .filter(|rg| reader.shard_opt.as_ref().is_none_or(|s| s.contains(*rg)))
        .collect();
    let job = Arc::new(Prefiltering {
        reader,
        pre,
        limit_opt: fetch.limit_opt,
    });
    // Without a limit every row group is wanted: one prefilter read of them all. With one, a
    // row group first, then twice as many each time, until candidates turn up.
    let step = if fetch.limit_opt.is_some() {
        1
    } else {
        rgs.len()
    };
    job.prefilter(rgs, step, Prefiltered::default(), true).await
}

/// A block job whose search has a prefilter: its span-only columns are read first, then only
/// the row groups holding candidate traces, as a batch.
struct Prefiltering {
    reader: RowReader,
    pre: vivace_traceql::spans::Prefilter,
    limit_opt: Option<usize>,
}

impl Prefiltering {
    /// Prefilters `rgs` (the job's row groups not looked at yet, ascending), `step` at a time,
    /// until some hold candidates; those are read as the batch — the row groups of the first
    /// `limit` candidates now, the others and the row groups after them as its continuation,
    /// fetched only if the search still wants traces. `seen` is what earlier steps without a
    /// candidate looked at (counted by this batch); `all` says `rgs` are all the job's row
    /// groups (then a read of all of them can be cached).
    fn prefilter(
        self: Arc<Self>,
        mut rgs: Vec<usize>,
        mut step: usize,
        mut seen: Prefiltered,
        all: bool,
    ) -> futures::future::BoxFuture<'static, Result<FetchedBatch, Status>> {
        Box::pin(async move {
            let reader = &self.reader;
            let failed = read_failed(reader.block.clone());
            let mut first_step = true;
            loop {
                let later = rgs.split_off(step.min(rgs.len()));
                let whole = all && later.is_empty();
                let now = std::mem::take(&mut rgs);
                let r = match vivace_block::read_span_columns(
                    &reader.backend,
                    &reader.block,
                    self.pre.columns(),
                    &reader.needles,
                    self.pre.names(),
                    Some(vivace_block::RowGroups::List(now.clone())),
                )
                .await
                {
                    Ok(Some(r)) => r,
                    // No span-only columns in this block (vParquet4, which is read whole,
                    // never as some row groups): read every row group left.
                    Ok(None) => {
                        let only_opt = (!(all && first_step)).then(|| {
                            let mut both = now;
                            both.extend(later);
                            vivace_block::RowGroups::List(both)
                        });
                        return reader.read(only_opt, None).await.or_else(failed);
                    }
                    Err(e) => return failed(e),
                };
                let pre = self.pre.clone();
                let (r, candidates) = tokio::task::spawn_blocking(move || {
                    let c = pre.candidates(&r.columns);
                    (r, c)
                })
                .await
                .map_err(|e| Status::internal(format!("prefilter task failed: {e}")))?;
                // Row groups with candidates, how many each, and the candidates' IDs.
                let (mut with, mut ids) = (Vec::new(), std::collections::HashSet::new());
                let mut t = 0usize;
                for (rg, n) in &r.row_groups {
                    let n = *n as usize;
                    let mut found = 0usize;
                    for (i, c) in candidates[t..t + n].iter().enumerate() {
                        if *c {
                            found += 1;
                            ids.insert(r.columns.trace_ids[t + i]);
                        }
                    }
                    if found > 0 {
                        with.push((*rg, found));
                    }
                    t += n;
                }
                seen.traces += r.columns.trace_ids.len() as u64;
                seen.spans += r.columns.len() as u64;
                seen.bytes += r.bytes;
                if with.is_empty() {
                    if later.is_empty() {
                        return Ok(FetchedBatch {
                            inspected_bytes: seen.bytes,
                            prefiltered_opt: Some(seen),
                            ..FetchedBatch::empty(0)
                        });
                    }
                    (rgs, step, first_step) = (later, step.saturating_mul(2), false);
                    continue;
                }
                let ids = Arc::new(ids);
                // Every row group of the job has a candidate: the whole block or shard (which
                // can be cached).
                if whole && with.len() == r.row_groups.len() && self.limit_opt.is_none() {
                    return reader.read(None, Some((seen, ids))).await.or_else(failed);
                }
                let limit = self.limit_opt.unwrap_or(usize::MAX);
                let (mut first, mut rest, mut found) = (Vec::new(), Vec::new(), 0usize);
                for (rg, n) in with {
                    if found < limit {
                        first.push(rg);
                        found += n;
                    } else {
                        rest.push(rg);
                    }
                }
                let mut fetched = reader
                    .read(
                        Some(vivace_block::RowGroups::List(first)),
                        Some((seen, ids.clone())),
                    )
                    .await
                    .or_else(failed.clone())?;
                let next_step = step.saturating_mul(2);
                fetched.more_opt = match (rest.is_empty(), later.is_empty()) {
                    (true, true) => None,
                    (true, false) => Some(vivace_querier::More(self.clone().prefilter(
                        later,
                        next_step,
                        Prefiltered::default(),
                        false,
                    ))),
                    (false, _) => {
                        let job = self.clone();
                        Some(vivace_querier::More(Box::pin(async move {
                            let none = Prefiltered::default();
                            let mut f = job
                                .reader
                                .read(Some(vivace_block::RowGroups::List(rest)), Some((none, ids)))
                                .await
                                .or_else(read_failed(job.reader.block.clone()))?;
                            if !later.is_empty() {
                                f.more_opt = Some(vivace_querier::More(
                                    job.clone().prefilter(later, next_step, none, false),
                                ));
                            }
                            Ok(f)
                        })))
                    }
                };
                return Ok(fetched);
            }
        })
    }
}

/// What a failed read of `block` answers.
fn read_failed(
    block: vivace_block::BlockRef,
) -> impl Fn(vivace_block::Error) -> Result<FetchedBatch, Status> + Clone {
    move |e| match e {
        // Compacted away between the poll and the read: its traces are in the new block,
        // which the next poll lists.
        vivace_block::Error::Backend(e) if e.is_not_found() => Ok(FetchedBatch::empty(0)),
        e => Err(Status::internal(format!(
            "reading block {}: {e}",
            block.meta.block_id
        ))),
    }
}

/// A block's rows read as a batch, for a job and its continuation.
struct RowReader {
    backend: Backend,
    block: vivace_block::BlockRef,
    cache: Arc<vivace_store::BatchCache>,
    /// The job's entry in the cache: the block's ID, or the ID and the shard's row groups.
    cache_key: String,
    /// The job's row groups, when it reads a shard of the block.
    shard_opt: Option<vivace_block::RowGroups>,
    read: vivace_traceql::batch::Projection,
    needles: Vec<vivace_block::Needle>,
    names_opt: Option<vivace_traceql::batch::AttrNames>,
}

impl RowReader {
    /// The batch of `only_opt`'s row groups (all of the job's: cached when none was pruned);
    /// with a prefilter's candidates, only those traces are read and the prefilter's counts
    /// stand for the job's.
    async fn read(
        &self,
        only_opt: Option<vivace_block::RowGroups>,
        candidates_opt: Option<(Prefiltered, Arc<std::collections::HashSet<[u8; 16]>>)>,
    ) -> Result<FetchedBatch, vivace_block::Error> {
        let whole = only_opt.is_none();
        let (batch, bytes, complete) = vivace_block::read_batch(
            &self.backend,
            &self.block,
            self.read,
            &self.needles,
            self.names_opt.as_ref(),
            only_opt.or_else(|| self.shard_opt.clone()),
        )
        .await?;
        let batch = Arc::new(batch);
        // A batch of some row groups only stands for this query, not the block or shard.
        if whole && complete {
            self.cache.insert(
                self.block.tenant.as_str(),
                &self.cache_key,
                self.read,
                batch.clone(),
            );
        }
        let (traces_opt, prefiltered_opt, bytes) = match candidates_opt {
            Some((seen, ids)) => {
                let keep = (0..batch.traces.len() as u32)
                    .filter(|t| ids.contains(&batch.traces[*t as usize].id))
                    .collect();
                (Some(keep), Some(seen), bytes + seen.bytes)
            }
            None => (None, None, bytes),
        };
        Ok(FetchedBatch {
            batch,
            traces_opt,
            inspected_bytes: bytes,
            prefiltered_opt,
            ..FetchedBatch::empty(0)
        })
    }
}

#[async_trait::async_trait]
impl SearchSource for BlockSource {
    /// One job per block of the tenant whose time range overlaps `[start, end]`; a metrics
    /// query counted from span-only columns gets one job per run of row groups
    /// (`shard_bytes`), so one large block keeps every core busy.
    async fn search_jobs(
        &self,
        tenant: &TenantId,
        start: i64,
        end: i64,
        fetch: &vivace_traceql::batch::Fetch,
    ) -> Result<Vec<SearchJob>, Status> {
        let mut jobs = Vec::new();
        // A search for one trace ID reads that trace alone from each block (never sharded).
        let one_trace = vivace_block::required_trace_id(&fetch.required).is_some();
        for b in self.overlapping(tenant, start, end) {
            let cached = self
                .cache
                .covers(b.tenant.as_str(), &b.meta.block_id, fetch.projection);
            let shards = if b.meta.format == vivace_block::FORMAT && !cached && !one_trace {
                match vivace_block::row_group_shards(&self.backend, &b, self.shard_bytes).await {
                    Ok(v) => v,
                    // Compacted away since the poll: its traces are in a block the next poll
                    // lists.
                    Err(vivace_block::Error::Backend(e)) if e.is_not_found() => continue,
                    Err(e) => {
                        return Err(Status::internal(format!(
                            "reading block {}: {e}",
                            b.meta.block_id
                        )));
                    }
                }
            } else {
                Vec::new()
            };
            // A block of one shard is read (and cached) as the block.
            let shards: Vec<_> = if shards.len() > 1 {
                shards.into_iter().map(Some).collect()
            } else {
                vec![None]
            };
            for (i, shard_opt) in shards.into_iter().enumerate() {
                let (what, range_opt, bytes) = match shard_opt {
                    Some((rgs, bytes)) => (
                        format!("block {} row groups {rgs:?}", b.meta.block_id),
                        Some(rgs),
                        bytes,
                    ),
                    None => (format!("block {}", b.meta.block_id), None, b.meta.size),
                };
                jobs.push(SearchJob {
                    what,
                    is_block: true,
                    // A block is counted once, by its first job.
                    counts_block: i == 0,
                    block_bytes: if i == 0 { b.meta.size } else { 0 },
                    end_secs: b.time_range_opt.map_or(i64::MAX, |(_, e)| e),
                    fetch: Box::pin(fetch_block(
                        self.backend.clone(),
                        b.clone(),
                        self.cache.clone(),
                        fetch.clone(),
                        range_opt.map(|r| (r, bytes)),
                    )),
                });
            }
        }
        Ok(jobs)
    }

    /// Names from the dictionaries of every vParquet5 block overlapping the range (eight blocks
    /// at a time); `None` when a vParquet4 block must be read as a batch.
    async fn tag_names(
        &self,
        tenant: &TenantId,
        start: i64,
        end: i64,
        scopes: &[&'static str],
    ) -> Option<Result<TagNames, Status>> {
        let blocks = self.overlapping(tenant, start, end);
        if blocks.iter().any(|b| b.meta.format != vivace_block::FORMAT) {
            return None;
        }
        let scopes = scopes.to_vec();
        let reads: Vec<BlockRead<_>> = blocks
            .into_iter()
            .map(|b| {
                let (backend, scopes, block) = (self.backend.clone(), scopes.clone(), b.clone());
                let read: BoxFuture<'static, _> = Box::pin(async move {
                    vivace_block::block_tag_names(&backend, &block, &scopes).await
                });
                (b, read)
            })
            .collect();
        let mut out = TagNames::default();
        for (b, names) in match read_blocks(reads).await {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        } {
            out.blocks += 1;
            out.block_bytes += b.meta.size;
            for (scope, set) in names {
                out.names.entry(scope).or_default().extend(set);
            }
        }
        Some(Ok(out))
    }

    /// Values from the dictionaries of `name`, `service.name` or a dedicated column in every
    /// vParquet5 block overlapping the range; `None` when a block needs the full read (a
    /// vParquet4 block, or values of the attribute among the generic ones).
    async fn tag_values(
        &self,
        tenant: &TenantId,
        start: i64,
        end: i64,
        scope: &'static str,
        name: &str,
    ) -> Option<Result<TagValues, Status>> {
        let blocks = self.overlapping(tenant, start, end);
        let mut plans = Vec::with_capacity(blocks.len());
        for b in blocks {
            if b.meta.format != vivace_block::FORMAT {
                return None;
            }
            let column = vivace_block::values_column(&b.meta, scope, name)?;
            let guard: Option<&'static str> = match scope {
                "resource" => Some("rs.Resource.Attrs.Key"),
                "span" => Some("rs.ss.Spans.Attrs.Key"),
                _ => None,
            };
            plans.push((b, column, guard));
        }
        let reads: Vec<BlockRead<_>> = plans
            .into_iter()
            .map(|(b, column, guard)| {
                let (backend, name, block) = (self.backend.clone(), name.to_string(), b.clone());
                let read: BoxFuture<'static, _> = Box::pin(async move {
                    let guard = guard.map(|g| (g, name.as_str()));
                    vivace_block::block_column_values(&backend, &block, &column, guard).await
                });
                (b, read)
            })
            .collect();
        let mut out = TagValues::default();
        for (b, values) in match read_blocks(reads).await {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        } {
            out.blocks += 1;
            out.block_bytes += b.meta.size;
            out.values.extend(values?);
        }
        Some(Ok(out))
    }
}

/// One block's read for a tag listing.
type BlockRead<T> = (BlockRef, BoxFuture<'static, Result<T, vivace_block::Error>>);

/// Runs block reads eight at a time. A block compacted away since the poll is skipped (its
/// data is in the new block); any other failure fails the request, naming the block.
async fn read_blocks<T: Send + 'static>(
    reads: Vec<BlockRead<T>>,
) -> Result<Vec<(BlockRef, T)>, Status> {
    let mut tagged: Vec<BoxFuture<'static, _>> = Vec::with_capacity(reads.len());
    for (b, read) in reads {
        tagged.push(Box::pin(async move { (b, read.await) }));
    }
    let results = futures::stream::iter(tagged)
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    let mut out = Vec::with_capacity(results.len());
    for (b, r) in results {
        match r {
            Ok(v) => out.push((b, v)),
            Err(vivace_block::Error::Backend(e)) if e.is_not_found() => {}
            Err(e) => {
                return Err(Status::internal(format!(
                    "reading block {}: {e}",
                    b.meta.block_id
                )));
            }
        }
    }
    Ok(out)
}
