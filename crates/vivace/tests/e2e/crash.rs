//! Crash safety: SIGKILL under concurrent load, several times; every acknowledged span must be
//! readable after restart, exactly once. Then a damaged log tail must give a clean restart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use rand::{Rng, SeedableRng, rngs::SmallRng};
use vivace_proto::otlp::collector::ExportTraceServiceRequest;
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

use crate::model::{hex, spans_of};
use crate::support::{Server, http, read_trace};

pub(crate) type Acked = Arc<Mutex<BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>>>>;

/// (trace ID, span ID) of each span in a request.
type SpanRefs = Vec<(Vec<u8>, Vec<u8>)>;

fn build(rng: &mut SmallRng, acked: &Acked) -> (ExportTraceServiceRequest, SpanRefs) {
    let mut spans = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        // A third of the time, add spans to a trace acknowledged earlier (maybe before a crash).
        let existing = if rng.random_bool(0.33) {
            let a = acked.lock().unwrap();
            let n = a.len();
            (n > 0)
                .then(|| a.keys().nth(rng.random_range(0..n)).cloned())
                .flatten()
        } else {
            None
        };
        let trace = existing.unwrap_or_else(|| (0..16).map(|_| rng.random()).collect());
        for _ in 0..rng.random_range(1..5) {
            let span_id: Vec<u8> = (0..8).map(|_| rng.random_range(1..=255)).collect();
            spans.push(Span {
                trace_id: trace.clone(),
                span_id: span_id.clone(),
                name: "crash-test".into(),
                start_time_unix_nano: 1,
                end_time_unix_nano: 2,
                ..Default::default()
            });
            ids.push((trace.clone(), span_id));
        }
    }
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (req, ids)
}

/// Sends until the server dies or `max` requests were acknowledged; records what was acked.
pub(crate) async fn sender(
    server_grpc: u16,
    server_http: u16,
    seed: u64,
    use_grpc: bool,
    acked: Acked,
    max: usize,
) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let client = http();
    let mut grpc = if use_grpc {
        vivace_proto::otlp::collector::trace_service_client::TraceServiceClient::connect(format!(
            "http://127.0.0.1:{server_grpc}"
        ))
        .await
        .ok()
    } else {
        None
    };
    for _ in 0..max {
        let (req, ids) = build(&mut rng, &acked);
        let ok = match grpc.as_mut() {
            Some(g) => g.export(req).await.is_ok(),
            None => client
                .post(format!("http://127.0.0.1:{server_http}/v1/traces"))
                .header("Content-Type", "application/x-protobuf")
                .body(req.encode_to_vec())
                .send()
                .await
                .is_ok_and(|r| r.status() == 200),
        };
        if !ok {
            return;
        }
        let mut a = acked.lock().unwrap();
        for (t, s) in ids {
            a.entry(t).or_default().insert(s);
        }
    }
}

/// Which blocks on disk hold the trace (live or compacted), for the failure message.
fn where_is(blocks: &std::path::Path, trace: &[u8]) -> String {
    let mut out = Vec::new();
    for dir in crate::support::block_dirs(blocks) {
        let state = if dir.join("meta.json").exists() {
            "live"
        } else if dir.join("meta.compacted.json").exists() {
            "compacted"
        } else {
            "no meta"
        };
        match vivace_block::trace_ids(&dir) {
            Ok(ids) => {
                let has = ids.iter().any(|i| i.0.as_slice() == trace);
                out.push(format!(
                    "{} {state} {} traces{}",
                    dir.display(),
                    ids.len(),
                    if has { " HAS IT" } else { "" }
                ));
            }
            Err(e) => out.push(format!("{} {state}: {e}", dir.display())),
        }
    }
    format!("blocks:\n{}", out.join("\n"))
}

