//! Tag names and tag values (compatibility notes §1.7, §1.8), collected from the same batches
//! search reads, over the requested time range, optionally restricted to the spans a query
//! matches (`q`), bounded in count and bytes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use vivace_common::{Status, TenantId};
use vivace_proto::tempopb::{MetadataMetrics, TagValue};
use vivace_traceql::ast::{AttrScope, Attribute, Body, FieldExpr, Intrinsic, SpansetExpr, Stage};
use vivace_traceql::batch::{Projection, SpanBatch, Stored, StrId};
use vivace_traceql::eval::SearchPlan;

use crate::search::{collect_jobs, run_jobs};
use crate::source::{FetchedBatch, SearchSource};

/// Intrinsics as Tempo lists them in the `intrinsic` scope (nested-set ones left out).
pub const INTRINSICS: &[&str] = &[
    "duration",
    "name",
    "status",
    "statusMessage",
    "kind",
    "rootServiceName",
    "rootName",
    "traceDuration",
    "event:name",
    "event:timeSinceStart",
    "link:spanID",
    "link:traceID",
    "instrumentation:name",
    "instrumentation:version",
    "trace:id",
    "span:id",
    "span:parentID",
    "span:status",
    "span:statusMessage",
    "span:duration",
    "span:name",
    "span:kind",
    "trace:rootName",
    "trace:rootService",
    "trace:duration",
];

/// Attribute scopes of tag names, in the order v2 lists them.
pub const SCOPES: &[&str] = &["resource", "span", "event", "link", "instrumentation"];

/// A tag request's common part.
#[derive(Debug, Clone)]
pub struct TagRequest {
    pub start: i64,
    pub end: i64,
    /// Spans to collect from (`q`), when it is a usable search query.
    pub plan_opt: Option<Arc<SearchPlan>>,
    /// Most names per scope / values; 0 = no limit.
    pub limit: usize,
    /// Stop after this many values already seen in a row; 0 = never.
    pub max_stale: usize,
    /// `read.max_bytes_per_tag_values_query`.
    pub max_bytes: usize,
}

impl TagRequest {
    /// Whether one more value of `len` bytes fits after `held` values of `bytes` bytes
    /// (`limit`, `max_bytes`).
    fn admits(&self, held: usize, bytes: usize, len: usize) -> bool {
        !((self.limit > 0 && held >= self.limit)
            || (self.max_bytes > 0 && bytes + len > self.max_bytes))
    }
}

/// A best-effort filter from `q`: a query that does not parse or is not a search is ignored,
/// as Tempo tolerates incomplete queries while the user types.
pub fn lenient_plan(q: Option<&str>) -> Option<Arc<SearchPlan>> {
    let q = q?.trim();
    if q.is_empty() || q == "{}" || q == "{ }" {
        return None;
    }
    let parsed = vivace_traceql::parse(q).ok()?;
    SearchPlan::new(&parsed).ok().map(Arc::new)
}

/// Which spans of a batch count: in the time range, and matched by the plan if any.
fn spans_of(fetched: &FetchedBatch, req: &TagRequest) -> Vec<u32> {
    let batch: &SpanBatch = &fetched.batch;
    let (start_ns, end_ns) = (
        (req.start.max(0) as u64).saturating_mul(1_000_000_000),
        (req.end.max(0) as u64)
            .saturating_add(1)
            .saturating_mul(1_000_000_000),
    );
    let bound = req.plan_opt.as_ref().map(|p| p.bind(batch));
    let mut out = Vec::new();
    for t in fetched.trace_indexes() {
        let trace = &batch.traces[t];
        if trace.start_ns >= end_ns || trace.end_ns < start_ns {
            continue;
        }
        match &bound {
            None => out.extend(trace.spans.clone()),
            Some(b) => {
                let mut spans: Vec<u32> = b
                    .eval_trace(t)
                    .unwrap_or_default()
                    .into_iter()
                    .flat_map(|s| s.spans)
                    .collect();
                spans.sort_unstable();
                spans.dedup();
                out.extend(spans);
            }
        }
    }
    out
}

