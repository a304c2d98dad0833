//! The metrics generator against a real Prometheus: known traces sent with the OpenTelemetry SDK
//! come back as Tempo's span-metrics and service-graph series with exact values; per-tenant
//! limits; Prometheus down and up; vivace killed between collections.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Prometheus, Server, clients_dir, get_text, python};

/// Sends `rounds` traces of the known graph (see clients/otel_graph.py) as `tenant`.
fn send_graph(server: &Server, tenant: &str, rounds: u32, extra: &[&str]) {
    let o = Command::new(python())
        .arg(clients_dir().join("otel_graph.py"))
        .arg(format!("http://127.0.0.1:{}", server.grpc))
        .args(["--rounds", &rounds.to_string()])
        .args(["--header", &format!("x-scope-orgid={tenant}")])
        .args(extra)
        .output()
        .expect("run python client");
    assert!(
        o.status.success(),
        "client failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn config(prom: &Prometheus, overrides_file: &std::path::Path) -> String {
    format!(
        "multitenancy_enabled: true\n\
         metrics_generator:\n  registry:\n    collection_interval: 1s\n    external_labels:\n      source: vivace\n    inject_tenant_id_as: tenant\n  \
         storage:\n    path: /tmp/ignored\n    remote_write:\n      - url: {}\n        queue_config:\n          min_backoff: 50ms\n          max_backoff: 200ms\n  \
         processor:\n    service_graphs:\n      wait: 1s\n    span_metrics:\n      dimensions: [host.id]\n\
         overrides:\n  defaults:\n    metrics_generator:\n      processors: [service-graphs, span-metrics, host-info]\n  \
         per_tenant_override_config: {}\n  per_tenant_override_period: 1s\n",
        prom.write_url(),
        overrides_file.display()
    )
}

/// Polls `q` until its single value is `want` (bounded), returning the series' labels.
async fn wait_value(prom: &Prometheus, q: &str, want: f64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = prom.query(q).await;
        if r.len() == 1 && r[0].1 == want {
            return r[0].0.clone();
        }
        assert!(Instant::now() < deadline, "{q}: want {want}, have {r:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A counter's total over its samples, resets included (Prometheus's counter semantics).
fn counted(samples: &[f64]) -> f64 {
    let mut total = 0.0;
    let mut prev = 0.0;
    for &v in samples {
        total += if v >= prev { v - prev } else { v };
        prev = v;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_metrics_and_service_graph_reach_prometheus_with_tempo_names() {
    let dir = tempfile::tempdir().unwrap();
    let prom = Prometheus::start(&dir.path().join("prom"));
    let ovr = dir.path().join("overrides.yaml");
    std::fs::write(
        &ovr,
        "overrides:\n  limited:\n    metrics_generator:\n      processors: [span-metrics]\n      max_active_series: 3\n  \
         cardinal:\n    metrics_generator:\n      processors: [span-metrics-count]\n      max_cardinality_per_label: 3\n",
    )
    .unwrap();
    let server = Server::start(dir.path(), &config(&prom, &ovr));
    // 20 rounds, checkout's server span failing in every 4th (5 errors).
    send_graph(&server, "team-a", 20, &["--errors-every", "4"]);

    let t = r#"tenant="team-a",source="vivace""#;
    // Span metrics: calls by service, name, kind and status; the dimension from the resource.
    let labels = wait_value(
        &prom,
        &format!(r#"traces_spanmetrics_calls_total{{{t},service="frontend",span_name="GET /checkout",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET"}}"#),
        20.0,
    )
    .await;
    assert_eq!(labels["host_id"], "host-1", "{labels}");
    wait_value(
        &prom,
        &format!(r#"traces_spanmetrics_calls_total{{{t},service="checkout",span_name="POST /pay",status_code="STATUS_CODE_ERROR"}}"#),
        5.0,
    )
    .await;
    wait_value(
        &prom,
        &format!(r#"sum(traces_spanmetrics_calls_total{{{t}}})"#),
        100.0,
    )
    .await;
    // Latency histogram, Tempo's default buckets: the 40 ms server spans fall in (0.032, 0.064].
    let srv =
        format!(r#"{t},service="checkout",span_name="POST /pay",span_kind="SPAN_KIND_SERVER""#);
    wait_value(
        &prom,
        &format!(r#"sum(traces_spanmetrics_latency_bucket{{{srv},le="0.032"}})"#),
        0.0,
    )
    .await;
    wait_value(
        &prom,
        &format!(r#"sum(traces_spanmetrics_latency_bucket{{{srv},le="0.064"}})"#),
        20.0,
    )
    .await;
    wait_value(
        &prom,
        &format!(r#"sum(traces_spanmetrics_latency_bucket{{{srv},le="+Inf"}})"#),
        20.0,
    )
    .await;
    wait_value(
        &prom,
        &format!(r#"sum(traces_spanmetrics_latency_count{{{srv}}})"#),
        20.0,
    )
    .await;
    let sum = prom
        .query(&format!(r#"sum(traces_spanmetrics_latency_sum{{{srv}}})"#))
        .await;
    assert!((sum[0].1 - 0.8).abs() < 1e-6, "20 × 40 ms: {sum:?}");
    let buckets = prom
        .query(&format!(
            r#"traces_spanmetrics_latency_bucket{{{srv},status_code="STATUS_CODE_UNSET"}}"#
        ))
        .await;
    assert_eq!(buckets.len(), 15, "14 buckets and +Inf: {buckets:?}");
    let size = prom
        .query(&format!(r#"sum(traces_spanmetrics_size_total{{{t}}})"#))
        .await;
    assert!(size[0].1 > 100.0 * 30.0, "span bytes counted: {size:?}");

    // Service graph: a client/server pair, a database, virtual nodes on both sides.
    let g = |c: &str, s: &str, ct: &str| {
        format!(
            r#"traces_service_graph_request_total{{{t},client="{c}",server="{s}",connection_type="{ct}"}}"#
        )
    };
    wait_value(&prom, &g("frontend", "checkout", ""), 20.0).await;
    wait_value(&prom, &g("checkout", "orders", "database"), 20.0).await;
    wait_value(&prom, &g("user", "frontend", "virtual_node"), 20.0).await;
    wait_value(&prom, &g("checkout", "rates-api", "virtual_node"), 20.0).await;
    wait_value(
        &prom,
        &format!(r#"traces_service_graph_request_failed_total{{{t},client="frontend",server="checkout"}}"#),
        5.0,
    )
    .await;
    let edge = format!(r#"{t},client="frontend",server="checkout""#);
    // Server side 40 ms, client side 50 ms: both in (0.0, 0.1] of Tempo's 0.1 × 2^n buckets.
    wait_value(
        &prom,
        &format!(r#"traces_service_graph_request_server_seconds_bucket{{{edge},le="0.1"}}"#),
        20.0,
    )
    .await;
    wait_value(
        &prom,
        &format!(r#"traces_service_graph_request_client_seconds_count{{{edge}}}"#),
        20.0,
    )
    .await;
    let b = prom
        .query(&format!(
            r#"traces_service_graph_request_client_seconds_bucket{{{edge}}}"#
        ))
        .await;
    assert_eq!(b.len(), 9, "8 buckets and +Inf: {b:?}");
    let cs = prom
        .query(&format!(
            r#"traces_service_graph_request_client_seconds_sum{{{edge}}}"#
        ))
        .await;
    assert!((cs[0].1 - 1.0).abs() < 1e-6, "20 × 50 ms: {cs:?}");
    // Host info from host.id and k8s.node.name.
    wait_value(
        &prom,
        &format!(r#"traces_host_info{{{t},grafana_host_id="host-1"}}"#),
        1.0,
    )
    .await;
    wait_value(
        &prom,
        &format!(r#"traces_host_info{{{t},grafana_host_id="node-a"}}"#),
        1.0,
    )
    .await;

    // max_active_series: 3 for tenant `limited`: new series' samples go to one overflow series.
    send_graph(&server, "limited", 10, &[]);
    let lim = r#"tenant="limited""#;
    let over = prom
        .query(&format!(
            r#"traces_spanmetrics_calls_total{{{lim},metric_overflow="true"}}"#
        ))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut over = over;
    while over.is_empty() {
        assert!(Instant::now() < deadline, "no overflow series");
        tokio::time::sleep(Duration::from_millis(250)).await;
        over = prom
            .query(&format!(r#"{{{lim},metric_overflow="true"}}"#))
            .await;
    }
    let held = prom
        .query(&format!(
            r#"{{{lim},metric_overflow!="true",__name__=~"traces_spanmetrics_.*"}}"#
        ))
        .await;
    assert!(held.len() <= 3, "series held under the limit: {held:?}");

    // max_cardinality_per_label: 3 for tenant `cardinal`: span names past the third distinct
    // one become __cardinality_overflow__, and every span is still counted.
    send_graph(&server, "cardinal", 12, &["--names", "6"]);
    let card = r#"tenant="cardinal""#;
    wait_value(
        &prom,
        &format!("sum(traces_spanmetrics_calls_total{{{card}}})"),
        60.0,
    )
    .await;
    let names = prom
        .query(&format!(
            "count by (span_name) (traces_spanmetrics_calls_total{{{card}}})"
        ))
        .await;
    let mut names: Vec<String> = names
        .iter()
        .map(|(l, _)| l["span_name"].as_str().unwrap_or("").to_string())
        .collect();
    names.sort();
    assert_eq!(
        names.len(),
        4,
        "three names and the overflow value: {names:?}"
    );
    assert!(
        names.contains(&"__cardinality_overflow__".to_string()),
        "{names:?}"
    );

    // vivace's own metrics count what the limits and the edge store did.
    let m = get_text(&server.api("/metrics")).await;
    for want in [
        r#"vivace_generator_series_limited_total{tenant="limited",reason="max_active_series"}"#,
        r#"vivace_generator_series_limited_total{tenant="cardinal",reason="max_cardinality_per_label"}"#,
        r#"vivace_generator_service_graph_edges_total{tenant="team-a",outcome="paired"} 20"#,
        r#"vivace_generator_service_graph_edges_total{tenant="team-a",outcome="database"} 20"#,
        r#"vivace_generator_service_graph_edges_total{tenant="team-a",outcome="virtual_node"} 40"#,
        r#"vivace_generator_spans_received_total{tenant="team-a"} 100"#,
    ] {
        assert!(m.contains(want), "no {want} in /metrics:\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_outage_and_sigkill_neither_lose_nor_double_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut prom = Prometheus::start(&dir.path().join("prom"));
    let ovr = dir.path().join("overrides.yaml");
    std::fs::write(&ovr, "overrides: {}\n").unwrap();
    let mut server = Server::start(dir.path(), &config(&prom, &ovr));
    let sel = r#"traces_spanmetrics_calls_total{tenant="t",service="frontend",span_name="GET /checkout"}"#;

    send_graph(&server, "t", 10, &[]);
    wait_value(&prom, sel, 10.0).await;

    // Prometheus down: collections queue and retry; back up, the backlog is delivered.
    prom.kill();
    send_graph(&server, "t", 7, &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(server.log_text().contains("remote write failed; retrying"));
    prom.restart();
    wait_value(&prom, sel, 17.0).await;

    // Down again, spans counted but not delivered, then vivace is killed: the restart re-reads
    // what no delivered sample counted, and the counter (reset) carries on from there.
    prom.kill();
    send_graph(&server, "t", 5, &[]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.kill();
    prom.restart();
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = prom.samples(sel, "10m").await;
        let total = counted(&s);
        if total == 22.0 {
            break;
        }
        assert!(total < 22.0, "counted twice: {s:?}");
        assert!(Instant::now() < deadline, "want 22 counted, samples {s:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let log = server.log_text();
    assert!(log.contains("metrics generator consuming"), "{log}");
}
