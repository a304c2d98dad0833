//! Run-time values and the operators of `traceql.md` §6: comparisons, arithmetic, logic,
//! regular expressions and arrays, with Tempo's evaluator semantics (quirks listed in §13 that
//! the evaluator itself has are kept: int `^` reversed, non-boolean `&&`/`||` operands give
//! false, integer division by zero fails the query).

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::ast::{ArithOp, CmpOp, KindValue, StatusValue};
use crate::batch::{SpanBatch, StrId};

use super::EvalError;

/// An array attribute value, as stored in a batch.
#[derive(Debug, Clone, Copy)]
pub enum Arr<'a> {
    Str(&'a SpanBatch, &'a [StrId]),
    Int(&'a [i64]),
    Float(&'a [f64]),
    Bool(&'a [bool]),
}

impl<'a> Arr<'a> {
    fn len(&self) -> usize {
        match self {
            Arr::Str(_, a) => a.len(),
            Arr::Int(a) => a.len(),
            Arr::Float(a) => a.len(),
            Arr::Bool(a) => a.len(),
        }
    }

    fn get(&self, i: usize) -> Value<'a> {
        match self {
            Arr::Str(b, a) => Value::Str(Cow::Borrowed(b.str(a[i]))),
            Arr::Int(a) => Value::Int(a[i]),
            Arr::Float(a) => Value::Float(a[i]),
            Arr::Bool(a) => Value::Bool(a[i]),
        }
    }
}

/// A value during evaluation.
#[derive(Debug, Clone)]
pub enum Value<'a> {
    Nil,
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Bool(bool),
    Duration(i64),
    Status(StatusValue),
    Kind(KindValue),
    Array(Arr<'a>),
}

impl Value<'_> {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "TypeNil",
            Value::Int(_) => "TypeInt",
            Value::Float(_) => "TypeFloat",
            Value::Str(_) => "TypeString",
            Value::Bool(_) => "TypeBoolean",
            Value::Duration(_) => "TypeDuration",
            Value::Status(_) => "TypeStatus",
            Value::Kind(_) => "TypeKind",
            Value::Array(Arr::Str(..)) => "TypeStringArray",
            Value::Array(Arr::Int(_)) => "TypeIntArray",
            Value::Array(Arr::Float(_)) => "TypeFloatArray",
            Value::Array(Arr::Bool(_)) => "TypeBooleanArray",
        }
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) | Value::Duration(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// An owned copy (for spanset attributes that outlive the batch borrow).
    pub fn into_owned(self) -> OwnedValue {
        match self {
            Value::Nil => OwnedValue::Nil,
            Value::Int(i) => OwnedValue::Int(i),
            Value::Float(f) => OwnedValue::Float(f),
            Value::Str(s) => OwnedValue::Str(s.into_owned()),
            Value::Bool(b) => OwnedValue::Bool(b),
            Value::Duration(d) => OwnedValue::Duration(d),
            Value::Status(s) => OwnedValue::Status(s),
            Value::Kind(k) => OwnedValue::Kind(k),
            Value::Array(a) => match a {
                Arr::Str(b, ids) => {
                    OwnedValue::StrArr(ids.iter().map(|i| b.str(*i).to_string()).collect())
                }
                Arr::Int(v) => OwnedValue::IntArr(v.to_vec()),
                Arr::Float(v) => OwnedValue::FloatArr(v.to_vec()),
                Arr::Bool(v) => OwnedValue::BoolArr(v.to_vec()),
            },
        }
    }
}

/// A value detached from its batch: spanset attributes and returned span attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedValue {
    Nil,
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Duration(i64),
    Status(StatusValue),
    Kind(KindValue),
    StrArr(Vec<String>),
    IntArr(Vec<i64>),
    FloatArr(Vec<f64>),
    BoolArr(Vec<bool>),
}

impl OwnedValue {
    /// A key that is equal exactly when type and value are (for `by()` groups).
    pub fn group_key(&self) -> String {
        match self {
            OwnedValue::Float(f) => format!("f:{}", f.to_bits()),
            other => format!("{other:?}"),
        }
    }
}

pub fn status_text(s: StatusValue) -> &'static str {
    match s {
        StatusValue::Error => "error",
        StatusValue::Ok => "ok",
        StatusValue::Unset => "unset",
    }
}

