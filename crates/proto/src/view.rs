//! A zero-copy view of stored OTLP trace data, for shredding it into columns.
//!
//! The messages of `opentelemetry/proto/trace/v1/trace.proto` (and the common and resource
//! messages they embed) with the same field numbers, in which every `string` and `bytes` field is
//! a slice of the buffer decoded: no allocation, no copy, no reference count and no UTF-8 check
//! per string (`string` and `bytes` share a wire type; the text was checked when it was
//! received). Cutting a block decodes what the live store holds with these, and ingest reads
//! span IDs through them.
//!
//! Decoded by hand rather than by prost: prost hands out `Bytes` for such fields, an atomic
//! increment per string on decoding and a decrement on dropping — with prost's generic field
//! machinery, a sixth of a cut (measured with `cut_blocks`). The decoder accepts what prost's
//! does and rejects what it rejects (the tests compare both on valid, truncated and corrupted
//! input): unknown fields and groups skipped, a known field with another wire type an error, a
//! non-repeated message given twice merged, the last of a oneof kept, messages nested at most
//! 100 deep.
//!
//! Fields vivace does not store (`schema_url`, `flags`, `key_strindex`, `entity_refs`) are left
//! out and skipped when decoding. [`Trace`] is `tempopb.Trace` (= OTLP `TracesData`).

use crate::otlp;

/// Why a buffer is not a valid encoding of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    what: &'static str,
    /// Offset of the byte where decoding stopped, in the buffer given.
    at: usize,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid protobuf at byte {}: {}", self.at, self.what)
    }
}

impl std::error::Error for DecodeError {}

/// How deep messages may nest (prost's recursion limit): arrays and lists of values nest.
const RECURSION_LIMIT: u32 = 100;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// A message's bytes being read: `buf[pos..]` is what is left; `base` is where `buf` starts in
/// the buffer given to [`Trace::decode`] (for errors).
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    /// Messages this one is nested in.
    depth: u32,
}

