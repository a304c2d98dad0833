//! The columnar reader gives the same batch as whole rows (rows → OTLP → batch) on
//! Tempo's own vParquet5 block and on a block vivace wrote: every span's fields, resource,
//! scope, attributes (as sets: dedicated columns come first), events and links.

use std::collections::BTreeSet;
use std::path::Path;

use bytes::Bytes;
use vivace_block::{BlockMeta, read_all_traces, read_columnar};
use vivace_traceql::batch::{Projection, SpanBatch, Stored};

fn value(b: &SpanBatch, v: Stored) -> String {
    match v {
        Stored::Str(s) => format!("s:{}", b.str(s)),
        Stored::Int(i) => format!("i:{i}"),
        Stored::Float(f) => format!("f:{f}"),
        Stored::Bool(x) => format!("b:{x}"),
        Stored::StrArr(at, n) => format!(
            "S:{:?}",
            b.arr_str[at as usize..(at + n) as usize]
                .iter()
                .map(|s| b.str(*s))
                .collect::<Vec<_>>()
        ),
        Stored::IntArr(at, n) => format!("I:{:?}", &b.arr_int[at as usize..(at + n) as usize]),
        Stored::FloatArr(at, n) => format!("F:{:?}", &b.arr_float[at as usize..(at + n) as usize]),
        Stored::BoolArr(at, n) => format!("B:{:?}", &b.arr_bool[at as usize..(at + n) as usize]),
    }
}

fn attrs(b: &SpanBatch, r: &std::ops::Range<u32>) -> BTreeSet<String> {
    (r.start as usize..r.end as usize)
        .map(|i| format!("{}={}", b.str(b.attr_key[i]), value(b, b.attr_value[i])))
        .collect()
}

/// One line per span with everything the evaluator can read of it.
fn describe(b: &SpanBatch) -> Vec<String> {
    let mut out = Vec::new();
    for t in &b.traces {
        for s in t.spans.clone() {
            let s = s as usize;
            let res = &b.resources[b.span_resource[s] as usize];
            let scope = &b.scopes[b.span_scope[s] as usize];
            let events: Vec<String> = (b.span_events[s].start..b.span_events[s].end)
                .map(|e| {
                    let e = &b.events[e as usize];
                    format!(
                        "{}@{}{:?}",
                        b.str(e.name),
                        e.time_since_start_ns,
                        attrs(b, &e.attrs)
                    )
                })
                .collect();
            let links: Vec<String> = (b.span_links[s].start..b.span_links[s].end)
                .map(|l| {
                    let l = &b.links[l as usize];
                    format!("{:?}/{:?}{:?}", l.trace_id, l.span_id, attrs(b, &l.attrs))
                })
                .collect();
            out.push(format!(
                "trace {:?} root {:?}/{:?} span {:?} parent {:?} {} {:?} {:?} {:?} {} {} nested {} {} {} {} res {:?} {:?} scope {} {} {:?} attrs {:?} events {:?} links {:?}",
                t.id,
                t.root_name_opt.map(|x| b.str(x)),
                t.root_service_opt.map(|x| b.str(x)),
                b.span_id[s],
                b.span_parent_id[s],
                b.str(b.span_name[s]),
                b.span_kind[s],
                b.span_status[s],
                b.str(b.span_status_message[s]),
                b.span_start_ns[s],
                b.span_duration_ns[s],
                b.span_nested_left[s],
                b.span_nested_right[s],
                b.span_nested_parent[s],
                b.span_child_count[s],
                res.service_opt.map(|x| b.str(x)),
                attrs(b, &res.attrs),
                b.str(scope.name),
                b.str(scope.version),
                attrs(b, &scope.attrs),
                attrs(b, &b.span_attrs[s]),
                events,
                links,
            ));
        }
    }
    out
}

