//! What the column chunks written by hand (`byte_chunk.rs`, `fixed_chunk.rs`) share: a column's
//! levels and their batches, the RLE/bit-packed hybrid, DELTA_BINARY_PACKED, page compression
//! with one context per thread, and the chunk — its pages, metadata and offset index — ready to
//! splice into a row group.
//!
//! Formats as parquet-format's `Encodings.md` describes them; layouts as parquet's column writer
//! makes them (the tests of both column modules compare with it).

use std::cell::RefCell;
use std::collections::HashMap;

use bytes::Bytes;
use parquet::basic::{Compression, Encoding, PageType};
use parquet::column::page::{CompressedPage, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ColumnChunkMetaData, OffsetIndexBuilder, PageEncodingStats};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;
use rustc_hash::FxBuildHasher;

/// How many of `levels` equal `v`: counted in 16-bit lanes (a compiler vectorises it over
/// eight to thirty-two levels at once, seven times `filter(..).count()`'s 64-bit lanes).
pub(crate) fn count_eq(levels: &[i16], v: i16) -> usize {
    let mut total = 0;
    for chunk in levels.chunks(u16::MAX as usize) {
        let mut n: u16 = 0;
        for &x in chunk {
            n += u16::from(x == v);
        }
        total += usize::from(n);
    }
    total
}

/// Levels written between two checks of the page limits (parquet's `write_batch_size`).
pub(crate) const BATCH_LEVELS: usize = 1024;

/// A column's levels as its leaf stores them: none where its maximum level is 0.
pub(crate) struct Levels<'a> {
    pub(crate) def: &'a [i16],
    pub(crate) rep: &'a [i16],
    /// Entries: levels, or values where there are none.
    pub(crate) count: usize,
    max_def: i16,
    max_rep: i16,
    /// Its entry in this thread's [`LevelMemo`] and that entry's generation then.
    memo: Option<(usize, u64)>,
}

/// Levels encoded lately on this thread, by content, with their pages: the columns of one
/// repeated group have the same levels (a span's ~25 scalar columns, an attribute's key and
/// `IsArray`, in a cut and in a compaction's output alike), and a page of them is encoded once
/// for all — when the pages are cut at the same entries. A column's levels are compared with the
/// few sets kept (a `memcmp`, cheap beside encoding them) and copied in when new. Freed by
/// [`forget_levels`] after each row group.
#[derive(Default)]
struct LevelMemo {
    sets: Vec<LevelSet>,
    /// Generations handed out: a set overwritten gets a new one.
    generation: u64,
}

/// One set of levels and its pages encoded so far.
#[derive(Default)]
struct LevelSet {
    max_def: i16,
    max_rep: i16,
    def: Vec<i16>,
    rep: Vec<i16>,
    /// Entries `lo..hi` → their encoding's range in `bytes`.
    pages: HashMap<(usize, usize), (usize, usize), FxBuildHasher>,
    bytes: Vec<u8>,
    generation: u64,
}

/// Level sets kept per thread.
const MEMO_SETS: usize = 4;
/// Columns shorter than this encode their levels without the memo.
const MEMO_MIN_ENTRIES: usize = 4096;

thread_local! {
    static LEVEL_MEMO: RefCell<LevelMemo> = RefCell::default();
}

/// Frees this thread's remembered levels (the end of a row group: its level buffers change).
pub(crate) fn forget_levels() {
    LEVEL_MEMO.with_borrow_mut(|m| m.sets.clear());
}

