//! The block list of a local bucket: `<root>/<tenant>/<blockID>/meta.json` (§5.1), polled.
//!
//! A tenant's list comes from its tenant index (`<tenant>/index.json.gz`, written by Tempo's
//! compactors) when there is one, as Tempo's pollers do, and from listing the block directories
//! otherwise or when the index does not read.
//!
//! A block directory counts once its `meta.json` exists (Tempo writes it last); a directory with
//! `meta.compacted.json` has been replaced by compaction and is skipped. Unreadable metas are
//! logged by the caller and skipped, never fatal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::meta::BlockMeta;

/// A block found by a poll.
#[derive(Debug, Clone)]
pub struct BlockRef {
    pub dir: PathBuf,
    pub meta: BlockMeta,
    /// Unix seconds, from `meta.json`.
    pub time_range_opt: Option<(i64, i64)>,
}

/// Every live block by tenant, as of one poll.
#[derive(Debug, Clone, Default)]
pub struct BlockList {
    pub tenants: HashMap<String, Vec<BlockRef>>,
    /// Blocks whose `meta.json` could not be read, with why.
    pub skipped: Vec<(PathBuf, String)>,
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
}

/// Lists the blocks under `root` (a missing root is an empty list).
pub fn poll_local(root: &Path) -> Result<BlockList> {
    let mut list = BlockList::default();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let tenants = match std::fs::read_dir(root) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(list),
        Err(e) => return Err(io(root)(e)),
    };
    for tenant in tenants {
        let tenant = tenant.map_err(io(root))?;
        if !tenant.file_type().map_err(io(root))?.is_dir() {
            continue;
        }
        let name = tenant.file_name().to_string_lossy().into_owned();
        let mut blocks = match read_tenant_index(&tenant.path()) {
            Some(Ok(metas)) => metas
                .into_iter()
                .map(|meta| {
                    let dir = tenant.path().join(&meta.block_id);
                    let time_range_opt = meta.time_range();
                    BlockRef {
                        dir,
                        meta,
                        time_range_opt,
                    }
                })
                .collect(),
            found => {
                if let Some(Err(why)) = found {
                    list.skipped.push((
                        tenant.path().join(TENANT_INDEX),
                        format!("{why}; listing the blocks instead"),
                    ));
                }
                list_blocks(&tenant.path(), &mut list.skipped)?
            }
        };
        blocks.sort_by(|a, b| a.meta.start_time.cmp(&b.meta.start_time));
        if !blocks.is_empty() {
            list.tenants.insert(name, blocks);
        }
    }
    Ok(list)
}

/// The tenant index Tempo keeps next to a tenant's blocks (gzip of JSON).
pub(crate) const TENANT_INDEX: &str = "index.json.gz";

#[derive(serde::Deserialize)]
struct TenantIndex {
    #[serde(default)]
    meta: Vec<BlockMeta>,
}

/// The live blocks named by `<tenant>/index.json.gz`: `None` if there is no index, an error if it
/// does not read (the caller then lists the blocks).
fn read_tenant_index(tenant_dir: &Path) -> Option<std::result::Result<Vec<BlockMeta>, String>> {
    use std::io::Read;
    let path = tenant_dir.join(TENANT_INDEX);
    let file = std::fs::File::open(&path).ok()?;
    let mut json = Vec::new();
    if let Err(e) = flate2::read::GzDecoder::new(file).read_to_end(&mut json) {
        return Some(Err(format!("tenant index does not decompress: {e}")));
    }
    Some(
        serde_json::from_slice::<TenantIndex>(&json)
            .map(|i| i.meta)
            .map_err(|e| format!("tenant index does not parse: {e}")),
    )
}

/// Lists a tenant's block directories, reading each `meta.json`.
fn list_blocks(tenant_dir: &Path, skipped: &mut Vec<(PathBuf, String)>) -> Result<Vec<BlockRef>> {
    let io = |source| Error::Io {
        path: tenant_dir.to_path_buf(),
        source,
    };
    let mut blocks = Vec::new();
    for block in std::fs::read_dir(tenant_dir).map_err(io)? {
        let dir = block.map_err(io)?.path();
        if !dir.join("meta.json").is_file() || dir.join("meta.compacted.json").exists() {
            continue;
        }
        match BlockMeta::read(&dir) {
            Ok(meta) => {
                let time_range_opt = meta.time_range();
                blocks.push(BlockRef {
                    dir,
                    meta,
                    time_range_opt,
                });
            }
            Err(e) => skipped.push((dir, e.to_string())),
        }
    }
    Ok(blocks)
}
