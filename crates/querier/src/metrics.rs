//! TraceQL metrics (compatibility notes §1.9): `/api/metrics/query_range`,
//! `/api/metrics/query` and their gRPC streams, over the same jobs as search.
//!
//! Each job's batch is counted into a partial on a blocking thread and merged exactly into the
//! running total, live data and blocks alike; nothing of the newest data is cut off
//! (`query_end_cutoff` 0). Limits as Tempo: the range (`max_duration`, 24h), the number of
//! intervals (10,000), exemplars (`max_exemplars`, 100), and series (`max_response_series`):
//! a larger answer is cut, flagged `PARTIAL` with a message saying so.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use vivace_common::{Status, TenantId};
use vivace_proto::otlp::common::{AnyValue, KeyValue, any_value};
use vivace_proto::tempopb::{
    Exemplar, InstantSeries, PartialStatus, QueryInstantResponse, QueryRangeResponse, Sample,
    SearchMetrics, TimeSeries,
};
use vivace_traceql::ast::Body;
use vivace_traceql::metrics::{LabelValue, Labels, MetricsPlan, Partial, Range, Series};

use crate::params;
use crate::search::{SearchConfig, collect_jobs, run_jobs, with_progress};
use crate::source::SearchSource;

/// Metrics settings (`query_frontend.metrics`).
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Longest range (`max_duration`, 24h; 0 = no limit).
    pub max_duration: Duration,
    /// Most intervals (`max_intervals`).
    pub max_intervals: u64,
    /// Most exemplars in an answer (`max_exemplars`).
    pub max_exemplars: u32,
    /// Most series in an answer (`max_response_series`; 0 = no limit).
    pub max_response_series: u32,
    /// How much of the newest data is left out (`query_end_cutoff`; Tempo 30s, vivace 0).
    pub query_end_cutoff: Duration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            max_duration: Duration::from_secs(24 * 3600),
            max_intervals: 10_000,
            max_exemplars: 100,
            max_response_series: 1000,
            query_end_cutoff: Duration::ZERO,
        }
    }
}

/// A parsed metrics request.
#[derive(Debug, Clone)]
pub struct MetricsRequest {
    pub query: String,
    pub start_ns: u64,
    pub end_ns: u64,
    /// `None`: the default step for the range (ignored by instant queries).
    pub step_ns_opt: Option<u64>,
    pub instant: bool,
    pub exemplars: u32,
    pub max_series: u32,
    /// Stop reading jobs once the answer holds this many series (0: read them all). A bounded
    /// collection (tag values) uses it; a metrics request reads everything.
    pub series_budget: usize,
}

impl MetricsRequest {
    /// From `/api/metrics/query_range` (`instant` false) or `/api/metrics/query` parameters.
    pub fn from_params(
        q: &HashMap<String, String>,
        cfg: &MetricsConfig,
        search: &SearchConfig,
        instant: bool,
    ) -> Result<MetricsRequest, Status> {
        let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let query = get("q")
            .or_else(|| get("query"))
            .ok_or_else(|| {
                Status::bad_request("invalid query: a TraceQL metrics query (q) is required")
            })?
            .to_string();
        if query.len() > search.max_query_bytes {
            return Err(Status::bad_request(format!(
                "TraceQL query exceeds max size: {} bytes > {} bytes",
                query.len(),
                search.max_query_bytes
            )));
        }
        let (start, end) = params::time_range_ns(
            q,
            Duration::from_secs(3600),
            cfg.query_end_cutoff,
            Some(cfg.max_duration),
        )
        .map_err(|e| {
            Status::bad_request(e.message.replace(
                "exceeds",
                "exceeds the maximum metrics query duration (query_frontend.metrics.max_duration):",
            ))
        })?;
        let step_ns_opt = match get("step") {
            None => None,
            Some(s) => {
                let d = match s.parse::<f64>() {
                    Ok(secs) if secs.is_finite() => Duration::from_secs_f64(secs.max(0.0)),
                    _ => params::parse_duration("step", s)?,
                };
                if d.is_zero() {
                    return Err(Status::bad_request(
                        "invalid step: step must be greater than 0",
                    ));
                }
                Some(d.as_nanos() as u64)
            }
        };
        let exemplars = params::uint(q, "exemplars", u64::from(cfg.max_exemplars))?
            .min(u64::from(cfg.max_exemplars)) as u32;
        let max_series = match params::uint(q, "maxSeries", 0)? as u32 {
            0 => cfg.max_response_series,
            n if cfg.max_response_series == 0 => n,
            n => n.min(cfg.max_response_series),
        };
        let instant = instant || get("instant") == Some("true");
        Ok(MetricsRequest {
            query,
            start_ns: start.max(0) as u64,
            end_ns: end.max(0) as u64,
            step_ns_opt,
            instant,
            exemplars,
            max_series,
            series_budget: 0,
        })
    }

