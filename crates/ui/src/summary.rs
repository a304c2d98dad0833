//! Traces as compact JSON for a model's context: one flat list of spans in tree order with their
//! depth, offsets from the trace start in milliseconds, attributes as plain key → value, and
//! per-service counts; and the difference of two traces by (service, span name).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use vivace_proto::otlp::common::{AnyValue, KeyValue, any_value};
use vivace_proto::otlp::trace::{span, status};
use vivace_proto::tempopb::Trace;

/// One span, flattened.
#[derive(Debug, Clone)]
struct Flat {
    id: String,
    parent: String,
    service: String,
    name: String,
    kind: &'static str,
    start: u64,
    end: u64,
    error: bool,
    status_message: String,
    attributes: Map<String, Value>,
    resource: Map<String, Value>,
    events: Vec<Value>,
    links: usize,
}

fn flatten(trace: &Trace) -> Vec<Flat> {
    let mut out = Vec::new();
    for rs in &trace.resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| attrs(&r.attributes))
            .unwrap_or_default();
        let service = resource
            .get("service.name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        for ss in &rs.scope_spans {
            for sp in &ss.spans {
                let st = sp.status.as_ref();
                out.push(Flat {
                    id: hex::encode(&sp.span_id),
                    parent: hex::encode(&sp.parent_span_id),
                    service: service.clone(),
                    name: sp.name.clone(),
                    kind: kind_name(sp.kind),
                    start: sp.start_time_unix_nano,
                    end: sp.end_time_unix_nano.max(sp.start_time_unix_nano),
                    error: st.is_some_and(|s| s.code == status::StatusCode::Error as i32),
                    status_message: st.map(|s| s.message.clone()).unwrap_or_default(),
                    attributes: attrs(&sp.attributes),
                    resource: resource.clone(),
                    events: sp
                        .events
                        .iter()
                        .map(|e| {
                            json!({
                                "name": e.name,
                                "offsetMs": ms(e.time_unix_nano.saturating_sub(sp.start_time_unix_nano)),
                                "attributes": attrs(&e.attributes),
                            })
                        })
                        .collect(),
                    links: sp.links.len(),
                });
            }
        }
    }
    out
}

fn kind_name(k: i32) -> &'static str {
    match span::SpanKind::try_from(k).unwrap_or(span::SpanKind::Unspecified) {
        span::SpanKind::Unspecified => "unspecified",
        span::SpanKind::Internal => "internal",
        span::SpanKind::Server => "server",
        span::SpanKind::Client => "client",
        span::SpanKind::Producer => "producer",
        span::SpanKind::Consumer => "consumer",
    }
}

fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

fn attrs(kvs: &[KeyValue]) -> Map<String, Value> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), any(kv.value.as_ref())))
        .collect()
}

fn any(v: Option<&AnyValue>) -> Value {
    match v.and_then(|v| v.value.as_ref()) {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        Some(any_value::Value::BytesValue(b)) => Value::String(hex::encode(b)),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|v| any(Some(v))).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(attrs(&kv.values)),
        // A string table index (profiles only): nothing to show in a trace.
        Some(any_value::Value::StringValueStrindex(_)) => Value::Null,
    }
}

fn rfc3339(ns: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

/// Spans in tree order (roots by start time, children by start time), with their depth.
fn tree_order(spans: &[Flat]) -> Vec<(usize, usize)> {
    let ids: HashSet<&str> = spans.iter().map(|s| s.id.as_str()).collect();
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        let is_root = s.parent.chars().all(|c| c == '0') || !ids.contains(s.parent.as_str());
        if is_root {
            roots.push(i);
        } else {
            children.entry(s.parent.as_str()).or_default().push(i);
        }
    }
    let by_start = |v: &mut Vec<usize>| v.sort_by_key(|&i| (spans[i].start, i));
    by_start(&mut roots);
    for v in children.values_mut() {
        by_start(v);
    }
    let mut order = Vec::with_capacity(spans.len());
    let mut seen = vec![false; spans.len()];
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&i| (i, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        order.push((i, depth));
        if let Some(c) = children.get(spans[i].id.as_str()) {
            stack.extend(c.iter().rev().map(|&c| (c, depth + 1)));
        }
    }
    // A cycle of parent IDs leaves spans unreached: list them as roots.
    for (i, s) in seen.iter().enumerate() {
        if !s {
            order.push((i, 0));
        }
    }
    order
}

