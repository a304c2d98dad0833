//! Property: compaction by copying rows (`compact_rows`) gives, trace by trace, what the naive
//! merge gives — every input decoded, pieces of a trace combined (spans deduplicated), traces
//! over `max_bytes_per_trace` trimmed, written again — for inputs with disjoint traces, traces
//! split across inputs and spans present in several.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use proptest::prelude::*;
use vivace_block::{
    BlockMeta, BlockWriter, CopyInput, WriterConfig, compact_rows, read_all_traces, set_file_facts,
    trim_trace,
};
use vivace_common::TraceId;
use vivace_proto::tempopb::Trace;

fn write(traces: &[(TraceId, Trace)], n: u8, row_group_bytes: usize) -> (Bytes, BlockMeta) {
    let mut cfg = WriterConfig::new("t", &format!("00000000-0000-4000-8000-00000000000{n}"));
    cfg.row_group_bytes = row_group_bytes;
    let mut w = BlockWriter::new(Vec::new(), cfg).unwrap();
    for (id, t) in traces {
        w.push(*id, t).unwrap();
    }
    let (mut done, data) = w.finish().unwrap();
    set_file_facts(&mut done.meta, data.len() as u64, &data);
    (Bytes::from(data), done.meta)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn copying_rows_equals_the_naive_merge(
        traces in crate::search_prop::traces(),
        placement in proptest::collection::vec(0u8..4, 6),
        limit in prop_oneof![Just(0usize), Just(700usize), Just(2_000usize)],
        // Inputs of small row groups, or of one row group read a few rows at a time.
        (input_row_group, window) in prop_oneof![Just((1_500usize, 1024usize)), (Just(1usize << 20), 1usize..4)],
    ) {
        // Each trace goes whole to input 0, 1 or 2, or is split between 0 and 1 with its first
        // resource in both (a duplicate span).
        let mut inputs: [Vec<(TraceId, Trace)>; 3] = Default::default();
        for (i, (id, t)) in traces.iter().enumerate() {
            match placement[i % placement.len()] {
                p @ 0..=2 => inputs[p as usize].push((*id, t.clone())),
                _ => {
                    let (mut a, mut b) = (Trace::default(), Trace::default());
                    for (k, rs) in t.resource_spans.iter().enumerate() {
                        if k == 0 || k % 2 == 0 {
                            a.resource_spans.push(rs.clone());
                        }
                        if k == 0 || k % 2 == 1 {
                            b.resource_spans.push(rs.clone());
                        }
                    }
                    inputs[0].push((*id, a));
                    inputs[1].push((*id, b));
                }
            }
        }
        let mut sources = Vec::new();
        for (n, input) in inputs.iter().enumerate() {
            if input.is_empty() {
                continue;
            }
            let (data, meta) = write(input, n as u8, input_row_group);
            sources.push((data, meta, format!("in-{n}")));
        }
        // The naive merge, through OTLP.
        let mut pieces: BTreeMap<TraceId, Vec<Trace>> = BTreeMap::new();
        for (data, meta, key) in &sources {
            for (id, t) in read_all_traces(data.clone(), meta, key).unwrap() {
                pieces.entry(id).or_default().push(t);
            }
        }
        let mut naive = Vec::new();
        for (id, mut p) in pieces {
            let mut t = if p.len() == 1 {
                p.pop().unwrap()
            } else {
                vivace_model::combine_traces(p, &mut HashSet::new())
            };
            if limit > 0 {
                trim_trace(&mut t, limit);
            }
            naive.push((id, t));
        }
        let (naive_data, naive_meta) = write(&naive, 8, 3_000);
        let want = read_all_traces(naive_data, &naive_meta, "naive").unwrap();

        let mut cfg = WriterConfig::new("t", "00000000-0000-4000-8000-000000000009");
        cfg.row_group_bytes = 3_000;
        let inputs = sources
            .into_iter()
            .map(|(data, meta, key)| {
                let mut input = CopyInput::from_bytes(data, meta, key).unwrap();
                input.window_rows = window;
                input
            })
            .collect();
        let out = compact_rows(inputs, cfg, limit).unwrap().expect("same schema");
        prop_assert_eq!(out.done.meta.total_objects as usize, want.len());
        let got = read_all_traces(Bytes::from(out.data), &out.done.meta, "out").unwrap();
        prop_assert_eq!(got.len(), want.len());
        for ((gi, gt), (wi, wt)) in got.iter().zip(&want) {
            prop_assert_eq!(gi, wi);
            prop_assert_eq!(gt, wt, "trace {}", gi);
        }
        prop_assert_eq!(out.done.meta.start_time, naive_meta.start_time);
        prop_assert_eq!(out.done.meta.end_time, naive_meta.end_time);
    }
}