pub(crate) async fn verify(server: &Server, acked: &Acked) -> usize {
    let want = acked.lock().unwrap().clone();
    let mut spans = 0;
    for (trace, span_ids) in &want {
        let got = read_trace(server, &hex(trace), None)
            .await
            .v1_proto
            .unwrap_or_else(|| {
                panic!(
                    "acknowledged trace {} lost; {}",
                    hex(trace),
                    where_is(&server.dir.join("data/blocks"), trace)
                )
            });
        // spans_of panics on a duplicated span.
        let got: BTreeSet<Vec<u8>> = spans_of(&got).into_keys().map(|(id, _)| id).collect();
        for s in span_ids {
            assert!(
                got.contains(s),
                "acknowledged span {} of trace {} lost",
                hex(s),
                hex(trace)
            );
        }
        spans += span_ids.len();
    }
    spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_span() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), "wal:\n  segment_bytes: 65536\n");
    let acked: Acked = Arc::default();
    let mut rng = SmallRng::seed_from_u64(42);
    for round in 0..4u64 {
        let mut tasks = Vec::new();
        for t in 0..4u64 {
            tasks.push(tokio::spawn(sender(
                server.grpc,
                server.otlp_http,
                round * 10 + t,
                t % 2 == 0,
                acked.clone(),
                150,
            )));
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..700))).await;
        server.kill();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
        }
        server.restart();
        let spans = verify(&server, &acked).await;
        assert!(
            spans > 0,
            "round {round}: load must have been acknowledged before the kill"
        );
    }

    // Damage the newest log segment's tail: the restart reports and truncates it, and every
    // acknowledged span is still there.
    server.kill();
    let wal = dir.path().join("data/wal");
    let mut segs: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segs.sort();
    let newest = segs
        .iter()
        .rev()
        .find(|p| std::fs::metadata(p).unwrap().len() > 8)
        .expect("a non-empty segment")
        .clone();
    let mut data = std::fs::read(&newest).unwrap();
    data.extend_from_slice(&[0x40, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]);
    std::fs::write(&newest, &data).unwrap();
    server.restart();
    verify(&server, &acked).await;
    assert!(
        server.log_text().contains("truncating"),
        "the damaged tail is reported"
    );
}

/// SIGKILL at random moments while blocks are being cut and uploaded every ~half second, the log
/// is being truncated behind them and blocks are compacted every 400 ms: after each restart every
/// acknowledged span is readable (from blocks, the replayed log, or both, deduplicated), and no
/// span appears twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_around_block_upload_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        "wal:\n  segment_bytes: 4096\nlive_store:\n  max_trace_idle: 100ms\n  max_trace_live: 500ms\n  max_block_duration: 300ms\n  complete_block_timeout: 500ms\ncompactor:\n  compaction:\n    compaction_cycle: 400ms\n",
    );
    let acked: Acked = Arc::default();
    let mut rng = SmallRng::seed_from_u64(7);
    for round in 0..5u64 {
        let mut tasks = Vec::new();
        for t in 0..2u64 {
            tasks.push(tokio::spawn(sender(
                server.grpc,
                server.otlp_http,
                100 + round * 10 + t,
                t % 2 == 0,
                acked.clone(),
                60,
            )));
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..2500))).await;
        server.kill();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
        }
        let polls = server.log_text().matches("block list polled").count();
        let t0 = std::time::Instant::now();
        server.restart();
        eprintln!("round {round}: restart {:?}", t0.elapsed());
        // The block list loads in the background after /ready; wait for this start's first poll.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while server.log_text().matches("block list polled").count() <= polls {
            assert!(
                std::time::Instant::now() < deadline,
                "no block list poll after restart"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let t0 = std::time::Instant::now();
        let n = verify(&server, &acked).await;
        eprintln!(
            "round {round}: verified {n} spans of {} traces in {:?}; log has {} blocks",
            acked.lock().unwrap().len(),
            t0.elapsed(),
            server.log_text().matches("block written").count()
        );
        assert!(n > 0, "round {round}");
    }
    assert!(
        server.log_text().contains("block written"),
        "blocks were cut during the test"
    );
    assert!(
        server.log_text().contains("blocks compacted"),
        "blocks were compacted during the test"
    );
}
