//! TraceQL metrics (`traceql.md` §9) on the search evaluator: a [`MetricsPlan`] compiled once
//! per request, run over [`SpanBatch`]es into [`Partial`]s that merge exactly, and finished into
//! [`Series`].
//!
//! Every span the pipeline returns is one observation at its start time, counted in the
//! right-closed interval `(t − step, t]` that holds it ([`Range`]). A partial keeps what makes
//! merging exact whatever the sharding: counts, integer sums (span durations in nanoseconds),
//! float sums, min and max, and power-of-two bucket counts for quantiles and histograms — a
//! quantile is computed once, from the merged buckets, never averaged. Series keys are the
//! `by` values; within a batch they are looked up by dictionary string identity, and turned into
//! owned labels only for a series' first span of the batch.
//!
//! Where the catalogue leaves room, the choices are: `sample`, `span_sample`, `trace_sample`
//! and `extrapolate` hints are accepted and the answer is computed exactly from every span;
//! `compare()` keeps the `topN` most frequent values per attribute and side and adds no error
//! series; a `by` value of duration type is labelled with its Go duration text.

mod finish;

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::ast::{
    ArithOp, AttrScope, Attribute, Body, Intrinsic, MetricsExpr, MetricsFn, OverTimeFn, Pipeline,
    Query, SecondStage, Stage, Static,
};
use crate::batch::{Fetch, Projection, SpanBatch, Stored};
use crate::eval::{EvalError, OwnedValue, Reader, SearchPlan, Value, kind_text, status_text};
use crate::spans::{ColumnMap, ColumnSpan, SpanCol, SpanColumns};

pub use finish::log2_quantile;

/// Most `by` attributes (`traceql.md` §9.1), plus one slot for a histogram bucket.
const MAX_KEY: usize = 6;

/// Default number of values per attribute in `compare()`.
const COMPARE_TOP_N: usize = 10;

/// Exemplars kept per series and interval.
const EXEMPLARS_PER_INTERVAL: u8 = 2;

/// The time axis of a metrics query, in unix nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start_ns: u64,
    pub end_ns: u64,
    pub step_ns: u64,
}

/// Tempo's default step for a range: about 240 points, rounded down to a multiple of 5 s, or
/// of 50 ms below that, never under 50 ms.
pub fn default_step(start_ns: u64, end_ns: u64) -> u64 {
    const S5: u64 = 5_000_000_000;
    const MS50: u64 = 50_000_000;
    let baseline = end_ns.saturating_sub(start_ns) / 240;
    let mut step = baseline / S5 * S5;
    if step < S5 {
        step = baseline / MS50 * MS50;
    }
    step.max(MS50)
}

impl Range {
    /// A range query's axis: start rounded down and end rounded up to a multiple of `step`.
    pub fn aligned(start_ns: u64, end_ns: u64, step_ns: u64) -> Range {
        let step = step_ns.max(1);
        let start = start_ns - start_ns % step;
        let end = match end_ns % step {
            0 => end_ns,
            m => end_ns + (step - m),
        };
        Range {
            start_ns: start,
            end_ns: end.max(start + step),
            step_ns: step,
        }
    }

    /// An instant query: one interval `(start, end]`.
    pub fn instant(start_ns: u64, end_ns: u64) -> Range {
        let end = end_ns.max(start_ns + 1);
        Range {
            start_ns,
            end_ns: end,
            step_ns: end - start_ns,
        }
    }

    /// The number of intervals.
    pub fn intervals(&self) -> usize {
        (self.end_ns.saturating_sub(self.start_ns) / self.step_ns).max(1) as usize
    }

    /// The interval holding a span that started at `ts`, if any.
    #[inline]
    pub fn interval_of(&self, ts: u64) -> Option<usize> {
        if ts <= self.start_ns || ts > self.end_ns {
            return None;
        }
        Some(((ts - self.start_ns - 1) / self.step_ns) as usize)
    }

    /// The timestamp of interval `i`'s samples: its right edge, in milliseconds.
    pub fn timestamp_ms(&self, i: usize) -> i64 {
        ((self.start_ns + (i as u64 + 1) * self.step_ns) / 1_000_000) as i64
    }
}

