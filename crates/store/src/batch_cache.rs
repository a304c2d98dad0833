//! Blocks already read into span batches, kept for the next search (bounded by bytes, least
//! recently used out first). Blocks never change once written, so a cached batch stays right
//! until its block is compacted away; entries of blocks no longer listed simply age out.
//!
//! An entry remembers the projection it was read with: a later query that needs no more is
//! answered from it; one that needs more reads the block again with the union, which replaces
//! the entry.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use vivace_traceql::batch::{Projection, SpanBatch};

#[derive(Debug)]
struct Entry {
    proj: Projection,
    batch: Arc<SpanBatch>,
    bytes: usize,
    used: u64,
}

/// A bounded cache of decoded blocks, keyed by (tenant, block ID).
#[derive(Debug)]
pub struct BatchCache {
    max_bytes: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<(String, String), Entry>,
    bytes: usize,
    tick: u64,
    hits: u64,
    misses: u64,
}

/// Counts for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchCacheStats {
    pub bytes: usize,
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
}

impl BatchCache {
    /// A cache of at most `max_bytes` (0 = no caching).
    pub fn new(max_bytes: usize) -> BatchCache {
        BatchCache {
            max_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Whether the cached batch of a block was read with at least `proj` (no hit or miss is
    /// counted; a job planner asks before the job itself calls [`BatchCache::get`]).
    pub fn covers(&self, tenant: &str, block: &str, proj: Projection) -> bool {
        self.inner
            .lock()
            .entries
            .get(&(tenant.to_string(), block.to_string()))
            .is_some_and(|e| e.proj.union(proj) == e.proj)
    }

    /// The cached batch of a block if it was read with at least `proj`; else the projection to
    /// read it with (the union with what was cached, so the entry only grows).
    pub fn get(
        &self,
        tenant: &str,
        block: &str,
        proj: Projection,
    ) -> Result<Arc<SpanBatch>, Projection> {
        let mut g = self.inner.lock();
        g.tick += 1;
        let tick = g.tick;
        let key = (tenant.to_string(), block.to_string());
        let found = match g.entries.get_mut(&key) {
            Some(e) if e.proj.union(proj) == e.proj => {
                e.used = tick;
                Ok(e.batch.clone())
            }
            Some(e) => Err(e.proj.union(proj)),
            None => Err(proj),
        };
        match &found {
            Ok(_) => g.hits += 1,
            Err(_) => g.misses += 1,
        }
        found
    }

    /// Keeps a batch read with `proj`, evicting the least recently used entries beyond the
    /// budget. A batch larger than the whole budget is not kept.
    pub fn insert(&self, tenant: &str, block: &str, proj: Projection, batch: Arc<SpanBatch>) {
        let bytes = batch.approx_bytes();
        if bytes > self.max_bytes {
            return;
        }
        let mut g = self.inner.lock();
        g.tick += 1;
        let used = g.tick;
        if let Some(old) = g.entries.insert(
            (tenant.to_string(), block.to_string()),
            Entry {
                proj,
                batch,
                bytes,
                used,
            },
        ) {
            g.bytes -= old.bytes;
        }
        g.bytes += bytes;
        while g.bytes > self.max_bytes {
            let Some(oldest) = g
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = g.entries.remove(&oldest) {
                g.bytes -= e.bytes;
            }
        }
    }

    pub fn stats(&self) -> BatchCacheStats {
        let g = self.inner.lock();
        BatchCacheStats {
            bytes: g.bytes,
            entries: g.entries.len(),
            hits: g.hits,
            misses: g.misses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vivace_traceql::batch::BatchBuilder;

    fn batch(spans: usize) -> Arc<SpanBatch> {
        let mut bb = BatchBuilder::new();
        bb.begin_trace([1; 16]);
        bb.begin_resource();
        bb.begin_scope("", "");
        for i in 0..spans {
            bb.span(&vivace_traceql::batch::SpanInput {
                id: (i as u64 + 1).to_be_bytes(),
                parent_id: [0; 8],
                name: "x",
                kind: vivace_traceql::ast::KindValue::Internal,
                status: vivace_traceql::ast::StatusValue::Unset,
                status_message: "",
                start_ns: 0,
                end_ns: 1,
                child_of_link: false,
            });
        }
        Arc::new(bb.finish())
    }

    #[test]
    fn bounded_least_recently_used_and_projection_aware() {
        let one = batch(100).approx_bytes();
        let c = BatchCache::new(one * 2 + one / 2);
        let spans = Projection {
            span_attrs: true,
            ..Projection::NONE
        };
        c.insert("t", "a", spans, batch(100));
        c.insert("t", "b", Projection::NONE, batch(100));
        assert!(
            c.get("t", "a", Projection::NONE).is_ok(),
            "a superset answers"
        );
        assert_eq!(
            c.get("t", "b", spans).unwrap_err(),
            spans,
            "more is read with the union"
        );
        c.insert("t", "c", Projection::NONE, batch(100));
        // b was used least recently: it goes.
        assert!(c.get("t", "b", Projection::NONE).is_err());
        assert!(c.get("t", "a", Projection::NONE).is_ok());
        assert!(c.stats().bytes <= one * 2 + one / 2);
        let none = BatchCache::new(0);
        none.insert("t", "a", spans, batch(1));
        assert_eq!(none.stats().entries, 0);
    }
}
