//! Property: for generated traces and generated queries, the search engine's path — a vivace
//! block written, read back column by column with the query's projection — answers exactly as
//! the plain evaluator over the OTLP model (the traces turned straight into a batch).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use vivace_block::{
    BlockRef, BlockWriter, WriterConfig, needles, read_columnar, read_pruned, read_span_columns,
    set_file_facts,
};
use vivace_common::TraceId;
use vivace_proto::otlp::common::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value};
use vivace_proto::otlp::resource::Resource;
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status, span};
use vivace_proto::tempopb::Trace;
use vivace_store::Backend;
use vivace_traceql::batch::SpanBatch;
use vivace_traceql::eval::SearchPlan;

const KEYS: &[&str] = &[
    "a",
    "b",
    "http.method",
    "http.status_code",
    "k8s.pod.name",
    "env",
];
const STRS: &[&str] = &["x", "y", "GET", "200", ""];
const NAMES: &[&str] = &["root", "db", "GET /", "render"];

fn value() -> impl Strategy<Value = any_value::Value> {
    use any_value::Value as V;
    prop_oneof![
        (0..STRS.len()).prop_map(|i| V::StringValue(STRS[i].into())),
        (-2i64..600).prop_map(V::IntValue),
        prop_oneof![Just(0.5f64), Just(1.0), Just(2.5), Just(200.0)].prop_map(V::DoubleValue),
        any::<bool>().prop_map(V::BoolValue),
        proptest::collection::vec(0..STRS.len(), 1..4).prop_map(|v| V::ArrayValue(ArrayValue {
            values: v
                .into_iter()
                .map(|i| AnyValue {
                    value: Some(V::StringValue(STRS[i].into())),
                })
                .collect(),
        })),
        proptest::collection::vec(0i64..5, 1..4).prop_map(|v| V::ArrayValue(ArrayValue {
            values: v
                .into_iter()
                .map(|i| AnyValue {
                    value: Some(V::IntValue(i)),
                })
                .collect(),
        })),
    ]
}

fn attrs(max: usize) -> impl Strategy<Value = Vec<KeyValue>> {
    proptest::collection::btree_map(0..KEYS.len(), value(), 0..max).prop_map(|m| {
        m.into_iter()
            .map(|(k, v)| KeyValue {
                key: KEYS[k].into(),
                value: Some(AnyValue { value: Some(v) }),
                ..Default::default()
            })
            .collect()
    })
}

/// A span: (parent choice, name, kind, status, duration ms, attributes, events, service).
type SpanGen = (
    usize,
    usize,
    i32,
    i32,
    u64,
    Vec<KeyValue>,
    Vec<(usize, Vec<KeyValue>)>,
    usize,
);

fn span_gen() -> impl Strategy<Value = SpanGen> {
    (
        0usize..8,
        0..NAMES.len(),
        0i32..6,
        0i32..3,
        1u64..50,
        attrs(4),
        proptest::collection::vec((0usize..2, attrs(2)), 0..3),
        0usize..3,
    )
}

/// Traces with one root each (the first span); other spans hang under an earlier span, or are
/// orphans (parent not in the trace).
pub(crate) fn traces() -> impl Strategy<Value = Vec<(TraceId, Trace)>> {
    proptest::collection::vec(proptest::collection::vec(span_gen(), 1..10), 1..6).prop_map(|ts| {
        let mut out: Vec<(TraceId, Trace)> = ts
            .into_iter()
            .enumerate()
            .map(|(t, spans)| {
                let mut tid = [0u8; 16];
                tid[0] = 0x40 + t as u8;
                tid[15] = 1;
                let mut rss = Vec::new();
                for (i, (parent, name, kind, code, dur, attributes, events, svc)) in
                    spans.into_iter().enumerate()
                {
                    let mut sid = [0u8; 8];
                    sid[0] = 0x50 + t as u8;
                    sid[7] = i as u8 + 1;
                    let parent_span_id = if i == 0 {
                        vec![]
                    } else if parent == 7 {
                        vec![0xee; 8]
                    } else {
                        let mut p = sid;
                        p[7] = (parent % i) as u8 + 1;
                        p.to_vec()
                    };
                    let start = 1_700_000_000_000_000_000u64 + i as u64 * 1_000_000;
                    let sp = Span {
                        trace_id: tid.to_vec(),
                        span_id: sid.to_vec(),
                        parent_span_id,
                        name: NAMES[name].into(),
                        kind,
                        start_time_unix_nano: start,
                        end_time_unix_nano: start + dur * 1_000_000,
                        attributes,
                        events: events
                            .into_iter()
                            .map(|(n, a)| span::Event {
                                time_unix_nano: start + 1000,
                                name: ["exception", "log"][n].into(),
                                attributes: a,
                                ..Default::default()
                            })
                            .collect(),
                        status: Some(Status {
                            code,
                            message: String::new(),
                        }),
                        ..Default::default()
                    };
                    let mut res = vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(
                                ["api", "db", "web"][svc].into(),
                            )),
                        }),
                        ..Default::default()
                    }];
                    if svc == 2 {
                        res.push(KeyValue {
                            key: "k8s.pod.name".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::StringValue("pod-1".into())),
                            }),
                            ..Default::default()
                        });
                    }
                    rss.push(ResourceSpans {
                        resource: Some(Resource {
                            attributes: res,
                            ..Default::default()
                        }),
                        scope_spans: vec![ScopeSpans {
                            scope: Some(InstrumentationScope {
                                name: "lib".into(),
                                ..Default::default()
                            }),
                            spans: vec![sp],
                            ..Default::default()
                        }],
                        ..Default::default()
                    });
                }
                (
                    TraceId(tid),
                    Trace {
                        resource_spans: rss,
                    },
                )
            })
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out
    })
}

