//! [`Distributor::push`]: one request from decoded OTLP to durable acknowledgement.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use prost::Message;
use vivace_common::overrides::Overrides;
use vivace_common::{Status, StatusCode, TenantId};
use vivace_livestore::{Admission, Limits, LiveStore, TraceRefusal};
use vivace_proto::otlp::collector::{ExportTracePartialSuccess, ExportTraceServiceRequest};
use vivace_proto::otlp::trace::ResourceSpans;
use vivace_queue::{Queue, QueueRecord};

use crate::config::Config;
use crate::metrics::{DistributorMetrics, TenantLabel, reason};
use crate::rate::{RateLimiter, RateRefusal};
use crate::request::Request;
use crate::validate::BadId;

/// What an accepted push answers: spans refused individually (OTLP partial success).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    pub rejected_spans: i64,
    pub message: String,
}

impl PushOutcome {
    /// The OTLP `partial_success` field: set only when spans were refused.
    pub fn partial_success(self) -> Option<ExportTracePartialSuccess> {
        (self.rejected_spans > 0).then_some(ExportTracePartialSuccess {
            rejected_spans: self.rejected_spans,
            error_message: self.message,
        })
    }
}

/// The distributor of a monolithic vivace: validates, limits, appends to the queue, and hands
/// the spans to the live-store.
#[derive(Debug)]
pub struct Distributor {
    cfg: Config,
    overrides: Overrides,
    live: Arc<LiveStore>,
    queue: Arc<dyn Queue>,
    rate: RateLimiter,
    metrics: DistributorMetrics,
}

