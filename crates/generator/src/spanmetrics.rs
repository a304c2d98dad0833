//! The span-metrics processor (Tempo's `processor/spanmetrics`): per span,
//! `traces_spanmetrics_calls_total` += 1, `traces_spanmetrics_latency` observes the duration in
//! seconds (exemplar: the trace ID), `traces_spanmetrics_size_total` += the span's protobuf size;
//! with `enable_target_info`, `traces_target_info` = 1 per resource.
//!
//! Labels in order: `service`, `span_name`, `span_kind`, `status_code` (each unless turned off in
//! `intrinsic_dimensions`), `status_message` (when turned on), each of `dimensions` (resource
//! attribute first, then span attribute; sanitized, prefixed `__` when it collides with an
//! intrinsic), each `dimension_mappings` label (source values joined), and with target info `job`
//! (`<service.namespace>/<service.name>` or `<service.name>`) and `instance`
//! (`service.instance.id`).

use prost::Message;
use regex::Regex;
use vivace_proto::otlp::common::KeyValue;
use vivace_proto::otlp::trace::Span;

use crate::config::{FilterPolicy, PolicyMatch, SpanMetricsConfig};
use crate::error::{Error, Result};
use crate::registry::{MetricId, Registry};
use crate::spans::{
    duration_seconds, find_string, kind_name, sanitize_label, status_name, value_string,
};

const INTRINSICS: &[&str] = &[
    "service",
    "span_name",
    "span_kind",
    "status_code",
    "status_message",
    "job",
    "instance",
];

/// Which span-metrics series the tenant's processors ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enabled {
    pub count: bool,
    pub latency: bool,
    pub size: bool,
}

#[derive(Debug)]
pub struct SpanMetrics {
    cfg: SpanMetricsConfig,
    calls: Option<MetricId>,
    latency: Option<MetricId>,
    size: Option<MetricId>,
    target_info: Option<MetricId>,
    filters: Vec<(Option<Matcher>, Option<Matcher>)>,
    /// Label values, reused from span to span.
    values: Vec<String>,
}

impl SpanMetrics {
    pub fn new(
        cfg: SpanMetricsConfig,
        enabled: Enabled,
        reg: &mut Registry,
    ) -> Result<SpanMetrics> {
        let mut labels: Vec<String> = Vec::new();
        let i = &cfg.intrinsic_dimensions;
        for (on, name) in [
            (i.service, "service"),
            (i.span_name, "span_name"),
            (i.span_kind, "span_kind"),
            (i.status_code, "status_code"),
            (i.status_message, "status_message"),
        ] {
            if on {
                labels.push(name.into());
            }
        }
        for d in &cfg.dimensions {
            labels.push(sanitize_label(d, INTRINSICS));
        }
        for m in &cfg.dimension_mappings {
            labels.push(sanitize_label(&m.name, INTRINSICS));
        }
        if cfg.enable_target_info || cfg.enable_instance_label == Some(true) {
            labels.push("job".into());
            labels.push("instance".into());
        }
        let calls = enabled
            .count
            .then(|| reg.counter("traces_spanmetrics_calls_total", &labels));
        let latency = enabled.latency.then(|| {
            reg.histogram(
                "traces_spanmetrics_latency",
                &labels,
                &cfg.histogram_buckets,
            )
        });
        let size = enabled
            .size
            .then(|| reg.counter("traces_spanmetrics_size_total", &labels));
        let target_info = None;
        let filters = cfg
            .filter_policies
            .iter()
            .map(compile_policy)
            .collect::<Result<Vec<_>>>()?;
        Ok(SpanMetrics {
            cfg,
            calls,
            latency,
            size,
            target_info,
            filters,
            values: Vec::new(),
        })
    }

    /// Counts the spans of one resource.
    pub fn push(
        &mut self,
        reg: &mut Registry,
        resource: &[KeyValue],
        spans: &[&Span],
        trace_id: &str,
        now_ms: i64,
    ) {
        let service = find_string("service.name", &[resource]).unwrap_or_default();
        let (job, instance) =
            if self.cfg.enable_target_info || self.cfg.enable_instance_label == Some(true) {
                let job = match find_string("service.namespace", &[resource]) {
                    Some(ns) if !ns.is_empty() => format!("{ns}/{service}"),
                    _ => service.clone(),
                };
                (
                    job,
                    find_string("service.instance.id", &[resource]).unwrap_or_default(),
                )
            } else {
                (String::new(), String::new())
            };
        let mut any = false;
        for span in spans {
            if !self.passes(resource, span) {
                continue;
            }
            any = true;
            let v = &mut self.values;
            v.clear();
            let i = &self.cfg.intrinsic_dimensions;
            if i.service {
                v.push(service.clone());
            }
            if i.span_name {
                v.push(span.name.clone());
            }
            if i.span_kind {
                v.push(kind_name(span).into());
            }
            if i.status_code {
                v.push(status_name(span).into());
            }
            if i.status_message {
                v.push(
                    span.status
                        .as_ref()
                        .map(|s| s.message.clone())
                        .unwrap_or_default(),
                );
            }
            for d in &self.cfg.dimensions {
                v.push(find_string(d, &[resource, &span.attributes]).unwrap_or_default());
            }
            for m in &self.cfg.dimension_mappings {
                let parts: Vec<String> = m
                    .source_labels
                    .iter()
                    .filter_map(|s| find_string(s, &[resource, &span.attributes]))
                    .collect();
                v.push(parts.join(&m.join));
            }
            if self.cfg.enable_target_info || self.cfg.enable_instance_label == Some(true) {
                v.push(job.clone());
                v.push(instance.clone());
            }
            let values = std::mem::take(&mut self.values);
            if let Some(id) = self.calls {
                reg.inc(id, &values, 1.0, now_ms);
            }
            if let Some(id) = self.latency {
                reg.observe(id, &values, duration_seconds(span), Some(trace_id), now_ms);
            }
            if let Some(id) = self.size {
                reg.inc(id, &values, span.encoded_len() as f64, now_ms);
            }
            self.values = values;
        }
        if any && self.cfg.enable_target_info {
            self.target_info(reg, resource, &job, &instance, now_ms);
        }
    }

