//! TraceQL search end to end: the catalogue's semantic cases (`crates/traceql/testdata`) sent as
//! OTLP to the real binary — one tenant per fixture — and queried over HTTP while the traces
//! are live, after they are cut into blocks, and after compaction merged the blocks: every
//! answer as the catalogue expects, and the same answer in all three states (the TraceQL
//! metrics cases too, through `metrics::run_cases`). Also freshness
//! with the OpenTelemetry SDK, Grafana-shaped requests (JSON and protobuf), tags and tag values,
//! and bad input.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::Value as Json;
use vivace_proto::otlp::collector::ExportTraceServiceRequest;
use vivace_proto::otlp::common::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value};
use vivace_proto::otlp::resource::Resource;
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status, span};
use vivace_proto::tempopb::SearchResponse;

use crate::support::{JsonBody, Server, clients_dir, http, post_otlp, python, service_export};

pub const FIXTURES: &str = include_str!("../../../traceql/testdata/fixtures.json");
const CASES: &str = include_str!("../../../traceql/testdata/semantic.txt");

/// The same IDs the evaluator's unit tests give the fixture labels.
fn id8(label: &str) -> Vec<u8> {
    let mut id = vec![0x11u8; 8];
    id[0] = 0x5a;
    for (i, b) in label.bytes().take(7).enumerate() {
        id[i + 1] = b;
    }
    id
}