impl LevelMemo {
    /// The set holding exactly these levels, or a new one (the oldest replaced): its index and
    /// generation.
    fn find_or_add(
        &mut self,
        max_def: i16,
        max_rep: i16,
        def: &[i16],
        rep: &[i16],
    ) -> (usize, u64) {
        if let Some(i) = self.sets.iter().position(|s| {
            s.max_def == max_def && s.max_rep == max_rep && s.def == def && s.rep == rep
        }) {
            let set = &self.sets[i];
            return (i, set.generation);
        }
        self.generation += 1;
        let at = if self.sets.len() < MEMO_SETS {
            self.sets.push(LevelSet::default());
            self.sets.len() - 1
        } else {
            // The oldest generation goes.
            (0..self.sets.len())
                .min_by_key(|&i| self.sets[i].generation)
                .unwrap_or(0)
        };
        let set = &mut self.sets[at];
        set.max_def = max_def;
        set.max_rep = max_rep;
        set.def.clear();
        set.def.extend_from_slice(def);
        set.rep.clear();
        set.rep.extend_from_slice(rep);
        set.pages.clear();
        set.bytes.clear();
        set.generation = self.generation;
        (at, set.generation)
    }
}

impl<'a> Levels<'a> {
    /// The levels of `leaf` given with `values` values (levels a leaf does not store may be
    /// given or not), checked to be as many of each and to define exactly `values` values.
    pub(crate) fn of(
        leaf: &ColumnDescPtr,
        values: usize,
        def: &'a [i16],
        rep: &'a [i16],
    ) -> Result<Levels<'a>> {
        let (max_def, max_rep) = (leaf.max_def_level(), leaf.max_rep_level());
        let def = if max_def > 0 { def } else { &[] };
        let rep = if max_rep > 0 { rep } else { &[] };
        let count = def
            .len()
            .max(rep.len())
            .max(if max_def > 0 { 0 } else { values });
        if (max_def > 0 && def.len() != count) || (max_rep > 0 && rep.len() != count) {
            return Err(ParquetError::General(format!(
                "{}: {} definition and {} repetition levels",
                leaf.path(),
                def.len(),
                rep.len()
            )));
        }
        let mut levels = Levels {
            def,
            rep,
            count,
            max_def,
            max_rep,
            memo: None,
        };
        if count >= MEMO_MIN_ENTRIES && (max_def > 0 || max_rep > 0) {
            levels.memo =
                Some(LEVEL_MEMO.with_borrow_mut(|m| m.find_or_add(max_def, max_rep, def, rep)));
        }
        let defined = levels.values(0, count);
        if defined != values {
            return Err(ParquetError::General(format!(
                "{}: levels define {defined} values, {values} given",
                leaf.path()
            )));
        }
        Ok(levels)
    }

    /// Appends the levels of entries `lo..hi` as a data page v1 holds them: repetition, then
    /// definition levels, each RLE after its length.
    pub(crate) fn page(&self, lo: usize, hi: usize, out: &mut Vec<u8>) {
        let Some((at, generation)) = self.memo else {
            return self.encode(lo, hi, out);
        };
        LEVEL_MEMO.with_borrow_mut(|m| {
            let Some(set) = m.sets.get_mut(at).filter(|s| s.generation == generation) else {
                return self.encode(lo, hi, out);
            };
            if let Some(&(a, b)) = set.pages.get(&(lo, hi)) {
                out.extend_from_slice(&set.bytes[a..b]);
                return;
            }
            let start = out.len();
            self.encode(lo, hi, out);
            let a = set.bytes.len();
            set.bytes.extend_from_slice(&out[start..]);
            set.pages.insert((lo, hi), (a, set.bytes.len()));
        })
    }

    fn encode(&self, lo: usize, hi: usize, out: &mut Vec<u8>) {
        if self.max_rep > 0 {
            levels_v1(&self.rep[lo..hi], self.max_rep, out);
        }
        if self.max_def > 0 {
            levels_v1(&self.def[lo..hi], self.max_def, out);
        }
    }

    /// The end of the record holding entry `at - 1` (at most `end`): pages and batches end at
    /// record boundaries.
    pub(crate) fn record_end(&self, mut at: usize, end: usize) -> usize {
        if !self.rep.is_empty() {
            while at < end && self.rep[at] != 0 {
                at += 1;
            }
        }
        at
    }

    /// Values among entries `lo..hi`.
    pub(crate) fn values(&self, lo: usize, hi: usize) -> usize {
        if self.def.is_empty() {
            hi - lo
        } else {
            count_eq(&self.def[lo..hi], self.max_def)
        }
    }

    /// Records starting among entries `lo..hi`.
    pub(crate) fn rows(&self, lo: usize, hi: usize) -> usize {
        if self.rep.is_empty() {
            hi - lo
        } else {
            count_eq(&self.rep[lo..hi], 0)
        }
    }
}

