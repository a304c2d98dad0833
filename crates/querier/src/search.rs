//! TraceQL search (compatibility notes §1.6): the request, the jobs, the evaluation of each
//! fetched batch, and the combiner that merges traces found by several jobs.
//!
//! Jobs run most recent first (the live-store, then blocks by end time), a bounded number at a
//! time; once `limit` traces are found no further job starts (except with
//! `with(most_recent=true)`, which reads everything and keeps the newest). Evaluation runs on
//! blocking threads, never on the runtime.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use vivace_common::{Status, StatusCode, TenantId, TraceId};
use vivace_proto::otlp::common::{AnyValue, ArrayValue, KeyValue, any_value};
use vivace_proto::tempopb::{
    SearchMetrics, SearchResponse, ServiceStats, Span as ResultSpan, SpanSet, TraceSearchMetadata,
};
use vivace_traceql::ast::StatusValue;
use vivace_traceql::batch::SpanBatch;
use vivace_traceql::eval::{OwnedValue, SearchPlan, Spanset, go_duration};

use crate::params;
use crate::source::{FetchedBatch, SearchJob, SearchSource};

/// `rootServiceName` of a trace whose root span has not arrived (Tempo's text).
pub const ROOT_NOT_RECEIVED: &str = "<root span not yet received>";

/// Search settings (`query_frontend.search`, `querier.search`).
#[derive(Debug, Clone)]
pub struct SearchConfig {
    pub default_result_limit: u32,
    pub max_result_limit: u32,
    pub default_spans_per_span_set: u32,
    pub max_spans_per_span_set: u32,
    /// Longest range a search may cover (`query_frontend.search.max_duration`, 168h).
    pub max_duration: Duration,
    /// How much of the newest data a search leaves out (`query_end_cutoff`). Tempo: 30s;
    /// vivace: 0, since recent spans are searchable at once.
    pub query_end_cutoff: Duration,
    /// `querier.search.query_timeout`.
    pub query_timeout: Duration,
    /// Jobs fetched and evaluated at once.
    pub concurrent_jobs: usize,
    /// Longest query text (`max_query_expression_size_bytes`).
    pub max_query_bytes: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            default_result_limit: 20,
            max_result_limit: 262_144,
            default_spans_per_span_set: 3,
            max_spans_per_span_set: 100,
            max_duration: Duration::from_secs(168 * 3600),
            query_end_cutoff: Duration::ZERO,
            query_timeout: Duration::from_secs(30),
            concurrent_jobs: 4,
            max_query_bytes: 128 * 1024,
        }
    }
}

/// A parsed search request.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: String,
    pub limit: usize,
    /// Spans returned per spanset; 0 = all.
    pub spss: usize,
    pub start: i64,
    pub end: i64,
    pub min_duration_opt: Option<Duration>,
    pub max_duration_opt: Option<Duration>,
}

impl SearchRequest {
    /// From `/api/search` query parameters.
    pub fn from_params(
        q: &HashMap<String, String>,
        cfg: &SearchConfig,
    ) -> Result<SearchRequest, Status> {
        let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let query = match (get("q"), get("tags")) {
            (Some(_), Some(_)) => {
                return Err(Status::bad_request(
                    "invalid request: q and tags cannot both be set",
                ));
            }
            (Some(q), None) => q.to_string(),
            (None, Some(tags)) => tags_to_traceql(tags)?,
            (None, None) => "{}".to_string(),
        };
        let (start, end) = params::time_range(
            q,
            Duration::from_secs(15 * 60),
            cfg.query_end_cutoff,
            Some(cfg.max_duration),
        )?;
        let min = get("minDuration")
            .map(|v| params::parse_duration("minDuration", v))
            .transpose()?;
        let max = get("maxDuration")
            .map(|v| params::parse_duration("maxDuration", v))
            .transpose()?;
        if let (Some(a), Some(b)) = (min, max)
            && b < a
        {
            return Err(Status::bad_request(
                "invalid maxDuration: must be greater than minDuration",
            ));
        }
        let limit = params::uint(q, "limit", u64::from(cfg.default_result_limit))?;
        let spss = params::uint(q, "spss", u64::from(cfg.default_spans_per_span_set))?;
        SearchRequest {
            query,
            limit: limit as usize,
            spss: spss as usize,
            start,
            end,
            min_duration_opt: min,
            max_duration_opt: max,
        }
        .checked(cfg)
    }

