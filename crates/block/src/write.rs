//! The vParquet5 writer (§5.5): traces, sorted by ID, shredded straight into parquet columns.
//!
//! Every leaf column of the schema has a buffer of values with their repetition and definition
//! levels: its own ([`Leaf`]), or, for the columns of one repeated group that always have an
//! entry together (a span's scalar fields, an attribute's key and `IsArray`), one [`Levels`]
//! shared by their [`Values`]. A trace is walked once and each field lands in its column (Dremel
//! shredding written out by hand for this one schema: a repeated group's first element repeats
//! at the parent's level, later ones at the group's own; an empty group leaves one null at the
//! parent's definition level in every column below it). When the buffered row group passes
//! `row_group_bytes` the columns are written in schema order with Tempo's codec per column
//! (dictionary, delta, snappy or none; see [`codec_of`]).
//!
//! The file schema is Tempo's, with dedicated-column slots present only for the columns the
//! block's `meta.json` names (Tempo's `SchemaWithDynamicChanges`). Attributes that have a
//! dedicated column of their scope and type are written only there.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use parquet::basic::{Compression, Encoding};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::ColumnPath;
use vivace_common::TraceId;
use vivace_proto::tempopb::Trace;
use vivace_proto::view::{self, AnyValue, KeyValue, Span, Value};

mod leaves;

use leaves::{Buffer, Leaf, Levels, Sparse, Values};
pub(crate) use leaves::{LeafValue, RowGroupSink, Sink};

use crate::bloom_write::ShardedBloom;
use crate::byte_chunk::Texts;
use crate::meta::{BlockMeta, DedicatedColumn, rfc3339};

/// The format name written to `meta.json`.
pub const FORMAT: &str = "vParquet5";
/// Root name and service of a trace whose root span has not been seen (Tempo's text).
pub const ROOT_NOT_RECEIVED: &str = "<root span not yet received>";
/// Tempo's `parquet_row_group_size_bytes` default.
pub(crate) const DEFAULT_ROW_GROUP_BYTES: usize = 100_000_000;

const STATUS_ERROR: i32 = 2;
/// Row-group bytes counted per byte of a trace's protobuf encoding (see `push`): what its
/// buffered leaves take — each string's bytes and an 8-byte offset, a value per number and two
/// levels per entry — measured as the RSS a cut block adds (~250 MB for a 50 MB block in one row
/// group when strings were 32-byte handles into the encoding; ~25 MB less since they are copied).
const BUFFER_COST_PER_ENCODED_BYTE: usize = 5;
/// Data page size: a trace by ID decompresses one page per column (`read.rs`), so pages stay
/// small enough for point reads while zstd still sees enough to compress well.
const DATA_PAGE_BYTES: usize = 256 << 10;
/// Data page length in rows (traces). A chunk of small values would otherwise be one page, all
/// of it decompressed for any trace of the row group: measured on a compacted 830k-span block,
/// 1,000 rows cost 1.2% more bytes (Compact codecs) and took trace by ID p50 from 9.0 to 6.0 ms
/// (`scripts/bench/trace_by_id.sh`); 250 rows cost 12%.
const DATA_PAGE_ROWS: usize = 1000;
/// Data page length in rows of span-level columns (and their attributes, events, links), which
/// hold a value per span or more: a trace by ID decompresses and skips through one such page per
/// column. On `vivace gen` data (an 89k-trace, 2.5M-span block rewritten; lookups with
/// `scripts/bench/trace_by_id.sh`): 1,000 rows 20.5 B/span, p50 4.3–4.9 ms, ~1.4 MB
/// decompressed per lookup; 500 rows +6% bytes, 3.4 ms, 0.9 MB; 250 rows +18% bytes, 2.6–3.2 ms,
/// 0.6 MB. (Parquet checks the limits after each batch of 1,024 levels, so pages run a little
/// longer: ~590 rows here.)
const SPAN_PAGE_ROWS: usize = 500;
const MAX_DEDICATED_STRINGS: usize = 20;
const MAX_DEDICATED_INTS: usize = 5;
// `DedCols::write` marks the slots of an entry in a `u32` each.
const _: () = assert!(MAX_DEDICATED_STRINGS <= 32 && MAX_DEDICATED_INTS <= 32);

/// Settings of one block being written.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub tenant: String,
    pub block_id: String,
    pub dedicated_columns: Vec<DedicatedColumn>,
    /// A row group is flushed once its buffered data passes this estimate.
    pub row_group_bytes: usize,
    pub bloom_false_positive: f64,
    pub bloom_shard_bytes: usize,
    pub compaction_level: u32,
    /// Column codecs: Tempo's choices, or smaller files (zstd instead of snappy and of no
    /// compression, a dictionary for parent span IDs). Both read with any parquet reader.
    pub codecs: Codecs,
    /// `meta.json`'s start and end (unix seconds) are clamped into this range: for a fresh block
    /// the time of writing ± Tempo's ingestion slack, so spans with bogus timestamps neither
    /// expire the block at once nor keep it forever; for a compacted block the inputs' range.
    pub time_bounds: Option<(i64, i64)>,
}

/// See [`WriterConfig::codecs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codecs {
    /// Exactly Tempo's compression and encodings per column (~55 B/span on `vivace gen` data).
    Tempo,
    /// zstd (level 3) where Tempo uses snappy or nothing; parent span IDs dictionary-encoded;
    /// integers delta-packed where Tempo writes them PLAIN (~35 B/span on the same data, and
    /// faster to write). The default.
    #[default]
    Compact,
}

impl WriterConfig {
    pub fn new(tenant: &str, block_id: &str) -> WriterConfig {
        WriterConfig {
            tenant: tenant.into(),
            block_id: block_id.into(),
            dedicated_columns: DedicatedColumn::defaults(),
            row_group_bytes: DEFAULT_ROW_GROUP_BYTES,
            bloom_false_positive: crate::bloom_write::DEFAULT_FALSE_POSITIVE,
            bloom_shard_bytes: crate::bloom_write::DEFAULT_SHARD_BYTES,
            compaction_level: 0,
            codecs: Codecs::Compact,
            time_bounds: None,
        }
    }
}

/// A finished block: its `meta.json` and the bytes of each bloom shard. `data.parquet` went to
/// the writer's sink.
#[derive(Debug, Clone)]
pub struct FinishedBlock {
    pub meta: BlockMeta,
    pub blooms: Vec<Vec<u8>>,
}

/// Errors while writing a block.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("writing data.parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("traces must be written in ascending ID order: {0} after {1}")]
    Unsorted(TraceId, TraceId),
    #[error("the dedicated columns use {0}, more than vParquet5's limit")]
    TooManyDedicated(String),
}

