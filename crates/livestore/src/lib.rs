//! The live-store role: holds recent traces in memory so they are readable by ID the moment
//! their export is acknowledged.
//!
//! Spans of a trace may arrive in any order and in any number of pushes; the store keeps them
//! together, drops a span it already holds (same span ID and kind, Tempo's rule for combining),
//! and answers [`LiveStore::find_trace`] with the combined trace.
//!
//! A trace is *live* while it keeps receiving spans. Once idle for `max_trace_idle` (or alive for
//! `max_trace_live`) it is *completed*: its parts are merged into one encoded trace, and the
//! traces completed in one sweep are zstd-compressed together in chunks of about 256 KiB (they
//! share resources and attribute keys, so this is about twice as small as compressing each
//! alone). Chunks are kept for `complete_block_timeout`, or until `max_complete_bytes` forces the
//! oldest out. Limits (`max_traces_per_user` live traces, `max_bytes_per_trace`) are checked by
//! [`LiveStore::admit`] before a push is written to the queue, so a refusal reaches the client;
//! [`LiveStore::push`] itself never refuses, because what reaches it is already durable.
//!
//! The live-store is a consumer of the queue ([`consume`]): it replays from its committed offset
//! and commits the offset below which everything is in blocks.

mod config;
pub mod consume;
pub mod flush;
mod store;

pub use config::Config;
pub use store::{
    Admission, AppendGuard, ChunkError, Limits, LiveBatch, LiveStore, LiveStoreMetrics,
    PendingBlock, SearchBatch, Spilled, TraceRefusal,
};