    /// Applies the limits of `cfg`.
    pub fn checked(self, cfg: &SearchConfig) -> Result<SearchRequest, Status> {
        if self.limit == 0 {
            return Err(Status::bad_request(
                "invalid limit: must be a positive number",
            ));
        }
        if self.limit > cfg.max_result_limit as usize {
            return Err(Status::bad_request(format!(
                "limit {} exceeds max limit {}",
                self.limit, cfg.max_result_limit
            )));
        }
        if self.spss > cfg.max_spans_per_span_set as usize {
            return Err(Status::bad_request(format!(
                "spans per span set {} exceeds max {}",
                self.spss, cfg.max_spans_per_span_set
            )));
        }
        if self.query.len() > cfg.max_query_bytes {
            return Err(Status::bad_request(format!(
                "TraceQL query exceeds max size: {} bytes > {} bytes",
                self.query.len(),
                cfg.max_query_bytes
            )));
        }
        Ok(self)
    }
}

/// The legacy logfmt `tags` search as TraceQL: `k=v` pairs ANDed in one filter, `name` the
/// span name, `status.code` the status, `error=true` an error status, anything else an
/// unscoped attribute.
pub fn tags_to_traceql(tags: &str) -> Result<String, Status> {
    let mut conds = Vec::new();
    for (k, v) in logfmt(tags).map_err(|e| Status::bad_request(format!("invalid tags: {e}")))? {
        let quoted = serde_json::to_string(&v).unwrap_or_default();
        conds.push(match k.as_str() {
            "name" => format!("name = {quoted}"),
            "status.code" => match v.as_str() {
                "error" | "2" | "STATUS_CODE_ERROR" => "status = error".into(),
                "ok" | "1" | "STATUS_CODE_OK" => "status = ok".into(),
                _ => "status = unset".into(),
            },
            "error" if v == "true" => "status = error".into(),
            _ => {
                let name = if k.chars().all(|c| c.is_alphanumeric() || "._-/".contains(c)) {
                    format!(".{k}")
                } else {
                    format!(".{}", serde_json::to_string(&k).unwrap_or_default())
                };
                format!("{name} = {quoted}")
            }
        });
    }
    if conds.is_empty() {
        return Ok("{}".into());
    }
    Ok(format!("{{ {} }}", conds.join(" && ")))
}

fn logfmt(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("expected = after {key}"));
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated quote".into()),
                    Some('"') => break,
                    Some('\\') => {
                        if let Some(c) = chars.next() {
                            val.push(c)
                        }
                    }
                    Some(c) => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        out.push((key, val));
    }
}

/// Parses and compiles a TraceQL search, with Tempo's error texts.
pub fn plan(query: &str) -> Result<SearchPlan, Status> {
    let q = vivace_traceql::parse(query)
        .map_err(|e| Status::bad_request(format!("invalid TraceQL query: {e}")))?;
    SearchPlan::new(&q).map_err(|e| Status::bad_request(format!("invalid TraceQL query: {e}")))
}

/// Traces found so far, merged across jobs, with the metrics of the jobs.
#[derive(Debug, Default)]
pub struct Combiner {
    limit: usize,
    most_recent: bool,
    traces: HashMap<String, TraceSearchMetadata>,
    /// Arrival order, for "the first traces found win".
    order: Vec<String>,
    /// Traces added or merged into since the last diff was sent (streaming sends only those).
    changed: HashSet<String>,
    pub metrics: SearchMetrics,
}

impl Combiner {
    pub fn new(limit: usize, most_recent: bool) -> Combiner {
        Combiner {
            limit,
            most_recent,
            ..Default::default()
        }
    }