pub fn kind_text(k: KindValue) -> &'static str {
    match k {
        KindValue::Unspecified => "unspecified",
        KindValue::Internal => "internal",
        KindValue::Server => "server",
        KindValue::Client => "client",
        KindValue::Producer => "producer",
        KindValue::Consumer => "consumer",
    }
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `25ms`, `1.5µs`, `0s`.
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let frac = |v: u64, unit: u64| -> String {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.ilog10() as usize;
        let s = format!("{rest:0digits$}");
        format!("{whole}.{}", s.trim_end_matches('0'))
    };
    let body = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", frac(u, 1_000))
    } else if u < 1_000_000_000 {
        format!("{}ms", frac(u, 1_000_000))
    } else {
        let secs_total = u / 1_000_000_000;
        let sub = u % 1_000_000_000;
        let (h, m, s) = (secs_total / 3600, (secs_total / 60) % 60, secs_total % 60);
        let mut out = String::new();
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&frac(s * 1_000_000_000 + sub, 1_000_000_000));
        out.push('s');
        out
    };
    if neg { format!("-{body}") } else { body }
}

fn mirror(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Lte => CmpOp::Gte,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Gte => CmpOp::Lte,
        o => o,
    }
}

fn ord_ok(op: CmpOp, o: Ordering) -> bool {
    match op {
        CmpOp::Eq => o == Ordering::Equal,
        CmpOp::Neq => o != Ordering::Equal,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::Lte => o != Ordering::Greater,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::Gte => o != Ordering::Less,
    }
}

/// `l op r` (§6.1, arrays §6.6). Incompatible types are false, never an error; two arrays are
/// an error.
pub fn compare(op: CmpOp, l: &Value<'_>, r: &Value<'_>) -> Result<bool, EvalError> {
    match (l, r) {
        (Value::Array(_), Value::Array(_)) => Err(EvalError::new(
            "array operators must consist of a scalar and an array operand",
        )),
        (Value::Array(a), scalar) => Ok(array_cmp(op, a, scalar)),
        (scalar, Value::Array(a)) => Ok(array_cmp(mirror(op), a, scalar)),
        _ => Ok(scalar_cmp(op, l, r)),
    }
}

fn array_cmp(op: CmpOp, a: &Arr<'_>, scalar: &Value<'_>) -> bool {
    let n = a.len();
    if op == CmpOp::Neq {
        // Documented since 3.0: no element equals.
        return (0..n).all(|i| !scalar_cmp(CmpOp::Eq, &a.get(i), scalar))
            && (0..n).any(|i| comparable(&a.get(i), scalar));
    }
    (0..n).any(|i| scalar_cmp(op, &a.get(i), scalar))
}

fn comparable(l: &Value<'_>, r: &Value<'_>) -> bool {
    matches!(
        (l, r),
        (
            Value::Int(_) | Value::Float(_) | Value::Duration(_),
            Value::Int(_) | Value::Float(_) | Value::Duration(_)
        ) | (Value::Str(_), Value::Str(_))
            | (Value::Bool(_), Value::Bool(_))
    )
}

fn scalar_cmp(op: CmpOp, l: &Value<'_>, r: &Value<'_>) -> bool {
    use Value::*;
    match (l, r) {
        (Nil, _) | (_, Nil) => false,
        (Int(a), Int(b)) => ord_ok(op, a.cmp(b)),
        (Int(a), Duration(b)) | (Duration(a), Int(b)) | (Duration(a), Duration(b))
            if matches!(op, CmpOp::Eq | CmpOp::Neq) =>
        {
            ord_ok(op, a.cmp(b))
        }
        (Int(_) | Float(_) | Duration(_), Int(_) | Float(_) | Duration(_)) => {
            let (a, b) = (l.as_f64().unwrap_or(0.0), r.as_f64().unwrap_or(0.0));
            match a.partial_cmp(&b) {
                Some(o) => ord_ok(op, o),
                None => op == CmpOp::Neq,
            }
        }
        (Str(a), Str(b)) => ord_ok(op, a.as_bytes().cmp(b.as_bytes())),
        (Bool(a), Bool(b)) => eq_only(op, a == b),
        (Status(a), Status(b)) => eq_only(op, a == b),
        (Kind(a), Kind(b)) => eq_only(op, a == b),
        _ => false,
    }
}

fn eq_only(op: CmpOp, equal: bool) -> bool {
    match op {
        CmpOp::Eq => equal,
        CmpOp::Neq => !equal,
        _ => false,
    }
}

