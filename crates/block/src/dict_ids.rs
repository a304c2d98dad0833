//! A dictionary-encoded string column decoded to IDs, page by page.
//!
//! Parquet's typed reader hands out a `ByteArray` per value: for a dictionary page that is a copy
//! of the dictionary entry (a reference-count increment, and a decrement when dropped), which was
//! a third of a span-only read of `name` or a service name. Here the column's pages are decoded
//! directly: levels and dictionary indexes with the RLE / bit-packed hybrid of the format, each
//! dictionary entry given an ID once (by the caller's `intern`), each value its entry's ID. Pages
//! that are PLAIN-encoded (a writer's fallback when the dictionary grew too big) intern every
//! value. Any other encoding is the typed reader's job: [`dict_ids`] answers `None` without
//! reading when the chunk's metadata lists one.

use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::Encoding;
use parquet::column::page::{Page, PageReader};
use parquet::file::reader::RowGroupReader;

use crate::chunk::{bits_for, count_eq};
use crate::columnar::Leaf;
use crate::prune::plain_byte_arrays;

/// What went wrong in a page (the caller adds the column's path).
#[derive(Debug)]
pub(crate) enum PageError {
    Parquet(parquet::errors::ParquetError),
    Corrupt(&'static str),
}

impl PageError {
    /// The error of reading `column` of the file `key`.
    pub(crate) fn at(self, key: &str, column: impl std::fmt::Display) -> crate::error::Error {
        match self {
            PageError::Parquet(source) => crate::error::Error::Parquet {
                path: key.into(),
                source,
            },
            PageError::Corrupt(what) => crate::error::Error::Schema {
                path: key.into(),
                what: format!("column {column}: {what}"),
            },
        }
    }
}

impl From<parquet::errors::ParquetError> for PageError {
    fn from(e: parquet::errors::ParquetError) -> PageError {
        PageError::Parquet(e)
    }
}

/// Column `i` of `group` with each value replaced by `intern` of its bytes (called once per
/// dictionary entry the chunk's pages use, and once per plain-encoded value). `None` when the
/// chunk uses an encoding this decoder does not read.
pub(crate) fn dict_ids(
    group: &dyn RowGroupReader,
    i: usize,
    intern: &mut impl FnMut(&[u8]) -> u32,
) -> Result<Option<Leaf<u32>>, PageError> {
    let Some(mut pages) = DictPages::new(group, i, false)? else {
        return Ok(None);
    };
    let entries = group.metadata().column(i).num_values().max(0) as usize;
    let mut leaf = Leaf {
        def: Vec::with_capacity(entries),
        rep: Vec::with_capacity(entries),
        values: Vec::with_capacity(entries),
    };
    // The ID of each dictionary entry (u32::MAX: not interned yet).
    let mut ids: Vec<u32> = Vec::new();
    let mut from = 0;
    while pages.decode(usize::MAX, &mut leaf.def, &mut leaf.rep, &mut leaf.values)? > 0 {
        ids.resize(pages.dict.len(), u32::MAX);
        for v in &mut leaf.values[from..] {
            let id = &mut ids[*v as usize];
            if *id == u32::MAX {
                *id = intern(&pages.dict[*v as usize]);
            }
            *v = *id;
        }
        from = leaf.values.len();
    }
    Ok(Some(leaf))
}

/// A string column chunk's pages decoded as they are read: its levels, and each value as its
/// index into the chunk's dictionary. A PLAIN page (a writer's fallback when its dictionary grew
/// too big) adds its values to the dictionary as entries of their own.
pub(crate) struct DictPages {
    pages: Box<dyn PageReader>,
    max_def: i16,
    max_rep: i16,
    def_bits: u8,
    rep_bits: u8,
    /// Whether levels the chunk does not store (always 0) are given too.
    all_levels: bool,
    /// The dictionary's entries, then the values of PLAIN pages so far.
    pub(crate) dict: Arc<Vec<Bytes>>,
    /// The data page being decoded.
    page: Option<PageState>,
}

/// Where the decoding of a data page is.
struct PageState {
    levels_left: usize,
    rep: Option<Hybrid>,
    def: Option<Hybrid>,
    values: Indexes,
}

/// A data page's values, as dictionary indexes.
enum Indexes {
    Dictionary(Hybrid),
    /// A PLAIN page, its values appended to the dictionary: the next one's index.
    Plain(u32),
}

impl DictPages {
    /// Column `i` of `group`, `None` when the chunk's metadata lists an encoding this decoder
    /// does not read.
    pub(crate) fn new(
        group: &dyn RowGroupReader,
        i: usize,
        all_levels: bool,
    ) -> Result<Option<DictPages>, PageError> {
        let chunk = group.metadata().column(i);
        let readable = chunk.encodings().all(|e| {
            matches!(
                e,
                Encoding::PLAIN
                    | Encoding::PLAIN_DICTIONARY
                    | Encoding::RLE_DICTIONARY
                    | Encoding::RLE
            )
        });
        if !readable {
            return Ok(None);
        }
        let descr = chunk.column_descr();
        let (max_def, max_rep) = (descr.max_def_level(), descr.max_rep_level());
        let pages = group.get_column_page_reader(i)?;
        Ok(Some(DictPages::of(pages, (max_def, max_rep), all_levels)))
    }

