//! A vParquet5 block read span by span for TraceQL metrics (`vivace_traceql::spans`): the
//! span start times, the trace IDs, and only the span-level columns the query asks for — no
//! traces assembled, no span IDs, names or attributes it does not read (Tempo's span-only
//! fetch path; `query-engine.md` §3 point 6).
//!
//! The start-time column's levels give every span its trace and resource: an entry with
//! repetition level 0 starts a trace, one with repetition ≤ 1 and definition ≥ 1 a resource,
//! one at definition 3 is a span. Every other span-level leaf holds one value per span in the
//! same order; a resource-level leaf one per resource.
//!
//! Pruning is the search's (`prune.rs`): row groups whose dictionaries rule out a required
//! string are not read. An attribute is given from its dedicated string column (or, for
//! `service.name`, from `Resource.ServiceName`) only where the row group's generic attribute
//! keys prove it is nowhere else; otherwise — or when a dedicated value is an array, or the
//! block is vParquet4 — the read answers `None` and the caller reads a batch instead, so the
//! two paths always agree.

use std::sync::Arc;

use vivace_traceql::batch::{AttrNames, Projection, id16, kind_of_otlp, status_of_otlp};
use vivace_traceql::spans::{NIL, SpanCol, SpanColumns, Values};

use crate::block_ref::BlockRef;
use crate::columnar::{Leaf, Narrow, RowGroup};
use crate::error::{Error, Result};
use crate::objects::Objects;
use crate::prune::{Needle, Parts, Pruned, TRACE_ID, fetch_parts, prune, row_group_reader};

const START: &str = "rs.ss.Spans.StartTimeUnixNano";
pub(crate) const SERVICE_NAME: &str = "rs.Resource.ServiceName";

/// What a span-only read gives: the columns of the row groups read, the bytes fetched, and
/// which row groups the traces are from (index and trace count, in `columns.trace_ids`
/// order).
#[derive(Debug)]
pub struct SpanRead {
    pub columns: SpanColumns,
    pub bytes: u64,
    pub row_groups: Vec<(usize, u32)>,
}

/// Decoded columns and their row groups (index, traces).
type Decoded = (SpanColumns, Vec<(usize, u32)>);

