//! A vParquet5 block read column by column into TraceQL's [`SpanBatch`]: only the leaf columns
//! the query needs, no rows assembled, no OTLP in between.
//!
//! vParquet5's repeated fields are plain repeated groups (no LIST wrapper), so list depth equals
//! definition level: `rs` 1, `ss` 2, `Spans` 3, span `Attrs` 4, an attribute's `Value` list 5
//! (events and links one deeper). For a leaf at depth `d` each (repetition, definition) pair
//! says where it belongs: `rep <= d-1 && def >= d-1` opens a new owner at depth `d-1` (a span for
//! a span attribute's key), and `def >= d` adds an item to it. Columns of one level line up in
//! Dremel order, so the n-th owner of one column is the n-th of every other: counting owners
//! per column is all it takes to join them — the flattening of `query-engine.md` §3.2.
//!
//! Every attribute a block stores is given back as the record reader would: `service.name` from
//! `Resource.ServiceName`, dedicated columns by slot from `meta.json`, generic attributes with
//! their types (one element = a scalar); `ValueUnsupported` values are not searchable and are
//! left out, as the OTLP path leaves them out of a batch.

use std::collections::HashMap;

use bytes::Bytes;
use parquet::column::reader::ColumnReader;
use parquet::data_type::ByteArray;
use parquet::file::reader::{FileReader, RowGroupReader, SerializedFileReader};
use vivace_traceql::batch::{
    Projection, SpanBatch, Stored, id8, id16, kind_of_otlp, status_of_otlp,
};

use crate::error::{Error, Result};
use crate::meta::BlockMeta;

/// Reads a vParquet5 `data.parquet` (whole, in memory) into a batch, columns per `proj`.
pub fn read_columnar(
    data: Bytes,
    meta: &BlockMeta,
    key: &str,
    proj: &Projection,
) -> Result<SpanBatch> {
    let pq = |source| Error::Parquet {
        path: key.into(),
        source,
    };
    let file = SerializedFileReader::new(data).map_err(pq)?;
    let schema = file.metadata().file_metadata().schema_descr_ptr();
    let columns: HashMap<String, usize> = (0..schema.num_columns())
        .map(|i| (schema.column(i).path().string(), i))
        .collect();
    let mut batch = SpanBatch::default();
    for rg in 0..file.num_row_groups() {
        let group = file.get_row_group(rg).map_err(pq)?;
        let mut r = RowGroup {
            group: group.as_ref(),
            columns: &columns,
            key,
            narrow: &Narrow::default(),
        };
        r.read_into(&mut batch, meta, proj)?;
    }
    Ok(batch)
}

/// One row group being read into a batch.
pub(crate) struct RowGroup<'a> {
    pub(crate) group: &'a dyn RowGroupReader,
    pub(crate) columns: &'a HashMap<String, usize>,
    pub(crate) key: &'a str,
    pub(crate) narrow: &'a Narrow,
}

/// Attribute columns a row group's read leaves out although the projection covers their level,
/// because the query cannot read them (see `prune::read_pruned`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Narrow {
    /// The generic span attributes: their key dictionary holds none of the query's names.
    pub(crate) span_generic: bool,
    /// The generic resource attributes, likewise.
    pub(crate) resource_generic: bool,
    /// Dedicated columns (paths) of names the query does not read.
    pub(crate) dedicated: std::collections::HashSet<String>,
}

impl Narrow {
    /// Whether the read of `path` is left out.
    pub(crate) fn skips(&self, path: &str) -> bool {
        (self.span_generic && path.starts_with("rs.ss.Spans.Attrs."))
            || (self.resource_generic && path.starts_with("rs.Resource.Attrs."))
            || self.dedicated.contains(path)
    }

    /// Whether anything the projection covers is left out.
    pub(crate) fn is_narrowed(&self) -> bool {
        self.span_generic || self.resource_generic || !self.dedicated.is_empty()
    }
}

/// One leaf column of a row group: its levels and its values (one per level entry at the
/// maximum definition level).
pub(crate) struct Leaf<T> {
    pub(crate) def: Vec<i16>,
    pub(crate) rep: Vec<i16>,
    pub(crate) values: Vec<T>,
}