/// Writes one vParquet5 `data.parquet` into `W`, trace by trace, in ascending ID order.
pub struct BlockWriter<W: Write + Send> {
    cfg: WriterConfig,
    writer: SerializedFileWriter<W>,
    cols: Cols,
    /// The file's leaf columns.
    pub(crate) descr: Arc<parquet::schema::types::SchemaDescriptor>,
    /// Copy mode (compaction, `copy.rs`): the row group being built as raw columns in schema
    /// order, rows copied from input blocks and pushed traces alike.
    pub(crate) raw_opt: Option<crate::copy::Gather>,
    buffered_bytes: usize,
    ids: Vec<TraceId>,
    row_groups: u32,
    start: u64,
    end: u64,
}

impl<W: Write + Send> std::fmt::Debug for BlockWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockWriter")
            .field("block_id", &self.cfg.block_id)
            .field("traces", &self.ids.len())
            .finish()
    }
}

impl<W: Write + Send> BlockWriter<W> {
    pub fn new(sink: W, cfg: WriterConfig) -> Result<BlockWriter<W>, WriteError> {
        let layout = Layout::new(&cfg.dedicated_columns)?;
        let text = schema_text(&layout);
        let schema = Arc::new(parse_message_type(&text)?);
        let descr = Arc::new(parquet::schema::types::SchemaDescriptor::new(
            schema.clone(),
        ));
        let mut props = WriterProperties::builder()
            .set_created_by(format!("vivace version {}", env!("CARGO_PKG_VERSION")))
            .set_compression(Compression::SNAPPY)
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_data_page_size_limit(DATA_PAGE_BYTES)
            .set_data_page_row_count_limit(DATA_PAGE_ROWS);
        for path in leaf_paths(&text) {
            let codec = codec_of(&path);
            let col = ColumnPath::new(path.split('.').map(str::to_string).collect());
            let (compression, encoding, dict) = match codec {
                Codec::Raw => (
                    Compression::UNCOMPRESSED,
                    Encoding::DELTA_LENGTH_BYTE_ARRAY,
                    false,
                ),
                Codec::Text => (
                    Compression::SNAPPY,
                    Encoding::DELTA_LENGTH_BYTE_ARRAY,
                    false,
                ),
                Codec::Delta => (
                    Compression::UNCOMPRESSED,
                    Encoding::DELTA_BINARY_PACKED,
                    false,
                ),
                Codec::SnappyDelta => (Compression::SNAPPY, Encoding::DELTA_BINARY_PACKED, false),
                Codec::Dict => (Compression::UNCOMPRESSED, Encoding::PLAIN, true),
                Codec::SnappyDict => (Compression::SNAPPY, Encoding::PLAIN, true),
                Codec::Plain => (Compression::SNAPPY, Encoding::PLAIN, false),
            };
            let (compression, dict, encoding) = match cfg.codecs {
                Codecs::Tempo => (compression, dict, encoding),
                Codecs::Compact => (
                    Compression::ZSTD(parquet::basic::ZstdLevel::try_new(3).unwrap_or_default()),
                    dict || path.ends_with("ParentSpanID"),
                    // Integers Tempo writes PLAIN (attribute values, dedicated integers, dropped
                    // counts, mostly 0) delta-packed: a page of zeros is a few bytes instead of
                    // 4–8 per value that a trace by ID decompresses.
                    if codec == Codec::Plain
                        && matches!(
                            physical_type(&path, &descr),
                            Some(parquet::basic::Type::INT32 | parquet::basic::Type::INT64)
                        )
                    {
                        Encoding::DELTA_BINARY_PACKED
                    } else {
                        encoding
                    },
                ),
            };
            if path.contains(".Spans.") {
                props = props.set_column_data_page_row_count_limit(col.clone(), SPAN_PAGE_ROWS);
            }
            props = props
                .set_column_compression(col.clone(), compression)
                .set_column_dictionary_enabled(col.clone(), dict);
            if !keeps_statistics(&path, &descr) {
                props = props.set_column_statistics_enabled(col.clone(), EnabledStatistics::None);
            }
            if !dict {
                props = props.set_column_encoding(col, encoding);
            }
        }
        let writer = SerializedFileWriter::new(sink, schema, Arc::new(props.build()))?;
        Ok(BlockWriter {
            cols: Cols::new(&layout),
            descr,
            raw_opt: None,
            cfg,
            writer,
            buffered_bytes: 0,
            ids: Vec::new(),
            row_groups: 0,
            start: u64::MAX,
            end: 0,
        })
    }

    /// Adds one trace. IDs must ascend; a trace is one row (combine pieces of a trace first).
    pub fn push(&mut self, id: TraceId, trace: &Trace) -> Result<(), WriteError> {
        let encoded = prost::Message::encode_to_vec(trace);
        // A message prost encoded decodes.
        let view = view::Trace::decode(&encoded).unwrap_or_default();
        self.push_view(id, &view, encoded.len())
    }

    /// Adds one trace decoded as a [`view::Trace`] (its strings are copied into the columns);
    /// `encoded` is its protobuf size.
    pub fn push_view(
        &mut self,
        id: TraceId,
        trace: &view::Trace<'_>,
        encoded: usize,
    ) -> Result<(), WriteError> {
        if let Some(last) = self.ids.last()
            && *last >= id
        {
            return Err(WriteError::Unsorted(id, *last));
        }
        let (start, end) = self.cols.trace(&id, trace);
        if let Some(raw) = &mut self.raw_opt {
            self.cols.write(&mut raw.shredded_sink())?;
            raw.end_shredded();
        }
        if start <= end {
            self.start = self.start.min(start);
            self.end = self.end.max(end);
        }
        self.ids.push(id);
        // The row-group target bounds the memory of the buffered columns: a trace counts at
        // what its leaves take, several times its protobuf size (copied rows count theirs the
        // same way, `copy.rs`), so a 100 MB row group holds ~20 MB of traces.
        self.buffered_bytes += BUFFER_COST_PER_ENCODED_BYTE * encoded;
        if self.buffered_bytes >= self.cfg.row_group_bytes {
            self.flush_row_group()?;
        }
        Ok(())
    }

    /// Adds one row copied from another block of the same schema (copy mode): `id` and its
    /// span time range, an estimate of its buffered bytes, and where it is: row `row` of the
    /// output's window `window` (see [`crate::copy::Gather`]).
    pub(crate) fn push_copied(
        &mut self,
        id: TraceId,
        start: u64,
        end: u64,
        bytes: usize,
        window: u32,
        row: u32,
    ) -> Result<(), WriteError> {
        if let Some(last) = self.ids.last()
            && *last >= id
        {
            return Err(WriteError::Unsorted(id, *last));
        }
        let Some(raw) = &mut self.raw_opt else {
            return Err(parquet::errors::ParquetError::General(
                "a copied row needs copy mode".into(),
            )
            .into());
        };
        raw.push(window, row);
        if start <= end && start > 0 {
            self.start = self.start.min(start);
            self.end = self.end.max(end);
        }
        self.ids.push(id);
        self.buffered_bytes += bytes;
        if self.buffered_bytes >= self.cfg.row_group_bytes {
            self.flush_row_group()?;
        }
        Ok(())
    }

