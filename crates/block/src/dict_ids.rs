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

use bytes::Bytes;
use parquet::basic::Encoding;
use parquet::column::page::Page;
use parquet::file::reader::RowGroupReader;

use crate::chunk::bits_for;
use crate::columnar::Leaf;
use crate::prune::plain_byte_arrays;

/// What went wrong in a page (the caller adds the column's path).
#[derive(Debug)]
pub(crate) enum PageError {
    Parquet(parquet::errors::ParquetError),
    Corrupt(&'static str),
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
    let chunk = group.metadata().column(i);
    let readable = chunk.encodings().all(|e| {
        matches!(
            e,
            Encoding::PLAIN | Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY | Encoding::RLE
        )
    });
    if !readable {
        return Ok(None);
    }
    let descr = chunk.column_descr();
    let (max_def, max_rep) = (descr.max_def_level(), descr.max_rep_level());
    let (def_bits, rep_bits) = (bits_for(max_def as u64), bits_for(max_rep as u64));
    let entries = chunk.num_values().max(0) as usize;
    let mut leaf = Leaf {
        def: Vec::with_capacity(entries),
        rep: Vec::with_capacity(entries),
        values: Vec::with_capacity(entries),
    };
    // The dictionary's entries, and the ID of each (u32::MAX: not interned yet).
    let (mut dict, mut ids): (Vec<Bytes>, Vec<u32>) = (Vec::new(), Vec::new());
    let mut indexes: Vec<u32> = Vec::new();
    let mut pages = group.get_column_page_reader(i)?;
    while let Some(page) = pages.get_next_page()? {
        let (buf, n, encoding, rep_len, def_len) = match page {
            Page::DictionaryPage {
                buf, num_values, ..
            } => {
                let (values, whole) = plain_byte_arrays(&buf, num_values as usize);
                if !whole {
                    return Err(PageError::Corrupt("short dictionary"));
                }
                dict = values.into_iter().map(|v| buf.slice_ref(v)).collect();
                ids = vec![u32::MAX; dict.len()];
                continue;
            }
            Page::DataPage {
                buf,
                num_values,
                encoding,
                def_level_encoding,
                rep_level_encoding,
                ..
            } => {
                if (max_rep > 0 && rep_level_encoding != Encoding::RLE)
                    || (max_def > 0 && def_level_encoding != Encoding::RLE)
                {
                    return Err(PageError::Corrupt("levels not RLE-encoded"));
                }
                (buf, num_values as usize, encoding, None, None)
            }
            Page::DataPageV2 {
                buf,
                num_values,
                encoding,
                def_levels_byte_len,
                rep_levels_byte_len,
                ..
            } => (
                buf,
                num_values as usize,
                encoding,
                Some(rep_levels_byte_len as usize),
                Some(def_levels_byte_len as usize),
            ),
        };
        let mut at = 0;
        // V1 pages prefix each level run with its length; V2 pages give it in the header.
        let mut levels = |max: i16, width: u8, len_opt: Option<usize>, out: &mut Vec<i16>| {
            // A level that is always 0 is not stored, and not given (as parquet's reader).
            if max == 0 {
                return Ok::<(), PageError>(());
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
            let run = buf
                .get(at..at + len)
                .ok_or(PageError::Corrupt("short levels"))?;
            at += len;
            hybrid(run, width, n, |v| out.push(v as i16))
        };
        levels(max_rep, rep_bits, rep_len, &mut leaf.rep)?;
        let def_from = leaf.def.len();
        levels(max_def, def_bits, def_len, &mut leaf.def)?;
        let present = if max_def == 0 {
            n
        } else {
            leaf.def[def_from..]
                .iter()
                .filter(|&&d| d == max_def)
                .count()
        };
        let data = buf.slice(at.min(buf.len())..);
        match encoding {
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY => {
                let (&width, run) = data
                    .split_first()
                    .ok_or(PageError::Corrupt("no index width"))?;
                indexes.clear();
                hybrid(run, width, present, |v| indexes.push(v as u32))?;
                for &x in &indexes {
                    let id = ids
                        .get_mut(x as usize)
                        .ok_or(PageError::Corrupt("index past the dictionary"))?;
                    if *id == u32::MAX {
                        *id = intern(&dict[x as usize]);
                    }
                    leaf.values.push(*id);
                }
            }
            Encoding::PLAIN => {
                let (values, whole) = plain_byte_arrays(&data, present);
                if !whole {
                    return Err(PageError::Corrupt("short value"));
                }
                leaf.values.extend(values.into_iter().map(&mut *intern));
            }
            _ => return Err(PageError::Corrupt("unexpected value encoding")),
        }
    }
    Ok(Some(leaf))
}

/// The first `n` values of an RLE / bit-packed hybrid run of `width`-bit values, to `put`.
fn hybrid(data: &[u8], width: u8, n: usize, mut put: impl FnMut(u64)) -> Result<(), PageError> {
    if width > 32 {
        return Err(PageError::Corrupt("bit width over 32"));
    }
    let (mut at, mut left) = (0usize, n);
    let bytes_per = (width as usize).div_ceil(8);
    while left > 0 {
        let mut header = 0u64;
        let mut shift = 0;
        loop {
            let b = *data.get(at).ok_or(PageError::Corrupt("short run"))?;
            at += 1;
            header |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(PageError::Corrupt("run header too long"));
            }
        }
        if header & 1 == 0 {
            // A repeated value: the count, then the value in whole bytes.
            let count = (header >> 1) as usize;
            let b = data
                .get(at..at + bytes_per)
                .ok_or(PageError::Corrupt("short run"))?;
            at += bytes_per;
            let v = b
                .iter()
                .rev()
                .fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
            for _ in 0..count.min(left) {
                put(v);
            }
            left -= count.min(left);
        } else {
            // Groups of 8 values packed least significant bit first.
            // A writer may end the last group early: only the bytes of the values still
            // wanted must be there.
            let values = (header >> 1) as usize * 8;
            let take = values.min(left);
            let need = (take * width as usize).div_ceil(8);
            let b = data
                .get(at..at + need)
                .ok_or(PageError::Corrupt("short packed run"))?;
            at = (at + values * width as usize / 8).min(data.len());
            let mask = (1u64 << width) - 1;
            let (mut acc, mut have, mut next) = (0u64, 0u32, 0usize);
            for _ in 0..take {
                while have < u32::from(width) {
                    acc |= u64::from(b[next]) << have;
                    next += 1;
                    have += 8;
                }
                put(acc & mask);
                acc >>= width;
                have -= u32::from(width);
            }
            left -= take;
        }
    }
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

    #[test]
    fn level_widths() {
        assert_eq!(bits_for(0), 0);
        assert_eq!(bits_for(1), 1);
        assert_eq!(bits_for(3), 2);
        assert_eq!(bits_for(4), 3);
    }
}
