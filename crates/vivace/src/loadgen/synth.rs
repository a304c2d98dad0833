//! Synthetic traces, their pre-encoded request templates, and the senders.

use std::collections::HashMap;

use anyhow::Context;
use bytes::{Buf, BufMut, Bytes};
use http_body_util::{BodyExt, Full};
use prost::Message;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use vivace_proto::otlp::collector::ExportTraceServiceRequest;
use vivace_proto::otlp::common::{AnyValue, InstrumentationScope, KeyValue, any_value};
use vivace_proto::otlp::resource::Resource;
use vivace_proto::otlp::trace::{
    ResourceSpans, ScopeSpans, Span, Status, span::SpanKind, status::StatusCode,
};

/// Every synthetic trace ID starts with this, so template building can find each occurrence
/// in the encoded request; the first 8 bytes are then rewritten on every send.
const MAGIC: [u8; 4] = [0xc0, 0xff, 0xee, 0x42];

/// One pre-encoded request.
#[derive(Debug)]
pub(crate) struct Template {
    pub(crate) encoded: Bytes,
    pub(crate) spans: usize,
    id_offsets: Vec<usize>,
    /// IDs are written as hex text (JSON): fresh IDs rewrite 16 hex digits.
    hex: bool,
}

impl Template {
    /// A template of raw bytes whose trace IDs start with the marker bytes.
    pub(crate) fn new(encoded: Bytes, spans: usize) -> Template {
        let id_offsets = encoded
            .windows(MAGIC.len())
            .enumerate()
            .filter(|(_, w)| *w == MAGIC)
            .map(|(i, _)| i)
            .collect();
        Template {
            encoded,
            spans,
            id_offsets,
            hex: false,
        }
    }

    /// A template of text whose trace IDs are hex and start with the marker's hex.
    pub(crate) fn new_hex(encoded: Bytes, spans: usize) -> Template {
        let marker = hex::encode(MAGIC);
        let id_offsets = encoded
            .windows(marker.len())
            .enumerate()
            .filter(|(_, w)| *w == marker.as_bytes())
            .map(|(i, _)| i)
            .collect();
        Template {
            encoded,
            spans,
            id_offsets,
            hex: true,
        }
    }

    /// A copy whose every trace ID has its first 8 bytes replaced, derived from `k`, so each
    /// send carries traces the server has not seen.
    pub(crate) fn with_fresh_ids(&self, k: u64) -> Bytes {
        let mut v = self.encoded.to_vec();
        let salt = (k.wrapping_add(1))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .to_le_bytes();
        if self.hex {
            for &off in &self.id_offsets {
                let mut b = [0u8; 8];
                if hex::decode_to_slice(&v[off..off + 16], &mut b).is_ok() {
                    for (x, s) in b.iter_mut().zip(salt) {
                        *x ^= s;
                    }
                    v[off..off + 16].copy_from_slice(hex::encode(b).as_bytes());
                }
            }
            return Bytes::from(v);
        }
        for &off in &self.id_offsets {
            for (i, b) in salt.iter().enumerate() {
                v[off + i] ^= b;
            }
        }
        Bytes::from(v)
    }
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}

fn i(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}

const SERVICES: [&str; 6] = [
    "frontend",
    "checkout",
    "cart",
    "payment",
    "inventory",
    "shipping",
];
const ROUTES: [&str; 6] = [
    "/api/checkout",
    "/api/cart/{id}",
    "/api/products",
    "/api/orders/{id}",
    "/healthz",
    "/api/login",
];
const TABLES: [&str; 4] = ["orders", "carts", "products", "users"];

fn resource(service: &str, rng: &mut SmallRng) -> Resource {
    Resource {
        attributes: vec![
            s("service.name", service),
            s("service.version", "2.3.1"),
            s("service.namespace", "shop"),
            s("deployment.environment", "production"),
            s("host.name", format!("node-{}", rng.random_range(1..20))),
            s(
                "k8s.pod.name",
                format!("{service}-7d9f8c-{:05x}", rng.random_range(0..0xfffff)),
            ),
            s("k8s.namespace.name", "shop"),
            s("telemetry.sdk.language", "go"),
            s("telemetry.sdk.name", "opentelemetry"),
            s("telemetry.sdk.version", "1.28.0"),
        ],
        ..Default::default()
    }
}

struct Shape {
    service: usize,
    span: Span,
}

