//! Optional authentication on every port: missing, wrong, read-only, write-only and right
//! credentials against ingest (OTLP HTTP and gRPC, Zipkin) and reads (HTTP API, gRPC query API on
//! both ports); the tenant comes from the credential.

use prost::Message;
use tonic::Code;
use vivace_proto::otlp::collector::ExportTraceServiceRequest;
use vivace_proto::otlp::trace::Span;
use vivace_proto::tempopb::SearchRequest;
use vivace_proto::tempopb::streaming_querier_client::StreamingQuerierClient;

use crate::support::{Server, free_port, http, service_export};

const WRITE_A: &str = "Bearer write-a-0123456789abcdef";
const READ_A: &str = "Bearer read-a-0123456789abcdef";

fn basic_b() -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("grafana-b:open sesame")
    )
}

fn export(trace: u8) -> ExportTraceServiceRequest {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    service_export(
        "svc",
        vec![Span {
            trace_id: vec![trace; 16],
            span_id: vec![1; 8],
            name: "op".into(),
            start_time_unix_nano: now - 1_000_000,
            end_time_unix_nano: now,
            ..Default::default()
        }],
    )
}

async fn post(server: &Server, auth: Option<&str>, org: Option<&str>, trace: u8) -> u16 {
    let mut r = http()
        .post(server.otlp_http_url())
        .header("Content-Type", "application/x-protobuf")
        .body(export(trace).encode_to_vec());
    if let Some(a) = auth {
        r = r.header("Authorization", a);
    }
    if let Some(o) = org {
        r = r.header("X-Scope-OrgID", o);
    }
    r.send().await.unwrap().status().as_u16()
}

async fn get_trace(server: &Server, auth: Option<&str>, trace: u8) -> u16 {
    let mut r = http().get(server.api(&format!("/api/v2/traces/{}", hex::encode([trace; 16]))));
    if let Some(a) = auth {
        r = r.header("Authorization", a);
    }
    r.send().await.unwrap().status().as_u16()
}

