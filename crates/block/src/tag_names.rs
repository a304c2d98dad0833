//! Attribute names of a vParquet5 block for tag autocompletion, from dictionary pages: the
//! `Attrs.Key` column chunk of a scope holds every key of that scope, and when all its data
//! pages are dictionary-encoded its dictionary page alone lists them. Chunks that are not read
//! that way are decoded (the key column only). Dedicated columns contribute their names when
//! they hold a value; `service.name` comes from `Resource.ServiceName`. No span column is read:
//! like Tempo, a block is taken whole when its time range overlaps the request.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use parquet::column::page::Page;
use parquet::column::reader::ColumnReader;
use parquet::data_type::ByteArray;
use parquet::file::reader::ChunkReader;
use parquet::file::reader::RowGroupReader;

use crate::block_ref::BlockRef;
use crate::error::{Error, Result};
use crate::objects::Objects;
use crate::prune::{Parts, dictionary_range, plain_byte_arrays};

/// The key column of each attribute scope.
fn key_column(scope: &str) -> Option<&'static str> {
    Some(match scope {
        "resource" => "rs.Resource.Attrs.Key",
        "span" => "rs.ss.Spans.Attrs.Key",
        "instrumentation" => "rs.ss.Scope.Attrs.Key",
        "event" => "rs.ss.Spans.Events.Attrs.Key",
        "link" => "rs.ss.Spans.Links.Attrs.Key",
        _ => return None,
    })
}

/// The attribute names per scope of `block` (`scopes` among resource, span, instrumentation,
/// event, link). What a listing reads is kept with the block (within a budget), so the next
/// listing of the same scopes reads nothing.
pub async fn block_tag_names(
    backend: &dyn Objects,
    block: &BlockRef,
    scopes: &[&'static str],
) -> Result<BTreeMap<&'static str, BTreeSet<String>>> {
    let mut out: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    let mut missing = Vec::new();
    for &scope in scopes {
        match block.cached_tag_names(scope) {
            Some(names) => {
                out.insert(scope, (*names).clone());
            }
            None => missing.push(scope),
        }
    }
    if missing.is_empty() {
        return Ok(out);
    }
    let read = read_tag_names(backend, block, &missing).await?;
    for scope in missing {
        let names = read.get(scope).cloned().unwrap_or_default();
        block.keep_tag_names(scope, names.clone());
        out.insert(scope, names);
    }
    Ok(out)
}

