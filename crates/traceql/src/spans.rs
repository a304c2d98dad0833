//! Span-only columns: what a metrics query needs when its pipeline is one spanset filter on
//! span fields (`{ }`, `{ status = error && resource.service.name = "api" }`), one value per
//! span — no traces assembled, no attributes of other names, no span IDs (`query-engine.md`
//! §3, point 6; Tempo's "span-only fetch path").
//!
//! A block reader fills [`SpanColumns`] with the [`SpanCol`]s a [`crate::metrics::MetricsPlan`]
//! asks for (`MetricsPlan::span_columns`); the plan evaluates its filter, `by` labels and
//! exemplar attributes through the same expression evaluator as a [`crate::batch::SpanBatch`]
//! (`eval::Fields`), so both paths give the same answer by construction, and a property test
//! checks it.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::ast::{AttrScope, Intrinsic, KindValue, StatusValue};
use crate::eval::{Expr, Fields, SearchPlan, Value};

/// A per-span column a span-only pass reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SpanCol {
    Duration,
    Status,
    Kind,
    Name,
    StatusMessage,
    /// A string or integer attribute of the span (`resource` false) or of its resource. A
    /// reader gives it only where it can prove the attribute has no other type or place
    /// (vParquet5: a dedicated column, or `service.name`, with the name absent from the
    /// generic attributes).
    Attr {
        resource: bool,
        name: String,
    },
}

impl std::fmt::Display for SpanCol {
    /// As TraceQL names it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpanCol::Duration => f.write_str("duration"),
            SpanCol::Status => f.write_str("status"),
            SpanCol::Kind => f.write_str("kind"),
            SpanCol::Name => f.write_str("name"),
            SpanCol::StatusMessage => f.write_str("statusMessage"),
            SpanCol::Attr {
                resource: true,
                name,
            } => write!(f, "resource.{name}"),
            SpanCol::Attr {
                resource: false,
                name,
            } => write!(f, "span.{name}"),
        }
    }
}

