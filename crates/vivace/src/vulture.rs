//! `vivace vulture`: tempo-vulture's end-to-end check of a running server, with its flags.
//!
//! Every write tick it builds a trace deterministically from a seed (the tick's unix time in
//! milliseconds, so that ticks under a second apart stay distinct and in the present):
//! service `vivace-vulture`, 2–12 spans named `vulture-<n>` in a tree, random `vulture-<i>`
//! string attributes, a fixed 100-byte blob attribute, events. A trace is sent over OTLP gRPC in
//! one to three batches, the later ones on the following ticks (a "long write", as a trace whose
//! spans arrive over time). Once a trace is complete, the read ticks pick a random complete trace
//! and regenerate what it must be from its seed, then check
//!   - trace by ID (`/api/traces/<id>`, protobuf): every span, each equal to what was sent
//!     (`notfound_byid`, `missingspans`, `incorrectresult`);
//!   - the logfmt tags search (`/api/search?tags=k=v`, ±30 min around the trace) and TraceQL
//!     (`{ .k = "v" }`) find it (`notfound_search`, `notfound_traceql`);
//!   - TraceQL metrics (`{ .k = "v" } | count_over_time()`) count at least its spans with that
//!     value (`notfound_metrics`, `inaccurate_metrics`).
//!
//! Metrics on `--prometheus-listen-address` (`/metrics`): `vivace_vulture_trace_total{check}`,
//! `vivace_vulture_trace_error_total{error}` (tempo-vulture's error names, plus
//! `requestfailed`), `vivace_vulture_error_total` (failed writes and requests). With `--duration`
//! the run ends after that long; each check that failed is made once more, and the run exits
//! non-zero if one fails again (a miss that then passes is reported as transient; it stays
//! counted in the metrics) or if nothing was checked.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use prost::Message;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use vivace_proto::otlp::collector::ExportTraceServiceRequest;
use vivace_proto::otlp::collector::trace_service_client::TraceServiceClient;
use vivace_proto::otlp::common::{AnyValue, InstrumentationScope, KeyValue, any_value};
use vivace_proto::otlp::resource::Resource;
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, span};
use vivace_proto::tempopb::Trace;

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct VultureArgs {
    /// The query API.
    #[arg(long = "tempo-query-url", default_value = "http://localhost:3200")]
    query_url: String,
    /// OTLP gRPC endpoint traces are written to.
    #[arg(long = "tempo-push-url", default_value = "http://localhost:4317")]
    push_url: String,
    /// X-Scope-OrgID of writes and reads.
    #[arg(long = "tempo-org-id")]
    org_id: Option<String>,
    /// How often a trace is written (and the next batch of a long write).
    #[arg(long = "tempo-write-backoff-duration", default_value = "15s", value_parser = dur)]
    write_backoff: Duration,
    /// How often a trace is read back by ID.
    #[arg(long = "tempo-read-backoff-duration", default_value = "30s", value_parser = dur)]
    read_backoff: Duration,
    /// How often a trace is searched for (tags and TraceQL).
    #[arg(long = "tempo-search-backoff-duration", default_value = "60s", value_parser = dur)]
    search_backoff: Duration,
    /// How often a trace is counted by a metrics query.
    #[arg(long = "tempo-metrics-backoff-duration", default_value = "10s", value_parser = dur)]
    metrics_backoff: Duration,
    /// Traces older than this are no longer checked.
    #[arg(long = "tempo-retention-duration", default_value = "336h", value_parser = dur)]
    retention: Duration,
    /// Where `/metrics` is served (tempo-vulture's default is :80).
    #[arg(long = "prometheus-listen-address", default_value = "127.0.0.1:8099")]
    listen: String,
    /// Stop after this long and exit non-zero on any failed check (default: run until killed).
    #[arg(long, value_parser = dur)]
    duration: Option<Duration>,
}

