//! Request checks and reshaping on decoded messages: attribute truncation, ID validation,
//! regrouping by trace.
//!
//! The distributor works on the request's bytes ([`crate::request`]) and uses [`truncate`] only
//! for a part holding an over-long attribute; the rest is the plain message-based version that
//! the byte path is tested against.

#[cfg(test)]
use std::collections::HashMap;

#[cfg(test)]
use vivace_common::TraceId;
use vivace_proto::otlp::common::{KeyValue, any_value};
use vivace_proto::otlp::trace::Span;
#[cfg(test)]
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans};
#[cfg(test)]
use vivace_proto::tempopb::Trace;

/// A bad ID found in a request; the whole request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadId {
    TraceId { bits: usize },
    SpanId { bits: usize },
}

impl BadId {
    /// Tempo's message.
    pub(crate) fn message(&self) -> String {
        match self {
            BadId::TraceId { bits } => format!("trace ids must be 128 bit, received {bits} bits"),
            BadId::SpanId { bits } => {
                format!("span ids must be 64 bit and not all zero, received {bits} bits")
            }
        }
    }
}

#[cfg(test)]
/// Truncates attribute keys and string values longer than `max` bytes (at a UTF-8 boundary),
/// on resources, scopes, spans, events and links. Returns how many were truncated.
pub(crate) fn truncate_attributes(batches: &mut [ResourceSpans], max: usize) -> usize {
    if max == 0 {
        return 0;
    }
    let mut n = 0;
    for rs in batches {
        if let Some(r) = &mut rs.resource {
            n += truncate(&mut r.attributes, max);
        }
        for ss in &mut rs.scope_spans {
            if let Some(s) = &mut ss.scope {
                n += truncate(&mut s.attributes, max);
            }
            for span in &mut ss.spans {
                n += truncate_span(span, max);
            }
        }
    }
    n
}

/// [`truncate`] on a span's attributes and those of its events and links.
pub(crate) fn truncate_span(span: &mut Span, max: usize) -> usize {
    let mut n = truncate(&mut span.attributes, max);
    for e in &mut span.events {
        n += truncate(&mut e.attributes, max);
    }
    for l in &mut span.links {
        n += truncate(&mut l.attributes, max);
    }
    n
}

/// Truncates attribute keys and string values longer than `max` bytes at a UTF-8 boundary;
/// returns how many were.
pub(crate) fn truncate(attrs: &mut [KeyValue], max: usize) -> usize {
    let mut n = 0;
    for kv in attrs {
        if kv.key.len() > max {
            cut(&mut kv.key, max);
            n += 1;
        }
        if let Some(any_value::Value::StringValue(s)) =
            kv.value.as_mut().and_then(|v| v.value.as_mut())
            && s.len() > max
        {
            cut(s, max);
            n += 1;
        }
    }
    n
}

fn cut(s: &mut String, max: usize) {
    let mut at = max;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    s.truncate(at);
}

#[cfg(test)]
/// Checks every span's IDs: trace ID exactly 16 bytes, span ID exactly 8 bytes and not zero.
pub(crate) fn validate_ids(batches: &[ResourceSpans]) -> Result<usize, BadId> {
    let mut spans = 0;
    for rs in batches {
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                if s.trace_id.len() != 16 {
                    return Err(BadId::TraceId {
                        bits: s.trace_id.len() * 8,
                    });
                }
                if s.span_id.len() != 8 || s.span_id.iter().all(|b| *b == 0) {
                    return Err(BadId::SpanId {
                        bits: s.span_id.len() * 8,
                    });
                }
                spans += 1;
            }
        }
    }
    Ok(spans)
}

#[cfg(test)]
/// One trace's share of a request.
#[derive(Debug)]
pub(crate) struct TraceGroup {
    pub(crate) id: TraceId,
    pub(crate) trace: Trace,
    pub(crate) spans: usize,
    last_resource: usize,
    last_scope: usize,
}