    /// The pages of a column whose levels go up to `max` (definition, repetition).
    fn of(pages: Box<dyn PageReader>, max: (i16, i16), all_levels: bool) -> DictPages {
        let (max_def, max_rep) = max;
        DictPages {
            pages,
            max_def,
            max_rep,
            def_bits: bits_for(max_def as u64),
            rep_bits: bits_for(max_rep as u64),
            all_levels,
            dict: Arc::default(),
            page: None,
        }
    }

    /// Decodes up to `max` more levels of the current data page (of the next one when it is
    /// used up) onto `def` and `rep`, and their values' dictionary indexes onto `values`; how
    /// many levels, 0 when no data page is left.
    pub(crate) fn decode(
        &mut self,
        max: usize,
        def: &mut Vec<i16>,
        rep: &mut Vec<i16>,
        values: &mut Vec<u32>,
    ) -> Result<usize, PageError> {
        let page = loop {
            match &mut self.page {
                Some(page) if page.levels_left > 0 => break page,
                _ => {
                    self.page = None;
                    if !self.next_page()? {
                        return Ok(0);
                    }
                }
            }
        };
        let n = page.levels_left.min(max);
        page.levels_left -= n;
        let all_levels = self.all_levels;
        let levels = |run: &mut Option<Hybrid>, out: &mut Vec<i16>| match run {
            Some(run) => run.read_into(n, out, |v| v as i16),
            None => {
                if all_levels {
                    out.resize(out.len() + n, 0);
                }
                Ok(())
            }
        };
        levels(&mut page.rep, rep)?;
        let def_from = def.len();
        levels(&mut page.def, def)?;
        let present = match page.def {
            Some(_) => {
                let max_def = self.max_def;
                count_eq(&def[def_from..], max_def)
            }
            None => n,
        };
        let entries = self.dict.len() as u32;
        match &mut page.values {
            Indexes::Dictionary(run) => {
                let from = values.len();
                // Wide enough for any index in a page: a value past u32 is past the dictionary.
                run.read_into(present, values, |v| v.min(u64::from(u32::MAX)) as u32)?;
                if values[from..].iter().any(|&x| x >= entries) {
                    return Err(PageError::Corrupt("index past the dictionary"));
                }
            }
            Indexes::Plain(next) => {
                if *next as usize + present > self.dict.len() {
                    return Err(PageError::Corrupt("more values than the page holds"));
                }
                values.extend(*next..*next + present as u32);
                *next += present as u32;
            }
        }
        Ok(n)
    }

