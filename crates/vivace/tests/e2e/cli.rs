//! `vivace query | trace | tags | metrics` against a running server: tables and JSON, the
//! tenant, and errors with a non-zero exit.

use std::process::Command;

use crate::support::{Server, binary, http, post_otlp};

fn cli(server: &Server, args: &[&str]) -> (bool, String, String) {
    let o = Command::new(binary())
        .args(args)
        .args(["--server", &server.api("")])
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_queries_a_running_server() {
    use vivace_proto::otlp::common::{AnyValue, KeyValue, any_value};
    use vivace_proto::otlp::trace::{Span, Status};

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "multitenancy_enabled: true\n");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let span = |id: u8, parent: u8, name: &str, error: bool| Span {
        trace_id: vec![0x77; 16],
        span_id: vec![id; 8],
        parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
        name: name.into(),
        start_time_unix_nano: now - 5_000_000_000 + u64::from(id) * 1000,
        end_time_unix_nano: now - 4_000_000_000,
        attributes: vec![KeyValue {
            key: "http.route".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("/cart".into())),
            }),
            ..Default::default()
        }],
        status: error.then(|| Status {
            code: 2,
            ..Default::default()
        }),
        ..Default::default()
    };
    let req = crate::support::service_export(
        "cli-svc",
        vec![
            span(1, 0, "GET /cart", false),
            span(2, 1, "load cart", false),
            span(3, 2, "SELECT carts", true),
        ],
    );
    assert_eq!(post_otlp(&server, &req, Some("team-c")).await.0, 200);
    let id = "77".repeat(16);

    let (ok, out, err) = cli(
        &server,
        &["query", "{ status = error }", "--tenant", "team-c"],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains(&id) && out.contains("cli-svc") && out.contains("GET /cart"),
        "{out}"
    );
    let (ok, out, _) = cli(&server, &["query", "{ }", "--tenant", "team-c", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["traces"][0]["traceID"], id);

    let (ok, out, err) = cli(&server, &["trace", &id, "--tenant", "team-c"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("GET /cart [cli-svc]"), "{out}");
    assert!(lines[1].starts_with("  load cart"), "{out}");
    assert!(lines[2].starts_with("    ! SELECT carts"), "{out}");

    let (ok, out, _) = cli(&server, &["tags", "span", "--tenant", "team-c"]);
    assert!(ok && out.contains("http.route"), "{out}");

    let (ok, out, err) = cli(
        &server,
        &[
            "metrics",
            "{ } | count_over_time() by (name)",
            "--tenant",
            "team-c",
            "--since",
            "10m",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains(r#"{name="SELECT carts"}"#), "{out}");

    // Errors: a bad query, a missing tenant, an unknown trace.
    let (ok, _, err) = cli(&server, &["query", "{ .a = }", "--tenant", "team-c"]);
    assert!(!ok && err.contains("parse error at line 1, col 8"), "{err}");
    let (ok, _, err) = cli(&server, &["query", "{ }"]);
    assert!(!ok && err.contains("X-Scope-OrgID"), "{err}");
    let (ok, _, err) = cli(&server, &["trace", &"12".repeat(16), "--tenant", "team-c"]);
    assert!(!ok && err.contains("not found"), "{err}");
    // The server is fine.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_are_listed_inspected_and_verified_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        "live_store:\n  max_trace_idle: 200ms\n  max_trace_live: 1s\n  max_block_duration: 500ms\n",
    );
    let o = Command::new(binary())
        .args(["gen", "--endpoint", &format!("127.0.0.1:{}", server.grpc)])
        .args([
            "--duration",
            "1s",
            "--rate",
            "3000",
            "--templates",
            "2",
            "--batch-spans",
            "100",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !server.log_text().contains("block written") {
        assert!(std::time::Instant::now() < deadline, "no block written");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.kill();
    let config = dir.path().join("vivace.yaml");
    let data = dir.path().join("data");
    let blocks = |args: &[&str]| {
        let o = Command::new(binary())
            .arg("blocks")
            .args(args)
            .arg(format!("-config.file={}", config.display()))
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, out, err) = blocks(&["list", "single-tenant"]);
    assert!(ok, "{err}");
    let id = out
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no block listed:\n{out}"))
        .to_string();
    assert!(err.contains("blocks,"), "{err}");
    // Version and dedicated columns: Tempo's defaults, named once below the table.
    assert!(out.lines().nth(1).unwrap().contains("vParquet5"), "{out}");
    assert!(out.contains("dedicated columns #1:"), "{out}");
    assert!(
        out.contains("resource  string  k8s.namespace.name"),
        "{out}"
    );
    assert!(out.contains("span      int     http.status_code"), "{out}");
    let (ok, out, err) = blocks(&["inspect", "single-tenant", &id]);
    assert!(ok, "{err}");
    let meta: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(meta["blockID"], id);
    assert_eq!(meta["format"], "vParquet5");
    let (ok, out, err) = blocks(&["verify", "single-tenant", &id]);
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("ok: "), "{out}");
    // Search and trace by ID on the bucket itself, no server running.
    let local = |args: &[&str]| {
        let o = Command::new(binary())
            .args(args)
            .arg(format!("-config.file={}", config.display()))
            .arg("--data-dir")
            .arg(&data)
            .args(["--since", "1h"])
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, out, err) = local(&["query", "{ }", "--limit", "5", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tid = v["traces"][0]["traceID"]
        .as_str()
        .expect("a trace from the blocks")
        .to_string();
    let o = Command::new(binary())
        .args(["trace", &tid])
        .arg(format!("-config.file={}", config.display()))
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("spans"));

    // A damaged bloom shard is found.
    let shard = data.join(format!("blocks/single-tenant/{id}/bloom-0"));
    let mut bytes = std::fs::read(&shard).unwrap();
    let n = bytes.len();
    for b in &mut bytes[24..n] {
        *b = 0;
    }
    std::fs::write(&shard, bytes).unwrap();
    let (ok, out, _) = blocks(&["verify", "single-tenant", &id]);
    assert!(
        !ok && out.contains("missing from their bloom shard"),
        "{out}"
    );
    assert!(!blocks(&["inspect", "single-tenant", "no-such-block"]).0);
}