    pub fn traces(&self) -> usize {
        self.ids.len()
    }

    /// The properties the file is written with.
    pub(crate) fn properties(&self) -> &WriterProperties {
        self.writer.properties()
    }

    fn flush_row_group(&mut self) -> Result<(), WriteError> {
        if let Some(raw) = &mut self.raw_opt {
            if raw.is_empty() {
                return Ok(());
            }
            let props = self.writer.properties().clone();
            let mut rg = self.writer.next_row_group()?;
            raw.write(&mut rg, &props)?;
            crate::chunk::forget_levels();
            rg.close()?;
            self.row_groups += 1;
            self.buffered_bytes = 0;
            return Ok(());
        }
        if self.cols.trace_id.col.vals.is_empty() {
            return Ok(());
        }
        let props = self.writer.properties().clone();
        let mut rg = self.writer.next_row_group()?;
        self.cols.write(&mut RowGroupSink {
            rg: &mut rg,
            schema: &self.descr,
            props: &props,
            at: 0,
        })?;
        crate::chunk::forget_levels();
        rg.close()?;
        self.row_groups += 1;
        self.buffered_bytes = 0;
        Ok(())
    }

    /// Writes the last row group and the footer, builds the blooms and the block's meta. The
    /// sink is returned so a caller writing to a file can sync it.
    pub fn finish(mut self) -> Result<(FinishedBlock, W), WriteError> {
        self.flush_row_group()?;
        let mut bloom = ShardedBloom::new(
            self.ids.len(),
            self.cfg.bloom_false_positive,
            self.cfg.bloom_shard_bytes,
        );
        for id in &self.ids {
            bloom.add(id);
        }
        let sink = self.writer.into_inner()?;
        let (mut start, mut end) = if self.start <= self.end {
            (
                (self.start / 1_000_000_000) as i64,
                self.end.div_ceil(1_000_000_000) as i64,
            )
        } else {
            self.cfg.time_bounds.unwrap_or((0, 0))
        };
        if let Some((lo, hi)) = self.cfg.time_bounds {
            start = start.clamp(lo, hi);
            end = end.clamp(lo, hi);
        }
        let meta = BlockMeta {
            format: FORMAT.into(),
            block_id: self.cfg.block_id.clone(),
            tenant_id: self.cfg.tenant.clone(),
            start_time: rfc3339(start),
            end_time: rfc3339(end),
            total_objects: self.ids.len() as u64,
            size: 0,
            compaction_level: self.cfg.compaction_level,
            index_page_size: 0,
            total_records: self.row_groups,
            bloom_shards: bloom.shard_count(),
            footer_size: 0,
            dedicated_columns: self.cfg.dedicated_columns.clone(),
            replication_factor: 1,
            compacted_time: None,
        };
        Ok((
            FinishedBlock {
                meta,
                blooms: bloom.files(),
            },
            sink,
        ))
    }
}

/// Fills `size` and `footerSize` of a block's meta from the bytes of its `data.parquet` tail
/// (at least the last 8 bytes) and its length.
pub fn set_file_facts(meta: &mut BlockMeta, len: u64, tail: &[u8]) {
    meta.size = len;
    if tail.len() >= 8 && &tail[tail.len() - 4..] == b"PAR1" {
        let n = &tail[tail.len() - 8..tail.len() - 4];
        meta.footer_size = u32::from_le_bytes(n.try_into().unwrap_or_default());
    }
}

/// How many dedicated columns each scope uses, and the slot of each attribute name.
#[derive(Debug, Clone, Default)]
struct Layout {
    resource: ScopeSlots,
    span: ScopeSlots,
    event: ScopeSlots,
}

#[derive(Debug, Clone, Default)]
struct ScopeSlots {
    /// By attribute name as bytes: a key from the view is looked up without a UTF-8 check.
    strings: HashMap<Box<[u8]>, usize, rustc_hash::FxBuildHasher>,
    ints: HashMap<Box<[u8]>, usize, rustc_hash::FxBuildHasher>,
}

impl Layout {
    fn new(cols: &[DedicatedColumn]) -> Result<Layout, WriteError> {
        let mut l = Layout::default();
        for c in cols {
            let slots = match c.scope() {
                "resource" => &mut l.resource,
                "event" => &mut l.event,
                _ => &mut l.span,
            };
            let (map, max) = if c.is_int() {
                (&mut slots.ints, MAX_DEDICATED_INTS)
            } else {
                (&mut slots.strings, MAX_DEDICATED_STRINGS)
            };
            let n = map.len();
            map.entry(c.name.as_bytes().into()).or_insert(n);
            if map.len() > max {
                return Err(WriteError::TooManyDedicated(format!(
                    "{} {} {} columns",
                    map.len(),
                    c.scope(),
                    if c.is_int() { "int" } else { "string" }
                )));
            }
        }
        Ok(l)
    }
}

// ---------------------------------------------------------------------------------------------
// Schema

const ATTRS: &str = "repeated group Attrs {
  required binary Key (STRING);
  required boolean IsArray;
  repeated binary Value (STRING);
  repeated int64 ValueInt (INTEGER(64,true));
  repeated double ValueDouble;
  repeated boolean ValueBool;
  optional binary ValueUnsupported (STRING);
}";

fn dedicated_text(s: &ScopeSlots) -> String {
    let mut out = String::from("required group DedicatedAttributes {\n");
    for i in 1..=s.strings.len() {
        out += &format!("repeated binary String{i:02} (STRING);\n");
    }
    for i in 1..=s.ints.len() {
        out += &format!("repeated int64 Int{i:02} (INTEGER(64,true));\n");
    }
    out + "}"
}

