//! Cutting on its own: the traces of a block on disk are put into the live-store's completed
//! chunks (`PendingBlock`, as the sweep builds them) and written back as blocks the way the
//! flusher does, on one thread; prints CPU per span and spans per second. Deterministic input, so
//! two builds compare better than in the noisy end-to-end run of `scripts/bench/write_path.sh`.
//!   cargo run --release -p vivace-livestore --example cut_blocks -- <block dir> [rounds] [file to write the block to]
//! (a block dir: `<data dir>/blocks/<tenant>/<id>/`, e.g. after `vivace gen --duration 10s`.)
use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use prost::Message;
use vivace_block::{BlockMeta, WriterConfig, read_all_traces};
use vivace_common::TenantId;
use vivace_livestore::PendingBlock;
use vivace_livestore::flush::cut;

/// The server's allocator, so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .expect("usage: cut_blocks <block dir> [rounds] [file to write the block to]"),
    );
    let rounds: usize = args.next().map_or(5, |r| r.parse().expect("rounds"));
    let out_opt = args.next();
    let meta = BlockMeta::read(&dir).expect("meta.json");
    let data = Bytes::from(std::fs::read(dir.join("data.parquet")).expect("data.parquet"));
    let traces = read_all_traces(data, &meta, "bench").expect("traces");
    let spans: usize = traces
        .iter()
        .map(|(_, t)| vivace_model::span_count(t))
        .sum();
    let pieces: Vec<_> = traces
        .iter()
        .map(|(id, t)| (*id, Bytes::from(t.encode_to_vec())))
        .collect();
    let raw: usize = pieces.iter().map(|(_, b)| b.len()).sum();
    let pending = PendingBlock::from_pieces(TenantId::new("bench").unwrap(), pieces);
    println!(
        "{} traces, {spans} spans, {:.1} MB encoded; {rounds} rounds",
        traces.len(),
        raw as f64 / 1e6
    );
    let mut best = f64::MAX;
    for round in 0..rounds {
        let (cpu0, wall0) = (thread_cpu_seconds(), Instant::now());
        let (_, out) = cut(&pending, WriterConfig::new("bench", "bench")).unwrap();
        if let Some(path) = &out_opt {
            std::fs::write(path, &out).expect("writing the block");
        }
        let cpu = thread_cpu_seconds() - cpu0;
        best = best.min(cpu);
        println!(
            "round {round}: {:.2} µs CPU/span, {:.0}k spans/s, wall {:.0} ms, {:.1} MB written",
            cpu / spans as f64 * 1e6,
            spans as f64 / cpu / 1e3,
            wall0.elapsed().as_secs_f64() * 1e3,
            out.len() as f64 / 1e6
        );
    }
    println!("best: {:.2} µs CPU/span", best / spans as f64 * 1e6);
}
