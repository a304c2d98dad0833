//! Reading a vParquet5 block for a search with ranged reads: the footer (cached per block),
//! the dictionary pages the query's required strings can be looked up in, and then only the
//! column chunks the query needs of the row groups that can hold a match.
//!
//! Pruning: for each `attribute = "string"` every match needs (`Query::required_equalities`),
//! the column chunk that would hold the string (`Name`, `Resource.ServiceName`, a dedicated
//! column, or the generic `Attrs.Value` of the scope) is looked up in each row group: when all
//! of its data pages are dictionary-encoded and its dictionary lacks the string, no span of the
//! row group can match and the row group is not read. A chunk whose encoding stats are missing
//! or mixed is never used to prune. This is why a search for something absent costs a few
//! small reads instead of a scan.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Encoding, PageType};
use parquet::column::page::{Page, PageReader};
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::properties::ReaderProperties;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::serialized_reader::{SerializedPageReader, SerializedRowGroupReader};
use vivace_common::TraceId;
use vivace_traceql::ast::{AttrScope, Attribute, Intrinsic};
use vivace_traceql::batch::{AttrNames, Projection, SpanBatch};

use crate::block_ref::BlockRef;
use crate::columnar::{Narrow, RowGroup};
use crate::error::{Error, Result};
use crate::meta::BlockMeta;
use crate::objects::Objects;

/// A string that must be present in one of some column chunks for their row group to hold a
/// match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needle {
    /// Where the string can be: a row group is ruled out only when it is absent from all.
    pub columns: Vec<String>,
    pub value: Vec<u8>,
}

/// The trace ID every match of a query needs, from its required equalities
/// (`{ trace:id = "…" && … }`), when it has one.
pub fn required_trace_id(required: &[(Attribute, String)]) -> Option<TraceId> {
    required
        .iter()
        .filter(|(a, _)| a.intrinsic == Some(Intrinsic::TraceId))
        .find_map(|(_, v)| trace_id_literal(v))
}

/// A `trace:id` literal as an ID: hex, leading zeros optional (Tempo trims them), at most 32
/// digits once they are trimmed.
fn trace_id_literal(v: &str) -> Option<TraceId> {
    let hex = v.trim_start_matches('0');
    if hex.len() > 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    TraceId::from_hex(&format!("{hex:0>32}")).ok()
}

/// The needles of a query's required equalities in this block's layout. Unscoped attributes
/// and intrinsics other than `name` are not used (they could live in several columns).
pub fn needles(meta: &BlockMeta, required: &[(Attribute, String)]) -> Vec<Needle> {
    let mut out = Vec::new();
    for (a, v) in required {
        let columns = match (a.intrinsic, a.scope) {
            (Some(Intrinsic::Name), _) => vec!["rs.ss.Spans.Name".to_string()],
            // The trace ID: found by the block's bloom and the row groups' ID ranges.
            (Some(Intrinsic::TraceId), _) => {
                let Some(id) = trace_id_literal(v) else {
                    continue;
                };
                out.push(Needle {
                    columns: vec![TRACE_ID.to_string()],
                    value: id.0.to_vec(),
                });
                continue;
            }
            (Some(_), _) => continue,
            // A string service name has its own column; any other goes with the attributes.
            (None, AttrScope::Resource) if a.name == "service.name" => vec![
                "rs.Resource.ServiceName".to_string(),
                "rs.Resource.Attrs.Value".to_string(),
            ],
            (None, AttrScope::Resource) => columns_of(meta, "resource", "rs.Resource", &a.name),
            (None, AttrScope::Span) => columns_of(meta, "span", "rs.ss.Spans", &a.name),
            _ => continue,
        };
        out.push(Needle {
            columns,
            value: v.as_bytes().to_vec(),
        });
    }
    out
}

/// The columns a string attribute of `scope` can live in: the generic attribute values, and
/// its dedicated column if it has one (values the dedicated column cannot hold, such as arrays
/// of a scalar column, stay generic).
fn columns_of(meta: &BlockMeta, scope: &str, prefix: &str, name: &str) -> Vec<String> {
    let mut out = vec![format!("{prefix}.Attrs.Value")];
    out.extend(meta.dedicated_column(scope, false, name));
    out
}

pub(crate) const TRACE_ID: &str = "TraceID";