/// The columns `cols`, as TraceQL names them, separated by commas.
pub(crate) fn column_list(cols: &[SpanCol]) -> String {
    cols.iter()
        .map(SpanCol::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Values of one [`SpanCol`], one per span.
#[derive(Debug, Clone)]
pub enum Values {
    Duration(Vec<u64>),
    Status(Vec<StatusValue>),
    Kind(Vec<KindValue>),
    /// Indexes into [`SpanColumns`]' strings; [`NIL`] where the attribute is absent.
    Str(Vec<u32>),
    /// An integer attribute; `None` where it is absent.
    Int(Vec<Option<i64>>),
}

/// The string index of an absent attribute.
pub const NIL: u32 = u32::MAX;

/// Spans as columns: start times, the trace each belongs to, and the asked columns.
#[derive(Debug, Clone, Default)]
pub struct SpanColumns {
    pub start_ns: Vec<u64>,
    /// Index into `trace_ids`, per span.
    pub span_trace: Vec<u32>,
    /// The resource each span belongs to (numbered from 0 in this value), per span.
    pub span_resource: Vec<u32>,
    pub resources: u32,
    pub trace_ids: Vec<[u8; 16]>,
    /// One per asked column, in the order asked.
    pub values: Vec<Values>,
    strings: Vec<Box<str>>,
    string_ids: HashMap<Box<str>, u32, rustc_hash::FxBuildHasher>,
}

impl SpanColumns {
    pub fn len(&self) -> usize {
        self.start_ns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.start_ns.is_empty()
    }

    /// The index of string `b` (invalid UTF-8 replaced, as batches do).
    pub fn intern_bytes(&mut self, b: &[u8]) -> u32 {
        let s = String::from_utf8_lossy(b);
        if let Some(&id) = self.string_ids.get(s.as_ref()) {
            return id;
        }
        let id = self.strings.len() as u32;
        let boxed: Box<str> = s.into();
        self.strings.push(boxed.clone());
        self.string_ids.insert(boxed, id);
        id
    }

    pub fn str(&self, id: u32) -> &str {
        &self.strings[id as usize]
    }

    /// Span `s`'s value in column `col` as a small ID: equal IDs are equal values (strings by
    /// index, nil after the last string; statuses and kinds by code).
    pub(crate) fn dense_id(&self, col: usize, s: usize) -> Option<u32> {
        Some(match &self.values[col] {
            Values::Str(v) => match v[s] {
                NIL => self.strings.len() as u32,
                id => id,
            },
            Values::Status(v) => v[s] as u32,
            Values::Kind(v) => v[s] as u32,
            Values::Duration(_) | Values::Int(_) => return None,
        })
    }

    /// How many [`SpanColumns::dense_id`]s column `col` can have (every ID is below it); 0 when
    /// its values have none.
    pub(crate) fn dense_ids(&self, col: usize) -> usize {
        match &self.values[col] {
            Values::Str(_) => self.strings.len() + 1,
            Values::Status(_) | Values::Kind(_) => 8,
            Values::Duration(_) | Values::Int(_) => 0,
        }
    }

    /// Bytes held, for accounting.
    pub fn approx_bytes(&self) -> usize {
        let per_span = 8 + 4 + 4;
        let cols: usize = self
            .values
            .iter()
            .map(|v| match v {
                Values::Duration(x) => x.len() * 8,
                Values::Status(x) => x.len(),
                Values::Kind(x) => x.len(),
                Values::Str(x) => x.len() * 4,
                Values::Int(x) => x.len() * 16,
            })
            .sum();
        self.len() * per_span
            + cols
            + self.trace_ids.len() * 16
            + self.strings.iter().map(|s| s.len() * 2 + 24).sum::<usize>()
    }
}

/// Where one plan's attribute names and intrinsics are in [`SpanColumns::values`].
#[derive(Debug, Clone, Default)]
pub(crate) struct ColumnMap {
    attrs: Vec<(AttrScope, usize, usize)>,
    intrinsics: Vec<(Intrinsic, usize)>,
}

impl ColumnMap {
    /// The columns `exprs` read, added to `cols`; `None` when one of them reads something
    /// span-only columns do not hold.
    pub(crate) fn of<'e>(
        plan: &SearchPlan,
        exprs: impl IntoIterator<Item = &'e Expr>,
        cols: &mut Vec<SpanCol>,
    ) -> Option<ColumnMap> {
        let mut map = ColumnMap::default();
        let mut index = |c: SpanCol| match cols.iter().position(|x| *x == c) {
            Some(i) => i,
            None => {
                cols.push(c);
                cols.len() - 1
            }
        };
        let mut terms = Vec::new();
        for e in exprs {
            e.terms(&mut terms);
        }
        for t in terms {
            match t {
                Expr::Attr(scope @ (AttrScope::Span | AttrScope::Resource), i) => {
                    let col = index(SpanCol::Attr {
                        resource: *scope == AttrScope::Resource,
                        name: plan.name(*i).to_string(),
                    });
                    map.attrs.push((*scope, *i, col));
                }
                Expr::Intr(i) => {
                    let col = index(match i {
                        Intrinsic::Duration => SpanCol::Duration,
                        Intrinsic::Status => SpanCol::Status,
                        Intrinsic::Kind => SpanCol::Kind,
                        Intrinsic::Name => SpanCol::Name,
                        Intrinsic::StatusMessage => SpanCol::StatusMessage,
                        _ => return None,
                    });
                    map.intrinsics.push((*i, col));
                }
                _ => return None,
            }
        }
        Some(map)
    }
}

impl ColumnMap {
    /// The column an attribute or intrinsic term reads.
    pub(crate) fn column_of(&self, e: &Expr) -> Option<usize> {
        match e {
            Expr::Attr(scope, i) => self
                .attrs
                .iter()
                .find(|(sc, n, _)| sc == scope && n == i)
                .map(|(_, _, c)| *c),
            Expr::Intr(i) => self
                .intrinsics
                .iter()
                .find(|(x, _)| x == i)
                .map(|(_, c)| *c),
            _ => None,
        }
    }
}

/// One span of some [`SpanColumns`], as the evaluator reads it.
pub(crate) struct ColumnSpan<'a> {
    pub(crate) c: &'a SpanColumns,
    pub(crate) map: &'a ColumnMap,
    pub(crate) span: usize,
}

impl<'a> ColumnSpan<'a> {
    fn value(&self, col: usize) -> Value<'a> {
        let s = self.span;
        match &self.c.values[col] {
            Values::Duration(v) => Value::Duration(v[s] as i64),
            Values::Status(v) => Value::Status(v[s]),
            Values::Kind(v) => Value::Kind(v[s]),
            Values::Str(v) => match v[s] {
                NIL => Value::Nil,
                id => Value::Str(Cow::Borrowed(self.c.str(id))),
            },
            Values::Int(v) => v[s].map_or(Value::Nil, Value::Int),
        }
    }
}

impl<'a> Fields<'a> for ColumnSpan<'a> {
    fn attribute(&self, scope: AttrScope, name: usize) -> Value<'a> {
        match self
            .map
            .attrs
            .iter()
            .find(|(sc, n, _)| *sc == scope && *n == name)
        {
            Some(&(_, _, col)) => self.value(col),
            None => Value::Nil,
        }
    }

    fn intrinsic(&self, i: Intrinsic) -> Value<'a> {
        match self.map.intrinsics.iter().find(|(x, _)| *x == i) {
            Some(&(_, col)) => self.value(col),
            None => Value::Nil,
        }
    }

    fn event_bound(&self) -> bool {
        false
    }

    fn link_bound(&self) -> bool {
        false
    }
}

