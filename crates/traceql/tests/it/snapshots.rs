//! The trees of representative queries, as JSON, compared with the files under
//! `tests/it/snapshots/` (regenerate with `UPDATE_SNAPSHOTS=1 cargo test -p vivace-traceql`, then
//! review the diff).

use std::path::PathBuf;

const QUERIES: &[(&str, &str)] = &[
    (
        "filter",
        "{ span.http.status_code >= 500 && resource.service.name = \"api\" }",
    ),
    (
        "structural",
        "{ kind = server } >> { status = error } && { .db.system = \"redis\" }",
    ),
    (
        "pipeline",
        "{ } | by(resource.service.name) | count() > 2 | select(span:id, .a)",
    ),
    ("pipeline_expr", "({ .a } | count() > 1) && ({ .b })"),
    (
        "metrics",
        "{ status = error } | quantile_over_time(duration, .5, .99) by (resource.service.name) | topk(5) with(sample=0.1)",
    ),
    (
        "metrics_arith",
        "({ status = error } | rate()) / ({ } | rate()) > 10",
    ),
    ("precedence", "{ !.a = .b || -.c * 2 ^ 3 ^ 2 < 10 }"),
];

#[test]
fn ast_snapshots() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/snapshots");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut stale = Vec::new();
    for (name, q) in QUERIES {
        let ast = vivace_traceql::parse(q).unwrap_or_else(|e| panic!("{}", e.render(q)));
        let got = format!("{q}\n{}\n", serde_json::to_string_pretty(&ast).unwrap());
        let path = dir.join(format!("{name}.snap"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != got {
            stale.push(format!(
                "{name}: snapshot differs (or is missing); got:\n{got}"
            ));
        }
    }
    assert!(stale.is_empty(), "{}", stale.join("\n"));
}