impl Needle {
    /// The trace ID every match needs, when this needle is one (`{ trace:id = "…" }`).
    pub fn trace_id(&self) -> Option<TraceId> {
        match self.columns.as_slice() {
            [c] if c == TRACE_ID => TraceId::from_slice(&self.value),
            _ => None,
        }
    }
}

/// Leaf columns a projection reads (by path prefix).
fn wanted(path: &str, proj: &Projection) -> bool {
    const ALWAYS: &[&str] = &[
        "TraceID",
        "rs.Resource.ServiceName",
        "rs.ss.Scope.Name",
        "rs.ss.Scope.Version",
        "rs.ss.Spans.SpanID",
        "rs.ss.Spans.ParentSpanID",
        "rs.ss.Spans.Name",
        "rs.ss.Spans.Kind",
        "rs.ss.Spans.StatusCode",
        "rs.ss.Spans.StatusMessage",
        "rs.ss.Spans.StartTimeUnixNano",
        "rs.ss.Spans.DurationNano",
    ];
    const SPAN_TEXT: &[&str] = &[
        "rs.ss.Scope.Version",
        "rs.ss.Spans.SpanID",
        "rs.ss.Spans.ParentSpanID",
        "rs.ss.Spans.Name",
        "rs.ss.Spans.StatusMessage",
    ];
    let under = |p: &str| path.starts_with(p);
    if !proj.span_text && SPAN_TEXT.contains(&path) {
        return false;
    }
    if proj.keys_only && path.contains(".Attrs.") && !path.ends_with(".Attrs.Key") {
        return false;
    }
    ALWAYS.contains(&path)
        || (proj.resource_attrs
            && (under("rs.Resource.Attrs.") || under("rs.Resource.DedicatedAttributes.")))
        || (proj.scope_attrs && under("rs.ss.Scope.Attrs."))
        || (proj.span_attrs
            && (under("rs.ss.Spans.Attrs.") || under("rs.ss.Spans.DedicatedAttributes.")))
        || (proj.events
            && (path == "rs.ss.Spans.Events.Name"
                || path == "rs.ss.Spans.Events.TimeSinceStartNano"))
        || (proj.event_attrs && under("rs.ss.Spans.Events.Attrs."))
        || (proj.links
            && (path == "rs.ss.Spans.Links.TraceID" || path == "rs.ss.Spans.Links.SpanID"))
        || (proj.link_attrs && under("rs.ss.Spans.Links.Attrs."))
}

/// What a pruned read gives: the batch of the row groups read, the bytes fetched, and whether
/// every row group asked for was read (only then may the batch stand for the whole block, or
/// the whole run of row groups asked for).
#[derive(Debug)]
pub struct PrunedRead {
    pub batch: SpanBatch,
    pub bytes: u64,
    pub complete: bool,
    pub row_groups: usize,
    pub row_groups_read: usize,
}

/// The row groups of a block a read is limited to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowGroups {
    /// A run of row groups (a shard of a block).
    Range(Range<usize>),
    /// Some row groups, ascending (those holding a prefilter's candidates).
    List(Vec<usize>),
}

impl RowGroups {
    pub fn contains(&self, rg: usize) -> bool {
        match self {
            RowGroups::Range(r) => r.contains(&rg),
            RowGroups::List(l) => l.binary_search(&rg).is_ok(),
        }
    }
}

/// What pruning leaves of a block for one query (steps 1 and 2 of [`read_pruned`]).
pub(crate) struct Pruned {
    pub(crate) footer: Arc<parquet::file::metadata::ParquetMetaData>,
    pub(crate) key: String,
    /// Leaf column paths by index, and indexes by path.
    pub(crate) paths: Vec<String>,
    pub(crate) columns: std::collections::HashMap<String, usize>,
    /// Row groups that cannot hold a match.
    pub(crate) skip: Vec<bool>,
    /// Per row group, the attribute columns the query cannot read.
    pub(crate) narrows: Vec<Narrow>,
    /// Bytes fetched so far (dictionary pages).
    pub(crate) bytes: u64,
}

