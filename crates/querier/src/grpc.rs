//! `tempopb.StreamingQuerier` (compatibility notes §1.12): search, tags, tag values and TraceQL
//! metrics (range and instant, streamed like search) over
//! gRPC, as Grafana's Tempo data source streams them — on the HTTP port as h2c and on
//! `server.grpc_listen_port`. The tenant comes from the `x-scope-orgid` metadata.
//!
//! A search streams a diff at most every 500 ms while jobs complete (as Tempo: the traces added
//! or changed since the last message and the cumulative metrics, whose
//! `completedJobs`/`totalJobs` drive Grafana's progress bar), then the final full response;
//! every message is cut to at most 1 MiB (Tempo's `max_grpc_streaming_packet_size`), the
//! metrics repeated in each part. Range metrics queries stream their answer so far the same way
//! (series cut among messages; Grafana merges the frames it receives); an instant query's
//! answer is one message (Grafana shows the last one). Tags and tag values answer with one message.
//! Requests become the same parameters the HTTP API parses, so both give the same answers and
//! the same errors (400 → InvalidArgument, 504 → DeadlineExceeded, …).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use http::HeaderMap;
use tonic::{Request, Response};
use vivace_common::{Status, to_tonic};
use vivace_proto::tempopb::streaming_querier_server::{StreamingQuerier, StreamingQuerierServer};
use vivace_proto::tempopb::{
    QueryInstantRequest, QueryInstantResponse, QueryRangeRequest, QueryRangeResponse,
    SearchRequest, SearchResponse, SearchTagValuesRequest, SearchTagValuesResponse,
    SearchTagValuesV2Response, SearchTagsRequest, SearchTagsResponse, SearchTagsV2Response,
};

use crate::api::{
    QueryApi, read_tenants, run_metrics, run_search, run_tags_v1, run_tags_v2, run_values_v1,
    run_values_v2,
};

/// The service, ready to be routed (h2c on the HTTP port) or served on the gRPC port.
pub fn streaming_service(api: QueryApi) -> StreamingQuerierServer<Streaming> {
    StreamingQuerierServer::new(Streaming { api: Arc::new(api) })
}

#[derive(Debug, Clone)]
pub struct Streaming {
    api: Arc<QueryApi>,
}

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

fn once<T: Send + 'static>(r: Result<T, Status>) -> Result<Response<Streamed<T>>, tonic::Status> {
    let msg = r.map_err(to_tonic)?;
    Ok(Response::new(Box::pin(futures::stream::once(async move {
        Ok(msg)
    }))))
}

impl Streaming {
    fn tenants<T>(&self, req: &Request<T>) -> Result<Vec<vivace_common::TenantId>, tonic::Status> {
        let headers: HeaderMap = req.metadata().clone().into_headers();
        read_tenants(&self.api, &headers).map_err(to_tonic)
    }
}

impl Streaming {
    /// Runs a metrics query, streaming the answer so far while jobs complete (at most every
    /// 500 ms), then the final answer.
    fn stream_metrics<T: Send + 'static>(
        &self,
        tenants: Vec<vivace_common::TenantId>,
        params: HashMap<String, String>,
        instant: bool,
        to: fn(&crate::metrics::Answer) -> T,
        parts: fn(T) -> Vec<T>,
    ) -> Response<Streamed<T>> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<T, tonic::Status>>(16);
        let api = self.api.clone();
        tokio::spawn(async move {
            let progress_tx = tx.clone();
            let r = run_metrics(&api, &tenants, &params, instant, move |a| {
                // Skipped when the client is behind: the final answer always follows.
                send_partial(&progress_tx, parts(to(&a)), |_| {});
            })
            .await;
            send_final(&tx, r.map(|a| to(&a)), parts).await;
        });
        Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}

/// Tempo's `max_grpc_streaming_packet_size`: no streamed search or metrics message is larger; a
/// bigger answer goes as several, each with the metrics.
const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// A streamed answer that can be cut into several messages: its repeated items (traces,
/// series) split among them, everything else (metrics, status) repeated in each.
trait Segmented: prost::Message + Sized {
    type Item: prost::Message;
    fn take_items(&mut self) -> Vec<Self::Item>;
    /// This answer without its items, with `items` instead.
    fn with_items(&self, items: Vec<Self::Item>) -> Self;
}