/// Per-service counts.
fn services(spans: &[Flat]) -> BTreeMap<String, (usize, usize)> {
    let mut m: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for s in spans {
        let e = m.entry(s.service.clone()).or_default();
        e.0 += 1;
        e.1 += s.error as usize;
    }
    m
}

/// The whole-trace header: ID, root, start, duration, counts.
fn header(trace_id: &str, spans: &[Flat], order: &[(usize, usize)]) -> Map<String, Value> {
    let start = spans.iter().map(|s| s.start).min().unwrap_or(0);
    let end = spans.iter().map(|s| s.end).max().unwrap_or(0);
    let root = order.first().map(|&(i, _)| &spans[i]);
    let mut h = Map::new();
    h.insert("traceID".into(), json!(trace_id));
    h.insert(
        "rootService".into(),
        json!(root.map(|r| r.service.as_str()).unwrap_or("")),
    );
    h.insert(
        "rootName".into(),
        json!(root.map(|r| r.name.as_str()).unwrap_or("")),
    );
    h.insert("start".into(), json!(rfc3339(start)));
    h.insert("durationMs".into(), json!(ms(end.saturating_sub(start))));
    h.insert("spanCount".into(), json!(spans.len()));
    h.insert(
        "errorCount".into(),
        json!(spans.iter().filter(|s| s.error).count()),
    );
    let svc: Map<String, Value> = services(spans)
        .into_iter()
        .map(|(k, (n, e))| (k, json!({"spans": n, "errors": e})))
        .collect();
    h.insert("services".into(), Value::Object(svc));
    h
}

/// A trace as a model should read it: a header, then at most `max_spans` spans in tree order
/// (each with depth, offset and duration in ms, status, attributes; resource attributes once per
/// service).
pub fn trace_summary(trace_id: &str, trace: &Trace, max_spans: usize) -> Value {
    let spans = flatten(trace);
    let order = tree_order(&spans);
    let mut out = header(trace_id, &spans, &order);
    let t0 = spans.iter().map(|s| s.start).min().unwrap_or(0);
    let mut resources = Map::new();
    for s in &spans {
        resources
            .entry(s.service.clone())
            .or_insert_with(|| Value::Object(s.resource.clone()));
    }
    out.insert("resources".into(), Value::Object(resources));
    let list: Vec<Value> = order
        .iter()
        .take(max_spans)
        .map(|&(i, depth)| {
            let s = &spans[i];
            let mut o = Map::new();
            o.insert("spanID".into(), json!(s.id));
            if depth > 0 {
                o.insert("parentSpanID".into(), json!(s.parent));
            }
            o.insert("depth".into(), json!(depth));
            o.insert("service".into(), json!(s.service));
            o.insert("name".into(), json!(s.name));
            o.insert("kind".into(), json!(s.kind));
            o.insert(
                "startOffsetMs".into(),
                json!(ms(s.start.saturating_sub(t0))),
            );
            o.insert("durationMs".into(), json!(ms(s.end - s.start)));
            if s.error {
                o.insert("status".into(), json!("error"));
                if !s.status_message.is_empty() {
                    o.insert("statusMessage".into(), json!(s.status_message));
                }
            }
            if !s.attributes.is_empty() {
                o.insert("attributes".into(), Value::Object(s.attributes.clone()));
            }
            if !s.events.is_empty() {
                o.insert("events".into(), Value::Array(s.events.clone()));
            }
            if s.links > 0 {
                o.insert("links".into(), json!(s.links));
            }
            Value::Object(o)
        })
        .collect();
    if spans.len() > max_spans {
        out.insert(
            "truncated".into(),
            json!(format!(
                "{} of {} spans shown (tree order)",
                max_spans,
                spans.len()
            )),
        );
    }
    out.insert("spans".into(), Value::Array(list));
    Value::Object(out)
}