/// Steps 1 and 2 of [`read_pruned`]: the row groups left and what of them the query cannot
/// read.
pub(crate) async fn prune(
    backend: &dyn Objects,
    block: &BlockRef,
    proj: Projection,
    needles: &[Needle],
    names_opt: Option<&AttrNames>,
    only_opt: Option<RowGroups>,
) -> Result<Pruned> {
    let footer = block.footer(backend).await?;
    let key = block.key("data.parquet");
    let schema = footer.file_metadata().schema_descr_ptr();
    let paths: Vec<String> = (0..schema.num_columns())
        .map(|i| schema.column(i).path().string())
        .collect();
    let columns: std::collections::HashMap<String, usize> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| (p.clone(), i))
        .collect();
    let n_rg = footer.num_row_groups();
    let mut bytes = 0u64;

    // 1. Dictionary pages of the needles' chunks, all row groups in one request. A row group
    //    is ruled out when, for some needle, every column it can be in proves it absent (a
    //    column missing from the schema holds nothing).
    let mut dict_reqs: Vec<(usize, usize, usize, Range<u64>)> = Vec::new(); // rg, needle, col
    let mut unproven = vec![vec![0usize; needles.len()]; n_rg];
    // A trace ID: the bloom rules the block out, else the one row group whose ID range can
    // hold it is the only one left.
    for (ni, n) in needles.iter().enumerate() {
        let Some(id) = n.trace_id() else {
            continue;
        };
        // A bloom that cannot be read rules nothing out.
        let maybe = crate::bloom::test_backend(backend, block, &id)
            .await
            .unwrap_or(true);
        let only = maybe
            .then(|| crate::read::row_group_for(&footer, &id))
            .flatten();
        for (rg, left) in unproven.iter_mut().enumerate() {
            // Counted as present unless ruled out, so dictionaries below never touch it.
            left[ni] = usize::from(only == Some(rg));
        }
    }
    for (rg, left) in unproven.iter_mut().enumerate() {
        if only_opt.as_ref().is_some_and(|o| !o.contains(rg)) {
            continue;
        }
        for (ni, n) in needles.iter().enumerate() {
            if n.columns.first().map(String::as_str) == Some(TRACE_ID) {
                continue;
            }
            for name in &n.columns {
                let Some(&col) = columns.get(name) else {
                    continue;
                };
                left[ni] += 1;
                let c = footer.row_group(rg).column(col);
                if let Some(r) = dictionary_range(c) {
                    dict_reqs.push((rg, ni, col, r));
                }
            }
        }
    }
    if !dict_reqs.is_empty() {
        let ranges: Vec<Range<u64>> = dict_reqs.iter().map(|(_, _, _, r)| r.clone()).collect();
        let got = backend
            .get_ranges(&key, &ranges)
            .await
            .map_err(Error::Backend)?;
        bytes += got.iter().map(|b| b.len() as u64).sum::<u64>();
        for ((rg, ni, col, r), data) in dict_reqs.iter().zip(got) {
            let c = footer.row_group(*rg).column(*col);
            if dictionary_contains(c, r.start, data, &needles[*ni].value, &key)? == Some(false) {
                unproven[*rg][*ni] -= 1;
            }
        }
    }
    let skip: Vec<bool> = unproven
        .iter()
        .enumerate()
        .map(|(rg, per_needle)| {
            per_needle.contains(&0) || only_opt.as_ref().is_some_and(|o| !o.contains(rg))
        })
        .collect();

    // 2. What the query cannot read: dedicated columns of names it does not use, and the
    //    generic attributes of a level whose key dictionary holds none of its names.
    let narrows = narrow(
        backend, block, &footer, &columns, &skip, proj, names_opt, &key,
    )
    .await?;
    bytes += narrows.1;
    let narrows = narrows.0;
    Ok(Pruned {
        footer,
        key,
        paths,
        columns,
        skip,
        narrows,
        bytes,
    })
}

