//! The TraceQL parser: recursive descent with precedence climbing, following the grammar and
//! precedences of `traceql.md` §3 (Tempo's `expr.y`), including its modes: the first operand of a
//! spanset expression decides whether the operands are filters or parenthesised pipelines; a
//! metrics function ends the pipeline; constants fold while parsing.

use crate::ast::*;
use crate::error::{Error, Phase, Result};
use crate::fold;
use crate::lexer::{Kw, Op, Tok, Token, tokenize};

/// Deepest nesting accepted (parentheses, operator chains, unary operators).
pub const MAX_DEPTH: usize = 256;

/// Parses (and folds) a query; does not validate. See [`crate::parse`].
pub(crate) fn parse_query(q: &str) -> Result<Query> {
    let toks = tokenize(q)?;
    let mut p = Parser {
        q,
        toks,
        pos: 0,
        depth: 0,
    };
    p.query()
}

struct Parser<'q> {
    q: &'q str,
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

/// Something between operators at the top of a query or inside parentheses.
enum Operand {
    Spanset(SpansetExpr),
    PipelineExpr(PipelineExpr),
    Metrics(MetricsExpr),
    Const(Static, Span),
    Aggregate(Aggregate),
    ScalarPipeline(ScalarPipeline),
}

/// Arithmetic over operands, before it is known what kind of expression it is.
enum Arith {
    Leaf(Operand),
    Bin {
        op: ArithOp,
        op_span: Span,
        lhs: Box<Arith>,
        rhs: Box<Arith>,
        span: Span,
    },
}

/// What a parenthesised or top-level expression turned out to be.
enum ExprBody {
    Search(Pipeline),
    Metrics(MetricsQuery),
    Const(Static),
    ScalarPipeline(ScalarPipeline),
    ScalarPipelineCmp(Body),
}

fn arith_op(op: Op) -> Option<ArithOp> {
    Some(match op {
        Op::Add => ArithOp::Add,
        Op::Sub => ArithOp::Sub,
        Op::Mul => ArithOp::Mul,
        Op::Div => ArithOp::Div,
        Op::Mod => ArithOp::Mod,
        Op::Pow => ArithOp::Pow,
        _ => return None,
    })
}

fn cmp_op(op: Op) -> Option<CmpOp> {
    Some(match op {
        Op::Eq => CmpOp::Eq,
        Op::Neq => CmpOp::Neq,
        Op::Lt => CmpOp::Lt,
        Op::Lte => CmpOp::Lte,
        Op::Gt => CmpOp::Gt,
        Op::Gte => CmpOp::Gte,
        _ => return None,
    })
}

fn spanset_op(op: Op) -> Option<(SpansetOp, u8)> {
    use SpansetOp::*;
    Some(match op {
        Op::And => (And, 2),
        Op::Or => (Union, 2),
        Op::Gt => (Child, 3),
        Op::Lt => (Parent, 3),
        Op::Desc => (Descendant, 3),
        Op::Anc => (Ancestor, 3),
        Op::Tilde => (Sibling, 3),
        Op::NotChild => (NotChild, 3),
        Op::NotParent => (NotParent, 3),
        Op::NotDesc => (NotDescendant, 3),
        Op::NotAnc => (NotAncestor, 3),
        Op::NRe => (NotSibling, 3),
        Op::UnionChild => (UnionChild, 3),
        Op::UnionParent => (UnionParent, 3),
        Op::UnionDesc => (UnionDescendant, 3),
        Op::UnionAnc => (UnionAncestor, 3),
        Op::UnionSibling => (UnionSibling, 3),
        _ => return None,
    })
}

/// Binary operators inside filters with their precedence (§3.2).
fn field_op(op: Op) -> Option<(BinOp, u8)> {
    Some(match op {
        Op::And => (BinOp::And, 2),
        Op::Or => (BinOp::Or, 2),
        Op::Eq => (BinOp::Cmp(CmpOp::Eq), 3),
        Op::Neq => (BinOp::Cmp(CmpOp::Neq), 3),
        Op::Lt => (BinOp::Cmp(CmpOp::Lt), 3),
        Op::Lte => (BinOp::Cmp(CmpOp::Lte), 3),
        Op::Gt => (BinOp::Cmp(CmpOp::Gt), 3),
        Op::Gte => (BinOp::Cmp(CmpOp::Gte), 3),
        Op::Re => (BinOp::Regex, 3),
        Op::NRe => (BinOp::NotRegex, 3),
        Op::Add => (BinOp::Arith(ArithOp::Add), 4),
        Op::Sub => (BinOp::Arith(ArithOp::Sub), 4),
        Op::Mul => (BinOp::Arith(ArithOp::Mul), 6),
        Op::Div => (BinOp::Arith(ArithOp::Div), 6),
        Op::Mod => (BinOp::Arith(ArithOp::Mod), 6),
        Op::Pow => (BinOp::Arith(ArithOp::Pow), 7),
        _ => return None,
    })
}

fn arith_prec(op: ArithOp) -> u8 {
    match op {
        ArithOp::Add | ArithOp::Sub => 4,
        ArithOp::Mul | ArithOp::Div | ArithOp::Mod => 6,
        ArithOp::Pow => 7,
    }
}

