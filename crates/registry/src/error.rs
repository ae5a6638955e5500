//! The registry's one error type: a distribution-spec error code, the HTTP status it is
//! answered with and a one-line message naming the input. Storage backends return it too,
//! so a storage failure reaches the client as a spec error envelope, never a panic.

use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Distribution-spec error codes (plus `UNKNOWN` for server-side failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// The blob is not known to the repository.
    BlobUnknown,
    /// The upload is invalid (bad chunk, wrong offset, malformed Content-Range).
    BlobUploadInvalid,
    /// The upload session is not known.
    BlobUploadUnknown,
    /// The digest did not match the content, or is malformed.
    DigestInvalid,
    /// A manifest references a blob (or child manifest) the repository lacks.
    ManifestBlobUnknown,
    /// The manifest is invalid.
    ManifestInvalid,
    /// The manifest is not known.
    ManifestUnknown,
    /// The repository name is invalid.
    NameInvalid,
    /// The repository is not known.
    NameUnknown,
    /// A size is invalid (too large, or disagrees with the content).
    SizeInvalid,
    /// Authentication required.
    Unauthorized,
    /// Access denied.
    Denied,
    /// The operation is not supported.
    Unsupported,
    /// A server-side failure (storage I/O).
    Unknown,
}

impl Code {
    /// The spec's string for the code.
    pub fn as_str(self) -> &'static str {
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
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::Unknown => "UNKNOWN",
        }
    }

    /// The status this code is usually answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => StatusCode::NOT_FOUND,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
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

/// A registry error: code, status and message. Answered as the spec's envelope
/// `{"errors":[{"code":..,"message":..,"detail":..}]}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    code: Code,
    status: StatusCode,
    message: String,
    /// Extra headers (e.g. `Range` on a 416, `WWW-Authenticate` on a 401).
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

/// `Result` with the registry's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with the code's usual status.
    pub fn new(code: Code, message: impl Into<String>) -> Error {
        Error {
            code,
            status: code.status(),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Override the status.
    pub fn with_status(mut self, status: StatusCode) -> Error {
        self.status = status;
        self
    }

    /// Add a response header.
    pub fn with_header(mut self, name: header::HeaderName, value: &str) -> Error {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    /// A storage I/O failure on `what`.
    pub fn io(what: impl fmt::Display, e: std::io::Error) -> Error {
        Error::new(Code::Unknown, format!("{what}: {e}"))
    }

    /// The code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True for the "not known" codes.
    pub fn is_not_found(&self) -> bool {
        self.status == StatusCode::NOT_FOUND
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = %self.code, "{}", self.message);
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