    /// Whether enough traces were found for no more jobs to be needed.
    pub fn is_complete(&self) -> bool {
        !self.most_recent && self.traces.len() >= self.limit
    }

    pub fn add(&mut self, t: TraceSearchMetadata) {
        match self.traces.get_mut(&t.trace_id) {
            Some(old) => {
                merge(old, t);
                self.changed.insert(old.trace_id.clone());
            }
            None => {
                if self.is_complete() {
                    return;
                }
                self.order.push(t.trace_id.clone());
                self.changed.insert(t.trace_id.clone());
                self.traces.insert(t.trace_id.clone(), t);
            }
        }
    }

    /// The response: at most `limit` traces, newest first.
    pub fn response(&self) -> SearchResponse {
        self.answer(|_| true)
    }

    /// What a stream sends while jobs run (Tempo's diff): the traces of the response added or
    /// changed since they were last `sent`, with the cumulative metrics. A changed trace the
    /// response leaves out stays changed: it may enter later (most recent first, when a trace
    /// above it merges an older fragment).
    pub fn diff(&self) -> SearchResponse {
        self.answer(|id| self.changed.contains(id))
    }

    /// The traces of a `diff` reached the client.
    pub fn sent(&mut self, diff: &SearchResponse) {
        for t in &diff.traces {
            self.changed.remove(&t.trace_id);
        }
    }

    fn answer(&self, wanted: impl Fn(&str) -> bool) -> SearchResponse {
        let mut traces: Vec<TraceSearchMetadata> = self
            .order
            .iter()
            .filter_map(|id| self.traces.get(id).cloned())
            .collect();
        if self.most_recent {
            traces.sort_by(|a, b| {
                b.start_time_unix_nano
                    .cmp(&a.start_time_unix_nano)
                    .then_with(|| a.trace_id.cmp(&b.trace_id))
            });
            traces.truncate(self.limit);
        } else {
            traces.truncate(self.limit);
            traces.sort_by(|a, b| {
                b.start_time_unix_nano
                    .cmp(&a.start_time_unix_nano)
                    .then_with(|| a.trace_id.cmp(&b.trace_id))
            });
        }
        traces.retain(|t| wanted(&t.trace_id));
        SearchResponse {
            traces,
            metrics: Some(self.metrics.clone()),
        }
    }
}

/// The identity of a spanset across jobs: its `by()` attributes.
fn identity(s: &SpanSet) -> String {
    let mut parts: Vec<String> = s
        .attributes
        .iter()
        .filter(|kv| kv.key.starts_with("by("))
        .map(|kv| format!("{}={:?}", kv.key, kv.value))
        .collect();
    parts.sort();
    parts.join("\u{1}")
}

/// Merges a fragment of a trace found by another job into what was found before.
fn merge(old: &mut TraceSearchMetadata, new: TraceSearchMetadata) {
    let old_end = old.start_time_unix_nano + u64::from(old.duration_ms) * 1_000_000;
    let new_end = new.start_time_unix_nano + u64::from(new.duration_ms) * 1_000_000;
    if old.root_service_name == ROOT_NOT_RECEIVED && new.root_service_name != ROOT_NOT_RECEIVED {
        old.root_service_name = new.root_service_name;
        old.root_trace_name = new.root_trace_name;
    }
    old.start_time_unix_nano = old.start_time_unix_nano.min(new.start_time_unix_nano);
    old.duration_ms = ((old_end.max(new_end) - old.start_time_unix_nano) / 1_000_000)
        .min(u64::from(u32::MAX)) as u32;
    for (svc, st) in new.service_stats {
        let e = old.service_stats.entry(svc).or_default();
        e.span_count = e.span_count.max(st.span_count);
        e.error_count = e.error_count.max(st.error_count);
    }
    for set in new.span_sets {
        let id = identity(&set);
        match old.span_sets.iter_mut().find(|s| identity(s) == id) {
            Some(s) => {
                if set.matched > s.matched {
                    *s = set;
                }
            }
            None => old.span_sets.push(set),
        }
    }
    old.span_set = old.span_sets.first().cloned();
}