    /// Reads pages up to the next data page and starts decoding it; `false` past the last.
    fn next_page(&mut self) -> Result<bool, PageError> {
        let (max_def, max_rep) = (self.max_def, self.max_rep);
        let (buf, n, encoding, rep_len, def_len) = loop {
            match self.pages.get_next_page()? {
                None => return Ok(false),
                Some(Page::DictionaryPage {
                    buf, num_values, ..
                }) => {
                    let (values, whole) = plain_byte_arrays(&buf, num_values as usize);
                    if !whole {
                        return Err(PageError::Corrupt("short dictionary"));
                    }
                    self.dict = Arc::new(values.into_iter().map(|v| buf.slice_ref(v)).collect());
                }
                Some(Page::DataPage {
                    buf,
                    num_values,
                    encoding,
                    def_level_encoding,
                    rep_level_encoding,
                    ..
                }) => {
                    if (max_rep > 0 && rep_level_encoding != Encoding::RLE)
                        || (max_def > 0 && def_level_encoding != Encoding::RLE)
                    {
                        return Err(PageError::Corrupt("levels not RLE-encoded"));
                    }
                    break (buf, num_values as usize, encoding, None, None);
                }
                Some(Page::DataPageV2 {
                    buf,
                    num_values,
                    encoding,
                    def_levels_byte_len,
                    rep_levels_byte_len,
                    ..
                }) => {
                    break (
                        buf,
                        num_values as usize,
                        encoding,
                        Some(rep_levels_byte_len as usize),
                        Some(def_levels_byte_len as usize),
                    );
                }
            }
        };
        let mut at = 0;
        // V1 pages prefix each level run with its length; V2 pages give it in the header. A
        // level that is always 0 is not stored.
        let mut levels = |max: i16, width: u8, len_opt: Option<usize>| {
            if max == 0 {
                return Ok::<_, PageError>(None);
            }
            let len = match len_opt {
                Some(len) => len,
                None => {
                    let b = buf
                        .get(at..at + 4)
                        .ok_or(PageError::Corrupt("short page"))?;
                    at += 4;
                    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
                }
            };
            if at + len > buf.len() {
                return Err(PageError::Corrupt("short levels"));
            }
            let run = buf.slice(at..at + len);
            at += len;
            Ok(Some(Hybrid::new(run, width)?))
        };
        let rep = levels(max_rep, self.rep_bits, rep_len)?;
        let def = levels(max_def, self.def_bits, def_len)?;
        let data = buf.slice(at.min(buf.len())..);
        let values = match encoding {
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY => {
                let width = *data.first().ok_or(PageError::Corrupt("no index width"))?;
                Indexes::Dictionary(Hybrid::new(data.slice(1..), width)?)
            }
            Encoding::PLAIN => {
                // As many values as the page holds: its defined levels are not known yet.
                let (plain, _) = plain_byte_arrays(&data, n);
                let dict = Arc::make_mut(&mut self.dict);
                let next = dict.len() as u32;
                dict.extend(plain.into_iter().map(|v| data.slice_ref(v)));
                Indexes::Plain(next)
            }
            _ => return Err(PageError::Corrupt("unexpected value encoding")),
        };
        self.page = Some(PageState {
            levels_left: n,
            rep,
            def,
            values,
        });
        Ok(true)
    }
}

/// A [`DictPages`] column read a few records at a time, with every level (compaction's windows,
/// `copy.rs`). Levels are decoded [`READ_LEVELS`] at a time, so what it holds past the records
/// asked for is short whatever the size of the pages.
pub(crate) struct DictReader {
    pages: DictPages,
    def: Vec<i16>,
    rep: Vec<i16>,
    values: Vec<u32>,
    done: bool,
}

/// Levels decoded at a time by a [`DictReader`].
const READ_LEVELS: usize = 1024;

impl DictReader {
    pub(crate) fn new(pages: DictPages) -> DictReader {
        DictReader {
            pages,
            def: Vec::new(),
            rep: Vec::new(),
            values: Vec::new(),
            done: false,
        }
    }