impl Segmented for SearchResponse {
    type Item = vivace_proto::tempopb::TraceSearchMetadata;
    fn take_items(&mut self) -> Vec<Self::Item> {
        std::mem::take(&mut self.traces)
    }
    fn with_items(&self, traces: Vec<Self::Item>) -> Self {
        SearchResponse {
            traces,
            metrics: self.metrics.clone(),
        }
    }
}

impl Segmented for QueryRangeResponse {
    type Item = vivace_proto::tempopb::TimeSeries;
    fn take_items(&mut self) -> Vec<Self::Item> {
        std::mem::take(&mut self.series)
    }
    fn with_items(&self, series: Vec<Self::Item>) -> Self {
        QueryRangeResponse {
            series,
            ..self.clone()
        }
    }
}

/// `resp` cut into messages of at most `max` encoded bytes (a single item larger than that goes
/// alone), every one carrying the rest of the answer; at least one message.
fn segments<M: Segmented>(mut resp: M, max: usize) -> Vec<M> {
    use prost::Message;
    let items = resp.take_items();
    let base = resp.encoded_len();
    let field = |len: usize| 1 + prost::encoding::encoded_len_varint(len as u64) + len;
    let (mut out, mut part, mut size) = (Vec::new(), Vec::new(), base);
    for item in items {
        let len = field(item.encoded_len());
        if !part.is_empty() && size + len > max {
            out.push(resp.with_items(std::mem::take(&mut part)));
            size = base;
        }
        size += len;
        part.push(item);
    }
    out.push(resp.with_items(part));
    out
}

/// An answer in messages of at most [`MAX_MESSAGE_BYTES`].
fn cut<M: Segmented>(resp: M) -> Vec<M> {
    segments(resp, MAX_MESSAGE_BYTES)
}

/// An answer as one message: Grafana shows only the last message of an instant query.
fn whole<M>(resp: M) -> Vec<M> {
    vec![resp]
}

/// A partial answer's messages, all or none: none when the client has not taken enough of the
/// earlier ones for all to fit. `sent` sees them before they go.
fn send_partial<M>(
    tx: &tokio::sync::mpsc::Sender<Result<M, tonic::Status>>,
    parts: Vec<M>,
    sent: impl FnOnce(&[M]),
) {
    if tx.capacity() < parts.len() {
        return;
    }
    sent(&parts);
    for part in parts {
        let _ = tx.try_send(Ok(part));
    }
}

/// The final answer, in the messages `parts` makes of it, or the error.
async fn send_final<M>(
    tx: &tokio::sync::mpsc::Sender<Result<M, tonic::Status>>,
    r: Result<M, Status>,
    parts: fn(M) -> Vec<M>,
) {
    match r {
        Ok(resp) => {
            for part in parts(resp) {
                if tx.send(Ok(part)).await.is_err() {
                    break;
                }
            }
        }
        Err(e) => {
            let _ = tx.send(Err(to_tonic(e))).await;
        }
    }
}

fn put(m: &mut HashMap<String, String>, k: &str, v: impl ToString) {
    m.insert(k.to_string(), v.to_string());
}

fn put_nonzero(m: &mut HashMap<String, String>, k: &str, v: u32) {
    if v != 0 {
        put(m, k, v);
    }
}

/// A gRPC search as the HTTP parameters it stands for. `SpansPerSpanSet` is always passed on
/// (0 = all spans), as Tempo's frontend does.
fn search_params(r: &SearchRequest) -> HashMap<String, String> {
    let mut m = HashMap::new();
    if !r.query.is_empty() {
        put(&mut m, "q", &r.query);
    } else if !r.tags.is_empty() {
        let mut tags: Vec<String> = r
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap_or_default()))
            .collect();
        tags.sort();
        put(&mut m, "tags", tags.join(" "));
    }
    put_nonzero(&mut m, "limit", r.limit);
    put(&mut m, "spss", r.spans_per_span_set);
    put_nonzero(&mut m, "start", r.start);
    put_nonzero(&mut m, "end", r.end);
    if r.min_duration_ms > 0 {
        put(&mut m, "minDuration", format!("{}ms", r.min_duration_ms));
    }
    if r.max_duration_ms > 0 {
        put(&mut m, "maxDuration", format!("{}ms", r.max_duration_ms));
    }
    m
}

