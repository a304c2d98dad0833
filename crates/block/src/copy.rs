//! Compaction by copying rows column by column.
//!
//! The inputs are read one row group at a time, every leaf column whole (values with their
//! repetition and definition levels) and split into rows where the repetition level is 0. The
//! k-way merge by trace ID then appends a row found in one input only to the output row group as
//! it is — a reference to the row in its input's window, gathered column by column when the row
//! group is written ([`Gather`]): slices of levels and values, strings moved, never assembled
//! into a trace. String columns the output writes with a dictionary are read as indexes into
//! their input chunk's dictionary (`dict_ids.rs`, [`DictReader`]) and written from the output's
//! entries ([`Interning`]): an input entry is looked up once per output column chunk, not each
//! value copied, hashed and dropped (`compact_bucket`, ten 150k-span blocks: 3.3 -> 2.7 CPU-s,
//! peak RSS 290 -> 241 MB, the same output bytes). Only a trace found in several inputs (or one over `max_bytes_per_trace`) goes
//! through OTLP: its rows are decoded, combined (spans deduplicated), trimmed, and shredded by
//! the writer into a window of its own. The output has the writer's codecs and schema, so the
//! bytes are those a decode-and-rewrite would give.
//!
//! Memory: each input's current row group compressed (fetched by a ranged read when it is
//! reached) and windows of [`WINDOW_ROWS`] of its rows decoded — its column readers stay open
//! between windows; a window is kept until the output row group holding its rows is written —
//! whatever the size of the blocks. (Inputs used to be decoded a whole row group at a time: four
//! inputs of one ~50 MB row group each took a compaction past 1 GB. Six 50 MB inputs,
//! `compact_bucket`: 1,024-row windows peaked at 488 MB, 128 at 302, 32 at 268 — at the same
//! speed.) Inputs whose schema differs from the output's (another dedicated-column layout,
//! Tempo's own writer) make [`compact_rows`] answer `None`: the caller merges through OTLP.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::column::reader::ColumnReader;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::RowGroupReader;
use parquet::file::writer::SerializedRowGroupWriter;
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor};
use prost::Message;
use rustc_hash::FxBuildHasher;
use vivace_common::TraceId;
use vivace_proto::tempopb::Trace;

use crate::assemble::Assembler;
use crate::byte_chunk::{Interned, encoding_by_hand, write_byte_array_column};
use crate::dict_ids::{DictPages, DictReader};
use crate::error::{Error, Result};
use crate::meta::BlockMeta;
use crate::objects::Objects;
use crate::write::{BlockWriter, FinishedBlock, LeafValue, Sink, WriteError, WriterConfig};

/// Values of one raw column.
#[derive(Debug)]
pub(crate) enum Vals {
    Bool(Vec<bool>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Bytes(Vec<ByteArray>),
    /// Strings as indexes into their input chunk's dictionary (read by `dict_ids.rs`).
    Dict(DictVals),
}

/// An input window's strings of one column: each an index into `dict`, the entries of its
/// column chunk's dictionary.
#[derive(Debug)]
pub(crate) struct DictVals {
    pub(crate) dict: Arc<Vec<Bytes>>,
    pub(crate) ids: Vec<u32>,
}

impl DictVals {
    fn get(&self, v: usize) -> &Bytes {
        &self.dict[self.ids[v] as usize]
    }
}

impl Vals {
    fn len(&self) -> usize {
        match self {
            Vals::Bool(v) => v.len(),
            Vals::I32(v) => v.len(),
            Vals::I64(v) => v.len(),
            Vals::F64(v) => v.len(),
            Vals::Bytes(v) => v.len(),
            Vals::Dict(d) => d.ids.len(),
        }
    }

    /// Which variant: an index into [`Gather`]'s spare columns (strings are gathered as bytes).
    fn kind(&self) -> usize {
        match self {
            Vals::Bool(_) => 0,
            Vals::I32(_) => 1,
            Vals::I64(_) => 2,
            Vals::F64(_) => 3,
            Vals::Bytes(_) | Vals::Dict(_) => 4,
        }
    }
}

/// One leaf column: values, and a repetition and definition level per entry (full length even
/// where the schema needs none, so rows can be cut anywhere).
#[derive(Debug)]
pub(crate) struct RawColumn {
    pub(crate) vals: Vals,
    pub(crate) def: Vec<i16>,
    pub(crate) rep: Vec<i16>,
    max_def: i16,
    max_rep: i16,
}

impl RawColumn {
    /// An empty column for the `i`th leaf of `descr`.
    pub(crate) fn new(
        descr: &SchemaDescriptor,
        i: usize,
    ) -> std::result::Result<RawColumn, String> {
        let c = descr.column(i);
        let vals = match c.physical_type() {
            PhysicalType::BOOLEAN => Vals::Bool(Vec::new()),
            PhysicalType::INT32 => Vals::I32(Vec::new()),
            PhysicalType::INT64 => Vals::I64(Vec::new()),
            PhysicalType::DOUBLE => Vals::F64(Vec::new()),
            PhysicalType::BYTE_ARRAY => Vals::Bytes(Vec::new()),
            other => return Err(format!("column {} has type {other}", c.path().string())),
        };
        Ok(RawColumn {
            vals,
            def: Vec::new(),
            rep: Vec::new(),
            max_def: c.max_def_level(),
            max_rep: c.max_rep_level(),
        })
    }

