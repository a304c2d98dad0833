//! Traces still receiving spans, as span batches kept across searches.
//!
//! A search needs every live trace whole in columnar form. Building that batch from the traces'
//! encoded parts costs about as much as the rest of a search over recent data, and most live
//! traces have not changed since the previous search. So the batches are kept: each search
//! builds one new segment of only the traces changed (or new) since the last one — found by
//! the version every change of a trace gets — and masks out, in the older segments, the rows of
//! traces that changed, completed or left. A segment whose current rows fall below a quarter of
//! its rows is dropped and its current traces rebuilt into the new segment, so the rows kept
//! stay within about four times the live traces. What a search sees is exactly the traces'
//! state when it ran, as if the whole batch had been built then.

use std::collections::HashMap;
use std::sync::Arc;

use vivace_common::TraceId;
use vivace_traceql::batch::SpanBatch;

use super::SearchBatch;

/// The segments of one tenant's live traces (see the module docs).
#[derive(Debug, Default)]
pub(super) struct LiveSegments {
    next_id: u64,
    segments: Vec<Segment>,
    /// Where each live trace's rows are, as of the last search.
    at: HashMap<TraceId, Place>,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    batch: Arc<SpanBatch>,
}

#[derive(Debug, Clone, Copy)]
struct Place {
    /// The trace's version its rows were built from.
    version: u64,
    segment: u64,
    /// Its index among the segment's traces.
    row: u32,
}

/// What a search asks of one live trace: its ID and the version of its current state.
#[derive(Debug, Clone, Copy)]
pub(super) struct LiveTrace {
    pub id: TraceId,
    pub version: u64,
}

/// What [`LiveSegments::batches`] did to the bytes kept (for the store's gauge).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Kept {
    pub added: u64,
    pub dropped: u64,
}

impl LiveSegments {
    /// The batches holding exactly `live` (every live trace, at its current version), each with
    /// the mask of its current rows (`None`: all of them). `build` makes a batch of the given
    /// traces, in their order, from their state now; it is called once, for the traces that
    /// changed since the last search or whose segment is dropped.
    pub(super) fn batches(
        &mut self,
        live: &[LiveTrace],
        build: impl FnOnce(&[LiveTrace]) -> SpanBatch,
    ) -> (Vec<SearchBatch>, Kept) {
        let mut current: HashMap<u64, u32> = HashMap::new();
        for t in live {
            if let Some(p) = self.at.get(&t.id).filter(|p| p.version == t.version) {
                *current.entry(p.segment).or_default() += 1;
            }
        }
        let mut kept = Kept::default();
        self.segments.retain(|s| {
            let n = current.get(&s.id).copied().unwrap_or(0) as usize;
            let keep = n * 4 >= s.batch.traces.len() && n > 0;
            if !keep {
                kept.dropped += s.batch.approx_bytes() as u64;
            }
            keep
        });
        let alive = |p: &Place| {
            self.segments
                .binary_search_by_key(&p.segment, |s| s.id)
                .is_ok()
        };
        let mut at = HashMap::with_capacity(live.len());
        let mut dirty = Vec::new();
        for t in live {
            match self.at.get(&t.id) {
                Some(p) if p.version == t.version && alive(p) => {
                    at.insert(t.id, *p);
                }
                _ => dirty.push(*t),
            }
        }
        if !dirty.is_empty() {
            let id = self.next_id;
            self.next_id += 1;
            let batch = build(&dirty);
            kept.added += batch.approx_bytes() as u64;
            for (row, t) in dirty.iter().enumerate() {
                let place = Place {
                    version: t.version,
                    segment: id,
                    row: row as u32,
                };
                at.insert(t.id, place);
            }
            self.segments.push(Segment {
                id,
                batch: Arc::new(batch),
            });
        }
        self.at = at;
        let mut rows: HashMap<u64, Vec<u32>> = HashMap::new();
        for p in self.at.values() {
            rows.entry(p.segment).or_default().push(p.row);
        }
        let out = self
            .segments
            .iter()
            .map(|s| {
                let mut mask = rows.remove(&s.id).unwrap_or_default();
                mask.sort_unstable();
                let all = mask.len() == s.batch.traces.len();
                (s.batch.clone(), (!all).then_some(mask))
            })
            .collect();
        (out, kept)
    }

