//! Chunk compression: zstd with the thread's kept contexts (`vivace_common::zstd_context`). A
//! fresh context per chunk (`zstd::bulk::compress`) allocated and zeroed its tables every time:
//! with the sweep compressing every completed trace, that was a fifth of ingest's CPU.
//!
//! Level 1: on `vivace gen` traces in 256 KiB chunks it compresses ~1.2 GB/s against level 3's
//! ~0.98 GB/s (both with a kept context; 0.86 GB/s for level 3 with a fresh one), for 3% more
//! bytes (ratio 8.35 against 8.59).

use std::cell::RefCell;

use bytes::Bytes;
use vivace_common::zstd_context::{with_compressor, with_decompressor};

const LEVEL: i32 = 1;

thread_local! {
    /// Where a chunk is compressed before it is copied out at its size.
    static OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `raw` compressed, in a buffer of exactly its size.
pub(super) fn compress(raw: &[u8]) -> std::io::Result<Bytes> {
    OUT.with_borrow_mut(|out| {
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
        with_compressor(LEVEL, |c| c.compress_to_buffer(raw, out))?;
        Ok(Bytes::copy_from_slice(out))
    })
}

/// `data` decompressed; `raw_len` is its size before compression.
pub(super) fn decompress(data: &[u8], raw_len: usize) -> std::io::Result<Vec<u8>> {
    with_decompressor(|d| d.decompress(data, raw_len))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_with_kept_contexts() {
        for n in [0usize, 1, 1000, 300_000] {
            let raw: Vec<u8> = (0..n).map(|i| (i % 251) as u8 ^ (i / 7) as u8).collect();
            for _ in 0..2 {
                let packed = super::compress(&raw).unwrap();
                assert_eq!(super::decompress(&packed, raw.len()).unwrap(), raw);
            }
        }
    }
}
