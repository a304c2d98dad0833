//! An OTLP trace export request read straight from its protobuf bytes.
//!
//! The distributor never decodes a request into messages. [`Request::parse`] walks the bytes of
//! an `ExportTraceServiceRequest` once and checks them as a protobuf decoder would (the wire type
//! of every known field, lengths, UTF-8 of every `string`, nesting depth: the body is accepted
//! exactly when prost accepts it), keeping each span as a slice of the request with its trace ID,
//! span ID and kind. [`Request::traces`] then writes each trace's `tempopb.Trace` by
//! concatenating those slices under the resource and scope fields they came with: a span's
//! bytes are copied once and never decoded into a message or encoded again. Only a part holding
//! an attribute over the truncation limit is decoded, truncated and encoded again.
//!
//! Fields are copied as they came, unknown ones included: protobuf readers skip what they do not
//! know and merge repeated occurrences of a message field, so a copy decodes as the original.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use bytes::{BufMut, Bytes};
use prost::Message;
use prost::encoding::{encode_varint, encoded_len_varint};
use vivace_common::TraceId;
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

use crate::validate::{BadId, truncate, truncate_span};

/// Protobuf wire types.
const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const SGROUP: u8 = 3;
const EGROUP: u8 = 4;
const I32: u8 = 5;

/// prost's recursion limit: a message nested this deep may hold no message and no unknown field.
const RECURSION_LIMIT: u32 = 100;

/// Why a request body is not a valid `ExportTraceServiceRequest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WireError {
    /// The message field being read, as `Message.field`.
    pub(crate) at: &'static str,
    pub(crate) reason: &'static str,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.at)
    }
}

impl std::error::Error for WireError {}

type Result<T> = std::result::Result<T, WireError>;

/// One span of a request.
#[derive(Debug, Clone)]
struct SpanRef {
    /// The span message: a slice of the request, or its re-encoding after truncation.
    raw: Bytes,
    trace_id: TraceId,
    trace_id_len: usize,
    span_id: [u8; 8],
    span_id_len: usize,
    kind: i32,
    resource: u32,
    scope: u32,
}

/// The fields of a `ResourceSpans` other than its scope spans, or of a `ScopeSpans` other than
/// its spans, each with its key and length: together a valid encoding of that message without
/// its children.
#[derive(Debug, Clone, Default)]
struct Head {
    fields: Vec<Bytes>,
    len: usize,
}

impl Head {
    fn push(&mut self, field: Bytes) {
        self.len += field.len();
        self.fields.push(field);
    }

    fn replace(&mut self, encoded: Vec<u8>) {
        self.len = encoded.len();
        self.fields = vec![Bytes::from(encoded)];
    }

    fn concat(&self) -> Vec<u8> {
        self.fields.concat()
    }
}

/// A parsed request: its spans as slices, in order, with the resource and scope fields they
/// came under.
#[derive(Debug, Default)]
pub(crate) struct Request {
    spans: Vec<SpanRef>,
    resources: Vec<Head>,
    scopes: Vec<Head>,
}

/// The spans of one trace by index, as runs under one resource of runs under one scope.
type Runs = Vec<(u32, Vec<(u32, Vec<u32>)>)>;

/// One trace's share of a request.
#[derive(Debug, Clone)]
pub(crate) struct TraceGroup {
    pub(crate) id: TraceId,
    /// [`vivace_model::span_key`] of each span.
    pub(crate) keys: Vec<u64>,
    /// The `tempopb.Trace` holding these spans under their resources and scopes.
    pub(crate) encoded: Bytes,
}

impl TraceGroup {
    pub(crate) fn spans(&self) -> usize {
        self.keys.len()
    }
}

impl Request {
    /// Reads and checks an `ExportTraceServiceRequest`, truncating attribute keys and string
    /// values (of resources, scopes, spans, events and links) longer than `max_attr` bytes at a
    /// UTF-8 boundary; 0 keeps them whole.
    pub(crate) fn parse(buf: &Bytes, max_attr: usize) -> Result<Request> {
        let mut p = Parser {
            buf,
            max_attr,
            req: Request::default(),
            long_resources: Vec::new(),
            long_scopes: Vec::new(),
            long_spans: Vec::new(),
        };
        let mut r = Reader::new(buf, 0..buf.len(), RECURSION_LIMIT);
        while let Some((field, wt)) = r.key("ExportTraceServiceRequest")? {
            match field {
                1 => {
                    let body = r.message(wt, "ExportTraceServiceRequest.resource_spans")?;
                    p.resource_spans(r.nested(body))?;
                }
                _ => r.skip(field, wt, "ExportTraceServiceRequest")?,
            }
        }
        p.truncate_long_parts()?;
        Ok(p.req)
    }

