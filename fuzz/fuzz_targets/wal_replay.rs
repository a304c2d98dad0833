//! Fuzzes write-ahead-log replay over arbitrary segment bytes: no input may panic, a record is
//! handed out only if its CRC matches, and the valid prefix never extends past the data.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run wal_replay -- -max_total_time=60` (see Cargo.toml).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut seen = 0u64;
    let scan = vivace_queue::scan_segment(data, |_, payload| {
        assert!(payload.len() < data.len());
        seen += 1;
    });
    assert_eq!(scan.records, seen);
    assert!(scan.valid_len <= data.len());
    assert!(scan.damage.is_some() || scan.valid_len == data.len());
});
