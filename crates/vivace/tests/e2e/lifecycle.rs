//! Start-up and shutdown: config errors stop the process before it listens; SIGTERM under load
//! exits 0 within 5 s and keeps every acknowledged span.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Server, binary, free_port, http};

fn run_with_config(yaml: &str) -> (Option<i32>, String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, yaml).unwrap();
    let start = Instant::now();
    let out = Command::new(binary())
        .arg(format!("-config.file={}", path.display()))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
        start.elapsed(),
    )
}

#[test]
fn config_errors_name_the_key_and_line_and_exit_before_listening() {
    let port = free_port();
    let (code, err, took) = run_with_config(&format!(
        "server:\n  http_listen_port: {port}\n  http_listen_adress: 127.0.0.1\n"
    ));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("http_listen_adress") && err.contains("line 3"),
        "{err}"
    );
    assert!(took < Duration::from_secs(5));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens"
    );

    let (code, err, _) = run_with_config("live_store:\n  max_trace_idle: often\n");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("live_store.max_trace_idle") && err.contains("line 2"),
        "{err}"
    );

    let (code, err, _) = run_with_config("target: querier\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("target"), "{err}");

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let (code, err, _) = run_with_config(&format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\n"
    ));
    assert_eq!(code, Some(1));
    assert!(err.contains("server.http_listen_port"), "{err}");
}

#[test]
fn environment_expansion_in_config() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, "server:\n  http_listen_port: ${VIVACE_TEST_HTTP_PORT}\n  grpc_listen_port: 0\n  http_listen_address: 127.0.0.1\ndistributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc:\n          endpoint: 127.0.0.1:0\n        http:\n          endpoint: 127.0.0.1:0\n").unwrap();
    let mut child = Command::new(binary())
        .args([
            format!("-config.file={}", path.display()),
            "-config.expand-env=true".into(),
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("VIVACE_TEST_HTTP_PORT", port.to_string())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "vivace did not listen on the expanded port"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_zero_quickly_and_keeps_acknowledged_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), "");
    let ready = http().get(server.api("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let acked: crate::crash::Acked = Default::default();
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        tasks.push(tokio::spawn(crate::crash::sender(
            server.grpc,
            server.otlp_http,
            100 + t,
            t % 2 == 0,
            acked.clone(),
            10_000,
        )));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, took) = tokio::task::block_in_place(|| server.terminate());
    assert!(status.success(), "exit status {status}");
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM → exit took {took:?}"
    );
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
    }
    server.restart();
    let spans = crate::crash::verify(&server, &acked).await;
    assert!(spans > 0);
}

#[test]
fn traceql_validate_prints_the_canonical_form_or_the_error() {
    let run = |args: &[&str]| {
        let out = Command::new(binary())
            .arg("traceql")
            .arg("validate")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, _) = run(&["{ .a || .b && 1 + 1 > 1 }"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.trim(), "{ (.a || .b) && true }");
    let (code, _, err) = run(&["{ span.a = 1 }}"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err.trim(),
        "parse error at line 1, col 15: syntax error: unexpected }, expecting with"
    );
    let (code, _, err) = run(&["{ status = 2 }"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("binary operations must operate on the same type: status = 2"),
        "{err}"
    );
    let (code, out, _) = run(&["--json", "{ } | rate()"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["body"]["Metrics"]["expr"]["Query"]["func"]["Rate"].is_object(),
        "{v}"
    );
}