/// Attribute names per scope in one batch.
fn names_in(
    fetched: &FetchedBatch,
    req: &TagRequest,
    scopes: &[&str],
) -> HashMap<&'static str, BTreeSet<String>> {
    let batch: &SpanBatch = &fetched.batch;
    let spans = spans_of(fetched, req);
    let mut out = HashMap::new();
    // Per scope, one flag per dictionary string: a name is marked however many spans carry it.
    for scope in SCOPES.iter().filter(|s| scopes.contains(s)) {
        let mut seen = vec![false; batch.string_count()];
        let mut mark = |r: &std::ops::Range<u32>| {
            for &k in &batch.attr_key[r.start as usize..r.end as usize] {
                seen[k as usize] = true;
            }
        };
        match *scope {
            "span" => spans
                .iter()
                .for_each(|&s| mark(&batch.span_attrs[s as usize])),
            // Each resource or scope once, however many spans share it.
            "resource" | "instrumentation" => {
                let rows: Vec<&std::ops::Range<u32>> = if *scope == "resource" {
                    batch.resources.iter().map(|r| &r.attrs).collect()
                } else {
                    batch.scopes.iter().map(|s| &s.attrs).collect()
                };
                let owner = if *scope == "resource" {
                    &batch.span_resource
                } else {
                    &batch.span_scope
                };
                let mut done = vec![false; rows.len()];
                for &s in &spans {
                    let i = owner[s as usize] as usize;
                    if let Some(r) = rows.get(i)
                        && !std::mem::replace(&mut done[i], true)
                    {
                        mark(r);
                    }
                }
            }
            "event" => {
                for &s in &spans {
                    let r = &batch.span_events[s as usize];
                    for e in &batch.events[r.start as usize..r.end as usize] {
                        mark(&e.attrs);
                    }
                }
            }
            "link" => {
                for &s in &spans {
                    let r = &batch.span_links[s as usize];
                    for l in &batch.links[r.start as usize..r.end as usize] {
                        mark(&l.attrs);
                    }
                }
            }
            _ => {}
        }
        let names = seen
            .iter()
            .enumerate()
            .filter(|(_, on)| **on)
            .map(|(id, _)| batch.str(id as StrId).to_string())
            .collect();
        out.insert(*scope, names);
    }
    out
}

/// The tag to read values of.
#[derive(Debug, Clone, PartialEq)]
pub enum TagRef {
    Attr(AttrScope, String),
    Intrinsic(Intrinsic),
}

/// A v2 tag name (`resource.x`, `span.x`, `.x`, an intrinsic), parsed as TraceQL.
pub fn parse_tag_v2(tag: &str) -> Result<TagRef, Status> {
    let bad = || Status::bad_request("tag name is not valid intrinsic or scoped attribute");
    let q = vivace_traceql::parse_unvalidated(&format!("{{ {tag} }}")).map_err(|_| bad())?;
    let Body::Search(p) = q.body else {
        return Err(bad());
    };
    match p.stages.as_slice() {
        [Stage::Spanset(SpansetExpr::Filter(FieldExpr::Attribute(a), _))] if !a.parent => {
            Ok(match a.intrinsic {
                Some(i) => TagRef::Intrinsic(i),
                None => TagRef::Attr(a.scope, a.name.clone()),
            })
        }
        _ => Err(bad()),
    }
}

fn fmt_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