/// Reads `block` for a search: prunes row groups by `needles`, then fetches only the column
/// chunks `proj` needs of the others (one coalesced ranged request) and reads them into a
/// batch on a blocking thread.
pub async fn read_pruned(
    backend: &dyn Objects,
    block: &BlockRef,
    proj: Projection,
    needles: &[Needle],
    names_opt: Option<&AttrNames>,
    only_opt: Option<RowGroups>,
) -> Result<PrunedRead> {
    let Pruned {
        footer,
        key,
        paths,
        columns,
        skip,
        narrows,
        mut bytes,
    } = prune(backend, block, proj, needles, names_opt, only_opt.clone()).await?;
    let n_rg = footer.num_row_groups();
    let asked = only_opt.map_or(n_rg, |o| (0..n_rg).filter(|rg| o.contains(*rg)).count());
    let narrowed = narrows.iter().any(Narrow::is_narrowed);

    // 3. The wanted column chunks of the row groups left.
    let cols: Vec<usize> = (0..paths.len())
        .filter(|i| wanted(&paths[*i], &proj))
        .collect();
    let mut ranges: Vec<Range<u64>> = Vec::new();
    for rg in (0..n_rg).filter(|rg| !skip[*rg]) {
        for &col in cols.iter().filter(|c| !narrows[rg].skips(&paths[**c])) {
            let (s, l) = footer.row_group(rg).column(col).byte_range();
            ranges.push(s..s + l);
        }
    }
    let parts = fetch_parts(backend, &key, &ranges).await?;
    bytes += parts.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
    let meta = block.meta.clone();
    let row_groups_read = skip.iter().filter(|s| !**s).count();
    let batch = tokio::task::spawn_blocking(move || -> Result<SpanBatch> {
        let reader = Arc::new(Parts::new(parts, meta.size));
        let mut batch = SpanBatch::default();
        // Every per-span column grows once, to the spans of all the row groups read.
        if let Some(&start_col) = columns.get("rs.ss.Spans.StartTimeUnixNano") {
            let spans: i64 = (0..n_rg)
                .filter(|rg| !skip[*rg])
                .map(|rg| footer.row_group(rg).column(start_col).num_values())
                .sum();
            batch.reserve_spans(spans.max(0) as usize);
        }
        for rg in (0..n_rg).filter(|rg| !skip[*rg]) {
            let group = row_group_reader(&reader, &footer, rg, &key)?;
            let mut r = RowGroup {
                group: &group,
                columns: &columns,
                key: &key,
                narrow: &narrows[rg],
            };
            r.read_into(&mut batch, &meta, &proj)?;
        }
        Ok(batch)
    })
    .await
    .map_err(|e| Error::Schema {
        path: Default::default(),
        what: format!("block read task failed: {e}"),
    })??;
    Ok(PrunedRead {
        batch,
        bytes,
        complete: row_groups_read == asked && !narrowed,
        row_groups: n_rg,
        row_groups_read,
    })
}

/// Per row group, the attribute columns `names_opt` makes needless (see [`Narrow`]), and the
/// bytes read to know it.
#[allow(clippy::too_many_arguments)]
async fn narrow(
    backend: &dyn Objects,
    block: &BlockRef,
    footer: &parquet::file::metadata::ParquetMetaData,
    columns: &std::collections::HashMap<String, usize>,
    skip: &[bool],
    proj: Projection,
    names_opt: Option<&AttrNames>,
    key: &str,
) -> Result<(Vec<Narrow>, u64)> {
    let n_rg = skip.len();
    let Some(names) = names_opt else {
        return Ok((vec![Narrow::default(); n_rg], 0));
    };
    let mut base = Narrow::default();
    for (on, scope, prefix, wanted) in [
        (
            proj.span_attrs,
            "span",
            "rs.ss.Spans.DedicatedAttributes",
            &names.span,
        ),
        (
            proj.resource_attrs,
            "resource",
            "rs.Resource.DedicatedAttributes",
            &names.resource,
        ),
    ] {
        if !on {
            continue;
        }
        for (int, kind) in [(false, "String"), (true, "Int")] {
            for (slot, name) in block.meta.dedicated(scope, int).into_iter().enumerate() {
                if !wanted.iter().any(|w| w == name) {
                    base.dedicated
                        .insert(format!("{prefix}.{kind}{:02}", slot + 1));
                }
            }
        }
    }
    let mut out = vec![base; n_rg];
    let mut reqs: Vec<(usize, bool, usize, Range<u64>)> = Vec::new(); // rg, span level, col
    for (rg, n) in out.iter_mut().enumerate() {
        if skip[rg] {
            continue;
        }
        for (on, span, col_path, wanted) in [
            (proj.span_attrs, true, "rs.ss.Spans.Attrs.Key", &names.span),
            (
                proj.resource_attrs,
                false,
                "rs.Resource.Attrs.Key",
                &names.resource,
            ),
        ] {
            if !on {
                continue;
            }
            // `service.name` has a column of its own at the resource level.
            let wanted_generic = wanted
                .iter()
                .filter(|w| span || w.as_str() != "service.name")
                .count();
            if wanted_generic == 0 {
                if span {
                    n.span_generic = true;
                } else {
                    n.resource_generic = true;
                }
                continue;
            }
            let Some(&col) = columns.get(col_path) else {
                continue;
            };
            if let Some(r) = dictionary_range(footer.row_group(rg).column(col)) {
                reqs.push((rg, span, col, r));
            }
        }
    }
    if reqs.is_empty() {
        return Ok((out, 0));
    }
    let ranges: Vec<Range<u64>> = reqs.iter().map(|(_, _, _, r)| r.clone()).collect();
    let got = backend
        .get_ranges(key, &ranges)
        .await
        .map_err(Error::Backend)?;
    let bytes = got.iter().map(|b| b.len() as u64).sum::<u64>();
    for ((rg, span, col, r), data) in reqs.iter().zip(got) {
        let c = footer.row_group(*rg).column(*col);
        let wanted = if *span { &names.span } else { &names.resource };
        let mut absent = true;
        for w in wanted
            .iter()
            .filter(|w| *span || w.as_str() != "service.name")
        {
            if dictionary_contains(c, r.start, data.clone(), w.as_bytes(), key)? != Some(false) {
                absent = false;
                break;
            }
        }
        if absent {
            if *span {
                out[*rg].span_generic = true;
            } else {
                out[*rg].resource_generic = true;
            }
        }
    }
    Ok((out, bytes))
}

