//! The per-tenant trace maps, limits, completion and eviction.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prost::Message;
use vivace_common::{TenantId, TraceId};
use vivace_proto::tempopb::Trace;
use vivace_proto::view;
use vivace_queue::Offset;
use vivace_traceql::batch::SpanBatch;

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
    /// Bytes of the span batches kept for search of traces not yet in a block (completed
    /// chunks' and the live traces' segments).
    pub search_batch_bytes: Gauge,
    /// Compressed bytes of completed traces in memory and not yet in a block, by tenant.
    pub unflushed_bytes: Family<TenantLabel, Gauge>,
    /// Completed traces released from memory before reaching a block (the log keeps them; they
    /// are read back from it when the backend accepts blocks again), by tenant.
    pub spilled_traces: Family<TenantLabel, Gauge>,
    /// Chunks of completed traces released from memory before reaching a block.
    pub spills: Counter,
    /// Blocks the flusher failed to write (the traces are kept and retried).
    pub flush_failures: Counter,
    /// Age of the oldest completed trace not yet in a block, in seconds (0: none waiting).
    pub backlog_seconds: Gauge,
}

impl LiveStoreMetrics {
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        r.register(
            "vivace_live_store_live_traces",
            "Traces receiving spans, by tenant",
            self.live_traces.clone(),
        );
        r.register(
            "vivace_live_store_live_trace_bytes",
            "Encoded bytes of live traces, by tenant",
            self.live_trace_bytes.clone(),
        );
        r.register(
            "vivace_live_store_complete_traces",
            "Completed traces held in memory, by tenant",
            self.complete_traces.clone(),
        );
        r.register(
            "vivace_live_store_complete_bytes",
            "Compressed bytes of completed traces held in memory",
            self.complete_bytes.clone(),
        );
        r.register(
            "vivace_live_store_search_batch_bytes",
            "Bytes of span batches kept for search of traces not yet in a block (completed chunks and live traces)",
            self.search_batch_bytes.clone(),
        );
        r.register(
            "vivace_live_store_unflushed_bytes",
            "Compressed bytes of completed traces in memory and not yet in a block, by tenant",
            self.unflushed_bytes.clone(),
        );
        r.register(
            "vivace_live_store_spilled_traces",
            "Completed traces released from memory before reaching a block, to be read back from the write-ahead log, by tenant",
            self.spilled_traces.clone(),
        );
        r.register(
            "vivace_live_store_spills",
            "Chunks of completed traces released from memory before reaching a block",
            self.spills.clone(),
        );
        r.register(
            "vivace_flush_failures",
            "Blocks the flusher failed to write (kept and retried)",
            self.flush_failures.clone(),
        );
        r.register(
            "vivace_flush_backlog_seconds",
            "Age of the oldest completed trace not yet in a block",
            self.backlog_seconds.clone(),
        );
    }
}

/// A span batch for search and, when only some of its traces are current, their indexes.
pub type SearchBatch = (Arc<SpanBatch>, Option<Vec<u32>>);

/// Recent traces of every tenant.
#[derive(Debug)]
pub struct LiveStore {
    cfg: Config,
    /// The highest queue offset pushed here: a spilled chunk's traces lie below the next one.
    max_offset: AtomicU64,
    /// Identities of spilled ranges.
    next_spill: AtomicU64,
    /// Queue offsets of appends not yet pushed here, with their counts.
    inflight: Mutex<HashMap<Offset, usize>>,
    tenants: RwLock<HashMap<TenantId, Arc<TenantStore>>>,
    complete_bytes: AtomicU64,
    metrics: LiveStoreMetrics,
}

#[derive(Debug)]
struct TenantStore {
    shards: Vec<Mutex<Shard>>,
    live: AtomicI64,
    live_bytes: AtomicI64,
    /// Chunks of completed traces, oldest first.
    completed: Mutex<VecDeque<(Arc<Chunk>, Instant)>>,
    /// Chunks not yet written to a block in the backend, oldest first.
    unflushed: Mutex<VecDeque<Arc<Chunk>>>,
    /// Completed traces released from memory before reaching a block, oldest first: the flusher
    /// reads them back from the queue.
    spilled: Mutex<VecDeque<Arc<Spilled>>>,
    live_gauge: Gauge,
    unflushed_gauge: Gauge,
    spilled_gauge: Gauge,
    live_bytes_gauge: Gauge,
    complete_gauge: Gauge,
    /// The live traces as span batches, kept across searches.
    live_segments: Mutex<segments::LiveSegments>,
    /// The last version given to a trace's state ([`TraceEntry::version`]).
    versions: AtomicU64,
}

/// The traces of a tenant whose IDs fall in one shard: every trace held, live or completed, and
/// the IDs of the live ones (parts not yet completed) — what the sweep and the queue's commit
/// point visit each time, instead of every completed trace kept for `complete_block_timeout`
/// (a million and more at full ingest).
#[derive(Debug, Default)]
struct Shard {
    traces: HashMap<TraceId, TraceEntry>,
    live: HashSet<TraceId>,
}

#[derive(Debug)]
struct TraceEntry {
    first_push: Instant,
    last_push: Instant,
    /// Encoded `Trace` pieces received since the trace was (re)opened.
    parts: Vec<Bytes>,
    /// The queue offset of each part (a lower bound: the next offset when the append began).
    part_offsets: Vec<Offset>,
    parts_bytes: usize,
    /// Everything completed so far, as one encoded `Trace` in a compressed chunk.
    complete_opt: Option<CompleteRef>,
    /// Keys of every span held, for deduplication.
    keys: KeySet,
    /// Bumped on each completion; an eviction entry with an older generation is stale.
    generation: u64,
    /// Changes with every change of what the trace holds (a part pushed, parts completed, the
    /// completed part released), unique within the tenant: live-trace search batches are
    /// rebuilt only for traces whose version moved.
    version: u64,
}