    /// Moves the next `n` records (fewer at the chunk's end) onto the ends of `def`, `rep` and
    /// `values`, and answers the dictionary their values index.
    pub(crate) fn read(
        &mut self,
        n: usize,
        def: &mut Vec<i16>,
        rep: &mut Vec<i16>,
        values: &mut Vec<u32>,
    ) -> Result<Arc<Vec<Bytes>>, PageError> {
        // Where the records end: before the level that starts record n + 1, once decoded.
        let (mut end, mut records, mut scanned) = (0, 0, 0);
        loop {
            while scanned < self.rep.len() {
                if self.rep[scanned] == 0 {
                    if records == n {
                        break;
                    }
                    records += 1;
                }
                scanned += 1;
                end = scanned;
            }
            if (records == n && scanned < self.rep.len()) || self.done {
                break;
            }
            let got =
                self.pages
                    .decode(READ_LEVELS, &mut self.def, &mut self.rep, &mut self.values)?;
            self.done = got == 0;
        }
        let max_def = self.pages.max_def;
        let defined = count_eq(&self.def[..end], max_def);
        if defined > self.values.len() {
            return Err(PageError::Corrupt("fewer values than defined levels"));
        }
        def.extend(self.def.drain(..end));
        rep.extend(self.rep.drain(..end));
        values.extend(self.values.drain(..defined));
        Ok(self.pages.dict.clone())
    }
}

/// An RLE / bit-packed hybrid run of `width`-bit values, decoded as they are asked for.
struct Hybrid {
    data: Bytes,
    /// The next run's header.
    at: usize,
    width: u8,
    /// Values left in the current run.
    left: usize,
    /// The current run's value, if it repeats one; else it is bit-packed, from bit `run_bit`
    /// of `data`, its next value at bit `bit`.
    repeat: Option<u64>,
    run_bit: usize,
    bit: usize,
}

impl Hybrid {
    fn new(data: Bytes, width: u8) -> Result<Hybrid, PageError> {
        if width > 32 {
            return Err(PageError::Corrupt("bit width over 32"));
        }
        Ok(Hybrid {
            data,
            at: 0,
            width,
            left: 0,
            repeat: None,
            run_bit: 0,
            bit: 0,
        })
    }

    /// The next `n` values, each through `conv`, onto the end of `out`.
    fn read_into<T: Copy>(
        &mut self,
        n: usize,
        out: &mut Vec<T>,
        conv: impl Fn(u64) -> T,
    ) -> Result<(), PageError> {
        let mut want = n;
        let width = self.width as usize;
        let mask = (1u64 << width) - 1;
        out.reserve(n);
        while want > 0 {
            if self.left == 0 {
                self.next_run()?;
            }
            let take = self.left.min(want);
            self.left -= take;
            want -= take;
            let v = match self.repeat {
                Some(v) => v,
                None if width == 0 => 0,
                None => {
                    // A writer may end the last group early: only the bytes of the values
                    // wanted must be there.
                    if (self.bit + take * width).div_ceil(8) > self.data.len() {
                        return Err(PageError::Corrupt("short packed run"));
                    }
                    let data = &self.data[..];
                    let one = |bit: usize| {
                        let byte = bit / 8;
                        let word = match data.get(byte..byte + 8) {
                            Some(w) => u64::from_le_bytes(w.try_into().expect("8 bytes")),
                            None => {
                                let mut w = [0u8; 8];
                                w[..data.len() - byte].copy_from_slice(&data[byte..]);
                                u64::from_le_bytes(w)
                            }
                        };
                        (word >> (bit % 8)) & mask
                    };
                    let mut k = 0;
                    // Up to a group boundary one at a time; then whole groups of 8 values,
                    // `width` bytes each, from one load; then the rest.
                    while k < take && !(self.bit - self.run_bit).is_multiple_of(8 * width) {
                        out.push(conv(one(self.bit)));
                        (self.bit, k) = (self.bit + width, k + 1);
                    }
                    if width <= 16 {
                        while k + 8 <= take {
                            let byte = self.bit / 8;
                            let mut w = [0u8; 16];
                            w[..width].copy_from_slice(&data[byte..byte + width]);
                            let group = u128::from_le_bytes(w);
                            for j in 0..8 {
                                out.push(conv((group >> (j * width)) as u64 & mask));
                            }
                            (self.bit, k) = (self.bit + 8 * width, k + 8);
                        }
                    }
                    while k < take {
                        out.push(conv(one(self.bit)));
                        (self.bit, k) = (self.bit + width, k + 1);
                    }
                    continue;
                }
            };
            out.extend(std::iter::repeat_n(conv(v), take));
        }
        Ok(())
    }