    /// Empties the column, keeping its buffers.
    fn clear(&mut self) {
        match &mut self.vals {
            Vals::Bool(v) => v.clear(),
            Vals::I32(v) => v.clear(),
            Vals::I64(v) => v.clear(),
            Vals::F64(v) => v.clear(),
            Vals::Bytes(v) => v.clear(),
            Vals::Dict(d) => d.ids.clear(),
        }
        self.def.clear();
        self.rep.clear();
    }

    /// Writes the column to the row group's next column, `leaf`, and empties it: byte arrays,
    /// integers and booleans by hand where their encoding allows (`byte_chunk.rs`,
    /// `fixed_chunk.rs`), doubles through parquet's column writer.
    pub(crate) fn write<W: std::io::Write + Send>(
        &mut self,
        rg: &mut SerializedRowGroupWriter<'_, W>,
        leaf: &ColumnDescPtr,
        props: &WriterProperties,
    ) -> std::result::Result<(), WriteError> {
        let (def, rep) = (&self.def[..], &self.rep[..]);
        let by_hand = match &self.vals {
            Vals::Bytes(v) => ByteArray::write_by_hand(rg, leaf, props, v, def, rep)?,
            Vals::I64(v) => i64::write_by_hand(rg, leaf, props, v, def, rep)?,
            Vals::I32(v) => i32::write_by_hand(rg, leaf, props, v, def, rep)?,
            Vals::Bool(v) => bool::write_by_hand(rg, leaf, props, v, def, rep)?,
            _ => false,
        };
        if by_hand {
            self.clear();
            return Ok(());
        }
        let mut col = rg.next_column()?.ok_or_else(|| {
            parquet::errors::ParquetError::General("schema ended before the columns".into())
        })?;
        let d = (self.max_def > 0).then_some(&self.def[..]);
        let r = (self.max_rep > 0).then_some(&self.rep[..]);
        match &self.vals {
            Vals::Bool(v) => col.typed::<BoolType>().write_batch(v, d, r)?,
            Vals::I32(v) => col.typed::<Int32Type>().write_batch(v, d, r)?,
            Vals::I64(v) => col.typed::<Int64Type>().write_batch(v, d, r)?,
            Vals::F64(v) => col.typed::<DoubleType>().write_batch(v, d, r)?,
            Vals::Bytes(v) => col.typed::<ByteArrayType>().write_batch(v, d, r)?,
            Vals::Dict(_) => {
                return Err(parquet::errors::ParquetError::General(
                    "dictionary indexes gathered into a column written by value".into(),
                )
                .into());
            }
        };
        col.close()?;
        self.clear();
        Ok(())
    }
}

/// The output row group being built in copy mode: where each of its rows comes from, gathered
/// column by column when the row group is written. A row copied from an input stays in that
/// input's window until then (the window is kept after the input moves past it), so its values
/// are moved once, straight into the column being written; rows the writer shredded (combined or
/// trimmed traces) wait in a window of their own. Gathering a column at a time keeps one column's
/// buffers hot and reused, instead of appending every row to ~100 growing columns. (Measured with
/// `compact_bucket` on two 23 MB level-1 blocks: 3.1-3.3 -> 2.7-3.0 CPU-s; peak RSS 184 -> 231
/// MB, still bounded by `row_group_bytes`: the windows hold what the output columns held, the
/// allocator reuses less of it.)
pub(crate) struct Gather {
    descr: Arc<SchemaDescriptor>,
    /// Slot 0: the rows the writer shredded. Other slots: input windows, emptied by the first
    /// row-group write after they are retired.
    windows: Vec<Option<Group>>,
    retired: Vec<bool>,
    /// Slots emptied, for the next windows.
    free: Vec<u32>,
    /// The row group's rows in order, as runs of consecutive rows of one window: (window, first
    /// row, rows).
    runs: Vec<(u32, u32, u32)>,
    /// A column of each value type, its buffers reused from column to column.
    spare: [Option<RawColumn>; 5],
    /// Per column, whether it is written with a dictionary from dictionary indexes
    /// ([`Interning`]); inputs read such columns as indexes where their pages allow.
    pub(crate) dictionary: Vec<bool>,
    interning: Interning,
}

impl Gather {
    pub(crate) fn new(
        descr: Arc<SchemaDescriptor>,
        props: &WriterProperties,
    ) -> std::result::Result<Gather, String> {
        let shredded = Group::shredded(&descr)?;
        let dictionary = (0..descr.num_columns())
            .map(|i| encoding_by_hand(&descr.column(i), props) == Some(Encoding::RLE_DICTIONARY))
            .collect();
        Ok(Gather {
            dictionary,
            interning: Interning::default(),
            descr,
            windows: vec![Some(shredded)],
            retired: vec![false],
            free: Vec::new(),
            runs: Vec::new(),
            spare: Default::default(),
        })
    }

    /// Keeps `group` until its rows are written; its handle.
    fn add(&mut self, group: Group) -> u32 {
        let at = match self.free.pop() {
            Some(at) => at as usize,
            None => {
                self.windows.push(None);
                self.retired.push(false);
                self.windows.len() - 1
            }
        };
        self.windows[at] = Some(group);
        self.retired[at] = false;
        at as u32
    }

    /// No more rows will be pushed from window `w`.
    fn retire(&mut self, w: u32) {
        self.retired[w as usize] = true;
    }

