//! Field expressions compiled for evaluation: attribute names resolved to dictionary IDs once
//! per batch, regexes compiled once per query, existence tests made explicit.

use std::borrow::Cow;

use regex::Regex;

use crate::ast::{AttrScope, Attribute, BinOp, CmpOp, FieldExpr, Intrinsic, Static, UnaryOp};
use crate::batch::{SpanBatch, Stored, StrId};

use super::EvalError;
use super::value::{Arr, Value, arith, compare};

/// A compiled field expression.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Lit(Static),
    /// An attribute by scope, with its index in the query's name table.
    Attr(AttrScope, usize),
    Intr(Intrinsic),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    Arith(crate::ast::ArithOp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `=~` (`negate` false) or `!~` against a compiled, fully anchored regex.
    Regex {
        negate: bool,
        lhs: Box<Expr>,
        re: Regex,
    },
    /// `x != nil` (`present` true) or `x = nil`.
    Exists {
        present: bool,
        expr: Box<Expr>,
    },
    Not(Box<Expr>, String),
    Neg(Box<Expr>, String),
}

/// What a compiled query needs resolved per batch.
#[derive(Debug, Default, Clone)]
pub(crate) struct Names {
    pub(crate) names: Vec<String>,
}

impl Names {
    fn index(&mut self, name: &str) -> usize {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return i;
        }
        self.names.push(name.to_string());
        self.names.len() - 1
    }

    /// Dictionary IDs of the names in `batch` (`None`: no attribute of that name there).
    pub(crate) fn bind(&self, batch: &SpanBatch) -> Vec<Option<StrId>> {
        self.names.iter().map(|n| batch.lookup(n)).collect()
    }
}

pub(crate) fn compile(e: &FieldExpr, names: &mut Names) -> Result<Expr, EvalError> {
    Ok(match e {
        FieldExpr::Static(v, _) => Expr::Lit(v.clone()),
        FieldExpr::Attribute(a) => attr(a, names),
        FieldExpr::Unary { op, expr, .. } => {
            let inner = Box::new(compile(expr, names)?);
            let text = e.to_string();
            match op {
                UnaryOp::Not => Expr::Not(inner, text),
                UnaryOp::Neg => Expr::Neg(inner, text),
            }
        }
        FieldExpr::Binary { op, lhs, rhs, .. } => match op {
            BinOp::Cmp(c @ (CmpOp::Eq | CmpOp::Neq))
                if matches!(**rhs, FieldExpr::Static(Static::Nil, _))
                    || matches!(**lhs, FieldExpr::Static(Static::Nil, _)) =>
            {
                let other = if matches!(**rhs, FieldExpr::Static(Static::Nil, _)) {
                    lhs
                } else {
                    rhs
                };
                Expr::Exists {
                    present: *c == CmpOp::Neq,
                    expr: Box::new(compile(other, names)?),
                }
            }
            BinOp::Cmp(c) => {
                let (l, r) = (compile(lhs, names)?, compile(rhs, names)?);
                let l2 = normalise_id(l.clone(), &r);
                let r2 = normalise_id(r, &l);
                Expr::Cmp(*c, Box::new(l2), Box::new(r2))
            }
            BinOp::Arith(a) => Expr::Arith(
                *a,
                Box::new(compile(lhs, names)?),
                Box::new(compile(rhs, names)?),
            ),
            BinOp::And => Expr::And(
                Box::new(compile(lhs, names)?),
                Box::new(compile(rhs, names)?),
            ),
            BinOp::Or => Expr::Or(
                Box::new(compile(lhs, names)?),
                Box::new(compile(rhs, names)?),
            ),
            BinOp::Regex | BinOp::NotRegex => {
                let FieldExpr::Static(Static::Str(pattern), _) = rhs.as_ref() else {
                    return Err(EvalError::new(format!("invalid type for =~ or !~: {rhs}")));
                };
                let re = Regex::new(&format!("^(?s:{pattern})$"))
                    .map_err(|err| EvalError::new(format!("invalid regex: {pattern}: {err}")))?;
                Expr::Regex {
                    negate: *op == BinOp::NotRegex,
                    lhs: Box::new(compile(lhs, names)?),
                    re,
                }
            }
        },
    })
}

/// `trace:id` compares without leading zeros on either side (traceql.md §8.3): a literal
/// compared with it is trimmed here, the stored ID when it is read.
fn normalise_id(e: Expr, other: &Expr) -> Expr {
    match (e, other) {
        (Expr::Lit(Static::Str(s)), Expr::Intr(Intrinsic::TraceId)) => {
            Expr::Lit(Static::Str(trim_zeros(&s.to_ascii_lowercase()).to_string()))
        }
        (
            Expr::Lit(Static::Str(s)),
            Expr::Intr(
                Intrinsic::SpanId
                | Intrinsic::ParentId
                | Intrinsic::LinkSpanId
                | Intrinsic::LinkTraceId,
            ),
        ) => Expr::Lit(Static::Str(s.to_ascii_lowercase())),
        (e, _) => e,
    }
}

