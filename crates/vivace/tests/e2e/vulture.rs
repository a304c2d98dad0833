//! `vivace vulture` against the single binary for a bounded time: traces written over OTLP gRPC
//! (some in several batches) and read back by ID, tags search, TraceQL and metrics, from live
//! data and from blocks, with its metrics served while it runs; and a failing run (reads from a
//! server that never got the traces) exits non-zero naming the failed checks.
//!
//! About one metrics check in a hundred misses a trace and finds it when checked again (seen
//! with and without block cutting, not reproduced with single spans; noted on the metrics
//! issue): the verdict counts it as transient, and only a check that fails twice fails the run.

use std::process::Command;
use std::time::Duration;

use crate::support::{Server, binary, free_port, get_text};

const FAST: [&str; 8] = [
    "--tempo-write-backoff-duration",
    "500ms",
    "--tempo-read-backoff-duration",
    "700ms",
    "--tempo-search-backoff-duration",
    "700ms",
    "--tempo-metrics-backoff-duration",
    "700ms",
];

fn vulture(push: &Server, query: &Server, metrics_port: u16, secs: u64) -> std::process::Child {
    Command::new(binary())
        .arg("vulture")
        .args([
            "--tempo-push-url",
            &format!("http://127.0.0.1:{}", push.grpc),
        ])
        .args(["--tempo-query-url", &query.api("")])
        .args(["--tempo-org-id", "vulture"])
        .args([
            "--prometheus-listen-address",
            &format!("127.0.0.1:{metrics_port}"),
        ])
        .args(["--duration", &format!("{secs}s")])
        .args(FAST)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vulture_checks_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    // Traces complete after 1 s and are cut into blocks every 2 s, so reads see both.
    let server = Server::start(
        dir.path(),
        "multitenancy_enabled: true\nlive_store:\n  max_trace_idle: 1s\n  max_block_duration: 2s\n  complete_block_timeout: 2s\n",
    );
    let port = free_port();
    let child = vulture(&server, &server, port, 16);
    // Its metrics while it runs.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let text = get_text(&format!("http://127.0.0.1:{port}/metrics")).await;
    assert!(
        text.contains(r#"vivace_vulture_trace_total{check="byid"}"#),
        "{text}"
    );
    assert!(text.contains("vivace_vulture_written_total"), "{text}");
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "vulture failed:\n{stdout}\n{stderr}\n{}",
        server.log_text()
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    assert!(
        server.log_text().contains("block written"),
        "traces reached blocks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vulture_fails_when_traces_are_missing() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (writes, reads) = (
        Server::start(a.path(), "multitenancy_enabled: true\n"),
        Server::start(b.path(), "multitenancy_enabled: true\n"),
    );
    let out = vulture(&writes, &reads, free_port(), 4)
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a vulture reading nothing must fail");
    assert!(
        stderr.contains("notfound_byid") || stderr.contains("notfound_search"),
        "{stderr}"
    );
}
