//! The canonical text of a query: `parse(print(q))` gives back the same tree. Nested operations
//! are parenthesised, strings double-quoted with Go escapes, attribute names quoted when they
//! hold characters that would end them.

use std::fmt::{self, Display, Formatter, Write};

use crate::ast::*;

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.body {
            Body::Search(p) => write!(f, "{p}")?,
            Body::Metrics(m) => write!(f, "{m}")?,
            Body::ScalarPipelineCmp { op, lhs, rhs, .. } => write!(f, "{lhs} {} {rhs}", op.text())?,
        }
        if !self.hints.is_empty() {
            f.write_str(" with(")?;
            for (i, h) in self.hints.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{}={}", h.name, h.value)?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl Display for ScalarPipeline {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ScalarPipeline::Agg {
                pipeline,
                aggregate,
                ..
            } => write!(f, "({pipeline} | {aggregate})"),
            ScalarPipeline::Const(v, _) => write!(f, "{v}"),
            ScalarPipeline::Binary { op, lhs, rhs, .. } => write!(f, "({lhs} {} {rhs})", op.text()),
        }
    }
}

impl Display for Pipeline {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, s) in self.stages.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Spanset(se) => write!(f, "{se}"),
            Stage::PipelineExpr(pe) => write!(f, "{pe}"),
            Stage::ScalarFilter(sf) => write!(f, "{} {} {}", sf.lhs, sf.op.text(), sf.rhs),
            Stage::GroupBy(e, _) => write!(f, "by({e})"),
            Stage::Coalesce(_) => f.write_str("coalesce()"),
            Stage::Select(attrs, _) => write!(f, "select({})", list(attrs)),
        }
    }
}

fn list(attrs: &[Attribute]) -> String {
    attrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Display for PipelineExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            PipelineExpr::Pipeline(p) => write!(f, "({p})"),
            PipelineExpr::Op { op, lhs, rhs, .. } => {
                let side = |e: &PipelineExpr| match e {
                    PipelineExpr::Op { .. } => format!("({e})"),
                    _ => e.to_string(),
                };
                write!(f, "{} {} {}", side(lhs), op.text(), side(rhs))
            }
        }
    }
}

impl Display for SpansetExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SpansetExpr::Filter(e, _) => write!(f, "{{ {e} }}"),
            SpansetExpr::Op { op, lhs, rhs, .. } => {
                let side = |e: &SpansetExpr| match e {
                    SpansetExpr::Op { .. } => format!("({e})"),
                    _ => e.to_string(),
                };
                write!(f, "{} {} {}", side(lhs), op.text(), side(rhs))
            }
        }
    }
}

impl Display for ScalarExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ScalarExpr::Aggregate(a) => write!(f, "{a}"),
            ScalarExpr::Const(v, _) => write!(f, "{v}"),
            ScalarExpr::Binary { op, lhs, rhs, .. } => write!(f, "{lhs} {} {rhs}", op.text()),
        }
    }
}

impl Display for Aggregate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.expr {
            Some(e) => write!(f, "{}({e})", self.func.text()),
            None => write!(f, "{}()", self.func.text()),
        }
    }
}

impl Display for FieldExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let operand = |e: &FieldExpr| match e {
            FieldExpr::Binary { .. } => format!("({e})"),
            _ => e.to_string(),
        };
        match self {
            FieldExpr::Binary { op, lhs, rhs, .. } => {
                write!(f, "{} {} {}", operand(lhs), op.text(), operand(rhs))
            }
            FieldExpr::Unary { op, expr, .. } => {
                let sym = if *op == UnaryOp::Neg { "-" } else { "!" };
                match expr.as_ref() {
                    FieldExpr::Binary { .. } | FieldExpr::Unary { .. } => {
                        write!(f, "{sym}({expr})")
                    }
                    _ => write!(f, "{sym}{expr}"),
                }
            }
            FieldExpr::Static(v, _) => write!(f, "{v}"),
            FieldExpr::Attribute(a) => write!(f, "{a}"),
        }
    }
}

impl Display for Static {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Static::Nil => f.write_str("nil"),
            Static::Int(i64::MIN) => f.write_str("minInt"),
            Static::Int(i) => write!(f, "{i}"),
            Static::Float(v) if v.is_infinite() => {
                f.write_str(if *v > 0.0 { "(1.0 / 0)" } else { "(-1.0 / 0)" })
            }
            Static::Float(v) => write!(f, "{v:?}"),
            Static::Str(s) => write_string(f, s),
            Static::Bool(b) => write!(f, "{b}"),
            Static::Duration(d) => write_duration(f, *d),
            Static::Status(s) => f.write_str(match s {
                StatusValue::Error => "error",
                StatusValue::Ok => "ok",
                StatusValue::Unset => "unset",
            }),
            Static::Kind(k) => f.write_str(match k {
                KindValue::Unspecified => "unspecified",
                KindValue::Internal => "internal",
                KindValue::Server => "server",
                KindValue::Client => "client",
                KindValue::Producer => "producer",
                KindValue::Consumer => "consumer",
            }),
        }
    }
}