    fn window(&mut self, w: u32) -> &mut Group {
        self.windows[w as usize]
            .as_mut()
            .expect("a window is kept until retired and written")
    }

    /// Appends row `row` of window `w` to the row group.
    pub(crate) fn push(&mut self, w: u32, row: u32) {
        if let Some((lw, first, n)) = self.runs.last_mut()
            && *lw == w
            && *first + *n == row
        {
            *n += 1;
            return;
        }
        self.runs.push((w, row, 1));
    }

    /// Where the writer shreds a row: the shredded window's columns; then [`Gather::end_shredded`].
    pub(crate) fn shredded_sink(&mut self) -> RawSink<'_> {
        RawSink {
            cols: &mut self.window(0).cols,
            at: 0,
        }
    }

    /// Appends the row just shredded to the row group.
    pub(crate) fn end_shredded(&mut self) {
        let g = self.window(0);
        g.end_row();
        let row = g.bounds[0].len() as u32 - 2;
        self.push(0, row);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Writes the row group's rows column by column, then lets go of the windows used up.
    pub(crate) fn write<W: std::io::Write + Send>(
        &mut self,
        rg: &mut SerializedRowGroupWriter<'_, W>,
        props: &WriterProperties,
    ) -> std::result::Result<(), WriteError> {
        let (windows, runs) = (&mut self.windows, &self.runs);
        for c in 0..self.descr.num_columns() {
            if self.dictionary[c] {
                let leaf = self.descr.column(c);
                let out = &mut self.interning;
                let levels = (leaf.max_def_level() > 0, leaf.max_rep_level() > 0);
                each_run(windows, runs, c, |col, from, to| {
                    out.append(col, from, to, levels)
                });
                out.write(rg, &leaf, props)?;
                continue;
            }
            let kind = windows[0]
                .as_ref()
                .expect("slot 0 holds the shredded rows")
                .cols[c]
                .vals
                .kind();
            let mut out = match self.spare[kind].take() {
                Some(out) => out,
                None => RawColumn::new(&self.descr, c).map_err(|what| {
                    WriteError::from(parquet::errors::ParquetError::General(what))
                })?,
            };
            let leaf = self.descr.column(c);
            (out.max_def, out.max_rep) = (leaf.max_def_level(), leaf.max_rep_level());
            each_run(windows, runs, c, |col, from, to| {
                move_entries(col, from, to, &mut out, false)
            });
            let written = out.write(rg, &leaf, props);
            self.spare[kind] = Some(out);
            written?;
        }
        self.runs.clear();
        for (at, (w, retired)) in self
            .windows
            .iter_mut()
            .zip(&self.retired)
            .enumerate()
            .skip(1)
        {
            if *retired && w.take().is_some() {
                self.free.push(at as u32);
            }
        }
        if let Some(g) = &mut self.windows[0] {
            g.clear_shredded();
        }
        Ok(())
    }
}

/// Calls `f` for each run of rows (window, first row, rows) in column `c`: the window's column,
/// and the (entry, value) positions where the run starts and ends in it.
fn each_run(
    windows: &mut [Option<Group>],
    runs: &[(u32, u32, u32)],
    c: usize,
    mut f: impl FnMut(&mut RawColumn, (u32, u32), (u32, u32)),
) {
    for &(w, first, n) in runs {
        let g = windows[w as usize]
            .as_mut()
            .expect("a window is kept until its rows are written");
        let b = &g.bounds[c];
        let (from, to) = (b[first as usize], b[(first + n) as usize]);
        f(&mut g.cols[c], from, to);
    }
}

/// An output string column written with a dictionary, gathered as dictionary entries: each
/// entry of an input chunk's dictionary is given its output entry once, where it first occurs,
/// and its values then take that entry's number — instead of a `ByteArray` copied out of the
/// dictionary per value, dropped after writing, and hashed again by the writer (a fifth of a
/// compaction's CPU, measured). Values that are not dictionary indexes (rows the writer shredded, inputs with
/// other encodings) are interned by their bytes. Entries are numbered in order of first
/// occurrence, so the column is the one the writer would make from the values.
#[derive(Default)]
struct Interning {
    def: Vec<i16>,
    rep: Vec<i16>,
    ids: Vec<u32>,
    entries: Vec<Bytes>,
    index: HashMap<Bytes, u32, FxBuildHasher>,
    /// Per input dictionary met in this column: its entries' output numbers (u32::MAX: none
    /// yet).
    maps: Vec<(Arc<Vec<Bytes>>, Vec<u32>)>,
}

impl Interning {
    /// Appends entries `from..to` ((entry, value) positions) of `c`, taking its values; its
    /// levels only those stored (`levels`: definition, repetition).
    fn append(
        &mut self,
        c: &mut RawColumn,
        from: (u32, u32),
        to: (u32, u32),
        levels: (bool, bool),
    ) {
        let (e, v) = (
            from.0 as usize..to.0 as usize,
            from.1 as usize..to.1 as usize,
        );
        if levels.0 {
            self.def.extend_from_slice(&c.def[e.clone()]);
        }
        if levels.1 {
            self.rep.extend_from_slice(&c.rep[e]);
        }
        let (entries, index) = (&mut self.entries, &mut self.index);
        match &mut c.vals {
            Vals::Dict(d) => {
                let map = match self
                    .maps
                    .iter()
                    .position(|(dict, _)| Arc::ptr_eq(dict, &d.dict))
                {
                    Some(at) => &mut self.maps[at].1,
                    None => {
                        self.maps
                            .push((d.dict.clone(), vec![u32::MAX; d.dict.len()]));
                        &mut self.maps.last_mut().expect("just pushed").1
                    }
                };
                for &x in &d.ids[v] {
                    let id = &mut map[x as usize];
                    if *id == u32::MAX {
                        *id = intern(entries, index, &d.dict[x as usize]);
                    }
                    self.ids.push(*id);
                }
            }
            Vals::Bytes(vals) => {
                for b in &vals[v] {
                    let id = match index.get(b.data()) {
                        Some(&id) => id,
                        None => intern(entries, index, &Bytes::copy_from_slice(b.data())),
                    };
                    self.ids.push(id);
                }
            }
            _ => {}
        }
    }

