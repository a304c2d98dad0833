//! The process's Prometheus registry and process gauges (read from `/proc` at scrape time).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Default)]
pub(crate) struct ProcessMetrics {
    resident: Gauge,
    virtual_mem: Gauge,
    cpu_seconds: Gauge<f64, AtomicU64>,
    threads: Gauge,
    background_cpu: Family<Vec<(String, String)>, Gauge<f64, AtomicU64>>,
}

impl ProcessMetrics {
    pub(crate) fn register(&self, r: &mut Registry) {
        r.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            self.resident.clone(),
        );
        r.register(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            self.virtual_mem.clone(),
        );
        r.register(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            self.cpu_seconds.clone(),
        );
        r.register(
            "process_threads",
            "Number of OS threads",
            self.threads.clone(),
        );
        r.register(
            "vivace_background_cpu_seconds",
            "CPU seconds spent by finished background tasks (task: vivace-flush = cutting blocks, vivace-compact = compaction)",
            self.background_cpu.clone(),
        );
    }

    /// Refreshes the gauges from `/proc/self/stat`.
    pub(crate) fn refresh(&self) {
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return;
        };
        // Fields after the parenthesised command name, which may itself contain spaces.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            return;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // SAFETY: sysconf has no preconditions.
        let (tick, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK) as f64,
                libc::sysconf(libc::_SC_PAGESIZE) as f64,
            )
        };
        // rest starts at field 3 (state): utime=14, stime=15, threads=20, vsize=23, rss=24.
        self.cpu_seconds.set((num(11) + num(12)) / tick.max(1.0));
        self.threads.set(num(17) as i64);
        self.virtual_mem.set(num(20) as i64);
        self.resident.set((num(21) * page) as i64);
        for (task, secs) in vivace_common::background::cpu_seconds() {
            self.background_cpu
                .get_or_create(&vec![("task".to_string(), task)])
                .set(secs);
        }
    }
}

/// The search block cache in `/metrics`, refreshed from its counts at each scrape.
#[derive(Debug, Clone)]
pub(crate) struct CacheMetrics {
    pub(crate) cache: std::sync::Arc<vivace_store::BatchCache>,
    bytes: Gauge,
    entries: Gauge,
    hits: Gauge,
    misses: Gauge,
}

impl CacheMetrics {
    pub(crate) fn new(cache: std::sync::Arc<vivace_store::BatchCache>) -> CacheMetrics {
        CacheMetrics {
            cache,
            bytes: Gauge::default(),
            entries: Gauge::default(),
            hits: Gauge::default(),
            misses: Gauge::default(),
        }
    }

    pub(crate) fn register(&self, r: &mut Registry) {
        r.register(
            "vivace_search_block_cache_bytes",
            "Bytes of decoded blocks kept for search (querier.search.block_cache_bytes)",
            self.bytes.clone(),
        );
        r.register(
            "vivace_search_block_cache_entries",
            "Decoded blocks kept for search",
            self.entries.clone(),
        );
        r.register(
            "vivace_search_block_cache_hits",
            "Block reads of searches answered from the cache",
            self.hits.clone(),
        );
        r.register(
            "vivace_search_block_cache_misses",
            "Block reads of searches that read the block",
            self.misses.clone(),
        );
    }

    pub(crate) fn refresh(&self) {
        let s = self.cache.stats();
        self.bytes.set(s.bytes as i64);
        self.entries.set(s.entries as i64);
        self.hits.set(s.hits as i64);
        self.misses.set(s.misses as i64);
    }
}

pub(crate) fn render(registry: &Registry, process: &ProcessMetrics) -> String {
    process.refresh();
    let mut out = String::new();
    if encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

/// The per-tenant overrides file's reloads: a bad file keeps the last good values, and says so
/// here (and in `/status/overrides`).
#[derive(Debug, Clone, Default)]
pub(crate) struct OverridesMetrics {
    pub(crate) last_reload_successful: Gauge,
    pub(crate) reload_failures: prometheus_client::metrics::counter::Counter,
}

impl OverridesMetrics {
    pub(crate) fn register(&self, r: &mut Registry) {
        self.last_reload_successful.set(1);
        r.register(
            "vivace_overrides_last_reload_successful",
            "Whether the last reload of the per-tenant overrides file succeeded (0: the last good values stay in force)",
            self.last_reload_successful.clone(),
        );
        r.register(
            "vivace_overrides_reload_failures",
            "Reloads of the per-tenant overrides file that failed",
            self.reload_failures.clone(),
        );
    }
}
