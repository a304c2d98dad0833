//! Rows of `data.parquet` back into OTLP traces, straight from leaf columns.
//!
//! Every read that needs whole traces (trace by ID, the traces compaction must combine, vParquet4
//! scans, `blocks` tools) reads its rows' leaf columns as values with repetition and definition
//! levels ([`RawColumn`]); [`Shape`] joins them by Dremel record assembly into a light tree
//! ([`Node`], fields by position), and [`Converter`] turns that tree into OTLP. The parquet
//! crate's record API (rows of named fields, a `String` per field) is not used.
//!
//! One converter serves both versions: vParquet4's LIST-wrapped repeated fields assemble into the
//! same lists as vParquet5's plain repeated fields, its fixed well-known columns (`Cluster`,
//! `HttpMethod`, …) are mapped back to their attribute names, and dedicated columns (lists in v5,
//! optional scalars in v4) are mapped back by slot from `meta.json`.

use parquet::basic::{ConvertedType, LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::ByteArray;
use parquet::schema::types::{SchemaDescriptor, Type};
use vivace_common::TraceId;
use vivace_proto::otlp::common::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value};
use vivace_proto::otlp::resource::Resource;
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status, span};
use vivace_proto::tempopb::Trace;

use crate::copy::{RawColumn, Vals};
use crate::meta::BlockMeta;

/// vParquet4 resource columns holding well-known attributes.
const V4_RESOURCE_COLUMNS: &[(&str, &str)] = &[
    ("Cluster", "cluster"),
    ("Namespace", "namespace"),
    ("Pod", "pod"),
    ("Container", "container"),
    ("K8sClusterName", "k8s.cluster.name"),
    ("K8sNamespaceName", "k8s.namespace.name"),
    ("K8sPodName", "k8s.pod.name"),
    ("K8sContainerName", "k8s.container.name"),
];

/// vParquet4 span columns holding well-known attributes.
const V4_SPAN_COLUMNS: &[(&str, &str)] = &[
    ("HttpMethod", "http.method"),
    ("HttpUrl", "http.url"),
    ("HttpStatusCode", "http.status_code"),
];

/// One value of an assembled row: a group's fields in schema order, a list's elements, a leaf.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Node {
    /// Absent (an optional field not defined), or not reached by any column.
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(ByteArray),
    Group(Vec<Node>),
    List(Vec<Node>),
}

/// The logical tree of a block's schema: LIST- and MAP-annotated groups and repeated fields are
/// lists of their elements, other groups are groups of named fields.
#[derive(Debug)]
pub(crate) enum Shape {
    Leaf,
    Group {
        names: Vec<String>,
        fields: Vec<Shape>,
    },
    List(Box<Shape>),
}

/// What a step creates where it lands on an empty (`Null`) node.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Make {
    Leaf,
    Group(usize),
    List,
}

impl Make {
    fn of(shape: &Shape) -> Make {
        match shape {
            Shape::Leaf => Make::Leaf,
            Shape::Group { fields, .. } => Make::Group(fields.len()),
            Shape::List(_) => Make::List,
        }
    }

    /// What a value of type `t` is once its repetition is accounted for ([`element`]).
    fn of_type(t: &Type) -> Make {
        if t.is_group() {
            Make::Group(t.get_fields().len())
        } else {
            Make::Leaf
        }
    }

    fn place(self, node: &mut Node) {
        if *node == Node::Null {
            match self {
                Make::Leaf => {}
                Make::Group(n) => *node = Node::Group(vec![Node::Null; n]),
                Make::List => *node = Node::List(Vec::new()),
            }
        }
    }
}

/// One step from a record down to a leaf column's value.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Into field `i` of the group here; the field is absent below definition level `null_below`.
    Field {
        i: usize,
        null_below: i16,
        make: Make,
    },
    /// Into the current element of the list here, whose position counts repetitions at level
    /// `rep`; the list is empty below definition level `empty_below`, the element absent below
    /// `null_below`.
    Elem {
        rep: i16,
        empty_below: i16,
        null_below: i16,
        make: Make,
    },
}

