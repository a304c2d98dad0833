//! Flattening traces to comparable span sets, and an independent decoder of Tempo's JSON
//! (gogo jsonpb) form, so the JSON responses are checked field by field too.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use vivace_proto::otlp::common::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use vivace_proto::otlp::resource::Resource;
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status, span};
use vivace_proto::tempopb::Trace;

/// Everything a span carries, with the resource and scope it came under.
#[derive(Debug, Clone, PartialEq)]
pub struct FullSpan {
    pub resource: Option<Resource>,
    pub resource_schema: String,
    pub scope: Option<InstrumentationScope>,
    pub scope_schema: String,
    pub span: Span,
}

/// trace ID → span ID → span. Panics on a duplicate span (same ID and kind) in one trace.
pub type SpanSet = BTreeMap<Vec<u8>, BTreeMap<(Vec<u8>, i32), FullSpan>>;

pub fn flatten(batches: &[ResourceSpans], out: &mut SpanSet) -> usize {
    let mut n = 0;
    for rs in batches {
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                let full = FullSpan {
                    resource: rs.resource.clone(),
                    resource_schema: rs.schema_url.clone(),
                    scope: ss.scope.clone(),
                    scope_schema: ss.schema_url.clone(),
                    span: s.clone(),
                };
                let prev = out
                    .entry(s.trace_id.clone())
                    .or_default()
                    .insert((s.span_id.clone(), s.kind), full);
                assert!(prev.is_none(), "span {} appears twice", hex(&s.span_id));
                n += 1;
            }
        }
    }
    n
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn spans_of(trace: &Trace) -> BTreeMap<(Vec<u8>, i32), FullSpan> {
    let mut set = SpanSet::new();
    flatten(&trace.resource_spans, &mut set);
    assert!(
        set.len() <= 1,
        "a trace response holds spans of {} traces",
        set.len()
    );
    set.into_values().next().unwrap_or_default()
}

/// Decodes `{"batches":[...]}` (v1) or `{"resourceSpans":[...]}` (v2 `trace`).
pub fn trace_from_gogo(v: &Value, key: &str) -> Trace {
    let batches = v
        .get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Trace {
        resource_spans: batches.iter().map(resource_spans).collect(),
    }
}

fn arr<'a>(v: &'a Value, k: &str) -> Vec<&'a Value> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn s(v: &Value, k: &str) -> String {
    v.get(k)
        .map(|x| {
            x.as_str()
                .unwrap_or_else(|| panic!("{k} must be a string: {x}"))
                .to_string()
        })
        .unwrap_or_default()
}

fn b64(v: &Value, k: &str) -> Vec<u8> {
    v.get(k)
        .map(|x| {
            B64.decode(x.as_str().expect("base64 string"))
                .expect("valid base64")
        })
        .unwrap_or_default()
}

/// 64-bit integers must be JSON strings.
fn u64s(v: &Value, k: &str) -> u64 {
    v.get(k)
        .map(|x| {
            x.as_str()
                .unwrap_or_else(|| panic!("{k} must be a string: {x}"))
                .parse()
                .unwrap()
        })
        .unwrap_or(0)
}

fn u32n(v: &Value, k: &str) -> u32 {
    v.get(k)
        .map(|x| x.as_u64().unwrap_or_else(|| panic!("{k} must be a number")) as u32)
        .unwrap_or(0)
}

fn attrs(v: &Value) -> Vec<KeyValue> {
    arr(v, "attributes").into_iter().map(key_value).collect()
}

fn key_value(v: &Value) -> KeyValue {
    KeyValue {
        key: s(v, "key"),
        value: v.get("value").map(any),
        ..Default::default()
    }
}

fn any(v: &Value) -> AnyValue {
    let o = v.as_object().expect("AnyValue object");
    let value = o.iter().next().map(|(k, x)| match k.as_str() {
        "stringValue" => any_value::Value::StringValue(x.as_str().unwrap().into()),
        "boolValue" => any_value::Value::BoolValue(x.as_bool().unwrap()),
        "intValue" => {
            any_value::Value::IntValue(x.as_str().expect("intValue as string").parse().unwrap())
        }
        "doubleValue" => any_value::Value::DoubleValue(x.as_f64().unwrap()),
        "bytesValue" => any_value::Value::BytesValue(B64.decode(x.as_str().unwrap()).unwrap()),
        "arrayValue" => any_value::Value::ArrayValue(ArrayValue {
            values: arr(x, "values").into_iter().map(any).collect(),
        }),
        "kvlistValue" => any_value::Value::KvlistValue(KeyValueList {
            values: arr(x, "values").into_iter().map(key_value).collect(),
        }),
        other => panic!("unknown AnyValue field {other}"),
    });
    AnyValue { value }
}

fn resource_spans(v: &Value) -> ResourceSpans {
    ResourceSpans {
        resource: v.get("resource").map(|r| Resource {
            attributes: attrs(r),
            dropped_attributes_count: u32n(r, "droppedAttributesCount"),
            ..Default::default()
        }),
        scope_spans: arr(v, "scopeSpans").into_iter().map(scope_spans).collect(),
        schema_url: s(v, "schemaUrl"),
    }
}

