//! The one public error type of hoist-image.

use std::fmt;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::quote::quote;

/// What went wrong, as data. Match on it through [`Error::kind`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A reference (`host/repo:tag@digest`) that breaks a rule of the grammar.
    InvalidReference {
        /// The text the user gave.
        input: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A digest string that is not `algorithm:hex` of a supported algorithm.
    InvalidDigest {
        /// The text given.
        input: String,
        /// What was expected.
        reason: String,
    },
    /// Bytes whose digest is not the one they were announced with.
    DigestMismatch {
        /// The announced digest.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
        /// How many bytes were read.
        bytes_read: u64,
    },
    /// A layer whose uncompressed bytes do not hash to the diff_id its config lists.
    DiffIdMismatch {
        /// Which layer (index and digest or member name).
        layer: String,
        /// The diff_id the config lists.
        expected: Digest,
        /// What the uncompressed bytes hash to.
        actual: Digest,
    },
    /// More or fewer bytes than announced.
    SizeMismatch {
        /// What the blob claims to be (its digest, or a name).
        what: String,
        /// The announced size.
        expected: u64,
        /// The size seen (for "too large", the first size over the cap).
        actual: u64,
    },
    /// A manifest, index, config or metadata file that does not parse or breaks a rule.
    InvalidManifest {
        /// Which document.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Something looked for that is not there (blob, tag, file, platform).
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// A malformed archive or layout (a tar member escaping its root, a truncated file, ...).
    InvalidFormat {
        /// Which file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An input or option that does not make sense.
    InvalidInput {
        /// Which input.
        what: String,
        /// What was expected.
        reason: String,
    },
    /// An I/O error, with the path or object it happened on.
    Io {
        /// The path or object.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The error type of hoist-image.
#[derive(Debug)]
pub struct Error {
    kind: Box<ErrorKind>,
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wrap a kind.
    pub fn new(kind: ErrorKind) -> Self {
        Error {
            kind: Box::new(kind),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// An I/O error on `what` (a path or an object name).
    pub fn io(what: impl fmt::Display, source: std::io::Error) -> Self {
        Self::new(ErrorKind::Io {
            what: what.to_string(),
            source,
        })
    }

    /// Something not found.
    pub fn not_found(what: impl fmt::Display) -> Self {
        Self::new(ErrorKind::NotFound {
            what: what.to_string(),
        })
    }

    /// A bad input or option.
    pub fn invalid_input(what: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Self::new(ErrorKind::InvalidInput {
            what: what.to_string(),
            reason: reason.to_string(),
        })
    }

    /// A bad manifest / index / config / metadata document.
    pub fn invalid_manifest(what: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Self::new(ErrorKind::InvalidManifest {
            what: what.to_string(),
            reason: reason.to_string(),
        })
    }

    /// A malformed archive or layout.
    pub fn invalid_format(path: impl Into<PathBuf>, reason: impl fmt::Display) -> Self {
        Self::new(ErrorKind::InvalidFormat {
            path: path.into(),
            reason: reason.to_string(),
        })
    }

    /// True when something looked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(*self.kind, ErrorKind::NotFound { .. })
            || matches!(&*self.kind, ErrorKind::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// True for digest and size mismatches: the bytes are not what they claim to be.
    pub fn is_integrity(&self) -> bool {
        matches!(
            *self.kind,
            ErrorKind::DigestMismatch { .. }
                | ErrorKind::SizeMismatch { .. }
                | ErrorKind::DiffIdMismatch { .. }
        )
    }

    /// Turn into an `io::Error`, keeping this error as the inner one (for `Read` impls).
    pub fn into_io(self) -> std::io::Error {
        let kind = match *self.kind {
            ErrorKind::Io { ref source, .. } => source.kind(),
            ErrorKind::NotFound { .. } => std::io::ErrorKind::NotFound,
            _ => std::io::ErrorKind::InvalidData,
        };
        std::io::Error::new(kind, self)
    }

    /// Recover an [`Error`] that was wrapped into an `io::Error` by [`Error::into_io`];
    /// any other I/O error becomes [`ErrorKind::Io`] on `what`.
    pub fn from_io(what: impl fmt::Display, e: std::io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            let inner = e.into_inner().expect("checked above");
            return *inner.downcast::<Error>().expect("checked above");
        }
        Self::io(what, e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            ErrorKind::InvalidReference { input, reason } => {
                write!(f, "invalid reference {}: {reason}", quote(input))
            }
            ErrorKind::InvalidDigest { input, reason } => {
                write!(f, "invalid digest {}: {reason}", quote(input))
            }
            ErrorKind::DigestMismatch {
                expected,
                actual,
                bytes_read,
            } => write!(
                f,
                "digest mismatch: expected {expected}, got {actual} after {bytes_read} bytes"
            ),
            ErrorKind::DiffIdMismatch {
                layer,
                expected,
                actual,
            } => write!(
                f,
                "{layer}: uncompressed content hashes to {actual}, but the config's rootfs.diff_ids lists {expected}"
            ),
            ErrorKind::SizeMismatch {
                what,
                expected,
                actual,
            } => write!(
                f,
                "size mismatch for {what}: expected {expected} bytes, got {actual}"
            ),
            ErrorKind::InvalidManifest { what, reason } => write!(f, "invalid {what}: {reason}"),
            ErrorKind::NotFound { what } => write!(f, "not found: {what}"),
            ErrorKind::InvalidFormat { path, reason } => {
                write!(f, "{}: {reason}", path.display())
            }
            ErrorKind::InvalidInput { what, reason } => write!(f, "invalid {what}: {reason}"),
            ErrorKind::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The I/O cause is already part of Display ("what: cause"); returning it here too
        // would print it twice in `{:#}` chains.
        None
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error::new(kind)
    }
}
