//! The queue between the distributor and its consumers (DESIGN.md §3): the [`Queue`] trait.
//!
//! In monolithic mode the queue is [`wal::Wal`], a segmented log on local disk: an export is
//! acknowledged only once its record is fsynced, concurrent appends share one fsync (group
//! commit), and on start each consumer (the live-store, the metrics generator) reads from its
//! last committed offset. The Kafka implementation of the distributed mode will carry the same
//! [`QueueRecord`] (key = tenant, value = `PushBytesRequest`).
//!
//! Invariant: a record is either wholly replayed or, if its bytes are torn or corrupt, reported
//! and cut off with everything after it in its segment; it is never half-applied.

mod error;
mod queue;
mod record;
pub mod wal;

pub use error::{Error, Result};
pub use queue::{Offset, Queue, QueueReader, Record};
pub use record::QueueRecord;
pub use wal::{ReplayReport, SegmentScan, Wal, WalConfig, WalMetrics, scan_segment};
