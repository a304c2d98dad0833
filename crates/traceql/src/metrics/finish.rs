//! From merged partials to the answer: values per interval by function, quantiles from the
//! merged power-of-two buckets, second stages, arithmetic between queries.

use std::collections::{BTreeMap, HashMap};

use super::{Acc, Exemplar, Kind, LabelValue, Labels, Leaf, MetricsPlan, Node, Partial, Series};
use crate::ast::{ArithOp, CmpOp, SecondStage, Static};

/// One series' key and state, as a partial holds it.
type Keyed = (Vec<LabelValue>, Acc);

/// Per label set of a quantile: its `by` values and, per interval, `(bucket bound, count)`.
type Buckets = (Vec<LabelValue>, Vec<Vec<(f64, u64)>>);

/// A series with one value per interval (NaN: no point).
#[derive(Debug, Clone)]
struct Dense {
    labels: Labels,
    values: Vec<f64>,
    exemplars: Vec<(usize, Exemplar)>,
}

pub(super) fn finish(plan: &MetricsPlan, p: Partial) -> Vec<Series> {
    let mut leaves: Vec<Option<Vec<Dense>>> = plan
        .leaves
        .iter()
        .zip(p.leaves)
        .map(|(l, lp)| Some(leaf_series(plan, l, lp.series)))
        .collect();
    let mut out = eval(&plan.root, &mut leaves);
    second(&plan.second, &mut out);
    let range = plan.range;
    let mut series: Vec<Series> = out
        .into_iter()
        .filter_map(|d| {
            let samples: Vec<(i64, f64)> = d
                .values
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_nan())
                .map(|(i, v)| (range.timestamp_ms(i), *v))
                .collect();
            if samples.is_empty() {
                return None;
            }
            let exemplars = d
                .exemplars
                .into_iter()
                .filter(|(i, _)| !d.values[*i].is_nan())
                .map(|(_, e)| e)
                .collect();
            Some(Series {
                labels: d.labels,
                samples,
                exemplars,
            })
        })
        .collect();
    series.sort_by_key(|s| label_order(&s.labels));
    // Exemplars: at most the plan's total, spread evenly over the series.
    let mut left = plan.max_exemplars;
    let per = if series.is_empty() {
        0
    } else {
        plan.max_exemplars.div_ceil(series.len())
    };
    for s in &mut series {
        s.exemplars.sort_by_key(|e| e.timestamp_ms);
        let keep = per.min(left).min(s.exemplars.len());
        if keep < s.exemplars.len() {
            let n = s.exemplars.len();
            s.exemplars = (0..keep)
                .map(|k| s.exemplars[k * n / keep].clone())
                .collect();
        }
        left -= s.exemplars.len();
    }
    series
}

fn label_order(l: &Labels) -> Vec<(String, String)> {
    l.iter().map(|(k, v)| (k.clone(), v.to_string())).collect()
}

/// The labels of a series from its `by` values: nil values left out, unless all are nil, when
/// the first is kept with the value nil.
fn by_labels(names: &[String], values: &[LabelValue]) -> Labels {
    let mut out: Labels = names
        .iter()
        .zip(values)
        .filter(|(_, v)| !matches!(v, LabelValue::Nil))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    if out.is_empty()
        && let Some(n) = names.first()
    {
        out.push((n.clone(), LabelValue::Nil));
    }
    out
}

