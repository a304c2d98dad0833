//! The columnar span batch the evaluator reads: traces, resources, scopes, spans, events, links
//! and attributes of many traces, flattened into arrays with indexes between levels
//! (span → scope → resource → trace). Strings are dictionary IDs into one per-batch dictionary,
//! so a query's names and literals are resolved once per batch, not once per span.
//!
//! The live store and block readers both produce this form (through [`BatchBuilder`]), so one
//! evaluator answers for recent data and for blocks alike.
//!
//! Invariants: the spans of trace `t` are `traces[t].spans` (contiguous); a span's attributes,
//! events and links are contiguous ranges of their arrays; nested-set numbers are Tempo's
//! (`left`/`right` from a depth-first numbering from 1, `parent` = the parent's `left`, roots
//! `-1`, spans not connected to a root all 0).

use std::collections::HashMap;
use std::ops::Range;

use crate::ast::{KindValue, StatusValue};

/// A dictionary ID of a string in a [`SpanBatch`].
pub type StrId = u32;

/// An attribute value as stored: scalars inline, strings and arrays by reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stored {
    Str(StrId),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Arrays: a range of the batch's array element columns.
    StrArr(u32, u32),
    IntArr(u32, u32),
    FloatArr(u32, u32),
    BoolArr(u32, u32),
}

/// Where an attribute belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttrOwner {
    Resource,
    Scope,
    Span,
    Event,
    Link,
}

/// One trace (or the fragment of it a batch holds).
#[derive(Debug, Clone)]
pub struct TraceRow {
    pub id: [u8; 16],
    pub start_ns: u64,
    pub end_ns: u64,
    pub root_service_opt: Option<StrId>,
    pub root_name_opt: Option<StrId>,
    pub spans: Range<u32>,
}

/// One resource: its attributes and its `service.name`.
#[derive(Debug, Clone)]
pub struct ResourceRow {
    pub attrs: Range<u32>,
    pub service_opt: Option<StrId>,
}

/// One instrumentation scope.
#[derive(Debug, Clone)]
pub struct ScopeRow {
    pub name: StrId,
    pub version: StrId,
    pub attrs: Range<u32>,
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub name: StrId,
    pub time_since_start_ns: u64,
    pub attrs: Range<u32>,
}

#[derive(Debug, Clone)]
pub struct LinkRow {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub attrs: Range<u32>,
}

/// Many traces' spans, column by column.
#[derive(Debug, Default, Clone)]
pub struct SpanBatch {
    strings: Vec<Box<str>>,
    string_ids: HashMap<Box<str>, StrId, rustc_hash::FxBuildHasher>,

    pub traces: Vec<TraceRow>,
    pub resources: Vec<ResourceRow>,
    pub scopes: Vec<ScopeRow>,

    // Span columns, one value per span.
    pub span_trace: Vec<u32>,
    pub span_resource: Vec<u32>,
    pub span_scope: Vec<u32>,
    pub span_id: Vec<[u8; 8]>,
    pub span_parent_id: Vec<[u8; 8]>,
    pub span_name: Vec<StrId>,
    pub span_kind: Vec<KindValue>,
    pub span_status: Vec<StatusValue>,
    pub span_status_message: Vec<StrId>,
    pub span_start_ns: Vec<u64>,
    pub span_duration_ns: Vec<u64>,
    pub span_nested_left: Vec<i32>,
    pub span_nested_right: Vec<i32>,
    pub span_nested_parent: Vec<i32>,
    pub span_child_count: Vec<i32>,
    pub span_attrs: Vec<Range<u32>>,
    pub span_events: Vec<Range<u32>>,
    pub span_links: Vec<Range<u32>>,

    pub events: Vec<EventRow>,
    pub links: Vec<LinkRow>,

    // Attribute columns.
    pub attr_key: Vec<StrId>,
    pub attr_value: Vec<Stored>,
    pub arr_str: Vec<StrId>,
    pub arr_int: Vec<i64>,
    pub arr_float: Vec<f64>,
    pub arr_bool: Vec<bool>,
}