/// `l op r` (§6.2). Operands of the wrong types give the boolean `false`.
pub fn arith<'a>(op: ArithOp, l: &Value<'_>, r: &Value<'_>) -> Result<Value<'a>, EvalError> {
    use Value::*;
    match (l, r) {
        (Int(a), Int(b)) => {
            let (a, b) = (*a, *b);
            Ok(Int(match op {
                ArithOp::Add => a.wrapping_add(b),
                ArithOp::Sub => a.wrapping_sub(b),
                ArithOp::Mul => a.wrapping_mul(b),
                ArithOp::Div => {
                    if b == 0 {
                        return Err(EvalError::new("division by zero"));
                    }
                    a.wrapping_div(b)
                }
                ArithOp::Mod => {
                    if b == 0 {
                        return Err(EvalError::new("modulo by zero"));
                    }
                    a.wrapping_rem(b)
                }
                // Tempo computes right ^ left for two ints (traceql.md §6.2).
                ArithOp::Pow => (b as f64).powf(a as f64) as i64,
            }))
        }
        (Int(_) | Float(_) | Duration(_), Int(_) | Float(_) | Duration(_)) => {
            let (a, b) = (l.as_f64().unwrap_or(0.0), r.as_f64().unwrap_or(0.0));
            Ok(Float(match op {
                ArithOp::Add => a + b,
                ArithOp::Sub => a - b,
                ArithOp::Mul => a * b,
                ArithOp::Div => a / b,
                ArithOp::Mod => a % b,
                ArithOp::Pow => a.powf(b),
            }))
        }
        _ => Ok(Bool(false)),
    }
}

/// Orders two aggregate values for `min`/`max`: numbers as floats, else by a type rank.
pub fn agg_order(a: &OwnedValue, b: &OwnedValue) -> Ordering {
    fn num(v: &OwnedValue) -> Option<f64> {
        match v {
            OwnedValue::Int(i) | OwnedValue::Duration(i) => Some(*i as f64),
            OwnedValue::Float(f) => Some(*f),
            _ => None,
        }
    }
    fn rank(v: &OwnedValue) -> u8 {
        match v {
            OwnedValue::Nil => 0,
            OwnedValue::Int(_) | OwnedValue::Float(_) | OwnedValue::Duration(_) => 1,
            OwnedValue::Str(_) => 2,
            OwnedValue::Bool(_) => 3,
            _ => 4,
        }
    }
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => match (a, b) {
            (OwnedValue::Str(x), OwnedValue::Str(y)) => x.cmp(y),
            (OwnedValue::Bool(x), OwnedValue::Bool(y)) => x.cmp(y),
            _ => rank(a).cmp(&rank(b)),
        },
    }
}

impl OwnedValue {
    pub fn borrow(&self) -> Value<'_> {
        match self {
            OwnedValue::Nil => Value::Nil,
            OwnedValue::Int(i) => Value::Int(*i),
            OwnedValue::Float(f) => Value::Float(*f),
            OwnedValue::Str(s) => Value::Str(Cow::Borrowed(s)),
            OwnedValue::Bool(b) => Value::Bool(*b),
            OwnedValue::Duration(d) => Value::Duration(*d),
            OwnedValue::Status(s) => Value::Status(*s),
            OwnedValue::Kind(k) => Value::Kind(*k),
            OwnedValue::IntArr(v) => Value::Array(Arr::Int(v)),
            OwnedValue::FloatArr(v) => Value::Array(Arr::Float(v)),
            OwnedValue::BoolArr(v) => Value::Array(Arr::Bool(v)),
            // String arrays never become spanset attributes that are compared again.
            OwnedValue::StrArr(_) => Value::Nil,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(25_000_000), "25ms");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(999), "999ns");
        assert_eq!(go_duration(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(go_duration(60_000_000_000), "1m0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(-2_000_000), "-2ms");
    }

    #[test]
    fn numeric_coercions() {
        let t = |op, l, r| compare(op, &l, &r).unwrap();
        assert!(t(
            CmpOp::Eq,
            Value::Int(1_000_000),
            Value::Duration(1_000_000)
        ));
        assert!(t(CmpOp::Eq, Value::Int(1), Value::Float(1.0)));
        assert!(t(CmpOp::Gt, Value::Duration(20), Value::Int(10)));
        assert!(!t(CmpOp::Eq, Value::Str("1".into()), Value::Int(1)));
        assert!(!t(CmpOp::Neq, Value::Nil, Value::Int(1)));
        assert!(t(CmpOp::Lt, Value::Str("B".into()), Value::Str("a".into())));
        assert!(!t(CmpOp::Lt, Value::Bool(false), Value::Bool(true)));
    }

    #[test]
    fn int_arithmetic_quirks() {
        let a = |op, l, r| arith(op, &Value::Int(l), &Value::Int(r));
        assert!(matches!(a(ArithOp::Pow, 2, 3), Ok(Value::Int(9))));
        assert!(matches!(a(ArithOp::Div, 7, 2), Ok(Value::Int(3))));
        assert!(matches!(a(ArithOp::Mod, -7, 2), Ok(Value::Int(-1))));
        assert!(a(ArithOp::Div, 1, 0).is_err());
        assert!(matches!(
            arith(ArithOp::Add, &Value::Int(1), &Value::Nil),
            Ok(Value::Bool(false))
        ));
    }
}
