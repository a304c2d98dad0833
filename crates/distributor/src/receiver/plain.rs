//! What the Zipkin and Jaeger HTTP receivers share: plain-text answers (their clients log the
//! body), and the path from translated spans to `202 Accepted`.

use axum::response::{IntoResponse, Response};
use http::header;
use vivace_common::{Status, TenantId};
use vivace_proto::otlp::trace::ResourceSpans;

use crate::Distributor;

pub(crate) fn text(code: http::StatusCode, msg: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg,
    )
        .into_response()
}

/// A refusal with its status and, for 429/503, `Retry-After`.
pub(crate) fn error(s: Status) -> Response {
    let code = http::StatusCode::from_u16(s.code.http())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = text(code, s.message.clone());
    if let Some(v) = s
        .retry_after_opt
        .and_then(|a| http::HeaderValue::from_str(&a.as_secs().max(1).to_string()).ok())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Pushes what a decoding task translated (`size`: the body's bytes) and answers: 202, with the
/// refusal message as the body when some spans were refused (neither protocol has a partial
/// success); 400 naming `what` when the body did not translate.
pub(crate) async fn push_translated(
    d: &Distributor,
    tenant: &TenantId,
    size: usize,
    decoded: Result<Result<Vec<ResourceSpans>, String>, tokio::task::JoinError>,
    what: &str,
) -> Response {
    let batches = match decoded {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            d.refused_undecoded(tenant.as_str(), false, size);
            return error(Status::bad_request(format!("{what}: {e}")));
        }
        Err(e) => return error(Status::internal(format!("decoding task failed: {e}"))),
    };
    match d.push_batches(tenant, batches, size).await {
        Ok(outcome) if outcome.rejected_spans > 0 => {
            text(http::StatusCode::ACCEPTED, outcome.message)
        }
        Ok(_) => http::StatusCode::ACCEPTED.into_response(),
        Err(s) => error(s),
    }
}
