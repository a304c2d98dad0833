//! Trace by ID in a vParquet5 or vParquet4 `data.parquet`, back to OTLP.
//!
//! The block's bloom shard is consulted first; then only the row's values of the leaf columns
//! OTLP needs are read and assembled into the trace (`assemble.rs`).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parquet::column::reader::{ColumnReader, get_column_reader};
use parquet::data_type::ByteArray;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::ReaderProperties;
use parquet::file::reader::{ChunkReader, FileReader, RowGroupReader, SerializedFileReader};
use parquet::file::serialized_reader::SerializedRowGroupReader;
use parquet::file::statistics::Statistics;
use vivace_common::TraceId;
use vivace_proto::tempopb::Trace;

use crate::assemble::{Assembler, read_for_otlp};
use crate::block_ref::BlockRef;
use crate::copy::{RawColumn, Reading, WINDOW_ROWS, read_column, skip_rows};
use crate::error::{Error, Result};
use crate::meta::BlockMeta;
use crate::objects::Objects;

/// Reads the trace `id` from a block in the backend, or `None` if the block does not hold it.
///
/// Object reads: the bloom shard's header (once per block, then cached) and the `k` words the
/// test needs (one coalesced request on object stores), the footer (once per block, cached),
/// then in the one row group whose `TraceID` range can hold the ID: its `TraceID` chunk and
/// offset index, and only the pages holding the trace's row in the columns OTLP needs (the
/// whole row group when the block has no page index).
pub async fn find_trace_by_id(
    backend: &dyn Objects,
    block: &BlockRef,
    id: &TraceId,
) -> Result<Option<Trace>> {
    let meta = &block.meta;
    check_format(meta)?;
    if !crate::bloom::test_backend(backend, block, id).await? {
        return Ok(None);
    }
    let footer = block.footer(backend).await?;
    let Some(rg) = row_group_for(&footer, id) else {
        return Ok(None);
    };
    find_in_group(backend, block, &footer, rg, id).await
}

/// The trace `id` from row group `rg`, the only one that can hold it: its pages through the
/// page index, else the whole row group.
pub(crate) async fn find_in_group(
    backend: &dyn Objects,
    block: &BlockRef,
    footer: &Arc<ParquetMetaData>,
    rg: usize,
    id: &TraceId,
) -> Result<Option<Trace>> {
    let meta = &block.meta;
    let key = block.key("data.parquet");
    // A page-index read that cannot finish (a row spilling over its page, a page missing from
    // the index) falls back to the whole row group.
    if let Ok(Some(found)) = find_by_pages(backend, block, footer, rg, id, &key).await {
        return Ok(found);
    }
    let (start, len) = row_group_range(footer.row_group(rg));
    let bytes = backend
        .get_range(&key, start..start + len)
        .await
        .map_err(Error::Backend)?;
    let meta = meta.clone();
    let id = *id;
    let footer = footer.clone();
    tokio::task::spawn_blocking(move || {
        let reader = Arc::new(crate::prune::Parts::new(
            vec![(start, bytes)],
            meta.size.max(start + len),
        ));
        find_in_row_group(reader, &footer, rg, &meta, &id, &key)
    })
    .await
    .map_err(|e| Error::Schema {
        path: PathBuf::new(),
        what: format!("block read task failed: {e}"),
    })?
}

/// Primes what lookups keep for a block this process has just written, from its bytes: the
/// footer, every row group's page index and trace IDs, and the bloom shards (each within its
/// memory budget). A first lookup in the block then reads only the pages of its row — one
/// object read, where a block learned from the bucket takes the bloom, the footer and the
/// index first.
pub async fn warm(block: &BlockRef, data: Bytes, blooms: &[Bytes]) -> Result<()> {
    let mut objects = crate::objects::InMemory::default();
    objects.0.insert(block.key("data.parquet"), data);
    for (i, b) in blooms.iter().enumerate() {
        objects
            .0
            .insert(block.key(&format!("bloom-{i}")), b.clone());
    }
    prime(block, &objects, blooms.len()).await
}

