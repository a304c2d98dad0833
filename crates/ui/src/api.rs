//! The query API, called in-process: the MCP tools send the same HTTP requests a client would,
//! straight into the query router (no socket), with the caller's tenant and credentials.

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Headers passed from the caller's request to the query API: who is asking.
const FORWARDED: [&str; 2] = ["x-scope-orgid", "authorization"];

/// An answer of the query API that is not a success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The API answered with an error status; `message` is its body.
    #[error("{status}: {message}")]
    Status { status: StatusCode, message: String },
    #[error("the answer is not valid: {0}")]
    Decode(String),
}

/// The query API as a client sees it.
#[derive(Debug, Clone)]
pub struct QueryClient {
    router: Router,
}

impl QueryClient {
    /// `router` serves the query API at its root (`/api/...`, no `http_api_prefix`).
    pub fn new(router: Router) -> QueryClient {
        QueryClient { router }
    }

    /// `GET path?params` with the caller's identity; the body when the status is 2xx.
    pub async fn get(
        &self,
        path: &str,
        params: &[(&str, String)],
        caller: &HeaderMap,
        accept: &str,
    ) -> Result<bytes::Bytes, ApiError> {
        let mut uri = path.to_string();
        for (i, (k, v)) in params.iter().enumerate() {
            uri.push(if i == 0 { '?' } else { '&' });
            uri.push_str(k);
            uri.push('=');
            uri.push_str(&encode(v));
        }
        let mut req = Request::get(&uri)
            .header(header::ACCEPT, accept)
            .body(Body::empty())
            .map_err(|e| ApiError::Decode(e.to_string()))?;
        for name in FORWARDED {
            if let Some(v) = caller.get(name) {
                req.headers_mut().insert(name, v.clone());
            }
        }
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .unwrap_or_else(|never| match never {});
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ApiError::Decode(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(ApiError::Status {
                status,
                message: String::from_utf8_lossy(&body).trim().to_string(),
            });
        }
        Ok(body)
    }

    /// `GET` answered with JSON.
    pub async fn get_json(
        &self,
        path: &str,
        params: &[(&str, String)],
        caller: &HeaderMap,
    ) -> Result<serde_json::Value, ApiError> {
        let body = self.get(path, params, caller, "application/json").await?;
        serde_json::from_slice(&body).map_err(|e| ApiError::Decode(e.to_string()))
    }
}

/// Percent-encoding of a query parameter value (RFC 3986 unreserved characters kept).
pub fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_traceql() {
        assert_eq!(
            encode(r#"{ .a = "b c" } | rate()"#),
            "%7B%20.a%20%3D%20%22b%20c%22%20%7D%20%7C%20rate%28%29"
        );
        assert_eq!(encode("é"), "%C3%A9");
    }
}