fn dur(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// the deterministic trace

/// A trace as regenerated from its seed: its ID and its batches (each one request's spans).
#[derive(Debug, Clone)]
struct Expected {
    /// Unix milliseconds: the trace starts then.
    seed: u64,
    id: [u8; 16],
    batches: Vec<Vec<Span>>,
}

const SERVICE: &str = "vivace-vulture";

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn word(rng: &mut SmallRng) -> String {
    (0..8)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

impl Expected {
    fn generate(seed: u64) -> Expected {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut id = [0u8; 16];
        rng.fill(&mut id[..]);
        id[0] |= 1; // never all zero
        let n = rng.random_range(2..=12usize);
        // Spans start in the second before the write, never after it: a query up to "now" right
        // after the write must be able to see them (they once started up to 500 ms later, and a
        // metrics check made at once then missed them, rightly).
        let t0 = seed.saturating_sub(1000) * 1_000_000;
        let mut spans: Vec<Span> = Vec::with_capacity(n);
        for i in 0..n {
            let mut sid = [0u8; 8];
            rng.fill(&mut sid[..]);
            sid[0] |= 1;
            let parent = if i == 0 {
                Vec::new()
            } else {
                spans[rng.random_range(0..i)].span_id.clone()
            };
            let start = t0 + rng.random_range(0..500_000_000u64);
            let end = start + rng.random_range(1_000..800_000_000u64);
            let mut attributes: Vec<KeyValue> = (0..rng.random_range(2..=4usize))
                .map(|_| {
                    let k = format!("vulture-{}", rng.random_range(0..10u8));
                    kv(&k, any_value::Value::StringValue(word(&mut rng)))
                })
                .collect();
            // Keys drawn twice keep their first value, as a receiver would see one key.
            let mut seen = std::collections::HashSet::new();
            attributes.retain(|a| seen.insert(a.key.clone()));
            attributes.push(kv(
                "vulture-blob",
                any_value::Value::StringValue("v".repeat(100)),
            ));
            let events = (0..rng.random_range(0..3usize))
                .map(|e| span::Event {
                    time_unix_nano: start + 1000 * (e as u64 + 1),
                    name: format!("vulture-event-{e}"),
                    attributes: vec![kv(
                        "vulture-event-attr",
                        any_value::Value::IntValue(rng.random_range(0..1000)),
                    )],
                    ..Default::default()
                })
                .collect();
            spans.push(Span {
                trace_id: id.to_vec(),
                span_id: sid.to_vec(),
                parent_span_id: parent,
                name: format!("vulture-{i}"),
                kind: span::SpanKind::Internal as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes,
                events,
                ..Default::default()
            });
        }
        let parts = rng.random_range(1..=3usize).min(n);
        let mut batches = vec![Vec::new(); parts];
        for (i, s) in spans.into_iter().enumerate() {
            batches[i % parts].push(s);
        }
        Expected { seed, id, batches }
    }

    fn request(&self, batch: usize) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv(
                        "service.name",
                        any_value::Value::StringValue(SERVICE.into()),
                    )],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "vivace-vulture".into(),
                        ..Default::default()
                    }),
                    spans: self.batches[batch].clone(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn spans(&self) -> impl Iterator<Item = &Span> {
        self.batches.iter().flatten()
    }

    fn hex(&self) -> String {
        hex::encode(self.id)
    }

    /// A `vulture-<i>` attribute of the trace and how many of its spans carry that value.
    fn pick_attribute(&self, rng: &mut SmallRng) -> (String, String, usize) {
        let all: Vec<(&str, &str)> = self
            .spans()
            .flat_map(|s| &s.attributes)
            .filter(|a| a.key != "vulture-blob")
            .filter_map(|a| match a.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(v) => Some((a.key.as_str(), v.as_str())),
                _ => None,
            })
            .collect();
        let (k, v) = all[rng.random_range(0..all.len())];
        let n = all.iter().filter(|(k2, v2)| *k2 == k && *v2 == v).count();
        (k.to_string(), v.to_string(), n)
    }
}

// ---------------------------------------------------------------------------------------------
// metrics

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabel {
    check: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    error: &'static str,
}

#[derive(Debug, Default)]
struct Metrics {
    checks: Family<CheckLabel, Counter>,
    failures: Family<ErrorLabel, Counter>,
    errors: Counter,
    written: Counter,
    /// Failed checks (what was said, the trace, which check), for the bounded run's verdict.
    log: Mutex<Vec<(String, Expected, &'static str)>>,
}

impl Metrics {
    fn registry(self: &Arc<Self>) -> Registry {
        let mut r = Registry::with_prefix("vivace_vulture");
        r.register("trace", "Traces checked, by check", self.checks.clone());
        r.register(
            "trace_error",
            "Failed checks, by error",
            self.failures.clone(),
        );
        r.register("error", "Failed writes and requests", self.errors.clone());
        r.register("written", "Trace batches written", self.written.clone());
        r
    }

    fn check(&self, check: &'static str) {
        self.checks.get_or_create(&CheckLabel { check }).inc();
    }

