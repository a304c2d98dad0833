//! The semantic cases of the catalogue (`testdata/semantic.txt`) over its fixtures
//! (`testdata/fixtures.json`), evaluated on batches built straight from the fixtures. The
//! end-to-end tests run the same cases through the server, live and from blocks.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use super::*;
use crate::ast::{KindValue, StatusValue};
use crate::batch::{AttrInput, BatchBuilder, SpanInput};

pub(crate) const FIXTURES: &str = include_str!("../../testdata/fixtures.json");
const CASES: &str = include_str!("../../testdata/semantic.txt");

fn id8(label: &str) -> [u8; 8] {
    let mut id = [0x11u8; 8];
    id[0] = 0x5a;
    for (i, b) in label.bytes().take(7).enumerate() {
        id[i + 1] = b;
    }
    id
}

fn id16(label: &str) -> [u8; 16] {
    let mut id = [0x22u8; 16];
    id[0] = 0x7e;
    for (i, b) in label.bytes().take(15).enumerate() {
        id[i + 1] = b;
    }
    id
}

fn attr_input(v: &Json) -> AttrInput<'_> {
    match v {
        Json::String(s) => AttrInput::Str(s),
        Json::Bool(b) => AttrInput::Bool(*b),
        Json::Number(n) if n.is_f64() => AttrInput::Float(n.as_f64().unwrap_or(0.0)),
        Json::Number(n) => AttrInput::Int(n.as_i64().unwrap_or(0)),
        Json::Array(a) => match a.first() {
            Some(Json::String(_)) => {
                AttrInput::StrArr(a.iter().filter_map(|x| x.as_str()).collect())
            }
            Some(Json::Bool(_)) => {
                AttrInput::BoolArr(a.iter().filter_map(|x| x.as_bool()).collect())
            }
            Some(Json::Number(n)) if n.is_f64() => {
                AttrInput::FloatArr(a.iter().filter_map(|x| x.as_f64()).collect())
            }
            _ => AttrInput::IntArr(a.iter().filter_map(|x| x.as_i64()).collect()),
        },
        _ => AttrInput::Str(""),
    }
}

fn kind(s: Option<&str>) -> KindValue {
    match s {
        Some("server") => KindValue::Server,
        Some("client") => KindValue::Client,
        Some("producer") => KindValue::Producer,
        Some("consumer") => KindValue::Consumer,
        Some("unspecified") => KindValue::Unspecified,
        _ => KindValue::Internal,
    }
}

fn status(s: Option<&str>) -> StatusValue {
    match s {
        Some("ok") => StatusValue::Ok,
        Some("error") => StatusValue::Error,
        _ => StatusValue::Unset,
    }
}

/// The batch of one fixture and, per span index, (trace label, span label).
pub(crate) fn fixture(name: &str, all: &Json) -> (SpanBatch, Vec<(String, String)>) {
    let mut bb = BatchBuilder::new();
    let mut labels = Vec::new();
    let empty = serde_json::Map::new();
    for t in all[name].as_array().expect("fixture") {
        let tl = t["trace"].as_str().unwrap_or_default();
        bb.begin_trace(id16(tl));
        for s in t["spans"].as_array().expect("spans") {
            let label = s["id"].as_str().unwrap_or_default();
            labels.push((tl.to_string(), label.to_string()));
            bb.begin_resource();
            bb.resource_attr(
                "service.name",
                AttrInput::Str(s["service"].as_str().unwrap_or("svc")),
            );
            for (k, v) in s["resource"].as_object().unwrap_or(&empty) {
                bb.resource_attr(k, attr_input(v));
            }
            let scope = &s["scope"];
            bb.begin_scope(
                scope["name"].as_str().unwrap_or(""),
                scope["version"].as_str().unwrap_or(""),
            );
            for (k, v) in scope["attrs"].as_object().unwrap_or(&empty) {
                bb.scope_attr(k, attr_input(v));
            }
            let start = (s["start"].as_f64().unwrap_or(0.0) * 1e6) as u64 + 1_000_000_000;
            let dur = (s["dur"].as_f64().unwrap_or(0.0) * 1e6) as u64;
            bb.span(&SpanInput {
                id: id8(label),
                parent_id: s["parent"].as_str().map_or([0; 8], id8),
                name: s["name"].as_str().unwrap_or_default(),
                kind: kind(s["kind"].as_str()),
                status: status(s["status"].as_str()),
                status_message: s["message"].as_str().unwrap_or(""),
                start_ns: start,
                end_ns: start + dur,
                child_of_link: false,
            });
            for (k, v) in s["attrs"].as_object().unwrap_or(&empty) {
                bb.span_attr(k, attr_input(v));
            }
            for e in s["events"].as_array().into_iter().flatten() {
                bb.event(
                    e["name"].as_str().unwrap_or_default(),
                    (e["at"].as_f64().unwrap_or(0.0) * 1e6) as u64,
                );
                for (k, v) in e["attrs"].as_object().unwrap_or(&empty) {
                    bb.event_attr(k, attr_input(v));
                }
            }
            for l in s["links"].as_array().into_iter().flatten() {
                let mut tid = [0u8; 16];
                let mut sid = [0u8; 8];
                let th = l["trace"].as_str().unwrap_or_default();
                let sh = l["span"].as_str().unwrap_or_default();
                for i in 0..16 {
                    tid[i] = u8::from_str_radix(&th[i * 2..i * 2 + 2], 16).unwrap_or(0);
                }
                for i in 0..8 {
                    sid[i] = u8::from_str_radix(&sh[i * 2..i * 2 + 2], 16).unwrap_or(0);
                }
                bb.link(tid, sid);
                for (k, v) in l["attrs"].as_object().unwrap_or(&empty) {
                    bb.link_attr(k, attr_input(v));
                }
            }
        }
    }
    (bb.finish(), labels)
}