    /// Writes the column as the row group's next, `leaf`, and empties it.
    fn write<W: std::io::Write + Send>(
        &mut self,
        rg: &mut SerializedRowGroupWriter<'_, W>,
        leaf: &ColumnDescPtr,
        props: &WriterProperties,
    ) -> std::result::Result<(), WriteError> {
        let vals = Interned {
            ids: &self.ids,
            entries: &self.entries,
        };
        let written = write_byte_array_column(rg, leaf, props, vals, &self.def, &self.rep);
        self.def.clear();
        self.rep.clear();
        self.ids.clear();
        self.entries.clear();
        self.index.clear();
        self.maps.clear();
        if !written? {
            return Err(parquet::errors::ParquetError::General(format!(
                "column {} is not written from dictionary entries",
                leaf.path().string()
            ))
            .into());
        }
        Ok(())
    }
}

/// The output entry of `v`, a new one if its bytes are new.
fn intern(
    entries: &mut Vec<Bytes>,
    index: &mut HashMap<Bytes, u32, FxBuildHasher>,
    v: &Bytes,
) -> u32 {
    let next = entries.len() as u32;
    let id = *index.entry(v.clone()).or_insert(next);
    if id == next {
        entries.push(v.clone());
    }
    id
}

/// The writer's shredded leaves, moved into raw columns in schema order.
pub(crate) struct RawSink<'a> {
    pub(crate) cols: &'a mut Vec<RawColumn>,
    pub(crate) at: usize,
}

impl Sink for RawSink<'_> {
    fn column<T: LeafValue>(
        &mut self,
        _path: &str,
        vals: &mut Vec<T>,
        def: &[i16],
        rep: &[i16],
    ) -> std::result::Result<(), WriteError> {
        let at = self.at;
        self.at += 1;
        let Some(c) = self.cols.get_mut(at) else {
            return Err(
                parquet::errors::ParquetError::General("more leaves than columns".into()).into(),
            );
        };
        let Some(v) = T::raw(&mut c.vals) else {
            return Err(parquet::errors::ParquetError::General(format!(
                "leaf {at} has another type than its column"
            ))
            .into());
        };
        v.append(vals);
        c.def.extend_from_slice(def);
        c.rep.extend_from_slice(rep);
        Ok(())
    }

    /// Strings shredded from a trace (an overlapping one, combined through OTLP) become byte
    /// arrays sharing one buffer.
    fn texts(
        &mut self,
        path: &str,
        vals: &mut crate::byte_chunk::Texts,
        def: &[i16],
        rep: &[i16],
    ) -> std::result::Result<(), WriteError> {
        self.column(path, &mut vals.take_byte_arrays(), def, rep)
    }
}

/// Rows of an input decoded at a time (the default of [`CopyInput::window_rows`]).
pub(crate) const WINDOW_ROWS: usize = 32;

/// A window of an input's rows, decoded and cut into rows.
pub(crate) struct Group {
    pub(crate) cols: Vec<RawColumn>,
    /// Per column, where each row starts: (entry, value); one more for the end.
    bounds: Vec<Vec<(u32, u32)>>,
    ids: Vec<TraceId>,
    starts: Vec<u64>,
    ends: Vec<u64>,
    /// Per row, bytes of its values (strings by length, numbers by width).
    sizes: Vec<usize>,
    /// Per row, what it takes in an output row group's buffers: values, string handles and
    /// levels (its strings share the input's pages, which stay alive as long).
    memory: Vec<usize>,
}

/// An input row group being read: its column readers, open between windows.
pub(crate) struct Reading {
    readers: Vec<Reader>,
    pub(crate) rows_left: usize,
}

/// How a column of an input is read: by parquet's column reader, or — a string column whose
/// pages are all dictionary-encoded, written with a dictionary in the output — as dictionary
/// indexes (`dict_ids.rs`), so that a value is never copied out of its dictionary.
pub(crate) enum Reader {
    Parquet(ColumnReader),
    Dict(DictReader),
}

