//! Integer (DELTA_BINARY_PACKED) and boolean (PLAIN) column chunks written by hand, statistics
//! and column index included.
//!
//! After the byte arrays (`byte_chunk.rs`), the integer columns — times, durations, kinds,
//! status codes, nested-set numbers, counters — were most of what parquet's column writer still
//! cost a cut and a compaction: its batching, a zstd compressor and decompressor created per
//! chunk, levels and values encoded through generic paths; then the booleans (`IsArray` has an
//! entry per attribute: 3–5% of a cut or a compaction). [`write_fixed_column`] writes such a
//! column as parquet's writer lays it out and describes it: data page v1s of RLE levels and
//! DELTA_BINARY_PACKED integers or bit-packed booleans, cut after a batch of 1,024 levels
//! (extended to a record boundary) once the page holds the row limit or its values the byte
//! limit as parquet estimates it; with page statistics,
//! each page's minimum and maximum (unsigned where the logical type says so), null count and
//! level histograms in the column index, the pages' boundary order, and the chunk's statistics
//! and histograms in its metadata — what trace by ID and search prune on. The tests compare
//! all of it with parquet's own writer.

use std::io::Write;

use bytes::Bytes;
use parquet::basic::{BoundaryOrder, Encoding, SortOrder, Type as PhysicalType};
use parquet::column::page::{CompressedPage, Page};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::Result;
use parquet::file::metadata::{ColumnIndexBuilder, LevelHistogram};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::SerializedRowGroupWriter;
use parquet::schema::types::ColumnDescPtr;

use crate::chunk::{
    BATCH_LEVELS, DeltaEncoder, Extra, Levels, compress, count_eq, write_chunk, writes,
};

/// A value of an INT32, INT64 or BOOLEAN column.
pub(crate) trait FixedValue: Copy {
    /// The column's physical type, and the values' encoding written here.
    const PHYSICAL: PhysicalType;
    const ENCODING: Encoding;
    /// Encodes a page's values.
    type Encoder: PageValues<Self> + Default;
    fn statistics(v: ValueStatistics<Self>) -> Statistics;
    /// The value's place in the column's sort order.
    fn key(self, unsigned: bool) -> i128;
    fn le(self) -> Vec<u8>;
}

/// A page's values being encoded.
pub(crate) trait PageValues<T> {
    fn put(&mut self, v: T);
    /// The values' size so far, as parquet's encoder estimates it (where a page is cut).
    fn bytes_written(&self) -> usize;
    /// Appends the page's values to `out` and starts over.
    fn finish(&mut self, out: &mut Vec<u8>);
}

/// `FixedValue` for an integer type, its physical type, unsigned counterpart and statistics
/// variant.
macro_rules! int_value {
    ($t:ty, $physical:ident, $unsigned:ty, $variant:ident) => {
        impl FixedValue for $t {
            const PHYSICAL: PhysicalType = PhysicalType::$physical;
            const ENCODING: Encoding = Encoding::DELTA_BINARY_PACKED;
            type Encoder = DeltaEncoder;
            fn statistics(v: ValueStatistics<$t>) -> Statistics {
                Statistics::$variant(v)
            }
            fn key(self, unsigned: bool) -> i128 {
                if unsigned {
                    self as $unsigned as i128
                } else {
                    self as i128
                }
            }
            fn le(self) -> Vec<u8> {
                self.to_le_bytes().to_vec()
            }
        }

        impl PageValues<$t> for DeltaEncoder {
            fn put(&mut self, v: $t) {
                DeltaEncoder::put(self, v as i64)
            }
            fn bytes_written(&self) -> usize {
                DeltaEncoder::bytes_written(self)
            }
            fn finish(&mut self, out: &mut Vec<u8>) {
                DeltaEncoder::finish(self, out)
            }
        }
    };
}
int_value!(i32, INT32, u32, Int32);
int_value!(i64, INT64, u64, Int64);

impl FixedValue for bool {
    const PHYSICAL: PhysicalType = PhysicalType::BOOLEAN;
    const ENCODING: Encoding = Encoding::PLAIN;
    type Encoder = BitPacked;
    fn statistics(v: ValueStatistics<bool>) -> Statistics {
        Statistics::Boolean(v)
    }
    fn key(self, _unsigned: bool) -> i128 {
        self as i128
    }
    fn le(self) -> Vec<u8> {
        vec![self as u8]
    }
}

