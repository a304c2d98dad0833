//! Constant folding (`traceql.md` §4.3, §6): an operation whose operands are all literals is
//! evaluated while parsing, when it evaluates without error; otherwise it is kept as written.

use crate::ast::*;

/// Go-like evaluation of constant arithmetic. int ⊕ int is int (wrapping; `/` and `%` by zero
/// are errors); any float or duration makes it float, except that int and duration keep
/// duration for `+ - * /` in constant positions.
pub(crate) fn arith(op: ArithOp, l: &Static, r: &Static) -> Result<Static, String> {
    use Static::*;
    match (l, r) {
        (Int(a), Int(b)) => {
            let (a, b) = (*a, *b);
            Ok(Int(match op {
                ArithOp::Add => a.wrapping_add(b),
                ArithOp::Sub => a.wrapping_sub(b),
                ArithOp::Mul => a.wrapping_mul(b),
                ArithOp::Div if b == 0 => return Err("division by zero".into()),
                ArithOp::Div => a.wrapping_div(b),
                ArithOp::Mod if b == 0 => return Err("modulo by zero".into()),
                ArithOp::Mod => a.wrapping_rem(b),
                // Tempo computes right ^ left for two ints (a shipped quirk, §6.2).
                ArithOp::Pow => (b as f64).powf(a as f64) as i64,
            }))
        }
        _ => {
            let (Some(a), Some(b)) = (num(l), num(r)) else {
                return Err("arithmetic needs numbers".into());
            };
            let v = match op {
                ArithOp::Add => a + b,
                ArithOp::Sub => a - b,
                ArithOp::Mul => a * b,
                ArithOp::Div => a / b,
                ArithOp::Mod => a % b,
                ArithOp::Pow => a.powf(b),
            };
            // NaN is kept unfolded: it is not equal to itself, so it cannot stand as a literal.
            if v.is_nan() {
                return Err("result is not a number".into());
            }
            Ok(Float(v))
        }
    }
}

fn num(v: &Static) -> Option<f64> {
    match v {
        Static::Int(i) => Some(*i as f64),
        Static::Float(f) => Some(*f),
        Static::Duration(d) => Some(*d as f64),
        _ => None,
    }
}

pub(crate) fn negate(v: &Static) -> Option<Static> {
    Some(match v {
        Static::Int(i) => Static::Int(i.wrapping_neg()),
        Static::Float(f) => Static::Float(-f),
        Static::Duration(d) => Static::Duration(d.wrapping_neg()),
        _ => return None,
    })
}

/// Builds `lhs op rhs`, folded when both sides are literals and it evaluates.
pub(crate) fn binary(op: BinOp, lhs: FieldExpr, rhs: FieldExpr) -> FieldExpr {
    let span = lhs.span().to(rhs.span());
    if let (FieldExpr::Static(l, _), FieldExpr::Static(r, _)) = (&lhs, &rhs)
        && let Some(v) = eval_binary(op, l, r)
    {
        return FieldExpr::Static(v, span);
    }
    FieldExpr::Binary {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
        span,
    }
}

/// Builds a unary operation, folded when its operand is a literal of the right type.
pub(crate) fn unary(op: UnaryOp, e: FieldExpr, span: Span) -> FieldExpr {
    if let FieldExpr::Static(v, _) = &e {
        let folded = match (op, v) {
            (UnaryOp::Neg, v) => negate(v),
            (UnaryOp::Not, Static::Bool(b)) => Some(Static::Bool(!b)),
            _ => None,
        };
        if let Some(v) = folded {
            return FieldExpr::Static(v, span);
        }
    }
    FieldExpr::Unary {
        op,
        expr: Box::new(e),
        span,
    }
}

/// Evaluates an operation between literals as the engine would (§6), or `None` where it would
/// fail or where the types do not validate (those are reported by validation).
pub(crate) fn eval_binary(op: BinOp, l: &Static, r: &Static) -> Option<Static> {
    use Static::*;
    if matches!(l, Nil) || matches!(r, Nil) {
        return None;
    }
    match op {
        BinOp::Arith(a) => {
            let numeric = |v: &Static| matches!(v, Int(_) | Float(_) | Duration(_));
            if !numeric(l) || !numeric(r) {
                return None;
            }
            match (l, r) {
                (Duration(_), _) | (_, Duration(_)) => {
                    // Duration arithmetic is float nanoseconds; keep it unfolded so the type
                    // (duration) stays visible to validation.
                    None
                }
                _ => arith(a, l, r).ok(),
            }
        }
        BinOp::And | BinOp::Or => match (l, r) {
            (Bool(a), Bool(b)) => Some(Bool(if op == BinOp::And { *a && *b } else { *a || *b })),
            _ => None,
        },
        BinOp::Cmp(c) => compare(c, l, r).map(Bool),
        BinOp::Regex | BinOp::NotRegex => match (l, r) {
            (Str(s), Str(pattern)) => {
                let re = regex::Regex::new(&format!("^(?:{pattern})$")).ok()?;
                Some(Bool(re.is_match(s) == (op == BinOp::Regex)))
            }
            _ => None,
        },
    }
}

fn compare(c: CmpOp, l: &Static, r: &Static) -> Option<bool> {
    use Static::*;
    let ord = match (l, r) {
        (Int(a), Int(b)) => a.cmp(b),
        (Str(a), Str(b)) => a.as_bytes().cmp(b.as_bytes()),
        (Bool(a), Bool(b)) if matches!(c, CmpOp::Eq | CmpOp::Neq) => a.cmp(b),
        (Status(a), Status(b)) if matches!(c, CmpOp::Eq | CmpOp::Neq) => {
            return Some((a == b) == (c == CmpOp::Eq));
        }
        (Kind(a), Kind(b)) if matches!(c, CmpOp::Eq | CmpOp::Neq) => {
            return Some((a == b) == (c == CmpOp::Eq));
        }
        (Int(a), Duration(b)) | (Duration(a), Int(b)) if matches!(c, CmpOp::Eq | CmpOp::Neq) => {
            a.cmp(b)
        }
        _ => {
            let (a, b) = (num(l)?, num(r)?);
            a.partial_cmp(&b)?
        }
    };
    use std::cmp::Ordering::*;
    Some(match c {
        CmpOp::Eq => ord == Equal,
        CmpOp::Neq => ord != Equal,
        CmpOp::Lt => ord == Less,
        CmpOp::Lte => ord != Greater,
        CmpOp::Gt => ord == Greater,
        CmpOp::Gte => ord != Less,
    })
}
