//! Optional authentication (beyond Tempo; off unless credentials are configured): bearer tokens
//! and basic-auth users, each bound to one tenant and to rights (`write`, `read`).
//!
//! When `auth:` lists any credential, every HTTP and gRPC endpoint on every TCP port requires one:
//! ingest ports (OTLP, Zipkin, Jaeger) the `write` right, the query port (HTTP API, its h2c gRPC,
//! the gRPC query port) the `read` right. The tenant is the credential's: a request may repeat it
//! in `X-Scope-OrgID` (or `x-scope-orgid` metadata) but never name another one, and the header is
//! set from the credential before the request reaches the receivers and the querier, so tenancy
//! works as with `multitenancy_enabled: true`. `open_paths` (default `/ready`, `/metrics`) stay
//! open, and so do the web UI's page and assets on the query port (they hold no data; the page
//! asks for a credential and sends it with its API calls). A missing or unknown credential is
//! 401 / `UNAUTHENTICATED`; a credential without the right, or naming another tenant, is 403 /
//! `PERMISSION_DENIED`. UDP receivers cannot carry
//! credentials, so they cannot be configured together with `auth:`.
//!
//! Secrets come inline, from a file (`token_file`) or from an environment variable
//! (`token_env`); passwords are stored as SHA-256 hex (`password_sha256`). Only hashes are kept
//! in memory; no secret is ever logged.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, header};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use vivace_common::{StatusCode, TenantId};

/// `auth:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Paths answered without a credential on every HTTP port.
    pub open_paths: Vec<String>,
    pub tokens: Vec<TokenConfig>,
    pub users: Vec<UserConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            open_paths: vec!["/ready".into(), "/metrics".into()],
            tokens: Vec::new(),
            users: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    pub tenant: String,
    /// `write`, `read` (default both).
    pub rights: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserConfig {
    pub username: String,
    /// Hex SHA-256 of the password.
    pub password_sha256: String,
    pub tenant: String,
    pub rights: Vec<String>,
}

/// What a credential may do.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    tenant: TenantId,
    read: bool,
    write: bool,
}

/// The right an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    Read,
    Write,
}

/// Checks credentials against the configured ones.
#[derive(Debug)]
pub struct Authenticator {
    /// SHA-256 of each token → its grant.
    tokens: HashMap<[u8; 32], Grant>,
    /// username → (SHA-256 of the password, grant).
    users: HashMap<String, ([u8; 32], Grant)>,
    open_paths: Vec<String>,
}

