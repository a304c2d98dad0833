//! The same synthetic traces in the other ingest protocols, for comparing receivers on equal
//! load: Zipkin v2 JSON, Jaeger Thrift (binary, the collector's `/api/traces` body), Jaeger gRPC
//! (`PostSpansRequest`) and OpenCensus (`ExportTraceServiceRequest`). Each request is encoded
//! once; trace IDs keep the template's marker bytes so every send can give them fresh values (in
//! place, as raw bytes or as hex text for JSON).

use std::collections::BTreeMap;

use bytes::Bytes;
use prost::Message;
use vivace_proto::otlp::collector::ExportTraceServiceRequest;
use vivace_proto::otlp::common::{KeyValue, any_value};
use vivace_proto::otlp::trace::{ResourceSpans, Span};

use super::synth::Template;

/// An ingest protocol `vivace gen` can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    OtlpGrpc,
    OtlpHttp,
    ZipkinJson,
    JaegerThrift,
    JaegerGrpc,
    /// The agent's UDP port: datagrams are encoded at each send (they carry IDs as varints).
    JaegerUdp,
    OpenCensus,
}

impl Wire {
    pub(crate) fn parse(s: &str) -> Option<Wire> {
        Some(match s {
            "grpc" => Wire::OtlpGrpc,
            "http" => Wire::OtlpHttp,
            "zipkin" => Wire::ZipkinJson,
            "jaeger-thrift" => Wire::JaegerThrift,
            "jaeger-grpc" => Wire::JaegerGrpc,
            "jaeger-udp" => Wire::JaegerUdp,
            "opencensus" => Wire::OpenCensus,
            _ => return None,
        })
    }
}

