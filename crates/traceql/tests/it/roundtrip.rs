//! Generated trees print to text that parses back to the same tree.

use proptest::prelude::*;
use vivace_traceql::ast::*;
use vivace_traceql::parse;

fn attr() -> impl Strategy<Value = FieldExpr> {
    let scoped = (
        prop_oneof![
            Just(AttrScope::None),
            Just(AttrScope::Span),
            Just(AttrScope::Resource),
            Just(AttrScope::Event),
            Just(AttrScope::Link),
            Just(AttrScope::Instrumentation)
        ],
        "[a-z][a-z0-9_.]{0,8}|[a-z \"=|]{1,6}",
    )
        .prop_map(|(scope, name)| {
            FieldExpr::Attribute(Attribute {
                scope,
                parent: false,
                name,
                intrinsic: None,
                span: Span::default(),
            })
        });
    let intrinsic = prop_oneof![
        Just(("duration", Intrinsic::Duration)),
        Just(("span:name", Intrinsic::Name)),
        Just(("trace:rootService", Intrinsic::TraceRootService)),
        Just(("kind", Intrinsic::Kind)),
        Just(("event:timeSinceStart", Intrinsic::EventTimeSinceStart)),
    ]
    .prop_map(|(name, i)| {
        FieldExpr::Attribute(Attribute {
            scope: AttrScope::None,
            parent: false,
            name: name.into(),
            intrinsic: Some(i),
            span: Span::default(),
        })
    });
    prop_oneof![3 => scoped, 1 => intrinsic]
}

fn literal() -> impl Strategy<Value = FieldExpr> {
    prop_oneof![
        (0i64..1_000_000).prop_map(Static::Int),
        (0.0f64..1e6).prop_map(Static::Float),
        (0i64..10_000_000_000).prop_map(Static::Duration),
        "[ -~é\n\t]{0,10}".prop_map(Static::Str),
        any::<bool>().prop_map(Static::Bool),
        Just(Static::Status(StatusValue::Error)),
        Just(Static::Kind(KindValue::Server)),
    ]
    .prop_map(|v| FieldExpr::Static(v, Span::default()))
}

fn field_expr() -> impl Strategy<Value = FieldExpr> {
    let leaf = prop_oneof![2 => attr(), 1 => literal()];
    leaf.prop_recursive(4, 24, 2, |inner| {
        let op = prop_oneof![
            Just(BinOp::And),
            Just(BinOp::Or),
            Just(BinOp::Cmp(CmpOp::Eq)),
            Just(BinOp::Cmp(CmpOp::Gt)),
            Just(BinOp::Cmp(CmpOp::Lte)),
            Just(BinOp::Regex),
            Just(BinOp::Arith(ArithOp::Add)),
            Just(BinOp::Arith(ArithOp::Mul)),
            Just(BinOp::Arith(ArithOp::Pow)),
            Just(BinOp::Arith(ArithOp::Sub)),
        ];
        prop_oneof![
            // An attribute on one side keeps the node from folding away.
            (op, attr(), inner.clone()).prop_map(|(op, l, r)| FieldExpr::Binary {
                op,
                lhs: Box::new(l),
                rhs: Box::new(r),
                span: Span::default()
            }),
            (prop_oneof![Just(UnaryOp::Neg), Just(UnaryOp::Not)], attr()).prop_map(|(op, e)| {
                FieldExpr::Unary {
                    op,
                    expr: Box::new(e),
                    span: Span::default(),
                }
            }),
        ]
    })
}

fn spanset() -> impl Strategy<Value = SpansetExpr> {
    let filter = field_expr().prop_map(|e| SpansetExpr::Filter(e, Span::default()));
    filter.prop_recursive(3, 8, 2, |inner| {
        let op = prop_oneof![
            Just(SpansetOp::And),
            Just(SpansetOp::Union),
            Just(SpansetOp::Descendant),
            Just(SpansetOp::NotSibling),
            Just(SpansetOp::UnionChild)
        ];
        (op, inner.clone(), inner).prop_map(|(op, l, r)| SpansetExpr::Op {
            op,
            lhs: Box::new(l),
            rhs: Box::new(r),
            span: Span::default(),
        })
    })
}

