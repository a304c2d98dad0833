//! Tempo's sharded bloom filters (§5.3), byte-compatible with `bits-and-blooms/bloom/v3`.
//!
//! File `bloom-<n>`: `m` (u64 BE, bits), `k` (u64 BE, hash count), then the bitset: its length in
//! bits (u64 BE) and `ceil(m/64)` words (u64 BE); bit `b` is bit `b % 64` of word `b / 64`.
//! A trace ID goes to shard `fnv1_32(id) % shards`. Within a shard the `k` positions come from
//! four 64-bit base hashes, murmur3 x64-128 of the ID and of the ID followed by a 0x01 byte:
//! `position(i) = (h[i % 2] + i * h[2 + ((i + i % 2) % 4) / 2]) % m`.

use std::path::Path;

use vivace_common::TraceId;

use crate::error::{Error, Result};
use crate::objects::Objects;

/// One bloom shard, read from its file.
#[derive(Debug, Clone)]
pub struct Bloom {
    m: u64,
    k: u64,
    words: Vec<u64>,
}

impl Bloom {
    pub fn parse(bytes: &[u8]) -> Option<Bloom> {
        let word = |i: usize| {
            bytes
                .get(i * 8..i * 8 + 8)
                .map(|b| u64::from_be_bytes(b.try_into().unwrap_or_default()))
        };
        let (m, k, bits) = (word(0)?, word(1)?, word(2)?);
        let n = bits.div_ceil(64) as usize;
        if m == 0 || bits < m || bytes.len() != 24 + n * 8 {
            return None;
        }
        let words = (0..n).map(|i| word(3 + i)).collect::<Option<Vec<u64>>>()?;
        Some(Bloom { m, k, words })
    }

    pub fn read(path: &Path) -> Result<Bloom> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Bloom::parse(&bytes).ok_or_else(|| Error::Schema {
            path: path.to_path_buf(),
            what: "not a bloom filter".into(),
        })
    }

    /// Whether `data` may have been added (false means surely not).
    pub fn test(&self, data: &[u8]) -> bool {
        let h = base_hashes(data);
        (0..self.k).all(|i| {
            let bit = location(&h, i) % self.m;
            self.words
                .get((bit / 64) as usize)
                .is_some_and(|w| w & (1u64 << (bit % 64)) != 0)
        })
    }
}

/// Tests `data` against the bloom file at `path` reading only its header and the `k` words the
/// test needs (positioned reads), not the whole shard: a lookup over many blocks touches a few
/// dozen bytes of each bloom.
pub fn test_file(path: &Path, data: &[u8]) -> Result<bool> {
    use std::os::unix::fs::FileExt;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut header = [0u8; 24];
    file.read_exact_at(&mut header, 0).map_err(io)?;
    let word = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or_default());
    let (m, k, bits) = (
        word(&header[..8]),
        word(&header[8..16]),
        word(&header[16..]),
    );
    if m == 0 || bits < m || k > 64 {
        return Err(Error::Schema {
            path: path.to_path_buf(),
            what: "not a bloom filter".into(),
        });
    }
    let h = base_hashes(data);
    for i in 0..k {
        let bit = location(&h, i) % m;
        let mut w = [0u8; 8];
        file.read_exact_at(&mut w, 24 + (bit / 64) * 8)
            .map_err(io)?;
        if u64::from_be_bytes(w) & (1u64 << (bit % 64)) == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Tests `id` against the block's bloom shard in the backend: the shard's header (`m`, `k`) is
/// read once per block and kept; each test then reads only the `k` words it needs, which object
/// stores coalesce into one ranged request.
pub(crate) async fn test_backend(
    backend: &dyn Objects,
    block: &crate::block_ref::BlockRef,
    id: &TraceId,
) -> Result<bool> {
    let shard = shard_for(id, block.meta.bloom_shard_count());
    let key = block.key(&format!("bloom-{shard}"));
    if let Some(bloom) = block.cached_bloom(backend, shard, &key).await? {
        return Ok(bloom.test(&id.0));
    }
    let (m, k) = block.bloom_header(backend, shard, &key).await?;
    let h = base_hashes(&id.0);
    let ranges: Vec<std::ops::Range<u64>> = (0..k)
        .map(|i| {
            let word = (location(&h, i) % m) / 64;
            24 + word * 8..32 + word * 8
        })
        .collect();
    let words = backend.get_ranges(&key, &ranges).await?;
    Ok((0..k).zip(words).all(|(i, w)| {
        let bit = location(&h, i) % m;
        w.len() == 8
            && u64::from_be_bytes(w[..8].try_into().unwrap_or_default()) & (1u64 << (bit % 64)) != 0
    }))
}

/// `(m, k)` from the 24-byte header of a bloom file.
pub(crate) fn parse_header(header: &[u8], key: &str) -> Result<(u64, u64)> {
    let word = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or_default());
    if header.len() < 24 {
        return Err(Error::Schema {
            path: key.into(),
            what: "bloom header is short".into(),
        });
    }
    let (m, k, bits) = (
        word(&header[..8]),
        word(&header[8..16]),
        word(&header[16..24]),
    );
    if m == 0 || bits < m || k > 64 {
        return Err(Error::Schema {
            path: key.into(),
            what: "not a bloom filter".into(),
        });
    }
    Ok((m, k))
}

/// The shard of a trace ID among `shards`.
pub fn shard_for(id: &TraceId, shards: u32) -> u32 {
    vivace_common::token_for("", &id.0) % shards.max(1)
}

pub(crate) fn location(h: &[u64; 4], i: u64) -> u64 {
    h[(i % 2) as usize].wrapping_add(i.wrapping_mul(h[2 + (((i + (i % 2)) % 4) / 2) as usize]))
}

pub(crate) fn base_hashes(data: &[u8]) -> [u64; 4] {
    let (h1, h2) = murmur3_x64_128(data, &[]);
    let (h3, h4) = murmur3_x64_128(data, &[1]);
    [h1, h2, h3, h4]
}

/// murmur3 x64-128 (seed 0) of `a ++ b`.
fn murmur3_x64_128(a: &[u8], b: &[u8]) -> (u64, u64) {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let data: Vec<u8> = a.iter().chain(b).copied().collect();
    let (mut h1, mut h2) = (0u64, 0u64);
    let blocks = data.len() / 16;
    for i in 0..blocks {
        let k = |off: usize| {
            u64::from_le_bytes(
                data[i * 16 + off..i * 16 + off + 8]
                    .try_into()
                    .unwrap_or_default(),
            )
        };
        let (mut k1, mut k2) = (k(0), k(8));
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    let tail = &data[blocks * 16..];
    let (mut k1, mut k2) = (0u64, 0u64);
    for (i, b) in tail.iter().enumerate() {
        if i < 8 {
            k1 ^= u64::from(*b) << (8 * i);
        } else {
            k2 ^= u64::from(*b) << (8 * (i - 8));
        }
    }
    if tail.len() > 8 {
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
    }
    if !tail.is_empty() {
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
    }
    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix(h1);
    h2 = fmix(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_reference_vectors() {
        // Reference values of MurmurHash3_x64_128 with seed 0.
        assert_eq!(murmur3_x64_128(b"", &[]), (0, 0));
        assert_eq!(
            murmur3_x64_128(b"hello", &[]),
            (0xcbd8_a7b3_41bd_9b02, 0x5b1e_906a_48ae_1d19)
        );
        assert_eq!(
            murmur3_x64_128(b"hel", b"lo"),
            murmur3_x64_128(b"hello", &[])
        );
    }
}
