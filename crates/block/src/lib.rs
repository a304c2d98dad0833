//! Tempo's block format (compatibility notes §5), the format alone: where blocks live and how
//! the bucket is listed are `vivace-store`'s; readers reach objects through [`Objects`].
//! `meta.json`, and readers of `data.parquet` in
//! the vParquet5 and vParquet4 schemas, selected by the block's `format`, that find a trace by ID
//! and turn it back into OTLP.
//!
//! A block's rows are traces sorted by trace ID, so a lookup prunes row groups by the `TraceID`
//! column's statistics and reads only a row group that may hold the trace, stopping as soon as it
//! passes the ID.
//!
//! Bloom shards (`bloom.rs`) are read byte-compatibly with Tempo's and checked before the data.
//!
//! The vParquet5 writer (`write.rs`) shreds traces straight into Tempo's columns and builds the
//! bloom shards (`bloom_write.rs`) and `meta.json`.

mod assemble;
mod block_ref;
mod bloom;
mod bloom_write;
mod byte_chunk;
mod chunk;
mod columnar;
mod copy;
mod dict_ids;
mod error;
mod fixed_chunk;
mod meta;
mod needle;
mod objects;
mod pages;
mod prune;
mod read;
mod scan;
mod spans;
mod tag_names;
mod write;

pub use block_ref::BlockRef;
pub use bloom::{Bloom, shard_for, test_file};
pub use bloom_write::ShardedBloom;
pub use columnar::read_columnar;
pub use copy::{CompactOutput, CopyInput, compact_rows, trim as trim_trace};
pub use error::{Error, Result};
pub use meta::{BlockMeta, DedicatedColumn};
pub use meta::{rfc3339, rfc3339_seconds};
pub use needle::read_needle_traces;
pub use objects::{BackendError, Counted, Objects};
pub use prune::{Needle, PrunedRead, RowGroups, needles, read_pruned, required_trace_id};
pub use read::{
    TraceRows, find_trace_by_id, find_trace_by_id_local, find_trace_by_pages, prime_lookups,
    read_all_traces, trace_ids, warm,
};
pub use scan::read_batch;
pub use spans::{SpanRead, read_span_columns, row_group_shards};
pub use tag_names::{block_column_values, block_tag_names, values_column};
pub use write::{
    BlockWriter, Codecs, FORMAT, FinishedBlock, ROOT_NOT_RECEIVED, WriteError, WriterConfig,
    set_file_facts,
};

/// The repository's `testdata/`, found from the test process's `CARGO_MANIFEST_DIR` (set by
/// cargo and nextest when they run it) before the one compiled in: a target dir shared by two
/// clones can hold a test binary built in the other clone.
#[cfg(test)]
pub(crate) fn testdata_root() -> std::path::PathBuf {
    std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("../../testdata")
}