fn typed(batch: &SpanBatch, v: Stored, out: &mut Vec<(&'static str, String)>) {
    match v {
        Stored::Str(id) => out.push(("string", batch.str(id).to_string())),
        Stored::Int(i) => out.push(("int", i.to_string())),
        Stored::Float(f) => out.push(("float", fmt_float(f))),
        Stored::Bool(b) => out.push(("bool", b.to_string())),
        Stored::StrArr(at, n) => {
            for id in &batch.arr_str[at as usize..(at + n) as usize] {
                out.push(("string", batch.str(*id).to_string()));
            }
        }
        Stored::IntArr(at, n) => {
            for i in &batch.arr_int[at as usize..(at + n) as usize] {
                out.push(("int", i.to_string()));
            }
        }
        Stored::FloatArr(at, n) => {
            for f in &batch.arr_float[at as usize..(at + n) as usize] {
                out.push(("float", fmt_float(*f)));
            }
        }
        Stored::BoolArr(at, n) => {
            for b in &batch.arr_bool[at as usize..(at + n) as usize] {
                out.push(("bool", b.to_string()));
            }
        }
    }
}

/// Values of `tag` in one batch, typed, in first-seen order.
fn values_in(
    fetched: &FetchedBatch,
    req: &TagRequest,
    tag: &TagRef,
) -> Vec<(&'static str, String)> {
    let batch: &SpanBatch = &fetched.batch;
    let spans = spans_of(fetched, req);
    let mut out = Vec::new();
    match tag {
        TagRef::Attr(scope, name) => {
            let Some(key) = batch.lookup(name) else {
                return out;
            };
            for &s in &spans {
                let s = s as usize;
                let mut look = |attrs: &std::ops::Range<u32>| {
                    if let Some(v) = batch.find_attr(attrs, key) {
                        typed(batch, v, &mut out);
                    }
                };
                let res = batch.resources.get(batch.span_resource[s] as usize);
                match scope {
                    AttrScope::Span => look(&batch.span_attrs[s]),
                    AttrScope::Resource => {
                        if let Some(r) = res {
                            look(&r.attrs)
                        }
                    }
                    AttrScope::None => {
                        look(&batch.span_attrs[s]);
                        if let Some(r) = res {
                            look(&r.attrs)
                        }
                    }
                    AttrScope::Instrumentation => {
                        if let Some(sc) = batch.scopes.get(batch.span_scope[s] as usize) {
                            look(&sc.attrs)
                        }
                    }
                    AttrScope::Event => {
                        for e in batch.span_events[s].clone() {
                            look(&batch.events[e as usize].attrs)
                        }
                    }
                    AttrScope::Link => {
                        for l in batch.span_links[s].clone() {
                            look(&batch.links[l as usize].attrs)
                        }
                    }
                }
            }
        }
        TagRef::Intrinsic(i) => {
            for &s in &spans {
                let s = s as usize;
                let trace = &batch.traces[batch.span_trace[s] as usize];
                let v = match i {
                    Intrinsic::Name => Some(batch.span_name[s]),
                    Intrinsic::StatusMessage => Some(batch.span_status_message[s]),
                    Intrinsic::TraceRootName => trace.root_name_opt,
                    Intrinsic::TraceRootService => trace.root_service_opt,
                    Intrinsic::InstrumentationName => batch
                        .scopes
                        .get(batch.span_scope[s] as usize)
                        .map(|sc| sc.name),
                    Intrinsic::InstrumentationVersion => batch
                        .scopes
                        .get(batch.span_scope[s] as usize)
                        .map(|sc| sc.version),
                    Intrinsic::EventName => {
                        for e in batch.span_events[s].clone() {
                            out.push((
                                "string",
                                batch.str(batch.events[e as usize].name).to_string(),
                            ));
                        }
                        None
                    }
                    _ => None,
                };
                if let Some(id) = v {
                    out.push(("string", batch.str(id).to_string()));
                }
            }
        }
    }
    out
}

/// Values of intrinsics that are a fixed list (Tempo's virtual values), or `None`.
pub fn virtual_values_v2(tag: &TagRef) -> Option<Vec<TagValue>> {
    let kw = |v: &[&str]| {
        v.iter()
            .map(|x| TagValue {
                r#type: "keyword".into(),
                value: (*x).into(),
            })
            .collect()
    };
    match tag {
        TagRef::Intrinsic(Intrinsic::Status) => Some(kw(&["ok", "error", "unset"])),
        TagRef::Intrinsic(Intrinsic::Kind) => Some(kw(&[
            "client",
            "server",
            "producer",
            "consumer",
            "internal",
            "unspecified",
        ])),
        TagRef::Intrinsic(
            Intrinsic::Duration
            | Intrinsic::TraceDuration
            | Intrinsic::EventTimeSinceStart
            | Intrinsic::SpanId
            | Intrinsic::ParentId
            | Intrinsic::TraceId
            | Intrinsic::LinkSpanId
            | Intrinsic::LinkTraceId
            | Intrinsic::ChildCount
            | Intrinsic::NestedSetLeft
            | Intrinsic::NestedSetRight
            | Intrinsic::NestedSetParent
            | Intrinsic::Parent,
        ) => Some(Vec::new()),
        _ => None,
    }
}

/// Runs the jobs of a tag request and hands each batch to `collect` (on a blocking thread)
/// until it answers false. Returns the metrics.
async fn collect<T: Send + 'static>(
    sources: &[Arc<dyn SearchSource>],
    tenants: &[TenantId],
    req: &TagRequest,
    proj: Projection,
    concurrency: usize,
    state: Arc<Mutex<T>>,
    collect: fn(&FetchedBatch, &TagRequest, &mut T) -> bool,
) -> Result<MetadataMetrics, Status> {
    let proj = match &req.plan_opt {
        Some(p) => proj.union(p.projection),
        None => proj,
    };
    let fetch = vivace_traceql::batch::Fetch {
        projection: proj,
        required: req
            .plan_opt
            .as_ref()
            .map(|p| p.required.clone())
            .unwrap_or_default(),
        // Every attribute may be collected, so none is left out…
        names_opt: None,
        span_columns_opt: None,
        // …but traces `q` cannot match need not be read as traces.
        prefilter_opt: req.plan_opt.as_ref().and_then(|p| p.prefilter()),
        limit_opt: None,
    };
    let jobs = collect_jobs(sources, tenants, req.start, req.end, &fetch).await?;
    let mut metrics = MetadataMetrics {
        total_jobs: jobs.len() as u32,
        total_blocks: jobs.iter().filter(|j| j.counts_block).count() as u32,
        total_block_bytes: jobs.iter().map(|j| j.block_bytes).sum(),
        ..Default::default()
    };
    let inspected = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let req = Arc::new(req.clone());
    let done = run_jobs(jobs, concurrency, |fetched| {
        let (req, state, inspected) = (req.clone(), state.clone(), inspected.clone());
        Box::pin(async move {
            inspected.fetch_add(
                fetched.inspected_bytes,
                std::sync::atomic::Ordering::Relaxed,
            );
            tokio::task::spawn_blocking(move || {
                let mut s = state.lock();
                collect(&fetched, &req, &mut s)
            })
            .await
            .map_err(|e| Status::internal(format!("tag task failed: {e}")))
        })
    })
    .await?;
    metrics.completed_jobs = done;
    metrics.inspected_bytes = inspected.load(std::sync::atomic::Ordering::Relaxed);
    Ok(metrics)
}

