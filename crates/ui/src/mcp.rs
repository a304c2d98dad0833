//! The MCP server at `/api/mcp` (streamable HTTP, Tempo's `query_frontend.mcp_server`): Tempo's
//! tools with Tempo's names and arguments, answered by calling the query API in-process with the
//! caller's tenant, and returned as compact JSON a model can read (summaries, not protobuf JSON).
//! Its doc resources are the documents under `docs/` in this repository.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use http::request::Parts;
use prost::Message;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, ListResourcesResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};
use vivace_proto::tempopb::TraceByIdResponse;

use crate::api::{ApiError, QueryClient};
use crate::docs;
use crate::summary::{DiffFormat, trace_diff, trace_summary};

/// Spans of a trace shown to a model at most; the summary says when more exist.
const MAX_SPANS: usize = 300;
/// Traces of a search shown at most.
const SEARCH_LIMIT: u32 = 20;

/// The MCP service for the HTTP router: stateless (every request stands alone, so any replica
/// of the query frontend can answer), JSON answers. Any `Host` is accepted, as by the rest of the
/// API; browser requests (they carry `Origin`) are refused, so a web page cannot drive the tools.
pub fn service(api: QueryClient) -> StreamableHttpService<TempoMcp, NeverSessionManager> {
    StreamableHttpService::new(
        move || Ok(TempoMcp::new(api.clone())),
        Default::default(),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None)
            .disable_allowed_hosts()
            .enforce_origin_validation(),
    )
}