fn leaf_series(plan: &MetricsPlan, leaf: &Leaf, series: Vec<Keyed>) -> Vec<Dense> {
    let n = plan.range.intervals();
    let step_secs = plan.range.step_ns as f64 / 1e9;
    let names: Vec<String> = leaf.by.iter().map(|(n, _)| n.clone()).collect();
    let scale = match leaf.source_opt {
        Some(super::Source::SpanDuration) => 1e-9,
        _ => 1.0,
    };
    let plain = |key: &[LabelValue]| -> Labels {
        if names.is_empty() {
            vec![("__name__".into(), LabelValue::Str(leaf.name.into()))]
        } else {
            by_labels(&names, key)
        }
    };
    match &leaf.kind {
        Kind::Histogram => series
            .into_iter()
            .map(|(key, acc)| {
                let (by, bucket) = key.split_at(key.len() - 1);
                let mut labels = by_labels(&names, by);
                labels.push(("__bucket".into(), bucket[0].clone()));
                Dense {
                    labels,
                    values: acc
                        .count
                        .iter()
                        .map(|&c| if c == 0 { f64::NAN } else { c as f64 })
                        .collect(),
                    exemplars: acc.exemplars,
                }
            })
            .collect(),
        Kind::Quantile(qs) => {
            // Buckets of each label set, per interval.
            let mut groups: BTreeMap<String, Buckets> = BTreeMap::new();
            let mut exemplars: HashMap<String, Vec<(usize, Exemplar)>> = HashMap::new();
            for (key, acc) in series {
                let (by, bucket) = key.split_at(key.len() - 1);
                let id = format!("{by:?}");
                let LabelValue::Float(bound) = bucket[0] else {
                    continue;
                };
                let g = groups
                    .entry(id.clone())
                    .or_insert_with(|| (by.to_vec(), vec![Vec::new(); n]));
                for (i, &c) in acc.count.iter().enumerate() {
                    if c > 0 {
                        g.1[i].push((bound, c));
                    }
                }
                exemplars.entry(id).or_default().extend(acc.exemplars);
            }
            let mut out = Vec::new();
            for (id, (by, mut buckets)) in groups {
                let ex = exemplars.remove(&id).unwrap_or_default();
                for b in &mut buckets {
                    b.sort_by(|x, y| x.0.total_cmp(&y.0));
                }
                for &q in qs {
                    let mut labels = if names.is_empty() {
                        Vec::new()
                    } else {
                        by_labels(&names, &by)
                    };
                    labels.push(("p".into(), LabelValue::Float(q)));
                    let values = buckets.iter().map(|b| log2_quantile(q, b)).collect();
                    out.push(Dense {
                        labels,
                        values,
                        exemplars: ex.clone(),
                    });
                }
            }
            out
        }
        Kind::Compare(c) => compare_series(c.top_n, series),
        kind => series
            .into_iter()
            .map(|(key, acc)| {
                let values = (0..n)
                    .map(|i| {
                        let c = acc.count[i];
                        match kind {
                            Kind::Rate => c as f64 / step_secs,
                            Kind::Count => c as f64,
                            _ if c == 0 => f64::NAN,
                            Kind::Sum => (acc.int_sum[i] as f64 + acc.float_sum[i]) * scale,
                            Kind::Avg => {
                                (acc.int_sum[i] as f64 + acc.float_sum[i]) / c as f64 * scale
                            }
                            Kind::Min | Kind::Max => acc.extreme[i] * scale,
                            _ => f64::NAN,
                        }
                    })
                    .collect();
                Dense {
                    labels: plain(&key),
                    values,
                    exemplars: acc.exemplars,
                }
            })
            .collect(),
    }
}

/// `compare()`: per side and attribute, the `top_n` most frequent values, and the totals.
fn compare_series(top_n: usize, series: Vec<Keyed>) -> Vec<Dense> {
    let mut by_attr: BTreeMap<(String, String), Vec<Keyed>> = BTreeMap::new();
    for (key, acc) in series {
        let (LabelValue::Str(side), LabelValue::Str(attr)) = (&key[0], &key[1]) else {
            continue;
        };
        by_attr
            .entry((side.clone(), attr.clone()))
            .or_default()
            .push((key, acc));
    }
    let mut out = Vec::new();
    for ((side, attr), mut values) in by_attr {
        if !side.ends_with("_total") {
            values.sort_by_key(|(_, a)| std::cmp::Reverse(a.count.iter().sum::<u64>()));
            values.truncate(top_n);
        }
        for (key, acc) in values {
            out.push(Dense {
                labels: vec![
                    ("__meta_type".into(), LabelValue::Str(side.clone())),
                    (attr.clone(), key[2].clone()),
                ],
                values: acc
                    .count
                    .iter()
                    .map(|&c| if c == 0 { f64::NAN } else { c as f64 })
                    .collect(),
                exemplars: Vec::new(),
            });
        }
    }
    out
}