/// [`block_tag_names`] read from the block's key dictionaries and dedicated columns.
async fn read_tag_names(
    backend: &dyn Objects,
    block: &BlockRef,
    scopes: &[&'static str],
) -> Result<BTreeMap<&'static str, BTreeSet<String>>> {
    let footer = block.footer(backend).await?;
    let schema = footer.file_metadata().schema_descr_ptr();
    let columns: HashMap<String, usize> = (0..schema.num_columns())
        .map(|i| (schema.column(i).path().string(), i))
        .collect();
    // (scope, column, name to add when the column has a value: None = the values are names).
    let mut wanted: Vec<(&'static str, usize, Option<String>)> = Vec::new();
    for &scope in scopes {
        if let Some(c) = key_column(scope).and_then(|p| columns.get(p)) {
            wanted.push((scope, *c, None));
        }
        let prefix = match scope {
            "resource" => "rs.Resource.DedicatedAttributes",
            "span" => "rs.ss.Spans.DedicatedAttributes",
            _ => continue,
        };
        for (int, kind) in [(false, "String"), (true, "Int")] {
            for (slot, name) in block.meta.dedicated(scope, int).into_iter().enumerate() {
                if let Some(c) = columns.get(&format!("{prefix}.{kind}{:02}", slot + 1)) {
                    wanted.push((scope, *c, Some(name.to_string())));
                }
            }
        }
        if scope == "resource"
            && let Some(c) = columns.get("rs.Resource.ServiceName")
        {
            wanted.push((scope, *c, Some("service.name".into())));
        }
    }
    let chunks: Vec<(usize, usize)> = (0..footer.num_row_groups())
        .flat_map(|rg| wanted.iter().map(move |(_, col, _)| (rg, *col)))
        .collect();
    let values = chunks_values(backend, block, footer, chunks).await?;
    let mut out: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    // `values` runs over row groups, and within each over `wanted`.
    for (i, values) in values.into_iter().enumerate() {
        let (scope, _, name_opt) = &wanted[i % wanted.len()];
        let set = out.entry(scope).or_default();
        match name_opt {
            // A dedicated (or service name) column: its name, when it holds a value.
            Some(name) => {
                if values.iter().any(|v| !v.is_empty()) {
                    set.insert(name.clone());
                }
            }
            None => set.extend(
                values
                    .into_iter()
                    .map(|v| String::from_utf8_lossy(&v).into_owned()),
            ),
        }
    }
    Ok(out)
}

/// The values of column chunks (row group, column) of a block, in order: from dictionary pages
/// where they list every value, else by decoding the chunk; one ranged request for all.
async fn chunks_values(
    backend: &dyn Objects,
    block: &BlockRef,
    footer: Arc<parquet::file::metadata::ParquetMetaData>,
    chunks: Vec<(usize, usize)>,
) -> Result<Vec<Vec<Vec<u8>>>> {
    let key = block.key("data.parquet");
    let mut ranges = Vec::with_capacity(chunks.len());
    let mut dict_only = Vec::with_capacity(chunks.len());
    for &(rg, col) in &chunks {
        let c = footer.row_group(rg).column(col);
        match dictionary_range(c) {
            Some(r) => {
                ranges.push(r);
                dict_only.push(true);
            }
            None => {
                let (s, l) = c.byte_range();
                ranges.push(s..s + l);
                dict_only.push(false);
            }
        }
    }
    let parts = crate::prune::fetch_parts(backend, &key, &ranges).await?;
    let size = block.meta.size;
    tokio::task::spawn_blocking(move || {
        let reader = Arc::new(Parts::new(parts, size));
        chunks
            .iter()
            .zip(dict_only)
            .map(|(&(rg, col), dict)| {
                chunk_values(&reader, &footer, rg, col, dict).map_err(|source| Error::Parquet {
                    path: key.clone().into(),
                    source,
                })
            })
            .collect()
    })
    .await
    .map_err(|e| Error::Schema {
        path: Default::default(),
        what: format!("block column read task failed: {e}"),
    })?
}

/// The values of one column chunk: from its dictionary page (`dict_only`: the chunk is all
/// dictionary-encoded, so the dictionary lists every value; an int dictionary gives one marker
/// value when it has entries), else by decoding the chunk.
fn chunk_values(
    reader: &Arc<Parts>,
    footer: &parquet::file::metadata::ParquetMetaData,
    rg: usize,
    col: usize,
    dict_only: bool,
) -> parquet::errors::Result<Vec<Vec<u8>>> {
    let c = footer.row_group(rg).column(col);
    if dict_only && let Some(range) = dictionary_range(c) {
        // The dictionary page alone, decompressed with the thread's kept zstd context
        // (`pages.rs`): parquet's page reader would build a compressor and a decompressor per
        // chunk, which were a sixth of a cold tag listing.
        let bytes = reader.get_bytes(range.start, (range.end - range.start) as usize)?;
        let pages = crate::pages::Pages::decode(c.compression(), [(bytes, None)])?;
        return Ok(match pages.dictionary() {
            Some(Page::DictionaryPage {
                buf, num_values, ..
            }) if c.column_type() == parquet::basic::Type::BYTE_ARRAY => {
                let (values, _) = plain_byte_arrays(&buf, num_values as usize);
                values.into_iter().map(<[u8]>::to_vec).collect()
            }
            Some(Page::DictionaryPage { num_values, .. }) if num_values > 0 => vec![vec![1]],
            _ => Vec::new(),
        });
    }
    let group = crate::prune::FetchedGroup::new(reader, footer.row_group(rg))?;
    column_values(&group, col)
}

/// Every value of a byte-array (or, as a presence marker, int64) column of a row group.
fn column_values(group: &dyn RowGroupReader, col: usize) -> parquet::errors::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    match group.get_column_reader(col)? {
        ColumnReader::ByteArrayColumnReader(mut r) => {
            let mut vals: Vec<ByteArray> = Vec::new();
            let (mut def, mut rep) = (Vec::new(), Vec::new());
            loop {
                let (n, _, _) = r.read_records(8192, Some(&mut def), Some(&mut rep), &mut vals)?;
                if n == 0 {
                    break;
                }
            }
            out.extend(vals.iter().map(|v| v.data().to_vec()));
        }
        ColumnReader::Int64ColumnReader(mut r) => {
            let mut vals: Vec<i64> = Vec::new();
            let (mut def, mut rep) = (Vec::new(), Vec::new());
            loop {
                let (n, _, _) = r.read_records(8192, Some(&mut def), Some(&mut rep), &mut vals)?;
                if n == 0 {
                    break;
                }
            }
            out.extend(vals.iter().map(|v| v.to_le_bytes().to_vec()));
        }
        _ => {}
    }
    Ok(out)
}