fn compare(dir: &Path) {
    let meta = BlockMeta::read(dir).unwrap();
    let data = Bytes::from(std::fs::read(dir.join("data.parquet")).unwrap());
    let traces = read_all_traces(data.clone(), &meta, "data.parquet").unwrap();
    let by_rows = vivace_model::batch_of(traces.iter().map(|(id, t)| (id, t)));
    let by_columns = read_columnar(data, &meta, "data.parquet", &Projection::ALL).unwrap();
    assert_eq!(by_rows.traces.len(), by_columns.traces.len());
    let (a, b) = (describe(&by_rows), describe(&by_columns));
    assert!(!a.is_empty());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    assert_eq!(a.len(), b.len());
    // A projection leaves the rest out, never changes what it reads.
    let spans_only = read_columnar(
        Bytes::from(std::fs::read(dir.join("data.parquet")).unwrap()),
        &meta,
        "data.parquet",
        &Projection::NONE,
    )
    .unwrap();
    assert_eq!(spans_only.span_id, by_columns.span_id);
    assert!(spans_only.attr_key.len() < by_columns.attr_key.len() / 2);
    // Without span text (metrics that count): the same spans, times, kinds, statuses and
    // owners; no IDs or names.
    let lean = read_columnar(
        Bytes::from(std::fs::read(dir.join("data.parquet")).unwrap()),
        &meta,
        "data.parquet",
        &Projection {
            span_text: false,
            ..Projection::NONE
        },
    )
    .unwrap();
    assert_eq!(lean.span_start_ns, by_columns.span_start_ns);
    assert_eq!(lean.span_duration_ns, by_columns.span_duration_ns);
    assert_eq!(lean.span_kind, by_columns.span_kind);
    assert_eq!(lean.span_status, by_columns.span_status);
    assert_eq!(lean.span_trace, by_columns.span_trace);
    assert_eq!(lean.span_resource, by_columns.span_resource);
    assert_eq!(lean.span_scope, by_columns.span_scope);
    let ids: Vec<[u8; 16]> = lean.traces.iter().map(|t| t.id).collect();
    let want: Vec<[u8; 16]> = by_columns.traces.iter().map(|t| t.id).collect();
    assert_eq!(ids, want);
    assert!(lean.span_id.iter().all(|id| *id == [0; 8]));
    // Keys only (tag names): the same keys, owner by owner.
    let keys = read_columnar(
        Bytes::from(std::fs::read(dir.join("data.parquet")).unwrap()),
        &meta,
        "data.parquet",
        &Projection {
            keys_only: true,
            ..Projection::ALL
        },
    )
    .unwrap();
    let names = |b: &SpanBatch, r: &std::ops::Range<u32>| -> BTreeSet<String> {
        (r.start..r.end)
            .map(|i| b.str(b.attr_key[i as usize]).to_string())
            .collect()
    };
    for s in 0..by_columns.span_count() {
        assert_eq!(
            names(&keys, &keys.span_attrs[s]),
            names(&by_columns, &by_columns.span_attrs[s])
        );
    }
    for r in 0..by_columns.resources.len() {
        assert_eq!(
            names(&keys, &keys.resources[r].attrs),
            names(&by_columns, &by_columns.resources[r].attrs)
        );
    }
}

#[test]
fn columnar_reader_matches_the_record_reader_on_tempos_block() {
    compare(&crate::block("vParquet5"));
}

#[test]
fn columnar_reader_matches_the_record_reader_on_a_vivace_block() {
    let root = std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("../../testdata/vivace-blocks/vParquet5");
    let dir = std::fs::read_dir(root)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    compare(&dir);
}

