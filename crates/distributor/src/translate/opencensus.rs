//! OpenCensus agent export requests into OTLP, as the OpenTelemetry Collector's OpenCensus
//! receiver translates them.
//!
//! | OpenCensus | OTLP |
//! |---|---|
//! | `node.service_info.name` | resource `service.name` |
//! | `node.identifier.host_name`, `.pid` | resource `host.name`, `process.pid` |
//! | `node.library_info.language`, `.core_library_version`, `.exporter_version` | resource `telemetry.sdk.language` (lowercase, `go`, `nodejs`, `cpp`, …), `telemetry.sdk.version`, `opencensus.exporterversion` |
//! | `node.attributes`, `resource.labels` | resource attributes (strings) |
//! | `resource.type` | resource `opencensus.resourcetype` |
//! | a span's own `resource` | its own resource (else the request's; a stream's later requests without `node` keep the last one) |
//! | `trace_id`, `span_id`, `parent_span_id`, `tracestate` | the same (trace state as `k=v,k2=v2`) |
//! | `name.value` | name |
//! | `kind` `SERVER`/`CLIENT`; unspecified with attribute `span.kind` (`server`, `client`, `producer`, `consumer`) | kind (the attribute removed); else unspecified |
//! | `start_time`, `end_time` | start, end |
//! | `attributes` (string, int, bool, double) | attributes of that type |
//! | `time_events`: annotation | event: name = description, attributes |
//! | `time_events`: message event | event `message`, attributes `message.type` (`SENT`/`RECEIVED`), `message.id`, `message.uncompressed_size`, `message.compressed_size` |
//! | `links` | links with their attributes; the type as attribute `opencensus.link.type` |
//! | `status` `{code, message}` | absent: unset; code 0: OK; other codes: ERROR, message kept |
//! | `same_process_as_parent_span` false, `child_span_count` | attributes `opencensus.same_process_as_parent_span`, `opencensus.child_span_count` |
//! | `stack_trace` | not kept |

use super::{kv, string};
use vivace_proto::opencensus::{
    AttributeValue, ExportTraceServiceRequest, Node, Resource as OcResource, attribute_value, span,
};
use vivace_proto::otlp::common::{KeyValue, any_value};
use vivace_proto::otlp::resource::Resource;
use vivace_proto::otlp::trace::span::{Event, Link, SpanKind};
use vivace_proto::otlp::trace::status::StatusCode;
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status};