/// Tag names per scope: `scopes` are the attribute scopes asked for.
#[derive(Debug, Default)]
pub struct NamesState {
    pub scopes: Vec<&'static str>,
    pub names: HashMap<&'static str, BTreeSet<String>>,
    bytes: usize,
}

pub async fn tag_names(
    sources: &[Arc<dyn SearchSource>],
    tenants: &[TenantId],
    req: &TagRequest,
    scopes: Vec<&'static str>,
    concurrency: usize,
) -> Result<(HashMap<&'static str, BTreeSet<String>>, MetadataMetrics), Status> {
    let mut proj = Projection {
        keys_only: true,
        ..Projection::NONE
    };
    for s in &scopes {
        match *s {
            "span" => proj.span_attrs = true,
            "resource" => proj.resource_attrs = true,
            "instrumentation" => proj.scope_attrs = true,
            "event" => {
                proj.events = true;
                proj.event_attrs = true
            }
            "link" => {
                proj.links = true;
                proj.link_attrs = true
            }
            _ => {}
        }
    }
    let state = Arc::new(Mutex::new(NamesState {
        scopes: scopes.clone(),
        ..Default::default()
    }));
    // Sources that list names on their own (blocks, from dictionaries) when no `q` narrows
    // the spans; the rest are read as batches.
    let mut metrics = MetadataMetrics::default();
    let mut rest: Vec<Arc<dyn SearchSource>> = Vec::new();
    for src in sources {
        let mut fast = req.plan_opt.is_none();
        if fast {
            for tenant in tenants {
                match src.tag_names(tenant, req.start, req.end, &scopes).await {
                    Some(r) => {
                        let r = r?;
                        metrics.total_blocks += r.blocks;
                        metrics.total_block_bytes += r.block_bytes;
                        metrics.inspected_bytes += r.inspected_bytes;
                        let mut st = state.lock();
                        for (scope, names) in r.names {
                            st.names.entry(scope).or_default().extend(names);
                        }
                    }
                    None => fast = false,
                }
            }
        }
        if !fast {
            rest.push(src.clone());
        }
    }
    let batch_metrics = collect(
        &rest,
        tenants,
        req,
        proj,
        concurrency,
        state.clone(),
        |b, req, st| {
            let scopes = st.scopes.clone();
            for (scope, names) in names_in(b, req, &scopes) {
                let set = st.names.entry(scope).or_default();
                for n in names {
                    if req.limit > 0 && set.len() >= req.limit {
                        break;
                    }
                    if req.max_bytes > 0 && st.bytes + n.len() > req.max_bytes {
                        return false;
                    }
                    st.bytes += n.len();
                    set.insert(n);
                }
            }
            true
        },
    )
    .await?;
    metrics.total_jobs += batch_metrics.total_jobs;
    metrics.completed_jobs += batch_metrics.completed_jobs;
    metrics.total_blocks += batch_metrics.total_blocks;
    metrics.total_block_bytes += batch_metrics.total_block_bytes;
    metrics.inspected_bytes += batch_metrics.inspected_bytes;
    let mut names = std::mem::take(&mut state.lock().names);
    // Limits over everything collected: names per scope, and bytes.
    let mut bytes = 0usize;
    for set in names.values_mut() {
        if req.limit > 0 {
            while set.len() > req.limit {
                set.pop_last();
            }
        }
        set.retain(|n| {
            bytes += n.len();
            req.max_bytes == 0 || bytes <= req.max_bytes
        });
    }
    Ok((names, metrics))
}