impl SpanBatch {
    /// Room for `n` more spans in every per-span column (a reader that knows how many spans
    /// it will add grows each column once).
    pub fn reserve_spans(&mut self, n: usize) {
        self.span_trace.reserve(n);
        self.span_resource.reserve(n);
        self.span_scope.reserve(n);
        self.span_id.reserve(n);
        self.span_parent_id.reserve(n);
        self.span_name.reserve(n);
        self.span_kind.reserve(n);
        self.span_status.reserve(n);
        self.span_status_message.reserve(n);
        self.span_start_ns.reserve(n);
        self.span_duration_ns.reserve(n);
        self.span_nested_left.reserve(n);
        self.span_nested_right.reserve(n);
        self.span_nested_parent.reserve(n);
        self.span_child_count.reserve(n);
        self.span_attrs.reserve(n);
        self.span_events.reserve(n);
        self.span_links.reserve(n);
    }

    /// The string of a dictionary ID.
    pub fn str(&self, id: StrId) -> &str {
        self.strings.get(id as usize).map_or("", |s| s)
    }

    /// How many strings the dictionary holds (IDs are `0..string_count()`).
    pub fn string_count(&self) -> usize {
        self.strings.len()
    }

    /// The dictionary ID of `s`, if the batch holds it.
    pub fn lookup(&self, s: &str) -> Option<StrId> {
        self.string_ids.get(s).copied()
    }

    /// The dictionary ID of a UTF-8 byte string (invalid UTF-8 is replaced).
    pub fn intern_bytes(&mut self, b: &[u8]) -> StrId {
        match std::str::from_utf8(b) {
            Ok(s) => self.intern(s),
            Err(_) => self.intern(&String::from_utf8_lossy(b)),
        }
    }

    /// Closes trace `id` whose spans `spans` are already in the batch: start and end, root
    /// span, nested-set numbers.
    pub fn close_trace(&mut self, id: [u8; 16], spans: Range<u32>) {
        self.close_trace_with(id, spans, true);
    }

    /// [`SpanBatch::close_trace`]; without `structure` the nested-set columns are left 0 (for
    /// readers whose query reads no structure: `Projection::structure`).
    pub fn close_trace_with(&mut self, id: [u8; 16], spans: Range<u32>, structure: bool) {
        let b = self;
        let r = spans.start as usize..spans.end as usize;
        let mut start = u64::MAX;
        let mut end = 0u64;
        let mut root_opt = None;
        for i in r.clone() {
            start = start.min(b.span_start_ns[i]);
            end = end.max(b.span_start_ns[i] + b.span_duration_ns[i]);
            if b.span_parent_id[i] == [0; 8] {
                // The last root received wins.
                root_opt = Some(i);
            }
        }
        if r.is_empty() {
            start = 0;
        }
        if structure {
            nested_set(b, r.clone());
        } else {
            let n = r.len();
            b.span_nested_left.extend(std::iter::repeat_n(0, n));
            b.span_nested_right.extend(std::iter::repeat_n(0, n));
            b.span_nested_parent.extend(std::iter::repeat_n(0, n));
            b.span_child_count.extend(std::iter::repeat_n(0, n));
        }
        let (root_service_opt, root_name_opt) = match root_opt {
            Some(i) => (
                b.resources
                    .get(b.span_resource[i] as usize)
                    .and_then(|res| res.service_opt),
                Some(b.span_name[i]),
            ),
            None => (None, None),
        };
        b.traces.push(TraceRow {
            id,
            start_ns: start,
            end_ns: end,
            root_service_opt,
            root_name_opt,
            spans,
        });
    }

    /// The dictionary ID of `s`, added if new.
    pub fn intern(&mut self, s: &str) -> StrId {
        if let Some(id) = self.string_ids.get(s) {
            return *id;
        }
        let id = self.strings.len() as StrId;
        self.strings.push(s.into());
        self.string_ids.insert(s.into(), id);
        id
    }

    pub fn span_count(&self) -> usize {
        self.span_id.len()
    }

    /// The value of attribute `key` in `attrs`, if present.
    pub fn find_attr(&self, attrs: &Range<u32>, key: StrId) -> Option<Stored> {
        let r = attrs.start as usize..attrs.end as usize;
        self.attr_key[r.clone()]
            .iter()
            .position(|k| *k == key)
            .map(|i| self.attr_value[r.start + i])
    }