fn schema_text(l: &Layout) -> String {
    let event_dedicated = if l.event.strings.is_empty() && l.event.ints.is_empty() {
        String::new()
    } else {
        dedicated_text(&l.event)
    };
    format!(
        "message Trace {{
  required binary TraceID;
  required binary TraceIDText (STRING);
  required int64 StartTimeUnixNano (INTEGER(64,false));
  required int64 EndTimeUnixNano (INTEGER(64,false));
  required int64 DurationNano (INTEGER(64,false));
  required binary RootServiceName (STRING);
  required binary RootSpanName (STRING);
  repeated group ServiceStats {{
    required binary ServiceName (STRING);
    required int32 SpanCount (INTEGER(32,false));
    required int32 ErrorCount (INTEGER(32,false));
  }}
  repeated group rs {{
    required group Resource {{
      required binary ServiceName (STRING);
      {ATTRS}
      required int32 DroppedAttributesCount (INTEGER(32,true));
      {res_ded}
    }}
    repeated group ss {{
      required group Scope {{
        required binary Name (STRING);
        required binary Version (STRING);
        {ATTRS}
        required int32 DroppedAttributesCount (INTEGER(32,true));
      }}
      repeated group Spans {{
        required binary SpanID;
        required binary ParentSpanID;
        required int32 ParentID (INTEGER(32,true));
        required int32 NestedSetLeft (INTEGER(32,true));
        required int32 NestedSetRight (INTEGER(32,true));
        required int32 ChildCount (INTEGER(32,true));
        required binary Name (STRING);
        required int64 Kind (INTEGER(64,true));
        required binary TraceState (STRING);
        required int64 StartTimeUnixNano (INTEGER(64,false));
        required int64 DurationNano (INTEGER(64,false));
        required int64 StatusCode (INTEGER(64,true));
        required binary StatusMessage (STRING);
        {ATTRS}
        required int32 DroppedAttributesCount (INTEGER(32,true));
        repeated group Events {{
          required int64 TimeSinceStartNano (INTEGER(64,false));
          required binary Name (STRING);
          {ATTRS}
          required int32 DroppedAttributesCount (INTEGER(32,true));
          {event_dedicated}
        }}
        required int32 DroppedEventsCount (INTEGER(32,true));
        repeated group Links {{
          required binary TraceID;
          required binary SpanID;
          required binary TraceState (STRING);
          {ATTRS}
          required int32 DroppedAttributesCount (INTEGER(32,true));
        }}
        required int32 DroppedLinksCount (INTEGER(32,true));
        {span_ded}
        required int32 StartTimeRounded15 (INTEGER(32,false));
        required int32 StartTimeRounded60 (INTEGER(32,false));
        required int32 StartTimeRounded300 (INTEGER(32,false));
        required int32 StartTimeRounded3600 (INTEGER(32,false));
      }}
      required int32 SpanCount (INTEGER(32,true));
    }}
  }}
}}",
        res_ded = dedicated_text(&l.resource),
        span_ded = dedicated_text(&l.span),
    )
}

/// The dotted paths of the leaf columns of a schema text, in order.
fn leaf_paths(text: &str) -> Vec<String> {
    let mut stack: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("message") {
            continue;
        }
        if line == "}" {
            stack.pop();
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 3 {
            continue;
        }
        let name = words[2].trim_end_matches(';').trim_end_matches('{');
        if words[1] == "group" {
            stack.push(name.to_string());
        } else {
            let mut p = stack.join(".");
            if !p.is_empty() {
                p.push('.');
            }
            p.push_str(name);
            out.push(p);
        }
    }
    out
}

/// A column's compression and encoding, as Tempo's writer chooses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    /// IDs: uncompressed, DELTA_LENGTH_BYTE_ARRAY.
    Raw,
    /// Free text: snappy, DELTA_LENGTH_BYTE_ARRAY.
    Text,
    /// Integers: uncompressed, DELTA_BINARY_PACKED.
    Delta,
    /// Dropped-attribute counts: snappy, DELTA_BINARY_PACKED.
    SnappyDelta,
    /// Root names: uncompressed dictionary.
    Dict,
    /// Names, keys, values: snappy dictionary.
    SnappyDict,
    /// Typed attribute values and counters: snappy, PLAIN.
    Plain,
}

/// Whether a column gets min/max statistics (and so a column index). Every column does, except
/// the byte-array columns below the trace (resource, scope and span level: IDs, names, attribute
/// keys and values, dedicated attributes): nobody prunes on their min/max — span IDs are random,
/// string predicates are decided by dictionaries (Tempo too, which prunes by min/max only for
/// some integer predicates) — while computing them was an eighth of the cost of cutting a block,
/// two byte comparisons per value. `TraceID` keeps them: trace by ID finds its row group and
/// page by them.
fn keeps_statistics(path: &str, descr: &parquet::schema::types::SchemaDescriptor) -> bool {
    let byte_array = physical_type(path, descr) == Some(parquet::basic::Type::BYTE_ARRAY);
    !(byte_array && path.starts_with("rs."))
}

/// The physical type of leaf `path`.
fn physical_type(
    path: &str,
    descr: &parquet::schema::types::SchemaDescriptor,
) -> Option<parquet::basic::Type> {
    descr
        .columns()
        .iter()
        .find(|c| c.path().string() == path)
        .map(|c| c.physical_type())
}

fn codec_of(path: &str) -> Codec {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    let in_attrs = path.contains(".Attrs.");
    match leaf {
        "TraceID" | "SpanID" | "ParentSpanID" => Codec::Raw,
        "TraceIDText" | "TraceState" | "StatusMessage" | "ValueUnsupported" => Codec::Text,
        "RootServiceName" | "RootSpanName" => Codec::Dict,
        "ServiceName" | "Name" | "Version" | "Key" => Codec::SnappyDict,
        "Value" if in_attrs => Codec::SnappyDict,
        "DroppedAttributesCount" => Codec::SnappyDelta,
        "IsArray" | "ValueInt" | "ValueDouble" | "ValueBool" | "DroppedEventsCount"
        | "DroppedLinksCount" => Codec::Plain,
        l if l.starts_with("String") && path.contains("DedicatedAttributes") => Codec::SnappyDict,
        l if l.starts_with("Int") && path.contains("DedicatedAttributes") => Codec::Plain,
        _ => Codec::Delta,
    }
}

// ---------------------------------------------------------------------------------------------
// Shredding

/// One attribute value as the columns store it.
enum Scalar<'a> {
    Str(&'a [u8]),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Stored as its OTLP JSON (kvlists, bytes, mixed arrays), or not at all (`None`).
    Unsupported(Option<String>),
}

/// The columns of an `Attrs` group whose own level is `lvl`.
#[derive(Debug)]
struct AttrCols {
    lvl: i16,
    /// Levels of `Key` and `IsArray`, present for every attribute.
    head: Levels,
    key: Values<Texts>,
    is_array: Values<Vec<bool>>,
    value: Sparse<Texts>,
    value_int: Sparse<Vec<i64>>,
    value_double: Sparse<Vec<f64>>,
    value_bool: Sparse<Vec<bool>>,
    unsupported: Sparse<Texts>,
    /// Scratch: a value column's definition levels being written.
    def: Vec<i16>,
}

