//! The block list of a bucket: `<tenant>/<blockID>/meta.json` (§5.1), polled.
//!
//! Each poll lists every tenant's objects once. A block counts once its `meta.json` exists
//! (it is written last); a block with `meta.compacted.json` has been replaced by compaction or
//! retention and is not queried. Metas already known from the previous poll are reused (a meta
//! never changes); new ones come from the tenant index (`<tenant>/index.json.gz`, Tempo's or
//! ours) when it names them, else from `meta.json` itself. Unreadable metas are reported and
//! skipped, never fatal.
//!
//! A poll that builds the index writes `<tenant>/index.json.gz` afterwards: gzip (member name
//! `index.json`) of `{"created_at", "meta": [...], "compacted": [...]}` as Tempo's builders do,
//! and removes a stale `index.pb.zst` (Tempo's protobuf index, which vivace does not write:
//! Tempo's readers prefer it and would miss vivace's blocks; without it they read the JSON one).

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use vivace_block::{BlockMeta, BlockRef, Error, Result};

use crate::backend::Backend;

/// Every block by tenant, as of one poll.
#[derive(Debug, Clone, Default)]
pub struct BlockList {
    pub tenants: HashMap<String, Vec<BlockRef>>,
    /// Compacted blocks (`meta.compacted.json`) still in the bucket, by tenant.
    pub compacted: HashMap<String, Vec<BlockMeta>>,
    /// Blocks whose meta could not be read, with why.
    pub skipped: Vec<(String, String)>,
}

impl BlockList {
    pub fn blocks(&self, tenant: &str) -> &[BlockRef] {
        self.tenants.get(tenant).map_or(&[], |v| v.as_slice())
    }

