//! Zipkin v2 spans (JSON and protobuf `ListOfSpans`) into OTLP, as the OpenTelemetry Collector's
//! Zipkin receiver translates them.
//!
//! | Zipkin | OTLP |
//! |---|---|
//! | `traceId` (16 or 32 hex; 64-bit IDs left-padded with zeros), `id`, `parentId` | trace ID, span ID, parent span ID |
//! | `name` | name |
//! | `kind` `CLIENT`/`SERVER`/`PRODUCER`/`CONSUMER`, absent | the same kind, `INTERNAL` |
//! | `timestamp`, `duration` (µs) | start, end = start + duration (ns) |
//! | `localEndpoint.serviceName` | resource `service.name` (spans grouped by it) |
//! | `localEndpoint.ipv4`/`ipv6`, `.port` | span `net.host.ip`, `net.host.port` |
//! | `remoteEndpoint.serviceName`, `ipv4`/`ipv6`, `port` | span `peer.service`, `net.peer.ip`, `net.peer.port` |
//! | `annotations[]` `{timestamp, value}` | events: name = value; a value that is a JSON object with one key whose value is an object (`{"name":{"k":"v"}}`, what OpenTelemetry's Zipkin exporters write) gives that name and those attributes |
//! | `tags` | span attributes, string values (with `parse_string_tags`: `true`/`false` → bool, integers → int, numbers → double) |
//! | tag `otel.status_code` (`OK`, `ERROR`), `otel.status_description` (else the `error` tag's value) | status code and message (tags removed) |
//! | tag `error` (without `otel.status_code`) | status `ERROR`, message = the tag's value unless empty or `true` (tag removed) |
//! | tags `otel.scope.name`/`otel.library.name`, `otel.scope.version`/`otel.library.version` | instrumentation scope (tags removed) |
//! | tag `service.name` equal to the local endpoint's | dropped (OpenTelemetry's exporters copy resource attributes into tags) |
//! | `debug`, `shared` | not kept (a shared server span keeps its own kind, so it and the client span sharing its ID are two spans) |
//!
//! Zipkin v1 JSON and Thrift (`/api/v1/spans`; Thrift read by [`v1_from_thrift`]) is first turned into v2 spans as Zipkin's own converter does:
//! the core annotations `cs`/`cr` make a CLIENT span, `sr`/`ss` a SERVER span (a v1 span holding
//! both becomes a client span and a shared server span), `ms` PRODUCER, `mr` CONSUMER, and give
//! the local endpoint, the timestamp and the duration when the span has none; other annotations
//! stay annotations; binary annotations become tags (values printed), except the address
//! annotations `sa`/`ca`/`ma`, which give the remote endpoint.
//!
//! A span without a valid trace or span ID is refused with the whole request (HTTP 400), as
//! every other malformed input.

use std::collections::BTreeMap;

use super::{kv, string};
use serde::Deserialize;
use vivace_proto::otlp::common::{InstrumentationScope, KeyValue, any_value};
use vivace_proto::otlp::resource::Resource;
use vivace_proto::otlp::trace::span::{Event, SpanKind};
use vivace_proto::otlp::trace::status::StatusCode;
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status};

