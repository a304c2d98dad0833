//! HTTP handlers of the query API.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode, header};
use prost::Message;
use serde::Deserialize;
use vivace_common::overrides::Overrides;
use vivace_common::{Status, TenantId, TraceId};
use vivace_model::combine_traces;
use vivace_proto::jsonpb;
use vivace_proto::tempopb::{PartialStatus, Trace, TraceByIdMetrics, TraceByIdResponse};

use std::collections::{BTreeSet, HashMap, HashSet};

use vivace_proto::tempopb::{
    SearchTagValuesResponse, SearchTagValuesV2Response, SearchTagsResponse, SearchTagsV2Response,
    SearchTagsV2Scope, TagValue,
};
use vivace_traceql::ast::AttrScope;

use crate::search::{SearchConfig, SearchRequest};
use crate::source::{SearchSource, TraceSource};
use crate::tags::{self, INTRINSICS, SCOPES, TagRef, TagRequest};

/// `/api/status/buildinfo` fields.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    /// The Tempo API version vivace is compatible with (semver; Grafana enables streaming at
    /// 2.7.0 and later).
    pub version: String,
    pub vivace_version: String,
    pub revision: String,
}

/// What the query handlers need.
#[derive(Debug, Clone)]
pub struct QueryApi {
    pub sources: Vec<Arc<dyn TraceSource>>,
    pub multitenancy: bool,
    pub build: BuildInfo,
    /// Per-tenant limits (`global.max_bytes_per_trace` applies to reads too).
    pub overrides: Overrides,
    /// Where search, tags and tag values read: the live-store and blocks.
    pub search_sources: Vec<Arc<dyn SearchSource>>,
    pub search: SearchConfig,
    pub metrics: crate::metrics::MetricsConfig,
}

