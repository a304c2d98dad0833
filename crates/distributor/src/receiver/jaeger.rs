//! Jaeger's ingest protocols, as `distributor.receivers.jaeger.protocols` configures them (the
//! OpenTelemetry Collector's shape):
//!
//! - `grpc` (default `:14250`): `jaeger.api_v2.CollectorService/PostSpans`, tenant from the
//!   `x-scope-orgid` metadata, errors as gRPC statuses (InvalidArgument, ResourceExhausted).
//! - `thrift_http` (default `:14268`): `POST /api/traces` with a Thrift binary `jaeger.Batch`
//!   (`application/x-thrift` or `application/vnd.apache.thrift.binary`), gzip allowed, answered
//!   `202 Accepted`; malformed bodies 400, limits as every protocol (413, 429).
//! - `thrift_compact` (`:6831/udp`) and `thrift_binary` (`:6832/udp`): the agent's
//!   `emitBatch` datagrams. There is no reply channel: a datagram that does not decode, or that
//!   a limit refuses, is counted (`vivace_receiver_dropped_datagrams_total{protocol,reason}` and
//!   the distributor's refusal counters) and logged at most once a second; the socket is read by
//!   one task and datagrams are handed to the distributor through a bounded queue, so a slow
//!   push never stops the reading (a full queue drops and counts).
//!
//! Spans become OTLP through [`crate::translate::jaeger`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;
use http::header;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::net::UdpSocket;
use vivace_common::{Status, StatusCode, TenantId, to_tonic};
use vivace_proto::jaeger::collector_service_server::{CollectorService, CollectorServiceServer};
use vivace_proto::jaeger::{PostSpansRequest, PostSpansResponse};

use super::plain::{error, text};
use crate::Distributor;
use crate::translate::jaeger::{batch_from_thrift, batches_from_proto, to_otlp};
use crate::translate::thrift::{Protocol, read_message, read_struct};

#[derive(Debug, Clone)]
struct HttpState {
    distributor: Arc<Distributor>,
    multitenancy: bool,
    max_body: usize,
}

/// The router of the Thrift-over-HTTP collector endpoint.
pub fn thrift_http_router(
    distributor: Arc<Distributor>,
    multitenancy: bool,
    max_body: usize,
) -> Router {
    Router::new()
        .route("/api/traces", post(api_traces))
        .with_state(HttpState {
            distributor,
            multitenancy,
            max_body,
        })
}

async fn api_traces(State(st): State<HttpState>, req: Request) -> Response {
    let headers = req.headers().clone();
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !matches!(
        ct.as_str(),
        "application/x-thrift" | "application/vnd.apache.thrift.binary"
    ) {
        return text(
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported content type '{ct}': use application/x-thrift or application/vnd.apache.thrift.binary"
            ),
        );
    }
    let header = headers.get("x-scope-orgid").map(|v| v.as_bytes().to_vec());
    let tenant = match super::tenant_of(st.multitenancy, header.as_deref()) {
        Ok(t) => t,
        Err(s) => return error(s),
    };
    let d = &st.distributor;
    let body = match super::http::read_body(&headers, req.into_body(), st.max_body).await {
        Ok(b) => b,
        Err(s) => {
            d.refused_undecoded(tenant.as_str(), s.code == StatusCode::PayloadTooLarge, 0);
            return error(s);
        }
    };
    let size = body.len();
    let decoded = tokio::task::spawn_blocking(move || {
        let v = read_struct(&body, Protocol::Binary)?;
        to_otlp(vec![batch_from_thrift(&v)?])
    })
    .await;
    super::plain::push_translated(d, &tenant, size, decoded, "unable to process request body").await
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabel {
    pub protocol: String,
    pub reason: String,
}

/// Counters of the UDP receivers.
#[derive(Debug, Clone, Default)]
pub struct UdpMetrics {
    pub dropped: Family<DropLabel, Counter>,
    pub datagrams: Family<DropLabel, Counter>,
}

impl UdpMetrics {
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        r.register(
            "vivace_receiver_dropped_datagrams",
            "UDP datagrams dropped, by protocol and reason (malformed, queue_full, refused)",
            self.dropped.clone(),
        );
        r.register(
            "vivace_receiver_datagrams",
            "UDP datagrams received, by protocol (reason=received)",
            self.datagrams.clone(),
        );
    }
}

/// Datagrams waiting for the distributor, per socket.
const UDP_QUEUE: usize = 1024;
/// Datagrams decoded and pushed at once, per socket.
const UDP_CONCURRENCY: usize = 16;
/// Largest datagram read (the agent protocol's limit).
const MAX_DATAGRAM: usize = 65_000;

