//! OpenCensus ingest with the real Python agent exporter (gRPC export stream): every span read
//! back by ID as the client made it.

use std::process::Command;

use vivace_proto::otlp::common::any_value;

use crate::support::{
    Server, clients_dir, free_port, installed, read_trace, sent_by_trace, spans_by_id,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencensus_agent_exporter_spans_read_back_as_sent() {
    let python = installed("VIVACE_OPENCENSUS_PYTHON", "the OpenCensus client");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server::start_receivers(
        dir.path(),
        &format!("opencensus:\n  endpoint: 127.0.0.1:{port}"),
        "",
    );
    let out = dir.path().join("oc.json");
    let o = Command::new(python)
        .env("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
        .arg(clients_dir().join("oc_send.py"))
        .arg(format!("127.0.0.1:{port}"))
        .arg(&out)
        .args(["--traces", "6"])
        .output()
        .expect("run python client");
    assert!(
        o.status.success(),
        "client failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let sent: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(sent.len(), 12);
    let by_trace = sent_by_trace(&sent);
    for (tid, want) in &by_trace {
        let trace = read_trace(&server, tid, None)
            .await
            .v2_proto
            .and_then(|r| r.trace)
            .unwrap_or_else(|| panic!("trace {tid} not found"));
        let res = &trace.resource_spans[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes;
        assert_eq!(res[0].key, "service.name");
        assert_eq!(
            res[0].value.as_ref().unwrap().value,
            Some(any_value::Value::StringValue("oc-svc".into()))
        );
        assert!(res.iter().any(|a| a.key == "telemetry.sdk.language"));
        let got = spans_by_id(&trace);
        assert_eq!(got.len(), want.len());
        for w in want {
            let s = got[w["span_id"].as_str().unwrap()];
            assert_eq!(s.name, w["name"].as_str().unwrap());
            assert_eq!(
                hex::encode(&s.parent_span_id),
                w["parent_id"].as_str().unwrap()
            );
            let kind = if w["kind"] == "SERVER" { 2 } else { 3 };
            assert_eq!(s.kind, kind, "{}", s.name);
            assert!(s.end_time_unix_nano >= s.start_time_unix_nano && s.start_time_unix_nano > 0);
            let failed = s.status.as_ref().is_some_and(|st| st.code == 2);
            assert_eq!(failed, w["error"].as_bool().unwrap(), "{}", s.name);
            if failed {
                assert_eq!(s.status.as_ref().unwrap().message, "declined");
            }
            for (k, v) in w["attributes"].as_object().unwrap() {
                let got = s
                    .attributes
                    .iter()
                    .find(|a| a.key == *k)
                    .and_then(|a| a.value.as_ref())
                    .and_then(|v| v.value.clone());
                let ok = match (v, &got) {
                    (serde_json::Value::Number(n), Some(any_value::Value::IntValue(i))) => {
                        n.as_i64() == Some(*i)
                    }
                    (serde_json::Value::Bool(b), Some(any_value::Value::BoolValue(g))) => b == g,
                    _ => false,
                };
                assert!(ok, "{}: {k}: want {v}, got {got:?}", s.name);
            }
            let events: Vec<&str> = s.events.iter().map(|e| e.name.as_str()).collect();
            let want_events: Vec<&str> = w["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap())
                .collect();
            assert_eq!(events, want_events);
        }
    }
}