fn query() -> impl Strategy<Value = Query> {
    let by = attr().prop_map(|e| Stage::GroupBy(e, Span::default()));
    let agg = (prop_oneof![Just(CmpOp::Gt), Just(CmpOp::Lte)], 0i64..100).prop_map(|(op, n)| {
        Stage::ScalarFilter(ScalarFilter {
            op,
            lhs: ScalarExpr::Aggregate(Aggregate {
                func: AggFunc::Count,
                expr: None,
                span: Span::default(),
            }),
            rhs: ScalarExpr::Const(Static::Int(n), Span::default()),
            span: Span::default(),
        })
    });
    let stage = prop_oneof![
        spanset().prop_map(Stage::Spanset),
        by,
        agg,
        Just(Stage::Coalesce(Span::default()))
    ];
    (
        spanset(),
        proptest::collection::vec(stage, 0..3),
        proptest::option::of((1i64..100, 0.0f64..1.0)),
    )
        .prop_map(|(first, rest, metrics)| {
            let mut stages = vec![Stage::Spanset(first)];
            stages.extend(rest);
            let pipeline = Pipeline {
                stages,
                span: Span::default(),
            };
            let body = match metrics {
                None => Body::Search(pipeline),
                Some((k, q)) => {
                    let func = MetricsFn::QuantileOverTime {
                        attr: Attribute {
                            scope: AttrScope::None,
                            parent: false,
                            name: "duration".into(),
                            intrinsic: Some(Intrinsic::Duration),
                            span: Span::default(),
                        },
                        quantiles: vec![q],
                        by: vec![],
                        span: Span::default(),
                    };
                    let expr = MetricsExpr::Query {
                        pipeline,
                        func,
                        second: vec![],
                        span: Span::default(),
                    };
                    Body::Metrics(Box::new(MetricsQuery {
                        expr,
                        second: vec![SecondStage::TopK(k, Span::default())],
                        span: Span::default(),
                    }))
                }
            };
            Query {
                body,
                hints: vec![Hint {
                    name: "sample".into(),
                    value: Static::Float(0.5),
                    span: Span::default(),
                }],
                span: Span::default(),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// print → parse gives the same tree (validation aside: generated trees need not type-check).
    #[test]
    fn printed_queries_parse_back_to_the_same_tree(q in query()) {
        let text = q.to_string();
        let back = vivace_traceql::parse_unvalidated(&text);
        prop_assert!(back.is_ok(), "{text}: {:?}", back.err().map(|e| e.render(&text)));
        prop_assert_eq!(back.unwrap(), q, "{}", text);
    }
}

#[test]
fn canonical_forms() {
    let cases = [
        ("{}", "{ true }"),
        ("{ .a || .b && .c }", "{ (.a || .b) && .c }"),
        ("{ !.a * .b }", "{ !(.a * .b) }"),
        ("{ -.a ^ 2 = 1 }", "{ -(.a ^ 2) = 1 }"),
        ("{ .c - -.a + .b }", "{ (.c - -.a) + .b }"),
        ("{ 1 + 1 > 1 }", "{ true }"),
        ("{ duration > 1 + 2 }", "{ duration > 3 }"),
        ("{a} || {b} && {c}", "{ (.a) } || { (.b) } && { (.c) }"),
        (
            "{ span.attribute.\"name with space\".x = `raw` }",
            "{ span.\"attribute.name with space.x\" = \"raw\" }",
        ),
        ("{ } | count() > 2 * 3", "{ true } | count() > 6"),
        ("({ } | rate()) + 1 / 2", "({ true } | rate()) + 0"),
        ("{ } with(a=1) with(b=2)", "{ true } with(b=2)"),
    ];
    for (q, want) in cases {
        match parse(q) {
            Ok(ast) => assert_eq!(ast.to_string(), want, "{q}"),
            Err(e) if want.starts_with("{ (.a)") => {
                assert!(e.message.contains("unknown identifier"), "{q}: {e}")
            }
            Err(e) => panic!("{q}: {}", e.render(q)),
        }
    }
}
