//! A search for something rare — a string every match needs (`{ span.order.id = "…" }`) that
//! only a few traces hold — read as those traces alone, instead of their whole row groups.
//!
//! After the usual pruning (row groups whose dictionaries lack a needle are skipped), each row
//! group left has only its needles' columns and its `TraceID` column read; the rows holding
//! every needle (each in one of its columns; service names, seldom rare, only prune) are the
//! candidates. When there are at most a few of them, each is read as trace by ID reads a
//! trace — the pages of its row, through the page index — and the search evaluates those
//! traces; otherwise the caller reads the row groups as usual (what was read here is then a
//! small extra: a needle's columns, one row group at a time, stopping as soon as there are too
//! many candidates).

use std::sync::Arc;

use parquet::column::reader::ColumnReader;
use vivace_common::TraceId;
use vivace_proto::tempopb::Trace;
use vivace_traceql::batch::Projection;

use crate::block_ref::BlockRef;
use crate::columnar::{Narrow, RowGroup};
use crate::error::{Error, Result};
use crate::objects::Objects;
use crate::prune::{Needle, RowGroups, TRACE_ID};
use crate::spans::SERVICE_NAME;

/// The traces of `block` (of `only_opt`'s row groups) whose rows hold every needle, when there
/// are at most `max_traces`: `None` when there are more, when the needles are not strings
/// in this block's columns (or one is a trace ID: trace by ID finds it), or the block is not
/// vParquet5.
pub async fn read_needle_traces(
    backend: &dyn Objects,
    block: &BlockRef,
    needles: &[Needle],
    only_opt: Option<RowGroups>,
    max_traces: usize,
) -> Result<Option<Vec<(TraceId, Trace)>>> {
    if block.meta.format != crate::FORMAT
        || needles.is_empty()
        || needles.iter().any(|n| n.trace_id().is_some())
    {
        return Ok(None);
    }
    // A service name is seldom rare: a row group holds a few services' spans, so looking for
    // the rows of one would mostly find too many. Row groups are still pruned by it.
    let rare: Vec<Needle> = needles
        .iter()
        .filter(|n| !n.columns.iter().any(|c| c == SERVICE_NAME))
        .cloned()
        .collect();
    if rare.is_empty() {
        return Ok(None);
    }
    // The job's row groups are pruned a few at a time (one, then twice as many each step), so
    // that a needle found too often stops the read before the dictionaries of the rest are
    // looked at (the row groups' read that follows looks at them).
    let footer = block.footer(backend).await?;
    let mut rest: Vec<usize> = (0..footer.num_row_groups())
        .filter(|rg| only_opt.as_ref().is_none_or(|o| o.contains(*rg)))
        .collect();
    let needles_all = needles;
    let needles = Arc::new(rare);
    let mut found: Vec<(usize, TraceId)> = Vec::new();
    let mut step = 1usize;
    while !rest.is_empty() {
        let later = rest.split_off(step.min(rest.len()));
        let these = RowGroups::List(std::mem::replace(&mut rest, later));
        step = step.saturating_mul(2);
        let pruned = crate::prune::prune(
            backend,
            block,
            Projection::NONE,
            needles_all,
            None,
            Some(these),
        )
        .await?;
        let Some(&id_col) = pruned.columns.get(TRACE_ID) else {
            return Ok(None);
        };
        let mut cols: Vec<usize> = needles
            .iter()
            .flat_map(|n| {
                n.columns
                    .iter()
                    .filter_map(|c| pruned.columns.get(c).copied())
            })
            .collect();
        if cols.is_empty() {
            return Ok(None);
        }
        cols.push(id_col);
        cols.sort_unstable();
        cols.dedup();
        let columns = Arc::new(pruned.columns);
        for rg in (0..footer.num_row_groups()).filter(|rg| !pruned.skip[*rg]) {
            let ranges: Vec<_> = cols
                .iter()
                .map(|c| {
                    let (s, l) = footer.row_group(rg).column(*c).byte_range();
                    s..s + l
                })
                .collect();
            let parts = crate::prune::fetch_parts(backend, &pruned.key, &ranges).await?;
            let (footer, columns, needles) = (footer.clone(), columns.clone(), needles.clone());
            let (key, size) = (pruned.key.clone(), block.meta.size);
            let ids = tokio::task::spawn_blocking(move || -> Result<Option<Vec<TraceId>>> {
                let reader = Arc::new(crate::prune::Parts::new(parts, size));
                let group = crate::prune::row_group_reader(&reader, &footer, rg, &key)?;
                let r = RowGroup {
                    group: &group,
                    columns: &columns,
                    key: &key,
                    narrow: &Narrow::default(),
                };
                rows_holding(&r, &needles, max_traces)
            })
            .await
            .map_err(|e| Error::Schema {
                path: Default::default(),
                what: format!("needle read task failed: {e}"),
            })??;
            let Some(ids) = ids else {
                return Ok(None);
            };
            found.extend(ids.into_iter().map(|id| (rg, id)));
            if found.len() > max_traces {
                return Ok(None);
            }
        }
    }
    let reads = found.iter().map(|(rg, id)| {
        let footer = footer.clone();
        async move {
            crate::read::find_in_group(backend, block, &footer, *rg, id)
                .await
                .map(|t| t.map(|t| (*id, t)))
        }
    });
    let traces = futures::future::try_join_all(reads).await?;
    Ok(Some(traces.into_iter().flatten().collect()))
}