/// One trace of 5–50 spans across services: an HTTP entry span, RPC client/server pairs, DB and
/// cache calls.
fn trace(rng: &mut SmallRng, error: bool, now_ns: u64) -> Vec<Shape> {
    let mut trace_id = [0u8; 16];
    rng.fill(&mut trace_id[..]);
    trace_id[..4].copy_from_slice(&MAGIC);
    let n = rng.random_range(5..=50);
    let start = now_ns - rng.random_range(0..60_000_000_000);
    let total = rng.random_range(2_000_000..800_000_000u64);
    let mut out: Vec<Shape> = Vec::with_capacity(n);
    let new_id = |rng: &mut SmallRng| {
        let mut id = [0u8; 8];
        rng.fill(&mut id[..]);
        id[0] |= 1;
        id.to_vec()
    };
    let route = ROUTES[rng.random_range(0..ROUTES.len())];
    out.push(Shape {
        service: 0,
        span: Span {
            trace_id: trace_id.to_vec(),
            span_id: new_id(rng),
            name: format!("GET {route}"),
            kind: SpanKind::Server as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + total,
            attributes: vec![
                s("http.request.method", "GET"),
                s("http.route", route),
                s(
                    "url.path",
                    route.replace("{id}", &rng.random_range(1000..9999).to_string()),
                ),
                s("url.scheme", "https"),
                i("http.response.status_code", if error { 500 } else { 200 }),
                s("server.address", "shop.example.com"),
                s(
                    "user_agent.original",
                    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
                ),
                s(
                    "client.address",
                    format!(
                        "10.0.{}.{}",
                        rng.random_range(0..255),
                        rng.random_range(1..255)
                    ),
                ),
            ],
            status: Some(Status {
                code: if error { StatusCode::Error as i32 } else { 0 },
                message: String::new(),
            }),
            flags: 0x100,
            ..Default::default()
        },
    });
    let error_at = if error {
        rng.random_range(1..n)
    } else {
        usize::MAX
    };
    while out.len() < n {
        let parent = rng.random_range(0..out.len());
        let (pservice, pspan_id, pstart, pend) = {
            let p = &out[parent];
            (
                p.service,
                p.span.span_id.clone(),
                p.span.start_time_unix_nano,
                p.span.end_time_unix_nano,
            )
        };
        let dur = (pend - pstart).max(2) / rng.random_range(2..6);
        let st = pstart + rng.random_range(0..(pend - pstart - dur).max(1));
        let failed = out.len() == error_at;
        let status = Some(Status {
            code: if failed { StatusCode::Error as i32 } else { 0 },
            message: if failed {
                "context deadline exceeded".into()
            } else {
                String::new()
            },
        });
        match rng.random_range(0..3) {
            0 if out.len() + 1 < n => {
                // RPC: a client span here and a server span in another service.
                let target = rng.random_range(1..SERVICES.len());
                let method =
                    ["GetCart", "PlaceOrder", "Charge", "Reserve", "Quote"][rng.random_range(0..5)];
                let rpc = |kind: SpanKind| {
                    vec![
                        s("rpc.system", "grpc"),
                        s(
                            "rpc.service",
                            format!("shop.{}.v1.Service", SERVICES[target]),
                        ),
                        s("rpc.method", method),
                        i("rpc.grpc.status_code", if failed { 4 } else { 0 }),
                        s(
                            if kind == SpanKind::Client {
                                "server.address"
                            } else {
                                "network.peer.address"
                            },
                            format!("{}.shop.svc", SERVICES[target]),
                        ),
                    ]
                };
                let client_id = new_id(rng);
                out.push(Shape {
                    service: pservice,
                    span: Span {
                        trace_id: trace_id.to_vec(),
                        span_id: client_id.clone(),
                        parent_span_id: pspan_id,
                        name: format!("shop.{}.v1.Service/{method}", SERVICES[target]),
                        kind: SpanKind::Client as i32,
                        start_time_unix_nano: st,
                        end_time_unix_nano: st + dur,
                        attributes: rpc(SpanKind::Client),
                        status: status.clone(),
                        ..Default::default()
                    },
                });
                out.push(Shape {
                    service: target,
                    span: Span {
                        trace_id: trace_id.to_vec(),
                        span_id: new_id(rng),
                        parent_span_id: client_id,
                        name: format!("shop.{}.v1.Service/{method}", SERVICES[target]),
                        kind: SpanKind::Server as i32,
                        start_time_unix_nano: st + dur / 20,
                        end_time_unix_nano: st + dur - dur / 20,
                        attributes: rpc(SpanKind::Server),
                        status,
                        ..Default::default()
                    },
                });
            }
            1 => {
                let table = TABLES[rng.random_range(0..TABLES.len())];
                out.push(Shape {
                    service: pservice,
                    span: Span {
                        trace_id: trace_id.to_vec(),
                        span_id: new_id(rng),
                        parent_span_id: pspan_id,
                        name: format!("SELECT shop.{table}"),
                        kind: SpanKind::Client as i32,
                        start_time_unix_nano: st,
                        end_time_unix_nano: st + dur,
                        attributes: vec![
                            s("db.system", "postgresql"),
                            s("db.namespace", "shop"),
                            s("db.operation.name", "SELECT"),
                            s(
                                "db.query.text",
                                format!("SELECT id, status, total FROM {table} WHERE id = $1"),
                            ),
                            s("server.address", "pg-primary.shop.svc"),
                            i("server.port", 5432),
                        ],
                        status,
                        ..Default::default()
                    },
                });
            }
            _ => {
                out.push(Shape {
                    service: pservice,
                    span: Span {
                        trace_id: trace_id.to_vec(),
                        span_id: new_id(rng),
                        parent_span_id: pspan_id,
                        name: "GET".into(),
                        kind: SpanKind::Client as i32,
                        start_time_unix_nano: st,
                        end_time_unix_nano: st + dur,
                        attributes: vec![
                            s("db.system", "redis"),
                            s("db.operation.name", "GET"),
                            s("server.address", "redis.shop.svc"),
                            i("server.port", 6379),
                        ],
                        status,
                        ..Default::default()
                    },
                });
            }
        }
    }
    out
}