pub(crate) fn trim_zeros(s: &str) -> &str {
    let t = s.trim_start_matches('0');
    if t.is_empty() { "0" } else { t }
}

fn attr(a: &Attribute, names: &mut Names) -> Expr {
    match a.intrinsic {
        Some(i) => Expr::Intr(i),
        None => Expr::Attr(a.scope, names.index(&a.name)),
    }
}

impl Expr {
    /// The attribute and intrinsic terms the expression reads, added to `out`.
    pub(crate) fn terms<'e>(&'e self, out: &mut Vec<&'e Expr>) {
        match self {
            Expr::Attr(..) | Expr::Intr(_) => out.push(self),
            Expr::Lit(_) => {}
            Expr::Cmp(_, l, r) | Expr::Arith(_, l, r) | Expr::And(l, r) | Expr::Or(l, r) => {
                l.terms(out);
                r.terms(out);
            }
            Expr::Regex { lhs, .. } => lhs.terms(out),
            Expr::Exists { expr, .. } | Expr::Not(expr, _) | Expr::Neg(expr, _) => expr.terms(out),
        }
    }

    /// Whether the expression reads event (or link) terms, which bind one event (link) at a
    /// time (§6.7).
    pub(crate) fn uses(&self, scope: AttrScope) -> bool {
        match self {
            Expr::Attr(s, _) => *s == scope,
            Expr::Intr(i) => match scope {
                AttrScope::Event => {
                    matches!(i, Intrinsic::EventName | Intrinsic::EventTimeSinceStart)
                }
                AttrScope::Link => matches!(i, Intrinsic::LinkTraceId | Intrinsic::LinkSpanId),
                _ => false,
            },
            Expr::Lit(_) => false,
            Expr::Cmp(_, l, r) | Expr::Arith(_, l, r) | Expr::And(l, r) | Expr::Or(l, r) => {
                l.uses(scope) || r.uses(scope)
            }
            Expr::Regex { lhs, .. } => lhs.uses(scope),
            Expr::Exists { expr, .. } | Expr::Not(expr, _) | Expr::Neg(expr, _) => expr.uses(scope),
        }
    }
}

/// One span with at most one of its events and one of its links bound.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) b: &'a SpanBatch,
    pub(crate) ids: &'a [Option<StrId>],
    pub(crate) span: usize,
    pub(crate) event_opt: Option<usize>,
    pub(crate) link_opt: Option<usize>,
}