/// How one leaf column's entries land in a record.
#[derive(Debug)]
struct Path {
    steps: Vec<Step>,
    max_def: i16,
    max_rep: i16,
    /// An INT32 annotated unsigned (read as `u32`).
    unsigned: bool,
}

/// A schema's [`Shape`] and, per leaf column, its path into it.
#[derive(Debug)]
pub(crate) struct Assembler {
    shape: Shape,
    paths: Vec<Path>,
}

/// Why a block's rows cannot be assembled.
pub(crate) type Refusal = String;

impl Assembler {
    pub(crate) fn new(schema: &SchemaDescriptor) -> Result<Assembler, Refusal> {
        let root = schema.root_schema();
        let mut paths = Vec::with_capacity(schema.num_columns());
        let shape = group_fields(root.get_fields(), 0, 0, &mut Vec::new(), &mut paths)?;
        if paths.len() != schema.num_columns() {
            return Err(format!(
                "schema has {} leaf columns, assembly found {}",
                schema.num_columns(),
                paths.len()
            ));
        }
        for (i, p) in paths.iter().enumerate() {
            let c = schema.column(i);
            if (p.max_def, p.max_rep) != (c.max_def_level(), c.max_rep_level()) {
                return Err(format!(
                    "column {}: levels {}/{} where assembly expects {}/{}",
                    c.path().string(),
                    c.max_def_level(),
                    c.max_rep_level(),
                    p.max_def,
                    p.max_rep
                ));
            }
        }
        Ok(Assembler { shape, paths })
    }

    /// The records held by `cols` (one per leaf column, in schema order, the same rows in each),
    /// each a [`Node::Group`] of the root's fields.
    pub(crate) fn records(&self, cols: &[RawColumn]) -> Result<Vec<Node>, Refusal> {
        if cols.len() != self.paths.len() {
            return Err(format!(
                "{} columns for a schema of {}",
                cols.len(),
                self.paths.len()
            ));
        }
        let root = Make::of(&self.shape);
        let mut records: Vec<Node> = Vec::new();
        let mut idx: Vec<usize> = Vec::new();
        for (c, path) in cols.iter().zip(&self.paths) {
            idx.clear();
            idx.resize(path.max_rep as usize + 1, 0);
            let mut record = usize::MAX;
            let mut v = 0usize;
            for (&r, &d) in c.rep.iter().zip(&c.def) {
                if r == 0 {
                    record = record.wrapping_add(1);
                    if record == records.len() {
                        records.push(Node::Null);
                        root.place(&mut records[record]);
                    }
                    idx.iter_mut().for_each(|k| *k = 0);
                } else {
                    let r = r as usize;
                    if r >= idx.len() {
                        return Err(format!("repetition level {r} above the column's maximum"));
                    }
                    idx[r] += 1;
                    idx[r + 1..].iter_mut().for_each(|k| *k = 0);
                }
                let Some(node) = records.get_mut(record) else {
                    return Err("column starts with a repeated entry".into());
                };
                if let Some(leaf) = descend(node, &path.steps, &idx, d)? {
                    if d != path.max_def {
                        return Err(format!("definition level {d} reached a leaf"));
                    }
                    *leaf = value(&c.vals, v, path.unsigned)?;
                    v += 1;
                }
            }
        }
        Ok(records)
    }

    /// The traces held by `cols`, with their IDs (rows without a 16-byte ID are left out).
    pub(crate) fn traces(
        &self,
        cols: &[RawColumn],
        meta: &BlockMeta,
    ) -> Result<Vec<(TraceId, Trace)>, Refusal> {
        let conv = Converter { meta };
        Ok(self
            .records(cols)?
            .iter()
            .filter_map(|record| {
                let row = At {
                    shape: &self.shape,
                    node: record,
                };
                let id = TraceId::from_slice(&row.get("TraceID").bytes())?;
                Some((id, conv.trace(row, &id.0)))
            })
            .collect())
    }
}