fn with_auth<T>(msg: T, auth: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(a) = auth {
        r.metadata_mut().insert("authorization", a.parse().unwrap());
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_port_requires_a_credential_with_the_right_and_its_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let (zipkin, jhttp, jgrpc, oc) = (free_port(), free_port(), free_port(), free_port());
    let pw_sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"open sesame"))
    };
    std::fs::write(dir.path().join("read.token"), "read-a-0123456789abcdef\n").unwrap();
    let server = Server::start_env_receivers(
        dir.path(),
        &format!(
            "zipkin:\n  endpoint: 127.0.0.1:{zipkin}\njaeger:\n  protocols:\n    grpc:\n      endpoint: 127.0.0.1:{jgrpc}\n    \
             thrift_http:\n      endpoint: 127.0.0.1:{jhttp}\nopencensus:\n  endpoint: 127.0.0.1:{oc}"
        ),
        &format!(
            "auth:\n  tokens:\n    - token_env: VIVACE_TEST_WRITE_TOKEN\n      tenant: team-a\n      rights: [write]\n    \
             - token_file: {}\n      tenant: team-a\n      rights: [read]\n  \
             users:\n    - username: grafana-b\n      password_sha256: {pw_sha}\n      tenant: team-b\n",
            dir.path().join("read.token").display()
        ),
        &[("VIVACE_TEST_WRITE_TOKEN", "write-a-0123456789abcdef")],
    );
    assert!(
        !server.log_text().contains("0123456789abcdef"),
        "no secret is logged"
    );

    // Open paths.
    let c = http();
    assert_eq!(
        c.get(server.api("/ready")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        c.get(server.api("/metrics")).send().await.unwrap().status(),
        200
    );

    // The web UI's page and assets hold no data: they load without a credential (the page asks
    // for one when the API answers 401); the API they call does not.
    for path in ["/", "/search", "/trace/0123", "/ui/app.js"] {
        assert_eq!(
            c.get(server.api(path)).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
    for path in ["/api/search", "/api/v2/traces/0123"] {
        assert_eq!(
            c.get(server.api(path)).send().await.unwrap().status(),
            401,
            "{path}"
        );
    }

    // OTLP HTTP ingest: the write right, the credential's tenant.
    let r = c.post(server.otlp_http_url()).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert_eq!(
        post(&server, Some("Bearer wrong-wrong-wrong-wrong"), None, 1).await,
        401
    );
    assert_eq!(post(&server, Some(READ_A), None, 1).await, 403, "read-only");
    assert_eq!(
        post(&server, Some(WRITE_A), Some("team-b"), 1).await,
        403,
        "another tenant"
    );
    assert_eq!(post(&server, Some(WRITE_A), None, 1).await, 200);
    assert_eq!(post(&server, Some(WRITE_A), Some("team-a"), 2).await, 200);
    assert_eq!(
        post(&server, Some(&basic_b()), None, 3).await,
        200,
        "basic user, both rights"
    );

    // Reads: the read right; each tenant sees only its own.
    assert_eq!(get_trace(&server, None, 1).await, 401);
    assert_eq!(
        get_trace(&server, Some(WRITE_A), 1).await,
        403,
        "write-only"
    );
    assert_eq!(get_trace(&server, Some(READ_A), 1).await, 200);
    assert_eq!(get_trace(&server, Some(READ_A), 2).await, 200);
    assert_eq!(
        get_trace(&server, Some(READ_A), 3).await,
        404,
        "team-b's trace"
    );
    assert_eq!(get_trace(&server, Some(&basic_b()), 3).await, 200);
    assert_eq!(get_trace(&server, Some(&basic_b()), 1).await, 404);

    // OTLP gRPC.
    let mut grpc = server.grpc_client().await;
    let e = grpc.export(with_auth(export(4), None)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e}");
    let e = grpc
        .export(with_auth(export(4), Some(READ_A)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    grpc.export(with_auth(export(4), Some(WRITE_A)))
        .await
        .unwrap();
    assert_eq!(get_trace(&server, Some(READ_A), 4).await, 200);

    // Zipkin.
    let zurl = format!("http://127.0.0.1:{zipkin}/api/v2/spans");
    let z = |auth: Option<&'static str>| {
        let mut r = c
            .post(&zurl)
            .header("Content-Type", "application/json")
            .body("[]");
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        r.send()
    };
    assert_eq!(z(None).await.unwrap().status(), 401);
    assert_eq!(z(Some(READ_A)).await.unwrap().status(), 403);
    assert_eq!(z(Some(WRITE_A)).await.unwrap().status(), 202);

    // Jaeger Thrift HTTP: past the guard an empty body is a 400 (it got through), before it 401.
    let j = |auth: Option<&'static str>| {
        let mut r = c
            .post(format!("http://127.0.0.1:{jhttp}/api/traces"))
            .header("Content-Type", "application/x-thrift")
            .body(vec![0u8]);
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        r.send()
    };
    assert_eq!(j(None).await.unwrap().status(), 401);
    assert_eq!(j(Some(READ_A)).await.unwrap().status(), 403);
    assert_eq!(j(Some(WRITE_A)).await.unwrap().status(), 400);
    // Jaeger gRPC and the OpenCensus stream.
    use vivace_proto::jaeger::collector_service_client::CollectorServiceClient;
    let mut jg = CollectorServiceClient::connect(format!("http://127.0.0.1:{jgrpc}"))
        .await
        .unwrap();
    let empty = vivace_proto::jaeger::PostSpansRequest::default;
    let e = jg.post_spans(with_auth(empty(), None)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = jg
        .post_spans(with_auth(empty(), Some(READ_A)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    jg.post_spans(with_auth(empty(), Some(WRITE_A)))
        .await
        .unwrap();
    use vivace_proto::opencensus::trace_service_client::TraceServiceClient;
    let mut o = TraceServiceClient::connect(format!("http://127.0.0.1:{oc}"))
        .await
        .unwrap();
    let none =
        futures::stream::iter(Vec::<vivace_proto::opencensus::ExportTraceServiceRequest>::new());
    let e = o.export(with_auth(none, None)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    // Streaming search on the HTTP port (h2c) and the gRPC query port.
    for port in [server.http, server.grpc_query] {
        let mut q = StreamingQuerierClient::connect(format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        let search = || SearchRequest {
            query: "{ }".into(),
            limit: 20,
            ..Default::default()
        };
        let e = q.search(with_auth(search(), None)).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "port {port}: {e}");
        let e = q
            .search(with_auth(search(), Some(WRITE_A)))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "port {port}: {e}");
        let mut stream = q
            .search(with_auth(search(), Some(READ_A)))
            .await
            .unwrap()
            .into_inner();
        let last = crate::support::last_message(&mut stream).await;
        assert!(
            !last.traces.is_empty(),
            "port {port}: team-a's traces found"
        );
    }
}
