//! The writer's leaf column buffers: values with their levels as shredding fills them
//! ([`Leaf`], [`Values`] sharing a group's [`Levels`], [`Sparse`] deriving its levels from its
//! group's), numbers in vectors and strings end to end ([`Buffer`]), reserved at the size the last
//! row group reached; and where they go when a row group is written ([`Sink`]: a parquet row group
//! through [`RowGroupSink`], or compaction's raw columns).

use std::collections::HashMap;
use std::io::Write;

use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DataType, DoubleType, Int32Type, Int64Type,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedRowGroupWriter;

use super::WriteError;
use crate::byte_chunk::Texts;

/// One leaf column's buffered values with levels of its own.
#[derive(Debug)]
pub(crate) struct Leaf<B> {
    pub(super) col: Values<B>,
    levels: Levels,
}

/// Definition and repetition levels: a leaf's own, or shared by the [`Values`] columns of one
/// repeated group whose entries are always present together (a span's scalar fields, an
/// event's, a link's), written once per entry instead of once per column.
#[derive(Debug)]
pub(crate) struct Levels {
    /// The size memory's key (see [`LEAF_SIZES`]).
    key: String,
    pub(crate) def: Vec<i16>,
    pub(crate) rep: Vec<i16>,
}

/// A leaf column whose levels are its group's shared [`Levels`]: values only.
#[derive(Debug)]
pub(crate) struct Values<B> {
    path: String,
    pub(super) vals: B,
}

/// A leaf column's buffered values: numbers in a vector, or byte arrays end to end in [`Texts`]
/// (a shredded string is copied there, not kept as a handle to the buffer it came from).
pub(crate) trait Buffer {
    /// A value as shredding hands it over.
    type Value<'v>;
    /// An empty buffer reserved at the size column `path` reached last (see [`LEAF_SIZES`]).
    fn reserved(path: &str) -> Self;
    /// Remembers the buffer's size for column `path`'s next buffer.
    fn remember(&self, path: &str);
    fn put(&mut self, v: Self::Value<'_>);
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Hands the values to `rg` as column `path` and empties the buffer.
    fn emit(
        &mut self,
        rg: &mut impl Sink,
        path: &str,
        def: &[i16],
        rep: &[i16],
    ) -> Result<(), WriteError>;
}

impl<T: LeafValue> Buffer for Vec<T> {
    type Value<'v> = T;

    fn reserved(path: &str) -> Vec<T> {
        Vec::with_capacity(last_size(path))
    }

    fn remember(&self, path: &str) {
        remember_size(path, self.len());
    }

    fn put(&mut self, v: T) {
        self.push(v);
    }

    fn len(&self) -> usize {
        <[T]>::len(self)
    }

    fn emit(
        &mut self,
        rg: &mut impl Sink,
        path: &str,
        def: &[i16],
        rep: &[i16],
    ) -> Result<(), WriteError> {
        rg.column(path, self, def, rep)
    }
}

impl Buffer for Texts {
    type Value<'v> = &'v [u8];

    fn reserved(path: &str) -> Texts {
        Texts::with_capacity(last_size(path), last_size(&format!("{path}#bytes")))
    }

    fn remember(&self, path: &str) {
        remember_size(path, self.len());
        remember_size(&format!("{path}#bytes"), self.bytes_len());
    }

    fn put(&mut self, v: &[u8]) {
        self.push(v);
    }

    fn len(&self) -> usize {
        Texts::len(self)
    }

    fn emit(
        &mut self,
        rg: &mut impl Sink,
        path: &str,
        def: &[i16],
        rep: &[i16],
    ) -> Result<(), WriteError> {
        rg.texts(path, self, def, rep)
    }
}

/// How many values or levels each leaf column or shared level buffer (by path) held in the last
/// row group this process shredded. A new block's buffers are reserved at that size: a row
/// group's buffers grow to tens of MB, and growing them by doubling (copying, and faulting in
/// fresh pages twice over) was a tenth of the cost of cutting a block. Reserving touches no
/// memory until it is written.
static LEAF_SIZES: std::sync::Mutex<Option<HashMap<String, usize>>> = std::sync::Mutex::new(None);

fn leaf_sizes() -> std::sync::MutexGuard<'static, Option<HashMap<String, usize>>> {
    LEAF_SIZES.lock().unwrap_or_else(|p| p.into_inner())
}

