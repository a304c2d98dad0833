//! Validation (`traceql.md` §4.3): static types, legal operators, and the semantic rules, with
//! Tempo's messages. Attributes have the static type *unknown*, which passes every check.

use crate::ast::*;
use crate::error::{Error, Phase, Result};

/// Static type of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Nil,
    Int,
    Float,
    Str,
    Bool,
    Duration,
    Status,
    Kind,
    /// An attribute: its type is known only at run time.
    Unknown,
}

impl Ty {
    fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Float | Ty::Duration)
    }

    fn allows(self, op: BinOp) -> bool {
        use BinOp::*;
        match self {
            Ty::Unknown => true,
            Ty::Bool => matches!(op, And | Or | Cmp(CmpOp::Eq | CmpOp::Neq)),
            Ty::Int | Ty::Float | Ty::Duration => matches!(op, Arith(_) | Cmp(_)),
            Ty::Str => matches!(op, Cmp(_) | Regex | NotRegex),
            Ty::Status | Ty::Kind | Ty::Nil => matches!(op, Cmp(CmpOp::Eq | CmpOp::Neq)),
        }
    }
}

fn static_ty(v: &Static) -> Ty {
    match v {
        Static::Nil => Ty::Nil,
        Static::Int(_) => Ty::Int,
        Static::Float(_) => Ty::Float,
        Static::Str(_) => Ty::Str,
        Static::Bool(_) => Ty::Bool,
        Static::Duration(_) => Ty::Duration,
        Static::Status(_) => Ty::Status,
        Static::Kind(_) => Ty::Kind,
    }
}

pub(crate) fn intrinsic_ty(i: Intrinsic) -> Ty {
    use Intrinsic::*;
    match i {
        Duration | TraceDuration | EventTimeSinceStart => Ty::Duration,
        Name
        | StatusMessage
        | SpanId
        | ParentId
        | TraceRootName
        | TraceRootService
        | TraceId
        | EventName
        | LinkTraceId
        | LinkSpanId
        | InstrumentationName
        | InstrumentationVersion => Ty::Str,
        Status => Ty::Status,
        Kind => Ty::Kind,
        ChildCount | NestedSetLeft | NestedSetRight | NestedSetParent => Ty::Int,
        Parent => Ty::Unknown,
    }
}

pub(crate) fn ty_of(e: &FieldExpr) -> Ty {
    match e {
        FieldExpr::Static(v, _) => static_ty(v),
        FieldExpr::Attribute(a) => a.intrinsic.map_or(Ty::Unknown, intrinsic_ty),
        FieldExpr::Unary {
            op: UnaryOp::Not, ..
        } => Ty::Bool,
        FieldExpr::Unary {
            op: UnaryOp::Neg,
            expr,
            ..
        } => ty_of(expr),
        FieldExpr::Binary {
            op: BinOp::Arith(_),
            lhs,
            rhs,
            ..
        } => match ty_of(lhs) {
            Ty::Unknown => ty_of(rhs),
            t => t,
        },
        FieldExpr::Binary { .. } => Ty::Bool,
    }
}

pub(crate) struct Validator<'q> {
    pub(crate) q: &'q str,
}