fn sha(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

fn grant(tenant: &str, rights: &[String], key: &str) -> Result<Grant, String> {
    let tenant = TenantId::new(tenant).map_err(|e| format!("{key}.tenant: {e}"))?;
    let mut g = Grant {
        tenant,
        read: rights.is_empty(),
        write: rights.is_empty(),
    };
    for r in rights {
        match r.as_str() {
            "read" => g.read = true,
            "write" => g.write = true,
            other => {
                return Err(format!(
                    "{key}.rights: unknown right {other:?} (read, write)"
                ));
            }
        }
    }
    Ok(g)
}

impl Authenticator {
    /// `None` when no credential is configured (auth off).
    pub fn new(cfg: &AuthConfig) -> Result<Option<Arc<Authenticator>>, String> {
        if cfg.tokens.is_empty() && cfg.users.is_empty() {
            return Ok(None);
        }
        let mut tokens = HashMap::new();
        for (i, t) in cfg.tokens.iter().enumerate() {
            let key = format!("auth.tokens[{i}]");
            let secret = match (&t.token, &t.token_file, &t.token_env) {
                (Some(s), None, None) => s.clone(),
                (None, Some(f), None) => std::fs::read_to_string(f)
                    .map_err(|e| format!("{key}.token_file: reading {}: {e}", f.display()))?
                    .trim()
                    .to_string(),
                (None, None, Some(v)) => std::env::var(v)
                    .map_err(|_| format!("{key}.token_env: environment variable {v} is not set"))?,
                _ => {
                    return Err(format!(
                        "{key}: set exactly one of token, token_file, token_env"
                    ));
                }
            };
            if secret.len() < 16 {
                return Err(format!("{key}: a token must have at least 16 characters"));
            }
            tokens.insert(sha(secret.as_bytes()), grant(&t.tenant, &t.rights, &key)?);
        }
        let mut users = HashMap::new();
        for (i, u) in cfg.users.iter().enumerate() {
            let key = format!("auth.users[{i}]");
            let mut h = [0u8; 32];
            hex::decode_to_slice(u.password_sha256.trim(), &mut h)
                .map_err(|e| format!("{key}.password_sha256: not 64 hex digits: {e}"))?;
            if u.username.is_empty() || u.username.contains(':') {
                return Err(format!("{key}.username: empty or contains ':'"));
            }
            users.insert(u.username.clone(), (h, grant(&u.tenant, &u.rights, &key)?));
        }
        Ok(Some(Arc::new(Authenticator {
            tokens,
            users,
            open_paths: cfg.open_paths.clone(),
        })))
    }

    fn find(&self, authorization: Option<&HeaderValue>) -> Option<&Grant> {
        let value = authorization?.to_str().ok()?.trim();
        let (scheme, rest) = value.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.tokens.get(&sha(rest.trim().as_bytes()));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            use base64::Engine;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?;
            let text = String::from_utf8(raw).ok()?;
            let (user, pass) = text.split_once(':')?;
            let (h, g) = self.users.get(user)?;
            return (sha(pass.as_bytes()) == *h).then_some(g);
        }
        None
    }

    /// Checks a request's credential; on success sets its `x-scope-orgid` to the credential's
    /// tenant. The error is the status and message to answer with.
    fn check<B>(&self, req: &mut Request<B>, need: Right) -> Result<(), (StatusCode, String)> {
        let path = req.uri().path();
        // The web UI's page and assets hold no data: they load without a credential, and the
        // page then asks for one to call the API.
        let ui = need == Right::Read
            && req.method() == http::Method::GET
            && vivace_ui::web::is_asset(path);
        if ui || self.open_paths.iter().any(|p| p == path) {
            return Ok(());
        }
        let Some(g) = self.find(req.headers().get(header::AUTHORIZATION)) else {
            let why = if req.headers().contains_key(header::AUTHORIZATION) {
                "invalid credentials"
            } else {
                "authentication required: send Authorization: Bearer <token> or Basic"
            };
            return Err((StatusCode::Unauthorized, why.to_string()));
        };
        let allowed = match need {
            Right::Read => g.read,
            Right::Write => g.write,
        };
        if !allowed {
            let right = if need == Right::Read { "read" } else { "write" };
            return Err((
                StatusCode::Forbidden,
                format!("this credential may not {right} here"),
            ));
        }
        if let Some(asked) = req.headers().get("x-scope-orgid")
            && asked.as_bytes() != g.tenant.as_str().as_bytes()
        {
            return Err((
                StatusCode::Forbidden,
                "X-Scope-OrgID names a tenant this credential does not belong to".to_string(),
            ));
        }
        if let Ok(v) = HeaderValue::from_str(g.tenant.as_str()) {
            req.headers_mut().insert("x-scope-orgid", v);
        }
        Ok(())
    }
}

/// A tower layer checking every request of a port for `need`.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    pub auth: Arc<Authenticator>,
    pub need: Right,
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
            need: self.need,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Authenticator>,
    need: Right,
}

/// A response body that can carry a refusal's text.
pub trait TextBody {
    fn text(s: String) -> Self;
}

impl TextBody for axum::body::Body {
    fn text(s: String) -> Self {
        axum::body::Body::from(s)
    }
}

impl TextBody for tonic::body::Body {
    /// gRPC refusals carry their message in `grpc-message`; the body stays empty.
    fn text(_: String) -> Self {
        tonic::body::Body::empty()
    }
}

impl<S, B, RB> tower::Service<Request<B>> for AuthService<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    RB: TextBody + Send + 'static,
    B: Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        match self.auth.check(&mut req, self.need) {
            Ok(()) => Box::pin(self.inner.call(req)),
            Err((code, message)) => {
                let grpc = req
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
                Box::pin(async move { Ok(refusal(grpc, code, &message)) })
            }
        }
    }
}

