use std::path::PathBuf;

/// Errors of the queue.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("wal io error at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("wal is closed")]
    Closed,
    #[error("wal failed earlier and refuses writes: {0}")]
    Failed(String),
    #[error("record of {size} bytes exceeds the wal's maximum record size of {max} bytes")]
    RecordTooLarge { size: usize, max: usize },
    #[error("bad queue record: {0}")]
    Decode(#[from] prost::DecodeError),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