impl Reading {
    /// Row group `group`; `dictionary[i]`: whether the output writes column `i` with a
    /// dictionary ([`Gather::dictionary`]).
    pub(crate) fn new(
        group: &dyn RowGroupReader,
        descr: &SchemaDescriptor,
        dictionary: &[bool],
        key: &str,
    ) -> Result<Reading> {
        let parquet_err = |source| Error::Parquet {
            path: key.into(),
            source,
        };
        let mut readers = Vec::with_capacity(descr.num_columns());
        for i in 0..descr.num_columns() {
            let chunk = group.metadata().column(i);
            let pages = if dictionary.get(i) == Some(&true)
                && crate::prune::dictionary_range(chunk).is_some()
            {
                DictPages::new(group, i, true).map_err(|e| e.at(key, i))?
            } else {
                None
            };
            readers.push(match pages {
                Some(pages) => Reader::Dict(DictReader::new(pages)),
                None => Reader::Parquet(group.get_column_reader(i).map_err(parquet_err)?),
            });
        }
        Ok(Reading {
            readers,
            rows_left: group.metadata().num_rows().max(0) as usize,
        })
    }

    /// The next (up to) `rows` rows.
    pub(crate) fn window(
        &mut self,
        rows: usize,
        descr: &SchemaDescriptor,
        key: &str,
    ) -> Result<Group> {
        let n = self.rows_left.min(rows.max(1));
        let group = read_rows(&mut self.readers, n, descr, key)?;
        self.rows_left -= n;
        Ok(group)
    }
}

/// The next `n_rows` rows of every column.
fn read_rows(
    readers: &mut [Reader],
    n_rows: usize,
    descr: &SchemaDescriptor,
    key: &str,
) -> Result<Group> {
    let mut cols = Vec::with_capacity(descr.num_columns());
    let mut bounds = Vec::with_capacity(descr.num_columns());
    let mut sizes = vec![0usize; n_rows];
    let mut memory = vec![0usize; n_rows];
    let (mut id_col, mut start_col, mut end_col) = (None, None, None);
    for (i, reader) in readers.iter_mut().enumerate() {
        let mut c = RawColumn::new(descr, i).map_err(|what| Error::Schema {
            path: key.into(),
            what,
        })?;
        match reader {
            Reader::Parquet(reader) => {
                read_column(reader, n_rows, &mut c).map_err(|e| e.at(i, key))?;
            }
            Reader::Dict(reader) => {
                let mut ids = Vec::new();
                let dict = reader
                    .read(n_rows, &mut c.def, &mut c.rep, &mut ids)
                    .map_err(|e| e.at(key, i))?;
                c.vals = Vals::Dict(DictVals { dict, ids });
            }
        }
        // Where each row starts: (entry, value).
        let mut b = Vec::with_capacity(n_rows + 1);
        let mut v = 0u32;
        for (e, (&r, &d)) in c.rep.iter().zip(&c.def).enumerate() {
            if r == 0 {
                b.push((e as u32, v));
            }
            v += u32::from(d == c.max_def);
        }
        if b.len() != n_rows || v as usize > c.vals.len() {
            return Err(Error::Schema {
                path: key.into(),
                what: format!(
                    "column {} has {} rows and {} values for {n_rows} rows and {v} defined \
                     levels",
                    descr.column(i).path().string(),
                    b.len(),
                    c.vals.len()
                ),
            });
        }
        b.push((c.rep.len() as u32, v));
        // Each row's bytes (strings by length, numbers by width), and what it takes in an
        // output row group's buffers: two levels per entry, and per value its bytes and for a
        // string its handle. A dictionary index is counted as the string it stands for, so
        // output row groups are cut where they always were.
        let handle = std::mem::size_of::<ByteArray>();
        for (row, w) in b.windows(2).enumerate() {
            let ((e0, v0), (e1, v1)) = (w[0], w[1]);
            let (entries, vals) = ((e1 - e0) as usize, v0 as usize..v1 as usize);
            let values = vals.len();
            let (bytes, handles) = match &c.vals {
                Vals::Bytes(x) => (x[vals].iter().map(|s| s.len()).sum(), values * handle),
                Vals::Dict(d) => (
                    d.ids[vals].iter().map(|&x| d.dict[x as usize].len()).sum(),
                    values * handle,
                ),
                Vals::Bool(_) => (values, 0),
                Vals::I32(_) => (values * 4, 0),
                Vals::I64(_) | Vals::F64(_) => (values * 8, 0),
            };
            sizes[row] += bytes;
            memory[row] += entries * 2 * std::mem::size_of::<i16>() + bytes + handles;
        }
        if let [name] = descr.column(i).path().parts() {
            match name.as_str() {
                "TraceID" => id_col = Some(i),
                "StartTimeUnixNano" => start_col = Some(i),
                "EndTimeUnixNano" => end_col = Some(i),
                _ => {}
            }
        }
        cols.push(c);
        bounds.push(b);
    }
    let missing = |what: &str| Error::Schema {
        path: key.into(),
        what: format!("no {what} column"),
    };
    let id = |b: &[u8]| TraceId::from_slice(b).unwrap_or(TraceId([0; 16]));
    let ids = match &cols[id_col.ok_or_else(|| missing("TraceID"))?].vals {
        Vals::Bytes(v) => v.iter().map(|b| id(b.data())).collect(),
        Vals::Dict(d) => (0..d.ids.len()).map(|v| id(d.get(v))).collect(),
        _ => return Err(missing("TraceID (bytes)")),
    };
    let times = |col: Option<usize>, what: &str| -> Result<Vec<u64>> {
        match &cols[col.ok_or_else(|| missing(what))?].vals {
            Vals::I64(v) => Ok(v.iter().map(|x| *x as u64).collect()),
            _ => Err(missing(what)),
        }
    };
    let starts = times(start_col, "StartTimeUnixNano")?;
    let ends = times(end_col, "EndTimeUnixNano")?;
    Ok(Group {
        cols,
        bounds,
        ids,
        starts,
        ends,
        sizes,
        memory,
    })
}