/// What a column with statistics adds to its chunk's metadata (see `fixed_chunk.rs`).
#[derive(Default)]
pub(crate) struct Extra {
    pub(crate) statistics: Option<parquet::file::statistics::Statistics>,
    pub(crate) rep_histogram: Option<parquet::file::metadata::LevelHistogram>,
    pub(crate) def_histogram: Option<parquet::file::metadata::LevelHistogram>,
    pub(crate) column_index: Option<parquet::file::page_index::column_index::ColumnIndexMetaData>,
}

/// The dictionary page (if any), then the data pages, written to a buffer; the chunk's metadata
/// and offset index as parquet's column writer builds them.
pub(crate) fn write_chunk(
    leaf: &ColumnDescPtr,
    props: &WriterProperties,
    compression: Compression,
    dict: Option<CompressedPage>,
    pages: Vec<(CompressedPage, usize)>,
    extra: Extra,
) -> Result<(Bytes, ColumnCloseResult)> {
    let mut sink = TrackedWrite::new(Vec::new());
    let mut stats = Vec::new();
    let mut offsets = (!props.offset_index_disabled()).then(OffsetIndexBuilder::new);
    let (mut compressed, mut uncompressed, mut written, mut values, mut rows) = (0, 0, 0, 0, 0);
    let mut data_offset = None;
    let mut dict_offset = None;
    {
        let mut writer = SerializedPageWriter::new(&mut sink);
        if let Some(dict_page) = dict {
            let spec = writer.write_page(dict_page)?;
            stats.push(PageEncodingStats {
                page_type: PageType::DICTIONARY_PAGE,
                encoding: Encoding::PLAIN,
                count: 1,
            });
            dict_offset = Some(spec.offset as i64);
            (compressed, uncompressed, written) = (
                compressed + spec.compressed_size,
                uncompressed + spec.uncompressed_size,
                written + spec.bytes_written,
            );
        }
        for (page, page_rows) in pages {
            let encoding = page.encoding();
            match stats.last_mut() {
                Some(s) if s.page_type == PageType::DATA_PAGE && s.encoding == encoding => {
                    s.count += 1
                }
                _ => stats.push(PageEncodingStats {
                    page_type: PageType::DATA_PAGE,
                    encoding,
                    count: 1,
                }),
            }
            let spec = writer.write_page(page)?;
            if let Some(o) = &mut offsets {
                o.append_offset_and_size(spec.offset as i64, spec.compressed_size as i32);
                o.append_row_count(page_rows as i64);
            }
            data_offset.get_or_insert(spec.offset as i64);
            compressed += spec.compressed_size;
            uncompressed += spec.uncompressed_size;
            written += spec.bytes_written;
            values += spec.num_values as i64;
            rows += page_rows as u64;
        }
        writer.close()?;
    }
    let mut encodings = vec![Encoding::RLE];
    for s in &stats {
        if !encodings.contains(&s.encoding) {
            encodings.push(s.encoding);
        }
    }
    let mut metadata = ColumnChunkMetaData::builder(leaf.clone())
        .set_compression(compression)
        .set_encodings(encodings)
        .set_page_encoding_stats(stats)
        .set_total_compressed_size(compressed as i64)
        .set_total_uncompressed_size(uncompressed as i64)
        .set_num_values(values)
        .set_data_page_offset(data_offset.unwrap_or(0))
        .set_dictionary_page_offset(dict_offset);
    if let Some(statistics) = extra.statistics {
        metadata = metadata
            .set_statistics(statistics)
            .set_unencoded_byte_array_data_bytes(None)
            .set_repetition_level_histogram(extra.rep_histogram)
            .set_definition_level_histogram(extra.def_histogram);
    }
    let metadata = metadata.build()?;
    let bytes = Bytes::from(sink.into_inner()?);
    Ok((
        bytes,
        ColumnCloseResult {
            bytes_written: written,
            rows_written: rows,
            metadata,
            bloom_filter: None,
            column_index: extra.column_index,
            offset_index: offsets.map(OffsetIndexBuilder::build),
        },
    ))
}