/// Reads agent datagrams from `socket` until `stop`, pushing each batch as `tenant`.
pub async fn serve_udp(
    socket: UdpSocket,
    protocol: Protocol,
    tenant: TenantId,
    distributor: Arc<Distributor>,
    metrics: UdpMetrics,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let name = match protocol {
        Protocol::Compact => "jaeger_thrift_compact",
        Protocol::Binary => "jaeger_thrift_binary",
    };
    let count_drop = move |m: &UdpMetrics, reason: &str| {
        m.dropped
            .get_or_create(&DropLabel {
                protocol: name.into(),
                reason: reason.into(),
            })
            .inc();
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(UDP_QUEUE);
    let last_log = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let log_limited = move |msg: &str, err: &str| {
        let now = started.elapsed().as_secs() + 1;
        if last_log.swap(now, Ordering::Relaxed) != now {
            tracing::warn!(protocol = name, error = err, "{msg}");
        }
    };
    // Datagrams are decoded and pushed concurrently (UDP has no order to keep): one at a time,
    // each waiting for its group commit, would cap the port far below what the log takes.
    let worker = {
        let metrics = metrics.clone();
        let log_limited = log_limited.clone();
        tokio::spawn(async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(UDP_CONCURRENCY));
            let mut tasks = tokio::task::JoinSet::new();
            while let Some(datagram) = rx.recv().await {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                while tasks.try_join_next().is_some() {}
                let (metrics, log_limited, distributor, tenant) = (
                    metrics.clone(),
                    log_limited.clone(),
                    distributor.clone(),
                    tenant.clone(),
                );
                tasks.spawn(async move {
                    let _permit = permit;
                    let size = datagram.len();
                    let decoded = tokio::task::spawn_blocking(move || {
                        let (_, msg) = read_message(&datagram)?;
                        if msg.name != "emitBatch" {
                            return Err(format!("unsupported agent method {:?}", msg.name));
                        }
                        let batch = msg.args.field(1).ok_or("emitBatch without a batch")?;
                        to_otlp(vec![batch_from_thrift(batch)?])
                    })
                    .await;
                    let batches = match decoded {
                        Ok(Ok(b)) => b,
                        Ok(Err(e)) => {
                            count_drop(&metrics, "malformed");
                            distributor.refused_undecoded(tenant.as_str(), false, size);
                            log_limited("dropping a malformed datagram", &e);
                            return;
                        }
                        Err(_) => return,
                    };
                    if let Err(s) = distributor.push_batches(&tenant, batches, size).await {
                        count_drop(&metrics, "refused");
                        log_limited("a datagram's spans were refused", &s.message);
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        })
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, _)) => {
                    metrics.datagrams.get_or_create(&DropLabel { protocol: name.into(), reason: "received".into() }).inc();
                    if tx.try_send(buf[..n].to_vec()).is_err() {
                        count_drop(&metrics, "queue_full");
                        log_limited("datagram queue full; dropping", "queue_full");
                    }
                }
                Err(e) => {
                    log_limited("reading a datagram failed", &e.to_string());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(3), worker).await;
}

/// `jaeger.api_v2.CollectorService/PostSpans` (`grpc`, default `:14250`).
#[derive(Debug)]
pub struct JaegerGrpc {
    distributor: Arc<Distributor>,
    multitenancy: bool,
}

/// The tonic service of the Jaeger gRPC receiver; `max_recv_bytes` bounds a request message.
pub fn grpc_service(
    distributor: Arc<Distributor>,
    multitenancy: bool,
    max_recv_bytes: usize,
) -> CollectorServiceServer<JaegerGrpc> {
    CollectorServiceServer::new(JaegerGrpc {
        distributor,
        multitenancy,
    })
    .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
    .max_decoding_message_size(max_recv_bytes)
}

#[tonic::async_trait]
impl CollectorService for JaegerGrpc {
    async fn post_spans(
        &self,
        request: tonic::Request<PostSpansRequest>,
    ) -> Result<tonic::Response<PostSpansResponse>, tonic::Status> {
        let header = request
            .metadata()
            .get("x-scope-orgid")
            .map(|v| v.as_bytes().to_vec());
        let tenant = super::tenant_of(self.multitenancy, header.as_deref()).map_err(to_tonic)?;
        let req = request.into_inner();
        let size = prost::Message::encoded_len(&req);
        let Some(batch) = req.batch else {
            return Ok(tonic::Response::new(PostSpansResponse {}));
        };
        let batches =
            tokio::task::spawn_blocking(move || batches_from_proto(batch).and_then(to_otlp))
                .await
                .map_err(|e| tonic::Status::internal(format!("decoding task failed: {e}")))?;
        let batches = match batches {
            Ok(b) => b,
            Err(e) => {
                self.distributor
                    .refused_undecoded(tenant.as_str(), false, size);
                return Err(to_tonic(Status::bad_request(format!(
                    "invalid jaeger batch: {e}"
                ))));
            }
        };
        self.distributor
            .push_batches(&tenant, batches, size)
            .await
            .map_err(to_tonic)?;
        Ok(tonic::Response::new(PostSpansResponse {}))
    }
}
