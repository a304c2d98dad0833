use vivace_traceql::ast::{AttrScope, BinOp, CmpOp, Static};
use vivace_traceql::parse;
use vivace_traceql::visit::ConditionScope;

#[test]
fn the_engine_can_ask_what_a_query_reads() {
    let q = parse("{ resource.service.name = \"api\" && span.http.status_code >= 500 } >> { duration > 1s && .db.system =~ \"post.*\" } | by(resource.service.name)").unwrap();
    assert!(q.needs_structure());
    let attrs: Vec<String> = q.attributes().iter().map(|a| a.to_string()).collect();
    assert_eq!(
        attrs,
        [
            "resource.service.name",
            "span.http.status_code",
            "duration",
            ".db.system"
        ]
    );
    let conds = q.conditions_by_scope();
    let res = &conds[&ConditionScope::Resource];
    assert_eq!(res.len(), 1);
    assert_eq!(res[0].attribute.scope, AttrScope::Resource);
    assert_eq!(res[0].op, BinOp::Cmp(CmpOp::Eq));
    assert_eq!(res[0].value, Static::Str("api".into()));
    assert_eq!(conds[&ConditionScope::Span][0].value, Static::Int(500));
    assert_eq!(
        conds[&ConditionScope::Intrinsic][0].value,
        Static::Duration(1_000_000_000)
    );
    assert_eq!(conds[&ConditionScope::Unscoped][0].op, BinOp::Regex);

    let plain = parse("{ .a = 1 } && { .b = 2 } | count() > 1").unwrap();
    assert!(!plain.needs_structure());
    let metrics = parse("{ } | avg_over_time(span.bytes) by (resource.service.name)").unwrap();
    assert_eq!(metrics.attributes().len(), 2);
}