/// The remembered size of `key` (0 if none).
pub(super) fn last_size(key: &str) -> usize {
    leaf_sizes()
        .as_ref()
        .and_then(|m| m.get(key).copied())
        .unwrap_or(0)
}

/// Remembers `len` for `key`'s next buffer (see [`LEAF_SIZES`]).
pub(super) fn remember_size(key: &str, len: usize) {
    let mut sizes = leaf_sizes();
    let sizes = sizes.get_or_insert_default();
    match sizes.get_mut(key) {
        Some(n) => *n = len,
        None => {
            sizes.insert(key.to_string(), len);
        }
    }
}

impl Levels {
    pub(super) fn new(key: impl Into<String>) -> Levels {
        let key = key.into();
        let n = last_size(&key);
        Levels {
            key,
            def: Vec::with_capacity(n),
            rep: Vec::with_capacity(n),
        }
    }

    pub(super) fn push(&mut self, r: i16, d: i16) {
        self.def.push(d);
        self.rep.push(r);
    }

    pub(super) fn clear(&mut self) {
        remember_size(&self.key, self.def.len());
        self.def.clear();
        self.rep.clear();
    }
}

impl<B: Buffer> Leaf<B> {
    pub(super) fn new(path: impl Into<String>) -> Leaf<B> {
        let path = path.into();
        Leaf {
            levels: Levels::new(format!("{path}#levels")),
            col: Values::new(path),
        }
    }

    pub(super) fn put(&mut self, v: B::Value<'_>, r: i16, d: i16) {
        self.col.put(v);
        self.levels.push(r, d);
    }

    pub(super) fn null(&mut self, r: i16, d: i16) {
        self.levels.push(r, d);
    }

    /// Hands the column to `rg` and empties it.
    pub(super) fn emit(&mut self, rg: &mut impl Sink) -> Result<(), WriteError> {
        self.col.emit(rg, &self.levels)?;
        self.levels.clear();
        Ok(())
    }
}

impl<B: Buffer> Values<B> {
    pub(super) fn new(path: impl Into<String>) -> Values<B> {
        let path = path.into();
        Values {
            vals: B::reserved(&path),
            path,
        }
    }

    /// A value of the group's entry just pushed to its [`Levels`].
    pub(super) fn put(&mut self, v: B::Value<'_>) {
        self.vals.put(v);
    }

    /// Hands the column to `rg` with its group's levels (which the group clears after its last
    /// column) and empties it.
    pub(super) fn emit(&mut self, rg: &mut impl Sink, levels: &Levels) -> Result<(), WriteError> {
        self.emit_with(rg, &levels.def, &levels.rep)
    }

    /// Hands the column to `rg` with these levels and empties it.
    pub(super) fn emit_with(
        &mut self,
        rg: &mut impl Sink,
        def: &[i16],
        rep: &[i16],
    ) -> Result<(), WriteError> {
        self.vals.remember(&self.path);
        self.vals.emit(rg, &self.path, def, rep)
    }
}

/// A value type of a leaf column: its parquet type, and its buffer among a compaction's raw
/// columns (`copy.rs`).
pub(crate) trait LeafValue: Sized {
    type Parquet: DataType<T = Self>;
    fn raw(vals: &mut crate::copy::Vals) -> Option<&mut Vec<Self>>;
    /// Writes the values as the row group's next column by hand (`byte_chunk.rs`,
    /// `fixed_chunk.rs`) if their type and the column's encoding allow; `false` if not.
    fn write_by_hand<W: Write + Send>(
        _rg: &mut SerializedRowGroupWriter<'_, W>,
        _leaf: &parquet::schema::types::ColumnDescPtr,
        _props: &WriterProperties,
        _vals: &[Self],
        _def: &[i16],
        _rep: &[i16],
    ) -> parquet::errors::Result<bool> {
        Ok(false)
    }
}

