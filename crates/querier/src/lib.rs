//! The query side: Tempo's HTTP API on `server.http_listen_port` (§1, §2 of the compatibility
//! notes), answered from [`TraceSource`]s (the live-store today; blocks next).
//!
//! Routes: `/api/traces/{id}` and `/api/v2/traces/{id}` (JSON in gogo-jsonpb form, or protobuf
//! with `Accept: application/protobuf`), search, tags and tag values, TraceQL metrics
//! (`/api/metrics/query_range`, `/api/metrics/query`), `/api/echo`, `/api/status/buildinfo`,
//! and the same queries over gRPC (`tempopb.StreamingQuerier`).
//! Multi-tenant reads accept `X-Scope-OrgID: a|b` and combine the tenants' results.

mod api;
mod grpc;
pub mod metrics;
mod params;
pub mod search;
mod source;
pub mod tags;

pub use api::{BuildInfo, QueryApi, router};
pub use grpc::{Streaming, streaming_service};
pub use metrics::MetricsConfig;
pub use search::SearchConfig;
pub use source::{
    FetchedBatch, FoundTrace, More, Prefiltered, SearchJob, SearchSource, TagNames, TagValues,
    TraceSource,
};
