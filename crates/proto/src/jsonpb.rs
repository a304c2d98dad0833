//! Tempo's JSON for trace responses: gogo `jsonpb.Marshaler{}` defaults over the OTLP types.
//!
//! lowerCamelCase field names; zero values omitted (set `oneof` members always kept); 64-bit
//! integers as strings; bytes (trace and span IDs included) as standard base64; enums by name.
//! `/api/traces/{id}` (v1) names the top-level list `batches`, v2 names it `resourceSpans`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use crate::otlp::common::{AnyValue, InstrumentationScope, KeyValue, any_value};
use crate::otlp::resource::Resource;
use crate::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status, span};
use crate::tempopb::{
    Exemplar, MetadataMetrics, PartialStatus, QueryInstantResponse, QueryRangeResponse,
    SearchMetrics, SearchResponse, SearchTagValuesResponse, SearchTagValuesV2Response,
    SearchTagsResponse, SearchTagsV2Response, SpanSet, Trace, TraceByIdMetrics, TraceByIdResponse,
    TraceSearchMetadata,
};

/// The v1 JSON form of a trace: `{"batches":[...]}`.
pub fn trace_v1(trace: &Trace) -> Value {
    let mut m = Map::new();
    if !trace.resource_spans.is_empty() {
        m.insert(
            "batches".into(),
            Value::Array(trace.resource_spans.iter().map(resource_spans).collect()),
        );
    }
    Value::Object(m)
}

/// The v2 JSON form: `{"trace":{"resourceSpans":[...]},"metrics":{...},"status":..,"message":..}`.
pub fn trace_by_id_response(resp: &TraceByIdResponse) -> Value {
    let mut m = Map::new();
    if let Some(t) = &resp.trace {
        let mut tm = Map::new();
        if !t.resource_spans.is_empty() {
            tm.insert(
                "resourceSpans".into(),
                Value::Array(t.resource_spans.iter().map(resource_spans).collect()),
            );
        }
        m.insert("trace".into(), Value::Object(tm));
    }
    if let Some(metrics) = &resp.metrics {
        m.insert("metrics".into(), trace_by_id_metrics(metrics));
    }
    if resp.status == PartialStatus::Partial as i32 {
        m.insert("status".into(), json!(PartialStatus::Partial.as_str_name()));
    }
    if !resp.message.is_empty() {
        m.insert("message".into(), json!(resp.message));
    }
    Value::Object(m)
}

fn trace_by_id_metrics(metrics: &TraceByIdMetrics) -> Value {
    let mut m = Map::new();
    put_u64(&mut m, "inspectedBytes", metrics.inspected_bytes);
    put_u64(&mut m, "backendReads", metrics.backend_reads);
    put_u64(&mut m, "backendBytes", metrics.backend_bytes);
    if !metrics.additional_metrics.is_empty() {
        let mut names: Vec<_> = metrics.additional_metrics.iter().collect();
        names.sort();
        let add: Map<String, Value> = names
            .into_iter()
            .map(|(k, v)| (k.clone(), json!(v.to_string())))
            .collect();
        m.insert("additionalMetrics".into(), Value::Object(add));
    }
    Value::Object(m)
}

fn resource_spans(rs: &ResourceSpans) -> Value {
    let mut m = Map::new();
    if let Some(r) = &rs.resource {
        m.insert("resource".into(), resource(r));
    }
    if !rs.scope_spans.is_empty() {
        m.insert(
            "scopeSpans".into(),
            Value::Array(rs.scope_spans.iter().map(scope_spans).collect()),
        );
    }
    put_str(&mut m, "schemaUrl", &rs.schema_url);
    Value::Object(m)
}

fn resource(r: &Resource) -> Value {
    let mut m = Map::new();
    put_attrs(&mut m, &r.attributes);
    put_u32(&mut m, "droppedAttributesCount", r.dropped_attributes_count);
    Value::Object(m)
}

fn scope_spans(ss: &ScopeSpans) -> Value {
    let mut m = Map::new();
    if let Some(s) = &ss.scope {
        m.insert("scope".into(), scope(s));
    }
    if !ss.spans.is_empty() {
        m.insert(
            "spans".into(),
            Value::Array(ss.spans.iter().map(span_json).collect()),
        );
    }
    put_str(&mut m, "schemaUrl", &ss.schema_url);
    Value::Object(m)
}