    fn fail(&self, error: &'static str, trace: &Expected, detail: String) {
        let check = match error {
            "notfound_byid" | "missingspans" | "incorrectresult" => "byid",
            "notfound_search" | "notfound_traceql" => "search",
            "notfound_metrics" | "inaccurate_metrics" => "metrics",
            _ => "",
        };
        self.failures.get_or_create(&ErrorLabel { error }).inc();
        if error == "requestfailed" {
            self.errors.inc();
        }
        let line = format!(
            "{error}: trace {} (seed {}): {detail}",
            trace.hex(),
            trace.seed
        );
        eprintln!("vivace vulture: {line}");
        self.log.lock().push((line, trace.clone(), check));
    }
}

// ---------------------------------------------------------------------------------------------
// the run

struct Vulture {
    args: VultureArgs,
    http: reqwest_client::Client,
    metrics: Arc<Metrics>,
    /// Traces whose every batch is written.
    complete: Mutex<Vec<Expected>>,
    rng: Mutex<SmallRng>,
}

pub(crate) fn run(args: VultureArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn run_async(args: VultureArgs) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let registry = Arc::new(metrics.registry());
    // Go's `:port` means every interface.
    let addr = match args.listen.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => args.listen.clone(),
    };
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    eprintln!(
        "vivace vulture: writing to {}, reading from {}, metrics on http://{}/metrics",
        args.push_url,
        args.query_url,
        listener.local_addr()?
    );
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                let mut out = String::new();
                let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    out,
                )
            }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let channel = tonic::transport::Endpoint::from_shared(args.push_url.clone())?.connect_lazy();
    let client = TraceServiceClient::new(channel);
    let v = Arc::new(Vulture {
        http: reqwest_client::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        metrics: metrics.clone(),
        complete: Mutex::new(Vec::new()),
        rng: Mutex::new(SmallRng::seed_from_u64(now_millis())),
        args,
    });

    let writer = tokio::spawn(write_loop(v.clone(), client));
    let reads = [
        ("byid", v.args.read_backoff),
        ("search", v.args.search_backoff),
        ("metrics", v.args.metrics_backoff),
    ]
    .map(|(what, every)| tokio::spawn(read_loop(v.clone(), what, every)));

    match v.args.duration {
        Some(d) => tokio::time::sleep(d).await,
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    writer.abort();
    for r in reads {
        r.abort();
    }
    server.abort();
    let checked: f64 = ["byid", "search", "traceql", "metrics"]
        .iter()
        .map(|c| metrics.checks.get_or_create(&CheckLabel { check: c }).get() as f64)
        .sum();
    // The verdict: each failed check is made once more now; one that passes then was a
    // transient miss (still counted in the metrics above), one that fails again is a failure.
    let logged = metrics.log.lock().clone();
    let mut failed = Vec::new();
    let mut transient = 0;
    for (line, trace, check) in logged {
        let again = Vulture {
            args: v.args.clone(),
            http: v.http.clone(),
            metrics: Arc::new(Metrics::default()),
            complete: Mutex::new(Vec::new()),
            rng: Mutex::new(SmallRng::seed_from_u64(trace.seed)),
        };
        match check {
            "byid" => again.check_by_id(&trace).await,
            "search" => again.check_search(&trace).await,
            "metrics" => again.check_metrics(&trace).await,
            _ => again
                .metrics
                .log
                .lock()
                .push((line.clone(), trace.clone(), check)),
        }
        if again.metrics.log.lock().is_empty() {
            transient += 1;
            eprintln!("vivace vulture: transient (passes when checked again): {line}");
        } else {
            failed.push(line);
        }
    }
    println!(
        "vivace vulture: {} batches written, {} checks, {} failed, {} transient, {} request errors",
        metrics.written.get(),
        checked,
        failed.len(),
        transient,
        metrics.errors.get()
    );
    if !failed.is_empty() {
        bail!("{} checks failed; first: {}", failed.len(), failed[0]);
    }
    if v.args.duration.is_some() && checked == 0.0 {
        bail!("nothing was checked: is the duration longer than the backoffs?");
    }
    Ok(())
}

