//! The C-M cases of the catalogue (`testdata/metrics.txt`) over fixture MT, and sharded
//! evaluation against one job.

use proptest::prelude::*;

use super::*;
use crate::batch::{AttrInput, BatchBuilder, SpanInput};
use crate::eval::tests::{FIXTURES, fixture};

const CASES: &str = include_str!("../../testdata/metrics.txt");

/// The fixture's base time (its span starts are offset by 1 s).
const BASE: u64 = 1_000_000_000;

fn mt_range() -> Range {
    Range {
        start_ns: BASE,
        end_ns: BASE + 60_000_000_000,
        step_ns: 20_000_000_000,
    }
}

fn run(query: &str, batches: &[&SpanBatch], range: Range) -> Vec<Series> {
    let q = crate::parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    let plan = MetricsPlan::new(&q, range, 100).unwrap_or_else(|e| panic!("{query}: {e}"));
    let mut total = plan.partial();
    for b in batches {
        let mut p = plan.partial();
        plan.observe(b, &mut (0..b.traces.len()), &mut p)
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        plan.merge(&mut total, p);
    }
    plan.finish(total)
}

/// `{a=1,b="x"}` with labels sorted by name, and the samples by seconds after the base.
fn render(s: &Series) -> (String, Vec<(i64, f64)>) {
    let mut labels = s.labels.clone();
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let samples = s
        .samples
        .iter()
        .map(|(t, v)| ((t - (BASE / 1_000_000) as i64) / 1000, *v))
        .collect();
    (format!("{{{}}}", l.join(",")), samples)
}

