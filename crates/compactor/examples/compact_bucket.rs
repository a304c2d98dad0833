//! Compacts every live block of a tenant in a local bucket into one, printing the throughput (a
//! measuring aid; it changes the bucket, so run it on a copy).
//!   cargo run --release -p vivace-compactor --example compact_bucket -- <bucket dir> <tenant>
//! `RG=<bytes>` sets the output's `row_group_bytes`. Peak memory: `/usr/bin/time -v` (the example
//! uses the server's allocator).
use std::time::Instant;

/// The server's allocator, so the memory figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dir, tenant) = (std::path::PathBuf::from(&args[1]), args[2].clone());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let backend = vivace_store::Backend::local(&dir).unwrap();
        let list = vivace_store::poll(&backend, &Default::default(), false).await.unwrap();
        let inputs = list.blocks(&tenant).to_vec();
        let bytes: u64 = inputs.iter().map(|b| b.meta.size).sum();
        let t = Instant::now();
        let r = vivace_compactor::compact(
            &backend,
            &inputs,
            &{
                let mut c = vivace_block::WriterConfig::new(&tenant, "");
                if let Ok(v) = std::env::var("RG") {
                    c.row_group_bytes = v.parse().unwrap();
                }
                c
            },
            0,
        )
        .await
        .unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{} blocks, {} traces, {:.1} MB → 1 block of {} traces, {:.1} MB in {secs:.2} s ({:.0} traces/s, {:.1} MB/s of input)",
            inputs.len(),
            r.input_traces,
            bytes as f64 / 1e6,
            r.output.meta.total_objects,
            r.output.meta.size as f64 / 1e6,
            r.input_traces as f64 / secs,
            bytes as f64 / 1e6 / secs
        );
    });
}
