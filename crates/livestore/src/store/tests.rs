use std::time::Duration;

use super::*;
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

fn trace(id: u8, spans: &[u8]) -> Trace {
    Trace {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: spans
                    .iter()
                    .map(|s| Span {
                        trace_id: vec![id; 16],
                        span_id: vec![*s; 8],
                        name: "x".repeat(50),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn push(store: &LiveStore, tenant: &TenantId, id: u8, spans: &[u8], now: Instant) {
    let t = trace(id, spans);
    let enc = Bytes::from(t.encode_to_vec());
    let keys = crate::consume::span_keys(&enc).unwrap();
    store.push(tenant, TraceId([id; 16]), &keys, enc, now, Offset(3));
}

fn span_count(store: &LiveStore, tenant: &TenantId, id: u8) -> usize {
    store
        .find_trace(tenant, &TraceId([id; 16]))
        .map_or(0, |(t, _)| vivace_model::span_count(&t))
}

#[test]
fn pushes_combine_dedupe_and_survive_completion() {
    let store = LiveStore::new(Config::default(), LiveStoreMetrics::default());
    let tenant = TenantId::single();
    let now = Instant::now();
    push(&store, &tenant, 1, &[1, 2], now);
    push(&store, &tenant, 1, &[2, 3], now);
    assert_eq!(span_count(&store, &tenant, 1), 3);
    push(&store, &tenant, 1, &[5, 5, 1], now);
    assert_eq!(span_count(&store, &tenant, 1), 4);
    push(&store, &tenant, 1, &[5], now);
    assert_eq!(span_count(&store, &tenant, 1), 4);
    assert_eq!(store.live_traces(&tenant), 1);
    store.sweep(now + Duration::from_secs(6), false);
    assert_eq!(store.live_traces(&tenant), 0);
    assert_eq!(span_count(&store, &tenant, 1), 4);
    // A late span revives the trace; an old one is still dropped.
    push(&store, &tenant, 1, &[3, 4], now + Duration::from_secs(7));
    assert_eq!(store.live_traces(&tenant), 1);
    assert_eq!(span_count(&store, &tenant, 1), 5);
    store.sweep(now + Duration::from_secs(20), false);
    assert_eq!(span_count(&store, &tenant, 1), 5);
    assert_eq!(span_count(&store, &TenantId::new("other").unwrap(), 1), 0);
}

#[test]
fn limits_are_checked_before_writing() {
    let store = LiveStore::new(Config::default(), LiveStoreMetrics::default());
    let tenant = TenantId::single();
    let limits = Limits {
        max_traces_per_user: 2,
        max_bytes_per_trace: 1000,
    };
    let now = Instant::now();
    push(&store, &tenant, 1, &[1], now);
    push(&store, &tenant, 2, &[1], now);
    // Existing traces may grow; a third may not start.
    assert!(matches!(
        store.admit(&tenant, &[(TraceId([1; 16]), 10)], limits),
        Admission::Admit { .. }
    ));
    assert_eq!(
        store.admit(&tenant, &[(TraceId([3; 16]), 10)], limits),
        Admission::LiveTracesExceeded { live: 2, max: 2 }
    );
    match store.admit(
        &tenant,
        &[(TraceId([1; 16]), 990), (TraceId([2; 16]), 10)],
        limits,
    ) {
        Admission::Admit { refused } => {
            assert!(matches!(
                refused[0],
                Some(TraceRefusal::TooLarge { max: 1000, .. })
            ));
            assert!(refused[1].is_none());
        }
        other => panic!("{other:?}"),
    }
    // Once idle, the traces no longer count as live.
    store.sweep(now + Duration::from_secs(6), false);
    assert!(matches!(
        store.admit(&tenant, &[(TraceId([3; 16]), 10)], limits),
        Admission::Admit { .. }
    ));
}

/// What the flusher does once blocks are written: completed traces may then be released.
fn flush_all(store: &LiveStore) {
    for b in store.take_ready(Instant::now(), Duration::ZERO, usize::MAX, true) {
        store.mark_flushed(&b);
    }
}

/// Pushes trace `id` (spans `spans`) at queue offset `offset`.
fn push_at(store: &LiveStore, id: u8, spans: &[u8], now: Instant, offset: u64) {
    let enc = Bytes::from(trace(id, spans).encode_to_vec());
    let keys = crate::consume::span_keys(&enc).unwrap();
    store.push(
        &TenantId::single(),
        TraceId([id; 16]),
        &keys,
        enc,
        now,
        Offset(offset),
    );
}

#[test]
fn past_the_memory_bound_unflushed_traces_are_released_to_the_log() {
    let cfg = Config {
        max_complete_bytes: 100,
        ..Config::default()
    };
    let store = LiveStore::new(cfg, LiveStoreMetrics::default());
    let tenant = TenantId::single();
    let now = Instant::now();
    for id in 0..20u8 {
        push_at(&store, id, &[1, 2, 3], now, 10 + u64::from(id));
    }
    // Nothing can be written (no flusher): past the bound the chunk leaves memory, and only
    // which traces and which part of the queue hold them stays.
    store.sweep(now + Duration::from_secs(3600), true);
    assert!(store.complete_bytes.load(Ordering::Relaxed) <= 100);
    assert_eq!(span_count(&store, &tenant, 0), 0, "released from memory");
    let spilled = store.take_spilled();
    assert_eq!(spilled.len(), 1);
    let (t, s) = &spilled[0];
    assert_eq!(t, &tenant);
    assert_eq!(s.traces.len(), 20);
    assert!(
        s.from <= Offset(10) && s.to > Offset(29),
        "{:?}..{:?}",
        s.from,
        s.to
    );
    // The queue keeps them: the live-store's offset stays below them until they are written.
    assert_eq!(store.low_watermark(), Some(s.from));
    assert_eq!(store.backlog(now).1, 20);
    assert_eq!(
        store
            .metrics
            .spilled_traces
            .get_or_create(&TenantLabel {
                tenant: tenant.to_string()
            })
            .get(),
        20
    );
    store.mark_spill_flushed(t, s);
    assert!(store.take_spilled().is_empty());
    assert_eq!(store.low_watermark(), None);
    assert_eq!(store.backlog(now), (0, 0, Duration::ZERO));
}

#[test]
fn a_released_chunk_reads_back_only_the_queue_range_of_its_own_parts() {
    // Released long after it was built, a chunk used to read back everything appended until
    // then: at full ingest, gigabytes of the log per block of released traces.
    let cfg = Config {
        max_complete_bytes: 0,
        max_block_bytes: 1,
        ..Config::default()
    };
    let store = LiveStore::new(cfg, LiveStoreMetrics::default());
    let now = Instant::now();
    for id in 0..10u8 {
        push_at(&store, id, &[1], now, 10 + u64::from(id));
    }
    for id in 10..20u8 {
        push_at(
            &store,
            id,
            &[1],
            now + Duration::from_secs(10),
            100 + u64::from(id),
        );
    }
    // The first ten are idle, the others not: only the first ten complete, and leave memory.
    store.sweep(now + Duration::from_secs(11), false);
    let spilled = store.take_spilled();
    assert_eq!(spilled.len(), 1);
    let s = &spilled[0].1;
    assert_eq!((s.from, s.to), (Offset(10), Offset(20)));
    assert_eq!(s.traces.len(), 10);
}

#[test]
fn a_trace_completed_twice_and_released_twice_reads_back_whole() {
    let cfg = Config {
        max_block_bytes: 1,
        ..Config::default()
    };
    let store = LiveStore::new(cfg, LiveStoreMetrics::default());
    let now = Instant::now();
    // Completed into a first chunk, then a late span: completed again, into a second chunk that
    // holds the whole trace but whose range holds only the late span's record.
    push_at(&store, 1, &[1, 2], now, 10);
    store.sweep(now + Duration::from_secs(6), false);
    push_at(&store, 1, &[3], now + Duration::from_secs(7), 50);
    store.sweep(now + Duration::from_secs(13), false);
    let t = store.tenant(&TenantId::single());
    // Both released, oldest first.
    assert!(store.spill_oldest(&t));
    assert!(store.spill_oldest(&t));
    let q = t.spilled.lock();
    assert_eq!(q.len(), 2);
    for (s, at) in q.iter().zip([10, 50]) {
        assert!(s.traces.contains(&TraceId([1; 16])));
        assert!(
            s.from <= Offset(at) && Offset(at) < s.to,
            "{:?}..{:?}",
            s.from,
            s.to
        );
    }
}

#[test]
fn chunks_being_written_are_not_released() {
    let cfg = Config {
        max_complete_bytes: 1000,
        ..Config::default()
    };
    let store = LiveStore::new(cfg, LiveStoreMetrics::default());
    let tenant = TenantId::single();
    let now = Instant::now();
    for id in 0..5u8 {
        push(&store, &tenant, id, &[1, 2, 3], now);
    }
    store.sweep(now + Duration::from_secs(10), false);
    assert!(store.complete_bytes.load(Ordering::Relaxed) <= 1000);
    // Taken by the flusher; then memory passes the bound: other chunks go, this one stays.
    let taken = store.take_ready(now, Duration::ZERO, usize::MAX, true);
    for id in 10..250u8 {
        push(
            &store,
            &tenant,
            id,
            &[1, 2, 3, 4, 5, 6, 7, 8],
            now + Duration::from_secs(11),
        );
    }
    store.sweep(now + Duration::from_secs(30), false);
    assert_eq!(
        span_count(&store, &tenant, 0),
        3,
        "kept while being written"
    );
    assert_eq!(span_count(&store, &tenant, 10), 0, "released instead");
    // The write failed: the oldest, it goes first when the bound is passed again.
    store.write_failed(&taken[0]);
    for id in 10..250u8 {
        push(
            &store,
            &tenant,
            id,
            &[9, 10, 11, 12],
            now + Duration::from_secs(31),
        );
    }
    store.sweep(now + Duration::from_secs(40), false);
    assert_eq!(
        span_count(&store, &tenant, 0),
        0,
        "released once the write failed"
    );
    assert!(store.complete_bytes.load(Ordering::Relaxed) <= 1000);
}

#[test]
fn memory_bound_releases_oldest_completed_traces() {
    let cfg = Config {
        max_complete_bytes: 2000,
        ..Config::default()
    };
    let store = LiveStore::new(cfg, LiveStoreMetrics::default());
    let tenant = TenantId::single();
    let now = Instant::now();
    for id in 0..50u8 {
        push(
            &store,
            &tenant,
            id,
            &[1, 2, 3],
            now + Duration::from_millis(id as u64),
        );
        store.sweep(
            now + Duration::from_secs(10) + Duration::from_millis(id as u64),
            true,
        );
        flush_all(&store);
    }
    assert_eq!(span_count(&store, &tenant, 49), 3, "newest kept");
    assert_eq!(span_count(&store, &tenant, 0), 0, "oldest released");
    assert!(store.complete_bytes.load(Ordering::Relaxed) <= 2000);
}

#[test]
fn traces_completed_together_share_chunks_and_stay_readable() {
    let store = LiveStore::new(Config::default(), LiveStoreMetrics::default());
    let tenant = TenantId::single();
    let now = Instant::now();
    for id in 0..200u8 {
        push(&store, &tenant, id, &[1, 2, 3, id.max(4)], now);
        if id % 3 == 0 {
            push(&store, &tenant, id, &[250], now); // a second part for some
        }
    }
    store.sweep(now + Duration::from_secs(6), false);
    assert_eq!(store.live_traces(&tenant), 0);
    let chunks = store.tenant(&tenant).completed.lock().len();
    assert!(
        (1..10).contains(&chunks),
        "{chunks} chunks for 200 small traces"
    );
    for id in 0..200u8 {
        let want = if id % 3 == 0 { 5 } else { 4 };
        assert_eq!(span_count(&store, &tenant, id), want, "trace {id}");
    }
    // Reviving one trace moves it to a newer chunk; evicting the old chunk keeps it.
    push(&store, &tenant, 7, &[50], now + Duration::from_secs(7));
    store.sweep(now + Duration::from_secs(13), false);
    flush_all(&store);
    let late = now + Duration::from_secs(6) + Config::default().complete_block_timeout;
    store.sweep(late, false);
    assert_eq!(span_count(&store, &tenant, 7), 5);
    assert_eq!(span_count(&store, &tenant, 8), 0, "released with its chunk");
}

#[test]
fn queue_offsets_stay_needed_until_the_block_is_written() {
    let store = LiveStore::new(Config::default(), LiveStoreMetrics::default());
    let tenant = TenantId::new("t").unwrap();
    let now = Instant::now();
    assert_eq!(store.low_watermark(), None);
    {
        let guard = store.begin_append(Offset(2));
        assert_eq!(
            store.low_watermark(),
            Some(Offset(2)),
            "an append in flight"
        );
        drop(guard);
    }
    push(&store, &tenant, 1, &[1, 2], now);
    assert_eq!(store.low_watermark(), Some(Offset(3)), "a live trace");
    store.sweep(now, true);
    assert_eq!(
        store.low_watermark(),
        Some(Offset(3)),
        "completed, not yet in a block"
    );
    assert!(
        store
            .take_ready(now, Duration::from_secs(30), 1 << 30, false)
            .is_empty()
    );
    let blocks = store.take_ready(now, Duration::from_secs(30), 1 << 30, true);
    assert_eq!(blocks.len(), 1);
    let traces = blocks[0].traces().unwrap();
    assert_eq!(traces.len(), 1);
    store.mark_flushed(&blocks[0]);
    assert_eq!(store.low_watermark(), None, "in a block: the log may go");
    assert!(store.take_ready(now, Duration::ZERO, 0, true).is_empty());
    // Still readable from memory until complete_block_timeout.
    assert!(store.find_trace(&tenant, &TraceId([1; 16])).is_some());
}

/// Which (trace byte, span count) a search of the live-store sees, over every batch it offers.
fn searched(store: &LiveStore, tenant: &TenantId) -> Vec<(u8, usize)> {
    let (batches, _) = store.search_batches(tenant);
    let mut out = Vec::new();
    for (b, mask) in batches.into_iter().map(|b| b.get()) {
        let idx: Vec<usize> = match mask {
            Some(m) => m.into_iter().map(|i| i as usize).collect(),
            None => (0..b.traces.len()).collect(),
        };
        for t in idx {
            out.push((b.traces[t].id[0], b.traces[t].spans.len()));
        }
    }
    out.sort();
    out
}

#[test]
fn search_sees_every_trace_not_in_a_block_once_and_whole() {
    let store = LiveStore::new(Config::default(), LiveStoreMetrics::default());
    let tenant = TenantId::single();
    let now = Instant::now();
    push(&store, &tenant, 1, &[1, 2], now);
    push(&store, &tenant, 2, &[1], now);
    assert_eq!(searched(&store, &tenant), vec![(1, 2), (2, 1)], "live");
    // Live traces' batches are kept between searches and rebuilt only for traces that changed.
    push(&store, &tenant, 2, &[2], now);
    assert_eq!(
        searched(&store, &tenant),
        vec![(1, 2), (2, 2)],
        "live, changed"
    );
    assert_eq!(
        searched(&store, &tenant),
        vec![(1, 2), (2, 2)],
        "live, unchanged"
    );
    push(&store, &tenant, 3, &[1], now);
    assert_eq!(
        searched(&store, &tenant),
        vec![(1, 2), (2, 2), (3, 1)],
        "live, one more"
    );
    assert!(store.metrics.search_batch_bytes.get() > 0);
    store.sweep(now + Duration::from_secs(6), false);
    assert_eq!(
        searched(&store, &tenant),
        vec![(1, 2), (2, 2), (3, 1)],
        "completed, in a chunk batch"
    );
    // Trace 1 is reopened by a late span: searched whole from its parts, not from the chunk.
    push(&store, &tenant, 1, &[3], now + Duration::from_secs(7));
    assert_eq!(
        searched(&store, &tenant),
        vec![(1, 3), (2, 2), (3, 1)],
        "reopened"
    );
    store.sweep(now + Duration::from_secs(20), false);
    assert_eq!(
        searched(&store, &tenant),
        vec![(1, 3), (2, 2), (3, 1)],
        "completed again"
    );
    for b in store.take_ready(Instant::now(), Duration::ZERO, usize::MAX, true) {
        store.mark_flushed(&b);
    }
    assert!(
        searched(&store, &tenant).is_empty(),
        "in blocks: search reads the blocks"
    );
    assert_eq!(
        store.metrics.search_batch_bytes.get(),
        0,
        "batches dropped with their chunks"
    );
}

/// The IDs of a tenant's live traces, as the shards list them for the sweep.
fn listed_live(store: &LiveStore) -> Vec<u8> {
    let t = store.tenant(&TenantId::single());
    let mut ids: Vec<u8> = t
        .shards
        .iter()
        .flat_map(|s| s.lock().live.iter().map(|id| id.0[0]).collect::<Vec<_>>())
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn the_sweep_lists_exactly_the_live_traces() {
    let store = LiveStore::new(Config::default(), LiveStoreMetrics::default());
    let now = Instant::now();
    push_at(&store, 1, &[1, 2], now, 10);
    push_at(&store, 2, &[1], now + Duration::from_secs(4), 11);
    assert_eq!(listed_live(&store), vec![1, 2]);
    // Trace 1 goes idle and completes; trace 2 is still live.
    store.sweep(now + Duration::from_secs(6), false);
    assert_eq!(listed_live(&store), vec![2]);
    // A late span opens trace 1 again; it completes again with the whole trace.
    push_at(&store, 1, &[3], now + Duration::from_secs(7), 12);
    assert_eq!(listed_live(&store), vec![1, 2]);
    store.sweep(now + Duration::from_secs(13), false);
    assert!(listed_live(&store).is_empty());
    assert_eq!(span_count(&store, &TenantId::single(), 1), 3);
    assert_eq!(span_count(&store, &TenantId::single(), 2), 1);
}
