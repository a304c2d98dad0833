//! Reading a bucket Tempo wrote: point vivace's local backend at Tempo's vParquet5 and
//! vParquet4 blocks (testdata/tempo-blocks) and read traces by ID over the Tempo API, combined
//! with what the live-store holds.

use std::path::Path;
use std::time::{Duration, Instant};

use vivace_proto::otlp::collector::ExportTraceServiceRequest;
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

use crate::model::spans_of;
use crate::support::{Server, post_otlp, read_trace};

fn copy_block(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for f in std::fs::read_dir(src).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dst.join(f.file_name().unwrap())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_in_tempo_blocks_are_readable_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let testdata = std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("../../testdata/tempo-blocks");
    // vParquet5 for tenant single-tenant, vParquet4 for tenant "old".
    for (version, tenant) in [("vParquet5", "single-tenant"), ("vParquet4", "old")] {
        let src = std::fs::read_dir(testdata.join(version))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        copy_block(&src, &bucket.join(tenant).join(src.file_name().unwrap()));
    }
    let extra = format!(
        "storage:\n  trace:\n    backend: local\n    local:\n      path: {}\n    wal:\n      path: /var/tempo/wal\n",
        bucket.display()
    );
    let server = Server::start(dir.path(), &extra);
    assert!(
        server.log_text().contains("storage.trace.wal"),
        "Tempo keys vivace ignores are reported"
    );

    // The list is polled in the background right after start.
    let t1 = "00000000000000000000000000005431";
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        let r = read_trace(&server, t1, None).await;
        if r.v1_proto.is_some() || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let v1 = found.v1_proto.expect("S/T1 from the vParquet5 block");
    let spans = spans_of(&v1);
    assert_eq!(spans.len(), 7);
    let mut names: Vec<&str> = spans.values().map(|s| s.span.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "GET /", "auth", "check", "db-call", "disk", "query", "render"
        ]
    );
    let v2 = found.v2_proto.expect("v2").trace.expect("trace");
    assert_eq!(spans_of(&v2).len(), 7);
    assert!(found.v1_json.is_some() && found.v2_json.is_some());

    // A time range that misses the block finds nothing; one that covers it finds the trace.
    let r = crate::support::http()
        .get(server.api(&format!("/api/traces/{t1}?start=1&end=1000")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = crate::support::http()
        .get(server.api(&format!("/api/traces/{t1}?start=1000&end=4000000000")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Spans of the same trace still arriving are combined with the block's.
    let mut tid = vec![0u8; 16];
    tid[14..].copy_from_slice(&[0x54, 0x31]);
    let late = Span {
        trace_id: tid,
        span_id: vec![0x42; 8],
        name: "late".into(),
        ..Default::default()
    };
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![late],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    assert_eq!(post_otlp(&server, &req, None).await.0, 200);
    let combined = read_trace(&server, t1, None).await.v1_proto.unwrap();
    assert_eq!(spans_of(&combined).len(), 8);

    // Tenants see only their own blocks (the vParquet4 block belongs to "old").
    let multi = tempfile::tempdir().unwrap();
    let server2 = Server::start(
        multi.path(),
        &format!("multitenancy_enabled: true\n{extra}"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if read_trace(&server2, t1, Some("old"))
            .await
            .v1_proto
            .is_some()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "vParquet4 block of tenant old not readable"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        spans_of(
            &read_trace(&server2, t1, Some("old"))
                .await
                .v1_proto
                .unwrap()
        )
        .len(),
        7
    );
    assert!(
        read_trace(&server2, t1, Some("someone-else"))
            .await
            .v1_proto
            .is_none()
    );

    // Searches of the vParquet4 block (read whole: no span-only columns, no needle read),
    // over a day around its time range (2026-11-23T08:24:26Z–08:25:12Z).
    for q in [r#"{ name = "GET /" }"#, "{ } | count() > 1", "{ }"] {
        let r = crate::support::http()
            .get(server2.api("/api/search"))
            .header("X-Scope-OrgID", "old")
            .query(&[("q", q), ("start", "1795379066"), ("end", "1795465466")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{q}");
        let body: serde_json::Value = r.json().await.unwrap();
        let ids: Vec<&str> = body["traces"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["traceID"].as_str())
            .collect();
        assert!(ids.contains(&"5431"), "{q}: {body}");
    }
}
