//! The search evaluator: a validated search query compiled once ([`SearchPlan`]) and run per
//! trace over a [`SpanBatch`] (`traceql.md` §5–§8). Live data and blocks are both read into
//! batches, so both get the same answer by construction.
//!
//! Semantics are the evaluator's, not Tempo's storage-backed search, where `traceql.md` §13
//! lists a divergence: numeric literals compare with both int and float attributes, negation of
//! a sub-expression works, `attr || cond` is evaluated as written, a literal on the left of an
//! ordering is mirrored, `.x = nil` means absent from span and resource, array `!=`/`!~` mean
//! "no element", filters after `select()` see the selected attributes, orphans satisfy negated
//! structural relations, span IDs with a leading zero byte match, and a missing `by()` value is
//! its own group. Tempo's evaluator quirks that hold everywhere are kept (int `^` reversed,
//! non-boolean `&&`/`||` operands give false, run-time `!`/`-` type errors and integer division
//! by zero fail the query, the sum/avg first-type rule).

mod expr;
mod structure;
pub mod value;

use std::collections::HashMap;

use crate::ast::{
    AggFunc, AttrScope, Attribute, Body, CmpOp, Intrinsic, Pipeline, PipelineExpr, Query,
    ScalarExpr, SpansetExpr, SpansetOp, Stage, Static,
};
use crate::batch::{Projection, SpanBatch, StrId};

use expr::{Ctx, Names, compile, lit, matches};
pub(crate) use expr::{Expr, Fields, eval as eval_expr, lit as lit_value};
pub(crate) use expr::{hex as hex_id, stored as expr_stored};
pub use value::{OwnedValue, Value, go_duration, kind_text, status_text};
use value::{agg_order, arith, compare};

/// A run-time failure: the whole search fails (traceql.md §11).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    pub message: String,
}

impl EvalError {
    pub(crate) fn new(message: impl Into<String>) -> EvalError {
        EvalError {
            message: message.into(),
        }
    }
}

/// A list of spans of one trace, with the attributes stages attached to it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spanset {
    /// Span indexes into the batch, in storage order.
    pub spans: Vec<u32>,
    pub scalar_opt: Option<OwnedValue>,
    /// `count()`, `by(...)` and other spanset attributes, in the order they were attached.
    pub attrs: Vec<(String, OwnedValue)>,
}

#[derive(Debug, Clone)]
struct Filter {
    expr: Expr,
    uses_event: bool,
    uses_link: bool,
    always_true: bool,
}

#[derive(Debug, Clone)]
enum CSpanset {
    Filter(Filter),
    Op(SpansetOp, Box<CSpanset>, Box<CSpanset>),
}

#[derive(Debug, Clone)]
enum CPipeExpr {
    Pipeline(Vec<CStage>),
    Op(SpansetOp, Box<CPipeExpr>, Box<CPipeExpr>),
}

#[derive(Debug, Clone)]
enum CScalar {
    Agg {
        func: AggFunc,
        expr_opt: Option<Expr>,
        name: String,
    },
    Const(Static),
    Binary(crate::ast::ArithOp, Box<CScalar>, Box<CScalar>),
}

#[derive(Debug, Clone)]
enum CStage {
    Spanset(CSpanset),
    PipelineExpr(CPipeExpr),
    Scalar(CmpOp, CScalar, CScalar),
    GroupBy(Expr, String),
    Coalesce,
    Select,
}

/// A search query ready to run on batches.
#[derive(Debug, Clone)]
pub struct SearchPlan {
    stages: Vec<CStage>,
    names: Names,
    /// Attributes each returned span carries: those the query's conditions read, then the
    /// `select()`ed ones.
    returned: Vec<(Attribute, Expr, bool)>,
    /// `with(most_recent=true)`.
    pub most_recent: bool,
    /// `{ false }` and the like: nothing can match, no data needs reading.
    pub matches_nothing: bool,
    /// What of the data the query reads.
    pub projection: Projection,
    /// `attribute = "string"` conditions every match needs (for pruning).
    pub required: Vec<(Attribute, String)>,
    /// Span and resource attribute names the query reads (readers may leave others out).
    pub attr_names: crate::batch::AttrNames,
}

/// An attribute compiled into a plan, read per span with [`Bound::read`].
#[derive(Debug, Clone)]
pub struct Reader(pub(crate) Expr);