/// vParquet5 leaf columns that OTLP does not need: what Tempo derives from the spans for search
/// (trace-level summaries, service stats, nested sets, rounded start times, span counts).
const DERIVED: &[&str] = &[
    "TraceIDText",
    "StartTimeUnixNano",
    "EndTimeUnixNano",
    "DurationNano",
    "RootServiceName",
    "RootSpanName",
    "rs.ss.SpanCount",
    "rs.ss.Spans.ParentID",
    "rs.ss.Spans.NestedSetLeft",
    "rs.ss.Spans.NestedSetRight",
    "rs.ss.Spans.ChildCount",
];

/// Whether turning a row into OTLP reads leaf column `path` of a block described by `meta`: not
/// the [`DERIVED`] columns, nor the dedicated columns of slots the block assigns no attribute
/// (always empty). Trace by ID leaves the others out of its reads: a span-level page of nested
/// sets is as big as one of span IDs. (vParquet4's paths, LIST-wrapped, are all read but for its
/// trace-level ones.)
pub(crate) fn read_for_otlp(path: &str, meta: &BlockMeta) -> bool {
    if DERIVED.contains(&path)
        || path.starts_with("ServiceStats.")
        || path.starts_with("rs.ss.Spans.StartTimeRounded")
    {
        return false;
    }
    let Some((prefix, slot)) = path.split_once(".DedicatedAttributes.") else {
        return true;
    };
    let scope = match prefix {
        "rs.Resource" => "resource",
        "rs.ss.Spans" => "span",
        "rs.ss.Spans.Events" => "event",
        _ => return true,
    };
    let (int, n) = match (slot.strip_prefix("Int"), slot.strip_prefix("String")) {
        (Some(n), _) => (true, n),
        (_, Some(n)) => (false, n),
        _ => return true,
    };
    match n.parse::<usize>() {
        Ok(n) => n >= 1 && n <= meta.dedicated(scope, int).len(),
        Err(_) => true,
    }
}

/// Builds the shape of a group's `fields` and the paths of their leaves (`prefix`: the steps to
/// the group; `def`/`rep`: its levels).
fn group_fields(
    fields: &[parquet::schema::types::TypePtr],
    def: i16,
    rep: i16,
    prefix: &mut Vec<Step>,
    paths: &mut Vec<Path>,
) -> Result<Shape, Refusal> {
    let mut names = Vec::with_capacity(fields.len());
    let mut shapes = Vec::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        let depth = prefix.len();
        let (def, rep, null_below) = match f.get_basic_info().repetition() {
            Repetition::REQUIRED => (def, rep, 0),
            Repetition::OPTIONAL => (def + 1, rep, def + 1),
            Repetition::REPEATED => (def + 1, rep + 1, 0),
        };
        // A repeated field is a list of its values; a LIST or MAP group a list of its repeated
        // child's element (3-level `list.element`) or of that child (2-level, MAP `key_value`).
        // The list's element: its type, the level below which the list is empty, its
        // repetition level, its definition level and the level below which it is absent.
        let list_opt: Option<(&Type, i16, i16, i16, i16)> =
            if f.get_basic_info().repetition() == Repetition::REPEATED {
                Some((f, def, rep, def, 0))
            } else if let Some(list) = list_child(f) {
                let (ldef, lrep) = (def + 1, rep + 1);
                match list.get_fields() {
                    [e] if list.is_group() && is_list(f) => match e.get_basic_info().repetition() {
                        Repetition::OPTIONAL => Some((e, ldef, lrep, ldef + 1, ldef + 1)),
                        Repetition::REQUIRED => Some((e, ldef, lrep, ldef, 0)),
                        Repetition::REPEATED => {
                            return Err(format!("{}: repeated list element", e.name()));
                        }
                    },
                    _ => Some((list, ldef, lrep, ldef, 0)),
                }
            } else {
                None
            };
        let shape = match list_opt {
            Some((elem, empty_below, lrep, edef, enull)) => {
                prefix.push(Step::Field {
                    i,
                    null_below,
                    make: Make::List,
                });
                prefix.push(Step::Elem {
                    rep: lrep,
                    empty_below,
                    null_below: enull,
                    make: Make::of_type(elem),
                });
                Shape::List(Box::new(element(elem, edef, lrep, prefix, paths)?))
            }
            None => {
                prefix.push(Step::Field {
                    i,
                    null_below,
                    make: Make::of_type(f),
                });
                element(f, def, rep, prefix, paths)?
            }
        };
        prefix.truncate(depth);
        names.push(f.name().to_string());
        shapes.push(shape);
    }
    Ok(Shape::Group {
        names,
        fields: shapes,
    })
}

