//! Trace by ID over many blocks on local disk, the way the querier searches them (32 blocks at a
//! time): latency of hits and misses, and object reads per lookup. Prints figures; asserts
//! nothing about time.
//!
//!   cargo bench -p vivace-block --bench trace_by_id              # 1,000 blocks × 50 traces
//!   cargo bench -p vivace-block --bench trace_by_id -- 200 500   # 200 blocks × 500 traces

use std::time::Instant;

use futures::StreamExt;
use vivace_block::{BlockRef, BlockWriter, WriterConfig, set_file_facts};
use vivace_common::TraceId;
use vivace_proto::otlp::common::{AnyValue, KeyValue, any_value};
use vivace_proto::otlp::resource::Resource;
use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status};
use vivace_proto::tempopb::Trace;
use vivace_store::Backend;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn id(&mut self) -> TraceId {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next().to_be_bytes());
        id[8..].copy_from_slice(&self.next().to_be_bytes());
        TraceId(id)
    }
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn trace(rng: &mut Rng, id: &TraceId, start: u64) -> Trace {
    let spans = (0..20u64)
        .map(|i| Span {
            trace_id: id.0.to_vec(),
            span_id: rng.next().to_be_bytes().to_vec(),
            parent_span_id: if i == 0 { vec![] } else { vec![1; 8] },
            name: format!("op-{}", i % 5),
            kind: 2,
            start_time_unix_nano: start + i * 1000,
            end_time_unix_nano: start + i * 1000 + 500_000,
            attributes: vec![
                kv("http.request.method", "GET"),
                kv("url.path", "/api/items"),
            ],
            status: Some(Status {
                code: 1,
                message: String::new(),
            }),
            ..Default::default()
        })
        .collect();
    Trace {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "bench"), kv("k8s.pod.name", "bench-0")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn lookup(backend: &Backend, blocks: &[BlockRef], id: TraceId) -> usize {
    futures::stream::iter(blocks.iter().cloned())
        .map(|b| {
            let backend = backend.clone();
            async move { vivace_block::find_trace_by_id(&backend, &b, &id).await }
        })
        .buffer_unordered(32)
        .filter(|r| std::future::ready(matches!(r, Ok(Some(_)))))
        .count()
        .await
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (nblocks, per) = (
        args.first().copied().unwrap_or(1000),
        args.get(1).copied().unwrap_or(50),
    );
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::local(dir.path()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut all_ids = Vec::new();
        let start = Instant::now();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let mut bytes = 0u64;
        for b in 0..nblocks {
            let block_id = format!("00000000-0000-4000-8000-{b:012}");
            let mut ids: Vec<TraceId> = (0..per).map(|_| rng.id()).collect();
            ids.sort();
            let mut w = BlockWriter::new(Vec::new(), WriterConfig::new("bench", &block_id)).unwrap();
            for id in &ids {
                w.push(*id, &trace(&mut rng, id, now)).unwrap();
            }
            let (mut done, data) = w.finish().unwrap();
            set_file_facts(&mut done.meta, data.len() as u64, &data);
            bytes += data.len() as u64;
            vivace_store::upload(&backend, done, data).await.unwrap();
            all_ids.extend(ids);
        }
        let spans = all_ids.len() * 20;
        println!(
            "wrote {nblocks} blocks × {per} traces × 20 spans in {:.1}s ({:.0} spans/s), {:.1} B/span",
            start.elapsed().as_secs_f64(),
            spans as f64 / start.elapsed().as_secs_f64(),
            bytes as f64 / spans as f64
        );
        let t = Instant::now();
        let list = vivace_store::poll(&backend, &Default::default(), false).await.unwrap();
        let blocks = list.blocks("bench").to_vec();
        println!("poll of {} blocks: {:.1} ms", blocks.len(), t.elapsed().as_secs_f64() * 1e3);

        let t = Instant::now();
        let r0 = backend.reads();
        assert_eq!(lookup(&backend, &blocks, rng.id()).await, 0);
        println!(
            "first lookup (cold: every bloom and nothing cached): {:.1} ms, {} reads",
            t.elapsed().as_secs_f64() * 1e3,
            backend.reads() - r0
        );
        for (name, hit) in [("miss", false), ("hit", true)] {
            let n = 300;
            let mut ms = Vec::with_capacity(n);
            let r0 = backend.reads();
            for _ in 0..n {
                let id = if hit {
                    all_ids[(rng.next() % all_ids.len() as u64) as usize]
                } else {
                    rng.id()
                };
                let t = Instant::now();
                let found = lookup(&backend, &blocks, id).await;
                ms.push(t.elapsed().as_secs_f64() * 1e3);
                assert_eq!(found, usize::from(hit));
            }
            let reads = (backend.reads() - r0) as f64 / n as f64;
            println!(
                "{name}: p50 {:.2} ms, p99 {:.2} ms, {reads:.2} object reads per lookup (warm)",
                percentile(&mut ms, 0.5),
                percentile(&mut ms, 0.99)
            );
        }
    });
}