macro_rules! leaf_value {
    ($t:ty, $parquet:ty, $variant:ident $(, $by_hand:path)?) => {
        impl LeafValue for $t {
            type Parquet = $parquet;
            fn raw(vals: &mut crate::copy::Vals) -> Option<&mut Vec<$t>> {
                match vals {
                    crate::copy::Vals::$variant(v) => Some(v),
                    _ => None,
                }
            }
            $(
                fn write_by_hand<W: Write + Send>(
                    rg: &mut SerializedRowGroupWriter<'_, W>,
                    leaf: &parquet::schema::types::ColumnDescPtr,
                    props: &WriterProperties,
                    vals: &[$t],
                    def: &[i16],
                    rep: &[i16],
                ) -> parquet::errors::Result<bool> {
                    $by_hand(rg, leaf, props, vals, def, rep)
                }
            )?
        }
    };
}
leaf_value!(
    ByteArray,
    ByteArrayType,
    Bytes,
    crate::byte_chunk::write_byte_array_column
);
leaf_value!(i64, Int64Type, I64, crate::fixed_chunk::write_fixed_column);
leaf_value!(i32, Int32Type, I32, crate::fixed_chunk::write_fixed_column);
leaf_value!(f64, DoubleType, F64);
leaf_value!(bool, BoolType, Bool, crate::fixed_chunk::write_fixed_column);

/// Where buffered leaves go, in schema order: the next columns of a parquet row group, or the
/// raw column buffers of a compaction that copies rows (`copy.rs`). A column's values are taken
/// (`vals` is left empty); its levels may be shared with other columns, so they are only read.
pub(crate) trait Sink {
    fn column<T: LeafValue>(
        &mut self,
        path: &str,
        vals: &mut Vec<T>,
        def: &[i16],
        rep: &[i16],
    ) -> Result<(), WriteError>;

    /// A byte-array column buffered end to end.
    fn texts(
        &mut self,
        path: &str,
        vals: &mut Texts,
        def: &[i16],
        rep: &[i16],
    ) -> Result<(), WriteError>;
}

/// A parquet row group being written, a column at a time in schema order.
pub(crate) struct RowGroupSink<'a, 'b, W: Write + Send> {
    pub(crate) rg: &'a mut SerializedRowGroupWriter<'b, W>,
    pub(crate) schema: &'a parquet::schema::types::SchemaDescriptor,
    pub(crate) props: &'a WriterProperties,
    /// The next column's index.
    pub(crate) at: usize,
}

impl<W: Write + Send> RowGroupSink<'_, '_, W> {
    /// The row group's next column, checked to be `path`.
    pub(super) fn next_leaf(
        &mut self,
        path: &str,
    ) -> Result<parquet::schema::types::ColumnDescPtr, WriteError> {
        let Some(leaf) = self.schema.columns().get(self.at) else {
            return Err(parquet::errors::ParquetError::General(format!(
                "schema has no column for {path}"
            ))
            .into());
        };
        self.at += 1;
        let got = leaf.path().string();
        if got != path {
            return Err(parquet::errors::ParquetError::General(format!(
                "column order: writing {path} into {got}"
            ))
            .into());
        }
        Ok(leaf.clone())
    }

    /// Writes the values to the row group's next column through parquet's column writer.
    pub(super) fn write_batch<T: LeafValue>(
        &mut self,
        path: &str,
        vals: &mut Vec<T>,
        def: &[i16],
        rep: &[i16],
    ) -> Result<(), WriteError> {
        let mut col = self.rg.next_column()?.ok_or_else(|| {
            parquet::errors::ParquetError::General(format!("schema has no column for {path}"))
        })?;
        col.typed::<T::Parquet>()
            .write_batch(vals, Some(def), Some(rep))?;
        col.close()?;
        vals.clear();
        Ok(())
    }
}