/// The shape of a value of type `t` (its repetition already accounted for), adding its leaves'
/// paths.
fn element(
    t: &Type,
    def: i16,
    rep: i16,
    prefix: &mut Vec<Step>,
    paths: &mut Vec<Path>,
) -> Result<Shape, Refusal> {
    if t.is_group() {
        let depth = prefix.len();
        let shape = group_fields(t.get_fields(), def, rep, prefix, paths)?;
        prefix.truncate(depth);
        return Ok(shape);
    }
    let unsigned = t.get_physical_type() == PhysicalType::INT32
        && (t.get_basic_info().converted_type() == ConvertedType::UINT_32
            || matches!(
                t.get_basic_info().logical_type_ref(),
                Some(LogicalType::Integer(int)) if !int.is_signed
            ));
    paths.push(Path {
        steps: prefix.clone(),
        max_def: def,
        max_rep: rep,
        unsigned,
    });
    Ok(Shape::Leaf)
}

fn is_list(t: &Type) -> bool {
    t.get_basic_info().converted_type() == ConvertedType::LIST
        || matches!(
            t.get_basic_info().logical_type_ref(),
            Some(LogicalType::List)
        )
}

fn is_map(t: &Type) -> bool {
    matches!(
        t.get_basic_info().converted_type(),
        ConvertedType::MAP | ConvertedType::MAP_KEY_VALUE
    ) || matches!(
        t.get_basic_info().logical_type_ref(),
        Some(LogicalType::Map)
    )
}

/// The repeated child of a LIST- or MAP-annotated group.
fn list_child(t: &Type) -> Option<&Type> {
    if !t.is_group() || !(is_list(t) || is_map(t)) {
        return None;
    }
    match t.get_fields() {
        [c] if c.get_basic_info().repetition() == Repetition::REPEATED => Some(c),
        _ => None,
    }
}

/// Walks `steps` from a record for an entry of definition level `d`, creating what is missing:
/// the leaf when the entry reaches it (it carries a value).
fn descend<'n>(
    node: &'n mut Node,
    steps: &[Step],
    idx: &[usize],
    d: i16,
) -> Result<Option<&'n mut Node>, Refusal> {
    let mut node = node;
    for step in steps {
        match *step {
            Step::Field {
                i,
                null_below,
                make,
            } => {
                let Node::Group(fields) = node else {
                    return Err("a field's parent is not a group".into());
                };
                let Some(child) = fields.get_mut(i) else {
                    return Err("field out of its group".into());
                };
                if d < null_below {
                    return Ok(None);
                }
                make.place(child);
                node = child;
            }
            Step::Elem {
                rep,
                empty_below,
                null_below,
                make,
            } => {
                let Node::List(items) = node else {
                    return Err("an element's parent is not a list".into());
                };
                if d < empty_below {
                    return Ok(None);
                }
                let k = idx[rep as usize];
                if k == items.len() {
                    items.push(Node::Null);
                } else if k > items.len() {
                    return Err("list elements out of order".into());
                }
                let child = &mut items[k];
                if d < null_below {
                    return Ok(None);
                }
                make.place(child);
                node = child;
            }
        }
    }
    Ok(Some(node))
}