/// Primes what lookups keep for a block learned from the bucket, reading it through `backend`:
/// its footer and every row group's page index and trace IDs, while their memory budget has
/// room (nothing is read when it has none). A first lookup then reads the bloom shard and its
/// row's pages — two object reads instead of four.
pub async fn prime_lookups(block: &BlockRef, backend: &dyn Objects) -> Result<()> {
    if !BlockRef::page_indexes_have_room() {
        return Ok(());
    }
    prime(block, backend, 0).await
}

/// The footer, the page index and trace IDs of every row group while [`BlockRef`]'s budget for
/// them has room, and the first `shards` bloom shards.
async fn prime(block: &BlockRef, objects: &dyn Objects, shards: usize) -> Result<()> {
    check_format(&block.meta)?;
    let key = block.key("data.parquet");
    let footer = block.footer(objects).await?;
    let schema = footer.file_metadata().schema_descr_ptr();
    let Some(id_col) = trace_id_column(&schema) else {
        return Ok(());
    };
    for rg in 0..footer.num_row_groups() {
        if block.cached_page_index(rg).is_some() {
            continue;
        }
        if !BlockRef::page_indexes_have_room() {
            break;
        }
        if let Some((index, bytes)) =
            read_group_index(objects, footer.row_group(rg), id_col, &key).await?
        {
            block.keep_page_index(rg, Arc::new(index), bytes);
        }
    }
    for shard in 0..shards {
        let key = block.key(&format!("bloom-{shard}"));
        block.cached_bloom(objects, shard as u32, &key).await?;
    }
    Ok(())
}

/// [`find_trace_by_id`] through the page index only, without the bloom or any fallback: `None`
/// when the block has no offset index or the read cannot be done page by page (tests, tools).
pub async fn find_trace_by_pages(
    backend: &dyn Objects,
    block: &BlockRef,
    id: &TraceId,
) -> Result<Option<Option<Trace>>> {
    let footer = block.footer(backend).await?;
    let Some(rg) = row_group_for(&footer, id) else {
        return Ok(Some(None));
    };
    find_by_pages(backend, block, &footer, rg, id, &block.key("data.parquet")).await
}

/// [`find_trace_by_id`] in row group `rg` through its page index: the offset indexes and the
/// whole `TraceID` chunk first (one request, kept with the block), then, once the row is known,
/// only the page holding that row in every column, and the dictionary pages (one request).
/// `None`: the row group has no offset index, or its trace IDs are not 16 ascending bytes each;
/// read it whole.
async fn find_by_pages(
    backend: &dyn Objects,
    block: &BlockRef,
    footer: &Arc<ParquetMetaData>,
    rg: usize,
    id: &TraceId,
    key: &str,
) -> Result<Option<Option<Trace>>> {
    let meta = &block.meta;
    let group_md = footer.row_group(rg);
    let schema = footer.file_metadata().schema_descr_ptr();
    let Some(id_col) = trace_id_column(&schema) else {
        return Ok(None);
    };
    let index = match block.cached_page_index(rg) {
        Some(index) => index,
        None => {
            let Some((index, bytes)) = read_group_index(backend, group_md, id_col, key).await?
            else {
                return Ok(None);
            };
            let index = Arc::new(index);
            block.keep_page_index(rg, index.clone(), bytes);
            index
        }
    };
    let (rg_start, rg_len) = row_group_range(group_md);
    let size = meta.size.max(rg_start + rg_len);
    let offsets = &index.offsets;
    let rg_rows = group_md.num_rows().max(0) as usize;
    let row = match index.row_of(id) {
        Some(Some(row)) => row,
        Some(None) => return Ok(Some(None)),
        None => return Ok(None),
    };
    // The page holding `row` in every column OTLP needs, and each chunk's dictionary page
    // unless an earlier lookup in this row group kept them.
    let dicts_opt = block.cached_dictionaries(rg);
    let mut ranges = Vec::new();
    let mut holding = Vec::with_capacity(group_md.columns().len());
    for (i, c) in group_md.columns().iter().enumerate() {
        if !read_for_otlp(&c.column_path().string(), meta) {
            holding.push(None);
            continue;
        }
        let pages = offsets[i].page_locations();
        let Some(k) = pages.iter().rposition(|p| p.first_row_index <= row as i64) else {
            return Ok(None);
        };
        holding.push(Some(k));
        page_ranges(c, pages, k..k + 1, dicts_opt.is_none(), &mut ranges);
    }
    let parts = crate::prune::fetch_parts(backend, key, &ranges).await?;
    let meta = meta.clone();
    let footer = footer.clone();
    let key_owned = key.to_string();
    let id = *id;
    // The dictionary pages this lookup reads, to keep (none when they were kept already).
    let (found, read_dicts_opt) = tokio::task::spawn_blocking(move || {
        let reader = crate::prune::Parts::new(parts, size);
        let group_md = footer.row_group(rg);
        let schema = footer.file_metadata().schema_descr_ptr();
        let offsets = &index.offsets;
        let mut read_dicts_opt = dicts_opt.is_none().then(|| vec![None; holding.len()]);
        let found = one_row(&schema, &meta, &key_owned, |i| {
            let Some(k) = holding[i] else {
                return Ok(None);
            };
            let pages = offsets[i].page_locations();
            let first = pages[k].first_row_index.max(0) as usize;
            let c = group_md.column(i);
            let mut decoded =
                column_pages(&reader, c, pages, k..k + 1, dicts_opt.is_none(), rg_rows)?;
            if let Some(dict) = dicts_opt.as_ref().and_then(|d| d[i].clone()) {
                decoded = decoded.after_dictionary(dict);
            }
            if let Some(read) = &mut read_dicts_opt {
                read[i] = decoded.dictionary();
            }
            Ok(Some((
                get_column_reader(schema.column(i), Box::new(decoded)),
                row - first,
            )))
        })
        .and_then(|found| check_id(found, &id, &key_owned));
        (found, read_dicts_opt)
    })
    .await
    .map_err(|e| Error::Schema {
        path: PathBuf::new(),
        what: format!("block read task failed: {e}"),
    })?;
    let found = found?;
    if let Some(read_dicts) = read_dicts_opt {
        block.keep_dictionaries(rg, read_dicts);
    }
    Ok(Some(found))
}