    pub(crate) fn span_count(&self) -> usize {
        self.spans.len()
    }

    /// Tempo's rule: every trace ID 16 bytes, every span ID 8 bytes and not zero. The first bad
    /// span refuses the whole request.
    pub(crate) fn validate_ids(&self) -> std::result::Result<(), BadId> {
        for s in &self.spans {
            if s.trace_id_len != 16 {
                return Err(BadId::TraceId {
                    bits: s.trace_id_len * 8,
                });
            }
            if s.span_id_len != 8 || s.span_id == [0; 8] {
                return Err(BadId::SpanId {
                    bits: s.span_id_len * 8,
                });
            }
        }
        Ok(())
    }

    /// The request split by trace ID, in first-seen order; within a trace, spans keep their
    /// order and come under a copy of the resource and scope fields they were sent with (a new
    /// `ResourceSpans` or `ScopeSpans` wherever the trace's previous span had another). IDs must
    /// have been validated.
    pub(crate) fn traces(&self) -> Vec<TraceGroup> {
        // Per trace: its runs and its span keys, both in the order the spans are written.
        let mut groups: Vec<(TraceId, Runs, Vec<u64>)> = Vec::new();
        let mut index: HashMap<TraceId, usize> = HashMap::new();
        for (i, s) in self.spans.iter().enumerate() {
            let gi = *index.entry(s.trace_id).or_insert_with(|| {
                groups.push((s.trace_id, Vec::new(), Vec::new()));
                groups.len() - 1
            });
            let (_, runs, keys) = &mut groups[gi];
            if runs.last().is_none_or(|(r, _)| *r != s.resource) {
                runs.push((s.resource, Vec::new()));
            }
            let Some((_, scopes)) = runs.last_mut() else {
                continue;
            };
            if scopes.last().is_none_or(|(sc, _)| *sc != s.scope) {
                scopes.push((s.scope, Vec::new()));
            }
            if let Some((_, spans)) = scopes.last_mut() {
                spans.push(i as u32);
                keys.push(vivace_model::span_key_of(
                    &s.span_id[..s.span_id_len],
                    s.kind,
                ));
            }
        }
        groups
            .into_iter()
            .map(|(id, runs, keys)| TraceGroup {
                id,
                keys,
                encoded: Bytes::from(self.encode(&runs)),
            })
            .collect()
    }

    /// Writes one trace: `tempopb.Trace { repeated ResourceSpans = 1 }`, each `ResourceSpans`
    /// its head then `scope_spans = 2`, each `ScopeSpans` its head then `spans = 2`.
    fn encode(&self, runs: &Runs) -> Vec<u8> {
        let framed = |n: usize| 1 + encoded_len_varint(n as u64) + n;
        // Message lengths in writing order: each resource's, then each of its scopes'.
        let mut lens = Vec::new();
        let mut total = 0;
        for (res, scopes) in runs {
            let at = lens.len();
            lens.push(0);
            let mut resource_len = self.resources[*res as usize].len;
            for (sc, spans) in scopes {
                let scope_len = self.scopes[*sc as usize].len
                    + spans
                        .iter()
                        .map(|&i| framed(self.spans[i as usize].raw.len()))
                        .sum::<usize>();
                lens.push(scope_len);
                resource_len += framed(scope_len);
            }
            lens[at] = resource_len;
            total += framed(resource_len);
        }
        let mut lens = lens.into_iter();
        let mut out = Vec::with_capacity(total);
        for (res, scopes) in runs {
            out.put_u8(0x0a);
            encode_varint(lens.next().unwrap_or(0) as u64, &mut out);
            for f in &self.resources[*res as usize].fields {
                out.put_slice(f);
            }
            for (sc, spans) in scopes {
                out.put_u8(0x12);
                encode_varint(lens.next().unwrap_or(0) as u64, &mut out);
                for f in &self.scopes[*sc as usize].fields {
                    out.put_slice(f);
                }
                for &i in spans {
                    let raw = &self.spans[i as usize].raw;
                    out.put_u8(0x12);
                    encode_varint(raw.len() as u64, &mut out);
                    out.put_slice(raw);
                }
            }
        }
        debug_assert_eq!(out.len(), total);
        out
    }
}

