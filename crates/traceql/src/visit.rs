//! Walking a query: the questions the engine asks of it (which attributes it reads, whether it
//! needs the trace structure, which conditions each filter sets, by scope).

use std::collections::BTreeMap;

use crate::ast::*;

/// Callbacks for [`walk`]; every method has a default that does nothing.
pub trait Visitor {
    fn spanset_filter(&mut self, _expr: &FieldExpr) {}
    fn field_expr(&mut self, _expr: &FieldExpr) {}
    fn attribute(&mut self, _attr: &Attribute) {}
    fn spanset_op(&mut self, _op: SpansetOp) {}
}

/// Visits every node of `q` in source order.
pub fn walk(q: &Query, v: &mut dyn Visitor) {
    match &q.body {
        Body::Search(p) => pipeline(p, v),
        Body::Metrics(m) => metrics_expr(&m.expr, v),
        Body::ScalarPipelineCmp { lhs, rhs, .. } => {
            scalar_pipeline(lhs, v);
            scalar_pipeline(rhs, v);
        }
    }
}

fn scalar_pipeline(sp: &ScalarPipeline, v: &mut dyn Visitor) {
    match sp {
        ScalarPipeline::Agg {
            pipeline: p,
            aggregate,
            ..
        } => {
            pipeline(p, v);
            if let Some(e) = &aggregate.expr {
                field(e, v);
            }
        }
        ScalarPipeline::Const(..) => {}
        ScalarPipeline::Binary { lhs, rhs, .. } => {
            scalar_pipeline(lhs, v);
            scalar_pipeline(rhs, v);
        }
    }
}

fn pipeline(p: &Pipeline, v: &mut dyn Visitor) {
    for s in &p.stages {
        match s {
            Stage::Spanset(se) => spanset(se, v),
            Stage::PipelineExpr(pe) => pipeline_expr(pe, v),
            Stage::ScalarFilter(sf) => {
                scalar(&sf.lhs, v);
                scalar(&sf.rhs, v);
            }
            Stage::GroupBy(e, _) => field(e, v),
            Stage::Coalesce(_) => {}
            Stage::Select(attrs, _) => attrs.iter().for_each(|a| v.attribute(a)),
        }
    }
}

fn pipeline_expr(pe: &PipelineExpr, v: &mut dyn Visitor) {
    match pe {
        PipelineExpr::Pipeline(p) => pipeline(p, v),
        PipelineExpr::Op { op, lhs, rhs, .. } => {
            pipeline_expr(lhs, v);
            v.spanset_op(*op);
            pipeline_expr(rhs, v);
        }
    }
}

fn scalar(s: &ScalarExpr, v: &mut dyn Visitor) {
    match s {
        ScalarExpr::Aggregate(a) => {
            if let Some(e) = &a.expr {
                field(e, v);
            }
        }
        ScalarExpr::Const(..) => {}
        ScalarExpr::Binary { lhs, rhs, .. } => {
            scalar(lhs, v);
            scalar(rhs, v);
        }
    }
}

fn spanset(se: &SpansetExpr, v: &mut dyn Visitor) {
    match se {
        SpansetExpr::Filter(e, _) => {
            v.spanset_filter(e);
            field(e, v);
        }
        SpansetExpr::Op { op, lhs, rhs, .. } => {
            spanset(lhs, v);
            v.spanset_op(*op);
            spanset(rhs, v);
        }
    }
}

fn field(e: &FieldExpr, v: &mut dyn Visitor) {
    v.field_expr(e);
    match e {
        FieldExpr::Binary { lhs, rhs, .. } => {
            field(lhs, v);
            field(rhs, v);
        }
        FieldExpr::Unary { expr, .. } => field(expr, v),
        FieldExpr::Static(..) => {}
        FieldExpr::Attribute(a) => v.attribute(a),
    }
}

fn metrics_expr(m: &MetricsExpr, v: &mut dyn Visitor) {
    match m {
        MetricsExpr::Query {
            pipeline: p, func, ..
        } => {
            pipeline(p, v);
            match func {
                MetricsFn::Rate { by, .. } | MetricsFn::CountOverTime { by, .. } => {
                    by.iter().for_each(|a| v.attribute(a))
                }
                MetricsFn::OverTime { attr, by, .. }
                | MetricsFn::QuantileOverTime { attr, by, .. } => {
                    v.attribute(attr);
                    by.iter().for_each(|a| v.attribute(a));
                }
                MetricsFn::Compare { filter, .. } => spanset(filter, v),
            }
        }
        MetricsExpr::Const(..) => {}
        MetricsExpr::Binary { lhs, rhs, .. } => {
            metrics_expr(lhs, v);
            metrics_expr(rhs, v);
        }
    }
}

