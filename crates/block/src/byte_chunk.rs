//! Byte-array column chunks without statistics written by hand.
//!
//! Most byte-array columns of a block (names, attribute keys and values, service names, parent
//! span IDs with the compact codecs) are dictionary-encoded and carry no statistics. parquet's
//! column writer spent a third of a cut on them: every value hashed into its interner (ahash's
//! portable fallback: the crate is built without AES), cloned into the dictionary, batched again
//! by its byte-budget chunker; and each column chunk created a zstd compressor and decompressor,
//! two CPUID instructions that cost ~7 µs each in a virtual machine (measured here). The other
//! byte arrays below the trace (span and link IDs, trace states, status messages) are
//! DELTA_LENGTH_BYTE_ARRAY, where it spent most of the time in the same batching and codecs.
//!
//! [`write_byte_array_column`] writes such a column the way parquet's writer lays it out: data
//! page v1s of levels in the RLE/bit-packed hybrid, then `RLE_DICTIONARY` indices — or the
//! lengths DELTA_BINARY_PACKED and the bytes — cut after a batch of 1,024 levels extended to a
//! record boundary once the page holds the row limit or its values the byte limit; the
//! dictionary (PLAIN) first in the chunk; and, when the dictionary passes the writer's
//! `dictionary_page_size_limit`, the current page ended and the rest written PLAIN — parquet's
//! fallback. Values are interned with `FxHash` by their bytes (no clone: the dictionary page is
//! written from the first occurrences), pages are compressed with one compressor per thread,
//! and the chunk is spliced into the row group with its metadata and offset index
//! (`SerializedRowGroupWriter::append_column`). Any parquet reader reads it; the tests here
//! compare it with parquet's own writer, value for value and page for page, and an end-to-end
//! test reads every block with Arrow's C++ reader (`tests/e2e/arrow.rs`).

use std::collections::HashMap;
use std::io::Write;

use bytes::Bytes;
use parquet::basic::{Compression, Encoding, Type as PhysicalType};
use parquet::column::page::{CompressedPage, Page};
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::ByteArray;
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedRowGroupWriter;
use parquet::schema::types::ColumnDescPtr;
use rustc_hash::FxBuildHasher;

use crate::chunk::{
    BATCH_LEVELS, Extra, Levels, bits_for, compress, delta_binary_packed, rle_hybrid, write_chunk,
    writes,
};

/// Writes `vals` with their levels as the row group's next column, by hand, if that column is
/// a byte array without statistics written in data page v1s with a dictionary or
/// DELTA_LENGTH_BYTE_ARRAY; answers `false` (nothing written) otherwise, for parquet's column
/// writer to write it. The values are byte arrays, or entries a caller already numbered
/// (compaction, whose inputs' pages are dictionary-encoded: [`Interned`]).
pub(crate) fn write_byte_array_column<'a, W: Write + Send>(
    rg: &mut SerializedRowGroupWriter<'_, W>,
    leaf: &ColumnDescPtr,
    props: &WriterProperties,
    vals: impl ByteValues<'a>,
    def: &[i16],
    rep: &[i16],
) -> Result<bool> {
    let Some(values) = encoding_by_hand(leaf, props) else {
        return Ok(false);
    };
    let (bytes, close) = encode(leaf, props, values, vals, def, rep)?;
    rg.append_column(&bytes, close)?;
    Ok(true)
}

/// The values' encoding if [`write_byte_array_column`] writes column `leaf`: a byte array
/// without statistics, with a dictionary (`RLE_DICTIONARY`) or DELTA_LENGTH_BYTE_ARRAY, in data
/// page v1s with a codec compressed here.
pub(crate) fn encoding_by_hand(leaf: &ColumnDescPtr, props: &WriterProperties) -> Option<Encoding> {
    let path = leaf.path();
    let values = if props.dictionary_enabled(path) {
        Encoding::RLE_DICTIONARY
    } else if props.encoding(path) == Some(Encoding::DELTA_LENGTH_BYTE_ARRAY) {
        Encoding::DELTA_LENGTH_BYTE_ARRAY
    } else {
        return None;
    };
    (leaf.physical_type() == PhysicalType::BYTE_ARRAY
        && props.statistics_enabled(path) == EnabledStatistics::None
        && writes(props, path))
    .then_some(values)
}

