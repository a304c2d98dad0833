//! The trees of representative queries, as JSON snapshots (insta). Review changes with
//! `cargo insta review` (or `INSTA_UPDATE=always cargo test -p vivace-traceql` and read the diff);
//! never edit the `.snap` files by hand.

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
    for (name, q) in QUERIES {
        let ast = vivace_traceql::parse(q).unwrap_or_else(|e| panic!("{}", e.render(q)));
        insta::with_settings!({ description => *q, omit_expression => true }, {
            insta::assert_json_snapshot!(*name, ast);
        });
    }
}