fn scope_spans(v: &Value) -> ScopeSpans {
    ScopeSpans {
        scope: v.get("scope").map(|x| InstrumentationScope {
            name: s(x, "name"),
            version: s(x, "version"),
            attributes: attrs(x),
            dropped_attributes_count: u32n(x, "droppedAttributesCount"),
        }),
        spans: arr(v, "spans").into_iter().map(span_of).collect(),
        schema_url: s(v, "schemaUrl"),
    }
}

fn enum_value(v: &Value, k: &str, parse: impl Fn(&str) -> Option<i32>) -> i32 {
    v.get(k)
        .map(|x| parse(x.as_str().expect("enum by name")).unwrap_or_else(|| panic!("bad enum {x}")))
        .unwrap_or(0)
}

fn span_of(v: &Value) -> Span {
    Span {
        trace_id: b64(v, "traceId"),
        span_id: b64(v, "spanId"),
        trace_state: s(v, "traceState"),
        parent_span_id: b64(v, "parentSpanId"),
        flags: u32n(v, "flags"),
        name: s(v, "name"),
        kind: enum_value(v, "kind", |n| {
            span::SpanKind::from_str_name(n).map(|k| k as i32)
        }),
        start_time_unix_nano: u64s(v, "startTimeUnixNano"),
        end_time_unix_nano: u64s(v, "endTimeUnixNano"),
        attributes: attrs(v),
        dropped_attributes_count: u32n(v, "droppedAttributesCount"),
        events: arr(v, "events")
            .into_iter()
            .map(|e| span::Event {
                time_unix_nano: u64s(e, "timeUnixNano"),
                name: s(e, "name"),
                attributes: attrs(e),
                dropped_attributes_count: u32n(e, "droppedAttributesCount"),
            })
            .collect(),
        dropped_events_count: u32n(v, "droppedEventsCount"),
        links: arr(v, "links")
            .into_iter()
            .map(|l| span::Link {
                trace_id: b64(l, "traceId"),
                span_id: b64(l, "spanId"),
                trace_state: s(l, "traceState"),
                attributes: attrs(l),
                dropped_attributes_count: u32n(l, "droppedAttributesCount"),
                flags: u32n(l, "flags"),
            })
            .collect(),
        dropped_links_count: u32n(v, "droppedLinksCount"),
        status: v.get("status").map(|st| Status {
            message: s(st, "message"),
            code: enum_value(st, "code", |n| {
                vivace_proto::otlp::trace::status::StatusCode::from_str_name(n).map(|c| c as i32)
            }),
        }),
    }
}

/// Compares two span maps and panics with the first difference.
pub fn assert_same(
    what: &str,
    want: &BTreeMap<(Vec<u8>, i32), FullSpan>,
    got: &BTreeMap<(Vec<u8>, i32), FullSpan>,
) {
    let want_ids: Vec<_> = want.keys().map(|k| hex(&k.0)).collect();
    let got_ids: Vec<_> = got.keys().map(|k| hex(&k.0)).collect();
    assert_eq!(want_ids, got_ids, "{what}: span sets differ");
    for (k, w) in want {
        let g = &got[k];
        assert_eq!(w.span, g.span, "{what}: span {} differs", hex(&k.0));
        assert_eq!(
            w.resource,
            g.resource,
            "{what}: resource of span {} differs",
            hex(&k.0)
        );
        assert_eq!(
            w.scope,
            g.scope,
            "{what}: scope of span {} differs",
            hex(&k.0)
        );
        assert_eq!(
            (&w.resource_schema, &w.scope_schema),
            (&g.resource_schema, &g.scope_schema),
            "{what}: schema URLs differ"
        );
    }
}

/// A span map as Tempo's block format keeps it: span flags and schema URLs have no column (Tempo
/// drops them too), an unset status with no message is no status, and attributes come back
/// grouped (dedicated columns first), so they are compared sorted by key.
pub fn as_stored_in_blocks(
    spans: &BTreeMap<(Vec<u8>, i32), FullSpan>,
) -> BTreeMap<(Vec<u8>, i32), FullSpan> {
    let sort = |a: &mut Vec<KeyValue>| a.sort_by(|x, y| x.key.cmp(&y.key));
    spans
        .iter()
        .map(|(k, f)| {
            let mut f = f.clone();
            f.span.flags = 0;
            if f.span
                .status
                .as_ref()
                .is_some_and(|s| s.code == 0 && s.message.is_empty())
            {
                f.span.status = None;
            }
            sort(&mut f.span.attributes);
            for e in &mut f.span.events {
                sort(&mut e.attributes);
            }
            for l in &mut f.span.links {
                sort(&mut l.attributes);
                l.flags = 0;
            }
            if let Some(r) = &mut f.resource {
                sort(&mut r.attributes);
            }
            if let Some(s) = &mut f.scope {
                sort(&mut s.attributes);
            }
            f.resource_schema.clear();
            f.scope_schema.clear();
            (k.clone(), f)
        })
        .collect()
}
