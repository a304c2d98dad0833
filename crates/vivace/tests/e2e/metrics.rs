//! TraceQL metrics end to end: the catalogue's C-M cases (`crates/traceql/testdata/metrics.txt`)
//! over fixture MT sent as OTLP, read over HTTP live, from blocks and after compaction (run by
//! the search catalogue test, which holds the server in those states); Grafana-shaped range and
//! instant requests, gRPC streaming on both ports with a real client, and bad input.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::search::{FIXTURES, request};
use crate::support::{Server, http, last_message, post_otlp, stream_error};

const CASES: &str = include_str!("../../../traceql/testdata/metrics.txt");

/// The C-M window: 60 s in steps of 20 s from `base_ns` (a multiple of 20 s).
pub const STEP_NS: u64 = 20_000_000_000;

/// A series as the cases write it: `{labels sorted by name}` and `(seconds after base, value)`.
type Rendered = (String, Vec<(i64, f64)>);

fn label_value(v: &Json) -> String {
    if let Some(s) = v.get("stringValue").and_then(Json::as_str) {
        return format!("{s:?}");
    }
    if let Some(i) = v.get("intValue") {
        return i.as_str().map_or_else(|| i.to_string(), str::to_string);
    }
    if let Some(d) = v.get("doubleValue") {
        return d.as_f64().map_or_else(|| d.to_string(), |f| format!("{f}"));
    }
    if let Some(b) = v.get("boolValue") {
        return b.to_string();
    }
    "nil".into()
}