impl Validator<'_> {
    fn err(&self, phase: Phase, msg: String, span: Span) -> Error {
        Error::new(phase, msg, span, self.q)
    }

    pub(crate) fn query(&self, q: &Query) -> Result<()> {
        match &q.body {
            Body::Search(p) => self.pipeline(p),
            Body::Metrics(m) => self.metrics_query(m),
            Body::ScalarPipelineCmp { span, .. } => Err(self.err(
                Phase::Unsupported,
                "scalar pipeline comparisons not yet supported".into(),
                *span,
            )),
        }
    }

    fn pipeline(&self, p: &Pipeline) -> Result<()> {
        for s in &p.stages {
            self.stage(s)?;
        }
        Ok(())
    }

    fn stage(&self, s: &Stage) -> Result<()> {
        match s {
            Stage::Spanset(se) => self.spanset(se),
            Stage::PipelineExpr(pe) => self.pipeline_expr(pe),
            Stage::ScalarFilter(f) => self.scalar_filter(f),
            Stage::GroupBy(e, span) => {
                self.field(e)?;
                if !e.references_span() {
                    return Err(self.err(
                        Phase::Validate,
                        format!("grouping field expressions must reference the span: by({e})"),
                        *span,
                    ));
                }
                Ok(())
            }
            Stage::Coalesce(_) => Ok(()),
            Stage::Select(attrs, _) => attrs.iter().try_for_each(|a| self.attribute(a)),
        }
    }

    fn pipeline_expr(&self, pe: &PipelineExpr) -> Result<()> {
        match pe {
            PipelineExpr::Pipeline(p) => self.pipeline(p),
            PipelineExpr::Op { lhs, rhs, .. } => {
                self.pipeline_expr(lhs)?;
                self.pipeline_expr(rhs)
            }
        }
    }

    fn spanset(&self, se: &SpansetExpr) -> Result<()> {
        match se {
            SpansetExpr::Filter(e, span) => {
                self.field(e)?;
                if !matches!(ty_of(e), Ty::Bool | Ty::Unknown) {
                    return Err(self.err(
                        Phase::Validate,
                        format!(
                            "span filter field expressions must resolve to a boolean: {{ {e} }}"
                        ),
                        *span,
                    ));
                }
                Ok(())
            }
            SpansetExpr::Op { lhs, rhs, .. } => {
                self.spanset(lhs)?;
                self.spanset(rhs)
            }
        }
    }

    fn scalar_filter(&self, f: &ScalarFilter) -> Result<()> {
        match (&f.lhs, &f.rhs) {
            (ScalarExpr::Aggregate(a), ScalarExpr::Const(..)) => self.aggregate(a),
            _ => Err(self.err(
                Phase::Unsupported,
                format!("scalar filter lhs {} not yet supported", f.lhs),
                f.span,
            )),
        }
    }

    fn aggregate(&self, a: &Aggregate) -> Result<()> {
        let Some(e) = &a.expr else { return Ok(()) };
        self.field(e)?;
        if !e.references_span() {
            return Err(self.err(
                Phase::Validate,
                format!("aggregate field expressions must reference the span: {a}"),
                a.span,
            ));
        }
        if !(ty_of(e).numeric() || ty_of(e) == Ty::Unknown) {
            return Err(self.err(
                Phase::Validate,
                format!("aggregate field expressions must resolve to a number type: {a}"),
                a.span,
            ));
        }
        Ok(())
    }

    fn attribute(&self, a: &Attribute) -> Result<()> {
        if a.parent {
            return Err(self.err(
                Phase::Unsupported,
                "parent not yet supported".into(),
                a.span,
            ));
        }
        if a.intrinsic == Some(Intrinsic::Parent) {
            return Err(self.err(
                Phase::Unsupported,
                "intrinsic (parent) not yet supported".into(),
                a.span,
            ));
        }
        Ok(())
    }

    fn field(&self, e: &FieldExpr) -> Result<()> {
        match e {
            FieldExpr::Static(..) => Ok(()),
            FieldExpr::Attribute(a) => self.attribute(a),
            FieldExpr::Unary { op, expr, span } => {
                self.field(expr)?;
                let t = ty_of(expr);
                let ok = match op {
                    UnaryOp::Neg => t.numeric() || t == Ty::Unknown,
                    UnaryOp::Not => matches!(t, Ty::Bool | Ty::Unknown),
                };
                if !ok {
                    return Err(self.err(
                        Phase::Validate,
                        format!("illegal operation for the given type: {e}"),
                        *span,
                    ));
                }
                Ok(())
            }
            FieldExpr::Binary { op, lhs, rhs, span } => {
                self.field(lhs)?;
                self.field(rhs)?;
                let (lt, rt) = (ty_of(lhs), ty_of(rhs));
                let compatible = lt == rt
                    || (lt.numeric() && rt.numeric())
                    || matches!(lt, Ty::Nil | Ty::Unknown)
                    || matches!(rt, Ty::Nil | Ty::Unknown);
                if !compatible {
                    return Err(self.err(
                        Phase::Validate,
                        format!("binary operations must operate on the same type: {e}"),
                        *span,
                    ));
                }
                if !lt.allows(*op) || !rt.allows(*op) {
                    return Err(self.err(
                        Phase::Validate,
                        format!("illegal operation for the given types: {e}"),
                        *span,
                    ));
                }
                if matches!(op, BinOp::Regex | BinOp::NotRegex) {
                    let FieldExpr::Static(Static::Str(pattern), _) = rhs.as_ref() else {
                        return Err(self.err(
                            Phase::Validate,
                            format!("invalid type for =~ or !~: {rhs}"),
                            rhs.span(),
                        ));
                    };
                    // Syntax check only: compiling is the engine's job, and costs far more.
                    if let Err(err) = regex_syntax::Parser::new().parse(pattern) {
                        return Err(self.err(
                            Phase::Validate,
                            format!("invalid regex: {rhs}: {err}"),
                            rhs.span(),
                        ));
                    }
                }
                if matches!(op, BinOp::Cmp(CmpOp::Eq | CmpOp::Neq)) {
                    let (attr, nil) = match (lhs.as_ref(), rhs.as_ref()) {
                        (FieldExpr::Attribute(a), FieldExpr::Static(Static::Nil, _)) => {
                            (Some(a), true)
                        }
                        (FieldExpr::Static(Static::Nil, _), FieldExpr::Attribute(a)) => {
                            (Some(a), true)
                        }
                        _ => (None, false),
                    };
                    if let (Some(a), true) = (attr, nil) {
                        if a.intrinsic.is_some() {
                            return Err(self.err(
                                Phase::Validate,
                                format!(
                                    "{a}={} is not valid because intrinsics cannot be nil",
                                    "nil"
                                ),
                                *span,
                            ));
                        }
                        if a.scope == AttrScope::Resource && !a.parent && a.name == "service.name" {
                            return Err(self.err(
                                Phase::Validate,
                                format!("{a}=nil is not valid because {a} cannot be nil"),
                                *span,
                            ));
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn metrics_query(&self, m: &MetricsQuery) -> Result<()> {
        self.metrics_expr(&m.expr)?;
        self.second_stage(&m.second)?;
        let is_compare = matches!(
            &m.expr,
            MetricsExpr::Query {
                func: MetricsFn::Compare { .. },
                ..
            }
        );
        if is_compare && !m.second.is_empty() {
            return Err(self.err(
                Phase::Validate,
                "`compare()` cannot be used with second stage functions".into(),
                m.span,
            ));
        }
        Ok(())
    }

    fn second_stage(&self, stages: &[SecondStage]) -> Result<()> {
        for s in stages {
            if let SecondStage::TopK(n, span) | SecondStage::BottomK(n, span) = s
                && *n <= 0
            {
                return Err(self.err(
                    Phase::Validate,
                    "limit must be greater than 0".into(),
                    *span,
                ));
            }
        }
        Ok(())
    }

    fn metrics_expr(&self, e: &MetricsExpr) -> Result<()> {
        match e {
            MetricsExpr::Const(..) => Ok(()),
            MetricsExpr::Binary { lhs, rhs, span, .. } => {
                for side in [lhs, rhs] {
                    if let MetricsExpr::Query {
                        func: MetricsFn::Compare { .. },
                        ..
                    } = side.as_ref()
                    {
                        return Err(self.err(
                            Phase::Validate,
                            "`compare()` cannot be used with second stage functions".into(),
                            *span,
                        ));
                    }
                }
                self.metrics_expr(lhs)?;
                self.metrics_expr(rhs)
            }
            MetricsExpr::Query {
                pipeline,
                func,
                second,
                span,
            } => {
                self.pipeline(pipeline)?;
                self.metrics_fn(func)?;
                if matches!(func, MetricsFn::Compare { .. }) && !second.is_empty() {
                    return Err(self.err(
                        Phase::Validate,
                        "`compare()` cannot be used with second stage functions".into(),
                        *span,
                    ));
                }
                self.second_stage(second)
            }
        }
    }

    fn metrics_fn(&self, f: &MetricsFn) -> Result<()> {
        let check_by = |by: &[Attribute], max: usize, span: Span| -> Result<()> {
            by.iter().try_for_each(|a| self.attribute(a))?;
            if by.len() > max {
                return Err(self.err(
                    Phase::Unsupported,
                    format!("metrics group by {} values not yet supported", by.len()),
                    span,
                ));
            }
            Ok(())
        };
        match f {
            MetricsFn::Rate { by, span } | MetricsFn::CountOverTime { by, span } => {
                check_by(by, 5, *span)
            }
            MetricsFn::OverTime {
                func,
                attr,
                by,
                span,
            } => {
                self.attribute(attr)?;
                check_by(
                    by,
                    if *func == OverTimeFn::Histogram { 4 } else { 5 },
                    *span,
                )
            }
            MetricsFn::QuantileOverTime {
                attr,
                quantiles,
                by,
                span,
            } => {
                self.attribute(attr)?;
                if let Some(q) = quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
                    return Err(self.err(
                        Phase::Validate,
                        format!("quantile must be between 0 and 1: {q}"),
                        *span,
                    ));
                }
                check_by(by, 4, *span)
            }
            MetricsFn::Compare {
                filter,
                top_n,
                start,
                end,
                span,
            } => {
                self.spanset(filter)?;
                if let Some(n) = top_n
                    && !(1..=1000).contains(n)
                {
                    return Err(self.err(
                        Phase::Validate,
                        "compare() top number of values must be an integer between 1 and 1000"
                            .into(),
                        *span,
                    ));
                }
                if let (Some(s), Some(e)) = (start, end) {
                    if *s <= 0 || *e <= 0 {
                        return Err(self.err(
                            Phase::Validate,
                            "compare() timestamps must be positive".into(),
                            *span,
                        ));
                    }
                    if e <= s {
                        return Err(self.err(
                            Phase::Validate,
                            "compare() end timestamp must be greater than start timestamp".into(),
                            *span,
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}
