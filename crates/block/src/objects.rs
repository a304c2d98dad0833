//! What the block readers need from storage: whole objects, byte ranges of them and their
//! sizes, by key (`<tenant>/<blockID>/<file>`, Tempo's layout). The storage crate
//! (`vivace-store`) implements it over local disk and object stores; this crate stays the format.

use std::ops::Range;

use bytes::Bytes;

/// Errors talking to the object store.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("storage configuration: {0}")]
    Config(String),
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl BackendError {
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            BackendError::Store(object_store::Error::NotFound { .. })
        )
    }
}

/// Reading a bucket's objects.
#[async_trait::async_trait]
pub trait Objects: Send + Sync + std::fmt::Debug {
    /// A whole object.
    async fn get(&self, key: &str) -> Result<Bytes, BackendError>;
    /// One byte range of an object.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, BackendError>;
    /// Several byte ranges of one object (coalesced into as few requests as the store allows).
    async fn get_ranges(
        &self,
        key: &str,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Bytes>, BackendError>;
    /// An object's size in bytes.
    async fn size(&self, key: &str) -> Result<u64, BackendError>;
}

/// An [`Objects`] that counts the bytes read through it: what one lookup or search job really
/// read, for the `inspectedBytes` a response reports.
#[derive(Debug)]
pub struct Counted<'a> {
    inner: &'a dyn Objects,
    bytes: std::sync::atomic::AtomicU64,
}

impl<'a> Counted<'a> {
    pub fn new(inner: &'a dyn Objects) -> Counted<'a> {
        Counted {
            inner,
            bytes: Default::default(),
        }
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn add(&self, n: usize) {
        self.bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

#[async_trait::async_trait]
impl Objects for Counted<'_> {
    async fn get(&self, key: &str) -> Result<Bytes, BackendError> {
        let b = self.inner.get(key).await?;
        self.add(b.len());
        Ok(b)
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, BackendError> {
        let b = self.inner.get_range(key, range).await?;
        self.add(b.len());
        Ok(b)
    }

    async fn get_ranges(
        &self,
        key: &str,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Bytes>, BackendError> {
        let bs = self.inner.get_ranges(key, ranges).await?;
        self.add(bs.iter().map(Bytes::len).sum());
        Ok(bs)
    }

    async fn size(&self, key: &str) -> Result<u64, BackendError> {
        self.inner.size(key).await
    }
}

/// Objects held in memory by key: a block this process has just written, read back from its
/// bytes (see [`crate::warm`]).
#[derive(Debug, Default)]
pub(crate) struct InMemory(pub(crate) std::collections::HashMap<String, Bytes>);

impl InMemory {
    fn object(&self, key: &str) -> Result<&Bytes, BackendError> {
        self.0.get(key).ok_or_else(|| {
            BackendError::Store(object_store::Error::NotFound {
                path: key.into(),
                source: "not among the objects held in memory".into(),
            })
        })
    }
}

#[async_trait::async_trait]
impl Objects for InMemory {
    async fn get(&self, key: &str) -> Result<Bytes, BackendError> {
        self.object(key).cloned()
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, BackendError> {
        let b = self.object(key)?;
        let (start, end) = (range.start as usize, range.end as usize);
        if start > end || end > b.len() {
            return Err(BackendError::Store(object_store::Error::Generic {
                store: "memory",
                source: format!("range {range:?} of {key} ({} bytes)", b.len()).into(),
            }));
        }
        Ok(b.slice(start..end))
    }

    async fn get_ranges(
        &self,
        key: &str,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Bytes>, BackendError> {
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            out.push(self.get_range(key, r.clone()).await?);
        }
        Ok(out)
    }

    async fn size(&self, key: &str) -> Result<u64, BackendError> {
        Ok(self.object(key)?.len() as u64)
    }
}
