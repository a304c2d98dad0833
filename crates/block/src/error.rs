use std::path::PathBuf;

/// Errors reading blocks.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid meta.json: {source}")]
    Meta {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("block format {0:?} is not supported (vParquet4 and vParquet5 are)")]
    UnsupportedFormat(String),
    #[error("{0}")]
    Backend(#[from] crate::objects::BackendError),
    #[error("{path}: unexpected data: {what}")]
    Schema { path: PathBuf, what: String },
}

pub type Result<T> = std::result::Result<T, Error>;
