//! The embedded write-ahead log: a directory of segment files.
//!
//! # On-disk format (version 1)
//!
//! Segment files are named `<first-sequence>.wal`, the sequence a zero-padded 20-digit decimal,
//! and are written in sequence order. Each segment starts with an 8-byte header:
//!
//! ```text
//! magic  b"VVWAL"  (5 bytes)
//! zero   u8        reserved
//! format u16 LE    segment format version, 1
//! ```
//!
//! followed by records, back to back:
//!
//! ```text
//! len     u32 LE   length of `payload`
//! crc     u32 LE   CRC-32C (Castagnoli) over `version` and `payload`
//! version u8       record payload version, 1 = protobuf `QueueRecord` (see record.rs)
//! payload [len]u8
//! ```
//!
//! # Durability
//!
//! One writer thread owns the open segment. Appenders send their encoded payload and wait; the
//! thread takes every append that is waiting (up to `max_batch_bytes`), writes them with one
//! `write`, calls `fdatasync` once, and only then answers all of them (group commit). A new
//! segment is fsynced together with its directory before it is used. If a write or fsync fails the
//! log refuses every later append, since the state of the file is no longer known.
//!
//! Where the file system allows, the write is direct (`O_DIRECT`, see `wal/segment.rs`): it
//! starts at the segment's last partial 4 KiB block, rewritten unchanged, and ends with zeros up
//! to the next block boundary. The segment being written may therefore end in up to 4095 zero
//! bytes past its last record; closing cuts them off, and replay cuts them off after a crash
//! without counting them as damage.
//!
//! # Replay
//!
//! [`Wal::open`] reads every segment in order and hands each intact record to the caller. A record
//! whose length runs past the end of the file (a torn write) or whose CRC does not match ends the
//! valid part of its segment: the rest of that segment is logged with its size and truncated, and
//! replay continues with the next segment. New records always go to a new segment.
//!
//! # Offsets and consumers
//!
//! A record's offset ([`Offset`]) is its segment's sequence number and its index in the segment.
//! Each registered consumer commits the offset below which it needs nothing more; the commit is
//! kept in `consumers/<name>.offset` (one line: `v1 <offset as u64>`, written to a temporary file,
//! fsynced and renamed), so a restart resumes each consumer where it left off. Closed segments
//! whose every record lies below every registered consumer's commit are deleted; the segment
//! being written is closed first when nothing in it is needed.
//!
//! Readers ([`Wal::reader`]) read segment files up to the durable end the writer publishes after
//! each fsync, so they never see a record before it is acknowledged.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{Error, Result, io};
use crate::queue::{Offset, Queue, QueueReader};

mod reader;
mod segment;

use segment::Segment;

const MAGIC: &[u8; 5] = b"VVWAL";
const SEGMENT_FORMAT: u16 = 1;
const HEADER_LEN: u64 = 8;
const RECORD_HEADER_LEN: usize = 9;
/// The record payload version written by this code.
pub const RECORD_VERSION: u8 = 1;

/// Settings of the embedded log.
#[derive(Debug, Clone)]
pub struct WalConfig {
    pub dir: PathBuf,
    /// A segment is closed and a new one started once it passes this size.
    pub segment_bytes: u64,
    /// Upper bound of bytes written by one group commit.
    pub max_batch_bytes: usize,
    /// Largest single record accepted.
    pub max_record_bytes: usize,
    /// Appends waiting for the writer thread; further appenders wait for room (backpressure).
    pub queue_capacity: usize,
}

impl WalConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        WalConfig {
            dir: dir.into(),
            segment_bytes: 128 << 20,
            max_batch_bytes: 16 << 20,
            max_record_bytes: 64 << 20,
            queue_capacity: 4096,
        }
    }
}

/// Counters and histograms of the log, registered by the application.
#[derive(Debug, Clone)]
pub struct WalMetrics {
    pub fsync_seconds: Histogram,
    pub appended_bytes: Counter,
    pub appended_records: Counter,
    pub group_commits: Counter,
}