impl<W: Write + Send> Sink for RowGroupSink<'_, '_, W> {
    /// Writes the values to the next column of the row group, checking it is the expected one:
    /// by hand where the leaf type and encoding allow (`LeafValue::write_by_hand`), the rest
    /// through parquet's column writer.
    fn column<T: LeafValue>(
        &mut self,
        path: &str,
        vals: &mut Vec<T>,
        def: &[i16],
        rep: &[i16],
    ) -> Result<(), WriteError> {
        let leaf = self.next_leaf(path)?;
        if T::write_by_hand(self.rg, &leaf, self.props, vals, def, rep)? {
            vals.clear();
            return Ok(());
        }
        self.write_batch(path, vals, def, rep)
    }

    fn texts(
        &mut self,
        path: &str,
        vals: &mut Texts,
        def: &[i16],
        rep: &[i16],
    ) -> Result<(), WriteError> {
        let leaf = self.next_leaf(path)?;
        if crate::byte_chunk::write_byte_array_column(self.rg, &leaf, self.props, &*vals, def, rep)?
        {
            vals.clear();
            return Ok(());
        }
        self.write_batch(path, &mut vals.take_byte_arrays(), def, rep)
    }
}

/// A leaf with an entry wherever its group's [`Levels`] have one (a dedicated slot, an
/// attribute's value columns), defined one level deeper where it has a value: it keeps only its
/// values and the entries they are at, and its levels are made from the group's when it is
/// written — a span pushed a level pair into each of a dozen dedicated slots and five value
/// columns per attribute, most of them nulls. A leaf given several entries for one of the
/// group's (an attribute's array) makes its levels from there on, until the row group ends.
#[derive(Debug)]
pub(super) struct Sparse<B> {
    col: Values<B>,
    at: Vec<usize>,
    /// Its own levels, once it has them (`explicit`).
    own: Levels,
    explicit: bool,
}

impl<B: Buffer> Sparse<B> {
    pub(super) fn new(path: String) -> Sparse<B> {
        Sparse {
            own: Levels::new(format!("{path}#own levels")),
            col: Values::new(path),
            at: Vec::new(),
            explicit: false,
        }
    }

    /// A value, or none, at the group's entry `entry` (repeated at `r`, defined at `d` without
    /// the value).
    pub(super) fn one(&mut self, v: Option<B::Value<'_>>, entry: usize, r: i16, d: i16) {
        if self.explicit {
            self.own.push(r, if v.is_some() { d + 1 } else { d });
        } else if v.is_some() {
            self.at.push(entry);
        }
        if let Some(v) = v {
            self.col.put(v);
        }
    }

    /// A null at the group's entry just pushed (repeated at `r`, defined at `d`).
    pub(super) fn null(&mut self, r: i16, d: i16) {
        if self.explicit {
            self.own.push(r, d);
        }
    }

    /// The values of a list at the group's last entry (`group`'s; repeated at `r`, each value
    /// defined at `d + 1`), or a null at `d` if there are none: the leaf's levels are its own
    /// from here.
    pub(super) fn list<'v>(
        &mut self,
        vals: impl IntoIterator<Item = B::Value<'v>>,
        group: &Levels,
        r: i16,
        d: i16,
    ) {
        if !self.explicit {
            let before = group.def.len() - 1;
            self.own.def.extend_from_slice(&group.def[..before]);
            self.own.rep.extend_from_slice(&group.rep[..before]);
            for &at in &self.at {
                self.own.def[at] += 1;
            }
            self.at.clear();
            self.explicit = true;
        }
        let mut any = false;
        for v in vals {
            self.own.push(if any { d + 1 } else { r }, d + 1);
            self.col.put(v);
            any = true;
        }
        if !any {
            self.own.push(r, d);
        }
    }

    /// Hands the column to `rg` with its levels — its own, or the group's `group` one deeper
    /// where it has a value (made in `def`) — and empties it.
    pub(super) fn emit(
        &mut self,
        rg: &mut impl Sink,
        group: &Levels,
        def: &mut Vec<i16>,
    ) -> Result<(), WriteError> {
        if self.explicit {
            self.explicit = false;
            self.col.emit(rg, &self.own)?;
            self.own.clear();
            return Ok(());
        }
        def.clear();
        def.extend_from_slice(&group.def);
        for &at in &self.at {
            def[at] += 1;
        }
        self.at.clear();
        self.col.emit_with(rg, def, &group.rep)
    }
}
