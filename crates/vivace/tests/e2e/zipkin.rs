//! Zipkin ingest with the real OpenTelemetry Python Zipkin JSON exporter: every span read back by
//! ID as the SDK made it; tenancy through the header; bad bodies refused with 400.

use std::process::Command;

use vivace_proto::otlp::common::any_value;
use vivace_proto::otlp::trace::Span;

use crate::support::{
    Server, clients_dir, free_port, http, python, read_trace, sent_by_trace, spans_by_id,
};

fn send(
    endpoint: &str,
    out: &std::path::Path,
    headers: &[&str],
    v1: bool,
) -> Vec<serde_json::Value> {
    let mut cmd = Command::new(python());
    cmd.arg(clients_dir().join("zipkin_send.py"))
        .arg(endpoint)
        .arg(out)
        .args(["--traces", "10"]);
    if v1 {
        cmd.arg("--v1");
    }
    for h in headers {
        cmd.args(["--header", h]);
    }
    let o = cmd.output().expect("run python client");
    assert!(
        o.status.success(),
        "client failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

fn string_attr(s: &Span, k: &str) -> Option<String> {
    s.attributes
        .iter()
        .find(|a| a.key == k)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_zipkin_exporter_spans_read_back_as_sent() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server::start_receivers(
        dir.path(),
        &format!("zipkin:\n  endpoint: 127.0.0.1:{port}"),
        "multitenancy_enabled: true\n",
    );
    let url = format!("http://127.0.0.1:{port}/api/v2/spans");
    let sent = send(
        &url,
        &dir.path().join("a.json"),
        &["X-Scope-OrgID=team-z"],
        false,
    );
    assert_eq!(sent.len(), 30);
    check(&server, &sent, true).await;
    // Zipkin v1 JSON from the same exporter: no kinds, everything else the same.
    let v1_url = format!("http://127.0.0.1:{port}/api/v1/spans");
    let sent = send(
        &v1_url,
        &dir.path().join("b.json"),
        &["X-Scope-OrgID=team-z"],
        true,
    );
    check(&server, &sent, false).await;
    bad_input(&url).await;
}

/// Every sent span read back by ID as `team-z`, and not as another tenant.
async fn check(server: &Server, sent: &[serde_json::Value], kinds: bool) {
    let by_trace = sent_by_trace(sent);
    for (tid, want) in &by_trace {
        let r = read_trace(server, tid, Some("team-z")).await;
        let trace = r
            .v2_proto
            .and_then(|t| t.trace)
            .unwrap_or_else(|| panic!("trace {tid} not found"));
        let rs = &trace.resource_spans;
        let service = rs[0].resource.as_ref().unwrap().attributes[0].clone();
        assert_eq!(service.key, "service.name");
        let scope = rs[0].scope_spans[0].scope.as_ref().unwrap();
        assert_eq!(
            (scope.name.as_str(), scope.version.as_str()),
            ("zipkin.test", "0.3")
        );
        let got = spans_by_id(&trace);
        assert_eq!(got.len(), want.len(), "trace {tid}");
        for w in want {
            let s = got[w["span_id"].as_str().unwrap()];
            assert_eq!(s.name, w["name"].as_str().unwrap());
            assert_eq!(
                hex::encode(&s.parent_span_id),
                w["parent_id"].as_str().unwrap()
            );
            let kind = match w["kind"].as_str().unwrap() {
                "SERVER" => 2,
                "CLIENT" => 3,
                _ => 1,
            };
            assert_eq!(s.kind, if kinds { kind } else { 1 }, "{}", s.name);
            // Zipkin carries microseconds.
            let start = w["start"].as_u64().unwrap();
            let end = w["end"].as_u64().unwrap();
            assert!(s.start_time_unix_nano.abs_diff(start) <= 1000, "{}", s.name);
            assert!(s.end_time_unix_nano.abs_diff(end) <= 2000, "{}", s.name);
            let status = s.status.clone().unwrap_or_default();
            match w["status"].as_str().unwrap() {
                "ERROR" => assert_eq!((status.code, status.message.as_str()), (2, "timeout")),
                _ => assert_eq!(status.code, 0),
            }
            for (k, v) in w["attributes"].as_object().unwrap() {
                assert_eq!(
                    string_attr(s, k).as_deref(),
                    v.as_str(),
                    "{}: attribute {k}",
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
            assert_eq!(events, want_events);
            if let Some(e) = s.events.first() {
                assert_eq!(e.attributes[0].key, "key", "event attributes kept");
            }
        }
        // Another tenant does not see it.
        assert!(
            read_trace(server, tid, Some("other"))
                .await
                .v2_proto
                .is_none()
        );
    }
}

async fn bad_input(url: &str) {
    // Bad input: malformed JSON and bad IDs are 400 with a message; no tenant is 401.
    let c = http();
    for (body, tenant) in [
        ("[{", Some("team-z")),
        (r#"[{"traceId":"zz","id":"01"}]"#, Some("team-z")),
        ("[]", None),
    ] {
        let mut r = c
            .post(url)
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(t) = tenant {
            r = r.header("X-Scope-OrgID", t);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        match tenant {
            Some(_) => assert_eq!(status, 400, "{body}: {text}"),
            None => assert_eq!(status, 401, "{text}"),
        }
        assert!(!text.is_empty());
    }
}
