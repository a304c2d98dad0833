//! Blocks vivace writes — cut from live traces and compacted, with both codec sets — read by
//! another parquet implementation: Apache Arrow's C++ reader, through pyarrow (installed by
//! scripts/test.sh). vivace writes most string columns' pages by hand (`block/src/byte_chunk.rs`)
//! and reads them with the Rust crate it compares them with; Tempo reads them with parquet-go.
//! Here a reader that shares no code with either must find, in every block, the rows and spans
//! and strings vivace's own reader finds, and an offset index for every column chunk.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::Digest;

use crate::support::{Server, binary, block_dirs, installed};

/// Per block, what pyarrow reads: rows, spans, a digest of the sorted hex span IDs, the distinct
/// span names, service names and generic span attribute keys, and the column chunks without an
/// offset index.
const READ: &str = r#"
import hashlib, json, sys
import pyarrow.compute as pc
import pyarrow.parquet as pq

def flat(a):
    return pc.list_flatten(a)

def field(a, name):
    return pc.struct_field(a, name)

out = []
for path in sys.argv[1:]:
    f = pq.ParquetFile(path)
    md = f.metadata
    unindexed = sum(
        1
        for i in range(md.num_row_groups)
        for j in range(md.num_columns)
        if not md.row_group(i).column(j).has_offset_index
    )
    t = f.read()
    rs = flat(t["rs"])
    spans = flat(field(flat(field(rs, "ss")), "Spans"))
    ids = sorted(x.hex() for x in field(spans, "SpanID").to_pylist())
    out.append({
        "path": path,
        "row_groups": md.num_row_groups,
        "rows": t.num_rows,
        "spans": len(spans),
        "span_ids": hashlib.sha256("".join(ids).encode()).hexdigest(),
        "names": sorted(set(field(spans, "Name").to_pylist())),
        "services": sorted(set(field(field(rs, "Resource"), "ServiceName").to_pylist())),
        "keys": sorted(set(field(flat(field(spans, "Attrs")), "Key").to_pylist())),
        "unindexed": unindexed,
    })
print(json.dumps(out))
"#;

/// Blocks cut at once, in several row groups, and compacted every second.
fn config(codecs: &str) -> String {
    format!(
        "live_store:\n  max_trace_idle: 100ms\n  max_trace_live: 1s\n  max_block_duration: 300ms\n  complete_block_timeout: 1s\ncompactor:\n  compaction:\n    compaction_cycle: 1s\nstorage:\n  trace:\n    block:\n      parquet_codecs: {codecs}\n      parquet_row_group_size_bytes: 400000\n"
    )
}

/// The block directories with a `meta.json` (compacted inputs lose theirs).
fn live_blocks(root: &Path) -> BTreeSet<PathBuf> {
    block_dirs(root)
        .into_iter()
        .filter(|b| b.join("meta.json").exists())
        .collect()
}

/// The same figures as [`READ`], from vivace's own reader.
fn ours(dir: &Path) -> serde_json::Value {
    let meta = vivace_block::BlockMeta::read(dir).unwrap();
    let data = bytes::Bytes::from(std::fs::read(dir.join("data.parquet")).unwrap());
    let traces = vivace_block::read_all_traces(data, &meta, "arrow-test").unwrap();
    let (mut ids, mut names, mut services, mut keys) = (
        Vec::new(),
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeSet::new(),
    );
    for (_, t) in &traces {
        for rs in &t.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(vivace_proto::otlp::common::any_value::Value::StringValue(s)) => {
                        Some(s.clone())
                    }
                    _ => None,
                });
            services.insert(service);
            for s in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                ids.push(hex::encode(&s.span_id));
                names.insert(s.name.clone());
                // Attributes stored in dedicated columns are not in `Attrs`.
                for kv in &s.attributes {
                    keys.insert(kv.key.clone());
                }
            }
        }
    }
    ids.sort();
    serde_json::json!({
        "rows": traces.len(),
        "spans": ids.len(),
        "span_ids": hex::encode(sha2::Sha256::digest(ids.concat())),
        "names": names,
        "services": services,
        "keys": keys,
        "total_objects": meta.total_objects,
    })
}

#[test]
fn pyarrow_reads_every_block_as_vivace_does() {
    let python = installed("VIVACE_ARROW_PYTHON", "pyarrow");
    for codecs in ["compact", "tempo"] {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start(dir.path(), &config(codecs));
        let o = Command::new(binary())
            .args(["gen", "--endpoint", &format!("127.0.0.1:{}", server.grpc)])
            .args(["--duration", "3s", "--rate", "8000", "--concurrency", "2"])
            .args(["--batch-spans", "200"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            o.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let sent: u64 = stdout
            .lines()
            .find_map(|l| l.strip_prefix("sent: "))
            .and_then(|l| l.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no `sent:` line in {stdout}"));
        // Every trace in a block, some of them compacted, and no compaction under way: the set
        // of live blocks unchanged for 3 s.
        let root = dir.path().join("data/blocks");
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut last, mut since) = (BTreeSet::new(), Instant::now());
        loop {
            assert!(
                Instant::now() < deadline,
                "blocks did not settle in 60 s:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
            let now = live_blocks(&root);
            if now != last {
                (last, since) = (now, Instant::now());
                continue;
            }
            let log = server.log_text();
            if log.contains("blocks compacted")
                && since.elapsed() > Duration::from_secs(3)
                && !last.is_empty()
            {
                break;
            }
        }
        server.terminate();
        let blocks = live_blocks(&root);
        assert_eq!(blocks, last, "blocks changed at shutdown");
        let files: Vec<String> = blocks
            .iter()
            .map(|b| b.join("data.parquet").display().to_string())
            .collect();
        let out = Command::new(&python)
            .arg("-c")
            .arg(READ)
            .args(&files)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pyarrow failed on {codecs} blocks: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(theirs.len(), blocks.len());
        let (mut spans, mut compacted, mut row_groups) = (0, 0, 0);
        for (b, t) in blocks.iter().zip(&theirs) {
            let ours = ours(b);
            for k in ["rows", "spans", "span_ids", "names"] {
                assert_eq!(t[k], ours[k], "{codecs} {}: {k}", b.display());
            }
            // The generic attribute columns hold the keys that have no column of their own;
            // vivace's reader gives back both.
            let keys = |v: &serde_json::Value| -> BTreeSet<String> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            };
            let (their_keys, our_keys) = (keys(&t["keys"]), keys(&ours["keys"]));
            assert!(
                !their_keys.is_empty() && their_keys.is_subset(&our_keys),
                "{codecs} {}: attribute keys {their_keys:?} vs {our_keys:?}",
                b.display()
            );
            // Service names, where a resource has one.
            assert_eq!(keys(&t["services"]), keys(&ours["services"]));
            assert_eq!(t["rows"], ours["total_objects"], "{}", b.display());
            assert_eq!(t["unindexed"], 0, "{}", b.display());
            spans += t["spans"].as_u64().unwrap();
            row_groups += t["row_groups"].as_u64().unwrap();
            let meta = vivace_block::BlockMeta::read(b).unwrap();
            compacted += usize::from(meta.compaction_level > 0);
        }
        assert_eq!(
            spans, sent,
            "{codecs}: every span sent is in exactly one block"
        );
        assert!(
            compacted > 0,
            "{codecs}: no compacted block among {blocks:?}"
        );
        assert!(
            row_groups > blocks.len() as u64,
            "{codecs}: blocks of one row group each"
        );
    }
}
