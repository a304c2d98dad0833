//! zstd contexts kept per thread: making one runs CPUID a few times, which costs ~7 µs per
//! instruction in a virtual machine (measured here), and allocates and zeroes its tables. The
//! live store's chunks (level 1), the block writer's pages (level 3) and the page readers all
//! take their context from here: one decompressor per thread, and one compressor per thread and
//! level.

use std::cell::RefCell;

use zstd::bulk::{Compressor, Decompressor};

thread_local! {
    static COMPRESSORS: RefCell<Vec<(i32, Compressor<'static>)>> = const { RefCell::new(Vec::new()) };
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's compressor at `level`, made on first use.
pub fn with_compressor<R>(
    level: i32,
    f: impl FnOnce(&mut Compressor<'static>) -> std::io::Result<R>,
) -> std::io::Result<R> {
    COMPRESSORS.with_borrow_mut(|kept| {
        let at = match kept.iter().position(|(l, _)| *l == level) {
            Some(at) => at,
            None => {
                kept.push((level, Compressor::new(level)?));
                kept.len() - 1
            }
        };
        f(&mut kept[at].1)
    })
}

/// Runs `f` with this thread's decompressor, made on first use.
pub fn with_decompressor<R>(
    f: impl FnOnce(&mut Decompressor<'static>) -> std::io::Result<R>,
) -> std::io::Result<R> {
    DECOMPRESSOR.with_borrow_mut(|slot| {
        let d = match slot {
            Some(d) => d,
            None => slot.insert(Decompressor::new()?),
        };
        f(d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_contexts_round_trip_at_several_levels() {
        let raw: Vec<u8> = (0..100_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 7) as u8)
            .collect();
        for level in [1, 3, 1, 3] {
            let packed = with_compressor(level, |c| c.compress(&raw)).unwrap();
            let back = with_decompressor(|d| d.decompress(&packed, raw.len())).unwrap();
            assert_eq!(back, raw);
        }
        assert_eq!(COMPRESSORS.with_borrow(|kept| kept.len()), 2);
    }
}
