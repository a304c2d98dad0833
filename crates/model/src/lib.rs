//! The trace model shared by the write and read paths: how pieces of one trace, from several
//! pushes, the live-store and blocks, become one trace with each span once.

mod combine;

pub use combine::{combine_traces, span_key};
