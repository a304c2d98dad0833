//! The object store is unreachable when vivace starts (moto is started late), under load:
//! exports are still acknowledged, completed traces beyond `max_complete_bytes` leave memory (the
//! write-ahead log keeps them), `/metrics` and `/ready` show the backlog, and once the bucket is
//! reachable every trace reaches a block: no span lost.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vivace_proto::otlp::collector::ExportTraceServiceRequest;
use vivace_proto::otlp::common::{AnyValue, KeyValue, any_value};
use vivace_proto::otlp::resource::Resource;
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

use crate::support::{Server, free_port, http, post_otlp, python};

const BATCHES: u32 = 40;
const TRACES_PER_BATCH: u32 = 50;
const SPANS_PER_TRACE: u32 = 10;

fn batch(b: u32) -> ExportTraceServiceRequest {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let kv = |k: &str, v: String| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
        ..Default::default()
    };
    let mut spans = Vec::new();
    for t in 0..TRACES_PER_BATCH {
        let trace_id = [&b.to_be_bytes()[..], &t.to_be_bytes()[..], &[7u8; 8][..]].concat();
        for s in 0..SPANS_PER_TRACE {
            spans.push(Span {
                trace_id: trace_id.clone(),
                span_id: [&t.to_be_bytes()[..], &(s + 1).to_be_bytes()[..]].concat(),
                name: format!("op-{s}"),
                start_time_unix_nano: now - 2_000_000_000 + u64::from(s) * 1000,
                end_time_unix_nano: now - 1_000_000_000,
                attributes: vec![
                    kv("batch", b.to_string()),
                    // Little redundancy, so that the memory bound is passed quickly.
                    kv(
                        "payload",
                        (0..12u64)
                            .map(|i| {
                                format!(
                                    "{:016x}",
                                    (u64::from(b) << 40
                                        | u64::from(t) << 20
                                        | u64::from(s) << 4
                                        | i)
                                        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                                )
                            })
                            .collect(),
                    ),
                ],
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "outage".into())],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn metric(server: &Server, name: &str) -> f64 {
    let text = http()
        .get(server.api("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn ready_body(server: &Server) -> String {
    http()
        .get(server.api("/ready"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_started_late_loses_nothing_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bound = 200_000u64;
    let server = Server::start(
        dir.path(),
        &format!(
            "live_store:\n  max_trace_idle: 200ms\n  max_block_duration: 500ms\n  complete_block_timeout: 1s\n  max_complete_bytes: {bound}\n\
             storage:\n  trace:\n    backend: s3\n    s3:\n      bucket: tempo\n      endpoint: 127.0.0.1:{port}\n      region: us-east-1\n      access_key: test\n      secret_key: test\n      insecure: true\n      forcepathstyle: true\n"
        ),
    );
    // Under load with nowhere to write blocks: every export is still acknowledged.
    for b in 0..BATCHES {
        assert_eq!(
            post_otlp(&server, &batch(b), None).await.0,
            200,
            "batch {b}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spilled = metric(&server, "vivace_live_store_spilled_traces").await;
    assert!(spilled > 0.0, "completed traces were released to the log");
    let held = metric(&server, "vivace_live_store_complete_bytes").await;
    assert!(
        held <= bound as f64,
        "memory of completed traces {held} > {bound}"
    );
    assert!(
        metric(&server, "vivace_flush_failures").await > 0.0
            || metric(&server, "vivace_flush_backlog_seconds").await > 0.0
    );
    let ready = ready_body(&server).await;
    assert!(ready.starts_with("ready\nbacklog: "), "{ready}");

    // The bucket appears.
    let mut moto = Command::new(python())
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto (installed by scripts/test.sh)");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http()
            .put(format!("http://127.0.0.1:{port}/tempo"))
            .send()
            .await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "moto did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The backlog drains: the released traces are read back from the log into blocks.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = metric(&server, "vivace_live_store_spilled_traces").await
            + metric(&server, "vivace_live_store_unflushed_bytes").await;
        if left == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "backlog not drained in 120 s ({left} left); log:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        server
            .log_text()
            .contains("block of released traces written from the queue")
    );
    assert_eq!(ready_body(&server).await, "ready\n");

    // Every span is in a block (or still in memory), counted once.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let v: serde_json::Value = http()
        .get(server.api("/api/metrics/query"))
        .query(&[
            (
                "q",
                "{ resource.service.name = \"outage\" } | count_over_time()".to_string(),
            ),
            ("start", (now - 600).to_string()),
            ("end", (now + 1).to_string()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let counted: f64 = v["series"][0]["value"].as_f64().unwrap_or(0.0);
    let traces = v["metrics"]["inspectedTraces"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        counted >= f64::from(BATCHES * TRACES_PER_BATCH * SPANS_PER_TRACE),
        "{counted} spans counted of {}: {v} ({traces})",
        BATCHES * TRACES_PER_BATCH * SPANS_PER_TRACE
    );
    // And by ID, whole: a sample across the load.
    for b in (0..BATCHES).step_by(7) {
        let id =
            hex::encode([&b.to_be_bytes()[..], &3u32.to_be_bytes()[..], &[7u8; 8][..]].concat());
        let t: serde_json::Value = http()
            .get(server.api(&format!("/api/v2/traces/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let spans: usize = t["trace"]["resourceSpans"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
            .map(|s| s["spans"].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(spans, SPANS_PER_TRACE as usize, "trace {id}");
    }
    let _ = moto.kill();
    let _ = moto.wait();
}