impl SpanColumns {
    /// The span-only columns `cols` of `batch`'s spans: what a block reader gives for the
    /// same spans. `None` when an asked attribute has a value span-only columns cannot hold
    /// (not a single string) — a reader gives the whole batch then.
    pub fn from_batch(batch: &crate::batch::SpanBatch, cols: &[SpanCol]) -> Option<SpanColumns> {
        use crate::batch::Stored;
        let n = batch.span_count();
        let mut out = SpanColumns {
            start_ns: batch.span_start_ns.clone(),
            span_trace: batch.span_trace.clone(),
            span_resource: batch.span_resource.clone(),
            resources: batch.resources.len() as u32,
            trace_ids: batch.traces.iter().map(|t| t.id).collect(),
            ..SpanColumns::default()
        };
        for c in cols {
            let strings = |out: &mut SpanColumns, ids: &[crate::batch::StrId]| {
                Values::Str(
                    ids.iter()
                        .map(|id| out.intern_bytes(batch.str(*id).as_bytes()))
                        .collect(),
                )
            };
            let v = match c {
                SpanCol::Duration => Values::Duration(batch.span_duration_ns.clone()),
                SpanCol::Status => Values::Status(batch.span_status.clone()),
                SpanCol::Kind => Values::Kind(batch.span_kind.clone()),
                SpanCol::Name => strings(&mut out, &batch.span_name),
                SpanCol::StatusMessage => strings(&mut out, &batch.span_status_message),
                SpanCol::Attr { resource, name } => {
                    // One type per column, as a dedicated column holds: strings, else integers.
                    let (mut strs, mut ints) = (Vec::with_capacity(n), Vec::with_capacity(n));
                    let key_opt = batch.lookup(name);
                    for s in 0..n {
                        let attrs = if *resource {
                            batch.resources[batch.span_resource[s] as usize]
                                .attrs
                                .clone()
                        } else {
                            batch.span_attrs[s].clone()
                        };
                        match key_opt.and_then(|k| batch.find_attr(&attrs, k)) {
                            None => {
                                strs.push(NIL);
                                ints.push(None);
                            }
                            Some(Stored::Str(id)) if ints.iter().all(Option::is_none) => {
                                strs.push(out.intern_bytes(batch.str(id).as_bytes()));
                                ints.push(None);
                            }
                            Some(Stored::Int(i)) if strs.iter().all(|x| *x == NIL) => {
                                strs.push(NIL);
                                ints.push(Some(i));
                            }
                            Some(_) => return None,
                        }
                    }
                    if ints.iter().any(Option::is_some) {
                        Values::Int(ints)
                    } else {
                        Values::Str(strs)
                    }
                }
            };
            out.values.push(v);
        }
        Some(out)
    }
}

/// A condition every trace a search matches satisfies, checked on span-only columns before a
/// block is read as traces: for each of its filters, at least `min` of the trace's spans pass
/// it (a spanset left empty by a stage is dropped, so a trace without one passing span cannot
/// match; `{ f } | count() > n` needs n + 1; `{ a } >> { b }` needs an `a` and a `b`; see
/// `SearchPlan::prefilter`). Traces that pass are evaluated in full; the others — all of
/// them, for a query that matches nothing — are never assembled.
#[derive(Debug, Clone)]
pub struct Prefilter {
    cols: Vec<SpanCol>,
    /// The attribute names its columns read (a reader proves them absent elsewhere).
    names: crate::batch::AttrNames,
    /// Filters (`None`: every span passes) and the passing spans each needs.
    terms: Vec<(Option<Expr>, u64)>,
    map: ColumnMap,
}

impl PartialEq for Prefilter {
    fn eq(&self, o: &Prefilter) -> bool {
        self.cols == o.cols && format!("{:?}", self.terms) == format!("{:?}", o.terms)
    }
}

impl Prefilter {
    pub(crate) fn new(
        cols: Vec<SpanCol>,
        terms: Vec<(Option<Expr>, u64)>,
        map: ColumnMap,
    ) -> Prefilter {
        let mut names = crate::batch::AttrNames::default();
        for c in &cols {
            if let SpanCol::Attr { resource, name } = c {
                let list = if *resource {
                    &mut names.resource
                } else {
                    &mut names.span
                };
                if !list.contains(name) {
                    list.push(name.clone());
                }
            }
        }
        Prefilter {
            cols,
            names,
            terms,
            map,
        }
    }

    /// The columns read, as TraceQL names them (for explain).
    pub fn describe_columns(&self) -> String {
        if self.cols.is_empty() {
            "start times only".into()
        } else {
            column_list(&self.cols)
        }
    }