/// Value `v` of a column.
fn value(vals: &Vals, v: usize, unsigned: bool) -> Result<Node, Refusal> {
    let missing = || "fewer values than defined entries".to_string();
    Ok(match vals {
        Vals::Bool(x) => Node::Bool(*x.get(v).ok_or_else(missing)?),
        Vals::I32(x) => {
            let n = *x.get(v).ok_or_else(missing)?;
            Node::Int(if unsigned { n as u32 as i64 } else { n as i64 })
        }
        Vals::I64(x) => Node::Int(*x.get(v).ok_or_else(missing)?),
        Vals::F64(x) => Node::Double(*x.get(v).ok_or_else(missing)?),
        Vals::Bytes(x) => Node::Bytes(x.get(v).ok_or_else(missing)?.clone()),
        Vals::Dict(d) => {
            let entry = d.ids.get(v).and_then(|&x| d.dict.get(x as usize));
            Node::Bytes(entry.ok_or_else(missing)?.clone().into())
        }
    })
}

static NULL: Node = Node::Null;
static LEAF: Shape = Shape::Leaf;

/// A node with its shape, read by field name.
#[derive(Clone, Copy)]
struct At<'a> {
    shape: &'a Shape,
    node: &'a Node,
}

impl<'a> At<'a> {
    /// Field `name` of a group (`Null` when there is none).
    fn get(self, name: &str) -> At<'a> {
        if let (Shape::Group { names, fields }, Node::Group(nodes)) = (self.shape, self.node)
            && let Some(i) = names.iter().position(|n| n == name)
            && let Some(node) = nodes.get(i)
        {
            return At {
                shape: &fields[i],
                node,
            };
        }
        At {
            shape: &LEAF,
            node: &NULL,
        }
    }

    /// The elements of a list (none when this is not one).
    fn list(self) -> impl Iterator<Item = At<'a>> {
        let (shape, items): (&Shape, &[Node]) = match (self.shape, self.node) {
            (Shape::List(e), Node::List(items)) => (e, items),
            _ => (&LEAF, &[]),
        };
        items.iter().map(move |node| At { shape, node })
    }

    /// The group elements of a list.
    fn groups(self) -> impl Iterator<Item = At<'a>> {
        self.list().filter(|a| matches!(a.node, Node::Group(_)))
    }

    fn is_group(self) -> bool {
        matches!(self.node, Node::Group(_))
    }

    fn bytes(self) -> Vec<u8> {
        match self.node {
            Node::Bytes(b) => b.data().to_vec(),
            _ => Vec::new(),
        }
    }

    /// A string value, if this is one.
    fn str(self) -> Option<String> {
        match self.node {
            Node::Bytes(b) => Some(String::from_utf8_lossy(b.data()).into_owned()),
            _ => None,
        }
    }

    fn string(self) -> String {
        self.str().unwrap_or_default()
    }

    fn int(self) -> Option<i64> {
        match self.node {
            Node::Int(v) => Some(*v),
            _ => None,
        }
    }

    fn uint(self) -> u64 {
        self.int().unwrap_or(0) as u64
    }

    fn count(self) -> u32 {
        self.int().unwrap_or(0) as u32
    }
}

fn any(v: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: any(v),
        ..Default::default()
    }
}

/// Assembled rows of a vParquet5 or vParquet4 block to OTLP.
struct Converter<'m> {
    meta: &'m BlockMeta,
}