/// Why [`read_column`] failed.
pub(crate) enum ColumnError {
    Parquet(parquet::errors::ParquetError),
    /// The reader's type is not the column's.
    Type,
}

impl ColumnError {
    /// The error of reading column `i` of `key`.
    pub(crate) fn at(self, i: usize, key: &str) -> Error {
        match self {
            ColumnError::Parquet(source) => Error::Parquet {
                path: key.into(),
                source,
            },
            ColumnError::Type => Error::Schema {
                path: key.into(),
                what: format!("column {i} has an unexpected type"),
            },
        }
    }
}

/// Reads the next `n_rows` rows of a column into an empty `c`, with every level (levels the
/// file does not store are implied: every entry defined, none repeated).
pub(crate) fn read_column(
    reader: &mut ColumnReader,
    n_rows: usize,
    c: &mut RawColumn,
) -> std::result::Result<(), ColumnError> {
    macro_rules! read {
        ($r:expr, $v:expr) => {{
            let mut got = 0;
            while got < n_rows {
                let (records, _, _) = $r
                    .read_records(n_rows - got, Some(&mut c.def), Some(&mut c.rep), $v)
                    .map_err(ColumnError::Parquet)?;
                if records == 0 {
                    break;
                }
                got += records;
            }
            $v.len()
        }};
    }
    let n_vals = match (reader, &mut c.vals) {
        (ColumnReader::BoolColumnReader(r), Vals::Bool(v)) => read!(r, v),
        (ColumnReader::Int32ColumnReader(r), Vals::I32(v)) => read!(r, v),
        (ColumnReader::Int64ColumnReader(r), Vals::I64(v)) => read!(r, v),
        (ColumnReader::DoubleColumnReader(r), Vals::F64(v)) => read!(r, v),
        (ColumnReader::ByteArrayColumnReader(r), Vals::Bytes(v)) => read!(r, v),
        _ => return Err(ColumnError::Type),
    };
    if c.max_def == 0 {
        c.def = vec![0; n_vals.max(c.rep.len())];
    }
    if c.max_rep == 0 {
        c.rep = vec![0; c.def.len()];
    }
    Ok(())
}

/// Skips the next `n_rows` rows of a column.
pub(crate) fn skip_rows(
    reader: &mut ColumnReader,
    n_rows: usize,
) -> parquet::errors::Result<usize> {
    match reader {
        ColumnReader::BoolColumnReader(r) => r.skip_records(n_rows),
        ColumnReader::Int32ColumnReader(r) => r.skip_records(n_rows),
        ColumnReader::Int64ColumnReader(r) => r.skip_records(n_rows),
        ColumnReader::Int96ColumnReader(r) => r.skip_records(n_rows),
        ColumnReader::FloatColumnReader(r) => r.skip_records(n_rows),
        ColumnReader::DoubleColumnReader(r) => r.skip_records(n_rows),
        ColumnReader::ByteArrayColumnReader(r) => r.skip_records(n_rows),
        ColumnReader::FixedLenByteArrayColumnReader(r) => r.skip_records(n_rows),
    }
}

/// Moves the entries `from..to` ((entry, value) positions) of `c` to the end of `o`, a column
/// of the same leaf. Levels the column does not store (all 0) are copied only if `all_levels`
/// (for assembling; a column being written does without, see [`RawColumn::write`]).
fn move_entries(
    c: &mut RawColumn,
    from: (u32, u32),
    to: (u32, u32),
    o: &mut RawColumn,
    all_levels: bool,
) {
    let (e, v) = (
        from.0 as usize..to.0 as usize,
        from.1 as usize..to.1 as usize,
    );
    if all_levels || o.max_def > 0 {
        o.def.extend_from_slice(&c.def[e.clone()]);
    }
    if all_levels || o.max_rep > 0 {
        o.rep.extend_from_slice(&c.rep[e]);
    }
    match (&mut c.vals, &mut o.vals) {
        (Vals::Bool(a), Vals::Bool(b)) => b.extend_from_slice(&a[v]),
        (Vals::I32(a), Vals::I32(b)) => b.extend_from_slice(&a[v]),
        (Vals::I64(a), Vals::I64(b)) => b.extend_from_slice(&a[v]),
        (Vals::F64(a), Vals::F64(b)) => b.extend_from_slice(&a[v]),
        (Vals::Bytes(a), Vals::Bytes(b)) => b.extend(a[v].iter_mut().map(std::mem::take)),
        (Vals::Dict(a), Vals::Bytes(b)) => b.extend(v.map(|v| ByteArray::from(a.get(v).clone()))),
        _ => {}
    }
}

