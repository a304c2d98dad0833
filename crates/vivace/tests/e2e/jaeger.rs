//! Jaeger ingest with real clients: the OpenTelemetry Jaeger exporters (Thrift compact over the
//! agent's UDP port, Thrift binary over HTTP, protobuf over gRPC) and jaeger-client (OpenTracing,
//! UDP); every span read back by ID as the client made it. Garbage datagrams and bodies are
//! counted or refused while the server stays healthy.

use std::process::Command;
use std::time::{Duration, Instant};

use vivace_proto::otlp::common::any_value;
use vivace_proto::otlp::trace::Span;

use crate::support::{
    Server, clients_dir, free_port, http, installed, read_trace, sent_by_trace, spans_by_id,
};

fn jaeger_python() -> String {
    installed("VIVACE_JAEGER_PYTHON", "the Jaeger clients")
}

fn send(mode: &str, port: u16, out: &std::path::Path) -> Vec<serde_json::Value> {
    let o = Command::new(jaeger_python())
        .arg(clients_dir().join("jaeger_send.py"))
        .args([mode, "127.0.0.1", &port.to_string()])
        .arg(out)
        .args(["--traces", "8"])
        .output()
        .expect("run python client");
    assert!(
        o.status.success(),
        "{mode} client failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

fn attr(s: &Span, k: &str) -> Option<any_value::Value> {
    s.attributes
        .iter()
        .find(|a| a.key == k)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.clone())
}

/// Reads every sent trace back (UDP may take a moment) and compares span by span.
async fn check(server: &Server, mode: &str, sent: &[serde_json::Value]) {
    let by_trace = sent_by_trace(sent);
    assert_eq!(by_trace.len(), 8, "{mode}");
    for (tid, want) in &by_trace {
        let deadline = Instant::now() + Duration::from_secs(10);
        let trace = loop {
            let t = read_trace(server, tid, None)
                .await
                .v2_proto
                .and_then(|r| r.trace);
            let n = t.as_ref().map_or(0, |t| {
                t.resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len())
                    .sum()
            });
            if n >= want.len() {
                break t.unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "{mode}: trace {tid} has {n} of {} spans",
                want.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let svc = &trace.resource_spans[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes[0];
        assert_eq!(svc.key, "service.name", "{mode}");
        let got = spans_by_id(&trace);
        for w in want {
            let s = got[w["span_id"].as_str().unwrap()];
            assert_eq!(s.name, w["name"].as_str().unwrap(), "{mode}");
            assert_eq!(
                hex::encode(&s.parent_span_id),
                w["parent_id"].as_str().unwrap(),
                "{mode}"
            );
            let kind = match w["kind"].as_str().unwrap() {
                "SERVER" => 2,
                "CLIENT" => 3,
                _ => 1,
            };
            assert_eq!(s.kind, kind, "{mode} {}", s.name);
            assert!(
                s.start_time_unix_nano
                    .abs_diff(w["start"].as_u64().unwrap())
                    <= 1000,
                "{mode}"
            );
            assert!(
                s.end_time_unix_nano.abs_diff(w["end"].as_u64().unwrap()) <= 2000,
                "{mode}"
            );
            let failed = s.status.as_ref().is_some_and(|st| st.code == 2);
            assert_eq!(failed, w["error"].as_bool().unwrap(), "{mode} {}", s.name);
            for (k, v) in w["attributes"].as_object().unwrap() {
                let got = attr(s, k);
                let ok = match (v, &got) {
                    (serde_json::Value::Number(n), Some(any_value::Value::IntValue(i))) => {
                        n.as_i64() == Some(*i)
                    }
                    (serde_json::Value::Number(n), Some(any_value::Value::DoubleValue(d))) => {
                        n.as_f64() == Some(*d)
                    }
                    (serde_json::Value::Bool(b), Some(any_value::Value::BoolValue(g))) => b == g,
                    (serde_json::Value::String(a), Some(any_value::Value::StringValue(g))) => {
                        a == g
                    }
                    _ => false,
                };
                assert!(
                    ok,
                    "{mode} {}: attribute {k}: want {v}, got {got:?}",
                    s.name
                );
            }
            let events: Vec<&str> = s.events.iter().map(|e| e.name.as_str()).collect();
            let want_events: Vec<&str> = w["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap())
                .collect();
            assert_eq!(events, want_events, "{mode} {}", s.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaeger_clients_over_udp_http_and_grpc_read_back_as_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, thrift_http, compact, binary) = (free_port(), free_port(), free_port(), free_port());
    let server = Server::start_receivers(
        dir.path(),
        &format!(
            "jaeger:\n  protocols:\n    grpc:\n      endpoint: 127.0.0.1:{grpc}\n    thrift_http:\n      endpoint: 127.0.0.1:{thrift_http}\n    \
             thrift_compact:\n      endpoint: 127.0.0.1:{compact}\n    thrift_binary:\n      endpoint: 127.0.0.1:{binary}"
        ),
        "",
    );
    for (mode, port) in [
        ("otel-udp", compact),
        ("otel-http", thrift_http),
        ("otel-grpc", grpc),
        ("client", compact),
    ] {
        let sent = send(mode, port, &dir.path().join(format!("{mode}.json")));
        check(&server, mode, &sent).await;
    }

    // Garbage: datagrams on both UDP ports are counted and dropped; bodies get 400.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for port in [compact, binary] {
        for junk in [
            &b""[..],
            b"\x82\x21\x01",
            b"\xff\xff\xff\xff\xff\xff",
            &[0x82u8; 3000],
        ] {
            sock.send_to(junk, ("127.0.0.1", port)).unwrap();
        }
    }
    let c = http();
    for body in [
        &b"\x0c\x00"[..],
        b"garbage",
        &[15u8, 0, 2, 12, 0x7f, 0xff, 0xff, 0xff],
    ] {
        let r = c
            .post(format!("http://127.0.0.1:{thrift_http}/api/traces"))
            .header("Content-Type", "application/x-thrift")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{body:?}");
    }
    let r = c
        .post(format!("http://127.0.0.1:{thrift_http}/api/traces"))
        .header("Content-Type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = c
            .get(server.api("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let dropped: f64 = m
            .lines()
            .filter(|l| {
                l.starts_with("vivace_receiver_dropped_datagrams_total{") && l.contains("malformed")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if dropped >= 7.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "garbage datagrams not counted:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A flood of garbage on both UDP ports: counted and dropped, the socket keeps being read.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..20_000u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = 1 + (seed % 1400) as usize;
        let junk: Vec<u8> = (0..len).map(|j| (seed >> (j % 56)) as u8).collect();
        let port = if i % 2 == 0 { compact } else { binary };
        let _ = sock.send_to(&junk, ("127.0.0.1", port));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        c.get(server.api("/ready")).send().await.unwrap().status(),
        200
    );
    // Still healthy: a good batch after the garbage is read back.
    let sent = send(
        "otel-udp",
        binary.min(compact).max(compact),
        &dir.path().join("after.json"),
    );
    check(&server, "otel-udp after garbage", &sent).await;
}

/// The `grpc-status` of a unary call carrying `message` as its (possibly malformed) protobuf.
async fn grpc_raw(port: u16, path: &str, message: &[u8]) -> String {
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    let c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = c
        .post(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .send()
        .await
        .unwrap();
    r.headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_protobuf_is_invalid_argument_on_every_grpc_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let grpc = free_port();
    let server = Server::start_receivers(
        dir.path(),
        &format!("jaeger:\n  protocols:\n    grpc:\n      endpoint: 127.0.0.1:{grpc}"),
        "",
    );
    // A length-delimited field claiming more bytes than there are.
    let truncated = [0x0a, 0x40, 0x0a, 0x02];
    for (port, path) in [
        (
            server.grpc,
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        ),
        (grpc, "/jaeger.api_v2.CollectorService/PostSpans"),
    ] {
        assert_eq!(grpc_raw(port, path, &truncated).await, "3", "{path}");
    }
    // A span name that is not UTF-8 (OTLP strings must be).
    let span = Span {
        trace_id: vec![1; 16],
        span_id: vec![1; 8],
        name: "\u{7f}".into(),
        ..Default::default()
    };
    let mut bad =
        prost::Message::encode_to_vec(&vivace_proto::otlp::collector::ExportTraceServiceRequest {
            resource_spans: vec![vivace_proto::otlp::trace::ResourceSpans {
                scope_spans: vec![vivace_proto::otlp::trace::ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        });
    // Span.name (field 5, one byte long).
    let at = bad.windows(3).position(|w| w == [0x2a, 1, 0x7f]).unwrap();
    bad[at + 2] = 0xff;
    assert_eq!(
        grpc_raw(
            server.grpc,
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            &bad
        )
        .await,
        "3"
    );
    // Still healthy.
    assert_eq!(
        http()
            .get(server.api("/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
