//! Column pages decoded by vivace instead of the parquet crate's page reader, for point reads.
//!
//! parquet's `SerializedPageReader` builds a codec per column chunk it opens, and its zstd codec
//! creates a compressor *and* a decompressor context each time (~25 % of a trace-by-ID lookup,
//! which opens ~100 chunks to read one page of each). Here the pages of a chunk that were fetched
//! (a dictionary page and the data page holding one row) are parsed and decompressed with one
//! decompressor kept per thread, and handed to parquet's column readers as [`Page`]s through a
//! [`PageReader`]: decoding values and levels stays parquet's.
//!
//! A page is a Thrift compact `PageHeader` followed by its body (parquet-format's
//! `parquet.thrift`): field 1 page type, 2 uncompressed size, 3 compressed size, 4 CRC, 5 data
//! page header (v1), 7 dictionary page header, 8 data page header v2; the body of a v1 or
//! dictionary page is compressed whole, a v2 page keeps its levels uncompressed in front.
//! Unknown fields (statistics, index page headers, future additions) are skipped by type.

use bytes::Bytes;
use parquet::basic::{Compression, Encoding};
use parquet::column::page::{Page, PageMetadata, PageReader};
use parquet::errors::{ParquetError, Result};

/// A column chunk's fetched pages, decoded, served in order to a column reader.
///
/// Only pages that start at a record boundary may be given (pages located by an offset index
/// do, as the parquet format requires of them), since the reader may start at any of them.
pub(crate) struct Pages {
    pages: std::collections::VecDeque<(Page, Option<usize>)>,
}

impl Pages {
    /// Decodes `pages`: each the bytes of one page, header and body, with the number of rows
    /// a data page holds when known (the offset index knows; a v2 page says itself).
    pub(crate) fn decode(
        codec: Compression,
        pages: impl IntoIterator<Item = (Bytes, Option<usize>)>,
    ) -> Result<Pages> {
        let pages = pages
            .into_iter()
            .map(|(bytes, rows)| {
                let (page, _) = decode_page(codec, bytes)?;
                let rows = match &page {
                    Page::DataPageV2 { num_rows, .. } => Some(*num_rows as usize),
                    Page::DataPage { .. } => rows,
                    Page::DictionaryPage { .. } => None,
                };
                Ok((page, rows))
            })
            .collect::<Result<_>>()?;
        Ok(Pages { pages })
    }
}

impl Iterator for Pages {
    type Item = Result<Page>;

    fn next(&mut self) -> Option<Self::Item> {
        self.get_next_page().transpose()
    }
}

impl Pages {
    /// The dictionary page, when the pages start with one.
    pub(crate) fn dictionary(&self) -> Option<Page> {
        match self.pages.front() {
            Some((p @ Page::DictionaryPage { .. }, _)) => Some(p.clone()),
            _ => None,
        }
    }

    /// These pages with `dict` (a dictionary page kept from an earlier read) before them.
    pub(crate) fn after_dictionary(mut self, dict: Page) -> Pages {
        self.pages.push_front((dict, None));
        self
    }
}

impl PageReader for Pages {
    fn get_next_page(&mut self) -> Result<Option<Page>> {
        Ok(self.pages.pop_front().map(|(p, _)| p))
    }

    fn peek_next_page(&mut self) -> Result<Option<PageMetadata>> {
        Ok(self.pages.front().map(|(p, rows)| PageMetadata {
            num_rows: *rows,
            num_levels: Some(p.num_values() as usize),
            is_dict: matches!(p, Page::DictionaryPage { .. }),
        }))
    }

    fn skip_next_page(&mut self) -> Result<()> {
        self.pages.pop_front();
        Ok(())
    }

    fn at_record_boundary(&mut self) -> Result<bool> {
        // Every page given starts at a record boundary (see the type's documentation).
        Ok(true)
    }
}

/// A whole column chunk's pages, decoded one at a time as its column reader asks for them:
/// compaction reads every page of its inputs' row groups, and parquet's page reader would
/// create a zstd compressor and decompressor for each column chunk (two CPUIDs of ~7 µs each in
/// a VM: 2% of a compaction).
pub(crate) struct ChunkPages {
    codec: Compression,
    /// The pages not yet decoded.
    rest: Bytes,
    next: Option<Page>,
}