    /// Approximate bytes held (for inspected-bytes metrics and memory accounting).
    pub fn approx_bytes(&self) -> usize {
        fn v<T>(x: &Vec<T>) -> usize {
            x.capacity() * std::mem::size_of::<T>()
        }
        self.strings.iter().map(|s| s.len() + 16).sum::<usize>()
            + self.string_ids.capacity() * 32
            + v(&self.traces)
            + v(&self.resources)
            + v(&self.scopes)
            + self.span_count() * 112
            + v(&self.events)
            + v(&self.links)
            + v(&self.attr_key)
            + v(&self.attr_value)
            + v(&self.arr_str)
            + v(&self.arr_int)
            + v(&self.arr_float)
            + v(&self.arr_bool)
    }
}

/// Which parts of the data a reader must fill in a batch; the rest may stay empty. Span
/// intrinsics, resource service names (also as the resource attribute `service.name`) and
/// scope names and versions are always read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Projection {
    pub span_attrs: bool,
    pub resource_attrs: bool,
    pub scope_attrs: bool,
    pub events: bool,
    pub event_attrs: bool,
    pub links: bool,
    pub link_attrs: bool,
    /// Attribute keys without their values (tag names); readers may still give values.
    pub keys_only: bool,
    /// Nested-set numbers and child counts (structural operators, `nestedSet*`,
    /// `span:childCount`); without it readers may leave them 0.
    pub structure: bool,
    /// Span and parent IDs, span names, status messages and scope names and versions; without
    /// it readers may leave them zero or empty (metrics that read none of them: counting spans
    /// needs only their start times).
    pub span_text: bool,
}

impl Projection {
    /// Everything.
    pub const ALL: Projection = Projection {
        span_attrs: true,
        resource_attrs: true,
        scope_attrs: true,
        events: true,
        event_attrs: true,
        links: true,
        link_attrs: true,
        keys_only: false,
        structure: true,
        span_text: true,
    };

    /// Nothing beyond what is always read.
    pub const NONE: Projection = Projection {
        span_attrs: false,
        resource_attrs: false,
        scope_attrs: false,
        events: false,
        event_attrs: false,
        links: false,
        link_attrs: false,
        keys_only: false,
        structure: false,
        span_text: true,
    };

    /// The smallest projection holding both (values win over keys only).
    pub fn union(self, o: Projection) -> Projection {
        Projection {
            span_attrs: self.span_attrs || o.span_attrs,
            resource_attrs: self.resource_attrs || o.resource_attrs,
            scope_attrs: self.scope_attrs || o.scope_attrs,
            events: self.events || o.events,
            event_attrs: self.event_attrs || o.event_attrs,
            links: self.links || o.links,
            link_attrs: self.link_attrs || o.link_attrs,
            keys_only: self.keys_only && o.keys_only,
            structure: self.structure || o.structure,
            span_text: self.span_text || o.span_text,
        }
    }
}

/// What a search asks of a reader: the parts of the data it reads, and the `attribute =
/// "string"` conditions every match must satisfy (a reader may skip data that provably holds
/// none of them; see `Query::required_equalities`).
#[derive(Debug, Clone, PartialEq)]
pub struct Fetch {
    pub projection: Projection,
    pub required: Vec<(crate::ast::Attribute, String)>,
    /// The span and resource attributes the query reads by name; `None`: any may be read
    /// (tag listings). Readers may leave the others out.
    pub names_opt: Option<AttrNames>,
    /// A metrics query that can be counted from span-only columns: the columns (a reader
    /// that can give them gives them instead of a batch; see `crate::spans`).
    pub span_columns_opt: Option<Vec<crate::spans::SpanCol>>,
    /// A search's condition on span-only columns (a reader may leave out the traces that fail
    /// it; see `crate::spans::Prefilter`).
    pub prefilter_opt: Option<crate::spans::Prefilter>,
    /// The matching traces a search stops at (`limit`), when it stops (a reader may read
    /// what holds that many candidates first).
    pub limit_opt: Option<usize>,
}

impl Fetch {
    /// Reads `projection`, prunes nothing.
    pub fn all_of(projection: Projection) -> Fetch {
        Fetch {
            projection,
            required: Vec::new(),
            names_opt: None,
            span_columns_opt: None,
            prefilter_opt: None,
            limit_opt: None,
        }
    }
}

/// Attribute names a query reads, by level; an unscoped `.x` is at both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttrNames {
    pub span: Vec<String>,
    pub resource: Vec<String>,
}