/// A quantile from power-of-two buckets `(upper bound, count)` sorted by bound: walk until
/// `ceil(q × total)` samples are covered, then interpolate exponentially inside the last
/// bucket, from the previous bucket's bound (half the bound for the first).
pub fn log2_quantile(q: f64, buckets: &[(f64, u64)]) -> f64 {
    let total: u64 = buckets.iter().map(|b| b.1).sum();
    if total == 0 || q.is_nan() {
        return f64::NAN;
    }
    let q = q.clamp(0.0, 1.0);
    let want = ((q * total as f64).ceil() as u64).max(1);
    let mut seen = 0u64;
    for (i, &(bound, count)) in buckets.iter().enumerate() {
        if seen + count >= want {
            let fraction = (want - seen) as f64 / count as f64;
            let low = if i > 0 { buckets[i - 1].0 } else { bound / 2.0 };
            let (lo, hi) = (low.log2(), bound.log2());
            return 2f64.powf(lo + (hi - lo) * fraction);
        }
        seen += count;
    }
    buckets.last().map_or(f64::NAN, |b| b.0)
}

fn eval(n: &Node, leaves: &mut [Option<Vec<Dense>>]) -> Vec<Dense> {
    match n {
        Node::Leaf(i, stages) => {
            let mut s = leaves[*i].take().unwrap_or_default();
            second(stages, &mut s);
            s
        }
        Node::Const(_) => Vec::new(),
        Node::Binary(op, l, r) => match (&**l, &**r) {
            (Node::Const(c), other) => {
                let mut s = eval(other, leaves);
                for d in &mut s {
                    for v in &mut d.values {
                        *v = arith(*op, *c, *v);
                    }
                }
                s
            }
            (other, Node::Const(c)) => {
                let mut s = eval(other, leaves);
                for d in &mut s {
                    for v in &mut d.values {
                        *v = arith(*op, *v, *c);
                    }
                }
                s
            }
            _ => {
                let ls = eval(l, leaves);
                let rs = eval(r, leaves);
                binary(*op, ls, rs)
            }
        },
    }
}

fn arith(op: ArithOp, a: f64, b: f64) -> f64 {
    match op {
        ArithOp::Add => a + b,
        ArithOp::Sub => a - b,
        ArithOp::Mul => a * b,
        ArithOp::Div if b == 0.0 => f64::NAN,
        ArithOp::Div => a / b,
        ArithOp::Mod if b == 0.0 => f64::NAN,
        ArithOp::Mod => a % b,
        ArithOp::Pow => a.powf(b),
    }
}

fn name_of(d: &Dense) -> String {
    d.labels
        .iter()
        .find(|(k, _)| k == "__name__")
        .map_or(String::new(), |(_, v)| match v {
            LabelValue::Str(s) => s.clone(),
            other => other.to_string(),
        })
}

fn match_key(d: &Dense) -> String {
    label_order(
        &d.labels
            .iter()
            .filter(|(k, _)| k != "__name__")
            .cloned()
            .collect(),
    )
    .iter()
    .map(|(k, v)| format!("{k}={v}\u{0}"))
    .collect()
}

