//! The documents the MCP server offers (tools `docs-traceql`, `docs-config` and the `docs://`
//! resources): `docs/` of this repository, and the README's configuration section, compiled in.

const BASIC: &str = include_str!("../../../docs/traceql/basic.md");
const AGGREGATES: &str = include_str!("../../../docs/traceql/aggregates.md");
const STRUCTURAL: &str = include_str!("../../../docs/traceql/structural.md");
const METRICS: &str = include_str!("../../../docs/traceql/metrics.md");
const QUERY: &str = include_str!("../../../docs/traceql/query.md");
const CONFIG_OVERVIEW: &str = include_str!("../../../docs/config/overview.md");
const README: &str = include_str!("../../../README.md");

/// A resource: URI, title, its text.
type Doc = (&'static str, &'static str, fn() -> String);

/// Every resource.
pub(crate) const RESOURCES: [Doc; 7] = [
    ("docs://traceql/basic", "TraceQL basics", || BASIC.into()),
    ("docs://traceql/aggregates", "TraceQL aggregates", || {
        AGGREGATES.into()
    }),
    (
        "docs://traceql/structural",
        "TraceQL structural operators",
        || STRUCTURAL.into(),
    ),
    ("docs://traceql/metrics", "TraceQL metrics", || {
        METRICS.into()
    }),
    ("docs://traceql/query", "Querying vivace", || QUERY.into()),
    ("docs://config/overview", "Configuration overview", || {
        CONFIG_OVERVIEW.into()
    }),
    (
        "docs://config/reference",
        "Configuration reference",
        config_reference,
    ),
];

/// The README's `### Configuration` section: every key with its default.
fn config_reference() -> String {
    let start = README.find("### Configuration").unwrap_or(0);
    let rest = &README[start..];
    let end = rest[3..].find("\n## ").map(|i| i + 3).unwrap_or(rest.len());
    format!("# vivace configuration reference\n\n{}", &rest[..end])
}

pub(crate) fn resource(uri: &str) -> Option<String> {
    RESOURCES
        .iter()
        .find(|(u, _, _)| *u == uri)
        .map(|(_, _, text)| text())
}

pub(crate) fn traceql(name: &str) -> Option<String> {
    match name {
        "basic" | "aggregates" | "structural" | "metrics" => {
            resource(&format!("docs://traceql/{name}"))
        }
        _ => None,
    }
}

pub(crate) fn config(name: &str) -> Option<String> {
    match name {
        "config-overview" => resource("docs://config/overview"),
        "config-reference" => resource("docs://config/reference"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_has_text() {
        for (uri, _, text) in RESOURCES {
            assert!(text().len() > 200, "{uri}");
        }
        let r = config("config-reference").unwrap();
        assert!(r.contains("http_listen_port") && r.contains("metrics_generator:"));
        assert!(!r.contains("## Load generator"));
    }
}
