//! The object store unreachable under load — not yet started (moto started late), or gone for a
//! while mid-run (a TCP proxy in front of moto stopped and restarted): exports are still
//! acknowledged, completed traces beyond `max_complete_bytes` leave memory (the write-ahead log
//! keeps them), `/metrics` and `/ready` show the backlog, and once the bucket is reachable again
//! every trace reaches a block: no span lost.

use std::time::{Duration, Instant};

use vivace_proto::otlp::collector::ExportTraceServiceRequest;
use vivace_proto::otlp::common::{AnyValue, KeyValue, any_value};
use vivace_proto::otlp::resource::Resource;
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

use crate::support::{JsonBody, Server, free_port, get_text, http, moto, post_otlp};

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
    get_text(&server.api("/metrics"))
        .await
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn ready_body(server: &Server) -> String {
    get_text(&server.api("/ready")).await
}

const BOUND: u64 = 200_000;

/// vivace on S3 at `endpoint_port`, with fast block cutting and a small memory bound.
fn start(dir: &std::path::Path, endpoint_port: u16) -> Server {
    Server::start(
        dir,
        &format!(
            "live_store:\n  max_trace_idle: 200ms\n  max_block_duration: 500ms\n  complete_block_timeout: 1s\n  max_complete_bytes: {BOUND}\n\
             storage:\n  trace:\n    backend: s3\n    s3:\n      bucket: tempo\n      endpoint: 127.0.0.1:{endpoint_port}\n      region: us-east-1\n      access_key: test\n      secret_key: test\n      insecure: true\n      forcepathstyle: true\n"
        ),
    )
}

async fn send(server: &Server, batches: std::ops::Range<u32>) {
    for b in batches {
        assert_eq!(post_otlp(server, &batch(b), None).await.0, 200, "batch {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// While blocks cannot be written: released traces, memory within the bound, a backlog shown.
async fn assert_backlog_bounded(server: &Server) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spilled = metric(server, "vivace_live_store_spilled_traces").await;
    assert!(spilled > 0.0, "completed traces were released to the log");
    let held = metric(server, "vivace_live_store_complete_bytes").await;
    assert!(
        held <= BOUND as f64,
        "memory of completed traces {held} > {BOUND}"
    );
    let ready = ready_body(server).await;
    assert!(ready.starts_with("ready\nbacklog: "), "{ready}");
}

/// Starts moto on `port` and creates the bucket.
async fn moto_with_bucket(port: u16) -> crate::support::Emulator {
    let m = moto(port);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http()
            .put(format!("http://127.0.0.1:{port}/tempo"))
            .send()
            .await
            && r.status().is_success()
        {
            return m;
        }
        assert!(Instant::now() < deadline, "moto did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Once the bucket answers: the backlog drains and every span of `batches` is stored once.
async fn assert_drained_and_whole(server: &Server, batches: u32) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = metric(server, "vivace_live_store_spilled_traces").await
            + metric(server, "vivace_live_store_unflushed_bytes").await;
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
    assert_eq!(ready_body(server).await, "ready\n");
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
        .json_body()
        .await;
    let counted: f64 = v["series"][0]["value"].as_f64().unwrap_or(0.0);
    let sent = batches * TRACES_PER_BATCH * SPANS_PER_TRACE;
    // At least every span: a block whose upload was cut after it landed is written again, and
    // its copy is counted until compaction merges them (reads by ID deduplicate, below).
    assert!(
        counted >= f64::from(sent),
        "{counted} of {sent} spans counted: {v}"
    );
    // And by ID, whole: a sample across the load.
    for b in (0..batches).step_by(7) {
        let id =
            hex::encode([&b.to_be_bytes()[..], &3u32.to_be_bytes()[..], &[7u8; 8][..]].concat());
        let t: serde_json::Value = http()
            .get(server.api(&format!("/api/v2/traces/{id}")))
            .json_body()
            .await;
        let spans: usize = t["trace"]["resourceSpans"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
            .map(|s| s["spans"].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(spans, SPANS_PER_TRACE as usize, "trace {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_started_late_loses_nothing_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start(dir.path(), port);
    // Under load with nowhere to write blocks: every export is still acknowledged.
    send(&server, 0..BATCHES).await;
    assert_backlog_bounded(&server).await;
    // A write fails once the object store client has spent its retries (seconds).
    let deadline = Instant::now() + Duration::from_secs(90);
    while metric(&server, "vivace_flush_failures").await == 0.0 {
        assert!(
            Instant::now() < deadline,
            "no failed block write counted in 90 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _moto = moto_with_bucket(port).await;
    assert_drained_and_whole(&server, BATCHES).await;
}

/// A TCP proxy in front of the bucket that can be stopped (connections cut, the port refusing)
/// and started again on the same port.
struct Proxy {
    port: u16,
    upstream: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(port: u16, upstream: u16) -> Proxy {
        let mut p = Proxy {
            port,
            upstream,
            task: None,
        };
        p.resume().await;
        p
    }

    async fn resume(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        let upstream = self.upstream;
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                conns.spawn(async move {
                    if let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }

    /// Stops listening and cuts every connection (the tasks are dropped with the accept loop).
    async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_gone_mid_run_loses_nothing_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let moto_port = free_port();
    let _moto = moto_with_bucket(moto_port).await;
    let mut proxy = Proxy::start(free_port(), moto_port).await;
    let server = start(dir.path(), proxy.port);
    // Blocks are written while the bucket answers…
    send(&server, 0..10).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(server.log_text().contains("block written"));
    // …then it is gone for a while, under load…
    proxy.stop().await;
    send(&server, 10..BATCHES).await;
    assert_backlog_bounded(&server).await;
    // …and back.
    proxy.resume().await;
    assert_drained_and_whole(&server, BATCHES).await;
}