impl AttrCols {
    fn new(prefix: &str, lvl: i16) -> AttrCols {
        let p = |n: &str| format!("{prefix}.Attrs.{n}");
        AttrCols {
            lvl,
            head: Levels::new(p("Key#levels")),
            key: Values::new(p("Key")),
            is_array: Values::new(p("IsArray")),
            value: Sparse::new(p("Value")),
            value_int: Sparse::new(p("ValueInt")),
            value_double: Sparse::new(p("ValueDouble")),
            value_bool: Sparse::new(p("ValueBool")),
            unsupported: Sparse::new(p("ValueUnsupported")),
            def: Vec::new(),
        }
    }

    /// One null in every column, at definition level `d` (the deepest present ancestor).
    fn nulls(&mut self, r: i16, d: i16) {
        self.head.push(r, d);
        self.value.null(r, d);
        self.value_int.null(r, d);
        self.value_double.null(r, d);
        self.value_bool.null(r, d);
        self.unsupported.null(r, d);
    }

    /// Writes the attributes, copying their strings into the columns.
    fn write<'a, 'v: 'a>(&mut self, attrs: impl Iterator<Item = &'a KeyValue<'v>>, r: i16) {
        let lvl = self.lvl;
        let mut first = true;
        for kv in attrs {
            let r = if first { r } else { lvl };
            first = false;
            self.head.push(r, lvl);
            self.key.put(kv.key);
            use Value as V;
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(V::StringValue(x)) => Scalar::Str(x),
                Some(V::IntValue(x)) => Scalar::Int(*x),
                Some(V::DoubleValue(x)) => Scalar::Double(*x),
                Some(V::BoolValue(x)) => Scalar::Bool(*x),
                Some(V::ArrayValue(arr)) => {
                    if self.array(arr, r) {
                        continue;
                    }
                    Scalar::Unsupported(kv.value.as_ref().map(unsupported_json))
                }
                Some(V::KvlistValue(_) | V::BytesValue(_)) => {
                    Scalar::Unsupported(kv.value.as_ref().map(unsupported_json))
                }
                // Profile-style string-table references have no table here: nothing to store.
                Some(V::StringValueStrindex(_)) | None => Scalar::Unsupported(None),
            };
            self.scalar(value, r);
        }
        if first {
            self.nulls(r, lvl - 1);
        }
    }

    /// One attribute value that is not an array (or an array stored as its JSON).
    fn scalar(&mut self, value: Scalar<'_>, r: i16) {
        let (lvl, entry) = (self.lvl, self.head.def.len() - 1);
        let (mut s, mut i, mut d, mut b, mut json) = (None, None, None, None, None);
        match value {
            Scalar::Str(x) => s = Some(x),
            Scalar::Int(x) => i = Some(x),
            Scalar::Double(x) => d = Some(x),
            Scalar::Bool(x) => b = Some(x),
            Scalar::Unsupported(x) => json = x,
        }
        self.is_array.put(false);
        self.value.one(s, entry, r, lvl);
        self.value_int.one(i, entry, r, lvl);
        self.value_double.one(d, entry, r, lvl);
        self.value_bool.one(b, entry, r, lvl);
        self.unsupported
            .one(json.as_deref().map(str::as_bytes), entry, r, lvl);
    }

    /// An array value whose elements all have one type (or none): written as an array, true.
    /// False for mixed arrays, which are stored as their JSON.
    fn array(&mut self, arr: &view::ArrayValue<'_>, r: i16) -> bool {
        use Value as V;
        let kind = |v: &V<'_>| match v {
            V::StringValue(_) => 1,
            V::IntValue(_) => 2,
            V::DoubleValue(_) => 3,
            V::BoolValue(_) => 4,
            _ => 0,
        };
        let mut kinds = arr.values.iter().filter_map(|v| v.value.as_ref()).map(kind);
        let first = kinds.next();
        if first == Some(0) || kinds.any(|k| Some(k) != first) {
            return false;
        }
        let lvl = self.lvl;
        self.is_array.put(true);
        let (mut s, mut i, mut d, mut b) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for x in arr.values.iter().filter_map(|v| v.value.as_ref()) {
            match x {
                V::StringValue(x) => s.push(*x),
                V::IntValue(x) => i.push(*x),
                V::DoubleValue(x) => d.push(*x),
                V::BoolValue(x) => b.push(*x),
                _ => {}
            }
        }
        let head = &self.head;
        self.value.list(s, head, r, lvl);
        self.value_int.list(i, head, r, lvl);
        self.value_double.list(d, head, r, lvl);
        self.value_bool.list(b, head, r, lvl);
        self.unsupported.list(None, head, r, lvl);
        true
    }

    fn emit(&mut self, rg: &mut impl Sink) -> Result<(), WriteError> {
        let (head, def) = (&self.head, &mut self.def);
        self.key.emit(rg, head)?;
        self.is_array.emit(rg, head)?;
        self.value.emit(rg, head, def)?;
        self.value_int.emit(rg, head, def)?;
        self.value_double.emit(rg, head, def)?;
        self.value_bool.emit(rg, head, def)?;
        self.unsupported.emit(rg, head, def)?;
        self.head.clear();
        Ok(())
    }
}

/// The OTLP JSON of a value vParquet cannot type (kvlists, bytes, mixed arrays).
fn unsupported_json(v: &AnyValue<'_>) -> String {
    serde_json::to_string(&v.to_otlp()).unwrap_or_default()
}

/// A `DedicatedAttributes` group: repeated leaves at level `lvl`. Every slot has an entry
/// wherever the group does — its value (definition level `lvl`) or a null — so the slots share
/// one [`Levels`] holding each entry's repetition level and the definition level a null has
/// there, and each slot keeps only its values and the entries they are at; a slot's definition
/// levels are made when it is written. (A span writes one level pair here, not one per slot:
/// pushing a null into each of a dozen slots per span was a tenth of a cut.)
#[derive(Debug)]
struct DedCols {
    lvl: i16,
    slots: ScopeSlots,
    levels: Levels,
    strings: Vec<Sparse<Texts>>,
    ints: Vec<Sparse<Vec<i64>>>,
    /// Per attribute of the last [`DedCols::write`], whether it went to a dedicated column.
    taken: Vec<bool>,
    /// Scratch: a slot's definition levels being written.
    def: Vec<i16>,
}