/// Traces completed in the same sweep, encoded back to back and zstd-compressed together
/// (level 1, `store/codec.rs`, up to [`CHUNK_RAW_BYTES`] before compression): neighbouring traces share resources,
/// attribute keys and values, so a chunk compresses far better than each trace alone. Reading
/// one trace decompresses its chunk.
#[derive(Debug)]
pub(crate) struct Chunk {
    data: Bytes,
    raw_len: usize,
    /// The traces stored here and the generation each had when it was stored.
    traces: Vec<(TraceId, u64)>,
    /// Where each trace's encoding lies in the raw data.
    places: Vec<(u32, u32)>,
    /// The queue offsets of the parts folded into this chunk lie in `[min_offset, end_offset)`:
    /// what a spill of the chunk reads back.
    min_offset: Offset,
    end_offset: Offset,
    created: Instant,
    /// Written to a block in the backend: the chunk may be released and its segments removed.
    flushed: AtomicBool,
    /// Taken by the flusher and being written: not released from memory meanwhile.
    writing: AtomicBool,
    /// The chunk's traces as a span batch (in `traces` order), built by the first search that
    /// needs it and dropped once the chunk is in a block (search then reads the block).
    batch: Mutex<Option<KeptBatch>>,
}

/// A chunk's search batch, counted in `vivace_live_store_search_batch_bytes` while it is kept.
#[derive(Debug)]
struct KeptBatch {
    batch: Arc<SpanBatch>,
    bytes: i64,
    gauge: Gauge,
}

impl Drop for KeptBatch {
    fn drop(&mut self) {
        self.gauge.dec_by(self.bytes);
    }
}

/// One batch of a search over the live-store ([`LiveStore::search_batches`]): ready, or a
/// completed chunk's, which [`LiveBatch::get`] builds if no search has yet (so the chunks a
/// search needs are built by its jobs, concurrently, not one after another up front).
#[derive(Debug)]
pub struct LiveBatch(Pending);

#[derive(Debug)]
enum Pending {
    Ready(SearchBatch),
    Chunk {
        chunk: Arc<Chunk>,
        mask: Option<Vec<u32>>,
        gauge: Gauge,
    },
}

impl LiveBatch {
    /// Whether [`LiveBatch::get`] has nothing to build.
    pub fn is_ready(&self) -> bool {
        match &self.0 {
            Pending::Ready(_) => true,
            Pending::Chunk { chunk, .. } => chunk.batch.lock().is_some(),
        }
    }

    /// The batch and the traces of it to read; may build a chunk's batch (blocking work).
    pub fn get(self) -> SearchBatch {
        match self.0 {
            Pending::Ready(b) => b,
            Pending::Chunk { chunk, mask, gauge } => {
                let mut slot = chunk.batch.lock();
                if let Some(kept) = &*slot {
                    return (kept.batch.clone(), mask);
                }
                let batch = Arc::new(chunk_batch(&chunk));
                // A chunk already in a block keeps no batch: search reads the block from now on.
                if !chunk.flushed.load(Ordering::Acquire) {
                    let bytes = batch.approx_bytes() as i64;
                    gauge.inc_by(bytes);
                    *slot = Some(KeptBatch {
                        batch: batch.clone(),
                        bytes,
                        gauge,
                    });
                }
                (batch, mask)
            }
        }
    }
}

const CHUNK_RAW_BYTES: usize = 256 << 10;

/// Queue offsets `[first, end)` of some parts; none yet: an empty range that widens to any.
const NO_OFFSETS: (Offset, Offset) = (Offset(u64::MAX), Offset(0));

/// The smallest offset range holding both.
fn widen(a: (Offset, Offset), b: (Offset, Offset)) -> (Offset, Offset) {
    (a.0.min(b.0), a.1.max(b.1))
}

impl Chunk {
    fn build(
        items: &[(TraceId, u64, Bytes)],
        (min_offset, end_offset): (Offset, Offset),
        now: Instant,
    ) -> (Arc<Chunk>, Vec<(u32, u32)>) {
        let raw_len = items.iter().map(|(_, _, b)| b.len()).sum();
        let mut raw = Vec::with_capacity(raw_len);
        let mut spans = Vec::with_capacity(items.len());
        for (_, _, b) in items {
            spans.push((raw.len() as u32, b.len() as u32));
            raw.extend_from_slice(b);
        }
        let data = codec::compress(&raw).unwrap_or_default();
        let traces = items
            .iter()
            .map(|(id, generation, _)| (*id, *generation))
            .collect();
        (
            Arc::new(Chunk {
                data,
                raw_len,
                traces,
                places: spans.clone(),
                min_offset,
                end_offset,
                created: now,
                flushed: AtomicBool::new(false),
                writing: AtomicBool::new(false),
                batch: Mutex::new(None),
            }),
            spans,
        )
    }
}

/// Completed traces of one tenant released from memory before they reached a block: their parts
/// are the tenant's records of these traces in the queue between `from` and `to`.
#[derive(Debug)]
pub struct Spilled {
    id: u64,
    pub traces: HashSet<TraceId>,
    pub from: Offset,
    /// Exclusive.
    pub to: Offset,
    /// Uncompressed bytes of the chunks released.
    pub raw_bytes: usize,
    created: Instant,
}

/// Where a completed trace's encoding lies in its chunk.
#[derive(Debug, Clone)]
struct CompleteRef {
    chunk: Arc<Chunk>,
    offset: u32,
    len: u32,
}

