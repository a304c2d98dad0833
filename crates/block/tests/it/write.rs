//! The vParquet5 writer against what Tempo writes: every trace of Tempo's block written again by
//! vivace reads back identically; the file schema, physical types and codecs match Tempo's file
//! column by column; the bloom shard is byte-identical to Tempo's for the same IDs; meta.json
//! has Tempo's keys in Tempo's order.

use std::path::Path;

use parquet::basic::Encoding;
use parquet::file::reader::{FileReader, SerializedFileReader};
use vivace_block::{
    BlockMeta, BlockWriter, Codecs, WriterConfig, find_trace_by_id_local, set_file_facts, trace_ids,
};
use vivace_common::TraceId;
use vivace_proto::tempopb::Trace;

use crate::block;

/// Every trace of Tempo's vParquet5 block, read with vivace's reader.
pub(crate) fn tempo_traces() -> Vec<(TraceId, Trace)> {
    let dir = block("vParquet5");
    let meta = BlockMeta::read(&dir).unwrap();
    trace_ids(&dir)
        .unwrap()
        .into_iter()
        .map(|id| {
            (
                id,
                find_trace_by_id_local(&dir, &meta, &id).unwrap().unwrap(),
            )
        })
        .collect()
}

/// Writes a block directory the way the flusher does (data, blooms, meta last), with Tempo's
/// codecs.
pub(crate) fn write_block(
    dir: &Path,
    traces: &[(TraceId, Trace)],
    row_group_bytes: usize,
) -> BlockMeta {
    write_block_with(dir, traces, row_group_bytes, Codecs::Tempo)
}

fn write_block_with(
    dir: &Path,
    traces: &[(TraceId, Trace)],
    row_group_bytes: usize,
    codecs: Codecs,
) -> BlockMeta {
    std::fs::create_dir_all(dir).unwrap();
    let mut cfg = WriterConfig::new("single-tenant", "00000000-0000-4000-8000-000000000001");
    cfg.row_group_bytes = row_group_bytes;
    cfg.codecs = codecs;
    let mut w = BlockWriter::new(Vec::new(), cfg).unwrap();
    for (id, t) in traces {
        w.push(*id, t).unwrap();
    }
    let (mut done, data) = w.finish().unwrap();
    set_file_facts(&mut done.meta, data.len() as u64, &data);
    std::fs::write(dir.join("data.parquet"), &data).unwrap();
    for (i, b) in done.blooms.iter().enumerate() {
        std::fs::write(dir.join(format!("bloom-{i}")), b).unwrap();
    }
    std::fs::write(dir.join("meta.json"), done.meta.to_json()).unwrap();
    done.meta
}

#[test]
fn tempo_traces_round_trip_through_the_writer() {
    let traces = tempo_traces();
    assert_eq!(traces.len(), 363);
    let tmp = tempfile::tempdir().unwrap();
    // Small row groups, so lookups cross row-group boundaries too.
    let meta = write_block(tmp.path(), &traces, 20_000);
    assert!(meta.total_records > 5, "{} row groups", meta.total_records);
    assert_eq!(meta.total_objects, 363);
    assert_eq!(
        trace_ids(tmp.path()).unwrap(),
        traces.iter().map(|(id, _)| *id).collect::<Vec<_>>()
    );
    for (id, original) in &traces {
        let again = find_trace_by_id_local(tmp.path(), &meta, id)
            .unwrap()
            .unwrap();
        assert_eq!(&again, original, "trace {id}");
    }
    let mut absent = traces[5].0;
    absent.0[15] ^= 0x55;
    assert!(
        find_trace_by_id_local(tmp.path(), &meta, &absent)
            .unwrap()
            .is_none()
    );
}