impl Default for WalMetrics {
    fn default() -> Self {
        let buckets = [
            0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0,
        ];
        WalMetrics {
            fsync_seconds: Histogram::new(buckets),
            appended_bytes: Counter::default(),
            appended_records: Counter::default(),
            group_commits: Counter::default(),
        }
    }
}

impl WalMetrics {
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        r.register(
            "vivace_wal_fsync_duration_seconds",
            "Time of one group commit's fsync",
            self.fsync_seconds.clone(),
        );
        r.register(
            "vivace_wal_appended_bytes",
            "Bytes written to the write-ahead log",
            self.appended_bytes.clone(),
        );
        r.register(
            "vivace_wal_appended_records",
            "Records written to the write-ahead log",
            self.appended_records.clone(),
        );
        r.register(
            "vivace_wal_group_commits",
            "Group commits (one fsync each)",
            self.group_commits.clone(),
        );
    }
}

/// What replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub segments: usize,
    pub records: u64,
    pub bytes: u64,
    /// Segments whose tail was torn or corrupt and was truncated.
    pub truncated_segments: usize,
    pub truncated_bytes: u64,
}

struct Append {
    payload: Bytes,
    done: oneshot::Sender<Result<Offset>>,
}

/// The end of what is durable, published by the writer after each fsync and rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Durable {
    /// The segment being written.
    seq: u64,
    /// Its bytes that are fsynced.
    len: u64,
    /// The offset the next record will get.
    next: Offset,
}

enum Msg {
    Append(Append),
    /// Close the current segment (if it holds records) and start a new one; with `Some(o)`, only
    /// if the next offset is still `o` (nothing was appended since the caller looked). Answers
    /// whether it rotated.
    Rotate(Option<Offset>, oneshot::Sender<Result<bool>>),
    /// Stop after what is already queued, then answer; later appends fail with [`Error::Closed`].
    Close(oneshot::Sender<()>),
}

/// Handle to the log. Cloning shares the same writer.
#[derive(Debug, Clone)]
pub struct Wal {
    tx: mpsc::Sender<Msg>,
    max_record_bytes: usize,
    dir: PathBuf,
    /// The durable end; its segment and later ones are never removed.
    durable: watch::Receiver<Durable>,
    /// Committed offsets of the consumers registered by this process.
    commits: Arc<Mutex<HashMap<String, Offset>>>,
}

impl Wal {
    /// Opens the log in `cfg.dir` (creating it), replays every intact record through `on_record`
    /// in append order, truncates torn tails, and starts a new segment for appends.
    pub fn open(
        cfg: WalConfig,
        metrics: WalMetrics,
        mut on_record: impl FnMut(u8, &[u8]),
    ) -> Result<(Wal, ReplayReport)> {
        let (wal, report) = Wal::open_for_consumers(cfg, metrics)?;
        let mut r = wal.reader(Offset::ZERO)?;
        loop {
            let batch = r.read(64 << 20)?;
            if batch.is_empty() {
                break;
            }
            for rec in batch {
                on_record(rec.version, &rec.payload);
            }
        }
        Ok((wal, report))
    }

