//! Memory of the generator's active series: feeds spans that make 10,000 distinct span-metrics
//! label sets (calls, latency histogram, size) and 10,000 service-graph edges (request, failed,
//! two histograms) through the real processors, and prints the heap bytes the registry holds per
//! 10k label sets, counted by a global allocator.
//!
//!   cargo run --release -p vivace-generator --example series_memory

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use vivace_generator::config::{ServiceGraphsConfig, SpanMetricsConfig};
use vivace_generator::registry::{Registry, RegistrySettings};
use vivace_generator::{servicegraphs, spanmetrics};
use vivace_proto::otlp::common::{AnyValue, KeyValue, any_value};
use vivace_proto::otlp::trace::Span;
use vivace_proto::otlp::trace::span::SpanKind;

struct Counting;
static HELD: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        HELD.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout, same contract.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        HELD.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same pointer and layout the system allocator gave.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..KeyValue::default()
    }
}

fn main() {
    const N: usize = 10_000;
    let settings = RegistrySettings {
        constant_labels: Vec::new(),
        max_label_name_length: 1024,
        max_label_value_length: 2048,
        stale_ms: 3_600_000,
        max_active_series: 0,
        max_cardinality_per_label: 0,
        trace_id_label: "traceID".into(),
    };
    // Span metrics: N label sets (100 services × 100 span names).
    let mut reg = Registry::new(settings.clone());
    let on = spanmetrics::Enabled {
        count: true,
        latency: true,
        size: true,
    };
    let mut sm = spanmetrics::SpanMetrics::new(SpanMetricsConfig::default(), on, &mut reg).unwrap();
    let before = HELD.load(Ordering::Relaxed);
    for svc in 0..100 {
        let resource = vec![kv("service.name", &format!("service-{svc:03}"))];
        let spans: Vec<Span> = (0..N / 100)
            .map(|n| Span {
                name: format!("GET /api/v1/resource-{n:03}"),
                kind: SpanKind::Server as i32,
                end_time_unix_nano: 1_000_000,
                ..Span::default()
            })
            .collect();
        let refs: Vec<&Span> = spans.iter().collect();
        sm.push(
            &mut reg,
            &resource,
            &refs,
            "0123456789abcdef0123456789abcdef",
            1,
        );
    }
    let held = HELD.load(Ordering::Relaxed) - before;
    println!(
        "span metrics: {N} label sets = {} series sent; {:.1} MB held, {:.0} bytes per label set",
        reg.active_series(),
        held as f64 / 1e6,
        held as f64 / N as f64
    );
    // Service graphs: N edges (100 clients × 100 servers), paired.
    let mut reg = Registry::new(settings);
    let on = servicegraphs::Enabled {
        request: true,
        latency: true,
    };
    let mut sg = servicegraphs::ServiceGraphs::new(ServiceGraphsConfig::default(), on, &mut reg);
    let before = HELD.load(Ordering::Relaxed);
    let mut id = 1u64;
    for c in 0..100 {
        for s in 0..N / 100 {
            let client = Span {
                span_id: id.to_be_bytes().to_vec(),
                kind: SpanKind::Client as i32,
                ..Span::default()
            };
            let server = Span {
                span_id: (id + 1).to_be_bytes().to_vec(),
                parent_span_id: id.to_be_bytes().to_vec(),
                kind: SpanKind::Server as i32,
                ..Span::default()
            };
            id += 2;
            let t = [7u8; 16];
            sg.push(
                &mut reg,
                &[kv("service.name", &format!("client-{c:03}"))],
                &[&client],
                &t,
                1,
            );
            sg.push(
                &mut reg,
                &[kv("service.name", &format!("server-{s:03}"))],
                &[&server],
                &t,
                1,
            );
        }
    }
    let held = HELD.load(Ordering::Relaxed) - before;
    println!(
        "service graphs: {N} edges = {} series sent; {:.1} MB held, {:.0} bytes per edge",
        reg.active_series(),
        held as f64 / 1e6,
        held as f64 / N as f64
    );
}
