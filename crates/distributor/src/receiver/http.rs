//! OTLP HTTP: `POST /v1/traces` with `application/x-protobuf` or `application/json` bodies,
//! optionally `Content-Encoding: gzip`.
//!
//! The body is read through a limit of `max_request_body_size` bytes and then inflated through
//! the same limit, so neither an oversized body nor a gzip bomb is ever held in memory whole:
//! both get 413. Errors carry a `google.rpc.Status` body in the request's encoding, and 429/503
//! carry `Retry-After`, as the OTLP/HTTP specification asks.

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use bytes::BytesMut;
use http::{HeaderMap, HeaderValue, header};
use http_body_util::BodyExt;
use prost::Message;
use vivace_common::{Status, StatusCode};
use vivace_proto::otlp::collector::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use vivace_proto::tempopb::RpcStatus;

use crate::Distributor;

#[derive(Debug, Clone)]
struct HttpState {
    distributor: Arc<Distributor>,
    multitenancy: bool,
    max_body: usize,
}

/// The router of the OTLP HTTP receiver.
pub fn router(distributor: Arc<Distributor>, multitenancy: bool, max_body: usize) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .with_state(HttpState {
            distributor,
            multitenancy,
            max_body,
        })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

async fn export(State(st): State<HttpState>, req: Request) -> Response {
    let headers = req.headers().clone();
    let enc = match content_type(&headers) {
        Some(e) => e,
        None => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let s = Status::bad_request(format!(
                "unsupported content type '{ct}': use application/x-protobuf or application/json"
            ));
            return error_response(Encoding::Json, s, http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
    };
    let header = headers.get("x-scope-orgid").map(|v| v.as_bytes().to_vec());
    let tenant = match super::tenant_of(st.multitenancy, header.as_deref()) {
        Ok(t) => t,
        Err(s) => return error(enc, s),
    };
    let d = &st.distributor;
    let body = match read_body(&headers, req.into_body(), st.max_body).await {
        Ok(b) => b,
        Err(s) => {
            d.refused_undecoded(tenant.as_str(), s.code == StatusCode::PayloadTooLarge, 0);
            return error(enc, s);
        }
    };
    // Protobuf goes to the distributor as received; JSON is decoded and encoded to it.
    let request = match enc {
        Encoding::Protobuf => body,
        Encoding::Json => match serde_json::from_slice::<ExportTraceServiceRequest>(&body) {
            Ok(m) => Bytes::from(m.encode_to_vec()),
            Err(e) => {
                d.refused_undecoded(tenant.as_str(), false, body.len());
                return error(
                    enc,
                    Status::bad_request(format!("failed to unmarshal request body: {e}")),
                );
            }
        },
    };
    match d.push(&tenant, request).await {
        Ok(outcome) => {
            let partial_success = outcome.partial_success();
            let resp = ExportTraceServiceResponse { partial_success };
            match enc {
                Encoding::Protobuf => (
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    resp.encode_to_vec(),
                )
                    .into_response(),
                Encoding::Json => {
                    let body = match &resp.partial_success {
                        None => serde_json::json!({}),
                        Some(p) => {
                            serde_json::json!({"partialSuccess": {"rejectedSpans": p.rejected_spans.to_string(), "errorMessage": p.error_message}})
                        }
                    };
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        body.to_string(),
                    )
                        .into_response()
                }
            }
        }
        Err(s) => error(enc, s),
    }
}

fn content_type(headers: &HeaderMap) -> Option<Encoding> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mime = ct.split(';').next()?.trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
        "application/json" => Some(Encoding::Json),
        _ => None,
    }
}

/// After the limit is passed, up to this many more bytes are read and discarded so the client
/// can finish sending and read the 413, instead of seeing its connection reset mid-body.
const DRAIN_BYTES: u64 = 32 << 20;

/// Reads at most `max` bytes of body and inflates gzip through the same limit.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    mut body: Body,
    max: usize,
) -> Result<Bytes, Status> {
    let too_large = || {
        Status::new(
            StatusCode::PayloadTooLarge,
            format!("request body exceeds the limit of {max} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64 + DRAIN_BYTES) {
        return Err(too_large());
    }
    let mut buf =
        BytesMut::with_capacity(declared.map_or(64 << 10, |l| l.min(max as u64) as usize));
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Status::bad_request(format!("failed to read request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > max as u64 + DRAIN_BYTES {
            break;
        }
        if total <= max as u64 {
            buf.extend_from_slice(&data);
        }
    }
    if total > max as u64 {
        return Err(too_large());
    }
    let raw = buf.freeze();
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(raw),
        "gzip" | "x-gzip" => tokio::task::spawn_blocking(move || gunzip(&raw, max))
            .await
            .map_err(|e| Status::internal(format!("decompression task failed: {e}")))?,
        other => Err(Status::bad_request(format!(
            "unsupported Content-Encoding '{other}'"
        ))),
    }
}

/// Inflates at most `max + 1` bytes: one past the limit is enough to know the body is too large.
fn gunzip(raw: &[u8], max: usize) -> Result<Bytes, Status> {
    let mut out = Vec::with_capacity((raw.len() * 4).min(max));
    let mut r = flate2::read::MultiGzDecoder::new(raw).take(max as u64 + 1);
    r.read_to_end(&mut out)
        .map_err(|e| Status::bad_request(format!("failed to decompress gzip body: {e}")))?;
    if out.len() > max {
        return Err(Status::new(
            StatusCode::PayloadTooLarge,
            format!("decompressed request body exceeds the limit of {max} bytes"),
        ));
    }
    Ok(Bytes::from(out))
}

fn error(enc: Encoding, s: Status) -> Response {
    let code = http::StatusCode::from_u16(s.code.http())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    error_response(enc, s, code)
}

fn error_response(enc: Encoding, s: Status, code: http::StatusCode) -> Response {
    let body = RpcStatus {
        code: s.code.grpc(),
        message: s.message.clone(),
    };
    let mut resp = match enc {
        Encoding::Protobuf => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            body.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => {
            let j = serde_json::json!({ "code": body.code, "message": body.message });
            ([(header::CONTENT_TYPE, "application/json")], j.to_string()).into_response()
        }
    };
    *resp.status_mut() = code;
    let retry = s
        .retry_after_opt
        .or_else(|| (s.code == StatusCode::Unavailable).then(|| std::time::Duration::from_secs(1)));
    if let Some(v) =
        retry.and_then(|after| HeaderValue::from_str(&after.as_secs().max(1).to_string()).ok())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}