/// The column chunk's bytes (offsets in its metadata relative to them) and what parquet's column
/// writer would have answered on closing it.
fn encode<'a>(
    leaf: &ColumnDescPtr,
    props: &WriterProperties,
    values: Encoding,
    vals: impl ByteValues<'a>,
    def: &[i16],
    rep: &[i16],
) -> Result<(Bytes, ColumnCloseResult)> {
    let path = leaf.path();
    let lv = Levels::of(leaf, vals.len(), def, rep)?;
    let levels = lv.count;
    let compression = props.compression(path);
    let col = Column {
        compression,
        vals,
        levels: &lv,
    };
    let row_limit = props.column_data_page_row_count_limit(path);
    let size_limit = props.column_data_page_size_limit(path);
    let dict_limit = props.column_dictionary_page_size_limit(path);

    let mut dict = Dictionary::default();
    let mut ids: Vec<u32> = Vec::with_capacity(vals.len());
    let mut pages: Vec<(CompressedPage, usize)> = Vec::new();
    let mut page = PageStart::default();
    let mut scratch = Vec::new();
    // The encoding of the values of the page being built: RLE_DICTIONARY until the dictionary
    // falls back to PLAIN, or DELTA_LENGTH_BYTE_ARRAY throughout.
    let mut encoding = values;
    let (mut lo, mut v_lo) = (0, 0);
    while lo < levels {
        let chunk_end = lv.record_end((lo + BATCH_LEVELS).min(levels), levels);
        let in_chunk = lv.values(lo, chunk_end);
        // As parquet's byte-budget chunker: a chunk whose values could pass what is left of
        // the dictionary page's limit (or, PLAIN, the data page's) is written in shorter
        // batches, so the dictionary stops close to its limit.
        let budget = match encoding {
            Encoding::RLE_DICTIONARY => dict_limit.saturating_sub(dict.bytes),
            _ => size_limit,
        };
        let step = batch_levels(&vals, v_lo..v_lo + in_chunk, chunk_end - lo, budget);
        while lo < chunk_end {
            let hi = lv.record_end((lo + step).min(chunk_end), chunk_end);
            let n = lv.values(lo, hi);
            let batch = v_lo..v_lo + n;
            page.rows += lv.rows(lo, hi);
            // The page's size as parquet's encoders estimate it: PLAIN's length prefixes and
            // bytes; the bytes of DELTA_LENGTH_BYTE_ARRAY (its packed lengths are a few bytes
            // per 128 values); the bit-packed dictionary indices.
            match encoding {
                Encoding::RLE_DICTIONARY => {
                    for i in batch {
                        ids.push(match vals.entry(i) {
                            Some(id) => dict.known(id, i, vals.get(i).len())?,
                            None => dict.intern(vals.get(i)),
                        });
                    }
                    page.bytes = (ids.len() - page.ids) * dict.bit_width() as usize / 8;
                }
                Encoding::PLAIN => {
                    page.bytes += batch.map(|i| 4 + vals.get(i).len()).sum::<usize>()
                }
                _ => page.bytes += batch.map(|i| vals.get(i).len()).sum::<usize>(),
            }
            (lo, v_lo) = (hi, v_lo + n);
            if encoding == Encoding::RLE_DICTIONARY && dict.bytes >= dict_limit {
                pages.push(page.finish(&col, lo, v_lo, &ids, &dict, encoding, &mut scratch)?);
                encoding = Encoding::PLAIN;
                page = PageStart::at(lo, v_lo, ids.len());
            } else if page.rows >= row_limit || page.bytes >= size_limit {
                pages.push(page.finish(&col, lo, v_lo, &ids, &dict, encoding, &mut scratch)?);
                page = PageStart::at(lo, v_lo, ids.len());
            }
        }
    }
    if page.levels < levels {
        pages.push(page.finish(&col, levels, v_lo, &ids, &dict, encoding, &mut scratch)?);
    }
    let dict = match values {
        Encoding::RLE_DICTIONARY => Some(dict.page(&vals, compression)?),
        _ => None,
    };
    write_chunk(leaf, props, compression, dict, pages, Extra::default())
}

/// Levels per batch of a chunk of `levels` levels holding `vals`: all of them, unless the
/// values' PLAIN bytes pass `budget` — then as many levels, in proportion, as values up to the
/// first past it (parquet's `ByteBudgetChunker`, which only `write_batch` sees).
fn batch_levels<'a>(
    vals: &impl ByteValues<'a>,
    range: std::ops::Range<usize>,
    levels: usize,
    budget: usize,
) -> usize {
    let n = range.len();
    let mut bytes = 0usize;
    let Some(fit) = range.into_iter().position(|i| {
        bytes += 4 + vals.get(i).len();
        bytes > budget
    }) else {
        return levels;
    };
    let fit = fit + 1;
    if n == levels {
        fit
    } else {
        (fit * levels).div_ceil(n).clamp(1, levels)
    }
}

