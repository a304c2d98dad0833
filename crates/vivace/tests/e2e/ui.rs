//! The web UI in headless Chromium against the running binary with known traces: each deep link
//! renders the expected spans, services and results in the DOM, with no console message at all;
//! screenshots are kept under `$VIVACE_ARTIFACTS/ui` (scripts/test.sh: the target dir).

use std::path::PathBuf;
use std::process::Command;

use crate::support::{Server, http, installed, post_otlp, shop_trace};

fn chromium() -> String {
    installed("VIVACE_CHROMIUM", "Chromium")
}

fn artifacts() -> PathBuf {
    let dir = std::env::var_os("VIVACE_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("ui");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Loads `url` headless (waiting for the page's requests), saves a screenshot as `name.png`;
/// the DOM after the scripts ran, and the console messages.
fn load(url: &str, name: &str) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let o = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1400,1000",
                "--virtual-time-budget=8000",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(url)
            .output()
            .unwrap();
        assert!(o.status.success(), "chromium failed on {url}");
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .filter(|l| l.contains("CONSOLE"))
                .map(str::to_string)
                .collect::<Vec<_>>(),
        )
    };
    let shot = artifacts().join(format!("{name}.png"));
    let (_, mut console) = run(&[&format!("--screenshot={}", shot.display())]);
    assert!(
        std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0) > 10_000,
        "no screenshot of {url}"
    );
    let (dom, more) = run(&["--dump-dom"]);
    console.extend(more);
    (dom, console)
}

fn enc(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Console lines other than the browser's note of an error status the page expected.
fn unexpected(console: Vec<String>) -> Vec<String> {
    console
        .into_iter()
        .filter(|l| !l.contains("Failed to load resource: the server responded with a status of"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_ui_deep_links_render_known_traces() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "multitenancy_enabled: true\n");
    assert_eq!(
        post_otlp(&server, &shop_trace(0x41, false), Some("shop"))
            .await
            .0,
        200
    );
    assert_eq!(
        post_otlp(&server, &shop_trace(0x42, true), Some("shop"))
            .await
            .0,
        200
    );
    assert_eq!(
        post_otlp(&server, &shop_trace(0x43, true), Some("other"))
            .await
            .0,
        200
    );
    let (normal, slow, other) = ("41".repeat(16), "42".repeat(16), "43".repeat(16));

    // The page and its assets are served by the binary, with a strict content policy.
    let resp = http().get(server.api("/")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    for asset in ["/ui/app.js", "/ui/app.css"] {
        let r = http().get(server.api(asset)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{asset}");
    }

    // A trace: every span, its services, the failure.
    let (dom, console) = load(&server.api(&format!("/trace/{slow}?tenant=shop")), "trace");
    assert!(console.is_empty(), "console: {console:?}");
    for name in ["GET /checkout", "SELECT cart", "charge", "POST /pay"] {
        assert!(dom.contains(&format!(">{name}<")), "{name} missing");
    }
    for svc in ["frontend", "checkout", "payments"] {
        assert!(dom.contains(&format!(">{svc}<")), "{svc} missing");
    }
    assert_eq!(dom.matches("data-span=").count(), 4);
    assert!(dom.contains("row failed"), "the failed span is marked");
    assert!(dom.contains("critical"), "critical path marked");

    // Search: only the failed trace of this tenant, with its root.
    let q = enc("{ status = error }");
    let (dom, console) = load(
        &server.api(&format!("/search?q={q}&since=15m&tenant=shop")),
        "search",
    );
    assert!(console.is_empty(), "console: {console:?}");
    assert!(dom.contains(&slow), "search result missing");
    assert!(!dom.contains(&normal) && !dom.contains(&other));
    assert!(dom.contains(">GET /checkout<"));

    // A TraceQL error is shown at its line and column.
    let q = enc("{ .a = }");
    let (dom, console) = load(
        &server.api(&format!("/search?q={q}&tenant=shop")),
        "search-error",
    );
    assert!(unexpected(console).is_empty(), "console");
    assert!(dom.contains("line 1, col"), "error position missing");
    assert!(dom.contains("class=\"caret\""));

    // A metrics chart: one line per service.
    let q = enc("{ } | count_over_time() by (resource.service.name)");
    let (dom, console) = load(
        &server.api(&format!("/graph?q={q}&since=15m&tenant=shop")),
        "graph",
    );
    assert!(console.is_empty(), "console: {console:?}");
    assert_eq!(dom.matches("<polyline").count(), 3, "one line per service");
    assert!(dom.contains(r#"resource.service.name="payments""#));

    // Overview: RED per service from entry spans, and the service graph's edge.
    let (dom, console) = load(&server.api("/?since=15m&tenant=shop"), "overview");
    assert!(console.is_empty(), "console: {console:?}");
    assert!(dom.contains(">frontend<") && dom.contains(">payments<"));
    assert!(
        dom.contains("2 calls, 1 failed"),
        "checkout → payments edge"
    );
    assert!(dom.contains("50.0%"), "payments' error ratio");

    // A trace of another tenant is not found under this one.
    let (dom, console) = load(
        &server.api(&format!("/trace/{other}?tenant=shop")),
        "trace-missing",
    );
    assert!(unexpected(console).is_empty(), "console");
    assert!(dom.contains("was not found"));
}