/// A Zipkin v2 span as JSON carries it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JsonSpan {
    pub trace_id: String,
    pub id: String,
    pub parent_id: Option<String>,
    pub name: Option<String>,
    pub kind: Option<String>,
    pub timestamp: Option<u64>,
    pub duration: Option<u64>,
    pub local_endpoint: Option<JsonEndpoint>,
    pub remote_endpoint: Option<JsonEndpoint>,
    pub annotations: Vec<JsonAnnotation>,
    pub tags: BTreeMap<String, String>,
    pub debug: Option<bool>,
    pub shared: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JsonEndpoint {
    pub service_name: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct JsonAnnotation {
    pub timestamp: u64,
    pub value: String,
}

/// A Zipkin v1 span (JSON).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct V1Span {
    pub trace_id: String,
    pub id: String,
    pub parent_id: Option<String>,
    pub name: Option<String>,
    pub timestamp: Option<u64>,
    pub duration: Option<u64>,
    pub annotations: Vec<V1Annotation>,
    pub binary_annotations: Vec<V1BinaryAnnotation>,
    pub debug: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct V1Annotation {
    pub timestamp: u64,
    pub value: String,
    pub endpoint: Option<V1Endpoint>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct V1BinaryAnnotation {
    pub key: String,
    pub value: serde_json::Value,
    pub endpoint: Option<V1Endpoint>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct V1Endpoint {
    pub service_name: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub port: Option<u16>,
}

impl V1Endpoint {
    fn v2(&self) -> JsonEndpoint {
        JsonEndpoint {
            service_name: self.service_name.clone(),
            ipv4: self.ipv4.clone(),
            ipv6: self.ipv6.clone(),
            port: self.port,
        }
    }
}

/// Zipkin v1 Thrift spans (`zipkincore.thrift`: `list<Span>` in Thrift's binary protocol) as
/// v1 JSON spans: IDs printed as hex (a non-zero `trace_id_high` makes a 128-bit ID), endpoints'
/// `ipv4` as dotted quads, binary annotation values decoded by their `annotation_type` (`BOOL`,
/// `BYTES` as base64, `I16`/`I32`/`I64`/`DOUBLE` big-endian, `STRING`).
pub fn v1_from_thrift(list: &super::thrift::Value) -> Result<Vec<V1Span>, String> {
    use super::thrift::Value;
    let endpoint = |v: Option<&Value>| -> Option<V1Endpoint> {
        let e = v?;
        let ipv4 = e
            .field(1)
            .and_then(Value::as_i64)
            .filter(|i| *i != 0)
            .map(|i| std::net::Ipv4Addr::from((i as i32) as u32).to_string());
        let ipv6 = match e.field(4) {
            Some(Value::Binary(b)) if b.len() == 16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                Some(std::net::Ipv6Addr::from(a).to_string())
            }
            _ => None,
        };
        Some(V1Endpoint {
            service_name: e.field(3).and_then(Value::as_str).map(String::from),
            ipv4,
            ipv6,
            port: e
                .field(2)
                .and_then(Value::as_i64)
                .and_then(|p| u16::try_from((p as i16) as u16 as i64).ok())
                .filter(|p| *p != 0),
        })
    };
    let mut out = Vec::new();
    for s in list.as_list() {
        let i = |id| s.field(id).and_then(Value::as_i64);
        let low = i(1).ok_or("span without trace_id")?;
        let trace_id = match i(12).filter(|h| *h != 0) {
            Some(high) => format!("{:016x}{:016x}", high as u64, low as u64),
            None => format!("{:016x}", low as u64),
        };
        let mut annotations = Vec::new();
        for a in s.field(6).map(Value::as_list).unwrap_or(&[]) {
            annotations.push(V1Annotation {
                timestamp: a.field(1).and_then(Value::as_i64).unwrap_or(0).max(0) as u64,
                value: a.field(2).and_then(Value::as_str).unwrap_or("").to_string(),
                endpoint: endpoint(a.field(3)),
            });
        }
        let mut binary_annotations = Vec::new();
        for b in s.field(8).map(Value::as_list).unwrap_or(&[]) {
            let raw = match b.field(2) {
                Some(Value::Binary(v)) => v.as_slice(),
                _ => &[],
            };
            let n = |len: usize| -> Option<[u8; 8]> {
                (raw.len() == len).then(|| {
                    let mut a = [0u8; 8];
                    a[8 - len..].copy_from_slice(raw);
                    a
                })
            };
            let value = match b.field(3).and_then(Value::as_i64).unwrap_or(6) {
                0 => serde_json::Value::Bool(raw.first().is_some_and(|x| *x != 0)),
                1 => {
                    use base64::Engine;
                    serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(raw))
                }
                2 => n(2).map_or(serde_json::Value::Null, |a| {
                    (i64::from_be_bytes(a) as i16).into()
                }),
                3 => n(4).map_or(serde_json::Value::Null, |a| {
                    (i64::from_be_bytes(a) as i32).into()
                }),
                4 => n(8).map_or(serde_json::Value::Null, |a| i64::from_be_bytes(a).into()),
                5 => n(8).map_or(serde_json::Value::Null, |a| {
                    serde_json::Number::from_f64(f64::from_be_bytes(a))
                        .map_or(serde_json::Value::Null, serde_json::Value::Number)
                }),
                _ => serde_json::Value::String(String::from_utf8_lossy(raw).into_owned()),
            };
            binary_annotations.push(V1BinaryAnnotation {
                key: b.field(1).and_then(Value::as_str).unwrap_or("").to_string(),
                value,
                endpoint: endpoint(b.field(4)),
            });
        }
        out.push(V1Span {
            trace_id,
            id: format!("{:016x}", i(4).ok_or("span without id")? as u64),
            parent_id: i(5)
                .filter(|p| *p != 0)
                .map(|p| format!("{:016x}", p as u64)),
            name: s.field(3).and_then(Value::as_str).map(String::from),
            timestamp: i(10).map(|t| t.max(0) as u64),
            duration: i(11).map(|d| d.max(0) as u64),
            annotations,
            binary_annotations,
            debug: match s.field(9) {
                Some(Value::Bool(b)) => Some(*b),
                _ => None,
            },
        });
    }
    Ok(out)
}

/// v1 spans as v2 spans (see the module documentation).
pub fn v1_to_v2(spans: Vec<V1Span>) -> Vec<JsonSpan> {
    let mut out = Vec::with_capacity(spans.len());
    for s in spans {
        let core = |v: &str| s.annotations.iter().find(|a| a.value == v);
        let (cs, cr, sr, ss, ms, mr) = (
            core("cs"),
            core("cr"),
            core("sr"),
            core("ss"),
            core("ms"),
            core("mr"),
        );
        let mut tags = BTreeMap::new();
        let mut remote: Option<JsonEndpoint> = None;
        let mut fallback_local: Option<&V1Endpoint> = None;
        for b in &s.binary_annotations {
            if matches!(b.key.as_str(), "sa" | "ca" | "ma") {
                remote = b.endpoint.as_ref().map(V1Endpoint::v2);
                continue;
            }
            if fallback_local.is_none() {
                fallback_local = b.endpoint.as_ref();
            }
            let v = match &b.value {
                serde_json::Value::String(v) => v.clone(),
                other => other.to_string(),
            };
            tags.insert(b.key.clone(), v);
        }
        let other: Vec<JsonAnnotation> = s
            .annotations
            .iter()
            .filter(|a| {
                !matches!(
                    a.value.as_str(),
                    "cs" | "cr" | "sr" | "ss" | "ms" | "mr" | "ws" | "wr"
                )
            })
            .map(|a| JsonAnnotation {
                timestamp: a.timestamp,
                value: a.value.clone(),
            })
            .collect();
        if fallback_local.is_none() {
            fallback_local = s.annotations.iter().find_map(|a| a.endpoint.as_ref());
        }
        // One v2 span per side the v1 span carries.
        let mut sides: Vec<(&str, Option<&V1Annotation>, Option<&V1Annotation>)> = Vec::new();
        if cs.is_some() || cr.is_some() {
            sides.push(("CLIENT", cs, cr));
        }
        if sr.is_some() || ss.is_some() {
            sides.push(("SERVER", sr, ss));
        }
        if ms.is_some() {
            sides.push(("PRODUCER", ms, None));
        }
        if mr.is_some() {
            sides.push(("CONSUMER", mr, None));
        }
        let shared_server = sides.len() > 1;
        if sides.is_empty() {
            sides.push(("", None, None));
        }
        let n = sides.len();
        for (i, (kind, begin, end)) in sides.into_iter().enumerate() {
            let local = begin
                .or(end)
                .and_then(|a| a.endpoint.as_ref())
                .or(fallback_local)
                .map(V1Endpoint::v2);
            // The span's own timestamp belongs to its first side (the client's, when shared).
            let timestamp = if i == 0 { s.timestamp } else { None }.or(begin.map(|a| a.timestamp));
            let duration = if i == 0 { s.duration } else { None }.or(match (begin, end) {
                (Some(b), Some(e)) => Some(e.timestamp.saturating_sub(b.timestamp)),
                _ => None,
            });
            out.push(JsonSpan {
                trace_id: s.trace_id.clone(),
                id: s.id.clone(),
                parent_id: s.parent_id.clone(),
                name: s.name.clone(),
                kind: (!kind.is_empty()).then(|| kind.to_string()),
                timestamp,
                duration,
                local_endpoint: local,
                remote_endpoint: if i + 1 == n {
                    remote.take()
                } else {
                    remote.as_ref().map(|r| JsonEndpoint {
                        service_name: r.service_name.clone(),
                        ipv4: r.ipv4.clone(),
                        ipv6: r.ipv6.clone(),
                        port: r.port,
                    })
                },
                annotations: other
                    .iter()
                    .map(|a| JsonAnnotation {
                        timestamp: a.timestamp,
                        value: a.value.clone(),
                    })
                    .collect(),
                tags: tags.clone(),
                debug: s.debug,
                shared: (shared_server && kind == "SERVER").then_some(true),
            });
        }
    }
    out
}

/// `zipkin.proto3` (the `application/x-protobuf` body of `/api/v2/spans`).
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListOfSpans {
        #[prost(message, repeated, tag = "1")]
        pub spans: Vec<Span>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub parent_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub id: Vec<u8>,
        /// 0 unspecified, 1 client, 2 server, 3 producer, 4 consumer.
        #[prost(int32, tag = "4")]
        pub kind: i32,
        #[prost(string, tag = "5")]
        pub name: String,
        #[prost(fixed64, tag = "6")]
        pub timestamp: u64,
        #[prost(uint64, tag = "7")]
        pub duration: u64,
        #[prost(message, optional, tag = "8")]
        pub local_endpoint: Option<Endpoint>,
        #[prost(message, optional, tag = "9")]
        pub remote_endpoint: Option<Endpoint>,
        #[prost(message, repeated, tag = "10")]
        pub annotations: Vec<Annotation>,
        #[prost(btree_map = "string, string", tag = "11")]
        pub tags: std::collections::BTreeMap<String, String>,
        #[prost(bool, tag = "12")]
        pub debug: bool,
        #[prost(bool, tag = "13")]
        pub shared: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Endpoint {
        #[prost(string, tag = "1")]
        pub service_name: String,
        #[prost(bytes = "vec", tag = "2")]
        pub ipv4: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub ipv6: Vec<u8>,
        #[prost(int32, tag = "4")]
        pub port: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Annotation {
        #[prost(fixed64, tag = "1")]
        pub timestamp: u64,
        #[prost(string, tag = "2")]
        pub value: String,
    }
}

/// One span in the receiver's neutral form, from either encoding.
struct Neutral {
    trace_id: Vec<u8>,
    id: Vec<u8>,
    parent_id: Vec<u8>,
    name: String,
    kind: SpanKind,
    timestamp_us: u64,
    duration_us: u64,
    local: Endpoint,
    remote: Endpoint,
    annotations: Vec<(u64, String)>,
    tags: BTreeMap<String, String>,
}

#[derive(Default)]
struct Endpoint {
    service: String,
    ip: String,
    port: u16,
}

/// Hex IDs into bytes, left-padded: a trace ID of up to 16 hex digits is the low half of a
/// 128-bit ID.
fn hex_id(s: &str, what: &str, bytes: usize) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if s.is_empty() || s.len() > bytes * 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("invalid {what} {s:?}"));
    }
    let width = bytes * 2;
    hex::decode(format!("{s:0>width$}")).map_err(|e| format!("invalid {what} {s:?}: {e}"))
}