impl Converter<'_> {
    fn trace(&self, row: At<'_>, trace_id: &[u8]) -> Trace {
        let resource_spans = row
            .get("rs")
            .groups()
            .map(|rs| self.resource_spans(rs, trace_id))
            .collect();
        Trace { resource_spans }
    }

    fn resource_spans(&self, rs: At<'_>, trace_id: &[u8]) -> ResourceSpans {
        let r = rs.get("Resource");
        let resource = r.is_group().then(|| {
            let mut attributes = Vec::new();
            let service = r.get("ServiceName").string();
            if !service.is_empty() {
                attributes.push(kv("service.name", any_value::Value::StringValue(service)));
            }
            for (col, name) in V4_RESOURCE_COLUMNS {
                if let Some(v) = r.get(col).str() {
                    attributes.push(kv(name, any_value::Value::StringValue(v)));
                }
            }
            self.dedicated(r.get("DedicatedAttributes"), "resource", &mut attributes);
            attributes.extend(r.get("Attrs").groups().map(attribute));
            Resource {
                attributes,
                dropped_attributes_count: r.get("DroppedAttributesCount").count(),
                ..Default::default()
            }
        });
        let scope_spans = rs
            .get("ss")
            .groups()
            .map(|ss| self.scope_spans(ss, trace_id))
            .collect();
        ResourceSpans {
            resource,
            scope_spans,
            schema_url: String::new(),
        }
    }

    fn scope_spans(&self, ss: At<'_>, trace_id: &[u8]) -> ScopeSpans {
        let s = ss.get("Scope");
        let scope = s.is_group().then(|| InstrumentationScope {
            name: s.get("Name").string(),
            version: s.get("Version").string(),
            attributes: s.get("Attrs").groups().map(attribute).collect(),
            dropped_attributes_count: s.get("DroppedAttributesCount").count(),
        });
        let spans = ss
            .get("Spans")
            .groups()
            .map(|s| self.span(s, trace_id))
            .collect();
        ScopeSpans {
            scope,
            spans,
            schema_url: String::new(),
        }
    }

    fn span(&self, s: At<'_>, trace_id: &[u8]) -> Span {
        let start = s.get("StartTimeUnixNano").uint();
        let mut attributes = Vec::new();
        for (col, name) in V4_SPAN_COLUMNS {
            let f = s.get(col);
            if let Some(v) = f.str() {
                attributes.push(kv(name, any_value::Value::StringValue(v)));
            } else if let Some(i) = f.int() {
                attributes.push(kv(name, any_value::Value::IntValue(i)));
            }
        }
        self.dedicated(s.get("DedicatedAttributes"), "span", &mut attributes);
        attributes.extend(s.get("Attrs").groups().map(attribute));
        let events = s
            .get("Events")
            .groups()
            .map(|e| {
                let mut attributes = Vec::new();
                self.dedicated(e.get("DedicatedAttributes"), "event", &mut attributes);
                attributes.extend(e.get("Attrs").groups().map(attribute));
                span::Event {
                    time_unix_nano: start + e.get("TimeSinceStartNano").uint(),
                    name: e.get("Name").string(),
                    attributes,
                    dropped_attributes_count: e.get("DroppedAttributesCount").count(),
                }
            })
            .collect();
        let links = s
            .get("Links")
            .groups()
            .map(|l| span::Link {
                trace_id: l.get("TraceID").bytes(),
                span_id: l.get("SpanID").bytes(),
                trace_state: l.get("TraceState").string(),
                attributes: l.get("Attrs").groups().map(attribute).collect(),
                dropped_attributes_count: l.get("DroppedAttributesCount").count(),
                flags: 0,
            })
            .collect();
        let code = s.get("StatusCode").int().unwrap_or(0) as i32;
        let message = s.get("StatusMessage").string();
        Span {
            trace_id: trace_id.to_vec(),
            span_id: s.get("SpanID").bytes(),
            trace_state: s.get("TraceState").string(),
            parent_span_id: s.get("ParentSpanID").bytes(),
            flags: 0,
            name: s.get("Name").string(),
            kind: s.get("Kind").int().unwrap_or(0) as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + s.get("DurationNano").uint(),
            attributes,
            dropped_attributes_count: s.get("DroppedAttributesCount").count(),
            events,
            dropped_events_count: s.get("DroppedEventsCount").count(),
            links,
            dropped_links_count: s.get("DroppedLinksCount").count(),
            status: (code != 0 || !message.is_empty()).then_some(Status { message, code }),
        }
    }

    /// Dedicated columns back to attributes, by slot: `StringNN` and `IntNN` of `scope`.
    fn dedicated(&self, g: At<'_>, scope: &str, out: &mut Vec<KeyValue>) {
        if !g.is_group() {
            return;
        }
        for (int_col, prefix) in [(false, "String"), (true, "Int")] {
            for (slot, name) in self.meta.dedicated(scope, int_col).into_iter().enumerate() {
                let value = g.get(&format!("{prefix}{:02}", slot + 1));
                let one = |f: At<'_>| -> Option<any_value::Value> {
                    if int_col {
                        f.int().map(any_value::Value::IntValue)
                    } else {
                        f.str().map(any_value::Value::StringValue)
                    }
                };
                if let Node::List(items) = value.node {
                    match items.len() {
                        0 => {}
                        1 => out.extend(value.list().next().and_then(one).map(|v| kv(name, v))),
                        _ => {
                            let values = value.list().filter_map(one).filter_map(any).collect();
                            out.push(kv(
                                name,
                                any_value::Value::ArrayValue(ArrayValue { values }),
                            ));
                        }
                    }
                } else {
                    out.extend(one(value).map(|v| kv(name, v)));
                }
            }
        }
    }
}

