//! Where blocks live: local disk, S3, GCS or Azure Blob, through the `object_store` crate, with
//! Tempo's configuration keys (`storage.trace.<backend>.*`).
//!
//! Object keys are Tempo's layout (§5.1) under an optional prefix:
//! `<tenant>/<blockID>/{meta.json,data.parquet,bloom-N}` and `<tenant>/index.json.gz`.

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::Deserialize;
use vivace_block::{BackendError, Objects};

/// `storage.trace.s3` (Tempo's keys).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct S3Config {
    pub bucket: String,
    /// `host[:port]`, no scheme (Tempo's form); a scheme is accepted too.
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual hosts.
    pub forcepathstyle: bool,
    pub prefix: String,
    /// Uploads larger than this go in parts of this size (Tempo's default 5 MiB... here the
    /// same; S3's minimum part size).
    pub part_size: u64,
}

/// `storage.trace.gcs` (Tempo's keys).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GcsConfig {
    pub bucket_name: String,
    pub prefix: String,
    /// An emulator or private endpoint URL; requests are then sent unauthenticated.
    pub endpoint: String,
}

/// `storage.trace.azure` (Tempo's keys).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AzureConfig {
    pub container_name: String,
    pub storage_account_name: String,
    pub storage_account_key: String,
    /// Default `blob.core.windows.net`. For the `devstoreaccount1` emulator account the URL is
    /// taken from `AZURITE_BLOB_STORAGE_URL` (default `http://127.0.0.1:10000`).
    pub endpoint_suffix: String,
    pub prefix: String,
}

const DEFAULT_PART_SIZE: u64 = 5 << 20;

/// The request timeout of GCS uploads (object_store's duration syntax).
const GCS_UPLOAD_TIMEOUT: &str = "15m";

/// A bucket (or directory) holding tenants' blocks.
#[derive(Clone)]
pub struct Backend {
    store: Arc<dyn ObjectStore>,
    /// Where single-request uploads go when they need a client of their own (GCS: a longer
    /// request timeout); `store` otherwise.
    uploads: Option<Arc<dyn ObjectStore>>,
    prefix: Option<Path>,
    part_size: u64,
    multipart: bool,
    describe: String,
    /// Read requests made (GET, ranged GET; a coalesced multi-range read counts once).
    reads: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

fn prefix_of(p: &str) -> Option<Path> {
    let p = p.trim_matches('/');
    (!p.is_empty()).then(|| Path::from(p))
}

impl Backend {
    /// A directory on local disk (created if missing).
    pub fn local(root: &FsPath) -> Result<Backend, BackendError> {
        std::fs::create_dir_all(root).map_err(|source| BackendError::Io {
            path: root.display().to_string(),
            source,
        })?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(root)?
            .with_automatic_cleanup(true);
        Ok(Backend {
            store: Arc::new(store),
            uploads: None,
            prefix: None,
            part_size: DEFAULT_PART_SIZE,
            multipart: false,
            describe: format!("local {}", root.display()),
            reads: Arc::default(),
        })
    }

    pub fn s3(c: &S3Config) -> Result<Backend, BackendError> {
        if c.bucket.is_empty() {
            return Err(BackendError::Config(
                "storage.trace.s3.bucket is required".into(),
            ));
        }
        let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&c.bucket);
        if !c.endpoint.is_empty() {
            let ep = if c.endpoint.contains("://") {
                c.endpoint.clone()
            } else {
                format!(
                    "{}://{}",
                    if c.insecure { "http" } else { "https" },
                    c.endpoint
                )
            };
            b = b.with_endpoint(ep);
        }
        if !c.region.is_empty() {
            b = b.with_region(&c.region);
        }
        if !c.access_key.is_empty() {
            b = b
                .with_access_key_id(&c.access_key)
                .with_secret_access_key(&c.secret_key);
        }
        b = b
            .with_allow_http(c.insecure)
            .with_virtual_hosted_style_request(!c.forcepathstyle && !c.endpoint.is_empty());
        Ok(Backend {
            store: Arc::new(b.build()?),
            uploads: None,
            prefix: prefix_of(&c.prefix),
            part_size: if c.part_size == 0 {
                DEFAULT_PART_SIZE
            } else {
                c.part_size.max(DEFAULT_PART_SIZE)
            },
            multipart: true,
            describe: format!("s3 bucket {}", c.bucket),
            reads: Arc::default(),
        })
    }

    pub fn gcs(c: &GcsConfig) -> Result<Backend, BackendError> {
        if c.bucket_name.is_empty() {
            return Err(BackendError::Config(
                "storage.trace.gcs.bucket_name is required".into(),
            ));
        }
        let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
            .with_bucket_name(&c.bucket_name);
        if !c.endpoint.is_empty() {
            let key = serde_json::json!({
                "gcs_base_url": c.endpoint.trim_end_matches('/'),
                "disable_oauth": true,
                "client_email": "",
                "private_key": "",
                "private_key_id": "",
            });
            b = b.with_service_account_key(key.to_string());
        }
        // Blocks go up in one PUT (see below), which the client's default 30 s request timeout
        // would cut for a large compacted block on a slow link — and the retry would fail the same
        // way forever. Uploads get a client of their own with a timeout long enough for several
        // GB at tens of MB/s; reads keep the short one.
        let uploads = b.clone().with_config(
            object_store::gcp::GoogleConfigKey::Client(object_store::ClientConfigKey::Timeout),
            GCS_UPLOAD_TIMEOUT,
        );
        Ok(Backend {
            store: Arc::new(b.build()?),
            uploads: Some(Arc::new(uploads.build()?)),
            prefix: prefix_of(&c.prefix),
            part_size: DEFAULT_PART_SIZE,
            // GCS takes single uploads of any size; its XML multipart is not needed.
            multipart: false,
            describe: format!("gcs bucket {}", c.bucket_name),
            reads: Arc::default(),
        })
    }