/// Per-batch resolution of a plan's attribute names to dictionary IDs.
#[derive(Debug, Clone)]
pub struct Bound<'p, 'b> {
    plan: &'p SearchPlan,
    batch: &'b SpanBatch,
    ids: Vec<Option<StrId>>,
}

impl SearchPlan {
    /// Compiles a parsed and validated search query. A metrics query is refused.
    pub fn new(q: &Query) -> Result<SearchPlan, EvalError> {
        let Body::Search(p) = &q.body else {
            return Err(EvalError::new(
                "a metrics query cannot be run as a search; use /api/metrics/query_range",
            ));
        };
        let mut names = Names::default();
        let stages = pipeline(p, &mut names)?;
        let most_recent = q
            .hints
            .iter()
            .any(|h| h.name == "most_recent" && h.value == Static::Bool(true));
        let matches_nothing = match p.stages.as_slice() {
            [
                Stage::Spanset(SpansetExpr::Filter(crate::ast::FieldExpr::Static(s, _), _)),
                ..,
            ] => *s != Static::Bool(true),
            _ => false,
        };
        let mut returned = Vec::new();
        let mut selected = Vec::new();
        collect_returned(p, &mut returned, &mut selected);
        let mut out = Vec::new();
        for (a, sel) in returned
            .into_iter()
            .map(|a| (a, false))
            .chain(selected.into_iter().map(|a| (a, true)))
        {
            if out
                .iter()
                .any(|(x, _, _): &(Attribute, Expr, bool)| *x == a)
                || !is_returned(&a)
            {
                continue;
            }
            let e = compile(&crate::ast::FieldExpr::Attribute(a.clone()), &mut names)?;
            out.push((a, e, sel));
        }
        Ok(SearchPlan {
            stages,
            names,
            returned: out,
            most_recent,
            matches_nothing,
            projection: {
                let mut p = projection_of(&q.attributes());
                p.structure |= q.needs_structure();
                p
            },
            required: q.required_equalities(),
            attr_names: crate::batch::AttrNames::of(&q.attributes()),
        })
    }

    /// How the query runs, for `vivace traceql explain`: what each reader reads, the
    /// conditions by scope, the stages, what results carry.
    pub fn explain(&self, q: &Query) -> String {
        let mut out = String::new();
        let p = self.projection;
        out.push_str(&format!("query:      {q}\n"));
        if self.matches_nothing {
            out.push_str("plan:       nothing can match; no data is read\n");
            return out;
        }
        let mut reads = vec![
            "span IDs, parent IDs, names, kinds, status, status messages, start times, durations",
            "resource service names, scope names and versions",
        ];
        for (on, what) in [
            (
                p.span_attrs,
                "span attributes (generic and dedicated columns)",
            ),
            (
                p.resource_attrs,
                "resource attributes (generic and dedicated columns)",
            ),
            (p.scope_attrs, "instrumentation scope attributes"),
            (p.events, "events (name, time)"),
            (p.event_attrs, "event attributes"),
            (p.links, "links (trace and span IDs)"),
            (p.link_attrs, "link attributes"),
        ] {
            if on {
                reads.push(what);
            }
        }
        out.push_str("reads:\n");
        for r in reads {
            out.push_str(&format!("  - {r}\n"));
        }
        if !self.required.is_empty() {
            out.push_str("prunes block row groups whose dictionaries lack:\n");
            for (a, v) in &self.required {
                out.push_str(&format!("  {a} = {v:?}\n"));
            }
        }
        let conds = q.conditions_by_scope();
        if !conds.is_empty() {
            out.push_str("conditions by scope:\n");
            for (scope, cs) in conds {
                for c in cs {
                    out.push_str(&format!(
                        "  {scope:?}: {} {} {}\n",
                        c.attribute,
                        c.op.text(),
                        c.value
                    ));
                }
            }
        }
        match self.prefilter() {
            Some(p) => out.push_str(&format!(
                "prefilter:  blocks' span columns first ({}); only traces with {} read as traces\n",
                p.describe_columns(),
                p.describe_terms()
            )),
            None => out.push_str("prefilter:  none (every trace of a block can match)\n"),
        }
        out.push_str(&format!(
            "structure:  {}\n",
            if q.needs_structure() {
                "nested sets (structural operators), computed per trace"
            } else {
                "not needed"
            }
        ));
        if let Body::Search(pl) = &q.body {
            out.push_str("stages (per trace):\n");
            for (i, st) in pl.stages.iter().enumerate() {
                out.push_str(&format!("  {}. {st}\n", i + 1));
            }
        }
        let returned: Vec<String> = self
            .returned
            .iter()
            .map(|(a, _, sel)| format!("{a}{}", if *sel { " (select)" } else { "" }))
            .collect();
        out.push_str(&format!(
            "results:    trace ID, root service and name, start, duration, service stats; per span: ID, name, start, duration{}{}\n",
            if returned.is_empty() { "" } else { ", " },
            returned.join(", ")
        ));
        out.push_str(&format!(
            "order:      {}\n",
            if self.most_recent {
                "every job read; the newest traces kept (most_recent=true)"
            } else {
                "live data first, then blocks newest first; no job starts once `limit` traces are found"
            }
        ));
        out
    }