    /// Opens the log in `cfg.dir` (creating it), checks every segment and truncates torn or
    /// corrupt tails, and starts a new segment for appends. Consumers then read what they need
    /// through [`Queue::reader`].
    pub fn open_for_consumers(cfg: WalConfig, metrics: WalMetrics) -> Result<(Wal, ReplayReport)> {
        fs::create_dir_all(&cfg.dir).map_err(io(&cfg.dir))?;
        fs::create_dir_all(cfg.dir.join(CONSUMERS_DIR)).map_err(io(&cfg.dir))?;
        let segments = list_segments(&cfg.dir)?;
        let mut report = ReplayReport::default();
        let mut next_seq = 1;
        for (seq, path) in &segments {
            repair_segment(path, &mut report)?;
            report.segments += 1;
            next_seq = seq + 1;
        }
        let writer = Writer::create(&cfg, next_seq, metrics)?;
        let (durable_tx, durable) = watch::channel(writer.durable());
        let (tx, rx) = mpsc::channel(cfg.queue_capacity);
        let max_batch = cfg.max_batch_bytes;
        std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || writer.run(rx, max_batch, durable_tx))
            .map_err(io(&cfg.dir))?;
        Ok((
            Wal {
                tx,
                max_record_bytes: cfg.max_record_bytes,
                dir: cfg.dir.clone(),
                durable,
                commits: Arc::default(),
            },
            report,
        ))
    }

    /// Appends one record and returns once it is durable on disk, with its offset.
    pub async fn append(&self, payload: Bytes) -> Result<Offset> {
        if payload.len() > self.max_record_bytes {
            return Err(Error::RecordTooLarge {
                size: payload.len(),
                max: self.max_record_bytes,
            });
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Msg::Append(Append { payload, done }))
            .await
            .map_err(|_| Error::Closed)?;
        wait.await.map_err(|_| Error::Closed)?
    }

    /// The sequence number of the segment being written. A record appended after this call lands
    /// in this segment or a later one.
    pub fn current_segment(&self) -> u64 {
        self.durable.borrow().seq
    }

    /// Closes the segment being written, if it holds any record, and starts a new one: lets a
    /// quiet log hand its last records' segment to [`Wal::remove_segments_below`].
    pub async fn rotate(&self) -> Result<()> {
        self.rotate_if(None).await.map(|_| ())
    }

    async fn rotate_if(&self, expected: Option<Offset>) -> Result<bool> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Msg::Rotate(expected, done))
            .await
            .map_err(|_| Error::Closed)?;
        wait.await.map_err(|_| Error::Closed)?
    }

    /// Deletes every closed segment numbered below `seq`; returns how many. The segment being
    /// written is never touched.
    pub fn remove_segments_below(&self, seq: u64) -> Result<usize> {
        let limit = seq.min(self.current_segment());
        let mut removed = 0;
        for (s, path) in list_segments(&self.dir)? {
            if s >= limit {
                break;
            }
            fs::remove_file(&path).map_err(io(&path))?;
            removed += 1;
        }
        if removed > 0 {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io(&self.dir))?;
        }
        Ok(removed)
    }

    /// Writes and fsyncs every append already queued, then stops the writer; appends made later,
    /// through any clone, fail with [`Error::Closed`]. Returns once the writer has stopped.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    fn commit_path(&self, consumer: &str) -> PathBuf {
        self.dir
            .join(CONSUMERS_DIR)
            .join(format!("{consumer}.offset"))
    }

    fn read_commit(&self, consumer: &str) -> Result<Option<Offset>> {
        let path = self.commit_path(consumer);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let parsed = text
            .trim()
            .strip_prefix("v1 ")
            .and_then(|v| v.parse::<u64>().ok());
        match parsed {
            Some(v) => Ok(Some(Offset(v))),
            None => {
                // Reading from the oldest record is always safe: at worst it is read twice.
                tracing::warn!(path = %path.display(), "unreadable consumer offset; starting from the oldest record");
                Ok(None)
            }
        }
    }

    fn write_commit(&self, consumer: &str, offset: Offset) -> Result<()> {
        let path = self.commit_path(consumer);
        let tmp = path.with_extension("offset.tmp");
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(format!("v1 {}\n", offset.0).as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        File::open(path.parent().unwrap_or(&self.dir))
            .and_then(|d| d.sync_all())
            .map_err(io(&path))
    }
}

const CONSUMERS_DIR: &str = "consumers";

/// A consumer name is a file name: letters, digits, `-` and `_`.
fn check_consumer(name: &str) -> Result<()> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(Error::Failed(format!("invalid consumer name {name:?}")))
    }
}

#[async_trait]
impl Queue for Wal {
    async fn append(&self, payload: Bytes) -> Result<Offset> {
        Wal::append(self, payload).await
    }