/// A cursor over one message's bytes, `count` levels of nesting left (prost's recursion budget).
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
    count: u32,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], range: Range<usize>, count: u32) -> Reader<'a> {
        Reader {
            buf,
            pos: range.start,
            end: range.end,
            count,
        }
    }

    /// A reader of a nested message.
    fn nested(&self, body: Range<usize>) -> Reader<'a> {
        Reader::new(self.buf, body, self.count - 1)
    }

    fn varint(&mut self, at: &'static str) -> Result<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf[..self.end].get(self.pos) else {
                return Err(WireError {
                    at,
                    reason: "truncated varint",
                });
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                if i == 9 && b > 1 {
                    break;
                }
                return Ok(v);
            }
        }
        Err(WireError {
            at,
            reason: "invalid varint",
        })
    }

    /// The next field's number and wire type; `None` at the end of the message.
    fn key(&mut self, at: &'static str) -> Result<Option<(u32, u8)>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let key = self.varint(at)?;
        let bad = |reason| Err(WireError { at, reason });
        if key > u64::from(u32::MAX) {
            return bad("invalid key value");
        }
        let wt = (key & 7) as u8;
        if wt > I32 {
            return bad("invalid wire type value");
        }
        if key >> 3 == 0 {
            return bad("invalid tag value: 0");
        }
        Ok(Some(((key >> 3) as u32, wt)))
    }

    fn expect(&self, wt: u8, want: u8, at: &'static str) -> Result<()> {
        if wt == want {
            Ok(())
        } else {
            Err(WireError {
                at,
                reason: "invalid wire type",
            })
        }
    }

    fn advance(&mut self, n: u64, at: &'static str) -> Result<Range<usize>> {
        if n > (self.end - self.pos) as u64 {
            return Err(WireError {
                at,
                reason: "buffer underflow",
            });
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(start..self.pos)
    }

    /// A length-delimited field's payload.
    fn len(&mut self, wt: u8, at: &'static str) -> Result<Range<usize>> {
        self.expect(wt, LEN, at)?;
        let n = self.varint(at)?;
        self.advance(n, at)
    }

    /// A nested message's payload, if the recursion budget allows one.
    fn message(&mut self, wt: u8, at: &'static str) -> Result<Range<usize>> {
        self.expect(wt, LEN, at)?;
        self.budget(at)?;
        let n = self.varint(at)?;
        self.advance(n, at)
    }

    fn budget(&self, at: &'static str) -> Result<()> {
        if self.count == 0 {
            return Err(WireError {
                at,
                reason: "recursion limit reached",
            });
        }
        Ok(())
    }

    fn string(&mut self, wt: u8, at: &'static str) -> Result<Range<usize>> {
        let r = self.len(wt, at)?;
        // SIMD validation: std's check was a quarter of the parse in a profile under load.
        if simdutf8::basic::from_utf8(&self.buf[r.clone()]).is_err() {
            return Err(WireError {
                at,
                reason: "invalid string value: data is not UTF-8 encoded",
            });
        }
        Ok(r)
    }

    fn varint_field(&mut self, wt: u8, at: &'static str) -> Result<u64> {
        self.expect(wt, VARINT, at)?;
        self.varint(at)
    }

    fn fixed(&mut self, wt: u8, want: u8, at: &'static str) -> Result<()> {
        self.expect(wt, want, at)?;
        self.advance(if want == I64 { 8 } else { 4 }, at)?;
        Ok(())
    }

    /// Skips an unknown field, as prost does (groups included, within the recursion budget).
    fn skip(&mut self, field: u32, wt: u8, at: &'static str) -> Result<()> {
        self.budget(at)?;
        match wt {
            VARINT => {
                self.varint(at)?;
            }
            I64 | I32 => self.fixed(wt, wt, at)?,
            LEN => {
                self.len(wt, at)?;
            }
            SGROUP => loop {
                let Some((inner, iwt)) = self.key(at)? else {
                    return Err(WireError {
                        at,
                        reason: "unterminated group",
                    });
                };
                if iwt == EGROUP {
                    if inner != field {
                        return Err(WireError {
                            at,
                            reason: "unexpected end group tag",
                        });
                    }
                    break;
                }
                self.count -= 1;
                let skipped = self.skip(inner, iwt, at);
                self.count += 1;
                skipped?;
            },
            _ => {
                return Err(WireError {
                    at,
                    reason: "unexpected end group tag",
                });
            }
        }
        Ok(())
    }
}