    /// What a reader must give this plan.
    pub fn fetch(&self) -> crate::batch::Fetch {
        crate::batch::Fetch {
            projection: self.projection,
            required: self.required.clone(),
            names_opt: Some(self.attr_names.clone()),
            span_columns_opt: None,
            prefilter_opt: self.prefilter(),
            limit_opt: None,
        }
    }

    /// Attribute names the plan reads (for tag collection and explain).
    pub fn attribute_names(&self) -> &[String] {
        &self.names.names
    }

    /// Compiles `a` into the plan so [`Bound::read`] can give its value per span (metrics
    /// functions and `by` labels read attributes the pipeline may not mention).
    pub fn reader(&mut self, a: &Attribute) -> Result<Reader, EvalError> {
        Ok(Reader(compile(
            &crate::ast::FieldExpr::Attribute(a.clone()),
            &mut self.names,
        )?))
    }

    /// The one condition of a plan that is a single spanset filter on span fields (no events,
    /// links, structure, pipeline stages): `Some(None)` for `{ }`, `Some(Some(e))` for
    /// `{ e }`, `None` for anything else. Such a plan can run span by span, without traces
    /// (`crate::spans`).
    pub(crate) fn span_filter(&self) -> Option<Option<&Expr>> {
        match self.stages.as_slice() {
            [CStage::Spanset(CSpanset::Filter(f))] if !f.uses_event && !f.uses_link => {
                Some((!f.always_true).then_some(&f.expr))
            }
            _ => None,
        }
    }

    /// A condition on span-only columns every matching trace satisfies (see
    /// [`crate::spans::Prefilter`]), from the pipeline's first stage: a spanset filter needs
    /// one passing span (`n + 1` when `| count() > n` follows); `&&` and the structural
    /// operators that relate two non-empty spansets (`>`, `<`, `>>`, `<<`, `~` and their `&`
    /// forms) need both sides. Sides that need nothing provable (`||`, negated relations,
    /// events, links, trace-level fields) add nothing. `None` when nothing is left, or every
    /// trace would pass (`{ }`).
    pub fn prefilter(&self) -> Option<crate::spans::Prefilter> {
        let (first, rest) = self.stages.split_first()?;
        let CStage::Spanset(se) = first else {
            return None;
        };
        let mut filters: Vec<&Filter> = Vec::new();
        needed_filters(se, &mut filters);
        let mut cols = Vec::new();
        let mut terms: Vec<(Option<Expr>, u64)> = Vec::new();
        let mut exprs = Vec::new();
        for f in filters {
            if f.uses_event || f.uses_link {
                continue;
            }
            let filter_opt = (!f.always_true).then(|| f.expr.clone());
            // A filter on what span-only columns do not hold adds nothing.
            let mut probe = cols.clone();
            if crate::spans::ColumnMap::of(self, filter_opt.iter(), &mut probe).is_none() {
                continue;
            }
            exprs.extend(filter_opt.clone());
            terms.push((filter_opt, 1));
        }
        // `{ f } | count() > n`: n + 1 spans of the one filter.
        if let ([(_, min)], CSpanset::Filter(_)) = (terms.as_mut_slice(), se) {
            *min = match rest.first() {
                Some(CStage::Scalar(
                    op,
                    CScalar::Agg {
                        func: AggFunc::Count,
                        expr_opt: None,
                        ..
                    },
                    CScalar::Const(Static::Int(n)),
                )) => match op {
                    CmpOp::Gt => n.saturating_add(1),
                    CmpOp::Gte | CmpOp::Eq => *n,
                    _ => 1,
                },
                _ => 1,
            }
            .max(1) as u64;
        }
        terms.retain(|(f, min)| f.is_some() || *min > 1);
        if terms.is_empty() {
            return None;
        }
        let map = crate::spans::ColumnMap::of(self, exprs.iter(), &mut cols)?;
        Some(crate::spans::Prefilter::new(cols, terms, map))
    }