const QUERIES: &[&str] = &[
    "{ }",
    "{ span.a = \"x\" }",
    "{ .a = 200 }",
    "{ span.a != nil }",
    "{ span.b > 1 }",
    "{ span.a =~ \"G.*\" }",
    "{ span.http.method = \"GET\" }",
    "{ span.http.status_code >= 200 }",
    "{ resource.k8s.pod.name = \"pod-1\" }",
    "{ resource.service.name = \"db\" && status = error }",
    "{ .env = nil }",
    "{ span.a = \"x\" || span.b = 2.5 }",
    "{ event:name = \"exception\" && event.a != nil }",
    "{ event.b = \"y\" }",
    "{ kind = server } > { }",
    "{ } >> { status = error }",
    "{ } !< { }",
    "{ } ~ { name = \"db\" }",
    "{ } &<< { span.a != nil }",
    "{ name = \"db\" } | count() > 1",
    "{ } | count() > 3",
    "{ status = error || duration > 40ms } | count() >= 2",
    "{ resource.service.name = \"api\" && span.http.method = \"GET\" } | by(name)",
    "{ } | by(resource.service.name) | count() >= 2",
    "{ } | avg(duration) > 20ms",
    "{ } | max(span.b) > 3",
    "{ trace:rootName = \"root\" && span:childCount > 0 }",
    "{ } | select(span.a, resource.service.name)",
    "{ trace:id = \"40000000000000000000000000000001\" }",
    "{ trace:id = \"40000000000000000000000000000001\" && span.a = \"x\" }",
];

type Answer = BTreeMap<[u8; 16], Vec<(BTreeSet<[u8; 8]>, String, Vec<String>)>>;

fn answer(plan: &SearchPlan, b: &SpanBatch) -> Answer {
    let bound = plan.bind(b);
    let mut out = Answer::new();
    for t in 0..b.traces.len() {
        let sets = bound.eval_trace(t).unwrap_or_default();
        let mut v: Vec<_> = sets
            .iter()
            .map(|s| {
                let mut attrs: Vec<String> = s
                    .spans
                    .iter()
                    .map(|&sp| {
                        format!("{:?}", {
                            let mut a = bound.span_attributes(sp);
                            a.sort_by(|x, y| format!("{x:?}").cmp(&format!("{y:?}")));
                            a
                        })
                    })
                    .collect();
                attrs.sort();
                (
                    s.spans.iter().map(|&sp| b.span_id[sp as usize]).collect(),
                    format!("{:?}", s.attrs),
                    attrs,
                )
            })
            .collect();
        v.sort();
        if !v.is_empty() {
            out.insert(b.traces[t].id, v);
        }
    }
    out
}

