//! Jaeger batches (Thrift `jaeger.Batch`, from the agent's UDP datagrams and the collector's
//! `/api/traces`; protobuf `jaeger.api_v2.Batch` from gRPC `PostSpans`) into OTLP, as the OpenTelemetry Collector's Jaeger receiver translates them.
//!
//! | Jaeger | OTLP |
//! |---|---|
//! | `Process.serviceName` | resource `service.name` |
//! | `Process.tags` | resource attributes, typed |
//! | `traceIdHigh`, `traceIdLow` (i64); protobuf: 16 bytes (8 are left-padded) | trace ID: high then low, big-endian, 16 bytes |
//! | `spanId`, `parentSpanId` (0 = none) | span ID, parent span ID (big-endian) |
//! | a `CHILD_OF` reference of the same trace, when `parentSpanId` is 0 | the parent |
//! | every other reference (`FOLLOWS_FROM`, other traces) | links |
//! | `operationName` | name |
//! | `startTime`, `duration` (µs; protobuf Timestamp and Duration) | start, end = start + duration (ns) |
//! | protobuf: a span's own `process`, else the batch's | the resource |
//! | tags (`STRING`, `DOUBLE`, `BOOL`, `LONG`, `BINARY`) | attributes of that type (binary as bytes) |
//! | tag `span.kind` (`client`, `server`, `producer`, `consumer`, `internal`) | kind (tag removed); none: unspecified |
//! | tag `otel.status_code` (`OK`/`ERROR`), `otel.status_description` | status (tags removed) |
//! | tag `error` = `true` (without `otel.status_code`) | status `ERROR` (tag removed) |
//! | tags `otel.scope.name`/`otel.library.name`, `otel.scope.version`/`otel.library.version` | instrumentation scope (tags removed) |
//! | tag `w3c.tracestate` | trace state (tag removed) |
//! | logs `{timestamp, fields}` | events: time (µs → ns), name from the field `event`, else from `message` (what the OpenTelemetry Jaeger exporters write; the Collector leaves the name empty there), that field removed, the others as attributes |
//! | `flags`, batch `seqNo`, `stats` | not kept |
//!
//! A span whose trace ID or span ID is zero is refused with the whole batch, like any malformed
//! input (HTTP 400; a UDP datagram is dropped and counted).

use std::collections::BTreeMap;

use vivace_proto::otlp::common::{AnyValue, InstrumentationScope, KeyValue, any_value};
use vivace_proto::otlp::resource::Resource;
use vivace_proto::otlp::trace::span::{Event, Link, SpanKind};
use vivace_proto::otlp::trace::status::StatusCode;
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status};

use super::thrift::Value;

/// A Jaeger tag's value.
#[derive(Debug, Clone, PartialEq)]
pub enum TagValue {
    Str(String),
    Double(f64),
    Bool(bool),
    Long(i64),
    Binary(Vec<u8>),
}

/// A Jaeger span reference: `child_of` (false = follows from).
#[derive(Debug, Clone)]
pub struct Reference {
    pub child_of: bool,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

/// A Jaeger span in the form both the Thrift and the protobuf models reach.
#[derive(Debug, Clone, Default)]
pub struct JaegerSpan {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: [u8; 8],
    pub operation_name: String,
    pub references: Vec<Reference>,
    /// Start and duration in nanoseconds (Thrift carries microseconds, protobuf nanoseconds).
    pub start_ns: i64,
    pub duration_ns: i64,
    pub tags: Vec<(String, TagValue)>,
    /// (timestamp ns, fields)
    pub logs: Vec<(i64, Vec<(String, TagValue)>)>,
}

/// A batch: one process and its spans.
#[derive(Debug, Clone, Default)]
pub struct JaegerBatch {
    pub service_name: String,
    pub process_tags: Vec<(String, TagValue)>,
    pub spans: Vec<JaegerSpan>,
}

fn ids(high: i64, low: i64) -> [u8; 16] {
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&high.to_be_bytes());
    t[8..].copy_from_slice(&low.to_be_bytes());
    t
}

