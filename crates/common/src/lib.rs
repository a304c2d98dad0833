//! Shared vocabulary of vivace: trace, span and tenant identifiers, the status every error maps
//! to (and its HTTP and gRPC codes), and the token hash used to shard traces.
//!
//! This crate sits at the bottom of the workspace and depends on nothing of vivace's own.

pub mod background;
mod error;
mod ids;
pub mod memory;
pub mod overrides;
mod tenant;
pub mod zstd_context;

pub use error::{Status, StatusCode, to_tonic};
pub use ids::{SpanId, TraceId, TraceIdParseError};
pub use tenant::{SINGLE_TENANT, TenantId, TenantIdError};

/// 32-bit FNV-1 over `tenant ++ trace_id`, Tempo's `TokenFor`: the token that places a trace on
/// a partition.
pub fn token_for(tenant: &str, trace_id: &[u8]) -> u32 {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    let mut h = OFFSET;
    for b in tenant.as_bytes().iter().chain(trace_id) {
        h = h.wrapping_mul(PRIME);
        h ^= u32::from(*b);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1_matches_reference_vectors() {
        // FNV-1 (not 1a) 32-bit reference values.
        assert_eq!(token_for("", b""), 0x811c_9dc5);
        assert_eq!(token_for("a", b""), 0x050c_5d7e);
        assert_eq!(token_for("foo", b""), 0x408f_5e13);
        assert_eq!(token_for("fo", b"o"), token_for("foo", b""));
    }
}