impl ChunkPages {
    /// The pages of a chunk (`bytes`: from its first page to its end) in `codec`, or `None` for
    /// a codec only parquet's reader decompresses.
    pub(crate) fn new(codec: Compression, bytes: Bytes) -> Option<ChunkPages> {
        matches!(
            codec,
            Compression::UNCOMPRESSED | Compression::SNAPPY | Compression::ZSTD(_)
        )
        .then_some(ChunkPages {
            codec,
            rest: bytes,
            next: None,
        })
    }

    /// Decodes the next page, if none is waiting.
    fn fill(&mut self) -> Result<()> {
        if self.next.is_none() && !self.rest.is_empty() {
            let (page, len) = decode_page(self.codec, self.rest.clone())?;
            self.rest = self.rest.slice(len..);
            self.next = Some(page);
        }
        Ok(())
    }
}

impl Iterator for ChunkPages {
    type Item = Result<Page>;

    fn next(&mut self) -> Option<Self::Item> {
        self.get_next_page().transpose()
    }
}

impl PageReader for ChunkPages {
    fn get_next_page(&mut self) -> Result<Option<Page>> {
        self.fill()?;
        Ok(self.next.take())
    }

    fn peek_next_page(&mut self) -> Result<Option<PageMetadata>> {
        self.fill()?;
        Ok(self.next.as_ref().map(metadata))
    }

    fn skip_next_page(&mut self) -> Result<()> {
        self.fill()?;
        self.next = None;
        Ok(())
    }
}

/// What a page reader tells of `p` before reading it.
pub(crate) fn metadata(p: &Page) -> PageMetadata {
    PageMetadata {
        num_rows: match p {
            Page::DataPageV2 { num_rows, .. } => Some(*num_rows as usize),
            _ => None,
        },
        num_levels: Some(p.num_values() as usize),
        is_dict: matches!(p, Page::DictionaryPage { .. }),
    }
}

/// The page at the start of `bytes` (header and body) decoded into a [`Page`] with its body
/// decompressed; with the length of header and body.
fn decode_page(codec: Compression, bytes: Bytes) -> Result<(Page, usize)> {
    let mut r = Thrift {
        buf: &bytes,
        pos: 0,
        depth: 0,
    };
    let h = r.page_header()?;
    let body_at = r.pos;
    let compressed = usize::try_from(h.compressed_size).map_err(|_| {
        general(format!(
            "negative compressed page size {}",
            h.compressed_size
        ))
    })?;
    let uncompressed = usize::try_from(h.uncompressed_size).map_err(|_| {
        general(format!(
            "negative uncompressed page size {}",
            h.uncompressed_size
        ))
    })?;
    if bytes.len() - body_at < compressed {
        return Err(ParquetError::EOF(format!(
            "page body of {compressed} bytes, {} fetched",
            bytes.len() - body_at
        )));
    }
    let body = bytes.slice(body_at..body_at + compressed);
    let page = match (h.kind, h.data, h.dict, h.v2) {
        // DATA_PAGE
        (0, Some(d), _, _) => Ok(Page::DataPage {
            buf: decompress(codec, body, 0, uncompressed)?,
            num_values: count(d.num_values)?,
            encoding: encoding(d.encoding)?,
            def_level_encoding: encoding(d.def_encoding)?,
            rep_level_encoding: encoding(d.rep_encoding)?,
            statistics: None,
        }),
        // DICTIONARY_PAGE
        (2, _, Some(d), _) => Ok(Page::DictionaryPage {
            buf: decompress(codec, body, 0, uncompressed)?,
            num_values: count(d.num_values)?,
            encoding: encoding(d.encoding)?,
            is_sorted: d.is_sorted,
        }),
        // DATA_PAGE_V2
        (3, _, _, Some(d)) => {
            let levels = count(d.def_len)? as usize + count(d.rep_len)? as usize;
            if levels > compressed || levels > uncompressed {
                return Err(general(format!(
                    "data page v2 with {levels} bytes of levels in a {compressed}-byte page"
                )));
            }
            let buf = if d.is_compressed {
                decompress(codec, body, levels, uncompressed)?
            } else {
                body
            };
            Ok(Page::DataPageV2 {
                buf,
                num_values: count(d.num_values)?,
                encoding: encoding(d.encoding)?,
                num_nulls: count(d.num_nulls)?,
                num_rows: count(d.num_rows)?,
                def_levels_byte_len: count(d.def_len)?,
                rep_levels_byte_len: count(d.rep_len)?,
                is_compressed: d.is_compressed,
                statistics: None,
            })
        }
        (kind, ..) => Err(general(format!(
            "page of type {kind} without its header, or of a type column readers do not read"
        ))),
    }?;
    Ok((page, body_at + compressed))
}

