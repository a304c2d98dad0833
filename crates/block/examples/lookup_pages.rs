//! What a trace by ID reads in a block (a measuring aid): for its first row group, the average
//! data page per column (a lookup decompresses one per column), the largest, the dictionary
//! pages, and with `TOTALS=1` every column's compressed bytes over the file.
//!   cargo run --release -p vivace-block --example lookup_pages -- <data.parquet>
use parquet::file::reader::{FileReader, SerializedFileReader};

fn main() {
    let path = std::env::args().nth(1).expect("a data.parquet");
    let data = bytes::Bytes::from(std::fs::read(&path).unwrap());
    let file = SerializedFileReader::new(data.clone()).unwrap();
    let md = file.metadata();
    let rg = md.row_group(0);
    let (mut dict, mut compressed, mut uncompressed, mut pages) = (0i64, 0i64, 0i64, 0usize);
    let mut per_column = Vec::new();
    let mut dict_uncompressed = 0usize;
    let group = file.get_row_group(0).unwrap();
    for (i, c) in rg.columns().iter().enumerate() {
        if c.dictionary_page_offset().is_some() {
            let mut pages = group.get_column_page_reader(i).unwrap();
            if let Some(parquet::column::page::Page::DictionaryPage { buf, .. }) =
                pages.get_next_page().unwrap()
            {
                dict_uncompressed += buf.len();
            }
        }
        let (Some(at), Some(len)) = (c.offset_index_offset(), c.offset_index_length()) else {
            eprintln!("{}: no offset index", c.column_path().string());
            return;
        };
        let index = data.slice(at as usize..at as usize + len as usize);
        let index = parquet::file::page_index::index_reader::decode_offset_index(&index).unwrap();
        let locations = index.page_locations();
        let n = locations.len().max(1) as i64;
        let first = locations.first().map_or(0, |p| p.offset);
        dict += c.dictionary_page_offset().map_or(0, |d| first - d);
        compressed += locations
            .iter()
            .map(|p| p.compressed_page_size as i64)
            .sum::<i64>()
            / n;
        uncompressed += c.uncompressed_size() / n;
        pages += locations.len();
        per_column.push((c.uncompressed_size() / n, c.column_path().string()));
    }
    println!(
        "row group 0: {} rows, {} columns, {pages} pages",
        rg.num_rows(),
        rg.num_columns()
    );
    per_column.sort();
    for (bytes, name) in per_column.iter().rev().take(12) {
        println!("{bytes:9} B per page (uncompressed)  {name}");
    }
    println!(
        "per lookup: ~{uncompressed} B decompressed from ~{compressed} B of data pages, \
         and {dict} B of dictionary pages ({dict_uncompressed} B decompressed)"
    );
    if std::env::var("TOTALS").is_ok() {
        let mut totals = std::collections::BTreeMap::new();
        for rg in md.row_groups() {
            for c in rg.columns() {
                *totals.entry(c.column_path().string()).or_insert(0i64) += c.compressed_size();
            }
        }
        for (name, bytes) in totals {
            println!("total {name} {bytes}");
        }
    }
}