    /// The expressions of the attributes returned spans carry (see [`Bound::span_attributes`]).
    pub(crate) fn returned_exprs(&self) -> impl Iterator<Item = &Expr> {
        self.returned.iter().map(|(_, e, _)| e)
    }

    /// The name with index `i` in the plan's name table.
    pub(crate) fn name(&self, i: usize) -> &str {
        &self.names.names[i]
    }

    /// Binds the plan to one batch.
    /// Whether `batch` holds no match for certain: a string an attribute or `name` must equal
    /// ([`SearchPlan::required`]) is not in its dictionary — the batch form of a row group's
    /// dictionary pruning. Span-by-span evaluation would find nothing.
    pub fn rules_out(&self, batch: &SpanBatch) -> bool {
        self.required.iter().any(|(a, v)| {
            matches!(a.intrinsic, None | Some(Intrinsic::Name)) && batch.lookup(v).is_none()
        })
    }

    pub fn bind<'p, 'b>(&'p self, batch: &'b SpanBatch) -> Bound<'p, 'b> {
        Bound {
            plan: self,
            batch,
            ids: self.names.bind(batch),
        }
    }
}

/// The parts of the data that attributes `attrs` live in.
pub fn projection_of(attrs: &[Attribute]) -> Projection {
    let mut p = Projection::NONE;
    for a in attrs {
        match a.intrinsic {
            Some(Intrinsic::EventName | Intrinsic::EventTimeSinceStart) => p.events = true,
            Some(Intrinsic::LinkTraceId | Intrinsic::LinkSpanId) => p.links = true,
            Some(
                Intrinsic::NestedSetLeft
                | Intrinsic::NestedSetRight
                | Intrinsic::NestedSetParent
                | Intrinsic::ChildCount,
            ) => p.structure = true,
            Some(_) => {}
            // `service.name` of a resource is always read (its own column in blocks).
            None => match a.scope {
                AttrScope::None => {
                    p.span_attrs = true;
                    p.resource_attrs |= a.name != "service.name";
                }
                AttrScope::Span => p.span_attrs = true,
                AttrScope::Resource => p.resource_attrs |= a.name != "service.name",
                AttrScope::Instrumentation => p.scope_attrs = true,
                AttrScope::Event => {
                    p.events = true;
                    p.event_attrs = true;
                }
                AttrScope::Link => {
                    p.links = true;
                    p.link_attrs = true;
                }
            },
        }
    }
    p
}

/// Intrinsics a result carries in dedicated fields are not repeated among its attributes.
fn is_returned(a: &Attribute) -> bool {
    !matches!(
        a.intrinsic,
        Some(
            Intrinsic::Name
                | Intrinsic::Duration
                | Intrinsic::SpanId
                | Intrinsic::TraceId
                | Intrinsic::TraceDuration
                | Intrinsic::TraceRootName
                | Intrinsic::TraceRootService
                | Intrinsic::Parent
        )
    ) && !a.parent
}

fn collect_returned(p: &Pipeline, conds: &mut Vec<Attribute>, selected: &mut Vec<Attribute>) {
    use crate::visit::{Visitor, walk};
    struct V<'a>(&'a mut Vec<Attribute>);
    impl Visitor for V<'_> {
        fn spanset_filter(&mut self, e: &crate::ast::FieldExpr) {
            fn attrs(e: &crate::ast::FieldExpr, out: &mut Vec<Attribute>) {
                match e {
                    crate::ast::FieldExpr::Binary { lhs, rhs, .. } => {
                        attrs(lhs, out);
                        attrs(rhs, out);
                    }
                    crate::ast::FieldExpr::Unary { expr, .. } => attrs(expr, out),
                    crate::ast::FieldExpr::Static(..) => {}
                    crate::ast::FieldExpr::Attribute(a) => {
                        if !out.contains(a) {
                            out.push(a.clone())
                        }
                    }
                }
            }
            attrs(e, self.0);
        }
    }
    let q = Query {
        body: Body::Search(p.clone()),
        hints: vec![],
        span: p.span,
    };
    walk(&q, &mut V(conds));
    fn sel(p: &Pipeline, out: &mut Vec<Attribute>) {
        for s in &p.stages {
            match s {
                Stage::Select(attrs, _) => out.extend(attrs.iter().cloned()),
                Stage::PipelineExpr(pe) => sel_pe(pe, out),
                _ => {}
            }
        }
    }
    fn sel_pe(pe: &PipelineExpr, out: &mut Vec<Attribute>) {
        match pe {
            PipelineExpr::Pipeline(p) => sel(p, out),
            PipelineExpr::Op { lhs, rhs, .. } => {
                sel_pe(lhs, out);
                sel_pe(rhs, out);
            }
        }
    }
    sel(p, selected);
}