impl AttrNames {
    /// The names of `attrs` (intrinsics and other levels left out).
    pub fn of(attrs: &[crate::ast::Attribute]) -> AttrNames {
        use crate::ast::AttrScope;
        let mut out = AttrNames::default();
        for a in attrs.iter().filter(|a| a.intrinsic.is_none()) {
            let (span, resource) = match a.scope {
                AttrScope::Span => (true, false),
                AttrScope::Resource => (false, true),
                AttrScope::None => (true, true),
                _ => (false, false),
            };
            if span && !out.span.contains(&a.name) {
                out.span.push(a.name.clone());
            }
            if resource && !out.resource.contains(&a.name) {
                out.resource.push(a.name.clone());
            }
        }
        out
    }

    /// Both lists.
    pub fn union(mut self, o: &AttrNames) -> AttrNames {
        for n in &o.span {
            if !self.span.contains(n) {
                self.span.push(n.clone());
            }
        }
        for n in &o.resource {
            if !self.resource.contains(n) {
                self.resource.push(n.clone());
            }
        }
        self
    }
}

/// An 8-byte span ID from OTLP or block bytes: the last 8 bytes, right-aligned (empty = all
/// zero, a root's parent).
pub fn id8(b: &[u8]) -> [u8; 8] {
    let mut id = [0u8; 8];
    let n = b.len().min(8);
    id[8 - n..].copy_from_slice(&b[b.len() - n..]);
    id
}

/// A 16-byte trace ID from OTLP or block bytes, right-aligned like [`id8`].
pub fn id16(b: &[u8]) -> [u8; 16] {
    let mut id = [0u8; 16];
    let n = b.len().min(16);
    id[16 - n..].copy_from_slice(&b[b.len() - n..]);
    id
}

/// TraceQL's kind of an OTLP `SpanKind` number (as OTLP and blocks store it).
pub fn kind_of_otlp(k: i64) -> KindValue {
    match k {
        1 => KindValue::Internal,
        2 => KindValue::Server,
        3 => KindValue::Client,
        4 => KindValue::Producer,
        5 => KindValue::Consumer,
        _ => KindValue::Unspecified,
    }
}

/// TraceQL's status of an OTLP `StatusCode` number.
pub fn status_of_otlp(c: i64) -> StatusValue {
    match c {
        1 => StatusValue::Ok,
        2 => StatusValue::Error,
        _ => StatusValue::Unset,
    }
}

/// A value of an attribute being added to a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrInput<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    StrArr(Vec<&'a str>),
    IntArr(Vec<i64>),
    FloatArr(Vec<f64>),
    BoolArr(Vec<bool>),
}

/// A span being added to a batch.
#[derive(Debug, Clone)]
pub struct SpanInput<'a> {
    pub id: [u8; 8],
    /// All zero for a root span.
    pub parent_id: [u8; 8],
    pub name: &'a str,
    pub kind: KindValue,
    pub status: StatusValue,
    pub status_message: &'a str,
    pub start_ns: u64,
    pub end_ns: u64,
    /// A link to the same trace with `opentracing.ref_type = "child_of"` (then not a root).
    pub child_of_link: bool,
}

/// Builds a [`SpanBatch`] trace by trace: `begin_trace`, then resources, scopes and spans in
/// order, each span's attributes, events and links right after it; `end_trace` computes the
/// trace-level fields and the nested-set numbers.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    b: SpanBatch,
    trace_open: bool,
    trace_id: [u8; 16],
    trace_first_span: u32,
}

impl BatchBuilder {
    pub fn new() -> BatchBuilder {
        BatchBuilder::default()
    }

    pub fn begin_trace(&mut self, id: [u8; 16]) {
        if self.trace_open {
            self.end_trace();
        }
        self.trace_open = true;
        self.trace_id = id;
        self.trace_first_span = self.b.span_id.len() as u32;
    }

    /// Starts a resource; its attributes follow with [`BatchBuilder::resource_attr`].
    pub fn begin_resource(&mut self) {
        let at = self.b.attr_key.len() as u32;
        self.b.resources.push(ResourceRow {
            attrs: at..at,
            service_opt: None,
        });
    }

