//! Reading blocks written by real Tempo (testdata/tempo-blocks, see its README): fixture traces
//! come back by ID with the spans and attributes that were sent, and the vParquet4 and vParquet5
//! readers agree on every trace the two blocks share.

mod columnar;
mod compact_prop;
mod metrics_prop;
mod search_prop;
mod trace_pages;
mod write;

use std::collections::BTreeMap;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use vivace_block::{BlockMeta, find_trace_by_id_local, trace_ids};
use vivace_common::TraceId;
use vivace_proto::otlp::common::{KeyValue, any_value};
use vivace_proto::tempopb::Trace;

pub(crate) fn block(version: &str) -> PathBuf {
    let root = std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("../../testdata/tempo-blocks")
    .join(version);
    std::fs::read_dir(&root)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

fn fixture_id(label: &str, len: usize) -> Vec<u8> {
    let mut id = Sha256::digest(label.as_bytes())[..len].to_vec();
    id[0] |= 0x10;
    id
}

fn read(version: &str, id: &TraceId) -> Option<Trace> {
    let dir = block(version);
    let meta = BlockMeta::read(&dir).unwrap();
    assert_eq!(meta.format, version);
    find_trace_by_id_local(&dir, &meta, id).unwrap()
}

/// span ID → (resource attributes, span) with attributes sorted by key (dedicated columns
/// reorder them) and times relative to the trace's first span (the blocks were written a minute
/// apart).
fn spans(t: &Trace) -> BTreeMap<Vec<u8>, (Vec<KeyValue>, vivace_proto::otlp::trace::Span)> {
    let t0 = t
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let mut out = BTreeMap::new();
    for rs in &t.resource_spans {
        let mut res = rs.resource.clone().unwrap_or_default().attributes;
        res.sort_by(|a, b| a.key.cmp(&b.key));
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                let mut s = s.clone();
                s.attributes.sort_by(|a, b| a.key.cmp(&b.key));
                s.start_time_unix_nano -= t0;
                s.end_time_unix_nano -= t0;
                for e in &mut s.events {
                    e.time_unix_nano -= t0;
                }
                out.insert(s.span_id.clone(), (res.clone(), s));
            }
        }
    }
    out
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

#[test]
fn fixture_traces_come_back_with_their_structure() {
    let t1 = TraceId::from_hex("5431").unwrap();
    for version in ["vParquet5", "vParquet4"] {
        let t = read(version, &t1).unwrap_or_else(|| panic!("{version}: S/T1 not found"));
        let spans = spans(&t);
        assert_eq!(spans.len(), 7, "{version}");
        let a = &spans[&fixture_id("S/a", 8)];
        assert_eq!(a.1.name, "GET /");
        assert_eq!(a.1.kind, 2, "server");
        assert_eq!(a.1.status.as_ref().map(|s| s.code), Some(1), "ok");
        assert_eq!(
            a.1.end_time_unix_nano - a.1.start_time_unix_nano,
            100_000_000
        );
        assert_eq!(
            attr(&a.0, "service.name"),
            Some(&any_value::Value::StringValue("frontend".into()))
        );
        let c = &spans[&fixture_id("S/c", 8)];
        assert_eq!(c.1.parent_span_id, fixture_id("S/b", 8));
        assert_eq!(c.1.status.as_ref().map(|s| s.code), Some(2), "error");
        assert_eq!(
            attr(&c.0, "service.name"),
            Some(&any_value::Value::StringValue("auth".into()))
        );
    }
}

#[test]
fn attribute_types_survive() {
    let y = TraceId::from_slice(&fixture_id("Y/T", 16)).unwrap();
    for version in ["vParquet5", "vParquet4"] {
        let t = read(version, &y).unwrap_or_else(|| panic!("{version}: Y/T not found"));
        let spans = spans(&t);
        let (res, y1) = &spans[&fixture_id("Y/y1", 8)];
        use any_value::Value::*;
        assert_eq!(
            attr(&y1.attributes, "code"),
            Some(&IntValue(200)),
            "{version}"
        );
        assert_eq!(attr(&y1.attributes, "ratio"), Some(&DoubleValue(0.5)));
        assert_eq!(attr(&y1.attributes, "flag"), Some(&BoolValue(true)));
        assert_eq!(
            attr(&y1.attributes, "str"),
            Some(&StringValue("200".into()))
        );
        assert_eq!(
            attr(&y1.attributes, "env"),
            Some(&StringValue("span-level".into()))
        );
        assert_eq!(attr(res, "env"), Some(&StringValue("res-level".into())));
        assert_eq!(attr(res, "region"), Some(&StringValue("eu".into())));
        let (_, y2) = &spans[&fixture_id("Y/y2", 8)];
        assert_eq!(
            y2.status.as_ref().map(|s| (s.code, s.message.as_str())),
            Some((2, "boom"))
        );
        assert_eq!(attr(&y2.attributes, "ratio"), Some(&DoubleValue(1.0)));
    }
}

#[test]
fn the_two_readers_agree_and_unknown_ids_are_absent() {
    let v5: Vec<TraceId> = trace_ids(&block("vParquet5")).unwrap();
    let v4: Vec<TraceId> = trace_ids(&block("vParquet4")).unwrap();
    assert_eq!(v5.len(), 363);
    assert_eq!(v4.len(), 213);
    assert!(
        v5.windows(2).all(|w| w[0] < w[1]),
        "rows are sorted by trace ID"
    );
    let mut shared = 0;
    for id in v4.iter().filter(|id| v5.contains(id)) {
        let a = spans(&read("vParquet5", id).unwrap());
        let b = spans(&read("vParquet4", id).unwrap());
        assert_eq!(a, b, "trace {id}");
        shared += 1;
    }
    assert!(
        shared > 10,
        "the blocks share the fixture traces ({shared})"
    );
    for id in v5.iter().step_by(37) {
        assert!(read("vParquet5", id).is_some());
    }
    assert!(read("vParquet5", &TraceId([0xff; 16])).is_none());
    assert!(read("vParquet4", &TraceId([0x01; 16])).is_none());
}

