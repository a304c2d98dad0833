//! The payload of one queue record.
//!
//! Protobuf message (version 1 of the WAL record payload):
//!
//! ```text
//! message QueueRecord {
//!   string tenant = 1;          // the Kafka record key in distributed mode
//!   repeated bytes traces = 2;  // each an encoded tempopb.Trace holding spans of one trace
//!   repeated bytes ids = 3;     // ids[i] is the 16-byte trace ID of traces[i]
//! }
//! ```
//!
//! Fields 2 and 3 have the numbers of `tempopb.PushBytesRequest`, so the Kafka record value is
//! the same message without field 1.

use bytes::Bytes;

#[derive(Clone, PartialEq, prost::Message)]
pub struct QueueRecord {
    #[prost(string, tag = "1")]
    pub tenant: String,
    #[prost(bytes = "bytes", repeated, tag = "2")]
    pub traces: Vec<Bytes>,
    #[prost(bytes = "bytes", repeated, tag = "3")]
    pub ids: Vec<Bytes>,
}
