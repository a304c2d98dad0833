//! Errors of the metrics generator.

use vivace_common::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting that cannot work, named by its key path.
    #[error("{key}: {message}")]
    InvalidConfig { key: String, message: String },
    /// A secret file (password, token) could not be read.
    #[error("{key}: reading {path}: {source}")]
    Secret {
        key: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("remote-write client: {0}")]
    Client(#[from] reqwest::Error),
}

impl Error {
    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Error {
        Error::InvalidConfig {
            key: key.into(),
            message: message.into(),
        }
    }

    /// What kind of failure this is.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidConfig { .. } => StatusCode::BadRequest,
            Error::Secret { .. } | Error::Client(_) => StatusCode::Internal,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