    pub fn resource_attr(&mut self, key: &str, v: AttrInput<'_>) {
        let is_service = key == "service.name";
        let service = match &v {
            AttrInput::Str(s) if is_service => Some(*s),
            _ => None,
        };
        self.push_attr(key, v);
        let end = self.b.attr_key.len() as u32;
        let service = service.map(|s| self.b.intern(s));
        if let Some(r) = self.b.resources.last_mut() {
            r.attrs.end = end;
            if service.is_some() {
                r.service_opt = service;
            }
        }
    }

    pub fn begin_scope(&mut self, name: &str, version: &str) {
        let (name, version) = (self.b.intern(name), self.b.intern(version));
        let at = self.b.attr_key.len() as u32;
        self.b.scopes.push(ScopeRow {
            name,
            version,
            attrs: at..at,
        });
    }

    pub fn scope_attr(&mut self, key: &str, v: AttrInput<'_>) {
        self.push_attr(key, v);
        let end = self.b.attr_key.len() as u32;
        if let Some(s) = self.b.scopes.last_mut() {
            s.attrs.end = end;
        }
    }

    pub fn span(&mut self, s: &SpanInput<'_>) {
        let b = &mut self.b;
        b.span_trace.push(b.traces.len() as u32);
        b.span_resource
            .push(b.resources.len().saturating_sub(1) as u32);
        b.span_scope.push(b.scopes.len().saturating_sub(1) as u32);
        b.span_id.push(s.id);
        b.span_parent_id
            .push(if s.child_of_link && s.parent_id == [0; 8] {
                // Marks "not a root" without a parent in the trace: never matches a span ID.
                [0xff; 8]
            } else {
                s.parent_id
            });
        let name = b.intern(s.name);
        b.span_name.push(name);
        b.span_kind.push(s.kind);
        b.span_status.push(s.status);
        let msg = b.intern(s.status_message);
        b.span_status_message.push(msg);
        b.span_start_ns.push(s.start_ns);
        b.span_duration_ns.push(s.end_ns.saturating_sub(s.start_ns));
        let (a, e, l) = (
            b.attr_key.len() as u32,
            b.events.len() as u32,
            b.links.len() as u32,
        );
        b.span_attrs.push(a..a);
        b.span_events.push(e..e);
        b.span_links.push(l..l);
    }

    pub fn span_attr(&mut self, key: &str, v: AttrInput<'_>) {
        self.push_attr(key, v);
        let end = self.b.attr_key.len() as u32;
        if let Some(r) = self.b.span_attrs.last_mut() {
            r.end = end;
        }
    }

    pub fn event(&mut self, name: &str, time_since_start_ns: u64) {
        let name = self.b.intern(name);
        let at = self.b.attr_key.len() as u32;
        self.b.events.push(EventRow {
            name,
            time_since_start_ns,
            attrs: at..at,
        });
        let n = self.b.events.len() as u32;
        if let Some(r) = self.b.span_events.last_mut() {
            r.end = n;
        }
    }

    pub fn event_attr(&mut self, key: &str, v: AttrInput<'_>) {
        self.push_attr(key, v);
        let end = self.b.attr_key.len() as u32;
        if let Some(e) = self.b.events.last_mut() {
            e.attrs.end = end;
        }
    }

    pub fn link(&mut self, trace_id: [u8; 16], span_id: [u8; 8]) {
        let at = self.b.attr_key.len() as u32;
        self.b.links.push(LinkRow {
            trace_id,
            span_id,
            attrs: at..at,
        });
        let n = self.b.links.len() as u32;
        if let Some(r) = self.b.span_links.last_mut() {
            r.end = n;
        }
    }

    pub fn link_attr(&mut self, key: &str, v: AttrInput<'_>) {
        self.push_attr(key, v);
        let end = self.b.attr_key.len() as u32;
        if let Some(l) = self.b.links.last_mut() {
            l.attrs.end = end;
        }
    }