fn intrinsic_kw(kw: Kw) -> Option<Intrinsic> {
    Some(match kw {
        Kw::Duration => Intrinsic::Duration,
        Kw::Name => Intrinsic::Name,
        Kw::Status => Intrinsic::Status,
        Kw::StatusMessage => Intrinsic::StatusMessage,
        Kw::Kind => Intrinsic::Kind,
        Kw::Parent => Intrinsic::Parent,
        Kw::RootName => Intrinsic::TraceRootName,
        Kw::RootServiceName => Intrinsic::TraceRootService,
        Kw::TraceDuration => Intrinsic::TraceDuration,
        Kw::NestedSetLeft => Intrinsic::NestedSetLeft,
        Kw::NestedSetRight => Intrinsic::NestedSetRight,
        Kw::NestedSetParent => Intrinsic::NestedSetParent,
        _ => return None,
    })
}

/// The intrinsics a `scope:` accepts (§2.8), in the order Tempo lists them.
fn scoped_intrinsics(scope: IntrinsicScope) -> &'static [(Kw, Intrinsic)] {
    match scope {
        IntrinsicScope::Trace => &[
            (Kw::Duration, Intrinsic::TraceDuration),
            (Kw::RootName, Intrinsic::TraceRootName),
            (Kw::RootService, Intrinsic::TraceRootService),
            (Kw::Id, Intrinsic::TraceId),
        ],
        IntrinsicScope::Span => &[
            (Kw::Duration, Intrinsic::Duration),
            (Kw::Name, Intrinsic::Name),
            (Kw::Kind, Intrinsic::Kind),
            (Kw::Status, Intrinsic::Status),
            (Kw::StatusMessage, Intrinsic::StatusMessage),
            (Kw::Id, Intrinsic::SpanId),
            (Kw::ParentId, Intrinsic::ParentId),
            (Kw::ChildCount, Intrinsic::ChildCount),
        ],
        IntrinsicScope::Event => &[
            (Kw::Name, Intrinsic::EventName),
            (Kw::TimeSinceStart, Intrinsic::EventTimeSinceStart),
        ],
        IntrinsicScope::Link => &[
            (Kw::TraceId, Intrinsic::LinkTraceId),
            (Kw::SpanId, Intrinsic::LinkSpanId),
        ],
        IntrinsicScope::Instrumentation => &[
            (Kw::Name, Intrinsic::InstrumentationName),
            (Kw::Version, Intrinsic::InstrumentationVersion),
        ],
    }
}

fn literal(tok: &Tok) -> Option<Static> {
    Some(match tok {
        Tok::Int(i) => Static::Int(*i),
        Tok::Float(f) => Static::Float(*f),
        Tok::Duration(d) => Static::Duration(*d),
        Tok::Str(s) => Static::Str(s.clone()),
        Tok::Kw(Kw::True) => Static::Bool(true),
        Tok::Kw(Kw::False) => Static::Bool(false),
        Tok::Kw(Kw::Ok) => Static::Status(StatusValue::Ok),
        Tok::Kw(Kw::Error) => Static::Status(StatusValue::Error),
        Tok::Kw(Kw::Unset) => Static::Status(StatusValue::Unset),
        Tok::Kw(Kw::Unspecified) => Static::Kind(KindValue::Unspecified),
        Tok::Kw(Kw::Internal) => Static::Kind(KindValue::Internal),
        Tok::Kw(Kw::Server) => Static::Kind(KindValue::Server),
        Tok::Kw(Kw::Client) => Static::Kind(KindValue::Client),
        Tok::Kw(Kw::Producer) => Static::Kind(KindValue::Producer),
        Tok::Kw(Kw::Consumer) => Static::Kind(KindValue::Consumer),
        _ => return None,
    })
}

