//! The queue seam (DESIGN.md §3): the distributor appends, consumers read from an offset, and a
//! record is dropped once every consumer has made it durable elsewhere.
//!
//! Consumers of a monolithic vivace: the live-store (durable once the record's traces are in a
//! block) and the metrics generator (durable once the samples computed from it were remote-written
//! or deliberately dropped). The embedded log ([`crate::Wal`]) is the first implementation; the
//! distributed mode will put Kafka behind the same trait.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::Result;

/// The position of a record in the queue. Offsets only grow: a record appended later has a
/// larger one, across restarts too.
///
/// In the embedded log an offset is the segment's sequence number in the high 32 bits and the
/// record's index in its segment in the low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub u64);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    pub fn new(segment: u64, index: u64) -> Offset {
        Offset((segment << 32) | (index & 0xffff_ffff))
    }

    /// The embedded log's segment holding this offset.
    pub fn segment(self) -> u64 {
        self.0 >> 32
    }

    /// The record's index in its segment.
    pub fn index(self) -> u64 {
        self.0 & 0xffff_ffff
    }

    /// The offset right after this one.
    pub fn next(self) -> Offset {
        Offset(self.0 + 1)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.segment(), self.index())
    }
}

/// One record as a consumer reads it.
#[derive(Debug, Clone)]
pub struct Record {
    pub offset: Offset,
    /// The payload's format version (see [`crate::wal::RECORD_VERSION`]).
    pub version: u8,
    pub payload: Bytes,
}

/// The acknowledged stream between the distributor and its consumers.
#[async_trait]
pub trait Queue: Send + Sync + fmt::Debug {
    /// Appends one record; resolves once it is durable, with its offset.
    async fn append(&self, payload: Bytes) -> Result<Offset>;

    /// A lower bound of the offset of any append that starts after this call.
    fn next_offset(&self) -> Offset;

    /// Declares a consumer of this process: records below its committed offset are the only
    /// ones the queue may drop. Returns where it should start reading (its last commit, or the
    /// oldest record held).
    fn register(&self, consumer: &str) -> Result<Offset>;

    /// Reads durable records from `from` on.
    fn reader(&self, from: Offset) -> Result<Box<dyn QueueReader>>;

    /// Records that `consumer` no longer needs anything below `offset` (persisted, so a restart
    /// starts there), and drops what no registered consumer needs. Returns how much was dropped
    /// (segments, in the embedded log).
    async fn commit(&self, consumer: &str, offset: Offset) -> Result<usize>;

    /// Writes what is queued and refuses later appends.
    async fn close(&self);
}

/// A consumer's cursor over the queue.
#[async_trait]
pub trait QueueReader: Send {
    /// The records durable after the cursor, about `max_bytes` of payload at most (at least one
    /// record when any is available); empty when caught up.
    fn read(&mut self, max_bytes: usize) -> Result<Vec<Record>>;

    /// Waits until more may be readable, at most `timeout`; false once the queue is closed.
    async fn wait(&mut self, timeout: Duration) -> bool;

    /// The offset the next record read will have at least.
    fn position(&self) -> Offset;

    /// Records the cursor could not read: dropped by truncation before it got there, or
    /// damaged on disk.
    fn skipped(&self) -> u64;
}
