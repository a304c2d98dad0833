//! A block as the readers know it: its tenant and `meta.json`, with what lookups learn about it
//! and keep (footer, bloom headers and shards, page indexes of row groups), within memory
//! budgets shared by all blocks.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use tokio::sync::OnceCell;

use crate::error::{Error, Result};
use crate::meta::BlockMeta;
use crate::objects::Objects;

/// A block found by a poll, with what lookups learn about it (footer, bloom headers).
#[derive(Debug, Clone)]
pub struct BlockRef {
    pub tenant: String,
    pub meta: BlockMeta,
    /// Unix seconds, from `meta.json`.
    pub time_range_opt: Option<(i64, i64)>,
    cache: Arc<BlockCache>,
}

#[derive(Debug, Default)]
struct BlockCache {
    footer: OnceCell<Arc<ParquetMetaData>>,
    bloom_headers: parking_lot::Mutex<HashMap<u32, (u64, u64)>>,
    /// Whole bloom shards held in memory, by shard, within [`BLOOMS`].
    blooms: Kept<u32, crate::bloom::Bloom>,
    /// Decoded page indexes of row groups trace by ID has read, by row group, within
    /// [`PAGE_INDEXES`].
    page_indexes: Kept<usize, crate::read::GroupIndex>,
    /// Decompressed dictionary pages of the columns trace by ID reads, by row group (one per
    /// column, `None` for a column without one or not read), within [`DICTIONARIES`].
    dictionaries: Kept<usize, Vec<Option<parquet::column::page::Page>>>,
    /// Attribute names per scope (`block_tag_names`), within [`TAG_NAMES`]: a block never
    /// changes, so neither do they.
    tag_names: Kept<&'static str, std::collections::BTreeSet<String>>,
}

/// Memory for bloom shards kept across lookups (all blocks together). Past it, lookups read the
/// few words they need from the backend instead.
static BLOOMS: Budget = Budget::new(256 << 20);

/// Memory for decoded page indexes kept across trace-by-ID lookups (all blocks together,
/// counted as the bytes they were decoded from). Past it, lookups read the index each time.
static PAGE_INDEXES: Budget = Budget::new(64 << 20);

/// Memory for dictionary pages kept across trace-by-ID lookups (all blocks together, counted
/// decompressed). A row group's dictionaries are about a third of what a lookup in it would
/// fetch and decompress. Past it, lookups read them each time.
static DICTIONARIES: Budget = Budget::new(64 << 20);

/// Memory for blocks' attribute names kept for tag listings (all blocks together, counted as
/// their bytes). Past it, listings read the key dictionaries each time.
static TAG_NAMES: Budget = Budget::new(16 << 20);

/// Memory that values kept with blocks may take, all blocks together.
#[derive(Debug)]
struct Budget {
    max: u64,
    used: std::sync::atomic::AtomicU64,
}