/// Booleans PLAIN-encoded: a bit each, least significant first.
#[derive(Default)]
pub(crate) struct BitPacked {
    bytes: Vec<u8>,
    count: usize,
}

impl PageValues<bool> for BitPacked {
    fn put(&mut self, v: bool) {
        if self.count.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if let Some(last) = self.bytes.last_mut() {
            *last |= (v as u8) << (self.count % 8);
        }
        self.count += 1;
    }

    fn bytes_written(&self) -> usize {
        self.bytes.len()
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes);
        self.bytes.clear();
        self.count = 0;
    }
}

/// Writes `vals` with their levels as the row group's next column, by hand, if that column is
/// an integer column written DELTA_BINARY_PACKED or a boolean column written PLAIN, in data
/// page v1s without a dictionary, with page statistics or none; answers `false` (nothing
/// written) otherwise.
pub(crate) fn write_fixed_column<W: Write + Send, T: FixedValue>(
    rg: &mut SerializedRowGroupWriter<'_, W>,
    leaf: &ColumnDescPtr,
    props: &WriterProperties,
    vals: &[T],
    def: &[i16],
    rep: &[i16],
) -> Result<bool> {
    let path = leaf.path();
    let statistics = props.statistics_enabled(path);
    if leaf.physical_type() != T::PHYSICAL
        || props.dictionary_enabled(path)
        || props.encoding(path) != Some(T::ENCODING)
        || !matches!(
            statistics,
            EnabledStatistics::None | EnabledStatistics::Page
        )
        || !writes(props, path)
    {
        return Ok(false);
    }
    let (bytes, close) = encode(
        leaf,
        props,
        statistics == EnabledStatistics::Page,
        vals,
        def,
        rep,
    )?;
    rg.append_column(&bytes, close)?;
    Ok(true)
}

/// Minimum and maximum of some values, in the column's order.
#[derive(Clone, Copy)]
struct MinMax<T> {
    min: T,
    max: T,
}

impl<T: FixedValue> MinMax<T> {
    /// Of `vals`, if any.
    fn of(vals: &[T], unsigned: bool) -> Option<MinMax<T>> {
        let first = *vals.first()?;
        let mut m = MinMax {
            min: first,
            max: first,
        };
        let (mut lo, mut hi) = (first.key(unsigned), first.key(unsigned));
        for &v in vals {
            let k = v.key(unsigned);
            if k < lo {
                (lo, m.min) = (k, v);
            }
            if k > hi {
                (hi, m.max) = (k, v);
            }
        }
        Some(m)
    }

    /// `this` widened to cover `other`.
    fn merge(this: &mut Option<MinMax<T>>, other: MinMax<T>, unsigned: bool) {
        match this {
            None => *this = Some(other),
            Some(m) => {
                if other.min.key(unsigned) < m.min.key(unsigned) {
                    m.min = other.min;
                }
                if other.max.key(unsigned) > m.max.key(unsigned) {
                    m.max = other.max;
                }
            }
        }
    }
}

/// The page being built.
struct PageState<T> {
    levels: usize,
    rows: usize,
    nulls: u64,
    values: Option<MinMax<T>>,
    rep_hist: Option<LevelHistogram>,
    def_hist: Option<LevelHistogram>,
}