fn service(rs: &ResourceSpans) -> String {
    rs.resource
        .as_ref()
        .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
        .and_then(|a| a.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn text(v: &KeyValue) -> String {
    match v.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn spans(rs: &ResourceSpans) -> impl Iterator<Item = &Span> {
    rs.scope_spans.iter().flat_map(|s| &s.spans)
}

fn kind_name(k: i32) -> Option<&'static str> {
    match k {
        2 => Some("SERVER"),
        3 => Some("CLIENT"),
        4 => Some("PRODUCER"),
        5 => Some("CONSUMER"),
        _ => None,
    }
}

fn is_error(s: &Span) -> bool {
    s.status.as_ref().is_some_and(|st| st.code == 2)
}

/// The templates in `wire` (OTLP templates are returned as they are).
pub(crate) fn convert(templates: Vec<Template>, wire: Wire) -> Vec<Template> {
    if matches!(wire, Wire::OtlpGrpc | Wire::OtlpHttp | Wire::JaegerUdp) {
        return templates;
    }
    let mut out = Vec::new();
    for t in templates {
        let Ok(req) = ExportTraceServiceRequest::decode(t.encoded.as_ref()) else {
            continue;
        };
        match wire {
            Wire::ZipkinJson => {
                out.push(Template::new_hex(Bytes::from(zipkin_json(&req)), t.spans))
            }
            // The collector endpoint and PostSpans take one process per batch.
            Wire::JaegerThrift => {
                for rs in &req.resource_spans {
                    out.push(Template::new(
                        Bytes::from(jaeger_thrift(rs)),
                        spans(rs).count(),
                    ))
                }
            }
            Wire::JaegerGrpc => {
                for rs in &req.resource_spans {
                    out.push(Template::new(
                        Bytes::from(jaeger_proto(rs).encode_to_vec()),
                        spans(rs).count(),
                    ))
                }
            }
            Wire::OpenCensus => {
                for rs in &req.resource_spans {
                    out.push(Template::new(
                        Bytes::from(opencensus(rs).encode_to_vec()),
                        spans(rs).count(),
                    ))
                }
            }
            Wire::OtlpGrpc | Wire::OtlpHttp | Wire::JaegerUdp => {}
        }
    }
    out
}

fn zipkin_json(req: &ExportTraceServiceRequest) -> Vec<u8> {
    let mut list = Vec::new();
    for rs in &req.resource_spans {
        let svc = service(rs);
        for s in spans(rs) {
            let mut tags: BTreeMap<String, String> = s
                .attributes
                .iter()
                .map(|a| (a.key.clone(), text(a)))
                .collect();
            if is_error(s) {
                tags.insert("otel.status_code".into(), "ERROR".into());
                tags.insert("error".into(), "true".into());
            }
            let mut o = serde_json::json!({
                "traceId": hex::encode(&s.trace_id),
                "id": hex::encode(&s.span_id),
                "name": s.name,
                "timestamp": s.start_time_unix_nano / 1000,
                "duration": s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) / 1000,
                "localEndpoint": {"serviceName": svc},
                "tags": tags,
            });
            if !s.parent_span_id.is_empty() {
                o["parentId"] = hex::encode(&s.parent_span_id).into();
            }
            if let Some(k) = kind_name(s.kind) {
                o["kind"] = k.into();
            }
            list.push(o);
        }
    }
    serde_json::to_vec(&list).unwrap_or_default()
}

/// A minimal Thrift binary-protocol writer.
struct ThriftOut(Vec<u8>);

impl ThriftOut {
    fn field(&mut self, t: u8, id: i16) {
        self.0.push(t);
        self.0.extend_from_slice(&id.to_be_bytes());
    }
    fn i64(&mut self, id: i16, v: i64) {
        self.field(10, id);
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, id: i16, v: i32) {
        self.field(8, id);
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn string(&mut self, id: i16, v: &str) {
        self.field(11, id);
        self.0.extend_from_slice(&(v.len() as i32).to_be_bytes());
        self.0.extend_from_slice(v.as_bytes());
    }
    fn list(&mut self, id: i16, elem: u8, n: usize) {
        self.field(15, id);
        self.0.push(elem);
        self.0.extend_from_slice(&(n as i32).to_be_bytes());
    }
    fn stop(&mut self) {
        self.0.push(0);
    }
    fn tag(&mut self, key: &str, v: &any_value::Value) {
        self.string(1, key);
        match v {
            any_value::Value::IntValue(i) => {
                self.i32(2, 3);
                self.i64(6, *i);
            }
            any_value::Value::DoubleValue(d) => {
                self.i32(2, 1);
                self.field(4, 4);
                self.0.extend_from_slice(&d.to_be_bytes());
            }
            any_value::Value::BoolValue(b) => {
                self.i32(2, 2);
                self.field(2, 5);
                self.0.push(u8::from(*b));
            }
            other => {
                self.i32(2, 0);
                let s = match other {
                    any_value::Value::StringValue(s) => s.clone(),
                    _ => String::new(),
                };
                self.string(3, &s);
            }
        }
        self.stop();
    }
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[8 - n..].copy_from_slice(&b[b.len() - n..]);
    i64::from_be_bytes(a)
}

fn jaeger_thrift(rs: &ResourceSpans) -> Vec<u8> {
    let mut w = ThriftOut(Vec::new());
    w.field(12, 1);
    w.string(1, &service(rs));
    w.stop();
    let list: Vec<&Span> = spans(rs).collect();
    w.list(2, 12, list.len());
    for s in list {
        // traceIdHigh first in the bytes: the template's marker stays where fresh IDs go.
        w.i64(2, be_i64(&s.trace_id[..8]));
        w.i64(1, be_i64(&s.trace_id[8..]));
        w.i64(3, be_i64(&s.span_id));
        w.i64(4, be_i64(&s.parent_span_id));
        w.string(5, &s.name);
        w.i32(7, 1);
        w.i64(8, (s.start_time_unix_nano / 1000) as i64);
        w.i64(
            9,
            (s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) / 1000) as i64,
        );
        let mut tags: Vec<(String, any_value::Value)> = s
            .attributes
            .iter()
            .filter_map(|a| Some((a.key.clone(), a.value.as_ref()?.value.clone()?)))
            .collect();
        if let Some(k) = kind_name(s.kind) {
            tags.push((
                "span.kind".into(),
                any_value::Value::StringValue(k.to_ascii_lowercase()),
            ));
        }
        if is_error(s) {
            tags.push(("error".into(), any_value::Value::BoolValue(true)));
        }
        w.list(10, 12, tags.len());
        for (k, v) in &tags {
            w.tag(k, v);
        }
        w.stop();
    }
    w.stop();
    w.0
}

fn jaeger_proto(rs: &ResourceSpans) -> vivace_proto::jaeger::PostSpansRequest {
    use vivace_proto::jaeger as j;
    let ts = |ns: u64| prost_types::Timestamp {
        seconds: (ns / 1_000_000_000) as i64,
        nanos: (ns % 1_000_000_000) as i32,
    };
    let spans = spans(rs)
        .map(|s| {
            let mut tags: Vec<j::KeyValue> = s
                .attributes
                .iter()
                .map(|a| j::KeyValue {
                    key: a.key.clone(),
                    v_str: text(a),
                    ..Default::default()
                })
                .collect();
            if let Some(k) = kind_name(s.kind) {
                tags.push(j::KeyValue {
                    key: "span.kind".into(),
                    v_str: k.to_ascii_lowercase(),
                    ..Default::default()
                });
            }
            let d = s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano);
            j::Span {
                trace_id: s.trace_id.clone(),
                span_id: s.span_id.clone(),
                operation_name: s.name.clone(),
                references: if s.parent_span_id.is_empty() {
                    vec![]
                } else {
                    vec![j::SpanRef {
                        trace_id: s.trace_id.clone(),
                        span_id: s.parent_span_id.clone(),
                        ref_type: 0,
                    }]
                },
                start_time: Some(ts(s.start_time_unix_nano)),
                duration: Some(prost_types::Duration {
                    seconds: (d / 1_000_000_000) as i64,
                    nanos: (d % 1_000_000_000) as i32,
                }),
                tags,
                ..Default::default()
            }
        })
        .collect();
    j::PostSpansRequest {
        batch: Some(j::Batch {
            spans,
            process: Some(j::Process {
                service_name: service(rs),
                tags: vec![],
            }),
        }),
    }
}