impl Budget {
    const fn new(max: u64) -> Budget {
        Budget {
            max,
            used: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn has_room(&self, bytes: u64) -> bool {
        self.used.load(std::sync::atomic::Ordering::Relaxed) + bytes <= self.max
    }
}

/// Values kept with one block under a [`Budget`] shared by every block; what they took is given
/// back when the block is dropped.
#[derive(Debug)]
struct Kept<K, V> {
    map: parking_lot::Mutex<HashMap<K, Arc<V>>>,
    bytes: std::sync::atomic::AtomicU64,
}

impl<K, V> Default for Kept<K, V> {
    fn default() -> Self {
        Kept {
            map: parking_lot::Mutex::new(HashMap::new()),
            bytes: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl<K: std::hash::Hash + Eq, V> Kept<K, V> {
    fn get(&self, k: &K) -> Option<Arc<V>> {
        self.map.lock().get(k).cloned()
    }

    /// Keeps `v` under `k`, counting `bytes` against `budget`, unless `k` is kept already
    /// (callers check [`Budget::has_room`] first).
    fn keep(&self, budget: &Budget, k: K, v: Arc<V>, bytes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        if let std::collections::hash_map::Entry::Vacant(e) = self.map.lock().entry(k) {
            budget.used.fetch_add(bytes, Relaxed);
            self.bytes.fetch_add(bytes, Relaxed);
            e.insert(v);
        }
    }

    fn release(&self, budget: &Budget) {
        use std::sync::atomic::Ordering::Relaxed;
        budget.used.fetch_sub(self.bytes.load(Relaxed), Relaxed);
    }
}

impl Drop for BlockCache {
    fn drop(&mut self) {
        self.blooms.release(&BLOOMS);
        self.page_indexes.release(&PAGE_INDEXES);
        self.dictionaries.release(&DICTIONARIES);
        self.tag_names.release(&TAG_NAMES);
    }
}

impl BlockRef {
    pub fn new(tenant: &str, meta: BlockMeta) -> BlockRef {
        BlockRef {
            tenant: tenant.into(),
            time_range_opt: meta.time_range(),
            meta,
            cache: Arc::default(),
        }
    }

    /// The object key of one of the block's files.
    pub fn key(&self, file: &str) -> String {
        format!("{}/{}/{file}", self.tenant, self.meta.block_id)
    }

    /// The parquet footer, read once (its length is `meta.footerSize`; one ranged read).
    pub async fn footer(&self, backend: &dyn Objects) -> Result<Arc<ParquetMetaData>> {
        self.cache
            .footer
            .get_or_try_init(|| async {
                let key = self.key("data.parquet");
                let size = if self.meta.size > 0 {
                    self.meta.size
                } else {
                    backend.size(&key).await?
                };
                let want = if self.meta.footer_size > 0 {
                    u64::from(self.meta.footer_size) + 8
                } else {
                    64 << 10
                }
                .min(size);
                let mut tail = backend.get_range(&key, size - want..size).await?;
                let footer_len = footer_len(&tail, &key)?;
                if footer_len + 8 > tail.len() as u64 {
                    let need = (footer_len + 8).min(size);
                    tail = backend.get_range(&key, size - need..size).await?;
                }
                let n = tail.len();
                let md = ParquetMetaDataReader::decode_metadata(
                    &tail[n - 8 - footer_len as usize..n - 8],
                )
                .map_err(|source| Error::Parquet {
                    path: key.clone().into(),
                    source,
                })?;
                Ok(Arc::new(md))
            })
            .await
            .cloned()
    }

    /// The whole bloom shard from memory, reading it once (one GET) while the cache has room;
    /// `None` when it is full.
    pub(crate) async fn cached_bloom(
        &self,
        backend: &dyn Objects,
        shard: u32,
        key: &str,
    ) -> Result<Option<Arc<crate::bloom::Bloom>>> {
        if let Some(b) = self.cache.blooms.get(&shard) {
            return Ok(Some(b));
        }
        let size = 24 + (crate::bloom_write::DEFAULT_SHARD_BYTES as u64) + 8;
        if !BLOOMS.has_room(size) {
            return Ok(None);
        }
        let bytes = backend.get(key).await?;
        let bloom = crate::bloom::Bloom::parse(&bytes).ok_or_else(|| Error::Schema {
            path: key.into(),
            what: "not a bloom filter".into(),
        })?;
        let bloom = Arc::new(bloom);
        self.cache
            .blooms
            .keep(&BLOOMS, shard, bloom.clone(), bytes.len() as u64);
        Ok(Some(bloom))
    }

    /// Row group `rg`'s page index, if a lookup kept it.
    pub(crate) fn cached_page_index(&self, rg: usize) -> Option<Arc<crate::read::GroupIndex>> {
        self.cache.page_indexes.get(&rg)
    }

    /// Keeps row group `rg`'s page index (decoded from `bytes` bytes) while the cache has room.
    pub(crate) fn keep_page_index(
        &self,
        rg: usize,
        index: Arc<crate::read::GroupIndex>,
        bytes: u64,
    ) {
        if PAGE_INDEXES.has_room(bytes) {
            self.cache
                .page_indexes
                .keep(&PAGE_INDEXES, rg, index, bytes);
        }
    }

    /// Whether the budget for page indexes has room left (priming stops when it has none).
    pub(crate) fn page_indexes_have_room() -> bool {
        PAGE_INDEXES.has_room(1)
    }

    /// Whether lookups have the footer and every row group's page index kept: a first lookup
    /// then reads only the bloom shard (unless kept) and its row's pages.
    pub fn is_primed(&self) -> bool {
        self.cache.footer.get().is_some_and(|f| {
            (0..f.num_row_groups()).all(|rg| self.cache.page_indexes.get(&rg).is_some())
        })
    }

    /// Row group `rg`'s dictionary pages, if a lookup kept them.
    pub(crate) fn cached_dictionaries(
        &self,
        rg: usize,
    ) -> Option<Arc<Vec<Option<parquet::column::page::Page>>>> {
        self.cache.dictionaries.get(&rg)
    }

    /// Keeps row group `rg`'s dictionary pages while the cache has room.
    pub(crate) fn keep_dictionaries(
        &self,
        rg: usize,
        pages: Vec<Option<parquet::column::page::Page>>,
    ) {
        let bytes: u64 = pages
            .iter()
            .flatten()
            .map(|p| p.buffer().len() as u64)
            .sum();
        if DICTIONARIES.has_room(bytes) {
            self.cache
                .dictionaries
                .keep(&DICTIONARIES, rg, Arc::new(pages), bytes);
        }
    }

    /// The attribute names of `scope`, if a listing kept them.
    pub(crate) fn cached_tag_names(
        &self,
        scope: &'static str,
    ) -> Option<Arc<std::collections::BTreeSet<String>>> {
        self.cache.tag_names.get(&scope)
    }

    /// Keeps the attribute names of `scope` while the budget has room.
    pub(crate) fn keep_tag_names(
        &self,
        scope: &'static str,
        names: std::collections::BTreeSet<String>,
    ) {
        let bytes: u64 = names.iter().map(|n| n.len() as u64 + 24).sum::<u64>() + 48;
        if TAG_NAMES.has_room(bytes) {
            self.cache
                .tag_names
                .keep(&TAG_NAMES, scope, Arc::new(names), bytes);
        }
    }

    pub(crate) async fn bloom_header(
        &self,
        backend: &dyn Objects,
        shard: u32,
        key: &str,
    ) -> Result<(u64, u64)> {
        if let Some(h) = self.cache.bloom_headers.lock().get(&shard) {
            return Ok(*h);
        }
        let header = backend.get_range(key, 0..24).await?;
        let h = crate::bloom::parse_header(&header, key)?;
        self.cache.bloom_headers.lock().insert(shard, h);
        Ok(h)
    }
}

fn footer_len(tail: &Bytes, key: &str) -> Result<u64> {
    let n = tail.len();
    if n < 8 || &tail[n - 4..] != b"PAR1" {
        return Err(Error::Schema {
            path: key.into(),
            what: "not a parquet file (no PAR1 trailer)".into(),
        });
    }
    Ok(u64::from(u32::from_le_bytes(
        tail[n - 8..n - 4].try_into().unwrap_or_default(),
    )))
}