#[derive(Debug, Default)]
pub struct ValuesState {
    pub tag: Option<TagRef>,
    pub values: Vec<(&'static str, String)>,
    seen: std::collections::HashSet<(&'static str, String)>,
    bytes: usize,
    stale: usize,
}

pub async fn tag_values(
    sources: &[Arc<dyn SearchSource>],
    tenants: &[TenantId],
    req: &TagRequest,
    tag: TagRef,
    metrics_cfg: &crate::metrics::MetricsConfig,
    search_cfg: &crate::search::SearchConfig,
) -> Result<(Vec<(&'static str, String)>, MetadataMetrics), Status> {
    let concurrency = search_cfg.concurrent_jobs;
    let proj = match &tag {
        TagRef::Attr(scope, name) => vivace_traceql::eval::projection_of(&[Attribute {
            scope: *scope,
            parent: false,
            name: name.clone(),
            intrinsic: None,
            span: Default::default(),
        }]),
        TagRef::Intrinsic(Intrinsic::EventName) => Projection {
            events: true,
            ..Projection::NONE
        },
        TagRef::Intrinsic(_) => Projection::NONE,
    };
    // Sources that list the values on their own (blocks: dictionaries), when no `q` narrows the
    // spans and the tag has one column of string values there.
    let fast_scope: Option<(&'static str, String)> = match (&tag, req.plan_opt.is_none()) {
        (TagRef::Attr(AttrScope::Resource, n), true) => Some(("resource", n.clone())),
        (TagRef::Attr(AttrScope::Span, n), true) => Some(("span", n.clone())),
        (TagRef::Intrinsic(Intrinsic::Name), true) => Some(("intrinsic", "name".into())),
        _ => None,
    };
    let mut fast_metrics = MetadataMetrics::default();
    let mut fast_values: BTreeSet<String> = BTreeSet::new();
    let mut rest: Vec<Arc<dyn SearchSource>> = Vec::new();
    for src in sources {
        let mut fast = fast_scope.is_some();
        if let Some((scope, name)) = &fast_scope {
            for tenant in tenants {
                match src
                    .tag_values(tenant, req.start, req.end, scope, name)
                    .await
                {
                    Some(r) => {
                        let r = r?;
                        fast_metrics.total_blocks += r.blocks;
                        fast_metrics.total_block_bytes += r.block_bytes;
                        fast_values.extend(r.values);
                    }
                    None => fast = false,
                }
            }
        }
        if !fast {
            rest.push(src.clone());
        }
    }
    // Without `q`, sources that cannot list the values (an integer column, an attribute
    // without a dedicated column) answer through the metrics engine's span-only pass.
    if req.plan_opt.is_none()
        && !rest.is_empty()
        && let Some(r) =
            values_by_metrics(&rest, tenants, req, &tag, "{ }", metrics_cfg, search_cfg).await
    {
        let (values, m) = r?;
        let mut all: Vec<(&'static str, String)> = fast_values
            .into_iter()
            .map(|v| ("string", v))
            .chain(values)
            .collect();
        all.sort();
        all.dedup();
        let metrics = MetadataMetrics {
            total_blocks: m.total_blocks + fast_metrics.total_blocks,
            total_block_bytes: m.total_block_bytes + fast_metrics.total_block_bytes,
            ..m
        };
        return Ok((bounded(all, req), metrics));
    }
    let state = Arc::new(Mutex::new(ValuesState {
        tag: Some(tag),
        ..Default::default()
    }));
    {
        let mut st = state.lock();
        for v in fast_values {
            if !req.admits(st.values.len(), st.bytes, v.len()) {
                break;
            }
            st.bytes += v.len();
            st.seen.insert(("string", v.clone()));
            st.values.push(("string", v));
        }
    }
    let mut metrics = collect(
        &rest,
        tenants,
        req,
        proj,
        concurrency,
        state.clone(),
        |b, req, st| {
            let Some(tag) = st.tag.clone() else {
                return false;
            };
            for v in values_in(b, req, &tag) {
                if st.seen.contains(&v) {
                    st.stale += 1;
                    if req.max_stale > 0 && st.stale >= req.max_stale {
                        return false;
                    }
                    continue;
                }
                st.stale = 0;
                if !req.admits(st.values.len(), st.bytes, v.1.len()) {
                    return false;
                }
                st.bytes += v.1.len();
                st.seen.insert(v.clone());
                st.values.push(v);
            }
            true
        },
    )
    .await?;
    metrics.total_blocks += fast_metrics.total_blocks;
    metrics.total_block_bytes += fast_metrics.total_block_bytes;
    let values = std::mem::take(&mut state.lock().values);
    Ok((values, metrics))
}

/// The first `values` within the request's `limit` and byte budget.
fn bounded(values: Vec<(&'static str, String)>, req: &TagRequest) -> Vec<(&'static str, String)> {
    let (mut kept, mut bytes) = (Vec::new(), 0usize);
    for v in values {
        if !req.admits(kept.len(), bytes, v.1.len()) {
            break;
        }
        bytes += v.1.len();
        kept.push(v);
    }
    kept
}

/// Values of `tag` among the spans `q` matches, through the metrics engine when `q` is one
/// spanset filter on span fields: `q | count_over_time() by (tag)` over the request's range as
/// one interval, whose series' labels are the values. That path reads only the filter's and
/// the tag's columns of each block (span-only) instead of every candidate trace whole — the
/// same spans, by the same evaluator (counted by start time: spans that start in the range, as
/// metrics count them, where the search collects from every span of a trace in range).
/// `None` when it does not apply (another tag, a `q` with a
/// pipeline or a structural operator, a tag without a plain name): the search-based collection
/// runs then.
pub async fn values_by_metrics(
    sources: &[Arc<dyn SearchSource>],
    tenants: &[TenantId],
    req: &TagRequest,
    tag: &TagRef,
    q: &str,
    metrics_cfg: &crate::metrics::MetricsConfig,
    search_cfg: &crate::search::SearchConfig,
) -> Option<Result<(Vec<(&'static str, String)>, MetadataMetrics), Status>> {
    let plain = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            && !n.starts_with('.')
            && !n.ends_with('.')
    };
    let by = match tag {
        TagRef::Attr(AttrScope::Resource, n) if plain(n) => format!("resource.{n}"),
        TagRef::Attr(AttrScope::Span, n) if plain(n) => format!("span.{n}"),
        TagRef::Intrinsic(Intrinsic::Name) => "name".into(),
        _ => return None,
    };
    let query = format!("{} | count_over_time() by ({by})", q.trim());
    let (start_ns, end_ns) = (
        req.start.max(0) as u64 * 1_000_000_000,
        req.end.max(0) as u64 * 1_000_000_000,
    );
    let parsed = vivace_traceql::parse(&query).ok()?;
    let range = vivace_traceql::metrics::Range::instant(start_ns, end_ns);
    let plan = vivace_traceql::metrics::MetricsPlan::new(&parsed, range, 0).ok()?;
    plan.fetch().span_columns_opt.as_ref()?;
    let mreq = crate::metrics::MetricsRequest {
        query,
        start_ns,
        end_ns,
        step_ns_opt: None,
        instant: true,
        exemplars: 0,
        max_series: 0,
        // Memory stays bounded by the request's limits, as the search path's early exit keeps
        // it: no more series than values could be answered (counting 16 bytes a value), and
        // one for the spans without the tag.
        series_budget: match (req.limit, req.max_bytes) {
            (0, 0) => 0,
            (0, b) => b / 16 + 1,
            (l, 0) => l + 1,
            (l, b) => (l + 1).min(b / 16 + 1),
        },
    };
    let answer =
        match crate::metrics::query(sources, tenants, &mreq, metrics_cfg, search_cfg, |_| {}).await
        {
            Ok(a) => a,
            Err(e) => return Some(Err(e)),
        };
    let mut values: Vec<(&'static str, String)> = answer
        .series
        .iter()
        .flat_map(|s| s.labels.iter())
        .filter(|(k, _)| *k == by)
        .filter_map(|(_, v)| match v {
            vivace_traceql::metrics::LabelValue::Str(s) => Some(("string", s.clone())),
            vivace_traceql::metrics::LabelValue::Int(i) => Some(("int", i.to_string())),
            _ => None,
        })
        .collect();
    values.sort();
    values.dedup();
    let m = answer.metrics;
    Some(Ok((
        bounded(values, req),
        MetadataMetrics {
            inspected_bytes: m.inspected_bytes,
            total_jobs: m.total_jobs,
            completed_jobs: m.completed_jobs,
            total_blocks: m.total_blocks,
            total_block_bytes: m.total_block_bytes,
            ..Default::default()
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_tag_names() {
        assert_eq!(
            parse_tag_v2("resource.service.name").unwrap(),
            TagRef::Attr(AttrScope::Resource, "service.name".into())
        );
        assert_eq!(
            parse_tag_v2(".http.method").unwrap(),
            TagRef::Attr(AttrScope::None, "http.method".into())
        );
        assert_eq!(
            parse_tag_v2("name").unwrap(),
            TagRef::Intrinsic(Intrinsic::Name)
        );
        assert_eq!(
            parse_tag_v2("span:status").unwrap(),
            TagRef::Intrinsic(Intrinsic::Status)
        );
        assert!(parse_tag_v2("service.name").is_err());
        assert!(parse_tag_v2("x y").is_err());
    }
}