pub(crate) fn stored<'a>(b: &'a SpanBatch, v: Stored) -> Value<'a> {
    match v {
        Stored::Str(id) => Value::Str(Cow::Borrowed(b.str(id))),
        Stored::Int(i) => Value::Int(i),
        Stored::Float(f) => Value::Float(f),
        Stored::Bool(x) => Value::Bool(x),
        Stored::StrArr(at, n) => {
            Value::Array(Arr::Str(b, &b.arr_str[at as usize..(at + n) as usize]))
        }
        Stored::IntArr(at, n) => Value::Array(Arr::Int(&b.arr_int[at as usize..(at + n) as usize])),
        Stored::FloatArr(at, n) => {
            Value::Array(Arr::Float(&b.arr_float[at as usize..(at + n) as usize]))
        }
        Stored::BoolArr(at, n) => {
            Value::Array(Arr::Bool(&b.arr_bool[at as usize..(at + n) as usize]))
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

impl<'a> Ctx<'a> {
    /// The value of an attribute in `scope` (unscoped: span, then resource).
    pub(crate) fn attribute(&self, scope: AttrScope, key_opt: Option<StrId>) -> Value<'a> {
        let Some(key) = key_opt else {
            return Value::Nil;
        };
        let b = self.b;
        let s = self.span;
        let find = |attrs: &std::ops::Range<u32>| b.find_attr(attrs, key).map(|v| stored(b, v));
        let found = match scope {
            AttrScope::Span => find(&b.span_attrs[s]),
            AttrScope::Resource => b
                .resources
                .get(b.span_resource[s] as usize)
                .and_then(|r| find(&r.attrs)),
            AttrScope::None => find(&b.span_attrs[s]).or_else(|| {
                b.resources
                    .get(b.span_resource[s] as usize)
                    .and_then(|r| find(&r.attrs))
            }),
            AttrScope::Instrumentation => b
                .scopes
                .get(b.span_scope[s] as usize)
                .and_then(|sc| find(&sc.attrs)),
            AttrScope::Event => self.event_opt.and_then(|e| find(&b.events[e].attrs)),
            AttrScope::Link => self.link_opt.and_then(|l| find(&b.links[l].attrs)),
        };
        found.unwrap_or(Value::Nil)
    }

    pub(crate) fn intrinsic(&self, i: Intrinsic) -> Value<'a> {
        let b = self.b;
        let s = self.span;
        let trace = &b.traces[b.span_trace[s] as usize];
        let string = |id: StrId| Value::Str(Cow::Borrowed(b.str(id)));
        match i {
            Intrinsic::Duration => Value::Duration(b.span_duration_ns[s] as i64),
            Intrinsic::Name => string(b.span_name[s]),
            Intrinsic::Status => Value::Status(b.span_status[s]),
            Intrinsic::StatusMessage => string(b.span_status_message[s]),
            Intrinsic::Kind => Value::Kind(b.span_kind[s]),
            Intrinsic::SpanId => Value::Str(Cow::Owned(hex(&b.span_id[s]))),
            Intrinsic::ParentId => {
                let p = b.span_parent_id[s];
                Value::Str(Cow::Owned(if p == [0xff; 8] {
                    hex(&[0; 8])
                } else {
                    hex(&p)
                }))
            }
            Intrinsic::ChildCount => Value::Int(b.span_child_count[s] as i64),
            Intrinsic::TraceDuration => {
                Value::Duration(trace.end_ns.saturating_sub(trace.start_ns) as i64)
            }
            Intrinsic::TraceRootName => trace.root_name_opt.map_or(Value::Str("".into()), string),
            Intrinsic::TraceRootService => {
                trace.root_service_opt.map_or(Value::Str("".into()), string)
            }
            Intrinsic::TraceId => Value::Str(Cow::Owned(trim_zeros(&hex(&trace.id)).to_string())),
            Intrinsic::EventName => self
                .event_opt
                .map_or(Value::Nil, |e| string(b.events[e].name)),
            Intrinsic::EventTimeSinceStart => self.event_opt.map_or(Value::Nil, |e| {
                Value::Duration(b.events[e].time_since_start_ns as i64)
            }),
            Intrinsic::LinkTraceId => self.link_opt.map_or(Value::Nil, |l| {
                Value::Str(Cow::Owned(
                    trim_zeros(&hex(&b.links[l].trace_id)).to_string(),
                ))
            }),
            Intrinsic::LinkSpanId => self.link_opt.map_or(Value::Nil, |l| {
                Value::Str(Cow::Owned(hex(&b.links[l].span_id)))
            }),
            Intrinsic::InstrumentationName => b
                .scopes
                .get(b.span_scope[s] as usize)
                .map_or(Value::Nil, |sc| string(sc.name)),
            Intrinsic::InstrumentationVersion => b
                .scopes
                .get(b.span_scope[s] as usize)
                .map_or(Value::Nil, |sc| string(sc.version)),
            Intrinsic::NestedSetLeft => Value::Int(b.span_nested_left[s] as i64),
            Intrinsic::NestedSetRight => Value::Int(b.span_nested_right[s] as i64),
            Intrinsic::NestedSetParent => Value::Int(b.span_nested_parent[s] as i64),
            Intrinsic::Parent => Value::Nil,
        }
    }
}

/// Where an expression's attributes and intrinsics come from: a span of a [`SpanBatch`]
/// ([`Ctx`]), or a span of span-only columns (`crate::spans`). Both are evaluated by the same
/// [`eval`], so they agree by construction.
pub(crate) trait Fields<'a> {
    /// The attribute `name` (an index into the plan's [`Names`]) in `scope`.
    fn attribute(&self, scope: AttrScope, name: usize) -> Value<'a>;
    fn intrinsic(&self, i: Intrinsic) -> Value<'a>;
    /// Whether an event (a link) is bound: event (link) terms exist only then.
    fn event_bound(&self) -> bool;
    fn link_bound(&self) -> bool;
}

impl<'a> Fields<'a> for Ctx<'a> {
    fn attribute(&self, scope: AttrScope, name: usize) -> Value<'a> {
        Ctx::attribute(self, scope, self.ids.get(name).copied().flatten())
    }

    fn intrinsic(&self, i: Intrinsic) -> Value<'a> {
        Ctx::intrinsic(self, i)
    }

    fn event_bound(&self) -> bool {
        self.event_opt.is_some()
    }

    fn link_bound(&self) -> bool {
        self.link_opt.is_some()
    }
}

impl<'a> Ctx<'a> {
    pub(crate) fn eval<'e>(&self, e: &'e Expr) -> Result<Value<'e>, EvalError>
    where
        'a: 'e,
    {
        eval(self, e)
    }
}