type Found = BTreeMap<String, BTreeSet<String>>;

fn run(query: &str, b: &SpanBatch, labels: &[(String, String)]) -> Result<Found, String> {
    let q = crate::parse(query).map_err(|e| e.to_string())?;
    let plan = SearchPlan::new(&q).map_err(|e| e.to_string())?;
    let bound = plan.bind(b);
    let mut found = Found::new();
    if plan.matches_nothing {
        return Ok(found);
    }
    for t in 0..b.traces.len() {
        for set in bound.eval_trace(t).map_err(|e| e.to_string())? {
            for s in set.spans {
                let (tl, sl) = &labels[s as usize];
                found.entry(tl.clone()).or_default().insert(sl.clone());
            }
        }
    }
    // What the batch's dictionary rules out (search skips such batches) finds nothing.
    assert!(
        !plan.rules_out(b) || found.is_empty(),
        "{query}: ruled out by the dictionary, yet it matches {found:?}"
    );
    Ok(found)
}

fn expected(text: &str, single_trace: &str) -> Option<Found> {
    if text == "ERROR" {
        return None;
    }
    let mut f = Found::new();
    if text == "none" {
        return Some(f);
    }
    for part in text.split(';') {
        let (t, spans) = match part.split_once(':') {
            Some((t, s)) => (t.trim().to_string(), s),
            None => (single_trace.to_string(), part),
        };
        f.insert(t, spans.split_whitespace().map(String::from).collect());
    }
    Some(f)
}

#[test]
fn catalogue_semantic_cases() {
    let all: Json = serde_json::from_str(FIXTURES).expect("fixtures parse");
    let mut failures = Vec::new();
    let mut n = 0;
    for line in CASES.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [id, fx, query, expect] = cols[..] else {
            panic!("bad case line: {line}");
        };
        n += 1;
        let (batch, labels) = fixture(fx, &all);
        let single = labels.first().map(|l| l.0.clone()).unwrap_or_default();
        let got = run(query, &batch, &labels);
        match (expected(expect, &single), got) {
            (None, Err(_)) => {}
            (Some(want), Ok(got)) if want == got => {}
            (want, got) => failures.push(format!("{id} {query}: want {want:?}, got {got:?}")),
        }
    }
    assert!(n > 100, "only {n} cases read");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn spanset_attributes_of_aggregates_and_groups() {
    let all: Json = serde_json::from_str(FIXTURES).unwrap();
    let (b, _) = fixture("U", &all);
    let q = crate::parse("{ } | by(resource.service.name) | count() = 2").unwrap();
    let plan = SearchPlan::new(&q).unwrap();
    let sets = plan.bind(&b).eval_trace(0).unwrap();
    assert_eq!(sets.len(), 2);
    assert_eq!(
        sets[0].attrs,
        vec![
            (
                "by(resource.service.name)".to_string(),
                OwnedValue::Str("api".into())
            ),
            ("count()".to_string(), OwnedValue::Int(2)),
        ]
    );
    let q = crate::parse("{ } | avg(duration) > 20ms").unwrap();
    let plan = SearchPlan::new(&q).unwrap();
    let sets = plan.bind(&b).eval_trace(0).unwrap();
    assert_eq!(
        sets[0].attrs,
        vec![(
            "avg(duration)".to_string(),
            OwnedValue::Duration(25_000_000)
        )]
    );
}