/// A completed chunk that cannot be read back (memory corruption or a bug: chunks are built
/// here from traces that decoded).
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("a completed chunk does not decompress: {0}")]
    Decompress(std::io::Error),
    #[error("a completed chunk is shorter than its index")]
    Short,
    #[error("a completed trace does not decode: {0}")]
    Decode(prost::DecodeError),
    #[error("a completed trace does not decode: {0}")]
    View(view::DecodeError),
}

/// Completed traces of one tenant not yet in a block, taken by the flusher.
#[derive(Debug, Clone)]
pub struct PendingBlock {
    pub tenant: TenantId,
    chunks: Vec<Arc<Chunk>>,
}

impl PendingBlock {
    /// A block of traces given as encoded pieces (several per trace allowed: they are combined).
    pub fn from_pieces(tenant: TenantId, pieces: Vec<(TraceId, Bytes)>) -> PendingBlock {
        let now = Instant::now();
        let mut chunks = Vec::new();
        let mut items: Vec<(TraceId, u64, Bytes)> = Vec::new();
        let mut bytes = 0;
        for (id, b) in pieces {
            bytes += b.len();
            items.push((id, 0, b));
            if bytes >= CHUNK_RAW_BYTES {
                chunks
                    .push(Chunk::build(&std::mem::take(&mut items), (Offset(0), Offset(0)), now).0);
                bytes = 0;
            }
        }
        if !items.is_empty() {
            chunks.push(Chunk::build(&items, (Offset(0), Offset(0)), now).0);
        }
        PendingBlock { tenant, chunks }
    }

    /// Traces (trace IDs, pieces of one counted once) in the block.
    pub fn trace_count(&self) -> usize {
        self.chunks
            .iter()
            .flat_map(|c| c.traces.iter().map(|(id, _)| *id))
            .collect::<HashSet<_>>()
            .len()
    }

    /// The traces, decoded, pieces of one trace combined, sorted by ID.
    pub fn traces(&self) -> Result<Vec<(TraceId, Trace)>, ChunkError> {
        let mut out = Vec::new();
        self.for_each_encoded(|id, encoded| {
            let t = Trace::decode(encoded).map_err(ChunkError::Decode)?;
            out.push((id, t));
            Ok::<_, ChunkError>(())
        })?;
        Ok(out)
    }

    /// Calls `f` with each trace in ID order — a view of its encoding (its strings are slices
    /// of the decompressed chunk, see [`view`]) and the encoding's size — pieces of one trace
    /// combined. Only the chunks' raw bytes and one trace at a time are held decoded, not the
    /// whole block.
    pub fn for_each_trace<E: From<ChunkError>>(
        &self,
        mut f: impl FnMut(TraceId, &view::Trace<'_>, usize) -> Result<(), E>,
    ) -> Result<(), E> {
        self.for_each_encoded(|id, encoded| {
            let trace = view::Trace::decode(encoded).map_err(ChunkError::View)?;
            f(id, &trace, encoded.len())
        })
    }

    /// Calls `f` with each trace's encoding in ID order, pieces of one trace combined.
    fn for_each_encoded<E: From<ChunkError>>(
        &self,
        mut f: impl FnMut(TraceId, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut raws = Vec::with_capacity(self.chunks.len());
        // (trace, chunk, offset, length), sorted by trace then chunk (older pieces first).
        let mut index = Vec::new();
        for (ci, c) in self.chunks.iter().enumerate() {
            raws.push(c.raw()?);
            for ((id, _), (off, len)) in c.traces.iter().zip(&c.places) {
                index.push((*id, ci, *off, *len));
            }
        }
        index.sort_unstable_by_key(|(id, ci, _, _)| (*id, *ci));
        let piece = |&(_, ci, off, len): &(TraceId, usize, u32, u32)| piece(&raws[ci], off, len);
        let mut i = 0;
        while i < index.len() {
            let id = index[i].0;
            let mut j = i + 1;
            while j < index.len() && index[j].0 == id {
                j += 1;
            }
            let encoded = if j - i == 1 {
                piece(&index[i])?
            } else {
                // A trace completed more than once: combine (and deduplicate) its pieces.
                let pieces = index[i..j]
                    .iter()
                    .map(|p| Trace::decode(piece(p)?).map_err(ChunkError::Decode))
                    .collect::<Result<Vec<_>, _>>()?;
                Bytes::from(combine_traces(pieces, &mut HashSet::new()).encode_to_vec())
            };
            f(id, &encoded)?;
            i = j;
        }
        Ok(())
    }

    /// Uncompressed bytes of the traces.
    pub fn raw_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.raw_len).sum()
    }
}

/// Keeps a queue offset referenced while an append is on its way to the live-store (see
/// [`LiveStore::begin_append`]).
#[derive(Debug)]
pub struct AppendGuard<'a> {
    store: &'a LiveStore,
    offset: Offset,
}

impl Drop for AppendGuard<'_> {
    fn drop(&mut self) {
        let mut m = self.store.inflight.lock();
        if let Some(n) = m.get_mut(&self.offset) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.offset);
            }
        }
    }
}

