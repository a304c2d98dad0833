//! Writes the frozen fixture `testdata/vivace-blocks/vParquet5/<id>/`: every trace of Tempo's
//! vParquet5 fixture block, re-written by vivace's writer with its default settings.
//!   cargo run --release -p vivace-block --example write_fixture
use std::path::Path;

use vivace_block::{BlockMeta, BlockWriter, WriterConfig, read_all_traces, set_file_facts};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    let src = std::fs::read_dir(root.join("tempo-blocks/vParquet5"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let meta = BlockMeta::read(&src).unwrap();
    let data = bytes::Bytes::from(std::fs::read(src.join("data.parquet")).unwrap());
    let traces = read_all_traces(data, &meta, "fixture").unwrap();
    let id = "5f1c0d3e-7a6b-4c2d-9e8f-0a1b2c3d4e5f";
    let dir = root.join("vivace-blocks/vParquet5").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let mut w = BlockWriter::new(Vec::new(), WriterConfig::new("single-tenant", id)).unwrap();
    for (tid, t) in &traces {
        w.push(*tid, t).unwrap();
    }
    let (mut done, out) = w.finish().unwrap();
    set_file_facts(&mut done.meta, out.len() as u64, &out);
    std::fs::write(dir.join("data.parquet"), &out).unwrap();
    for (i, b) in done.blooms.iter().enumerate() {
        std::fs::write(dir.join(format!("bloom-{i}")), b).unwrap();
    }
    std::fs::write(dir.join("meta.json"), done.meta.to_json()).unwrap();
    println!("wrote {} traces to {}", traces.len(), dir.display());
}