    fn next_offset(&self) -> Offset {
        self.durable.borrow().next
    }

    fn register(&self, consumer: &str) -> Result<Offset> {
        check_consumer(consumer)?;
        let from = self.read_commit(consumer)?.unwrap_or(Offset::ZERO);
        self.commits.lock().insert(consumer.to_string(), from);
        Ok(from)
    }

    fn reader(&self, from: Offset) -> Result<Box<dyn QueueReader>> {
        Ok(Box::new(reader::Reader::new(
            self.dir.clone(),
            self.durable.clone(),
            from,
        )))
    }

    async fn commit(&self, consumer: &str, offset: Offset) -> Result<usize> {
        check_consumer(consumer)?;
        let changed = {
            let mut c = self.commits.lock();
            let prev = c.insert(consumer.to_string(), offset);
            prev != Some(offset)
        };
        if changed {
            let (w, name) = (self.clone(), consumer.to_string());
            tokio::task::spawn_blocking(move || w.write_commit(&name, offset))
                .await
                .map_err(|e| Error::Failed(e.to_string()))??;
        }
        let Some(low) = self.commits.lock().values().copied().min() else {
            return Ok(0);
        };
        let mut below = low.segment();
        // Nothing in the segment being written is needed: close it so it can go too.
        if low >= self.next_offset() && self.rotate_if(Some(low)).await? {
            below = low.segment() + 1;
        }
        let w = self.clone();
        tokio::task::spawn_blocking(move || w.remove_segments_below(below))
            .await
            .map_err(|e| Error::Failed(e.to_string()))?
    }

    async fn close(&self) {
        Wal::close(self).await
    }
}

fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else {
            continue;
        };
        if let Ok(seq) = stem.parse::<u64>() {
            out.push((seq, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

/// What [`scan_segment`] found in a segment's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentScan {
    /// Whether the segment starts with a header this code can read.
    pub header_ok: bool,
    pub records: u64,
    pub payload_bytes: u64,
    /// Bytes from the start that hold the header and intact records.
    pub valid_len: usize,
    /// Why the rest (if any) is not readable.
    pub damage: Option<&'static str>,
}

/// Reads the records of one segment's bytes, in order, through `on_record(version, payload)`,
/// up to the first torn or corrupt record. Pure: no I/O, so it can be fuzzed.
pub fn scan_segment(data: &[u8], mut on_record: impl FnMut(u8, &[u8])) -> SegmentScan {
    let header_ok = data.len() as u64 >= HEADER_LEN
        && &data[..5] == MAGIC
        && u16::from_le_bytes([data[6], data[7]]) == SEGMENT_FORMAT;
    let mut scan = SegmentScan {
        header_ok,
        records: 0,
        payload_bytes: 0,
        valid_len: 0,
        damage: None,
    };
    if !header_ok {
        scan.damage = Some("no valid segment header");
        return scan;
    }
    let records = scan_records(data, HEADER_LEN as usize, |v, r| on_record(v, &data[r]));
    scan.records = records.records;
    scan.payload_bytes = records.payload_bytes;
    scan.valid_len = records.valid_len;
    scan.damage = records.damage;
    scan
}

/// What [`scan_records`] found.
pub(crate) struct RecordScan {
    pub(crate) records: u64,
    pub(crate) payload_bytes: u64,
    /// Where the intact records end.
    pub(crate) valid_len: usize,
    pub(crate) damage: Option<&'static str>,
}

/// Reads the records in `data` from `pos` on, in order, handing each one's version and the
/// range of its payload in `data` to `on_record`, up to the first torn or corrupt record. Shared
/// by [`scan_segment`] and the readers, which slice the payloads out without copying.
pub(crate) fn scan_records(
    data: &[u8],
    mut pos: usize,
    mut on_record: impl FnMut(u8, std::ops::Range<usize>),
) -> RecordScan {
    let mut scan = RecordScan {
        records: 0,
        payload_bytes: 0,
        valid_len: pos,
        damage: None,
    };
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.len() < RECORD_HEADER_LEN {
            scan.damage = Some("torn record header");
            break;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if rest.len() - 8 < len + 1 {
            scan.damage = Some("torn record");
            break;
        }
        let body = &rest[8..8 + 1 + len];
        if crc32c::crc32c(body) != crc {
            scan.damage = Some("crc mismatch");
            break;
        }
        let start = pos + RECORD_HEADER_LEN;
        on_record(body[0], start..start + len);
        scan.records += 1;
        scan.payload_bytes += len as u64;
        pos += RECORD_HEADER_LEN + len;
    }
    scan.valid_len = pos;
    scan
}

/// Checks a segment at open and cuts off a torn or corrupt tail.
fn repair_segment(path: &Path, report: &mut ReplayReport) -> Result<()> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(io(path))?;
    let scan = scan_segment(&data, |_, _| {});
    report.records += scan.records;
    report.bytes += scan.payload_bytes;
    if !scan.header_ok {
        // A segment created but never written past its header (or garbage): nothing to keep.
        tracing::warn!(path = %path.display(), bytes = data.len(), "wal segment has no valid header, truncating it");
        report.truncated_segments += 1;
        report.truncated_bytes += data.len() as u64;
        return rewrite_header(path);
    }
    if let Some(reason) = scan.damage {
        let lost = data.len() - scan.valid_len;
        if segment::is_padding(scan.valid_len, &data[scan.valid_len..]) {
            // The zeros a direct write adds up to its block's end, left by a crash before the
            // segment was closed: not damage.
            tracing::debug!(path = %path.display(), bytes = lost, "cutting the padding off a wal segment");
        } else {
            tracing::warn!(path = %path.display(), offset = scan.valid_len, bytes = lost, reason, "wal segment ends in a damaged record, truncating");
            report.truncated_segments += 1;
            report.truncated_bytes += lost as u64;
        }
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path))?;
        f.set_len(scan.valid_len as u64).map_err(io(path))?;
        f.sync_all().map_err(io(path))?;
    }
    Ok(())
}