fn scope(s: &InstrumentationScope) -> Value {
    let mut m = Map::new();
    put_str(&mut m, "name", &s.name);
    put_str(&mut m, "version", &s.version);
    put_attrs(&mut m, &s.attributes);
    put_u32(&mut m, "droppedAttributesCount", s.dropped_attributes_count);
    Value::Object(m)
}

fn span_json(s: &Span) -> Value {
    let mut m = Map::new();
    put_bytes(&mut m, "traceId", &s.trace_id);
    put_bytes(&mut m, "spanId", &s.span_id);
    put_str(&mut m, "traceState", &s.trace_state);
    put_bytes(&mut m, "parentSpanId", &s.parent_span_id);
    put_u32(&mut m, "flags", s.flags);
    put_str(&mut m, "name", &s.name);
    if s.kind != 0 {
        let name = span::SpanKind::try_from(s.kind)
            .map(|k| k.as_str_name().to_string())
            .unwrap_or_else(|_| s.kind.to_string());
        m.insert("kind".into(), json!(name));
    }
    put_u64(&mut m, "startTimeUnixNano", s.start_time_unix_nano);
    put_u64(&mut m, "endTimeUnixNano", s.end_time_unix_nano);
    put_attrs(&mut m, &s.attributes);
    put_u32(&mut m, "droppedAttributesCount", s.dropped_attributes_count);
    if !s.events.is_empty() {
        let events = s.events.iter().map(|e| {
            let mut em = Map::new();
            put_u64(&mut em, "timeUnixNano", e.time_unix_nano);
            put_str(&mut em, "name", &e.name);
            put_attrs(&mut em, &e.attributes);
            put_u32(
                &mut em,
                "droppedAttributesCount",
                e.dropped_attributes_count,
            );
            Value::Object(em)
        });
        m.insert("events".into(), Value::Array(events.collect()));
    }
    put_u32(&mut m, "droppedEventsCount", s.dropped_events_count);
    if !s.links.is_empty() {
        let links = s.links.iter().map(|l| {
            let mut lm = Map::new();
            put_bytes(&mut lm, "traceId", &l.trace_id);
            put_bytes(&mut lm, "spanId", &l.span_id);
            put_str(&mut lm, "traceState", &l.trace_state);
            put_attrs(&mut lm, &l.attributes);
            put_u32(
                &mut lm,
                "droppedAttributesCount",
                l.dropped_attributes_count,
            );
            put_u32(&mut lm, "flags", l.flags);
            Value::Object(lm)
        });
        m.insert("links".into(), Value::Array(links.collect()));
    }
    put_u32(&mut m, "droppedLinksCount", s.dropped_links_count);
    if let Some(st) = &s.status {
        m.insert("status".into(), status(st));
    }
    Value::Object(m)
}

fn status(st: &Status) -> Value {
    let mut m = Map::new();
    put_str(&mut m, "message", &st.message);
    if st.code != 0 {
        let name = crate::otlp::trace::status::StatusCode::try_from(st.code)
            .map(|c| c.as_str_name().to_string())
            .unwrap_or_else(|_| st.code.to_string());
        m.insert("code".into(), json!(name));
    }
    Value::Object(m)
}

/// `/api/search`: `{"traces":[...],"metrics":{...}}`.
pub fn search_response(r: &SearchResponse) -> Value {
    let mut m = Map::new();
    if !r.traces.is_empty() {
        m.insert(
            "traces".into(),
            Value::Array(r.traces.iter().map(trace_search_metadata).collect()),
        );
    }
    m.insert(
        "metrics".into(),
        search_metrics(&r.metrics.clone().unwrap_or_default()),
    );
    Value::Object(m)
}

fn trace_search_metadata(t: &TraceSearchMetadata) -> Value {
    let mut m = Map::new();
    put_str(&mut m, "traceID", &t.trace_id);
    put_str(&mut m, "rootServiceName", &t.root_service_name);
    put_str(&mut m, "rootTraceName", &t.root_trace_name);
    put_u64(&mut m, "startTimeUnixNano", t.start_time_unix_nano);
    put_u32(&mut m, "durationMs", t.duration_ms);
    if let Some(s) = &t.span_set {
        m.insert("spanSet".into(), span_set(s));
    }
    if !t.span_sets.is_empty() {
        m.insert(
            "spanSets".into(),
            Value::Array(t.span_sets.iter().map(span_set).collect()),
        );
    }
    if !t.service_stats.is_empty() {
        let mut names: Vec<_> = t.service_stats.iter().collect();
        names.sort_by(|a, b| a.0.cmp(b.0));
        let mut sm = Map::new();
        for (name, st) in names {
            let mut e = Map::new();
            put_u32(&mut e, "spanCount", st.span_count);
            put_u32(&mut e, "errorCount", st.error_count);
            sm.insert(name.clone(), Value::Object(e));
        }
        m.insert("serviceStats".into(), Value::Object(sm));
    }
    Value::Object(m)
}

