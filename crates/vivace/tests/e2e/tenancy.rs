//! Tenancy and overrides: effective per-tenant values over HTTP, a broken overrides file keeps
//! the last good values and says so, a request without a tenant is told which header to send.

use std::time::{Duration, Instant};

use crate::support::{Server, free_port, http};

async fn get(server: &Server, path: &str) -> (u16, String) {
    let r = http().get(server.api(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn wait_for(server: &Server, path: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = get(server, path).await;
        if body.contains(want) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never showed {want:?}:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_are_visible_reloaded_and_a_broken_file_keeps_the_last_good_values() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("overrides.yaml");
    std::fs::write(
        &file,
        "overrides:\n  team-a:\n    ingestion:\n      max_traces_per_user: 5\n  '*':\n    global:\n      max_bytes_per_trace: 7777\n",
    )
    .unwrap();
    let zipkin = free_port();
    let server = Server::start_receivers(
        dir.path(),
        &format!("zipkin:\n  endpoint: 127.0.0.1:{zipkin}"),
        &format!(
            "multitenancy_enabled: true\noverrides:\n  defaults:\n    ingestion:\n      rate_limit_bytes: 1234567\n  per_tenant_override_config: {}\n  per_tenant_override_period: 200ms\n",
            file.display()
        ),
    );
    let (st, all) = get(&server, "/status/overrides").await;
    assert_eq!(st, 200);
    assert!(
        all.contains("team-a:") && all.contains("rate_limit_bytes: 1234567"),
        "{all}"
    );
    let (_, a) = get(&server, "/status/overrides/team-a").await;
    assert!(a.contains("max_traces_per_user: 5"), "{a}");
    assert!(
        a.contains("rate_limit_bytes: 1234567"),
        "defaults under the entry: {a}"
    );
    let (_, other) = get(&server, "/status/overrides/someone-else").await;
    assert!(
        other.contains("max_bytes_per_trace: 7777"),
        "wildcard: {other}"
    );
    assert_eq!(get(&server, "/status/overrides/a%7Cb").await.0, 400);

    // A broken file: the old values stay, the status page and /metrics say so.
    std::fs::write(
        &file,
        "overrides:\n  team-a:\n    ingestion:\n      bogus_key: 1\n",
    )
    .unwrap();
    let a = wait_for(
        &server,
        "/status/overrides/team-a",
        "the last reload failed",
    )
    .await;
    assert!(
        a.contains("bogus_key") && a.contains("max_traces_per_user: 5"),
        "{a}"
    );
    let m = wait_for(
        &server,
        "/metrics",
        "vivace_overrides_last_reload_successful 0",
    )
    .await;
    assert!(m.contains("vivace_overrides_reload_failures_total"), "{m}");
    // Fixed: the new value applies within a period.
    std::fs::write(
        &file,
        "overrides:\n  team-a:\n    ingestion:\n      max_traces_per_user: 9\n",
    )
    .unwrap();
    wait_for(
        &server,
        "/status/overrides/team-a",
        "max_traces_per_user: 9",
    )
    .await;
    wait_for(
        &server,
        "/metrics",
        "vivace_overrides_last_reload_successful 1",
    )
    .await;

    // No tenant: 401 naming the header, on the read API and on each ingest protocol.
    let c = http();
    let checks = [
        c.get(server.api("/api/search")).send().await.unwrap(),
        c.post(server.otlp_http_url())
            .header("Content-Type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap(),
        c.post(format!("http://127.0.0.1:{zipkin}/api/v2/spans"))
            .header("Content-Type", "application/json")
            .body("[]")
            .send()
            .await
            .unwrap(),
    ];
    for r in checks {
        let st = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_eq!(st, 401, "{body}");
        assert!(body.contains("X-Scope-OrgID"), "{body}");
    }
}

mod same_ids {
    //! Two tenants write the same trace ID through every protocol that carries a tenant; each
    //! reads back only its own span.

    use prost::Message;
    use vivace_proto::otlp::collector::ExportTraceServiceRequest;
    use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

    use crate::support::{Server, free_port, http, read_trace};

    const TRACE: [u8; 16] = [0x5a; 16];

    fn otlp(name: &str, span_id: u8) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: TRACE.to_vec(),
                        span_id: vec![span_id; 8],
                        name: name.into(),
                        start_time_unix_nano: 1_700_000_000_000_000_000,
                        end_time_unix_nano: 1_700_000_000_100_000_000,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    /// A Thrift binary `jaeger.Batch` with one span of TRACE (the `/api/traces` body).
    fn jaeger_thrift(name: &str, span_id: u8) -> Vec<u8> {
        let mut b = Vec::new();
        let field = |b: &mut Vec<u8>, t: u8, id: i16| {
            b.push(t);
            b.extend_from_slice(&id.to_be_bytes());
        };
        let string = |b: &mut Vec<u8>, s: &str| {
            b.extend_from_slice(&(s.len() as i32).to_be_bytes());
            b.extend_from_slice(s.as_bytes());
        };
        field(&mut b, 12, 1);
        field(&mut b, 11, 1);
        string(&mut b, "svc");
        b.push(0);
        field(&mut b, 15, 2);
        b.push(12);
        b.extend_from_slice(&1i32.to_be_bytes());
        let id = i64::from_be_bytes([TRACE[0]; 8]);
        for (fid, v) in [
            (1i16, id),
            (2, id),
            (3, i64::from_be_bytes([span_id; 8])),
            (4, 0),
            (8, 1_700_000_000_000_000),
            (9, 100),
        ] {
            field(&mut b, 10, fid);
            b.extend_from_slice(&v.to_be_bytes());
        }
        field(&mut b, 11, 5);
        string(&mut b, name);
        field(&mut b, 8, 7);
        b.extend_from_slice(&0i32.to_be_bytes());
        b.push(0);
        b.push(0);
        b
    }

    async fn names(server: &Server, tenant: &str) -> Vec<String> {
        let t = read_trace(server, &hex::encode(TRACE), Some(tenant))
            .await
            .v2_proto
            .and_then(|r| r.trace)
            .unwrap_or_default();
        let mut n: Vec<String> = t
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.name.clone())
            .collect();
        n.sort();
        n
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_tenant_reads_only_its_own_spans_of_a_shared_trace_id() {
        let dir = tempfile::tempdir().unwrap();
        let (zipkin, jhttp, jgrpc, oc) = (free_port(), free_port(), free_port(), free_port());
        let server = Server::start_receivers(
            dir.path(),
            &format!(
                "zipkin:\n  endpoint: 127.0.0.1:{zipkin}\njaeger:\n  protocols:\n    grpc:\n      endpoint: 127.0.0.1:{jgrpc}\n    \
                 thrift_http:\n      endpoint: 127.0.0.1:{jhttp}\nopencensus:\n  endpoint: 127.0.0.1:{oc}"
            ),
            "multitenancy_enabled: true\n",
        );
        let c = http();
        for (tenant, base) in [("ten-a", 0u8), ("ten-b", 100u8)] {
            // OTLP HTTP and gRPC.
            let r = c
                .post(server.otlp_http_url())
                .header("Content-Type", "application/x-protobuf")
                .header("X-Scope-OrgID", tenant)
                .body(otlp(&format!("{tenant}-otlp-http"), base + 1).encode_to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let mut g = server.grpc_client().await;
            let mut req = tonic::Request::new(otlp(&format!("{tenant}-otlp-grpc"), base + 2));
            req.metadata_mut()
                .insert("x-scope-orgid", tenant.parse().unwrap());
            g.export(req).await.unwrap();
            // Zipkin JSON.
            let z = format!(
                r#"[{{"traceId":"{}","id":"{}","name":"{tenant}-zipkin","timestamp":1700000000000000,"duration":5}}]"#,
                hex::encode(TRACE),
                hex::encode([base + 3; 8])
            );
            let r = c
                .post(format!("http://127.0.0.1:{zipkin}/api/v2/spans"))
                .header("Content-Type", "application/json")
                .header("X-Scope-OrgID", tenant)
                .body(z)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            // Jaeger Thrift HTTP.
            let r = c
                .post(format!("http://127.0.0.1:{jhttp}/api/traces"))
                .header("Content-Type", "application/vnd.apache.thrift.binary")
                .header("X-Scope-OrgID", tenant)
                .body(jaeger_thrift(&format!("{tenant}-jaeger-http"), base + 4))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
            // Jaeger gRPC.
            use vivace_proto::jaeger::collector_service_client::CollectorServiceClient;
            let mut j = CollectorServiceClient::connect(format!("http://127.0.0.1:{jgrpc}"))
                .await
                .unwrap();
            let mut req = tonic::Request::new(vivace_proto::jaeger::PostSpansRequest {
                batch: Some(vivace_proto::jaeger::Batch {
                    spans: vec![vivace_proto::jaeger::Span {
                        trace_id: TRACE.to_vec(),
                        span_id: vec![base + 5; 8],
                        operation_name: format!("{tenant}-jaeger-grpc"),
                        start_time: Some(prost_types::Timestamp {
                            seconds: 1_700_000_000,
                            nanos: 0,
                        }),
                        ..Default::default()
                    }],
                    process: Some(vivace_proto::jaeger::Process {
                        service_name: "svc".into(),
                        tags: vec![],
                    }),
                }),
            });
            req.metadata_mut()
                .insert("x-scope-orgid", tenant.parse().unwrap());
            j.post_spans(req).await.unwrap();
            // OpenCensus stream.
            use vivace_proto::opencensus::trace_service_client::TraceServiceClient;
            let mut o = TraceServiceClient::connect(format!("http://127.0.0.1:{oc}"))
                .await
                .unwrap();
            let msg = vivace_proto::opencensus::ExportTraceServiceRequest {
                spans: vec![vivace_proto::opencensus::Span {
                    trace_id: TRACE.to_vec(),
                    span_id: vec![base + 6; 8],
                    name: Some(vivace_proto::opencensus::TruncatableString {
                        value: format!("{tenant}-opencensus"),
                        truncated_byte_count: 0,
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            };
            let mut req = tonic::Request::new(futures::stream::iter(vec![msg]));
            req.metadata_mut()
                .insert("x-scope-orgid", tenant.parse().unwrap());
            let mut responses = o.export(req).await.unwrap().into_inner();
            assert!(responses.message().await.unwrap().is_some(), "acknowledged");
        }
        for tenant in ["ten-a", "ten-b"] {
            let want: Vec<String> = [
                "jaeger-grpc",
                "jaeger-http",
                "opencensus",
                "otlp-grpc",
                "otlp-http",
                "zipkin",
            ]
            .iter()
            .map(|p| format!("{tenant}-{p}"))
            .collect();
            assert_eq!(names(&server, tenant).await, want);
        }

        // Oversized bodies on the HTTP receivers: 413.
        let big = vec![b'['; 21 << 20];
        for (url, ct) in [
            (
                format!("http://127.0.0.1:{zipkin}/api/v2/spans"),
                "application/json",
            ),
            (
                format!("http://127.0.0.1:{jhttp}/api/traces"),
                "application/x-thrift",
            ),
        ] {
            let r = c
                .post(&url)
                .header("Content-Type", ct)
                .header("X-Scope-OrgID", "ten-a")
                .body(big.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 413, "{url}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_limits_apply_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("overrides.yaml");
    std::fs::write(
        &file,
        "overrides:\n  short:\n    read:\n      max_search_duration: 1h\n      max_metrics_duration: 30m\n",
    )
    .unwrap();
    let server = Server::start(
        dir.path(),
        &format!(
            "multitenancy_enabled: true\noverrides:\n  per_tenant_override_config: {}\n",
            file.display()
        ),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let c = http();
    let status = |path: String, tenant: &'static str| {
        let c = c.clone();
        let url = server.api(&path);
        async move {
            let r = c
                .get(url)
                .header("X-Scope-OrgID", tenant)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let search = format!("/api/search?q=%7B%7D&start={}&end={now}", now - 2 * 3600);
    let (st, body) = status(search.clone(), "short").await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(
        status(search, "other").await.0,
        200,
        "the frontend's 168h applies"
    );
    let metrics = format!(
        "/api/metrics/query_range?q=%7B%7D%20%7C%20rate()&start={}&end={now}",
        now - 3600
    );
    let (st, body) = status(metrics.clone(), "short").await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(status(metrics, "other").await.0, 200);
}