fn pipeline(p: &Pipeline, names: &mut Names) -> Result<Vec<CStage>, EvalError> {
    p.stages.iter().map(|s| stage(s, names)).collect()
}

fn stage(s: &Stage, names: &mut Names) -> Result<CStage, EvalError> {
    Ok(match s {
        Stage::Spanset(se) => CStage::Spanset(spanset(se, names)?),
        Stage::PipelineExpr(pe) => CStage::PipelineExpr(pipe_expr(pe, names)?),
        Stage::ScalarFilter(sf) => {
            CStage::Scalar(sf.op, scalar(&sf.lhs, names)?, scalar(&sf.rhs, names)?)
        }
        Stage::GroupBy(e, _) => CStage::GroupBy(compile(e, names)?, format!("by({e})")),
        Stage::Coalesce(_) => CStage::Coalesce,
        Stage::Select(..) => CStage::Select,
    })
}

fn spanset(se: &SpansetExpr, names: &mut Names) -> Result<CSpanset, EvalError> {
    Ok(match se {
        SpansetExpr::Filter(e, _) => {
            let expr = compile(e, names)?;
            CSpanset::Filter(Filter {
                uses_event: expr.uses(AttrScope::Event),
                uses_link: expr.uses(AttrScope::Link),
                always_true: matches!(expr, Expr::Lit(Static::Bool(true))),
                expr,
            })
        }
        SpansetExpr::Op { op, lhs, rhs, .. } => CSpanset::Op(
            *op,
            Box::new(spanset(lhs, names)?),
            Box::new(spanset(rhs, names)?),
        ),
    })
}

fn pipe_expr(pe: &PipelineExpr, names: &mut Names) -> Result<CPipeExpr, EvalError> {
    Ok(match pe {
        PipelineExpr::Pipeline(p) => CPipeExpr::Pipeline(pipeline(p, names)?),
        PipelineExpr::Op { op, lhs, rhs, .. } => CPipeExpr::Op(
            *op,
            Box::new(pipe_expr(lhs, names)?),
            Box::new(pipe_expr(rhs, names)?),
        ),
    })
}

fn scalar(s: &ScalarExpr, names: &mut Names) -> Result<CScalar, EvalError> {
    Ok(match s {
        ScalarExpr::Aggregate(a) => CScalar::Agg {
            func: a.func,
            expr_opt: a.expr.as_ref().map(|e| compile(e, names)).transpose()?,
            name: a.to_string(),
        },
        ScalarExpr::Const(v, _) => CScalar::Const(v.clone()),
        ScalarExpr::Binary { op, lhs, rhs, .. } => CScalar::Binary(
            *op,
            Box::new(scalar(lhs, names)?),
            Box::new(scalar(rhs, names)?),
        ),
    })
}

