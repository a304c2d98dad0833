//! Integration tests of the TraceQL front end: the catalogue (every query Tempo accepts is
//! accepted, every query it rejects is rejected in the same phase, pointing at the mistake),
//! round trips through the printer, and robustness on arbitrary and deeply nested input.

mod catalogue;
mod robustness;
mod roundtrip;
mod snapshots;
mod visit;