struct Parser<'a> {
    buf: &'a Bytes,
    max_attr: usize,
    req: Request,
    long_resources: Vec<usize>,
    long_scopes: Vec<usize>,
    long_spans: Vec<usize>,
}

impl<'a> Parser<'a> {
    /// Whether a key or string value of this length is to be truncated.
    fn long(&self, len: usize) -> bool {
        self.max_attr > 0 && len > self.max_attr
    }

    fn resource_spans(&mut self, mut r: Reader<'a>) -> Result<()> {
        const AT: &str = "ResourceSpans";
        let resource = self.req.resources.len();
        let mut head = Head::default();
        let mut long = false;
        loop {
            let start = r.pos;
            let Some((field, wt)) = r.key(AT)? else { break };
            match field {
                1 => {
                    let b = r.message(wt, "ResourceSpans.resource")?;
                    long |= self.resource(r.nested(b))?;
                }
                2 => {
                    let b = r.message(wt, "ResourceSpans.scope_spans")?;
                    self.scope_spans(r.nested(b), resource as u32)?;
                    continue;
                }
                3 => {
                    r.string(wt, "ResourceSpans.schema_url")?;
                }
                _ => r.skip(field, wt, AT)?,
            }
            head.push(self.buf.slice(start..r.pos));
        }
        if long {
            self.long_resources.push(resource);
        }
        self.req.resources.push(head);
        Ok(())
    }

    fn scope_spans(&mut self, mut r: Reader<'a>, resource: u32) -> Result<()> {
        const AT: &str = "ScopeSpans";
        let scope = self.req.scopes.len();
        let mut head = Head::default();
        let mut long = false;
        loop {
            let start = r.pos;
            let Some((field, wt)) = r.key(AT)? else { break };
            match field {
                1 => {
                    let b = r.message(wt, "ScopeSpans.scope")?;
                    long |= self.scope(r.nested(b))?;
                }
                2 => {
                    let b = r.message(wt, "ScopeSpans.spans")?;
                    self.span(r.nested(b.clone()), b, resource, scope as u32)?;
                    continue;
                }
                3 => {
                    r.string(wt, "ScopeSpans.schema_url")?;
                }
                _ => r.skip(field, wt, AT)?,
            }
            head.push(self.buf.slice(start..r.pos));
        }
        if long {
            self.long_scopes.push(scope);
        }
        self.req.scopes.push(head);
        Ok(())
    }

    fn resource(&self, mut r: Reader<'a>) -> Result<bool> {
        const AT: &str = "Resource";
        let mut long = false;
        while let Some((field, wt)) = r.key(AT)? {
            match field {
                1 => long |= self.attribute(&mut r, wt, "Resource.attributes")?,
                2 => {
                    r.varint_field(wt, "Resource.dropped_attributes_count")?;
                }
                3 => {
                    let b = r.message(wt, "Resource.entity_refs")?;
                    self.entity_ref(r.nested(b))?;
                }
                _ => r.skip(field, wt, AT)?,
            }
        }
        Ok(long)
    }

    fn entity_ref(&self, mut r: Reader<'a>) -> Result<()> {
        const AT: &str = "EntityRef";
        while let Some((field, wt)) = r.key(AT)? {
            match field {
                1..=4 => {
                    r.string(wt, AT)?;
                }
                _ => r.skip(field, wt, AT)?,
            }
        }
        Ok(())
    }

    fn scope(&self, mut r: Reader<'a>) -> Result<bool> {
        const AT: &str = "InstrumentationScope";
        let mut long = false;
        while let Some((field, wt)) = r.key(AT)? {
            match field {
                1 => {
                    r.string(wt, "InstrumentationScope.name")?;
                }
                2 => {
                    r.string(wt, "InstrumentationScope.version")?;
                }
                3 => long |= self.attribute(&mut r, wt, "InstrumentationScope.attributes")?,
                4 => {
                    r.varint_field(wt, "InstrumentationScope.dropped_attributes_count")?;
                }
                _ => r.skip(field, wt, AT)?,
            }
        }
        Ok(long)
    }

