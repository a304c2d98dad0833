//! Span-only reads for TraceQL metrics (`read_span_columns`) count what the plain evaluator
//! counts over the OTLP traces, on generated traces written to blocks — or decline, when a
//! row group could hold a wanted attribute somewhere span-only columns do not look.

use proptest::prelude::*;
use vivace_block::{BlockRef, needles, read_span_columns};
use vivace_store::Backend;
use vivace_traceql::metrics::{MetricsPlan, Range};

use crate::search_prop::{small_row_group_block, traces};

const QUERIES: &[&str] = &[
    "{ } | rate()",
    "{ } | count_over_time() by (resource.service.name)",
    "{ status = error } | quantile_over_time(duration, .5, .9) by (name)",
    "{ span.http.method = \"GET\" } | count_over_time() by (resource.k8s.pod.name)",
    "{ kind = server } | sum_over_time(duration) by (span.http.method)",
    "{ resource.service.name =~ \"a.*|db\" } | histogram_over_time(duration)",
    "{ span.a = \"x\" } | rate()",
    "{ span.env = nil && name != \"db\" } | max_over_time(duration) by (status, kind)",
    "{ resource.service.name = \"web\" } | rate()",
    "{ span.http.status_code >= 200 } | count_over_time() by (span.http.status_code)",
    "{ } | avg_over_time(span.http.status_code) by (resource.service.name)",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn span_only_reads_count_as_the_plain_evaluator(traces in traces()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (done, data) = small_row_group_block(&traces, "00000000-0000-4000-8000-00000000000b");
        let backend = Backend::memory();
        let block = BlockRef::new("t", done.meta.clone());
        rt.block_on(backend.put(&block.key("data.parquet"), data)).unwrap();
        let plain = vivace_model::batch_of(traces.iter().map(|(id, t)| (id, t)));
        // The generated spans start at 1.7e18 ns plus a few milliseconds.
        let start = 1_700_000_000_000_000_000u64 - 10_000_000_000;
        let range = Range::aligned(start, start + 60_000_000_000, 10_000_000_000);
        let mut span_only = 0;
        for q in QUERIES {
            let plan = MetricsPlan::new(&vivace_traceql::parse(q).unwrap(), range, 20).unwrap();
            let cols = plan.span_columns().expect("every query here is span-only");
            let fetch = plan.fetch();
            let read = rt.block_on(read_span_columns(
                &backend,
                &block,
                cols,
                &needles(&done.meta, &fetch.required),
                fetch.names_opt.as_ref().expect("metrics name their attributes"),
                None,
            )).unwrap();
            let Some(read) = read else { continue };
            span_only += 1;
            let mut want = plan.partial();
            plan.observe(&plain, &mut (0..plain.traces.len()), &mut want).unwrap();
            let mut got = plan.partial();
            plan.observe_columns(&read.columns, &mut got).unwrap();
            let (want, got) = (plan.finish(want), plan.finish(got));
            if *q == "{ } | rate()" {
                let spans: f64 = want[0].samples.iter().map(|(_, v)| v * 10.0).sum();
                prop_assert_eq!(spans.round() as usize, plain.span_count());
            }
            // Debug text: exemplar values of counts are NaN, which equality refuses.
            prop_assert_eq!(format!("{want:?}"), format!("{got:?}"), "query {}", q);
        }
        // Intrinsics and service names never need the generic attributes.
        prop_assert!(span_only >= 3, "{} queries read span-only", span_only);
    }
}

/// On Tempo's own vParquet5 block, span-only reads count what its batch counts.
#[test]
fn span_only_reads_of_a_tempo_block_count_as_its_batch() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = crate::block("vParquet5");
    let meta = vivace_block::BlockMeta::read(&dir).unwrap();
    let backend = Backend::memory();
    let block = BlockRef::new("t", meta.clone());
    let data = bytes::Bytes::from(std::fs::read(dir.join("data.parquet")).unwrap());
    rt.block_on(backend.put(&block.key("data.parquet"), data))
        .unwrap();
    let (start, end) = meta.time_range().expect("the block has a time range");
    let range = Range::aligned(
        (start as u64 - 60) * 1_000_000_000,
        (end as u64 + 60) * 1_000_000_000,
        60_000_000_000,
    );
    let mut span_only = 0;
    for q in [
        "{ } | count_over_time() by (resource.service.name)",
        "{ status = error } | count_over_time() by (name)",
        "{ span.http.route != nil } | count_over_time() by (span.http.route)",
        "{ } | quantile_over_time(duration, .5, .9) by (kind)",
        "{ resource.service.name =~ \"svc-1.*\" } | max_over_time(duration) by (status)",
    ] {
        let plan = MetricsPlan::new(&vivace_traceql::parse(q).unwrap(), range, 20).unwrap();
        let fetch = plan.fetch();
        let names = fetch.names_opt.as_ref().unwrap();
        let needles = needles(&meta, &fetch.required);
        let (batch, _, _) = rt
            .block_on(vivace_block::read_batch(
                &backend,
                &block,
                fetch.projection,
                &needles,
                Some(names),
                None,
            ))
            .unwrap();
        let mut want = plan.partial();
        plan.observe(&batch, &mut (0..batch.traces.len()), &mut want)
            .unwrap();
        let cols = plan.span_columns().unwrap();
        let Some(read) = rt
            .block_on(read_span_columns(
                &backend, &block, cols, &needles, names, None,
            ))
            .unwrap()
        else {
            continue;
        };
        span_only += 1;
        let mut got = plan.partial();
        plan.observe_columns(&read.columns, &mut got).unwrap();
        let (want, got) = (plan.finish(want), plan.finish(got));
        assert!(!want.is_empty(), "{q}");
        assert_eq!(format!("{want:?}"), format!("{got:?}"), "{q}");
    }
    assert!(span_only >= 4, "{span_only} queries read span-only");
}