fn thrift_tags(v: Option<&Value>) -> Result<Vec<(String, TagValue)>, String> {
    let mut out = Vec::new();
    for t in v.map(Value::as_list).unwrap_or(&[]) {
        let key = t
            .field(1)
            .and_then(Value::as_str)
            .ok_or("tag without key")?;
        let vtype = t.field(2).and_then(Value::as_i64).unwrap_or(0);
        let value = match vtype {
            0 => TagValue::Str(t.field(3).and_then(Value::as_str).unwrap_or("").to_string()),
            1 => TagValue::Double(match t.field(4) {
                Some(Value::Double(d)) => *d,
                _ => 0.0,
            }),
            2 => TagValue::Bool(matches!(t.field(5), Some(Value::Bool(true)))),
            3 => TagValue::Long(t.field(6).and_then(Value::as_i64).unwrap_or(0)),
            4 => TagValue::Binary(match t.field(7) {
                Some(Value::Binary(b)) => b.clone(),
                _ => Vec::new(),
            }),
            other => return Err(format!("tag {key:?} has unknown type {other}")),
        };
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// A Thrift `jaeger.Batch` (`1: Process process, 2: list<Span> spans`).
pub fn batch_from_thrift(batch: &Value) -> Result<JaegerBatch, String> {
    let process = batch.field(1).ok_or("batch without process")?;
    let mut out = JaegerBatch {
        service_name: process
            .field(1)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        process_tags: thrift_tags(process.field(2))?,
        spans: Vec::new(),
    };
    for s in batch.field(2).map(Value::as_list).unwrap_or(&[]) {
        let i = |id| s.field(id).and_then(Value::as_i64).unwrap_or(0);
        let mut references = Vec::new();
        for r in s.field(6).map(Value::as_list).unwrap_or(&[]) {
            let ri = |id| r.field(id).and_then(Value::as_i64).unwrap_or(0);
            references.push(Reference {
                child_of: ri(1) == 0,
                trace_id: ids(ri(3), ri(2)),
                span_id: ri(4).to_be_bytes(),
            });
        }
        let mut logs = Vec::new();
        for l in s.field(11).map(Value::as_list).unwrap_or(&[]) {
            logs.push((
                l.field(1)
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    .saturating_mul(1000),
                thrift_tags(l.field(2))?,
            ));
        }
        out.spans.push(JaegerSpan {
            trace_id: ids(i(2), i(1)),
            span_id: i(3).to_be_bytes(),
            parent_span_id: i(4).to_be_bytes(),
            operation_name: s.field(5).and_then(Value::as_str).unwrap_or("").to_string(),
            references,
            start_ns: i(8).saturating_mul(1000),
            duration_ns: i(9).saturating_mul(1000),
            tags: thrift_tags(s.field(10))?,
            logs,
        });
    }
    Ok(out)
}

fn proto_tags(
    tags: Vec<vivace_proto::jaeger::KeyValue>,
) -> Result<Vec<(String, TagValue)>, String> {
    tags.into_iter()
        .map(|t| {
            let v = match t.v_type {
                0 => TagValue::Str(t.v_str),
                1 => TagValue::Bool(t.v_bool),
                2 => TagValue::Long(t.v_int64),
                3 => TagValue::Double(t.v_float64),
                4 => TagValue::Binary(t.v_binary),
                other => return Err(format!("tag {:?} has unknown type {other}", t.key)),
            };
            Ok((t.key, v))
        })
        .collect()
}

fn proto_id<const N: usize>(b: &[u8], what: &str) -> Result<[u8; N], String> {
    if b.len() > N {
        return Err(format!("{what} of {} bytes", b.len()));
    }
    let mut out = [0u8; N];
    out[N - b.len()..].copy_from_slice(b);
    Ok(out)
}

fn nanos(seconds: i64, nanos: i32) -> i64 {
    seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(nanos))
}

/// A protobuf `jaeger.api_v2.Batch`: one [`JaegerBatch`] per process (a span may carry its own).
pub fn batches_from_proto(batch: vivace_proto::jaeger::Batch) -> Result<Vec<JaegerBatch>, String> {
    let default_process = batch.process.unwrap_or_default();
    let mut out: Vec<JaegerBatch> = Vec::new();
    let mut index: Vec<(vivace_proto::jaeger::Process, usize)> = Vec::new();
    for s in batch.spans {
        let process = s.process.clone().unwrap_or_else(|| default_process.clone());
        let slot = match index.iter().position(|(p, _)| *p == process) {
            Some(i) => index[i].1,
            None => {
                out.push(JaegerBatch {
                    service_name: process.service_name.clone(),
                    process_tags: proto_tags(process.tags.clone())?,
                    spans: Vec::new(),
                });
                index.push((process, out.len() - 1));
                out.len() - 1
            }
        };
        let mut references = Vec::with_capacity(s.references.len());
        for r in s.references {
            references.push(Reference {
                child_of: r.ref_type == 0,
                trace_id: proto_id(&r.trace_id, "reference trace_id")?,
                span_id: proto_id(&r.span_id, "reference span_id")?,
            });
        }
        let mut logs = Vec::with_capacity(s.logs.len());
        for l in s.logs {
            let ts = l.timestamp.map_or(0, |t| nanos(t.seconds, t.nanos));
            logs.push((ts, proto_tags(l.fields)?));
        }
        out[slot].spans.push(JaegerSpan {
            trace_id: proto_id(&s.trace_id, "trace_id")?,
            span_id: proto_id(&s.span_id, "span_id")?,
            parent_span_id: [0; 8],
            operation_name: s.operation_name,
            references,
            start_ns: s.start_time.map_or(0, |t| nanos(t.seconds, t.nanos)),
            duration_ns: s.duration.map_or(0, |d| nanos(d.seconds, d.nanos)),
            tags: proto_tags(s.tags)?,
            logs,
        });
    }
    Ok(out)
}

fn attr(key: String, v: TagValue) -> KeyValue {
    let value = match v {
        TagValue::Str(s) => any_value::Value::StringValue(s),
        TagValue::Double(d) => any_value::Value::DoubleValue(d),
        TagValue::Bool(b) => any_value::Value::BoolValue(b),
        TagValue::Long(l) => any_value::Value::IntValue(l),
        TagValue::Binary(b) => any_value::Value::BytesValue(b),
    };
    KeyValue {
        key,
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn text(v: &TagValue) -> String {
    match v {
        TagValue::Str(s) => s.clone(),
        TagValue::Double(d) => d.to_string(),
        TagValue::Bool(b) => b.to_string(),
        TagValue::Long(l) => l.to_string(),
        TagValue::Binary(b) => hex::encode(b),
    }
}

/// Translates batches into OTLP resource spans (one per batch, spans grouped by scope).
pub fn to_otlp(batches: Vec<JaegerBatch>) -> Result<Vec<ResourceSpans>, String> {
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let mut resource: Vec<KeyValue> = Vec::with_capacity(b.process_tags.len() + 1);
        if !b.service_name.is_empty() {
            resource.push(attr(
                "service.name".into(),
                TagValue::Str(b.service_name.clone()),
            ));
        }
        resource.extend(b.process_tags.into_iter().map(|(k, v)| attr(k, v)));
        let mut scopes: BTreeMap<(String, String), Vec<Span>> = BTreeMap::new();
        for s in b.spans {
            if s.trace_id == [0; 16] || s.span_id == [0; 8] {
                return Err(format!(
                    "span {:?} has a zero trace or span ID",
                    s.operation_name
                ));
            }
            let mut kind = SpanKind::Unspecified;
            let mut scope = (String::new(), String::new());
            let mut status_code: Option<StatusCode> = None;
            let mut status_message = String::new();
            let mut error_tag = false;
            let mut trace_state = String::new();
            let mut attributes = Vec::with_capacity(s.tags.len());
            for (k, v) in s.tags {
                match k.as_str() {
                    "span.kind" => {
                        kind = match text(&v).to_ascii_lowercase().as_str() {
                            "client" => SpanKind::Client,
                            "server" => SpanKind::Server,
                            "producer" => SpanKind::Producer,
                            "consumer" => SpanKind::Consumer,
                            "internal" => SpanKind::Internal,
                            _ => SpanKind::Unspecified,
                        }
                    }
                    "otel.status_code" => {
                        status_code = Some(match text(&v).to_ascii_uppercase().as_str() {
                            "OK" => StatusCode::Ok,
                            "ERROR" => StatusCode::Error,
                            _ => StatusCode::Unset,
                        })
                    }
                    "otel.status_description" => status_message = text(&v),
                    "error" if matches!(v, TagValue::Bool(true)) || text(&v) == "true" => {
                        error_tag = true
                    }
                    "otel.scope.name" | "otel.library.name" => scope.0 = text(&v),
                    "otel.scope.version" | "otel.library.version" => scope.1 = text(&v),
                    "w3c.tracestate" => trace_state = text(&v),
                    _ => attributes.push(attr(k, v)),
                }
            }
            let status = match (status_code, error_tag) {
                (Some(c), _) => Some(Status {
                    code: c as i32,
                    message: status_message,
                }),
                (None, true) => Some(Status {
                    code: StatusCode::Error as i32,
                    message: status_message,
                }),
                (None, false) => None,
            };
            let mut parent = s.parent_span_id;
            let mut links = Vec::new();
            for r in s.references {
                if parent == [0; 8] && r.child_of && r.trace_id == s.trace_id {
                    parent = r.span_id;
                } else if !(r.child_of && r.trace_id == s.trace_id && r.span_id == parent) {
                    links.push(Link {
                        trace_id: r.trace_id.to_vec(),
                        span_id: r.span_id.to_vec(),
                        ..Link::default()
                    });
                }
            }
            let start = s.start_ns.max(0) as u64;
            let events = s
                .logs
                .into_iter()
                .map(|(ts, fields)| {
                    let name_key = if fields.iter().any(|(k, _)| k == "event") {
                        "event"
                    } else {
                        "message"
                    };
                    let mut name = String::new();
                    let mut attributes = Vec::with_capacity(fields.len());
                    for (k, v) in fields {
                        if k == name_key && name.is_empty() {
                            name = text(&v);
                        } else {
                            attributes.push(attr(k, v));
                        }
                    }
                    Event {
                        time_unix_nano: ts.max(0) as u64,
                        name,
                        attributes,
                        ..Event::default()
                    }
                })
                .collect();
            let span = Span {
                trace_id: s.trace_id.to_vec(),
                span_id: s.span_id.to_vec(),
                parent_span_id: if parent == [0; 8] {
                    Vec::new()
                } else {
                    parent.to_vec()
                },
                trace_state,
                name: s.operation_name,
                kind: kind as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start.saturating_add(s.duration_ns.max(0) as u64),
                attributes,
                events,
                links,
                status,
                ..Span::default()
            };
            scopes.entry(scope).or_default().push(span);
        }
        out.push(ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Resource::default()
            }),
            scope_spans: scopes
                .into_iter()
                .map(|((name, version), spans)| ScopeSpans {
                    scope: (!name.is_empty() || !version.is_empty()).then(|| {
                        InstrumentationScope {
                            name,
                            version,
                            ..InstrumentationScope::default()
                        }
                    }),
                    spans,
                    ..ScopeSpans::default()
                })
                .collect(),
            ..ResourceSpans::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span() -> JaegerSpan {
        JaegerSpan {
            trace_id: ids(1, 2),
            span_id: 3i64.to_be_bytes(),
            operation_name: "op".into(),
            start_ns: 1_000_000,
            duration_ns: 250_000,
            ..JaegerSpan::default()
        }
    }

    fn one(s: JaegerSpan) -> (ResourceSpans, Span) {
        let rs = to_otlp(vec![JaegerBatch {
            service_name: "svc".into(),
            process_tags: vec![("hostname".into(), TagValue::Str("h1".into()))],
            spans: vec![s],
        }])
        .unwrap();
        let r = rs[0].clone();
        let s = r.scope_spans[0].spans[0].clone();
        (r, s)
    }

    #[test]
    fn every_mapping_rule() {
        let mut s = span();
        s.references = vec![
            Reference {
                child_of: true,
                trace_id: ids(1, 2),
                span_id: 9i64.to_be_bytes(),
            },
            Reference {
                child_of: false,
                trace_id: ids(7, 7),
                span_id: 8i64.to_be_bytes(),
            },
        ];
        s.tags = vec![
            ("span.kind".into(), TagValue::Str("server".into())),
            ("error".into(), TagValue::Bool(true)),
            ("otel.library.name".into(), TagValue::Str("lib".into())),
            ("otel.library.version".into(), TagValue::Str("2".into())),
            ("w3c.tracestate".into(), TagValue::Str("a=b".into())),
            ("http.status_code".into(), TagValue::Long(500)),
            ("ratio".into(), TagValue::Double(0.5)),
            ("raw".into(), TagValue::Binary(vec![1, 2])),
        ];
        s.logs = vec![(
            1_100_000,
            vec![
                ("event".into(), TagValue::Str("retry".into())),
                ("attempt".into(), TagValue::Long(2)),
            ],
        )];
        let (r, s) = one(s);
        let res = &r.resource.as_ref().unwrap().attributes;
        assert_eq!(res[0].key, "service.name");
        assert_eq!(res[1].key, "hostname");
        assert_eq!(
            s.trace_id,
            [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2].to_vec()
        );
        assert_eq!(
            s.parent_span_id,
            9i64.to_be_bytes().to_vec(),
            "CHILD_OF is the parent"
        );
        assert_eq!(s.links.len(), 1, "FOLLOWS_FROM is a link");
        assert_eq!(s.kind, SpanKind::Server as i32);
        assert_eq!(s.status.as_ref().unwrap().code, StatusCode::Error as i32);
        assert_eq!(r.scope_spans[0].scope.as_ref().unwrap().name, "lib");
        assert_eq!(s.trace_state, "a=b");
        assert_eq!(
            (s.start_time_unix_nano, s.end_time_unix_nano),
            (1_000_000, 1_250_000)
        );
        let keys: Vec<&str> = s.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["http.status_code", "ratio", "raw"]);
        assert_eq!(
            s.attributes[0].value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(500))
        );
        assert_eq!(s.events[0].name, "retry");
        assert_eq!(s.events[0].time_unix_nano, 1_100_000);
        assert_eq!(s.events[0].attributes[0].key, "attempt");
        // otel.status_code wins; no kind tag is unspecified; zero IDs are refused.
        let mut s2 = span();
        s2.tags = vec![
            ("otel.status_code".into(), TagValue::Str("OK".into())),
            ("error".into(), TagValue::Bool(true)),
        ];
        let (_, s2) = one(s2);
        assert_eq!(s2.status.as_ref().unwrap().code, StatusCode::Ok as i32);
        assert_eq!(s2.kind, SpanKind::Unspecified as i32);
        let mut bad = span();
        bad.span_id = [0; 8];
        assert!(
            to_otlp(vec![JaegerBatch {
                spans: vec![bad],
                ..JaegerBatch::default()
            }])
            .is_err()
        );
    }
}