async fn write_loop(v: Arc<Vulture>, mut client: TraceServiceClient<tonic::transport::Channel>) {
    // Long writes waiting for their next batch: (trace, next batch).
    let mut pending: Vec<(Expected, usize)> = Vec::new();
    let mut tick = tokio::time::interval(v.args.write_backoff);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_seed = 0;
    loop {
        tick.tick().await;
        let seed = now_millis().max(last_seed + 1);
        last_seed = seed;
        pending.push((Expected::generate(seed), 0));
        let mut still = Vec::new();
        for (trace, batch) in pending.drain(..) {
            let mut req = tonic::Request::new(trace.request(batch));
            if let Some(t) = &v.args.org_id
                && let Ok(val) = t.parse()
            {
                req.metadata_mut().insert("x-scope-orgid", val);
            }
            match client.export(req).await {
                Ok(_) => {
                    v.metrics.written.inc();
                    if batch + 1 == trace.batches.len() {
                        v.complete.lock().push(trace);
                    } else {
                        still.push((trace, batch + 1));
                    }
                }
                Err(e) => {
                    v.metrics.errors.inc();
                    eprintln!("vivace vulture: write of seed {} failed: {e}", trace.seed);
                    // The batch is written again on the next tick.
                    still.push((trace, batch));
                }
            }
        }
        pending = still;
        let oldest = now_millis().saturating_sub(v.args.retention.as_millis() as u64);
        v.complete.lock().retain(|t| t.seed >= oldest);
    }
}

async fn read_loop(v: Arc<Vulture>, what: &'static str, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let picked = {
            let complete = v.complete.lock();
            if complete.is_empty() {
                continue;
            }
            let i = v.rng.lock().random_range(0..complete.len());
            complete[i].clone()
        };
        match what {
            "byid" => v.check_by_id(&picked).await,
            "search" => v.check_search(&picked).await,
            _ => v.check_metrics(&picked).await,
        }
    }
}

/// A span's comparable content: what vivace must give back exactly.
fn span_key(s: &Span) -> (String, String, u64, u64, Vec<String>, Vec<String>) {
    let mut attrs: Vec<String> = s
        .attributes
        .iter()
        .map(|a| format!("{}={:?}", a.key, a.value))
        .collect();
    attrs.sort();
    let mut events: Vec<String> = s
        .events
        .iter()
        .map(|e| format!("{}@{}", e.name, e.time_unix_nano))
        .collect();
    events.sort();
    (
        s.name.clone(),
        hex::encode(&s.parent_span_id),
        s.start_time_unix_nano,
        s.end_time_unix_nano,
        attrs,
        events,
    )
}

impl Vulture {
    fn get(
        &self,
        path: &str,
        params: &[(&str, String)],
        accept: &str,
    ) -> reqwest_client::RequestBuilder {
        let mut r = self
            .http
            .get(format!(
                "{}{path}",
                self.args.query_url.trim_end_matches('/')
            ))
            .query(params)
            .header("Accept", accept);
        if let Some(t) = &self.args.org_id {
            r = r.header("X-Scope-OrgID", t);
        }
        r
    }

    /// ±30 minutes around the trace, as tempo-vulture searches.
    fn window(t: &Expected) -> Vec<(&'static str, String)> {
        vec![
            ("start", (t.seed / 1000).saturating_sub(1800).to_string()),
            ("end", (t.seed / 1000 + 1800).to_string()),
        ]
    }