/// Tempo's MCP tools over vivace's query API.
#[derive(Debug, Clone)]
pub struct TempoMcp {
    api: QueryClient,
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct QueryArgs {
    /// The TraceQL query.
    query: String,
    /// Start of the range, RFC 3339 (or unix seconds); default one hour before `end`.
    #[serde(default)]
    start: Option<String>,
    /// End of the range, RFC 3339 (or unix seconds); default now.
    #[serde(default)]
    end: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TraceArgs {
    /// The trace ID in hex.
    trace_id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DiffArgs {
    /// The trace to compare from (hex ID).
    base_trace_id: String,
    /// The trace to compare with it (hex ID).
    compare_trace_id: String,
    /// Optional range of the base trace (RFC 3339); IDs are looked up everywhere by default.
    #[serde(default)]
    base_start: Option<String>,
    #[serde(default)]
    base_end: Option<String>,
    #[serde(default)]
    compare_start: Option<String>,
    #[serde(default)]
    compare_end: Option<String>,
    /// `trace-summary-v0-composed` (default: both headers and the operations that differ),
    /// `trace-summary-v0-native` (both full summaries) or `trace-patch-v0` (only the changes).
    #[serde(default)]
    format: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NamesArgs {
    /// Only this scope: `span`, `resource`, `event`, `link` or `instrumentation`.
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ValuesArgs {
    /// The fully scoped attribute name, e.g. `resource.service.name` or `span.http.route`.
    name: String,
    /// Only values on spans matching this filter, one spanset like
    /// `{ resource.service.name = "api" && span.http.method = "GET" }`.
    #[serde(default, rename = "filter-query")]
    filter_query: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DocArgs {
    /// Which document.
    name: String,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 3339 or unix seconds → unix seconds.
fn parse_time(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("bad time {s:?} (RFC 3339 expected): {e}"))
        .and_then(|t| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .map_err(|_| format!("time {s:?} is before 1970"))
        })
}

/// `start`/`end` parameters: the given bounds, default the last hour.
fn range(start: Option<&str>, end: Option<&str>) -> Result<Vec<(&'static str, String)>, String> {
    let end = match end.filter(|s| !s.trim().is_empty()) {
        Some(e) => parse_time(e)?,
        None => now(),
    };
    let start = match start.filter(|s| !s.trim().is_empty()) {
        Some(s) => parse_time(s)?,
        None => end.saturating_sub(3600),
    };
    if start > end {
        return Err("start is after end".into());
    }
    // The API's end is exclusive at second precision: include the current second.
    Ok(vec![
        ("start", start.to_string()),
        ("end", (end + 1).to_string()),
    ])
}

fn ok(v: Value) -> Result<CallToolResult, ErrorData> {
    Ok(CallToolResult::success(vec![ContentBlock::text(
        v.to_string(),
    )]))
}

/// A failed tool call the model can read and act on (a TraceQL error keeps its line and column).
fn failed(msg: impl Into<String>) -> Result<CallToolResult, ErrorData> {
    Ok(CallToolResult::error(vec![ContentBlock::text(msg.into())]))
}

fn api_failed(e: ApiError) -> Result<CallToolResult, ErrorData> {
    match e {
        ApiError::Status { status, message } if status == http::StatusCode::NOT_FOUND => {
            failed(format!("not found: {message}"))
        }
        ApiError::Status { status, message } => {
            failed(format!("query failed ({}): {message}", status.as_u16()))
        }
        ApiError::Decode(m) => failed(format!("query failed: {m}")),
    }
}

/// Nanoseconds (JSON string or number) → RFC 3339.
fn time_ns(v: &Value) -> String {
    let ns = match v {
        Value::String(s) => s.parse::<u64>().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    };
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

/// OTLP JSON attribute list → `{key: value}`.
fn plain_attrs(v: &Value) -> Value {
    let mut m = serde_json::Map::new();
    for kv in v.as_array().into_iter().flatten() {
        let key = kv["key"].as_str().unwrap_or("").to_string();
        let val = kv["value"]
            .as_object()
            .and_then(|o| o.values().next().cloned())
            .unwrap_or(Value::Null);
        m.insert(key, val);
    }
    Value::Object(m)
}

/// A search answer, compact: one entry per trace with its matched spans.
fn search_summary(v: &Value) -> Value {
    let traces: Vec<Value> = v["traces"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let sets = t["spanSets"].as_array().cloned().unwrap_or_default();
            let matched: u64 = sets.iter().filter_map(|s| s["matched"].as_u64()).sum();
            let spans: Vec<Value> = sets
                .iter()
                .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
                .map(|s| {
                    let dur = s["durationNanos"]
                        .as_str()
                        .and_then(|d| d.parse::<u64>().ok())
                        .or_else(|| s["durationNanos"].as_u64())
                        .unwrap_or(0);
                    let mut o = json!({
                        "spanID": s["spanID"],
                        "name": s["name"],
                        "start": time_ns(&s["startTimeUnixNano"]),
                        "durationMs": dur as f64 / 1e6,
                    });
                    let attrs = plain_attrs(&s["attributes"]);
                    if attrs.as_object().is_some_and(|m| !m.is_empty()) {
                        o["attributes"] = attrs;
                    }
                    o
                })
                .collect();
            json!({
                "traceID": t["traceID"],
                "rootService": t["rootServiceName"],
                "rootName": t["rootTraceName"],
                "start": time_ns(&t["startTimeUnixNano"]),
                "durationMs": t["durationMs"].as_u64().unwrap_or(0),
                "matchedSpans": matched,
                "spans": spans,
            })
        })
        .collect();
    json!({
        "traces": traces,
        "note": format!(
            "{} traces (at most {SEARCH_LIMIT}); use get-trace with a traceID for the whole trace",
            v["traces"].as_array().map(Vec::len).unwrap_or(0)
        ),
    })
}

/// Series labels (OTLP JSON) → `{name: value}`.
fn series_labels(s: &Value) -> Value {
    plain_attrs(&s["labels"])
}

fn num(v: &Value) -> Value {
    match v {
        Value::String(s) => s.parse::<f64>().map(|f| json!(f)).unwrap_or(Value::Null),
        other => other.clone(),
    }
}

/// A range answer, compact: labels and `[unix seconds, value]` points per series.
fn range_summary(v: &Value) -> Value {
    let series: Vec<Value> = v["series"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let points: Vec<Value> = s["samples"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let ts = num(&p["timestampMs"]).as_f64().unwrap_or(0.0) / 1000.0;
                    json!([ts as u64, num(&p["value"])])
                })
                .collect();
            let exemplars: Vec<Value> = s["exemplars"]
                .as_array()
                .into_iter()
                .flatten()
                .take(3)
                .map(|e| {
                    let l = plain_attrs(&e["labels"]);
                    json!({"traceID": l.get("trace:id").cloned().unwrap_or(Value::Null), "value": num(&e["value"])})
                })
                .collect();
            let mut o = json!({"labels": series_labels(s), "points": points});
            if !exemplars.is_empty() {
                o["exemplars"] = Value::Array(exemplars);
            }
            o
        })
        .collect();
    let mut out = json!({"series": series});
    if v["status"].as_str() == Some("PARTIAL") {
        out["partial"] = v["message"].clone();
    }
    out
}

fn instant_summary(v: &Value) -> Value {
    let series: Vec<Value> = v["series"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| json!({"labels": series_labels(s), "value": num(&s["value"])}))
        .collect();
    json!({ "series": series })
}

impl TempoMcp {
    pub fn new(api: QueryClient) -> TempoMcp {
        TempoMcp {
            api,
            tool_router: Self::tool_router(),
        }
    }

    /// A TraceQL query over `args`' range at `path`, its answer summarised.
    async fn ranged_query(
        &self,
        path: &str,
        args: QueryArgs,
        extra: &[(&'static str, String)],
        caller: &HeaderMap,
        summarize: fn(&Value) -> Value,
    ) -> Result<CallToolResult, ErrorData> {
        let mut p = match range(args.start.as_deref(), args.end.as_deref()) {
            Ok(p) => p,
            Err(e) => return failed(e),
        };
        p.push(("q", args.query));
        p.extend_from_slice(extra);
        match self.api.get_json(path, &p, caller).await {
            Ok(v) => ok(summarize(&v)),
            Err(e) => api_failed(e),
        }
    }

    async fn fetch_trace(
        &self,
        id: &str,
        start: Option<&str>,
        end: Option<&str>,
        caller: &HeaderMap,
    ) -> Result<vivace_proto::tempopb::Trace, Result<CallToolResult, ErrorData>> {
        let id = id.trim();
        if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(failed(format!(
                "invalid trace ID {id:?}: up to 32 hex digits expected"
            )));
        }
        let mut params = Vec::new();
        if start.is_some() || end.is_some() {
            params = range(start, end).map_err(failed)?;
        }
        let body = self
            .api
            .get(
                &format!("/api/v2/traces/{id}"),
                &params,
                caller,
                "application/protobuf",
            )
            .await
            .map_err(|e| match e {
                ApiError::Status { status, .. } if status == http::StatusCode::NOT_FOUND => {
                    failed(format!("not found: trace {id}"))
                }
                e => api_failed(e),
            })?;
        let resp = TraceByIdResponse::decode(body)
            .map_err(|e| failed(format!("query failed: undecodable trace: {e}")))?;
        match resp.trace {
            Some(t) if !t.resource_spans.is_empty() => Ok(t),
            _ => Err(failed(format!("not found: trace {id}"))),
        }
    }
}

#[tool_router]
impl TempoMcp {
    #[tool(
        name = "traceql-search",
        description = "Search traces with a TraceQL query, e.g. { resource.service.name = \"api\" && status = error }. Returns up to 20 matching traces with their root service and name, start, duration and the matching spans. Times are RFC 3339; the default range is the last hour. Metrics queries (with | rate() etc.) belong to traceql-metrics-instant or traceql-metrics-range."
    )]
    async fn traceql_search(
        &self,
        Parameters(a): Parameters<QueryArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        if is_metrics_query(&a.query) {
            return failed(
                "this is a metrics query: use traceql-metrics-instant or traceql-metrics-range",
            );
        }
        self.ranged_query(
            "/api/search",
            a,
            &[("limit", SEARCH_LIMIT.to_string())],
            &parts.headers,
            search_summary,
        )
        .await
    }

    #[tool(
        name = "traceql-metrics-instant",
        description = "Run a TraceQL metrics query over the whole range and return one value per series, e.g. { status = error } | rate() by (resource.service.name). Functions: rate, count_over_time, sum/avg/min/max_over_time, quantile_over_time, histogram_over_time, compare. Times are RFC 3339; default the last hour."
    )]
    async fn traceql_metrics_instant(
        &self,
        Parameters(a): Parameters<QueryArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        self.ranged_query(
            "/api/metrics/query",
            a,
            &[],
            &parts.headers,
            instant_summary,
        )
        .await
    }