/// A gRPC metrics query's text and range (unix nanoseconds) as HTTP parameters.
fn metrics_params(query: &str, start: u64, end: u64) -> HashMap<String, String> {
    let mut m = HashMap::new();
    put(&mut m, "q", query);
    put(&mut m, "start", start);
    put(&mut m, "end", end);
    m
}

fn tags_params(r: &SearchTagsRequest) -> HashMap<String, String> {
    let mut m = HashMap::new();
    put(&mut m, "scope", &r.scope);
    put(&mut m, "q", &r.query);
    put_nonzero(&mut m, "start", r.start);
    put_nonzero(&mut m, "end", r.end);
    put_nonzero(&mut m, "limit", r.max_tags_per_scope);
    put_nonzero(&mut m, "maxStaleValues", r.stale_values_threshold);
    m
}

fn values_params(r: &SearchTagValuesRequest) -> HashMap<String, String> {
    let mut m = HashMap::new();
    put(&mut m, "q", &r.query);
    put_nonzero(&mut m, "start", r.start);
    put_nonzero(&mut m, "end", r.end);
    put_nonzero(&mut m, "limit", r.max_tag_values);
    put_nonzero(&mut m, "maxStaleValues", r.stale_value_threshold);
    m
}

#[tonic::async_trait]
impl StreamingQuerier for Streaming {
    type SearchStream = Streamed<SearchResponse>;
    type SearchTagsStream = Streamed<SearchTagsResponse>;
    type SearchTagsV2Stream = Streamed<SearchTagsV2Response>;
    type SearchTagValuesStream = Streamed<SearchTagValuesResponse>;
    type SearchTagValuesV2Stream = Streamed<SearchTagValuesV2Response>;
    type MetricsQueryRangeStream = Streamed<QueryRangeResponse>;
    type MetricsQueryInstantStream = Streamed<QueryInstantResponse>;

    async fn metrics_query_range(
        &self,
        req: Request<QueryRangeRequest>,
    ) -> Result<Response<Self::MetricsQueryRangeStream>, tonic::Status> {
        let tenants = self.tenants(&req)?;
        let r = req.get_ref();
        let mut params = metrics_params(&r.query, r.start, r.end);
        if r.step > 0 {
            put(&mut params, "step", format!("{}ns", r.step));
        }
        put_nonzero(&mut params, "exemplars", r.exemplars);
        put_nonzero(&mut params, "maxSeries", r.max_series);
        let instant = r.instant == Some(true);
        let parts: fn(QueryRangeResponse) -> Vec<QueryRangeResponse> =
            if instant { whole } else { cut };
        Ok(self.stream_metrics(
            tenants,
            params,
            instant,
            crate::metrics::range_response,
            parts,
        ))
    }

    async fn metrics_query_instant(
        &self,
        req: Request<QueryInstantRequest>,
    ) -> Result<Response<Self::MetricsQueryInstantStream>, tonic::Status> {
        let tenants = self.tenants(&req)?;
        let r = req.get_ref();
        let params = metrics_params(&r.query, r.start, r.end);
        Ok(self.stream_metrics(
            tenants,
            params,
            true,
            crate::metrics::instant_response,
            whole,
        ))
    }