fn parse_expected(text: &str) -> Vec<(String, Vec<(i64, f64)>)> {
    text.split(" ; ")
        .map(|one| {
            let close = one.find('}').expect("labels") + 1;
            let labels = one[..close].to_string();
            let samples = one[close..]
                .split_whitespace()
                .map(|p| {
                    let (t, v) = p.split_once(':').expect("t:v");
                    (t.parse().expect("t"), v.parse().expect("v"))
                })
                .collect();
            (labels, samples)
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn same(got: &(String, Vec<(i64, f64)>), want: &(String, Vec<(i64, f64)>)) -> bool {
    got.0 == want.0
        && got.1.len() == want.1.len()
        && got
            .1
            .iter()
            .zip(&want.1)
            .all(|(g, w)| g.0 == w.0 && close(g.1, w.1))
}

#[test]
fn catalogue_metrics_cases() {
    let all: serde_json::Value = serde_json::from_str(FIXTURES).expect("fixtures");
    let (batch, _) = fixture("MT", &all);
    let mut failures = Vec::new();
    let mut ran = 0;
    for line in CASES
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let (id, query, expected) = (cols[0], cols[1], cols[2]);
        let got: Vec<_> = run(query, &[&batch], mt_range())
            .iter()
            .map(render)
            .collect();
        let (contains, expected) = match expected.strip_prefix("contains: ") {
            Some(rest) => (true, rest),
            None => (false, expected),
        };
        let want = parse_expected(expected);
        ran += 1;
        let ok = if contains {
            want.iter().all(|w| got.iter().any(|g| same(g, w)))
        } else {
            want.len() == got.len() && want.iter().all(|w| got.iter().any(|g| same(g, w)))
        };
        if !ok {
            failures.push(format!("{id} {query}\n  want {want:?}\n  got  {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(ran, 13);
}

#[test]
fn exemplars_name_the_trace_and_respect_the_hint() {
    let all: serde_json::Value = serde_json::from_str(FIXTURES).expect("fixtures");
    let (batch, _) = fixture("MT", &all);
    let s = run(
        "{ } | quantile_over_time(duration, .5)",
        &[&batch],
        mt_range(),
    );
    let ex = &s[0].exemplars;
    assert!(!ex.is_empty());
    assert!(
        ex.iter()
            .all(|e| e.labels[0].0 == "trace:id" && e.value > 0.0)
    );
    let s = run("{ } | rate() with(exemplars=false)", &[&batch], mt_range());
    assert!(s[0].exemplars.is_empty());
}

#[test]
fn default_step_and_alignment_follow_tempo() {
    let h = 3_600_000_000_000u64;
    assert_eq!(default_step(0, h), 15_000_000_000);
    assert_eq!(default_step(0, 60_000_000_000), 250_000_000);
    assert_eq!(default_step(0, 1_000_000_000), 50_000_000);
    let r = Range::aligned(61_000_000_000, 119_000_000_000, 20_000_000_000);
    assert_eq!(
        (r.start_ns, r.end_ns, r.intervals()),
        (60_000_000_000, 120_000_000_000, 3)
    );
    assert_eq!(r.interval_of(60_000_000_000), None);
    assert_eq!(r.interval_of(80_000_000_000), Some(0));
    assert_eq!(r.interval_of(80_000_000_001), Some(1));
    assert_eq!(r.timestamp_ms(0), 80_000);
}

/// A random span: (service, name, status error?, start ms, duration ms, code).
type GenSpan = (u8, u8, bool, u32, u32, Option<i64>);
type Gen = Vec<Vec<GenSpan>>;

fn batch_of(traces: &[Vec<GenSpan>], first: usize) -> SpanBatch {
    let mut bb = BatchBuilder::new();
    for (ti, t) in traces.iter().enumerate() {
        let mut id = [7u8; 16];
        id[..8].copy_from_slice(&((first + ti) as u64).to_be_bytes());
        bb.begin_trace(id);
        for (si, &(svc, name, err, start, dur, code)) in t.iter().enumerate() {
            bb.begin_resource();
            bb.resource_attr(
                "service.name",
                AttrInput::Str(["api", "db", "web"][svc as usize % 3]),
            );
            bb.begin_scope("", "");
            let start_ns = BASE + start as u64 * 1_000_000;
            let mut sid = [1u8; 8];
            sid[7] = si as u8;
            bb.span(&SpanInput {
                id: sid,
                parent_id: if si == 0 {
                    [0; 8]
                } else {
                    [1, 1, 1, 1, 1, 1, 1, 0]
                },
                name: ["GET", "q", "render", "auth"][name as usize % 4],
                kind: crate::ast::KindValue::Server,
                status: if err {
                    crate::ast::StatusValue::Error
                } else {
                    crate::ast::StatusValue::Unset
                },
                status_message: "",
                start_ns,
                end_ns: start_ns + dur as u64 * 1_000_000,
                child_of_link: false,
            });
            if let Some(c) = code {
                bb.span_attr("code", AttrInput::Int(c));
                bb.span_attr("route", AttrInput::Str(["/a", "/b"][c as usize % 2]));
            }
        }
    }
    bb.finish()
}

fn traces() -> impl Strategy<Value = Gen> {
    prop::collection::vec(
        prop::collection::vec(
            (
                0u8..3,
                0u8..4,
                any::<bool>(),
                0u32..60_000,
                0u32..5_000,
                prop::option::of(prop_oneof![Just(200i64), Just(404), Just(500)]),
            ),
            1..6,
        ),
        1..30,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Jobs over any split of the traces, merged, answer exactly what one job answers —
    /// quantiles included, since they come from merged bucket counts.
    #[test]
    fn sharded_equals_one_job(traces in traces(), cuts in prop::collection::vec(0usize..30, 0..4)) {
        let whole = batch_of(&traces, 0);
        let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c.min(traces.len())).collect();
        bounds.push(0);
        bounds.push(traces.len());
        bounds.sort_unstable();
        bounds.dedup();
        let shards: Vec<SpanBatch> = bounds
            .windows(2)
            .map(|w| batch_of(&traces[w[0]..w[1]], w[0]))
            .collect();
        let refs: Vec<&SpanBatch> = shards.iter().collect();
        for q in [
            "{ } | rate()",
            "{ } | count_over_time() by (resource.service.name, span.code)",
            "{ status = error } | sum_over_time(duration) by (name)",
            "{ } | avg_over_time(span.code) by (resource.service.name)",
            "{ } | min_over_time(duration)",
            "{ } | max_over_time(span.code) by (name)",
            "{ } | quantile_over_time(duration, .5, .9, .99) by (resource.service.name)",
            "{ } | histogram_over_time(duration)",
            "({ status = error } | count_over_time()) / ({ } | count_over_time())",
            "{ } | count_over_time() by (name) | topk(2)",
        ] {
            let strip = |s: Vec<Series>| -> Vec<(Labels, Vec<(i64, f64)>)> {
                s.into_iter().map(|s| (s.labels, s.samples)).collect()
            };
            let one = strip(run(q, &[&whole], mt_range()));
            let many = strip(run(q, &refs, mt_range()));
            prop_assert_eq!(one, many, "{}", q);
        }
    }
}

#[test]
fn explain_says_what_each_first_stage_reads() {
    let q = crate::parse(
        r#"({ } | count_over_time()) / ({ span.http.route = "/a" } | count_over_time())"#,
    )
    .unwrap();
    let text = MetricsPlan::new(&q, mt_range(), 0).unwrap().explain(&q);
    assert!(
        text.contains("-- first stage 2: count_over_time()"),
        "{text}"
    );
    assert!(text.contains(r#"span ["http.route"]"#), "{text}");
    assert!(
        text.contains("no span IDs, names or status messages"),
        "{text}"
    );
    assert!(text.contains("span-only:  yes"), "{text}");
    assert!(text.contains("plus span.http.route"), "{text}");
}

/// The same query counted from the batch and from its span-only columns (when it can be).
fn both_paths(query: &str, batch: &SpanBatch) -> Option<(Vec<Series>, Vec<Series>)> {
    let q = crate::parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    let plan = MetricsPlan::new(&q, mt_range(), 100).unwrap_or_else(|e| panic!("{query}: {e}"));
    let cols = crate::spans::SpanColumns::from_batch(batch, plan.span_columns()?)?;
    let mut a = plan.partial();
    plan.observe(batch, &mut (0..batch.traces.len()), &mut a)
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    let mut b = plan.partial();
    plan.observe_columns(&cols, &mut b)
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    Some((plan.finish(a), plan.finish(b)))
}

#[test]
fn span_only_columns_answer_as_the_batch_on_the_catalogue() {
    let all: serde_json::Value = serde_json::from_str(FIXTURES).expect("fixtures");
    let (batch, _) = fixture("MT", &all);
    let mut span_only = 0;
    for line in CASES
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let query = line.split('\t').nth(1).expect("query");
        if let Some((a, b)) = both_paths(query, &batch) {
            span_only += 1;
            // Debug text: exemplar values of counts are NaN, which equality refuses.
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{query}");
        }
    }
    assert!(
        span_only >= 8,
        "only {span_only} catalogue cases ran span-only"
    );
    // What cannot run span by span says so.
    for q in [
        "{ } >> { status = error } | rate()",
        "{ trace:duration > 1s } | rate()",
        "{ .x = 1 } | rate()",
        "{ } | compare({ status = error })",
        "{ event:name = \"e\" } | rate()",
        "{ } | count() > 1 | rate()",
    ] {
        let plan = MetricsPlan::new(&crate::parse(q).unwrap(), mt_range(), 0).unwrap();
        assert!(plan.span_columns().is_none(), "{q}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn span_only_columns_answer_as_the_batch(traces in traces()) {
        let batch = batch_of(&traces, 0);
        let mut ran = 0;
        for q in [
            "{ } | rate()",
            "{ } | count_over_time() by (resource.service.name)",
            "{ status = error } | sum_over_time(duration) by (name)",
            "{ } | min_over_time(duration)",
            "{ kind = server || duration > 3ms } | quantile_over_time(duration, .5, .9) by (resource.service.name)",
            "{ } | histogram_over_time(duration) by (status)",
            "{ name =~ \"G.*|q\" && resource.service.name != \"db\" } | rate() by (name, kind)",
            "{ span.route = nil || span.route =~ \"/a\" } | count_over_time() by (span.route)",
            "{ span.route != \"/b\" } | max_over_time(duration) by (resource.service.name, span.route)",
            "({ status = error } | count_over_time()) / ({ } | count_over_time())",
        ] {
            if let Some((a, b)) = both_paths(q, &batch) {
                ran += 1;
                prop_assert_eq!(format!("{a:?}"), format!("{b:?}"), "{}", q);
            }
        }
        prop_assert!(ran >= 7);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// A search's prefilter keeps every trace the search matches, and for a lone filter (with
    /// or without `| count() > n`) keeps exactly those.
    #[test]
    fn prefilters_keep_every_match(traces in traces()) {
        let batch = batch_of(&traces, 0);
        for (q, exact) in [
            ("{ status = error }", true),
            ("{ } | count() > 2", true),
            ("{ name = \"q\" && duration > 2s } | count() >= 2", true),
            ("{ resource.service.name = \"api\" } >> { status = error }", false),
            ("{ kind = server } && { span.route = \"/a\" }", false),
            ("{ status = error } | by(name) | count() > 1", false),
        ] {
            let plan = crate::eval::SearchPlan::new(&crate::parse(q).unwrap()).unwrap();
            let pre = plan.prefilter().unwrap_or_else(|| panic!("{q}: no prefilter"));
            let cols = crate::spans::SpanColumns::from_batch(&batch, pre.columns()).unwrap();
            let candidates = pre.candidates(&cols);
            let bound = plan.bind(&batch);
            for (t, candidate) in candidates.iter().enumerate() {
                let matches = !bound.eval_trace(t).unwrap().is_empty();
                prop_assert!(!matches || *candidate, "{}: trace {} matches but was left out", q, t);
                if exact {
                    prop_assert_eq!(matches, *candidate, "{}: trace {}", q, t);
                }
            }
        }
        for q in ["{ }", "{ } !> { status = error }", "{ status = error } || { kind = client }"] {
            let plan = crate::eval::SearchPlan::new(&crate::parse(q).unwrap()).unwrap();
            prop_assert!(plan.prefilter().is_none(), "{}", q);
        }
    }
}