/// A label value, typed as Tempo keeps it.
#[derive(Debug, Clone)]
pub enum LabelValue {
    Nil,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl PartialEq for LabelValue {
    fn eq(&self, o: &LabelValue) -> bool {
        match (self, o) {
            (LabelValue::Nil, LabelValue::Nil) => true,
            (LabelValue::Str(a), LabelValue::Str(b)) => a == b,
            (LabelValue::Int(a), LabelValue::Int(b)) => a == b,
            (LabelValue::Float(a), LabelValue::Float(b)) => a.to_bits() == b.to_bits(),
            (LabelValue::Bool(a), LabelValue::Bool(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for LabelValue {}

impl Hash for LabelValue {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            LabelValue::Nil => 0u8.hash(h),
            LabelValue::Str(s) => (1u8, s).hash(h),
            LabelValue::Int(i) => (2u8, i).hash(h),
            LabelValue::Float(f) => (3u8, f.to_bits()).hash(h),
            LabelValue::Bool(b) => (4u8, b).hash(h),
        }
    }
}

impl std::fmt::Display for LabelValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabelValue::Nil => f.write_str("nil"),
            LabelValue::Str(s) => write!(f, "{s:?}"),
            LabelValue::Int(i) => write!(f, "{i}"),
            LabelValue::Float(x) => write!(f, "{x}"),
            LabelValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl LabelValue {
    fn of_owned(v: crate::eval::OwnedValue) -> LabelValue {
        use crate::eval::OwnedValue as O;
        match v {
            O::Nil => LabelValue::Nil,
            O::Int(i) => LabelValue::Int(i),
            O::Float(f) => LabelValue::Float(f),
            O::Str(s) => LabelValue::Str(s),
            O::Bool(b) => LabelValue::Bool(b),
            O::Duration(d) => LabelValue::Str(crate::eval::go_duration(d)),
            O::Status(s) => LabelValue::Str(status_text(s).into()),
            O::Kind(k) => LabelValue::Str(kind_text(k).into()),
            other => LabelValue::Str(other.group_key()),
        }
    }

    fn of(v: &Value<'_>) -> LabelValue {
        match v {
            Value::Nil => LabelValue::Nil,
            Value::Int(i) => LabelValue::Int(*i),
            Value::Float(f) => LabelValue::Float(*f),
            Value::Str(s) => LabelValue::Str(s.to_string()),
            Value::Bool(b) => LabelValue::Bool(*b),
            Value::Duration(d) => LabelValue::Str(crate::eval::go_duration(*d)),
            Value::Status(s) => LabelValue::Str(status_text(*s).into()),
            Value::Kind(k) => LabelValue::Str(kind_text(*k).into()),
            Value::Array(_) => LabelValue::Str(v.clone().into_owned().group_key()),
        }
    }
}

/// Labels in order: name and value.
pub type Labels = Vec<(String, LabelValue)>;

/// A span that stands for a sample: the trace to open, and what the query read of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    pub timestamp_ms: i64,
}

/// One output series: samples in time order (missing points left out) and its exemplars.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
    pub exemplars: Vec<Exemplar>,
}

#[derive(Debug, Clone)]
enum Kind {
    Rate,
    Count,
    Sum,
    Min,
    Max,
    Avg,
    Histogram,
    Quantile(Vec<f64>),
    Compare(Box<CompareSpec>),
}

#[derive(Debug, Clone)]
struct CompareSpec {
    /// `{filter}` alone, bound to the same batch as the pipeline.
    filter: SearchPlan,
    top_n: usize,
    window_opt: Option<(u64, u64)>,
    intrinsics: Vec<(String, Reader)>,
}

/// Where a function's value comes from.
#[derive(Debug, Clone)]
enum Source {
    /// `duration`: read straight from the batch, in nanoseconds, reported in seconds.
    SpanDuration,
    Attr(Reader),
}

#[derive(Debug, Clone)]
struct Leaf {
    /// The pipeline before the function, as a search.
    query: Query,
    search: SearchPlan,
    kind: Kind,
    source_opt: Option<Source>,
    by: Vec<(String, Reader)>,
    name: &'static str,
    /// Whether it reads span names, IDs, status messages or scope names.
    reads_span_text: bool,
    /// `by` reads resource attributes only: a span's series is its resource's.
    by_resource: bool,
    /// The function as written (for explain).
    func_text: String,
}

#[derive(Debug, Clone)]
enum Node {
    Leaf(usize, Vec<SecondStage>),
    Const(f64),
    Binary(ArithOp, Box<Node>, Box<Node>),
}

/// A metrics query ready to run on batches.
#[derive(Debug, Clone)]
pub struct MetricsPlan {
    leaves: Vec<Leaf>,
    root: Node,
    second: Vec<SecondStage>,
    pub range: Range,
    /// Exemplars wanted in all (0: none).
    pub max_exemplars: usize,
    fetch: Fetch,
    /// When every leaf can run span by span (`crate::spans`): the columns they read, and per
    /// leaf its filter and where its terms are.
    span_only_opt: Option<SpanOnly>,
}

#[derive(Debug, Clone)]
struct SpanOnly {
    cols: Vec<SpanCol>,
    leaves: Vec<(Option<crate::eval::Expr>, ColumnMap)>,
}

impl SpanOnly {
    /// Whether `leaves` can run on span-only columns, and how.
    fn of(leaves: &[Leaf]) -> Option<SpanOnly> {
        let mut cols = Vec::new();
        let mut out = Vec::new();
        for l in leaves {
            if matches!(l.kind, Kind::Compare(_)) {
                return None;
            }
            let filter_opt = l.search.span_filter()?;
            let mut exprs: Vec<&crate::eval::Expr> = filter_opt.into_iter().collect();
            exprs.extend(l.by.iter().map(|(_, r)| &r.0));
            let duration = crate::eval::Expr::Intr(crate::ast::Intrinsic::Duration);
            match &l.source_opt {
                Some(Source::Attr(r)) => exprs.push(&r.0),
                Some(Source::SpanDuration) => exprs.push(&duration),
                None => {}
            }
            exprs.extend(l.search.returned_exprs());
            let map = ColumnMap::of(&l.search, exprs, &mut cols)?;
            out.push((filter_opt.cloned(), map));
        }
        Some(SpanOnly { cols, leaves: out })
    }
}

/// What jobs have counted so far; [`Partial::merge`] is exact.
#[derive(Debug, Clone, Default)]
pub struct Partial {
    leaves: Vec<LeafPartial>,
    /// Spans read (once each, whatever the number of first-stage queries).
    pub inspected_spans: u64,
}

impl Partial {
    /// Series held so far, over every first-stage query.
    pub fn series_len(&self) -> usize {
        self.leaves.iter().map(|l| l.series.len()).sum()
    }
}

#[derive(Debug, Clone, Default)]
struct LeafPartial {
    series: Vec<(Vec<LabelValue>, Acc)>,
    index: HashMap<Vec<LabelValue>, usize>,
    exemplars: usize,
}

/// Per-interval state of one series.
#[derive(Debug, Clone, Default)]
struct Acc {
    count: Vec<u64>,
    int_sum: Vec<i128>,
    float_sum: Vec<f64>,
    /// Min or max (NaN: none yet).
    extreme: Vec<f64>,
    exemplar_slots: Vec<u8>,
    exemplars: Vec<(usize, Exemplar)>,
}

impl Acc {
    fn new(kind: &Kind, n: usize) -> Acc {
        let mut a = Acc {
            count: vec![0; n],
            ..Acc::default()
        };
        match kind {
            Kind::Sum | Kind::Avg => {
                a.int_sum = vec![0; n];
                a.float_sum = vec![0.0; n];
            }
            Kind::Min | Kind::Max => a.extreme = vec![f64::NAN; n],
            _ => {}
        }
        a
    }

    fn merge(&mut self, o: Acc, kind: &Kind) {
        add(&mut self.count, &o.count, |a, b| a + b);
        add(&mut self.int_sum, &o.int_sum, |a, b| a + b);
        add(&mut self.float_sum, &o.float_sum, |a, b| a + b);
        match kind {
            Kind::Min => add(&mut self.extreme, &o.extreme, nan_min),
            Kind::Max => add(&mut self.extreme, &o.extreme, nan_max),
            _ => {}
        }
        if self.exemplar_slots.len() < o.exemplar_slots.len() {
            self.exemplar_slots.resize(o.exemplar_slots.len(), 0);
        }
        for (i, e) in o.exemplars {
            if self.exemplar_slots[i] < EXEMPLARS_PER_INTERVAL {
                self.exemplar_slots[i] += 1;
                self.exemplars.push((i, e));
            }
        }
    }
}

fn add<T: Copy>(a: &mut [T], b: &[T], f: impl Fn(T, T) -> T) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = f(*x, *y);
    }
}

fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b < a { b } else { a }
}

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b > a { b } else { a }
}

/// A function's value for one span.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// The label name of a `by` attribute: as written, unquoted.
fn label_name(a: &Attribute) -> String {
    if a.intrinsic.is_some() {
        return a.name.clone();
    }
    format!("{}{}", a.scope.prefix(), a.name)
}

fn search_query(p: &Pipeline, q: &Query) -> Query {
    Query {
        body: Body::Search(p.clone()),
        hints: q.hints.clone(),
        span: p.span,
    }
}

impl MetricsPlan {
    /// Compiles a parsed and validated metrics query over `range`. A search is refused.
    pub fn new(q: &Query, range: Range, max_exemplars: usize) -> Result<MetricsPlan, EvalError> {
        let Body::Metrics(m) = &q.body else {
            return Err(EvalError::new(
                "not a metrics query: a metrics query ends in a function such as rate()",
            ));
        };
        let exemplars_hint = q.hints.iter().find_map(|h| match (&*h.name, &h.value) {
            ("exemplars", Static::Bool(b)) => Some(*b),
            _ => None,
        });
        let mut leaves = Vec::new();
        let root = node(&m.expr, q, &mut leaves)?;
        let mut projection = Projection {
            span_text: false,
            ..Projection::NONE
        };
        let mut required = Vec::new();
        // Compare reads every attribute.
        let mut names_opt = Some(crate::batch::AttrNames::default());
        for (i, l) in leaves.iter().enumerate() {
            names_opt = match (names_opt, &l.kind) {
                (_, Kind::Compare(_)) | (None, _) => None,
                (Some(n), _) => Some(n.union(&l.search.attr_names)),
            };
            projection = projection.union(Projection {
                span_text: false,
                ..l.search.projection
            });
            // Nested sets are built from span and parent IDs where a block lacks them.
            projection.span_text |= l.search.projection.structure;
            if matches!(l.kind, Kind::Compare(_)) {
                projection.span_attrs = true;
                projection.resource_attrs = true;
                projection.scope_attrs = true;
            }
            projection.span_text |= l.reads_span_text;
            // Pruning by a required value is only sound when every leaf needs it.
            if i == 0 {
                required = l.search.required.clone();
            } else {
                required.retain(|r| l.search.required.contains(r));
            }
        }
        let max_exemplars = match exemplars_hint {
            Some(false) => 0,
            _ if leaves.iter().any(|l| matches!(l.kind, Kind::Compare(_))) => 0,
            _ => max_exemplars,
        };
        let span_only_opt = SpanOnly::of(&leaves);
        let span_columns_opt = span_only_opt.as_ref().map(|s| s.cols.clone());
        Ok(MetricsPlan {
            span_only_opt,
            leaves,
            root,
            second: m.second.clone(),
            range,
            max_exemplars,
            fetch: Fetch {
                projection,
                required,
                names_opt,
                span_columns_opt,
                prefilter_opt: None,
                limit_opt: None,
            },
        })
    }

    /// What a reader must give this plan.
    pub fn fetch(&self) -> Fetch {
        self.fetch.clone()
    }

