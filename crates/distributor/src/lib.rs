//! The distributor role and its receivers.
//!
//! A push goes through [`Distributor::push`] in Tempo's order (§3.2 of the compatibility notes):
//! tenant, rate limit on the encoded size, attribute truncation, trace and span ID validation (a
//! bad ID rejects the whole request), regrouping spans by trace, the live-store's limits, then one
//! durable append to the queue, and only then the live-store and the acknowledgement. OTLP
//! requests are read from their protobuf bytes and split by copying slices (`request.rs`); other
//! protocols are translated to OTLP and encoded first ([`Distributor::push_batches`]).
//!
//! Unlike Tempo, nothing is dropped silently: a refusal is an error to the client (400, 413, 429
//! with retry information) or, for traces over `max_bytes_per_trace`, an OTLP partial success that
//! names the rejected span count; every refusal is counted in `tempo_discarded_spans_total`.
//!
//! Receivers: OTLP gRPC ([`receiver::grpc`]) and OTLP HTTP ([`receiver::http`]).

mod config;
mod distributor;
mod metrics;
mod rate;
pub mod receiver;
mod request;
pub mod translate;
mod validate;

pub use config::{
    Config, JaegerProtocols, JaegerReceiver, OtlpProtocols, UdpEndpoint, ZipkinReceiver,
};
pub use distributor::{Distributor, PushOutcome};
pub use metrics::DistributorMetrics;