fn span_set(s: &SpanSet) -> Value {
    let mut m = Map::new();
    if !s.spans.is_empty() {
        let spans = s
            .spans
            .iter()
            .map(|sp| {
                let mut sm = Map::new();
                put_str(&mut sm, "spanID", &sp.span_id);
                put_str(&mut sm, "name", &sp.name);
                put_u64(&mut sm, "startTimeUnixNano", sp.start_time_unix_nano);
                put_u64(&mut sm, "durationNanos", sp.duration_nanos);
                put_attrs(&mut sm, &sp.attributes);
                Value::Object(sm)
            })
            .collect();
        m.insert("spans".into(), Value::Array(spans));
    }
    put_u32(&mut m, "matched", s.matched);
    put_attrs(&mut m, &s.attributes);
    Value::Object(m)
}

fn additional(m: &mut Map<String, Value>, extra: &std::collections::HashMap<String, i64>) {
    if !extra.is_empty() {
        let mut names: Vec<_> = extra.iter().collect();
        names.sort();
        let mut am = Map::new();
        for (k, v) in names {
            am.insert(k.clone(), json!(v.to_string()));
        }
        m.insert("additionalMetrics".into(), Value::Object(am));
    }
}

fn search_metrics(x: &SearchMetrics) -> Value {
    let mut m = Map::new();
    put_u32(&mut m, "inspectedTraces", x.inspected_traces);
    put_u64(&mut m, "inspectedBytes", x.inspected_bytes);
    put_u32(&mut m, "totalBlocks", x.total_blocks);
    put_u32(&mut m, "completedJobs", x.completed_jobs);
    put_u32(&mut m, "totalJobs", x.total_jobs);
    put_u64(&mut m, "totalBlockBytes", x.total_block_bytes);
    put_u64(&mut m, "inspectedSpans", x.inspected_spans);
    put_u64(&mut m, "backendReads", x.backend_reads);
    put_u64(&mut m, "backendBytes", x.backend_bytes);
    additional(&mut m, &x.additional_metrics);
    Value::Object(m)
}

fn metadata_metrics(x: &Option<MetadataMetrics>) -> Value {
    let x = x.clone().unwrap_or_default();
    let mut m = Map::new();
    put_u64(&mut m, "inspectedBytes", x.inspected_bytes);
    put_u32(&mut m, "totalJobs", x.total_jobs);
    put_u32(&mut m, "completedJobs", x.completed_jobs);
    put_u32(&mut m, "totalBlocks", x.total_blocks);
    put_u64(&mut m, "totalBlockBytes", x.total_block_bytes);
    put_u64(&mut m, "backendReads", x.backend_reads);
    put_u64(&mut m, "backendBytes", x.backend_bytes);
    additional(&mut m, &x.additional_metrics);
    Value::Object(m)
}

/// `/api/search/tags`: `{"tagNames":[...],"metrics":{...}}`.
pub fn search_tags_response(r: &SearchTagsResponse) -> Value {
    let mut m = Map::new();
    if !r.tag_names.is_empty() {
        m.insert("tagNames".into(), json!(r.tag_names));
    }
    m.insert("metrics".into(), metadata_metrics(&r.metrics));
    Value::Object(m)
}

/// `/api/v2/search/tags`: `{"scopes":[{"name":..,"tags":[..]}],"metrics":{...}}`.
pub fn search_tags_v2_response(r: &SearchTagsV2Response) -> Value {
    let mut m = Map::new();
    if !r.scopes.is_empty() {
        let scopes = r
            .scopes
            .iter()
            .map(|s| {
                let mut sm = Map::new();
                put_str(&mut sm, "name", &s.name);
                if !s.tags.is_empty() {
                    sm.insert("tags".into(), json!(s.tags));
                }
                Value::Object(sm)
            })
            .collect();
        m.insert("scopes".into(), Value::Array(scopes));
    }
    m.insert("metrics".into(), metadata_metrics(&r.metrics));
    Value::Object(m)
}