/// Pages `which` of a column chunk (and its dictionary page) out of fetched `parts`, decoded by
/// [`crate::pages`] for a column reader starting at page `which.start`.
fn column_pages(
    parts: &crate::prune::Parts,
    c: &parquet::file::metadata::ColumnChunkMetaData,
    pages: &[parquet::file::page_index::offset_index::PageLocation],
    which: std::ops::Range<usize>,
    with_dictionary: bool,
    rg_rows: usize,
) -> parquet::errors::Result<crate::pages::Pages> {
    let mut ranges = Vec::new();
    page_ranges(c, pages, which.clone(), with_dictionary, &mut ranges);
    let dict = ranges.len() - which.len();
    let rows = |k: usize| {
        let first = pages[k].first_row_index.max(0) as usize;
        let next = pages
            .get(k + 1)
            .map_or(rg_rows, |p| p.first_row_index.max(0) as usize);
        next.saturating_sub(first)
    };
    let rows = std::iter::repeat_n(None, dict).chain(which.map(|k| Some(rows(k))));
    let decoded = ranges
        .iter()
        .zip(rows)
        .map(|(r, rows)| Ok((parts.get_bytes(r.start, (r.end - r.start) as usize)?, rows)))
        .collect::<parquet::errors::Result<Vec<_>>>()?;
    crate::pages::Pages::decode(c.compression(), decoded)
}

/// The byte ranges of a column chunk's dictionary page if it has one (and `with_dictionary`),
/// then of its pages `which`.
fn page_ranges(
    c: &parquet::file::metadata::ColumnChunkMetaData,
    pages: &[parquet::file::page_index::offset_index::PageLocation],
    which: std::ops::Range<usize>,
    with_dictionary: bool,
    out: &mut Vec<std::ops::Range<u64>>,
) {
    if with_dictionary
        && let (Some(dict), Some(first)) = (c.dictionary_page_offset(), pages.first())
        && (dict as u64) < first.offset as u64
    {
        out.push(dict as u64..first.offset as u64);
    }
    for p in &pages[which] {
        out.push(p.offset as u64..p.offset as u64 + p.compressed_page_size as u64);
    }
}

