//! A read-only query API over the blocks of the configured bucket, for the CLI's
//! `--data-dir`/`-config.file` mode: the same routes and engine as the server's, without the
//! write path, the live-store or the write-ahead log (a running server's recent, not yet
//! flushed traces are not seen).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use vivace_common::overrides::Overrides;
use vivace_querier::QueryApi;

use crate::config::Config;
use crate::server::{AppError, build_info};
use crate::sources::BlockSource;

/// The local query API: where it listens and what it reads.
#[derive(Debug, Clone, Copy)]
pub struct LocalApi {
    pub addr: SocketAddr,
    /// Blocks in the bucket (every tenant) and their bytes.
    pub blocks: usize,
    pub bytes: u64,
}

/// Lists the bucket once and serves the query API on a free port of 127.0.0.1 until the process
/// ends.
pub async fn serve_blocks(cfg: &Config) -> Result<LocalApi, AppError> {
    let backend = cfg.backend()?;
    let overrides = Overrides::new(&cfg.overrides).map_err(AppError::Overrides)?;
    let list = vivace_store::SharedBlockList::default();
    let polled = vivace_store::poll(&backend, &vivace_store::BlockList::default(), false)
        .await
        .map_err(|e| AppError::Serve(format!("listing the bucket: {e}")))?;
    let all = || polled.tenants.values().flatten();
    let (blocks_n, bytes) = (all().count(), all().map(|b| b.meta.size).sum());
    list.set(polled);
    let cache = Arc::new(vivace_store::BatchCache::new(
        cfg.search_block_cache_bytes(),
    ));
    let blocks = Arc::new(BlockSource::new(
        backend,
        list,
        cfg.trace_by_id_timeout(),
        cache,
        cfg.target_bytes_per_job(),
    ));
    let api = QueryApi {
        sources: vec![blocks.clone()],
        search_sources: vec![blocks],
        search: cfg.search(),
        metrics: cfg.metrics(),
        multitenancy: cfg.multitenancy(),
        build: build_info(),
        overrides,
    };
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|source| AppError::Bind {
            addr: "127.0.0.1:0".into(),
            key: "the CLI's local query API",
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| AppError::Serve(e.to_string()))?;
    let router = vivace_querier::router(api);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(LocalApi {
        addr,
        blocks: blocks_n,
        bytes,
    })
}