/// `/api/search/tag/{t}/values`: `{"tagValues":["a",...],"metrics":{...}}`.
pub fn search_tag_values_response(r: &SearchTagValuesResponse) -> Value {
    let mut m = Map::new();
    if !r.tag_values.is_empty() {
        m.insert("tagValues".into(), json!(r.tag_values));
    }
    m.insert("metrics".into(), metadata_metrics(&r.metrics));
    Value::Object(m)
}

/// `/api/v2/search/tag/{t}/values`: `{"tagValues":[{"type":..,"value":..}],"metrics":{...}}`.
pub fn search_tag_values_v2_response(r: &SearchTagValuesV2Response) -> Value {
    let mut m = Map::new();
    if !r.tag_values.is_empty() {
        let vals = r
            .tag_values
            .iter()
            .map(|v| {
                let mut vm = Map::new();
                put_str(&mut vm, "type", &v.r#type);
                put_str(&mut vm, "value", &v.value);
                Value::Object(vm)
            })
            .collect();
        m.insert("tagValues".into(), Value::Array(vals));
    }
    m.insert("metrics".into(), metadata_metrics(&r.metrics));
    Value::Object(m)
}

/// `/api/metrics/query_range`: `{"series":[{"labels","samples","exemplars"}],"metrics"}`, plus
/// `status` and `message` when partial.
pub fn query_range_response(r: &QueryRangeResponse) -> Value {
    let mut m = Map::new();
    if !r.series.is_empty() {
        let series = r.series.iter().map(|s| {
            let mut sm = Map::new();
            put_kvs(&mut sm, "labels", &s.labels);
            put_str(&mut sm, "promLabels", &s.prom_labels);
            if !s.samples.is_empty() {
                let samples = s.samples.iter().map(|x| {
                    let mut xm = Map::new();
                    put_i64(&mut xm, "timestampMs", x.timestamp_ms);
                    put_f64(&mut xm, "value", x.value);
                    Value::Object(xm)
                });
                sm.insert("samples".into(), Value::Array(samples.collect()));
            }
            if !s.exemplars.is_empty() {
                sm.insert(
                    "exemplars".into(),
                    Value::Array(s.exemplars.iter().map(exemplar).collect()),
                );
            }
            Value::Object(sm)
        });
        m.insert("series".into(), Value::Array(series.collect()));
    }
    m.insert(
        "metrics".into(),
        search_metrics(&r.metrics.clone().unwrap_or_default()),
    );
    put_partial(&mut m, r.status, &r.message);
    Value::Object(m)
}

fn exemplar(e: &Exemplar) -> Value {
    let mut m = Map::new();
    put_kvs(&mut m, "labels", &e.labels);
    put_f64(&mut m, "value", e.value);
    put_i64(&mut m, "timestampMs", e.timestamp_ms);
    Value::Object(m)
}

/// `/api/metrics/query`: only the documented fields (older Grafana decodes it strictly).
pub fn query_instant_response(r: &QueryInstantResponse) -> Value {
    let mut m = Map::new();
    if !r.series.is_empty() {
        let series = r.series.iter().map(|s| {
            let mut sm = Map::new();
            put_kvs(&mut sm, "labels", &s.labels);
            put_f64(&mut sm, "value", s.value);
            Value::Object(sm)
        });
        m.insert("series".into(), Value::Array(series.collect()));
    }
    m.insert(
        "metrics".into(),
        search_metrics(&r.metrics.clone().unwrap_or_default()),
    );
    put_partial(&mut m, r.status, &r.message);
    Value::Object(m)
}

fn put_partial(m: &mut Map<String, Value>, status: i32, message: &str) {
    if status == PartialStatus::Partial as i32 {
        m.insert("status".into(), json!(PartialStatus::Partial.as_str_name()));
    }
    put_str(m, "message", message);
}

fn put_kvs(m: &mut Map<String, Value>, k: &str, kvs: &[KeyValue]) {
    if !kvs.is_empty() {
        m.insert(k.into(), Value::Array(kvs.iter().map(key_value).collect()));
    }
}

fn put_i64(m: &mut Map<String, Value>, k: &str, v: i64) {
    if v != 0 {
        m.insert(k.into(), json!(v.to_string()));
    }
}

fn put_f64(m: &mut Map<String, Value>, k: &str, v: f64) {
    if v != 0.0 || v.is_sign_negative() {
        m.insert(k.into(), double(v));
    }
}

fn put_attrs(m: &mut Map<String, Value>, attrs: &[KeyValue]) {
    if !attrs.is_empty() {
        m.insert(
            "attributes".into(),
            Value::Array(attrs.iter().map(key_value).collect()),
        );
    }
}

fn key_value(kv: &KeyValue) -> Value {
    let mut m = Map::new();
    put_str(&mut m, "key", &kv.key);
    if let Some(v) = &kv.value {
        m.insert("value".into(), any_value_json(v));
    }
    Value::Object(m)
}

fn any_value_json(v: &AnyValue) -> Value {
    let mut m = Map::new();
    match &v.value {
        Some(any_value::Value::StringValue(s)) => {
            m.insert("stringValue".into(), json!(s));
        }
        Some(any_value::Value::BoolValue(b)) => {
            m.insert("boolValue".into(), json!(b));
        }
        Some(any_value::Value::IntValue(i)) => {
            m.insert("intValue".into(), json!(i.to_string()));
        }
        Some(any_value::Value::DoubleValue(d)) => {
            m.insert("doubleValue".into(), double(*d));
        }
        Some(any_value::Value::ArrayValue(a)) => {
            let mut am = Map::new();
            if !a.values.is_empty() {
                am.insert(
                    "values".into(),
                    Value::Array(a.values.iter().map(any_value_json).collect()),
                );
            }
            m.insert("arrayValue".into(), Value::Object(am));
        }
        Some(any_value::Value::KvlistValue(kv)) => {
            let mut km = Map::new();
            if !kv.values.is_empty() {
                km.insert(
                    "values".into(),
                    Value::Array(kv.values.iter().map(key_value).collect()),
                );
            }
            m.insert("kvlistValue".into(), Value::Object(km));
        }
        Some(any_value::Value::BytesValue(b)) => {
            m.insert("bytesValue".into(), json!(B64.encode(b)));
        }
        // `string_value_strindex` only has meaning inside OTLP profiles' string tables.
        Some(any_value::Value::StringValueStrindex(_)) | None => {}
    }
    Value::Object(m)
}

/// jsonpb writes non-finite doubles as the strings `NaN`, `Infinity`, `-Infinity`.
fn double(d: f64) -> Value {
    if d.is_nan() {
        json!("NaN")
    } else if d.is_infinite() {
        json!(if d > 0.0 { "Infinity" } else { "-Infinity" })
    } else if d.fract() == 0.0 && d.abs() < 1e15 {
        // Go writes a float64 with no fraction as an integer: 1, not 1.0.
        json!(d as i64)
    } else {
        json!(d)
    }
}

fn put_str(m: &mut Map<String, Value>, k: &str, v: &str) {
    if !v.is_empty() {
        m.insert(k.into(), json!(v));
    }
}

fn put_bytes(m: &mut Map<String, Value>, k: &str, v: &[u8]) {
    if !v.is_empty() {
        m.insert(k.into(), json!(B64.encode(v)));
    }
}

fn put_u64(m: &mut Map<String, Value>, k: &str, v: u64) {
    if v != 0 {
        m.insert(k.into(), json!(v.to_string()));
    }
}

fn put_u32(m: &mut Map<String, Value>, k: &str, v: u32) {
    if v != 0 {
        m.insert(k.into(), json!(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::common::AnyValue;

    #[test]
    fn gogo_conventions() {
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "GET /".into(),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            attributes: vec![KeyValue {
                key: "n".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(0)),
                }),
                ..Default::default()
            }],
            status: Some(Status {
                code: 2,
                message: "boom".into(),
            }),
            ..Default::default()
        };
        let trace = Trace {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let v = trace_v1(&trace);
        let s = &v["batches"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "AQEBAQEBAQEBAQEBAQEBAQ==");
        assert_eq!(s["kind"], "SPAN_KIND_SERVER");
        assert_eq!(s["startTimeUnixNano"], "1700000000000000000");
        assert!(s.get("endTimeUnixNano").is_none());
        assert_eq!(s["attributes"][0]["value"]["intValue"], "0");
        assert_eq!(s["status"]["code"], "STATUS_CODE_ERROR");
    }
}
