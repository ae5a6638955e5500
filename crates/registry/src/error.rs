//! The registry's one public error type: what went wrong, as plain data (an upload offset
//! that does not match, a digest that differs, a full disk), never an HTTP answer. The
//! server module alone turns an [`Error`] into a status, a distribution-spec error code and a
//! message for the client; storage paths in [`ErrorKind::Io`] go to the server's log only.

use std::io;

use hoist_image::Digest;

/// `Result` with the registry's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A registry or storage error: its [`ErrorKind`], with a one-line message naming the input.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error {
    kind: Box<ErrorKind>,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A repository name that breaks the distribution grammar.
    #[error("{0}")]
    NameInvalid(String),
    /// A tag that breaks the tag grammar.
    #[error("{0}")]
    TagInvalid(String),
    /// A malformed digest, or one of an unknown algorithm.
    #[error("{0}")]
    DigestInvalid(String),
    /// The repository does not see this blob.
    #[error("blob {digest} is not known to {repo}")]
    BlobUnknown {
        /// The repository.
        repo: String,
        /// The blob.
        digest: Digest,
    },
    /// The repository has no such manifest or tag.
    #[error("{what} is not known to {repo}")]
    ManifestUnknown {
        /// The repository.
        repo: String,
        /// `manifest DIGEST` or `tag "NAME"`.
        what: String,
    },
    /// No upload session by that id in that repository.
    #[error("upload {} is not known", hoist_image::quote(id))]
    UploadUnknown {
        /// The session id as asked.
        id: String,
    },
    /// Another request is writing to the session (a second writer is refused, not queued).
    #[error("upload {id}: another request is writing to it")]
    UploadBusy {
        /// The session.
        id: String,
    },
    /// A chunk does not start where the bytes received so far end.
    #[error("upload {id}: chunk starts at {start}, but {received} bytes were received")]
    OffsetMismatch {
        /// The session.
        id: String,
        /// Where the chunk says it starts.
        start: u64,
        /// The bytes the session holds.
        received: u64,
    },
    /// The session's bytes have another digest than the one asked; they were discarded.
    #[error(
        "upload {id}: the {size} bytes received have digest {actual}, not {expected}; discarded"
    )]
    DigestMismatch {
        /// The session.
        id: String,
        /// The digest the client committed it as.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
        /// How many bytes arrived.
        size: u64,
    },
    /// The request body broke off (the client went away, or sent nothing for too long); the
    /// bytes received before stay in the session, so the client can resume after them.
    #[error("upload {id}: request body failed after {received} bytes: {source}")]
    BodyFailed {
        /// The session.
        id: String,
        /// The bytes the session holds now.
        received: u64,
        /// Why the body failed ([`io::ErrorKind::TimedOut`] when it stalled).
        source: io::Error,
    },
    /// The storage is full. An upload that hit it was discarded, so its space is free again.
    #[error("storage full writing {what}: {source}")]
    NoSpace {
        /// The path or key written (for the server's log, not for clients).
        what: String,
        /// The error as the system gave it.
        source: io::Error,
    },
    /// Storage I/O failed.
    #[error("{what}: {source}")]
    Io {
        /// The path or key (for the server's log, not for clients).
        what: String,
        /// The error.
        source: io::Error,
    },
    /// Stored data is not what the backend wrote (a tag that holds no digest, say).
    #[error("{what}: {message}")]
    Corrupt {
        /// The path or key (for the server's log, not for clients).
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// A setting the registry was started with is unusable (an htpasswd file, a TLS key).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// An error of this kind.
    pub fn new(kind: ErrorKind) -> Error {
        Error {
            kind: Box::new(kind),
        }
    }

    /// A storage I/O failure on `what` (a path or key): [`ErrorKind::NoSpace`] when the
    /// storage is full (ENOSPC, EDQUOT), [`ErrorKind::Io`] otherwise.
    pub fn io(what: impl std::fmt::Display, source: io::Error) -> Error {
        let what = what.to_string();
        if is_no_space(&source) {
            Error::new(ErrorKind::NoSpace { what, source })
        } else {
            Error::new(ErrorKind::Io { what, source })
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// True for the "not known" kinds (blob, manifest or tag, upload session).
    pub fn is_not_found(&self) -> bool {
        matches!(
            *self.kind,
            ErrorKind::BlobUnknown { .. }
                | ErrorKind::ManifestUnknown { .. }
                | ErrorKind::UploadUnknown { .. }
        )
    }

    /// True when the storage is full.
    pub fn is_no_space(&self) -> bool {
        matches!(*self.kind, ErrorKind::NoSpace { .. })
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Error {
        Error::new(kind)
    }
}

/// Whether `e` says the storage is full (no space, or over quota).
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || e.kind() == io::ErrorKind::StorageFull
}
