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