/// Routes of the query API, to be served on the HTTP port.
pub fn router(api: QueryApi) -> Router {
    Router::new()
        .route("/api/traces/{id}", get(trace_v1))
        .route("/api/v2/traces/{id}", get(trace_v2))
        .route("/api/search", get(search))
        .route("/api/search/tags", get(search_tags_v1))
        .route("/api/v2/search/tags", get(search_tags_v2))
        .route("/api/search/tag/{tag}/values", get(tag_values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(tag_values_v2))
        .route("/api/metrics/query_range", get(metrics_query_range))
        .route("/api/metrics/query", get(metrics_query_instant))
        .route("/api/echo", get(|| async { "echo\n" }))
        .route("/api/status/buildinfo", get(buildinfo))
        .with_state(Arc::new(api))
}

async fn buildinfo(State(api): State<Arc<QueryApi>>) -> Response {
    let b = &api.build;
    let body = serde_json::json!({
        "version": b.version,
        "revision": b.revision,
        "branch": "main",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
        "vivaceVersion": b.vivace_version,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct RangeParams {
    start: Option<String>,
    end: Option<String>,
}

fn text(code: StatusCode, msg: impl Into<String>) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", msg.into()),
    )
        .into_response()
}

fn status_response(s: Status) -> Response {
    let code = StatusCode::from_u16(s.code.http()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    text(code, s.message)
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/protobuf"))
}

/// Parses the tenant header for reads: one tenant, or several joined with `|`.
pub(crate) fn read_tenants(api: &QueryApi, headers: &HeaderMap) -> Result<Vec<TenantId>, Status> {
    if !api.multitenancy {
        return Ok(vec![TenantId::single()]);
    }
    let raw = headers
        .get("x-scope-orgid")
        .ok_or_else(|| {
            Status::new(
                vivace_common::StatusCode::Unauthorized,
                "no org id: multitenancy is enabled and the request has no X-Scope-OrgID header (gRPC: x-scope-orgid metadata)",
            )
        })?
        .to_str()
        .map_err(|_| Status::bad_request("X-Scope-OrgID is not valid text"))?;
    let mut tenants = Vec::new();
    for t in raw.split('|') {
        let t = TenantId::new(t.trim())
            .map_err(|e| Status::bad_request(format!("invalid X-Scope-OrgID: {e}")))?;
        if !tenants.contains(&t) {
            tenants.push(t);
        }
    }
    Ok(tenants)
}

/// The request part shared by v1 and v2: tenants, trace ID and optional range.
struct TraceRequest {
    tenants: Vec<TenantId>,
    id: TraceId,
    range_opt: Option<(i64, i64)>,
}

fn parse_request(
    api: &QueryApi,
    headers: &HeaderMap,
    id: &str,
    params: &RangeParams,
) -> Result<TraceRequest, Status> {
    let tenants = read_tenants(api, headers)?;
    let id = TraceId::from_hex(id).map_err(|e| Status::bad_request(e.to_string()))?;
    let parse = |name: &str, v: &Option<String>| -> Result<Option<i64>, Status> {
        match v.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => s
                .parse::<i64>()
                .map(Some)
                .map_err(|e| Status::bad_request(format!("invalid {name}: {s}: {e}"))),
        }
    };
    let start = parse("start", &params.start)?;
    let end = parse("end", &params.end)?;
    let range_opt = match (start, end) {
        (None, None) => None,
        (s, e) => {
            let (s, e) = (s.unwrap_or(0), e.unwrap_or(i64::MAX));
            if e <= s {
                return Err(Status::bad_request(format!(
                    "http parameter start must be before end. received start={s} end={e}"
                )));
            }
            Some((s, e))
        }
    };
    Ok(TraceRequest {
        tenants,
        id,
        range_opt,
    })
}

/// Looks the trace up in every source for every tenant and combines what was found.
async fn find(api: &QueryApi, req: &TraceRequest) -> Result<Option<(Trace, u64)>, Status> {
    let mut pieces = Vec::new();
    let mut inspected = 0;
    for tenant in &req.tenants {
        for src in &api.sources {
            if let Some(found) = src.find_trace_by_id(tenant, &req.id, req.range_opt).await? {
                inspected += found.inspected_bytes;
                pieces.push(found.trace);
            }
        }
    }
    if pieces.is_empty() {
        return Ok(None);
    }
    let trace = if pieces.len() == 1 {
        pieces.pop().unwrap_or_default()
    } else {
        combine_traces(pieces, &mut Default::default())
    };
    if trace.resource_spans.is_empty() {
        Ok(None)
    } else {
        Ok(Some((trace, inspected)))
    }
}

/// A trace found for a request, with the size limit of its tenants.
struct Found {
    trace: Trace,
    inspected: u64,
    /// `max_bytes_per_trace` of the tenants, when the trace is larger.
    over_limit_opt: Option<usize>,
}

/// The part both versions share: parse the request and find the trace. An unknown trace is
/// 404 with an empty body on both. (Tempo's v2 answers 200 with an empty trace; Grafana treats
/// both as "not found", and on 404 it retries v1, which is also 404.)
async fn lookup(
    api: &QueryApi,
    headers: &HeaderMap,
    id: &str,
    params: &RangeParams,
) -> Result<Found, Response> {
    let req = parse_request(api, headers, id, params).map_err(status_response)?;
    match find(api, &req).await.map_err(status_response)? {
        None => Err(StatusCode::NOT_FOUND.into_response()),
        Some((trace, inspected)) => {
            let over_limit_opt =
                max_trace_bytes(api, &req.tenants).filter(|max| trace.encoded_len() > *max);
            Ok(Found {
                trace,
                inspected,
                over_limit_opt,
            })
        }
    }
}

async fn trace_v1(
    State(api): State<Arc<QueryApi>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<RangeParams>,
) -> Response {
    match lookup(&api, &headers, &id, &params).await {
        Err(resp) => resp,
        // As Tempo: v1 refuses a trace over max_bytes_per_trace (v2 returns part of it).
        Ok(Found {
            over_limit_opt: Some(_),
            ..
        }) => text(StatusCode::UNPROCESSABLE_ENTITY, "trace exceeds max size"),
        Ok(Found { trace, .. }) => negotiate(
            &headers,
            || trace.encode_to_vec(),
            || jsonpb::trace_v1(&trace),
        ),
    }
}

/// The smallest `max_bytes_per_trace` of the tenants read (`None` when unlimited).
fn max_trace_bytes(api: &QueryApi, tenants: &[TenantId]) -> Option<usize> {
    tenants
        .iter()
        .map(|t| api.overrides.tenant(t.as_str()).global.max_bytes_per_trace)
        .filter(|m| *m > 0)
        .min()
}

/// The spans of `trace`, in order, that fit in `max` encoded bytes.
fn truncate_trace(trace: Trace, max: usize) -> Trace {
    let mut out = Trace::default();
    let mut size = 0usize;
    'outer: for mut rs in trace.resource_spans {
        let scopes = std::mem::take(&mut rs.scope_spans);
        let mut rs_size = rs.encoded_len() + 8;
        let mut kept_scopes = Vec::new();
        for mut ss in scopes {
            let spans = std::mem::take(&mut ss.spans);
            let mut ss_size = ss.encoded_len() + 8;
            let mut kept = Vec::new();
            for span in spans {
                let add = span.encoded_len() + 8;
                if size + rs_size + ss_size + add > max {
                    if !kept.is_empty() {
                        ss.spans = kept;
                        kept_scopes.push(ss);
                    }
                    if !kept_scopes.is_empty() {
                        rs.scope_spans = kept_scopes;
                        out.resource_spans.push(rs);
                    }
                    break 'outer;
                }
                ss_size += add;
                kept.push(span);
            }
            rs_size += ss_size;
            ss.spans = kept;
            kept_scopes.push(ss);
        }
        size += rs_size;
        rs.scope_spans = kept_scopes;
        out.resource_spans.push(rs);
    }
    out
}

/// Protobuf when the client asks for it (`Accept: application/protobuf`), else JSON.
fn negotiate(
    headers: &HeaderMap,
    proto: impl FnOnce() -> Vec<u8>,
    json: impl FnOnce() -> serde_json::Value,
) -> Response {
    if wants_protobuf(headers) {
        ([(header::CONTENT_TYPE, "application/protobuf")], proto()).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            json().to_string(),
        )
            .into_response()
    }
}

