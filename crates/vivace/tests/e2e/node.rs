//! The OpenTelemetry JS SDK's exporters (Zipkin, OTLP HTTP JSON and protobuf, OTLP gRPC): every
//! span read back by ID as the SDK made it.

use std::process::Command;

use crate::support::{
    Server, clients_dir, free_port, installed, read_trace, sent_by_trace, spans_by_id,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_exporters_read_back_as_sent() {
    let modules = installed("VIVACE_NODE_CLIENTS", "the Node clients");
    let dir = tempfile::tempdir().unwrap();
    let zipkin = free_port();
    let server = Server::start_receivers(
        dir.path(),
        &format!("zipkin:\n  endpoint: 127.0.0.1:{zipkin}"),
        "",
    );
    for (mode, endpoint) in [
        ("zipkin", format!("http://127.0.0.1:{zipkin}/api/v2/spans")),
        ("otlp-http", server.otlp_http_url()),
        ("otlp-proto", server.otlp_http_url()),
        ("otlp-grpc", format!("http://127.0.0.1:{}", server.grpc)),
    ] {
        let out = dir.path().join(format!("{mode}.json"));
        let o = Command::new("node")
            .env("NODE_PATH", &modules)
            .arg(clients_dir().join("node_send.js"))
            .args([mode, &endpoint])
            .arg(&out)
            .arg("6")
            .output()
            .expect("run node");
        assert!(
            o.status.success(),
            "{mode} client failed:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let sent: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(sent.len(), 12, "{mode}");
        let by_trace = sent_by_trace(&sent);
        for (tid, want) in &by_trace {
            let trace = read_trace(&server, tid, None)
                .await
                .v2_proto
                .and_then(|r| r.trace)
                .unwrap_or_else(|| panic!("{mode}: trace {tid} not found"));
            let got = spans_by_id(&trace);
            assert_eq!(got.len(), want.len(), "{mode}");
            for w in want {
                let s = got[w["span_id"].as_str().unwrap()];
                assert_eq!(s.name, w["name"].as_str().unwrap(), "{mode}");
                assert_eq!(
                    hex::encode(&s.parent_span_id),
                    w["parent_id"].as_str().unwrap(),
                    "{mode}"
                );
                let kind = if w["kind"] == "SERVER" { 2 } else { 3 };
                assert_eq!(s.kind, kind, "{mode} {}", s.name);
                let failed = s.status.as_ref().is_some_and(|st| st.code == 2);
                assert_eq!(failed, w["error"].as_bool().unwrap(), "{mode} {}", s.name);
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
}