    async fn check_by_id(&self, t: &Expected) {
        self.metrics.check("byid");
        let resp = match self
            .get(
                &format!("/api/traces/{}", t.hex()),
                &[],
                "application/protobuf",
            )
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return self.metrics.fail("requestfailed", t, e.to_string()),
        };
        if resp.status().as_u16() == 404 {
            return self.metrics.fail("notfound_byid", t, "404".into());
        }
        if !resp.status().is_success() {
            let status = resp.status();
            return self
                .metrics
                .fail("requestfailed", t, format!("trace by ID answered {status}"));
        }
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return self.metrics.fail("requestfailed", t, e.to_string()),
        };
        let got = match Trace::decode(body) {
            Ok(g) => g,
            Err(e) => {
                return self
                    .metrics
                    .fail("incorrectresult", t, format!("undecodable: {e}"));
            }
        };
        let by_id: BTreeMap<Vec<u8>, &Span> = got
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| (s.span_id.clone(), s))
            .collect();
        let expected: Vec<&Span> = t.spans().collect();
        let missing = expected
            .iter()
            .filter(|s| !by_id.contains_key(&s.span_id))
            .count();
        if missing > 0 {
            return self.metrics.fail(
                "missingspans",
                t,
                format!("{missing} of {} spans missing", expected.len()),
            );
        }
        if by_id.len() != expected.len() {
            return self.metrics.fail(
                "incorrectresult",
                t,
                format!("{} spans back, {} sent", by_id.len(), expected.len()),
            );
        }
        for s in expected {
            if span_key(s) != span_key(by_id[&s.span_id]) {
                return self.metrics.fail(
                    "incorrectresult",
                    t,
                    format!(
                        "span {} differs from what was sent",
                        hex::encode(&s.span_id)
                    ),
                );
            }
        }
    }

    /// Trace IDs of a search answer (hex, leading zeros trimmed as Tempo does).
    async fn search_ids(
        &self,
        t: &Expected,
        key: &str,
        value: String,
    ) -> Result<Vec<String>, String> {
        let mut p = Self::window(t);
        p.push((key, value));
        p.push(("limit", "100".into()));
        let resp = self
            .get("/api/search", &p, "application/json")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("search answered {}", resp.status()));
        }
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        Ok(v["traces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["traceID"].as_str())
            .map(|id| id.trim_start_matches('0').to_string())
            .collect())
    }

    async fn check_search(&self, t: &Expected) {
        let (k, val, _) = t.pick_attribute(&mut self.rng.lock());
        let want = t.hex().trim_start_matches('0').to_string();
        self.metrics.check("search");
        match self.search_ids(t, "tags", format!("{k}={val}")).await {
            Ok(ids) if ids.contains(&want) => {}
            Ok(_) => self
                .metrics
                .fail("notfound_search", t, format!("tags {k}={val}")),
            Err(e) => self.metrics.fail("requestfailed", t, e),
        }
        self.metrics.check("traceql");
        let q = format!("{{ .{k} = {} }}", serde_json::Value::String(val.clone()));
        match self.search_ids(t, "q", q.clone()).await {
            Ok(ids) if ids.contains(&want) => {}
            Ok(_) => self.metrics.fail("notfound_traceql", t, q),
            Err(e) => self.metrics.fail("requestfailed", t, e),
        }
    }

    async fn check_metrics(&self, t: &Expected) {
        let (k, val, n) = t.pick_attribute(&mut self.rng.lock());
        self.metrics.check("metrics");
        let q = format!(
            "{{ .{k} = {} }} | count_over_time()",
            serde_json::Value::String(val.clone())
        );
        // The trace's spans start within the second before its seed.
        let p = vec![
            ("q", q.clone()),
            ("start", (t.seed.saturating_sub(1000) / 1000).to_string()),
            ("end", (t.seed / 1000 + 1).to_string()),
        ];
        let resp = match self
            .get("/api/metrics/query", &p, "application/json")
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                let status = r.status();
                return self
                    .metrics
                    .fail("requestfailed", t, format!("metrics answered {status}"));
            }
            Err(e) => return self.metrics.fail("requestfailed", t, e.to_string()),
        };
        let v: Value = match resp.bytes().await.map(|b| serde_json::from_slice(&b)) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return self.metrics.fail("requestfailed", t, e.to_string()),
            Err(e) => return self.metrics.fail("requestfailed", t, e.to_string()),
        };
        let Some(series) = v["series"].as_array().filter(|s| !s.is_empty()) else {
            return self.metrics.fail("notfound_metrics", t, q);
        };
        let count: f64 = series
            .iter()
            .map(|s| match &s["value"] {
                Value::Number(x) => x.as_f64().unwrap_or(0.0),
                Value::String(x) => x.parse().unwrap_or(0.0),
                _ => 0.0,
            })
            .sum();
        // Another trace may share the value, never fewer spans than this one has.
        if count < n as f64 {
            self.metrics.fail(
                "inaccurate_metrics",
                t,
                format!("{q}: {count}, at least {n} expected"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_gives_the_same_trace() {
        let a = Expected::generate(1_700_000_000_000);
        let b = Expected::generate(1_700_000_000_000);
        assert_eq!(a.id, b.id);
        assert_eq!(a.request(0).encode_to_vec(), b.request(0).encode_to_vec());
        let c = Expected::generate(1_700_000_000_001);
        assert_ne!(a.id, c.id);
        let spans: Vec<&Span> = a.spans().collect();
        assert!(spans.len() >= 2 && spans[1..].iter().all(|s| !s.parent_span_id.is_empty()));
        assert!(
            spans
                .iter()
                .all(|s| s.start_time_unix_nano / 1_000_000_000 == 1_699_999_999)
        );
    }
}