fn rewrite_header(path: &Path) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(io(path))?;
    f.write_all(&header()).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

fn header() -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..5].copy_from_slice(MAGIC);
    h[6..].copy_from_slice(&SEGMENT_FORMAT.to_le_bytes());
    h
}

struct Writer {
    dir: PathBuf,
    segment_bytes: u64,
    seq: u64,
    segment: Segment,
    /// Index of the next record in the current segment.
    next_index: u64,
    failed: Option<String>,
    metrics: WalMetrics,
}

impl Writer {
    fn create(cfg: &WalConfig, seq: u64, metrics: WalMetrics) -> Result<Self> {
        let segment = Segment::create(&cfg.dir, seq)?;
        Ok(Writer {
            dir: cfg.dir.clone(),
            segment_bytes: cfg.segment_bytes,
            seq,
            segment,
            next_index: 0,
            failed: None,
            metrics,
        })
    }

    fn durable(&self) -> Durable {
        Durable {
            seq: self.seq,
            len: self.segment.synced(),
            next: Offset::new(self.seq, self.next_index),
        }
    }

    fn run(
        mut self,
        mut rx: mpsc::Receiver<Msg>,
        max_batch_bytes: usize,
        durable: watch::Sender<Durable>,
    ) {
        let mut batch: Vec<Append> = Vec::new();
        let mut closing = None;
        while closing.is_none() {
            let first = match rx.blocking_recv() {
                Some(Msg::Append(a)) => a,
                Some(Msg::Rotate(expected, done)) => {
                    let rotated = self.rotate_if(expected);
                    durable.send_replace(self.durable());
                    let _ = done.send(rotated);
                    continue;
                }
                Some(Msg::Close(done)) => {
                    closing = Some(done);
                    break;
                }
                None => break,
            };
            let mut size = first.payload.len();
            batch.push(first);
            while size < max_batch_bytes {
                match rx.try_recv() {
                    Ok(Msg::Append(a)) => {
                        size += a.payload.len();
                        batch.push(a);
                    }
                    Ok(Msg::Close(done)) => {
                        closing = Some(done);
                        break;
                    }
                    Ok(Msg::Rotate(_, done)) => {
                        // Rotating between appends of one batch changes nothing a caller sees.
                        let _ = done.send(Ok(false));
                    }
                    Err(_) => break,
                }
            }
            let result = self.commit(&batch);
            durable.send_replace(self.durable());
            for (i, a) in batch.drain(..).enumerate() {
                let _ = a.done.send(
                    result
                        .as_ref()
                        .map(|base| Offset::new(base.segment(), base.index() + i as u64))
                        .map_err(|e| Error::Failed(e.clone())),
                );
            }
        }
        rx.close();
        // Appends that raced with Close are refused rather than left waiting.
        while let Ok(m) = rx.try_recv() {
            match m {
                Msg::Append(a) => {
                    let _ = a.done.send(Err(Error::Closed));
                }
                Msg::Close(done) => {
                    let _ = done.send(());
                }
                Msg::Rotate(_, done) => {
                    let _ = done.send(Err(Error::Closed));
                }
            }
        }
        self.close_segment();
        if let Some(done) = closing {
            let _ = done.send(());
        }
        // Every sender is gone: everything that was acknowledged is already fsynced.
        tracing::debug!(segment = self.seq, "wal writer stopped");
    }