    /// The time axis: aligned to the step for a range query, one interval for an instant one.
    pub fn range(&self, cfg: &MetricsConfig) -> Result<Range, Status> {
        if self.instant {
            return Ok(Range::instant(self.start_ns, self.end_ns));
        }
        let step = self
            .step_ns_opt
            .unwrap_or_else(|| vivace_traceql::metrics::default_step(self.start_ns, self.end_ns));
        let r = Range::aligned(self.start_ns, self.end_ns, step);
        if cfg.max_intervals > 0 && r.intervals() as u64 > cfg.max_intervals {
            return Err(Status::bad_request(format!(
                "step of {}s over this range gives {} intervals, more than the maximum of {}: use a larger step",
                step as f64 / 1e9,
                r.intervals(),
                cfg.max_intervals
            )));
        }
        Ok(r)
    }
}

/// What a metrics query answered.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub series: Vec<Series>,
    pub metrics: SearchMetrics,
    /// Set when the answer was cut (too many series).
    pub message_opt: Option<String>,
}

/// Compiles a metrics query, with Tempo's error texts.
fn plan(req: &MetricsRequest, range: Range) -> Result<MetricsPlan, Status> {
    let q = vivace_traceql::parse(&req.query)
        .map_err(|e| Status::bad_request(format!("invalid TraceQL query: {e}")))?;
    if !matches!(q.body, Body::Metrics(_)) {
        return Err(Status::bad_request(
            "invalid TraceQL query: not a metrics query; end the query with a metrics function such as `| rate()`",
        ));
    }
    MetricsPlan::new(&q, range, req.exemplars as usize)
        .map_err(|e| Status::bad_request(format!("invalid TraceQL query: {e}")))
}

/// Runs a metrics query over every source's jobs. `on_progress` sees the answer so far after
/// jobs complete, at most every 500 ms (for streaming).
pub async fn query(
    sources: &[Arc<dyn SearchSource>],
    tenants: &[TenantId],
    req: &MetricsRequest,
    cfg: &MetricsConfig,
    search: &SearchConfig,
    mut on_progress: impl FnMut(Answer) + Send,
) -> Result<Answer, Status> {
    let range = req.range(cfg)?;
    let plan = Arc::new(plan(req, range)?);
    let state = Arc::new(parking_lot::Mutex::new((
        plan.partial(),
        SearchMetrics::default(),
    )));
    let max_series = req.max_series as usize;
    let series_budget = req.series_budget;
    let answer = |plan: &MetricsPlan, partial: Partial, metrics: SearchMetrics| {
        let mut series = plan.finish(partial);
        let mut message_opt = None;
        if max_series > 0 && series.len() > max_series {
            series.truncate(max_series);
            message_opt = Some(format!(
                "Response exceeds maximum series limit of {max_series}, a partial response is returned. Warning: the accuracy of each individual value is not guaranteed."
            ));
        }
        Answer {
            series,
            metrics,
            message_opt,
        }
    };
    if plan.matches_nothing() {
        return Ok(answer(&plan, plan.partial(), SearchMetrics::default()));
    }
    let work = async {
        let start_secs = (range.start_ns / 1_000_000_000) as i64;
        let end_secs = range.end_ns.div_ceil(1_000_000_000) as i64;
        let jobs = collect_jobs(sources, tenants, start_secs, end_secs, &plan.fetch()).await?;
        {
            let mut s = state.lock();
            s.1.total_jobs = jobs.len() as u32;
            s.1.total_blocks = jobs.iter().filter(|j| j.counts_block).count() as u32;
            s.1.total_block_bytes = jobs.iter().map(|j| j.block_bytes).sum();
        }
        run_jobs(jobs, search.concurrent_jobs, |fetched| {
            let (plan, state) = (plan.clone(), state.clone());
            Box::pin(async move {
                let bytes = fetched.inspected_bytes;
                let plan2 = plan.clone();
                let p = tokio::task::spawn_blocking(move || {
                    let mut p = plan2.partial();
                    if let Some(c) = &fetched.columns_opt {
                        return plan2
                            .observe_columns(c, &mut p)
                            .map(|()| (p, c.trace_ids.len()));
                    }
                    let traces = fetched.traces_opt.as_ref().map(Vec::len);
                    plan2
                        .observe(&fetched.batch, &mut fetched.trace_indexes(), &mut p)
                        .map(|()| (p, traces.unwrap_or(fetched.batch.traces.len())))
                })
                .await
                .map_err(|e| Status::internal(format!("metrics task failed: {e}")))?
                .map_err(|e| Status::bad_request(format!("invalid TraceQL query: {e}")))?;
                let (p, traces) = p;
                let mut s = state.lock();
                s.1.completed_jobs += 1;
                s.1.inspected_bytes += bytes;
                s.1.inspected_traces += traces as u32;
                s.1.inspected_spans += p.inspected_spans;
                plan.merge(&mut s.0, p);
                Ok(series_budget == 0 || s.0.series_len() < series_budget)
            })
        })
        .await?;
        Ok::<(), Status>(())
    };
    with_progress(work, search.query_timeout, "metrics query", || {
        let (p, m) = {
            let s = state.lock();
            (s.0.clone(), s.1.clone())
        };
        on_progress(answer(&plan, p, m));
    })
    .await?;
    let (p, m) = {
        let mut s = state.lock();
        (std::mem::take(&mut s.0), s.1.clone())
    };
    Ok(answer(&plan, p, m))
}

