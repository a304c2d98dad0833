//! The MCP server at /api/mcp, driven by the official Python MCP SDK over streamable HTTP: it
//! lists Tempo's tools and the doc resources, and every tool answers about known traces, under
//! the caller's tenant; off unless enabled; browser requests refused.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Server, clients_dir, http, installed, post_otlp, shop_trace};

fn mcp_python() -> String {
    installed("VIVACE_MCP_PYTHON", "the MCP SDK")
}

/// Runs the SDK client; its report.
fn session(server: &Server, tenant: &str, calls: &Value) -> Value {
    let o = Command::new(mcp_python())
        .arg(clients_dir().join("mcp_client.py"))
        .arg(server.api("/api/mcp"))
        .arg(tenant)
        .arg(calls.to_string())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "mcp client failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        server.log_text()
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn call(report: &Value, i: usize) -> (&str, bool, Value) {
    let c = &report["calls"][i];
    let text = c["text"].as_str().unwrap();
    (
        c["tool"].as_str().unwrap(),
        c["isError"].as_bool().unwrap(),
        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into())),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tools_answer_over_the_python_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "multitenancy_enabled: true\nquery_frontend:\n  mcp_server:\n    enabled: true\n",
    );
    assert_eq!(
        post_otlp(&server, &shop_trace(0x31, false), Some("shop"))
            .await
            .0,
        200
    );
    assert_eq!(
        post_otlp(&server, &shop_trace(0x32, true), Some("shop"))
            .await
            .0,
        200
    );
    assert_eq!(
        post_otlp(&server, &shop_trace(0x33, true), Some("other"))
            .await
            .0,
        200
    );
    let (normal, slow) = ("31".repeat(16), "32".repeat(16));

    let calls = json!([
        ["get-attribute-names", {}],
        ["get-attribute-names", {"scope": "resource"}],
        ["get-attribute-values", {"name": "resource.service.name"}],
        ["get-attribute-values", {"name": "span.http.route", "filter-query": "{ resource.service.name = \"payments\" }"}],
        ["traceql-search", {"query": "{ resource.service.name = \"payments\" && status = error }"}],
        ["traceql-search", {"query": "{ } | rate()"}],
        ["traceql-search", {"query": "{ .a = }"}],
        ["traceql-metrics-instant", {"query": "{ } | count_over_time() by (resource.service.name)"}],
        ["traceql-metrics-range", {"query": "{ status = error } | count_over_time()"}],
        ["get-trace", {"trace_id": slow}],
        ["get-trace", {"trace_id": "ab".repeat(16)}],
        ["trace-diff", {"base_trace_id": normal, "compare_trace_id": slow}],
        ["trace-diff", {"base_trace_id": normal, "compare_trace_id": slow, "format": "trace-patch-v0"}],
        ["trace-diff", {"base_trace_id": normal, "compare_trace_id": slow, "format": "nope"}],
        ["docs-traceql", {"name": "structural"}],
        ["docs-config", {"name": "config-reference"}],
        ["traceql-search", {"query": "{ }", "start": "yesterday"}]
    ]);
    let r = session(&server, "shop", &calls);

    // Tempo's tools and arguments; the doc resources.
    let tools = r["tools"].as_object().unwrap();
    let mut names: Vec<&str> = tools.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "docs-config",
            "docs-traceql",
            "get-attribute-names",
            "get-attribute-values",
            "get-trace",
            "trace-diff",
            "traceql-metrics-instant",
            "traceql-metrics-range",
            "traceql-search"
        ]
    );
    assert_eq!(tools["traceql-search"], json!(["end", "query", "start"]));
    assert_eq!(
        tools["get-attribute-values"],
        json!(["filter-query", "name"])
    );
    assert_eq!(
        tools["trace-diff"],
        json!([
            "base_end",
            "base_start",
            "base_trace_id",
            "compare_end",
            "compare_start",
            "compare_trace_id",
            "format"
        ])
    );
    let resources = r["resources"].as_object().unwrap();
    for uri in [
        "docs://traceql/basic",
        "docs://traceql/aggregates",
        "docs://traceql/structural",
        "docs://traceql/metrics",
        "docs://traceql/query",
        "docs://config/overview",
        "docs://config/reference",
    ] {
        assert!(resources[uri].as_str().unwrap().len() > 200, "{uri}");
    }

    let (_, err, v) = call(&r, 0);
    assert!(!err);
    assert!(
        v["resource"]
            .as_array()
            .unwrap()
            .contains(&json!("service.name")),
        "{v}"
    );
    assert!(
        v["span"].as_array().unwrap().contains(&json!("http.route")),
        "{v}"
    );
    let (_, _, v) = call(&r, 1);
    assert!(v.get("span").is_none() && v["resource"].is_array(), "{v}");
    let (_, _, v) = call(&r, 2);
    let mut svcs: Vec<&str> = v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["value"].as_str().unwrap())
        .collect();
    svcs.sort_unstable();
    assert_eq!(svcs, ["checkout", "frontend", "payments"]);
    let (_, _, v) = call(&r, 3);
    assert_eq!(
        v["values"],
        json!([{"type": "string", "value": "POST /pay"}])
    );

    // Search: only the failed trace of this tenant; a metrics query and bad TraceQL are errors
    // the model can read.
    let (_, err, v) = call(&r, 4);
    assert!(!err);
    let traces = v["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 1, "{v}");
    assert_eq!(traces[0]["traceID"], slow);
    assert_eq!(traces[0]["rootService"], "frontend");
    assert_eq!(traces[0]["rootName"], "GET /checkout");
    assert_eq!(traces[0]["spans"][0]["name"], "POST /pay");
    let (_, err, v) = call(&r, 5);
    assert!(err && v.as_str().unwrap().contains("metrics query"), "{v}");
    let (_, err, v) = call(&r, 6);
    assert!(err && v.as_str().unwrap().contains("line 1, col"), "{v}");

    // Metrics: 4 spans per trace, 2 traces; one error span.
    let (_, err, v) = call(&r, 7);
    assert!(!err);
    let mut counts: Vec<(String, f64)> = v["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["labels"]["resource.service.name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                s["value"].as_f64().unwrap(),
            )
        })
        .collect();
    counts.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        counts,
        [
            ("checkout".to_string(), 4.0),
            ("frontend".to_string(), 2.0),
            ("payments".to_string(), 2.0)
        ]
    );
    let (_, err, v) = call(&r, 8);
    assert!(!err);
    let total: f64 = v["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_f64().unwrap_or(0.0))
        .sum();
    assert_eq!(total, 1.0, "{v}");

    // One trace: a tree with depths, the failure and its message.
    let (_, err, v) = call(&r, 9);
    assert!(!err);
    assert_eq!(v["traceID"], slow);
    assert_eq!(v["spanCount"], 4);
    assert_eq!(v["errorCount"], 1);
    assert_eq!(v["services"]["payments"]["errors"], 1);
    let spans: Vec<(&str, u64)> = v["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["depth"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        spans,
        [
            ("GET /checkout", 0),
            ("SELECT cart", 1),
            ("charge", 1),
            ("POST /pay", 2)
        ]
    );
    assert_eq!(v["spans"][3]["statusMessage"], "card declined");
    let (_, err, v) = call(&r, 10);
    assert!(err && v.as_str().unwrap().starts_with("not found"), "{v}");

    // The diff finds the slow, failed payment first.
    let (_, err, v) = call(&r, 11);
    assert!(!err);
    let first = &v["differences"][0];
    assert_eq!(first["op"], "changed", "{v}");
    assert_eq!(first["deltaMs"], 860.0, "largest change first: {v}");
    let pay = v["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "POST /pay")
        .unwrap();
    assert_eq!(pay["compare"]["errors"], 1);
    assert_eq!(pay["deltaMs"], 860.0);
    let (_, _, v) = call(&r, 12);
    assert_eq!(v["durationDeltaMs"], 860.0);
    assert!(v["patch"].as_array().unwrap().len() >= 3);
    let (_, err, _) = call(&r, 13);
    assert!(err);

    let (_, err, v) = call(&r, 14);
    assert!(!err && v.as_str().unwrap().contains("descendants"));
    let (_, err, v) = call(&r, 15);
    assert!(!err && v.as_str().unwrap().contains("http_listen_port"));
    let (_, err, v) = call(&r, 16);
    assert!(err && v.as_str().unwrap().contains("RFC 3339"), "{v}");

    // Another tenant sees only its own trace.
    let r = session(
        &server,
        "other",
        &json!([["traceql-search", {"query": "{ }"}], ["get-trace", {"trace_id": slow}]]),
    );
    let (_, _, v) = call(&r, 0);
    let ids: Vec<&str> = v["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["33".repeat(16)]);
    let (_, err, _) = call(&r, 1);
    assert!(err);

    // A web page cannot drive the tools: requests with an Origin are refused.
    let resp = http()
        .post(server.api("/api/mcp"))
        .header("Origin", "http://evil.example")
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("X-Scope-OrgID", "shop")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_is_off_unless_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let resp = http()
        .post(server.api("/api/mcp"))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
}