/// `body` with its first `keep` bytes as they are and the rest decompressed, `size` bytes in all.
fn decompress(codec: Compression, body: Bytes, keep: usize, size: usize) -> Result<Bytes> {
    if matches!(codec, Compression::UNCOMPRESSED) {
        return Ok(body);
    }
    if size == keep {
        // Nothing compressed follows (a page of nulls only): nothing to decompress, as parquet.
        return Ok(body.slice(..keep));
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&body[..keep]);
    let input = &body[keep..];
    match codec {
        // The thread's decompressor, made on first use and kept.
        Compression::ZSTD(_) => vivace_common::zstd_context::with_decompressor(|d| {
            let mut at = std::io::Cursor::new(&mut out);
            at.set_position(keep as u64);
            d.decompress_to_buffer(input, &mut at).map(|_| ())
        })
        .map_err(|e| general(format!("zstd page: {e}")))?,
        Compression::SNAPPY => {
            let n = snap::raw::decompress_len(input)
                .map_err(|e| general(format!("snappy page: {e}")))?;
            out.resize(keep + n, 0);
            snap::raw::Decoder::new()
                .decompress(input, &mut out[keep..])
                .map_err(|e| general(format!("snappy page: {e}")))?;
        }
        other => {
            return Err(ParquetError::NYI(format!(
                "point reads of {other:?} pages (whole row groups are read instead)"
            )));
        }
    }
    if out.len() != size {
        return Err(general(format!(
            "page decompressed to {} bytes, its header says {size}",
            out.len()
        )));
    }
    Ok(Bytes::from(out))
}

fn general(what: String) -> ParquetError {
    ParquetError::General(what)
}

fn count(v: i32) -> Result<u32> {
    u32::try_from(v).map_err(|_| general(format!("negative count {v} in a page header")))
}

/// parquet-format's `Encoding` numbers.
fn encoding(v: i32) -> Result<Encoding> {
    #[allow(deprecated)]
    Ok(match v {
        0 => Encoding::PLAIN,
        2 => Encoding::PLAIN_DICTIONARY,
        3 => Encoding::RLE,
        4 => Encoding::BIT_PACKED,
        5 => Encoding::DELTA_BINARY_PACKED,
        6 => Encoding::DELTA_LENGTH_BYTE_ARRAY,
        7 => Encoding::DELTA_BYTE_ARRAY,
        8 => Encoding::RLE_DICTIONARY,
        9 => Encoding::BYTE_STREAM_SPLIT,
        10 => Encoding::ALP,
        _ => return Err(general(format!("unknown encoding {v}"))),
    })
}

/// The fields of a `PageHeader` a column reader needs.
#[derive(Debug, Default)]
struct Header {
    kind: i32,
    uncompressed_size: i32,
    compressed_size: i32,
    data: Option<DataHeader>,
    dict: Option<DictHeader>,
    v2: Option<V2Header>,
}

#[derive(Debug, Default)]
struct DataHeader {
    num_values: i32,
    encoding: i32,
    def_encoding: i32,
    rep_encoding: i32,
}

#[derive(Debug, Default)]
struct DictHeader {
    num_values: i32,
    encoding: i32,
    is_sorted: bool,
}

#[derive(Debug)]
struct V2Header {
    num_values: i32,
    num_nulls: i32,
    num_rows: i32,
    encoding: i32,
    def_len: i32,
    rep_len: i32,
    is_compressed: bool,
}

// Thrift compact protocol element types.
const T_STOP: u8 = 0;
const T_TRUE: u8 = 1;
const T_FALSE: u8 = 2;
const T_BYTE: u8 = 3;
const T_I16: u8 = 4;
const T_I32: u8 = 5;
const T_I64: u8 = 6;
const T_DOUBLE: u8 = 7;
const T_BINARY: u8 = 8;
const T_LIST: u8 = 9;
const T_SET: u8 = 10;
const T_MAP: u8 = 11;
const T_STRUCT: u8 = 12;

/// Nesting deeper than this is refused (a page header nests three levels).
const MAX_DEPTH: u32 = 32;

/// A reader of the Thrift compact protocol over a byte slice.
struct Thrift<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: u32,
}