type Result<T> = std::result::Result<T, DecodeError>;

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            base: 0,
            depth: 0,
        }
    }

    #[cold]
    fn error(&self, what: &'static str) -> DecodeError {
        DecodeError {
            what,
            at: self.base + self.pos,
        }
    }

    fn more(&self) -> bool {
        self.pos < self.buf.len()
    }

    #[inline]
    fn varint(&mut self) -> Result<u64> {
        // One byte: most tags, lengths and small numbers.
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.error("truncated varint"));
            };
            self.pos += 1;
            // The tenth byte holds the 64th bit only.
            if shift == 63 && b > 1 {
                return Err(self.error("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.error("varint overflows 64 bits"))
    }

    /// The next field's number and wire type.
    #[inline]
    fn key(&mut self) -> Result<(u32, u8)> {
        let k = self.varint()?;
        if k > u64::from(u32::MAX) {
            return Err(self.error("invalid field key"));
        }
        let (field, wire) = ((k >> 3) as u32, (k & 7) as u8);
        if field == 0 {
            return Err(self.error("field number 0"));
        }
        Ok((field, wire))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(self.error("truncated field"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn expect(&self, wire: u8, want: u8) -> Result<()> {
        if wire == want {
            Ok(())
        } else {
            Err(self.error("field of an unexpected wire type"))
        }
    }

    /// A length-delimited field's bytes (a string, bytes or message).
    #[inline]
    fn bytes(&mut self, wire: u8) -> Result<&'a [u8]> {
        self.expect(wire, LEN)?;
        let n = self.varint()?;
        self.take(usize::try_from(n).map_err(|_| self.error("truncated field"))?)
    }

    /// A nested message's reader.
    fn message(&mut self, wire: u8) -> Result<Reader<'a>> {
        if self.depth >= RECURSION_LIMIT {
            return Err(self.error("messages nested too deep"));
        }
        let bytes = self.bytes(wire)?;
        Ok(Reader {
            buf: bytes,
            pos: 0,
            base: self.base + self.pos - bytes.len(),
            depth: self.depth + 1,
        })
    }

    /// The message that is the next field, merged by `merge` into a fresh value.
    fn decode<M: Default>(
        &mut self,
        wire: u8,
        merge: impl FnOnce(&mut M, Reader<'a>) -> Result<()>,
    ) -> Result<M> {
        let mut m = M::default();
        merge(&mut m, self.message(wire)?)?;
        Ok(m)
    }

    fn uint(&mut self, wire: u8) -> Result<u64> {
        self.expect(wire, VARINT)?;
        self.varint()
    }

    fn fixed64(&mut self, wire: u8) -> Result<u64> {
        self.expect(wire, FIXED64)?;
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// Skips a field this view does not keep.
    fn skip(&mut self, field: u32, wire: u8) -> Result<()> {
        if self.depth >= RECURSION_LIMIT {
            return Err(self.error("messages nested too deep"));
        }
        match wire {
            VARINT => {
                self.varint()?;
            }
            FIXED64 => {
                self.take(8)?;
            }
            LEN => {
                self.bytes(wire)?;
            }
            FIXED32 => {
                self.take(4)?;
            }
            START_GROUP => {
                self.depth += 1;
                loop {
                    if !self.more() {
                        return Err(self.error("unterminated group"));
                    }
                    let (f, w) = self.key()?;
                    if w == END_GROUP {
                        if f != field {
                            return Err(self.error("group ended by another field"));
                        }
                        break;
                    }
                    self.skip(f, w)?;
                }
                self.depth -= 1;
            }
            END_GROUP => return Err(self.error("group end without a start")),
            _ => return Err(self.error("invalid wire type")),
        }
        Ok(())
    }
}

/// Calls `f` with each field of the message `r` reads (number, wire type, the reader).
#[inline]
fn fields<'a>(
    mut r: Reader<'a>,
    mut f: impl FnMut(u32, u8, &mut Reader<'a>) -> Result<()>,
) -> Result<()> {
    while r.more() {
        let (field, wire) = r.key()?;
        f(field, wire, &mut r)?;
    }
    Ok(())
}

/// `tempopb.Trace` / OTLP `TracesData`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace<'a> {
    pub resource_spans: Vec<ResourceSpans<'a>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceSpans<'a> {
    pub resource: Option<Resource<'a>>,
    pub scope_spans: Vec<ScopeSpans<'a>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource<'a> {
    pub attributes: Vec<KeyValue<'a>>,
    pub dropped_attributes_count: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScopeSpans<'a> {
    pub scope: Option<InstrumentationScope<'a>>,
    pub spans: Vec<Span<'a>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstrumentationScope<'a> {
    pub name: &'a [u8],
    pub version: &'a [u8],
    pub attributes: Vec<KeyValue<'a>>,
    pub dropped_attributes_count: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Span<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub trace_state: &'a [u8],
    pub parent_span_id: &'a [u8],
    pub name: &'a [u8],
    /// `SpanKind`.
    pub kind: i32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub attributes: Vec<KeyValue<'a>>,
    pub dropped_attributes_count: u32,
    pub events: Vec<Event<'a>>,
    pub dropped_events_count: u32,
    pub links: Vec<Link<'a>>,
    pub dropped_links_count: u32,
    pub status: Option<Status<'a>>,
}

/// `Span.Event`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event<'a> {
    pub time_unix_nano: u64,
    pub name: &'a [u8],
    pub attributes: Vec<KeyValue<'a>>,
    pub dropped_attributes_count: u32,
}

/// `Span.Link`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Link<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub trace_state: &'a [u8],
    pub attributes: Vec<KeyValue<'a>>,
    pub dropped_attributes_count: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status<'a> {
    pub message: &'a [u8],
    /// `StatusCode`.
    pub code: i32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyValue<'a> {
    pub key: &'a [u8],
    pub value: Option<AnyValue<'a>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnyValue<'a> {
    pub value: Option<Value<'a>>,
}

/// `AnyValue.value`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    StringValue(&'a [u8]),
    BoolValue(bool),
    IntValue(i64),
    DoubleValue(f64),
    ArrayValue(ArrayValue<'a>),
    KvlistValue(KeyValueList<'a>),
    BytesValue(&'a [u8]),
    StringValueStrindex(i32),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArrayValue<'a> {
    pub values: Vec<AnyValue<'a>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyValueList<'a> {
    pub values: Vec<KeyValue<'a>>,
}

impl<'a> Trace<'a> {
    /// The view of an encoded `tempopb.Trace`: its strings are slices of `buf`.
    pub fn decode(buf: &'a [u8]) -> Result<Trace<'a>> {
        let mut t = Trace::default();
        fields(Reader::new(buf), |field, wire, r| match field {
            1 => {
                t.resource_spans.push(r.decode(wire, ResourceSpans::merge)?);
                Ok(())
            }
            _ => r.skip(field, wire),
        })?;
        Ok(t)
    }
}

impl<'a> ResourceSpans<'a> {
    fn merge(&mut self, r: Reader<'a>) -> Result<()> {
        fields(r, |field, wire, r| match field {
            1 => {
                let m = r.message(wire)?;
                self.resource.get_or_insert_default().merge(m)
            }
            2 => {
                self.scope_spans.push(r.decode(wire, ScopeSpans::merge)?);
                Ok(())
            }
            _ => r.skip(field, wire),
        })
    }
}

impl<'a> Resource<'a> {
    fn merge(&mut self, r: Reader<'a>) -> Result<()> {
        fields(r, |field, wire, r| {
            match field {
                1 => self.attributes.push(r.decode(wire, KeyValue::merge)?),
                2 => self.dropped_attributes_count = r.uint(wire)? as u32,
                _ => r.skip(field, wire)?,
            }
            Ok(())
        })
    }
}

impl<'a> ScopeSpans<'a> {
    fn merge(&mut self, r: Reader<'a>) -> Result<()> {
        fields(r, |field, wire, r| {
            match field {
                1 => {
                    let m = r.message(wire)?;
                    self.scope.get_or_insert_default().merge(m)?;
                }
                2 => self.spans.push(r.decode(wire, Span::merge)?),
                _ => r.skip(field, wire)?,
            }
            Ok(())
        })
    }
}

impl<'a> InstrumentationScope<'a> {
    fn merge(&mut self, r: Reader<'a>) -> Result<()> {
        fields(r, |field, wire, r| {
            match field {
                1 => self.name = r.bytes(wire)?,
                2 => self.version = r.bytes(wire)?,
                3 => self.attributes.push(r.decode(wire, KeyValue::merge)?),
                4 => self.dropped_attributes_count = r.uint(wire)? as u32,
                _ => r.skip(field, wire)?,
            }
            Ok(())
        })
    }
}

impl<'a> Span<'a> {
    fn merge(&mut self, r: Reader<'a>) -> Result<()> {
        fields(r, |field, wire, r| {
            match field {
                1 => self.trace_id = r.bytes(wire)?,
                2 => self.span_id = r.bytes(wire)?,
                3 => self.trace_state = r.bytes(wire)?,
                4 => self.parent_span_id = r.bytes(wire)?,
                5 => self.name = r.bytes(wire)?,
                6 => self.kind = r.uint(wire)? as i32,
                7 => self.start_time_unix_nano = r.fixed64(wire)?,
                8 => self.end_time_unix_nano = r.fixed64(wire)?,
                9 => self.attributes.push(r.decode(wire, KeyValue::merge)?),
                10 => self.dropped_attributes_count = r.uint(wire)? as u32,
                11 => self.events.push(r.decode(wire, Event::merge)?),
                12 => self.dropped_events_count = r.uint(wire)? as u32,
                13 => self.links.push(r.decode(wire, Link::merge)?),
                14 => self.dropped_links_count = r.uint(wire)? as u32,
                15 => {
                    let m = r.message(wire)?;
                    self.status.get_or_insert_default().merge(m)?;
                }
                _ => r.skip(field, wire)?,
            }
            Ok(())
        })
    }
}

impl<'a> Event<'a> {
    fn merge(&mut self, r: Reader<'a>) -> Result<()> {
        fields(r, |field, wire, r| {
            match field {
                1 => self.time_unix_nano = r.fixed64(wire)?,
                2 => self.name = r.bytes(wire)?,
                3 => self.attributes.push(r.decode(wire, KeyValue::merge)?),
                4 => self.dropped_attributes_count = r.uint(wire)? as u32,
                _ => r.skip(field, wire)?,
            }
            Ok(())
        })
    }
}

impl<'a> Link<'a> {
    fn merge(&mut self, r: Reader<'a>) -> Result<()> {
        fields(r, |field, wire, r| {
            match field {
                1 => self.trace_id = r.bytes(wire)?,
                2 => self.span_id = r.bytes(wire)?,
                3 => self.trace_state = r.bytes(wire)?,
                4 => self.attributes.push(r.decode(wire, KeyValue::merge)?),
                5 => self.dropped_attributes_count = r.uint(wire)? as u32,
                _ => r.skip(field, wire)?,
            }
            Ok(())
        })
    }
}

impl<'a> Status<'a> {
    fn merge(&mut self, r: Reader<'a>) -> Result<()> {
        fields(r, |field, wire, r| {
            match field {
                2 => self.message = r.bytes(wire)?,
                3 => self.code = r.uint(wire)? as i32,
                _ => r.skip(field, wire)?,
            }
            Ok(())
        })
    }
}

impl<'a> KeyValue<'a> {
    fn merge(&mut self, r: Reader<'a>) -> Result<()> {
        fields(r, |field, wire, r| {
            match field {
                1 => self.key = r.bytes(wire)?,
                2 => {
                    let m = r.message(wire)?;
                    self.value.get_or_insert_default().merge(m)?;
                }
                _ => r.skip(field, wire)?,
            }
            Ok(())
        })
    }
}

impl<'a> AnyValue<'a> {
    fn merge(&mut self, r: Reader<'a>) -> Result<()> {
        fields(r, |field, wire, r| {
            let v = match field {
                1 => Value::StringValue(r.bytes(wire)?),
                2 => Value::BoolValue(r.uint(wire)? != 0),
                3 => Value::IntValue(r.uint(wire)? as i64),
                4 => Value::DoubleValue(f64::from_bits(r.fixed64(wire)?)),
                // A message of the oneof given again merges into the one there.
                5 => {
                    let m = r.message(wire)?;
                    if let Some(Value::ArrayValue(a)) = &mut self.value {
                        return a.merge(m);
                    }
                    let mut a = ArrayValue::default();
                    a.merge(m)?;
                    Value::ArrayValue(a)
                }
                6 => {
                    let m = r.message(wire)?;
                    if let Some(Value::KvlistValue(l)) = &mut self.value {
                        return l.merge(m);
                    }
                    let mut l = KeyValueList::default();
                    l.merge(m)?;
                    Value::KvlistValue(l)
                }
                7 => Value::BytesValue(r.bytes(wire)?),
                8 => Value::StringValueStrindex(r.uint(wire)? as i32),
                _ => return r.skip(field, wire),
            };
            self.value = Some(v);
            Ok(())
        })
    }

    /// The OTLP value this views (for the rare values stored as their OTLP JSON).
    pub fn to_otlp(&self) -> otlp::common::AnyValue {
        use otlp::common::any_value::Value as V;
        let text = |s: &[u8]| String::from_utf8_lossy(s).into_owned();
        otlp::common::AnyValue {
            value: self.value.as_ref().map(|v| match v {
                Value::StringValue(s) => V::StringValue(text(s)),
                Value::BoolValue(b) => V::BoolValue(*b),
                Value::IntValue(i) => V::IntValue(*i),
                Value::DoubleValue(d) => V::DoubleValue(*d),
                Value::ArrayValue(a) => V::ArrayValue(otlp::common::ArrayValue {
                    values: a.values.iter().map(AnyValue::to_otlp).collect(),
                }),
                Value::KvlistValue(l) => V::KvlistValue(otlp::common::KeyValueList {
                    values: l
                        .values
                        .iter()
                        .map(|kv| otlp::common::KeyValue {
                            key: text(kv.key),
                            value: kv.value.as_ref().map(AnyValue::to_otlp),
                            ..Default::default()
                        })
                        .collect(),
                }),
                Value::BytesValue(b) => V::BytesValue(b.to_vec()),
                Value::StringValueStrindex(i) => V::StringValueStrindex(*i),
            }),
        }
    }
}

impl<'a> ArrayValue<'a> {
    fn merge(&mut self, r: Reader<'a>) -> Result<()> {
        fields(r, |field, wire, r| match field {
            1 => {
                self.values.push(r.decode(wire, AnyValue::merge)?);
                Ok(())
            }
            _ => r.skip(field, wire),
        })
    }
}

impl<'a> KeyValueList<'a> {
    fn merge(&mut self, r: Reader<'a>) -> Result<()> {
        fields(r, |field, wire, r| match field {
            1 => {
                self.values.push(r.decode(wire, KeyValue::merge)?);
                Ok(())
            }
            _ => r.skip(field, wire),
        })
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::otlp::common::{AnyValue as OAny, KeyValue as OKv, any_value::Value as OV};
    use crate::otlp::trace::{ResourceSpans as ORs, ScopeSpans as OSs, Span as OSpan, span};

    /// The view as prost decodes it: these messages with every string a `Bytes` (what vivace
    /// used before decoding by hand), the reference the hand decoder is held to.
    #[allow(clippy::enum_variant_names)] // OTLP's names
    mod reference {
        use prost::bytes::Bytes;

        /// `tempopb.Trace` / OTLP `TracesData`.
        #[derive(Clone, PartialEq, prost::Message)]
        pub(super) struct Trace {
            #[prost(message, repeated, tag = "1")]
            pub(super) resource_spans: Vec<ResourceSpans>,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub(super) struct ResourceSpans {
            #[prost(message, optional, tag = "1")]
            pub(super) resource: Option<Resource>,
            #[prost(message, repeated, tag = "2")]
            pub(super) scope_spans: Vec<ScopeSpans>,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub(super) struct Resource {
            #[prost(message, repeated, tag = "1")]
            pub(super) attributes: Vec<KeyValue>,
            #[prost(uint32, tag = "2")]
            pub(super) dropped_attributes_count: u32,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub(super) struct ScopeSpans {
            #[prost(message, optional, tag = "1")]
            pub(super) scope: Option<InstrumentationScope>,
            #[prost(message, repeated, tag = "2")]
            pub(super) spans: Vec<Span>,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub(super) struct InstrumentationScope {
            #[prost(bytes = "bytes", tag = "1")]
            pub(super) name: Bytes,
            #[prost(bytes = "bytes", tag = "2")]
            pub(super) version: Bytes,
            #[prost(message, repeated, tag = "3")]
            pub(super) attributes: Vec<KeyValue>,
            #[prost(uint32, tag = "4")]
            pub(super) dropped_attributes_count: u32,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub(super) struct Span {
            #[prost(bytes = "bytes", tag = "1")]
            pub(super) trace_id: Bytes,
            #[prost(bytes = "bytes", tag = "2")]
            pub(super) span_id: Bytes,
            #[prost(bytes = "bytes", tag = "3")]
            pub(super) trace_state: Bytes,
            #[prost(bytes = "bytes", tag = "4")]
            pub(super) parent_span_id: Bytes,
            #[prost(bytes = "bytes", tag = "5")]
            pub(super) name: Bytes,
            /// `SpanKind`.
            #[prost(int32, tag = "6")]
            pub(super) kind: i32,
            #[prost(fixed64, tag = "7")]
            pub(super) start_time_unix_nano: u64,
            #[prost(fixed64, tag = "8")]
            pub(super) end_time_unix_nano: u64,
            #[prost(message, repeated, tag = "9")]
            pub(super) attributes: Vec<KeyValue>,
            #[prost(uint32, tag = "10")]
            pub(super) dropped_attributes_count: u32,
            #[prost(message, repeated, tag = "11")]
            pub(super) events: Vec<Event>,
            #[prost(uint32, tag = "12")]
            pub(super) dropped_events_count: u32,
            #[prost(message, repeated, tag = "13")]
            pub(super) links: Vec<Link>,
            #[prost(uint32, tag = "14")]
            pub(super) dropped_links_count: u32,
            #[prost(message, optional, tag = "15")]
            pub(super) status: Option<Status>,
        }

        /// `Span.Event`.
        #[derive(Clone, PartialEq, prost::Message)]
        pub(super) struct Event {
            #[prost(fixed64, tag = "1")]
            pub(super) time_unix_nano: u64,
            #[prost(bytes = "bytes", tag = "2")]
            pub(super) name: Bytes,
            #[prost(message, repeated, tag = "3")]
            pub(super) attributes: Vec<KeyValue>,
            #[prost(uint32, tag = "4")]
            pub(super) dropped_attributes_count: u32,
        }

        /// `Span.Link`.
        #[derive(Clone, PartialEq, prost::Message)]
        pub(super) struct Link {
            #[prost(bytes = "bytes", tag = "1")]
            pub(super) trace_id: Bytes,
            #[prost(bytes = "bytes", tag = "2")]
            pub(super) span_id: Bytes,
            #[prost(bytes = "bytes", tag = "3")]
            pub(super) trace_state: Bytes,
            #[prost(message, repeated, tag = "4")]
            pub(super) attributes: Vec<KeyValue>,
            #[prost(uint32, tag = "5")]
            pub(super) dropped_attributes_count: u32,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub(super) struct Status {
            #[prost(bytes = "bytes", tag = "2")]
            pub(super) message: Bytes,
            /// `StatusCode`.
            #[prost(int32, tag = "3")]
            pub(super) code: i32,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub(super) struct KeyValue {
            #[prost(bytes = "bytes", tag = "1")]
            pub(super) key: Bytes,
            #[prost(message, optional, tag = "2")]
            pub(super) value: Option<AnyValue>,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub(super) struct AnyValue {
            #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
            pub(super) value: Option<Value>,
        }

        /// `AnyValue.value`.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub(super) enum Value {
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
        pub(super) struct ArrayValue {
            #[prost(message, repeated, tag = "1")]
            pub(super) values: Vec<AnyValue>,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub(super) struct KeyValueList {
            #[prost(message, repeated, tag = "1")]
            pub(super) values: Vec<KeyValue>,
        }
    }

    /// The view in the reference's types, to compare.
    fn as_reference(t: &Trace<'_>) -> reference::Trace {
        use prost::bytes::Bytes;
        let b = |s: &[u8]| Bytes::copy_from_slice(s);
        fn kvs(kvs: &[KeyValue<'_>]) -> Vec<reference::KeyValue> {
            kvs.iter()
                .map(|kv| reference::KeyValue {
                    key: prost::bytes::Bytes::copy_from_slice(kv.key),
                    value: kv.value.as_ref().map(any),
                })
                .collect()
        }
        fn any(v: &AnyValue<'_>) -> reference::AnyValue {
            use reference::Value as R;
            let b = |s: &[u8]| prost::bytes::Bytes::copy_from_slice(s);
            reference::AnyValue {
                value: v.value.as_ref().map(|v| match v {
                    Value::StringValue(s) => R::StringValue(b(s)),
                    Value::BoolValue(x) => R::BoolValue(*x),
                    Value::IntValue(x) => R::IntValue(*x),
                    Value::DoubleValue(x) => R::DoubleValue(*x),
                    Value::ArrayValue(a) => R::ArrayValue(reference::ArrayValue {
                        values: a.values.iter().map(any).collect(),
                    }),
                    Value::KvlistValue(l) => R::KvlistValue(reference::KeyValueList {
                        values: kvs(&l.values),
                    }),
                    Value::BytesValue(s) => R::BytesValue(b(s)),
                    Value::StringValueStrindex(x) => R::StringValueStrindex(*x),
                }),
            }
        }
        reference::Trace {
            resource_spans: t
                .resource_spans
                .iter()
                .map(|rs| reference::ResourceSpans {
                    resource: rs.resource.as_ref().map(|r| reference::Resource {
                        attributes: kvs(&r.attributes),
                        dropped_attributes_count: r.dropped_attributes_count,
                    }),
                    scope_spans: rs
                        .scope_spans
                        .iter()
                        .map(|ss| reference::ScopeSpans {
                            scope: ss.scope.as_ref().map(|s| reference::InstrumentationScope {
                                name: b(s.name),
                                version: b(s.version),
                                attributes: kvs(&s.attributes),
                                dropped_attributes_count: s.dropped_attributes_count,
                            }),
                            spans: ss
                                .spans
                                .iter()
                                .map(|s| reference::Span {
                                    trace_id: b(s.trace_id),
                                    span_id: b(s.span_id),
                                    trace_state: b(s.trace_state),
                                    parent_span_id: b(s.parent_span_id),
                                    name: b(s.name),
                                    kind: s.kind,
                                    start_time_unix_nano: s.start_time_unix_nano,
                                    end_time_unix_nano: s.end_time_unix_nano,
                                    attributes: kvs(&s.attributes),
                                    dropped_attributes_count: s.dropped_attributes_count,
                                    events: s
                                        .events
                                        .iter()
                                        .map(|e| reference::Event {
                                            time_unix_nano: e.time_unix_nano,
                                            name: b(e.name),
                                            attributes: kvs(&e.attributes),
                                            dropped_attributes_count: e.dropped_attributes_count,
                                        })
                                        .collect(),
                                    dropped_events_count: s.dropped_events_count,
                                    links: s
                                        .links
                                        .iter()
                                        .map(|l| reference::Link {
                                            trace_id: b(l.trace_id),
                                            span_id: b(l.span_id),
                                            trace_state: b(l.trace_state),
                                            attributes: kvs(&l.attributes),
                                            dropped_attributes_count: l.dropped_attributes_count,
                                        })
                                        .collect(),
                                    dropped_links_count: s.dropped_links_count,
                                    status: s.status.as_ref().map(|st| reference::Status {
                                        message: b(st.message),
                                        code: st.code,
                                    }),
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Both decoders on `buf`: both fail, or both give the same view.
    fn agree(buf: &[u8]) -> bool {
        let ours = Trace::decode(buf);
        let theirs = reference::Trace::decode(buf);
        match (&ours, &theirs) {
            (Ok(o), Ok(t)) => {
                assert_eq!(&as_reference(o), t, "decoding {buf:?}");
                true
            }
            (Err(_), Err(_)) => false,
            _ => panic!("one decoder failed: ours {ours:?}, prost's {theirs:?}, on {buf:?}"),
        }
    }

    fn kv(k: &str, v: OV) -> OKv {
        OKv {
            key: k.into(),
            value: Some(OAny { value: Some(v) }),
            ..Default::default()
        }
    }

    #[test]
    fn views_decode_otlp_as_slices_of_the_buffer() {
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
                        flags: 0x301,
                        ..Default::default()
                    }],
                    schema_url: "https://opentelemetry.io/schemas/1.4.0".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let buf = otlp.encode_to_vec();
        let view = Trace::decode(&buf).unwrap();
        let rs = &view.resource_spans[0];
        let res = rs.resource.as_ref().unwrap();
        assert_eq!(res.dropped_attributes_count, 2);
        assert_eq!(res.attributes[0].key, b"service.name");
        let s = &rs.scope_spans[0].spans[0];
        assert_eq!(s.name, "GET /ü".as_bytes());
        assert_eq!(
            (s.kind, s.start_time_unix_nano, s.end_time_unix_nano),
            (2, 7, 9)
        );
        assert_eq!(
            s.attributes[0].value.as_ref().unwrap().value,
            Some(Value::IntValue(-3))
        );
        assert_eq!(s.events[0].name, b"ev");
        assert_eq!(s.status.as_ref().map(|st| st.code), Some(2));
        // Zero copy: the name lies inside the buffer decoded.
        assert!(buf.as_ptr_range().contains(&s.name.as_ptr()));
        assert!(agree(&buf));
    }

    /// A small deterministic generator (xorshift), for traces of every shape.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn text(&mut self) -> String {
            ["", "a", "http.method", "GET /ü", "\u{0}x"][self.below(5) as usize].to_string()
        }

        fn value(&mut self, depth: u32) -> OAny {
            let v = match self.below(if depth > 2 { 5 } else { 8 }) {
                0 => OV::StringValue(self.text()),
                1 => OV::BoolValue(self.below(2) == 1),
                2 => OV::IntValue(self.next() as i64),
                3 => OV::DoubleValue(f64::from_bits(self.next())),
                4 => OV::BytesValue(self.text().into_bytes()),
                5 => OV::ArrayValue(crate::otlp::common::ArrayValue {
                    values: (0..self.below(3)).map(|_| self.value(depth + 1)).collect(),
                }),
                6 => OV::KvlistValue(crate::otlp::common::KeyValueList {
                    values: self.attrs(depth + 1),
                }),
                _ => return OAny { value: None },
            };
            OAny { value: Some(v) }
        }

        fn attrs(&mut self, depth: u32) -> Vec<OKv> {
            (0..self.below(4))
                .map(|_| OKv {
                    key: self.text(),
                    value: (self.below(8) > 0).then(|| self.value(depth)),
                    ..Default::default()
                })
                .collect()
        }

        fn trace(&mut self) -> crate::tempopb::Trace {
            let spans = |r: &mut Rng| -> Vec<OSpan> {
                (0..r.below(4))
                    .map(|_| OSpan {
                        trace_id: vec![r.below(256) as u8; 16],
                        span_id: r.next().to_le_bytes().to_vec(),
                        parent_span_id: if r.below(2) == 0 { vec![] } else { vec![7; 8] },
                        trace_state: r.text(),
                        name: r.text(),
                        kind: r.below(6) as i32,
                        start_time_unix_nano: r.next(),
                        end_time_unix_nano: r.next(),
                        attributes: r.attrs(0),
                        dropped_attributes_count: r.below(3) as u32,
                        events: (0..r.below(3))
                            .map(|_| span::Event {
                                time_unix_nano: r.next(),
                                name: r.text(),
                                attributes: r.attrs(0),
                                dropped_attributes_count: r.below(2) as u32,
                            })
                            .collect(),
                        dropped_events_count: r.below(2) as u32,
                        links: (0..r.below(2))
                            .map(|_| span::Link {
                                trace_id: vec![3; 16],
                                span_id: vec![4; 8],
                                trace_state: r.text(),
                                attributes: r.attrs(0),
                                dropped_attributes_count: 1,
                                flags: r.below(1000) as u32,
                            })
                            .collect(),
                        dropped_links_count: r.below(2) as u32,
                        status: (r.below(2) == 0).then(|| crate::otlp::trace::Status {
                            message: r.text(),
                            code: r.below(3) as i32,
                        }),
                        flags: r.below(1000) as u32,
                    })
                    .collect()
            };
            crate::tempopb::Trace {
                resource_spans: (0..self.below(3))
                    .map(|_| ORs {
                        resource: (self.below(4) > 0).then(|| crate::otlp::resource::Resource {
                            attributes: self.attrs(0),
                            dropped_attributes_count: self.below(2) as u32,
                            ..Default::default()
                        }),
                        scope_spans: (0..self.below(3))
                            .map(|_| OSs {
                                scope: (self.below(3) > 0).then(|| {
                                    crate::otlp::common::InstrumentationScope {
                                        name: self.text(),
                                        version: self.text(),
                                        attributes: self.attrs(0),
                                        dropped_attributes_count: 0,
                                    }
                                }),
                                spans: spans(self),
                                schema_url: self.text(),
                            })
                            .collect(),
                        schema_url: self.text(),
                    })
                    .collect(),
            }
        }
    }

    #[test]
    fn decodes_what_prost_decodes_and_rejects_what_it_rejects() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut valid, mut rejected) = (0, 0);
        for _ in 0..300 {
            let buf = rng.trace().encode_to_vec();
            assert!(agree(&buf));
            // Cut short anywhere.
            for end in (0..buf.len()).step_by(1 + buf.len() / 64) {
                if agree(&buf[..end]) {
                    valid += 1;
                } else {
                    rejected += 1;
                }
            }
            // Bytes changed: wire types, lengths, field numbers and varints go wrong.
            for _ in 0..20 {
                let mut bad = buf.clone();
                if bad.is_empty() {
                    break;
                }
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(bad.len() as u64) as usize;
                    bad[at] = rng.next() as u8;
                }
                if agree(&bad) {
                    valid += 1;
                } else {
                    rejected += 1;
                }
            }
        }
        // Both outcomes were exercised, many times.
        assert!(
            valid > 1000 && rejected > 1000,
            "{valid} valid, {rejected} rejected"
        );
    }

    #[test]
    fn groups_and_nesting_as_prost() {
        // An unknown group field (number 20) in a span, holding a varint and a nested group.
        let span = [
            0x12, 1, 9, // span_id = [9]
            0xa3, 0x01, // field 20, start group
            0x08, 5, // field 1 varint
            0x13, 0x10, 1, 0x14, // field 2 group { field 2 varint } end
            0xa4, 0x01, // field 20, end group
        ];
        let mut buf = vec![0x12, (span.len() + 2) as u8, 0x12, span.len() as u8];
        buf.extend_from_slice(&span);
        let mut trace = vec![0x0a, buf.len() as u8];
        trace.extend_from_slice(&buf);
        assert!(agree(&trace));
        let view = Trace::decode(&trace).unwrap();
        assert_eq!(view.resource_spans[0].scope_spans[0].spans[0].span_id, [9]);
        // A group ended by another field number, and an end without a start.
        assert!(!agree(&[0x0b, 0x14]));
        assert!(!agree(&[0x0c]));
        // Arrays nested up to the recursion limit, and one past it.
        for depth in [90u32, 95, 96, 97, 98, 99, 100] {
            let mut v = OAny {
                value: Some(OV::IntValue(1)),
            };
            for _ in 0..depth {
                v = OAny {
                    value: Some(OV::ArrayValue(crate::otlp::common::ArrayValue {
                        values: vec![v],
                    })),
                };
            }
            let t = crate::tempopb::Trace {
                resource_spans: vec![ORs {
                    resource: Some(crate::otlp::resource::Resource {
                        attributes: vec![OKv {
                            key: "deep".into(),
                            value: Some(v),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
            };
            agree(&t.encode_to_vec());
        }
    }

    #[test]
    fn values_convert_back_to_otlp() {
        let v = OAny {
            value: Some(OV::KvlistValue(crate::otlp::common::KeyValueList {
                values: vec![
                    kv(
                        "a",
                        OV::ArrayValue(crate::otlp::common::ArrayValue {
                            values: vec![OAny {
                                value: Some(OV::BytesValue(vec![0, 255])),
                            }],
                        }),
                    ),
                    kv("b", OV::StringValue("ü".into())),
                ],
            })),
        };
        let buf = v.encode_to_vec();
        let mut view = AnyValue::default();
        view.merge(Reader::new(&buf)).unwrap();
        assert_eq!(view.to_otlp(), v);
    }
}