impl<'b> Bound<'_, 'b> {
    pub fn batch(&self) -> &'b SpanBatch {
        self.batch
    }

    /// Runs the query on trace `t` of the batch: its non-empty spansets.
    pub fn eval_trace(&self, t: usize) -> Result<Vec<Spanset>, EvalError> {
        let spans = self.batch.traces[t].spans.clone();
        let input = vec![Spanset {
            spans: spans.collect(),
            ..Default::default()
        }];
        let mut out = self.stages(&self.plan.stages, input)?;
        out.retain(|s| !s.spans.is_empty());
        Ok(out)
    }

    /// The spans of trace `t` the query returns, in storage order, each once (the
    /// observations of a metrics query). A lone filter is tested span by span without building
    /// spansets.
    pub fn matching_spans(&self, t: usize, out: &mut Vec<u32>) -> Result<(), EvalError> {
        out.clear();
        let spans = self.batch.traces[t].spans.clone();
        if let [CStage::Spanset(CSpanset::Filter(f))] = self.plan.stages.as_slice() {
            return self.filter(f, spans, out);
        }
        let sets = self.eval_trace(t)?;
        if let [one] = sets.as_slice() {
            out.extend_from_slice(&one.spans);
            return Ok(());
        }
        for s in sets {
            out.extend(s.spans);
        }
        out.sort_unstable();
        out.dedup();
        Ok(())
    }

    /// The value of a [`Reader`]'s attribute on `span` (nil when absent or on a run-time
    /// error such as a type mismatch).
    pub fn read<'e>(&'e self, r: &'e Reader, span: u32) -> Value<'e> {
        self.ctx(span).eval(&r.0).unwrap_or(Value::Nil)
    }

    /// Span `span` of the batch, with the plan's names resolved, no event or link bound.
    fn ctx(&self, span: u32) -> Ctx<'_> {
        Ctx {
            b: self.batch,
            ids: &self.ids,
            span: span as usize,
            event_opt: None,
            link_opt: None,
        }
    }

    fn value(&self, e: &Expr, span: u32) -> Result<OwnedValue, EvalError> {
        Ok(self.ctx(span).eval(e)?.into_owned())
    }

    fn stages(&self, stages: &[CStage], mut sets: Vec<Spanset>) -> Result<Vec<Spanset>, EvalError> {
        for st in stages {
            if sets.is_empty() {
                break;
            }
            sets = match st {
                CStage::Spanset(se) => {
                    let mut out = Vec::with_capacity(sets.len());
                    for s in &sets {
                        if let Some(r) = self.spanset(se, s)? {
                            out.push(r);
                        }
                    }
                    out
                }
                CStage::PipelineExpr(pe) => {
                    let mut out = Vec::new();
                    for s in &sets {
                        out.extend(self.pipe_expr(pe, s)?);
                    }
                    out
                }
                CStage::Scalar(op, l, r) => {
                    let mut out = Vec::new();
                    for mut s in sets {
                        let mut attached = Vec::new();
                        let (Some(lv), Some(rv)) = (
                            self.scalar(l, &s, &mut attached)?,
                            self.scalar(r, &s, &mut attached)?,
                        ) else {
                            continue;
                        };
                        if compare(*op, &lv.borrow(), &rv.borrow())? {
                            s.scalar_opt = Some(lv);
                            for (k, v) in attached {
                                s.attrs.retain(|(x, _)| *x != k);
                                s.attrs.push((k, v));
                            }
                            out.push(s);
                        }
                    }
                    out
                }
                CStage::GroupBy(e, name) => {
                    let mut out = Vec::new();
                    for s in &sets {
                        let mut groups: Vec<(String, OwnedValue, Vec<u32>)> = Vec::new();
                        let mut index: HashMap<String, usize> = HashMap::new();
                        for &sp in &s.spans {
                            let v = self.value(e, sp)?;
                            let k = v.group_key();
                            match index.get(&k) {
                                Some(&i) => groups[i].2.push(sp),
                                None => {
                                    index.insert(k.clone(), groups.len());
                                    groups.push((k, v, vec![sp]));
                                }
                            }
                        }
                        for (_, v, spans) in groups {
                            let mut attrs = s.attrs.clone();
                            attrs.retain(|(x, _)| x != name);
                            attrs.push((name.clone(), v));
                            out.push(Spanset {
                                spans,
                                scalar_opt: None,
                                attrs,
                            });
                        }
                    }
                    out
                }
                CStage::Coalesce => {
                    let mut spans: Vec<u32> =
                        sets.iter().flat_map(|s| s.spans.iter().copied()).collect();
                    spans.sort_unstable();
                    spans.dedup();
                    vec![Spanset {
                        spans,
                        ..Default::default()
                    }]
                }
                CStage::Select => sets,
            };
        }
        Ok(sets)
    }

    /// The spans of `spans` that pass filter `f`, appended to `out`.
    fn filter(
        &self,
        f: &Filter,
        spans: impl Iterator<Item = u32>,
        out: &mut Vec<u32>,
    ) -> Result<(), EvalError> {
        if f.always_true {
            out.extend(spans);
            return Ok(());
        }
        for sp in spans {
            if matches(
                self.batch,
                &self.ids,
                &f.expr,
                sp as usize,
                f.uses_event,
                f.uses_link,
            )? {
                out.push(sp);
            }
        }
        Ok(())
    }

    fn spanset(&self, se: &CSpanset, input: &Spanset) -> Result<Option<Spanset>, EvalError> {
        match se {
            CSpanset::Filter(f) => {
                let mut spans = Vec::new();
                self.filter(f, input.spans.iter().copied(), &mut spans)?;
                Ok((!spans.is_empty()).then(|| Spanset {
                    spans,
                    scalar_opt: input.scalar_opt.clone(),
                    attrs: input.attrs.clone(),
                }))
            }
            CSpanset::Op(op, l, r) => {
                let l = self.spanset(l, input)?;
                let r = self.spanset(r, input)?;
                let l = l.map(|s| vec![s]).unwrap_or_default();
                let r = r.map(|s| vec![s]).unwrap_or_default();
                self.combine(*op, &l, &r, input)
            }
        }
    }

    fn pipe_expr(&self, pe: &CPipeExpr, input: &Spanset) -> Result<Vec<Spanset>, EvalError> {
        match pe {
            CPipeExpr::Pipeline(stages) => {
                let mut out = self.stages(stages, vec![input.clone()])?;
                out.retain(|s| !s.spans.is_empty());
                Ok(out)
            }
            CPipeExpr::Op(op, l, r) => {
                let l = self.pipe_expr(l, input)?;
                let r = self.pipe_expr(r, input)?;
                Ok(self.combine(*op, &l, &r, input)?.into_iter().collect())
            }
        }
    }

    /// `L op R` over operands evaluated on the same input (§7.2, §7.3).
    fn combine(
        &self,
        op: SpansetOp,
        l: &[Spanset],
        r: &[Spanset],
        input: &Spanset,
    ) -> Result<Option<Spanset>, EvalError> {
        if l.len() > 1 || r.len() > 1 {
            return Err(EvalError::new(
                "spanset operators are not supported for multiple spansets per trace. consider using coalesce()",
            ));
        }
        let empty = Vec::new();
        let ls = l.first().map_or(&empty, |s| &s.spans);
        let rs = r.first().map_or(&empty, |s| &s.spans);
        let spans = match op {
            SpansetOp::And => {
                if ls.is_empty() || rs.is_empty() {
                    Vec::new()
                } else {
                    union(ls, rs)
                }
            }
            SpansetOp::Union => union(ls, rs),
            _ => {
                if rs.is_empty() {
                    Vec::new()
                } else {
                    structure::relate(self.batch, op, ls, rs)
                }
            }
        };
        Ok((!spans.is_empty()).then(|| Spanset {
            spans,
            scalar_opt: input.scalar_opt.clone(),
            attrs: input.attrs.clone(),
        }))
    }

    /// The value of a scalar expression for a spanset; `None` when an aggregate has no value
    /// (the spanset is dropped). Aggregates computed are pushed to `attached`.
    fn scalar(
        &self,
        s: &CScalar,
        set: &Spanset,
        attached: &mut Vec<(String, OwnedValue)>,
    ) -> Result<Option<OwnedValue>, EvalError> {
        Ok(match s {
            CScalar::Const(v) => Some(lit(v).into_owned()),
            CScalar::Binary(op, l, r) => {
                let (Some(l), Some(r)) = (
                    self.scalar(l, set, attached)?,
                    self.scalar(r, set, attached)?,
                ) else {
                    return Ok(None);
                };
                Some(arith(*op, &l.borrow(), &r.borrow())?.into_owned())
            }
            CScalar::Agg {
                func,
                expr_opt,
                name,
            } => {
                let v = self.aggregate(*func, expr_opt.as_ref(), set)?;
                if let Some(v) = &v {
                    attached.push((name.clone(), v.clone()));
                }
                v
            }
        })
    }

    fn aggregate(
        &self,
        func: AggFunc,
        e_opt: Option<&Expr>,
        set: &Spanset,
    ) -> Result<Option<OwnedValue>, EvalError> {
        let Some(e) = e_opt else {
            return Ok(Some(OwnedValue::Int(set.spans.len() as i64)));
        };
        let mut values = Vec::with_capacity(set.spans.len());
        for &sp in &set.spans {
            let v = self.value(e, sp)?;
            if v != OwnedValue::Nil {
                values.push(v);
            }
        }
        let Some(first) = values.first().cloned() else {
            return Ok(None);
        };
        Ok(Some(match func {
            AggFunc::Count => OwnedValue::Int(set.spans.len() as i64),
            AggFunc::Min => values
                .into_iter()
                .min_by(agg_order)
                .unwrap_or(OwnedValue::Nil),
            AggFunc::Max => values
                .into_iter()
                .max_by(agg_order)
                .unwrap_or(OwnedValue::Nil),
            AggFunc::Sum | AggFunc::Avg => {
                // The type of the first value wins; values of other types are skipped.
                let same: Vec<&OwnedValue> = values
                    .iter()
                    .filter(|v| std::mem::discriminant(*v) == std::mem::discriminant(&first))
                    .collect();
                let n = same.len() as i64;
                match first {
                    OwnedValue::Int(_) => {
                        let sum = same.iter().fold(0i64, |a, v| match v {
                            OwnedValue::Int(i) => a.wrapping_add(*i),
                            _ => a,
                        });
                        if func == AggFunc::Sum {
                            OwnedValue::Int(sum)
                        } else {
                            OwnedValue::Float(sum as f64 / n as f64)
                        }
                    }
                    OwnedValue::Duration(_) => {
                        let sum = same.iter().fold(0i64, |a, v| match v {
                            OwnedValue::Duration(i) => a.wrapping_add(*i),
                            _ => a,
                        });
                        OwnedValue::Duration(if func == AggFunc::Sum { sum } else { sum / n })
                    }
                    OwnedValue::Float(_) => {
                        let sum: f64 = same
                            .iter()
                            .map(|v| match v {
                                OwnedValue::Float(f) => *f,
                                _ => 0.0,
                            })
                            .sum();
                        OwnedValue::Float(if func == AggFunc::Sum {
                            sum
                        } else {
                            sum / n as f64
                        })
                    }
                    other => other,
                }
            }
        }))
    }

    /// The attributes a returned span carries: what the query's conditions read and what it
    /// selected, with missing values left out. An unscoped selected `.x` gives both the span
    /// and the resource value when both exist.
    pub fn span_attributes(&self, span: u32) -> Vec<(String, OwnedValue)> {
        returned_attributes(self.plan, &self.ctx(span))
    }
}