/// Reads an int32 leaf column of a whole file, values in order.
fn int32_column(data: &Bytes, path: &str) -> Vec<i32> {
    use parquet::column::reader::ColumnReader;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = SerializedFileReader::new(data.clone()).unwrap();
    let schema = file.metadata().file_metadata().schema_descr_ptr();
    let col = (0..schema.num_columns())
        .find(|i| schema.column(*i).path().string() == path)
        .unwrap();
    let mut out = Vec::new();
    for rg in 0..file.num_row_groups() {
        let group = file.get_row_group(rg).unwrap();
        let ColumnReader::Int32ColumnReader(mut r) = group.get_column_reader(col).unwrap() else {
            panic!("{path} is not int32");
        };
        let (mut def, mut rep) = (Vec::new(), Vec::new());
        loop {
            let (n, _, _) = r
                .read_records(8192, Some(&mut def), Some(&mut rep), &mut out)
                .unwrap();
            if n == 0 {
                break;
            }
        }
    }
    out
}

/// The nested-set numbers and child counts the evaluator computes (from parent IDs, in the
/// order spans are stored) are the ones Tempo stored for every span of its own block, and the
/// ones vivace's writer stores — structural operators and `span:childCount` depend on them.
#[test]
fn nested_sets_equal_the_stored_columns() {
    // Tempo's traces written again by vivace's writer.
    let tmp = tempfile::tempdir().unwrap();
    crate::write::write_block(tmp.path(), &crate::write::tempo_traces(), 20_000);
    for dir in [crate::block("vParquet5"), tmp.path().to_path_buf()] {
        let meta = BlockMeta::read(&dir).unwrap();
        let data = Bytes::from(std::fs::read(dir.join("data.parquet")).unwrap());
        let structure = Projection {
            structure: true,
            ..Projection::NONE
        };
        let b = read_columnar(data.clone(), &meta, "data.parquet", &structure).unwrap();
        let left = int32_column(&data, "rs.ss.Spans.NestedSetLeft");
        let right = int32_column(&data, "rs.ss.Spans.NestedSetRight");
        let parent = int32_column(&data, "rs.ss.Spans.ParentID");
        let children = int32_column(&data, "rs.ss.Spans.ChildCount");
        assert_eq!(left.len(), b.span_count());
        let mut diffs = Vec::new();
        for s in 0..b.span_count() {
            let got = (
                b.span_nested_left[s],
                b.span_nested_right[s],
                b.span_nested_parent[s],
                b.span_child_count[s],
            );
            let want = (left[s], right[s], parent[s], children[s]);
            if got != want {
                diffs.push(format!("span {s}: computed {got:?}, stored {want:?}"));
            }
        }
        assert!(
            diffs.is_empty(),
            "{}: {} of {} spans differ:\n{}",
            dir.display(),
            diffs.len(),
            b.span_count(),
            diffs[..diffs.len().min(10)].join("\n")
        );
    }
}