/// Reads the trace `id` from a block directory on local disk (tests, tools).
pub fn find_trace_by_id_local(
    block_dir: &Path,
    meta: &BlockMeta,
    id: &TraceId,
) -> Result<Option<Trace>> {
    check_format(meta)?;
    let shard = crate::bloom::shard_for(id, meta.bloom_shard_count());
    if let Ok(false) = crate::bloom::test_file(&block_dir.join(format!("bloom-{shard}")), &id.0) {
        return Ok(None);
    }
    let (path, data) = read_local(block_dir)?;
    let key = path.display().to_string();
    let footer = Arc::new(parse_footer(&data, &key)?);
    let Some(rg) = row_group_for(&footer, id) else {
        return Ok(None);
    };
    find_in_row_group(Arc::new(data), &footer, rg, meta, id, &key)
}

fn check_format(meta: &BlockMeta) -> Result<()> {
    if meta.format != "vParquet5" && meta.format != "vParquet4" {
        return Err(Error::UnsupportedFormat(meta.format.clone()));
    }
    Ok(())
}

fn read_local(block_dir: &Path) -> Result<(PathBuf, Bytes)> {
    let path = block_dir.join("data.parquet");
    let data = std::fs::read(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    Ok((path, Bytes::from(data)))
}

/// The footer of a whole `data.parquet` in memory.
pub(crate) fn parse_footer(data: &Bytes, key: &str) -> Result<ParquetMetaData> {
    ParquetMetaDataReader::new()
        .parse_and_finish(data)
        .map_err(|source| Error::Parquet {
            path: key.into(),
            source,
        })
}

/// The leaf column of the top-level `TraceID` field.
fn trace_id_column(schema: &parquet::schema::types::SchemaDescriptor) -> Option<usize> {
    (0..schema.num_columns()).find(|i| schema.column(*i).path().parts() == ["TraceID"])
}

/// The only row group that can hold `id`: rows are sorted by trace ID, so binary-search the
/// row groups' `TraceID` ranges (statistics) for the first whose maximum is not below the ID.
pub(crate) fn row_group_for(md: &ParquetMetaData, id: &TraceId) -> Option<usize> {
    let col = trace_id_column(md.file_metadata().schema_descr());
    let n = md.num_row_groups();
    let Some(col) = col else {
        return (n > 0).then_some(0);
    };
    let range = |rg: usize| match md.row_group(rg).column(col).statistics() {
        Some(Statistics::ByteArray(s)) => (
            s.min_bytes_opt().map(<[u8]>::to_vec),
            s.max_bytes_opt().map(<[u8]>::to_vec),
        ),
        _ => (None, None),
    };
    // First row group whose max >= id (a row group without statistics may hold anything).
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match range(mid).1 {
            Some(max) if max.as_slice() < id.0.as_slice() => lo = mid + 1,
            _ => hi = mid,
        }
    }
    if lo == n {
        return None;
    }
    match range(lo).0 {
        Some(min) if min.as_slice() > id.0.as_slice() => None,
        _ => Some(lo),
    }
}

/// Byte range (start, length) of a row group's column chunks.
pub(crate) fn row_group_range(rg: &parquet::file::metadata::RowGroupMetaData) -> (u64, u64) {
    let mut start = u64::MAX;
    let mut end = 0;
    for c in rg.columns() {
        let (s, l) = c.byte_range();
        start = start.min(s);
        end = end.max(s + l);
    }
    if start == u64::MAX {
        (0, 0)
    } else {
        (start, end - start)
    }
}

/// Finds the trace in one row group without assembling the rows before it: the `TraceID` column
/// alone gives the row's index; every other column skips to that row (level decoding only) and
/// reads its one record; those values are written as a one-row file with the block's own schema,
/// which the record reader then assembles. One row is materialised instead of half a row group.
fn find_in_row_group<R: ChunkReader + 'static>(
    reader: Arc<R>,
    footer: &ParquetMetaData,
    rg: usize,
    meta: &BlockMeta,
    id: &TraceId,
    key: &str,
) -> Result<Option<Trace>> {
    let pq = |source| Error::Parquet {
        path: key.into(),
        source,
    };
    let group = SerializedRowGroupReader::new(
        reader,
        footer.row_group(rg),
        parquet::file::metadata::page_index::RowGroupPageIndex::new(0, None),
        Arc::new(ReaderProperties::builder().build()),
    )
    .map_err(pq)?;
    let schema = footer.file_metadata().schema_descr_ptr();
    let Some(id_col) = trace_id_column(&schema) else {
        return Err(Error::Schema {
            path: key.into(),
            what: "no TraceID column".into(),
        });
    };
    let Some(row_index) = find_row(&group, id_col, id).map_err(pq)? else {
        return Ok(None);
    };
    let found = one_row(&schema, meta, key, |i| {
        if !read_for_otlp(&schema.column(i).path().string(), meta) {
            return Ok(None);
        }
        Ok(Some((group.get_column_reader(i)?, row_index)))
    })?;
    check_id(found, id, key)
}