    fn span(
        &mut self,
        mut r: Reader<'a>,
        body: Range<usize>,
        resource: u32,
        scope: u32,
    ) -> Result<()> {
        const AT: &str = "Span";
        let mut trace_id = 0..0;
        let mut span_id = 0..0;
        let mut kind = 0i32;
        let mut long = false;
        while let Some((field, wt)) = r.key(AT)? {
            match field {
                1 => trace_id = r.len(wt, "Span.trace_id")?,
                2 => span_id = r.len(wt, "Span.span_id")?,
                3 => {
                    r.string(wt, "Span.trace_state")?;
                }
                4 => {
                    r.len(wt, "Span.parent_span_id")?;
                }
                5 => {
                    r.string(wt, "Span.name")?;
                }
                // An enum is an int32: the low 32 bits of the varint.
                6 => kind = r.varint_field(wt, "Span.kind")? as i32,
                7 | 8 => r.fixed(wt, I64, "Span.time_unix_nano")?,
                9 => long |= self.attribute(&mut r, wt, "Span.attributes")?,
                10 | 12 | 14 => {
                    r.varint_field(wt, "Span.dropped_count")?;
                }
                11 => {
                    let b = r.message(wt, "Span.events")?;
                    long |= self.event(r.nested(b))?;
                }
                13 => {
                    let b = r.message(wt, "Span.links")?;
                    long |= self.link(r.nested(b))?;
                }
                15 => {
                    let b = r.message(wt, "Span.status")?;
                    self.status(r.nested(b))?;
                }
                16 => r.fixed(wt, I32, "Span.flags")?,
                _ => r.skip(field, wt, AT)?,
            }
        }
        let mut sid = [0u8; 8];
        let n = span_id.len().min(8);
        sid[..n].copy_from_slice(&self.buf[span_id.start..span_id.start + n]);
        if long {
            self.long_spans.push(self.req.spans.len());
        }
        self.req.spans.push(SpanRef {
            raw: self.buf.slice(body),
            trace_id: TraceId::from_slice(&self.buf[trace_id.clone()]).unwrap_or_default(),
            trace_id_len: trace_id.len(),
            span_id: sid,
            span_id_len: span_id.len(),
            kind,
            resource,
            scope,
        });
        Ok(())
    }

    fn event(&self, mut r: Reader<'a>) -> Result<bool> {
        const AT: &str = "Span.Event";
        let mut long = false;
        while let Some((field, wt)) = r.key(AT)? {
            match field {
                1 => r.fixed(wt, I64, "Span.Event.time_unix_nano")?,
                2 => {
                    r.string(wt, "Span.Event.name")?;
                }
                3 => long |= self.attribute(&mut r, wt, "Span.Event.attributes")?,
                4 => {
                    r.varint_field(wt, "Span.Event.dropped_attributes_count")?;
                }
                _ => r.skip(field, wt, AT)?,
            }
        }
        Ok(long)
    }

    fn link(&self, mut r: Reader<'a>) -> Result<bool> {
        const AT: &str = "Span.Link";
        let mut long = false;
        while let Some((field, wt)) = r.key(AT)? {
            match field {
                1 | 2 => {
                    r.len(wt, "Span.Link.id")?;
                }
                3 => {
                    r.string(wt, "Span.Link.trace_state")?;
                }
                4 => long |= self.attribute(&mut r, wt, "Span.Link.attributes")?,
                5 => {
                    r.varint_field(wt, "Span.Link.dropped_attributes_count")?;
                }
                6 => r.fixed(wt, I32, "Span.Link.flags")?,
                _ => r.skip(field, wt, AT)?,
            }
        }
        Ok(long)
    }

    fn status(&self, mut r: Reader<'a>) -> Result<()> {
        const AT: &str = "Status";
        while let Some((field, wt)) = r.key(AT)? {
            match field {
                2 => {
                    r.string(wt, "Status.message")?;
                }
                3 => {
                    r.varint_field(wt, "Status.code")?;
                }
                _ => r.skip(field, wt, AT)?,
            }
        }
        Ok(())
    }