    /// How the query runs, for `vivace traceql explain`: what is read, then each first-stage
    /// query's pipeline (as a search would run it) and what it counts.
    pub fn explain(&self, q: &Query) -> String {
        let mut out = format!("query:      {q}\n");
        let p = self.fetch.projection;
        out.push_str(&format!(
            "reads:      span start times, durations, kinds, statuses{}\n",
            if p.span_text {
                ", span and parent IDs, names, status messages"
            } else {
                " (no span IDs, names or status messages: none is needed)"
            }
        ));
        if let Some(n) = &self.fetch.names_opt {
            out.push_str(&format!(
                "attributes: span {:?}, resource {:?} (other attribute columns of a block are left unread)\n",
                n.span, n.resource
            ));
        }
        match &self.span_only_opt {
            Some(so) => out.push_str(&format!(
                "span-only:  yes: vParquet5 blocks give each span's start time and trace ID{}{}, no traces assembled\n",
                if so.cols.is_empty() { "" } else { " plus " },
                crate::spans::column_list(&so.cols)
            )),
            None => out.push_str(
                "span-only:  no: spans are read as traces (structure, trace-level, event, link, scope or unscoped attributes, several stages, or compare())\n",
            ),
        }
        out.push_str(
            "counts:     each span the pipeline returns, at its start time, in (t - step, t]\n",
        );
        if !self.fetch.required.is_empty() {
            out.push_str("prunes block row groups whose dictionaries lack:\n");
            for (a, v) in &self.fetch.required {
                out.push_str(&format!("  {a} = {v:?}\n"));
            }
        }
        for (i, l) in self.leaves.iter().enumerate() {
            out.push_str(&format!("-- first stage {}: {}\n", i + 1, l.func_text));
            // The pipeline as a search explains it: its conditions and structure (what a
            // search reads and returns does not apply here).
            let mut in_conditions = false;
            for line in l.search.explain(&l.query).lines() {
                if let Some(rest) = line.strip_prefix("query:") {
                    out.push_str(&format!("   pipeline:   {}\n", rest.trim()));
                } else if line.starts_with("conditions by scope:") {
                    in_conditions = true;
                    out.push_str(&format!("   {line}\n"));
                } else if in_conditions && line.starts_with("  ") {
                    out.push_str(&format!("   {line}\n"));
                } else if line.starts_with("structure:") {
                    in_conditions = false;
                    out.push_str(&format!("   {line}\n"));
                } else {
                    in_conditions = false;
                }
            }
        }
        if !self.second.is_empty() {
            out.push_str(&format!(
                "then:       {} second stage(s) over the merged series\n",
                self.second.len()
            ));
        }
        out
    }

    /// Whether no span can match (`{ false } | rate()`).
    pub fn matches_nothing(&self) -> bool {
        self.leaves.iter().all(|l| l.search.matches_nothing)
    }

    /// An empty partial for this plan.
    pub fn partial(&self) -> Partial {
        Partial {
            leaves: vec![LeafPartial::default(); self.leaves.len()],
            inspected_spans: 0,
        }
    }