/// What one batch contributed: traces and what was inspected.
#[derive(Debug, Default)]
pub struct BatchResult {
    pub traces: Vec<TraceSearchMetadata>,
    pub inspected_traces: u64,
    pub inspected_spans: u64,
}

/// Evaluates the plan over one batch (CPU work: call on a blocking thread).
pub fn search_batch(
    plan: &SearchPlan,
    fetched: &FetchedBatch,
    req: &SearchRequest,
) -> Result<BatchResult, Status> {
    let batch: &SpanBatch = &fetched.batch;
    let mut out = BatchResult::default();
    if plan.matches_nothing {
        return Ok(out);
    }
    // Traces are still counted as inspected: the batch was read.
    let ruled_out = plan.rules_out(batch);
    let bound = plan.bind(batch);
    let (start_ns, end_ns) = (
        (req.start.max(0) as u64).saturating_mul(1_000_000_000),
        (req.end.max(0) as u64)
            .saturating_add(1)
            .saturating_mul(1_000_000_000),
    );
    // Without `most_recent`, any `limit` matches answer the search: a batch stops there (the
    // combiner keeps the first it is given, so more from one batch would be dropped anyway).
    let enough = if plan.most_recent {
        usize::MAX
    } else {
        req.limit.max(1)
    };
    for t in fetched.trace_indexes() {
        if out.traces.len() >= enough {
            break;
        }
        let trace = &batch.traces[t];
        if trace.start_ns >= end_ns || trace.end_ns < start_ns {
            continue;
        }
        out.inspected_traces += 1;
        out.inspected_spans += trace.spans.len() as u64;
        if ruled_out {
            continue;
        }
        let dur = trace.end_ns.saturating_sub(trace.start_ns);
        if req
            .min_duration_opt
            .is_some_and(|m| dur < m.as_nanos() as u64)
            || req
                .max_duration_opt
                .is_some_and(|m| dur > m.as_nanos() as u64)
        {
            continue;
        }
        let sets = bound
            .eval_trace(t)
            .map_err(|e| Status::bad_request(format!("invalid TraceQL query: {e}")))?;
        if sets.is_empty() {
            continue;
        }
        out.traces.push(metadata(&bound, t, &sets, req.spss));
    }
    Ok(out)
}

fn metadata(
    bound: &vivace_traceql::eval::Bound<'_, '_>,
    t: usize,
    sets: &[Spanset],
    spss: usize,
) -> TraceSearchMetadata {
    let b = bound.batch();
    let trace = &b.traces[t];
    let mut stats: BTreeMap<String, ServiceStats> = BTreeMap::new();
    for s in trace.spans.clone() {
        let s = s as usize;
        let svc = b
            .resources
            .get(b.span_resource[s] as usize)
            .and_then(|r| r.service_opt)
            .map_or("", |id| b.str(id));
        let e = stats.entry(svc.to_string()).or_default();
        e.span_count += 1;
        if b.span_status[s] == StatusValue::Error {
            e.error_count += 1;
        }
    }
    let span_sets: Vec<SpanSet> = sets
        .iter()
        .map(|set| {
            let take = if spss == 0 { set.spans.len() } else { spss };
            // Spans by start time (then ID): the same order whatever the storage order of the
            // live-store, a block or a compacted block.
            let mut ordered = set.spans.clone();
            ordered.sort_by_key(|&s| (b.span_start_ns[s as usize], b.span_id[s as usize]));
            SpanSet {
                spans: ordered
                    .iter()
                    .take(take)
                    .map(|&s| ResultSpan {
                        span_id: hex::encode(b.span_id[s as usize]),
                        name: b.str(b.span_name[s as usize]).to_string(),
                        start_time_unix_nano: b.span_start_ns[s as usize],
                        duration_nanos: b.span_duration_ns[s as usize],
                        attributes: bound
                            .span_attributes(s)
                            .into_iter()
                            .map(|(k, v)| key_value(k, v))
                            .collect(),
                    })
                    .collect(),
                matched: set.spans.len() as u32,
                attributes: set
                    .attrs
                    .iter()
                    .map(|(k, v)| key_value(k.clone(), v.clone()))
                    .collect(),
            }
        })
        .collect();
    TraceSearchMetadata {
        trace_id: TraceId(trace.id).to_trimmed_hex(),
        root_service_name: trace
            .root_service_opt
            .map_or(ROOT_NOT_RECEIVED.to_string(), |id| b.str(id).to_string()),
        root_trace_name: trace
            .root_name_opt
            .map_or(String::new(), |id| b.str(id).to_string()),
        start_time_unix_nano: trace.start_ns,
        duration_ms: (trace.end_ns.saturating_sub(trace.start_ns) / 1_000_000)
            .min(u64::from(u32::MAX)) as u32,
        span_set: span_sets.first().cloned(),
        span_sets,
        service_stats: stats.into_iter().collect(),
    }
}

