//! Errors as the client sees them: a distribution-spec error code, the HTTP status it is
//! answered with, a one-line message naming the input, and extra headers (a `Range` on a
//! 416, `WWW-Authenticate` on a 401). Storage outcomes ([`crate::Error`]) become these here,
//! and only here; what names a server path goes to the log, never to the client.

use std::fmt;
use std::io;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{Error, ErrorKind};

/// Distribution-spec error codes (plus `UNKNOWN` for server-side failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    TooManyRequests,
    Unauthorized,
    Unsupported,
    Unknown,
}

impl Code {
    /// The spec's string for the code.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Unsupported => "UNSUPPORTED",
            Code::Unknown => "UNKNOWN",
        }
    }

    /// The status this code is usually answered with.
    fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => StatusCode::NOT_FOUND,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer: code, status, message and extra headers, sent as the spec's envelope
/// `{"errors":[{"code":..,"message":..,"detail":..}]}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    code: Code,
    status: StatusCode,
    message: String,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

/// `Result` with an [`ApiError`].
pub(crate) type ApiResult<T> = std::result::Result<T, ApiError>;

impl ApiError {
    /// An error with the code's usual status.
    pub(crate) fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            status: code.status(),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Override the status.
    pub(crate) fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    /// Add a response header.
    pub(crate) fn with_header(mut self, name: header::HeaderName, value: &str) -> ApiError {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    /// The status it is answered with.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

/// The `Range` header value for `size` bytes received (`0-0` when none, as distribution does).
pub(crate) fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let msg = e.to_string();
        match e.kind() {
            ErrorKind::NameInvalid(_) => ApiError::new(Code::NameInvalid, msg),
            ErrorKind::TagInvalid(_) => ApiError::new(Code::ManifestInvalid, msg),
            ErrorKind::DigestInvalid(_) | ErrorKind::DigestMismatch { .. } => {
                ApiError::new(Code::DigestInvalid, msg)
            }
            ErrorKind::BlobUnknown { .. } => ApiError::new(Code::BlobUnknown, msg),
            ErrorKind::ManifestUnknown { .. } => ApiError::new(Code::ManifestUnknown, msg),
            ErrorKind::UploadUnknown { .. } => ApiError::new(Code::BlobUploadUnknown, msg),
            ErrorKind::UploadBusy { .. } => {
                ApiError::new(Code::BlobUploadInvalid, msg).with_status(StatusCode::CONFLICT)
            }
            ErrorKind::OffsetMismatch { received, .. } => {
                ApiError::new(Code::BlobUploadInvalid, msg)
                    .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .with_header(header::RANGE, &range_header(*received))
            }
            ErrorKind::BodyFailed { source, .. } => {
                let status = if source.kind() == io::ErrorKind::TimedOut {
                    StatusCode::REQUEST_TIMEOUT
                } else {
                    StatusCode::BAD_REQUEST
                };
                ApiError::new(Code::BlobUploadInvalid, msg).with_status(status)
            }
            ErrorKind::NoSpace { .. } => {
                tracing::error!("{e}");
                ApiError::new(
                    Code::Unknown,
                    "the registry's storage is full: nothing was stored (an upload that hit it \
                     was discarded); try again once space is freed",
                )
                .with_status(StatusCode::INSUFFICIENT_STORAGE)
            }
            ErrorKind::Config(_) | ErrorKind::Io { .. } | ErrorKind::Corrupt { .. } => {
                tracing::error!("{e}");
                ApiError::new(
                    Code::Unknown,
                    "storage error (the registry's log has the details)",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = %self.code, status = %self.status, "{}", self.message);
        } else {
            tracing::debug!(code = %self.code, status = %self.status, "{}", self.message);
        }
        let body = serde_json::json!({
            "errors": [{ "code": self.code.as_str(), "message": self.message, "detail": null }]
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}