impl Thrift<'_> {
    fn byte(&mut self) -> Result<u8> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| ParquetError::EOF("page header ends early".into()))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(general("page header varint longer than 10 bytes".into()))
    }

    fn zigzag(&mut self) -> Result<i64> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn i32(&mut self, ty: u8) -> Result<i32> {
        if ty != T_I32 {
            return Err(general(format!("page header: i32 field of type {ty}")));
        }
        i32::try_from(self.zigzag()?).map_err(|_| general("page header: i32 out of range".into()))
    }

    fn bool(ty: u8) -> Result<bool> {
        match ty {
            T_TRUE => Ok(true),
            T_FALSE => Ok(false),
            _ => Err(general(format!("page header: bool field of type {ty}"))),
        }
    }

    /// Reads a struct's fields, calling `field(id, type)` for each; `field` reads or skips it.
    fn fields(&mut self, mut field: impl FnMut(&mut Self, i16, u8) -> Result<()>) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(general("page header nests too deep".into()));
        }
        let mut last = 0i16;
        loop {
            let b = self.byte()?;
            let ty = b & 0x0f;
            if ty == T_STOP {
                break;
            }
            let delta = b >> 4;
            let id = if delta == 0 {
                i16::try_from(self.zigzag()?)
                    .map_err(|_| general("page header: field id out of range".into()))?
            } else {
                last.checked_add(i16::from(delta))
                    .ok_or_else(|| general("page header: field id out of range".into()))?
            };
            last = id;
            field(self, id, ty)?;
        }
        self.depth -= 1;
        Ok(())
    }

    fn skip(&mut self, ty: u8) -> Result<()> {
        match ty {
            T_TRUE | T_FALSE => {}
            T_BYTE => {
                self.byte()?;
            }
            T_I16 | T_I32 | T_I64 => {
                self.varint()?;
            }
            T_DOUBLE => self.advance(8)?,
            T_BINARY => {
                let n = self.varint()?;
                self.advance(usize::try_from(n).unwrap_or(usize::MAX))?;
            }
            T_LIST | T_SET => {
                let h = self.byte()?;
                let n = match h >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                self.elements(n, h & 0x0f)?;
            }
            T_MAP => {
                let n = self.varint()?;
                if n > 0 {
                    let kv = self.byte()?;
                    for _ in 0..n {
                        self.element(kv >> 4)?;
                        self.element(kv & 0x0f)?;
                    }
                }
            }
            T_STRUCT => self.fields(|r, _, ty| r.skip(ty))?,
            _ => return Err(general(format!("page header: unknown Thrift type {ty}"))),
        }
        Ok(())
    }

    /// Skips `n` elements of a list, set or map (a bool element is a byte there).
    fn elements(&mut self, n: u64, ty: u8) -> Result<()> {
        for _ in 0..n {
            self.element(ty)?;
        }
        Ok(())
    }

    fn element(&mut self, ty: u8) -> Result<()> {
        if ty == T_TRUE || ty == T_FALSE {
            self.byte().map(drop)
        } else {
            self.skip(ty)
        }
    }

    fn advance(&mut self, n: usize) -> Result<()> {
        if self.buf.len() - self.pos < n {
            return Err(ParquetError::EOF("page header ends early".into()));
        }
        self.pos += n;
        Ok(())
    }

    fn page_header(&mut self) -> Result<Header> {
        let mut h = Header::default();
        self.fields(|r, id, ty| {
            match id {
                1 => h.kind = r.i32(ty)?,
                2 => h.uncompressed_size = r.i32(ty)?,
                3 => h.compressed_size = r.i32(ty)?,
                5 if ty == T_STRUCT => {
                    let mut d = DataHeader::default();
                    r.fields(|r, id, ty| {
                        match id {
                            1 => d.num_values = r.i32(ty)?,
                            2 => d.encoding = r.i32(ty)?,
                            3 => d.def_encoding = r.i32(ty)?,
                            4 => d.rep_encoding = r.i32(ty)?,
                            _ => r.skip(ty)?,
                        }
                        Ok(())
                    })?;
                    h.data = Some(d);
                }
                7 if ty == T_STRUCT => {
                    let mut d = DictHeader::default();
                    r.fields(|r, id, ty| {
                        match id {
                            1 => d.num_values = r.i32(ty)?,
                            2 => d.encoding = r.i32(ty)?,
                            3 => d.is_sorted = Self::bool(ty)?,
                            _ => r.skip(ty)?,
                        }
                        Ok(())
                    })?;
                    h.dict = Some(d);
                }
                8 if ty == T_STRUCT => {
                    let mut d = V2Header {
                        num_values: 0,
                        num_nulls: 0,
                        num_rows: 0,
                        encoding: 0,
                        def_len: 0,
                        rep_len: 0,
                        // Absent means compressed (parquet-format).
                        is_compressed: true,
                    };
                    r.fields(|r, id, ty| {
                        match id {
                            1 => d.num_values = r.i32(ty)?,
                            2 => d.num_nulls = r.i32(ty)?,
                            3 => d.num_rows = r.i32(ty)?,
                            4 => d.encoding = r.i32(ty)?,
                            5 => d.def_len = r.i32(ty)?,
                            6 => d.rep_len = r.i32(ty)?,
                            7 => d.is_compressed = Self::bool(ty)?,
                            _ => r.skip(ty)?,
                        }
                        Ok(())
                    })?;
                    h.v2 = Some(d);
                }
                _ => r.skip(ty)?,
            }
            Ok(())
        })?;
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use parquet::column::reader::{ColumnReader, get_column_reader};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use proptest::prelude::*;

    use super::*;

    /// Every value and level of a column, as text, read through `reader`.
    fn dump(reader: ColumnReader) -> String {
        let (mut def, mut rep) = (Vec::new(), Vec::new());
        macro_rules! all {
            ($r:expr) => {{
                let mut r = $r;
                let mut vals = Vec::new();
                let mut rows = 0;
                loop {
                    let (n, _, _) = r
                        .read_records(4096, Some(&mut def), Some(&mut rep), &mut vals)
                        .unwrap();
                    if n == 0 {
                        break;
                    }
                    rows += n;
                }
                format!("{rows} rows {vals:?} {def:?} {rep:?}")
            }};
        }
        match reader {
            ColumnReader::BoolColumnReader(r) => all!(r),
            ColumnReader::Int32ColumnReader(r) => all!(r),
            ColumnReader::Int64ColumnReader(r) => all!(r),
            ColumnReader::Int96ColumnReader(r) => all!(r),
            ColumnReader::FloatColumnReader(r) => all!(r),
            ColumnReader::DoubleColumnReader(r) => all!(r),
            ColumnReader::ByteArrayColumnReader(r) => all!(r),
            ColumnReader::FixedLenByteArrayColumnReader(r) => all!(r),
        }
    }

    /// A column chunk's bytes cut into pages by their headers.
    fn split(chunk: &Bytes) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < chunk.len() {
            let mut r = Thrift {
                buf: &chunk[at..],
                pos: 0,
                depth: 0,
            };
            let h = r.page_header().unwrap();
            let end = at + r.pos + h.compressed_size as usize;
            out.push(chunk.slice(at..end));
            at = end;
        }
        out
    }

    /// Every column chunk of `data` decoded by [`Pages`] (pages given) and by [`ChunkPages`]
    /// (the whole chunk) reads exactly as parquet's own reader reads it.
    fn same_as_parquet(data: Bytes) -> usize {
        let file = SerializedFileReader::new(data.clone()).unwrap();
        let md = file.metadata();
        let mut chunks = 0;
        for rg in 0..md.num_row_groups() {
            let group = file.get_row_group(rg).unwrap();
            for (i, c) in md.row_group(rg).columns().iter().enumerate() {
                let (start, len) = c.byte_range();
                let chunk = data.slice(start as usize..(start + len) as usize);
                let pages = Pages::decode(
                    c.compression(),
                    split(&chunk).into_iter().map(|p| (p, None)),
                )
                .unwrap();
                let ours = dump(get_column_reader(c.column_descr_ptr(), Box::new(pages)));
                let theirs = dump(group.get_column_reader(i).unwrap());
                assert_eq!(ours, theirs, "row group {rg}, column {}", c.column_path());
                let whole = ChunkPages::new(c.compression(), chunk).unwrap();
                let ours = dump(get_column_reader(c.column_descr_ptr(), Box::new(whole)));
                assert_eq!(
                    ours,
                    theirs,
                    "whole chunk: row group {rg}, column {}",
                    c.column_path()
                );
                chunks += 1;
            }
        }
        chunks
    }

    fn testdata(path: &str) -> Bytes {
        let root = crate::testdata_root();
        let dir = root.join(path);
        let block = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap();
        Bytes::from(std::fs::read(block.path().join("data.parquet")).unwrap())
    }

    #[test]
    fn tempo_blocks_v2_pages_snappy_read_as_parquet_reads_them() {
        assert!(same_as_parquet(testdata("tempo-blocks/vParquet5")) > 50);
        assert!(same_as_parquet(testdata("tempo-blocks/vParquet4")) > 50);
    }

    #[test]
    fn vivace_blocks_read_as_parquet_reads_them() {
        // The frozen fixture, and blocks written now with both codec sets (zstd, snappy).
        assert!(same_as_parquet(testdata("vivace-blocks/vParquet5")) > 50);
        for codecs in [crate::write::Codecs::Compact, crate::write::Codecs::Tempo] {
            let mut cfg =
                crate::write::WriterConfig::new("t", "00000000-0000-4000-8000-000000000001");
            cfg.codecs = codecs;
            let mut w = crate::write::BlockWriter::new(Vec::new(), cfg).unwrap();
            for t in 0..300u32 {
                let (id, trace) = trace(t);
                w.push(id, &trace).unwrap();
            }
            let (_, data) = w.finish().unwrap();
            assert!(same_as_parquet(Bytes::from(data)) > 50);
        }
    }

    #[test]
    fn a_page_of_another_codec_is_refused() {
        let data = testdata("vivace-blocks/vParquet5");
        let file = SerializedFileReader::new(data.clone()).unwrap();
        let c = file.metadata().row_group(0).column(0);
        let (start, len) = c.byte_range();
        let page = split(&data.slice(start as usize..(start + len) as usize)).remove(0);
        let err = decode_page(Compression::LZ4_RAW, page).unwrap_err();
        assert!(err.to_string().contains("LZ4_RAW"), "{err}");
    }

    proptest! {
        /// Arbitrary bytes, and real pages cut short or edited, give a page or an error, never
        /// a panic.
        #[test]
        fn bad_pages_are_errors(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                cut in 0usize..400, at in 0usize..400, to in any::<u8>()) {
            let _ = decode_page(Compression::SNAPPY, Bytes::from(bytes.clone()));
            let _ = decode_page(Compression::ZSTD(Default::default()), Bytes::from(bytes));
            let data = testdata("vivace-blocks/vParquet5");
            let file = SerializedFileReader::new(data.clone()).unwrap();
            let c = file.metadata().row_group(0).column(3);
            let (start, len) = c.byte_range();
            let page = split(&data.slice(start as usize..(start + len) as usize)).remove(0);
            let mut edited = page.to_vec();
            if !edited.is_empty() {
                let k = at % edited.len();
                edited[k] = to;
            }
            let _ = decode_page(c.compression(), Bytes::from(edited));
            let _ = decode_page(c.compression(), page.slice(..cut.min(page.len())));
        }
    }

    /// Trace `t`: a few spans with attributes of every type and an event.
    fn trace(t: u32) -> (vivace_common::TraceId, vivace_proto::tempopb::Trace) {
        use vivace_proto::otlp::common::{AnyValue, KeyValue, any_value::Value};
        use vivace_proto::otlp::resource::Resource;
        use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, span::Event};
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&t.to_be_bytes());
        let kv = |key: &str, v: Value| KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let spans = (0..1 + t % 7)
            .map(|s| Span {
                trace_id: id.to_vec(),
                span_id: [s as u8 + 1, t as u8, 0, 0, 0, 0, 0, 1].to_vec(),
                name: format!("op {}", s % 3),
                start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(t * 10 + s),
                end_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(t * 10 + s) + 999,
                attributes: vec![
                    kv("s", Value::StringValue(format!("v{}", t % 11))),
                    kv("i", Value::IntValue(i64::from(t * s))),
                    kv("d", Value::DoubleValue(f64::from(s) / 3.0)),
                    kv("b", Value::BoolValue(t.is_multiple_of(2))),
                ],
                events: (0..s % 2)
                    .map(|e| Event {
                        name: format!("e{e}"),
                        time_unix_nano: 1_700_000_000_000_000_000,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        let trace = vivace_proto::tempopb::Trace {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv(
                        "service.name",
                        Value::StringValue(format!("svc{}", t % 4)),
                    )],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        (vivace_common::TraceId(id), trace)
    }
}