#[cfg(test)]
/// Splits a request into one `Trace` per trace ID, keeping each span under a copy of its
/// resource and scope. IDs must have been validated. Groups come out in first-seen order.
pub(crate) fn group_by_trace(batches: Vec<ResourceSpans>) -> Vec<TraceGroup> {
    let mut groups: Vec<TraceGroup> = Vec::new();
    let mut index: HashMap<TraceId, usize> = HashMap::new();
    for (ri, rs) in batches.into_iter().enumerate() {
        let ResourceSpans {
            resource,
            scope_spans,
            schema_url,
        } = rs;
        for (si, ss) in scope_spans.into_iter().enumerate() {
            let ScopeSpans {
                scope,
                spans,
                schema_url: scope_schema,
            } = ss;
            for span in spans {
                let id = TraceId::from_slice(&span.trace_id).unwrap_or_default();
                let gi = *index.entry(id).or_insert_with(|| {
                    groups.push(TraceGroup {
                        id,
                        trace: Trace::default(),
                        spans: 0,
                        last_resource: usize::MAX,
                        last_scope: usize::MAX,
                    });
                    groups.len() - 1
                });
                let g = &mut groups[gi];
                if g.last_resource != ri {
                    g.trace.resource_spans.push(ResourceSpans {
                        resource: resource.clone(),
                        scope_spans: Vec::new(),
                        schema_url: schema_url.clone(),
                    });
                    g.last_resource = ri;
                    g.last_scope = usize::MAX;
                }
                let Some(rs) = g.trace.resource_spans.last_mut() else {
                    continue;
                };
                if g.last_scope != si {
                    rs.scope_spans.push(ScopeSpans {
                        scope: scope.clone(),
                        spans: Vec::new(),
                        schema_url: scope_schema.clone(),
                    });
                    g.last_scope = si;
                }
                if let Some(ss) = rs.scope_spans.last_mut() {
                    ss.spans.push(span);
                    g.spans += 1;
                }
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use vivace_proto::otlp::common::AnyValue;
    use vivace_proto::otlp::trace::Span;

    fn span(t: u8, s: u8) -> Span {
        Span {
            trace_id: vec![t; 16],
            span_id: vec![s; 8],
            ..Default::default()
        }
    }

    #[test]
    fn ids_are_checked() {
        let mut rs = ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span(1, 1)],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(validate_ids(std::slice::from_ref(&rs)), Ok(1));
        rs.scope_spans[0].spans.push(Span {
            trace_id: vec![1; 8],
            ..span(1, 2)
        });
        assert_eq!(
            validate_ids(std::slice::from_ref(&rs)),
            Err(BadId::TraceId { bits: 64 })
        );
        rs.scope_spans[0].spans[1] = span(1, 0);
        assert_eq!(
            validate_ids(std::slice::from_ref(&rs)),
            Err(BadId::SpanId { bits: 64 })
        );
        assert_eq!(
            BadId::TraceId { bits: 64 }.message(),
            "trace ids must be 128 bit, received 64 bits"
        );
    }

    #[test]
    fn regroups_per_trace_keeping_resource_and_scope() {
        let batches = vec![
            ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(1, 1), span(2, 1), span(1, 2)],
                    ..Default::default()
                }],
                ..Default::default()
            },
            ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(2, 2)],
                    ..Default::default()
                }],
                schema_url: "x".into(),
                ..Default::default()
            },
        ];
        let g = group_by_trace(batches);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].spans, 2);
        assert_eq!(g[0].trace.resource_spans.len(), 1);
        assert_eq!(g[1].trace.resource_spans.len(), 2);
        assert_eq!(g[1].trace.resource_spans[1].schema_url, "x");
    }

    #[test]
    fn truncation_respects_utf8() {
        let mut attrs = vec![KeyValue {
            key: "k".repeat(10),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("é".repeat(10))),
            }),
            ..Default::default()
        }];
        assert_eq!(truncate(&mut attrs, 5), 2);
        assert_eq!(attrs[0].key.len(), 5);
        let Some(any_value::Value::StringValue(s)) = &attrs[0].value.as_ref().unwrap().value else {
            panic!()
        };
        assert_eq!(s, "éé");
    }

    proptest::proptest! {
        /// Whatever bytes arrive, decoding then checking and regrouping never panics, and
        /// regrouping keeps every span exactly once.
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048), max in 0usize..64) {
            use prost::Message;
            if let Ok(req) = vivace_proto::otlp::collector::ExportTraceServiceRequest::decode(body.as_slice()) {
                let mut batches = req.resource_spans;
                truncate_attributes(&mut batches, max);
                if let Ok(n) = validate_ids(&batches) {
                    let groups = group_by_trace(batches);
                    proptest::prop_assert_eq!(groups.iter().map(|g| g.spans).sum::<usize>(), n);
                }
            }
        }

        /// Regrouping valid requests keeps each span once, under its own resource and scope.
        #[test]
        fn regrouping_keeps_every_span(shape in proptest::collection::vec((0u8..4, 0u8..3, 1u8..20), 1..60)) {
            let mut batches: Vec<ResourceSpans> = Vec::new();
            for (i, (trace, res, sid)) in shape.iter().enumerate() {
                while batches.len() <= *res as usize {
                    batches.push(ResourceSpans { schema_url: format!("r{}", batches.len()), ..Default::default() });
                }
                let rs = &mut batches[*res as usize];
                if rs.scope_spans.is_empty() {
                    rs.scope_spans.push(ScopeSpans::default());
                }
                let mut s = span(*trace, *sid);
                s.name = format!("{i}");
                rs.scope_spans[0].spans.push(s);
            }
            let groups = group_by_trace(batches);
            let mut seen: Vec<String> = Vec::new();
            for g in &groups {
                for rs in &g.trace.resource_spans {
                    for ss in &rs.scope_spans {
                        for s in &ss.spans {
                            proptest::prop_assert_eq!(&s.trace_id, &g.id.0.to_vec());
                            let (_, res, _) = shape[s.name.parse::<usize>().unwrap()];
                            proptest::prop_assert_eq!(&rs.schema_url, &format!("r{res}"));
                            seen.push(s.name.clone());
                        }
                    }
                }
            }
            seen.sort();
            let mut want: Vec<String> = (0..shape.len()).map(|i| i.to_string()).collect();
            want.sort();
            proptest::prop_assert_eq!(seen, want);
        }
    }
}
