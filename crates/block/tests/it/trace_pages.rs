//! Trace by ID through the page index: only the pages holding the row are read, and the trace
//! is the one the block holds — on a block whose columns span many pages, for IDs at the start,
//! middle and end of row groups, and for an absent ID inside a row group's range; once a row
//! group's index is kept, a lookup is one read. The pages a lookup decompresses stay short.

use bytes::Bytes;
use vivace_block::{
    BlockWriter, Counted, WriterConfig, find_trace_by_id, find_trace_by_pages, read_all_traces,
    set_file_facts,
};
use vivace_common::TraceId;
use vivace_proto::otlp::common::{AnyValue, KeyValue, any_value};
use vivace_proto::otlp::resource::Resource;
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};
use vivace_proto::tempopb::Trace;
use vivace_store::{Backend, upload};

fn trace(t: u32, spans: u32) -> (TraceId, Trace) {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&(t * 2 + 1).to_be_bytes());
    id[15] = 7;
    let spans = (0..spans)
        .map(|s| Span {
            trace_id: id.to_vec(),
            span_id: [(s + 1) as u8, (t % 251) as u8, 3, 4, 5, 6, 7, 8].to_vec(),
            name: format!("operation {} of trace {t}", s % 13),
            start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(t) * 1_000 + u64::from(s),
            end_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(t) * 1_000 + 500,
            attributes: vec![KeyValue {
                key: "payload".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(format!(
                        "{t}-{s}-{}",
                        "x".repeat(40)
                    ))),
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    (
        TraceId(id),
        Trace {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(format!("svc{}", t % 5))),
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
            }],
        },
    )
}

/// A block of `traces` (tenant `t`) with row groups of about `row_group_bytes`.
fn write_block(
    traces: &[(TraceId, Trace)],
    block_id: &str,
    row_group_bytes: usize,
) -> (vivace_block::FinishedBlock, Vec<u8>) {
    let mut cfg = WriterConfig::new("t", block_id);
    cfg.row_group_bytes = row_group_bytes;
    let mut w = BlockWriter::new(Vec::new(), cfg).unwrap();
    for (id, t) in traces {
        w.push(*id, t).unwrap();
    }
    let (mut done, data) = w.finish().unwrap();
    set_file_facts(&mut done.meta, data.len() as u64, &data);
    (done, data)
}

#[tokio::test]
async fn a_trace_by_id_reads_only_its_pages() {
    // 40,000 trace IDs fill several TraceID pages; spans fill many pages of the span columns.
    let traces: Vec<(TraceId, Trace)> = (0..40_000).map(|t| trace(t, 1 + t % 6)).collect();
    let (done, data) = write_block(&traces, "00000000-0000-4000-8000-0000000000a1", 20_000_000);
    let all = read_all_traces(Bytes::from(data.clone()), &done.meta, "data.parquet").unwrap();
    let backend = Backend::memory();
    let block = upload(&backend, done, data).await.unwrap();
    // A block this process wrote is primed from its bytes (footer, page indexes and trace IDs,
    // blooms): its first lookup reads only the pages of its row.
    let (id, want) = &all[30_000];
    let before = backend.reads();
    let got = find_trace_by_id(&backend, &block, id).await.unwrap();
    assert_eq!(got.as_ref(), Some(want));
    assert_eq!(
        backend.reads() - before,
        1,
        "reads of the first lookup in a block just written"
    );
    for i in (0..40_000)
        .step_by(997)
        .chain([1, 16_383, 16_384, 16_385, 39_999])
    {
        let (id, want) = &all[i];
        let got = find_trace_by_pages(&backend, &block, id)
            .await
            .unwrap()
            .expect("the block has a page index");
        assert_eq!(got.as_ref(), Some(want), "trace {i}");
        assert_eq!(
            find_trace_by_id(&backend, &block, id)
                .await
                .unwrap()
                .as_ref(),
            Some(want)
        );
    }
    // Between two stored IDs (they are odd): not there.
    let mut absent = all[20_000].0;
    absent.0[3] += 1;
    assert_eq!(
        find_trace_by_pages(&backend, &block, &absent)
            .await
            .unwrap(),
        Some(None)
    );
    // Every row group's index (and its trace IDs) is kept now: a lookup reads only the pages
    // of its row, and an ID the row group does not hold reads nothing.
    for i in [2, 12_345, 39_998] {
        let before = backend.reads();
        let got = find_trace_by_pages(&backend, &block, &all[i].0)
            .await
            .unwrap()
            .expect("the block has a page index");
        assert_eq!(got.as_ref(), Some(&all[i].1), "trace {i}");
        assert_eq!(
            backend.reads() - before,
            1,
            "reads of a warm lookup of trace {i}"
        );
    }
    let before = backend.reads();
    assert_eq!(
        find_trace_by_pages(&backend, &block, &absent)
            .await
            .unwrap(),
        Some(None)
    );
    assert_eq!(
        backend.reads(),
        before,
        "an absent ID reads nothing once warm"
    );
    // What a lookup reports as inspected: the bytes it read, a small part of the block.
    let read = Counted::new(&backend);
    let got = find_trace_by_id(&read, &block, &all[12_345].0)
        .await
        .unwrap();
    assert_eq!(got.as_ref(), Some(&all[12_345].1));
    assert!(
        read.bytes() > 0 && read.bytes() < block.meta.size / 20,
        "{} of {} bytes",
        read.bytes(),
        block.meta.size
    );
    let read = Counted::new(&backend);
    assert_eq!(
        find_trace_by_id(&read, &block, &absent).await.unwrap(),
        None
    );
    assert!(read.bytes() < 64, "an absent ID: the bloom words only");
}

