//! The segment being written, and how its bytes reach the disk.
//!
//! Where the file system allows it, the segment is written with `O_DIRECT`: the device reads the
//! batch from our buffer, instead of the kernel first copying it into the page cache (at full
//! ingest that copy was ~10% of the server's CPU, and `fdatasync` then wrote the same bytes
//! again). Direct writes must start and end on a block boundary, so every write starts at the
//! beginning of the segment's last, partly filled 4 KiB block — its bytes are kept in the staging
//! buffer and written again, unchanged, in front of the new records — and ends with zeros up to
//! the next boundary. Those zeros lie past the segment's logical end: readers never read past the
//! durable end the writer publishes, a closed segment is cut to its logical end, and after a crash
//! [`super::repair_segment`] recognises the padding and cuts it off. A write that tears inside
//! the rewritten block can only tear the new records: the acknowledged bytes it rewrites are the
//! bytes the block already held.
//!
//! Where `O_DIRECT` is refused (tmpfs, some FUSE and overlay file systems) the segment is written
//! through the page cache, appended as it always was.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{HEADER_LEN, header, segment_path};
use crate::error::{Result, io};

/// The block size direct writes are aligned to (in memory, in the file, in length): the largest
/// logical block size of common devices, so it suits all of them.
pub(super) const BLOCK: usize = 4096;

pub(super) struct Segment {
    path: PathBuf,
    file: File,
    /// [`BLOCK`] when written directly, 1 through the page cache.
    align: usize,
    /// Staging buffer: from `start` (an `align`-aligned address) the segment's last partial block,
    /// then the records being written.
    buf: Vec<u8>,
    start: usize,
    /// The segment's logical length: header and records written.
    len: u64,
    /// How much of it is fsynced.
    synced: u64,
    closed: bool,
}

impl Segment {
    /// Creates segment `seq` in `dir` with its header, durable (file and directory fsynced).
    pub(super) fn create(dir: &Path, seq: u64) -> Result<Segment> {
        let path = segment_path(dir, seq);
        let mut f = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all(&header()).map_err(io(&path))?;
        f.sync_all().map_err(io(&path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path);
        let (file, align) = match direct {
            Ok(d) => (d, BLOCK),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "O_DIRECT refused; the wal writes through the page cache");
                (f, 1)
            }
        };
        let mut segment = Segment {
            path,
            file,
            align,
            buf: Vec::new(),
            start: 0,
            len: HEADER_LEN,
            synced: HEADER_LEN,
            closed: false,
        };
        segment.reserve(0);
        let tail = segment.tail();
        segment.buf.extend_from_slice(&header()[..tail]);
        Ok(segment)
    }

    /// Bytes in the segment: header and records.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Bytes of the segment that are durable: written and fsynced.
    pub(super) fn synced(&self) -> u64 {
        self.synced
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends what `fill` pushes onto the buffer it is given (`bytes` of it, or the buffer
    /// grows and the batch is copied once more), without syncing. Returns the bytes appended.
    pub(super) fn append(&mut self, bytes: usize, fill: impl FnOnce(&mut Vec<u8>)) -> Result<u64> {
        self.reserve(bytes);
        let tail = self.tail();
        fill(&mut self.buf);
        let added = self.buf.len() - self.start - tail;
        if !self.buf[self.start..]
            .as_ptr()
            .addr()
            .is_multiple_of(self.align)
        {
            // `fill` pushed more than it said and the buffer moved: align it again.
            self.realign();
        }
        let end = self.buf.len() - self.start;
        let padded = end.next_multiple_of(self.align);
        self.buf.resize(self.start + padded, 0);
        let at = self.len - tail as u64;
        let written = self.file.write_all_at(&self.buf[self.start..], at);
        match written {
            Ok(()) => {}
            Err(e) if self.align > 1 && e.raw_os_error() == Some(libc::EINVAL) => {
                // The file system took O_DIRECT at open but refuses direct writes: write this
                // segment through the page cache from here on.
                tracing::debug!(path = %self.path.display(), "O_DIRECT write refused; the wal writes through the page cache");
                self.file = OpenOptions::new()
                    .write(true)
                    .open(&self.path)
                    .map_err(io(&self.path))?;
                self.align = 1;
                let new = self.start + tail..self.start + end;
                self.file
                    .write_all_at(&self.buf[new], self.len)
                    .map_err(io(&self.path))?;
            }
            Err(e) => return Err(io(&self.path)(e)),
        }
        self.len += added as u64;
        // Keep the new last partial block for the next write.
        let tail = self.tail();
        let from = self.start + end - tail;
        self.buf.copy_within(from..from + tail, self.start);
        self.buf.truncate(self.start + tail);
        Ok(added as u64)
    }

    pub(super) fn sync_data(&mut self) -> Result<()> {
        self.file.sync_data().map_err(io(&self.path))?;
        self.synced = self.len;
        Ok(())
    }

    /// Cuts the padding past the logical end and syncs: the segment is closed. Once only: the
    /// file may be repaired or removed by others after.
    pub(super) fn close(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        if self.align > 1 {
            self.file.set_len(self.len).map_err(io(&self.path))?;
        }
        self.file.sync_all().map_err(io(&self.path))
    }

    /// Bytes of the last partial block, kept at `start` between writes.
    fn tail(&self) -> usize {
        (self.len % self.align as u64) as usize
    }

    /// Room for `bytes` more after the tail, and the padding, without moving the buffer.
    fn reserve(&mut self, bytes: usize) {
        let need = self.tail() + bytes + self.align;
        if self.buf.capacity() - self.start >= need {
            return;
        }
        let mut grown: Vec<u8> = Vec::with_capacity((need * 2).max(1 << 20) + self.align);
        let start = grown.as_ptr().align_offset(self.align);
        grown.resize(start, 0);
        grown.extend_from_slice(&self.buf[self.start..]);
        self.buf = grown;
        self.start = start;
    }

    fn realign(&mut self) {
        let data = self.buf[self.start..].to_vec();
        self.buf = Vec::new();
        self.start = 0;
        self.reserve(data.len());
        self.buf.extend_from_slice(&data);
    }
}

/// True when `rest`, the bytes of a segment after its last intact record at `valid_len`, is the
/// zero padding of a direct write: all zeros, up to the next block boundary.
pub(super) fn is_padding(valid_len: usize, rest: &[u8]) -> bool {
    !rest.is_empty()
        && (valid_len + rest.len()).is_multiple_of(BLOCK)
        && rest.len() < BLOCK
        && rest.iter().all(|b| *b == 0)
}