/// Tag names listed from dictionaries equal the keys of every attribute read column by column,
/// scope by scope, on Tempo's block and on Tempo's traces written by vivace.
#[test]
fn tag_names_from_dictionaries_equal_the_attributes_read() {
    let tmp = tempfile::tempdir().unwrap();
    crate::write::write_block(tmp.path(), &crate::write::tempo_traces(), 20_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for dir in [crate::block("vParquet5"), tmp.path().to_path_buf()] {
        let meta = BlockMeta::read(&dir).unwrap();
        let data = Bytes::from(std::fs::read(dir.join("data.parquet")).unwrap());
        let b = read_columnar(data.clone(), &meta, "data.parquet", &Projection::ALL).unwrap();
        let keys = |ranges: Vec<std::ops::Range<u32>>| -> BTreeSet<String> {
            ranges
                .into_iter()
                .flat_map(|r| r.start..r.end)
                .map(|i| b.str(b.attr_key[i as usize]).to_string())
                .collect()
        };
        let want: Vec<(&str, BTreeSet<String>)> = vec![
            (
                "resource",
                keys(b.resources.iter().map(|r| r.attrs.clone()).collect()),
            ),
            ("span", keys(b.span_attrs.clone())),
            (
                "instrumentation",
                keys(b.scopes.iter().map(|s| s.attrs.clone()).collect()),
            ),
            (
                "event",
                keys(b.events.iter().map(|e| e.attrs.clone()).collect()),
            ),
            (
                "link",
                keys(b.links.iter().map(|l| l.attrs.clone()).collect()),
            ),
        ];
        let backend = vivace_store::Backend::memory();
        let block = vivace_block::BlockRef::new("t", meta.clone());
        let got = rt.block_on(async {
            backend.put(&block.key("data.parquet"), data).await.unwrap();
            vivace_block::block_tag_names(
                &backend,
                &block,
                &["resource", "span", "instrumentation", "event", "link"],
            )
            .await
            .unwrap()
        });
        for (scope, names) in want {
            assert_eq!(
                got.get(scope).cloned().unwrap_or_default(),
                names,
                "{}: scope {scope}",
                dir.display()
            );
        }
        // Kept with the block: a second listing reads nothing and answers the same.
        let reads = backend.reads();
        let again = rt.block_on(vivace_block::block_tag_names(
            &backend,
            &block,
            &["span", "resource"],
        ));
        assert_eq!(backend.reads(), reads, "{}", dir.display());
        let again = again.unwrap();
        assert_eq!(
            again.get("span"),
            got.get("span").or(Some(&Default::default()))
        );
        assert_eq!(again.len(), 2);
    }
}

/// Tag values listed from dictionaries (`name`, `service.name`, dedicated columns) equal the
/// string values read column by column.
#[test]
fn tag_values_from_dictionaries_equal_the_values_read() {
    let tmp = tempfile::tempdir().unwrap();
    crate::write::write_block(tmp.path(), &crate::write::tempo_traces(), 20_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for dir in [crate::block("vParquet5"), tmp.path().to_path_buf()] {
        let meta = BlockMeta::read(&dir).unwrap();
        let data = Bytes::from(std::fs::read(dir.join("data.parquet")).unwrap());
        let b = read_columnar(data.clone(), &meta, "data.parquet", &Projection::ALL).unwrap();
        let backend = vivace_store::Backend::memory();
        let block = vivace_block::BlockRef::new("t", meta.clone());
        rt.block_on(backend.put(&block.key("data.parquet"), data))
            .unwrap();
        let strings = |ranges: Vec<std::ops::Range<u32>>, key: &str| -> BTreeSet<String> {
            ranges
                .into_iter()
                .flat_map(|r| r.start..r.end)
                .filter(|i| b.str(b.attr_key[*i as usize]) == key)
                .filter_map(|i| match b.attr_value[i as usize] {
                    Stored::Str(s) => Some(b.str(s).to_string()),
                    _ => None,
                })
                .filter(|s| !s.is_empty())
                .collect()
        };
        let mut cases: Vec<(&str, String, BTreeSet<String>)> = vec![
            (
                "intrinsic",
                "name".into(),
                b.span_name.iter().map(|n| b.str(*n).to_string()).collect(),
            ),
            (
                "resource",
                "service.name".into(),
                strings(
                    b.resources.iter().map(|r| r.attrs.clone()).collect(),
                    "service.name",
                ),
            ),
        ];
        for n in meta.dedicated("span", false) {
            cases.push(("span", n.to_string(), strings(b.span_attrs.clone(), n)));
        }
        for n in meta.dedicated("resource", false) {
            let r = b.resources.iter().map(|r| r.attrs.clone()).collect();
            cases.push(("resource", n.to_string(), strings(r, n)));
        }
        let mut checked = 0;
        for (scope, name, want) in cases {
            let column = vivace_block::values_column(&meta, scope, &name).unwrap();
            let guard = match scope {
                "resource" => Some(("rs.Resource.Attrs.Key", name.as_str())),
                "span" => Some(("rs.ss.Spans.Attrs.Key", name.as_str())),
                _ => None,
            };
            let got = rt
                .block_on(vivace_block::block_column_values(
                    &backend, &block, &column, guard,
                ))
                .unwrap();
            if let Some(got) = got {
                assert_eq!(got, want, "{}: {scope} {name}", dir.display());
                checked += 1;
            }
        }
        assert!(checked >= 2, "{checked}");
    }
}
