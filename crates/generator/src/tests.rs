//! The generator end to end in memory: queue records in, remote-write bodies out, with settings
//! from the tenant's overrides.

use bytes::Bytes;
use prost::Message;
use vivace_common::overrides::{Overrides, OverridesConfig};
use vivace_proto::otlp::common::{AnyValue, KeyValue, any_value};
use vivace_proto::otlp::resource::Resource;
use vivace_proto::otlp::trace::span::SpanKind;
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};
use vivace_proto::tempopb::Trace;
use vivace_queue::{Offset, QueueRecord};

use super::*;
use crate::remote_write::{TimeSeries, WriteRequest};

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..KeyValue::default()
    }
}

fn rs(attrs: Vec<KeyValue>, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: attrs,
            ..Resource::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }
}

fn record(tenant: &str, trace: Trace) -> Vec<u8> {
    QueueRecord {
        tenant: tenant.into(),
        ids: vec![Bytes::from(vec![1u8; 16])],
        traces: vec![Bytes::from(trace.encode_to_vec())],
    }
    .encode_to_vec()
}

fn decode(body: &[u8]) -> Vec<TimeSeries> {
    let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
    WriteRequest::decode(raw.as_slice()).unwrap().timeseries
}

fn label<'a>(t: &'a TimeSeries, name: &str) -> Option<&'a str> {
    t.labels
        .iter()
        .find(|l| l.name == name)
        .map(|l| l.value.as_str())
}

fn generator(defaults_yaml: &str) -> Generator {
    let cfg: OverridesConfig = serde_yaml_ng::from_str(defaults_yaml).unwrap();
    let overrides = Overrides::new(&cfg).unwrap();
    Generator::new(
        GeneratorConfig::default(),
        overrides,
        GeneratorMetrics::default(),
    )
}

#[test]
fn messaging_latency_target_info_and_tenant_settings_come_from_overrides() {
    let mut g = generator(
        "defaults:\n  metrics_generator:\n    processors: [service-graphs, span-metrics]\n    processor:\n      \
         service_graphs:\n        enable_messaging_system_latency_histogram: true\n        enable_virtual_node_label: true\n      \
         span_metrics:\n        enable_target_info: true\n",
    );
    let ms = 1_000_000u64;
    let producer = Span {
        span_id: vec![2; 8],
        name: "publish".into(),
        kind: SpanKind::Producer as i32,
        start_time_unix_nano: 100 * ms,
        end_time_unix_nano: 110 * ms,
        ..Span::default()
    };
    let consumer = Span {
        span_id: vec![3; 8],
        parent_span_id: vec![2; 8],
        name: "process".into(),
        kind: SpanKind::Consumer as i32,
        start_time_unix_nano: 135 * ms,
        end_time_unix_nano: 140 * ms,
        ..Span::default()
    };
    let trace = Trace {
        resource_spans: vec![
            rs(
                vec![
                    kv("service.name", "orders"),
                    kv("service.namespace", "shop"),
                    kv("service.instance.id", "orders-1"),
                    kv("deployment.environment", "prod"),
                ],
                vec![producer],
            ),
            rs(vec![kv("service.name", "billing")], vec![consumer]),
        ],
    };
    g.consume(1, &record("t", trace), 1_000);
    let c = g.collect(Offset(7), 2_000);
    assert_eq!(c.offset, Offset(7));
    assert_eq!(c.writes.len(), 1);
    assert_eq!(c.writes[0].tenant, "t");
    let series = decode(&c.writes[0].body);
    let named = |n: &str| -> Vec<&TimeSeries> {
        series
            .iter()
            .filter(|t| label(t, "__name__") == Some(n))
            .collect()
    };
    // The messaging edge: producer end → consumer start = 25 ms.
    let total = named("traces_service_graph_request_total");
    assert_eq!(total.len(), 1);
    assert_eq!(label(total[0], "connection_type"), Some("messaging_system"));
    assert_eq!(label(total[0], "client"), Some("orders"));
    assert_eq!(label(total[0], "server"), Some("billing"));
    assert_eq!(
        label(total[0], "virtual_node"),
        None,
        "empty labels are left out"
    );
    let lag = named("traces_service_graph_request_messaging_system_seconds_sum");
    assert_eq!(lag.len(), 1);
    assert!((lag[0].samples.last().unwrap().value - 0.025).abs() < 1e-9);
    // Target info: job and instance from the service, other resource attributes as labels.
    let info = named("traces_target_info");
    assert_eq!(info.len(), 1, "billing has no attributes beyond its name");
    assert_eq!(label(info[0], "job"), Some("shop/orders"));
    assert_eq!(label(info[0], "instance"), Some("orders-1"));
    assert_eq!(label(info[0], "deployment_environment"), Some("prod"));
    let calls = named("traces_spanmetrics_calls_total");
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().any(|t| label(t, "job") == Some("shop/orders")));
    // A tenant with no processors is not processed at all.
    let mut g = generator("defaults: {}\n");
    g.consume(1, &record("t", Trace::default()), 1_000);
    assert!(g.collect(Offset(1), 2_000).writes.is_empty());
}

#[test]
fn filter_policies_keep_only_matching_spans() {
    let mut g = generator(
        "defaults:\n  metrics_generator:\n    processors: [span-metrics-count]\n    processor:\n      span_metrics:\n        \
         filter_policies:\n          - include:\n              match_type: regex\n              attributes:\n                - key: kind\n                  value: SPAN_KIND_(SERVER|CONSUMER)\n            \
         exclude:\n              match_type: strict\n              attributes:\n                - key: resource.service.name\n                  value: healthcheck\n",
    );
    let span = |kind: SpanKind| Span {
        span_id: vec![kind as u8 + 1; 8],
        kind: kind as i32,
        name: "op".into(),
        ..Span::default()
    };
    let trace = Trace {
        resource_spans: vec![
            rs(
                vec![kv("service.name", "api")],
                vec![span(SpanKind::Server), span(SpanKind::Client)],
            ),
            rs(
                vec![kv("service.name", "healthcheck")],
                vec![span(SpanKind::Server)],
            ),
        ],
    };
    g.consume(1, &record("t", trace), 1_000);
    let series = decode(&g.collect(Offset(1), 2_000).writes[0].body);
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(label(&series[0], "service"), Some("api"));
    assert_eq!(label(&series[0], "span_kind"), Some("SPAN_KIND_SERVER"));
}