/// The byte range of a chunk's dictionary page, when every data page of the chunk is
/// dictionary-encoded (else the dictionary cannot prove a value absent).
pub(crate) fn dictionary_range(c: &ColumnChunkMetaData) -> Option<Range<u64>> {
    let dict = c.dictionary_page_offset()? as u64;
    // The footer's page encoding statistics, read as the encodings of the data pages (a mask,
    // parquet's default) or in full.
    let all_dict = match (c.page_encoding_stats_mask(), c.page_encoding_stats()) {
        (Some(mask), _) => {
            mask.is_only(Encoding::PLAIN_DICTIONARY) || mask.is_only(Encoding::RLE_DICTIONARY)
        }
        (None, Some(stats)) => stats.iter().all(|s| {
            !matches!(s.page_type, PageType::DATA_PAGE | PageType::DATA_PAGE_V2)
                || matches!(
                    s.encoding,
                    Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY
                )
        }),
        (None, None) => false,
    };
    let data = c.data_page_offset() as u64;
    (all_dict && data > dict).then_some(dict..data)
}

/// Whether the dictionary page (bytes `data` at file offset `at`) holds `value`; `None` when
/// the page cannot be read as a dictionary of byte strings.
fn dictionary_contains(
    c: &ColumnChunkMetaData,
    at: u64,
    data: Bytes,
    value: &[u8],
    key: &str,
) -> Result<Option<bool>> {
    let len = at + data.len() as u64;
    let reader = Arc::new(Parts::new(
        vec![(at, data)],
        len.max(c.byte_range().0 + c.byte_range().1),
    ));
    let mut pages =
        SerializedPageReader::new(reader, c, 0, None).map_err(|source| Error::Parquet {
            path: key.into(),
            source,
        })?;
    let Ok(Some(Page::DictionaryPage {
        buf, num_values, ..
    })) = pages.get_next_page()
    else {
        return Ok(None);
    };
    let (values, whole) = plain_byte_arrays(&buf, num_values as usize);
    if values.contains(&value) {
        return Ok(Some(true));
    }
    // A dictionary read only in part proves nothing absent.
    Ok(whole.then_some(false))
}

/// PLAIN-encoded byte arrays (a 4-byte little-endian length, then the bytes): as many of the
/// `n` values as `buf` holds, and whether it held all of them.
pub(crate) fn plain_byte_arrays(buf: &[u8], n: usize) -> (Vec<&[u8]>, bool) {
    let mut out = Vec::with_capacity(n);
    let mut i = 0usize;
    for _ in 0..n {
        let Some(len) = buf.get(i..i + 4) else {
            return (out, false);
        };
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let Some(v) = buf.get(i + 4..i + 4 + len) else {
            return (out, false);
        };
        out.push(v);
        i += 4 + len;
    }
    (out, true)
}