impl<T> Leaf<T> {
    fn empty() -> Leaf<T> {
        Leaf {
            def: Vec::new(),
            rep: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Items per owner: the owners live at depth `d - 1`, the items at depth `d`.
    pub(crate) fn counts(&self, d: i16) -> Vec<u32> {
        let mut out = Vec::new();
        for (i, &def) in self.def.iter().enumerate() {
            let rep = self.rep.get(i).copied().unwrap_or(0);
            if rep < d && def >= d - 1 {
                out.push(0);
            }
            if def >= d
                && let Some(c) = out.last_mut()
            {
                *c += 1;
            }
        }
        out
    }
}

macro_rules! read_leaf {
    ($self:expr, $path:expr, $variant:ident, $t:ty) => {{
        match $self.columns.get($path) {
            None => Ok::<Option<Leaf<$t>>, Error>(None),
            Some(&i) => {
                let pq = |source| Error::Parquet {
                    path: $self.key.into(),
                    source,
                };
                let ColumnReader::$variant(mut r) = $self.group.get_column_reader(i).map_err(pq)?
                else {
                    return Err(Error::Schema {
                        path: $self.key.into(),
                        what: format!("column {} has an unexpected type", $path),
                    });
                };
                let mut leaf = Leaf::<$t>::empty();
                // One growth instead of many: the chunk says how many level entries it holds.
                let entries = $self.group.metadata().column(i).num_values().max(0) as usize;
                leaf.def.reserve(entries);
                leaf.rep.reserve(entries);
                leaf.values.reserve(entries);
                loop {
                    let (records, _, _) = r
                        .read_records(
                            64 * 1024,
                            Some(&mut leaf.def),
                            Some(&mut leaf.rep),
                            &mut leaf.values,
                        )
                        .map_err(pq)?;
                    if records == 0 {
                        break;
                    }
                }
                Ok(Some(leaf))
            }
        }
    }};
}

/// Dictionary IDs of the strings of one column, memoised by where their bytes are: values of a
/// dictionary-encoded page are slices of its dictionary, so a repeated value costs a pointer
/// lookup instead of hashing and comparing its bytes. Sound only while the values it saw are
/// alive (their buffers cannot be reused): one memo per column read, dropped with it.
#[derive(Default)]
pub(crate) struct Memo(HashMap<(usize, usize), u32, rustc_hash::FxBuildHasher>);

impl Memo {
    fn id(&mut self, batch: &mut SpanBatch, b: &[u8]) -> vivace_traceql::batch::StrId {
        self.id_with(b, |b| batch.intern_bytes(b))
    }

    /// The ID of `b`, given by `intern` the first time its bytes are seen.
    pub(crate) fn id_with(&mut self, b: &[u8], intern: impl FnOnce(&[u8]) -> u32) -> u32 {
        *self
            .0
            .entry((b.as_ptr() as usize, b.len()))
            .or_insert_with(|| intern(b))
    }
}

/// The attributes of one owner level (`prefix` = the path of the `Attrs` group), decoded.
struct Attrs {
    /// Attributes per owner.
    per_owner: Vec<u32>,
    keys: Vec<vivace_traceql::batch::StrId>,
    stored: Vec<Option<Stored>>,
}

impl RowGroup<'_> {
    pub(crate) fn bytes(&self, path: &str) -> Result<Option<Leaf<ByteArray>>> {
        read_leaf!(self, path, ByteArrayColumnReader, ByteArray)
    }

    /// A string column's values as IDs: `intern` of each distinct dictionary entry (see
    /// [`crate::dict_ids`]), or of each value through a pointer [`Memo`] when the chunk is
    /// encoded otherwise.
    pub(crate) fn string_ids(
        &self,
        path: &str,
        intern: &mut impl FnMut(&[u8]) -> u32,
    ) -> Result<Option<Leaf<u32>>> {
        let Some(&i) = self.columns.get(path) else {
            return Ok(None);
        };
        if let Some(leaf) =
            crate::dict_ids::dict_ids(self.group, i, intern).map_err(|e| e.at(self.key, path))?
        {
            return Ok(Some(leaf));
        }
        let Some(leaf) = self.bytes(path)? else {
            return Ok(None);
        };
        let mut memo = Memo::default();
        let values = leaf
            .values
            .iter()
            .map(|b| memo.id_with(b.data(), &mut *intern))
            .collect();
        Ok(Some(Leaf {
            def: leaf.def,
            rep: leaf.rep,
            values,
        }))
    }

    pub(crate) fn i64s(&self, path: &str) -> Result<Option<Leaf<i64>>> {
        read_leaf!(self, path, Int64ColumnReader, i64)
    }

    fn f64s(&self, path: &str) -> Result<Option<Leaf<f64>>> {
        read_leaf!(self, path, DoubleColumnReader, f64)
    }

    fn bools(&self, path: &str) -> Result<Option<Leaf<bool>>> {
        read_leaf!(self, path, BoolColumnReader, bool)
    }

    pub(crate) fn need<T>(&self, leaf: Option<Leaf<T>>, path: &str) -> Result<Leaf<T>> {
        leaf.ok_or_else(|| Error::Schema {
            path: self.key.into(),
            what: format!("no column {path}"),
        })
    }

    /// Generic attributes under `prefix` (`rs.ss.Spans.Attrs`) whose owners are at depth
    /// `d - 1` (the attribute group itself is at depth `d`).
    fn attrs(&self, prefix: &str, d: i16, batch: &mut SpanBatch, keys_only: bool) -> Result<Attrs> {
        let key_path = format!("{prefix}.Key");
        let keys = self.need(
            self.string_ids(&key_path, &mut |k| batch.intern_bytes(k))?,
            &key_path,
        )?;
        let per_owner = keys.counts(d);
        let n = keys.values.len();
        let key_ids = keys.values;
        if keys_only {
            // Tag names: every key, with a placeholder value.
            return Ok(Attrs {
                per_owner,
                keys: key_ids,
                stored: vec![Some(Stored::Bool(true)); n],
            });
        }
        let is_array = self
            .bools(&format!("{prefix}.IsArray"))?
            .map(|l| l.values)
            .unwrap_or_default();
        let strs = self.string_ids(&format!("{prefix}.Value"), &mut |v| batch.intern_bytes(v))?;
        let ints = self.i64s(&format!("{prefix}.ValueInt"))?;
        let floats = self.f64s(&format!("{prefix}.ValueDouble"))?;
        let bools = self.bools(&format!("{prefix}.ValueBool"))?;
        fn counts<T>(l: &Option<Leaf<T>>, d: i16) -> Vec<u32> {
            l.as_ref().map(|l| l.counts(d)).unwrap_or_default()
        }
        let (cs, ci, cf, cb) = (
            counts(&strs, d + 1),
            counts(&ints, d + 1),
            counts(&floats, d + 1),
            counts(&bools, d + 1),
        );
        let (mut os, mut oi, mut of, mut ob) = (0usize, 0usize, 0usize, 0usize);
        let mut stored = Vec::with_capacity(n);
        for j in 0..n {
            // A one-element array is searched as a scalar (vParquet5), so IsArray only
            // matters for lists of two or more, which are arrays anyway.
            let _ = is_array.get(j);
            let (ns, ni, nf, nb) = (
                cs.get(j).copied().unwrap_or(0) as usize,
                ci.get(j).copied().unwrap_or(0) as usize,
                cf.get(j).copied().unwrap_or(0) as usize,
                cb.get(j).copied().unwrap_or(0) as usize,
            );
            let v = if ns > 0 {
                let vals = &strs.as_ref().map_or(&[][..], |l| &l.values[..])[os..os + ns];
                Some(if ns == 1 {
                    Stored::Str(vals[0])
                } else {
                    let at = batch.arr_str.len() as u32;
                    batch.arr_str.extend_from_slice(vals);
                    Stored::StrArr(at, ns as u32)
                })
            } else if ni > 0 {
                let vals = &ints.as_ref().map_or(&[][..], |l| &l.values[..])[oi..oi + ni];
                Some(if ni == 1 {
                    Stored::Int(vals[0])
                } else {
                    let at = batch.arr_int.len() as u32;
                    batch.arr_int.extend_from_slice(vals);
                    Stored::IntArr(at, ni as u32)
                })
            } else if nf > 0 {
                let vals = &floats.as_ref().map_or(&[][..], |l| &l.values[..])[of..of + nf];
                Some(if nf == 1 {
                    Stored::Float(vals[0])
                } else {
                    let at = batch.arr_float.len() as u32;
                    batch.arr_float.extend_from_slice(vals);
                    Stored::FloatArr(at, nf as u32)
                })
            } else if nb > 0 {
                let vals = &bools.as_ref().map_or(&[][..], |l| &l.values[..])[ob..ob + nb];
                Some(if nb == 1 {
                    Stored::Bool(vals[0])
                } else {
                    let at = batch.arr_bool.len() as u32;
                    batch.arr_bool.extend_from_slice(vals);
                    Stored::BoolArr(at, nb as u32)
                })
            } else {
                None
            };
            os += ns;
            oi += ni;
            of += nf;
            ob += nb;
            stored.push(v);
        }
        Ok(Attrs {
            per_owner,
            keys: key_ids,
            stored,
        })
    }

    /// Dedicated columns of a scope under `prefix` (`rs.ss.Spans.DedicatedAttributes`) at
    /// depth `d` (owners at `d - 1`): per owner, (name, value) pairs.
    fn dedicated(
        &self,
        meta: &BlockMeta,
        scope: &str,
        prefix: &str,
        d: i16,
        owners: usize,
        batch: &mut SpanBatch,
    ) -> Result<Vec<Vec<(u32, Stored)>>> {
        let mut out: Vec<Vec<(u32, Stored)>> = vec![Vec::new(); owners];
        for (slot, name) in meta.dedicated(scope, false).into_iter().enumerate() {
            let path = format!("{prefix}.String{:02}", slot + 1);
            if self.narrow.skips(&path) {
                continue;
            }
            let Some(leaf) = self.string_ids(&path, &mut |v| batch.intern_bytes(v))? else {
                continue;
            };
            let name = batch.intern(name);
            let mut at = 0usize;
            for (o, &c) in leaf.counts(d).iter().enumerate() {
                let c = c as usize;
                let vals = &leaf.values[at..at + c];
                at += c;
                let v = match vals {
                    [] => continue,
                    [one] => Stored::Str(*one),
                    many => {
                        let start = batch.arr_str.len() as u32;
                        batch.arr_str.extend_from_slice(many);
                        Stored::StrArr(start, many.len() as u32)
                    }
                };
                if let Some(slot) = out.get_mut(o) {
                    slot.push((name, v));
                }
            }
        }
        for (slot, name) in meta.dedicated(scope, true).into_iter().enumerate() {
            let path = format!("{prefix}.Int{:02}", slot + 1);
            if self.narrow.skips(&path) {
                continue;
            }
            let Some(leaf) = self.i64s(&path)? else {
                continue;
            };
            let name = batch.intern(name);
            let mut at = 0usize;
            for (o, &c) in leaf.counts(d).iter().enumerate() {
                let c = c as usize;
                let vals = &leaf.values[at..at + c];
                at += c;
                let v = match vals {
                    [] => continue,
                    [one] => Stored::Int(*one),
                    many => {
                        let start = batch.arr_int.len() as u32;
                        batch.arr_int.extend_from_slice(many);
                        Stored::IntArr(start, many.len() as u32)
                    }
                };
                if let Some(slot) = out.get_mut(o) {
                    slot.push((name, v));
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn read_into(
        &mut self,
        batch: &mut SpanBatch,
        meta: &BlockMeta,
        proj: &Projection,
    ) -> Result<()> {
        // Structure: traces, resources (depth 1), scopes (2), spans (3).
        let trace_ids = self.need(self.bytes("TraceID")?, "TraceID")?.values;
        let services = self.need(
            self.bytes("rs.Resource.ServiceName")?,
            "rs.Resource.ServiceName",
        )?;
        let rs_per_trace = services.counts(1);
        // Without `span_text` the string and ID columns are not read at all: levels come from
        // the start times, names and IDs are left empty.
        let text = proj.span_text;
        let scope_names = self.need(self.bytes("rs.ss.Scope.Name")?, "rs.ss.Scope.Name")?;
        let ss_per_rs = scope_names.counts(2);
        let scope_versions = if text {
            self.need(self.bytes("rs.ss.Scope.Version")?, "rs.ss.Scope.Version")?
                .values
        } else {
            Vec::new()
        };
        let starts = self.need(
            self.i64s("rs.ss.Spans.StartTimeUnixNano")?,
            "rs.ss.Spans.StartTimeUnixNano",
        )?;
        let spans_per_ss = starts.counts(3);
        let starts = starts.values;
        let text_column = |path: &str| -> Result<Vec<ByteArray>> {
            if text {
                Ok(self.need(self.bytes(path)?, path)?.values)
            } else {
                Ok(Vec::new())
            }
        };
        let span_ids = text_column("rs.ss.Spans.SpanID")?;
        let parents = text_column("rs.ss.Spans.ParentSpanID")?;
        let names = if text {
            let path = "rs.ss.Spans.Name";
            self.need(self.string_ids(path, &mut |b| batch.intern_bytes(b))?, path)?
                .values
        } else {
            Vec::new()
        };
        let kinds = self
            .need(self.i64s("rs.ss.Spans.Kind")?, "rs.ss.Spans.Kind")?
            .values;
        let codes = self
            .need(
                self.i64s("rs.ss.Spans.StatusCode")?,
                "rs.ss.Spans.StatusCode",
            )?
            .values;
        let messages = text_column("rs.ss.Spans.StatusMessage")?;
        let durs = self
            .need(
                self.i64s("rs.ss.Spans.DurationNano")?,
                "rs.ss.Spans.DurationNano",
            )?
            .values;
        let n_rs = services.values.len();
        let n_ss = scope_names.values.len();
        let n_spans = starts.len();

        // Attributes per owner level, as projected.
        let res_attrs = if proj.resource_attrs && !self.narrow.resource_generic {
            Some(self.attrs("rs.Resource.Attrs", 2, batch, proj.keys_only)?)
        } else {
            None
        };
        let res_dedicated = if proj.resource_attrs {
            self.dedicated(
                meta,
                "resource",
                "rs.Resource.DedicatedAttributes",
                2,
                n_rs,
                batch,
            )?
        } else {
            vec![Vec::new(); n_rs]
        };
        let scope_attrs = if proj.scope_attrs {
            Some(self.attrs("rs.ss.Scope.Attrs", 3, batch, proj.keys_only)?)
        } else {
            None
        };
        let span_attrs = if proj.span_attrs && !self.narrow.span_generic {
            Some(self.attrs("rs.ss.Spans.Attrs", 4, batch, proj.keys_only)?)
        } else {
            None
        };
        let span_dedicated: Vec<Vec<_>> = if proj.span_attrs {
            self.dedicated(
                meta,
                "span",
                "rs.ss.Spans.DedicatedAttributes",
                4,
                n_spans,
                batch,
            )?
        } else {
            Vec::new()
        };

        let service_key = batch.intern("service.name");
        // Resources.
        let rs_base = batch.resources.len() as u32;
        let mut res_attr_at = 0usize;
        let mut memo = Memo::default();
        for (r, service) in services.values.iter().enumerate() {
            let start = batch.attr_key.len() as u32;
            let service_opt = (!service.data().is_empty()).then(|| memo.id(batch, service.data()));
            if let Some(s) = service_opt {
                batch.attr_key.push(service_key);
                batch.attr_value.push(Stored::Str(s));
            }
            for (k, v) in &res_dedicated[r] {
                batch.attr_key.push(*k);
                batch.attr_value.push(*v);
            }
            if let Some(a) = &res_attrs {
                let c = a.per_owner.get(r).copied().unwrap_or(0) as usize;
                push_attrs(batch, a, res_attr_at, c);
                res_attr_at += c;
            }
            batch.resources.push(vivace_traceql::batch::ResourceRow {
                attrs: start..batch.attr_key.len() as u32,
                service_opt,
            });
        }
        // Scopes.
        let ss_base = batch.scopes.len() as u32;
        let mut scope_attr_at = 0usize;
        let (mut name_memo, mut version_memo) = (Memo::default(), Memo::default());
        for s in 0..n_ss {
            let start = batch.attr_key.len() as u32;
            if let Some(a) = &scope_attrs {
                let c = a.per_owner.get(s).copied().unwrap_or(0) as usize;
                push_attrs(batch, a, scope_attr_at, c);
                scope_attr_at += c;
            }
            let name = if text {
                name_memo.id(batch, scope_names.values[s].data())
            } else {
                name_memo.id(batch, &[])
            };
            let version =
                version_memo.id(batch, scope_versions.get(s).map_or(&[][..], |v| v.data()));
            batch.scopes.push(vivace_traceql::batch::ScopeRow {
                name,
                version,
                attrs: start..batch.attr_key.len() as u32,
            });
        }

        // Events and links, per span.
        let events = if proj.events {
            Some(self.events(meta, proj, n_spans, batch)?)
        } else {
            None
        };
        let links = if proj.links {
            Some(self.links(proj, n_spans, batch)?)
        } else {
            None
        };

        // Spans, walking the structure to give each its trace, resource and scope.
        let mut span = 0usize;
        batch.reserve_spans(n_spans);
        let mut span_attr_at = 0usize;
        let mut msg_memo = Memo::default();
        let empty = batch.intern("");
        let (mut rs_i, mut ss_i) = (0usize, 0usize);
        for (t, tid) in trace_ids.iter().enumerate() {
            let trace_index = batch.traces.len() as u32;
            let first_span = batch.span_id.len() as u32;
            let n_rs_t = rs_per_trace.get(t).copied().unwrap_or(0) as usize;
            for _ in 0..n_rs_t {
                let n_ss_r = ss_per_rs.get(rs_i).copied().unwrap_or(0) as usize;
                for _ in 0..n_ss_r {
                    let n_sp = spans_per_ss.get(ss_i).copied().unwrap_or(0) as usize;
                    for _ in 0..n_sp {
                        if span >= n_spans {
                            break;
                        }
                        batch.span_trace.push(trace_index);
                        batch.span_resource.push(rs_base + rs_i as u32);
                        batch.span_scope.push(ss_base + ss_i as u32);
                        let (id, parent, name, msg) = if text {
                            (
                                id8(span_ids[span].data()),
                                id8(parents[span].data()),
                                names[span],
                                msg_memo.id(batch, messages[span].data()),
                            )
                        } else {
                            ([0; 8], [0; 8], empty, empty)
                        };
                        batch.span_id.push(id);
                        batch.span_parent_id.push(parent);
                        batch.span_name.push(name);
                        batch.span_kind.push(kind_of_otlp(kinds[span]));
                        batch.span_status.push(status_of_otlp(codes[span]));
                        batch.span_status_message.push(msg);
                        batch.span_start_ns.push(starts[span] as u64);
                        batch.span_duration_ns.push(durs[span] as u64);
                        let start = batch.attr_key.len() as u32;
                        for (k, v) in span_dedicated.get(span).into_iter().flatten() {
                            batch.attr_key.push(*k);
                            batch.attr_value.push(*v);
                        }
                        if let Some(a) = &span_attrs {
                            let c = a.per_owner.get(span).copied().unwrap_or(0) as usize;
                            push_attrs(batch, a, span_attr_at, c);
                            span_attr_at += c;
                        }
                        batch.span_attrs.push(start..batch.attr_key.len() as u32);
                        let e = match &events {
                            Some(ev) => ev[span].clone(),
                            None => {
                                let n = batch.events.len() as u32;
                                n..n
                            }
                        };
                        batch.span_events.push(e);
                        let l = match &links {
                            Some(lk) => lk[span].clone(),
                            None => {
                                let n = batch.links.len() as u32;
                                n..n
                            }
                        };
                        batch.span_links.push(l);
                        span += 1;
                    }
                    ss_i += 1;
                }
                rs_i += 1;
            }
            batch.close_trace_with(
                id16(tid.data()),
                first_span..batch.span_id.len() as u32,
                proj.structure,
            );
        }
        Ok(())
    }

    /// Events per span (ranges into `batch.events`), with their attributes when projected.
    fn events(
        &self,
        _meta: &BlockMeta,
        proj: &Projection,
        n_spans: usize,
        batch: &mut SpanBatch,
    ) -> Result<Vec<std::ops::Range<u32>>> {
        let Some(names) = self.bytes("rs.ss.Spans.Events.Name")? else {
            return Ok(empty_ranges(batch.events.len() as u32, n_spans));
        };
        let times = self
            .i64s("rs.ss.Spans.Events.TimeSinceStartNano")?
            .map(|l| l.values)
            .unwrap_or_default();
        let per_span = names.counts(4);
        let attrs = if proj.event_attrs {
            Some(self.attrs("rs.ss.Spans.Events.Attrs", 5, batch, proj.keys_only)?)
        } else {
            None
        };
        let mut out = Vec::with_capacity(n_spans);
        let (mut e, mut attr_at) = (0usize, 0usize);
        let mut memo = Memo::default();
        for s in 0..n_spans {
            let start = batch.events.len() as u32;
            for _ in 0..per_span.get(s).copied().unwrap_or(0) {
                let a0 = batch.attr_key.len() as u32;
                if let Some(a) = &attrs {
                    let c = a.per_owner.get(e).copied().unwrap_or(0) as usize;
                    push_attrs(batch, a, attr_at, c);
                    attr_at += c;
                }
                let name = memo.id(batch, names.values[e].data());
                batch.events.push(vivace_traceql::batch::EventRow {
                    name,
                    time_since_start_ns: times.get(e).copied().unwrap_or(0) as u64,
                    attrs: a0..batch.attr_key.len() as u32,
                });
                e += 1;
            }
            out.push(start..batch.events.len() as u32);
        }
        Ok(out)
    }

    fn links(
        &self,
        proj: &Projection,
        n_spans: usize,
        batch: &mut SpanBatch,
    ) -> Result<Vec<std::ops::Range<u32>>> {
        let Some(tids) = self.bytes("rs.ss.Spans.Links.TraceID")? else {
            return Ok(empty_ranges(batch.links.len() as u32, n_spans));
        };
        let sids = self
            .bytes("rs.ss.Spans.Links.SpanID")?
            .map(|l| l.values)
            .unwrap_or_default();
        let per_span = tids.counts(4);
        let attrs = if proj.link_attrs {
            Some(self.attrs("rs.ss.Spans.Links.Attrs", 5, batch, proj.keys_only)?)
        } else {
            None
        };
        let mut out = Vec::with_capacity(n_spans);
        let (mut l, mut attr_at) = (0usize, 0usize);
        for s in 0..n_spans {
            let start = batch.links.len() as u32;
            for _ in 0..per_span.get(s).copied().unwrap_or(0) {
                let a0 = batch.attr_key.len() as u32;
                if let Some(a) = &attrs {
                    let c = a.per_owner.get(l).copied().unwrap_or(0) as usize;
                    push_attrs(batch, a, attr_at, c);
                    attr_at += c;
                }
                batch.links.push(vivace_traceql::batch::LinkRow {
                    trace_id: id16(tids.values[l].data()),
                    span_id: id8(sids.get(l).map_or(&[][..], |v| v.data())),
                    attrs: a0..batch.attr_key.len() as u32,
                });
                l += 1;
            }
            out.push(start..batch.links.len() as u32);
        }
        Ok(out)
    }
}

fn empty_ranges(at: u32, n: usize) -> Vec<std::ops::Range<u32>> {
    vec![at..at; n]
}

/// Appends attributes `from..from + count` of `a` (those with a searchable value).
fn push_attrs(batch: &mut SpanBatch, a: &Attrs, from: usize, count: usize) {
    for j in from..(from + count).min(a.keys.len()) {
        if let Some(v) = a.stored[j] {
            batch.attr_key.push(a.keys[j]);
            batch.attr_value.push(v);
        }
    }
}
