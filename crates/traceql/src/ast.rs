//! The TraceQL syntax tree. Every node carries the byte [`Span`] of the query text it came
//! from. Spans do not take part in equality: two trees are equal when they mean the same query.

use serde::Serialize;

/// A byte range `[start, end)` of the query text.
#[derive(Debug, Clone, Copy, Default, Eq, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// Spans are positions, not meaning: they never make two trees different.
impl PartialEq for Span {
    fn eq(&self, _: &Span) -> bool {
        true
    }
}

/// A whole query: a search pipeline or a metrics query, and its hints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Query {
    pub body: Body,
    /// `with(...)` hints; when several `with` blocks are given only the last is kept.
    pub hints: Vec<Hint>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Body {
    /// A search: spanset pipeline (possibly combined pipelines).
    Search(Pipeline),
    /// A metrics query.
    Metrics(Box<MetricsQuery>),
    /// `({..} | count()) > 1`: parses, never validates (unsupported).
    ScalarPipelineCmp {
        op: CmpOp,
        lhs: Box<ScalarPipeline>,
        rhs: Box<ScalarPipeline>,
        span: Span,
    },
}

/// `(pipeline | aggregate)` arithmetic, or a constant, in a scalar pipeline comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ScalarPipeline {
    Agg {
        pipeline: Pipeline,
        aggregate: Aggregate,
        span: Span,
    },
    Const(Static, Span),
    Binary {
        op: ArithOp,
        lhs: Box<ScalarPipeline>,
        rhs: Box<ScalarPipeline>,
        span: Span,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hint {
    pub name: String,
    pub value: Static,
    pub span: Span,
}

/// Stages separated by `|`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pipeline {
    pub stages: Vec<Stage>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Stage {
    Spanset(SpansetExpr),
    /// Parenthesised pipelines combined with spanset operators.
    PipelineExpr(PipelineExpr),
    ScalarFilter(ScalarFilter),
    GroupBy(FieldExpr, Span),
    Coalesce(Span),
    Select(Vec<Attribute>, Span),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum PipelineExpr {
    Pipeline(Box<Pipeline>),
    Op {
        op: SpansetOp,
        lhs: Box<PipelineExpr>,
        rhs: Box<PipelineExpr>,
        span: Span,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum SpansetExpr {
    /// `{ expr }`; `{}` holds `true`.
    Filter(FieldExpr, Span),
    Op {
        op: SpansetOp,
        lhs: Box<SpansetExpr>,
        rhs: Box<SpansetExpr>,
        span: Span,
    },
}

/// Operators between spansets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SpansetOp {
    And,
    Union,
    Child,
    Parent,
    Descendant,
    Ancestor,
    Sibling,
    NotChild,
    NotParent,
    NotDescendant,
    NotAncestor,
    NotSibling,
    UnionChild,
    UnionParent,
    UnionDescendant,
    UnionAncestor,
    UnionSibling,
}

impl SpansetOp {
    pub fn text(self) -> &'static str {
        use SpansetOp::*;
        match self {
            And => "&&",
            Union => "||",
            Child => ">",
            Parent => "<",
            Descendant => ">>",
            Ancestor => "<<",
            Sibling => "~",
            NotChild => "!>",
            NotParent => "!<",
            NotDescendant => "!>>",
            NotAncestor => "!<<",
            NotSibling => "!~",
            UnionChild => "&>",
            UnionParent => "&<",
            UnionDescendant => "&>>",
            UnionAncestor => "&<<",
            UnionSibling => "&~",
        }
    }

    /// Whether the operator relates spans by the trace's structure (not `&&`/`||`).
    pub fn is_structural(self) -> bool {
        !matches!(self, SpansetOp::And | SpansetOp::Union)
    }
}

/// `aggregate cmp constant` (other shapes parse and are reported unsupported).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScalarFilter {
    pub op: CmpOp,
    pub lhs: ScalarExpr,
    pub rhs: ScalarExpr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ScalarExpr {
    Aggregate(Aggregate),
    Const(Static, Span),
    Binary {
        op: ArithOp,
        lhs: Box<ScalarExpr>,
        rhs: Box<ScalarExpr>,
        span: Span,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregate {
    pub func: AggFunc,
    /// `None` for `count()`.
    pub expr: Option<FieldExpr>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AggFunc {
    Count,
    Avg,
    Min,
    Max,
    Sum,
}

impl AggFunc {
    pub fn text(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::Sum => "sum",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CmpOp {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl CmpOp {
    pub fn text(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Neq => "!=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

impl ArithOp {
    pub fn text(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
            ArithOp::Pow => "^",
        }
    }
}

/// Operators inside a spanset filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BinOp {
    Arith(ArithOp),
    Cmp(CmpOp),
    Regex,
    NotRegex,
    And,
    Or,
}

impl BinOp {
    pub fn text(self) -> &'static str {
        match self {
            BinOp::Arith(a) => a.text(),
            BinOp::Cmp(c) => c.text(),
            BinOp::Regex => "=~",
            BinOp::NotRegex => "!~",
            BinOp::And => "&&",
            BinOp::Or => "||",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum UnaryOp {
    Neg,
    Not,
}

/// An expression evaluated per span.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum FieldExpr {
    Binary {
        op: BinOp,
        lhs: Box<FieldExpr>,
        rhs: Box<FieldExpr>,
        span: Span,
    },
    Unary {
        op: UnaryOp,
        expr: Box<FieldExpr>,
        span: Span,
    },
    Static(Static, Span),
    Attribute(Attribute),
}

impl FieldExpr {
    pub fn span(&self) -> Span {
        match self {
            FieldExpr::Binary { span, .. }
            | FieldExpr::Unary { span, .. }
            | FieldExpr::Static(_, span) => *span,
            FieldExpr::Attribute(a) => a.span,
        }
    }

    /// Whether any attribute or intrinsic of the span is read (else the value is constant).
    pub fn references_span(&self) -> bool {
        match self {
            FieldExpr::Binary { lhs, rhs, .. } => lhs.references_span() || rhs.references_span(),
            FieldExpr::Unary { expr, .. } => expr.references_span(),
            FieldExpr::Static(..) => false,
            FieldExpr::Attribute(_) => true,
        }
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Static {
    Nil,
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    /// Nanoseconds.
    Duration(i64),
    Status(StatusValue),
    Kind(KindValue),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StatusValue {
    Error,
    Ok,
    Unset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KindValue {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

/// Where an attribute is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AttrScope {
    /// `.x`: span, then resource.
    None,
    Span,
    Resource,
    Event,
    Link,
    Instrumentation,
}

impl AttrScope {
    pub fn prefix(self) -> &'static str {
        match self {
            AttrScope::None => ".",
            AttrScope::Span => "span.",
            AttrScope::Resource => "resource.",
            AttrScope::Event => "event.",
            AttrScope::Link => "link.",
            AttrScope::Instrumentation => "instrumentation.",
        }
    }
}

/// The scope of a `scope:` intrinsic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum IntrinsicScope {
    Trace,
    Span,
    Event,
    Link,
    Instrumentation,
}

impl IntrinsicScope {
    pub fn text(self) -> &'static str {
        match self {
            IntrinsicScope::Trace => "trace",
            IntrinsicScope::Span => "span",
            IntrinsicScope::Event => "event",
            IntrinsicScope::Link => "link",
            IntrinsicScope::Instrumentation => "instrumentation",
        }
    }
}

/// Intrinsic fields, with how they were written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Intrinsic {
    Duration,
    Name,
    Status,
    StatusMessage,
    Kind,
    SpanId,
    ParentId,
    ChildCount,
    TraceDuration,
    TraceRootName,
    TraceRootService,
    TraceId,
    EventName,
    EventTimeSinceStart,
    LinkTraceId,
    LinkSpanId,
    InstrumentationName,
    InstrumentationVersion,
    NestedSetLeft,
    NestedSetRight,
    NestedSetParent,
    Parent,
}

/// An attribute or intrinsic reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attribute {
    pub scope: AttrScope,
    /// `parent.` attribute (parses; unsupported).
    pub parent: bool,
    pub name: String,
    /// Set for intrinsics; `name` is then the text the query used (`duration`, `span:duration`).
    pub intrinsic: Option<Intrinsic>,
    pub span: Span,
}

/// A metrics query: pipeline into a function, or arithmetic between metrics queries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsQuery {
    pub expr: MetricsExpr,
    /// Second stage applied to the whole expression.
    pub second: Vec<SecondStage>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum MetricsExpr {
    Query {
        pipeline: Pipeline,
        func: MetricsFn,
        second: Vec<SecondStage>,
        span: Span,
    },
    Const(Static, Span),
    Binary {
        op: ArithOp,
        lhs: Box<MetricsExpr>,
        rhs: Box<MetricsExpr>,
        span: Span,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum MetricsFn {
    Rate {
        by: Vec<Attribute>,
        span: Span,
    },
    CountOverTime {
        by: Vec<Attribute>,
        span: Span,
    },
    OverTime {
        func: OverTimeFn,
        attr: Attribute,
        by: Vec<Attribute>,
        span: Span,
    },
    QuantileOverTime {
        attr: Attribute,
        quantiles: Vec<f64>,
        by: Vec<Attribute>,
        span: Span,
    },
    Compare {
        filter: SpansetExpr,
        top_n: Option<i64>,
        start: Option<i64>,
        end: Option<i64>,
        span: Span,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OverTimeFn {
    Min,
    Max,
    Avg,
    Sum,
    Histogram,
}

impl OverTimeFn {
    pub fn text(self) -> &'static str {
        match self {
            OverTimeFn::Min => "min_over_time",
            OverTimeFn::Max => "max_over_time",
            OverTimeFn::Avg => "avg_over_time",
            OverTimeFn::Sum => "sum_over_time",
            OverTimeFn::Histogram => "histogram_over_time",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum SecondStage {
    TopK(i64, Span),
    BottomK(i64, Span),
    Filter(CmpOp, Static, Span),
}
