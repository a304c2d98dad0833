//! The per-tenant trace maps, limits, completion and eviction.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prost::Message;
use vivace_common::{TenantId, TraceId};
use vivace_proto::tempopb::Trace;

use crate::config::Config;
use vivace_model::{combine_traces, span_key};

const SHARDS: usize = 16;

/// Span keys are already xxh3 hashes: hash them by identity.
type KeySet = HashSet<u64, BuildHasherDefault<IdentityHasher>>;

#[derive(Debug, Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Per-tenant limits from the overrides.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Live traces per tenant (`ingestion.max_traces_per_user`, default 10,000; 0 = unlimited).
    pub max_traces_per_user: usize,
    /// Bytes of one trace (`global.max_bytes_per_trace`, default 5,000,000; 0 = unlimited).
    pub max_bytes_per_trace: usize,
}

/// Why a trace of a push was refused by [`LiveStore::admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceRefusal {
    /// The trace would pass `max_bytes_per_trace` (reason `trace_too_large`).
    TooLarge {
        trace_id: TraceId,
        current: usize,
        adding: usize,
        max: usize,
    },
}

/// The answer of [`LiveStore::admit`] for one push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Every trace may be written; `refused[i]` tells which traces of the push may not.
    Admit { refused: Vec<Option<TraceRefusal>> },
    /// New traces would pass `max_traces_per_user` (reason `live_traces_exceeded`).
    LiveTracesExceeded { live: usize, max: usize },
    /// The tenant's live bytes would pass `max_live_traces_bytes` (reason `live_traces_exceeded`).
    LiveBytesExceeded { live_bytes: u64, max: u64 },
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabel {
    pub tenant: String,
}

/// Gauges of the live-store, registered by the application.
#[derive(Debug, Clone, Default)]
pub struct LiveStoreMetrics {
    pub live_traces: Family<TenantLabel, Gauge>,
    pub live_trace_bytes: Family<TenantLabel, Gauge>,
    pub complete_traces: Family<TenantLabel, Gauge>,
    pub complete_bytes: Gauge,
}

/// Recent traces of every tenant.
#[derive(Debug)]
pub struct LiveStore {
    cfg: Config,
    tenants: RwLock<HashMap<TenantId, Arc<TenantStore>>>,
    complete_bytes: AtomicU64,
    metrics: LiveStoreMetrics,
}

#[derive(Debug)]
struct TenantStore {
    shards: Vec<Mutex<HashMap<TraceId, TraceEntry>>>,
    live: AtomicI64,
    live_bytes: AtomicI64,
    /// Completed traces, oldest first, with the completion generation that put them here.
    completed: Mutex<VecDeque<(TraceId, u64, Instant)>>,
    live_gauge: Gauge,
    live_bytes_gauge: Gauge,
    complete_gauge: Gauge,
}

#[derive(Debug)]
struct TraceEntry {
    first_push: Instant,
    last_push: Instant,
    /// Encoded `Trace` pieces received since the trace was (re)opened.
    parts: Vec<Bytes>,
    parts_bytes: usize,
    /// Compressed encoded `Trace` holding everything completed so far.
    complete_opt: Option<Compressed>,
    /// Keys of every span held, for deduplication.
    keys: KeySet,
    /// Bumped on each completion; an eviction entry with an older generation is stale.
    generation: u64,
}

/// A completed trace: its encoding, zstd-compressed (level 1: about 5x smaller than the
/// protobuf on typical spans, at a few percent of the write path's CPU).
#[derive(Debug)]
struct Compressed {
    data: Bytes,
    raw_len: usize,
}

impl Compressed {
    fn compress(raw: &[u8]) -> Bytes {
        // `bulk::compress` returns a buffer sized for the worst case; keep only what is used.
        Bytes::copy_from_slice(&zstd::bulk::compress(raw, 1).unwrap_or_default())
    }