fn id16(label: &str) -> Vec<u8> {
    let mut id = vec![0x22u8; 16];
    id[0] = 0x7e;
    for (i, b) in label.bytes().take(15).enumerate() {
        id[i + 1] = b;
    }
    id
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn any(v: &Json) -> AnyValue {
    use any_value::Value as V;
    let value = match v {
        Json::String(s) => V::StringValue(s.clone()),
        Json::Bool(b) => V::BoolValue(*b),
        Json::Number(n) if n.is_f64() => V::DoubleValue(n.as_f64().unwrap()),
        Json::Number(n) => V::IntValue(n.as_i64().unwrap()),
        Json::Array(a) => V::ArrayValue(ArrayValue {
            values: a.iter().map(any).collect(),
        }),
        _ => V::StringValue(String::new()),
    };
    AnyValue { value: Some(value) }
}

fn kvs(v: &Json) -> Vec<KeyValue> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: Some(any(v)),
                    ..Default::default()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One fixture as one OTLP request: a resource (and scope) per span, spans in fixture order,
/// starting at `base_ns`.
pub fn request(fixture: &Json, base_ns: u64) -> ExportTraceServiceRequest {
    let mut out = Vec::new();
    for t in fixture.as_array().unwrap() {
        let tid = id16(t["trace"].as_str().unwrap());
        for s in t["spans"].as_array().unwrap() {
            let mut res = kvs(&s["resource"]);
            res.insert(
                0,
                KeyValue {
                    key: "service.name".into(),
                    value: Some(any(&Json::String(
                        s["service"].as_str().unwrap_or("svc").into(),
                    ))),
                    ..Default::default()
                },
            );
            let ms = |v: &Json| (v.as_f64().unwrap_or(0.0) * 1e6) as u64;
            let start = base_ns + ms(&s["start"]);
            let kind = match s["kind"].as_str() {
                Some("server") => span::SpanKind::Server,
                Some("client") => span::SpanKind::Client,
                Some("producer") => span::SpanKind::Producer,
                Some("consumer") => span::SpanKind::Consumer,
                _ => span::SpanKind::Internal,
            };
            let code = match s["status"].as_str() {
                Some("ok") => 1,
                Some("error") => 2,
                _ => 0,
            };
            let sp = Span {
                trace_id: tid.clone(),
                span_id: id8(s["id"].as_str().unwrap()),
                parent_span_id: s["parent"].as_str().map(id8).unwrap_or_default(),
                name: s["name"].as_str().unwrap().into(),
                kind: kind as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start + ms(&s["dur"]),
                attributes: kvs(&s["attrs"]),
                events: s["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| span::Event {
                        time_unix_nano: start + ms(&e["at"]),
                        name: e["name"].as_str().unwrap().into(),
                        attributes: kvs(&e["attrs"]),
                        ..Default::default()
                    })
                    .collect(),
                links: s["links"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| span::Link {
                        trace_id: hex::decode(l["trace"].as_str().unwrap()).unwrap(),
                        span_id: hex::decode(l["span"].as_str().unwrap()).unwrap(),
                        attributes: kvs(&l["attrs"]),
                        ..Default::default()
                    })
                    .collect(),
                status: Some(Status {
                    code,
                    message: s["message"].as_str().unwrap_or("").into(),
                }),
                ..Default::default()
            };
            out.push(ResourceSpans {
                resource: Some(Resource {
                    attributes: res,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: s["scope"]["name"].as_str().unwrap_or("").into(),
                        version: s["scope"]["version"].as_str().unwrap_or("").into(),
                        attributes: kvs(&s["scope"]["attrs"]),
                        ..Default::default()
                    }),
                    spans: vec![sp],
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: out,
    }
}

struct Case {
    id: String,
    fixture: String,
    query: String,
    /// trace label → span labels; `None`: the query must fail.
    expect: Option<BTreeMap<String, BTreeSet<String>>>,
}

fn cases(all: &Json) -> Vec<Case> {
    let mut out = Vec::new();
    for line in CASES.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let c: Vec<&str> = line.split('\t').collect();
        let single = all[c[1]][0]["trace"].as_str().unwrap().to_string();
        let expect = match c[3] {
            "ERROR" => None,
            "none" => Some(BTreeMap::new()),
            text => Some(
                text.split(';')
                    .map(|part| match part.split_once(':') {
                        Some((t, s)) => (
                            t.trim().to_string(),
                            s.split_whitespace().map(String::from).collect(),
                        ),
                        None => (
                            single.clone(),
                            part.split_whitespace().map(String::from).collect(),
                        ),
                    })
                    .collect(),
            ),
        };
        out.push(Case {
            id: c[0].into(),
            fixture: c[1].into(),
            query: c[2].into(),
            expect,
        });
    }
    out
}

/// Label lookups: trimmed trace ID hex → trace label, span ID hex → span label.
fn labels(all: &Json) -> (HashMap<String, String>, HashMap<String, String>) {
    let (mut t, mut s) = (HashMap::new(), HashMap::new());
    for (_, fx) in fixtures(all) {
        for tr in fx.as_array().unwrap() {
            let tl = tr["trace"].as_str().unwrap();
            t.insert(
                hex(&id16(tl)).trim_start_matches('0').to_string(),
                tl.to_string(),
            );
            for sp in tr["spans"].as_array().unwrap() {
                let sl = sp["id"].as_str().unwrap();
                s.insert(hex(&id8(sl)), sl.to_string());
            }
        }
    }
    (t, s)
}

async fn search(server: &Server, tenant: &str, q: &str) -> (u16, Json) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let r = http()
        .get(server.api("/api/search"))
        .header("X-Scope-OrgID", tenant)
        .query(&[
            ("q", q.to_string()),
            ("limit", "100".into()),
            ("spss", "0".into()),
            ("start", (now - 3600).to_string()),
            ("end", (now + 60).to_string()),
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

/// Every case, with its result's `traces` (what must be the same in every state).
async fn run_cases(server: &Server, all: &Json, state: &str) -> BTreeMap<String, Json> {
    let (tl, sl) = labels(all);
    let mut failures = Vec::new();
    let mut out = BTreeMap::new();
    for c in cases(all) {
        let (status, body) = search(server, &c.fixture, &c.query).await;
        match &c.expect {
            None => {
                if status != 400 {
                    failures.push(format!(
                        "{} {}: want 400, got {status} {body}",
                        c.id, c.query
                    ));
                }
            }
            Some(want) => {
                if status != 200 {
                    failures.push(format!("{} {}: status {status}: {body}", c.id, c.query));
                    continue;
                }
                let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                for t in body["traces"].as_array().into_iter().flatten() {
                    let trace = tl[t["traceID"].as_str().unwrap()].clone();
                    for set in t["spanSets"].as_array().unwrap() {
                        for s in set["spans"].as_array().into_iter().flatten() {
                            got.entry(trace.clone())
                                .or_default()
                                .insert(sl[s["spanID"].as_str().unwrap()].clone());
                        }
                    }
                }
                if got != *want {
                    failures.push(format!("{} {}: want {want:?}, got {got:?}", c.id, c.query));
                }
                out.insert(c.id.clone(), body["traces"].clone());
            }
        }
    }
    // Every fixture trace by its ID (read as trace by ID reads it once in a block), alone and
    // with a span condition: found, whole, and the same in every state.
    for (fixture, traces) in fixtures(all) {
        for tr in traces.as_array().unwrap() {
            let label = tr["trace"].as_str().unwrap();
            let id = hex(&id16(label));
            for q in [
                format!("{{ trace:id = \"{id}\" }}"),
                format!("{{ trace:id = \"{id}\" && status = error }}"),
            ] {
                let (status, body) = search(server, fixture, &q).await;
                if status != 200 {
                    failures.push(format!("{q}: status {status}: {body}"));
                    continue;
                }
                let found = body["traces"].as_array().map_or(0, Vec::len);
                if !q.contains("status") && found != 1 {
                    failures.push(format!("{q} ({fixture} {label}): {found} traces"));
                }
                out.insert(format!("{fixture}/{label}/{q}"), body["traces"].clone());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{state}: {} of the catalogue's cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    out
}

/// The catalogue's fixtures by name (keys starting with `_` are notes, not fixtures).
fn fixtures(all: &Json) -> impl Iterator<Item = (&String, &Json)> {
    all.as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !k.starts_with('_'))
}

fn fixture_names(all: &Json) -> Vec<String> {
    fixtures(all).map(|(k, _)| k.clone()).collect()
}

async fn send_fixtures(server: &Server, all: &Json, base_ns: u64) {
    for name in fixture_names(all) {
        let (status, _) = post_otlp(server, &request(&all[&name], base_ns), Some(&name)).await;
        assert_eq!(status, 200, "fixture {name} accepted");
    }
}

fn wait_for_log(server: &Server, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.log_text().matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "fewer than {count} `{needle}` in 60 s; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const LIVE_ONLY: &str = "multitenancy_enabled: true\nlive_store:\n  max_trace_idle: 1h\n  max_trace_live: 1h\n  max_block_duration: 1h\n";
/// Blocks cut at once, in small row groups, and metrics jobs of one row group each.
const FAST_BLOCKS: &str = "multitenancy_enabled: true\nlive_store:\n  max_trace_idle: 100ms\n  max_trace_live: 1s\n  max_block_duration: 300ms\n  complete_block_timeout: 1s\ncompactor:\n  compaction:\n    compaction_cycle: 1s\nstorage:\n  trace:\n    block:\n      parquet_row_group_size_bytes: 1500\nquery_frontend:\n  search:\n    target_bytes_per_job: 1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_cases_live_in_blocks_and_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let all: Json = serde_json::from_str(FIXTURES).unwrap();
    let fixtures = fixture_names(&all).len();
    // A multiple of the metrics cases' step, so their window is aligned as the cases assume.
    let step = crate::metrics::STEP_NS;
    let base_ns = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 60_000_000_000)
        / step
        * step;

    // Live: nothing completes or leaves the live-store.
    let mut server = Server::start(dir.path(), LIVE_ONLY);
    send_fixtures(&server, &all, base_ns).await;
    let live = run_cases(&server, &all, "live").await;
    let live_metrics = crate::metrics::run_cases(&server, base_ns, "live").await;
    assert!(!server.log_text().contains("block written"));
    server.terminate();

    // Blocks: the same data replayed from the log, completed and cut into one block per tenant.
    let config = dir.path().join("vivace.yaml");
    let yaml = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, yaml.replace(LIVE_ONLY, FAST_BLOCKS)).unwrap();
    server.restart();
    wait_for_log(&server, "block written", fixtures);
    // Flushed traces leave the live-store's search at once; give the poll a moment anyway.
    std::thread::sleep(Duration::from_millis(500));
    // Metrics first: no search has cached these blocks' batches yet, so metrics that can read
    // span by span do, shard by shard.
    let blocks_metrics = crate::metrics::run_cases(&server, base_ns, "blocks").await;
    let blocks = run_cases(&server, &all, "blocks").await;
    // Tag names of blocks come from their dictionaries; the same names as live.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let tags = |tenant: &'static str| {
        let r = http()
            .get(server.api("/api/v2/search/tags"))
            .header("X-Scope-OrgID", tenant)
            .query(&[("start", now - 3600), ("end", now)]);
        async move { r.send().await.unwrap().json::<Json>().await.unwrap() }
    };
    let t = tags("E").await;
    let scope = |name: &str| {
        t["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
    };
    assert!(
        scope("instrumentation").unwrap()["tags"]
            .as_array()
            .unwrap()
            .contains(&Json::from("lang")),
        "{t}"
    );
    assert!(
        scope("event").unwrap()["tags"]
            .as_array()
            .unwrap()
            .contains(&Json::from("msg")),
        "{t}"
    );
    assert!(
        scope("resource").unwrap()["tags"]
            .as_array()
            .unwrap()
            .contains(&Json::from("service.name")),
        "{t}"
    );
    assert!(
        t["metrics"]["totalBlocks"].as_u64().unwrap_or(0) >= 1,
        "{t}"
    );

    // Compacted: the fixtures again (same IDs) make a second block per tenant once the first
    // copies have left the live-store (complete_block_timeout); compaction merges each pair
    // and drops the duplicate spans.
    std::thread::sleep(Duration::from_secs(3));
    send_fixtures(&server, &all, base_ns).await;
    wait_for_log(&server, "block written", 2 * fixtures);
    wait_for_log(&server, "blocks compacted", fixtures);
    std::thread::sleep(Duration::from_millis(500));
    let compacted = run_cases(&server, &all, "compacted").await;
    let compacted_metrics = crate::metrics::run_cases(&server, base_ns, "compacted").await;
    assert_eq!(
        live_metrics, blocks_metrics,
        "metrics: live and blocks differ"
    );
    assert_eq!(
        live_metrics, compacted_metrics,
        "metrics: live and compacted differ"
    );

    for (id, l) in &live {
        for (state, other) in [("blocks", &blocks), ("compacted", &compacted)] {
            let o = other.get(id).cloned().unwrap_or_default();
            assert!(
                *l == o,
                "{id}: live and {state} differ:\nlive:   {l}\n{state}: {o}"
            );
        }
    }
    // The answers came from blocks: the search reports them.
    let (_, body) = search(&server, "S", "{ }").await;
    assert!(
        body["metrics"]["totalBlocks"].as_u64().unwrap_or(0) >= 1,
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_sdk_spans_are_searchable_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let out = dir.path().join("sent.pb");
    let o = Command::new(python())
        .arg(clients_dir().join("otel_send.py"))
        .args(["grpc", &format!("http://127.0.0.1:{}", server.grpc)])
        .arg(&out)
        .args(["--traces", "5", "--seed", "9"])
        .output()
        .expect("run python client");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let acked = Instant::now();
    let req = ExportTraceServiceRequest::decode(std::fs::read(&out).unwrap().as_slice()).unwrap();
    let ids: BTreeSet<String> = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| hex(&s.trace_id).trim_start_matches('0').to_string())
        .collect();
    loop {
        let r: Json = http()
            .get(server.api("/api/search"))
            .query(&[("q", "{ }"), ("limit", "100")])
            .json_body()
            .await;
        let found: BTreeSet<String> = r["traces"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| t["traceID"].as_str().unwrap().to_string())
            .collect();
        if ids.is_subset(&found) {
            println!(
                "ack → searchable: {:?} for {} traces",
                acked.elapsed(),
                ids.len()
            );
            assert!(
                acked.elapsed() < Duration::from_secs(1),
                "{:?}",
                acked.elapsed()
            );
            break;
        }
        assert!(
            acked.elapsed() < Duration::from_secs(5),
            "not searchable: {r}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn check_grafana_shapes(body: &Json) {
    let t = &body["traces"][0];
    assert!(t["traceID"].as_str().is_some_and(|s| !s.starts_with('0')));
    assert!(t["startTimeUnixNano"].is_string(), "int64 as a string: {t}");
    assert!(t["durationMs"].is_u64(), "uint32 as a number: {t}");
    assert_eq!(t["spanSet"], t["spanSets"][0]);
    let s = &t["spanSets"][0]["spans"][0];
    assert_eq!(s["spanID"].as_str().unwrap().len(), 16);
    assert!(s["durationNanos"].is_string());
    assert!(body["metrics"]["inspectedBytes"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_requests_tags_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "query_frontend:\n  max_query_expression_size_bytes: 1000\n",
    );
    let all: Json = serde_json::from_str(FIXTURES).unwrap();
    let base_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 5_000_000_000;
    for name in ["S", "Y", "E"] {
        let (status, _) = post_otlp(&server, &request(&all[name], base_ns), None).await;
        assert_eq!(status, 200);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (start, end) = ((now - 900).to_string(), now.to_string());
    let c = http();

    // What Grafana's query editor sends (JSON), and the backend's protobuf variant.
    let q = [
        ("q", "{ status = error }"),
        ("limit", "20"),
        ("spss", "3"),
        ("start", start.as_str()),
        ("end", end.as_str()),
    ];
    let body: Json = c.get(server.api("/api/search")).query(&q).json_body().await;
    check_grafana_shapes(&body);
    let errors = &body["traces"].as_array().unwrap();
    assert_eq!(errors.len(), 3, "T1, T2 and Y have error spans: {body}");
    let t1 = errors
        .iter()
        .find(|t| t["rootTraceName"] == "GET /")
        .expect("T1");
    assert_eq!(t1["rootServiceName"], "frontend");
    assert_eq!(t1["spanSets"][0]["matched"], 3);
    assert_eq!(t1["serviceStats"]["db"]["errorCount"], 2);
    assert_eq!(
        t1["spanSets"][0]["spans"][0]["attributes"][0],
        serde_json::json!({"key": "status", "value": {"stringValue": "error"}})
    );
    let r = c
        .get(server.api("/api/search"))
        .query(&q)
        .header("Accept", "application/protobuf")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/protobuf");
    let pb = SearchResponse::decode(r.bytes().await.unwrap()).unwrap();
    assert_eq!(pb.traces.len(), 3);
    // Aggregates: the attribute is the aggregate's text; a duration as Go prints it.
    let body: Json = c
        .get(server.api("/api/search"))
        .query(&[("q", "{ } | avg(duration) > 20ms")])
        .json_body()
        .await;
    let attrs = &body["traces"][0]["spanSets"][0]["attributes"][0];
    assert_eq!(attrs["key"], "avg(duration)");
    assert!(
        attrs["value"]["stringValue"]
            .as_str()
            .unwrap()
            .ends_with("ms"),
        "{attrs}"
    );
    // A float attribute with no fraction is written as Go writes it: 1, not 1.0.
    let body: Json = c
        .get(server.api("/api/search"))
        .query(&[("q", "{ span.ratio = 1 }")])
        .json_body()
        .await;
    let ratio = &body["traces"][0]["spanSets"][0]["spans"][0]["attributes"][0];
    assert_eq!(ratio["value"]["doubleValue"].to_string(), "1", "{ratio}");
    // Legacy tag search.
    let body: Json = c
        .get(server.api("/api/search"))
        .query(&[("tags", "service.name=db name=query")])
        .json_body()
        .await;
    assert_eq!(body["traces"].as_array().unwrap().len(), 2, "{body}");

    // Tags, as the autocomplete asks for them.
    let tags: Json = c
        .get(server.api("/api/v2/search/tags"))
        .query(&[
            ("limit", "5000"),
            ("start", start.as_str()),
            ("end", end.as_str()),
        ])
        .json_body()
        .await;
    let scope = |name: &str| -> Vec<String> {
        tags["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| {
                s["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(scope("resource").contains(&"service.name".to_string()));
    assert!(scope("resource").contains(&"region".to_string()));
    assert!(scope("span").contains(&"code".to_string()));
    assert!(scope("event").contains(&"type".to_string()));
    assert!(scope("link").contains(&"kind".to_string()));
    assert!(scope("instrumentation").contains(&"lang".to_string()));
    assert!(scope("intrinsic").contains(&"duration".to_string()));
    let v1: Json = c
        .get(server.api("/api/search/tags?scope=span"))
        .json_body()
        .await;
    assert!(
        v1["tagNames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "ratio")
    );

    // Tag values, typed, with and without a filter.
    let values = |tag: &str, q: Option<&str>| {
        let mut r = c.get(server.api(&format!("/api/v2/search/tag/{tag}/values")));
        if let Some(q) = q {
            r = r.query(&[("q", q)]);
        }
        async move { r.send().await.unwrap().json::<Json>().await.unwrap() }
    };
    let v = values("resource.service.name", None).await;
    let got: BTreeSet<String> = v["tagValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            format!(
                "{}:{}",
                x["type"].as_str().unwrap(),
                x["value"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "string:frontend",
        "string:auth",
        "string:db",
        "string:api",
        "string:svc",
    ] {
        assert!(got.contains(want), "{want} in {got:?}");
    }
    let v = values("span.code", None).await;
    assert!(
        v["tagValues"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({"type": "int", "value": "404"}))
    );
    let v = values("name", Some("{ resource.service.name = \"db\" }")).await;
    let names: BTreeSet<&str> = v["tagValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["value"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["SELECT", "disk", "query"]));
    // A `q` that is one spanset filter is answered by the metrics engine's span-only pass; the
    // same filter with a `select` stage goes the search way: both collect from the same spans.
    let typed = |v: Json| -> BTreeSet<String> {
        v["tagValues"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| format!("{}:{}", x["type"], x["value"]))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut found = 0;
    for tag in ["name", "resource.service.name", "span.code"] {
        for q in [
            "{ resource.service.name = \"db\" }",
            "{ status = error }",
            "{ duration > 1ms && kind = server }",
        ] {
            let fast = typed(values(tag, Some(q)).await);
            let searched = typed(values(tag, Some(&format!("{q} | select(duration)"))).await);
            assert_eq!(fast, searched, "values of {tag} for {q}");
            found += fast.len();
        }
    }
    assert!(found > 5, "{found} values");
    // Without `q`, values the dictionaries cannot list (an integer attribute here, the live
    // data) come through the same pass.
    for tag in ["span.code", "resource.service.name", "name"] {
        let fast = typed(values(tag, None).await);
        let searched = typed(values(tag, Some("{ } | select(duration)")).await);
        assert_eq!(fast, searched, "values of {tag}");
        assert!(!fast.is_empty(), "values of {tag}");
    }
    // Bounded by `limit` (the pass stops reading once it holds enough).
    let v: Json = c
        .get(server.api("/api/v2/search/tag/name/values"))
        .query(&[("q", "{ duration > 0s }"), ("limit", "2")])
        .json_body()
        .await;
    assert_eq!(v["tagValues"].as_array().map(Vec::len), Some(2), "{v}");
    let v = values("status", None).await;
    assert_eq!(
        v["tagValues"][0],
        serde_json::json!({"type": "keyword", "value": "ok"})
    );
    let v1: Json = c
        .get(server.api("/api/search/tag/service.name/values"))
        .json_body()
        .await;
    assert!(
        v1["tagValues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "frontend")
    );

    // Bad input: a clear 400 that says what and where.
    let bad = |params: Vec<(&'static str, String)>| {
        let r = c.get(server.api("/api/search")).query(&params);
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (s, t) = bad(vec![("q", "{ span.a = 1 }}".into())]).await;
    assert_eq!(s, 400);
    assert!(
        t.starts_with(
            "invalid TraceQL query: parse error at line 1, col 15: syntax error: unexpected }"
        ),
        "{t}"
    );
    let (s, t) = bad(vec![("q", "{ } | rate()".into())]).await;
    assert_eq!((s, t.contains("metrics")), (400, true), "{t}");
    let (s, t) = bad(vec![("q", "{ span.n / span.m = 3 }".into())]).await;
    assert_eq!((s, t.contains("division by zero")), (400, true), "{t}");
    for params in [
        vec![("limit", "0".to_string())],
        vec![("limit", "999999999".to_string())],
        vec![("spss", "1000".to_string())],
        vec![("start", "100".to_string())],
        vec![("start", "200".to_string()), ("end", "100".to_string())],
        vec![("start", "0".to_string()), ("end", now.to_string())],
        vec![("start", "yesterday".to_string()), ("end", now.to_string())],
        vec![("q", "{}".to_string()), ("tags", "a=b".to_string())],
        vec![("q", format!("{{ name = \"{}\" }}", "x".repeat(2000)))],
    ] {
        let (s, t) = bad(params.clone()).await;
        assert_eq!(s, 400, "{params:?}: {t}");
    }
    let r = c
        .get(server.api("/api/v2/search/tag/not%20a%20tag/values"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = c
        .get(server.api("/api/v2/search/tags?scope=nonsense"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_that_cannot_be_read_fails_the_search_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), FAST_BLOCKS);
    let all: Json = serde_json::from_str(FIXTURES).unwrap();
    let base_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 5_000_000_000;
    let (status, _) = post_otlp(&server, &request(&all["S"], base_ns), Some("t")).await;
    assert_eq!(status, 200);
    wait_for_log(&server, "block written", 1);
    let tenant_dir = dir.path().join("data/blocks/t");
    let block = std::fs::read_dir(&tenant_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.path().join("meta.json").is_file())
        .expect("a block")
        .path();
    corrupt(&block.join("data.parquet"));
    let started = Instant::now();
    let (status, body) = search(&server, "t", "{ }").await;
    assert_eq!(status, 500, "{body}");
    let text = body.as_str().unwrap_or_default();
    let id = block.file_name().unwrap().to_str().unwrap();
    assert!(text.contains(id), "the answer names the block: {text}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

fn corrupt(path: &Path) {
    let mut data = std::fs::read(path).unwrap();
    let n = data.len();
    for b in &mut data[4..n - 8] {
        *b = 0x5a;
    }
    std::fs::write(path, data).unwrap();
}

/// Grafana's streaming search: a gRPC client generated from the same `.proto` files, on the
/// HTTP port (h2c) and on the gRPC port, with the tenant in the metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_search_over_grpc_on_both_ports() {
    use vivace_proto::tempopb::streaming_querier_client::StreamingQuerierClient;
    use vivace_proto::tempopb::{SearchRequest, SearchTagValuesRequest, SearchTagsRequest};

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "multitenancy_enabled: true\n");
    let all: Json = serde_json::from_str(FIXTURES).unwrap();
    let base_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 5_000_000_000;
    let (status, _) = post_otlp(&server, &request(&all["S"], base_ns), Some("team-a")).await;
    assert_eq!(status, 200);

    for port in [server.http, server.grpc_query] {
        let mut client = StreamingQuerierClient::connect(format!("http://127.0.0.1:{port}"))
            .await
            .expect("connect");
        fn with_tenant<T>(msg: T) -> tonic::Request<T> {
            let mut r = tonic::Request::new(msg);
            r.metadata_mut()
                .insert("x-scope-orgid", "team-a".parse().unwrap());
            r
        }
        let mut stream = client
            .search(with_tenant(SearchRequest {
                query: "{ status = error }".into(),
                limit: 20,
                spans_per_span_set: 3,
                ..Default::default()
            }))
            .await
            .expect("search")
            .into_inner();
        let mut last = None;
        let mut messages = 0;
        while let Some(msg) = stream.message().await.expect("stream") {
            messages += 1;
            last = Some(msg);
        }
        let last = last.expect("a final response");
        assert!(messages >= 1);
        assert_eq!(last.traces.len(), 2, "port {port}: {last:?}");
        let m = last.metrics.unwrap();
        assert_eq!(m.completed_jobs, m.total_jobs);
        assert!(m.inspected_spans >= 9);

        // Tenants stay apart: another tenant sees nothing.
        let mut r = tonic::Request::new(SearchRequest {
            query: "{ }".into(),
            ..Default::default()
        });
        r.metadata_mut()
            .insert("x-scope-orgid", "team-b".parse().unwrap());
        let mut s = client.search(r).await.unwrap().into_inner();
        let mut found = 0;
        while let Some(msg) = s.message().await.unwrap() {
            found = msg.traces.len();
        }
        assert_eq!(found, 0);

        // Bad TraceQL is InvalidArgument with the position; no tenant is refused.
        let err = crate::support::stream_error(
            client
                .search(with_tenant(SearchRequest {
                    query: "{ span.a = }".into(),
                    ..Default::default()
                }))
                .await,
        )
        .await;
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("line 1, col"), "{}", err.message());
        let no_tenant = client
            .search_tags_v2(SearchTagsRequest::default())
            .await
            .expect_err("refused without a tenant");
        assert_eq!(no_tenant.code(), tonic::Code::Unauthenticated);

        let mut tags = client
            .search_tags_v2(with_tenant(SearchTagsRequest::default()))
            .await
            .unwrap()
            .into_inner();
        let t = tags.message().await.unwrap().unwrap();
        assert!(
            t.scopes
                .iter()
                .any(|s| s.name == "resource" && s.tags.contains(&"service.name".to_string()))
        );
        let mut vals = client
            .search_tag_values_v2(with_tenant(SearchTagValuesRequest {
                tag_name: "resource.service.name".into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        let v = vals.message().await.unwrap().unwrap();
        let names: BTreeSet<String> = v.tag_values.into_iter().map(|t| t.value).collect();
        assert_eq!(
            names,
            BTreeSet::from(["auth".into(), "db".into(), "frontend".into()])
        );
    }
}

/// A streamed search whose answer is larger than a gRPC client takes in one message (4 MiB by
/// default, in tonic as in grpc-go) arrives cut into messages of at most 1 MiB, as Tempo cuts
/// them; what a client gathers from them (Grafana keeps every trace of every message) is the
/// HTTP answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_streamed_search_arrives_in_messages_of_at_most_a_mebibyte() {
    use vivace_proto::tempopb::SearchRequest;
    use vivace_proto::tempopb::streaming_querier_client::StreamingQuerierClient;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    const TRACES: usize = 6000;
    // 6,000 one-span traces with 400-byte names: ~0.9 KB per trace in the answer.
    for part in 0..3 {
        let spans = (0..TRACES / 3).map(|i| {
            let n = part * TRACES / 3 + i;
            Span {
                trace_id: (n as u128 + 1).to_be_bytes().to_vec(),
                span_id: (n as u64 + 1).to_be_bytes().to_vec(),
                name: format!("{n:06}{}", "x".repeat(394)),
                start_time_unix_nano: now - 5_000_000_000 + n as u64,
                end_time_unix_nano: now - 4_000_000_000,
                ..Default::default()
            }
        });
        let req = service_export("bulk", spans.collect());
        let (status, _) = post_otlp(&server, &req, None).await;
        assert_eq!(status, 200);
    }
    let q = r#"{ resource.service.name = "bulk" }"#;
    let (status, body) = search_with(&server, q, TRACES).await;
    assert_eq!(status, 200, "{body}");
    let over_http: BTreeSet<String> = body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(over_http.len(), TRACES);

    let mut client =
        StreamingQuerierClient::connect(format!("http://127.0.0.1:{}", server.grpc_query))
            .await
            .expect("connect");
    let mut stream = client
        .search(SearchRequest {
            query: q.into(),
            limit: TRACES as u32,
            spans_per_span_set: 1,
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner();
    let mut gathered = BTreeSet::new();
    let (mut messages, mut largest) = (0, 0);
    while let Some(msg) = stream.message().await.expect("every message within 4 MiB") {
        messages += 1;
        largest = largest.max(msg.encoded_len());
        assert!(msg.metrics.is_some(), "each part carries the metrics");
        gathered.extend(msg.traces.into_iter().map(|t| t.trace_id));
    }
    assert!(largest <= 1 << 20, "a message of {largest} bytes");
    assert!(messages >= 5, "{messages} messages");
    assert_eq!(gathered, over_http);
}

/// A search with a limit over a block of many row groups runs one job per run of row groups
/// and stops once it has its traces; without a limit in reach every job runs and each trace
/// is counted once; a needle only one trace holds reads that trace alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_of_a_large_block_stop_early_and_needles_read_their_traces_alone() {
    let dir = tempfile::tempdir().unwrap();
    // Row groups of ~1.5 kB, jobs of ~6 kB of them: several jobs of several row groups.
    let server = Server::start(
        dir.path(),
        &FAST_BLOCKS.replace("target_bytes_per_job: 1\n", "target_bytes_per_job: 6000\n"),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    const TRACES: usize = 300;
    let spans = (0..TRACES).flat_map(|n| {
        (0..2u64).map(move |s| Span {
            trace_id: (n as u128 + 1).to_be_bytes().to_vec(),
            span_id: (2 * n as u64 + s + 1).to_be_bytes().to_vec(),
            // One trace has a name no other has (a needle).
            name: if n == 151 {
                "op-needle".to_string()
            } else {
                format!("op-{}", n % 7)
            },
            start_time_unix_nano: now - 5_000_000_000 + n as u64,
            end_time_unix_nano: now - 4_000_000_000,
            ..Default::default()
        })
    });
    let req = service_export("bulk", spans.collect());
    let (status, _) = post_otlp(&server, &req, Some("t")).await;
    assert_eq!(status, 200);
    wait_for_log(&server, "block written", 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    let query = |q: &'static str, limit: usize| {
        let r = http()
            .get(server.api("/api/search"))
            .header("X-Scope-OrgID", "t")
            .query(&[("q", q), ("limit", &limit.to_string()), ("spss", "1")]);
        async move {
            let resp = r.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            resp.json::<Json>().await.unwrap()
        }
    };
    let count = |body: &Json, key: &str| -> u64 {
        let v = &body["metrics"][key];
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0)
    };
    // A name one trace has, once the traces are in blocks (searched before any search has
    // cached the blocks' batches): that trace alone is read (its pages), not its row group.
    loop {
        let body = query(r#"{ name = "op-needle" }"#, 20).await;
        if body["traces"].as_array().map_or(0, Vec::len) == 1
            && count(&body, "totalBlocks") >= 1
            && count(&body, "inspectedTraces") == 1
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the needle's trace never read alone from a block: {}",
            body["metrics"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every trace in blocks and none left live: all of them found, each counted once.
    let all = loop {
        let body = query("{ }", 1000).await;
        if body["traces"].as_array().map_or(0, Vec::len) == TRACES
            && count(&body, "totalBlocks") >= 1
            && count(&body, "inspectedTraces") == TRACES as u64
        {
            break body;
        }
        assert!(Instant::now() < deadline, "never all in blocks: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        count(&all, "totalJobs") > count(&all, "totalBlocks") + 1,
        "a block read as several jobs: {}",
        all["metrics"]
    );
    for q in [
        r#"{ resource.service.name = "bulk" }"#,
        "{ }",
        r#"{ name = "op-3" } | count() > 0"#,
    ] {
        let body = query(q, 5).await;
        assert_eq!(
            body["traces"].as_array().map_or(0, Vec::len),
            5,
            "{q}: {body}"
        );
        let inspected = count(&body, "inspectedTraces");
        assert!(
            inspected > 0 && inspected < TRACES as u64 / 2,
            "{q}: stops early, inspected {inspected}: {}",
            body["metrics"]
        );
    }
    // A limit no job reaches: every trace, as without sharding.
    let body = query(r#"{ name = "op-3" }"#, 1000).await;
    assert_eq!(
        body["traces"].as_array().map_or(0, Vec::len),
        (0..TRACES).filter(|n| n % 7 == 3).count(),
        "{body}"
    );
}

async fn search_with(server: &Server, q: &str, limit: usize) -> (u16, Json) {
    let resp = http()
        .get(server.api("/api/search"))
        .query(&[("q", q), ("limit", &limit.to_string()), ("spss", "1")])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}