/// The value of `e` for the span `f` gives.
pub(crate) fn eval<'a, 'e, F: Fields<'a>>(f: &F, e: &'e Expr) -> Result<Value<'e>, EvalError>
where
    'a: 'e,
{
    Ok(match e {
        Expr::Lit(s) => lit(s),
        Expr::Attr(scope, i) => f.attribute(*scope, *i),
        Expr::Intr(i) => f.intrinsic(*i),
        Expr::Cmp(op, l, r) => {
            let (l, r) = (eval(f, l)?, eval(f, r)?);
            Value::Bool(compare(*op, &l, &r)?)
        }
        Expr::Arith(op, l, r) => {
            let (l, r) = (eval(f, l)?, eval(f, r)?);
            arith(*op, &l, &r)?
        }
        Expr::And(l, r) => {
            let lv = eval(f, l)?;
            if matches!(lv, Value::Bool(false)) {
                return Ok(Value::Bool(false));
            }
            let rv = eval(f, r)?;
            match (lv, rv) {
                (Value::Bool(a), Value::Bool(b)) => Value::Bool(a && b),
                _ => Value::Bool(false),
            }
        }
        Expr::Or(l, r) => {
            let lv = eval(f, l)?;
            let rv = eval(f, r)?;
            match (lv, rv) {
                (Value::Bool(a), Value::Bool(b)) => Value::Bool(a || b),
                _ => Value::Bool(false),
            }
        }
        Expr::Regex { negate, lhs, re } => {
            let v = eval(f, lhs)?;
            Value::Bool(match &v {
                Value::Str(s) => re.is_match(s) != *negate,
                Value::Array(Arr::Str(b, ids)) => {
                    let any = ids.iter().any(|id| re.is_match(b.str(*id)));
                    if *negate { !any } else { any }
                }
                _ => false,
            })
        }
        Expr::Exists { present, expr } => {
            // Event and link terms exist only with an event (link) bound.
            if (expr.uses(AttrScope::Event) && !f.event_bound())
                || (expr.uses(AttrScope::Link) && !f.link_bound())
            {
                return Ok(Value::Bool(false));
            }
            Value::Bool(eval(f, expr)?.is_nil() != *present)
        }
        Expr::Not(inner, text) => match eval(f, inner)? {
            Value::Bool(b) => Value::Bool(!b),
            other => {
                return Err(EvalError::new(format!(
                    "expression ({text}) expected a boolean, but got {}",
                    other.type_name()
                )));
            }
        },
        Expr::Neg(inner, text) => match eval(f, inner)? {
            Value::Int(i) => Value::Int(i.wrapping_neg()),
            Value::Float(f) => Value::Float(-f),
            Value::Duration(d) => Value::Duration(d.wrapping_neg()),
            other => {
                return Err(EvalError::new(format!(
                    "expression ({text}) expected a numeric, but got {}",
                    other.type_name()
                )));
            }
        },
    })
}

pub(crate) fn lit(s: &Static) -> Value<'_> {
    match s {
        Static::Nil => Value::Nil,
        Static::Int(i) => Value::Int(*i),
        Static::Float(f) => Value::Float(*f),
        Static::Str(s) => Value::Str(Cow::Borrowed(s)),
        Static::Bool(b) => Value::Bool(*b),
        Static::Duration(d) => Value::Duration(*d),
        Static::Status(s) => Value::Status(*s),
        Static::Kind(k) => Value::Kind(*k),
    }
}

/// Evaluates `e` for span `span`, binding each of its events and links in turn when the
/// expression reads them: true when one binding makes it true (§6.7).
pub(crate) fn matches(
    b: &SpanBatch,
    ids: &[Option<StrId>],
    e: &Expr,
    span: usize,
    uses_event: bool,
    uses_link: bool,
) -> Result<bool, EvalError> {
    if !uses_event && !uses_link {
        let ctx = Ctx {
            b,
            ids,
            span,
            event_opt: None,
            link_opt: None,
        };
        return Ok(matches!(ctx.eval(e)?, Value::Bool(true)));
    }
    let events: Vec<Option<usize>> = if uses_event {
        let r = &b.span_events[span];
        if r.is_empty() {
            vec![None]
        } else {
            (r.start as usize..r.end as usize).map(Some).collect()
        }
    } else {
        vec![None]
    };
    let links: Vec<Option<usize>> = if uses_link {
        let r = &b.span_links[span];
        if r.is_empty() {
            vec![None]
        } else {
            (r.start as usize..r.end as usize).map(Some).collect()
        }
    } else {
        vec![None]
    };
    for ev in &events {
        for lk in &links {
            let ctx = Ctx {
                b,
                ids,
                span,
                event_opt: *ev,
                link_opt: *lk,
            };
            if matches!(ctx.eval(e)?, Value::Bool(true)) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