/// (service, span name) → (count, total ns, errors).
fn operations(spans: &[Flat]) -> BTreeMap<(String, String), (u64, u64, u64)> {
    let mut m: BTreeMap<(String, String), (u64, u64, u64)> = BTreeMap::new();
    for s in spans {
        let e = m.entry((s.service.clone(), s.name.clone())).or_default();
        e.0 += 1;
        e.1 += s.end - s.start;
        e.2 += s.error as u64;
    }
    m
}

/// How to present a difference (`trace-diff`'s `format`, Tempo's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffFormat {
    /// Both headers and the operations that differ, side by side (default).
    Composed,
    /// Each trace's full summary, for the model to compare.
    Native,
    /// Only the changes from base to compare, as a list of operations.
    Patch,
}

impl DiffFormat {
    pub fn parse(s: &str) -> Option<DiffFormat> {
        match s {
            "" | "trace-summary-v0-composed" => Some(DiffFormat::Composed),
            "trace-summary-v0-native" => Some(DiffFormat::Native),
            "trace-patch-v0" => Some(DiffFormat::Patch),
            _ => None,
        }
    }
}

/// The difference between two traces: spans are matched by (service, span name), since span
/// IDs differ between traces; an operation is reported when its count, errors or total time
/// changed (time by more than 10% and 1 ms).
pub fn trace_diff(
    base: (&str, &Trace),
    compare: (&str, &Trace),
    format: DiffFormat,
    max_spans: usize,
) -> Value {
    if format == DiffFormat::Native {
        return json!({
            "base": trace_summary(base.0, base.1, max_spans),
            "compare": trace_summary(compare.0, compare.1, max_spans),
        });
    }
    let (bs, cs) = (flatten(base.1), flatten(compare.1));
    let (bo, co) = (operations(&bs), operations(&cs));
    let keys: std::collections::BTreeSet<&(String, String)> = bo.keys().chain(co.keys()).collect();
    let mut changes = Vec::new();
    for k in keys {
        let b = bo.get(k).copied();
        let c = co.get(k).copied();
        let op = match (b, c) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            (Some(b), Some(c)) => {
                let (bt, ct) = (b.1 as f64, c.1 as f64);
                let time_changed = (ct - bt).abs() > 1e6 && (ct - bt).abs() > 0.1 * bt.max(ct);
                if b.0 == c.0 && b.2 == c.2 && !time_changed {
                    continue;
                }
                "changed"
            }
            (None, None) => continue,
        };
        let side = |x: Option<(u64, u64, u64)>| {
            x.map(|(n, t, e)| json!({"count": n, "totalMs": ms(t), "errors": e}))
                .unwrap_or(Value::Null)
        };
        let mut o = Map::new();
        o.insert("op".into(), json!(op));
        o.insert("service".into(), json!(k.0));
        o.insert("name".into(), json!(k.1));
        o.insert("base".into(), side(b));
        o.insert("compare".into(), side(c));
        if let (Some(b), Some(c)) = (b, c) {
            o.insert(
                "deltaMs".into(),
                json!(ms(c.1.abs_diff(b.1)) * if c.1 >= b.1 { 1.0 } else { -1.0 }),
            );
        }
        changes.push(Value::Object(o));
    }
    // Largest time changes first (what a model should look at), then added and removed ones.
    changes.sort_by(|a, b| {
        let d = |v: &Value| v["deltaMs"].as_f64().map(f64::abs).unwrap_or(-1.0);
        d(b).total_cmp(&d(a))
    });
    let (bh, ch) = (
        header(base.0, &bs, &tree_order(&bs)),
        header(compare.0, &cs, &tree_order(&cs)),
    );
    match format {
        DiffFormat::Patch => json!({
            "base": base.0,
            "compare": compare.0,
            "durationDeltaMs": ch["durationMs"].as_f64().unwrap_or(0.0) - bh["durationMs"].as_f64().unwrap_or(0.0),
            "patch": changes,
        }),
        _ => json!({
            "base": bh,
            "compare": ch,
            "differences": changes,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vivace_proto::otlp::common::KeyValue;
    use vivace_proto::otlp::resource::Resource;
    use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status};

    fn sv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn trace(spans: &[(u8, u8, &str, &str, u64, u64, bool)]) -> Trace {
        let mut by_svc: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
        for &(id, parent, svc, name, start, dur, err) in spans {
            by_svc.entry(svc).or_default().push(Span {
                trace_id: vec![1; 16],
                span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
                parent_span_id: if parent == 0 {
                    vec![]
                } else {
                    vec![0, 0, 0, 0, 0, 0, 0, parent]
                },
                name: name.into(),
                start_time_unix_nano: start,
                end_time_unix_nano: start + dur,
                status: err.then(|| Status {
                    code: status::StatusCode::Error as i32,
                    message: "boom".into(),
                }),
                ..Default::default()
            });
        }
        Trace {
            resource_spans: by_svc
                .into_iter()
                .map(|(svc, spans)| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![sv("service.name", svc)],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn summary_is_in_tree_order_with_depths() {
        let t = trace(&[
            (3, 1, "db", "SELECT", 1_005_000_000, 2_000_000, true),
            (1, 0, "api", "GET /", 1_000_000_000, 10_000_000, false),
            (2, 1, "api", "auth", 1_001_000_000, 1_000_000, false),
        ]);
        let s = trace_summary("01", &t, 10);
        let names: Vec<_> = s["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x["name"].as_str().unwrap(), x["depth"].as_u64().unwrap()))
            .collect();
        assert_eq!(names, [("GET /", 0), ("auth", 1), ("SELECT", 1)]);
        assert_eq!(s["rootService"], "api");
        assert_eq!(s["durationMs"], 10.0);
        assert_eq!(s["errorCount"], 1);
        assert_eq!(s["services"]["db"]["errors"], 1);
        assert_eq!(s["spans"][2]["statusMessage"], "boom");
        assert_eq!(s["spans"][2]["startOffsetMs"], 5.0);
        let cut = trace_summary("01", &t, 1);
        assert_eq!(cut["spans"].as_array().unwrap().len(), 1);
        assert!(cut["truncated"].as_str().unwrap().contains("1 of 3"));
    }

    #[test]
    fn diff_reports_added_removed_and_slower_operations() {
        let base = trace(&[
            (1, 0, "api", "GET /", 0, 10_000_000, false),
            (2, 1, "db", "SELECT", 1_000_000, 2_000_000, false),
            (3, 1, "cache", "get", 1_000_000, 100_000, false),
        ]);
        let slow = trace(&[
            (1, 0, "api", "GET /", 0, 90_000_000, false),
            (2, 1, "db", "SELECT", 1_000_000, 80_000_000, true),
            (4, 1, "auth", "check", 1_000_000, 100_000, false),
        ]);
        let d = trace_diff(("a", &base), ("b", &slow), DiffFormat::Composed, 10);
        let ops: Vec<(&str, &str)> = d["differences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x["op"].as_str().unwrap(), x["name"].as_str().unwrap()))
            .collect();
        assert_eq!(
            ops,
            [
                ("changed", "GET /"),
                ("changed", "SELECT"),
                ("added", "check"),
                ("removed", "get")
            ]
        );
        assert_eq!(d["differences"][1]["compare"]["errors"], 1);
        let p = trace_diff(("a", &base), ("b", &slow), DiffFormat::Patch, 10);
        assert_eq!(p["durationDeltaMs"], 80.0);
        let same = trace_diff(("a", &base), ("a", &base), DiffFormat::Patch, 10);
        assert_eq!(same["patch"].as_array().unwrap().len(), 0);
    }
}