fn opencensus(rs: &ResourceSpans) -> vivace_proto::opencensus::ExportTraceServiceRequest {
    use vivace_proto::opencensus as oc;
    let ts = |ns: u64| prost_types::Timestamp {
        seconds: (ns / 1_000_000_000) as i64,
        nanos: (ns % 1_000_000_000) as i32,
    };
    oc::ExportTraceServiceRequest {
        node: Some(oc::Node {
            service_info: Some(oc::ServiceInfo { name: service(rs) }),
            ..Default::default()
        }),
        spans: spans(rs)
            .map(|s| oc::Span {
                trace_id: s.trace_id.clone(),
                span_id: s.span_id.clone(),
                parent_span_id: s.parent_span_id.clone(),
                name: Some(oc::TruncatableString {
                    value: s.name.clone(),
                    truncated_byte_count: 0,
                }),
                kind: match s.kind {
                    2 => 1,
                    3 => 2,
                    _ => 0,
                },
                start_time: Some(ts(s.start_time_unix_nano)),
                end_time: Some(ts(s.end_time_unix_nano)),
                attributes: Some(oc::span::Attributes {
                    attribute_map: s
                        .attributes
                        .iter()
                        .map(|a| {
                            (
                                a.key.clone(),
                                oc::AttributeValue {
                                    value: Some(oc::attribute_value::Value::StringValue(
                                        oc::TruncatableString {
                                            value: text(a),
                                            truncated_byte_count: 0,
                                        },
                                    )),
                                },
                            )
                        })
                        .collect(),
                    dropped_attributes_count: 0,
                }),
                ..Default::default()
            })
            .collect(),
        resource: None,
    }
}

/// A minimal Thrift compact-protocol writer (the agent's :6831 datagrams).
struct CompactOut {
    buf: Vec<u8>,
    last: Vec<i16>,
}

impl CompactOut {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }
    fn field(&mut self, t: u8, id: i16) {
        let last = self.last.last().copied().unwrap_or(0);
        let delta = id - last;
        if (1..=15).contains(&delta) {
            self.buf.push(((delta as u8) << 4) | t);
        } else {
            self.buf.push(t);
            self.zigzag(i64::from(id));
        }
        if let Some(l) = self.last.last_mut() {
            *l = id;
        }
    }
    fn begin(&mut self) {
        self.last.push(0);
    }
    fn end(&mut self) {
        self.buf.push(0);
        self.last.pop();
    }
    fn i64(&mut self, id: i16, v: i64) {
        self.field(6, id);
        self.zigzag(v);
    }
    fn i32(&mut self, id: i16, v: i32) {
        self.field(5, id);
        self.zigzag(i64::from(v));
    }
    fn string(&mut self, id: i16, s: &str) {
        self.field(8, id);
        self.varint(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }
    fn list(&mut self, id: i16, elem: u8, n: usize) {
        self.field(9, id);
        if n < 15 {
            self.buf.push(((n as u8) << 4) | elem);
        } else {
            self.buf.push(0xf0 | elem);
            self.varint(n as u64);
        }
    }
}

/// Spans per agent datagram: well under the 65,000-byte UDP limit.
const UDP_SPANS: usize = 40;

/// An OTLP request as Jaeger agent `emitBatch` datagrams (Thrift compact, every value as a
/// string tag), one service and at most [`UDP_SPANS`] spans each.
pub(crate) fn jaeger_udp_datagrams(req: &ExportTraceServiceRequest) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let svc = service(rs);
        let all: Vec<&Span> = spans(rs).collect();
        for chunk in all.chunks(UDP_SPANS) {
            let mut w = CompactOut {
                buf: vec![0x82, (4 << 5) | 1],
                last: Vec::new(),
            };
            w.varint(0);
            w.varint("emitBatch".len() as u64);
            w.buf.extend_from_slice(b"emitBatch");
            w.begin(); // args
            w.field(12, 1);
            w.begin(); // batch
            w.field(12, 1);
            w.begin(); // process
            w.string(1, &svc);
            w.end();
            w.list(2, 12, chunk.len());
            for s in chunk {
                w.begin();
                w.i64(1, be_i64(&s.trace_id[8..]));
                w.i64(2, be_i64(&s.trace_id[..8]));
                w.i64(3, be_i64(&s.span_id));
                w.i64(4, be_i64(&s.parent_span_id));
                w.string(5, &s.name);
                w.i32(7, 1);
                w.i64(8, (s.start_time_unix_nano / 1000) as i64);
                w.i64(
                    9,
                    (s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) / 1000) as i64,
                );
                let mut tags: Vec<(String, String)> = s
                    .attributes
                    .iter()
                    .map(|a| (a.key.clone(), text(a)))
                    .collect();
                if let Some(k) = kind_name(s.kind) {
                    tags.push(("span.kind".into(), k.to_ascii_lowercase()));
                }
                w.list(10, 12, tags.len());
                for (k, v) in &tags {
                    w.begin();
                    w.string(1, k);
                    w.i32(2, 0);
                    w.string(3, v);
                    w.end();
                }
                w.end();
            }
            w.end(); // batch
            w.end(); // args
            out.push(w.buf);
        }
    }
    out
}
