//! Rewrites a block with each codec choice and prints the sizes (a measuring aid).
//!   cargo run --release -p vivace-block --example colsizes -- <block dir>
use vivace_block::{BlockMeta, BlockWriter, Codecs, WriterConfig, read_all_traces};
fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let meta = BlockMeta::read(&dir).unwrap();
    let data = bytes::Bytes::from(std::fs::read(dir.join("data.parquet")).unwrap());
    let traces = read_all_traces(data.clone(), &meta, "x").unwrap();
    let spans: usize = traces
        .iter()
        .map(|(_, t)| vivace_model::span_count(t))
        .sum();
    println!(
        "{} traces, {spans} spans, as written: {:.1} B/span",
        traces.len(),
        data.len() as f64 / spans as f64
    );
    for codecs in [Codecs::Tempo, Codecs::Compact] {
        let mut cfg = WriterConfig::new("t", "b");
        cfg.codecs = codecs;
        let t = std::time::Instant::now();
        let mut w = BlockWriter::new(Vec::new(), cfg).unwrap();
        for (id, tr) in &traces {
            w.push(*id, tr).unwrap();
        }
        let (_, out) = w.finish().unwrap();
        println!(
            "{codecs:?}: {:.1} B/span, written in {:.2} s",
            out.len() as f64 / spans as f64,
            t.elapsed().as_secs_f64()
        );
    }
}