#[cfg(test)]
mod thrift_tests {
    use super::*;
    use crate::translate::thrift::{Protocol, read_message};

    /// A Thrift binary `emitBatch` message, written by hand (the agent's :6832 format).
    fn binary_emit_batch() -> Vec<u8> {
        let mut b = Vec::new();
        let string = |b: &mut Vec<u8>, s: &str| {
            b.extend_from_slice(&(s.len() as i32).to_be_bytes());
            b.extend_from_slice(s.as_bytes());
        };
        let field = |b: &mut Vec<u8>, t: u8, id: i16| {
            b.push(t);
            b.extend_from_slice(&id.to_be_bytes());
        };
        b.extend_from_slice(&0x8001_0004u32.to_be_bytes()); // oneway call
        string(&mut b, "emitBatch");
        b.extend_from_slice(&7i32.to_be_bytes());
        field(&mut b, 12, 1); // args.batch
        field(&mut b, 12, 1); // batch.process
        field(&mut b, 11, 1);
        string(&mut b, "svc");
        b.push(0);
        field(&mut b, 15, 2); // batch.spans
        b.push(12);
        b.extend_from_slice(&1i32.to_be_bytes());
        for (id, v) in [(1i16, 5i64), (2, 0), (3, 6), (4, 0), (8, 1_000), (9, 10)] {
            field(&mut b, 10, id);
            b.extend_from_slice(&v.to_be_bytes());
        }
        field(&mut b, 11, 5);
        string(&mut b, "op");
        field(&mut b, 8, 7);
        b.extend_from_slice(&1i32.to_be_bytes());
        b.push(0); // span
        b.push(0); // batch
        b.push(0); // args
        b
    }

    #[test]
    fn a_binary_agent_datagram_decodes() {
        let (protocol, msg) = read_message(&binary_emit_batch()).unwrap();
        assert_eq!(protocol, Protocol::Binary);
        assert_eq!((msg.name.as_str(), msg.kind, msg.seq), ("emitBatch", 4, 7));
        let batch = batch_from_thrift(msg.args.field(1).unwrap()).unwrap();
        assert_eq!(batch.service_name, "svc");
        let rs = to_otlp(vec![batch]).unwrap();
        let s = &rs[0].scope_spans[0].spans[0];
        assert_eq!(s.name, "op");
        assert_eq!(s.trace_id[15], 5);
        assert_eq!(s.span_id[7], 6);
        assert_eq!(
            (s.start_time_unix_nano, s.end_time_unix_nano),
            (1_000_000, 1_010_000)
        );
    }
}