/// The values of a byte-array column being written: each one's bytes, and — when the caller
/// interned them already — its dictionary entry.
pub(crate) trait ByteValues<'a>: Copy {
    fn get(&self, i: usize) -> &'a [u8];
    /// Value `i`'s dictionary entry, if the caller gave entries: numbered in order of first
    /// occurrence, so the dictionary is the one interning the bytes would build.
    fn entry(&self, i: usize) -> Option<u32>;
    fn len(&self) -> usize;
}

impl<'a> ByteValues<'a> for &'a [ByteArray] {
    fn get(&self, i: usize) -> &'a [u8] {
        self[i].data()
    }

    fn entry(&self, _i: usize) -> Option<u32> {
        None
    }

    fn len(&self) -> usize {
        <[ByteArray]>::len(self)
    }
}

/// Byte arrays end to end in one buffer, as a cut buffers a string column: value `i` is
/// `bytes[offsets[i]..offsets[i + 1]]`. Shredding copies each string here (most are a few bytes)
/// rather than holding a reference-counted handle to the buffer it was decoded from.
#[derive(Debug)]
pub(crate) struct Texts {
    bytes: Vec<u8>,
    /// Where each value starts, and one past the last value's end.
    offsets: Vec<usize>,
}

impl Texts {
    pub(crate) fn with_capacity(values: usize, bytes: usize) -> Texts {
        let mut offsets = Vec::with_capacity(values + 1);
        offsets.push(0);
        Texts {
            bytes: Vec::with_capacity(bytes),
            offsets,
        }
    }

    /// The values' bytes in all.
    pub(crate) fn bytes_len(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn push(&mut self, v: &[u8]) {
        self.bytes.extend_from_slice(v);
        self.offsets.push(self.bytes.len());
    }

    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.offsets.truncate(1);
    }

    /// The values as parquet's byte arrays (slices of one buffer), for the columns parquet's
    /// writer writes; empties `self`.
    pub(crate) fn take_byte_arrays(&mut self) -> Vec<ByteArray> {
        let all = Bytes::from(std::mem::take(&mut self.bytes));
        let arrays = self
            .offsets
            .windows(2)
            .map(|w| ByteArray::from(all.slice(w[0]..w[1])))
            .collect();
        self.clear();
        arrays
    }
}

impl<'a> ByteValues<'a> for &'a Texts {
    fn get(&self, i: usize) -> &'a [u8] {
        &self.bytes[self.offsets[i]..self.offsets[i + 1]]
    }

    fn entry(&self, _i: usize) -> Option<u32> {
        None
    }

    fn len(&self) -> usize {
        Texts::len(self)
    }
}

/// Values given as dictionary entries: `ids[i]` is value `i`'s index into `entries`, the
/// entries numbered in order of first occurrence.
#[derive(Clone, Copy)]
pub(crate) struct Interned<'a> {
    pub(crate) ids: &'a [u32],
    pub(crate) entries: &'a [Bytes],
}

impl<'a> ByteValues<'a> for Interned<'a> {
    fn get(&self, i: usize) -> &'a [u8] {
        &self.entries[self.ids[i] as usize]
    }

    fn entry(&self, i: usize) -> Option<u32> {
        Some(self.ids[i])
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// The column being written.
struct Column<'l, V> {
    compression: Compression,
    vals: V,
    levels: &'l Levels<'l>,
}

/// Where the page being built starts, and what it holds so far.
#[derive(Default)]
struct PageStart {
    levels: usize,
    vals: usize,
    ids: usize,
    rows: usize,
    /// Its values' encoded size, as parquet estimates it.
    bytes: usize,
}

impl PageStart {
    fn at(levels: usize, vals: usize, ids: usize) -> PageStart {
        PageStart {
            levels,
            vals,
            ids,
            ..PageStart::default()
        }
    }