pub(crate) fn bits_for(max: u64) -> u8 {
    (64 - max.leading_zeros()) as u8
}

/// Levels of a data page v1: their RLE/bit-packed hybrid encoding after its 4-byte length.
fn levels_v1(levels: &[i16], max: i16, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    rle_hybrid(levels, bits_for(max as u64), out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// A value of the RLE/bit-packed hybrid: a level or a dictionary index.
pub(crate) trait Small: Copy + PartialEq {
    fn get(self) -> u64;
}

impl Small for i16 {
    fn get(self) -> u64 {
        self as u16 as u64
    }
}

impl Small for u32 {
    fn get(self) -> u64 {
        self as u64
    }
}

impl Small for u64 {
    fn get(self) -> u64 {
        self
    }
}

/// Appends `vals` in parquet's RLE/bit-packed hybrid at `width` bits as parquet's encoder does:
/// runs of 8 or more equal values as RLE runs, the rest in bit-packed groups of 8 (the last
/// padded with zeros; readers stop at the count they know) — except fewer than 8 equal values
/// at the end outside a bit-packed run, one RLE run.
pub(crate) fn rle_hybrid<T: Small>(vals: &[T], width: u8, out: &mut Vec<u8>) {
    // How many values from `i` equal it: whole chunks of 16 first, compared without branching
    // (long runs of levels are most of a column's), then one at a time.
    let run_from = |i: usize| {
        let v = vals[i];
        let rest = &vals[i..];
        let whole = rest
            .chunks_exact(16)
            .take_while(|c| c.iter().filter(|&&x| x != v).count() == 0)
            .count()
            * 16;
        whole + rest[whole..].iter().take_while(|&&x| x == v).count()
    };
    let long_run_at =
        |i: usize| i + 8 <= vals.len() && vals[i + 1..i + 8].iter().all(|&x| x == vals[i]);
    let mut i = 0;
    while i < vals.len() {
        let run = run_from(i);
        if run >= 8 || i + run == vals.len() {
            varint(out, (run as u64) << 1);
            let v = vals[i].get();
            out.extend_from_slice(&v.to_le_bytes()[..(width as usize).div_ceil(8)]);
            i += run;
            continue;
        }
        let start = i;
        let mut groups = 0u64;
        loop {
            i = (i + 8).min(vals.len());
            groups += 1;
            if i >= vals.len() || groups == 63 || long_run_at(i) {
                break;
            }
        }
        varint(out, (groups << 1) | 1);
        bit_pack(&vals[start..i], groups as usize * 8, width, out);
    }
}

/// Appends `vals` bit-packed at `width` bits each, LSB first, padded with zeros to `count`
/// values (a multiple of 8).
fn bit_pack<T: Small>(vals: &[T], count: usize, width: u8, out: &mut Vec<u8>) {
    let w = width as usize;
    out.reserve(count / 8 * w);
    if w <= 8 {
        // A group of 8 values is `width` bytes: one 64-bit word.
        for group in 0..count / 8 {
            let from = (group * 8).min(vals.len());
            let mut acc = 0u64;
            for (k, v) in vals[from..(from + 8).min(vals.len())].iter().enumerate() {
                acc |= v.get() << (k * w);
            }
            out.extend_from_slice(&acc.to_le_bytes()[..w]);
        }
        return;
    }
    let (mut acc, mut bits) = (0u128, 0u32);
    for k in 0..count {
        let v = vals.get(k).map_or(0, |v| v.get()) as u128;
        acc |= v << bits;
        bits += width as u32;
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
}

/// Appends `vals` DELTA_BINARY_PACKED (see [`DeltaEncoder`]).
pub(crate) fn delta_binary_packed(vals: impl Iterator<Item = i64>, out: &mut Vec<u8>) {
    let mut e = DeltaEncoder::default();
    for v in vals {
        e.put(v);
    }
    e.finish(out);
}

/// DELTA_BINARY_PACKED as parquet's writer encodes it, a value at a time: a header (128 values
/// per block, 4 miniblocks, the count, the first value), then per block of up to 128 deltas
/// their minimum and each miniblock's bit width, and the miniblocks of 32 deltas above the
/// minimum, bit-packed (the last one padded; unused miniblocks have width 0 and no bytes).
#[derive(Default)]
pub(crate) struct DeltaEncoder {
    count: u64,
    first: i64,
    prev: i64,
    deltas: Vec<i64>,
    /// The blocks written so far.
    blocks: Vec<u8>,
}

const DELTA_BLOCK: usize = 128;
const DELTA_MINI: usize = 32;

impl DeltaEncoder {
    pub(crate) fn put(&mut self, v: i64) {
        if self.count == 0 {
            self.first = v;
        } else {
            self.deltas.push(v.wrapping_sub(self.prev));
            if self.deltas.len() == DELTA_BLOCK {
                self.flush_block();
            }
        }
        self.prev = v;
        self.count += 1;
    }

    /// The bytes of the blocks written so far: parquet's estimate of the page's values.
    pub(crate) fn bytes_written(&self) -> usize {
        self.blocks.len()
    }

    fn flush_block(&mut self) {
        let out = &mut self.blocks;
        let min = self.deltas.iter().copied().min().unwrap_or(0);
        zigzag(out, min);
        let widths_at = out.len();
        out.extend_from_slice(&[0; DELTA_BLOCK / DELTA_MINI]);
        let mut above = [0u64; DELTA_MINI];
        for (m, mini) in self.deltas.chunks(DELTA_MINI).enumerate() {
            let mut max = 0;
            for (a, &d) in above.iter_mut().zip(mini) {
                *a = d.wrapping_sub(min) as u64;
                max |= *a;
            }
            let width = bits_for(max);
            out[widths_at + m] = width;
            bit_pack(&above[..mini.len()], DELTA_MINI, width, out);
        }
        self.deltas.clear();
    }

    /// Appends the header and every block to `out`, and starts over.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.deltas.is_empty() {
            self.flush_block();
        }
        varint(out, DELTA_BLOCK as u64);
        varint(out, (DELTA_BLOCK / DELTA_MINI) as u64);
        varint(out, self.count);
        zigzag(out, if self.count == 0 { 0 } else { self.first });
        out.extend_from_slice(&self.blocks);
        self.blocks.clear();
        self.count = 0;
    }
}

fn zigzag(out: &mut Vec<u8>, v: i64) {
    varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

thread_local! {
    static SNAPPY: RefCell<snap::raw::Encoder> = RefCell::new(snap::raw::Encoder::new());
}

/// Whether `path`'s chunks can be written by hand: data page v1s in a codec [`compress`]
/// knows.
pub(crate) fn writes(props: &WriterProperties, path: &parquet::schema::types::ColumnPath) -> bool {
    props.writer_version() == parquet::file::properties::WriterVersion::PARQUET_1_0
        && matches!(
            props.compression(path),
            Compression::UNCOMPRESSED | Compression::SNAPPY | Compression::ZSTD(_)
        )
}

/// `data` compressed as parquet's codec would (bulk zstd at the level, raw snappy).
pub(crate) fn compress(compression: Compression, data: &[u8]) -> Result<Bytes> {
    let io = |e: std::io::Error| ParquetError::External(Box::new(e));
    match compression {
        Compression::UNCOMPRESSED => Ok(Bytes::copy_from_slice(data)),
        Compression::SNAPPY => SNAPPY.with_borrow_mut(|enc| {
            let mut out = vec![0; snap::raw::max_compress_len(data.len())];
            let n = enc
                .compress(data, &mut out)
                .map_err(|e| ParquetError::External(Box::new(e)))?;
            out.truncate(n);
            Ok(Bytes::from(out))
        }),
        // The thread's compressor for the level (making one runs CPUID, ~7 µs in a VM).
        Compression::ZSTD(level) => {
            vivace_common::zstd_context::with_compressor(level.compression_level(), |c| {
                c.compress(data)
            })
            .map(Bytes::from)
            .map_err(io)
        }
        other => Err(ParquetError::General(format!(
            "no hand-written pages for {other:?}"
        ))),
    }
}

/// Files written by hand and by parquet's writer, compared as a reader sees them.
#[cfg(test)]
pub(crate) mod compare {
    use bytes::Bytes;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::serialized_reader::ReadOptionsBuilder;

    /// Every row as parquet's record reader gives it.
    pub(crate) fn rows(file: &Bytes) -> Vec<String> {
        let reader = SerializedFileReader::new(file.clone()).unwrap();
        reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap().to_string())
            .collect()
    }

    /// What a reader decodes of each column chunk of the first row group: encodings, values,
    /// codec, dictionary page or not, statistics and level histograms, column index, and each
    /// page's first row (page offsets and sizes left out).
    pub(crate) fn layout(file: &Bytes) -> Vec<String> {
        let opts = ReadOptionsBuilder::new().with_page_index().build();
        let reader = SerializedFileReader::new_with_options(file.clone(), opts).unwrap();
        let meta = reader.metadata();
        let index = meta.page_index_for_row_group(0);
        meta.row_group(0)
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let firsts: Vec<i64> = index
                    .page_locations(i)
                    .unwrap()
                    .iter()
                    .map(|p| p.first_row_index)
                    .collect();
                format!(
                    "{} {:?} values={} {:?} dict={} stats={:?} rep={:?} def={:?} index={:?} firsts={firsts:?}",
                    c.column_path(),
                    c.encodings().collect::<Vec<_>>(),
                    c.num_values(),
                    c.compression(),
                    c.dictionary_page_offset().is_some(),
                    c.statistics(),
                    c.repetition_level_histogram(),
                    c.definition_level_histogram(),
                    index.column_index(i),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_counted_past_a_16_bit_lane() {
        // More equal levels than a 16-bit counter holds, in chunks that end anywhere.
        let levels: Vec<i16> = (0..200_000)
            .map(|i| if i % 7 == 0 { 1 } else { 3 })
            .collect();
        for n in [0, 1, 65_534, 65_535, 65_536, 131_071, 200_000] {
            for v in [1, 3, 5] {
                let want = levels[..n].iter().filter(|&&x| x == v).count();
                assert_eq!(count_eq(&levels[..n], v), want, "{n} levels, {v}");
            }
        }
    }

    /// Pages of levels through the memo are the pages encoded directly: for a set seen again
    /// (in another buffer), pages cut elsewhere, sets evicted while a column still refers to
    /// theirs, and after the memo is forgotten.
    #[test]
    fn remembered_level_pages_are_the_pages_encoded() {
        let leaf = || {
            let schema = parquet::schema::parser::parse_message_type(
                "message m { repeated group rs { repeated group Spans { optional int64 V; } } }",
            )
            .unwrap();
            parquet::schema::types::SchemaDescriptor::new(std::sync::Arc::new(schema)).column(0)
        };
        let leaf = leaf();
        // Level sets of 6,000 entries: `k` picks how often a list repeats and a value is null.
        let set = |k: usize| {
            let (mut def, mut rep) = (Vec::new(), Vec::new());
            for i in 0..6000usize {
                rep.push(if i % (3 + k) == 0 { 0 } else { 2 });
                def.push(if i % (5 + k) == 0 { 2 } else { 3 });
            }
            (def, rep)
        };
        let direct = |def: &[i16], rep: &[i16], lo: usize, hi: usize| {
            let mut out = Vec::new();
            levels_v1(&rep[lo..hi], 2, &mut out);
            levels_v1(&def[lo..hi], 3, &mut out);
            out
        };
        let check = |lv: &Levels<'_>, def: &[i16], rep: &[i16], cuts: &[usize]| {
            for w in cuts.windows(2) {
                let mut out = vec![9];
                lv.page(w[0], w[1], &mut out);
                assert_eq!(out[1..], direct(def, rep, w[0], w[1]), "entries {w:?}");
            }
        };
        let defined = |def: &[i16]| def.iter().filter(|&&d| d == 3).count();
        let (a_def, a_rep) = set(0);
        let a = Levels::of(&leaf, defined(&a_def), &a_def, &a_rep).unwrap();
        assert!(a.memo.is_some());
        check(&a, &a_def, &a_rep, &[0, 1000, 2500, 6000]);
        // The same levels in another buffer: remembered pages and new cuts alike.
        let (a2_def, a2_rep) = (a_def.clone(), a_rep.clone());
        let a2 = Levels::of(&leaf, defined(&a2_def), &a2_def, &a2_rep).unwrap();
        assert_eq!(a2.memo, a.memo);
        check(&a2, &a_def, &a_rep, &[0, 1000, 2500, 3000, 6000]);
        // The wrong count of values is still an error.
        assert!(Levels::of(&leaf, defined(&a_def) + 1, &a_def, &a_rep).is_err());
        // Other sets push `a`'s out; `a` then encodes its pages itself.
        let others: Vec<_> = (1..=MEMO_SETS).map(set).collect();
        for (def, rep) in &others {
            let lv = Levels::of(&leaf, defined(def), def, rep).unwrap();
            check(&lv, def, rep, &[0, 3000, 6000]);
        }
        check(&a, &a_def, &a_rep, &[0, 1000, 2500, 6000]);
        forget_levels();
        check(&a2, &a_def, &a_rep, &[0, 1000, 6000]);
        let again = Levels::of(&leaf, defined(&a_def), &a_def, &a_rep).unwrap();
        check(&again, &a_def, &a_rep, &[0, 1000, 2500, 6000]);
    }

    #[test]
    fn rle_hybrid_round_trips() {
        // Runs and bit-packed stretches at widths 0–20, read back as the format describes
        // (parquet's own decoder reads them in the column tests of byte_chunk.rs/fixed_chunk.rs).
        for width in [0u8, 1, 3, 8, 13, 20] {
            let max = if width == 0 { 0 } else { (1u64 << width) - 1 };
            let mut vals = Vec::new();
            let mut x = 7u64;
            for i in 0..5000u64 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let v = if (i / 37) % 3 == 0 { 5 } else { x >> 33 };
                vals.push((v & max) as u32);
            }
            let mut out = Vec::new();
            rle_hybrid(&vals, width, &mut out);
            assert_eq!(decode(&out, width, vals.len()), vals, "width {width}");
        }
    }

    /// A plain reading of the hybrid, after the format's description.
    fn decode(mut b: &[u8], width: u8, n: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let varint = |b: &mut &[u8]| {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= ((byte & 0x7f) as u64) << shift;
                shift += 7;
                if byte < 0x80 {
                    return v;
                }
            }
        };
        while out.len() < n {
            let h = varint(&mut b);
            if h & 1 == 0 {
                let bytes = (width as usize).div_ceil(8);
                let mut v = [0u8; 8];
                v[..bytes].copy_from_slice(&b[..bytes]);
                b = &b[bytes..];
                out.extend(std::iter::repeat_n(
                    u64::from_le_bytes(v) as u32,
                    (h >> 1) as usize,
                ));
            } else {
                let count = (h >> 1) as usize * 8;
                let (mut acc, mut bits, mut at) = (0u64, 0u32, 0);
                for _ in 0..count {
                    while bits < width as u32 {
                        acc |= (b[at] as u64) << bits;
                        at += 1;
                        bits += 8;
                    }
                    out.push((acc & ((1u64 << width) - 1)) as u32);
                    acc >>= width;
                    bits -= width as u32;
                }
                b = &b[at..];
            }
        }
        out.truncate(n);
        out
    }
}