/// `attribute op value` found in a filter: a predicate storage can push down.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub attribute: Attribute,
    pub op: BinOp,
    pub value: Static,
}

/// Where a condition's attribute lives, for grouping: an attribute scope, or intrinsics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConditionScope {
    Intrinsic,
    Unscoped,
    Span,
    Resource,
    Event,
    Link,
    Instrumentation,
}

impl Query {
    /// Every attribute and intrinsic the query reads, in source order, without repeats.
    pub fn attributes(&self) -> Vec<Attribute> {
        struct V(Vec<Attribute>);
        impl Visitor for V {
            fn attribute(&mut self, a: &Attribute) {
                if !self.0.contains(a) {
                    self.0.push(a.clone());
                }
            }
        }
        let mut v = V(Vec::new());
        walk(self, &mut v);
        v.0
    }

    /// Whether evaluating the query needs the trace's structure (structural operators).
    pub fn needs_structure(&self) -> bool {
        struct V(bool);
        impl Visitor for V {
            fn spanset_op(&mut self, op: SpansetOp) {
                self.0 |= op.is_structural();
            }
        }
        let mut v = V(false);
        walk(self, &mut v);
        v.0
    }

    /// The `attribute op literal` comparisons of every filter, grouped by where the attribute
    /// lives.
    pub fn conditions_by_scope(&self) -> BTreeMap<ConditionScope, Vec<Condition>> {
        struct V(BTreeMap<ConditionScope, Vec<Condition>>);
        impl Visitor for V {
            fn field_expr(&mut self, e: &FieldExpr) {
                let FieldExpr::Binary { op, lhs, rhs, .. } = e else {
                    return;
                };
                if !matches!(op, BinOp::Cmp(_) | BinOp::Regex | BinOp::NotRegex) {
                    return;
                }
                let (attr, value) = match (lhs.as_ref(), rhs.as_ref()) {
                    (FieldExpr::Attribute(a), FieldExpr::Static(v, _))
                    | (FieldExpr::Static(v, _), FieldExpr::Attribute(a)) => (a, v),
                    _ => return,
                };
                let scope = if attr.intrinsic.is_some() {
                    ConditionScope::Intrinsic
                } else {
                    match attr.scope {
                        AttrScope::None => ConditionScope::Unscoped,
                        AttrScope::Span => ConditionScope::Span,
                        AttrScope::Resource => ConditionScope::Resource,
                        AttrScope::Event => ConditionScope::Event,
                        AttrScope::Link => ConditionScope::Link,
                        AttrScope::Instrumentation => ConditionScope::Instrumentation,
                    }
                };
                self.0.entry(scope).or_default().push(Condition {
                    attribute: attr.clone(),
                    op: *op,
                    value: value.clone(),
                });
            }
        }
        let mut v = V(BTreeMap::new());
        walk(self, &mut v);
        v.0
    }
}

impl Query {
    /// `attribute = "string"` conditions every matching trace must satisfy on some span: the
    /// conjuncts of the first filter of a search (through `&&`, and both sides of structural
    /// operators, only the right side of negated ones), none under `||`, `!` or a pipeline
    /// expression. A block row group whose dictionary lacks such a string holds no match.
    pub fn required_equalities(&self) -> Vec<(Attribute, String)> {
        fn field(e: &FieldExpr, out: &mut Vec<(Attribute, String)>) {
            match e {
                FieldExpr::Binary {
                    op: BinOp::And,
                    lhs,
                    rhs,
                    ..
                } => {
                    field(lhs, out);
                    field(rhs, out);
                }
                FieldExpr::Binary {
                    op: BinOp::Cmp(CmpOp::Eq),
                    lhs,
                    rhs,
                    ..
                } => match (lhs.as_ref(), rhs.as_ref()) {
                    (FieldExpr::Attribute(a), FieldExpr::Static(Static::Str(s), _))
                    | (FieldExpr::Static(Static::Str(s), _), FieldExpr::Attribute(a)) => {
                        out.push((a.clone(), s.clone()))
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        fn spanset(se: &SpansetExpr, out: &mut Vec<(Attribute, String)>) {
            match se {
                SpansetExpr::Filter(e, _) => field(e, out),
                SpansetExpr::Op { op, lhs, rhs, .. } => match op {
                    SpansetOp::Union => {}
                    SpansetOp::NotChild
                    | SpansetOp::NotParent
                    | SpansetOp::NotDescendant
                    | SpansetOp::NotAncestor
                    | SpansetOp::NotSibling => spanset(rhs, out),
                    _ => {
                        spanset(lhs, out);
                        spanset(rhs, out);
                    }
                },
            }
        }
        let mut out = Vec::new();
        if let Body::Search(p) = &self.body
            && let Some(Stage::Spanset(se)) = p.stages.first()
        {
            spanset(se, &mut out);
        }
        out
    }
}