    /// Writes and fsyncs one batch; the offset of its first record.
    fn commit(&mut self, batch: &[Append]) -> std::result::Result<Offset, String> {
        if let Some(f) = &self.failed {
            return Err(f.clone());
        }
        self.metrics.appended_records.inc_by(batch.len() as u64);
        let res = self.write(batch);
        if let Err(e) = &res {
            tracing::error!(error = %e, "wal write failed; refusing further appends");
            self.failed = Some(e.to_string());
        }
        res.map_err(|e| e.to_string())
    }

    fn rotate_if(&mut self, expected: Option<Offset>) -> Result<bool> {
        if let Some(f) = &self.failed {
            return Err(Error::Failed(f.clone()));
        }
        if expected.is_some_and(|o| o != Offset::new(self.seq, self.next_index)) {
            return Ok(false);
        }
        if self.segment.len() > HEADER_LEN {
            self.segment.close()?;
            self.seq += 1;
            self.segment = Segment::create(&self.dir, self.seq)?;
            self.next_index = 0;
            return Ok(true);
        }
        Ok(false)
    }

    /// Writes one batch's records and fsyncs them; the offset of the first.
    fn write(&mut self, batch: &[Append]) -> Result<Offset> {
        let bytes: usize = batch
            .iter()
            .map(|a| RECORD_HEADER_LEN + a.payload.len())
            .sum();
        if self.segment.len() > HEADER_LEN && self.segment.len() + bytes as u64 > self.segment_bytes
        {
            self.rotate_if(None)?;
        }
        let first = Offset::new(self.seq, self.next_index);
        let appended = self.segment.append(bytes, |buf| {
            for a in batch {
                frame(buf, &a.payload);
            }
        })?;
        let start = Instant::now();
        self.segment.sync_data()?;
        self.metrics
            .fsync_seconds
            .observe(start.elapsed().as_secs_f64());
        self.metrics.group_commits.inc();
        self.metrics.appended_bytes.inc_by(appended);
        self.next_index += batch.len() as u64;
        Ok(first)
    }

    fn close_segment(&mut self) {
        if let Err(e) = self.segment.close() {
            tracing::warn!(path = %self.segment.path().display(), error = %e, "closing the wal segment");
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.close_segment();
    }
}

fn frame(buf: &mut Vec<u8>, payload: &[u8]) {
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut crc = crc32c::crc32c(&[RECORD_VERSION]);
    crc = crc32c::crc32c_append(crc, payload);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.push(RECORD_VERSION);
    buf.extend_from_slice(payload);
}

#[cfg(test)]
mod tests;