/// `traces` written as block `id` in row groups of ~3 kB (several per block).
pub(crate) fn small_row_group_block(
    traces: &[(TraceId, Trace)],
    id: &str,
) -> (vivace_block::FinishedBlock, Bytes) {
    let mut cfg = WriterConfig::new("t", id);
    cfg.row_group_bytes = 3_000;
    let mut w = BlockWriter::new(Vec::new(), cfg).unwrap();
    for (id, t) in traces {
        w.push(*id, t).unwrap();
    }
    let (mut done, data) = w.finish().unwrap();
    set_file_facts(&mut done.meta, data.len() as u64, &data);
    (done, Bytes::from(data))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn block_columnar_search_equals_the_plain_evaluator(traces in traces()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (done, data) = small_row_group_block(&traces, "00000000-0000-4000-8000-000000000009");
        let plain = vivace_model::batch_of(traces.iter().map(|(id, t)| (id, t)));
        for q in QUERIES {
            let parsed = vivace_traceql::parse(q).unwrap();
            let plan = SearchPlan::new(&parsed).unwrap();
            let cols = read_columnar(data.clone(), &done.meta, "data.parquet", &plan.projection).unwrap();
            let want = answer(&plan, &plain);
            if *q == "{ }" {
                prop_assert_eq!(want.len(), traces.len(), "every trace matches {{ }}");
            }
            prop_assert_eq!(&want, &answer(&plan, &cols), "query {}", q);
            // The search path: ranged reads of the projected chunks of the row groups whose
            // dictionaries do not rule the query out.
            let backend = Backend::memory();
            let block = BlockRef::new("t", done.meta.clone());
            let pruned = rt.block_on(async {
                backend.put(&block.key("data.parquet"), data.clone()).await.unwrap();
                // With the query's attribute names: unread dedicated columns and generic
                // attributes whose keys hold none of them are left out.
                read_pruned(
                    &backend,
                    &block,
                    plan.projection,
                    &needles(&done.meta, &plan.required),
                    Some(&plan.attr_names),
                    None,
                )
                .await
                .unwrap()
            });
            prop_assert_eq!(&want, &answer(&plan, &pruned.batch), "query {} (pruned read)", q);
            // A prefilter on span-only columns keeps every trace that matches.
            if let Some(pre) = plan.prefilter() {
                let read = rt.block_on(read_span_columns(
                    &backend,
                    &block,
                    pre.columns(),
                    &needles(&done.meta, &plan.required),
                    &plan.attr_names,
                    None,
                )).unwrap();
                if let Some(read) = read {
                    let candidates = pre.candidates(&read.columns);
                    for id in want.keys() {
                        let at = read.columns.trace_ids.iter().position(|t| t == id);
                        prop_assert!(
                            at.is_some_and(|i| candidates[i]),
                            "query {}: the prefilter drops a matching trace", q
                        );
                    }
                }
            }
        }
    }
}

/// A search for a string no span has reads no row group of a block (only dictionary pages),
/// and one for a string some spans have reads the row groups that hold it.
#[test]
fn absent_strings_prune_every_row_group() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let traces = traces().new_tree(&mut runner).unwrap().current();
    let mut cfg = WriterConfig::new("t", "00000000-0000-4000-8000-00000000000a");
    cfg.row_group_bytes = 3_000;
    let mut w = BlockWriter::new(Vec::new(), cfg).unwrap();
    for (id, t) in &traces {
        w.push(*id, t).unwrap();
    }
    let (mut done, data) = w.finish().unwrap();
    set_file_facts(&mut done.meta, data.len() as u64, &data);
    let backend = Backend::memory();
    let block = BlockRef::new("t", done.meta.clone());
    rt.block_on(backend.put(&block.key("data.parquet"), Bytes::from(data)))
        .unwrap();
    for (q, none_read) in [
        (r#"{ name = "absent" }"#, true),
        (r#"{ resource.service.name = "absent" }"#, true),
        (r#"{ span.a = "absent" }"#, true),
        (r#"{ span.http.method = "absent" }"#, true),
        (r#"{ name = "root" }"#, false),
        (r#"{ trace:id = "1234" }"#, true),
    ] {
        let plan = SearchPlan::new(&vivace_traceql::parse(q).unwrap()).unwrap();
        let r = rt
            .block_on(read_pruned(
                &backend,
                &block,
                plan.projection,
                &needles(&done.meta, &plan.required),
                Some(&plan.attr_names),
                None,
            ))
            .unwrap();
        if none_read {
            assert_eq!(
                r.row_groups_read, 0,
                "{q}: {} of {} row groups read",
                r.row_groups_read, r.row_groups
            );
            assert!(!r.complete);
        } else {
            assert!(r.row_groups_read > 0, "{q}");
        }
    }
    // One trace by ID: one row group read, and the trace found in it.
    let (id, _) = &traces[traces.len() / 2];
    let q = format!("{{ trace:id = \"{id}\" }}");
    let plan = SearchPlan::new(&vivace_traceql::parse(&q).unwrap()).unwrap();
    let r = rt
        .block_on(read_pruned(
            &backend,
            &block,
            plan.projection,
            &needles(&done.meta, &plan.required),
            Some(&plan.attr_names),
            None,
        ))
        .unwrap();
    assert!(
        r.row_groups_read <= 1,
        "{q}: {} row groups read",
        r.row_groups_read
    );
    assert!(r.batch.traces.iter().any(|t| t.id == id.0), "{q}");
}
