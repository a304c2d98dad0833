//! The trace model shared by the write and read paths: how pieces of one trace, from several
//! pushes, the live-store and blocks, become one trace with each span once; and how traces
//! become TraceQL's columnar span batches ([`batch_of`]).

mod batch;
mod combine;

pub use batch::{append_trace, batch_of};

pub use combine::{combine_traces, span_key, span_key_of};

/// How many spans a trace holds.
pub fn span_count(trace: &vivace_proto::tempopb::Trace) -> usize {
    trace
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}