    fn push_attr(&mut self, key: &str, v: AttrInput<'_>) {
        let b = &mut self.b;
        let key = b.intern(key);
        let stored = match v {
            AttrInput::Str(s) => Stored::Str(b.intern(s)),
            AttrInput::Int(i) => Stored::Int(i),
            AttrInput::Float(f) => Stored::Float(f),
            AttrInput::Bool(x) => Stored::Bool(x),
            // A one-element array is stored and searched as a scalar (vParquet5).
            AttrInput::StrArr(a) if a.len() == 1 => Stored::Str(b.intern(a[0])),
            AttrInput::IntArr(a) if a.len() == 1 => Stored::Int(a[0]),
            AttrInput::FloatArr(a) if a.len() == 1 => Stored::Float(a[0]),
            AttrInput::BoolArr(a) if a.len() == 1 => Stored::Bool(a[0]),
            AttrInput::StrArr(a) => {
                let at = b.arr_str.len() as u32;
                for s in &a {
                    let id = b.intern(s);
                    b.arr_str.push(id);
                }
                Stored::StrArr(at, a.len() as u32)
            }
            AttrInput::IntArr(a) => {
                let at = b.arr_int.len() as u32;
                b.arr_int.extend_from_slice(&a);
                Stored::IntArr(at, a.len() as u32)
            }
            AttrInput::FloatArr(a) => {
                let at = b.arr_float.len() as u32;
                b.arr_float.extend_from_slice(&a);
                Stored::FloatArr(at, a.len() as u32)
            }
            AttrInput::BoolArr(a) => {
                let at = b.arr_bool.len() as u32;
                b.arr_bool.extend_from_slice(&a);
                Stored::BoolArr(at, a.len() as u32)
            }
        };
        b.attr_key.push(key);
        b.attr_value.push(stored);
    }

    /// Closes the open trace: start/end, root span, nested-set numbers.
    pub fn end_trace(&mut self) {
        if !self.trace_open {
            return;
        }
        self.trace_open = false;
        let spans = self.trace_first_span..self.b.span_id.len() as u32;
        self.b.close_trace(self.trace_id, spans);
    }

    pub fn finish(mut self) -> SpanBatch {
        self.end_trace();
        self.b
    }

    /// Spans added so far.
    pub fn span_count(&self) -> usize {
        self.b.span_id.len()
    }
}

/// The nested-set position of one span: Tempo's `NestedSetLeft`, `NestedSetRight`, `ParentID`
/// and `ChildCount` columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Nest {
    pub left: i32,
    pub right: i32,
    pub parent: i32,
    pub children: i32,
}

/// Tempo's nested-set numbering of one trace's spans, given their IDs and parent IDs (all zero
/// for a root) in the order received: depth-first from each root in that order, children in
/// that order, one counter from 1 shared by all roots; `parent` is the parent's `left`, roots
/// `-1`. Spans not connected to a root (orphans and their descendants) keep 0; so does every
/// span when more than two spans share an ID (a client and a server span may share one, as
/// Zipkin sends them). The block writer stores these numbers and the evaluator computes them,
/// so live data and blocks agree, and both agree with Tempo's own blocks.
pub fn nested_sets(ids: &[[u8; 8]], parents: &[[u8; 8]]) -> Vec<Nest> {
    let n = ids.len();
    let mut out = vec![Nest::default(); n];
    if n == 0 {
        return out;
    }
    // Span IDs sorted (no hashing, one allocation): a parent is found by binary search.
    let mut sorted: Vec<([u8; 8], u32)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i as u32))
        .collect();
    sorted.sort_unstable();
    if sorted.windows(3).any(|w| w[0].0 == w[2].0) {
        return out;
    }
    const NONE: u32 = u32::MAX;
    let mut parent_of = vec![NONE; n];
    let mut roots = Vec::new();
    for (i, parent) in parent_of.iter_mut().enumerate() {
        let p = parents[i];
        if p == [0; 8] {
            roots.push(i);
            continue;
        }
        let at = sorted.partition_point(|(id, _)| *id < p);
        // With a shared ID, a span's parent is the other span of the pair (e.g. the server
        // span's parent is the client span).
        *parent = sorted[at..]
            .iter()
            .take_while(|(id, _)| *id == p)
            .map(|(_, j)| *j)
            .find(|&j| j as usize != i)
            .unwrap_or(NONE);
    }
    // Children in the order received, as one array with offsets per parent.
    let mut offsets = vec![0u32; n + 1];
    for &p in &parent_of {
        if p != NONE {
            offsets[p as usize + 1] += 1;
        }
    }
    for i in 0..n {
        offsets[i + 1] += offsets[i];
        out[i].children = (offsets[i + 1] - offsets[i]) as i32;
    }
    let mut fill = offsets.clone();
    let mut kids = vec![0u32; offsets[n] as usize];
    for (i, &p) in parent_of.iter().enumerate() {
        if p != NONE {
            kids[fill[p as usize] as usize] = i as u32;
            fill[p as usize] += 1;
        }
    }
    let children = |s: usize| &kids[offsets[s] as usize..offsets[s + 1] as usize];
    let mut counter = 1i32;
    for &root in &roots {
        // Iterative depth-first walk: (span, next child index).
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        out[root].left = counter;
        out[root].parent = -1;
        counter += 1;
        while let Some(&mut (s, ref mut next)) = stack.last_mut() {
            if *next < children(s).len() {
                let c = children(s)[*next] as usize;
                *next += 1;
                if out[c].left != 0 {
                    continue; // a cycle: visited already
                }
                out[c].left = counter;
                out[c].parent = out[s].left;
                counter += 1;
                stack.push((c, 0));
            } else {
                out[s].right = counter;
                counter += 1;
                stack.pop();
            }
        }
    }
    out
}

