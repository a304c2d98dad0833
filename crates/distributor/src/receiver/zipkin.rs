//! Zipkin's collector API on `distributor.receivers.zipkin.endpoint` (default `:9411`):
//! `POST /api/v2/spans` with a JSON array of spans (`application/json`, the default) or a
//! protobuf `ListOfSpans` (`application/x-protobuf`), and `POST /api/v1/spans` with v1 JSON;
//! and v1 Thrift (`application/x-thrift`, a binary-protocol `list<Span>`); gzip allowed,
//! answered `202 Accepted` as Zipkin does. Spans are translated into OTLP by [`crate::translate::zipkin`] and pushed through
//! the distributor like any OTLP export; refusals answer with the distributor's status and a
//! plain-text message (Zipkin clients log the body).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;
use http::header;
use prost::Message;
use vivace_common::StatusCode;

use super::plain::{error, text};
use crate::Distributor;
use crate::translate::thrift::{Protocol, read_list};
use crate::translate::zipkin::{
    JsonSpan, V1Span, from_json, from_proto, proto, v1_from_thrift, v1_to_v2,
};

#[derive(Debug, Clone)]
struct ZipkinState {
    distributor: Arc<Distributor>,
    multitenancy: bool,
    max_body: usize,
    parse_string_tags: bool,
}

/// The router of the Zipkin receiver.
pub fn router(
    distributor: Arc<Distributor>,
    multitenancy: bool,
    max_body: usize,
    parse_string_tags: bool,
) -> Router {
    Router::new()
        .route("/api/v2/spans", post(spans_v2))
        .route("/api/v1/spans", post(spans_v1))
        .with_state(ZipkinState {
            distributor,
            multitenancy,
            max_body,
            parse_string_tags,
        })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    V2Json,
    V2Proto,
    V1Json,
    V1Thrift,
}

async fn spans_v1(State(st): State<ZipkinState>, req: Request) -> Response {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    let format = if ct.starts_with("application/json") {
        Format::V1Json
    } else if ct.starts_with("application/x-thrift")
        || ct.starts_with("application/vnd.apache.thrift.binary")
    {
        Format::V1Thrift
    } else {
        return text(
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported content type '{ct}' for /api/v1/spans: use application/json or application/x-thrift"
            ),
        );
    };
    spans(st, req, format).await
}

async fn spans_v2(State(st): State<ZipkinState>, req: Request) -> Response {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let format = match ct.as_str() {
        "application/x-protobuf" | "application/protobuf" => Format::V2Proto,
        "application/json" | "" => Format::V2Json,
        other => {
            return text(
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported content type '{other}': use application/json or application/x-protobuf"
                ),
            );
        }
    };
    spans(st, req, format).await
}

async fn spans(st: ZipkinState, req: Request, format: Format) -> Response {
    let headers = req.headers().clone();
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
    let parse = st.parse_string_tags;
    let size = body.len();
    let decoded = tokio::task::spawn_blocking(move || match format {
        Format::V2Proto => {
            let list = proto::ListOfSpans::decode(body.as_ref()).map_err(|e| e.to_string())?;
            from_proto(list, parse)
        }
        Format::V2Json => {
            let spans: Vec<JsonSpan> = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            from_json(spans, parse)
        }
        Format::V1Json => {
            let spans: Vec<V1Span> = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            from_json(v1_to_v2(spans), parse)
        }
        Format::V1Thrift => {
            let list = read_list(&body, Protocol::Binary)?;
            from_json(v1_to_v2(v1_from_thrift(&list)?), parse)
        }
    })
    .await;
    super::plain::push_translated(
        d,
        &tenant,
        size,
        decoded,
        "failed to unmarshal zipkin spans",
    )
    .await
}