impl TenantStore {
    fn next_version(&self) -> u64 {
        self.versions.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl CompleteRef {
    fn decode(&self) -> Result<Trace, ChunkError> {
        let piece = piece(&self.chunk.raw()?, self.offset, self.len)?;
        Trace::decode(piece).map_err(ChunkError::Decode)
    }
}

impl Chunk {
    /// The chunk's traces, decompressed, back to back.
    fn raw(&self) -> Result<Bytes, ChunkError> {
        codec::decompress(&self.data, self.raw_len)
            .map(Bytes::from)
            .map_err(ChunkError::Decompress)
    }
}

/// The encoding of one trace in a chunk's raw bytes (a slice of them).
fn piece(raw: &Bytes, offset: u32, len: u32) -> Result<Bytes, ChunkError> {
    let (start, end) = (offset as usize, offset as usize + len as usize);
    if end > raw.len() {
        return Err(ChunkError::Short);
    }
    Ok(raw.slice(start..end))
}

impl TraceEntry {
    fn is_live(&self) -> bool {
        !self.parts.is_empty()
    }

    fn total_bytes(&self) -> usize {
        self.parts_bytes + self.complete_opt.as_ref().map_or(0, |c| c.len as usize)
    }
}

impl LiveStore {
    pub fn new(cfg: Config, metrics: LiveStoreMetrics) -> Self {
        LiveStore {
            cfg,
            max_offset: AtomicU64::new(0),
            next_spill: AtomicU64::new(0),
            inflight: Mutex::new(HashMap::new()),
            tenants: RwLock::new(HashMap::new()),
            complete_bytes: AtomicU64::new(0),
            metrics,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn metrics(&self) -> &LiveStoreMetrics {
        &self.metrics
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
                    shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
                    live: AtomicI64::new(0),
                    live_bytes: AtomicI64::new(0),
                    completed: Mutex::new(VecDeque::new()),
                    unflushed: Mutex::new(VecDeque::new()),
                    spilled: Mutex::new(VecDeque::new()),
                    live_gauge: self.metrics.live_traces.get_or_create(&label).clone(),
                    unflushed_gauge: self.metrics.unflushed_bytes.get_or_create(&label).clone(),
                    spilled_gauge: self.metrics.spilled_traces.get_or_create(&label).clone(),
                    live_bytes_gauge: self.metrics.live_trace_bytes.get_or_create(&label).clone(),
                    complete_gauge: self.metrics.complete_traces.get_or_create(&label).clone(),
                    live_segments: Mutex::default(),
                    versions: AtomicU64::new(0),
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
                .traces
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

    /// Adds spans of one trace: `encoded` is a `tempopb.Trace` holding them, `keys` their
    /// [`vivace_model::span_key`]s in order. Spans already held are dropped. Never refuses:
    /// limits were checked by [`LiveStore::admit`].
    pub fn push(
        &self,
        tenant: &TenantId,
        id: TraceId,
        keys: &[u64],
        encoded: Bytes,
        now: Instant,
        offset: Offset,
    ) {
        let t = self.tenant(tenant);
        self.max_offset.fetch_max(offset.0, Ordering::Relaxed);
        let mut shard = t.shards[shard_of(&id)].lock();
        let Shard { traces, live } = &mut *shard;
        let entry = traces.entry(id).or_insert_with(|| TraceEntry {
            first_push: now,
            last_push: now,
            parts: Vec::new(),
            part_offsets: Vec::new(),
            parts_bytes: 0,
            complete_opt: None,
            keys: KeySet::default(),
            generation: 0,
            version: 0,
        });
        if entry.keys.is_empty() {
            // Completed traces drop their key set to save memory; a late span rebuilds it.
            if let Some(done) = entry.complete_opt.as_ref().and_then(|c| c.decode().ok()) {
                entry.keys.extend(spans(&done).map(span_key));
            }
        }
        let mut incoming = KeySet::default();
        let mut dup = false;
        for &k in keys {
            dup |= entry.keys.contains(&k) || !incoming.insert(k);
        }
        let part = if !dup {
            entry.keys.extend(incoming);
            encoded
        } else {
            // Rare (a client retrying an export): decode, keep the spans not held yet.
            let Ok(mut fresh) = Trace::decode(encoded.as_ref()) else {
                tracing::error!(trace_id = %id, "pushed trace does not decode; dropping it");
                return;
            };
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
            live.insert(id);
            entry.first_push = now;
            t.live.fetch_add(1, Ordering::Relaxed);
            t.live_gauge.inc();
        }
        entry.last_push = now;
        entry.parts_bytes += part.len();
        t.live_bytes.fetch_add(part.len() as i64, Ordering::Relaxed);
        t.live_bytes_gauge.inc_by(part.len() as i64);
        entry.parts.push(part);
        entry.part_offsets.push(offset);
        entry.version = t.next_version();
    }

    /// The combined trace, or `None`. Also returns the bytes inspected.
    pub fn find_trace(&self, tenant: &TenantId, id: &TraceId) -> Option<(Trace, u64)> {
        let t = self.tenants.read().get(tenant)?.clone();
        let (complete, parts) = {
            let shard = t.shards[shard_of(id)].lock();
            let e = shard.traces.get(id)?;
            (e.complete_opt.clone(), e.parts.clone())
        };
        Some(held_trace(id, complete, parts))
    }

    /// What [`LiveStore::search_batches`] holds of the one trace `id`, for a search only that
    /// trace can match (`{ trace:id = "…" }`): a batch of it if it is live or completed and not
    /// yet in a block. Also returns the bytes inspected.
    pub fn search_trace(&self, tenant: &TenantId, id: &TraceId) -> (Vec<LiveBatch>, u64) {
        let Some(t) = self.tenants.read().get(tenant).cloned() else {
            return (Vec::new(), 0);
        };
        let (complete, parts) = {
            let shard = t.shards[shard_of(id)].lock();
            let Some(e) = shard.traces.get(id) else {
                return (Vec::new(), 0);
            };
            let in_block = e
                .complete_opt
                .as_ref()
                .is_none_or(|c| c.chunk.flushed.load(Ordering::Acquire));
            if e.parts.is_empty() && in_block {
                return (Vec::new(), 0);
            }
            (e.complete_opt.clone(), e.parts.clone())
        };
        let (trace, inspected) = held_trace(id, complete, parts);
        let batch = vivace_model::batch_of([(id, &trace)]);
        (
            vec![LiveBatch(Pending::Ready((Arc::new(batch), None)))],
            inspected,
        )
    }

    /// Everything of `tenant` not yet in a block, as span batches for search: one batch per
    /// completed chunk (built once, kept until the chunk's block is written) with the indexes of
    /// its traces that are still current (not reopened, not completed again later), and the
    /// traces still receiving spans, read whole — from batches kept across searches, rebuilt only
    /// for the traces that changed since the last one (`segments.rs`). Also returns the bytes
    /// inspected.
    pub fn search_batches(&self, tenant: &TenantId) -> (Vec<LiveBatch>, u64) {
        let Some(t) = self.tenants.read().get(tenant).cloned() else {
            return (Vec::new(), 0);
        };
        // Held throughout: the live traces seen below are the ones the segments are brought to.
        let mut segments = t.live_segments.lock();
        // Per chunk, the traces whose current state is exactly their part in that chunk. The
        // chunks are taken from the traces themselves: a trace completed while this runs points
        // at a chunk that may not be in the tenant's list yet, and would otherwise be missed.
        let mut current: HashMap<*const Chunk, (Arc<Chunk>, HashSet<TraceId>)> = HashMap::new();
        let mut live = Vec::new();
        // The state of live traces whose kept rows are not current, as of the pass below.
        let mut held: HashMap<TraceId, Held> = HashMap::new();
        let mut inspected = 0u64;
        for shard in &t.shards {
            let shard = shard.lock();
            for (id, e) in shard.traces.iter() {
                match (&e.complete_opt, e.parts.is_empty()) {
                    (Some(c), true) if !c.chunk.flushed.load(Ordering::Acquire) => {
                        current
                            .entry(Arc::as_ptr(&c.chunk))
                            .or_insert_with(|| (c.chunk.clone(), HashSet::new()))
                            .1
                            .insert(*id);
                    }
                    (_, true) => {} // in a block already
                    (complete, false) => {
                        inspected += e.total_bytes() as u64;
                        live.push(segments::LiveTrace {
                            id: *id,
                            version: e.version,
                        });
                        if !segments.is_current(id, e.version) {
                            held.insert(*id, (complete.clone(), e.parts.clone()));
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        // Oldest chunk first, as before.
        let mut chunks: Vec<(Arc<Chunk>, HashSet<TraceId>)> = current.into_values().collect();
        chunks.sort_by_key(|(c, _)| c.created);
        for (c, ids) in chunks {
            inspected += c.raw_len as u64;
            let mask: Vec<u32> = c
                .traces
                .iter()
                .enumerate()
                .filter(|(_, (id, _))| ids.contains(id))
                .map(|(i, _)| i as u32)
                .collect();
            let mask = (mask.len() < c.traces.len()).then_some(mask);
            out.push(LiveBatch(Pending::Chunk {
                chunk: c,
                mask,
                gauge: self.metrics.search_batch_bytes.clone(),
            }));
        }
        let (batches, kept) = segments.batches(&live, |dirty| live_batch(&t, dirty, held));
        self.metrics
            .search_batch_bytes
            .inc_by(kept.added as i64 - kept.dropped as i64);
        out.extend(batches.into_iter().map(|b| LiveBatch(Pending::Ready(b))));
        (out, inspected)
    }

    /// Completes idle and old traces and releases completed ones past their retention or the
    /// memory bound. Called periodically (and at shutdown with `force`).
    ///
    /// A trace stays readable throughout: its parts are copied into a chunk first, and only then,
    /// under the shard lock, replaced by a reference into the chunk. Parts pushed in between
    /// stay, and keep the trace live.
    pub fn sweep(&self, now: Instant, force: bool) {
        let tenants: Vec<Arc<TenantStore>> = self.tenants.read().values().cloned().collect();
        for t in &tenants {
            // (trace, parts folded in, encoded trace, its parts' offsets) per completing trace.
            let mut done: Vec<(TraceId, usize, Bytes, (Offset, Offset))> = Vec::new();
            for shard in &t.shards {
                let shard = shard.lock();
                for id in &shard.live {
                    let Some(e) = shard.traces.get(id).filter(|e| e.is_live()) else {
                        continue;
                    };
                    let idle =
                        now.saturating_duration_since(e.last_push) >= self.cfg.max_trace_idle;
                    let old =
                        now.saturating_duration_since(e.first_push) >= self.cfg.max_trace_live;
                    if force || idle || old {
                        let offsets = e
                            .part_offsets
                            .iter()
                            .fold(NO_OFFSETS, |r, &o| widen(r, (o, o.next())));
                        done.push((*id, e.parts.len(), whole_trace(id, e), offsets));
                    }
                }
            }
            // Chunks of traces that arrived together: each chunk's records lie close in the
            // queue, so a chunk released from memory reads back a short range of it.
            done.sort_unstable_by_key(|(.., (lo, _))| *lo);
            let mut batch: Vec<(TraceId, u64, Bytes)> = Vec::new();
            let (mut batch_bytes, mut range) = (0, NO_OFFSETS);
            for (i, (id, folded, raw, offsets)) in done.iter().enumerate() {
                batch_bytes += raw.len();
                range = widen(range, *offsets);
                batch.push((*id, *folded as u64, raw.clone()));
                if batch_bytes >= CHUNK_RAW_BYTES || i + 1 == done.len() {
                    self.install_chunk(t, std::mem::take(&mut batch), range, now);
                    (batch_bytes, range) = (0, NO_OFFSETS);
                }
            }
        }
        self.evict(&tenants, now);
    }

    /// Compresses `items` (trace, parts folded in, encoding) into one chunk and points each trace
    /// at it.
    fn install_chunk(
        &self,
        t: &TenantStore,
        mut items: Vec<(TraceId, u64, Bytes)>,
        offsets: (Offset, Offset),
        now: Instant,
    ) {
        // The chunk records the generation each trace will have once installed.
        let folded: Vec<usize> = items.iter().map(|(_, f, _)| *f as usize).collect();
        for (id, generation, _) in &mut items {
            let shard = t.shards[shard_of(id)].lock();
            *generation = shard.traces.get(id).map_or(0, |e| e.generation + 1);
        }
        let (chunk, places) = Chunk::build(&items, offsets, now);
        self.complete_bytes
            .fetch_add(chunk.data.len() as u64, Ordering::Relaxed);
        for (((id, generation, _), (offset, len)), folded) in items.iter().zip(places).zip(folded) {
            let mut shard = t.shards[shard_of(id)].lock();
            let Shard { traces, live } = &mut *shard;
            let Some(e) = traces.get_mut(id) else {
                continue;
            };
            if e.generation + 1 != *generation {
                continue; // completed concurrently by another sweep; keep that one
            }
            let n = folded.min(e.parts.len());
            e.part_offsets.drain(..n.min(e.part_offsets.len()));
            let folded_bytes: usize = e.parts.drain(..n).map(|p| p.len()).sum();
            if !e.is_live() {
                live.remove(id);
            }
            e.parts_bytes -= folded_bytes;
            t.live_bytes
                .fetch_sub(folded_bytes as i64, Ordering::Relaxed);
            t.live_bytes_gauge.dec_by(folded_bytes as i64);
            if e.complete_opt.is_none() {
                t.complete_gauge.inc();
            }
            e.complete_opt = Some(CompleteRef {
                chunk: chunk.clone(),
                offset,
                len,
            });
            e.generation = *generation;
            e.version = t.next_version();
            if !e.is_live() {
                t.live.fetch_sub(1, Ordering::Relaxed);
                t.live_gauge.dec();
                e.keys = KeySet::default();
            }
        }
        t.completed.lock().push_back((chunk.clone(), now));
        t.unflushed_gauge.inc_by(chunk.data.len() as i64);
        t.unflushed.lock().push_back(chunk);
    }

    fn evict(&self, tenants: &[Arc<TenantStore>], now: Instant) {
        for t in tenants {
            loop {
                let over =
                    self.complete_bytes.load(Ordering::Relaxed) > self.cfg.max_complete_bytes;
                let mut q = t.completed.lock();
                let Some((chunk, at)) = q.front() else { break };
                if !over && now.saturating_duration_since(*at) < self.cfg.complete_block_timeout {
                    break;
                }
                // Not yet in a block: it is the only copy outside the log; kept unless memory is
                // over its bound (see below).
                if !chunk.flushed.load(Ordering::Acquire) {
                    break;
                }
                let chunk = chunk.clone();
                q.pop_front();
                drop(q);
                self.complete_bytes
                    .fetch_sub(chunk.data.len() as u64, Ordering::Relaxed);
                for (id, generation) in &chunk.traces {
                    let mut shard = t.shards[shard_of(id)].lock();
                    let Some(e) = shard.traces.get_mut(id) else {
                        continue;
                    };
                    // Completed again later (a newer chunk holds it), or live again: keep it.
                    if e.generation != *generation || e.is_live() {
                        continue;
                    }
                    shard.traces.remove(id);
                    t.complete_gauge.dec();
                }
            }
        }
        // Still over the bound: blocks are not being written (the backend is unreachable, or
        // cutting is behind). Release the oldest chunks not yet in a block; the log keeps their
        // traces, and the flusher reads them back from it once blocks can be written.
        for t in tenants {
            while self.complete_bytes.load(Ordering::Relaxed) > self.cfg.max_complete_bytes {
                if !self.spill_oldest(t) {
                    break;
                }
            }
        }
        self.metrics
            .complete_bytes
            .set(self.complete_bytes.load(Ordering::Relaxed) as i64);
    }

    /// Releases the tenant's oldest unflushed chunk that is not being written; false if none.
    fn spill_oldest(&self, t: &TenantStore) -> bool {
        let chunk = {
            let mut q = t.unflushed.lock();
            let Some(pos) = q.iter().position(|c| !c.writing.load(Ordering::Acquire)) else {
                return false;
            };
            q.remove(pos).expect("position is in range")
        };
        t.completed.lock().retain(|(c, _)| !Arc::ptr_eq(c, &chunk));
        self.complete_bytes
            .fetch_sub(chunk.data.len() as u64, Ordering::Relaxed);
        t.unflushed_gauge.dec_by(chunk.data.len() as i64);
        chunk.batch.lock().take();
        // Every trace of the chunk is read back. Those whose current completed state is this
        // chunk leave memory; a trace completed again later stays whole in its newer chunk, but
        // that chunk's range holds only the parts pushed since, so if it is released too, this
        // one's block is where the older parts are.
        let traces: HashSet<TraceId> = chunk.traces.iter().map(|(id, _)| *id).collect();
        for (id, generation) in &chunk.traces {
            let mut shard = t.shards[shard_of(id)].lock();
            let Some(e) = shard.traces.get_mut(id) else {
                continue;
            };
            if e.generation != *generation {
                continue;
            }
            t.complete_gauge.dec();
            if e.is_live() {
                e.complete_opt = None;
                e.version = t.next_version();
            } else {
                shard.traces.remove(id);
            }
        }
        self.metrics.spills.inc();
        if traces.is_empty() {
            return true;
        }
        let to = if chunk.end_offset > chunk.min_offset {
            chunk.end_offset
        } else {
            // No offsets known (not a chunk of pushed parts): everything appended so far.
            Offset(self.max_offset.load(Ordering::Relaxed)).next()
        };
        let mut q = t.spilled.lock();
        // Consecutive spills share one range up to a block's size: one block when read back.
        if let Some(last) = q.back_mut()
            && last.raw_bytes + chunk.raw_len <= self.cfg.max_block_bytes as usize
            && let Some(last) = Arc::get_mut(last)
        {
            let before = last.traces.len();
            last.traces.extend(traces);
            t.spilled_gauge.inc_by((last.traces.len() - before) as i64);
            last.from = last.from.min(chunk.min_offset);
            last.to = last.to.max(to);
            last.raw_bytes += chunk.raw_len;
            return true;
        }
        t.spilled_gauge.inc_by(traces.len() as i64);
        q.push_back(Arc::new(Spilled {
            id: self.next_spill.fetch_add(1, Ordering::Relaxed),
            traces,
            from: chunk.min_offset,
            to,
            raw_bytes: chunk.raw_len,
            created: chunk.created,
        }));
        true
    }

    /// The oldest spilled range of each tenant, to be read back from the queue and written.
    pub fn take_spilled(&self) -> Vec<(TenantId, Arc<Spilled>)> {
        self.tenants
            .read()
            .iter()
            .filter_map(|(k, t)| t.spilled.lock().front().map(|s| (k.clone(), s.clone())))
            .collect()
    }

    /// The block holding a spilled range's traces is durable in the backend.
    pub fn mark_spill_flushed(&self, tenant: &TenantId, spilled: &Spilled) {
        let Some(t) = self.tenants.read().get(tenant).cloned() else {
            return;
        };
        let mut q = t.spilled.lock();
        if let Some(pos) = q.iter().position(|s| s.id == spilled.id) {
            q.remove(pos);
            t.spilled_gauge.dec_by(spilled.traces.len() as i64);
        }
    }

    /// Completed traces not yet in a block: (in memory, released to the log, age of the oldest).
    pub fn backlog(&self, now: Instant) -> (usize, usize, std::time::Duration) {
        let (mut held, mut spilled) = (0, 0);
        let mut oldest: Option<Instant> = None;
        for t in self.tenants.read().values() {
            for c in t.unflushed.lock().iter() {
                held += c.traces.len();
                oldest = Some(oldest.map_or(c.created, |o| o.min(c.created)));
            }
            for s in t.spilled.lock().iter() {
                spilled += s.traces.len();
                oldest = Some(oldest.map_or(s.created, |o| o.min(s.created)));
            }
        }
        let age = oldest.map_or(std::time::Duration::ZERO, |o| {
            now.saturating_duration_since(o)
        });
        (held, spilled, age)
    }

    /// Registers an append to the queue about to begin: until the guard drops, `next` (the
    /// queue's next offset now, a lower bound of where the record lands) counts as needed.
    pub fn begin_append(&self, next: Offset) -> AppendGuard<'_> {
        *self.inflight.lock().entry(next).or_insert(0) += 1;
        AppendGuard {
            store: self,
            offset: next,
        }
    }

    /// The oldest queue offset still needed: an append in flight, a live trace, or a completed
    /// trace not yet in a block. `None` when nothing is (the live-store may commit the queue's
    /// next offset).
    pub fn low_watermark(&self) -> Option<Offset> {
        let mut min = self.inflight.lock().keys().copied().min();
        let mut take = |v: Offset| min = Some(min.map_or(v, |m| m.min(v)));
        let tenants: Vec<Arc<TenantStore>> = self.tenants.read().values().cloned().collect();
        for t in &tenants {
            for c in t.unflushed.lock().iter() {
                take(c.min_offset);
            }
            for sp in t.spilled.lock().iter() {
                take(sp.from);
            }
            // Only live traces have parts not yet in a chunk.
            for shard in &t.shards {
                let shard = shard.lock();
                for e in shard.live.iter().filter_map(|id| shard.traces.get(id)) {
                    if let Some(s) = e.part_offsets.iter().copied().min() {
                        take(s);
                    }
                }
            }
        }
        min.filter(|m| *m != Offset(u64::MAX))
    }

    /// Completed traces ready to become a block, per tenant: those whose oldest chunk is
    /// `max_age` old or whose bytes reach `max_bytes` (everything with `force`). The chunks
    /// stay until [`LiveStore::mark_flushed`]; one flusher at a time.
    pub fn take_ready(
        &self,
        now: Instant,
        max_age: std::time::Duration,
        max_bytes: usize,
        force: bool,
    ) -> Vec<PendingBlock> {
        let tenants: Vec<(TenantId, Arc<TenantStore>)> = self
            .tenants
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out = Vec::new();
        for (tenant, t) in tenants {
            let q = t.unflushed.lock();
            let Some(oldest) = q.front() else { continue };
            let bytes: usize = q.iter().map(|c| c.raw_len).sum();
            if force
                || bytes >= max_bytes
                || now.saturating_duration_since(oldest.created) >= max_age
            {
                let mut chunks = Vec::new();
                let mut taken = 0;
                for c in q.iter() {
                    if taken >= max_bytes && !chunks.is_empty() {
                        break;
                    }
                    taken += c.raw_len;
                    c.writing.store(true, Ordering::Release);
                    chunks.push(c.clone());
                }
                out.push(PendingBlock { tenant, chunks });
            }
        }
        out
    }

    /// The block holding `block`'s traces is durable in the backend.
    pub fn mark_flushed(&self, block: &PendingBlock) {
        let Some(t) = self.tenants.read().get(&block.tenant).cloned() else {
            return;
        };
        let mut q = t.unflushed.lock();
        for c in &block.chunks {
            c.flushed.store(true, Ordering::Release);
            c.batch.lock().take();
            if let Some(pos) = q.iter().position(|x| Arc::ptr_eq(x, c)) {
                q.remove(pos);
                t.unflushed_gauge.dec_by(c.data.len() as i64);
            }
            c.writing.store(false, Ordering::Release);
        }
    }

    /// Writing `block` failed: its chunks may be released from memory again if needed.
    pub fn write_failed(&self, block: &PendingBlock) {
        for c in &block.chunks {
            c.writing.store(false, Ordering::Release);
        }
    }

    /// Live traces of a tenant (not yet completed).
    pub fn live_traces(&self, tenant: &TenantId) -> usize {
        self.tenants
            .read()
            .get(tenant)
            .map_or(0, |t| t.live.load(Ordering::Relaxed).max(0) as usize)
    }
}

/// A trace from what the live-store holds of it (its completed part and live parts), decoded
/// and combined, with the encoded bytes read. Pieces that do not decode are logged and left out.
fn held_trace(id: &TraceId, complete: Option<CompleteRef>, parts: Vec<Bytes>) -> (Trace, u64) {
    let (pieces, inspected) = held_pieces(id, complete, parts, &mut HashMap::new());
    (
        combine_traces(decoded(id, &pieces), &mut HashSet::new()),
        inspected,
    )
}

/// The encodings a trace is held in — its completed part (read from its chunk; `raws` keeps
/// each chunk decompressed once across calls), then its parts since — and their bytes.
fn held_pieces(
    id: &TraceId,
    complete: Option<CompleteRef>,
    parts: Vec<Bytes>,
    raws: &mut HashMap<*const Chunk, Bytes>,
) -> (Vec<Bytes>, u64) {
    let mut inspected = 0u64;
    let mut pieces = Vec::with_capacity(parts.len() + 1);
    if let Some(c) = complete {
        inspected += u64::from(c.len);
        let raw = match raws.get(&Arc::as_ptr(&c.chunk)) {
            Some(raw) => Ok(raw.clone()),
            None => c.chunk.raw().inspect(|raw| {
                raws.insert(Arc::as_ptr(&c.chunk), raw.clone());
            }),
        };
        match raw.and_then(|raw| piece(&raw, c.offset, c.len)) {
            Ok(p) => pieces.push(p),
            Err(e) => tracing::error!(trace_id = %id, error = %e, "completed trace does not read"),
        }
    }
    inspected += parts.iter().map(|p| p.len() as u64).sum::<u64>();
    pieces.extend(parts);
    (pieces, inspected)
}

/// The pieces of a held trace decoded (those that do not decode are reported and left out).
fn decoded<'a>(id: &'a TraceId, pieces: &'a [Bytes]) -> impl Iterator<Item = Trace> + 'a {
    pieces
        .iter()
        .filter_map(move |p| match Trace::decode(p.as_ref()) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(trace_id = %id, error = %e, "held trace piece does not decode");
                None
            }
        })
}

/// The whole trace held by `e` (completed part and live parts), encoded.
fn whole_trace(id: &TraceId, e: &TraceEntry) -> Bytes {
    if e.complete_opt.is_none() && e.parts.len() == 1 {
        // The common case, a trace that arrived in one push: its bytes are already one
        // deduplicated trace.
        return e.parts[0].clone();
    }
    let mut pieces = Vec::with_capacity(e.parts.len() + 1);
    if let Some(c) = &e.complete_opt {
        match c.decode() {
            Ok(tr) => pieces.push(tr),
            Err(err) => {
                tracing::error!(trace_id = %id, error = %err, "completed trace does not decode")
            }
        }
    }
    pieces.extend(
        e.parts
            .iter()
            .filter_map(|p| Trace::decode(p.as_ref()).ok()),
    );
    Bytes::from(combine_traces(pieces, &mut HashSet::new()).encode_to_vec())
}

/// A chunk's traces as one span batch, trace `i` of the batch being `chunk.traces[i]`.
/// What a live trace holds: its completed part and its parts since.
type Held = (Option<CompleteRef>, Vec<Bytes>);

/// A batch of the live traces `dirty`, in their order: from their state in `held`, else (a
/// trace whose kept rows are dropped) from the store now. Each chunk holding completed parts is
/// decompressed once.
fn live_batch(
    t: &TenantStore,
    dirty: &[segments::LiveTrace],
    mut held: HashMap<TraceId, Held>,
) -> SpanBatch {
    let mut raws: HashMap<*const Chunk, Bytes> = HashMap::new();
    let mut bb = vivace_traceql::batch::BatchBuilder::new();
    for lt in dirty {
        let (complete, parts) = held.remove(&lt.id).unwrap_or_else(|| {
            let shard = t.shards[shard_of(&lt.id)].lock();
            shard
                .traces
                .get(&lt.id)
                .map(|e| (e.complete_opt.clone(), e.parts.clone()))
                .unwrap_or_default()
        });
        let (pieces, _) = held_pieces(&lt.id, complete, parts, &mut raws);
        // One piece is one deduplicated trace already (as `whole_trace` relies on).
        let trace = if pieces.len() == 1 {
            decoded(&lt.id, &pieces).next().unwrap_or_default()
        } else {
            combine_traces(decoded(&lt.id, &pieces), &mut HashSet::new())
        };
        vivace_model::append_trace(&mut bb, &lt.id, &trace);
    }
    bb.finish()
}

fn chunk_batch(c: &Chunk) -> SpanBatch {
    let mut bb = vivace_traceql::batch::BatchBuilder::new();
    let raw = c.raw().unwrap_or_default();
    for ((id, _), (off, len)) in c.traces.iter().zip(&c.places) {
        let trace = piece(&raw, *off, *len)
            .ok()
            .and_then(|b| Trace::decode(b).ok())
            .unwrap_or_default();
        vivace_model::append_trace(&mut bb, id, &trace);
    }
    bb.finish()
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

mod codec;
mod segments;
#[cfg(test)]
mod tests;