/// Where one asked column is in a block.
#[derive(Debug, Clone)]
enum Source {
    /// A span-level leaf, one value per span.
    Span(&'static str),
    /// A dedicated column of spans (`resource` false) or resources (strings or integers, as
    /// the values it is read into say).
    Dedicated {
        path: String,
        resource: bool,
    },
    ServiceName,
    /// Nowhere in this block: nil for every span.
    Absent,
}

/// Reads `cols` of every span of `block` in the row groups `needles` leave (of those in
/// `only_opt`, when given), or `None` when they cannot be read span by span (see the module
/// comment).
pub async fn read_span_columns(
    backend: &dyn Objects,
    block: &BlockRef,
    cols: &[SpanCol],
    needles: &[Needle],
    names: &AttrNames,
    only_opt: Option<crate::prune::RowGroups>,
) -> Result<Option<SpanRead>> {
    if block.meta.format != crate::FORMAT {
        return Ok(None);
    }
    let attr = |resource: bool| {
        cols.iter()
            .any(|c| matches!(c, SpanCol::Attr { resource: r, .. } if *r == resource))
    };
    let (span_attrs, resource_attrs) = (attr(false), attr(true));
    let proj = Projection {
        span_attrs,
        resource_attrs,
        span_text: false,
        ..Projection::NONE
    };
    // Where each column is, and the kind of values it gives.
    let mut sources = Vec::with_capacity(cols.len());
    let mut kinds = Vec::with_capacity(cols.len());
    for c in cols {
        let (source, kind) = match c {
            SpanCol::Duration => (
                Source::Span("rs.ss.Spans.DurationNano"),
                Values::Duration(Vec::new()),
            ),
            SpanCol::Status => (
                Source::Span("rs.ss.Spans.StatusCode"),
                Values::Status(Vec::new()),
            ),
            SpanCol::Kind => (Source::Span("rs.ss.Spans.Kind"), Values::Kind(Vec::new())),
            SpanCol::Name => (Source::Span("rs.ss.Spans.Name"), Values::Str(Vec::new())),
            SpanCol::StatusMessage => (
                Source::Span("rs.ss.Spans.StatusMessage"),
                Values::Str(Vec::new()),
            ),
            SpanCol::Attr { resource, name } => {
                let scope = if *resource { "resource" } else { "span" };
                let resource = *resource;
                if resource && name == "service.name" {
                    (Source::ServiceName, Values::Str(Vec::new()))
                } else if let Some(path) = block.meta.dedicated_column(scope, true, name) {
                    (
                        Source::Dedicated { path, resource },
                        Values::Int(Vec::new()),
                    )
                } else if let Some(path) = block.meta.dedicated_column(scope, false, name) {
                    (
                        Source::Dedicated { path, resource },
                        Values::Str(Vec::new()),
                    )
                } else {
                    (Source::Absent, Values::Str(Vec::new()))
                }
            }
        };
        sources.push(source);
        kinds.push(kind);
    }
    let Pruned {
        footer,
        key,
        paths: _,
        columns,
        skip,
        narrows,
        mut bytes,
    } = prune(backend, block, proj, needles, Some(names), only_opt).await?;
    let n_rg = footer.num_row_groups();
    let read: Vec<usize> = (0..n_rg).filter(|rg| !skip[*rg]).collect();
    // Attributes are read span-only only where the generic ones cannot hold them.
    let proven =
        |n: &Narrow| (!span_attrs || n.span_generic) && (!resource_attrs || n.resource_generic);
    if !read.iter().all(|rg| proven(&narrows[*rg])) {
        return Ok(None);
    }
    let mut wanted: Vec<&str> = vec![TRACE_ID, START];
    for s in &sources {
        match s {
            Source::Span(p) => wanted.push(p),
            Source::Dedicated { path, .. } => wanted.push(path),
            Source::ServiceName => wanted.push(SERVICE_NAME),
            Source::Absent => {}
        }
    }
    let mut ranges = Vec::new();
    for &rg in &read {
        for p in &wanted {
            if let Some(&col) = columns.get(*p) {
                let (s, l) = footer.row_group(rg).column(col).byte_range();
                ranges.push(s..s + l);
            }
        }
    }
    let parts = fetch_parts(backend, &key, &ranges).await?;
    bytes += parts.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
    let size = block.meta.size;
    let out = tokio::task::spawn_blocking(move || -> Result<Option<Decoded>> {
        let reader = Arc::new(Parts::new(parts, size));
        let mut out = SpanColumns::default();
        out.values = kinds;
        let narrow = Narrow::default();
        let mut row_groups = Vec::with_capacity(read.len());
        for rg in read {
            let group = row_group_reader(&reader, &footer, rg, &key)?;
            let r = RowGroup {
                group: &group,
                columns: &columns,
                key: &key,
                narrow: &narrow,
            };
            let traces = out.trace_ids.len();
            if !read_row_group(&r, &sources, &mut out)? {
                return Ok(None);
            }
            row_groups.push((rg, (out.trace_ids.len() - traces) as u32));
        }
        Ok(Some((out, row_groups)))
    })
    .await
    .map_err(|e| Error::Schema {
        path: Default::default(),
        what: format!("block read task failed: {e}"),
    })??;
    Ok(out.map(|(columns, row_groups)| SpanRead {
        columns,
        bytes,
        row_groups,
    }))
}

/// Appends one row group's spans to `out`; `false` when a value cannot be held (an array).
fn read_row_group(r: &RowGroup<'_>, sources: &[Source], out: &mut SpanColumns) -> Result<bool> {
    let schema = |what: String| Error::Schema {
        path: r.key.into(),
        what,
    };
    let ids = r.need(r.bytes(TRACE_ID)?, TRACE_ID)?.values;
    let starts = r.need(r.i64s(START)?, START)?;
    let (t_base, r_base) = (out.trace_ids.len() as u32, out.resources);
    let first = out.start_ns.len();
    let (mut t, mut res) = (0u32, 0u32);
    out.span_trace.reserve(starts.values.len());
    out.span_resource.reserve(starts.values.len());
    for (i, &def) in starts.def.iter().enumerate() {
        let rep = starts.rep.get(i).copied().unwrap_or(0);
        if rep == 0 && i > 0 {
            t += 1;
        }
        if rep <= 1 && def >= 1 {
            res += 1;
        }
        if def >= 3 {
            out.span_trace.push(t_base + t);
            out.span_resource.push(r_base + res - 1);
        }
    }
    let spans = starts.values.len();
    if ids.len() != t as usize + usize::from(!starts.def.is_empty()) {
        return Err(schema(format!(
            "{} trace IDs for {} traces of the start-time column",
            ids.len(),
            t + 1
        )));
    }
    out.trace_ids.extend(ids.iter().map(|b| id16(b.data())));
    out.start_ns.extend(starts.values.iter().map(|v| *v as u64));
    out.resources += res;
    for (col, source) in sources.iter().enumerate() {
        let len_err = |path: &str, got: usize, want: usize| {
            schema(format!("column {path}: {got} values for {want} owners"))
        };
        let ints = matches!(out.values[col], Values::Int(_));
        match source {
            Source::Span(path) if matches!(out.values[col], Values::Str(_)) => {
                let mut intern = |d: &[u8]| out.intern_bytes(d);
                let ids = r.need(r.string_ids(path, &mut intern)?, path)?.values;
                if ids.len() != spans {
                    return Err(len_err(path, ids.len(), spans));
                }
                push_str(out, col, ids);
            }
            Source::Span(path) => {
                let v = r.need(r.i64s(path)?, path)?.values;
                if v.len() != spans {
                    return Err(len_err(path, v.len(), spans));
                }
                match &mut out.values[col] {
                    Values::Duration(x) => x.extend(v.iter().map(|d| *d as u64)),
                    Values::Status(x) => x.extend(v.iter().map(|c| status_of_otlp(*c))),
                    Values::Kind(x) => x.extend(v.iter().map(|k| kind_of_otlp(*k))),
                    Values::Str(_) | Values::Int(_) => {
                        unreachable!("span columns are strings or intrinsics")
                    }
                }
            }
            Source::ServiceName => {
                // An empty service name is no `service.name` attribute (as batches read it).
                let mut intern = |d: &[u8]| match d {
                    [] => NIL,
                    d => out.intern_bytes(d),
                };
                let per_res = r
                    .need(r.string_ids(SERVICE_NAME, &mut intern)?, SERVICE_NAME)?
                    .values;
                if per_res.len() != res as usize {
                    return Err(len_err(SERVICE_NAME, per_res.len(), res as usize));
                }
                let ids = spread(per_res, true, &out.span_resource[first..], r_base);
                push_str(out, col, ids);
            }
            Source::Dedicated { path, resource } if ints => {
                let Some(leaf) = r.i64s(path)? else {
                    push_int(out, col, vec![None; spans]);
                    continue;
                };
                let counts = owner_counts(&leaf, *resource, res, spans, path, r.key)?;
                let Some(per_owner) = one_per_owner(&counts, None, |at| Some(leaf.values[at]))
                else {
                    return Ok(false);
                };
                let vals = spread(per_owner, *resource, &out.span_resource[first..], r_base);
                push_int(out, col, vals);
            }
            Source::Dedicated { path, resource } => {
                let Some(leaf) = r.string_ids(path, &mut |d| out.intern_bytes(d))? else {
                    push_str(out, col, vec![NIL; spans]);
                    continue;
                };
                let counts = owner_counts(&leaf, *resource, res, spans, path, r.key)?;
                let Some(per_owner) = one_per_owner(&counts, NIL, |at| leaf.values[at]) else {
                    return Ok(false);
                };
                let ids = spread(per_owner, *resource, &out.span_resource[first..], r_base);
                push_str(out, col, ids);
            }
            Source::Absent => push_str(out, col, vec![NIL; spans]),
        }
    }
    Ok(true)
}

/// Values per owner of a dedicated column: per resource (`resource`, `res` of them) or per
/// span (`spans`).
fn owner_counts<T>(
    leaf: &Leaf<T>,
    resource: bool,
    res: u32,
    spans: usize,
    path: &str,
    key: &str,
) -> Result<Vec<u32>> {
    let (d, owners) = if resource {
        (2, res as usize)
    } else {
        (4, spans)
    };
    let counts = leaf.counts(d);
    if counts.len() != owners {
        return Err(Error::Schema {
            path: key.into(),
            what: format!("column {path}: {} values for {owners} owners", counts.len()),
        });
    }
    Ok(counts)
}

/// Each owner's one value (`value(at)` of the value at `at`), `none` where it has none; `None`
/// when an owner has several (an array, which span-only columns do not hold).
fn one_per_owner<T: Copy>(
    counts: &[u32],
    none: T,
    mut value: impl FnMut(usize) -> T,
) -> Option<Vec<T>> {
    let mut out = Vec::with_capacity(counts.len());
    let mut at = 0usize;
    for &c in counts {
        out.push(match c {
            0 => none,
            1 => value(at),
            _ => return None,
        });
        at += c as usize;
    }
    Some(out)
}

/// Per-owner values as per-span values: a resource's value for each of its spans
/// (`span_resource` of the row group's spans, numbered from `r_base`).
fn spread<T: Copy>(
    per_owner: Vec<T>,
    resource: bool,
    span_resource: &[u32],
    r_base: u32,
) -> Vec<T> {
    if !resource {
        return per_owner;
    }
    span_resource
        .iter()
        .map(|r| per_owner[(r - r_base) as usize])
        .collect()
}

fn push_int(out: &mut SpanColumns, col: usize, vals: Vec<Option<i64>>) {
    if let Values::Int(x) = &mut out.values[col] {
        x.extend(vals);
    }
}

fn push_str(out: &mut SpanColumns, col: usize, ids: Vec<u32>) {
    if let Values::Str(x) = &mut out.values[col] {
        x.extend(ids);
    }
}

/// `block`'s row groups in consecutive runs of at least `bytes` compressed bytes each (the
/// last may be smaller), with their compressed bytes: the shards of a read that several
/// threads can share, and that a search with a limit can stop between.
pub async fn row_group_shards(
    backend: &dyn Objects,
    block: &BlockRef,
    bytes: u64,
) -> Result<Vec<(std::ops::Range<usize>, u64)>> {
    let footer = block.footer(backend).await?;
    let mut out = Vec::new();
    let (mut from, mut acc) = (0usize, 0u64);
    for (rg, g) in footer.row_groups().iter().enumerate() {
        acc += g.compressed_size().max(0) as u64;
        if acc >= bytes {
            out.push((from..rg + 1, acc));
            (from, acc) = (rg + 1, 0);
        }
    }
    if from < footer.num_row_groups() || out.is_empty() {
        out.push((from..footer.num_row_groups(), acc));
    }
    Ok(out)
}
