//! Where blocks live (DESIGN.md §7 `store`): the bucket on local disk, S3, GCS or Azure Blob
//! (`backend.rs`, the block readers' [`vivace_block::Objects`]), the block list polled from it
//! with the tenant index (`list.rs`), uploading a finished block (`upload.rs`), and the bounded
//! cache of decoded blocks search reads (`batch_cache.rs`). The format itself is `vivace-block`.

mod backend;
mod batch_cache;
mod list;
mod upload;

pub use backend::{AzureConfig, Backend, GcsConfig, S3Config};
pub use batch_cache::{BatchCache, BatchCacheStats};
pub use list::{BlockList, SharedBlockList, now_secs, poll, poll_loop};
pub use upload::upload;
pub use vivace_block::{BackendError, Objects};