/// Array values among scalars, at every scope, in row groups where the arrays come after other
/// attributes (an attribute's value columns make their own levels from the first array on):
/// every trace reads back as written.
#[test]
fn array_values_among_scalars_round_trip() {
    use vivace_proto::otlp::common::{AnyValue, ArrayValue, KeyValue, any_value::Value as V};
    let kv = |k: &str, v: V| KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    };
    let array = |vals: Vec<V>| {
        V::ArrayValue(ArrayValue {
            values: vals
                .into_iter()
                .map(|v| AnyValue { value: Some(v) })
                .collect(),
        })
    };
    let arrays = |n: usize| {
        vec![
            kv(
                "a.strings",
                array(vec![
                    V::StringValue("x".into()),
                    V::StringValue(format!("y{n}")),
                ]),
            ),
            kv("a.ints", array(vec![V::IntValue(1), V::IntValue(n as i64)])),
            kv("a.double", array(vec![V::DoubleValue(0.5)])),
            kv(
                "a.bools",
                array(vec![V::BoolValue(true), V::BoolValue(false)]),
            ),
            kv(
                "a.mixed",
                array(vec![V::IntValue(1), V::StringValue("one".into())]),
            ),
            kv("after", V::StringValue("scalar".into())),
        ]
    };
    let mut traces = tempo_traces();
    for (n, (_, t)) in traces.iter_mut().enumerate().skip(40).step_by(9) {
        let rs = &mut t.resource_spans[0];
        if let Some(r) = &mut rs.resource {
            r.attributes.extend(arrays(n));
        }
        for ss in &mut rs.scope_spans {
            for (i, span) in ss.spans.iter_mut().enumerate() {
                if i % 2 == 0 {
                    span.attributes.extend(arrays(n));
                }
                for e in &mut span.events {
                    e.attributes.extend(arrays(n + 1));
                }
                for l in &mut span.links {
                    l.attributes.extend(arrays(n + 2));
                }
            }
        }
    }
    for row_group_bytes in [100_000_000, 20_000] {
        let tmp = tempfile::tempdir().unwrap();
        let meta = write_block(tmp.path(), &traces, row_group_bytes);
        for (id, original) in &traces {
            let again = find_trace_by_id_local(tmp.path(), &meta, id)
                .unwrap()
                .unwrap();
            assert_eq!(
                &again, original,
                "trace {id}, row groups of {row_group_bytes} B"
            );
        }
    }
}

#[test]
fn compact_codecs_keep_the_schema_and_every_trace() {
    let traces = tempo_traces();
    let (tempo, compact) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_block_with(tempo.path(), &traces, 100_000_000, Codecs::Tempo);
    let meta = write_block_with(compact.path(), &traces, 100_000_000, Codecs::Compact);
    let open = |p: &Path| {
        SerializedFileReader::new(std::fs::File::open(p.join("data.parquet")).unwrap()).unwrap()
    };
    let (a, b) = (open(tempo.path()), open(compact.path()));
    assert_eq!(
        a.metadata().file_metadata().schema_descr().root_schema(),
        b.metadata().file_metadata().schema_descr().root_schema()
    );
    for (id, original) in traces.iter().step_by(7) {
        assert_eq!(
            &find_trace_by_id_local(compact.path(), &meta, id)
                .unwrap()
                .unwrap(),
            original
        );
    }
    let size = |p: &Path| std::fs::metadata(p.join("data.parquet")).unwrap().len();
    assert!(size(compact.path()) < size(tempo.path()));
}

#[test]
fn schema_types_and_codecs_match_tempo() {
    let tmp = tempfile::tempdir().unwrap();
    write_block(tmp.path(), &tempo_traces(), 100_000_000);
    let open = |p: &Path| {
        SerializedFileReader::new(std::fs::File::open(p.join("data.parquet")).unwrap()).unwrap()
    };
    let ours = open(tmp.path());
    let tempo = open(&block("vParquet5"));
    let (os, ts) = (
        ours.metadata().file_metadata().schema_descr(),
        tempo.metadata().file_metadata().schema_descr(),
    );
    // Compared as printed (parquet-go also records a type length for integers, which means
    // nothing for them).
    let print = |t: &parquet::schema::types::Type| {
        let mut out = Vec::new();
        parquet::schema::printer::print_schema(&mut out, t);
        String::from_utf8(out).unwrap()
    };
    let (op, tp) = (print(os.root_schema()), print(ts.root_schema()));
    for (i, (o, t)) in op.lines().zip(tp.lines()).enumerate() {
        assert_eq!(o, t, "schema line {i}");
    }
    assert_eq!(op.lines().count(), tp.lines().count());
    let (orc, trc) = (ours.metadata().row_group(0), tempo.metadata().row_group(0));
    for i in 0..ts.num_columns() {
        let (o, t) = (orc.column(i), trc.column(i));
        let path = t.column_path().string();
        assert_eq!(o.column_path().string(), path);
        assert_eq!(o.column_type(), t.column_type(), "{path}");
        assert_eq!(o.compression(), t.compression(), "{path}");
        // The value encoding (dictionary, delta or plain), ignoring the level encodings.
        let kind = |e: &[Encoding]| {
            if e.contains(&Encoding::RLE_DICTIONARY) || e.contains(&Encoding::PLAIN_DICTIONARY) {
                "dict"
            } else if e.contains(&Encoding::DELTA_BINARY_PACKED) {
                "delta"
            } else if e.contains(&Encoding::DELTA_LENGTH_BYTE_ARRAY) {
                "delta-length"
            } else {
                "plain"
            }
        };
        let (oe, te): (Vec<Encoding>, Vec<Encoding>) =
            (o.encodings().collect(), t.encodings().collect());
        assert_eq!(kind(&oe), kind(&te), "{path}: ours {oe:?}, Tempo's {te:?}");
    }
}

