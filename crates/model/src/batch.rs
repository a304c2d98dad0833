//! OTLP traces into TraceQL's columnar [`SpanBatch`], the form the search evaluator reads.
//!
//! The mapping follows what Tempo stores and searches: OTLP `AnyValue` string, int, double and
//! bool become the matching types; homogeneous arrays become typed arrays (one element = a
//! scalar); kvlists, bytes, empty and mixed arrays are not searchable and are left out. Span
//! kind and status map to TraceQL's `kind` and `status`; the root span is the last one received
//! with no parent and no `child_of` link into its own trace.

use vivace_common::TraceId;
use vivace_proto::otlp::common::{AnyValue, KeyValue, any_value};
use vivace_proto::otlp::trace::Span;
use vivace_proto::tempopb::Trace;
use vivace_traceql::ast::StatusValue;
use vivace_traceql::batch::{
    AttrInput, BatchBuilder, SpanBatch, SpanInput, id8, id16, kind_of_otlp, status_of_otlp,
};

/// Builds a batch of the given traces.
pub fn batch_of<'a>(traces: impl IntoIterator<Item = (&'a TraceId, &'a Trace)>) -> SpanBatch {
    let mut bb = BatchBuilder::new();
    for (id, t) in traces {
        append_trace(&mut bb, id, t);
    }
    bb.finish()
}

/// Appends one trace to a batch being built.
pub fn append_trace(bb: &mut BatchBuilder, id: &TraceId, trace: &Trace) {
    bb.begin_trace(id.0);
    for rs in &trace.resource_spans {
        bb.begin_resource();
        if let Some(r) = &rs.resource {
            for kv in &r.attributes {
                if let Some(v) = kv.value.as_ref().and_then(input) {
                    bb.resource_attr(&kv.key, v);
                }
            }
        }
        for ss in &rs.scope_spans {
            let (name, version) = ss
                .scope
                .as_ref()
                .map_or(("", ""), |s| (s.name.as_str(), s.version.as_str()));
            bb.begin_scope(name, version);
            if let Some(s) = &ss.scope {
                for kv in &s.attributes {
                    if let Some(v) = kv.value.as_ref().and_then(input) {
                        bb.scope_attr(&kv.key, v);
                    }
                }
            }
            for s in &ss.spans {
                append_span(bb, id, s);
            }
        }
    }
    bb.end_trace();
}

fn append_span(bb: &mut BatchBuilder, trace_id: &TraceId, s: &Span) {
    let child_of_link = s.links.iter().any(|l| {
        l.trace_id == trace_id.0
            && l.attributes.iter().any(|kv| {
                kv.key == "opentracing.ref_type"
                    && matches!(
                        kv.value.as_ref().and_then(|v| v.value.as_ref()),
                        Some(any_value::Value::StringValue(t)) if t == "child_of"
                    )
            })
    });
    let (status, message) = match &s.status {
        Some(st) => (status_of_otlp(i64::from(st.code)), st.message.as_str()),
        None => (StatusValue::Unset, ""),
    };
    bb.span(&SpanInput {
        id: id8(&s.span_id),
        parent_id: id8(&s.parent_span_id),
        name: &s.name,
        kind: kind_of_otlp(i64::from(s.kind)),
        status,
        status_message: message,
        start_ns: s.start_time_unix_nano,
        end_ns: s.end_time_unix_nano.max(s.start_time_unix_nano),
        child_of_link,
    });
    attrs(&s.attributes, |k, v| bb.span_attr(k, v));
    for e in &s.events {
        bb.event(
            &e.name,
            e.time_unix_nano.saturating_sub(s.start_time_unix_nano),
        );
        attrs(&e.attributes, |k, v| bb.event_attr(k, v));
    }
    for l in &s.links {
        bb.link(id16(&l.trace_id), id8(&l.span_id));
        attrs(&l.attributes, |k, v| bb.link_attr(k, v));
    }
}

fn attrs(kvs: &[KeyValue], mut f: impl FnMut(&str, AttrInput<'_>)) {
    for kv in kvs {
        if let Some(v) = kv.value.as_ref().and_then(input) {
            f(&kv.key, v);
        }
    }
}

/// The searchable form of an OTLP value, if it has one.
fn input(v: &AnyValue) -> Option<AttrInput<'_>> {
    use any_value::Value as V;
    Some(match v.value.as_ref()? {
        V::StringValue(s) => AttrInput::Str(s),
        V::IntValue(i) => AttrInput::Int(*i),
        V::DoubleValue(f) => AttrInput::Float(*f),
        V::BoolValue(b) => AttrInput::Bool(*b),
        V::ArrayValue(a) => {
            let vals: Vec<&V> = a.values.iter().filter_map(|x| x.value.as_ref()).collect();
            if vals.is_empty() || vals.len() != a.values.len() {
                return None;
            }
            match vals[0] {
                V::StringValue(_) => AttrInput::StrArr(
                    vals.iter()
                        .map(|x| match x {
                            V::StringValue(s) => Some(s.as_str()),
                            _ => None,
                        })
                        .collect::<Option<Vec<_>>>()?,
                ),
                V::IntValue(_) => AttrInput::IntArr(
                    vals.iter()
                        .map(|x| match x {
                            V::IntValue(i) => Some(*i),
                            _ => None,
                        })
                        .collect::<Option<Vec<_>>>()?,
                ),
                V::DoubleValue(_) => AttrInput::FloatArr(
                    vals.iter()
                        .map(|x| match x {
                            V::DoubleValue(f) => Some(*f),
                            _ => None,
                        })
                        .collect::<Option<Vec<_>>>()?,
                ),
                V::BoolValue(_) => AttrInput::BoolArr(
                    vals.iter()
                        .map(|x| match x {
                            V::BoolValue(b) => Some(*b),
                            _ => None,
                        })
                        .collect::<Option<Vec<_>>>()?,
                ),
                _ => return None,
            }
        }
        _ => return None,
    })
}