/// Fetches `ranges` of `key` (one coalesced request; none for no range) as (file offset,
/// bytes) parts for [`Parts`].
pub(crate) async fn fetch_parts(
    backend: &dyn Objects,
    key: &str,
    ranges: &[Range<u64>],
) -> Result<Vec<(u64, Bytes)>> {
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let got = backend
        .get_ranges(key, ranges)
        .await
        .map_err(Error::Backend)?;
    Ok(ranges.iter().map(|r| r.start).zip(got).collect())
}

/// A reader of row group `rg` over fetched ranges of the file.
pub(crate) fn row_group_reader<'a>(
    reader: &Arc<Parts>,
    footer: &'a parquet::file::metadata::ParquetMetaData,
    rg: usize,
    key: &str,
) -> Result<FetchedGroup<'a>> {
    FetchedGroup::new(reader, footer.row_group(rg)).map_err(|source| Error::Parquet {
        path: key.into(),
        source,
    })
}

/// A row group over fetched ranges of its file, whose column chunks' pages are decoded by
/// `pages.rs` ([`crate::pages::ChunkPages`], one zstd context per thread) rather than by
/// parquet's page reader, which creates a zstd compressor and decompressor for every column
/// chunk it opens — two CPUID instructions of ~7 µs each in a virtual machine, for each of the
/// tens of chunks a search or a compaction reads per row group.
pub(crate) struct FetchedGroup<'a> {
    inner: SerializedRowGroupReader<'a, Parts>,
    parts: Arc<Parts>,
}

impl<'a> FetchedGroup<'a> {
    pub(crate) fn new(
        parts: &Arc<Parts>,
        group: &'a parquet::file::metadata::RowGroupMetaData,
    ) -> parquet::errors::Result<FetchedGroup<'a>> {
        let inner = SerializedRowGroupReader::new(
            parts.clone(),
            group,
            parquet::file::metadata::page_index::RowGroupPageIndex::new(0, None),
            Arc::new(ReaderProperties::builder().build()),
        )?;
        Ok(FetchedGroup {
            inner,
            parts: parts.clone(),
        })
    }
}

impl parquet::file::reader::RowGroupReader for FetchedGroup<'_> {
    fn metadata(&self) -> &parquet::file::metadata::RowGroupMetaData {
        self.inner.metadata()
    }

    fn num_columns(&self) -> usize {
        self.inner.num_columns()
    }

    fn get_column_page_reader(
        &self,
        i: usize,
    ) -> parquet::errors::Result<Box<dyn parquet::column::page::PageReader>> {
        let c = self.inner.metadata().column(i);
        let (start, len) = c.byte_range();
        if let Ok(bytes) = self.parts.slice(start, Some(len as usize))
            && let Some(pages) = crate::pages::ChunkPages::new(c.compression(), bytes)
        {
            return Ok(Box::new(pages));
        }
        self.inner.get_column_page_reader(i)
    }

    fn get_column_bloom_filter(&self, i: usize) -> Option<&parquet::bloom_filter::Sbbf> {
        self.inner.get_column_bloom_filter(i)
    }

    fn get_row_iter(
        &self,
        projection: Option<parquet::schema::types::Type>,
    ) -> parquet::errors::Result<parquet::record::reader::RowIter<'_>> {
        self.inner.get_row_iter(projection)
    }
}

/// Fetched ranges of a file, read as if they were the file.
pub(crate) struct Parts {
    parts: Vec<(u64, Bytes)>,
    len: u64,
}

impl Parts {
    pub(crate) fn new(mut parts: Vec<(u64, Bytes)>, len: u64) -> Parts {
        parts.sort_by_key(|(s, _)| *s);
        Parts { parts, len }
    }

    fn slice(&self, start: u64, length: Option<usize>) -> parquet::errors::Result<Bytes> {
        let i = self.parts.partition_point(|(s, _)| *s <= start);
        let found = i
            .checked_sub(1)
            .and_then(|i| self.parts.get(i))
            .filter(|(s, d)| start < s + d.len() as u64);
        let Some((s, d)) = found else {
            return Err(parquet::errors::ParquetError::General(format!(
                "read at {start} outside the fetched ranges"
            )));
        };
        let off = (start - s) as usize;
        let end = length.map_or(d.len(), |l| off + l);
        if end > d.len() {
            return Err(parquet::errors::ParquetError::EOF(format!(
                "read of {length:?} bytes at {start} past a fetched range"
            )));
        }
        Ok(d.slice(off..end))
    }
}

impl Length for Parts {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for Parts {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        Ok(self.slice(start, None)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, Some(length))
    }
}