    /// What a trace needs to be a candidate (for explain).
    pub fn describe_terms(&self) -> String {
        let parts: Vec<String> = self
            .terms
            .iter()
            .enumerate()
            .map(|(i, (f, min))| match f {
                None => format!("≥ {min} spans"),
                Some(_) => format!("≥ {min} span(s) passing filter {}", i + 1),
            })
            .collect();
        parts.join(" and ")
    }

    /// The attribute names [`Prefilter::columns`] reads.
    pub fn names(&self) -> &crate::batch::AttrNames {
        &self.names
    }

    /// The columns [`Prefilter::candidates`] reads.
    pub fn columns(&self) -> &[SpanCol] {
        &self.cols
    }

    /// Per trace of `c` (as `c.trace_ids`), whether it can match. A span a filter fails on
    /// (a run-time type error) counts as passing: the full evaluation decides, and reports.
    pub fn candidates(&self, c: &SpanColumns) -> Vec<bool> {
        let mut ok = vec![true; c.trace_ids.len()];
        let mut passing = vec![0u64; c.trace_ids.len()];
        for (filter_opt, min) in &self.terms {
            passing.iter_mut().for_each(|n| *n = 0);
            match filter_opt {
                None => {
                    for &t in &c.span_trace {
                        passing[t as usize] += 1;
                    }
                }
                Some(e) => {
                    for (t, pass) in c.span_trace.iter().zip(self.mask(e, c)) {
                        passing[*t as usize] += u64::from(pass);
                    }
                }
            }
            for (o, n) in ok.iter_mut().zip(&passing) {
                *o &= *n >= *min;
            }
        }
        ok
    }

    /// Whether each span passes `e`, a column at a time: a comparison or regex on a string,
    /// status or kind column is evaluated once per distinct value (strings by their index,
    /// as dictionary IDs), durations and integers by value; `&&` and `||` combine masks.
    /// Anything else is evaluated span by span. Where the evaluator would fail, the span
    /// passes (only ever more spans pass than the full evaluation lets through; `&&` and `||`
    /// keep that).
    fn mask(&self, e: &Expr, c: &SpanColumns) -> Vec<bool> {
        let n = c.len();
        let column = |t: &Expr| self.map.column_of(t).map(|col| &c.values[col]);
        match e {
            Expr::And(l, r) => {
                let mut m = self.mask(l, c);
                for (a, b) in m.iter_mut().zip(self.mask(r, c)) {
                    *a &= b;
                }
                return m;
            }
            Expr::Or(l, r) => {
                let mut m = self.mask(l, c);
                for (a, b) in m.iter_mut().zip(self.mask(r, c)) {
                    *a |= b;
                }
                return m;
            }
            Expr::Lit(crate::ast::Static::Bool(b)) => return vec![*b; n],
            Expr::Cmp(op, t, lit) if matches!(**lit, Expr::Lit(_)) => {
                let Expr::Lit(l) = &**lit else {
                    unreachable!("matched above")
                };
                let l = crate::eval::lit_value(l);
                let cmp = |v: Value<'_>| crate::eval::value::compare(*op, &v, &l).unwrap_or(true);
                match column(t) {
                    Some(Values::Str(ids)) => {
                        let table: Vec<bool> = (0..c.strings.len())
                            .map(|i| cmp(Value::Str(Cow::Borrowed(&c.strings[i]))))
                            .collect();
                        let nil = cmp(Value::Nil);
                        return ids
                            .iter()
                            .map(|id| table.get(*id as usize).copied().unwrap_or(nil))
                            .collect();
                    }
                    Some(Values::Status(v)) => {
                        let table = [StatusValue::Error, StatusValue::Ok, StatusValue::Unset]
                            .map(|x| cmp(Value::Status(x)));
                        return v.iter().map(|x| table[*x as usize]).collect();
                    }
                    Some(Values::Duration(v)) => {
                        return v.iter().map(|d| cmp(Value::Duration(*d as i64))).collect();
                    }
                    Some(Values::Int(v)) => {
                        return v
                            .iter()
                            .map(|x| cmp(x.map_or(Value::Nil, Value::Int)))
                            .collect();
                    }
                    _ => {}
                }
            }
            Expr::Regex { negate, lhs, re } => {
                if let Some(Values::Str(ids)) = column(lhs) {
                    let table: Vec<bool> = c
                        .strings
                        .iter()
                        .map(|s| re.is_match(s) != *negate)
                        .collect();
                    return ids
                        .iter()
                        .map(|id| table.get(*id as usize).copied().unwrap_or(false))
                        .collect();
                }
            }
            _ => {}
        }
        (0..n)
            .map(|s| {
                let f = ColumnSpan {
                    c,
                    map: &self.map,
                    span: s,
                };
                !matches!(crate::eval::eval_expr(&f, e), Ok(v) if !matches!(v, Value::Bool(true)))
            })
            .collect()
    }
}