    /// An attribute field (a `KeyValue` of resources, scopes, spans, events and links): whether
    /// it is to be truncated.
    fn attribute(&self, r: &mut Reader<'a>, wt: u8, at: &'static str) -> Result<bool> {
        let b = r.message(wt, at)?;
        self.key_value(r.nested(b), true)
    }

    /// One `KeyValue`; `top` for an attribute (truncated when long) rather than one nested in
    /// an array or key-value list value.
    fn key_value(&self, mut r: Reader<'a>, top: bool) -> Result<bool> {
        const AT: &str = "KeyValue";
        let mut long = false;
        while let Some((field, wt)) = r.key(AT)? {
            match field {
                1 => {
                    let key = r.string(wt, "KeyValue.key")?;
                    long |= top && self.long(key.len());
                }
                2 => {
                    let b = r.message(wt, "KeyValue.value")?;
                    long |= self.any_value(r.nested(b), top)?;
                }
                3 => {
                    r.varint_field(wt, "KeyValue.key_strindex")?;
                }
                _ => r.skip(field, wt, AT)?,
            }
        }
        Ok(long)
    }

    fn any_value(&self, mut r: Reader<'a>, top: bool) -> Result<bool> {
        const AT: &str = "AnyValue";
        let mut long = false;
        while let Some((field, wt)) = r.key(AT)? {
            match field {
                1 => {
                    let v = r.string(wt, "AnyValue.string_value")?;
                    long |= top && self.long(v.len());
                }
                2 | 3 | 8 => {
                    r.varint_field(wt, AT)?;
                }
                4 => r.fixed(wt, I64, "AnyValue.double_value")?,
                5 => {
                    let b = r.message(wt, "AnyValue.array_value")?;
                    self.values(r.nested(b), "ArrayValue.values", |p, v| {
                        p.any_value(v, false)
                    })?;
                }
                6 => {
                    let b = r.message(wt, "AnyValue.kvlist_value")?;
                    self.values(r.nested(b), "KeyValueList.values", |p, v| {
                        p.key_value(v, false)
                    })?;
                }
                7 => {
                    r.len(wt, "AnyValue.bytes_value")?;
                }
                _ => r.skip(field, wt, AT)?,
            }
        }
        Ok(long)
    }

