//! The distributor's counters, with Tempo's metric names where Tempo has one.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TenantLabel {
    pub(crate) tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DiscardLabels {
    pub(crate) tenant: String,
    pub(crate) reason: &'static str,
}

/// Reasons a span is refused, Tempo's names first.
pub(crate) mod reason {
    pub(crate) const RATE_LIMITED: &str = "rate_limited";
    pub(crate) const TRACE_TOO_LARGE: &str = "trace_too_large";
    pub(crate) const LIVE_TRACES_EXCEEDED: &str = "live_traces_exceeded";
    pub(crate) const INVALID_TRACE_ID: &str = "invalid_trace_id";
    pub(crate) const INVALID_SPAN_ID: &str = "invalid_span_id";
    pub(crate) const UNKNOWN_ERROR: &str = "unknown_error";
    /// vivace: body over the size cap, or a body that does not decode.
    pub(crate) const REQUEST_TOO_LARGE: &str = "request_too_large";
    pub(crate) const MALFORMED_REQUEST: &str = "malformed_request";
}

/// Counters of what the distributor received and refused.
#[derive(Debug, Clone)]
pub struct DistributorMetrics {
    pub(crate) spans_received: Family<TenantLabel, Counter>,
    pub(crate) bytes_received: Family<TenantLabel, Counter>,
    pub(crate) discarded_spans: Family<DiscardLabels, Counter>,
    pub(crate) refused_bytes: Family<DiscardLabels, Counter>,
    pub(crate) refused_requests: Family<DiscardLabels, Counter>,
    pub(crate) push_seconds: Histogram,
}

impl Default for DistributorMetrics {
    fn default() -> Self {
        DistributorMetrics {
            spans_received: Family::default(),
            bytes_received: Family::default(),
            discarded_spans: Family::default(),
            refused_bytes: Family::default(),
            refused_requests: Family::default(),
            push_seconds: Histogram::new([
                0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        }
    }
}

impl DistributorMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "tempo_distributor_spans_received",
            "Spans accepted, by tenant",
            self.spans_received.clone(),
        );
        r.register(
            "tempo_distributor_bytes_received",
            "Encoded bytes accepted, by tenant",
            self.bytes_received.clone(),
        );
        r.register(
            "tempo_discarded_spans",
            "Spans refused, by tenant and reason",
            self.discarded_spans.clone(),
        );
        r.register(
            "vivace_distributor_refused_bytes",
            "Encoded bytes refused, by tenant and reason",
            self.refused_bytes.clone(),
        );
        r.register(
            "vivace_distributor_refused_requests",
            "Requests refused, by tenant and reason",
            self.refused_requests.clone(),
        );
        r.register(
            "vivace_distributor_push_duration_seconds",
            "Time from decoded request to durable acknowledgement",
            self.push_seconds.clone(),
        );
    }

    pub(crate) fn refused(&self, tenant: &str, reason: &'static str, spans: usize, bytes: usize) {
        let l = DiscardLabels {
            tenant: tenant.to_string(),
            reason,
        };
        self.discarded_spans.get_or_create(&l).inc_by(spans as u64);
        self.refused_bytes.get_or_create(&l).inc_by(bytes as u64);
        self.refused_requests.get_or_create(&l).inc();
    }
}
