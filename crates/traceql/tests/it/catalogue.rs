use vivace_traceql::{Phase, parse};

fn lines(file: &str) -> Vec<String> {
    file.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.replace('⏎', "\n"))
        .collect()
}

#[test]
fn every_valid_query_parses_validates_and_round_trips() {
    let mut failures = Vec::new();
    for q in lines(include_str!("../../testdata/valid.txt")) {
        match parse(&q) {
            Ok(ast) => {
                let printed = ast.to_string();
                match parse(&printed) {
                    Ok(again) if again == ast => {
                        assert_eq!(again.to_string(), printed, "printing is stable for {q}");
                    }
                    Ok(_) => failures.push(format!(
                        "{q}\n    printed as {printed}, which parses to a different tree"
                    )),
                    Err(e) => {
                        failures.push(format!("{q}\n    printed as {printed}, which fails: {e}"))
                    }
                }
            }
            Err(e) => failures.push(format!("{q}\n    {}", e.render(&q))),
        }
    }
    assert!(
        failures.is_empty(),
        "{} valid queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn phase(name: &str) -> Phase {
    match name {
        "LEX" => Phase::Lex,
        "SYN" => Phase::Syntax,
        "FOLD" => Phase::Fold,
        "VAL" => Phase::Validate,
        "UNSUP" => Phase::Unsupported,
        other => panic!("unknown phase {other}"),
    }
}

/// The token named in "unexpected X": where it is, the error must point.
fn unexpected_token(message: &str) -> Option<&str> {
    let rest = message.split("unexpected ").nth(1)?;
    let tok = rest.split([',', ' ']).next()?.trim_end_matches('.');
    Some(if tok.is_empty() { "." } else { tok })
}

#[test]
fn every_invalid_query_is_rejected_in_its_phase_at_the_mistake() {
    let mut failures = Vec::new();
    for line in lines(include_str!("../../testdata/invalid.txt")) {
        let mut parts = line.splitn(3, '\t');
        let (Some(ph), Some(q), Some(msg)) = (parts.next(), parts.next(), parts.next()) else {
            panic!("bad catalogue line {line}");
        };
        let want = phase(ph);
        let err = match parse(q) {
            Ok(ast) => {
                failures.push(format!("{q}\n    accepted (as {ast}); want {ph}: {msg}"));
                continue;
            }
            Err(e) => e,
        };
        if err.phase != want {
            failures.push(format!(
                "{q}\n    {:?} {}; want {ph}: {msg}",
                err.phase,
                err.render(q)
            ));
            continue;
        }
        // The line and column are those of the error's span, which lies inside the query.
        assert!(err.span.start <= q.len(), "{q}: span {:?}", err.span);
        let before = &q[..err.span.start];
        assert_eq!(err.line, before.matches('\n').count() + 1, "{q}");
        assert_eq!(
            err.col,
            before.rsplit('\n').next().unwrap().chars().count() + 1,
            "{q}"
        );
        if want == Phase::Syntax && !msg.starts_with("same") {
            let (Some(w), Some(g)) = (unexpected_token(msg), unexpected_token(&err.message)) else {
                failures.push(format!("{q}\n    {}; want {msg}", err.message));
                continue;
            };
            if w != g {
                failures.push(format!("{q}\n    {}; want unexpected {w}", err.render(q)));
                continue;
            }
            let at = &q[err.span.start..];
            let points_right = match w {
                "$end" => q[err.span.start..].trim().is_empty(),
                "IDENTIFIER" | "INTEGER" | "FLOAT" | "STRING" | "DURATION" | "END_ATTRIBUTE" => {
                    true
                }
                tok => at.starts_with(tok),
            };
            if !points_right {
                failures.push(format!(
                    "{q}\n    points at the wrong place: {}",
                    err.render(q)
                ));
            }
        } else if !msg.starts_with("same") {
            let first_sentence = msg.split(". ").next().unwrap_or(msg).trim_end_matches('.');
            let missing: Vec<&str> = first_sentence
                .split_whitespace()
                .filter(|w| *w != "..." && !err.message.contains(w.trim_end_matches(['.', ','])))
                .collect();
            if !missing.is_empty() {
                failures.push(format!(
                    "{q}\n    message {:?} lacks {missing:?} of {msg:?}",
                    err.message
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} invalid queries misjudged:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