/// Fills the batch's nested-set columns for the spans `r` of one trace.
fn nested_set(b: &mut SpanBatch, r: Range<usize>) {
    // A span marked "not a root" by a child_of link has no parent in the trace.
    let parents: Vec<[u8; 8]> = b.span_parent_id[r.clone()]
        .iter()
        .map(|p| if *p == [0xff; 8] { [0; 8] } else { *p })
        .collect();
    for n in nested_sets(&b.span_id[r], &parents) {
        b.span_nested_left.push(n.left);
        b.span_nested_right.push(n.right);
        b.span_nested_parent.push(n.parent);
        b.span_child_count.push(n.children);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(n: u8) -> [u8; 8] {
        [n; 8]
    }

    fn span<'a>(id: u8, parent: u8, name: &'a str) -> SpanInput<'a> {
        SpanInput {
            id: sid(id),
            parent_id: if parent == 0 { [0; 8] } else { sid(parent) },
            name,
            kind: KindValue::Internal,
            status: StatusValue::Unset,
            status_message: "",
            start_ns: id as u64,
            end_ns: id as u64 + 10,
            child_of_link: false,
        }
    }

    #[test]
    fn nested_set_numbers_match_tempo_worked_example() {
        // Fixture S, T1: a(1,14) → b(2,5) → c(3,4); a → d(6,11) → e(7,10) → f(8,9); a → g(12,13).
        let mut bb = BatchBuilder::new();
        bb.begin_trace([1; 16]);
        bb.begin_resource();
        bb.begin_scope("", "");
        for (id, parent, name) in [
            (1, 0, "a"),
            (2, 1, "b"),
            (3, 2, "c"),
            (4, 1, "d"),
            (5, 4, "e"),
            (6, 5, "f"),
            (7, 1, "g"),
        ] {
            bb.span(&span(id, parent, name));
        }
        let b = bb.finish();
        let got: Vec<(i32, i32, i32)> = (0..7)
            .map(|i| {
                (
                    b.span_nested_left[i],
                    b.span_nested_right[i],
                    b.span_nested_parent[i],
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 14, -1),
                (2, 5, 1),
                (3, 4, 2),
                (6, 11, 1),
                (7, 10, 6),
                (8, 9, 7),
                (12, 13, 1)
            ]
        );
        assert_eq!(b.span_child_count[0], 3);
        assert_eq!(b.str(b.traces[0].root_name_opt.unwrap()), "a");
    }

    #[test]
    fn orphans_and_several_roots() {
        // Fixture R: r1(1,4,-1) k1(2,3,1) r2(5,6,-1); orphans o1, o2 stay 0.
        let mut bb = BatchBuilder::new();
        bb.begin_trace([2; 16]);
        bb.begin_resource();
        bb.begin_scope("", "");
        for (id, parent, name) in [
            (1, 0, "root1"),
            (2, 1, "kid1"),
            (3, 0, "root2"),
            (4, 9, "orphan"),
            (5, 4, "orphankid"),
        ] {
            bb.span(&span(id, parent, name));
        }
        let b = bb.finish();
        assert_eq!(&b.span_nested_left, &[1, 2, 5, 0, 0]);
        assert_eq!(&b.span_nested_right, &[4, 3, 6, 0, 0]);
        assert_eq!(&b.span_nested_parent, &[-1, 1, -1, 0, 0]);
        assert_eq!(b.str(b.traces[0].root_name_opt.unwrap()), "root2");
    }
}