#[test]
fn bloom_and_meta_match_tempo() {
    let tmp = tempfile::tempdir().unwrap();
    let meta = write_block(tmp.path(), &tempo_traces(), 100_000_000);
    let tempo_dir = block("vParquet5");
    assert_eq!(
        std::fs::read(tmp.path().join("bloom-0")).unwrap(),
        std::fs::read(tempo_dir.join("bloom-0")).unwrap(),
        "the same IDs give Tempo's bloom bytes"
    );
    let ours: serde_json::Value = serde_json::from_slice(&meta.to_json()).unwrap();
    let tempo: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tempo_dir.join("meta.json")).unwrap()).unwrap();
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&ours), keys(&tempo), "meta.json keys and order");
    for k in [
        "format",
        "totalObjects",
        "compactionLevel",
        "indexPageSize",
        "totalRecords",
        "bloomShards",
        "dedicatedColumns",
        "replicationFactor",
    ] {
        assert_eq!(ours[k], tempo[k], "{k}");
    }
    let len = std::fs::metadata(tmp.path().join("data.parquet"))
        .unwrap()
        .len();
    assert_eq!(ours["size"], len);
    let data = std::fs::read(tmp.path().join("data.parquet")).unwrap();
    let footer = u32::from_le_bytes(data[data.len() - 8..data.len() - 4].try_into().unwrap());
    assert_eq!(ours["footerSize"], footer);
    assert!(meta.start_time.as_str() <= tempo["startTime"].as_str().unwrap());
    assert!(meta.end_time.as_str() >= tempo["endTime"].as_str().unwrap());
}

#[test]
fn frozen_vivace_blocks_stay_readable() {
    let root = std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("../../testdata/vivace-blocks/vParquet5");
    let dir = std::fs::read_dir(&root)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let meta = BlockMeta::read(&dir).unwrap();
    assert_eq!(meta.format, "vParquet5");
    let traces = tempo_traces();
    assert_eq!(
        trace_ids(&dir).unwrap(),
        traces.iter().map(|(id, _)| *id).collect::<Vec<_>>()
    );
    for (id, original) in &traces {
        assert_eq!(
            &find_trace_by_id_local(&dir, &meta, id).unwrap().unwrap(),
            original,
            "{id}"
        );
    }
}

/// Min/max statistics are written where a reader prunes on them (TraceID, numbers, resource and
/// trace-level strings) and left out for span-level byte arrays (random IDs, names, attributes),
/// whose statistics cost an eighth of cutting a block and pruned nothing.
#[test]
fn statistics_where_readers_use_them() {
    let dir = tempfile::tempdir().unwrap();
    write_block(dir.path(), &tempo_traces(), 1 << 20);
    let file = std::fs::File::open(dir.path().join("data.parquet")).unwrap();
    let reader = SerializedFileReader::new(file).unwrap();
    let rg = reader.metadata().row_group(0);
    let stats = |path: &str| {
        rg.columns()
            .iter()
            .find(|c| c.column_path().string() == path)
            .unwrap_or_else(|| panic!("no column {path}"))
            .statistics()
            .is_some()
    };
    assert!(stats("TraceID"));
    assert!(stats("StartTimeUnixNano"));
    assert!(stats("rs.ss.Spans.StartTimeUnixNano"));
    // Strings below the trace: decided by dictionaries, never by min/max.
    assert!(!stats("rs.Resource.ServiceName"));
    assert!(!stats("rs.ss.Scope.Name"));
    assert!(!stats("rs.ss.Spans.SpanID"));
    assert!(!stats("rs.ss.Spans.ParentSpanID"));
    assert!(!stats("rs.ss.Spans.Name"));
}