fn write_string(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c if (c as u32) < 0x20 || c == '\u{7f}' => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

fn write_duration(f: &mut Formatter<'_>, ns: i64) -> fmt::Result {
    if ns < 0 {
        f.write_char('-')?;
    }
    let abs = ns.unsigned_abs();
    const UNITS: &[(u64, &str)] = &[
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
    ];
    for (size, unit) in UNITS {
        if abs != 0 && abs.is_multiple_of(*size) {
            return write!(f, "{}{unit}", abs / size);
        }
    }
    write!(f, "{abs}ns")
}

impl Display for Attribute {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.intrinsic.is_some() {
            return f.write_str(&self.name);
        }
        if self.parent {
            f.write_str("parent.")?;
            if matches!(self.scope, AttrScope::Span | AttrScope::Resource) {
                f.write_str(self.scope.prefix())?;
            }
        } else {
            f.write_str(self.scope.prefix())?;
        }
        let ends_name = |c: char| c.is_whitespace() || "{}()=~!<>&|^,\"\\".contains(c);
        // `.3x` would lex as a number; `parent."span.x"` must not read as `parent.span.x`.
        let unscoped_digit = self.scope == AttrScope::None
            && !self.parent
            && self.name.starts_with(|c: char| c.is_ascii_digit());
        let parent_scope_like =
            self.parent && (self.name.starts_with("span.") || self.name.starts_with("resource."));
        let plain = !self.name.is_empty()
            && !self.name.chars().any(ends_name)
            && !unscoped_digit
            && !parent_scope_like;
        if plain {
            return f.write_str(&self.name);
        }
        f.write_char('"')?;
        for c in self.name.chars() {
            if c == '"' || c == '\\' {
                f.write_char('\\')?;
            }
            f.write_char(c)?;
        }
        f.write_char('"')
    }
}

impl Display for MetricsQuery {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.expr)?;
        write_second(f, &self.second)
    }
}

fn write_second(f: &mut Formatter<'_>, second: &[SecondStage]) -> fmt::Result {
    for s in second {
        match s {
            SecondStage::TopK(n, _) => write!(f, " | topk({n})")?,
            SecondStage::BottomK(n, _) => write!(f, " | bottomk({n})")?,
            SecondStage::Filter(op, v, _) => write!(f, " {} {v}", op.text())?,
        }
    }
    Ok(())
}

impl Display for MetricsExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MetricsExpr::Query {
                pipeline,
                func,
                second,
                ..
            } => {
                write!(f, "{pipeline} | {func}")?;
                write_second(f, second)
            }
            MetricsExpr::Const(v, _) => write!(f, "{v}"),
            MetricsExpr::Binary { op, lhs, rhs, .. } => {
                let side = |e: &MetricsExpr| match e {
                    MetricsExpr::Const(..) => e.to_string(),
                    _ => format!("({e})"),
                };
                write!(f, "{} {} {}", side(lhs), op.text(), side(rhs))
            }
        }
    }
}

impl Display for MetricsFn {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let by = |f: &mut Formatter<'_>, by: &[Attribute]| {
            if by.is_empty() {
                Ok(())
            } else {
                write!(f, " by ({})", list(by))
            }
        };
        match self {
            MetricsFn::Rate { by: b, .. } => {
                f.write_str("rate()")?;
                by(f, b)
            }
            MetricsFn::CountOverTime { by: b, .. } => {
                f.write_str("count_over_time()")?;
                by(f, b)
            }
            MetricsFn::OverTime {
                func, attr, by: b, ..
            } => {
                write!(f, "{}({attr})", func.text())?;
                by(f, b)
            }
            MetricsFn::QuantileOverTime {
                attr,
                quantiles,
                by: b,
                ..
            } => {
                write!(f, "quantile_over_time({attr}")?;
                for q in quantiles {
                    write!(f, ", {q:?}")?;
                }
                f.write_char(')')?;
                by(f, b)
            }
            MetricsFn::Compare {
                filter,
                top_n,
                start,
                end,
                ..
            } => {
                write!(f, "compare({filter}")?;
                for v in [top_n, start, end].into_iter().flatten() {
                    write!(f, ", {v}")?;
                }
                f.write_char(')')
            }
        }
    }
}
