//! Times reading every trace of a block (a measuring aid).
//!   cargo run --release -p vivace-block --example read_all -- <block dir>
fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let meta = vivace_block::BlockMeta::read(&dir).unwrap();
    let data = bytes::Bytes::from(std::fs::read(dir.join("data.parquet")).unwrap());
    let t = std::time::Instant::now();
    let traces = vivace_block::read_all_traces(data, &meta, "x").unwrap();
    println!(
        "{} traces in {:.2} s",
        traces.len(),
        t.elapsed().as_secs_f64()
    );
}