impl Parser<'_> {
    // ---------- token helpers ----------

    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)].tok
    }

    fn span(&self) -> Span {
        self.toks[self.pos.min(self.toks.len() - 1)].span
    }

    fn prev_end(&self) -> usize {
        if self.pos == 0 {
            0
        } else {
            self.toks[self.pos - 1].span.end
        }
    }

    fn from(&self, start: Span) -> Span {
        Span::new(start.start, self.prev_end().max(start.start))
    }

    fn bump(&mut self) -> Token {
        let t = self.toks[self.pos.min(self.toks.len() - 1)].clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn is_op(&self, op: Op) -> bool {
        *self.peek() == Tok::Op(op)
    }

    fn is_kw(&self, kw: Kw) -> bool {
        *self.peek() == Tok::Kw(kw)
    }

    fn eat_op(&mut self, op: Op) -> bool {
        let yes = self.is_op(op);
        if yes {
            self.bump();
        }
        yes
    }

    fn unexpected(&self, expecting: Option<&str>) -> Error {
        let t = &self.toks[self.pos.min(self.toks.len() - 1)];
        let mut msg = format!("syntax error: unexpected {}", t.tok.describe());
        if let Some(e) = expecting {
            msg.push_str(", expecting ");
            msg.push_str(e);
        }
        Error::new(Phase::Syntax, msg, t.span, self.q)
    }

    fn expect_op(&mut self, op: Op, expecting: Option<&str>) -> Result<Span> {
        if self.is_op(op) {
            Ok(self.bump().span)
        } else {
            Err(self.unexpected(expecting))
        }
    }

    fn fold_err(&self, msg: impl Into<String>, span: Span) -> Error {
        Error::new(Phase::Fold, msg, span, self.q)
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let s = self.span();
            return Err(Error::new(
                Phase::Syntax,
                format!("syntax error: query nests deeper than {MAX_DEPTH} levels"),
                s,
                self.q,
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Runs `f` and rewinds if it fails, returning the error.
    fn attempt<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let (pos, depth) = (self.pos, self.depth);
        let r = f(self);
        if r.is_err() {
            self.pos = pos;
            self.depth = depth;
        }
        r
    }

    // ---------- query ----------

    fn query(&mut self) -> Result<Query> {
        let start = self.span();
        let body = match self.expr_body()? {
            ExprBody::Search(p) => Body::Search(p),
            ExprBody::Metrics(m) => Body::Metrics(Box::new(m)),
            ExprBody::ScalarPipelineCmp(b) => b,
            ExprBody::Const(..) | ExprBody::ScalarPipeline(_) => return Err(self.unexpected(None)),
        };
        let mut hints = Vec::new();
        while self.is_kw(Kw::With) {
            hints = self.hints()?;
        }
        if *self.peek() != Tok::Eof {
            return Err(self.unexpected(Some("with")));
        }
        Ok(Query {
            body,
            hints,
            span: self.from(start),
        })
    }

    fn hints(&mut self) -> Result<Vec<Hint>> {
        self.bump();
        self.expect_op(Op::LParen, Some("("))?;
        let mut hints = Vec::new();
        loop {
            let start = self.span();
            let Tok::Ident(name) = self.peek().clone() else {
                return Err(self.unexpected(Some("IDENTIFIER")));
            };
            self.bump();
            self.expect_op(Op::Eq, Some("="))?;
            let Some(value) = literal(self.peek()) else {
                return Err(self.unexpected(None));
            };
            self.bump();
            hints.push(Hint {
                name,
                value,
                span: self.from(start),
            });
            if self.eat_op(Op::Comma) {
                continue;
            }
            self.expect_op(Op::RParen, Some(") or ,"))?;
            return Ok(hints);
        }
    }

    /// A search pipeline, a pipeline expression, a metrics query (or arithmetic of them), a
    /// constant, or a scalar pipeline comparison: what may stand at the top or in parentheses.
    fn expr_body(&mut self) -> Result<ExprBody> {
        self.enter()?;
        let r = self.expr_body_inner();
        self.leave();
        r
    }

    fn expr_body_inner(&mut self) -> Result<ExprBody> {
        let start = self.span();
        match self.peek().clone() {
            Tok::Op(Op::LBrace) => {
                let first = self.spanset_operand()?;
                let se = self.spanset_chain(first, 0)?;
                self.pipeline_from(Stage::Spanset(se), start)
            }
            Tok::Kw(Kw::By | Kw::Select) => {
                let stage = self.stage()?;
                match stage {
                    StageOrMetrics::Stage(s) => self.pipeline_from(s, start),
                    StageOrMetrics::Metrics(..) | StageOrMetrics::BareAggregate(_) => {
                        Err(self.unexpected(None))
                    }
                }
            }
            _ => {
                let arith = self.arith(0)?;
                self.after_arith(arith, start)
            }
        }
    }

    /// Continues after arithmetic (possibly a single operand) at the start of an expression.
    fn after_arith(&mut self, arith: Arith, start: Span) -> Result<ExprBody> {
        match arith {
            Arith::Leaf(Operand::Spanset(se)) => {
                let se = self.spanset_chain(se, 0)?;
                self.pipeline_from(Stage::Spanset(se), start)
            }
            Arith::Leaf(Operand::PipelineExpr(pe)) => {
                let pe = self.pipeline_chain(pe, 0)?;
                let span = self.from(start);
                Ok(ExprBody::Search(Pipeline {
                    stages: vec![Stage::PipelineExpr(pe)],
                    span,
                }))
            }
            arith => {
                if contains(&arith, &|o| matches!(o, Operand::Metrics(_))) {
                    let expr = self.to_metrics(arith)?;
                    let second = self.second_stage()?;
                    return Ok(ExprBody::Metrics(MetricsQuery {
                        expr,
                        second,
                        span: self.from(start),
                    }));
                }
                if contains(&arith, &|o| matches!(o, Operand::ScalarPipeline(_))) {
                    let lhs = self.to_scalar_pipeline(arith)?;
                    let Some(op) = self.peek_cmp() else {
                        return Ok(ExprBody::ScalarPipeline(lhs));
                    };
                    self.bump();
                    let rhs_arith = self.arith(0)?;
                    let rhs = self.to_scalar_pipeline(rhs_arith)?;
                    let span = self.from(start);
                    return Ok(ExprBody::ScalarPipelineCmp(Body::ScalarPipelineCmp {
                        op,
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                        span,
                    }));
                }
                let has_agg = contains(&arith, &|o| matches!(o, Operand::Aggregate(_)));
                if !has_agg && self.peek_cmp().is_none() {
                    let (value, _) = self.fold_const(arith, false)?;
                    return Ok(ExprBody::Const(value));
                }
                let filter = self.scalar_filter_from(arith, start)?;
                self.pipeline_from(Stage::ScalarFilter(filter), start)
            }
        }
    }

    fn peek_cmp(&self) -> Option<CmpOp> {
        match self.peek() {
            Tok::Op(op) => cmp_op(*op),
            _ => None,
        }
    }

    /// `lhs cmp rhs` where one side holds an aggregate.
    fn scalar_filter_from(&mut self, lhs: Arith, start: Span) -> Result<ScalarFilter> {
        let Some(op) = self.peek_cmp() else {
            return Err(self.unexpected(None));
        };
        self.bump();
        let rhs = self.arith(0)?;
        let lhs_agg = contains(&lhs, &|o| matches!(o, Operand::Aggregate(_)));
        let rhs_agg = contains(&rhs, &|o| matches!(o, Operand::Aggregate(_)));
        if !lhs_agg && !rhs_agg {
            return Err(self.unexpected(None));
        }
        let lhs = self.to_scalar(lhs)?;
        let rhs = self.to_scalar(rhs)?;
        Ok(ScalarFilter {
            op,
            lhs,
            rhs,
            span: self.from(start),
        })
    }

    // ---------- pipelines ----------

    /// The rest of a pipeline whose first stage is parsed.
    fn pipeline_from(&mut self, first: Stage, start: Span) -> Result<ExprBody> {
        let mut stages = vec![first];
        while self.is_op(Op::Pipe) {
            self.bump();
            match self.stage()? {
                StageOrMetrics::Stage(s) => stages.push(s),
                StageOrMetrics::BareAggregate(aggregate) => {
                    let pipeline = Pipeline {
                        stages,
                        span: self.from(start),
                    };
                    let span = self.from(start);
                    return Ok(ExprBody::ScalarPipeline(ScalarPipeline::Agg {
                        pipeline,
                        aggregate,
                        span,
                    }));
                }
                StageOrMetrics::Metrics(func) => {
                    let second = self.second_stage()?;
                    let pipeline = Pipeline {
                        stages,
                        span: self.from(start),
                    };
                    let span = self.from(start);
                    let expr = MetricsExpr::Query {
                        pipeline,
                        func,
                        second: Vec::new(),
                        span,
                    };
                    return Ok(ExprBody::Metrics(MetricsQuery { expr, second, span }));
                }
            }
        }
        Ok(ExprBody::Search(Pipeline {
            stages,
            span: self.from(start),
        }))
    }

    fn stage(&mut self) -> Result<StageOrMetrics> {
        let start = self.span();
        match self.peek().clone() {
            Tok::Op(Op::LBrace) => {
                let first = self.spanset_operand()?;
                Ok(StageOrMetrics::Stage(Stage::Spanset(
                    self.spanset_chain(first, 0)?,
                )))
            }
            Tok::Kw(Kw::By) => {
                self.bump();
                self.expect_op(Op::LParen, Some("("))?;
                let e = self.field_expr()?;
                self.expect_op(Op::RParen, Some(")"))?;
                Ok(StageOrMetrics::Stage(Stage::GroupBy(e, self.from(start))))
            }
            Tok::Kw(Kw::Coalesce) => {
                self.bump();
                self.expect_op(Op::LParen, Some("("))?;
                self.expect_op(Op::RParen, Some(")"))?;
                Ok(StageOrMetrics::Stage(Stage::Coalesce(self.from(start))))
            }
            Tok::Kw(Kw::Select) => {
                self.bump();
                self.expect_op(Op::LParen, Some("("))?;
                let attrs = self.attr_list()?;
                Ok(StageOrMetrics::Stage(Stage::Select(
                    attrs,
                    self.from(start),
                )))
            }
            Tok::Kw(
                Kw::Rate
                | Kw::CountOverTime
                | Kw::MinOverTime
                | Kw::MaxOverTime
                | Kw::AvgOverTime
                | Kw::SumOverTime
                | Kw::HistogramOverTime
                | Kw::QuantileOverTime
                | Kw::Compare,
            ) => Ok(StageOrMetrics::Metrics(self.metrics_fn()?)),
            Tok::Op(Op::LParen) => {
                // A parenthesised spanset expression, or a parenthesised scalar expression.
                let as_spanset = self.attempt(|p| {
                    let first = p.spanset_operand()?;
                    p.spanset_chain(first, 0)
                });
                match as_spanset {
                    Ok(se) => Ok(StageOrMetrics::Stage(Stage::Spanset(se))),
                    Err(e1) => match self.attempt(|p| {
                        let a = p.arith(0)?;
                        p.scalar_filter_from(a, start)
                    }) {
                        Ok(f) => Ok(StageOrMetrics::Stage(Stage::ScalarFilter(f))),
                        Err(e2) => Err(if e2.span.start >= e1.span.start {
                            e2
                        } else {
                            e1
                        }),
                    },
                }
            }
            Tok::Kw(Kw::Count | Kw::Avg | Kw::Min | Kw::Max | Kw::Sum)
            | Tok::Int(_)
            | Tok::Float(_)
            | Tok::Duration(_)
            | Tok::Op(Op::Sub) => {
                let a = self.arith(0)?;
                if contains(&a, &|o| {
                    !matches!(o, Operand::Aggregate(_) | Operand::Const(..))
                }) {
                    return Err(self.unexpected(None));
                }
                if self.peek_cmp().is_none()
                    && self.is_op(Op::RParen)
                    && let Arith::Leaf(Operand::Aggregate(agg)) = a
                {
                    return Ok(StageOrMetrics::BareAggregate(agg));
                }
                Ok(StageOrMetrics::Stage(Stage::ScalarFilter(
                    self.scalar_filter_from(a, start)?,
                )))
            }
            _ => Err(self.unexpected(None)),
        }
    }

    // ---------- spanset expressions ----------

    /// `{ ... }` or `( spanset_expr )`.
    fn spanset_operand(&mut self) -> Result<SpansetExpr> {
        self.enter()?;
        let r = if self.is_op(Op::LParen) {
            self.bump();
            let first = self.spanset_operand();
            let r = first.and_then(|f| self.spanset_chain(f, 0));
            r.and_then(|se| self.expect_op(Op::RParen, None).map(|_| se))
        } else {
            self.spanset_filter()
        };
        self.leave();
        r
    }

    fn spanset_filter(&mut self) -> Result<SpansetExpr> {
        let start = self.expect_op(Op::LBrace, Some("{"))?;
        if self.is_op(Op::RBrace) {
            self.bump();
            let span = self.from(start);
            return Ok(SpansetExpr::Filter(
                FieldExpr::Static(Static::Bool(true), span),
                span,
            ));
        }
        let e = self.field_expr()?;
        self.expect_op(Op::RBrace, None)?;
        Ok(SpansetExpr::Filter(e, self.from(start)))
    }

    /// Precedence climbing over spanset operators (`&&`/`||` below structural ones), for
    /// spanset expressions and pipeline expressions alike: `operand` parses one operand, `join`
    /// builds a node.
    fn op_chain<T>(
        &mut self,
        mut lhs: T,
        min: u8,
        operand: fn(&mut Self) -> Result<T>,
        join: fn(SpansetOp, T, T) -> T,
    ) -> Result<T> {
        let outer = self.depth;
        while let Tok::Op(op) = self.peek().clone() {
            let Some((sop, prec)) = spanset_op(op) else {
                break;
            };
            if prec < min {
                break;
            }
            self.bump();
            // Each operator in a chain deepens the tree by one level.
            self.enter()?;
            let first = operand(self)?;
            let rhs = self.op_chain(first, prec + 1, operand, join)?;
            lhs = join(sop, lhs, rhs);
        }
        self.depth = outer;
        Ok(lhs)
    }

    fn spanset_chain(&mut self, lhs: SpansetExpr, min: u8) -> Result<SpansetExpr> {
        self.op_chain(lhs, min, Self::spanset_operand, |op, lhs, rhs| {
            let span = span_of_spanset(&lhs).to(span_of_spanset(&rhs));
            SpansetExpr::Op {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                span,
            }
        })
    }

    /// Pipeline expressions: operands are parenthesised pipelines.
    fn pipeline_chain(&mut self, lhs: PipelineExpr, min: u8) -> Result<PipelineExpr> {
        self.op_chain(lhs, min, Self::pipeline_operand, |op, lhs, rhs| {
            let span = span_of_pe(&lhs).to(span_of_pe(&rhs));
            PipelineExpr::Op {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                span,
            }
        })
    }

    /// `( pipeline )` as an operand of a pipeline expression.
    fn pipeline_operand(&mut self) -> Result<PipelineExpr> {
        if !self.is_op(Op::LParen) {
            return Err(self.unexpected(Some("(")));
        }
        match self.paren()? {
            Operand::PipelineExpr(pe) => Ok(pe),
            Operand::Spanset(se) => {
                let span = span_of_spanset(&se);
                Ok(PipelineExpr::Pipeline(Box::new(Pipeline {
                    stages: vec![Stage::Spanset(se)],
                    span,
                })))
            }
            _ => Err(self.unexpected(None)),
        }
    }

    /// `( ... )` at the top level or in arithmetic: whatever it holds.
    fn paren(&mut self) -> Result<Operand> {
        let start = self.expect_op(Op::LParen, Some("("))?;
        let inner = self.expr_body()?;
        self.expect_op(Op::RParen, None)?;
        let span = self.from(start);
        Ok(match inner {
            ExprBody::Search(p) => {
                let single = p.stages.len() == 1;
                let mut stages = p.stages;
                match stages.pop() {
                    Some(Stage::Spanset(se)) if single => Operand::Spanset(se),
                    Some(Stage::PipelineExpr(pe)) if single => Operand::PipelineExpr(pe),
                    Some(last) => {
                        stages.push(last);
                        Operand::PipelineExpr(PipelineExpr::Pipeline(Box::new(Pipeline {
                            stages,
                            span: p.span,
                        })))
                    }
                    None => return Err(self.unexpected(None)),
                }
            }
            ExprBody::Metrics(mq) => match mq.expr {
                MetricsExpr::Query {
                    pipeline,
                    func,
                    mut second,
                    span,
                } => {
                    second.extend(mq.second);
                    Operand::Metrics(MetricsExpr::Query {
                        pipeline,
                        func,
                        second,
                        span,
                    })
                }
                other if mq.second.is_empty() => Operand::Metrics(other),
                _ => return Err(self.unexpected(None)),
            },
            ExprBody::Const(v) => Operand::Const(v, span),
            ExprBody::ScalarPipeline(sp) => Operand::ScalarPipeline(sp),
            ExprBody::ScalarPipelineCmp(_) => return Err(self.unexpected(None)),
        })
    }

    // ---------- arithmetic of operands (scalar filters, metrics arithmetic, constants) ----------

    fn arith(&mut self, min: u8) -> Result<Arith> {
        self.enter()?;
        let r = self.arith_inner(min);
        self.leave();
        r
    }

    fn arith_inner(&mut self, min: u8) -> Result<Arith> {
        let start = self.span();
        let mut lhs = self.arith_leaf()?;
        if matches!(
            lhs,
            Arith::Leaf(Operand::Spanset(_) | Operand::PipelineExpr(_))
        ) {
            return Ok(lhs);
        }
        let outer = self.depth;
        while let Tok::Op(op) = self.peek().clone() {
            let Some(aop) = arith_op(op) else { break };
            let prec = arith_prec(aop);
            if prec < min {
                break;
            }
            self.enter()?;
            let op_span = self.bump().span;
            let next_min = if aop == ArithOp::Pow { prec } else { prec + 1 };
            let rhs = self.arith(next_min)?;
            if matches!(
                rhs,
                Arith::Leaf(Operand::Spanset(_) | Operand::PipelineExpr(_))
            ) {
                return Err(self.unexpected(None));
            }
            lhs = Arith::Bin {
                op: aop,
                op_span,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                span: self.from(start),
            };
        }
        self.depth = outer;
        Ok(lhs)
    }

    fn arith_leaf(&mut self) -> Result<Arith> {
        let start = self.span();
        match self.peek().clone() {
            Tok::Op(Op::LParen) => Ok(Arith::Leaf(self.paren()?)),
            Tok::Op(Op::Sub) => {
                self.bump();
                // Unary minus applies to constants only; it binds tighter than any operator.
                let inner = self.arith(8)?;
                let (v, _) = self
                    .fold_const(inner, false)
                    .map_err(|_| self.unexpected(None))?;
                let v = fold::negate(&v).ok_or_else(|| self.unexpected(None))?;
                Ok(Arith::Leaf(Operand::Const(v, self.from(start))))
            }
            Tok::Int(_) | Tok::Float(_) | Tok::Duration(_) => {
                let t = self.bump();
                Ok(Arith::Leaf(Operand::Const(
                    literal(&t.tok).unwrap_or(Static::Nil),
                    t.span,
                )))
            }
            Tok::Kw(Kw::Count | Kw::Avg | Kw::Min | Kw::Max | Kw::Sum) => {
                Ok(Arith::Leaf(Operand::Aggregate(self.aggregate()?)))
            }
            Tok::Op(Op::LBrace) => {
                let first = self.spanset_operand()?;
                Ok(Arith::Leaf(Operand::Spanset(first)))
            }
            _ => Err(self.unexpected(None)),
        }
    }

    fn aggregate(&mut self) -> Result<Aggregate> {
        let t = self.bump();
        let func = match t.tok {
            Tok::Kw(Kw::Count) => AggFunc::Count,
            Tok::Kw(Kw::Avg) => AggFunc::Avg,
            Tok::Kw(Kw::Min) => AggFunc::Min,
            Tok::Kw(Kw::Max) => AggFunc::Max,
            _ => AggFunc::Sum,
        };
        self.expect_op(Op::LParen, Some("("))?;
        let expr = if func == AggFunc::Count {
            None
        } else {
            Some(self.field_expr()?)
        };
        self.expect_op(Op::RParen, Some(")"))?;
        Ok(Aggregate {
            func,
            expr,
            span: self.from(t.span),
        })
    }

    /// Folds constant arithmetic (`+ - * /` and unary minus; no durations in arithmetic).
    fn fold_const(&self, a: Arith, metrics: bool) -> Result<(Static, Span)> {
        match a {
            Arith::Leaf(Operand::Const(v, s)) => Ok((v, s)),
            Arith::Leaf(_) => Err(self.unexpected(None)),
            Arith::Bin {
                op,
                op_span,
                lhs,
                rhs,
                span,
            } => {
                let (l, _) = self.fold_const(*lhs, metrics)?;
                let (r, _) = self.fold_const(*rhs, metrics)?;
                if matches!(l, Static::Duration(_)) || matches!(r, Static::Duration(_)) {
                    let msg = if metrics {
                        "duration cannot be used as a scalar operand in metric arithmetic"
                    } else {
                        "duration cannot be used in scalar arithmetic"
                    };
                    return Err(self.fold_err(msg, span));
                }
                if !matches!(
                    op,
                    ArithOp::Add | ArithOp::Sub | ArithOp::Mul | ArithOp::Div
                ) {
                    return Err(Error::new(
                        Phase::Syntax,
                        format!("syntax error: unexpected {}", op.text()),
                        op_span,
                        self.q,
                    ));
                }
                match fold::arith(op, &l, &r) {
                    Ok(v) => Ok((v, span)),
                    Err(e) => Err(self.fold_err(e, span)),
                }
            }
        }
    }

    fn to_scalar(&self, a: Arith) -> Result<ScalarExpr> {
        if !contains(&a, &|o| matches!(o, Operand::Aggregate(_))) {
            let (v, s) = self.fold_const(a, false)?;
            return Ok(ScalarExpr::Const(v, s));
        }
        match a {
            Arith::Leaf(Operand::Aggregate(agg)) => Ok(ScalarExpr::Aggregate(agg)),
            Arith::Leaf(_) => Err(self.unexpected(None)),
            Arith::Bin {
                op, lhs, rhs, span, ..
            } => Ok(ScalarExpr::Binary {
                op,
                lhs: Box::new(self.to_scalar(*lhs)?),
                rhs: Box::new(self.to_scalar(*rhs)?),
                span,
            }),
        }
    }

    fn to_metrics(&self, a: Arith) -> Result<MetricsExpr> {
        if !contains(&a, &|o| matches!(o, Operand::Metrics(_))) {
            let (v, s) = self.fold_const(a, true)?;
            if matches!(v, Static::Duration(_)) {
                return Err(self.fold_err(
                    "duration cannot be used as a scalar operand in metric arithmetic",
                    s,
                ));
            }
            return Ok(MetricsExpr::Const(v, s));
        }
        match a {
            Arith::Leaf(Operand::Metrics(m)) => Ok(m),
            Arith::Leaf(_) => Err(self.unexpected(None)),
            Arith::Bin {
                op,
                op_span,
                lhs,
                rhs,
                span,
            } => {
                if !matches!(
                    op,
                    ArithOp::Add | ArithOp::Sub | ArithOp::Mul | ArithOp::Div
                ) {
                    return Err(Error::new(
                        Phase::Syntax,
                        format!("syntax error: unexpected {}, expecting with", op.text()),
                        op_span,
                        self.q,
                    ));
                }
                Ok(MetricsExpr::Binary {
                    op,
                    lhs: Box::new(self.to_metrics(*lhs)?),
                    rhs: Box::new(self.to_metrics(*rhs)?),
                    span,
                })
            }
        }
    }

    fn to_scalar_pipeline(&self, a: Arith) -> Result<ScalarPipeline> {
        match a {
            Arith::Leaf(Operand::ScalarPipeline(sp)) => Ok(sp),
            Arith::Leaf(Operand::Const(v, s)) => Ok(ScalarPipeline::Const(v, s)),
            Arith::Leaf(_) => Err(self.unexpected(None)),
            Arith::Bin {
                op, lhs, rhs, span, ..
            } => Ok(ScalarPipeline::Binary {
                op,
                lhs: Box::new(self.to_scalar_pipeline(*lhs)?),
                rhs: Box::new(self.to_scalar_pipeline(*rhs)?),
                span,
            }),
        }
    }

    // ---------- metrics ----------

    fn metrics_fn(&mut self) -> Result<MetricsFn> {
        let t = self.bump();
        let Tok::Kw(kw) = t.tok else {
            return Err(self.unexpected(None));
        };
        self.expect_op(Op::LParen, Some("("))?;
        let over = |kw: Kw| match kw {
            Kw::MinOverTime => Some(OverTimeFn::Min),
            Kw::MaxOverTime => Some(OverTimeFn::Max),
            Kw::AvgOverTime => Some(OverTimeFn::Avg),
            Kw::SumOverTime => Some(OverTimeFn::Sum),
            Kw::HistogramOverTime => Some(OverTimeFn::Histogram),
            _ => None,
        };
        match kw {
            Kw::Rate | Kw::CountOverTime => {
                self.expect_op(Op::RParen, Some(")"))?;
                let by = self.by_list()?;
                let span = self.from(t.span);
                Ok(if kw == Kw::Rate {
                    MetricsFn::Rate { by, span }
                } else {
                    MetricsFn::CountOverTime { by, span }
                })
            }
            Kw::QuantileOverTime => {
                let attr = self.attr_ref()?;
                let mut quantiles = Vec::new();
                self.expect_op(Op::Comma, Some(","))?;
                loop {
                    match self.peek().clone() {
                        Tok::Int(i) => quantiles.push(i as f64),
                        Tok::Float(f) => quantiles.push(f),
                        _ => return Err(self.unexpected(None)),
                    }
                    self.bump();
                    if !self.eat_op(Op::Comma) {
                        break;
                    }
                }
                self.expect_op(Op::RParen, Some(") or ,"))?;
                let by = self.by_list()?;
                Ok(MetricsFn::QuantileOverTime {
                    attr,
                    quantiles,
                    by,
                    span: self.from(t.span),
                })
            }
            Kw::Compare => {
                if !self.is_op(Op::LBrace) {
                    return Err(self.unexpected(Some("{")));
                }
                let filter = self.spanset_filter()?;
                let mut args = Vec::new();
                while self.eat_op(Op::Comma) && args.len() < 3 {
                    match self.peek().clone() {
                        Tok::Int(i) => {
                            self.bump();
                            args.push(i);
                        }
                        _ => return Err(self.unexpected(Some("INTEGER"))),
                    }
                }
                if args.len() == 2 {
                    return Err(self.unexpected(Some(",")));
                }
                self.expect_op(Op::RParen, Some(") or ,"))?;
                Ok(MetricsFn::Compare {
                    filter,
                    top_n: args.first().copied(),
                    start: args.get(1).copied(),
                    end: args.get(2).copied(),
                    span: self.from(t.span),
                })
            }
            kw => {
                let func = over(kw).ok_or_else(|| self.unexpected(None))?;
                let attr = self.attr_ref()?;
                self.expect_op(Op::RParen, Some(")"))?;
                let by = self.by_list()?;
                Ok(MetricsFn::OverTime {
                    func,
                    attr,
                    by,
                    span: self.from(t.span),
                })
            }
        }
    }

    fn by_list(&mut self) -> Result<Vec<Attribute>> {
        if !self.is_kw(Kw::By) {
            return Ok(Vec::new());
        }
        self.bump();
        self.expect_op(Op::LParen, Some("("))?;
        self.attr_list()
    }

    /// `attr {, attr} )` (after the opening parenthesis).
    fn attr_list(&mut self) -> Result<Vec<Attribute>> {
        let mut attrs = vec![self.attr_ref()?];
        while self.eat_op(Op::Comma) {
            attrs.push(self.attr_ref()?);
        }
        self.expect_op(Op::RParen, Some(") or ,"))?;
        Ok(attrs)
    }

    /// `| topk(n)`, `| bottomk(n)` and `cmp constant`, in any order.
    fn second_stage(&mut self) -> Result<Vec<SecondStage>> {
        let mut out = Vec::new();
        loop {
            let start = self.span();
            if self.is_op(Op::Pipe) {
                self.bump();
                let top = match self.peek() {
                    Tok::Kw(Kw::Topk) => true,
                    Tok::Kw(Kw::Bottomk) => false,
                    _ => return Err(self.unexpected(Some("topk or bottomk"))),
                };
                self.bump();
                self.expect_op(Op::LParen, Some("("))?;
                let Tok::Int(n) = *self.peek() else {
                    return Err(self.unexpected(Some("INTEGER")));
                };
                self.bump();
                self.expect_op(Op::RParen, Some(")"))?;
                let span = self.from(start);
                out.push(if top {
                    SecondStage::TopK(n, span)
                } else {
                    SecondStage::BottomK(n, span)
                });
            } else if let Some(op) = self.peek_cmp() {
                self.bump();
                let a = self.arith(0)?;
                let (v, _) = self.fold_const(a, false)?;
                out.push(SecondStage::Filter(op, v, self.from(start)));
            } else {
                return Ok(out);
            }
        }
    }

    // ---------- field expressions ----------

    fn field_expr(&mut self) -> Result<FieldExpr> {
        self.field(0)
    }

    fn field(&mut self, min: u8) -> Result<FieldExpr> {
        self.enter()?;
        let r = self.field_inner(min);
        self.leave();
        r
    }

    fn field_inner(&mut self, min: u8) -> Result<FieldExpr> {
        let mut lhs = self.field_prefix()?;
        let outer = self.depth;
        while let Tok::Op(op) = self.peek().clone() {
            let Some((bop, prec)) = field_op(op) else {
                break;
            };
            if prec < min {
                break;
            }
            // Each operator in a chain deepens the tree by one level.
            self.enter()?;
            self.bump();
            let rhs = if matches!(bop, BinOp::Cmp(CmpOp::Eq | CmpOp::Neq)) && self.is_kw(Kw::Nil) {
                let t = self.bump();
                FieldExpr::Static(Static::Nil, t.span)
            } else {
                let next_min = if bop == BinOp::Arith(ArithOp::Pow) {
                    prec
                } else {
                    prec + 1
                };
                self.field(next_min)?
            };
            lhs = fold::binary(bop, lhs, rhs);
        }
        self.depth = outer;
        Ok(lhs)
    }

    fn field_prefix(&mut self) -> Result<FieldExpr> {
        let start = self.span();
        match self.peek().clone() {
            // Unary minus takes the +/- level: its operand holds every tighter operator.
            Tok::Op(Op::Sub) => {
                self.bump();
                let e = self.field(5)?;
                Ok(fold::unary(UnaryOp::Neg, e, self.from(start)))
            }
            Tok::Op(Op::Not) => {
                self.bump();
                let e = self.field(6)?;
                Ok(fold::unary(UnaryOp::Not, e, self.from(start)))
            }
            Tok::Op(Op::LParen) => {
                self.bump();
                let e = self.field_expr()?;
                self.expect_op(Op::RParen, None)?;
                Ok(e)
            }
            Tok::Kw(Kw::Nil) => {
                // nil only as a direct operand of = or !=.
                let t = self.bump();
                let op = match self.peek() {
                    Tok::Op(Op::Eq) => CmpOp::Eq,
                    Tok::Op(Op::Neq) => CmpOp::Neq,
                    _ => return Err(self.unexpected(None)),
                };
                self.bump();
                let rhs = if self.is_kw(Kw::Nil) {
                    let n = self.bump();
                    FieldExpr::Static(Static::Nil, n.span)
                } else {
                    self.field(4)?
                };
                let span = t.span.to(rhs.span());
                Ok(FieldExpr::Binary {
                    op: BinOp::Cmp(op),
                    lhs: Box::new(FieldExpr::Static(Static::Nil, t.span)),
                    rhs: Box::new(rhs),
                    span,
                })
            }
            tok => {
                if let Some(v) = literal(&tok) {
                    let t = self.bump();
                    return Ok(FieldExpr::Static(v, t.span));
                }
                Ok(FieldExpr::Attribute(self.attr_ref()?))
            }
        }
    }

    /// An attribute, a bare intrinsic, or a `scope:` intrinsic.
    fn attr_ref(&mut self) -> Result<Attribute> {
        let t = self.peek().clone();
        let span = self.span();
        match t {
            Tok::Attr {
                scope,
                parent,
                name,
            } => {
                self.bump();
                Ok(Attribute {
                    scope,
                    parent,
                    name,
                    intrinsic: None,
                    span,
                })
            }
            Tok::Kw(kw) if intrinsic_kw(kw).is_some() => {
                self.bump();
                Ok(Attribute {
                    scope: AttrScope::None,
                    parent: false,
                    name: kw.text().to_string(),
                    intrinsic: intrinsic_kw(kw),
                    span,
                })
            }
            Tok::ScopeColon(scope) => {
                self.bump();
                let allowed = scoped_intrinsics(scope);
                let found = match self.peek() {
                    Tok::Kw(kw) => allowed.iter().find(|(k, _)| k == kw).copied(),
                    _ => None,
                };
                let Some((kw, intrinsic)) = found else {
                    let names: Vec<&str> = allowed.iter().map(|(k, _)| k.text()).collect();
                    return Err(self.unexpected(Some(&names.join(" or "))));
                };
                self.bump();
                Ok(Attribute {
                    scope: AttrScope::None,
                    parent: false,
                    name: format!("{}:{}", scope.text(), kw.text()),
                    intrinsic: Some(intrinsic),
                    span: self.from(span),
                })
            }
            _ => Err(self.unexpected(None)),
        }
    }
}

enum StageOrMetrics {
    Stage(Stage),
    Metrics(MetricsFn),
    /// `| count()` with no comparison: only valid last in a parenthesised scalar pipeline.
    BareAggregate(Aggregate),
}

fn contains(a: &Arith, pred: &dyn Fn(&Operand) -> bool) -> bool {
    match a {
        Arith::Leaf(o) => pred(o),
        Arith::Bin { lhs, rhs, .. } => contains(lhs, pred) || contains(rhs, pred),
    }
}

pub(crate) fn span_of_spanset(se: &SpansetExpr) -> Span {
    match se {
        SpansetExpr::Filter(_, s) | SpansetExpr::Op { span: s, .. } => *s,
    }
}

fn span_of_pe(pe: &PipelineExpr) -> Span {
    match pe {
        PipelineExpr::Pipeline(p) => p.span,
        PipelineExpr::Op { span, .. } => *span,
    }
}