/// A result attribute in OTLP form: durations as Go duration strings, status and kind as
/// strings, a missing `by()` value as the string `nil` (as Tempo shows it).
pub(crate) fn key_value(key: String, v: OwnedValue) -> KeyValue {
    use any_value::Value as V;
    let value = match v {
        OwnedValue::Nil => V::StringValue("nil".into()),
        OwnedValue::Int(i) => V::IntValue(i),
        OwnedValue::Float(f) => V::DoubleValue(f),
        OwnedValue::Str(s) => V::StringValue(s),
        OwnedValue::Bool(b) => V::BoolValue(b),
        OwnedValue::Duration(d) => V::StringValue(go_duration(d)),
        OwnedValue::Status(s) => V::StringValue(vivace_traceql::eval::status_text(s).into()),
        OwnedValue::Kind(k) => V::StringValue(vivace_traceql::eval::kind_text(k).into()),
        OwnedValue::StrArr(a) => array(a.into_iter().map(V::StringValue)),
        OwnedValue::IntArr(a) => array(a.into_iter().map(V::IntValue)),
        OwnedValue::FloatArr(a) => array(a.into_iter().map(V::DoubleValue)),
        OwnedValue::BoolArr(a) => array(a.into_iter().map(V::BoolValue)),
    };
    KeyValue {
        key,
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn array(vals: impl Iterator<Item = any_value::Value>) -> any_value::Value {
    any_value::Value::ArrayValue(ArrayValue {
        values: vals.map(|v| AnyValue { value: Some(v) }).collect(),
    })
}

/// The jobs of every source for every tenant, most recent first, live data before blocks.
pub(crate) async fn collect_jobs(
    sources: &[Arc<dyn SearchSource>],
    tenants: &[TenantId],
    start: i64,
    end: i64,
    fetch: &vivace_traceql::batch::Fetch,
) -> Result<Vec<SearchJob>, Status> {
    let mut jobs = Vec::new();
    for tenant in tenants {
        for src in sources {
            jobs.extend(src.search_jobs(tenant, start, end, fetch).await?);
        }
    }
    jobs.sort_by(|a, b| {
        a.is_block
            .cmp(&b.is_block)
            .then(b.end_secs.cmp(&a.end_secs))
    });
    Ok(jobs)
}

/// Runs `jobs`, at most `concurrency` at a time, each fetched and then handed to `each` (so
/// evaluations of different jobs overlap, as their fetches do), until one `each` answers
/// `false` — the jobs still running are dropped — or the jobs run out. Returns the number of
/// jobs completed.
pub(crate) async fn run_jobs<F>(
    jobs: Vec<SearchJob>,
    concurrency: usize,
    each: F,
) -> Result<u32, Status>
where
    F: Fn(FetchedBatch) -> futures::future::BoxFuture<'static, Result<bool, Status>>,
{
    let each = &each;
    let mut stream = futures::stream::iter(jobs.into_iter().map(|j| {
        let what = j.what;
        async move {
            let fetched = j
                .fetch
                .await
                .map_err(|e| Status::new(e.code, format!("{what}: {}", e.message)))?;
            each(fetched).await
        }
    }))
    .buffer_unordered(concurrency.max(1));
    let mut done = 0u32;
    while let Some(r) = stream.next().await {
        done += 1;
        if !r? {
            break;
        }
    }
    Ok(done)
}

/// Drives `work` to its end within `timeout`, calling `on_tick` every 500 ms meanwhile (the
/// partial answers of a stream). Past the timeout: 504 naming `what`.
pub(crate) async fn with_progress(
    work: impl std::future::Future<Output = Result<(), Status>>,
    timeout: Duration,
    what: &str,
    mut on_tick: impl FnMut(),
) -> Result<(), Status> {
    tokio::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.tick().await;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            r = &mut work => return r,
            _ = tick.tick() => on_tick(),
            _ = &mut deadline => {
                return Err(Status::new(
                    StatusCode::Timeout,
                    format!("{what} timed out after {timeout:?} (querier.search.query_timeout)"),
                ));
            }
        }
    }
}