    /// An `ArrayValue` or `KeyValueList` (`at`: its `values` field): `values = 1`, each read by
    /// `value`.
    fn values(
        &self,
        mut r: Reader<'a>,
        at: &'static str,
        value: impl Fn(&Self, Reader<'a>) -> Result<bool>,
    ) -> Result<()> {
        while let Some((field, wt)) = r.key(at)? {
            match field {
                1 => {
                    let v = r.message(wt, at)?;
                    value(self, r.nested(v))?;
                }
                _ => r.skip(field, wt, at)?,
            }
        }
        Ok(())
    }

    /// Decodes each part holding an over-long attribute, truncates and encodes it again.
    fn truncate_long_parts(&mut self) -> Result<()> {
        let bad = |_| WireError {
            at: "ExportTraceServiceRequest",
            reason: "does not decode after checking",
        };
        let max = self.max_attr;
        for &i in &self.long_resources {
            let head = &mut self.req.resources[i];
            let mut rs = ResourceSpans::decode(head.concat().as_slice()).map_err(bad)?;
            if let Some(res) = &mut rs.resource {
                truncate(&mut res.attributes, max);
            }
            head.replace(rs.encode_to_vec());
        }
        for &i in &self.long_scopes {
            let head = &mut self.req.scopes[i];
            let mut ss = ScopeSpans::decode(head.concat().as_slice()).map_err(bad)?;
            if let Some(scope) = &mut ss.scope {
                truncate(&mut scope.attributes, max);
            }
            head.replace(ss.encode_to_vec());
        }
        for &i in &self.long_spans {
            let span = &mut self.req.spans[i];
            let mut s = Span::decode(span.raw.as_ref()).map_err(bad)?;
            truncate_span(&mut s, max);
            span.raw = Bytes::from(s.encode_to_vec());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{group_by_trace, truncate_attributes, validate_ids};
    use proptest::prelude::*;
    use vivace_proto::otlp::collector::ExportTraceServiceRequest;
    use vivace_proto::otlp::common::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
    };
    use vivace_proto::otlp::resource::Resource;
    use vivace_proto::otlp::trace::Status;
    use vivace_proto::otlp::trace::span::{Event, Link};
    use vivace_proto::tempopb::Trace;

    /// What a path makes of a body: `None` where it refuses the body, `Err` for bad IDs, else
    /// each trace's ID, spans and span keys.
    type Outcome = Option<std::result::Result<Vec<(TraceId, Trace, Vec<u64>)>, BadId>>;

    /// The message path the byte path must agree with: decode, truncate, validate, regroup,
    /// encode. `None` where prost refuses the body; `Err` where the IDs are bad.
    fn naive(body: &[u8], max: usize) -> Outcome {
        let mut batches = ExportTraceServiceRequest::decode(body).ok()?.resource_spans;
        truncate_attributes(&mut batches, max);
        if let Err(e) = validate_ids(&batches) {
            return Some(Err(e));
        }
        Some(Ok(group_by_trace(batches)
            .into_iter()
            .map(|g| {
                let keys = g
                    .trace
                    .resource_spans
                    .iter()
                    .flat_map(|rs| &rs.scope_spans)
                    .flat_map(|ss| &ss.spans)
                    .map(vivace_model::span_key)
                    .collect();
                (g.id, g.trace, keys)
            })
            .collect()))
    }

    fn wire(body: &[u8], max: usize) -> Outcome {
        let req = Request::parse(&Bytes::copy_from_slice(body), max).ok()?;
        if let Err(e) = req.validate_ids() {
            return Some(Err(e));
        }
        Some(Ok(req
            .traces()
            .into_iter()
            .map(|g| {
                let t = Trace::decode(g.encoded.as_ref()).expect("a written trace decodes");
                (g.id, t, g.keys)
            })
            .collect()))
    }

    fn kv(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn span(t: u8, s: u8, name: &str) -> Span {
        Span {
            trace_id: vec![t; 16],
            span_id: vec![s; 8],
            name: name.into(),
            kind: i32::from(s % 6),
            ..Default::default()
        }
    }

    fn request(batches: Vec<ResourceSpans>) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: batches,
        }
        .encode_to_vec()
    }

    #[test]
    fn splits_by_trace_under_each_spans_resource_and_scope() {
        let res = |n: &str| Resource {
            attributes: vec![kv("service.name", any_value::Value::StringValue(n.into()))],
            ..Default::default()
        };
        let body = request(vec![
            ResourceSpans {
                resource: Some(res("a")),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        ..Default::default()
                    }),
                    spans: vec![span(1, 1, "x"), span(2, 1, "y"), span(1, 2, "z")],
                    schema_url: "s".into(),
                }],
                schema_url: "r".into(),
            },
            ResourceSpans {
                resource: Some(res("b")),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(2, 2, "w")],
                    ..Default::default()
                }],
                ..Default::default()
            },
        ]);
        let got = wire(&body, 0).unwrap().unwrap();
        assert_eq!(got, naive(&body, 0).unwrap().unwrap());
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].1.resource_spans.len(), 2);
        assert_eq!(got[0].1.resource_spans[0].scope_spans[0].spans.len(), 2);
    }

    #[test]
    fn bad_utf8_wire_types_and_truncation_are_refused_as_prost_refuses_them() {
        let mut body = request(vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span(1, 1, "abc")],
                ..Default::default()
            }],
            ..Default::default()
        }]);
        assert!(wire(&body, 0).is_some());
        let at = body.windows(3).position(|w| w == b"abc").unwrap();
        body[at] = 0xff;
        assert!(ExportTraceServiceRequest::decode(body.as_slice()).is_err());
        let e = Request::parse(&Bytes::from(body.clone()), 0).unwrap_err();
        assert_eq!(e.at, "Span.name");
        assert!(e.to_string().contains("UTF-8"), "{e}");
        body.truncate(at);
        assert!(Request::parse(&Bytes::from(body), 0).is_err());
        // A span name sent as a varint.
        let bad = [0x0a, 0x06, 0x12, 0x04, 0x12, 0x02, 0x28, 0x01];
        assert!(ExportTraceServiceRequest::decode(&bad[..]).is_err());
        assert!(Request::parse(&Bytes::copy_from_slice(&bad), 0).is_err());
    }

    #[test]
    fn nesting_is_limited_as_prost_limits_it() {
        for depth in 90..110 {
            let mut v = AnyValue {
                value: Some(any_value::Value::IntValue(1)),
            };
            for _ in 0..depth {
                v = AnyValue {
                    value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![v] })),
                };
            }
            let mut s = span(1, 1, "n");
            s.attributes.push(KeyValue {
                key: "deep".into(),
                value: Some(v),
                ..Default::default()
            });
            let body = request(vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![s],
                    ..Default::default()
                }],
                ..Default::default()
            }]);
            assert_eq!(
                wire(&body, 0).is_some(),
                naive(&body, 0).is_some(),
                "depth {depth}"
            );
        }
    }

    fn value() -> impl Strategy<Value = any_value::Value> {
        prop_oneof![
            "[a-zé]{0,12}".prop_map(any_value::Value::StringValue),
            any::<i64>().prop_map(any_value::Value::IntValue),
            any::<bool>().prop_map(any_value::Value::BoolValue),
            proptest::collection::vec("[a-z]{0,9}", 0..3).prop_map(|v| {
                any_value::Value::ArrayValue(ArrayValue {
                    values: v
                        .into_iter()
                        .map(|s| AnyValue {
                            value: Some(any_value::Value::StringValue(s)),
                        })
                        .collect(),
                })
            }),
        ]
    }

    fn attrs() -> impl Strategy<Value = Vec<KeyValue>> {
        proptest::collection::vec(("[a-z.]{1,10}", value()), 0..3)
            .prop_map(|v| v.into_iter().map(|(k, v)| kv(&k, v)).collect())
    }

    fn any_span() -> impl Strategy<Value = Span> {
        (
            0u8..4,
            0u8..6,
            "[a-z]{0,8}",
            attrs(),
            attrs(),
            attrs(),
            0u32..3,
        )
            .prop_map(|(t, s, name, a, ea, la, extra)| Span {
                events: (0..extra)
                    .map(|i| Event {
                        time_unix_nano: u64::from(i),
                        name: format!("e{i}"),
                        attributes: ea.clone(),
                        ..Default::default()
                    })
                    .collect(),
                links: (0..extra % 2)
                    .map(|_| Link {
                        trace_id: vec![9; 16],
                        span_id: vec![9; 8],
                        attributes: la.clone(),
                        ..Default::default()
                    })
                    .collect(),
                attributes: a,
                status: (extra == 2).then(|| Status {
                    message: "boom".into(),
                    code: 2,
                }),
                flags: extra,
                ..span(t, s, &name)
            })
    }

    fn any_request() -> impl Strategy<Value = Vec<u8>> {
        let scope =
            (attrs(), proptest::collection::vec(any_span(), 0..5)).prop_map(|(a, spans)| {
                ScopeSpans {
                    scope: (!a.is_empty()).then(|| InstrumentationScope {
                        name: "lib".into(),
                        attributes: a,
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }
            });
        let resource = (
            attrs(),
            proptest::collection::vec(scope, 0..3),
            "[a-z]{0,3}",
        )
            .prop_map(|(a, scope_spans, url)| ResourceSpans {
                resource: Some(Resource {
                    attributes: a,
                    ..Default::default()
                }),
                scope_spans,
                schema_url: url,
            });
        proptest::collection::vec(resource, 0..4).prop_map(request)
    }

    proptest! {
        /// On any valid request the byte path gives what the message path gives: the same
        /// traces, spans, keys and truncation.
        #[test]
        fn agrees_with_the_message_path(body in any_request(), max in 0usize..8) {
            prop_assert_eq!(wire(&body, max), naive(&body, max));
        }

        /// A damaged request is refused exactly when prost refuses it, and never panics.
        #[test]
        fn refuses_exactly_what_prost_refuses(
            body in any_request(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
        ) {
            let mut body = body;
            for (at, byte, op) in edits {
                if body.is_empty() {
                    body.push(byte);
                    continue;
                }
                let i = at.index(body.len());
                match op {
                    0 => body[i] = byte,
                    1 => body.insert(i, byte),
                    _ => { body.remove(i); }
                }
            }
            prop_assert_eq!(wire(&body, 3), naive(&body, 3));
        }

        /// Arbitrary bytes: the same verdict as prost.
        #[test]
        fn arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            prop_assert_eq!(wire(&body, 2).is_some(), naive(&body, 2).is_some());
        }
    }
}