#[test]
fn lookups_by_id_equal_whole_rows_on_tempos_blocks() {
    // A lookup reads only the columns OTLP needs (no nested sets, summaries, empty dedicated
    // slots); every row read whole gives the same trace.
    for v in ["vParquet5", "vParquet4"] {
        let dir = block(v);
        let meta = BlockMeta::read(&dir).unwrap();
        let data = bytes::Bytes::from(std::fs::read(dir.join("data.parquet")).unwrap());
        let all = vivace_block::read_all_traces(data, &meta, "data.parquet").unwrap();
        assert!(all.len() > 200);
        for (id, trace) in all {
            let found = find_trace_by_id_local(&dir, &meta, &id).unwrap();
            assert_eq!(found.as_ref(), Some(&trace), "{v}: trace {id}");
        }
    }
}

#[tokio::test]
async fn local_bucket_listing_and_lookups_through_the_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tenant = dir.join("single-tenant");
    std::fs::create_dir_all(&tenant).unwrap();
    for version in ["vParquet5", "vParquet4"] {
        let src = block(version);
        let dst = tenant.join(src.file_name().unwrap());
        std::fs::create_dir_all(&dst).unwrap();
        for f in std::fs::read_dir(&src).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dst.join(f.file_name().unwrap())).unwrap();
        }
    }
    // A half-written block (no meta.json) is not listed.
    std::fs::create_dir_all(tenant.join("half-written")).unwrap();
    std::fs::write(tenant.join("half-written/data.parquet"), "x").unwrap();
    // A protobuf index Tempo left behind would go stale: the poll that rewrites the JSON index
    // removes it.
    std::fs::write(tenant.join("index.pb.zst"), "stale").unwrap();
    let backend = vivace_store::Backend::local(dir).unwrap();
    let list = vivace_store::poll(&backend, &Default::default(), true)
        .await
        .unwrap();
    assert_eq!(list.blocks("single-tenant").len(), 2);
    assert!(!tenant.join("index.pb.zst").exists());
    assert!(
        tenant.join("index.json.gz").exists(),
        "the poll wrote the tenant index"
    );

    // Every trace of both blocks is found through the backend, and absent IDs are not.
    for b in list.blocks("single-tenant") {
        let local = dir.join(b.key(""));
        for id in trace_ids(&local).unwrap() {
            let got = vivace_block::find_trace_by_id(&backend, b, &id)
                .await
                .unwrap();
            assert_eq!(
                got,
                find_trace_by_id_local(&local, &b.meta, &id).unwrap(),
                "{id}"
            );
            assert!(got.is_some());
        }
        let absent = TraceId([0xEE; 16]);
        assert!(
            vivace_block::find_trace_by_id(&backend, b, &absent)
                .await
                .unwrap()
                .is_none()
        );
    }

    // A compacted block drops out of the next poll.
    let first = list.blocks("single-tenant")[0].clone();
    std::fs::write(
        dir.join(first.key("meta.compacted.json")),
        first.meta.to_json(),
    )
    .unwrap();
    let next = vivace_store::poll(&backend, &list, true).await.unwrap();
    assert_eq!(next.blocks("single-tenant").len(), 1);
    assert_eq!(next.compacted["single-tenant"].len(), 1);
    // A fresh reader gets the metas from the index alone.
    std::fs::remove_file(dir.join(next.blocks("single-tenant")[0].key("meta.json"))).unwrap();
    std::fs::write(
        dir.join(next.blocks("single-tenant")[0].key("meta.json")),
        "not json",
    )
    .unwrap();
    let fresh = vivace_store::poll(&backend, &Default::default(), false)
        .await
        .unwrap();
    assert_eq!(
        fresh.blocks("single-tenant").len(),
        1,
        "{:?}",
        fresh.skipped
    );
    let empty = vivace_store::Backend::local(&dir.join("missing")).unwrap();
    assert!(
        vivace_store::poll(&empty, &Default::default(), true)
            .await
            .unwrap()
            .is_empty()
    );
}

#[test]
fn tempo_bloom_filters_hold_every_trace_of_their_block() {
    for version in ["vParquet5", "vParquet4"] {
        let dir = block(version);
        let bloom = vivace_block::Bloom::read(&dir.join("bloom-0")).unwrap();
        let ids = trace_ids(&dir).unwrap();
        for id in &ids {
            assert_eq!(vivace_block::shard_for(id, 1), 0);
            assert!(bloom.test(&id.0), "{version}: bloom misses {id}");
            assert!(vivace_block::test_file(&dir.join("bloom-0"), &id.0).unwrap());
        }
        // IDs that are not in the block are mostly refused (false-positive rate 1%).
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut positives = 0;
        for _ in 0..2000 {
            let mut id = [0u8; 16];
            for b in id.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
            let from_file = vivace_block::test_file(&dir.join("bloom-0"), &id).unwrap();
            assert_eq!(
                bloom.test(&id),
                from_file,
                "reading only the needed words agrees"
            );
            positives += usize::from(from_file);
        }
        assert!(
            positives < 40,
            "{version}: {positives} of 2000 random IDs pass the bloom"
        );
    }
}