fn any_value(v: &LabelValue) -> AnyValue {
    let value = match v {
        LabelValue::Nil => any_value::Value::StringValue("nil".into()),
        LabelValue::Str(s) => any_value::Value::StringValue(s.clone()),
        LabelValue::Int(i) => any_value::Value::IntValue(*i),
        LabelValue::Float(f) => any_value::Value::DoubleValue(*f),
        LabelValue::Bool(b) => any_value::Value::BoolValue(*b),
    };
    AnyValue { value: Some(value) }
}

fn key_values(labels: &Labels) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: Some(any_value(v)),
            ..Default::default()
        })
        .collect()
}

/// Labels as Prometheus prints them: sorted by name, values quoted: `{__name__="rate"}`,
/// `{p="0.5", resource.service.name="api"}`.
fn prom_labels(labels: &Labels) -> String {
    let mut pairs: Vec<(&str, String)> = labels
        .iter()
        .map(|(k, v)| {
            let text = match v {
                LabelValue::Nil => "nil".to_string(),
                LabelValue::Str(s) => s.clone(),
                other => other.to_string(),
            };
            (k.as_str(), text)
        })
        .collect();
    pairs.sort();
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap_or_default()))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

fn status_of(a: &Answer) -> (i32, String) {
    match &a.message_opt {
        Some(m) => (PartialStatus::Partial as i32, m.clone()),
        None => (PartialStatus::Complete as i32, String::new()),
    }
}

/// A range answer as `tempopb.QueryRangeResponse`.
pub fn range_response(a: &Answer) -> QueryRangeResponse {
    let (status, message) = status_of(a);
    QueryRangeResponse {
        series: a
            .series
            .iter()
            .map(|s| TimeSeries {
                labels: key_values(&s.labels),
                prom_labels: prom_labels(&s.labels),
                samples: s
                    .samples
                    .iter()
                    .map(|(t, v)| Sample {
                        value: *v,
                        timestamp_ms: *t,
                    })
                    .collect(),
                exemplars: s
                    .exemplars
                    .iter()
                    .map(|e| Exemplar {
                        labels: key_values(&e.labels),
                        value: e.value,
                        timestamp_ms: e.timestamp_ms,
                    })
                    .collect(),
            })
            .collect(),
        metrics: Some(a.metrics.clone()),
        status,
        message,
    }
}

/// An instant answer as `tempopb.QueryInstantResponse`: one value per series.
pub fn instant_response(a: &Answer) -> QueryInstantResponse {
    let (status, message) = status_of(a);
    QueryInstantResponse {
        series: a
            .series
            .iter()
            .filter_map(|s| {
                s.samples.last().map(|(_, v)| InstantSeries {
                    labels: key_values(&s.labels),
                    value: *v,
                })
            })
            .collect(),
        metrics: Some(a.metrics.clone()),
        status,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vivace_common::StatusCode;

    fn params(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn requests_as_tempo_reads_them() {
        let (m, s) = (MetricsConfig::default(), SearchConfig::default());
        let r = MetricsRequest::from_params(
            &params(&[
                ("query", "{ } | rate()"),
                ("start", "1699999980"),
                ("end", "1700003580"),
                ("step", "1m"),
            ]),
            &m,
            &s,
            false,
        )
        .unwrap();
        assert_eq!(r.query, "{ } | rate()");
        assert_eq!(r.step_ns_opt, Some(60_000_000_000));
        assert_eq!(r.range(&m).unwrap().intervals(), 60);
        // Prometheus-style step in seconds; q wins over query.
        let r = MetricsRequest::from_params(
            &params(&[
                ("q", "{ } | rate()"),
                ("query", "x"),
                ("step", "30"),
                ("since", "1h"),
            ]),
            &m,
            &s,
            false,
        )
        .unwrap();
        assert_eq!(
            (r.query.as_str(), r.step_ns_opt),
            ("{ } | rate()", Some(30_000_000_000))
        );
        for bad in [
            vec![("q", "{ } | rate()"), ("step", "0s")],
            vec![("q", "{ } | rate()"), ("start", "0"), ("end", "172800")],
            vec![("q", "{ } | rate()"), ("step", "1ms"), ("since", "1h")],
            vec![("step", "1m")],
        ] {
            let r = MetricsRequest::from_params(&params(&bad), &m, &s, false)
                .and_then(|r| r.range(&m).map(|_| r));
            assert_eq!(r.unwrap_err().code, StatusCode::BadRequest, "{bad:?}");
        }
    }
}