    /// Encodes levels `self.levels..levels` and their values — dictionary indices, or the
    /// values themselves in `encoding` — as one compressed data page v1; answers it with its
    /// rows.
    #[allow(clippy::too_many_arguments)]
    fn finish<'a, V: ByteValues<'a>>(
        &self,
        col: &Column<'_, V>,
        levels: usize,
        vals: usize,
        ids: &[u32],
        dict: &Dictionary<'_>,
        encoding: Encoding,
        buf: &mut Vec<u8>,
    ) -> Result<(CompressedPage, usize)> {
        buf.clear();
        col.levels.page(self.levels, levels, buf);
        let page_vals = (self.vals..vals).map(|i| col.vals.get(i));
        match encoding {
            Encoding::RLE_DICTIONARY => {
                let width = dict.bit_width();
                buf.push(width);
                rle_hybrid(&ids[self.ids..], width, buf);
            }
            Encoding::PLAIN => {
                for v in page_vals {
                    put_plain(buf, v);
                }
            }
            _ => {
                delta_binary_packed(page_vals.clone().map(|v| v.len() as i64), buf);
                for v in page_vals {
                    buf.extend_from_slice(v);
                }
            }
        }
        let page = Page::DataPage {
            buf: compress(col.compression, buf)?,
            num_values: (levels - self.levels) as u32,
            encoding,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        Ok((CompressedPage::new(page, buf.len()), self.rows))
    }
}

/// A column chunk's dictionary: each distinct value's index, by its bytes, in order of first
/// occurrence; the values are not copied — `first` holds where each first occurs.
#[derive(Default)]
struct Dictionary<'a> {
    index: HashMap<&'a [u8], u32, FxBuildHasher>,
    /// The value number of each entry's first occurrence.
    first: Vec<u32>,
    /// Values interned so far.
    seen: u32,
    /// The dictionary page's PLAIN size: 4 bytes of length and the bytes per entry.
    bytes: usize,
}

impl<'a> Dictionary<'a> {
    /// Value `v`'s entry, a new one if its bytes are new.
    fn intern(&mut self, v: &'a [u8]) -> u32 {
        let at = self.seen;
        self.seen += 1;
        let next = self.first.len() as u32;
        let id = *self.index.entry(v).or_insert(next);
        if id == next {
            self.first.push(at);
            self.bytes += 4 + v.len();
        }
        id
    }

    /// Value number `at`, `len` bytes, given as entry `id` by a caller that numbered entries
    /// in order of first occurrence: a new entry when `id` is the next number.
    fn known(&mut self, id: u32, at: usize, len: usize) -> Result<u32> {
        self.seen += 1;
        let next = self.first.len() as u32;
        if id == next {
            self.first.push(at as u32);
            self.bytes += 4 + len;
        } else if id > next {
            return Err(ParquetError::General(format!(
                "dictionary entry {id} given before entry {next}"
            )));
        }
        Ok(id)
    }

    /// The dictionary page: each entry PLAIN (4 bytes of length, the bytes), compressed.
    fn page<'v>(
        &self,
        vals: &impl ByteValues<'v>,
        compression: Compression,
    ) -> Result<CompressedPage> {
        let mut plain = Vec::with_capacity(self.bytes);
        for &first in &self.first {
            put_plain(&mut plain, vals.get(first as usize));
        }
        let page = Page::DictionaryPage {
            buf: compress(compression, &plain)?,
            num_values: self.first.len() as u32,
            encoding: Encoding::PLAIN,
            is_sorted: false,
        };
        Ok(CompressedPage::new(page, plain.len()))
    }

    /// Bits per index in a page written now: enough for the entries so far (0 for one).
    fn bit_width(&self) -> u8 {
        bits_for(self.first.len().saturating_sub(1) as u64)
    }
}

