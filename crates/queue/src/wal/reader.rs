//! A consumer's cursor over the segment files: reads up to the durable end the writer publishes,
//! so it sees exactly the acknowledged records, in order.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::watch;

use super::{Durable, HEADER_LEN, RECORD_HEADER_LEN, list_segments, scan_records, segment_path};
use crate::error::{Result, io};
use crate::queue::{Offset, QueueReader, Record};

pub(crate) struct Reader {
    dir: PathBuf,
    durable: watch::Receiver<Durable>,
    /// The segment being read and the byte position of its next record.
    seq: u64,
    pos: u64,
    /// The index of the record at `pos`.
    index: u64,
    /// Records before this offset are skipped silently (the start position of the cursor).
    from: Offset,
    skipped: u64,
    closed: bool,
}

impl Reader {
    pub(crate) fn new(dir: PathBuf, durable: watch::Receiver<Durable>, from: Offset) -> Reader {
        Reader {
            dir,
            durable,
            seq: from.segment(),
            pos: HEADER_LEN,
            index: 0,
            from,
            skipped: 0,
            closed: false,
        }
    }

    /// Moves to the oldest segment after the current one that still exists; false when the
    /// current one is the segment being written (nothing after it yet).
    fn next_segment(&mut self, durable: &Durable) -> Result<bool> {
        if self.seq >= durable.seq {
            return Ok(false);
        }
        let next = list_segments(&self.dir)?
            .into_iter()
            .map(|(s, _)| s)
            .find(|s| *s > self.seq)
            .unwrap_or(durable.seq);
        self.seq = next;
        self.pos = HEADER_LEN;
        self.index = 0;
        Ok(true)
    }
}

#[async_trait]
impl QueueReader for Reader {
    fn read(&mut self, max_bytes: usize) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        loop {
            let durable = *self.durable.borrow();
            let path = segment_path(&self.dir, self.seq);
            let end = if self.seq == durable.seq {
                durable.len
            } else {
                match std::fs::metadata(&path) {
                    Ok(m) => m.len(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        // Removed by truncation before this cursor got to it (or never existed:
                        // a start offset below everything held).
                        if self.from != Offset::ZERO
                            || self.seq > self.from.segment()
                            || self.pos > HEADER_LEN
                        {
                            tracing::warn!(
                                segment = self.seq,
                                "queue segment removed before this consumer read it"
                            );
                            self.skipped += 1;
                        }
                        if !self.next_segment(&durable)? {
                            return Ok(out);
                        }
                        continue;
                    }
                    Err(e) => return Err(io(&path)(e)),
                }
            };
            if self.pos >= end {
                if self.seq == durable.seq || !self.next_segment(&durable)? {
                    return Ok(out);
                }
                continue;
            }
            if bytes >= max_bytes && !out.is_empty() {
                return Ok(out);
            }
            // Read whole records from `pos`: at most what is left of the budget, at least one.
            let mut f = File::open(&path).map_err(io(&path))?;
            f.seek(SeekFrom::Start(self.pos)).map_err(io(&path))?;
            let want = (end - self.pos).min((max_bytes.saturating_sub(bytes)).max(1 << 16) as u64);
            let mut data = vec![0u8; want as usize];
            f.read_exact(&mut data).map_err(io(&path))?;
            if data.len() >= RECORD_HEADER_LEN {
                let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as u64;
                let need = RECORD_HEADER_LEN as u64 + len;
                if need > want && self.pos + need <= end {
                    data.resize(need as usize, 0);
                    f.seek(SeekFrom::Start(self.pos)).map_err(io(&path))?;
                    f.read_exact(&mut data).map_err(io(&path))?;
                }
            }
            let chunk_is_all = self.pos + data.len() as u64 == end;
            let data = Bytes::from(data);
            let (seq, index0, from) = (self.seq, self.index, self.from);
            let mut n = 0u64;
            let scan = scan_records(&data, 0, |version, payload| {
                let offset = Offset::new(seq, index0 + n);
                n += 1;
                if offset >= from {
                    bytes += payload.len();
                    out.push(Record {
                        offset,
                        version,
                        payload: data.slice(payload),
                    });
                }
            });
            self.index += n;
            self.pos += scan.valid_len as u64;
            if let Some(reason) = scan.damage {
                // A record cut by the chunk boundary is read next time; damage inside what is
                // durable is not: skip the rest of this segment.
                if chunk_is_all || n == 0 {
                    tracing::error!(
                        segment = self.seq,
                        pos = self.pos,
                        reason,
                        "damaged queue record; skipping the rest of the segment"
                    );
                    self.skipped += 1;
                    self.pos = end;
                }
            }
        }
    }

    async fn wait(&mut self, timeout: Duration) -> bool {
        if self.closed {
            return false;
        }
        match tokio::time::timeout(timeout, self.durable.changed()).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => {
                self.closed = true;
                false
            }
            Err(_) => true,
        }
    }

    fn position(&self) -> Offset {
        Offset::new(self.seq, self.index).max(self.from)
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}