    /// `traces_target_info{job, instance, <other resource attributes>} = 1`, for resources that
    /// carry attributes beyond the service's identity.
    fn target_info(
        &mut self,
        reg: &mut Registry,
        resource: &[KeyValue],
        job: &str,
        instance: &str,
        now_ms: i64,
    ) {
        let mut pairs: Vec<(String, String)> = resource
            .iter()
            .filter(|kv| {
                !matches!(
                    kv.key.as_str(),
                    "service.name" | "service.namespace" | "service.instance.id"
                ) && !self.cfg.target_info_excluded_dimensions.contains(&kv.key)
            })
            .map(|kv| {
                (
                    sanitize_label(&kv.key, &["job", "instance"]),
                    kv.value.as_ref().map(value_string).unwrap_or_default(),
                )
            })
            .collect();
        if pairs.is_empty() {
            return;
        }
        pairs.sort();
        pairs.dedup_by(|a, b| a.0 == b.0);
        let mut names = vec!["job".to_string(), "instance".to_string()];
        let mut values = vec![job.to_string(), instance.to_string()];
        for (n, v) in pairs {
            names.push(n);
            values.push(v);
        }
        // Each distinct label-name set is its own metric family member.
        let id = match self.target_info {
            Some(id) if reg.label_names(id) == names.as_slice() => id,
            _ => {
                let id = reg.find_or_add_gauge("traces_target_info", &names);
                self.target_info = Some(id);
                id
            }
        };
        reg.set(id, &values, 1.0, now_ms);
    }

    fn passes(&self, resource: &[KeyValue], span: &Span) -> bool {
        self.filters.iter().all(|(inc, exc)| {
            inc.as_ref().is_none_or(|m| m.matches(resource, span))
                && exc.as_ref().is_none_or(|m| !m.matches(resource, span))
        })
    }
}

#[derive(Debug)]
enum ValueMatch {
    Strict(String),
    Regex(Regex),
}

#[derive(Debug)]
pub(crate) struct Matcher {
    attrs: Vec<(String, ValueMatch)>,
}

pub(crate) fn compile_policy(p: &FilterPolicy) -> Result<(Option<Matcher>, Option<Matcher>)> {
    Ok((
        p.include.as_ref().map(compile_match).transpose()?,
        p.exclude.as_ref().map(compile_match).transpose()?,
    ))
}

fn compile_match(m: &PolicyMatch) -> Result<Matcher> {
    const KEY: &str = "span_metrics.filter_policies";
    let regex = match m.match_type.as_str() {
        "strict" | "" => false,
        "regex" => true,
        other => {
            return Err(Error::invalid(
                KEY,
                format!("match_type {other:?} is neither strict nor regex"),
            ));
        }
    };
    let mut attrs = Vec::new();
    for a in &m.attributes {
        let text = match &a.value {
            serde_yaml_ng::Value::String(s) => s.clone(),
            serde_yaml_ng::Value::Number(n) => n.to_string(),
            serde_yaml_ng::Value::Bool(b) => b.to_string(),
            other => {
                return Err(Error::invalid(
                    KEY,
                    format!("value of {} is {other:?}", a.key),
                ));
            }
        };
        let vm = if regex {
            ValueMatch::Regex(
                Regex::new(&format!("^(?:{text})$"))
                    .map_err(|e| Error::invalid(KEY, format!("{}: {e}", a.key)))?,
            )
        } else {
            ValueMatch::Strict(text)
        };
        attrs.push((a.key.clone(), vm));
    }
    Ok(Matcher { attrs })
}

impl Matcher {
    /// Every attribute of the policy matches.
    fn matches(&self, resource: &[KeyValue], span: &Span) -> bool {
        self.attrs.iter().all(|(key, vm)| {
            let value = match key.as_str() {
                "kind" | "span.kind" => Some(kind_name(span).to_string()),
                "status" | "span.status" => Some(status_name(span).to_string()),
                "name" | "span.name" => Some(span.name.clone()),
                k => {
                    if let Some(r) = k.strip_prefix("resource.") {
                        find_string(r, &[resource])
                    } else if let Some(s) = k.strip_prefix("span.") {
                        find_string(s, &[&span.attributes])
                    } else {
                        find_string(k, &[&span.attributes, resource])
                    }
                }
            };
            match (value, vm) {
                (Some(v), ValueMatch::Strict(want)) => v == *want,
                (Some(v), ValueMatch::Regex(re)) => re.is_match(&v),
                (None, _) => false,
            }
        })
    }
}