/// Series against series, matched by labels (the metric name aside); a side without labels
/// applies to every series of the other. Unmatched series give no points.
fn binary(op: ArithOp, ls: Vec<Dense>, rs: Vec<Dense>) -> Vec<Dense> {
    let unlabelled = |s: &[Dense]| s.len() == 1 && match_key(&s[0]).is_empty();
    let mut out = Vec::new();
    let rindex: HashMap<String, &Dense> = rs.iter().map(|d| (match_key(d), d)).collect();
    for l in &ls {
        let r_opt = if unlabelled(&rs) {
            rs.first()
        } else if unlabelled(&ls) {
            None
        } else {
            rindex.get(&match_key(l)).copied()
        };
        match r_opt {
            Some(r) => out.push(combine(op, l, r, &l.labels)),
            None if unlabelled(&ls) => {
                for r in &rs {
                    out.push(combine(op, l, r, &r.labels));
                }
            }
            None => {}
        }
    }
    out
}

fn combine(op: ArithOp, l: &Dense, r: &Dense, labels: &Labels) -> Dense {
    let name = format!("({} {} {})", name_of(l), op.text(), name_of(r));
    let mut labels: Labels = labels
        .iter()
        .filter(|(k, _)| k != "__name__")
        .cloned()
        .collect();
    labels.insert(0, ("__name__".into(), LabelValue::Str(name)));
    Dense {
        labels,
        values: l
            .values
            .iter()
            .zip(&r.values)
            .map(|(a, b)| arith(op, *a, *b))
            .collect(),
        exemplars: Vec::new(),
    }
}

/// Second stages in order: `topk`/`bottomk` per timestamp, comparison filters per point.
fn second(stages: &[SecondStage], series: &mut Vec<Dense>) {
    for st in stages {
        match st {
            SecondStage::TopK(k, _) | SecondStage::BottomK(k, _) => {
                let k = (*k).max(0) as usize;
                let top = matches!(st, SecondStage::TopK(..));
                if series.len() > k {
                    let n = series.first().map_or(0, |s| s.values.len());
                    for i in 0..n {
                        let mut at: Vec<(usize, f64)> = series
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| !s.values[i].is_nan())
                            .map(|(j, s)| (j, s.values[i]))
                            .collect();
                        at.sort_by(|a, b| {
                            if top {
                                b.1.total_cmp(&a.1)
                            } else {
                                a.1.total_cmp(&b.1)
                            }
                        });
                        for (j, _) in at.into_iter().skip(k) {
                            series[j].values[i] = f64::NAN;
                        }
                    }
                }
            }
            SecondStage::Filter(op, c, _) => {
                let c = match c {
                    Static::Int(i) => *i as f64,
                    Static::Float(f) => *f,
                    Static::Duration(d) => *d as f64 / 1e9,
                    _ => f64::NAN,
                };
                for s in series.iter_mut() {
                    for v in &mut s.values {
                        let keep = match op {
                            CmpOp::Eq => *v == c,
                            CmpOp::Neq => *v != c,
                            CmpOp::Lt => *v < c,
                            CmpOp::Lte => *v <= c,
                            CmpOp::Gt => *v > c,
                            CmpOp::Gte => *v >= c,
                        };
                        if !keep {
                            *v = f64::NAN;
                        }
                    }
                }
            }
        }
        series.retain(|s| s.values.iter().any(|v| !v.is_nan()));
    }
}

#[cfg(test)]
mod tests {
    use super::log2_quantile;

    #[test]
    fn quantile_from_power_of_two_buckets() {
        // 200 and 500 land in 256 and 512: p50 covers the first sample.
        assert_eq!(log2_quantile(0.5, &[(256.0, 1), (512.0, 1)]), 256.0);
        assert_eq!(log2_quantile(1.0, &[(256.0, 1), (512.0, 1)]), 512.0);
        // Half-way through one bucket of two samples: between 128 and 256 exponentially.
        let v = log2_quantile(0.5, &[(256.0, 2)]);
        assert!((v - 2f64.powf(7.5)).abs() < 1e-9, "{v}");
        assert!(log2_quantile(0.5, &[]).is_nan());
    }
}