    /// Counts the spans of `traces` (indexes into `batch`) into `into`.
    pub fn observe(
        &self,
        batch: &SpanBatch,
        traces: &mut dyn Iterator<Item = usize>,
        into: &mut Partial,
    ) -> Result<(), EvalError> {
        let traces: Vec<usize> = traces
            .filter(|&t| {
                let tr = &batch.traces[t];
                tr.end_ns >= self.range.start_ns && tr.start_ns <= self.range.end_ns
            })
            .collect();
        // Each span is read once, however many first-stage queries look at it.
        into.inspected_spans += traces
            .iter()
            .map(|&t| batch.traces[t].spans.len() as u64)
            .sum::<u64>();
        let budget = self.max_exemplars / self.leaves.len().max(1);
        for (leaf, lp) in self.leaves.iter().zip(into.leaves.iter_mut()) {
            let bound = leaf.search.bind(batch);
            let src = BatchSpans(&bound);
            let filter_opt = match &leaf.kind {
                Kind::Compare(c) => Some(c.filter.bind(batch)),
                _ => None,
            };
            let mut run = LeafRun::new(self, leaf, lp, budget, batch.resources.len());
            let (mut spans, mut selected) = (Vec::new(), Vec::new());
            for &t in &traces {
                bound.matching_spans(t, &mut spans)?;
                match (&leaf.kind, &filter_opt) {
                    (Kind::Compare(c), Some(f)) => {
                        f.matching_spans(t, &mut selected)?;
                        for &s in &spans {
                            if let Some(i) = self.range.interval_of(batch.span_start_ns[s as usize])
                            {
                                run.compare(&bound, f, c, &selected, s, i);
                            }
                        }
                    }
                    _ => {
                        for &s in &spans {
                            run.span(&src, s);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The columns a span-only reader must give [`MetricsPlan::observe_columns`], when the
    /// query can run on them: every first-stage pipeline is one spanset filter on span
    /// intrinsics and span or resource attributes, and there is no `compare()`.
    pub fn span_columns(&self) -> Option<&[SpanCol]> {
        self.span_only_opt.as_ref().map(|s| s.cols.as_slice())
    }

    /// Counts the spans of `c` (read with the columns of [`MetricsPlan::span_columns`]) into
    /// `into`: the same filter, values, labels and exemplars as [`MetricsPlan::observe`] gives
    /// for the same spans in a batch.
    pub fn observe_columns(&self, c: &SpanColumns, into: &mut Partial) -> Result<(), EvalError> {
        let Some(so) = &self.span_only_opt else {
            return Err(EvalError::new(
                "this metrics query cannot be counted from span-only columns",
            ));
        };
        into.inspected_spans += c.len() as u64;
        let budget = self.max_exemplars / self.leaves.len().max(1);
        for ((leaf, lp), (filter_opt, map)) in self
            .leaves
            .iter()
            .zip(into.leaves.iter_mut())
            .zip(&so.leaves)
        {
            let src = ColumnSpans::new(c, map, leaf);
            let mut run = LeafRun::new(self, leaf, lp, budget, c.resources as usize);
            match filter_opt {
                None => {
                    for s in 0..c.len() as u32 {
                        run.span(&src, s);
                    }
                }
                Some(e) => {
                    // When the filter reads one column of small IDs (a service name, a span
                    // name, a status), it is evaluated once per distinct value, not per span.
                    let dense = dense_column(e, map, c);
                    // Per ID: 0 not evaluated yet, 1 false, 2 true.
                    let mut memo = vec![0u8; dense.map_or(0, |col| c.dense_ids(col))];
                    for s in 0..c.len() {
                        let slot = dense
                            .and_then(|col| c.dense_id(col, s))
                            .map(|id| id as usize)
                            .filter(|&id| id < memo.len());
                        let hit = match slot.map(|id| memo[id]) {
                            Some(known @ 1..) => known == 2,
                            _ => {
                                let f = ColumnSpan { c, map, span: s };
                                let hit =
                                    matches!(crate::eval::eval_expr(&f, e)?, Value::Bool(true));
                                if let Some(id) = slot {
                                    memo[id] = 1 + hit as u8;
                                }
                                hit
                            }
                        };
                        if hit {
                            run.span(&src, s as u32);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Folds `other` into `into`.
    pub fn merge(&self, into: &mut Partial, other: Partial) {
        into.inspected_spans += other.inspected_spans;
        for ((leaf, a), b) in self.leaves.iter().zip(&mut into.leaves).zip(other.leaves) {
            for (key, acc) in b.series {
                match a.index.get(&key) {
                    Some(&i) => a.series[i].1.merge(acc, &leaf.kind),
                    None => {
                        a.index.insert(key.clone(), a.series.len());
                        a.series.push((key, acc));
                    }
                }
            }
            a.exemplars = a.series.iter().map(|(_, s)| s.exemplars.len()).sum();
        }
    }

    /// The answer: series sorted by labels, second stages and arithmetic applied, missing
    /// points left out, exemplars cut to the plan's total.
    pub fn finish(&self, p: Partial) -> Vec<Series> {
        finish::finish(self, p)
    }
}

/// The one column `filter` reads, when it holds small IDs (strings by index, statuses, kinds):
/// the filter's answer is then a function of the ID.
fn dense_column(filter: &crate::eval::Expr, map: &ColumnMap, c: &SpanColumns) -> Option<usize> {
    let mut terms = Vec::new();
    filter.terms(&mut terms);
    let mut cols = terms.iter().map(|t| map.column_of(t));
    let col = cols.next()??;
    if cols.any(|x| x != Some(col)) || c.dense_ids(col) == 0 {
        return None;
    }
    Some(col)
}

/// Compiles a metrics expression into leaves and a tree.
fn node(e: &MetricsExpr, q: &Query, leaves: &mut Vec<Leaf>) -> Result<Node, EvalError> {
    Ok(match e {
        MetricsExpr::Const(s, _) => Node::Const(match s {
            Static::Int(i) => *i as f64,
            Static::Float(f) => *f,
            Static::Duration(d) => *d as f64 / 1e9,
            other => {
                return Err(EvalError::new(format!(
                    "invalid constant in metrics arithmetic: {other:?}"
                )));
            }
        }),
        MetricsExpr::Binary { op, lhs, rhs, .. } => Node::Binary(
            *op,
            Box::new(node(lhs, q, leaves)?),
            Box::new(node(rhs, q, leaves)?),
        ),
        MetricsExpr::Query {
            pipeline,
            func,
            second,
            ..
        } => {
            leaves.push(leaf(pipeline, func, q)?);
            Node::Leaf(leaves.len() - 1, second.clone())
        }
    })
}

/// Whether an attribute is read from something other than span names, IDs, status messages and
/// scope names (see [`Projection::span_text`]).
fn textless(a: &Attribute) -> bool {
    matches!(
        a.intrinsic,
        None | Some(
            Intrinsic::Duration | Intrinsic::TraceDuration | Intrinsic::Status | Intrinsic::Kind
        )
    )
}

fn leaf(pipeline: &Pipeline, func: &MetricsFn, q: &Query) -> Result<Leaf, EvalError> {
    let sq = search_query(pipeline, q);
    let mut reads_span_text = !sq.attributes().iter().all(textless);
    let mut search = SearchPlan::new(&sq)?;
    let func_text = func.to_string();
    let (kind, attr_opt, by, name): (Kind, Option<&Attribute>, &[Attribute], &'static str) =
        match func {
            MetricsFn::Rate { by, .. } => (Kind::Rate, None, by, "rate"),
            MetricsFn::CountOverTime { by, .. } => (Kind::Count, None, by, "count_over_time"),
            MetricsFn::OverTime { func, attr, by, .. } => (
                match func {
                    OverTimeFn::Min => Kind::Min,
                    OverTimeFn::Max => Kind::Max,
                    OverTimeFn::Avg => Kind::Avg,
                    OverTimeFn::Sum => Kind::Sum,
                    OverTimeFn::Histogram => Kind::Histogram,
                },
                Some(attr),
                by,
                func.text(),
            ),
            MetricsFn::QuantileOverTime {
                attr,
                quantiles,
                by,
                ..
            } => (
                Kind::Quantile(quantiles.clone()),
                Some(attr),
                by,
                "quantile_over_time",
            ),
            MetricsFn::Compare {
                filter,
                top_n,
                start,
                end,
                ..
            } => {
                let fq = Query {
                    body: Body::Search(Pipeline {
                        stages: vec![Stage::Spanset(filter.clone())],
                        span: pipeline.span,
                    }),
                    hints: Vec::new(),
                    span: pipeline.span,
                };
                let mut filter_plan = SearchPlan::new(&fq)?;
                let window_opt = match (start, end) {
                    (Some(s), Some(e)) if *s > 0 || *e > 0 => Some((*s as u64, *e as u64)),
                    _ => None,
                };
                let mut intrinsics = Vec::new();
                for (label, intr) in [
                    ("name", Intrinsic::Name),
                    ("kind", Intrinsic::Kind),
                    ("status", Intrinsic::Status),
                    ("statusMessage", Intrinsic::StatusMessage),
                    ("rootName", Intrinsic::TraceRootName),
                    ("rootServiceName", Intrinsic::TraceRootService),
                    ("instrumentation:name", Intrinsic::InstrumentationName),
                    ("instrumentation:version", Intrinsic::InstrumentationVersion),
                ] {
                    let a = Attribute {
                        scope: AttrScope::None,
                        parent: false,
                        name: label.into(),
                        intrinsic: Some(intr),
                        span: Default::default(),
                    };
                    intrinsics.push((label.to_string(), filter_plan.reader(&a)?));
                }
                (
                    Kind::Compare(Box::new(CompareSpec {
                        filter: filter_plan,
                        top_n: top_n.map_or(COMPARE_TOP_N, |n| n.max(1) as usize),
                        window_opt,
                        intrinsics,
                    })),
                    None,
                    &[],
                    "compare",
                )
            }
        };
    let source_opt = match attr_opt {
        None => None,
        Some(a) if a.intrinsic == Some(Intrinsic::Duration) => Some(Source::SpanDuration),
        Some(a) => Some(Source::Attr(search.reader(a)?)),
    };
    let mut by_readers = Vec::new();
    for a in by {
        by_readers.push((label_name(a), search.reader(a)?));
    }
    let mut extra: Vec<Attribute> = by.to_vec();
    extra.extend(attr_opt.cloned());
    search.attr_names = search
        .attr_names
        .clone()
        .union(&crate::batch::AttrNames::of(&extra));
    reads_span_text |= !extra.iter().all(textless) || matches!(kind, Kind::Compare(_));
    search.projection = search.projection.union(crate::eval::projection_of(&extra));
    Ok(Leaf {
        query: sq,
        search,
        kind,
        source_opt,
        by: by_readers,
        name,
        reads_span_text,
        func_text,
        by_resource: !by.is_empty()
            && by
                .iter()
                .all(|a| a.scope == AttrScope::Resource && a.intrinsic.is_none()),
    })
}

/// A series key as seen in one batch: dictionary strings by address, other values by bits.
/// Parts past `n` are zero, so equality may compare them all; hashing looks at the first `n`
/// only (it runs once per span).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct BatchKey {
    n: u8,
    parts: [(u8, u64, u64); MAX_KEY],
}

impl Hash for BatchKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        // Mixed here: the map's Fx hasher spreads low bits upwards only, and a bucket's float
        // bits or a string's address differ in their high bits.
        let mut x = 0u64;
        for (tag, a, b) in &self.parts[..self.n as usize] {
            x = (x ^ a ^ b.rotate_left(32) ^ u64::from(*tag)).wrapping_mul(0xff51_afd7_ed55_8ccd);
            x ^= x >> 29;
        }
        h.write_u64(x ^ (x >> 32));
    }
}

/// Spans as a leaf counts them: from a batch (through the plan bound to it) or from span-only
/// columns. Values are read by the same evaluator either way.
trait Spans {
    fn start_ns(&self, s: u32) -> u64;
    fn duration_ns(&self, s: u32) -> u64;
    /// The resource of the span (an index below the `resources` given to [`LeafRun::new`]).
    fn resource(&self, s: u32) -> usize;
    fn trace_id(&self, s: u32) -> [u8; 16];
    fn read<'e>(&'e self, r: &'e Reader, s: u32) -> Value<'e>;
    fn span_attributes(&self, s: u32) -> Vec<(String, OwnedValue)>;
    /// For a single `by` label read from a column of small dense IDs (strings, status,
    /// kind), the span's ID: equal IDs are equal labels, so the series is found by index.
    fn dense_key(&self, _s: u32) -> Option<u32> {
        None
    }
}

struct BatchSpans<'p, 'b>(&'p crate::eval::Bound<'p, 'b>);

impl Spans for BatchSpans<'_, '_> {
    fn start_ns(&self, s: u32) -> u64 {
        self.0.batch().span_start_ns[s as usize]
    }

    fn duration_ns(&self, s: u32) -> u64 {
        self.0.batch().span_duration_ns[s as usize]
    }

    fn resource(&self, s: u32) -> usize {
        self.0.batch().span_resource[s as usize] as usize
    }

    fn trace_id(&self, s: u32) -> [u8; 16] {
        let b = self.0.batch();
        b.traces[b.span_trace[s as usize] as usize].id
    }

    fn read<'e>(&'e self, r: &'e Reader, s: u32) -> Value<'e> {
        self.0.read(r, s)
    }

    fn span_attributes(&self, s: u32) -> Vec<(String, OwnedValue)> {
        self.0.span_attributes(s)
    }
}

struct ColumnSpans<'a> {
    c: &'a SpanColumns,
    map: &'a ColumnMap,
    leaf: &'a Leaf,
    /// The column of the leaf's one `by` label, when it has one.
    dense_col_opt: Option<usize>,
    /// The span durations, when the leaf's function reads them.
    durations: &'a [u64],
}

impl<'a> ColumnSpans<'a> {
    fn new(c: &'a SpanColumns, map: &'a ColumnMap, leaf: &'a Leaf) -> ColumnSpans<'a> {
        let dense_col_opt = match leaf.by.as_slice() {
            [(_, r)] => map.column_of(&r.0),
            _ => None,
        };
        // Found once here, not once per span.
        let durations = match map
            .column_of(&crate::eval::Expr::Intr(crate::ast::Intrinsic::Duration))
            .map(|col| &c.values[col])
        {
            Some(crate::spans::Values::Duration(v)) => v.as_slice(),
            _ => &[],
        };
        ColumnSpans {
            c,
            map,
            leaf,
            dense_col_opt,
            durations,
        }
    }
}

impl ColumnSpans<'_> {
    fn at(&self, s: u32) -> ColumnSpan<'_> {
        ColumnSpan {
            c: self.c,
            map: self.map,
            span: s as usize,
        }
    }
}

impl Spans for ColumnSpans<'_> {
    fn start_ns(&self, s: u32) -> u64 {
        self.c.start_ns[s as usize]
    }

    fn duration_ns(&self, s: u32) -> u64 {
        self.durations.get(s as usize).copied().unwrap_or(0)
    }

    fn resource(&self, s: u32) -> usize {
        self.c.span_resource[s as usize] as usize
    }

    fn trace_id(&self, s: u32) -> [u8; 16] {
        self.c.trace_ids[self.c.span_trace[s as usize] as usize]
    }

    fn read<'e>(&'e self, r: &'e Reader, s: u32) -> Value<'e> {
        crate::eval::eval_expr(&self.at(s), &r.0).unwrap_or(Value::Nil)
    }

    fn span_attributes(&self, s: u32) -> Vec<(String, OwnedValue)> {
        crate::eval::returned_attributes(&self.leaf.search, &self.at(s))
    }

    fn dense_key(&self, s: u32) -> Option<u32> {
        self.c.dense_id(self.dense_col_opt?, s as usize)
    }
}

/// One leaf over one batch (or one set of span-only columns).
struct LeafRun<'a> {
    plan: &'a MetricsPlan,
    leaf: &'a Leaf,
    lp: &'a mut LeafPartial,
    cache: HashMap<BatchKey, usize, rustc_hash::FxBuildHasher>,
    owned: Vec<String>,
    /// The series of a query without `by` or buckets.
    single_opt: Option<usize>,
    /// The series of each resource of the batch, when `by` reads only resource attributes
    /// (`u32::MAX`: not yet known).
    resource_series: Vec<u32>,
    /// Series by dense key (see [`Spans::dense_key`]), times 64 power-of-two buckets for
    /// quantiles and histograms (`u32::MAX`: not yet known).
    dense: Vec<u32>,
    exemplar_budget: usize,
}

/// Dense keys past this are looked up as other keys are (the table stays small).
const DENSE_KEYS: u32 = 1 << 14;

impl<'a> LeafRun<'a> {
    fn new(
        plan: &'a MetricsPlan,
        leaf: &'a Leaf,
        lp: &'a mut LeafPartial,
        exemplar_budget: usize,
        resources: usize,
    ) -> LeafRun<'a> {
        LeafRun {
            plan,
            leaf,
            lp,
            cache: HashMap::default(),
            owned: Vec::new(),
            single_opt: None,
            resource_series: if leaf.by_resource {
                vec![u32::MAX; resources]
            } else {
                Vec::new()
            },
            dense: Vec::new(),
            exemplar_budget,
        }
    }

    /// Counts span `s`, which the pipeline returned.
    fn span(&mut self, src: &impl Spans, s: u32) {
        let range = self.plan.range;
        let Some(i) = range.interval_of(src.start_ns(s)) else {
            return;
        };
        let bucketed = matches!(self.leaf.kind, Kind::Histogram | Kind::Quantile(_));
        let num_opt = match &self.leaf.source_opt {
            None => None,
            Some(Source::SpanDuration) => Some(Num::Int(src.duration_ns(s) as i64)),
            Some(Source::Attr(r)) => match src.read(r, s) {
                Value::Int(v) | Value::Duration(v) => Some(Num::Int(v)),
                Value::Float(v) => Some(Num::Float(v)),
                _ => return,
            },
        };
        let bucket_opt = if bucketed {
            match num_opt.and_then(|n| self.bucket(n)) {
                Some(b) => Some(b),
                None => return,
            }
        } else {
            None
        };
        let dense_opt = src.dense_key(s).filter(|k| *k < DENSE_KEYS).map(|k| {
            let bucket = match num_opt {
                Some(Num::Int(v)) if bucketed => (v as u64).next_power_of_two().trailing_zeros(),
                _ => 0,
            };
            (k as usize) << 6 | bucket as usize
        });
        let series = if self.leaf.by.is_empty() && !bucketed {
            match self.single_opt {
                Some(x) => x,
                None => {
                    let x = self.series_of(Vec::new());
                    self.single_opt = Some(x);
                    x
                }
            }
        } else if let Some(slot) = dense_opt {
            if slot >= self.dense.len() {
                self.dense.resize(slot + 1, u32::MAX);
            }
            match self.dense[slot] {
                u32::MAX => {
                    let x = self.keyed(src, s, bucket_opt);
                    self.dense[slot] = x as u32;
                    x
                }
                x => x as usize,
            }
        } else if self.leaf.by_resource && !bucketed {
            let r = src.resource(s);
            match self.resource_series[r] {
                u32::MAX => {
                    let x = self.keyed(src, s, None);
                    self.resource_series[r] = x as u32;
                    x
                }
                x => x as usize,
            }
        } else {
            self.keyed(src, s, bucket_opt)
        };
        let n = range.intervals();
        let kind = &self.leaf.kind;
        let acc = &mut self.lp.series[series].1;
        acc.count[i] += 1;
        match (kind, num_opt) {
            (Kind::Sum | Kind::Avg, Some(Num::Int(v))) => acc.int_sum[i] += v as i128,
            (Kind::Sum | Kind::Avg, Some(Num::Float(v))) => acc.float_sum[i] += v,
            (Kind::Min, Some(v)) => acc.extreme[i] = nan_min(acc.extreme[i], v.f64()),
            (Kind::Max, Some(v)) => acc.extreme[i] = nan_max(acc.extreme[i], v.f64()),
            _ => {}
        }
        if self.lp.exemplars < self.exemplar_budget {
            if acc.exemplar_slots.is_empty() {
                acc.exemplar_slots = vec![0; n];
            }
            if acc.exemplar_slots[i] < EXEMPLARS_PER_INTERVAL {
                acc.exemplar_slots[i] += 1;
                let value = match (&self.leaf.source_opt, num_opt) {
                    (Some(Source::SpanDuration), Some(v)) => v.f64() / 1e9,
                    (_, Some(v)) => v.f64(),
                    _ => f64::NAN,
                };
                let mut labels: Labels = vec![(
                    "trace:id".into(),
                    LabelValue::Str(crate::eval::hex_id(&src.trace_id(s))),
                )];
                for (k, v) in src.span_attributes(s) {
                    labels.push((k, LabelValue::of_owned(v)));
                }
                let ts = (src.start_ns(s) / 1_000_000) as i64;
                acc.exemplars.push((
                    i,
                    Exemplar {
                        labels,
                        value,
                        timestamp_ms: ts,
                    },
                ));
                self.lp.exemplars += 1;
            }
        }
    }

    /// The power-of-two bucket of a value, as the label it gets; values under 2 and floats are
    /// dropped.
    fn bucket(&self, n: Num) -> Option<LabelValue> {
        let Num::Int(v) = n else { return None };
        if v < 2 {
            return None;
        }
        let b = (v as u64).checked_next_power_of_two()? as f64;
        Some(LabelValue::Float(match self.leaf.source_opt {
            Some(Source::SpanDuration) => b / 1e9,
            _ => b,
        }))
    }

    fn series_of(&mut self, key: Vec<LabelValue>) -> usize {
        if let Some(&i) = self.lp.index.get(&key) {
            return i;
        }
        let n = self.plan.range.intervals();
        let i = self.lp.series.len();
        self.lp.index.insert(key.clone(), i);
        self.lp.series.push((key, Acc::new(&self.leaf.kind, n)));
        i
    }

    /// The series of span `s` by its `by` values (and bucket).
    fn keyed(&mut self, src: &impl Spans, s: u32, bucket_opt: Option<LabelValue>) -> usize {
        let mut key = BatchKey::default();
        let mut slow = false;
        for (_, r) in &self.leaf.by {
            let v = src.read(r, s);
            let part = match &v {
                Value::Nil => (0, 0, 0),
                Value::Str(Cow::Borrowed(x)) => (1, x.as_ptr() as u64, x.len() as u64),
                Value::Str(Cow::Owned(x)) => {
                    let at = match self.owned.iter().position(|o| o == x) {
                        Some(at) => at,
                        None => {
                            self.owned.push(x.clone());
                            self.owned.len() - 1
                        }
                    };
                    (2, at as u64, 0)
                }
                Value::Int(i) => (3, *i as u64, 0),
                Value::Float(f) => (4, f.to_bits(), 0),
                Value::Bool(b) => (5, *b as u64, 0),
                Value::Duration(d) => (6, *d as u64, 0),
                Value::Status(x) => (7, *x as u64, 0),
                Value::Kind(x) => (8, *x as u64, 0),
                Value::Array(_) => {
                    slow = true;
                    (9, 0, 0)
                }
            };
            key.parts[key.n as usize] = part;
            key.n += 1;
        }
        if let Some(LabelValue::Float(b)) = &bucket_opt {
            key.parts[key.n as usize] = (10, b.to_bits(), 0);
            key.n += 1;
        }
        if !slow && let Some(&i) = self.cache.get(&key) {
            return i;
        }
        let mut full: Vec<LabelValue> = self
            .leaf
            .by
            .iter()
            .map(|(_, r)| LabelValue::of(&src.read(r, s)))
            .collect();
        full.extend(bucket_opt);
        let i = self.series_of(full);
        if !slow {
            self.cache.insert(key, i);
        }
        i
    }

    /// `compare()`: one count per attribute value of the span, on its side.
    fn compare(
        &mut self,
        bound: &crate::eval::Bound<'_, '_>,
        filter: &crate::eval::Bound<'_, '_>,
        c: &CompareSpec,
        selected: &[u32],
        s: u32,
        i: usize,
    ) {
        let batch = bound.batch();
        let in_window = c.window_opt.is_none_or(|(a, b)| {
            let ts = batch.span_start_ns[s as usize];
            ts >= a && ts <= b
        });
        let selected = in_window && selected.binary_search(&s).is_ok();
        let side = if selected { "selection" } else { "baseline" };
        let mut attrs: Vec<(String, LabelValue)> = Vec::new();
        for (label, r) in &c.intrinsics {
            let v = filter.read(r, s);
            match &v {
                Value::Nil => continue,
                Value::Str(x) if x.is_empty() => continue,
                _ => attrs.push((label.clone(), LabelValue::of(&v))),
            }
        }
        let res = &batch.resources[batch.span_resource[s as usize] as usize];
        for (prefix, range) in [
            ("span.", batch.span_attrs[s as usize].clone()),
            ("resource.", res.attrs.clone()),
        ] {
            for a in range {
                let v = batch.attr_value[a as usize];
                if matches!(
                    v,
                    Stored::StrArr(..)
                        | Stored::IntArr(..)
                        | Stored::FloatArr(..)
                        | Stored::BoolArr(..)
                ) {
                    continue;
                }
                let key = format!("{prefix}{}", batch.str(batch.attr_key[a as usize]));
                attrs.push((key, LabelValue::of(&crate::eval::expr_stored(batch, v))));
            }
        }
        for (k, v) in attrs {
            for key in [
                vec![LabelValue::Str(side.into()), LabelValue::Str(k.clone()), v],
                vec![
                    LabelValue::Str(format!("{side}_total")),
                    LabelValue::Str(k),
                    LabelValue::Nil,
                ],
            ] {
                let x = self.series_of(key);
                self.lp.series[x].1.count[i] += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