/// The trace of a row found by its ID, checked to be that ID's.
fn check_id(found: Option<(TraceId, Trace)>, id: &TraceId, key: &str) -> Result<Option<Trace>> {
    match found {
        Some((got, trace)) if got == *id => Ok(Some(trace)),
        Some((got, _)) => Err(Error::Schema {
            path: key.into(),
            what: format!("the row of trace {id} holds trace {got}"),
        }),
        None => Ok(None),
    }
}

/// The index of the row holding `id` in a row group sorted by the `TraceID` column.
fn find_row(
    group: &dyn RowGroupReader,
    col: usize,
    id: &TraceId,
) -> parquet::errors::Result<Option<usize>> {
    let ColumnReader::ByteArrayColumnReader(r) = group.get_column_reader(col)? else {
        return Ok(None);
    };
    // Stops at the first ID past `id`.
    let found = each_id(r, |row, v| match v.cmp(id.0.as_slice()) {
        std::cmp::Ordering::Less => ControlFlow::Continue(()),
        std::cmp::Ordering::Equal => ControlFlow::Break(Some(row)),
        std::cmp::Ordering::Greater => ControlFlow::Break(None),
    })?;
    Ok(found.flatten())
}

/// Calls `f` with each row index and value of a `TraceID` column in row order, until it breaks
/// (its value) or the column ends (`None`).
fn each_id<B>(
    mut r: parquet::column::reader::ColumnReaderImpl<parquet::data_type::ByteArrayType>,
    mut f: impl FnMut(usize, &[u8]) -> ControlFlow<B>,
) -> parquet::errors::Result<Option<B>> {
    let mut base = 0;
    let mut vals: Vec<ByteArray> = Vec::with_capacity(1024);
    loop {
        vals.clear();
        let (records, _, _) = r.read_records(1024, None, None, &mut vals)?;
        if records == 0 {
            return Ok(None);
        }
        for (i, v) in vals.iter().enumerate() {
            if let ControlFlow::Break(b) = f(base + i, v.data()) {
                return Ok(Some(b));
            }
        }
        base += records;
    }
}

/// One row assembled into its trace and ID: `column(i)` gives a reader of leaf column `i` and
/// how many rows to skip in it to reach the row, or `None` for a column OTLP does not need
/// (left empty).
fn one_row(
    schema: &parquet::schema::types::SchemaDescriptor,
    meta: &BlockMeta,
    key: &str,
    mut column: impl FnMut(usize) -> parquet::errors::Result<Option<(ColumnReader, usize)>>,
) -> Result<Option<(TraceId, Trace)>> {
    let refused = |what| Error::Schema {
        path: key.into(),
        what,
    };
    let asm = Assembler::new(schema).map_err(refused)?;
    let mut cols = Vec::with_capacity(schema.num_columns());
    for i in 0..schema.num_columns() {
        let pq = |source| Error::Parquet {
            path: key.into(),
            source,
        };
        let mut c = RawColumn::new(schema, i).map_err(refused)?;
        if let Some((mut reader, skip)) = column(i).map_err(pq)? {
            if skip > 0 && skip_rows(&mut reader, skip).map_err(pq)? != skip {
                return Err(refused(format!("column {i} ends before the row")));
            }
            read_column(&mut reader, 1, &mut c).map_err(|e| e.at(i, key))?;
        }
        cols.push(c);
    }
    let mut traces = asm.traces(&cols, meta).map_err(refused)?;
    Ok(traces.pop())
}

