//! Building Tempo's sharded bloom filters for a new block (§5.3), the inverse of `bloom.rs`.

use vivace_common::TraceId;

use crate::bloom::{base_hashes, location, shard_for};

/// Tempo's `bloom_filter_false_positive` default.
pub(crate) const DEFAULT_FALSE_POSITIVE: f64 = 0.01;
/// Tempo's `bloom_filter_shard_size_bytes` default (100 KiB).
pub(crate) const DEFAULT_SHARD_BYTES: usize = 100 * 1024;
const MAX_SHARDS: u64 = 1000;

/// The bloom shards of one block, built from its trace IDs.
#[derive(Debug, Clone)]
pub struct ShardedBloom {
    k: u64,
    bits: u64,
    shards: Vec<Vec<u64>>,
}

impl ShardedBloom {
    /// Sizes the filter the way Tempo does: the optimal `(m, k)` for `objects` entries at
    /// `false_positive`, split into shards of `shard_bytes` (at least 1, at most 1000), each with
    /// the full `shard_bytes * 8` bits and the same `k`.
    pub fn new(objects: usize, false_positive: f64, shard_bytes: usize) -> ShardedBloom {
        let n = objects.max(1) as f64;
        let ln2 = std::f64::consts::LN_2;
        let m = (-n * false_positive.ln() / (ln2 * ln2)).ceil().max(1.0);
        let k = (ln2 * m / n).ceil().max(1.0) as u64;
        let bits = (shard_bytes.max(1) * 8) as u64;
        let count = (m as u64).div_ceil(bits).clamp(1, MAX_SHARDS);
        ShardedBloom {
            k,
            bits,
            shards: vec![vec![0u64; bits.div_ceil(64) as usize]; count as usize],
        }
    }

    pub fn add(&mut self, id: &TraceId) {
        let shard = shard_for(id, self.shards.len() as u32) as usize;
        let h = base_hashes(&id.0);
        let words = &mut self.shards[shard];
        for i in 0..self.k {
            let bit = location(&h, i) % self.bits;
            words[(bit / 64) as usize] |= 1u64 << (bit % 64);
        }
    }

    pub fn shard_count(&self) -> u32 {
        self.shards.len() as u32
    }

    /// The bytes of each `bloom-<n>` file: `m`, `k`, the bitset length and its words, all u64 BE.
    pub fn files(&self) -> Vec<Vec<u8>> {
        self.shards
            .iter()
            .map(|words| {
                let mut out = Vec::with_capacity(24 + words.len() * 8);
                out.extend_from_slice(&self.bits.to_be_bytes());
                out.extend_from_slice(&self.k.to_be_bytes());
                out.extend_from_slice(&self.bits.to_be_bytes());
                for w in words {
                    out.extend_from_slice(&w.to_be_bytes());
                }
                out
            })
            .collect()
    }
}
