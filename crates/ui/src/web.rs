//! The web UI: one page and its script and style, compiled into the binary (no build step, no
//! CDN), served on the HTTP port under the same tenancy and authentication as the API. The page
//! reads everything through the query API from the browser. Deep links are real paths:
//! `/search?q=&start=&end=`, `/trace/<id>`, `/graph?q=`; `/` is the overview.

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, header};

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// What the page may load and run: only itself. Data from traces is inserted as text, and the
/// policy makes sure nothing else could run even if it were not.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(body: impl Into<axum::body::Body>, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body.into(),
    )
        .into_response()
}

/// Paths that serve the page (besides `/trace/<id>`), and the assets it loads.
const PAGES: [&str; 3] = ["/", "/search", "/graph"];
const SCRIPT: &str = "/ui/app.js";
const STYLE: &str = "/ui/app.css";

/// Routes of the UI at the root of the HTTP port; `api_prefix` is `http_api_prefix`, where the
/// page finds the API.
pub fn router(api_prefix: &str) -> Router {
    let page = bytes::Bytes::from(INDEX.replace("{{API_PREFIX}}", &html_attr(api_prefix)));
    let serve_page = move || {
        let page = page.clone();
        async move { page_response(page) }
    };
    let mut router = Router::new().route("/trace/{id}", get(serve_page.clone()));
    for path in PAGES {
        router = router.route(path, get(serve_page.clone()));
    }
    router
        .route(
            SCRIPT,
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            STYLE,
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
}

fn page_response(page: bytes::Bytes) -> Response {
    let mut r = asset(page, "text/html; charset=utf-8");
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r
}

/// Whether `path` is the UI's page or one of its assets (no data in them: they are served to
/// anyone, and the page asks for a credential when the API wants one).
pub fn is_asset(path: &str) -> bool {
    PAGES.contains(&path)
        || path == SCRIPT
        || path == STYLE
        || path
            .strip_prefix("/trace/")
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// Escapes a value for an HTML attribute.
fn html_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_its_assets_and_the_api_prefix() {
        assert!(INDEX.contains(SCRIPT) && INDEX.contains(STYLE));
        assert!(INDEX.contains("{{API_PREFIX}}"));
        assert_eq!(html_attr(r#"/a"<b>"#), "/a&quot;&lt;b&gt;");
        assert!(is_asset("/") && is_asset("/trace/abc") && is_asset("/ui/app.js"));
        assert!(!is_asset("/api/search") && !is_asset("/trace/") && !is_asset("/metrics"));
    }
}