/// The column chunk's bytes (offsets in its metadata relative to them) and what parquet's column
/// writer would have answered on closing it.
fn encode<T: FixedValue>(
    leaf: &ColumnDescPtr,
    props: &WriterProperties,
    with_statistics: bool,
    vals: &[T],
    def: &[i16],
    rep: &[i16],
) -> Result<(Bytes, ColumnCloseResult)> {
    let path = leaf.path();
    let (max_def, max_rep) = (leaf.max_def_level(), leaf.max_rep_level());
    let lv = Levels::of(leaf, vals.len(), def, rep)?;
    let (def, rep, levels) = (lv.def, lv.rep, lv.count);
    let compression = props.compression(path);
    let row_limit = props.column_data_page_row_count_limit(path);
    let size_limit = props.column_data_page_size_limit(path);
    let unsigned = leaf.sort_order() == SortOrder::UNSIGNED;
    let histogram = |max: i16| {
        with_statistics
            .then(|| LevelHistogram::try_new(max))
            .flatten()
    };
    let new_page = |at: usize| PageState {
        levels: at,
        rows: 0,
        nulls: 0,
        values: None,
        rep_hist: histogram(max_rep),
        def_hist: histogram(max_def),
    };

    let mut index = ColumnIndexBuilder::new(leaf.physical_type());
    if !with_statistics {
        index.to_invalid();
    }
    let (mut ascending, mut descending) = (true, true);
    let mut last_page: Option<MinMax<T>> = None;
    let mut chunk_values: Option<MinMax<T>> = None;
    let (mut chunk_nulls, mut chunk_rep, mut chunk_def) =
        (0u64, histogram(max_rep), histogram(max_def));

    let mut pages: Vec<(CompressedPage, usize)> = Vec::new();
    let mut encoder = T::Encoder::default();
    let mut buf = Vec::new();
    let mut page = new_page(0);
    let (mut lo, mut v_lo) = (0, 0);
    let mut flush = |page: &mut PageState<T>,
                     end: usize,
                     encoder: &mut T::Encoder,
                     pages: &mut Vec<(CompressedPage, usize)>|
     -> Result<()> {
        buf.clear();
        lv.page(page.levels, end, &mut buf);
        encoder.finish(&mut buf);
        let data = Page::DataPage {
            buf: compress(compression, &buf)?,
            num_values: (end - page.levels) as u32,
            encoding: T::ENCODING,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        pages.push((CompressedPage::new(data, buf.len()), page.rows));
        // The column index entry, as parquet's writer makes it: a page is "null" when it holds
        // as many nulls as rows; a page of neither values nor only nulls leaves the column
        // without an index.
        if index.valid() {
            if page.rows as u64 == page.nulls {
                index.append(true, vec![], vec![], page.nulls as i64, None);
            } else if let Some(m) = page.values {
                if let Some(last) = last_page {
                    if last.min.key(unsigned) > m.min.key(unsigned)
                        || last.max.key(unsigned) > m.max.key(unsigned)
                    {
                        ascending = false;
                    }
                    if m.min.key(unsigned) > last.min.key(unsigned)
                        || m.max.key(unsigned) > last.max.key(unsigned)
                    {
                        descending = false;
                    }
                }
                last_page = Some(m);
                index.append(false, m.min.le(), m.max.le(), page.nulls as i64, None);
            } else {
                index.to_invalid();
            }
            index.append_histograms(&page.rep_hist, &page.def_hist);
        }
        if let Some(m) = page.values {
            MinMax::merge(&mut chunk_values, m, unsigned);
        }
        chunk_nulls += page.nulls;
        if let (Some(c), Some(p)) = (&mut chunk_rep, &page.rep_hist) {
            c.add(p);
        }
        if let (Some(c), Some(p)) = (&mut chunk_def, &page.def_hist) {
            c.add(p);
        }
        *page = new_page(end);
        Ok(())
    };
    while lo < levels {
        let hi = lv.record_end((lo + BATCH_LEVELS).min(levels), levels);
        let n = lv.values(lo, hi);
        let batch = &vals[v_lo..v_lo + n];
        page.rows += lv.rows(lo, hi);
        page.nulls += ((hi - lo) - n) as u64;
        for (h, l) in [(&mut page.rep_hist, rep), (&mut page.def_hist, def)] {
            if let Some(h) = h {
                // Counted a level at a time over the batch: comparisons that vectorise, where
                // an increment per entry waited on the previous one (runs of one level are most
                // of a column) and was most of this function's time.
                let entries = &l[lo..hi];
                for level in 0..h.values().len() {
                    let at = level as i16;
                    let n = count_eq(entries, at);
                    h.increment_by(at, n as i64);
                }
            }
        }
        for &v in batch {
            encoder.put(v);
        }
        if with_statistics && let Some(m) = MinMax::of(batch, unsigned) {
            MinMax::merge(&mut page.values, m, unsigned);
        }
        (lo, v_lo) = (hi, v_lo + n);
        if page.rows >= row_limit || encoder.bytes_written() >= size_limit {
            flush(&mut page, lo, &mut encoder, &mut pages)?;
        }
    }
    if page.levels < levels {
        flush(&mut page, levels, &mut encoder, &mut pages)?;
    }
    let extra = if with_statistics {
        index.set_boundary_order(match (ascending, descending) {
            (true, _) => BoundaryOrder::ASCENDING,
            (false, true) => BoundaryOrder::DESCENDING,
            (false, false) => BoundaryOrder::UNORDERED,
        });
        let statistics = T::statistics(
            ValueStatistics::new(
                chunk_values.map(|m| m.min),
                chunk_values.map(|m| m.max),
                None,
                Some(chunk_nulls),
                false,
            )
            .with_nan_count(None)
            .with_backwards_compatible_min_max(!unsigned),
        );
        Extra {
            statistics: Some(statistics),
            rep_histogram: chunk_rep,
            def_histogram: chunk_def,
            column_index: if index.valid() {
                Some(index.build()?)
            } else {
                None
            },
        }
    } else {
        Extra::default()
    };
    write_chunk(leaf, props, compression, None, pages, extra)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parquet::basic::Compression;
    use parquet::data_type::{BoolType, Int32Type, Int64Type};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    use super::*;
    use crate::chunk::compare::{layout, rows};

    const SCHEMA: &str = "message m {
        required int64 Start (INTEGER(64,false));
        repeated group rs {
            repeated group Spans {
                required int32 Count (INTEGER(32,true));
                optional int64 Value;
                optional boolean Flag;
            }
        }
    }";

    /// A column's values and levels.
    #[derive(Default, Clone)]
    struct Col<T> {
        vals: Vec<T>,
        def: Vec<i16>,
        rep: Vec<i16>,
    }

    /// The test columns: start, count, value, flag.
    type Cols = (Col<i64>, Col<i32>, Col<i64>, Col<bool>);

    /// `rows` rows: an unsigned start (ascending, with values past i64::MAX when `wide`),
    /// 0–3 resources of 0–5 spans, a signed count (negative ones too), an optional value and
    /// an optional flag (each null one time in 8, or always when `nulls`; the flag mostly
    /// false, as `IsArray` is).
    fn columns(rows: usize, wide: bool, nulls: bool) -> Cols {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let (mut start, mut count, mut value, mut flag) = (
            Col::default(),
            Col::default(),
            Col::default(),
            Col::default(),
        );
        for r in 0..rows {
            let base = if wide {
                u64::MAX - 1_000_000
            } else {
                1_700_000_000_000_000_000
            };
            start.vals.push((base + r as u64 * 137 + next(100)) as i64);
            let resources = next(4);
            if resources == 0 {
                for (d, rp) in [
                    (&mut count.def, &mut count.rep),
                    (&mut value.def, &mut value.rep),
                    (&mut flag.def, &mut flag.rep),
                ] {
                    d.push(0);
                    rp.push(0);
                }
            }
            for i in 0..resources {
                let spans = next(6);
                let first = if i == 0 { 0 } else { 1 };
                if spans == 0 {
                    for (d, rp) in [
                        (&mut count.def, &mut count.rep),
                        (&mut value.def, &mut value.rep),
                        (&mut flag.def, &mut flag.rep),
                    ] {
                        d.push(1);
                        rp.push(first);
                    }
                }
                for s in 0..spans {
                    let rep = if s == 0 { first } else { 2 };
                    count.def.push(2);
                    count.rep.push(rep);
                    count.vals.push(next(1000) as i32 - 300);
                    value.rep.push(rep);
                    if nulls || next(8) == 0 {
                        value.def.push(2);
                    } else {
                        value.def.push(3);
                        value
                            .vals
                            .push((next(1 << 40) as i64) * if next(2) == 0 { -1 } else { 1 });
                    }
                    flag.rep.push(rep);
                    if nulls || next(8) == 0 {
                        flag.def.push(2);
                    } else {
                        flag.def.push(3);
                        flag.vals.push(next(5) == 0);
                    }
                }
            }
        }
        (start, count, value, flag)
    }

    fn props(compression: Compression, statistics: EnabledStatistics) -> WriterProperties {
        WriterProperties::builder()
            .set_compression(compression)
            .set_dictionary_enabled(false)
            .set_encoding(Encoding::DELTA_BINARY_PACKED)
            .set_column_encoding(
                parquet::schema::types::ColumnPath::new(vec![
                    "rs".into(),
                    "Spans".into(),
                    "Flag".into(),
                ]),
                Encoding::PLAIN,
            )
            .set_statistics_enabled(statistics)
            .set_data_page_row_count_limit(100)
            .build()
    }

    fn write(cols: &Cols, props: WriterProperties, by_hand: bool) -> Bytes {
        let schema = Arc::new(parse_message_type(SCHEMA).unwrap());
        let props = Arc::new(props);
        let mut w = SerializedFileWriter::new(Vec::new(), schema, props.clone()).unwrap();
        let descr = Arc::new(w.schema_descr().clone());
        let mut rg = w.next_row_group().unwrap();
        let (start, count, value, flag) = cols;
        if by_hand {
            let p = &props;
            assert!(
                write_fixed_column(&mut rg, &descr.column(0), p, &start.vals, &[], &[]).unwrap()
            );
            assert!(
                write_fixed_column(
                    &mut rg,
                    &descr.column(1),
                    p,
                    &count.vals,
                    &count.def,
                    &count.rep
                )
                .unwrap()
            );
            assert!(
                write_fixed_column(
                    &mut rg,
                    &descr.column(2),
                    p,
                    &value.vals,
                    &value.def,
                    &value.rep
                )
                .unwrap()
            );
            assert!(
                write_fixed_column(
                    &mut rg,
                    &descr.column(3),
                    p,
                    &flag.vals,
                    &flag.def,
                    &flag.rep
                )
                .unwrap()
            );
        } else {
            let mut c = rg.next_column().unwrap().unwrap();
            c.typed::<Int64Type>()
                .write_batch(&start.vals, None, None)
                .unwrap();
            c.close().unwrap();
            let mut c = rg.next_column().unwrap().unwrap();
            c.typed::<Int32Type>()
                .write_batch(&count.vals, Some(&count.def), Some(&count.rep))
                .unwrap();
            c.close().unwrap();
            let mut c = rg.next_column().unwrap().unwrap();
            c.typed::<Int64Type>()
                .write_batch(&value.vals, Some(&value.def), Some(&value.rep))
                .unwrap();
            c.close().unwrap();
            let mut c = rg.next_column().unwrap().unwrap();
            c.typed::<BoolType>()
                .write_batch(&flag.vals, Some(&flag.def), Some(&flag.rep))
                .unwrap();
            c.close().unwrap();
        }
        rg.close().unwrap();
        Bytes::from(w.into_inner().unwrap())
    }

    /// Levels ending in a few equal values after a run (an RLE run, as parquet's encoder ends
    /// a page), and a page of fewer than 8 levels.
    #[test]
    fn short_runs_at_the_end_are_encoded_as_parquet_does() {
        for (n, nulls_at_end) in [(20i32, 2), (5, 0), (3, 3), (70, 5)] {
            let mut cols: Cols = Default::default();
            let (start, count, value, flag) = &mut cols;
            for r in 0..n {
                start.vals.push(i64::from(r));
                count.vals.push(r);
                count.def.push(2);
                count.rep.push(0);
                let null = r >= n - nulls_at_end;
                for (c, d) in [
                    (&mut value.def, &mut value.rep),
                    (&mut flag.def, &mut flag.rep),
                ] {
                    c.push(if null { 2 } else { 3 });
                    d.push(0);
                }
                if !null {
                    value.vals.push(i64::from(r) * 3);
                    flag.vals.push(r % 3 == 0);
                }
            }
            let props = || props(Compression::UNCOMPRESSED, EnabledStatistics::Page);
            let (ours, theirs) = (write(&cols, props(), true), write(&cols, props(), false));
            assert_eq!(rows(&ours), rows(&theirs), "{n} rows");
            assert_eq!(layout(&ours), layout(&theirs), "{n} rows");
            // The booleans' chunk, levels and values, byte for byte (integers differ in their
            // DELTA blocks: parquet packs 64-bit ones in blocks of 256).
            let flag = |file: &Bytes| {
                let reader = SerializedFileReader::new(file.clone()).unwrap();
                let (at, len) = reader.metadata().row_group(0).column(3).byte_range();
                file.slice(at as usize..(at + len) as usize)
            };
            assert_eq!(flag(&ours), flag(&theirs), "{n} rows: the booleans' bytes");
        }
    }

    #[test]
    fn reads_back_and_describes_itself_as_parquets_own_writer() {
        for (wide, nulls) in [(false, false), (true, false), (false, true)] {
            let cols = columns(2000, wide, nulls);
            for statistics in [EnabledStatistics::Page, EnabledStatistics::None] {
                for compression in [
                    Compression::UNCOMPRESSED,
                    Compression::SNAPPY,
                    Compression::ZSTD(parquet::basic::ZstdLevel::try_new(3).unwrap()),
                ] {
                    let ours = write(&cols, props(compression, statistics), true);
                    let theirs = write(&cols, props(compression, statistics), false);
                    let what = format!("{compression:?} {statistics:?} wide={wide} nulls={nulls}");
                    assert_eq!(rows(&ours), rows(&theirs), "{what}");
                    assert_eq!(layout(&ours), layout(&theirs), "{what}");
                }
            }
        }
    }
}
