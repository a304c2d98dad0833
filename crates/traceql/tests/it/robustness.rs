use proptest::prelude::*;
use vivace_traceql::{Phase, parse};

#[test]
fn deep_nesting_is_refused_with_a_clear_error_not_a_stack_overflow() {
    let n = 5000;
    let queries = [
        format!("{}{{ .a = 1 }}{}", "(".repeat(n), ")".repeat(n)),
        format!("{{ {}.a = 1{} }}", "(".repeat(n), ")".repeat(n)),
        format!("{{ {}.a }}", "!".repeat(n)),
        format!("{{ .b = {}.a }}", "-".repeat(n)),
        format!("{{ .a = 2{} }}", " ^ 2".repeat(n)),
        format!("({{}}|rate()){}", " * (1".repeat(n) + &")".repeat(n)),
    ];
    for q in &queries {
        let err = parse(q).unwrap_err();
        assert_eq!(err.phase, Phase::Syntax, "{}", err.message);
        assert!(err.message.contains("deeper than"), "{}", err.message);
    }
    // A long flat chain makes a deep tree too (operators are left-associative).
    for sep in [" && ", " + ", "} && {"] {
        let chain = format!("{{ {} = 1 }}", vec![".a"; n].join(sep));
        let err = parse(&chain).unwrap_err();
        assert!(err.message.contains("deeper than"), "{}", err.message);
    }
    let fine = format!("{{ {} }}", vec![".a = 1"; 100].join(" || "));
    assert!(parse(&fine).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary text never panics the parser.
    #[test]
    fn arbitrary_text_never_panics(q in "\\PC{0,80}") {
        let _ = parse(&q);
    }

    /// Text made of TraceQL's own pieces never panics the parser, and an error always points
    /// inside the query.
    #[test]
    fn token_soup_never_panics(parts in proptest::collection::vec(prop_oneof![
        Just("{"), Just("}"), Just("("), Just(")"), Just("|"), Just("&&"), Just("||"), Just(">>"),
        Just(" span.a"), Just(" .b"), Just(" = "), Just(" 1"), Just(" 2.5"), Just(" 10ms"), Just(" \"x\""),
        Just(" nil"), Just(" count()"), Just(" rate()"), Just(" by(.a)"), Just(" with(a=1)"), Just(" -"),
        Just(" !"), Just(" *"), Just(" ^"), Just(" > "), Just(" select(.a)"), Just(" duration"),
        Just(" span:id"), Just(" trace:"), Just(","), Just(" topk(2)"), Just(" compare({})"),
    ], 0..30)) {
        let q: String = parts.concat();
        if let Err(e) = parse(&q) {
            prop_assert!(e.span.start <= q.len());
            prop_assert!(e.line >= 1 && e.col >= 1);
        }
    }
}
