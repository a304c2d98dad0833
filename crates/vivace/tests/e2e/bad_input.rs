//! Bad input and limits: each gets the documented error, nothing acknowledged is lost, and the
//! server stays healthy.

use std::io::Write;

use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic_types::StatusExt;
use vivace_proto::otlp::collector::ExportTraceServiceRequest;
use vivace_proto::otlp::common::{AnyValue, KeyValue, any_value};
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};
use vivace_proto::tempopb::RpcStatus;

use crate::model::{hex, spans_of};
use crate::support::{Server, http, post_otlp, read_trace};

fn span(trace: &[u8], id: u8, attr_len: usize) -> Span {
    Span {
        trace_id: trace.to_vec(),
        span_id: vec![id; 8],
        name: format!("span-{id}"),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_100_000_000,
        attributes: vec![KeyValue {
            key: "payload".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("x".repeat(attr_len))),
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn tid(b: u8) -> Vec<u8> {
    let mut t = vec![0xab; 16];
    t[15] = b;
    t
}

async fn post_raw(
    server: &Server,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut r = http().post(server.otlp_http_url()).body(body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let hs = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    (status, hs, resp.bytes().await.unwrap().to_vec())
}

const PB: (&str, &str) = ("Content-Type", "application/x-protobuf");

fn rpc_status(body: &[u8]) -> RpcStatus {
    RpcStatus::decode(body).expect("error body is a google.rpc.Status")
}

async fn metrics_text(server: &Server) -> String {
    let r = http().get(server.api("/metrics")).send().await.unwrap();
    r.text().await.unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_leave_the_server_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        "max_recv_msg_size_mib: 1",
        "max_request_body_size: 1048576",
        "",
    );

    // Malformed protobuf and JSON.
    let (st, _, body) = post_raw(&server, vec![0xff, 0xff, 0xff, 0x07], &[PB]).await;
    assert_eq!(st, 400);
    let s = rpc_status(&body);
    assert_eq!(s.code, 3);
    assert!(s.message.contains("failed to unmarshal"), "{}", s.message);
    // A string that is not UTF-8: the whole request is refused, naming the field.
    let mut bad = span(&tid(9), 9, 10);
    bad.name = "\u{7f}".into();
    let mut body = request(vec![bad]).encode_to_vec();
    // Span.name (field 5, one byte long).
    let at = body.windows(3).position(|w| w == [0x2a, 1, 0x7f]).unwrap();
    body[at + 2] = 0xff;
    let (st, _, body) = post_raw(&server, body, &[PB]).await;
    assert_eq!(st, 400);
    let s = rpc_status(&body);
    assert!(
        s.message.contains("UTF-8") && s.message.contains("Span.name"),
        "{}",
        s.message
    );
    let (st, _, body) = post_raw(
        &server,
        b"{\"resourceSpans\": [".to_vec(),
        &[("Content-Type", "application/json")],
    )
    .await;
    assert_eq!(st, 400);
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["code"], 3);
    let (st, _, _) = post_raw(
        &server,
        b"hello".to_vec(),
        &[("Content-Type", "text/plain")],
    )
    .await;
    assert_eq!(st, 415);

    // A bad ID anywhere rejects the whole request, over HTTP and gRPC, with Tempo's message.
    let good = span(&tid(1), 1, 10);
    let mut short = span(&tid(2), 2, 10);
    short.trace_id.truncate(8);
    let (st, _, body) = post_raw(
        &server,
        request(vec![good.clone(), short.clone()]).encode_to_vec(),
        &[PB],
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(
        rpc_status(&body).message,
        "trace ids must be 128 bit, received 64 bits"
    );
    let zero = span(&tid(3), 0, 10);
    let (st, _, body) = post_raw(
        &server,
        request(vec![good.clone(), zero.clone()]).encode_to_vec(),
        &[PB],
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        rpc_status(&body)
            .message
            .starts_with("span ids must be 64 bit and not all zero")
    );
    let mut client = server.grpc_client().await;
    let err = client
        .export(request(vec![good.clone(), short]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(err.message(), "trace ids must be 128 bit, received 64 bits");
    let err = client.export(request(vec![zero])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        read_trace(&server, &hex(&tid(1)), None)
            .await
            .v1_proto
            .is_none(),
        "nothing of a rejected request is stored"
    );

    // Huge attributes are truncated to max_attribute_bytes (2048), not refused.
    let mut huge = span(&tid(4), 4, 100_000);
    huge.attributes[0].key = "k".repeat(3000);
    let (st, _) = post_otlp(&server, &request(vec![huge]), None).await;
    assert_eq!(st, 200);
    let got = spans_of(
        &read_trace(&server, &hex(&tid(4)), None)
            .await
            .v1_proto
            .unwrap(),
    );
    let attr = &got.values().next().unwrap().span.attributes[0];
    assert_eq!(attr.key.len(), 2048);
    let Some(any_value::Value::StringValue(v)) = &attr.value.as_ref().unwrap().value else {
        panic!()
    };
    assert_eq!(v.len(), 2048);

    // Oversized bodies and gzip bombs: 413 / RESOURCE_EXHAUSTED, never inflated whole.
    let big = request(vec![span(&tid(5), 5, 2 << 20)]).encode_to_vec();
    let (st, _, body) = post_raw(&server, big.clone(), &[PB]).await;
    assert_eq!(st, 413, "{}", String::from_utf8_lossy(&body));
    let bomb = gzip(&vec![0u8; 256 << 20]);
    assert!(bomb.len() < 1 << 20, "the bomb itself fits the limit");
    let (st, _, _) = post_raw(&server, bomb, &[PB, ("Content-Encoding", "gzip")]).await;
    assert_eq!(st, 413);
    let (st, _, _) = post_raw(
        &server,
        b"not gzip".to_vec(),
        &[PB, ("Content-Encoding", "gzip")],
    )
    .await;
    assert_eq!(st, 400);
    let err = client
        .export(request(vec![span(&tid(5), 5, 2 << 20)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    let mut gz = server
        .grpc_client()
        .await
        .send_compressed(CompressionEncoding::Gzip);
    let err = gz
        .export(request(vec![span(&tid(6), 6, 64 << 20)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");

    // Still healthy: ready, accepting, and the refusals are counted.
    let r = http().get(server.api("/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut gz = server
        .grpc_client()
        .await
        .send_compressed(CompressionEncoding::Gzip);
    gz.export(request(vec![span(&tid(7), 7, 100)]))
        .await
        .unwrap();
    assert!(
        read_trace(&server, &hex(&tid(7)), None)
            .await
            .v1_proto
            .is_some()
    );
    let metrics = metrics_text(&server).await;
    for needle in [
        "tempo_discarded_spans_total{tenant=\"single-tenant\",reason=\"invalid_trace_id\"} 4",
        "tempo_discarded_spans_total{tenant=\"single-tenant\",reason=\"invalid_span_id\"} 3",
        "tempo_discarded_spans_total{tenant=\"single-tenant\",reason=\"request_too_large\"} 0",
        // two HTTP bodies over the limit, one gRPC message over it and one inflating past it
        "vivace_distributor_refused_requests_total{tenant=\"single-tenant\",reason=\"request_too_large\"} 4",
        "reason=\"malformed_request\"",
        "tempo_distributor_spans_received_total{tenant=\"single-tenant\"} 2",
        "process_resident_memory_bytes",
        "vivace_wal_fsync_duration_seconds_bucket",
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle}:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_header_forms_on_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "multitenancy_enabled: true\n");
    let body = request(vec![span(&tid(1), 1, 10)]).encode_to_vec();
    let long = "t".repeat(151);
    for (header_opt, want) in [
        (None, 401),
        (Some("a|b"), 400),
        (Some(".."), 400),
        (Some(""), 400),
        (Some(long.as_str()), 400),
        (Some("team-1"), 200),
    ] {
        let mut h = vec![PB];
        if let Some(v) = header_opt {
            h.push(("X-Scope-OrgID", v));
        }
        let (st, _, _) = post_raw(&server, body.clone(), &h).await;
        assert_eq!(st, want, "header {header_opt:?}");
    }
    let mut client = server.grpc_client().await;
    let err = client
        .export(request(vec![span(&tid(2), 2, 10)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(
        read_trace(&server, &hex(&tid(1)), Some("team-1"))
            .await
            .v1_proto
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_to_the_client_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let overrides = dir.path().join("overrides.yaml");
    std::fs::write(
        &overrides,
        "overrides:\n  ratey:\n    ingestion:\n      rate_limit_bytes: 20000\n      burst_size_bytes: 20000\n  livey:\n    ingestion:\n      max_traces_per_user: 3\n  big:\n    global:\n      max_bytes_per_trace: 3000\n",
    )
    .unwrap();
    let extra = format!(
        "multitenancy_enabled: true\noverrides:\n  per_tenant_override_config: {}\n",
        overrides.display()
    );
    let server = Server::start(dir.path(), &extra);

    // max_bytes_per_trace: the too-large trace is refused as an OTLP partial success, the rest kept.
    let (st, resp) = post_otlp(
        &server,
        &request(vec![
            span(&tid(1), 1, 2000),
            span(&tid(1), 3, 2000),
            span(&tid(2), 2, 10),
        ]),
        Some("big"),
    )
    .await;
    assert_eq!(st, 200);
    let p = resp.partial_success.expect("partial success");
    assert_eq!(p.rejected_spans, 2);
    assert!(
        p.error_message.starts_with("TRACE_TOO_LARGE"),
        "{}",
        p.error_message
    );
    assert!(
        read_trace(&server, &hex(&tid(1)), Some("big"))
            .await
            .v1_proto
            .is_none()
    );
    assert!(
        read_trace(&server, &hex(&tid(2)), Some("big"))
            .await
            .v1_proto
            .is_some()
    );

    // max_traces_per_user: a 4th live trace is 429 with Retry-After; over gRPC RESOURCE_EXHAUSTED + RetryInfo.
    for i in 1..=3 {
        let (st, _) = post_otlp(&server, &request(vec![span(&tid(i), i, 10)]), Some("livey")).await;
        assert_eq!(st, 200);
    }
    let (st, headers, body) = post_raw(
        &server,
        request(vec![span(&tid(9), 9, 10)]).encode_to_vec(),
        &[PB, ("X-Scope-OrgID", "livey")],
    )
    .await;
    assert_eq!(st, 429);
    assert!(
        headers.iter().any(|(k, v)| k == "retry-after" && v == "5"),
        "{headers:?}"
    );
    let s = rpc_status(&body);
    assert_eq!(s.code, 8);
    assert!(
        s.message.starts_with("LIVE_TRACES_EXCEEDED"),
        "{}",
        s.message
    );
    let (st, _) = post_otlp(&server, &request(vec![span(&tid(1), 5, 10)]), Some("livey")).await;
    assert_eq!(st, 200, "an existing trace may still grow");
    let mut client = server.grpc_client().await;
    let mut req = tonic::Request::new(request(vec![span(&tid(10), 10, 10)]));
    req.metadata_mut()
        .insert("x-scope-orgid", "livey".parse().unwrap());
    let err = client.export(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    let retry = err.get_details_retry_info().expect("RetryInfo detail");
    assert_eq!(retry.retry_delay, Some(std::time::Duration::from_secs(5)));

    // Rate limit: a batch over the burst, and a rate exceeded after a few pushes.
    let (st, _, body) = post_raw(
        &server,
        request(vec![span(&tid(1), 1, 25_000)]).encode_to_vec(),
        &[PB, ("X-Scope-OrgID", "ratey")],
    )
    .await;
    assert_eq!(st, 429);
    assert!(
        rpc_status(&body)
            .message
            .starts_with("RATE_LIMITED: batch size")
    );
    let mut limited = false;
    for i in 0..10 {
        let (st, _, body) = post_raw(
            &server,
            request(vec![span(&tid(i), i + 1, 5_000)]).encode_to_vec(),
            &[PB, ("X-Scope-OrgID", "ratey")],
        )
        .await;
        if st == 429 {
            assert!(
                rpc_status(&body)
                    .message
                    .starts_with("RATE_LIMITED: ingestion rate limit")
            );
            limited = true;
            break;
        }
        assert_eq!(st, 200);
    }
    assert!(limited, "20 kB/s must refuse 50 kB sent at once");

    let metrics = metrics_text(&server).await;
    for needle in [
        "tempo_discarded_spans_total{tenant=\"big\",reason=\"trace_too_large\"} 2",
        "tempo_discarded_spans_total{tenant=\"livey\",reason=\"live_traces_exceeded\"} 2",
        "tempo_discarded_spans_total{tenant=\"ratey\",reason=\"rate_limited\"}",
    ] {
        assert!(metrics.contains(needle), "metrics lack {needle}");
    }
}

/// A trace over `max_bytes_per_trace` on read (here: the limit was lowered by an overrides
/// reload after the trace was written): v1 answers 422, v2 a partial trace marked PARTIAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_over_the_size_limit_are_partial_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let overrides = dir.path().join("overrides.yaml");
    std::fs::write(
        &overrides,
        "overrides:\n  shrink:\n    global:\n      max_bytes_per_trace: 100000\n",
    )
    .unwrap();
    let extra = format!(
        "multitenancy_enabled: true\noverrides:\n  per_tenant_override_config: {}\n  per_tenant_override_period: 100ms\n",
        overrides.display()
    );
    let server = Server::start(dir.path(), &extra);
    let spans: Vec<Span> = (1..=20).map(|i| span(&tid(1), i, 300)).collect();
    let (st, _) = post_otlp(&server, &request(spans), Some("shrink")).await;
    assert_eq!(st, 200);
    assert_eq!(
        spans_of(
            &read_trace(&server, &hex(&tid(1)), Some("shrink"))
                .await
                .v1_proto
                .unwrap()
        )
        .len(),
        20
    );

    std::fs::write(
        &overrides,
        "overrides:\n  shrink:\n    global:\n      max_bytes_per_trace: 2000\n",
    )
    .unwrap();
    let url = server.api(&format!("/api/traces/{}", hex(&tid(1))));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = http()
            .get(&url)
            .header("X-Scope-OrgID", "shrink")
            .send()
            .await
            .unwrap();
        if r.status() == 422 {
            assert_eq!(r.text().await.unwrap().trim(), "trace exceeds max size");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lowered limit never applied"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let v2_url = server.api(&format!("/api/v2/traces/{}", hex(&tid(1))));
    let get = |accept: &'static str| {
        http()
            .get(&v2_url)
            .header("X-Scope-OrgID", "shrink")
            .header("Accept", accept)
            .send()
    };
    let body = get("application/protobuf")
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let v2 = vivace_proto::tempopb::TraceByIdResponse::decode(body).unwrap();
    assert_eq!(v2.status, 1, "PARTIAL");
    assert_eq!(
        v2.message,
        "Trace exceeds maximum size of 2000 bytes, a partial trace is returned"
    );
    let partial = v2.trace.unwrap();
    let kept = spans_of(&partial).len();
    assert!(kept > 0 && kept < 20, "{kept} spans kept");
    assert!(partial.encoded_len() <= 2000);
    let json: serde_json::Value = get("application/json").await.unwrap().json().await.unwrap();
    assert_eq!(json["status"], "PARTIAL");
}