impl DedCols {
    fn new(prefix: &str, lvl: i16, slots: &ScopeSlots) -> DedCols {
        DedCols {
            lvl,
            levels: Levels::new(format!("{prefix}.DedicatedAttributes#levels")),
            strings: (1..=slots.strings.len())
                .map(|i| Sparse::new(format!("{prefix}.DedicatedAttributes.String{i:02}")))
                .collect(),
            ints: (1..=slots.ints.len())
                .map(|i| Sparse::new(format!("{prefix}.DedicatedAttributes.Int{i:02}")))
                .collect(),
            slots: slots.clone(),
            taken: Vec::new(),
            def: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.strings.is_empty() && self.ints.is_empty()
    }

    /// One null in every column, at definition level `d` (the deepest present ancestor).
    fn nulls(&mut self, r: i16, d: i16) {
        if !self.is_empty() {
            self.levels.push(r, d);
        }
    }

    /// Writes the attributes that have a dedicated column (the first of each name and type)
    /// and marks them in `taken`; the caller writes the rest as generic attributes.
    fn write(&mut self, attrs: &[KeyValue<'_>], r: i16) {
        self.taken.clear();
        if self.is_empty() {
            self.taken.resize(attrs.len(), false);
            return;
        }
        let entry = self.levels.def.len();
        self.levels.push(r, self.lvl - 1);
        // Slots given a value in this entry, a bit each (at most 20 strings and 5 integers).
        let (mut strings, mut ints) = (0u32, 0u32);
        for kv in attrs {
            let taken = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => match slot(&self.slots.strings, kv.key) {
                    Some(i) if strings & (1 << i) == 0 => {
                        strings |= 1 << i;
                        self.strings[i].one(Some(s), entry, r, self.lvl - 1);
                        true
                    }
                    _ => false,
                },
                Some(Value::IntValue(n)) => match slot(&self.slots.ints, kv.key) {
                    Some(i) if ints & (1 << i) == 0 => {
                        ints |= 1 << i;
                        self.ints[i].one(Some(*n), entry, r, self.lvl - 1);
                        true
                    }
                    _ => false,
                },
                _ => false,
            };
            self.taken.push(taken);
        }
    }

    fn emit(&mut self, rg: &mut impl Sink) -> Result<(), WriteError> {
        for l in &mut self.strings {
            l.emit(rg, &self.levels, &mut self.def)?;
        }
        for l in &mut self.ints {
            l.emit(rg, &self.levels, &mut self.def)?;
        }
        self.levels.clear();
        Ok(())
    }
}

/// Writes `attrs` of one scope: those with a dedicated column there, the others (that `keep`
/// accepts) as generic attributes.
fn split_attrs(
    ded: &mut DedCols,
    generic: &mut AttrCols,
    attrs: &[KeyValue<'_>],
    r: i16,
    keep: impl Fn(&KeyValue<'_>) -> bool,
) {
    ded.write(attrs, r);
    generic.write(
        attrs
            .iter()
            .zip(&ded.taken)
            .filter(|(kv, taken)| !**taken && keep(kv))
            .map(|(kv, _)| kv),
        r,
    );
}

/// The dedicated slot of an attribute name, if it has one.
fn slot(slots: &HashMap<Box<[u8]>, usize, rustc_hash::FxBuildHasher>, key: &[u8]) -> Option<usize> {
    slots.get(key).copied()
}

/// Every column of the file, in schema order. Levels (definition = repetition for these
/// all-required-or-repeated paths): ServiceStats and rs 1, ss and resource Attrs 2, Spans and
/// scope Attrs 3, span Attrs, Events and Links 4, their Attrs 5.
#[derive(Debug)]
struct Cols {
    trace_id: Leaf<Texts>,
    trace_id_text: Leaf<Texts>,
    start: Leaf<Vec<i64>>,
    end: Leaf<Vec<i64>>,
    duration: Leaf<Vec<i64>>,
    root_service: Leaf<Texts>,
    root_span: Leaf<Texts>,
    stats_service: Leaf<Texts>,
    stats_spans: Leaf<Vec<i32>>,
    stats_errors: Leaf<Vec<i32>>,
    res_service: Leaf<Texts>,
    res_attrs: AttrCols,
    res_dropped: Leaf<Vec<i32>>,
    res_ded: DedCols,
    scope_name: Leaf<Texts>,
    scope_version: Leaf<Texts>,
    scope_attrs: AttrCols,
    scope_dropped: Leaf<Vec<i32>>,
    span: SpanCols,
    ss_span_count: Leaf<Vec<i32>>,
}

/// The `Spans` columns. A span's own scalar fields share one [`Levels`], as do an event's and
/// a link's: a span is one entry of every such column.
#[derive(Debug)]
struct SpanCols {
    levels: Levels,
    span_id: Values<Texts>,
    parent_span_id: Values<Texts>,
    parent_id: Values<Vec<i32>>,
    left: Values<Vec<i32>>,
    right: Values<Vec<i32>>,
    child_count: Values<Vec<i32>>,
    name: Values<Texts>,
    kind: Values<Vec<i64>>,
    trace_state: Values<Texts>,
    start: Values<Vec<i64>>,
    duration: Values<Vec<i64>>,
    status_code: Values<Vec<i64>>,
    status_message: Values<Texts>,
    attrs: AttrCols,
    dropped_attrs: Values<Vec<i32>>,
    ev_levels: Levels,
    ev_time: Values<Vec<i64>>,
    ev_name: Values<Texts>,
    ev_attrs: AttrCols,
    ev_dropped: Values<Vec<i32>>,
    ev_ded: DedCols,
    dropped_events: Values<Vec<i32>>,
    link_levels: Levels,
    link_trace_id: Values<Texts>,
    link_span_id: Values<Texts>,
    link_trace_state: Values<Texts>,
    link_attrs: AttrCols,
    link_dropped: Values<Vec<i32>>,
    dropped_links: Values<Vec<i32>>,
    ded: DedCols,
    rounded: [Values<Vec<i32>>; 4],
}

const ROUNDINGS: [u64; 4] = [15, 60, 300, 3600];

use vivace_traceql::batch::Nest;

impl Cols {
    fn new(l: &Layout) -> Cols {
        const SP: &str = "rs.ss.Spans";
        fn s<B: Buffer>(n: &str) -> Values<B> {
            Values::new(format!("{SP}.{n}"))
        }
        Cols {
            trace_id: Leaf::new("TraceID"),
            trace_id_text: Leaf::new("TraceIDText"),
            start: Leaf::new("StartTimeUnixNano"),
            end: Leaf::new("EndTimeUnixNano"),
            duration: Leaf::new("DurationNano"),
            root_service: Leaf::new("RootServiceName"),
            root_span: Leaf::new("RootSpanName"),
            stats_service: Leaf::new("ServiceStats.ServiceName"),
            stats_spans: Leaf::new("ServiceStats.SpanCount"),
            stats_errors: Leaf::new("ServiceStats.ErrorCount"),
            res_service: Leaf::new("rs.Resource.ServiceName"),
            res_attrs: AttrCols::new("rs.Resource", 2),
            res_dropped: Leaf::new("rs.Resource.DroppedAttributesCount"),
            res_ded: DedCols::new("rs.Resource", 2, &l.resource),
            scope_name: Leaf::new("rs.ss.Scope.Name"),
            scope_version: Leaf::new("rs.ss.Scope.Version"),
            scope_attrs: AttrCols::new("rs.ss.Scope", 3),
            scope_dropped: Leaf::new("rs.ss.Scope.DroppedAttributesCount"),
            span: SpanCols {
                levels: Levels::new(format!("{SP}#levels")),
                span_id: s("SpanID"),
                parent_span_id: s("ParentSpanID"),
                parent_id: s("ParentID"),
                left: s("NestedSetLeft"),
                right: s("NestedSetRight"),
                child_count: s("ChildCount"),
                name: s("Name"),
                kind: s("Kind"),
                trace_state: s("TraceState"),
                start: s("StartTimeUnixNano"),
                duration: s("DurationNano"),
                status_code: s("StatusCode"),
                status_message: s("StatusMessage"),
                attrs: AttrCols::new(SP, 4),
                dropped_attrs: s("DroppedAttributesCount"),
                ev_levels: Levels::new(format!("{SP}.Events#levels")),
                ev_time: s("Events.TimeSinceStartNano"),
                ev_name: s("Events.Name"),
                ev_attrs: AttrCols::new("rs.ss.Spans.Events", 5),
                ev_dropped: s("Events.DroppedAttributesCount"),
                ev_ded: DedCols::new("rs.ss.Spans.Events", 5, &l.event),
                dropped_events: s("DroppedEventsCount"),
                link_levels: Levels::new(format!("{SP}.Links#levels")),
                link_trace_id: s("Links.TraceID"),
                link_span_id: s("Links.SpanID"),
                link_trace_state: s("Links.TraceState"),
                link_attrs: AttrCols::new("rs.ss.Spans.Links", 5),
                link_dropped: s("Links.DroppedAttributesCount"),
                dropped_links: s("DroppedLinksCount"),
                ded: DedCols::new(SP, 4, &l.span),
                rounded: ROUNDINGS.map(|r| s(&format!("StartTimeRounded{r}"))),
            },
            ss_span_count: Leaf::new("rs.ss.SpanCount"),
        }
    }

    /// Shreds one trace (one row). Returns its start and end in unix nanoseconds.
    /// The trace's strings are copied into the columns.
    fn trace(&mut self, id: &TraceId, trace: &view::Trace<'_>) -> (u64, u64) {
        let spans: Vec<(&[u8], &Span<'_>)> = trace
            .resource_spans
            .iter()
            .flat_map(|rs| {
                let service = service_name(rs.resource.as_ref().map_or(&[][..], |r| &r.attributes));
                rs.scope_spans
                    .iter()
                    .flat_map(move |ss| ss.spans.iter().map(move |s| (service, s)))
            })
            .collect();
        let nests = nested_set(spans.iter().map(|(_, s)| *s));
        let start = spans
            .iter()
            .map(|(_, s)| s.start_time_unix_nano)
            .min()
            .unwrap_or(0);
        let end = spans
            .iter()
            .map(|(_, s)| s.end_time_unix_nano)
            .max()
            .unwrap_or(0);
        let root = spans.iter().find(|(_, s)| s.parent_span_id.is_empty());
        const NOT_RECEIVED: &[u8] = ROOT_NOT_RECEIVED.as_bytes();
        let (root_service, root_name) =
            root.map_or((NOT_RECEIVED, NOT_RECEIVED), |(svc, s)| (*svc, s.name));

        self.trace_id.put(&id.0, 0, 0);
        self.trace_id_text.put(id.to_trimmed_hex().as_bytes(), 0, 0);
        self.start.put(start as i64, 0, 0);
        self.end.put(end as i64, 0, 0);
        self.duration.put(end.saturating_sub(start) as i64, 0, 0);
        self.root_service.put(root_service, 0, 0);
        self.root_span.put(root_name, 0, 0);

        let mut stats: Vec<(&[u8], i32, i32)> = Vec::new();
        for (svc, s) in &spans {
            let err = s.status.as_ref().is_some_and(|st| st.code == STATUS_ERROR) as i32;
            match stats.iter_mut().find(|(n, _, _)| n == svc) {
                Some(e) => {
                    e.1 += 1;
                    e.2 += err;
                }
                None => stats.push((svc, 1, err)),
            }
        }
        stats.sort_by(|a, b| a.0.cmp(b.0));
        if stats.is_empty() {
            self.stats_service.null(0, 0);
            self.stats_spans.null(0, 0);
            self.stats_errors.null(0, 0);
        }
        for (i, (svc, n, e)) in stats.iter().enumerate() {
            let r = if i == 0 { 0 } else { 1 };
            self.stats_service.put(svc, r, 1);
            self.stats_spans.put(*n, r, 1);
            self.stats_errors.put(*e, r, 1);
        }

        let mut span_index = 0usize;
        if trace.resource_spans.is_empty() {
            self.resource_nulls();
        }
        for (i, rs) in trace.resource_spans.iter().enumerate() {
            let r = if i == 0 { 0 } else { 1 };
            let dropped = rs
                .resource
                .as_ref()
                .map_or(0, |r| r.dropped_attributes_count);
            let attrs = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes);
            self.res_service.put(service_name(attrs), r, 1);
            split_attrs(&mut self.res_ded, &mut self.res_attrs, attrs, r, |kv| {
                kv.key != b"service.name"
            });
            self.res_dropped.put(dropped as i32, r, 1);
            if rs.scope_spans.is_empty() {
                self.scope_nulls(r, 1);
            }
            for (j, ss) in rs.scope_spans.iter().enumerate() {
                let r = if j == 0 { r } else { 2 };
                let none = view::InstrumentationScope::default();
                let scope = ss.scope.as_ref().unwrap_or(&none);
                self.scope_name.put(scope.name, r, 2);
                self.scope_version.put(scope.version, r, 2);
                self.scope_attrs.write(scope.attributes.iter(), r);
                self.scope_dropped
                    .put(scope.dropped_attributes_count as i32, r, 2);
                if ss.spans.is_empty() {
                    self.span.nulls(r, 2);
                }
                for (k, s) in ss.spans.iter().enumerate() {
                    let r = if k == 0 { r } else { 3 };
                    self.span.span(s, nests[span_index], r);
                    span_index += 1;
                }
                self.ss_span_count.put(ss.spans.len() as i32, r, 2);
            }
        }
        (start, end)
    }

    fn resource_nulls(&mut self) {
        self.res_service.null(0, 0);
        self.res_attrs.nulls(0, 0);
        self.res_dropped.null(0, 0);
        self.res_ded.nulls(0, 0);
        self.scope_nulls(0, 0);
    }

    fn scope_nulls(&mut self, r: i16, d: i16) {
        self.scope_name.null(r, d);
        self.scope_version.null(r, d);
        self.scope_attrs.nulls(r, d);
        self.scope_dropped.null(r, d);
        self.span.nulls(r, d);
        self.ss_span_count.null(r, d);
    }

    fn write(&mut self, rg: &mut impl Sink) -> Result<(), WriteError> {
        self.trace_id.emit(rg)?;
        self.trace_id_text.emit(rg)?;
        self.start.emit(rg)?;
        self.end.emit(rg)?;
        self.duration.emit(rg)?;
        self.root_service.emit(rg)?;
        self.root_span.emit(rg)?;
        self.stats_service.emit(rg)?;
        self.stats_spans.emit(rg)?;
        self.stats_errors.emit(rg)?;
        self.res_service.emit(rg)?;
        self.res_attrs.emit(rg)?;
        self.res_dropped.emit(rg)?;
        self.res_ded.emit(rg)?;
        self.scope_name.emit(rg)?;
        self.scope_version.emit(rg)?;
        self.scope_attrs.emit(rg)?;
        self.scope_dropped.emit(rg)?;
        self.span.emit(rg)?;
        self.ss_span_count.emit(rg)
    }
}

impl SpanCols {
    /// Nulls for an empty `Spans` list (or an empty parent) at definition level `d`.
    fn nulls(&mut self, r: i16, d: i16) {
        self.levels.push(r, d);
        self.ev_levels.push(r, d);
        self.link_levels.push(r, d);
        for a in [&mut self.attrs, &mut self.ev_attrs, &mut self.link_attrs] {
            a.nulls(r, d);
        }
        self.ded.nulls(r, d);
        self.ev_ded.nulls(r, d);
    }

    fn span(&mut self, s: &Span<'_>, nest: Nest, r: i16) {
        const D: i16 = 3;
        let start = s.start_time_unix_nano;
        self.levels.push(r, D);
        self.span_id.put(s.span_id);
        self.parent_span_id.put(s.parent_span_id);
        self.parent_id.put(nest.parent);
        self.left.put(nest.left);
        self.right.put(nest.right);
        self.child_count.put(nest.children);
        self.name.put(s.name);
        self.kind.put(i64::from(s.kind));
        self.trace_state.put(s.trace_state);
        self.start.put(start as i64);
        let duration = s.end_time_unix_nano.saturating_sub(start);
        self.duration.put(duration as i64);
        let (code, message) = s
            .status
            .as_ref()
            .map_or((0, &[][..]), |st| (st.code, st.message));
        self.status_code.put(i64::from(code));
        self.status_message.put(message);
        split_attrs(&mut self.ded, &mut self.attrs, &s.attributes, r, |_| true);
        self.dropped_attrs.put(s.dropped_attributes_count as i32);

        if s.events.is_empty() {
            self.ev_levels.push(r, D);
            self.ev_attrs.nulls(r, D);
            self.ev_ded.nulls(r, D);
        }
        for (i, e) in s.events.iter().enumerate() {
            let r = if i == 0 { r } else { 4 };
            let since = e.time_unix_nano.saturating_sub(start);
            self.ev_levels.push(r, 4);
            self.ev_time.put(since as i64);
            self.ev_name.put(e.name);
            split_attrs(
                &mut self.ev_ded,
                &mut self.ev_attrs,
                &e.attributes,
                r,
                |_| true,
            );
            self.ev_dropped.put(e.dropped_attributes_count as i32);
        }
        self.dropped_events.put(s.dropped_events_count as i32);

        if s.links.is_empty() {
            self.link_levels.push(r, D);
            self.link_attrs.nulls(r, D);
        }
        for (i, l) in s.links.iter().enumerate() {
            let r = if i == 0 { r } else { 4 };
            self.link_levels.push(r, 4);
            self.link_trace_id.put(l.trace_id);
            self.link_span_id.put(l.span_id);
            self.link_trace_state.put(l.trace_state);
            self.link_attrs.write(l.attributes.iter(), r);
            self.link_dropped.put(l.dropped_attributes_count as i32);
        }
        self.dropped_links.put(s.dropped_links_count as i32);

        let secs = s.start_time_unix_nano / 1_000_000_000;
        for (leaf, every) in self.rounded.iter_mut().zip(ROUNDINGS) {
            leaf.put((secs / every) as i32);
        }
    }

    fn emit(&mut self, rg: &mut impl Sink) -> Result<(), WriteError> {
        let (span, ev, link) = (&self.levels, &self.ev_levels, &self.link_levels);
        self.span_id.emit(rg, span)?;
        self.parent_span_id.emit(rg, span)?;
        self.parent_id.emit(rg, span)?;
        self.left.emit(rg, span)?;
        self.right.emit(rg, span)?;
        self.child_count.emit(rg, span)?;
        self.name.emit(rg, span)?;
        self.kind.emit(rg, span)?;
        self.trace_state.emit(rg, span)?;
        self.start.emit(rg, span)?;
        self.duration.emit(rg, span)?;
        self.status_code.emit(rg, span)?;
        self.status_message.emit(rg, span)?;
        self.attrs.emit(rg)?;
        self.dropped_attrs.emit(rg, span)?;
        self.ev_time.emit(rg, ev)?;
        self.ev_name.emit(rg, ev)?;
        self.ev_attrs.emit(rg)?;
        self.ev_dropped.emit(rg, ev)?;
        self.ev_ded.emit(rg)?;
        self.dropped_events.emit(rg, span)?;
        self.link_trace_id.emit(rg, link)?;
        self.link_span_id.emit(rg, link)?;
        self.link_trace_state.emit(rg, link)?;
        self.link_attrs.emit(rg)?;
        self.link_dropped.emit(rg, link)?;
        self.dropped_links.emit(rg, span)?;
        self.ded.emit(rg)?;
        for l in &mut self.rounded {
            l.emit(rg, span)?;
        }
        self.levels.clear();
        self.ev_levels.clear();
        self.link_levels.clear();
        Ok(())
    }
}

fn service_name<'a>(attrs: &[KeyValue<'a>]) -> &'a [u8] {
    attrs
        .iter()
        .find(|kv| kv.key == b"service.name")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(*s),
            _ => None,
        })
        .unwrap_or_default()
}

/// Nested-set positions of the spans, in the order stored (Tempo's numbering, shared with the
/// evaluator: `vivace_traceql::batch::nested_sets`).
fn nested_set<'a, 'v: 'a>(spans: impl Iterator<Item = &'a Span<'v>>) -> Vec<Nest> {
    use vivace_traceql::batch::id8;
    let (ids, parents): (Vec<[u8; 8]>, Vec<[u8; 8]>) = spans
        .map(|s| (id8(s.span_id), id8(s.parent_span_id)))
        .unzip();
    vivace_traceql::batch::nested_sets(&ids, &parents)
}
