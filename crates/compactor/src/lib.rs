//! Compaction and retention of blocks in the backend (Tempo's backend-scheduler and
//! backend-worker; in-process in `-target=all`).
//!
//! - [`select`] picks compaction jobs with Tempo's time-window selector: blocks grouped by
//!   `endTime / compaction_window`; in the last 24 h also by compaction level; smallest blocks
//!   first; 2–4 inputs bounded by `max_compaction_objects` and `max_block_bytes`. Only vParquet5
//!   blocks with the same dedicated columns are combined.
//! - [`compact`] merges the inputs' rows by trace ID, combines pieces of one trace and drops
//!   duplicate spans (span ID and kind), trims traces over `max_bytes_per_trace`, writes the new
//!   block (level = max input level + 1; `meta.json` last), and only then marks each input
//!   compacted (`meta.compacted.json` written, `meta.json` removed). A crash in between leaves
//!   both the output and (some) inputs listed: reads deduplicate spans across blocks, and the
//!   next cycle compacts them again.
//! - [`retention`] marks blocks whose `endTime` is older than `block_retention` compacted, and
//!   deletes compacted blocks older than `compacted_block_retention`.

mod config;
mod job;
pub mod run;

pub use config::CompactionConfig;
pub use job::{CompactError, CompactionResult, RetentionResult, compact, retention, select};
pub use run::compaction_loop;