/// `count` request templates of about `batch_spans` spans each.
pub(crate) fn templates(
    seed: u64,
    count: usize,
    batch_spans: usize,
    error_ratio: f64,
) -> Vec<Template> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let resources: Vec<Resource> = SERVICES.iter().map(|svc| resource(svc, &mut rng)).collect();
    let scope = InstrumentationScope {
        name: "go.opentelemetry.io/contrib/instrumentation".into(),
        version: "0.53.0".into(),
        ..Default::default()
    };
    (0..count.max(1))
        .map(|_| {
            let mut by_service: HashMap<usize, Vec<Span>> = HashMap::new();
            let mut spans = 0;
            while spans < batch_spans.max(1) {
                let error = rng.random_bool(error_ratio.clamp(0.0, 1.0));
                for shape in trace(&mut rng, error, now_ns) {
                    by_service
                        .entry(shape.service)
                        .or_default()
                        .push(shape.span);
                    spans += 1;
                }
            }
            let mut services: Vec<_> = by_service.into_iter().collect();
            services.sort_by_key(|(k, _)| *k);
            let req = ExportTraceServiceRequest {
                resource_spans: services
                    .into_iter()
                    .map(|(svc, spans)| ResourceSpans {
                        resource: Some(resources[svc].clone()),
                        scope_spans: vec![ScopeSpans {
                            scope: Some(scope.clone()),
                            spans,
                            schema_url: String::new(),
                        }],
                        schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                    })
                    .collect(),
            };
            Template::new(Bytes::from(req.encode_to_vec()), spans)
        })
        .collect()
}

/// Sends pre-encoded requests over gRPC or HTTP. One per worker, cloned once: the size
/// difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub(crate) enum Sender {
    Grpc {
        grpc: tonic::client::Grpc<tonic::transport::Channel>,
        tenant: Option<String>,
        path: &'static str,
        /// A client stream of one message per call (OpenCensus), else unary.
        streaming: bool,
    },
    Http {
        client: hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            Full<Bytes>,
        >,
        uri: http::Uri,
        tenant: Option<String>,
        content_type: &'static str,
    },
    /// Jaeger agent datagrams, encoded from the OTLP template at each send; no acknowledgement.
    Udp {
        socket: std::sync::Arc<std::net::UdpSocket>,
        addr: std::net::SocketAddr,
    },
}