impl Distributor {
    pub fn new(
        cfg: Config,
        overrides: Overrides,
        live: Arc<LiveStore>,
        queue: Arc<dyn Queue>,
        metrics: DistributorMetrics,
    ) -> Self {
        Distributor {
            cfg,
            overrides,
            live,
            queue,
            rate: RateLimiter::default(),
            metrics,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Counts a request refused before it could be decoded (too large, malformed). `tenant` is
    /// the header's value, or `unknown` where the protocol layer refused before reading it.
    pub fn refused_undecoded(&self, tenant: &str, too_large: bool, bytes: usize) {
        let r = if too_large {
            reason::REQUEST_TOO_LARGE
        } else {
            reason::MALFORMED_REQUEST
        };
        self.metrics.refused(tenant, r, 0, bytes);
    }

    fn retry_info(&self, tenant: &TenantId, status: Status) -> Status {
        if self
            .overrides
            .tenant(tenant.as_str())
            .ingestion
            .retry_info_enabled
        {
            status.with_retry_after(self.cfg.retry_after_on_resource_exhausted)
        } else {
            status
        }
    }

    /// Pushes an OTLP `ExportTraceServiceRequest` in protobuf, as received. Returns once every
    /// accepted span is durable and readable.
    pub async fn push(&self, tenant: &TenantId, request: Bytes) -> Result<PushOutcome, Status> {
        let size = request.len();
        self.push_sized(tenant, request, size).await
    }

    /// Pushes spans another protocol was translated to; `size` is the request's size as
    /// received, the unit of the rate limit.
    pub async fn push_batches(
        &self,
        tenant: &TenantId,
        batches: Vec<ResourceSpans>,
        size: usize,
    ) -> Result<PushOutcome, Status> {
        let request = ExportTraceServiceRequest {
            resource_spans: batches,
        };
        self.push_sized(tenant, Bytes::from(request.encode_to_vec()), size)
            .await
    }

    async fn push_sized(
        &self,
        tenant: &TenantId,
        body: Bytes,
        encoded_size: usize,
    ) -> Result<PushOutcome, Status> {
        let start = Instant::now();
        let t = tenant.as_str();
        let limits = self.overrides.tenant(t);
        let ing = &limits.ingestion;
        let max_attr = if ing.max_attribute_bytes > 0 {
            ing.max_attribute_bytes
        } else {
            self.cfg.max_attribute_bytes
        };
        let request = match Request::parse(&body, max_attr) {
            Ok(r) => r,
            Err(e) => {
                self.refused_undecoded(t, false, encoded_size);
                return Err(Status::bad_request(format!(
                    "failed to unmarshal request body: {e}"
                )));
            }
        };
        let spans = request.span_count();
        if spans == 0 {
            return Ok(PushOutcome::default());
        }

        if let Err(r) = self.rate.take(
            tenant,
            ing.rate_limit_bytes,
            ing.burst_size_bytes,
            encoded_size as u64,
            start,
        ) {
            self.metrics
                .refused(t, reason::RATE_LIMITED, spans, encoded_size);
            let msg = match r {
                RateRefusal::BatchTooLarge => format!(
                    "RATE_LIMITED: batch size ({encoded_size} bytes) exceeds ingestion limit (local: {} bytes/s, burst size: {} bytes) while adding {encoded_size} bytes for user {t}. consider reducing batch size or increasing rate limit.",
                    ing.rate_limit_bytes, ing.burst_size_bytes
                ),
                RateRefusal::RateExceeded => format!(
                    "RATE_LIMITED: ingestion rate limit (local: {} bytes, burst size: {} bytes) exceeded while adding {encoded_size} bytes for user {t}",
                    ing.rate_limit_bytes, ing.burst_size_bytes
                ),
            };
            return Err(self.retry_info(tenant, Status::new(StatusCode::TooManyRequests, msg)));
        }

        if let Err(bad) = request.validate_ids() {
            let r = match bad {
                BadId::TraceId { .. } => reason::INVALID_TRACE_ID,
                BadId::SpanId { .. } => reason::INVALID_SPAN_ID,
            };
            self.metrics.refused(t, r, spans, encoded_size);
            return Err(Status::bad_request(bad.message()));
        }

        let groups = request.traces();
        drop(request);
        drop(body);
        let sizes: Vec<_> = groups.iter().map(|g| (g.id, g.encoded.len())).collect();
        let live_limits = Limits {
            max_traces_per_user: ing.max_traces_per_user,
            max_bytes_per_trace: limits.global.max_bytes_per_trace,
        };
        let refused = match self.live.admit(tenant, &sizes, live_limits) {
            Admission::Admit { refused } => refused,
            Admission::LiveTracesExceeded { live, max } => {
                self.metrics
                    .refused(t, reason::LIVE_TRACES_EXCEEDED, spans, encoded_size);
                let msg = format!(
                    "LIVE_TRACES_EXCEEDED: max live traces exceeded for tenant {t}: per-user traces limit (local: {max} global: 0 actual local: {live}) exceeded"
                );
                return Err(self.retry_info(tenant, Status::new(StatusCode::TooManyRequests, msg)));
            }
            Admission::LiveBytesExceeded { live_bytes, max } => {
                self.metrics
                    .refused(t, reason::LIVE_TRACES_EXCEEDED, spans, encoded_size);
                let msg = format!(
                    "LIVE_TRACES_EXCEEDED: max live trace bytes exceeded for tenant {t}: live traces hold {live_bytes} bytes, limit is {max} bytes"
                );
                return Err(self.retry_info(tenant, Status::new(StatusCode::TooManyRequests, msg)));
            }
        };

        let mut outcome = PushOutcome::default();
        let mut record = QueueRecord {
            tenant: t.to_string(),
            traces: Vec::with_capacity(groups.len()),
            ids: Vec::with_capacity(groups.len()),
        };
        let mut accepted = Vec::with_capacity(groups.len());
        let mut accepted_spans = 0usize;
        let mut accepted_bytes = 0usize;
        for (i, g) in groups.into_iter().enumerate() {
            let bytes = &g.encoded;
            if let Some(Some(TraceRefusal::TooLarge {
                trace_id,
                adding,
                max,
                ..
            })) = refused.get(i)
            {
                self.metrics
                    .refused(t, reason::TRACE_TOO_LARGE, g.spans(), bytes.len());
                outcome.rejected_spans += g.spans() as i64;
                if outcome.message.is_empty() {
                    outcome.message = format!(
                        "TRACE_TOO_LARGE: max size of trace ({max}) exceeded while adding {adding} bytes to trace {trace_id} for tenant {t}"
                    );
                }
                continue;
            }
            record.ids.push(Bytes::copy_from_slice(&g.id.0));
            record.traces.push(bytes.clone());
            accepted_spans += g.spans();
            accepted_bytes += bytes.len();
            accepted.push(g);
        }
        if accepted.is_empty() {
            return Ok(outcome);
        }

        // Until the traces are in the live-store, the queue must keep where they land. The
        // live-store consumes the record here, before the acknowledgement, so it is readable
        // by ID at once; other consumers read it from the queue.
        let guard = self.live.begin_append(self.queue.next_offset());
        let offset = match self.queue.append(Bytes::from(record.encode_to_vec())).await {
            Ok(o) => o,
            Err(e) => {
                self.metrics
                    .refused(t, reason::UNKNOWN_ERROR, accepted_spans, accepted_bytes);
                tracing::error!(tenant = t, error = %e, "queue append failed");
                return Err(Status::unavailable(format!("queue write failed: {e}")));
            }
        };
        let now = Instant::now();
        for g in accepted {
            self.live
                .push(tenant, g.id, &g.keys, g.encoded, now, offset);
        }
        drop(guard);
        let l = TenantLabel {
            tenant: t.to_string(),
        };
        self.metrics
            .spans_received
            .get_or_create(&l)
            .inc_by(accepted_spans as u64);
        self.metrics
            .bytes_received
            .get_or_create(&l)
            .inc_by(accepted_bytes as u64);
        self.metrics
            .push_seconds
            .observe(start.elapsed().as_secs_f64());
        Ok(outcome)
    }
}