fn kind_of(s: Option<&str>) -> SpanKind {
    match s.map(|k| k.to_ascii_uppercase()) {
        Some(k) if k == "CLIENT" => SpanKind::Client,
        Some(k) if k == "SERVER" => SpanKind::Server,
        Some(k) if k == "PRODUCER" => SpanKind::Producer,
        Some(k) if k == "CONSUMER" => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

/// Translates JSON spans (a `/api/v2/spans` body).
pub fn from_json(
    spans: Vec<JsonSpan>,
    parse_string_tags: bool,
) -> Result<Vec<ResourceSpans>, String> {
    let mut out = Vec::with_capacity(spans.len());
    for s in spans {
        let ep = |e: Option<JsonEndpoint>| {
            e.map(|e| Endpoint {
                service: e.service_name.unwrap_or_default(),
                ip: e.ipv4.or(e.ipv6).unwrap_or_default(),
                port: e.port.unwrap_or(0),
            })
            .unwrap_or_default()
        };
        out.push(Neutral {
            trace_id: hex_id(&s.trace_id, "traceId", 16)?,
            id: hex_id(&s.id, "id", 8)?,
            parent_id: match s.parent_id.as_deref() {
                Some(p) if !p.is_empty() => hex_id(p, "parentId", 8)?,
                _ => Vec::new(),
            },
            name: s.name.unwrap_or_default(),
            kind: kind_of(s.kind.as_deref()),
            timestamp_us: s.timestamp.unwrap_or(0),
            duration_us: s.duration.unwrap_or(0),
            local: ep(s.local_endpoint),
            remote: ep(s.remote_endpoint),
            annotations: s
                .annotations
                .into_iter()
                .map(|a| (a.timestamp, a.value))
                .collect(),
            tags: s.tags,
        });
    }
    Ok(group(out, parse_string_tags))
}

/// Translates a protobuf `ListOfSpans`.
pub fn from_proto(
    list: proto::ListOfSpans,
    parse_string_tags: bool,
) -> Result<Vec<ResourceSpans>, String> {
    let mut out = Vec::with_capacity(list.spans.len());
    for s in list.spans {
        let id_len = |v: &[u8], what: &str, ok: &[usize]| {
            if ok.contains(&v.len()) {
                Ok(())
            } else {
                Err(format!("invalid {what}: {} bytes", v.len()))
            }
        };
        id_len(&s.trace_id, "trace_id", &[8, 16])?;
        id_len(&s.id, "id", &[8])?;
        id_len(&s.parent_id, "parent_id", &[0, 8])?;
        let mut trace_id = s.trace_id;
        if trace_id.len() == 8 {
            let mut full = vec![0u8; 8];
            full.append(&mut trace_id);
            trace_id = full;
        }
        let ep = |e: Option<proto::Endpoint>| {
            e.map(|e| Endpoint {
                service: e.service_name,
                ip: ip_text(&e.ipv4, &e.ipv6),
                port: u16::try_from(e.port).unwrap_or(0),
            })
            .unwrap_or_default()
        };
        out.push(Neutral {
            trace_id,
            id: s.id,
            parent_id: s.parent_id,
            name: s.name,
            kind: match s.kind {
                1 => SpanKind::Client,
                2 => SpanKind::Server,
                3 => SpanKind::Producer,
                4 => SpanKind::Consumer,
                _ => SpanKind::Internal,
            },
            timestamp_us: s.timestamp,
            duration_us: s.duration,
            local: ep(s.local_endpoint),
            remote: ep(s.remote_endpoint),
            annotations: s
                .annotations
                .into_iter()
                .map(|a| (a.timestamp, a.value))
                .collect(),
            tags: s.tags,
        });
    }
    Ok(group(out, parse_string_tags))
}

fn ip_text(v4: &[u8], v6: &[u8]) -> String {
    if let Ok(b) = <[u8; 4]>::try_from(v4) {
        return std::net::Ipv4Addr::from(b).to_string();
    }
    if let Ok(b) = <[u8; 16]>::try_from(v6) {
        return std::net::Ipv6Addr::from(b).to_string();
    }
    String::new()
}

fn tag_value(v: String, parse: bool) -> any_value::Value {
    if parse {
        if v == "true" || v == "false" {
            return any_value::Value::BoolValue(v == "true");
        }
        if let Ok(i) = v.parse::<i64>() {
            return any_value::Value::IntValue(i);
        }
        if let Ok(d) = v.parse::<f64>() {
            return any_value::Value::DoubleValue(d);
        }
    }
    any_value::Value::StringValue(v)
}

/// An annotation's event: `{"name":{attributes}}` as OpenTelemetry writes events, else the
/// value as the name.
fn event_of(value: String) -> (String, Vec<KeyValue>) {
    if value.starts_with('{')
        && let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(&value)
        && m.len() == 1
        && let Some((name, serde_json::Value::Object(attrs))) = m.iter().next()
    {
        let attributes = attrs
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::Bool(b) => any_value::Value::BoolValue(*b),
                    serde_json::Value::Number(n) => match n.as_i64() {
                        Some(i) => any_value::Value::IntValue(i),
                        None => any_value::Value::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
                    },
                    serde_json::Value::String(s) => any_value::Value::StringValue(s.clone()),
                    other => any_value::Value::StringValue(other.to_string()),
                };
                kv(k, v)
            })
            .collect();
        return (name.clone(), attributes);
    }
    (value, Vec::new())
}