impl Sender {
    pub(crate) async fn new(
        wire: super::wire::Wire,
        endpoint: Option<String>,
        tenant: Option<String>,
    ) -> anyhow::Result<Sender> {
        use super::wire::Wire;
        if wire == Wire::JaegerUdp {
            let ep = endpoint.unwrap_or_else(|| "127.0.0.1:6831".into());
            let addr: std::net::SocketAddr = ep.parse().with_context(|| format!("address {ep}"))?;
            let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
            return Ok(Sender::Udp {
                socket: std::sync::Arc::new(socket),
                addr,
            });
        }
        let (default, grpc_path, http_path, content_type, streaming) = match wire {
            Wire::OtlpGrpc => (
                "127.0.0.1:4317",
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                "",
                "",
                false,
            ),
            Wire::JaegerGrpc => (
                "127.0.0.1:14250",
                "/jaeger.api_v2.CollectorService/PostSpans",
                "",
                "",
                false,
            ),
            Wire::OpenCensus => (
                "127.0.0.1:55678",
                "/opencensus.proto.agent.trace.v1.TraceService/Export",
                "",
                "",
                true,
            ),
            Wire::OtlpHttp => (
                "127.0.0.1:4318",
                "",
                "/v1/traces",
                "application/x-protobuf",
                false,
            ),
            // Answered above; an empty address here would fail to parse.
            Wire::JaegerUdp => ("", "", "", "", false),
            Wire::ZipkinJson => (
                "127.0.0.1:9411",
                "",
                "/api/v2/spans",
                "application/json",
                false,
            ),
            Wire::JaegerThrift => (
                "127.0.0.1:14268",
                "",
                "/api/traces",
                "application/x-thrift",
                false,
            ),
        };
        let ep = endpoint.unwrap_or_else(|| default.into());
        let ep = if ep.contains("://") {
            ep
        } else {
            format!("http://{ep}")
        };
        if !grpc_path.is_empty() {
            let channel = tonic::transport::Endpoint::from_shared(ep.clone())?
                .connect()
                .await
                .with_context(|| format!("connecting to {ep}"))?;
            Ok(Sender::Grpc {
                grpc: tonic::client::Grpc::new(channel),
                tenant,
                path: grpc_path,
                streaming,
            })
        } else {
            let ep = if ep.ends_with(http_path) {
                ep
            } else {
                format!("{}{http_path}", ep.trim_end_matches('/'))
            };
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http();
            Ok(Sender::Http {
                client,
                uri: ep.parse()?,
                tenant,
                content_type,
            })
        }
    }

    pub(crate) async fn send(&self, body: Bytes) -> anyhow::Result<()> {
        match self {
            Sender::Udp { socket, addr } => {
                let req = ExportTraceServiceRequest::decode(body.as_ref())?;
                for d in super::wire::jaeger_udp_datagrams(&req) {
                    socket.send_to(&d, addr)?;
                }
                Ok(())
            }
            Sender::Grpc {
                grpc,
                tenant,
                path,
                streaming,
            } => {
                let mut grpc = grpc.clone();
                grpc.ready().await?;
                let path = http::uri::PathAndQuery::from_static(path);
                if *streaming {
                    let mut req = tonic::Request::new(futures::stream::iter(vec![body]));
                    if let Some(t) = tenant {
                        req.metadata_mut().insert("x-scope-orgid", t.parse()?);
                    }
                    let mut responses = grpc
                        .streaming::<_, Bytes, (), _>(req, path, RawCodec)
                        .await?
                        .into_inner();
                    // The answer to the one request: it is durable.
                    responses.message().await?;
                } else {
                    let mut req = tonic::Request::new(body);
                    if let Some(t) = tenant {
                        req.metadata_mut().insert("x-scope-orgid", t.parse()?);
                    }
                    grpc.unary::<Bytes, (), _>(req, path, RawCodec).await?;
                }
                Ok(())
            }
            Sender::Http {
                client,
                uri,
                tenant,
                content_type,
            } => {
                let mut req =
                    http::Request::post(uri.clone()).header("content-type", *content_type);
                if let Some(t) = tenant {
                    req = req.header("x-scope-orgid", t);
                }
                let resp = client.request(req.body(Full::new(body))?).await?;
                let status = resp.status();
                let body = resp.into_body().collect().await?.to_bytes();
                if !status.is_success() {
                    anyhow::bail!("HTTP {status}: {}", String::from_utf8_lossy(&body));
                }
                Ok(())
            }
        }
    }
}

/// A tonic codec that sends already-encoded bytes and ignores the response message.
#[derive(Debug, Clone, Default)]
struct RawCodec;

#[derive(Debug)]
struct RawEncoder;

#[derive(Debug)]
struct RawDecoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = ();
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<()>, tonic::Status> {
        let n = src.remaining();
        src.advance(n);
        Ok(Some(()))
    }
}