/// A refusal in the request's protocol: a gRPC trailers-only answer, or an HTTP status with a
/// plain-text message (and `WWW-Authenticate` on 401).
fn refusal<RB: TextBody>(grpc: bool, code: StatusCode, message: &str) -> Response<RB> {
    let mut resp = if grpc {
        let mut r = Response::new(RB::text(String::new()));
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert("grpc-status", HeaderValue::from(code.grpc()));
        if let Ok(v) = HeaderValue::from_str(&message.replace(' ', "%20")) {
            h.insert("grpc-message", v);
        }
        r
    } else {
        let mut r = Response::new(RB::text(format!("{message}\n")));
        *r.status_mut() =
            http::StatusCode::from_u16(code.http()).unwrap_or(http::StatusCode::UNAUTHORIZED);
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    if !grpc && code == StatusCode::Unauthorized {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer, Basic realm=\"vivace\""),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Arc<Authenticator> {
        let cfg: AuthConfig = serde_yaml_ng::from_str(&format!(
            "tokens:\n  - token: write-token-0123456789\n    tenant: a\n    rights: [write]\n  - token: read-token-0123456789\n    tenant: a\n    rights: [read]\n\
             users:\n  - username: g\n    password_sha256: {}\n    tenant: b\n",
            hex::encode(sha(b"pw"))
        ))
        .unwrap();
        Authenticator::new(&cfg).unwrap().unwrap()
    }

    fn req(auth: Option<&str>, org: Option<&str>, path: &str) -> Request<()> {
        let mut b = Request::builder().uri(path);
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        if let Some(o) = org {
            b = b.header("x-scope-orgid", o);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn credentials_rights_and_tenants() {
        let a = auth();
        let code = |r: &mut Request<()>, need| a.check(r, need).err().map(|e| e.0);
        assert_eq!(
            code(&mut req(None, None, "/ready"), Right::Read),
            None,
            "open path"
        );
        assert_eq!(
            code(&mut req(None, None, "/v1/traces"), Right::Write),
            Some(StatusCode::Unauthorized)
        );
        assert_eq!(
            code(
                &mut req(Some("Bearer nope-nope-nope-nope"), None, "/x"),
                Right::Write
            ),
            Some(StatusCode::Unauthorized)
        );
        let mut ok = req(Some("Bearer write-token-0123456789"), None, "/v1/traces");
        assert_eq!(code(&mut ok, Right::Write), None);
        assert_eq!(
            ok.headers()["x-scope-orgid"],
            "a",
            "tenant from the credential"
        );
        assert_eq!(
            code(
                &mut req(Some("Bearer write-token-0123456789"), None, "/api/search"),
                Right::Read
            ),
            Some(StatusCode::Forbidden)
        );
        assert_eq!(
            code(
                &mut req(
                    Some("Bearer read-token-0123456789"),
                    Some("b"),
                    "/api/search"
                ),
                Right::Read
            ),
            Some(StatusCode::Forbidden),
            "another tenant"
        );
        use base64::Engine;
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("g:pw")
        );
        let mut r = req(Some(&basic), Some("b"), "/api/search");
        assert_eq!(code(&mut r, Right::Read), None);
        let wrong = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("g:nope")
        );
        assert_eq!(
            code(&mut req(Some(&wrong), None, "/api/search"), Right::Read),
            Some(StatusCode::Unauthorized)
        );
    }

    #[test]
    fn bad_config_is_refused_with_the_key() {
        for (yaml, want) in [
            ("tokens:\n  - token: short\n    tenant: a\n", "at least 16"),
            ("tokens:\n  - tenant: a\n", "exactly one"),
            (
                "tokens:\n  - token: 0123456789abcdefg\n    tenant: a\n    rights: [admin]\n",
                "rights",
            ),
            (
                "users:\n  - username: u\n    password_sha256: zz\n    tenant: a\n",
                "password_sha256",
            ),
            (
                "tokens:\n  - token_env: VIVACE_NO_SUCH_VAR_X\n    tenant: a\n",
                "VIVACE_NO_SUCH_VAR_X",
            ),
        ] {
            let cfg: AuthConfig = serde_yaml_ng::from_str(yaml).unwrap();
            let e = Authenticator::new(&cfg).unwrap_err();
            assert!(e.contains(want) && e.starts_with("auth."), "{e}");
        }
    }
}