/// Runs a whole search: jobs, evaluation, combining, the timeout. `on_progress` sees the
/// combiner after each job (for streaming).
pub async fn search(
    sources: &[Arc<dyn SearchSource>],
    tenants: &[TenantId],
    req: &SearchRequest,
    cfg: &SearchConfig,
    mut on_progress: impl FnMut(&mut Combiner) + Send,
) -> Result<SearchResponse, Status> {
    let plan = Arc::new(plan(&req.query)?);
    let combiner = Arc::new(parking_lot::Mutex::new(Combiner::new(
        req.limit,
        plan.most_recent,
    )));
    if plan.matches_nothing {
        return Ok(combiner.lock().response());
    }
    let work = async {
        let mut fetch = plan.fetch();
        if !plan.most_recent {
            fetch.limit_opt = Some(req.limit);
        }
        let jobs = collect_jobs(sources, tenants, req.start, req.end, &fetch).await?;
        {
            let mut c = combiner.lock();
            c.metrics.total_jobs = jobs.len() as u32;
            c.metrics.total_blocks = jobs.iter().filter(|j| j.counts_block).count() as u32;
            c.metrics.total_block_bytes = jobs.iter().map(|j| j.block_bytes).sum();
        }
        let req = Arc::new(req.clone());
        // Recent data first, blocks only when it did not find enough: block reads already
        // started when the limit is reached still finish, so none start needlessly.
        let (live, blocks): (Vec<SearchJob>, Vec<SearchJob>) =
            jobs.into_iter().partition(|j| !j.is_block);
        for jobs in [live, blocks] {
            if jobs.is_empty() || combiner.lock().is_complete() {
                continue;
            }
            run_jobs(jobs, cfg.concurrent_jobs, |fetched| {
                let (plan, req, combiner) = (plan.clone(), req.clone(), combiner.clone());
                Box::pin(async move {
                    let mut next = Some(fetched);
                    let mut first = true;
                    while let Some(mut fetched) = next.take() {
                        let more_opt = fetched.more_opt.take();
                        let bytes = fetched.inspected_bytes;
                        // A prefilter saw every trace; the batch holds only those that passed.
                        let pre_opt = fetched.prefiltered_opt;
                        let (plan, req) = (plan.clone(), req.clone());
                        let r = tokio::task::spawn_blocking(move || {
                            search_batch(&plan, &fetched, &req)
                        })
                        .await
                        .map_err(|e| Status::internal(format!("search task failed: {e}")))??;
                        let complete = {
                            let mut c = combiner.lock();
                            c.metrics.completed_jobs += u32::from(first);
                            c.metrics.inspected_bytes += bytes;
                            c.metrics.inspected_traces +=
                                pre_opt.map_or(r.inspected_traces as u32, |p| p.traces as u32);
                            c.metrics.inspected_spans +=
                                pre_opt.map_or(r.inspected_spans, |p| p.spans);
                            for t in r.traces {
                                c.add(t);
                            }
                            c.is_complete()
                        };
                        first = false;
                        if complete {
                            return Ok(false);
                        }
                        // The rest of the job, only now that it is wanted.
                        if let Some(more) = more_opt {
                            next = Some(more.0.await?);
                        }
                    }
                    Ok(true)
                })
            })
            .await?;
        }
        Ok::<(), Status>(())
    };
    with_progress(work, cfg.query_timeout, "search", || {
        on_progress(&mut combiner.lock())
    })
    .await?;
    let resp = combiner.lock().response();
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_tags_become_traceql() {
        assert_eq!(
            tags_to_traceql(r#"service.name=api name="GET /x" error=true"#).unwrap(),
            r#"{ .service.name = "api" && name = "GET /x" && status = error }"#
        );
        assert!(plan(&tags_to_traceql("http.status_code=500").unwrap()).is_ok());
        assert!(tags_to_traceql("broken").is_err());
    }

    /// A trace found with `matched` spans, starting at `start`.
    fn t(id: &str, start: u64, matched: u32) -> TraceSearchMetadata {
        TraceSearchMetadata {
            trace_id: id.into(),
            root_service_name: ROOT_NOT_RECEIVED.into(),
            start_time_unix_nano: start,
            span_sets: vec![SpanSet {
                matched,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn combiner_keeps_first_found_and_merges_fragments() {
        let mut c = Combiner::new(2, false);
        c.add(t("a", 10, 1));
        c.add(t("b", 30, 1));
        c.add(t("c", 50, 1));
        c.add(t("a", 5, 3));
        assert!(c.is_complete());
        let r = c.response();
        let ids: Vec<&str> = r.traces.iter().map(|t| t.trace_id.as_str()).collect();
        assert_eq!(ids, vec!["b", "a"]);
        assert_eq!(r.traces[1].start_time_unix_nano, 5);
        assert_eq!(r.traces[1].span_sets.len(), 1);
        assert_eq!(r.traces[1].span_sets[0].matched, 3);
        let mut c = Combiner::new(2, true);
        for x in [t("a", 10, 1), t("b", 30, 1), t("c", 50, 1)] {
            c.add(x);
        }
        let ids: Vec<String> = c
            .response()
            .traces
            .into_iter()
            .map(|t| t.trace_id)
            .collect();
        assert_eq!(ids, vec!["c", "b"]);
    }

    #[test]
    fn diffs_carry_what_changed_since_it_was_sent() {
        let ids = |r: SearchResponse| -> Vec<String> {
            r.traces.into_iter().map(|t| t.trace_id).collect()
        };
        let mut c = Combiner::new(3, false);
        c.add(t("a", 10, 1));
        c.add(t("b", 30, 1));
        let d = c.diff();
        assert_eq!(ids(d.clone()), vec!["b", "a"]);
        c.sent(&d);
        assert!(c.diff().traces.is_empty(), "nothing changed since");
        c.add(t("a", 5, 2));
        c.add(t("c", 20, 1));
        let d = c.diff();
        assert_eq!(ids(d.clone()), vec!["c", "a"]);
        assert_eq!(
            d.traces[1].span_sets[0].matched, 2,
            "a diff carries the merged trace"
        );
        // Not sent (the client was slow): the next diff still carries it.
        c.add(t("b", 30, 4));
        assert_eq!(ids(c.diff()), vec!["b", "c", "a"]);
        assert_eq!(ids(c.response()), vec!["b", "c", "a"]);

        // Most recent first: a trace left out enters once the one above it turns older, and
        // its diff carries it although it changed before the last diff was sent.
        let mut c = Combiner::new(2, true);
        for x in [t("a", 10, 1), t("b", 30, 1), t("c", 50, 1)] {
            c.add(x);
        }
        let d = c.diff();
        assert_eq!(ids(d.clone()), vec!["c", "b"]);
        c.sent(&d);
        c.add(t("b", 5, 1));
        assert_eq!(ids(c.diff()), vec!["a"], "b is out now, a in");
    }
}
