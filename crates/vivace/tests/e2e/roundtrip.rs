//! Real OpenTelemetry SDK exporters over OTLP gRPC, HTTP/protobuf (gzip) and HTTP/JSON; every
//! trace read back by ID over v1 and v2, protobuf and JSON, compared span by span.

use std::collections::BTreeMap;
use std::process::Command;

use prost::Message;
use vivace_proto::otlp::collector::ExportTraceServiceRequest;

use crate::model::{FullSpan, SpanSet, assert_same, flatten, hex, spans_of, trace_from_gogo};
use crate::support::{Server, clients_dir, python, read_trace};

async fn check_reads(
    server: &Server,
    trace_id: &[u8],
    want: &BTreeMap<(Vec<u8>, i32), FullSpan>,
    tenant_opt: Option<&str>,
) {
    let id = hex(trace_id);
    let r = read_trace(server, &id, tenant_opt).await;
    let v1 = r
        .v1_proto
        .unwrap_or_else(|| panic!("trace {id} not found over v1"));
    assert_same(&format!("{id} v1 protobuf"), want, &spans_of(&v1));
    let v1_json = r.v1_json.expect("v1 json found");
    assert!(
        v1_json.get("resourceSpans").is_none(),
        "v1 names the list batches"
    );
    assert_same(
        &format!("{id} v1 json"),
        want,
        &spans_of(&trace_from_gogo(&v1_json, "batches")),
    );
    let v2_resp = r
        .v2_proto
        .unwrap_or_else(|| panic!("trace {id} not found over v2"));
    let v2 = v2_resp.trace.expect("v2 trace");
    assert_eq!(v2_resp.status, 0, "complete");
    let v2_json = r.v2_json.expect("v2 json found");
    assert_same(&format!("{id} v2 protobuf"), want, &spans_of(&v2));
    assert_same(
        &format!("{id} v2 json"),
        want,
        &spans_of(&trace_from_gogo(&v2_json["trace"], "resourceSpans")),
    );
    assert!(
        v2_json["metrics"]["inspectedBytes"].is_string(),
        "int64 as string: {}",
        v2_json["metrics"]
    );
}

fn send(
    transport: &str,
    endpoint: &str,
    out: &std::path::Path,
    seed: u32,
    headers: &[&str],
) -> SpanSet {
    let mut cmd = Command::new(python());
    cmd.arg(clients_dir().join("otel_send.py"))
        .args([transport, endpoint])
        .arg(out)
        .args(["--traces", "25", "--seed", &seed.to_string()]);
    for h in headers {
        cmd.args(["--header", h]);
    }
    let o = cmd.output().expect("run python client");
    assert!(
        o.status.success(),
        "{transport} client failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let req = ExportTraceServiceRequest::decode(std::fs::read(out).unwrap().as_slice()).unwrap();
    let mut set = SpanSet::new();
    let n = flatten(&req.resource_spans, &mut set);
    assert!(
        n > 50 && set.len() == 25,
        "{n} spans in {} traces",
        set.len()
    );
    set
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_exports_over_every_transport_read_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), "");
    let grpc = format!("http://127.0.0.1:{}", server.grpc);
    let http = server.otlp_http_url();
    let mut sent = Vec::new();
    for (i, (transport, endpoint)) in [("grpc", &grpc), ("http", &http), ("json", &http)]
        .into_iter()
        .enumerate()
    {
        let set = send(
            transport,
            endpoint,
            &dir.path().join(format!("{transport}.pb")),
            i as u32 + 1,
            &[],
        );
        for (tid, spans) in &set {
            check_reads(&server, tid, spans, None).await;
        }
        sent.push(set);
    }
    // A short ID is left-padded; an unknown one is 404 with an empty body on v1 and v2.
    let r = read_trace(&server, "abc", None).await;
    assert!(
        r.v1_proto.is_none() && r.v1_json.is_none() && r.v2_proto.is_none() && r.v2_json.is_none()
    );
    let mut short_id = vec![0u8; 16];
    short_id[14..].copy_from_slice(&[0x0a, 0xbc]);
    let req = ExportTraceServiceRequest {
        resource_spans: vec![vivace_proto::otlp::trace::ResourceSpans {
            scope_spans: vec![vivace_proto::otlp::trace::ScopeSpans {
                spans: vec![vivace_proto::otlp::trace::Span {
                    trace_id: short_id,
                    span_id: vec![7; 8],
                    name: "short".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    assert_eq!(crate::support::post_otlp(&server, &req, None).await.0, 200);
    let r = read_trace(&server, "abc", None).await;
    assert!(
        r.v1_proto.is_some() && r.v2_proto.is_some(),
        "`abc` is left-padded to 000…0abc"
    );

    // Everything acknowledged survives a clean restart (replayed from the log).
    let (status, took) = server.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(took.as_secs_f64() < 5.0, "SIGTERM → exit took {took:?}");
    server.restart();
    for set in &sent {
        for (tid, spans) in set {
            check_reads(&server, tid, spans, None).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated_and_multi_tenant_reads_combine() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "multitenancy_enabled: true\n");
    let grpc = format!("http://127.0.0.1:{}", server.grpc);
    let a = send(
        "grpc",
        &grpc,
        &dir.path().join("a.pb"),
        11,
        &["x-scope-orgid=team-a"],
    );
    let b = send(
        "http",
        &server.otlp_http_url(),
        &dir.path().join("b.pb"),
        12,
        &["X-Scope-OrgID=team-b"],
    );
    for (tid, spans) in &a {
        check_reads(&server, tid, spans, Some("team-a")).await;
        check_reads(&server, tid, spans, Some("team-b|team-a")).await;
        let other = read_trace(&server, &hex(tid), Some("team-b")).await;
        assert!(
            other.v1_proto.is_none(),
            "team-b must not see team-a's trace"
        );
    }
    for (tid, spans) in &b {
        check_reads(&server, tid, spans, Some("team-b")).await;
    }
    // Reads need a tenant too.
    let r = crate::support::http()
        .get(server.api(&format!("/api/traces/{}", hex(a.keys().next().unwrap()))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