    async fn search(
        &self,
        req: Request<SearchRequest>,
    ) -> Result<Response<Self::SearchStream>, tonic::Status> {
        let tenants = self.tenants(&req)?;
        let params = search_params(req.get_ref());
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<SearchResponse, tonic::Status>>(16);
        let api = self.api.clone();
        tokio::spawn(async move {
            let progress_tx = tx.clone();
            let r = run_search(&api, &tenants, &params, move |c| {
                // A slow client never stalls the search: a diff that does not fit is kept for
                // the next tick (the final answer always follows).
                send_partial(&progress_tx, cut(c.diff()), |parts| {
                    parts.iter().for_each(|p| c.sent(p))
                });
            })
            .await;
            send_final(&tx, r, cut).await;
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn search_tags(
        &self,
        req: Request<SearchTagsRequest>,
    ) -> Result<Response<Self::SearchTagsStream>, tonic::Status> {
        let tenants = self.tenants(&req)?;
        once(run_tags_v1(&self.api, &tenants, &tags_params(req.get_ref())).await)
    }

    async fn search_tags_v2(
        &self,
        req: Request<SearchTagsRequest>,
    ) -> Result<Response<Self::SearchTagsV2Stream>, tonic::Status> {
        let tenants = self.tenants(&req)?;
        once(run_tags_v2(&self.api, &tenants, &tags_params(req.get_ref())).await)
    }

    async fn search_tag_values(
        &self,
        req: Request<SearchTagValuesRequest>,
    ) -> Result<Response<Self::SearchTagValuesStream>, tonic::Status> {
        let tenants = self.tenants(&req)?;
        let r = req.get_ref();
        once(run_values_v1(&self.api, &tenants, &r.tag_name, &values_params(r)).await)
    }

    async fn search_tag_values_v2(
        &self,
        req: Request<SearchTagValuesRequest>,
    ) -> Result<Response<Self::SearchTagValuesV2Stream>, tonic::Status> {
        let tenants = self.tenants(&req)?;
        let r = req.get_ref();
        once(run_values_v2(&self.api, &tenants, &r.tag_name, &values_params(r)).await)
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use vivace_proto::tempopb::{SearchMetrics, TraceSearchMetadata};

    use super::*;

    #[test]
    fn answers_are_cut_into_messages_of_at_most_the_packet_size() {
        let trace = |i: usize, name_len: usize| TraceSearchMetadata {
            trace_id: format!("{i:032x}"),
            root_trace_name: "n".repeat(name_len),
            ..Default::default()
        };
        let metrics = Some(SearchMetrics {
            inspected_traces: 7,
            total_jobs: 3,
            ..Default::default()
        });
        let resp = SearchResponse {
            traces: (0..1000).map(|i| trace(i, 100 + i % 50)).collect(),
            metrics: metrics.clone(),
        };
        let parts = segments(resp.clone(), 16 * 1024);
        assert!(parts.len() > 5, "{}", parts.len());
        for p in &parts {
            assert!(p.encoded_len() <= 16 * 1024, "{}", p.encoded_len());
            assert_eq!(p.metrics, metrics);
            assert!(!p.traces.is_empty());
        }
        let rejoined: Vec<_> = parts.into_iter().flat_map(|p| p.traces).collect();
        assert_eq!(rejoined, resp.traces, "every trace once, in order");

        // Small answers and empty ones are one message; a trace over the size goes alone.
        assert_eq!(segments(resp.clone(), 1 << 20).len(), 1);
        let empty = segments(
            SearchResponse {
                traces: vec![],
                metrics: metrics.clone(),
            },
            1024,
        );
        assert_eq!(empty.len(), 1);
        assert_eq!(empty[0].metrics, metrics);
        let big = SearchResponse {
            traces: vec![trace(1, 10), trace(2, 5000), trace(3, 10)],
            metrics,
        };
        let sizes: Vec<usize> = segments(big, 1024).iter().map(|p| p.traces.len()).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
    }

    #[test]
    fn range_answers_are_cut_by_series() {
        use vivace_proto::tempopb::TimeSeries;
        let resp = QueryRangeResponse {
            series: (0..300)
                .map(|i| TimeSeries {
                    prom_labels: format!("{{span.name=\"{i:0200}\"}}"),
                    ..Default::default()
                })
                .collect(),
            metrics: Some(SearchMetrics {
                total_jobs: 9,
                ..Default::default()
            }),
            status: 1,
            message: "partial".into(),
        };
        let parts = segments(resp.clone(), 8 * 1024);
        assert!(parts.len() >= 7, "{}", parts.len());
        for p in &parts {
            assert!(p.encoded_len() <= 8 * 1024);
            assert_eq!(
                (&p.metrics, p.status, &p.message),
                (&resp.metrics, 1, &resp.message)
            );
        }
        let series: Vec<_> = parts.into_iter().flat_map(|p| p.series).collect();
        assert_eq!(series, resp.series);
    }
}