    /// Whether the rows kept for trace `id` are those of `version`.
    pub(super) fn is_current(&self, id: &TraceId, version: u64) -> bool {
        self.at.get(id).is_some_and(|p| p.version == version)
    }

    /// Bytes of the batches kept.
    #[cfg(test)]
    fn bytes(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.batch.approx_bytes() as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vivace_traceql::batch::{BatchBuilder, SpanInput};

    fn id(n: u8) -> TraceId {
        TraceId([n; 16])
    }

    /// A batch of one span per trace, named after the trace's version.
    fn build(ts: &[LiveTrace]) -> SpanBatch {
        let mut bb = BatchBuilder::new();
        for t in ts {
            bb.begin_trace(t.id.0);
            bb.begin_resource();
            bb.begin_scope("", "");
            bb.span(&SpanInput {
                id: [1; 8],
                parent_id: [0; 8],
                name: &format!("v{}", t.version),
                kind: vivace_traceql::ast::KindValue::Unspecified,
                status: vivace_traceql::ast::StatusValue::Unset,
                status_message: "",
                start_ns: 1,
                end_ns: 2,
                child_of_link: false,
            });
            bb.end_trace();
        }
        bb.finish()
    }

    /// (trace ID byte, version) of every current row the batches show.
    fn seen(batches: &[SearchBatch]) -> Vec<(u8, String)> {
        let mut out = Vec::new();
        for (b, mask) in batches {
            let rows: Vec<u32> = match mask {
                Some(m) => m.clone(),
                None => (0..b.traces.len() as u32).collect(),
            };
            for r in rows {
                let t = &b.traces[r as usize];
                let span = t.spans.start as usize;
                out.push((t.id[0], b.str(b.span_name[span]).to_string()));
            }
        }
        out.sort();
        out
    }

    fn live(ts: &[(u8, u64)]) -> Vec<LiveTrace> {
        ts.iter()
            .map(|&(n, version)| LiveTrace { id: id(n), version })
            .collect()
    }

    #[test]
    fn searches_see_every_live_trace_at_its_version_building_only_changes() {
        let mut s = LiveSegments::default();
        let mut built = Vec::new();
        let mut run = |s: &mut LiveSegments, ts: &[(u8, u64)]| {
            let (batches, _) = s.batches(&live(ts), |d| {
                built.push(d.iter().map(|t| t.id.0[0]).collect::<Vec<_>>());
                build(d)
            });
            seen(&batches)
        };
        let v = |pairs: &[(u8, u64)]| -> Vec<(u8, String)> {
            let mut out: Vec<_> = pairs.iter().map(|&(n, v)| (n, format!("v{v}"))).collect();
            out.sort();
            out
        };
        let first: Vec<(u8, u64)> = (0..8).map(|n| (n, 1)).collect();
        assert_eq!(run(&mut s, &first), v(&first));
        // Unchanged: nothing built.
        assert_eq!(run(&mut s, &first), v(&first));
        // Trace 3 changed, trace 5 left, trace 9 arrived: only 3 and 9 are built.
        let second = [
            (0, 1),
            (1, 1),
            (2, 1),
            (3, 2),
            (4, 1),
            (6, 1),
            (7, 1),
            (9, 1),
        ];
        assert_eq!(run(&mut s, &second), v(&second));
        // Most of the first segment left: it is dropped, its one remaining trace rebuilt.
        let third = [(3, 2), (9, 1), (0, 1)];
        assert_eq!(run(&mut s, &third), v(&third));
        assert_eq!(run(&mut s, &[]), vec![]);
        assert_eq!(
            built,
            vec![vec![0, 1, 2, 3, 4, 5, 6, 7], vec![3, 9], vec![0]]
        );
        assert_eq!(s.bytes(), 0, "nothing live, nothing kept");
    }
}