/// The filters of a spanset expression that must each have a passing span for it to be
/// non-empty (see [`SearchPlan::prefilter`]).
fn needed_filters<'p>(se: &'p CSpanset, out: &mut Vec<&'p Filter>) {
    match se {
        CSpanset::Filter(f) => out.push(f),
        CSpanset::Op(op, l, r) => {
            use SpansetOp::*;
            if matches!(
                op,
                And | Child
                    | Parent
                    | Descendant
                    | Ancestor
                    | Sibling
                    | UnionChild
                    | UnionParent
                    | UnionDescendant
                    | UnionAncestor
                    | UnionSibling
            ) {
                needed_filters(l, out);
                needed_filters(r, out);
            }
        }
    }
}

/// The attributes a returned span carries (see [`Bound::span_attributes`]), read through `f`.
pub(crate) fn returned_attributes<'a, F: expr::Fields<'a>>(
    plan: &SearchPlan,
    f: &F,
) -> Vec<(String, OwnedValue)> {
    let mut out: Vec<(String, OwnedValue)> = Vec::new();
    for (a, e, selected) in &plan.returned {
        let key = a.name.clone();
        if a.intrinsic.is_none() && matches!(a.scope, AttrScope::Event | AttrScope::Link) {
            continue;
        }
        if *selected && a.intrinsic.is_none() && a.scope == AttrScope::None {
            if let Expr::Attr(_, i) = e {
                for scope in [AttrScope::Span, AttrScope::Resource] {
                    let v = f.attribute(scope, *i);
                    if !v.is_nil() {
                        out.push((key.clone(), v.into_owned()));
                    }
                }
            }
            continue;
        }
        let v = match expr::eval(f, e) {
            Ok(v) => v,
            Err(_) => continue,
        };
        let v = match v {
            Value::Nil => continue,
            Value::Status(s) => OwnedValue::Str(status_text(s).into()),
            Value::Kind(k) => OwnedValue::Str(kind_text(k).into()),
            other => other.into_owned(),
        };
        if !out.iter().any(|(k, x)| *k == key && *x == v) {
            out.push((key, v));
        }
    }
    out
}

/// Sorted union of two sorted span lists.
fn union(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
pub(crate) mod tests;