/// The trace IDs of the rows of `r` that hold every needle in one of its columns; `None` once
/// it is clear there are more than `max_rows` (one needle in one column: its rows are counted
/// as the column is read, 64 rows at a time).
fn rows_holding(
    r: &RowGroup<'_>,
    needles: &[Needle],
    max_rows: usize,
) -> Result<Option<Vec<TraceId>>> {
    let rows = r.group.metadata().num_rows().max(0) as usize;
    let stop_opt = (needles.len() == 1 && needles[0].columns.len() == 1).then_some(max_rows);
    let mut keep = vec![true; rows];
    for n in needles {
        let mut holds = vec![false; rows];
        for path in &n.columns {
            if !scan(r, path, &n.value, &mut holds, stop_opt)? {
                return Ok(None);
            }
        }
        for (k, h) in keep.iter_mut().zip(holds) {
            *k &= h;
        }
    }
    if !keep.contains(&true) {
        return Ok(Some(Vec::new()));
    }
    let ids = r.need(r.bytes(TRACE_ID)?, TRACE_ID)?.values;
    if ids.len() != rows {
        return Err(Error::Schema {
            path: r.key.into(),
            what: format!("{} trace IDs in a row group of {rows} rows", ids.len()),
        });
    }
    Ok(Some(
        ids.iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .filter_map(|(id, _)| TraceId::from_slice(id.data()))
            .collect(),
    ))
}

/// Marks in `holds` the rows of `r` whose column `path` holds `value` (a column the row group
/// lacks holds nothing). `false` when `stop_opt` rows were passed: the scan stopped there.
fn scan(
    r: &RowGroup<'_>,
    path: &str,
    value: &[u8],
    holds: &mut [bool],
    stop_opt: Option<usize>,
) -> Result<bool> {
    let Some(&c) = r.columns.get(path) else {
        return Ok(true);
    };
    let pq = |source| Error::Parquet {
        path: r.key.into(),
        source,
    };
    let ColumnReader::ByteArrayColumnReader(mut reader) =
        r.group.get_column_reader(c).map_err(pq)?
    else {
        return Err(Error::Schema {
            path: r.key.into(),
            what: format!("column {path} is not a byte array"),
        });
    };
    let max_def = r.group.metadata().column(c).column_descr().max_def_level();
    let (mut def, mut rep, mut values) = (Vec::new(), Vec::new(), Vec::new());
    let (mut row, mut found) = (None::<usize>, 0usize);
    loop {
        def.clear();
        rep.clear();
        values.clear();
        let (records, _, _) = reader
            .read_records(64, Some(&mut def), Some(&mut rep), &mut values)
            .map_err(pq)?;
        if records == 0 {
            return Ok(true);
        }
        let mut v = 0usize;
        for i in 0..def.len().max(values.len()) {
            // A new row at repetition level 0; without levels, every value is one.
            if rep.get(i).is_none_or(|l| *l == 0) {
                row = Some(row.map_or(0, |r| r + 1));
            }
            if def.get(i).is_some_and(|d| *d != max_def) {
                continue;
            }
            let (Some(x), Some(h)) = (values.get(v), row.and_then(|r| holds.get_mut(r))) else {
                return Err(Error::Schema {
                    path: r.key.into(),
                    what: format!("column {path}: more values or rows than trace IDs"),
                });
            };
            v += 1;
            if x.data() == value && !*h {
                *h = true;
                found += 1;
                if stop_opt.is_some_and(|max| found > max) {
                    return Ok(false);
                }
            }
        }
    }
}