fn render(series: &Json, base_ms: i64) -> Vec<Rendered> {
    let mut out = Vec::new();
    for s in series.as_array().into_iter().flatten() {
        let mut labels: Vec<(String, String)> = s["labels"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|kv| {
                (
                    kv["key"].as_str().unwrap().to_string(),
                    label_value(&kv["value"]),
                )
            })
            .collect();
        labels.sort();
        let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let samples = s["samples"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| {
                let t: i64 = x["timestampMs"].as_str().unwrap().parse().unwrap();
                ((t - base_ms) / 1000, x["value"].as_f64().unwrap_or(0.0))
            })
            .collect();
        out.push((format!("{{{}}}", l.join(",")), samples));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn parse_expected(text: &str) -> Vec<Rendered> {
    text.split(" ; ")
        .map(|one| {
            let close = one.find('}').unwrap() + 1;
            let samples = one[close..]
                .split_whitespace()
                .map(|p| {
                    let (t, v) = p.split_once(':').unwrap();
                    (t.parse().unwrap(), v.parse().unwrap())
                })
                .collect();
            (one[..close].to_string(), samples)
        })
        .collect()
}

fn same(g: &Rendered, w: &Rendered) -> bool {
    let close = |a: f64, b: f64| a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
    g.0 == w.0
        && g.1.len() == w.1.len()
        && g.1
            .iter()
            .zip(&w.1)
            .all(|(a, b)| a.0 == b.0 && close(a.1, b.1))
}

pub async fn query_range(server: &Server, tenant: &str, q: &str, base_ns: u64) -> (u16, Json) {
    let r = http()
        .get(server.api("/api/metrics/query_range"))
        .header("X-Scope-OrgID", tenant)
        .query(&[
            ("q", q.to_string()),
            ("start", base_ns.to_string()),
            ("end", (base_ns + 3 * STEP_NS).to_string()),
            ("step", "20s".into()),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Json::String(text)),
    )
}

/// Every C-M case against tenant `MT`; the rendered answers by case.
pub async fn run_cases(
    server: &Server,
    base_ns: u64,
    state: &str,
) -> BTreeMap<String, Vec<Rendered>> {
    let base_ms = (base_ns / 1_000_000) as i64;
    let mut failures = Vec::new();
    let mut out = BTreeMap::new();
    for line in CASES
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let (id, query, expected) = (cols[0], cols[1], cols[2]);
        let (status, body) = query_range(server, "MT", query, base_ns).await;
        if status != 200 {
            failures.push(format!("{id} {query}: status {status}: {body}"));
            continue;
        }
        let got = render(&body["series"], base_ms);
        let (contains, expected) = match expected.strip_prefix("contains: ") {
            Some(rest) => (true, rest),
            None => (false, expected),
        };
        let want = parse_expected(expected);
        let ok = want.iter().all(|w| got.iter().any(|g| same(g, w)))
            && (contains || want.len() == got.len());
        if !ok {
            failures.push(format!("{id} {query}\n  want {want:?}\n  got  {got:?}"));
        }
        out.insert(id.to_string(), got);
    }
    assert!(
        failures.is_empty(),
        "{state}: {} metrics cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_metrics_requests_over_http_and_grpc() {
    use vivace_proto::tempopb::streaming_querier_client::StreamingQuerierClient;
    use vivace_proto::tempopb::{QueryInstantRequest, QueryRangeRequest};

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "multitenancy_enabled: true\n");
    let all: Json = serde_json::from_str(FIXTURES).unwrap();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let base_ns = (now_ns - 3 * STEP_NS) / STEP_NS * STEP_NS;
    let (status, _) = post_otlp(&server, &request(&all["MT"], base_ns), Some("MT")).await;
    assert_eq!(status, 200);

    // Acknowledged spans count at once: no end cutoff, no block needed.
    let (status, body) = query_range(&server, "MT", "{ } | rate()", base_ns).await;
    assert_eq!(status, 200, "{body}");
    let s = &body["series"][0];
    assert_eq!(s["labels"][0]["key"], "__name__");
    assert_eq!(s["labels"][0]["value"]["stringValue"], "rate");
    assert_eq!(s["samples"].as_array().unwrap().len(), 3, "{body}");
    assert!(
        s["samples"][0]["timestampMs"].is_string(),
        "int64 as string: {body}"
    );
    // Exemplars name the trace.
    let ex = s["exemplars"].as_array().expect("exemplars");
    assert!(!ex.is_empty());
    assert!(
        ex[0]["labels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["key"] == "trace:id")
    );
    assert_eq!(
        body["metrics"]["completedJobs"],
        body["metrics"]["totalJobs"]
    );

    // Seconds, as Grafana sends them, and Grafana's default step form.
    let secs = |ns: u64| (ns / 1_000_000_000).to_string();
    let r = http()
        .get(server.api("/api/metrics/query_range"))
        .header("X-Scope-OrgID", "MT")
        .query(&[
            ("q", "{ } | count_over_time() by (resource.service.name)"),
            ("start", &secs(base_ns)),
            ("end", &secs(base_ns + 3 * STEP_NS)),
            ("step", "20s"),
            ("exemplars", "0"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Json = r.json().await.unwrap();
    assert_eq!(body["series"].as_array().unwrap().len(), 2, "{body}");
    assert!(body["series"][0].get("exemplars").is_none(), "{body}");
    // promLabels: the key Tempo's clients merge streamed series by, and Grafana's legend.
    assert_eq!(
        body["series"][0]["promLabels"], r#"{resource.service.name="api"}"#,
        "{body}"
    );

    // Instant: only the documented fields (older Grafana decodes strictly).
    let r = http()
        .get(server.api("/api/metrics/query"))
        .header("X-Scope-OrgID", "MT")
        .query(&[
            ("q", "{ } | count_over_time() by (resource.service.name)"),
            ("start", &secs(base_ns)),
            ("end", &secs(base_ns + 3 * STEP_NS)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Json = r.json().await.unwrap();
    for s in body["series"].as_array().unwrap() {
        let keys: Vec<&String> = s.as_object().unwrap().keys().collect();
        assert!(keys.iter().all(|k| *k == "labels" || *k == "value"), "{s}");
    }
    let values: Vec<f64> = body["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, vec![2.0, 2.0], "{body}");
    for k in body.as_object().unwrap().keys() {
        assert!(
            ["series", "metrics", "status", "message"].contains(&k.as_str()),
            "{k}"
        );
    }

    // Bad input: a search where a metrics query is due, bad TraceQL, a zero step, a range
    // over max_duration, no query.
    for (q, extra) in [
        ("{ }", vec![]),
        ("{ } | rate(", vec![]),
        ("{ } | rate()", vec![("step", "0s")]),
        ("{ } | rate()", vec![("start", "0"), ("end", "172800")]),
        ("", vec![]),
    ] {
        let mut params = vec![("q", q)];
        params.extend(extra);
        let r = http()
            .get(server.api("/api/metrics/query_range"))
            .header("X-Scope-OrgID", "MT")
            .query(&params)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(status, 400, "{q} {params:?}: {text}");
        if q == "{ } | rate(" {
            assert!(text.contains("line 1, col"), "{text}");
        }
    }

    // gRPC streaming on the HTTP port (h2c) and the gRPC port, as Grafana's backend calls it.
    for port in [server.http, server.grpc_query] {
        let mut client = StreamingQuerierClient::connect(format!("http://127.0.0.1:{port}"))
            .await
            .expect("connect");
        let mut req = tonic::Request::new(QueryRangeRequest {
            query: "{ } | quantile_over_time(duration, .5, .9)".into(),
            start: base_ns,
            end: base_ns + 3 * STEP_NS,
            step: STEP_NS,
            ..Default::default()
        });
        req.metadata_mut()
            .insert("x-scope-orgid", "MT".parse().unwrap());
        let mut stream = client.metrics_query_range(req).await.unwrap().into_inner();
        let last = last_message(&mut stream).await;
        assert_eq!(last.series.len(), 2, "port {port}: {last:?}");
        let p50 = &last.series[0];
        assert_eq!(p50.labels[0].key, "p");
        let v: Vec<f64> = p50.samples.iter().map(|s| s.value).collect();
        assert_eq!(
            v,
            vec![0.004194304, 0.016777216, 1.073741824],
            "port {port}"
        );

        let mut req = tonic::Request::new(QueryInstantRequest {
            query: "{ status = error } | count_over_time()".into(),
            start: base_ns,
            end: base_ns + 3 * STEP_NS,
        });
        req.metadata_mut()
            .insert("x-scope-orgid", "MT".parse().unwrap());
        let mut stream = client
            .metrics_query_instant(req)
            .await
            .unwrap()
            .into_inner();
        let last = last_message(&mut stream).await;
        assert_eq!(last.series.len(), 1);
        assert_eq!(last.series[0].value, 2.0);

        let mut req = tonic::Request::new(QueryRangeRequest {
            query: "{ } | rate(".into(),
            start: base_ns,
            end: base_ns + 3 * STEP_NS,
            step: STEP_NS,
            ..Default::default()
        });
        req.metadata_mut()
            .insert("x-scope-orgid", "MT".parse().unwrap());
        let err = stream_error(client.metrics_query_range(req).await).await;
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    }
}

/// Metrics that read blocks span by span, one job per row group, answer exactly what the same
/// spans answered while they were live (read as batches).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_only_row_group_jobs_answer_as_live_data() {
    const LIVE: &str =
        "live_store:\n  max_trace_idle: 1h\n  max_trace_live: 1h\n  max_block_duration: 1h\n";
    const BLOCKS: &str = "live_store:\n  max_trace_idle: 100ms\n  max_trace_live: 1s\n  max_block_duration: 300ms\n  complete_block_timeout: 1s\n\
         storage:\n  trace:\n    block:\n      parquet_row_group_size_bytes: 3000\n\
         query_frontend:\n  search:\n    target_bytes_per_job: 1\n";
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), LIVE);
    for id in 1..=120u8 {
        let (status, _) =
            post_otlp(&server, &crate::support::shop_trace(id, id % 7 == 0), None).await;
        assert_eq!(status, 200);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let queries = [
        "{ } | count_over_time()",
        "{ status = error } | count_over_time() by (resource.service.name)",
        "{ } | quantile_over_time(duration, .5, .9) by (span.http.route)",
        "{ kind = server && resource.service.name != \"frontend\" } | max_over_time(duration) by (name)",
        "{ span.http.route =~ \"POST.*\" } | histogram_over_time(duration)",
    ];
    async fn ask(server: &Server, q: &str, now: u64) -> Json {
        http()
            .get(server.api("/api/metrics/query_range"))
            .query(&[
                ("q", q.to_string()),
                ("start", (now - 600).to_string()),
                // Not past the present: an end in the future is cut to the moment of the
                // query, and the two states are asked at different moments.
                ("end", now.to_string()),
                ("step", "10s".into()),
            ])
            .send()
            .await
            .unwrap()
            .json::<Json>()
            .await
            .unwrap()
    }
    let strip = |body: &Json| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = body["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["promLabels"].to_string(), s["samples"].to_string()))
            .collect();
        v.sort();
        v
    };
    let mut live = Vec::new();
    for q in queries {
        let body = ask(&server, q, now).await;
        assert_eq!(
            body["metrics"]["totalBlocks"].as_u64().unwrap_or(0),
            0,
            "{q}"
        );
        assert!(!strip(&body).is_empty(), "{q}: {body}");
        live.push(strip(&body));
    }
    // The same spans replayed from the log and cut into blocks of small row groups.
    server.terminate();
    let config = dir.path().join("vivace.yaml");
    let yaml = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, yaml.replace(LIVE, BLOCKS)).unwrap();
    server.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let body = ask(&server, queries[0], now).await;
        let m = &body["metrics"];
        // Every span in blocks, and no job left for the live-store.
        if m["totalBlocks"].as_u64().unwrap_or(0) > 0
            && m["inspectedSpans"].as_str() == Some("480")
            && strip(&body) == live[0]
            && m["totalJobs"].as_u64() > m["totalBlocks"].as_u64()
        {
            let again = ask(&server, queries[0], now).await;
            if again["metrics"]["inspectedTraces"].as_u64() == Some(120) {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "spans not in blocks: {}\nlive: {:?}\nblocks: {:?}",
            body["metrics"],
            live[0],
            strip(&body)
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    for (q, want) in queries.iter().zip(live) {
        let body = ask(&server, q, now).await;
        let m = &body["metrics"];
        let (jobs, blocks) = (
            m["totalJobs"].as_u64().unwrap_or(0),
            m["totalBlocks"].as_u64().unwrap_or(0),
        );
        assert!(jobs > blocks + 1, "{q}: row-group jobs expected: {m}");
        assert_eq!(strip(&body), want, "{q}");
    }
}
