//! Wire types vivace speaks.
//!
//! - [`otlp`]: the OpenTelemetry protocol types and the OTLP trace gRPC service, re-exported from
//!   `opentelemetry-proto` (with its OTLP/JSON serde support).
//! - [`tempopb`]: the messages of Tempo's `tempopb` package that clients decode, written from the
//!   public wire contract (field numbers in `tempopb.rs`).
//! - [`jsonpb`]: Tempo's JSON rendering of those messages (gogo `jsonpb` defaults: lowerCamelCase
//!   names, int64 as strings, bytes as base64, enums by name, zero values omitted).
//! - [`view`]: OTLP trace data decoded as slices of its buffer, for shredding into columns.
//! - [`raw`]: the OTLP trace gRPC service taking its request as bytes, for the distributor.

/// Jaeger's collector gRPC API (`jaeger.api_v2`).
pub mod jaeger {
    include!(concat!(env!("OUT_DIR"), "/jaeger.api_v2.rs"));
}
/// The OpenCensus agent's trace export service (`opencensus.proto.agent.trace.v1`).
pub mod opencensus {
    include!(concat!(
        env!("OUT_DIR"),
        "/opencensus.proto.agent.trace.v1.rs"
    ));
}
pub mod jsonpb;
pub mod raw;
pub mod tempopb;
pub mod view;

/// OTLP types, re-exported so every crate uses the same version.
pub mod otlp {
    pub use opentelemetry_proto::tonic::collector::trace::v1 as collector;
    pub use opentelemetry_proto::tonic::common::v1 as common;
    pub use opentelemetry_proto::tonic::resource::v1 as resource;
    pub use opentelemetry_proto::tonic::trace::v1 as trace;
}
