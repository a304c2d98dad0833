//! Tempo's `tempopb` messages used by vivace, with Tempo's field numbers.
//!
//! `Trace` is wire-identical to OTLP `TracesData` (`resourceSpans` = 1).

use crate::otlp::trace::ResourceSpans;

// Search, tags and tag values messages and the `StreamingQuerier` service, generated from
// `proto/tempopb/tempo.proto` by build.rs.
include!(concat!(env!("OUT_DIR"), "/tempopb.rs"));

/// `tempopb.Trace`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Trace {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `tempopb.PartialStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PartialStatus {
    Complete = 0,
    Partial = 1,
}

impl PartialStatus {
    pub fn as_str_name(&self) -> &'static str {
        match self {
            PartialStatus::Complete => "COMPLETE",
            PartialStatus::Partial => "PARTIAL",
        }
    }
}

/// `tempopb.TraceByIDMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdMetrics {
    #[prost(uint64, tag = "1")]
    pub inspected_bytes: u64,
    #[prost(uint64, tag = "2")]
    pub backend_reads: u64,
    #[prost(uint64, tag = "3")]
    pub backend_bytes: u64,
    #[prost(map = "string, int64", tag = "4")]
    pub additional_metrics: std::collections::HashMap<String, i64>,
}

/// `tempopb.TraceByIDResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    pub trace: Option<Trace>,
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<TraceByIdMetrics>,
    #[prost(enumeration = "PartialStatus", tag = "3")]
    pub status: i32,
    #[prost(string, tag = "4")]
    pub message: String,
}

/// `tempopb.PushBytesRequest`: the Kafka record value in Tempo 3, and vivace's queue payload.
/// `traces[i]` is an encoded [`Trace`] holding spans of the trace whose ID is `ids[i]`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushBytesRequest {
    #[prost(bytes = "bytes", repeated, tag = "2")]
    pub traces: Vec<prost::bytes::Bytes>,
    #[prost(bytes = "bytes", repeated, tag = "3")]
    pub ids: Vec<prost::bytes::Bytes>,
    #[prost(bool, tag = "5")]
    pub skip_metrics_generation: bool,
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}