impl Group {
    /// An empty window of `descr`'s columns, for rows shredded by the writer.
    fn shredded(descr: &SchemaDescriptor) -> std::result::Result<Group, String> {
        let cols = (0..descr.num_columns())
            .map(|i| RawColumn::new(descr, i))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Group {
            bounds: vec![vec![(0, 0)]; cols.len()],
            cols,
            ids: Vec::new(),
            starts: Vec::new(),
            ends: Vec::new(),
            sizes: Vec::new(),
            memory: Vec::new(),
        })
    }

    /// Ends a row shredded into the columns: records where it ends in each.
    fn end_row(&mut self) {
        for (c, b) in self.cols.iter().zip(&mut self.bounds) {
            b.push((c.def.len().max(c.rep.len()) as u32, c.vals.len() as u32));
        }
    }

    /// Empties the columns of shredded rows, keeping their buffers.
    fn clear_shredded(&mut self) {
        for (c, b) in self.cols.iter_mut().zip(&mut self.bounds) {
            c.clear();
            b.clear();
            b.push((0, 0));
        }
    }

    /// Appends row `row` to `out` (columns of the same schema). Its strings are moved, not
    /// cloned: a row is copied or assembled once, and a clone (then a drop) per string value was
    /// two atomic reference-count updates each, a sixth of compaction.
    fn take_row(&mut self, row: usize, out: &mut [RawColumn]) {
        for ((c, b), o) in self.cols.iter_mut().zip(&self.bounds).zip(out.iter_mut()) {
            let (e0, v0) = b[row];
            let (e1, v1) = b[row + 1];
            move_entries(c, (e0, v0), (e1, v1), o, true);
        }
    }

    /// Row `row` as a trace, assembled from its columns (taken: see [`Group::take_row`]).
    fn trace(
        &mut self,
        row: usize,
        asm: &Assembler,
        descr: &SchemaDescriptor,
        meta: &BlockMeta,
        key: &str,
    ) -> Result<Trace> {
        let mut cols: Vec<RawColumn> = (0..descr.num_columns())
            .map(|i| RawColumn::new(descr, i))
            .collect::<std::result::Result<_, _>>()
            .map_err(|what| Error::Schema {
                path: key.into(),
                what,
            })?;
        self.take_row(row, &mut cols);
        let mut traces = asm.traces(&cols, meta).map_err(|what| Error::Schema {
            path: key.into(),
            what,
        })?;
        Ok(traces.pop().map(|(_, t)| t).unwrap_or_default())
    }
}

/// Where an input block's bytes come from: its footer, and ranged reads of its file.
pub struct CopyInput {
    pub meta: BlockMeta,
    pub key: String,
    pub footer: Arc<ParquetMetaData>,
    /// Rows decoded at a time ([`WINDOW_ROWS`]).
    pub window_rows: usize,
    /// Reads a byte range of `data.parquet` (called on the compaction thread).
    pub fetch: Box<dyn FnMut(std::ops::Range<u64>) -> Result<Bytes> + Send>,
}

impl std::fmt::Debug for CopyInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyInput").field("key", &self.key).finish()
    }
}

impl CopyInput {
    /// A whole `data.parquet` already in memory.
    pub fn from_bytes(data: Bytes, meta: BlockMeta, key: String) -> Result<CopyInput> {
        let footer = Arc::new(crate::read::parse_footer(&data, &key)?);
        Ok(CopyInput {
            meta,
            key,
            footer,
            window_rows: WINDOW_ROWS,
            fetch: Box::new(move |r| Ok(data.slice(r.start as usize..r.end as usize))),
        })
    }

    /// A block in the backend, read a row group at a time (from a thread outside the runtime
    /// that `handle` drives).
    pub async fn from_backend(
        backend: Arc<dyn Objects>,
        block: &crate::BlockRef,
        handle: tokio::runtime::Handle,
    ) -> Result<CopyInput> {
        let footer = block.footer(backend.as_ref()).await?;
        let key = block.key("data.parquet");
        let k = key.clone();
        Ok(CopyInput {
            meta: block.meta.clone(),
            key,
            footer,
            window_rows: WINDOW_ROWS,
            fetch: Box::new(move |r| {
                handle
                    .block_on(backend.get_range(&k, r))
                    .map_err(Error::Backend)
            }),
        })
    }
}

/// One input's position in the merge.
struct Input {
    src: CopyInput,
    next_rg: usize,
    reading_opt: Option<Reading>,
    /// The window of rows being merged, kept by the output's [`Gather`].
    window_opt: Option<u32>,
    row: usize,
}

impl Input {
    /// The trace ID of the current row, decoding the next window of rows (from the next row
    /// group when one is used up) when a window is.
    fn current(&mut self, descr: &SchemaDescriptor, out: &mut Gather) -> Result<Option<TraceId>> {
        loop {
            if let Some(w) = self.window_opt {
                if let Some(id) = out.window(w).ids.get(self.row) {
                    return Ok(Some(*id));
                }
                out.retire(w);
                self.window_opt = None;
            }
            if let Some(reading) = &mut self.reading_opt
                && reading.rows_left > 0
            {
                let rows = self.src.window_rows;
                let group = reading.window(rows, descr, &self.src.key)?;
                self.window_opt = Some(out.add(group));
                self.row = 0;
                continue;
            }
            self.reading_opt = None;
            if self.next_rg >= self.src.footer.num_row_groups() {
                return Ok(None);
            }
            let rg = self.next_rg;
            let md = self.src.footer.row_group(rg);
            let (start, len) = crate::read::row_group_range(md);
            let data = (self.src.fetch)(start..start + len)?;
            let size = self.src.meta.size.max(start + len);
            let reader = Arc::new(crate::prune::Parts::new(vec![(start, data)], size));
            let group =
                crate::prune::row_group_reader(&reader, &self.src.footer, rg, &self.src.key)?;
            self.reading_opt = Some(Reading::new(&group, descr, &out.dictionary, &self.src.key)?);
            self.next_rg += 1;
        }
    }
}

