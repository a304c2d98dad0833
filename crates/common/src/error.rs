//! The status every vivace error can report, and its one mapping to HTTP and gRPC codes.

use std::time::Duration;

/// What kind of failure an error is, independent of the protocol that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCode {
    BadRequest,
    NotFound,
    TooManyRequests,
    PayloadTooLarge,
    Unauthorized,
    /// Authenticated, but not allowed (a right or tenant the credential lacks).
    Forbidden,
    Unavailable,
    Timeout,
    Internal,
}

impl StatusCode {
    /// The HTTP status code.
    pub fn http(self) -> u16 {
        match self {
            StatusCode::BadRequest => 400,
            StatusCode::Unauthorized => 401,
            StatusCode::Forbidden => 403,
            StatusCode::NotFound => 404,
            StatusCode::PayloadTooLarge => 413,
            StatusCode::TooManyRequests => 429,
            StatusCode::Internal => 500,
            StatusCode::Unavailable => 503,
            StatusCode::Timeout => 504,
        }
    }

    /// The gRPC status code number (`google.rpc.Code`).
    pub fn grpc(self) -> i32 {
        match self {
            StatusCode::BadRequest => 3, // INVALID_ARGUMENT
            StatusCode::Timeout => 4,    // DEADLINE_EXCEEDED
            StatusCode::NotFound => 5,   // NOT_FOUND
            StatusCode::TooManyRequests | StatusCode::PayloadTooLarge => 8, // RESOURCE_EXHAUSTED
            StatusCode::Internal => 13,  // INTERNAL
            StatusCode::Unavailable => 14, // UNAVAILABLE
            StatusCode::Unauthorized => 16, // UNAUTHENTICATED
            StatusCode::Forbidden => 7,  // PERMISSION_DENIED
        }
    }

    /// Whether the same request may succeed if retried later.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            StatusCode::TooManyRequests | StatusCode::Unavailable | StatusCode::Timeout
        )
    }
}

/// A protocol-neutral error answer: a status, a message, and an optional retry hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Status {
    pub code: StatusCode,
    pub message: String,
    /// How long a client should wait before retrying, when the code is retryable.
    pub retry_after_opt: Option<Duration>,
}

impl Status {
    pub fn new(code: StatusCode, message: impl Into<String>) -> Self {
        Status {
            code,
            message: message.into(),
            retry_after_opt: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BadRequest, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::Internal, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::Unavailable, message)
    }

    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after_opt = Some(after);
        self
    }
}

/// A vivace status as a gRPC status (the one mapping, with [`StatusCode::grpc`]), with a
/// `google.rpc.RetryInfo` detail when it has a retry hint.
pub fn to_tonic(s: Status) -> tonic::Status {
    use tonic_types::{ErrorDetails, StatusExt};
    let code = tonic::Code::from_i32(s.code.grpc());
    match s.retry_after_opt {
        Some(after) => tonic::Status::with_error_details(
            code,
            s.message,
            ErrorDetails::with_retry_info(Some(after)),
        ),
        None => tonic::Status::new(code, s.message),
    }
}