/// Spans grouped by service (resource) and instrumentation scope.
fn group(spans: Vec<Neutral>, parse_string_tags: bool) -> Vec<ResourceSpans> {
    let mut by_service: BTreeMap<String, BTreeMap<(String, String), Vec<Span>>> = BTreeMap::new();
    for mut n in spans {
        let scope_name = n
            .tags
            .remove("otel.scope.name")
            .or_else(|| n.tags.remove("otel.library.name"))
            .unwrap_or_default();
        let scope_version = n
            .tags
            .remove("otel.scope.version")
            .or_else(|| n.tags.remove("otel.library.version"))
            .unwrap_or_default();
        n.tags.remove("otel.library.name");
        n.tags.remove("otel.library.version");
        let status = match n.tags.remove("otel.status_code").as_deref() {
            Some(c) => {
                let code = match c.to_ascii_uppercase().as_str() {
                    "OK" => StatusCode::Ok,
                    "ERROR" => StatusCode::Error,
                    _ => StatusCode::Unset,
                };
                let error = n
                    .tags
                    .remove("error")
                    .filter(|e| !e.is_empty() && e != "true");
                Some(Status {
                    code: code as i32,
                    message: n
                        .tags
                        .remove("otel.status_description")
                        .or(error)
                        .unwrap_or_default(),
                })
            }
            None => n.tags.remove("error").map(|e| Status {
                code: StatusCode::Error as i32,
                message: if e.is_empty() || e == "true" {
                    n.tags.remove("otel.status_description").unwrap_or_default()
                } else {
                    e
                },
            }),
        };
        if n.tags.get("service.name") == Some(&n.local.service) {
            n.tags.remove("service.name");
        }
        let mut attributes: Vec<KeyValue> = Vec::with_capacity(n.tags.len() + 5);
        if !n.local.ip.is_empty() {
            attributes.push(string("net.host.ip", &n.local.ip));
        }
        if n.local.port != 0 {
            attributes.push(kv(
                "net.host.port",
                any_value::Value::IntValue(n.local.port.into()),
            ));
        }
        if !n.remote.service.is_empty() {
            attributes.push(string("peer.service", &n.remote.service));
        }
        if !n.remote.ip.is_empty() {
            attributes.push(string("net.peer.ip", &n.remote.ip));
        }
        if n.remote.port != 0 {
            attributes.push(kv(
                "net.peer.port",
                any_value::Value::IntValue(n.remote.port.into()),
            ));
        }
        for (k, v) in n.tags {
            attributes.push(kv(&k, tag_value(v, parse_string_tags)));
        }
        let start = n.timestamp_us.saturating_mul(1000);
        let span = Span {
            trace_id: n.trace_id,
            span_id: n.id,
            parent_span_id: n.parent_id,
            name: n.name,
            kind: n.kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start.saturating_add(n.duration_us.saturating_mul(1000)),
            attributes,
            events: n
                .annotations
                .into_iter()
                .map(|(ts, value)| {
                    let (name, attributes) = event_of(value);
                    Event {
                        time_unix_nano: ts.saturating_mul(1000),
                        name,
                        attributes,
                        ..Event::default()
                    }
                })
                .collect(),
            status,
            ..Span::default()
        };
        by_service
            .entry(n.local.service)
            .or_default()
            .entry((scope_name, scope_version))
            .or_default()
            .push(span);
    }
    by_service
        .into_iter()
        .map(|(service, scopes)| ResourceSpans {
            resource: Some(Resource {
                attributes: if service.is_empty() {
                    Vec::new()
                } else {
                    vec![string("service.name", &service)]
                },
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
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vivace_proto::otlp::common::AnyValue;

    fn one(json: &str, parse: bool) -> (ResourceSpans, Span) {
        let spans: Vec<JsonSpan> = serde_json::from_str(json).unwrap();
        let mut rs = from_json(spans, parse).unwrap();
        assert_eq!(rs.len(), 1);
        let r = rs.remove(0);
        let s = r.scope_spans[0].spans[0].clone();
        (r, s)
    }

    fn attr<'a>(s: &'a Span, k: &str) -> Option<&'a any_value::Value> {
        s.attributes
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| a.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    #[test]
    fn every_mapping_rule() {
        let (r, s) = one(
            r#"[{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","parentId":"0020000000000001",
                "name":"get /api","kind":"SERVER","timestamp":1472470996199000,"duration":207000,
                "localEndpoint":{"serviceName":"backend","ipv4":"192.168.99.101","port":9000},
                "remoteEndpoint":{"serviceName":"frontend","ipv6":"2001:db8::c001","port":63941},
                "annotations":[{"timestamp":1472470996238000,"value":"foo"}],
                "tags":{"http.method":"GET","http.status_code":"500","error":"boom",
                        "otel.library.name":"lib","otel.library.version":"1.2"},
                "debug":true,"shared":true}]"#,
            false,
        );
        let svc = &r.resource.as_ref().unwrap().attributes[0];
        assert_eq!(svc.key, "service.name");
        assert_eq!(r.scope_spans[0].scope.as_ref().unwrap().name, "lib");
        assert_eq!(r.scope_spans[0].scope.as_ref().unwrap().version, "1.2");
        assert_eq!(
            s.trace_id,
            hex::decode("0000000000000000463ac35c9f6413ad").unwrap()
        );
        assert_eq!(s.span_id, hex::decode("a2fb4a1d1a96d312").unwrap());
        assert_eq!(s.parent_span_id, hex::decode("0020000000000001").unwrap());
        assert_eq!(s.kind, SpanKind::Server as i32);
        assert_eq!(s.start_time_unix_nano, 1_472_470_996_199_000_000);
        assert_eq!(s.end_time_unix_nano - s.start_time_unix_nano, 207_000_000);
        assert_eq!(s.events[0].name, "foo");
        assert_eq!(s.events[0].time_unix_nano, 1_472_470_996_238_000_000);
        let st = s.status.as_ref().unwrap();
        assert_eq!(
            (st.code, st.message.as_str()),
            (StatusCode::Error as i32, "boom")
        );
        assert!(attr(&s, "error").is_none() && attr(&s, "otel.library.name").is_none());
        let sv = |k| match attr(&s, k) {
            Some(any_value::Value::StringValue(v)) => v.clone(),
            other => panic!("{k}: {other:?}"),
        };
        assert_eq!(sv("net.host.ip"), "192.168.99.101");
        assert_eq!(
            attr(&s, "net.host.port"),
            Some(&any_value::Value::IntValue(9000))
        );
        assert_eq!(sv("peer.service"), "frontend");
        assert_eq!(sv("net.peer.ip"), "2001:db8::c001");
        assert_eq!(sv("http.status_code"), "500", "tags stay strings");
        // parse_string_tags types them; otel.status_code wins over error.
        let (_, s) = one(
            r#"[{"traceId":"0af7651916cd43dd8448eb211c80319c","id":"b7ad6b7169203331",
                "tags":{"n":"500","f":"1.5","b":"true","otel.status_code":"OK","error":"x"}}]"#,
            true,
        );
        assert_eq!(attr(&s, "n"), Some(&any_value::Value::IntValue(500)));
        assert_eq!(attr(&s, "f"), Some(&any_value::Value::DoubleValue(1.5)));
        assert_eq!(attr(&s, "b"), Some(&any_value::Value::BoolValue(true)));
        assert_eq!(s.status.as_ref().unwrap().code, StatusCode::Ok as i32);
        assert_eq!(s.kind, SpanKind::Internal as i32, "no kind is internal");
        assert_eq!(s.trace_id.len(), 16);
        assert!(s.parent_span_id.is_empty());
    }

    #[test]
    fn opentelemetry_event_annotations_keep_name_and_attributes() {
        let (_, s) = one(
            r#"[{"traceId":"0af7651916cd43dd","id":"b7ad6b7169203331","localEndpoint":{"serviceName":"a"},
                "tags":{"service.name":"a","otel.status_code":"ERROR","error":"timeout"},
                "annotations":[{"timestamp":5,"value":"{\"cache miss\": {\"key\": \"k0\", \"n\": 2}}"}]}]"#,
            false,
        );
        assert_eq!(s.events[0].name, "cache miss");
        assert_eq!(s.events[0].attributes.len(), 2);
        assert_eq!(s.status.as_ref().unwrap().message, "timeout");
        assert!(
            attr(&s, "service.name").is_none(),
            "redundant with the resource"
        );
    }

    #[test]
    fn v1_spans_become_v2_as_zipkin_converts_them() {
        let v1: Vec<V1Span> = serde_json::from_str(
            r#"[{"traceId":"0af7651916cd43dd","id":"b7ad6b7169203331","name":"get",
                "annotations":[
                  {"timestamp":100,"value":"cs","endpoint":{"serviceName":"front","ipv4":"10.0.0.1"}},
                  {"timestamp":110,"value":"sr","endpoint":{"serviceName":"back"}},
                  {"timestamp":150,"value":"retry"},
                  {"timestamp":190,"value":"ss","endpoint":{"serviceName":"back"}},
                  {"timestamp":200,"value":"cr","endpoint":{"serviceName":"front"}}],
                "binaryAnnotations":[
                  {"key":"http.path","value":"/a","endpoint":{"serviceName":"front"}},
                  {"key":"ok","value":true},
                  {"key":"sa","value":true,"endpoint":{"serviceName":"db","port":5432}}]}]"#,
        )
        .unwrap();
        let rs = from_json(v1_to_v2(v1), false).unwrap();
        let spans: Vec<(&str, &Span)> = rs
            .iter()
            .map(|r| {
                let svc = match &r.resource.as_ref().unwrap().attributes[0].value {
                    Some(AnyValue {
                        value: Some(any_value::Value::StringValue(s)),
                    }) => s.as_str(),
                    _ => "",
                };
                (svc, &r.scope_spans[0].spans[0])
            })
            .collect();
        assert_eq!(spans.len(), 2, "a shared v1 span is two spans");
        let (svc, client) = spans
            .iter()
            .find(|(_, s)| s.kind == SpanKind::Client as i32)
            .unwrap();
        assert_eq!(*svc, "front");
        assert_eq!(
            (client.start_time_unix_nano, client.end_time_unix_nano),
            (100_000, 200_000)
        );
        assert_eq!(client.events[0].name, "retry");
        assert_eq!(
            attr(client, "ok"),
            Some(&any_value::Value::StringValue("true".into()))
        );
        assert_eq!(
            attr(client, "peer.service"),
            Some(&any_value::Value::StringValue("db".into()))
        );
        let (svc, server) = spans
            .iter()
            .find(|(_, s)| s.kind == SpanKind::Server as i32)
            .unwrap();
        assert_eq!(*svc, "back");
        assert_eq!(
            (server.start_time_unix_nano, server.end_time_unix_nano),
            (110_000, 190_000)
        );
        assert_eq!(
            server.span_id, client.span_id,
            "shared span ID, told apart by kind"
        );
    }

    #[test]
    fn v1_thrift_spans_decode() {
        // list<Span> of one span: trace_id 1, name "get", id 2, one "cs" annotation with an
        // endpoint (10.0.0.1:80 "front"), one STRING binary annotation, timestamp 100.
        let mut b = vec![12u8];
        b.extend_from_slice(&1i32.to_be_bytes());
        let field = |b: &mut Vec<u8>, t: u8, id: i16| {
            b.push(t);
            b.extend_from_slice(&id.to_be_bytes());
        };
        let string = |b: &mut Vec<u8>, s: &[u8]| {
            b.extend_from_slice(&(s.len() as i32).to_be_bytes());
            b.extend_from_slice(s);
        };
        field(&mut b, 10, 1);
        b.extend_from_slice(&1i64.to_be_bytes());
        field(&mut b, 11, 3);
        string(&mut b, b"get");
        field(&mut b, 10, 4);
        b.extend_from_slice(&2i64.to_be_bytes());
        field(&mut b, 15, 6);
        b.push(12);
        b.extend_from_slice(&1i32.to_be_bytes());
        field(&mut b, 10, 1);
        b.extend_from_slice(&100i64.to_be_bytes());
        field(&mut b, 11, 2);
        string(&mut b, b"cs");
        field(&mut b, 12, 3);
        field(&mut b, 8, 1);
        b.extend_from_slice(&0x0a00_0001i32.to_be_bytes());
        field(&mut b, 6, 2);
        b.extend_from_slice(&80i16.to_be_bytes());
        field(&mut b, 11, 3);
        string(&mut b, b"front");
        b.push(0); // endpoint
        b.push(0); // annotation
        field(&mut b, 15, 8);
        b.push(12);
        b.extend_from_slice(&1i32.to_be_bytes());
        field(&mut b, 11, 1);
        string(&mut b, b"http.path");
        field(&mut b, 11, 2);
        string(&mut b, b"/a");
        field(&mut b, 8, 3);
        b.extend_from_slice(&6i32.to_be_bytes());
        b.push(0); // binary annotation
        field(&mut b, 10, 10);
        b.extend_from_slice(&100i64.to_be_bytes());
        b.push(0); // span
        let list =
            crate::translate::thrift::read_list(&b, crate::translate::thrift::Protocol::Binary)
                .unwrap();
        let v1 = v1_from_thrift(&list).unwrap();
        assert_eq!(v1[0].trace_id, "0000000000000001");
        assert_eq!(v1[0].id, "0000000000000002");
        let rs = from_json(v1_to_v2(v1), false).unwrap();
        let s = &rs[0].scope_spans[0].spans[0];
        assert_eq!(s.kind, SpanKind::Client as i32);
        assert_eq!(s.name, "get");
        assert_eq!(
            attr(s, "http.path"),
            Some(&any_value::Value::StringValue("/a".into()))
        );
        assert_eq!(
            attr(s, "net.host.ip"),
            Some(&any_value::Value::StringValue("10.0.0.1".into()))
        );
    }

    #[test]
    fn bad_ids_are_refused() {
        for bad in [
            r#"[{"traceId":"xyz","id":"b7ad6b7169203331"}]"#,
            r#"[{"traceId":"0af7651916cd43dd","id":""}]"#,
            r#"[{"traceId":"0af7651916cd43dd","id":"b7ad6b71692033310"}]"#,
        ] {
            let spans: Vec<JsonSpan> = serde_json::from_str(bad).unwrap();
            assert!(from_json(spans, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn protobuf_spans_translate_the_same() {
        let list = proto::ListOfSpans {
            spans: vec![proto::Span {
                trace_id: vec![1; 16],
                id: vec![2; 8],
                kind: 1,
                name: "call".into(),
                timestamp: 10,
                duration: 5,
                local_endpoint: Some(proto::Endpoint {
                    service_name: "svc".into(),
                    ipv4: vec![10, 0, 0, 1],
                    ..proto::Endpoint::default()
                }),
                ..proto::Span::default()
            }],
        };
        let rs = from_proto(list, false).unwrap();
        let s = &rs[0].scope_spans[0].spans[0];
        assert_eq!(s.kind, SpanKind::Client as i32);
        assert_eq!(
            (s.start_time_unix_nano, s.end_time_unix_nano),
            (10_000, 15_000)
        );
        assert_eq!(
            attr(s, "net.host.ip"),
            Some(&any_value::Value::StringValue("10.0.0.1".into()))
        );
    }
}