/// Appends `v` as PLAIN encodes a byte array: its length in 4 bytes, then its bytes.
fn put_plain(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    out.extend_from_slice(v);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parquet::data_type::ByteArrayType;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    use super::*;
    use crate::chunk::compare::{layout, rows};

    const SCHEMA: &str = "message m {
        optional binary Name (STRING);
        repeated group rs {
            repeated group Attrs {
                required binary Key (STRING);
                optional binary Value (STRING);
            }
        }
    }";

    /// A column's values and levels.
    #[derive(Default)]
    struct Col {
        vals: Vec<ByteArray>,
        def: Vec<i16>,
        rep: Vec<i16>,
    }

    /// `rows` rows of pseudo-random shape: names from 5 (or null), 0–3 resources of 0–4
    /// attributes, keys from 20, values from `distinct` (or null).
    fn columns(rows: usize, distinct: u64) -> [Col; 3] {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let [mut name, mut key, mut value] = [Col::default(), Col::default(), Col::default()];
        for _ in 0..rows {
            match next(6) {
                5 => name.def.push(0),
                n => {
                    name.def.push(1);
                    name.vals
                        .push(ByteArray::from(format!("service-{n}").as_str()));
                }
            }
            let resources = next(4);
            if resources == 0 {
                for c in [&mut key, &mut value] {
                    c.def.push(0);
                    c.rep.push(0);
                }
            }
            for r in 0..resources {
                let attrs = next(5);
                let first_rep = if r == 0 { 0 } else { 1 };
                if attrs == 0 {
                    for c in [&mut key, &mut value] {
                        c.def.push(1);
                        c.rep.push(first_rep);
                    }
                }
                for a in 0..attrs {
                    let rep = if a == 0 { first_rep } else { 2 };
                    key.def.push(2);
                    key.rep.push(rep);
                    key.vals
                        .push(ByteArray::from(format!("key.{}", next(20)).as_str()));
                    value.rep.push(rep);
                    if next(10) == 0 {
                        value.def.push(2);
                    } else {
                        value.def.push(3);
                        value.vals.push(ByteArray::from(
                            format!("value {}", next(distinct)).as_str(),
                        ));
                    }
                }
            }
        }
        [name, key, value]
    }

    fn props(compression: Compression, dict_limit: usize) -> WriterProperties {
        WriterProperties::builder()
            .set_compression(compression)
            .set_dictionary_enabled(true)
            .set_statistics_enabled(EnabledStatistics::None)
            .set_data_page_row_count_limit(100)
            .set_dictionary_page_size_limit(dict_limit)
            .build()
    }

    /// The columns written as one row group, by hand or by parquet's column writer.
    fn write(cols: &[Col; 3], props: WriterProperties, by_hand: bool) -> Bytes {
        let schema = Arc::new(parse_message_type(SCHEMA).unwrap());
        let props = Arc::new(props);
        let mut w = SerializedFileWriter::new(Vec::new(), schema, props.clone()).unwrap();
        let descr = Arc::new(w.schema_descr().clone());
        let mut rg = w.next_row_group().unwrap();
        for (i, c) in cols.iter().enumerate() {
            let leaf = descr.column(i);
            if by_hand {
                assert!(
                    write_byte_array_column(&mut rg, &leaf, &props, &c.vals[..], &c.def, &c.rep)
                        .unwrap()
                );
            } else {
                let mut col = rg.next_column().unwrap().unwrap();
                let rep = (leaf.max_rep_level() > 0).then_some(&c.rep[..]);
                col.typed::<ByteArrayType>()
                    .write_batch(&c.vals, Some(&c.def), rep)
                    .unwrap();
                col.close().unwrap();
            }
        }
        rg.close().unwrap();
        Bytes::from(w.into_inner().unwrap())
    }

    #[test]
    fn reads_back_as_parquets_own_writer_wrote_it() {
        // Dictionaries that fit; values' dictionary overflowing a 4 KiB limit (parquet falls
        // back to PLAIN pages); every codec.
        for (distinct, dict_limit) in [(50, 1 << 20), (1_000_000, 4096)] {
            let cols = columns(3000, distinct);
            for compression in [
                Compression::UNCOMPRESSED,
                Compression::SNAPPY,
                Compression::ZSTD(parquet::basic::ZstdLevel::try_new(3).unwrap()),
            ] {
                let ours = write(&cols, props(compression, dict_limit), true);
                let theirs = write(&cols, props(compression, dict_limit), false);
                assert_eq!(rows(&ours), rows(&theirs), "{compression:?} {distinct}");
                assert_eq!(layout(&ours), layout(&theirs), "{compression:?} {distinct}");
            }
        }
    }

    #[test]
    fn large_values_fall_back_and_cut_pages_as_parquet_does() {
        // Values of 30–80 KB: the dictionary passes 1 MiB within a batch (shorter batches, then
        // PLAIN pages), and PLAIN pages pass the 256 KiB page limit after a few values.
        let mut cols = columns(400, 1_000_000);
        for (i, v) in cols[2].vals.iter_mut().enumerate() {
            let len = 30_000 + (i * 7919) % 50_000;
            *v = ByteArray::from(vec![b'a' + (i % 26) as u8; len]);
        }
        let p = || {
            let mut b = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_dictionary_enabled(true)
                .set_statistics_enabled(EnabledStatistics::None)
                .set_data_page_size_limit(256 << 10);
            b = b.set_data_page_row_count_limit(100);
            b.build()
        };
        let ours = write(&cols, p(), true);
        let theirs = write(&cols, p(), false);
        assert_eq!(rows(&ours), rows(&theirs));
        assert_eq!(layout(&ours), layout(&theirs));
        // Short PLAIN pages after the fallback, and dictionary pages before it.
        let value = &layout(&ours)[2];
        assert!(value.matches(", ").count() > 40, "{value}");
    }

    #[test]
    fn delta_length_columns_read_back_as_parquets_own_writer_wrote_them() {
        let small = columns(3000, 1_000_000);
        let mut large = columns(400, 1_000_000);
        for (i, v) in large[2].vals.iter_mut().enumerate() {
            *v = ByteArray::from(vec![b'a' + (i % 26) as u8; 30_000 + (i * 7919) % 50_000]);
        }
        for cols in [&small, &large] {
            for compression in [
                Compression::UNCOMPRESSED,
                Compression::SNAPPY,
                Compression::ZSTD(parquet::basic::ZstdLevel::try_new(3).unwrap()),
            ] {
                let p = || {
                    WriterProperties::builder()
                        .set_compression(compression)
                        .set_dictionary_enabled(false)
                        .set_encoding(Encoding::DELTA_LENGTH_BYTE_ARRAY)
                        .set_statistics_enabled(EnabledStatistics::None)
                        .set_data_page_row_count_limit(100)
                        .set_data_page_size_limit(256 << 10)
                        .build()
                };
                let ours = write(cols, p(), true);
                let theirs = write(cols, p(), false);
                assert_eq!(rows(&ours), rows(&theirs), "{compression:?}");
                assert_eq!(layout(&ours), layout(&theirs), "{compression:?}");
            }
        }
    }

    #[test]
    fn delta_binary_packed_reads_back() {
        // Lengths of every shape: none, one, a partial block, several blocks, equal, growing,
        // falling, wide — through parquet's own decoder (a one-column file of PLAIN-free pages
        // is the simplest way there: the length column of DELTA_LENGTH_BYTE_ARRAY).
        for lens in [
            vec![],
            vec![7],
            vec![3; 100],
            (0..300).map(|i| (i * 37) % 1000).collect::<Vec<usize>>(),
            (0..1000).rev().collect(),
            (0..129)
                .map(|i| if i % 2 == 0 { 0 } else { 70_000 })
                .collect(),
        ] {
            let vals: Vec<ByteArray> = lens
                .iter()
                .enumerate()
                .map(|(i, &n)| ByteArray::from(vec![b'a' + (i % 26) as u8; n]))
                .collect();
            // One row: no name, one resource whose attributes hold the values (none: no
            // resource at all).
            let n = vals.len();
            let rep: Vec<i16> = (0..n.max(1)).map(|i| if i == 0 { 0 } else { 2 }).collect();
            let (key_def, value_def) = if n == 0 {
                (vec![0], vec![0])
            } else {
                (vec![2; n], vec![3; n])
            };
            let cols = [
                Col {
                    def: vec![0],
                    ..Col::default()
                },
                Col {
                    vals: vec![ByteArray::from("k"); n],
                    def: key_def,
                    rep: rep.clone(),
                },
                Col {
                    vals,
                    def: value_def,
                    rep,
                },
            ];
            let p = || {
                WriterProperties::builder()
                    .set_dictionary_enabled(false)
                    .set_encoding(Encoding::DELTA_LENGTH_BYTE_ARRAY)
                    .set_statistics_enabled(EnabledStatistics::None)
                    .build()
            };
            assert_eq!(
                rows(&write(&cols, p(), true)),
                rows(&write(&cols, p(), false))
            );
        }
    }

    #[test]
    fn one_entry_and_all_null_columns() {
        let mut cols = columns(500, 1);
        // Every Value null: an empty dictionary, pages of levels only.
        cols[2].vals.clear();
        for d in &mut cols[2].def {
            *d = (*d).min(2);
        }
        let p = || props(Compression::SNAPPY, 1 << 20);
        let ours = write(&cols, p(), true);
        assert_eq!(rows(&ours), rows(&write(&cols, p(), false)));
        assert_eq!(layout(&ours), layout(&write(&cols, p(), false)));
    }
}