async fn trace_v2(
    State(api): State<Arc<QueryApi>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<RangeParams>,
) -> Response {
    let Found {
        trace,
        inspected,
        over_limit_opt,
    } = match lookup(&api, &headers, &id, &params).await {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    // As Tempo: a trace over max_bytes_per_trace is returned in part, marked PARTIAL.
    let (trace, status, message) = match over_limit_opt {
        Some(max) => (
            truncate_trace(trace, max),
            PartialStatus::Partial as i32,
            format!("Trace exceeds maximum size of {max} bytes, a partial trace is returned"),
        ),
        None => (trace, PartialStatus::Complete as i32, String::new()),
    };
    let resp = TraceByIdResponse {
        trace: Some(trace),
        metrics: Some(TraceByIdMetrics {
            inspected_bytes: inspected,
            ..Default::default()
        }),
        status,
        message,
    };
    negotiate(
        &headers,
        || resp.encode_to_vec(),
        || jsonpb::trace_by_id_response(&resp),
    )
}

type Params = Query<HashMap<String, String>>;

/// Protobuf or JSON for a computed answer, or the error's status.
fn answer<T: Message>(
    headers: &HeaderMap,
    r: Result<T, Status>,
    json: impl FnOnce(&T) -> serde_json::Value,
) -> Response {
    match r {
        Ok(resp) => negotiate(headers, || resp.encode_to_vec(), || json(&resp)),
        Err(s) => status_response(s),
    }
}

async fn search(
    State(api): State<Arc<QueryApi>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let r = match read_tenants(&api, &headers) {
        Ok(tenants) => run_search(&api, &tenants, &q, |_| {}).await,
        Err(e) => Err(e),
    };
    answer(&headers, r, jsonpb::search_response)
}

async fn metrics_query_range(
    State(api): State<Arc<QueryApi>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let r = metrics_http(&api, &headers, &q, false, crate::metrics::range_response).await;
    answer(&headers, r, jsonpb::query_range_response)
}

async fn metrics_query_instant(
    State(api): State<Arc<QueryApi>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let r = metrics_http(&api, &headers, &q, true, crate::metrics::instant_response).await;
    answer(&headers, r, jsonpb::query_instant_response)
}

/// A metrics query over HTTP: the request's tenants, the answer as message `to` makes it.
async fn metrics_http<T>(
    api: &QueryApi,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    instant: bool,
    to: fn(&crate::metrics::Answer) -> T,
) -> Result<T, Status> {
    let tenants = read_tenants(api, headers)?;
    run_metrics(api, &tenants, q, instant, |_| {})
        .await
        .map(|a| to(&a))
}

/// A metrics query from request parameters (HTTP query, or a gRPC request turned into them).
pub(crate) async fn run_metrics(
    api: &QueryApi,
    tenants: &[TenantId],
    q: &HashMap<String, String>,
    instant: bool,
    on_progress: impl FnMut(crate::metrics::Answer) + Send,
) -> Result<crate::metrics::Answer, Status> {
    let mut cfg = api.metrics.clone();
    if let Some(d) = read_duration(api, tenants, "max_metrics_duration") {
        cfg.max_duration = d;
    }
    let req = crate::metrics::MetricsRequest::from_params(q, &cfg, &api.search, instant)?;
    crate::metrics::query(
        &api.search_sources,
        tenants,
        &req,
        &cfg,
        &api.search,
        on_progress,
    )
    .await
}

/// The tenants' `read.<key>` duration override (the smallest when a query spans several; an
/// unset or zero value leaves the query-frontend's limit).
fn read_duration(api: &QueryApi, tenants: &[TenantId], key: &str) -> Option<std::time::Duration> {
    tenants
        .iter()
        .filter_map(|t| {
            let o = api.overrides.tenant(t.as_str());
            let v = o.read.as_ref()?.get(key)?.clone();
            let d = match v {
                serde_yaml_ng::Value::String(s) => humantime::parse_duration(&s).ok()?,
                serde_yaml_ng::Value::Number(n) => std::time::Duration::from_secs(n.as_u64()?),
                _ => return None,
            };
            (!d.is_zero()).then_some(d)
        })
        .min()
}

/// A search from request parameters (HTTP query, or a gRPC request turned into them).
pub(crate) async fn run_search(
    api: &QueryApi,
    tenants: &[TenantId],
    q: &HashMap<String, String>,
    on_progress: impl FnMut(&mut crate::search::Combiner) + Send,
) -> Result<vivace_proto::tempopb::SearchResponse, Status> {
    let mut cfg = api.search.clone();
    if let Some(d) = read_duration(api, tenants, "max_search_duration") {
        cfg.max_duration = d;
    }
    let req = SearchRequest::from_params(q, &cfg)?;
    crate::search::search(&api.search_sources, tenants, &req, &cfg, on_progress).await
}

/// `read.max_bytes_per_tag_values_query` of the tenants (the smallest; default 1,000,000).
fn max_tag_bytes(api: &QueryApi, tenants: &[TenantId]) -> usize {
    tenants
        .iter()
        .map(|t| {
            api.overrides
                .tenant(t.as_str())
                .read
                .as_ref()
                .and_then(|r| r.get("max_bytes_per_tag_values_query"))
                .and_then(|v| v.as_u64())
                .map_or(1_000_000, |v| v as usize)
        })
        .min()
        .unwrap_or(1_000_000)
}

fn tag_request(
    api: &QueryApi,
    tenants: &[TenantId],
    q: &HashMap<String, String>,
) -> Result<TagRequest, Status> {
    let (start, end) = crate::params::time_range(
        q,
        std::time::Duration::from_secs(15 * 60),
        api.search.query_end_cutoff,
        Some(api.search.max_duration),
    )?;
    Ok(TagRequest {
        start,
        end,
        plan_opt: tags::lenient_plan(q.get("q").map(String::as_str)),
        limit: crate::params::uint(q, "limit", 0)? as usize,
        max_stale: crate::params::uint(q, "maxStaleValues", 0)? as usize,
        max_bytes: max_tag_bytes(api, tenants),
    })
}

/// The attribute scopes a `scope` parameter asks for, and whether intrinsics are listed.
fn scopes_of(scope: Option<&str>, v2: bool) -> Result<(Vec<&'static str>, bool), Status> {
    match scope.unwrap_or("") {
        "" => Ok((SCOPES.to_vec(), v2)),
        "none" if v2 => Ok((SCOPES.to_vec(), true)),
        "intrinsic" => Ok((Vec::new(), true)),
        s => SCOPES
            .iter()
            .find(|x| **x == s)
            .map(|x| (vec![*x], false))
            .ok_or_else(|| Status::bad_request(format!("invalid scope: {s}"))),
    }
}

pub(crate) async fn run_tags_v1(
    api: &QueryApi,
    tenants: &[TenantId],
    q: &HashMap<String, String>,
) -> Result<SearchTagsResponse, Status> {
    let req = tag_request(api, tenants, q)?;
    let (scopes, intrinsic) = scopes_of(q.get("scope").map(String::as_str), false)?;
    let (names, metrics) = tags::tag_names(
        &api.search_sources,
        tenants,
        &req,
        scopes,
        api.search.concurrent_jobs,
    )
    .await?;
    let mut all: BTreeSet<String> = names.into_values().flatten().collect();
    if intrinsic {
        all.extend(INTRINSICS.iter().map(|s| s.to_string()));
    }
    Ok(SearchTagsResponse {
        tag_names: all.into_iter().collect(),
        metrics: Some(metrics),
    })
}

pub(crate) async fn run_tags_v2(
    api: &QueryApi,
    tenants: &[TenantId],
    q: &HashMap<String, String>,
) -> Result<SearchTagsV2Response, Status> {
    let req = tag_request(api, tenants, q)?;
    let (scopes, intrinsic) = scopes_of(q.get("scope").map(String::as_str), true)?;
    let (mut names, metrics) = tags::tag_names(
        &api.search_sources,
        tenants,
        &req,
        scopes.clone(),
        api.search.concurrent_jobs,
    )
    .await?;
    let mut out = Vec::new();
    for s in scopes {
        if let Some(tags) = names.remove(s).filter(|t| !t.is_empty()) {
            out.push(SearchTagsV2Scope {
                name: s.to_string(),
                tags: tags.into_iter().collect(),
            });
        }
    }
    if intrinsic {
        out.push(SearchTagsV2Scope {
            name: "intrinsic".into(),
            tags: INTRINSICS.iter().map(|s| s.to_string()).collect(),
        });
    }
    Ok(SearchTagsV2Response {
        scopes: out,
        metrics: Some(metrics),
    })
}

pub(crate) async fn run_values_v1(
    api: &QueryApi,
    tenants: &[TenantId],
    tag: &str,
    q: &HashMap<String, String>,
) -> Result<SearchTagValuesResponse, Status> {
    let req = tag_request(api, tenants, q)?;
    // Tempo's virtual values of the legacy tags.
    let fixed: Option<Vec<String>> = match tag {
        "status.code" => Some(vec!["unset".into(), "ok".into(), "error".into()]),
        "error" => Some(vec!["true".into()]),
        _ => None,
    };
    if let Some(v) = fixed {
        return Ok(SearchTagValuesResponse {
            tag_values: v,
            metrics: Some(Default::default()),
        });
    }
    let (vals, metrics) = tags::tag_values(
        &api.search_sources,
        tenants,
        &req,
        TagRef::Attr(AttrScope::None, tag.to_string()),
        &api.metrics,
        &api.search,
    )
    .await?;
    let mut seen = HashSet::new();
    Ok(SearchTagValuesResponse {
        tag_values: vals
            .into_iter()
            .map(|(_, v)| v)
            .filter(|v| seen.insert(v.clone()))
            .collect(),
        metrics: Some(metrics),
    })
}

pub(crate) async fn run_values_v2(
    api: &QueryApi,
    tenants: &[TenantId],
    tag: &str,
    q: &HashMap<String, String>,
) -> Result<SearchTagValuesV2Response, Status> {
    let tag = tags::parse_tag_v2(tag)?;
    let req = tag_request(api, tenants, q)?;
    if let Some(v) = tags::virtual_values_v2(&tag) {
        return Ok(SearchTagValuesV2Response {
            tag_values: v,
            metrics: Some(Default::default()),
        });
    }
    let by_metrics = match (q.get("q"), &req.plan_opt) {
        (Some(text), Some(_)) => {
            tags::values_by_metrics(
                &api.search_sources,
                tenants,
                &req,
                &tag,
                text,
                &api.metrics,
                &api.search,
            )
            .await
        }
        _ => None,
    };
    let (vals, metrics) = match by_metrics {
        Some(r) => r?,
        None => {
            tags::tag_values(
                &api.search_sources,
                tenants,
                &req,
                tag,
                &api.metrics,
                &api.search,
            )
            .await?
        }
    };
    Ok(SearchTagValuesV2Response {
        tag_values: vals
            .into_iter()
            .map(|(t, v)| TagValue {
                r#type: t.to_string(),
                value: v,
            })
            .collect(),
        metrics: Some(metrics),
    })
}

async fn search_tags_v1(
    State(api): State<Arc<QueryApi>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let r = match read_tenants(&api, &headers) {
        Ok(t) => run_tags_v1(&api, &t, &q).await,
        Err(e) => Err(e),
    };
    answer(&headers, r, jsonpb::search_tags_response)
}

async fn search_tags_v2(
    State(api): State<Arc<QueryApi>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let r = match read_tenants(&api, &headers) {
        Ok(t) => run_tags_v2(&api, &t, &q).await,
        Err(e) => Err(e),
    };
    answer(&headers, r, jsonpb::search_tags_v2_response)
}

async fn tag_values_v1(
    State(api): State<Arc<QueryApi>>,
    headers: HeaderMap,
    Path(tag): Path<String>,
    Query(q): Params,
) -> Response {
    let r = match read_tenants(&api, &headers) {
        Ok(t) => run_values_v1(&api, &t, &tag, &q).await,
        Err(e) => Err(e),
    };
    answer(&headers, r, jsonpb::search_tag_values_response)
}

async fn tag_values_v2(
    State(api): State<Arc<QueryApi>>,
    headers: HeaderMap,
    Path(tag): Path<String>,
    Query(q): Params,
) -> Response {
    let r = match read_tenants(&api, &headers) {
        Ok(t) => run_values_v2(&api, &t, &tag, &q).await,
        Err(e) => Err(e),
    };
    answer(&headers, r, jsonpb::search_tag_values_v2_response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

    #[test]
    fn truncation_keeps_a_prefix_within_the_limit() {
        let spans: Vec<Span> = (0..50u8)
            .map(|i| Span {
                span_id: vec![i; 8],
                name: "x".repeat(100),
                ..Default::default()
            })
            .collect();
        let trace = Trace {
            resource_spans: vec![
                ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans: spans[..20].to_vec(),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans: spans[20..].to_vec(),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
        };
        for max in [0, 50, 500, 2_500, 4_000, 100_000] {
            let cut = truncate_trace(trace.clone(), max);
            let kept: Vec<u8> = cut
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .map(|s| s.span_id[0])
                .collect();
            assert_eq!(
                kept,
                (0..kept.len() as u8).collect::<Vec<_>>(),
                "a prefix, in order"
            );
            if max >= trace.encoded_len() {
                assert_eq!(cut, trace);
            } else {
                assert!(cut.encoded_len() <= max, "{} > {max}", cut.encoded_len());
            }
        }
    }
}