    /// Reads the next run's header.
    fn next_run(&mut self) -> Result<(), PageError> {
        let mut header = 0u64;
        let mut shift = 0;
        loop {
            let b = *self
                .data
                .get(self.at)
                .ok_or(PageError::Corrupt("short run"))?;
            self.at += 1;
            header |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(PageError::Corrupt("run header too long"));
            }
        }
        let width = self.width as usize;
        if header & 1 == 0 {
            // A repeated value: the count, then the value in whole bytes.
            let bytes = width.div_ceil(8);
            let b = self
                .data
                .get(self.at..self.at + bytes)
                .ok_or(PageError::Corrupt("short run"))?;
            self.at += bytes;
            self.repeat = Some(
                b.iter()
                    .rev()
                    .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)),
            );
            self.left = (header >> 1) as usize;
        } else {
            // Groups of 8 values packed least significant bit first.
            let values = (header >> 1) as usize * 8;
            self.repeat = None;
            self.bit = self.at * 8;
            self.run_bit = self.bit;
            self.at = (self.at + values * width / 8).min(self.data.len());
            self.left = values;
        }
        Ok(())
    }
}

/// The first `n` values of an RLE / bit-packed hybrid run of `width`-bit values, to `put`.
#[cfg(test)]
fn hybrid(data: &[u8], width: u8, n: usize, put: impl FnMut(u64)) -> Result<(), PageError> {
    let mut out = Vec::new();
    Hybrid::new(Bytes::copy_from_slice(data), width)?.read_into(n, &mut out, |v| v)?;
    out.into_iter().for_each(put);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_runs_decode_as_the_format_says() {
        // A repeated run of 3 × 5 (width 3: one byte), then one bit-packed group of 8 values
        // 0..8 at width 3 (3 bytes), of which only 6 are asked for.
        let mut data = vec![3 << 1, 5];
        data.push(1 << 1 | 1);
        let mut bits = 0u32;
        for (i, v) in (0u32..8).enumerate() {
            bits |= v << (3 * i);
        }
        data.extend_from_slice(&bits.to_le_bytes()[..3]);
        let mut out = Vec::new();
        hybrid(&data, 3, 9, |v| out.push(v)).unwrap();
        assert_eq!(out, vec![5, 5, 5, 0, 1, 2, 3, 4, 5]);
        // Width 0: every value is 0, whatever the run length says.
        let mut zeros = Vec::new();
        hybrid(&[4 << 1], 0, 4, |v| zeros.push(v)).unwrap();
        assert_eq!(zeros, vec![0; 4]);
        // A last group cut short after the values wanted is read.
        let mut cut = Vec::new();
        hybrid(&[1 << 1 | 1, 7, 9], 8, 2, |v| cut.push(v)).unwrap();
        assert_eq!(cut, vec![7, 9]);
        // Short input is an error, not a panic.
        assert!(hybrid(&[1 << 1 | 1], 3, 8, |_| {}).is_err());
    }

    /// Every string column of Tempo's own blocks (V2 pages, written by Go) and of a block
    /// vivace writes (V1 pages) decodes to the values parquet's typed reader gives, level by
    /// level; the dictionary columns are read here, not handed back to the typed reader.
    #[test]
    fn string_columns_decode_as_the_typed_reader_reads_them() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let root = crate::testdata_root();
        let mut files = Vec::new();
        for version in ["vParquet5", "vParquet4"] {
            for e in std::fs::read_dir(root.join("tempo-blocks").join(version)).unwrap() {
                let p = e.unwrap().path().join("data.parquet");
                if p.exists() {
                    files.push(Bytes::from(std::fs::read(p).unwrap()));
                }
            }
        }
        let traces = crate::read_all_traces(files[0].clone(), &tempo_meta(&root), "t").unwrap();
        let mut written = Vec::new();
        let mut w =
            crate::BlockWriter::new(&mut written, crate::WriterConfig::new("t", "b")).unwrap();
        let mut sorted = traces;
        sorted.sort_by_key(|(id, _)| *id);
        for (id, t) in &sorted {
            w.push(*id, t).unwrap();
        }
        w.finish().unwrap();
        files.push(Bytes::from(written));
        for data in files {
            let file = SerializedFileReader::new(data).unwrap();
            let rg = file.get_row_group(0).unwrap();
            let schema = file.metadata().file_metadata().schema_descr_ptr();
            let mut decoded = 0;
            for i in 0..schema.num_columns() {
                let path = schema.column(i).path().string();
                if schema.column(i).physical_type() != parquet::basic::Type::BYTE_ARRAY {
                    continue;
                }
                let mut strings: Vec<Vec<u8>> = Vec::new();
                let mut intern = |b: &[u8]| {
                    strings.push(b.to_vec());
                    strings.len() as u32 - 1
                };
                let Some(got) = dict_ids(rg.as_ref(), i, &mut intern).unwrap() else {
                    continue;
                };
                decoded += 1;
                let table = rg.metadata().column(i);
                let want = crate::columnar::RowGroup {
                    group: rg.as_ref(),
                    columns: &[(path.clone(), i)].into_iter().collect(),
                    key: "t",
                    narrow: &Default::default(),
                }
                .bytes(&path)
                .unwrap()
                .unwrap();
                assert_eq!(got.def, want.def, "{path} ({} values)", table.num_values());
                assert_eq!(got.rep, want.rep, "{path}");
                let got: Vec<&[u8]> = got
                    .values
                    .iter()
                    .map(|&x| &strings[x as usize][..])
                    .collect();
                let want: Vec<&[u8]> = want.values.iter().map(|b| b.data()).collect();
                assert_eq!(got, want, "{path}");
            }
            assert!(decoded >= 4, "only {decoded} string columns decoded here");
        }
    }

    fn tempo_meta(root: &std::path::Path) -> crate::BlockMeta {
        let dir = std::fs::read_dir(root.join("tempo-blocks/vParquet5"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.join("meta.json").exists())
            .unwrap();
        crate::BlockMeta::read(&dir).unwrap()
    }

    /// Values read a few at a time, starting anywhere in a bit-packed group, at every width:
    /// the values written.
    #[test]
    fn hybrid_runs_read_in_pieces() {
        for width in [1u8, 3, 5, 8, 11, 16, 20] {
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            let vals: Vec<u32> = (0..1000)
                .map(|i| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Runs of equal values now and then, for RLE runs between packed ones.
                    if i % 100 < 20 {
                        1
                    } else {
                        (x % (1u64 << width)) as u32
                    }
                })
                .collect();
            let mut data = Vec::new();
            crate::chunk::rle_hybrid(&vals, width, &mut data);
            let mut run = Hybrid::new(Bytes::from(data), width).unwrap();
            let mut got: Vec<u32> = Vec::new();
            for piece in [1, 3, 7, 8, 13, 64, 200].iter().cycle() {
                let n = (*piece).min(vals.len() - got.len());
                if n == 0 {
                    break;
                }
                run.read_into(n, &mut got, |v| v as u32).unwrap();
            }
            assert_eq!(got, vals, "width {width}");
        }
    }

    /// Pages handed out from a list.
    struct Listed(std::iter::Peekable<std::vec::IntoIter<Page>>);

    impl Iterator for Listed {
        type Item = parquet::errors::Result<Page>;
        fn next(&mut self) -> Option<Self::Item> {
            self.0.next().map(Ok)
        }
    }

    impl PageReader for Listed {
        fn get_next_page(&mut self) -> parquet::errors::Result<Option<Page>> {
            Ok(self.0.next())
        }
        fn peek_next_page(
            &mut self,
        ) -> parquet::errors::Result<Option<parquet::column::page::PageMetadata>> {
            Ok(self.0.peek().map(crate::pages::metadata))
        }
        fn skip_next_page(&mut self) -> parquet::errors::Result<()> {
            self.0.next();
            Ok(())
        }
    }

    /// A data page v1 of a repeated optional string column (levels up to 1 and 1): its levels,
    /// then `values` (the bytes after the levels).
    fn page_v1(rep: &[i16], def: &[i16], encoding: Encoding, values: Vec<u8>) -> Page {
        let mut buf = Vec::new();
        for levels in [rep, def] {
            let mut run = Vec::new();
            crate::chunk::rle_hybrid(levels, 1, &mut run);
            buf.extend_from_slice(&(run.len() as u32).to_le_bytes());
            buf.extend_from_slice(&run);
        }
        buf.extend_from_slice(&values);
        Page::DataPage {
            buf: Bytes::from(buf),
            num_values: rep.len() as u32,
            encoding,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        }
    }

    fn plain(values: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in values {
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        out
    }

    /// Records that go on from one page into the next (a V1 writer may cut pages anywhere), a
    /// page after the dictionary's fallback to PLAIN, and nulls: read one record at a time, or
    /// all at once, the levels and values are the pages' own.
    #[test]
    fn records_read_across_pages_and_plain_fallback() {
        let indexes = |ids: &[u32]| {
            let mut out = vec![2u8];
            crate::chunk::rle_hybrid(ids, 2, &mut out);
            out
        };
        let pages = || {
            let list = vec![
                Page::DictionaryPage {
                    buf: Bytes::from(plain(&["x", "y", "z"])),
                    num_values: 3,
                    encoding: Encoding::PLAIN,
                    is_sorted: false,
                },
                // Record 0: x y null; record 1: y, going on in the next page.
                page_v1(
                    &[0, 1, 1, 0],
                    &[1, 1, 0, 1],
                    Encoding::RLE_DICTIONARY,
                    indexes(&[0, 1, 1]),
                ),
                // ... z; record 2: x.
                page_v1(&[1, 0], &[1, 1], Encoding::RLE_DICTIONARY, indexes(&[2, 0])),
                // Record 3: p q (PLAIN); record 4: null.
                page_v1(&[0, 1, 0], &[1, 1, 0], Encoding::PLAIN, plain(&["p", "q"])),
            ];
            DictPages::of(Box::new(Listed(list.into_iter().peekable())), (1, 1), true)
        };
        let want_rep = [0, 1, 1, 0, 1, 0, 0, 1, 0];
        let want_def = [1, 1, 0, 1, 1, 1, 1, 1, 0];
        let want: Vec<&[u8]> = ["x", "y", "y", "z", "x", "p", "q"]
            .iter()
            .map(|s| s.as_bytes())
            .collect();
        for window in [1, 2, 5] {
            let mut reader = DictReader::new(pages());
            let (mut def, mut rep, mut got) = (Vec::new(), Vec::new(), Vec::new());
            loop {
                let (mut d, mut r, mut v) = (Vec::new(), Vec::new(), Vec::new());
                let dict = reader.read(window, &mut d, &mut r, &mut v).unwrap();
                if r.is_empty() {
                    break;
                }
                let records = r.iter().filter(|&&x| x == 0).count();
                assert!(r[0] == 0 && records <= window, "window {window}: {r:?}");
                got.extend(v.iter().map(|&x| dict[x as usize].to_vec()));
                def.extend(d);
                rep.extend(r);
            }
            assert_eq!((&rep[..], &def[..]), (&want_rep[..], &want_def[..]));
            assert_eq!(got, want, "window {window}");
        }
        // The whole chunk at once, levels as parquet's reader gives them.
        let mut whole = pages();
        let (mut def, mut rep, mut vals) = (Vec::new(), Vec::new(), Vec::new());
        while whole
            .decode(usize::MAX, &mut def, &mut rep, &mut vals)
            .unwrap()
            > 0
        {}
        assert_eq!((&rep[..], &def[..]), (&want_rep[..], &want_def[..]));
        let got: Vec<&[u8]> = vals.iter().map(|&x| &whole.dict[x as usize][..]).collect();
        assert_eq!(got, want);
    }

    /// An index past the dictionary, and a page with fewer values than defined levels, are
    /// errors.
    #[test]
    fn bad_pages_are_errors() {
        let dict = Page::DictionaryPage {
            buf: Bytes::from(plain(&["x"])),
            num_values: 1,
            encoding: Encoding::PLAIN,
            is_sorted: false,
        };
        let past = page_v1(&[0], &[1], Encoding::RLE_DICTIONARY, vec![1, 1 << 1, 1]);
        let short = page_v1(&[0, 1], &[1, 1], Encoding::PLAIN, plain(&["p"]));
        for bad in [past, short] {
            let list = vec![dict.clone(), bad];
            let mut reader = DictReader::new(DictPages::of(
                Box::new(Listed(list.into_iter().peekable())),
                (1, 1),
                true,
            ));
            let (mut d, mut r, mut v) = (Vec::new(), Vec::new(), Vec::new());
            assert!(reader.read(4, &mut d, &mut r, &mut v).is_err());
        }
    }

    #[test]
    fn level_widths() {
        assert_eq!(bits_for(0), 0);
        assert_eq!(bits_for(1), 1);
        assert_eq!(bits_for(3), 2);
        assert_eq!(bits_for(4), 3);
    }
}
