//! A zero-copy view of stored OTLP trace data, for shredding it into columns.
//!
//! The messages of `opentelemetry/proto/trace/v1/trace.proto` (and the common and resource
//! messages they embed) with the same field numbers, in which every `string` and `bytes` field is
//! a [`Bytes`]: decoded from a `Bytes` buffer, prost hands out slices of that buffer — no
//! allocation, no copy and no UTF-8 check per string (`string` and `bytes` share a wire type; the
//! text was checked when it was received). Cutting a block decodes what the live store holds
//! with these, and the columns keep the slices.
//!
//! Fields vivace does not store (`schema_url`, `flags`, `key_strindex`, `entity_refs`) are left
//! out and skipped when decoding. [`Trace`] is `tempopb.Trace` (= OTLP `TracesData`).

use prost::bytes::Bytes;

/// `tempopb.Trace` / OTLP `TracesData`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Trace {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "2")]
    pub dropped_attributes_count: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeSpans {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    #[prost(bytes = "bytes", tag = "1")]
    pub name: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub version: Bytes,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "4")]
    pub dropped_attributes_count: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Span {
    #[prost(bytes = "bytes", tag = "1")]
    pub trace_id: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub span_id: Bytes,
    #[prost(bytes = "bytes", tag = "3")]
    pub trace_state: Bytes,
    #[prost(bytes = "bytes", tag = "4")]
    pub parent_span_id: Bytes,
    #[prost(bytes = "bytes", tag = "5")]
    pub name: Bytes,
    /// `SpanKind`.
    #[prost(int32, tag = "6")]
    pub kind: i32,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "10")]
    pub dropped_attributes_count: u32,
    #[prost(message, repeated, tag = "11")]
    pub events: Vec<Event>,
    #[prost(uint32, tag = "12")]
    pub dropped_events_count: u32,
    #[prost(message, repeated, tag = "13")]
    pub links: Vec<Link>,
    #[prost(uint32, tag = "14")]
    pub dropped_links_count: u32,
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

/// `Span.Event`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    #[prost(bytes = "bytes", tag = "2")]
    pub name: Bytes,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "4")]
    pub dropped_attributes_count: u32,
}

/// `Span.Link`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Link {
    #[prost(bytes = "bytes", tag = "1")]
    pub trace_id: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub span_id: Bytes,
    #[prost(bytes = "bytes", tag = "3")]
    pub trace_state: Bytes,
    #[prost(message, repeated, tag = "4")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "5")]
    pub dropped_attributes_count: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(bytes = "bytes", tag = "2")]
    pub message: Bytes,
    /// `StatusCode`.
    #[prost(int32, tag = "3")]
    pub code: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
    pub value: Option<Value>,
}

/// `AnyValue.value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(bytes = "bytes", tag = "1")]
    StringValue(Bytes),
    #[prost(bool, tag = "2")]
    BoolValue(bool),
    #[prost(int64, tag = "3")]
    IntValue(i64),
    #[prost(double, tag = "4")]
    DoubleValue(f64),
    #[prost(message, tag = "5")]
    ArrayValue(ArrayValue),
    #[prost(message, tag = "6")]
    KvlistValue(KeyValueList),
    #[prost(bytes = "bytes", tag = "7")]
    BytesValue(Bytes),
    #[prost(int32, tag = "8")]
    StringValueStrindex(i32),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

impl Trace {
    /// The view of an OTLP trace (encoded and decoded again: for paths off the hot one).
    pub fn of(trace: &crate::tempopb::Trace) -> Trace {
        use prost::Message;
        // A message prost encoded always decodes.
        Trace::decode(Bytes::from(trace.encode_to_vec())).unwrap_or_default()
    }
}

impl AnyValue {
    /// The OTLP value this views (for the rare values stored as their OTLP JSON).
    pub fn to_otlp(&self) -> crate::otlp::common::AnyValue {
        use prost::Message;
        crate::otlp::common::AnyValue::decode(self.encode_to_vec().as_slice()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::otlp::common::{AnyValue as OAny, KeyValue as OKv, any_value::Value as OV};
    use crate::otlp::trace::{ResourceSpans as ORs, ScopeSpans as OSs, Span as OSpan, span};

    #[test]
    fn views_decode_otlp_as_slices_of_the_buffer() {
        let kv = |k: &str, v: OV| OKv {
            key: k.into(),
            value: Some(OAny { value: Some(v) }),
            ..Default::default()
        };
        let otlp = crate::tempopb::Trace {
            resource_spans: vec![ORs {
                resource: Some(crate::otlp::resource::Resource {
                    attributes: vec![kv("service.name", OV::StringValue("svc".into()))],
                    dropped_attributes_count: 2,
                    ..Default::default()
                }),
                scope_spans: vec![OSs {
                    spans: vec![OSpan {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        name: "GET /ü".into(),
                        kind: 2,
                        start_time_unix_nano: 7,
                        end_time_unix_nano: 9,
                        attributes: vec![kv("n", OV::IntValue(-3)), kv("d", OV::DoubleValue(1.5))],
                        events: vec![span::Event {
                            name: "ev".into(),
                            time_unix_nano: 8,
                            ..Default::default()
                        }],
                        status: Some(crate::otlp::trace::Status {
                            message: "boom".into(),
                            code: 2,
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let buf = Bytes::from(otlp.encode_to_vec());
        let view = Trace::decode(buf.clone()).unwrap();
        let rs = &view.resource_spans[0];
        let res = rs.resource.as_ref().unwrap();
        assert_eq!(res.dropped_attributes_count, 2);
        assert_eq!(&res.attributes[0].key[..], b"service.name");
        let s = &rs.scope_spans[0].spans[0];
        assert_eq!(&s.name[..], "GET /ü".as_bytes());
        assert_eq!(
            (s.kind, s.start_time_unix_nano, s.end_time_unix_nano),
            (2, 7, 9)
        );
        assert_eq!(
            s.attributes[0].value.as_ref().unwrap().value,
            Some(Value::IntValue(-3))
        );
        assert_eq!(&s.events[0].name[..], b"ev");
        assert_eq!(s.status.as_ref().map(|st| st.code), Some(2));
        // Zero copy: the name lies inside the buffer decoded.
        let within = buf.as_ptr_range();
        assert!(within.contains(&s.name.as_ptr()));
        // And back: the view re-encodes to the same bytes.
        assert_eq!(view.encode_to_vec(), buf.to_vec());
        assert_eq!(Trace::of(&otlp), view);
    }
}
