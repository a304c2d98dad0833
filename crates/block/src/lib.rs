//! Tempo's block format (compatibility notes §5): `meta.json`, and readers of `data.parquet` in
//! the vParquet5 and vParquet4 schemas, selected by the block's `format`, that find a trace by ID
//! and turn it back into OTLP.
//!
//! A block's rows are traces sorted by trace ID, so a lookup prunes row groups by the `TraceID`
//! column's statistics and reads only a row group that may hold the trace, stopping as soon as it
//! passes the ID.
//!
//! Bloom shards (`bloom.rs`) are read byte-compatibly with Tempo's and checked before the data.
//!
//! Not here yet: the writer, compaction (see the blocks issue).

mod bloom;
mod error;
mod list;
mod meta;
mod read;

pub use bloom::{Bloom, shard_for, test_file};
pub use error::{Error, Result};
pub use list::{BlockList, BlockRef, poll_local};
pub use meta::{BlockMeta, DedicatedColumn};
pub use read::{find_trace_by_id, trace_ids};