#[test]
fn runtime_errors_fail_the_query() {
    let all: Json = serde_json::from_str(FIXTURES).unwrap();
    let (b, labels) = fixture("Y", &all);
    for q in [
        "{ span.n / span.m = 3 }",
        "{ !span.flag || name = \"c\" }",
        "{ -span.str = 1 }",
    ] {
        assert!(run(q, &b, &labels).is_err(), "{q} should fail");
    }
}

#[test]
fn returned_span_attributes() {
    let all: Json = serde_json::from_str(FIXTURES).unwrap();
    let (b, _) = fixture("Y", &all);
    let q = crate::parse("{ status = error && span.code > 1 } | select(.env, name)").unwrap();
    let plan = SearchPlan::new(&q).unwrap();
    let bound = plan.bind(&b);
    let sets = bound.eval_trace(0).unwrap();
    assert_eq!(sets[0].spans, vec![1]);
    assert_eq!(
        bound.span_attributes(1),
        vec![
            ("status".to_string(), OwnedValue::Str("error".into())),
            ("code".to_string(), OwnedValue::Int(500)),
            ("env".to_string(), OwnedValue::Str("res-level".into())),
        ]
    );
    // Unscoped select: both the span and the resource value.
    assert_eq!(
        bound.span_attributes(0)[2..].to_vec(),
        vec![
            ("env".to_string(), OwnedValue::Str("span-level".into())),
            ("env".to_string(), OwnedValue::Str("res-level".into())),
        ]
    );
}

#[test]
fn explain_names_what_is_read_and_the_conditions() {
    let q = crate::parse(r#"{ resource.service.name = "x" && duration > 500ms } >> { event:name = "e" } | select(span.a)"#).unwrap();
    let text = SearchPlan::new(&q).unwrap().explain(&q);
    assert!(
        !text.contains("resource attributes"),
        "service.name has its own column: {text}"
    );
    assert!(text.contains("events (name, time)"), "{text}");
    assert!(!text.contains("link attributes"), "{text}");
    assert!(
        text.contains("Resource: resource.service.name = \"x\""),
        "{text}"
    );
    assert!(text.contains("nested sets"), "{text}");
    assert!(text.contains("span.a (select)"), "{text}");
    let q = crate::parse("{ false }").unwrap();
    assert!(
        SearchPlan::new(&q)
            .unwrap()
            .explain(&q)
            .contains("no data is read")
    );
}

#[test]
fn batches_whose_dictionary_lacks_a_required_string_are_ruled_out() {
    let all: Json = serde_json::from_str(FIXTURES).unwrap();
    let (b, _) = fixture("Y", &all);
    let some_name = b.str(b.span_name[0]).to_string();
    let rules_out = |q: &str| {
        SearchPlan::new(&crate::parse(q).unwrap())
            .unwrap()
            .rules_out(&b)
    };
    assert!(rules_out(r#"{ name = "no-such-name" }"#));
    assert!(rules_out(
        r#"{ span.x = "no-such-value" && duration > 1ms }"#
    ));
    assert!(rules_out(r#"{ } >> { resource.x = "no-such-value" }"#));
    assert!(!rules_out(&format!(r#"{{ name = "{some_name}" }}"#)));
    // Another attribute's value, a union, a trace ID (not a dictionary string): kept.
    assert!(!rules_out(&format!(r#"{{ span.x = "{some_name}" }}"#)));
    assert!(!rules_out(r#"{ name = "no-such-name" || duration > 1ms }"#));
    assert!(!rules_out(r#"{ trace:id = "1234" }"#));
}

#[test]
fn required_equalities_are_only_what_every_match_needs() {
    let req = |q: &str| -> Vec<String> {
        crate::parse(q)
            .unwrap()
            .required_equalities()
            .into_iter()
            .map(|(a, v)| format!("{a}={v}"))
            .collect()
    };
    assert_eq!(
        req(r#"{ name = "a" && span.x = "b" }"#),
        vec!["name=a", "span.x=b"]
    );
    assert!(req(r#"{ name = "a" || span.x = "b" }"#).is_empty());
    assert!(req(r#"{ !(name = "a") }"#).is_empty());
    assert!(req(r#"{ name != "a" }"#).is_empty());
    assert_eq!(req(r#"{ name = "a" } !> { name = "b" }"#), vec!["name=b"]);
    assert_eq!(
        req(r#"{ name = "a" } >> { name = "b" } | count() > 1"#),
        vec!["name=a", "name=b"]
    );
    assert!(req(r#"{ name = "a" } || { name = "b" }"#).is_empty());
    assert_eq!(
        req(r#"({ name = "a" }) && ({ name = "b" })"#),
        vec!["name=a", "name=b"]
    );
    assert!(req(r#"({ name = "a" } | count() > 1) && ({ name = "b" })"#).is_empty());
    assert!(req(r#"{ span.n = 1 }"#).is_empty());
}