    pub fn len(&self) -> usize {
        self.tenants.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a block just written, so it is queried before the next poll.
    pub fn with_block(&self, block: BlockRef) -> BlockList {
        let mut next = self.clone();
        let blocks = next.tenants.entry(block.tenant.clone()).or_default();
        if !blocks
            .iter()
            .any(|b| b.meta.block_id == block.meta.block_id)
        {
            blocks.push(block);
        }
        next
    }
}

/// The tenant index next to a tenant's blocks (gzip of JSON).
pub(crate) const TENANT_INDEX: &str = "index.json.gz";

#[derive(serde::Deserialize, serde::Serialize)]
struct TenantIndex {
    #[serde(default)]
    created_at: String,
    #[serde(default)]
    meta: Vec<BlockMeta>,
    #[serde(default)]
    compacted: Vec<BlockMeta>,
}

/// Polls the bucket. `previous` supplies metas already known; with `build_index` each tenant's
/// `index.json.gz` is rewritten from what was found.
pub async fn poll(backend: &Backend, previous: &BlockList, build_index: bool) -> Result<BlockList> {
    let mut list = BlockList::default();
    let known: HashMap<&str, &BlockRef> = previous
        .tenants
        .values()
        .flatten()
        .map(|b| (b.meta.block_id.as_str(), b))
        .collect();
    let known_compacted: HashMap<&str, &BlockMeta> = previous
        .compacted
        .values()
        .flatten()
        .map(|m| (m.block_id.as_str(), m))
        .collect();
    for tenant in backend.list_dirs("").await? {
        let objects = backend.list_all(&tenant).await?;
        let mut live = Vec::new();
        let mut compacted = Vec::new();
        {
            let mut has_meta = HashSet::new();
            let mut has_compacted = HashSet::new();
            for (key, _) in &objects {
                let mut parts = key.splitn(3, '/');
                let (_, Some(block), Some(file)) = (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                match file {
                    "meta.json" => has_meta.insert(block.to_string()),
                    "meta.compacted.json" => has_compacted.insert(block.to_string()),
                    _ => false,
                };
            }
            for b in has_compacted.iter() {
                compacted.push(b.clone());
            }
            for b in has_meta {
                if !has_compacted.contains(&b) {
                    live.push(b);
                }
            }
        }
        // Metas of blocks not seen before: from the tenant index if it has them, else meta.json.
        let mut index_metas: HashMap<String, BlockMeta> = HashMap::new();
        let mut index_compacted: HashMap<String, BlockMeta> = HashMap::new();
        if live.iter().any(|b| !known.contains_key(b.as_str()))
            && let Some(idx) = read_tenant_index(backend, &tenant).await
        {
            match idx {
                Ok(idx) => {
                    index_metas.extend(idx.meta.into_iter().map(|m| (m.block_id.clone(), m)));
                    index_compacted
                        .extend(idx.compacted.into_iter().map(|m| (m.block_id.clone(), m)));
                }
                Err(why) => list.skipped.push((format!("{tenant}/{TENANT_INDEX}"), why)),
            }
        }
        let mut blocks = Vec::new();
        let mut fetch = Vec::new();
        for b in live {
            if let Some(r) = known.get(b.as_str()) {
                blocks.push((*r).clone());
            } else if let Some(m) = index_metas.remove(&b) {
                blocks.push(BlockRef::new(&tenant, m));
            } else {
                fetch.push(format!("{tenant}/{b}/meta.json"));
            }
        }
        let mut compacted_metas = Vec::new();
        for b in compacted {
            if let Some(m) = known_compacted.get(b.as_str()) {
                compacted_metas.push((*m).clone());
            } else if let Some(m) = index_compacted.remove(&b) {
                compacted_metas.push(m);
            } else {
                fetch.push(format!("{tenant}/{b}/meta.compacted.json"));
            }
        }
        let fetched: Vec<(String, Result<BlockMeta>)> = futures::stream::iter(fetch)
            .map(|key| async move {
                let r = match backend.get(&key).await {
                    Ok(bytes) => {
                        serde_json::from_slice::<BlockMeta>(&bytes).map_err(|source| Error::Meta {
                            path: key.clone().into(),
                            source,
                        })
                    }
                    Err(e) => Err(e.into()),
                };
                (key, r)
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for (key, r) in fetched {
            match r {
                Ok(m) if key.ends_with("meta.compacted.json") => compacted_metas.push(m),
                Ok(m) => blocks.push(BlockRef::new(&tenant, m)),
                // A block deleted between the listing and the read is simply gone.
                Err(Error::Backend(e)) if e.is_not_found() => {}
                Err(e) => list.skipped.push((key, e.to_string())),
            }
        }
        blocks.sort_by(|a, b| a.meta.start_time.cmp(&b.meta.start_time));
        if build_index && (!blocks.is_empty() || !compacted_metas.is_empty()) {
            let idx = TenantIndex {
                created_at: vivace_block::rfc3339(now_secs()),
                meta: blocks.iter().map(|b| b.meta.clone()).collect(),
                compacted: compacted_metas.clone(),
            };
            if let Err(e) = write_tenant_index(backend, &tenant, &idx).await {
                tracing::warn!(tenant, error = %e, "writing the tenant index failed");
            }
        }
        if !blocks.is_empty() {
            list.tenants.insert(tenant.clone(), blocks);
        }
        if !compacted_metas.is_empty() {
            list.compacted.insert(tenant, compacted_metas);
        }
    }
    Ok(list)
}

/// Primes `fresh` blocks for lookups, one after another, until the budget is full.
async fn prime(backend: &Backend, fresh: Vec<BlockRef>) {
    for b in fresh {
        match vivace_block::prime_lookups(&b, backend).await {
            Ok(()) => {}
            // Compacted away since, or a format lookups do not read: nothing to prime.
            Err(Error::Backend(e)) if e.is_not_found() => {}
            Err(Error::UnsupportedFormat(_)) => {}
            // The block's lookups read what they need themselves.
            Err(e) => {
                tracing::warn!(block = %b.meta.block_id, error = %e, "priming a block for lookups failed")
            }
        }
    }
}

/// The current time in unix seconds (the unit of block time ranges).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `<tenant>/index.json.gz`: `None` if there is none, an error if it does not read.
async fn read_tenant_index(
    backend: &Backend,
    tenant: &str,
) -> Option<std::result::Result<TenantIndex, String>> {
    let bytes = match backend.get(&format!("{tenant}/{TENANT_INDEX}")).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return None,
        Err(e) => return Some(Err(e.to_string())),
    };
    let mut json = Vec::new();
    if let Err(e) = flate2::read::GzDecoder::new(bytes.as_ref()).read_to_end(&mut json) {
        return Some(Err(format!("tenant index does not decompress: {e}")));
    }
    Some(
        serde_json::from_slice::<TenantIndex>(&json)
            .map_err(|e| format!("tenant index does not parse: {e}")),
    )
}

async fn write_tenant_index(backend: &Backend, tenant: &str, idx: &TenantIndex) -> Result<()> {
    let json = serde_json::to_vec(idx).unwrap_or_default();
    let mut gz = flate2::GzBuilder::new()
        .filename("index.json")
        .write(Vec::new(), flate2::Compression::default());
    let io = |source| Error::Io {
        path: TENANT_INDEX.into(),
        source,
    };
    gz.write_all(&json).map_err(io)?;
    let data = gz.finish().map_err(io)?;
    backend
        .put(&format!("{tenant}/{TENANT_INDEX}"), Bytes::from(data))
        .await?;
    // vivace does not write Tempo's protobuf index; one Tempo left would now be stale, and Tempo
    // reads it before the JSON one. Without it Tempo falls back to this file.
    backend.delete(&format!("{tenant}/index.pb.zst")).await?;
    Ok(())
}

/// The block list one process queries and updates: replaced by each poll, added to by the
/// flusher, edited by compaction and retention. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct SharedBlockList {
    list: Arc<std::sync::RwLock<Arc<BlockList>>>,
}

impl SharedBlockList {
    pub fn current(&self) -> Arc<BlockList> {
        self.list.read().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn set(&self, list: BlockList) {
        if let Ok(mut l) = self.list.write() {
            *l = Arc::new(list);
        }
    }

    /// Compaction replaced `inputs` by `output`.
    pub fn replace(&self, inputs: &[BlockRef], output: BlockRef) {
        let gone: Vec<(String, String)> = inputs
            .iter()
            .map(|b| (b.tenant.clone(), b.meta.block_id.clone()))
            .collect();
        self.remove(&gone);
        self.add(output);
    }

    /// Blocks (tenant, block ID) compacted away or retired leave the list at once.
    pub fn remove(&self, gone: &[(String, String)]) {
        if let Ok(mut l) = self.list.write() {
            let mut next = (**l).clone();
            for (tenant, id) in gone {
                if let Some(bs) = next.tenants.get_mut(tenant) {
                    bs.retain(|b| b.meta.block_id != *id);
                }
            }
            *l = Arc::new(next);
        }
    }

    /// A block just written, listed before the next poll finds it.
    pub fn add(&self, block: BlockRef) {
        if let Ok(mut l) = self.list.write() {
            *l = Arc::new(l.with_block(block));
        }
    }
}

/// Reads the block list now and every `period`, in the background so `/ready` never waits on
/// the bucket; each poll rewrites the tenant indexes (`index.json.gz`). Blocks added while a poll
/// runs are kept. Blocks a poll finds for the first time are primed for trace-by-ID lookups
/// afterwards ([`vivace_block::prime_lookups`], newest first, one block at a time, within the
/// readers' memory budgets), so a first lookup in a block learned from the bucket makes two
/// object reads (bloom shard, its row's pages) instead of four.
pub async fn poll_loop(
    period: std::time::Duration,
    backend: Backend,
    blocks: SharedBlockList,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut priming: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let previous = blocks.current();
        match poll(&backend, &previous, true).await {
            Ok(mut list) => {
                for (key, why) in &list.skipped {
                    tracing::warn!(object = %key, error = %why, "skipping block");
                }
                // Blocks written since the poll began are kept.
                let now = blocks.current();
                for (tenant, bs) in &now.tenants {
                    for b in bs {
                        let id = &b.meta.block_id;
                        let known = list.blocks(tenant).iter().any(|x| x.meta.block_id == *id);
                        let compacted = list
                            .compacted
                            .get(tenant)
                            .is_some_and(|c| c.iter().any(|m| m.block_id == *id));
                        let before = previous
                            .blocks(tenant)
                            .iter()
                            .any(|x| x.meta.block_id == *id);
                        if !known && !compacted && !before {
                            list = list.with_block(b.clone());
                        }
                    }
                }
                tracing::info!(
                    blocks = list.len(),
                    backend = backend.describe(),
                    "block list polled"
                );
                let known: HashSet<&str> = previous
                    .tenants
                    .values()
                    .flatten()
                    .map(|b| b.meta.block_id.as_str())
                    .collect();
                let mut fresh: Vec<BlockRef> = list
                    .tenants
                    .values()
                    .flatten()
                    .filter(|b| !known.contains(b.meta.block_id.as_str()))
                    .cloned()
                    .collect();
                blocks.set(list);
                if !fresh.is_empty() {
                    fresh.sort_by_key(|b| std::cmp::Reverse(b.time_range_opt.map(|r| r.1)));
                    let (before, backend) = (priming.take(), backend.clone());
                    priming = Some(tokio::spawn(async move {
                        if let Some(before) = before {
                            let _ = before.await;
                        }
                        prime(&backend, fresh).await;
                    }));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "polling the block list failed; keeping the previous list")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
    }
}