    #[tool(
        name = "traceql-metrics-range",
        description = "Run a TraceQL metrics query as a time series over the range, e.g. { kind = server } | quantile_over_time(duration, .99) by (resource.service.name). Returns per series its labels and [unix seconds, value] points, with exemplar trace IDs. Times are RFC 3339; default the last hour."
    )]
    async fn traceql_metrics_range(
        &self,
        Parameters(a): Parameters<QueryArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        self.ranged_query(
            "/api/metrics/query_range",
            a,
            &[],
            &parts.headers,
            range_summary,
        )
        .await
    }

    #[tool(
        name = "get-trace",
        description = "Get one trace by ID: a summary (root, duration, span and error counts per service) and its spans in tree order with depth, start offset and duration in ms, status, attributes and events."
    )]
    async fn get_trace(
        &self,
        Parameters(a): Parameters<TraceArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        match self
            .fetch_trace(&a.trace_id, None, None, &parts.headers)
            .await
        {
            Ok(t) => ok(trace_summary(a.trace_id.trim(), &t, MAX_SPANS)),
            Err(r) => r,
        }
    }

    #[tool(
        name = "trace-diff",
        description = "Compare two traces (for example a slow one with a normal one): operations, matched by service and span name, that were added, removed, or changed in count, errors or time, largest time changes first."
    )]
    async fn trace_diff(
        &self,
        Parameters(a): Parameters<DiffArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let Some(format) = DiffFormat::parse(a.format.as_deref().unwrap_or("")) else {
            return failed(
                "format must be trace-summary-v0-composed, trace-summary-v0-native or trace-patch-v0",
            );
        };
        let base = match self
            .fetch_trace(
                &a.base_trace_id,
                a.base_start.as_deref(),
                a.base_end.as_deref(),
                &parts.headers,
            )
            .await
        {
            Ok(t) => t,
            Err(r) => return r,
        };
        let compare = match self
            .fetch_trace(
                &a.compare_trace_id,
                a.compare_start.as_deref(),
                a.compare_end.as_deref(),
                &parts.headers,
            )
            .await
        {
            Ok(t) => t,
            Err(r) => return r,
        };
        ok(trace_diff(
            (a.base_trace_id.trim(), &base),
            (a.compare_trace_id.trim(), &compare),
            format,
            MAX_SPANS,
        ))
    }

    #[tool(
        name = "get-attribute-names",
        description = "List the attribute names stored in the last hours, by scope (span, resource, event, link, instrumentation, plus the intrinsics). Use them in TraceQL as scope.name, e.g. span.http.route."
    )]
    async fn get_attribute_names(
        &self,
        Parameters(a): Parameters<NamesArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let mut p = Vec::new();
        if let Some(s) = a.scope.filter(|s| !s.is_empty()) {
            p.push(("scope", s));
        }
        match self
            .api
            .get_json("/api/v2/search/tags", &p, &parts.headers)
            .await
        {
            Ok(v) => {
                let scopes: serde_json::Map<String, Value> = v["scopes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        let mut tags: Vec<&str> = s["tags"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect();
                        tags.sort_unstable();
                        (s["name"].as_str().unwrap_or("").to_string(), json!(tags))
                    })
                    .collect();
                ok(Value::Object(scopes))
            }
            Err(e) => api_failed(e),
        }
    }

    #[tool(
        name = "get-attribute-values",
        description = "List the values an attribute takes, e.g. name = resource.service.name, optionally only on spans matching filter-query (one spanset such as { span.http.method = \"GET\" })."
    )]
    async fn get_attribute_values(
        &self,
        Parameters(a): Parameters<ValuesArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let name = a.name.trim();
        if name.is_empty() {
            return failed("name is required, e.g. resource.service.name");
        }
        let mut p = Vec::new();
        if let Some(q) = a.filter_query.filter(|q| !q.trim().is_empty()) {
            p.push(("q", q));
        }
        let path = format!("/api/v2/search/tag/{}/values", crate::api::encode(name));
        match self.api.get_json(&path, &p, &parts.headers).await {
            Ok(v) => {
                let values: Vec<Value> = v["tagValues"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| json!({"type": t["type"], "value": t["value"]}))
                    .collect();
                ok(json!({ "name": name, "values": values }))
            }
            Err(e) => api_failed(e),
        }
    }

    #[tool(
        name = "docs-traceql",
        description = "TraceQL documentation: name = basic (filters, attributes, intrinsics, operators), aggregates (count, avg, by, select), structural (parent/child/descendant/sibling operators) or metrics (rate, quantiles, compare)."
    )]
    async fn docs_traceql(
        &self,
        Parameters(a): Parameters<DocArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        match docs::traceql(&a.name) {
            Some(d) => Ok(CallToolResult::success(vec![ContentBlock::text(d)])),
            None => failed("name must be basic, aggregates, structural or metrics"),
        }
    }

    #[tool(
        name = "docs-config",
        description = "vivace configuration documentation: name = config-overview (what the sections do) or config-reference (every key with its default)."
    )]
    async fn docs_config(
        &self,
        Parameters(a): Parameters<DocArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        match docs::config(&a.name) {
            Some(d) => Ok(CallToolResult::success(vec![ContentBlock::text(d)])),
            None => failed("name must be config-overview or config-reference"),
        }
    }
}

