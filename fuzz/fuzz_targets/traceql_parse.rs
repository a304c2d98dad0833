//! Fuzzes the TraceQL front end: no input may panic or overflow the stack, and every query that
//! parses prints to text that parses back to the same tree.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run traceql_parse -- -max_total_time=60` (see Cargo.toml).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(q) = vivace_traceql::parse_unvalidated(text) {
        let printed = q.to_string();
        let again = vivace_traceql::parse_unvalidated(&printed)
            .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?} fails: {e}"));
        assert!(again == q, "{text:?} printed as {printed:?} parses differently");
        let _ = vivace_traceql::parse(text);
    }
});