/// Where a tag's values can be listed from one column's dictionaries: `name`, a resource's
/// `service.name`, or a dedicated string column. `None` for anything else.
pub fn values_column(meta: &crate::meta::BlockMeta, scope: &str, name: &str) -> Option<String> {
    match (scope, name) {
        ("intrinsic", "name") => Some("rs.ss.Spans.Name".into()),
        ("resource", "service.name") => Some("rs.Resource.ServiceName".into()),
        ("resource" | "span", _) => {
            let prefix = if scope == "span" {
                "rs.ss.Spans"
            } else {
                "rs.Resource"
            };
            meta.dedicated(scope, false)
                .iter()
                .position(|n| *n == name)
                .map(|slot| format!("{prefix}.DedicatedAttributes.String{:02}", slot + 1))
        }
        _ => None,
    }
}

/// The distinct string values of `column` in `block`, from dictionary pages where they list
/// everything (else the column is decoded). `None` when the attribute `guard` (key column,
/// name) also occurs among the generic attributes — values there need the full read.
pub async fn block_column_values(
    backend: &dyn Objects,
    block: &BlockRef,
    column: &str,
    guard: Option<(&str, &str)>,
) -> Result<Option<BTreeSet<String>>> {
    let footer = block.footer(backend).await?;
    let schema = footer.file_metadata().schema_descr_ptr();
    let find = |p: &str| (0..schema.num_columns()).find(|i| schema.column(*i).path().string() == p);
    let Some(col) = find(column) else {
        return Ok(Some(BTreeSet::new()));
    };
    let guard_col = guard.and_then(|(c, n)| find(c).map(|i| (i, n.as_bytes().to_vec())));
    // Per row group: the column, then the guard's key column.
    let per_rg = 1 + usize::from(guard_col.is_some());
    let chunks: Vec<(usize, usize)> = (0..footer.num_row_groups())
        .flat_map(|rg| {
            std::iter::once((rg, col)).chain(guard_col.iter().map(move |(c, _)| (rg, *c)))
        })
        .collect();
    let keep_empty = column.ends_with(".Name");
    let values = chunks_values(backend, block, footer, chunks).await?;
    let mut out = BTreeSet::new();
    for (i, values) in values.into_iter().enumerate() {
        if i % per_rg == 1 {
            if let Some((_, name)) = &guard_col
                && values.iter().any(|v| v == name)
            {
                return Ok(None);
            }
            continue;
        }
        out.extend(
            values
                .into_iter()
                .filter(|v| !v.is_empty() || keep_empty)
                .map(|v| String::from_utf8_lossy(&v).into_owned()),
        );
    }
    Ok(Some(out))
}