    pub fn azure(c: &AzureConfig) -> Result<Backend, BackendError> {
        if c.container_name.is_empty() {
            return Err(BackendError::Config(
                "storage.trace.azure.container_name is required".into(),
            ));
        }
        let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
            .with_container_name(&c.container_name);
        if c.storage_account_name == "devstoreaccount1" {
            b = b.with_use_emulator(true);
        } else {
            if !c.storage_account_name.is_empty() {
                b = b.with_account(&c.storage_account_name);
            }
            if !c.endpoint_suffix.is_empty() && c.endpoint_suffix != "blob.core.windows.net" {
                b = b.with_endpoint(format!(
                    "https://{}.{}",
                    c.storage_account_name, c.endpoint_suffix
                ));
            }
        }
        if !c.storage_account_key.is_empty() {
            b = b.with_access_key(&c.storage_account_key);
        }
        Ok(Backend {
            store: Arc::new(b.build()?),
            uploads: None,
            prefix: prefix_of(&c.prefix),
            part_size: DEFAULT_PART_SIZE,
            multipart: true,
            describe: format!("azure container {}", c.container_name),
            reads: Arc::default(),
        })
    }

    /// In memory, for unit tests.
    pub fn memory() -> Backend {
        Backend {
            store: Arc::new(object_store::memory::InMemory::new()),
            uploads: None,
            prefix: None,
            part_size: DEFAULT_PART_SIZE,
            multipart: true,
            describe: "memory".into(),
            reads: Arc::default(),
        }
    }

    fn path(&self, key: &str) -> Path {
        match &self.prefix {
            Some(p) => Path::from(format!("{p}/{key}")),
            None => Path::from(key),
        }
    }

    /// The key of `p` relative to the prefix.
    fn key(&self, p: &Path) -> String {
        let s = p.as_ref();
        match &self.prefix {
            Some(pre) => s
                .strip_prefix(pre.as_ref())
                .map(|r| r.trim_start_matches('/').to_string())
                .unwrap_or_else(|| s.to_string()),
            None => s.to_string(),
        }
    }

    /// Read requests made so far through this backend (and its clones).
    pub fn reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count_read(&self) {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, BackendError> {
        self.count_read();
        Ok(self.store.get(&self.path(key)).await?.bytes().await?)
    }

    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, BackendError> {
        self.count_read();
        Ok(self.store.get_range(&self.path(key), range).await?)
    }

    /// Several ranges of one object; stores that can coalesce them into one request do.
    pub async fn get_ranges(
        &self,
        key: &str,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Bytes>, BackendError> {
        self.count_read();
        Ok(self.store.get_ranges(&self.path(key), ranges).await?)
    }

    pub async fn size(&self, key: &str) -> Result<u64, BackendError> {
        Ok(self.store.head(&self.path(key)).await?.size)
    }

    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError> {
        if self.multipart && data.len() as u64 > self.part_size {
            let upload = self.store.put_multipart(&self.path(key)).await?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, self.part_size as usize);
            let mut rest = data;
            while !rest.is_empty() {
                let n = rest.len().min(self.part_size as usize);
                w.wait_for_capacity(4).await?;
                w.put(rest.split_to(n));
            }
            w.finish().await?;
        } else {
            self.uploads
                .as_ref()
                .unwrap_or(&self.store)
                .put(&self.path(key), PutPayload::from(data))
                .await?;
        }
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<(), BackendError> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The "directories" directly under `dir` ("" for the root), by name.
    pub async fn list_dirs(&self, dir: &str) -> Result<Vec<String>, BackendError> {
        let p = if dir.is_empty() {
            self.prefix.clone()
        } else {
            Some(self.path(dir))
        };
        let res = self.store.list_with_delimiter(p.as_ref()).await?;
        Ok(res
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    /// Every object under `dir`, recursively: (key relative to the backend, size).
    pub async fn list_all(&self, dir: &str) -> Result<Vec<(String, u64)>, BackendError> {
        let p = self.path(dir);
        let objects: Vec<_> = self.store.list(Some(&p)).try_collect().await?;
        Ok(objects
            .into_iter()
            .map(|o| (self.key(&o.location), o.size))
            .collect())
    }

    /// Whether this backend is the directory `root` on local disk.
    pub fn describe(&self) -> &str {
        &self.describe
    }
}

#[async_trait::async_trait]
impl Objects for Backend {
    async fn get(&self, key: &str) -> Result<Bytes, BackendError> {
        Backend::get(self, key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, BackendError> {
        Backend::get_range(self, key, range).await
    }

    async fn get_ranges(
        &self,
        key: &str,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Bytes>, BackendError> {
        Backend::get_ranges(self, key, ranges).await
    }

    async fn size(&self, key: &str) -> Result<u64, BackendError> {
        Backend::size(self, key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GCS backend builds its upload client (its timeout is parsed when the client is built:
    /// an unreadable one fails here).
    #[test]
    fn gcs_builds_its_upload_client() {
        let b = Backend::gcs(&GcsConfig {
            bucket_name: "blocks".into(),
            endpoint: "http://127.0.0.1:9".into(),
            ..GcsConfig::default()
        })
        .unwrap();
        assert!(b.uploads.is_some());
    }
}