/// Whether the query ends in a metrics function (`| rate()` …), the case `traceql-search` refuses.
fn is_metrics_query(q: &str) -> bool {
    const FUNCTIONS: [&str; 9] = [
        "rate",
        "count_over_time",
        "sum_over_time",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "quantile_over_time",
        "histogram_over_time",
        "compare",
    ];
    q.split('|').skip(1).any(|stage| {
        let s = stage.trim_start();
        FUNCTIONS.iter().any(|f| {
            s.strip_prefix(f)
                .is_some_and(|rest| rest.trim_start().starts_with('('))
        })
    })
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TempoMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(rmcp::model::Implementation::new(
            "vivace",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(
            "vivace stores distributed traces (a Tempo-compatible backend). Investigate with: \
             get-attribute-names / get-attribute-values to learn what is stored; \
             traceql-metrics-instant or traceql-metrics-range for rates, errors and latency \
             (e.g. { } | rate() by (resource.service.name)); traceql-search for example traces; \
             get-trace to read one; trace-diff to compare a slow trace with a normal one. \
             docs-traceql explains the query language.",
        )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(
            docs::RESOURCES
                .iter()
                .map(|(uri, title, _)| {
                    Resource::new(*uri, *title)
                        .with_title(*title)
                        .with_mime_type("text/markdown")
                })
                .collect(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        match docs::resource(&request.uri) {
            Some(text) => Ok(ReadResourceResult::new(vec![
                ResourceContents::text(text, request.uri.clone()).with_mime_type("text/markdown"),
            ])
            .into()),
            None => Err(ErrorData::resource_not_found(
                format!("no resource {}", request.uri),
                None,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_queries_are_recognised() {
        assert!(is_metrics_query("{ } | rate()"));
        assert!(is_metrics_query(
            "{ a = 1 } | quantile_over_time(duration, .9) by (name)"
        ));
        assert!(!is_metrics_query("{ } | count() > 2"));
        assert!(!is_metrics_query("{ name = \"rate\" }"));
    }

    #[test]
    fn ranges_default_to_the_last_hour() {
        let r = range(None, Some("2026-01-01T00:00:00Z")).unwrap();
        assert_eq!(r[0].1, "1767222000");
        assert_eq!(r[1].1, "1767225601");
        assert!(range(Some("x"), None).unwrap_err().contains("RFC 3339"));
        assert!(range(Some("200"), Some("100")).is_err());
    }
}