/// What [`compact_rows`] wrote.
#[derive(Debug)]
pub struct CompactOutput {
    pub done: FinishedBlock,
    pub data: Vec<u8>,
    /// Spans dropped because their trace passed `max_bytes_per_trace`.
    pub discarded_spans: u64,
    /// Rows read from the inputs.
    pub input_rows: u64,
    /// Rows copied as they were (the others were combined or trimmed through OTLP).
    pub copied_rows: u64,
}

/// Merges `sources` into one block written with `cfg`, holding one row group of each input at
/// a time. `None`: an input's schema is not the output's, nothing was read.
pub fn compact_rows(
    sources: Vec<CopyInput>,
    cfg: WriterConfig,
    max_bytes_per_trace: usize,
) -> Result<Option<CompactOutput>> {
    let wrap = |e: WriteError| Error::Schema {
        path: Default::default(),
        what: format!("writing the compacted block: {e}"),
    };
    let mut w = BlockWriter::new(Vec::new(), cfg).map_err(wrap)?;
    let descr = w.descr.clone();
    let asm = Assembler::new(&descr).map_err(|what| Error::Schema {
        path: Default::default(),
        what,
    })?;
    let mut inputs = Vec::with_capacity(sources.len());
    for src in sources {
        let theirs = src.footer.file_metadata().schema_descr();
        let same = theirs.num_columns() == descr.num_columns()
            && (0..descr.num_columns()).all(|i| {
                let (a, b) = (theirs.column(i), descr.column(i));
                a.path() == b.path()
                    && a.physical_type() == b.physical_type()
                    && a.max_def_level() == b.max_def_level()
                    && a.max_rep_level() == b.max_rep_level()
            });
        if !same {
            return Ok(None);
        }
        inputs.push(Input {
            src,
            next_rg: 0,
            reading_opt: None,
            window_opt: None,
            row: 0,
        });
    }
    w.raw_opt = Some(
        Gather::new(descr.clone(), w.properties()).map_err(|what| Error::Schema {
            path: Default::default(),
            what,
        })?,
    );
    let (mut discarded, mut input_rows, mut copied) = (0u64, 0u64, 0u64);
    let mut holders: Vec<usize> = Vec::with_capacity(inputs.len());
    loop {
        let out = w.raw_opt.as_mut().expect("copy mode");
        let mut next: Option<TraceId> = None;
        holders.clear();
        for (i, input) in inputs.iter_mut().enumerate() {
            match input.current(&descr, out)? {
                Some(id) if next.is_none_or(|n| id < n) => {
                    next = Some(id);
                    holders.clear();
                    holders.push(i);
                }
                Some(id) if Some(id) == next => holders.push(i),
                _ => {}
            }
        }
        let Some(id) = next else { break };
        input_rows += holders.len() as u64;
        let at = |input: &Input| (input.window_opt.expect("current row"), input.row);
        let first = at(&inputs[holders[0]]);
        let fits = max_bytes_per_trace == 0
            || out.window(first.0).sizes[first.1] <= max_bytes_per_trace / 2;
        if holders.len() == 1 && fits {
            let (window, row) = first;
            let g = out.window(window);
            let (start, end, bytes) = (g.starts[row], g.ends[row], g.memory[row]);
            w.push_copied(id, start, end, bytes, window, row as u32)
                .map_err(wrap)?;
            copied += 1;
        } else {
            let mut pieces = Vec::with_capacity(holders.len());
            for &h in &holders {
                let input = &inputs[h];
                let (window, row) = at(input);
                let g = out.window(window);
                pieces.push(g.trace(row, &asm, &descr, &input.src.meta, &input.src.key)?);
            }
            let mut trace = if pieces.len() == 1 {
                pieces.pop().unwrap_or_default()
            } else {
                vivace_model::combine_traces(pieces, &mut HashSet::new())
            };
            if max_bytes_per_trace > 0 {
                discarded += trim(&mut trace, max_bytes_per_trace);
            }
            w.push(id, &trace).map_err(wrap)?;
        }
        for &h in &holders {
            inputs[h].row += 1;
        }
    }
    let (mut done, data) = w.finish().map_err(wrap)?;
    crate::write::set_file_facts(&mut done.meta, data.len() as u64, &data);
    Ok(Some(CompactOutput {
        done,
        data,
        discarded_spans: discarded,
        input_rows,
        copied_rows: copied,
    }))
}

/// Drops spans from the end of the trace until its encoding fits `max` bytes (Tempo's
/// `trace_too_large_to_compact`); returns how many were dropped.
pub fn trim(trace: &mut Trace, max: usize) -> u64 {
    let mut dropped = 0;
    while trace.encoded_len() > max {
        let Some(ss) = trace
            .resource_spans
            .iter_mut()
            .rev()
            .flat_map(|rs| rs.scope_spans.iter_mut().rev())
            .find(|ss| !ss.spans.is_empty())
        else {
            break;
        };
        ss.spans.pop();
        dropped += 1;
    }
    for rs in &mut trace.resource_spans {
        rs.scope_spans.retain(|ss| !ss.spans.is_empty());
    }
    trace.resource_spans.retain(|rs| !rs.scope_spans.is_empty());
    dropped
}