fn ns(t: &Option<prost_types::Timestamp>) -> u64 {
    t.as_ref().map_or(0, |t| {
        (t.seconds.max(0) as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(t.nanos.max(0) as u64)
    })
}

fn resource_attributes(node: Option<&Node>, resource: Option<&OcResource>) -> Vec<KeyValue> {
    let mut out = Vec::new();
    if let Some(n) = node {
        if let Some(s) = &n.service_info
            && !s.name.is_empty()
        {
            out.push(string("service.name", &s.name));
        }
        if let Some(id) = &n.identifier {
            if !id.host_name.is_empty() {
                out.push(string("host.name", &id.host_name));
            }
            if id.pid != 0 {
                out.push(kv("process.pid", any_value::Value::IntValue(id.pid.into())));
            }
        }
        if let Some(l) = &n.library_info {
            let lang = match l.language {
                1 => "cpp",
                2 => "dotnet",
                3 => "erlang",
                4 => "go",
                5 => "java",
                6 => "nodejs",
                7 => "php",
                8 => "python",
                9 => "ruby",
                _ => "",
            };
            if !lang.is_empty() {
                out.push(string("telemetry.sdk.language", lang));
            }
            if !l.core_library_version.is_empty() {
                out.push(string("telemetry.sdk.version", &l.core_library_version));
            }
            if !l.exporter_version.is_empty() {
                out.push(string("opencensus.exporterversion", &l.exporter_version));
            }
        }
        let mut attrs: Vec<_> = n.attributes.iter().collect();
        attrs.sort();
        out.extend(attrs.into_iter().map(|(k, v)| string(k, v)));
    }
    if let Some(r) = resource {
        if !r.r#type.is_empty() {
            out.push(string("opencensus.resourcetype", &r.r#type));
        }
        let mut labels: Vec<_> = r.labels.iter().collect();
        labels.sort();
        out.extend(labels.into_iter().map(|(k, v)| string(k, v)));
    }
    out
}

fn value(v: &AttributeValue) -> any_value::Value {
    match &v.value {
        Some(attribute_value::Value::StringValue(s)) => {
            any_value::Value::StringValue(s.value.clone())
        }
        Some(attribute_value::Value::IntValue(i)) => any_value::Value::IntValue(*i),
        Some(attribute_value::Value::BoolValue(b)) => any_value::Value::BoolValue(*b),
        Some(attribute_value::Value::DoubleValue(d)) => any_value::Value::DoubleValue(*d),
        None => any_value::Value::StringValue(String::new()),
    }
}

fn attributes(a: Option<&span::Attributes>) -> Vec<KeyValue> {
    let mut v: Vec<(&String, &AttributeValue)> = a
        .map(|a| a.attribute_map.iter().collect())
        .unwrap_or_default();
    v.sort_by(|x, y| x.0.cmp(y.0));
    v.into_iter().map(|(k, val)| kv(k, value(val))).collect()
}

fn check_id(b: &[u8], len: usize, what: &str, optional: bool) -> Result<(), String> {
    if (optional && b.is_empty()) || (b.len() == len && b.iter().any(|x| *x != 0)) {
        Ok(())
    } else {
        Err(format!("invalid {what}: {} bytes", b.len()))
    }
}

/// Translates one request; `last_node` is the node a stream's earlier request named (a request
/// without `node` keeps it), updated from this one.
pub fn to_otlp(
    req: ExportTraceServiceRequest,
    last: &mut (Option<Node>, Option<OcResource>),
) -> Result<Vec<ResourceSpans>, String> {
    if req.node.is_some() {
        last.0 = req.node;
        last.1 = req.resource;
    } else if req.resource.is_some() {
        last.1 = req.resource;
    }
    let default_resource = resource_attributes(last.0.as_ref(), last.1.as_ref());
    let mut out: Vec<ResourceSpans> = Vec::new();
    let mut shared: Vec<Span> = Vec::new();
    for s in req.spans {
        check_id(&s.trace_id, 16, "trace_id", false)?;
        check_id(&s.span_id, 8, "span_id", false)?;
        check_id(&s.parent_span_id, 8, "parent_span_id", true)?;
        let mut attrs = attributes(s.attributes.as_ref());
        let mut kind = match s.kind {
            1 => SpanKind::Server,
            2 => SpanKind::Client,
            _ => SpanKind::Unspecified,
        };
        if kind == SpanKind::Unspecified
            && let Some(i) = attrs.iter().position(|a| a.key == "span.kind")
        {
            let k = match &attrs[i].value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.to_ascii_lowercase(),
                _ => String::new(),
            };
            kind = match k.as_str() {
                "server" => SpanKind::Server,
                "client" => SpanKind::Client,
                "producer" => SpanKind::Producer,
                "consumer" => SpanKind::Consumer,
                _ => SpanKind::Unspecified,
            };
            if kind != SpanKind::Unspecified {
                attrs.remove(i);
            }
        }
        if s.same_process_as_parent_span == Some(false) {
            attrs.push(kv(
                "opencensus.same_process_as_parent_span",
                any_value::Value::BoolValue(false),
            ));
        }
        if let Some(c) = s.child_span_count {
            attrs.push(kv(
                "opencensus.child_span_count",
                any_value::Value::IntValue(c.into()),
            ));
        }
        let events = s
            .time_events
            .map(|t| t.time_event)
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                let time_unix_nano = ns(&e.time);
                match e.value {
                    Some(span::time_event::Value::Annotation(a)) => Event {
                        time_unix_nano,
                        name: a.description.map(|d| d.value).unwrap_or_default(),
                        attributes: attributes(a.attributes.as_ref()),
                        ..Event::default()
                    },
                    Some(span::time_event::Value::MessageEvent(m)) => Event {
                        time_unix_nano,
                        name: "message".into(),
                        attributes: vec![
                            string(
                                "message.type",
                                match m.r#type {
                                    1 => "SENT",
                                    2 => "RECEIVED",
                                    _ => "TYPE_UNSPECIFIED",
                                },
                            ),
                            kv("message.id", any_value::Value::IntValue(m.id as i64)),
                            kv(
                                "message.uncompressed_size",
                                any_value::Value::IntValue(m.uncompressed_size as i64),
                            ),
                            kv(
                                "message.compressed_size",
                                any_value::Value::IntValue(m.compressed_size as i64),
                            ),
                        ],
                        ..Event::default()
                    },
                    None => Event {
                        time_unix_nano,
                        ..Event::default()
                    },
                }
            })
            .collect();
        let links = s
            .links
            .map(|l| l.link)
            .unwrap_or_default()
            .into_iter()
            .map(|l| {
                let mut attributes = attributes(l.attributes.as_ref());
                let t = match l.r#type {
                    1 => "CHILD_LINKED_SPAN",
                    2 => "PARENT_LINKED_SPAN",
                    _ => "",
                };
                if !t.is_empty() {
                    attributes.push(string("opencensus.link.type", t));
                }
                Link {
                    trace_id: l.trace_id,
                    span_id: l.span_id,
                    attributes,
                    ..Link::default()
                }
            })
            .collect();
        let status = s.status.map(|st| Status {
            code: if st.code == 0 {
                StatusCode::Ok as i32
            } else {
                StatusCode::Error as i32
            },
            message: st.message,
        });
        let trace_state = s
            .tracestate
            .map(|t| {
                t.entries
                    .iter()
                    .map(|e| format!("{}={}", e.key, e.value))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let span = Span {
            trace_id: s.trace_id,
            span_id: s.span_id,
            parent_span_id: s.parent_span_id,
            trace_state,
            name: s.name.map(|n| n.value).unwrap_or_default(),
            kind: kind as i32,
            start_time_unix_nano: ns(&s.start_time),
            end_time_unix_nano: ns(&s.end_time),
            attributes: attrs,
            events,
            links,
            status,
            ..Span::default()
        };
        match s.resource {
            Some(r) => out.push(ResourceSpans {
                resource: Some(Resource {
                    attributes: resource_attributes(last.0.as_ref(), Some(&r)),
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }),
            None => shared.push(span),
        }
    }
    if !shared.is_empty() {
        out.insert(
            0,
            ResourceSpans {
                resource: Some(Resource {
                    attributes: default_resource,
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: shared,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vivace_proto::opencensus::{
        LibraryInfo, ProcessIdentifier, ServiceInfo, Status as OcStatus, TruncatableString,
    };

    fn ts(s: i64, n: i32) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp {
            seconds: s,
            nanos: n,
        })
    }

    #[test]
    fn every_mapping_rule() {
        let mut attrs = span::Attributes::default();
        attrs.attribute_map.insert(
            "span.kind".into(),
            AttributeValue {
                value: Some(attribute_value::Value::StringValue(TruncatableString {
                    value: "producer".into(),
                    truncated_byte_count: 0,
                })),
            },
        );
        attrs.attribute_map.insert(
            "n".into(),
            AttributeValue {
                value: Some(attribute_value::Value::IntValue(7)),
            },
        );
        let s = vivace_proto::opencensus::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: Some(TruncatableString {
                value: "op".into(),
                truncated_byte_count: 0,
            }),
            start_time: ts(10, 5),
            end_time: ts(11, 0),
            attributes: Some(attrs),
            status: Some(OcStatus {
                code: 5,
                message: "nope".into(),
            }),
            time_events: Some(span::TimeEvents {
                time_event: vec![span::TimeEvent {
                    time: ts(10, 500),
                    value: Some(span::time_event::Value::Annotation(
                        span::time_event::Annotation {
                            description: Some(TruncatableString {
                                value: "cache miss".into(),
                                truncated_byte_count: 0,
                            }),
                            attributes: None,
                        },
                    )),
                }],
                ..Default::default()
            }),
            same_process_as_parent_span: Some(false),
            ..Default::default()
        };
        let req = ExportTraceServiceRequest {
            node: Some(Node {
                identifier: Some(ProcessIdentifier {
                    host_name: "h".into(),
                    pid: 42,
                    start_timestamp: None,
                }),
                library_info: Some(LibraryInfo {
                    language: 8,
                    exporter_version: "0.7.1".into(),
                    core_library_version: "0.11.4".into(),
                }),
                service_info: Some(ServiceInfo { name: "svc".into() }),
                attributes: Default::default(),
            }),
            spans: vec![s.clone()],
            resource: None,
        };
        let mut last = (None, None);
        let rs = to_otlp(req, &mut last).unwrap();
        let res = &rs[0].resource.as_ref().unwrap().attributes;
        let keys: Vec<&str> = res.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "service.name",
                "host.name",
                "process.pid",
                "telemetry.sdk.language",
                "telemetry.sdk.version",
                "opencensus.exporterversion"
            ]
        );
        let sp = &rs[0].scope_spans[0].spans[0];
        assert_eq!(
            sp.kind,
            SpanKind::Producer as i32,
            "from the span.kind attribute"
        );
        assert_eq!(
            (sp.start_time_unix_nano, sp.end_time_unix_nano),
            (10_000_000_005, 11_000_000_000)
        );
        assert_eq!(sp.status.as_ref().unwrap().code, StatusCode::Error as i32);
        assert_eq!(sp.events[0].name, "cache miss");
        assert!(
            sp.attributes
                .iter()
                .any(|a| a.key == "opencensus.same_process_as_parent_span")
        );
        assert!(!sp.attributes.iter().any(|a| a.key == "span.kind"));
        // A later request on the stream without node keeps the node.
        let rs = to_otlp(
            ExportTraceServiceRequest {
                spans: vec![s],
                ..Default::default()
            },
            &mut last,
        )
        .unwrap();
        assert_eq!(
            rs[0].resource.as_ref().unwrap().attributes[0].key,
            "service.name"
        );
        // Bad IDs are refused.
        let bad = vivace_proto::opencensus::Span {
            trace_id: vec![0; 16],
            span_id: vec![1; 8],
            ..Default::default()
        };
        assert!(
            to_otlp(
                ExportTraceServiceRequest {
                    spans: vec![bad],
                    ..Default::default()
                },
                &mut last
            )
            .is_err()
        );
    }
}
