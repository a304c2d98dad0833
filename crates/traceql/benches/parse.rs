//! Parse + validate throughput for a mix of realistic queries (what Grafana, the UI and people
//! send). Target: at least 200k typical queries per second on one core, so TraceQL parsing
//! never shows up in a query's latency.
//!
//! Run: `cargo bench -p vivace-traceql --bench parse` (prints time per query and queries/s).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const QUERIES: &[&str] = &[
    "{}",
    "{ resource.service.name = \"checkout\" }",
    "{ span.http.response.status_code >= 500 && resource.service.name = \"api\" }",
    "{ name = \"GET /api/cart\" && duration > 250ms }",
    "{ status = error } | count() > 2",
    "{ resource.service.name = \"frontend\" } >> { span.db.system = \"postgresql\" && duration > 100ms }",
    "{ .http.route =~ \"/api/.*\" } | by(resource.service.name) | avg(duration) > 1s",
    "{ } | rate() by (resource.service.name)",
    "{ status = error } | quantile_over_time(duration, .5, .9, .99) by (span.http.route) | topk(10) with(sample=0.1)",
    "({ status = error } | rate()) / ({ } | rate()) > 0.05",
];

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("traceql");
    g.throughput(Throughput::Elements(QUERIES.len() as u64));
    g.bench_function("parse_validate_mix", |b| {
        b.iter(|| {
            for q in QUERIES {
                std::hint::black_box(vivace_traceql::parse(std::hint::black_box(q)).is_ok());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