/// The traces of a whole `data.parquet` in memory, in ID order, assembled a window of rows at
/// a time: compaction merges several of these without holding any block decoded.
pub struct TraceRows {
    file: SerializedFileReader<Bytes>,
    asm: Assembler,
    meta: BlockMeta,
    key: String,
    next_group: usize,
    reading_opt: Option<Reading>,
    ready: std::vec::IntoIter<(TraceId, Trace)>,
}

impl std::fmt::Debug for TraceRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceRows").field("key", &self.key).finish()
    }
}

impl TraceRows {
    pub fn new(data: Bytes, meta: &BlockMeta, key: &str) -> Result<TraceRows> {
        check_format(meta)?;
        let file = SerializedFileReader::new(data).map_err(|source| Error::Parquet {
            path: key.into(),
            source,
        })?;
        let asm =
            Assembler::new(file.metadata().file_metadata().schema_descr()).map_err(|what| {
                Error::Schema {
                    path: key.into(),
                    what,
                }
            })?;
        Ok(TraceRows {
            file,
            asm,
            meta: meta.clone(),
            key: key.into(),
            next_group: 0,
            reading_opt: None,
            ready: Vec::new().into_iter(),
        })
    }

    /// Assembles the next window of rows into `ready`: `false` at the end of the file.
    fn fill(&mut self) -> Result<bool> {
        let descr = self.file.metadata().file_metadata().schema_descr_ptr();
        loop {
            if let Some(reading) = &mut self.reading_opt
                && reading.rows_left > 0
            {
                let group = reading.window(WINDOW_ROWS, &descr, &self.key)?;
                let traces =
                    self.asm
                        .traces(&group.cols, &self.meta)
                        .map_err(|what| Error::Schema {
                            path: self.key.clone().into(),
                            what,
                        })?;
                self.ready = traces.into_iter();
                return Ok(true);
            }
            if self.next_group >= self.file.num_row_groups() {
                return Ok(false);
            }
            let group =
                self.file
                    .get_row_group(self.next_group)
                    .map_err(|source| Error::Parquet {
                        path: self.key.clone().into(),
                        source,
                    })?;
            self.reading_opt = Some(Reading::new(group.as_ref(), &descr, &[], &self.key)?);
            self.next_group += 1;
        }
    }
}

