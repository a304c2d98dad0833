use std::time::Duration;

use super::*;
use prost::Message;
use vivace_block::trim_trace as trim;
use vivace_proto::otlp::common::{AnyValue, KeyValue, any_value};
use vivace_proto::otlp::resource::Resource;
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};
use vivace_proto::tempopb::Trace;

fn trace(id: u8, spans: &[u8]) -> (TraceId, Trace) {
    let now = now_secs() as u64 * 1_000_000_000;
    let spans = spans
        .iter()
        .map(|s| Span {
            trace_id: vec![id; 16],
            span_id: vec![*s; 8],
            name: format!("s{s}"),
            start_time_unix_nano: now,
            end_time_unix_nano: now + 1000,
            ..Default::default()
        })
        .collect();
    let rs = ResourceSpans {
        resource: Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("svc".into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    };
    (
        TraceId([id; 16]),
        Trace {
            resource_spans: vec![rs],
        },
    )
}

async fn put_block(backend: &Backend, n: u8, traces: &[(TraceId, Trace)]) -> BlockRef {
    let id = format!("00000000-0000-4000-8000-0000000000{n:02}");
    let mut w = BlockWriter::new(Vec::new(), WriterConfig::new("t", &id)).unwrap();
    for (tid, t) in traces {
        w.push(*tid, t).unwrap();
    }
    let (mut done, data) = w.finish().unwrap();
    set_file_facts(&mut done.meta, data.len() as u64, &data);
    vivace_store::upload(backend, done, data).await.unwrap()
}

fn span_ids(t: &Trace) -> Vec<u8> {
    let mut v: Vec<u8> = t
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| s.span_id[0])
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn blocks_merge_into_one_with_split_traces_combined_once() {
    let backend = Backend::memory();
    // Trace 5 is split over blocks 1 and 2, with span 2 in both (a replayed duplicate).
    let b1 = put_block(&backend, 1, &[trace(1, &[1]), trace(5, &[1, 2])]).await;
    let b2 = put_block(&backend, 2, &[trace(3, &[1, 2, 3]), trace(5, &[2, 3])]).await;
    let b3 = put_block(&backend, 3, &[trace(9, &[7])]).await;
    let cfg = CompactionConfig::default();
    let jobs = select(&[b1.clone(), b2.clone(), b3.clone()], now_secs(), &cfg);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].len(), 3);
    assert_eq!(jobs[0][0].meta.block_id, b3.meta.block_id, "smallest first");

    let out = compact(&backend, &jobs[0], &WriterConfig::new("t", "x"), 0)
        .await
        .unwrap();
    assert_eq!(out.output.meta.total_objects, 4);
    assert_eq!(out.output.meta.compaction_level, 1);
    assert_eq!(out.input_traces, 5);

    let list = vivace_store::poll(&backend, &BlockList::default(), true)
        .await
        .unwrap();
    assert_eq!(list.blocks("t").len(), 1, "inputs are compacted away");
    assert_eq!(list.compacted["t"].len(), 3);
    let block = &list.blocks("t")[0];
    for (id, want) in [
        (1u8, vec![1u8]),
        (3, vec![1, 2, 3]),
        (5, vec![1, 2, 3]),
        (9, vec![7]),
    ] {
        let got = vivace_block::find_trace_by_id(&backend, block, &TraceId([id; 16]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(span_ids(&got), want, "trace {id}");
    }
    // One block left in the window: nothing more to do.
    assert!(select(list.blocks("t"), now_secs(), &cfg).is_empty());

    // Retention: blocks past block_retention are marked, compacted ones past
    // compacted_block_retention deleted.
    let r = retention(&backend, &list, now_secs(), &cfg, |_| None)
        .await
        .unwrap();
    assert_eq!(r, RetentionResult::default(), "nothing is old yet");
    let later = now_secs() + 3 * 3600;
    let r = retention(&backend, &list, later, &cfg, |_| {
        Some(Duration::from_secs(60))
    })
    .await
    .unwrap();
    let output = list.blocks("t")[0].meta.block_id.clone();
    assert_eq!(
        r,
        RetentionResult {
            retired: vec![("t".into(), output)],
            deleted: 3
        }
    );
    let list = vivace_store::poll(&backend, &list, true).await.unwrap();
    assert!(list.blocks("t").is_empty());
    assert_eq!(
        list.compacted["t"].len(),
        1,
        "the retained block waits as compacted"
    );
    let r = retention(&backend, &list, later + 2 * 3600, &cfg, |_| None)
        .await
        .unwrap();
    assert_eq!(r.deleted, 1);
    let left = backend.list_all("t/").await.unwrap();
    assert!(
        left.iter().all(|(k, _)| k.ends_with("index.json.gz")),
        "{left:?}"
    );
}

#[test]
fn traces_over_the_limit_are_trimmed() {
    let (_, mut t) = trace(1, &(0..50).collect::<Vec<u8>>());
    let before = t.encoded_len();
    let dropped = trim(&mut t, before / 2);
    assert!(dropped > 0 && t.encoded_len() <= before / 2);
}