#[tokio::test]
async fn blocks_learned_from_the_bucket_are_primed_for_two_read_lookups() {
    // Two row groups of 2,000 traces, written by "another process": the block's own cache is
    // not the one the poller's list holds.
    let traces: Vec<(TraceId, Trace)> = (0..4_000).map(|t| trace(t, 1 + t % 3)).collect();
    let (done, data) = write_block(&traces, "00000000-0000-4000-8000-0000000000b2", 200_000);
    let groups = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&Bytes::from(data.clone()))
        .unwrap()
        .num_row_groups();
    assert!(groups > 1, "{groups} row groups");
    let all = read_all_traces(Bytes::from(data.clone()), &done.meta, "data.parquet").unwrap();
    let backend = Backend::memory();
    upload(&backend, done, data).await.unwrap();

    // Without priming, a first lookup reads the bloom shard, the footer, the row group's index
    // and IDs, and its row's pages.
    let cold = vivace_store::poll(&backend, &Default::default(), false)
        .await
        .unwrap();
    let block = &cold.blocks("t")[0];
    let before = backend.reads();
    let got = find_trace_by_id(&backend, block, &all[10].0).await.unwrap();
    assert_eq!(got.as_ref(), Some(&all[10].1));
    assert_eq!(
        backend.reads() - before,
        4,
        "reads of an unprimed first lookup"
    );

    // The poller primes the blocks it learns: footer and every row group's index.
    let list = vivace_store::SharedBlockList::default();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let poller = tokio::spawn(vivace_store::poll_loop(
        std::time::Duration::from_secs(3600),
        backend.clone(),
        list.clone(),
        stop_rx,
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let block = loop {
        let current = list.current();
        if let Some(b) = current.blocks("t").first().filter(|b| b.is_primed()) {
            break b.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the polled block was not primed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let _ = stop.send(true);
    poller.await.unwrap();
    for i in [3_999, 5] {
        let before = backend.reads();
        let got = find_trace_by_id(&backend, &block, &all[i].0).await.unwrap();
        assert_eq!(got.as_ref(), Some(&all[i].1), "trace {i}");
        assert!(
            backend.reads() - before <= 2,
            "reads of a first lookup in a primed block: {}",
            backend.reads() - before
        );
    }
}

#[test]
fn lookup_pages_are_short_and_integers_delta_packed() {
    use parquet::basic::{Encoding, Type as PhysicalType};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    // 3,000 traces of up to 6 spans in one row group, default (Compact) codecs.
    let mut w = BlockWriter::new(
        Vec::new(),
        WriterConfig::new("t", "00000000-0000-4000-8000-0000000000a2"),
    )
    .unwrap();
    for t in 0..3_000 {
        let (id, trace) = trace(t, 1 + t % 6);
        w.push(id, &trace).unwrap();
    }
    let (_, data) = w.finish().unwrap();
    let data = Bytes::from(data);
    let file = SerializedFileReader::new(data.clone()).unwrap();
    let rg = file.metadata().row_group(0);
    assert_eq!(rg.num_rows(), 3_000);
    for c in rg.columns() {
        let path = c.column_path().string();
        let at = c.offset_index_offset().unwrap() as usize;
        let len = c.offset_index_length().unwrap() as usize;
        let index =
            parquet::file::page_index::index_reader::decode_offset_index(&data.slice(at..at + len))
                .unwrap();
        let starts: Vec<i64> = index
            .page_locations()
            .iter()
            .map(|p| p.first_row_index)
            .chain([3_000])
            .collect();
        let longest = starts.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        // The limits are checked after each batch of 1,024 levels (parquet's write batch).
        if path.contains(".Spans.") {
            assert!((500..1_000).contains(&longest), "{path}: {longest} rows");
        } else {
            assert!((1_000..=1_024).contains(&longest), "{path}: {longest} rows");
        }
        // Integers are delta-packed or dictionary-encoded, never PLAIN values.
        if matches!(c.column_type(), PhysicalType::INT32 | PhysicalType::INT64) {
            let encodings: Vec<Encoding> = c.encodings().collect();
            assert!(
                !encodings.contains(&Encoding::PLAIN)
                    || encodings.contains(&Encoding::RLE_DICTIONARY),
                "{path}: {encodings:?}"
            );
        }
    }
}