/// One `Attribute` group back to an OTLP key-value.
fn attribute(a: At<'_>) -> KeyValue {
    let key = a.get("Key").string();
    if let Some(json) = a.get("ValueUnsupported").str()
        && let Ok(v) = serde_json::from_str::<AnyValue>(&json)
    {
        return KeyValue {
            key,
            value: Some(v),
            ..Default::default()
        };
    }
    let is_array = matches!(a.get("IsArray").node, Node::Bool(true));
    let mut values: Vec<any_value::Value> = Vec::new();
    values.extend(
        a.get("Value")
            .list()
            .map(|f| any_value::Value::StringValue(f.string())),
    );
    values.extend(
        a.get("ValueInt")
            .list()
            .filter_map(At::int)
            .map(any_value::Value::IntValue),
    );
    values.extend(a.get("ValueDouble").list().filter_map(|f| match f.node {
        Node::Double(d) => Some(any_value::Value::DoubleValue(*d)),
        _ => None,
    }));
    values.extend(a.get("ValueBool").list().filter_map(|f| match f.node {
        Node::Bool(b) => Some(any_value::Value::BoolValue(*b)),
        _ => None,
    }));
    let value = if is_array || values.len() > 1 {
        any(any_value::Value::ArrayValue(ArrayValue {
            values: values.into_iter().filter_map(any).collect(),
        }))
    } else {
        values.pop().and_then(any)
    };
    KeyValue {
        key,
        value,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    use super::*;
    use crate::copy::Reading;

    /// A row of parquet's record API as a [`Node`]: the oracle the assembly is checked against.
    fn node_of(f: &Field) -> Node {
        match f {
            Field::Null => Node::Null,
            Field::Bool(b) => Node::Bool(*b),
            Field::Byte(v) => Node::Int(*v as i64),
            Field::Short(v) => Node::Int(*v as i64),
            Field::Int(v) => Node::Int(*v as i64),
            Field::Long(v) => Node::Int(*v),
            Field::UByte(v) => Node::Int(*v as i64),
            Field::UShort(v) => Node::Int(*v as i64),
            Field::UInt(v) => Node::Int(*v as i64),
            Field::ULong(v) => Node::Int(*v as i64),
            Field::Float(v) => Node::Double(*v as f64),
            Field::Double(v) => Node::Double(*v),
            Field::Str(s) => Node::Bytes(ByteArray::from(s.as_str())),
            Field::Bytes(b) => Node::Bytes(b.clone()),
            Field::Group(row) => {
                Node::Group(row.get_column_iter().map(|(_, f)| node_of(f)).collect())
            }
            Field::ListInternal(l) => Node::List(l.elements().iter().map(node_of).collect()),
            Field::MapInternal(m) => Node::List(
                m.entries()
                    .iter()
                    .map(|(k, v)| Node::Group(vec![node_of(k), node_of(v)]))
                    .collect(),
            ),
            other => panic!("field {other:?} not in Tempo's schemas"),
        }
    }

    /// Assembles every row of `data` in windows of `window` rows and checks each against the
    /// record API; the number of rows. `dictionary`: string columns whose pages allow it are
    /// read as dictionary indexes (as compaction reads them).
    fn same_as_record_api(data: Bytes, window: usize, dictionary: bool) -> usize {
        let file = SerializedFileReader::new(data.clone()).unwrap();
        let descr = file.metadata().file_metadata().schema_descr_ptr();
        let asm = Assembler::new(&descr).unwrap();
        let mut expected = file.get_row_iter(None).unwrap();
        let mut n = 0;
        let dictionary = vec![dictionary; descr.num_columns()];
        for rg in 0..file.num_row_groups() {
            let group = file.get_row_group(rg).unwrap();
            let mut reading = Reading::new(group.as_ref(), &descr, &dictionary, "test").unwrap();
            while reading.rows_left > 0 {
                let g = reading.window(window, &descr, "test").unwrap();
                for got in asm.records(&g.cols).unwrap() {
                    let want = expected.next().unwrap().unwrap();
                    let want =
                        Node::Group(want.get_column_iter().map(|(_, f)| node_of(f)).collect());
                    assert_eq!(got, want, "row {n}");
                    n += 1;
                }
            }
        }
        assert!(expected.next().is_none());
        n
    }

    fn testdata(path: &str) -> Bytes {
        let root = crate::testdata_root();
        let block = std::fs::read_dir(root.join(path))
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        Bytes::from(std::fs::read(block.path().join("data.parquet")).unwrap())
    }

    #[test]
    fn rows_assemble_as_the_record_api_reads_them() {
        // Tempo's vParquet5 (plain repeated fields) and vParquet4 (LIST- and MAP-annotated
        // groups, optional columns) blocks, and vivace's frozen block; windows of 1 row and many.
        for (path, rows) in [
            ("tempo-blocks/vParquet5", 363),
            ("tempo-blocks/vParquet4", 213),
            ("vivace-blocks/vParquet5", 0),
        ] {
            for window in [1, 7, 1000] {
                for dictionary in [false, true] {
                    let n = same_as_record_api(testdata(path), window, dictionary);
                    assert!(n > 0 && (rows == 0 || n == rows), "{path}: {n} rows");
                }
            }
        }
    }

    #[test]
    fn inconsistent_levels_are_refused() {
        let data = testdata("tempo-blocks/vParquet5");
        let file = SerializedFileReader::new(data).unwrap();
        let descr = file.metadata().file_metadata().schema_descr_ptr();
        let asm = Assembler::new(&descr).unwrap();
        let group = file.get_row_group(0).unwrap();
        let mut reading = Reading::new(group.as_ref(), &descr, &[], "test").unwrap();
        let g = reading.window(3, &descr, "test").unwrap();
        // A column whose first entry repeats (no record starts there).
        let mut cols = g.cols;
        let deep = (0..cols.len())
            .find(|&i| descr.column(i).max_rep_level() > 1)
            .unwrap();
        cols[deep].rep[0] = 1;
        assert!(asm.records(&cols).is_err());
        // A repetition level above the column's maximum, and missing values.
        cols[deep].rep[0] = 0;
        let at = cols[deep].rep.len() - 1;
        cols[deep].rep[at] = 9;
        assert!(asm.records(&cols).is_err());
        cols[deep].rep[at] = 0;
        cols[deep]
            .def
            .iter_mut()
            .for_each(|d| *d = descr.column(deep).max_def_level());
        cols[deep].rep.iter_mut().for_each(|r| *r = 1);
        cols[deep].rep[0] = 0;
        assert!(asm.records(&cols).is_err());
        // Fewer columns than the schema.
        cols.pop();
        assert!(asm.records(&cols).is_err());
    }
}