impl Iterator for TraceRows {
    type Item = Result<(TraceId, Trace)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(t) = self.ready.next() {
                return Some(Ok(t));
            }
            match self.fill() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.next_group = usize::MAX;
                    self.reading_opt = None;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Every trace of a whole `data.parquet` in memory, in row (ID) order.
pub fn read_all_traces(data: Bytes, meta: &BlockMeta, key: &str) -> Result<Vec<(TraceId, Trace)>> {
    TraceRows::new(data, meta, key)?.collect()
}

/// Every trace ID in a local block, in row order (sorted).
pub fn trace_ids(block_dir: &Path) -> Result<Vec<TraceId>> {
    let (path, data) = read_local(block_dir)?;
    let pq = |source| Error::Parquet {
        path: path.clone(),
        source,
    };
    let reader = SerializedFileReader::new(data).map_err(pq)?;
    let Some(col) = trace_id_column(reader.metadata().file_metadata().schema_descr()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for rg in 0..reader.num_row_groups() {
        let group = reader.get_row_group(rg).map_err(pq)?;
        let ColumnReader::ByteArrayColumnReader(r) = group.get_column_reader(col).map_err(pq)?
        else {
            return Ok(out);
        };
        each_id(r, |_, v| {
            out.extend(TraceId::from_slice(v));
            ControlFlow::<()>::Continue(())
        })
        .map_err(pq)?;
    }
    Ok(out)
}

/// What trace by ID needs of a row group, decoded once and kept with the block
/// ([`BlockRef::cached_page_index`]): every column's offset index and the row group's trace
/// IDs. A warm lookup then reads only the pages of its row.
#[derive(Debug)]
pub(crate) struct GroupIndex {
    offsets: Vec<parquet::file::page_index::offset_index::OffsetIndexMetaData>,
    /// Every trace ID of the row group, in row order (ascending, 16 bytes each). Empty when the
    /// chunk holds an ID of another length or out of order; the row group is read whole then.
    ids: Vec<[u8; 16]>,
}

impl GroupIndex {
    /// The row holding `id` by the kept IDs: `Some(None)` when it is not in the row group,
    /// `None` when no IDs are kept.
    fn row_of(&self, id: &TraceId) -> Option<Option<usize>> {
        if self.ids.is_empty() {
            return None;
        }
        Some(self.ids.binary_search(&id.0).ok())
    }
}

/// Reads and decodes a row group's [`GroupIndex`] (one request: the offset indexes are
/// contiguous, the `TraceID` chunk beside them); also returns the bytes it keeps in memory.
/// `None`: a column has no offset index.
async fn read_group_index(
    backend: &dyn Objects,
    group_md: &parquet::file::metadata::RowGroupMetaData,
    id_col: usize,
    key: &str,
) -> Result<Option<(GroupIndex, u64)>> {
    let mut index_range: Option<(u64, u64)> = None;
    for c in group_md.columns() {
        let (Some(off), Some(len)) = (c.offset_index_offset(), c.offset_index_length()) else {
            return Ok(None);
        };
        let (s, e) = (off as u64, off as u64 + len as u64);
        index_range = Some(index_range.map_or((s, e), |(a, b)| (a.min(s), b.max(e))));
    }
    let Some((is, ie)) = index_range else {
        return Ok(None);
    };
    let id_md = group_md.column(id_col);
    let (id_start, id_len) = id_md.byte_range();
    let ranges = [is..ie, id_start..id_start + id_len];
    let end = ie.max(id_start + id_len);
    let reader =
        crate::prune::Parts::new(crate::prune::fetch_parts(backend, key, &ranges).await?, end);
    let pq = |source| Error::Parquet {
        path: key.into(),
        source,
    };
    let Some(offsets) = read_offset_indexes(&reader, group_md.columns()).map_err(pq)? else {
        return Ok(None);
    };
    let rg_rows = group_md.num_rows().max(0) as usize;
    let id_pages = offsets[id_col].page_locations();
    let pages =
        column_pages(&reader, id_md, id_pages, 0..id_pages.len(), true, rg_rows).map_err(pq)?;
    let ids = match get_column_reader(id_md.column_descr_ptr(), Box::new(pages)) {
        ColumnReader::ByteArrayColumnReader(r) => sorted_ids(r, rg_rows).map_err(pq)?,
        _ => Vec::new(),
    };
    let bytes = (ie - is) + (ids.len() * 16) as u64;
    Ok(Some((GroupIndex { offsets, ids }, bytes)))
}

/// Every value of a `TraceID` column as 16-byte IDs, when they all are and ascend strictly;
/// else none.
fn sorted_ids(
    r: parquet::column::reader::ColumnReaderImpl<parquet::data_type::ByteArrayType>,
    rows: usize,
) -> parquet::errors::Result<Vec<[u8; 16]>> {
    let mut ids: Vec<[u8; 16]> = Vec::with_capacity(rows);
    let refused = each_id(r, |_, v| match <[u8; 16]>::try_from(v) {
        Ok(id) if ids.last().is_none_or(|last| *last < id) => {
            ids.push(id);
            ControlFlow::Continue(())
        }
        _ => ControlFlow::Break(()),
    })?;
    if refused.is_some() || ids.len() != rows {
        return Ok(Vec::new());
    }
    Ok(ids)
}

/// The offset indexes of one row group's columns, read from `reader` (which holds their bytes);
/// `None` when a column has none.
fn read_offset_indexes(
    reader: &crate::prune::Parts,
    columns: &[parquet::file::metadata::ColumnChunkMetaData],
) -> parquet::errors::Result<
    Option<Vec<parquet::file::page_index::offset_index::OffsetIndexMetaData>>,
> {
    use parquet::file::reader::ChunkReader;
    let mut out = Vec::with_capacity(columns.len());
    for c in columns {
        let (Some(offset), Some(len)) = (c.offset_index_offset(), c.offset_index_length()) else {
            return Ok(None);
        };
        let bytes = reader.get_bytes(offset as u64, len as usize)?;
        out.push(parquet::file::page_index::index_reader::decode_offset_index(&bytes)?);
    }
    Ok(Some(out))
}