    fn decode_raw(data: &[u8], raw_len: usize) -> Result<Trace, String> {
        let raw = zstd::bulk::decompress(data, raw_len).map_err(|e| e.to_string())?;
        Trace::decode(raw.as_slice()).map_err(|e| e.to_string())
    }

    fn decode(&self) -> Option<Trace> {
        Self::decode_raw(&self.data, self.raw_len).ok()
    }
}

impl TraceEntry {
    fn is_live(&self) -> bool {
        !self.parts.is_empty()
    }

    fn total_bytes(&self) -> usize {
        self.parts_bytes + self.complete_opt.as_ref().map_or(0, |c| c.raw_len)
    }
}

impl LiveStore {
    pub fn new(cfg: Config, metrics: LiveStoreMetrics) -> Self {
        LiveStore {
            cfg,
            tenants: RwLock::new(HashMap::new()),
            complete_bytes: AtomicU64::new(0),
            metrics,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn tenant(&self, tenant: &TenantId) -> Arc<TenantStore> {
        if let Some(t) = self.tenants.read().get(tenant) {
            return t.clone();
        }
        let label = TenantLabel {
            tenant: tenant.to_string(),
        };
        self.tenants
            .write()
            .entry(tenant.clone())
            .or_insert_with(|| {
                Arc::new(TenantStore {
                    shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
                    live: AtomicI64::new(0),
                    live_bytes: AtomicI64::new(0),
                    completed: Mutex::new(VecDeque::new()),
                    live_gauge: self.metrics.live_traces.get_or_create(&label).clone(),
                    live_bytes_gauge: self.metrics.live_trace_bytes.get_or_create(&label).clone(),
                    complete_gauge: self.metrics.complete_traces.get_or_create(&label).clone(),
                })
            })
            .clone()
    }

    /// Checks a push against the limits before it is written to the queue. `traces` holds the
    /// trace ID and encoded size of each trace in the push.
    pub fn admit(
        &self,
        tenant: &TenantId,
        traces: &[(TraceId, usize)],
        limits: Limits,
    ) -> Admission {
        let t = self.tenant(tenant);
        let mut new_traces = 0usize;
        let mut added_bytes = 0u64;
        let mut refused = Vec::with_capacity(traces.len());
        let mut any_refused = false;
        for (id, size) in traces {
            let shard = t.shards[shard_of(id)].lock();
            let (live, current) = shard
                .get(id)
                .map_or((false, 0), |e| (e.is_live(), e.total_bytes()));
            drop(shard);
            if limits.max_bytes_per_trace > 0 && current + size > limits.max_bytes_per_trace {
                refused.push(Some(TraceRefusal::TooLarge {
                    trace_id: *id,
                    current,
                    adding: *size,
                    max: limits.max_bytes_per_trace,
                }));
                any_refused = true;
                continue;
            }
            refused.push(None);
            if !live {
                new_traces += 1;
            }
            added_bytes += *size as u64;
        }
        let live = t.live.load(Ordering::Relaxed).max(0) as usize;
        if limits.max_traces_per_user > 0
            && new_traces > 0
            && live + new_traces > limits.max_traces_per_user
        {
            return Admission::LiveTracesExceeded {
                live,
                max: limits.max_traces_per_user,
            };
        }
        let live_bytes = t.live_bytes.load(Ordering::Relaxed).max(0) as u64;
        if self.cfg.max_live_traces_bytes > 0
            && live_bytes + added_bytes > self.cfg.max_live_traces_bytes
        {
            return Admission::LiveBytesExceeded {
                live_bytes,
                max: self.cfg.max_live_traces_bytes,
            };
        }
        if !any_refused {
            refused.clear();
        }
        Admission::Admit { refused }
    }

    /// Adds spans of one trace. `encoded` is the protobuf encoding of `trace`. Spans already held
    /// are dropped. Never refuses: limits were checked by [`LiveStore::admit`].
    pub fn push(
        &self,
        tenant: &TenantId,
        id: TraceId,
        trace: &Trace,
        encoded: Bytes,
        now: Instant,
    ) {
        let t = self.tenant(tenant);
        let mut shard = t.shards[shard_of(&id)].lock();
        let entry = shard.entry(id).or_insert_with(|| TraceEntry {
            first_push: now,
            last_push: now,
            parts: Vec::new(),
            parts_bytes: 0,
            complete_opt: None,
            keys: KeySet::default(),
            generation: 0,
        });
        if entry.keys.is_empty() {
            // Completed traces drop their key set to save memory; a late span rebuilds it.
            if let Some(done) = entry.complete_opt.as_ref().and_then(Compressed::decode) {
                entry.keys.extend(spans(&done).map(span_key));
            }
        }
        let mut incoming = KeySet::default();
        let mut dup = false;
        for s in spans(trace) {
            let k = span_key(s);
            dup |= entry.keys.contains(&k) || !incoming.insert(k);
        }
        let part = if !dup {
            entry.keys.extend(incoming);
            encoded
        } else {
            let mut fresh = trace.clone();
            for rs in &mut fresh.resource_spans {
                for ss in &mut rs.scope_spans {
                    ss.spans.retain(|s| entry.keys.insert(span_key(s)));
                }
            }
            if spans(&fresh).next().is_none() {
                return;
            }
            Bytes::from(combine_traces([fresh], &mut HashSet::new()).encode_to_vec())
        };
        if !entry.is_live() {
            entry.first_push = now;
            t.live.fetch_add(1, Ordering::Relaxed);
            t.live_gauge.inc();
        }
        entry.last_push = now;
        entry.parts_bytes += part.len();
        t.live_bytes.fetch_add(part.len() as i64, Ordering::Relaxed);
        t.live_bytes_gauge.inc_by(part.len() as i64);
        entry.parts.push(part);
    }

    /// The combined trace, or `None`. Also returns the bytes inspected.
    pub fn find_trace(&self, tenant: &TenantId, id: &TraceId) -> Option<(Trace, u64)> {
        let t = self.tenants.read().get(tenant)?.clone();
        let (complete, parts) = {
            let shard = t.shards[shard_of(id)].lock();
            let e = shard.get(id)?;
            (
                e.complete_opt.as_ref().map(|c| (c.data.clone(), c.raw_len)),
                e.parts.clone(),
            )
        };
        let mut inspected = 0u64;
        let mut pieces = Vec::with_capacity(parts.len() + 1);
        if let Some((data, raw_len)) = complete {
            inspected += raw_len as u64;
            match Compressed::decode_raw(&data, raw_len) {
                Ok(tr) => pieces.push(tr),
                Err(e) => {
                    tracing::error!(trace_id = %id, error = %e, "completed trace does not decode")
                }
            }
        }
        for p in parts {
            inspected += p.len() as u64;
            match Trace::decode(p.as_ref()) {
                Ok(tr) => pieces.push(tr),
                Err(e) => {
                    tracing::error!(trace_id = %id, error = %e, "live trace part does not decode")
                }
            }
        }
        Some((combine_traces(pieces, &mut HashSet::new()), inspected))
    }

    /// Completes idle and old traces and releases completed ones past their retention or the
    /// memory bound. Called periodically (and at shutdown with `force`).
    pub fn sweep(&self, now: Instant, force: bool) {
        let tenants: Vec<Arc<TenantStore>> = self.tenants.read().values().cloned().collect();
        for t in &tenants {
            for shard in &t.shards {
                let mut shard = shard.lock();
                for (id, e) in shard.iter_mut() {
                    if !e.is_live() {
                        continue;
                    }
                    let idle =
                        now.saturating_duration_since(e.last_push) >= self.cfg.max_trace_idle;
                    let old =
                        now.saturating_duration_since(e.first_push) >= self.cfg.max_trace_live;
                    if force || idle || old {
                        self.complete(t, id, e, now);
                    }
                }
            }
        }
        self.evict(&tenants, now);
    }

    fn complete(&self, t: &TenantStore, id: &TraceId, e: &mut TraceEntry, now: Instant) {
        if e.complete_opt.is_none() && e.parts.len() == 1 {
            // The common case, a trace that arrived in one push: its bytes are already one
            // deduplicated trace, so compress them as they are.
            let raw = e.parts.pop().unwrap_or_default();
            t.complete_gauge.inc();
            self.finish_completion(t, id, e, &raw, now);
            return;
        }
        let mut pieces = Vec::with_capacity(e.parts.len() + 1);
        if let Some(c) = e.complete_opt.take() {
            self.complete_bytes
                .fetch_sub(c.data.len() as u64, Ordering::Relaxed);
            if let Some(tr) = c.decode() {
                pieces.push(tr);
            }
        } else {
            t.complete_gauge.inc();
        }
        for p in e.parts.drain(..) {
            if let Ok(tr) = Trace::decode(p.as_ref()) {
                pieces.push(tr);
            }
        }
        let raw = combine_traces(pieces, &mut HashSet::new()).encode_to_vec();
        self.finish_completion(t, id, e, &raw, now);
    }

    /// Stores `raw` (the whole encoded trace) compressed and queues it for eviction.
    fn finish_completion(
        &self,
        t: &TenantStore,
        id: &TraceId,
        e: &mut TraceEntry,
        raw: &[u8],
        now: Instant,
    ) {
        t.live.fetch_sub(1, Ordering::Relaxed);
        t.live_gauge.dec();
        t.live_bytes
            .fetch_sub(e.parts_bytes as i64, Ordering::Relaxed);
        t.live_bytes_gauge.dec_by(e.parts_bytes as i64);
        e.parts_bytes = 0;
        e.keys = KeySet::default();
        let data = Compressed::compress(raw);
        self.complete_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        e.complete_opt = Some(Compressed {
            data,
            raw_len: raw.len(),
        });
        e.generation += 1;
        t.completed.lock().push_back((*id, e.generation, now));
    }

    fn evict(&self, tenants: &[Arc<TenantStore>], now: Instant) {
        for t in tenants {
            loop {
                let over =
                    self.complete_bytes.load(Ordering::Relaxed) > self.cfg.max_complete_bytes;
                let mut q = t.completed.lock();
                let Some(&(id, generation, at)) = q.front() else {
                    break;
                };
                if !over && now.saturating_duration_since(at) < self.cfg.complete_block_timeout {
                    break;
                }
                q.pop_front();
                drop(q);
                let mut shard = t.shards[shard_of(&id)].lock();
                let Some(e) = shard.get_mut(&id) else {
                    continue;
                };
                if e.generation != generation || e.is_live() {
                    continue; // completed again later, or revived: a newer queue entry exists
                }
                if let Some(c) = &e.complete_opt {
                    self.complete_bytes
                        .fetch_sub(c.data.len() as u64, Ordering::Relaxed);
                }
                shard.remove(&id);
                t.complete_gauge.dec();
            }
        }
        self.metrics
            .complete_bytes
            .set(self.complete_bytes.load(Ordering::Relaxed) as i64);
    }

    /// Live traces of a tenant (not yet completed).
    pub fn live_traces(&self, tenant: &TenantId) -> usize {
        self.tenants
            .read()
            .get(tenant)
            .map_or(0, |t| t.live.load(Ordering::Relaxed).max(0) as usize)
    }
}

fn spans(trace: &Trace) -> impl Iterator<Item = &vivace_proto::otlp::trace::Span> {
    trace
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
}

fn shard_of(id: &TraceId) -> usize {
    id.0[15] as usize % SHARDS
}

#[cfg(test)]
mod tests;
