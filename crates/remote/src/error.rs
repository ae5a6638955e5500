//! The one public error type of hoist-remote.
//!
//! Registry errors are data ([`ErrorKind::Protocol`]: status plus the distribution-spec
//! `errors` list); URLs in messages are redacted (no user info, no query values other than
//! digests and repository names) and credentials or tokens never appear.

use std::fmt;

use hoist_image::quote;
use serde::Deserialize;

/// Error bodies are read up to this many bytes (a hostile or broken registry cannot make
/// the client buffer more).
pub const MAX_ERROR_BODY: usize = 64 << 10;

/// One entry of a registry's `{"errors": [...]}` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProtocolError {
    /// A distribution-spec code (`BLOB_UNKNOWN`, `MANIFEST_INVALID`, `UNAUTHORIZED`, ...).
    #[serde(default)]
    pub code: String,
    /// The registry's message.
    #[serde(default)]
    pub message: String,
    /// Extra detail, as JSON text (often absent).
    #[serde(default, deserialize_with = "detail_as_text")]
    pub detail: Option<String>,
}

fn detail_as_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// What went wrong, as data. Match on it through [`Error::kind`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The registry answered with an unexpected status.
    Protocol {
        /// `HEAD`, `GET`, `PUT`, ...
        method: String,
        /// The URL, redacted.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The decoded `errors` list (empty when the body was not the spec's JSON).
        errors: Vec<ProtocolError>,
    },
    /// The request could not be completed: connection refused or reset, timeout, TLS.
    Transport {
        /// `METHOD url`, redacted.
        what: String,
        /// The cause, without URL.
        message: String,
        /// True when it was a timeout.
        timeout: bool,
        /// What kind of failure it was, as far as it can be told.
        cause: TransportCause,
    },
    /// Authentication failed or could not be attempted (bad challenge, token service error).
    Auth {
        /// The registry (host\[:port\]).
        registry: String,
        /// Why.
        reason: String,
    },
    /// An input or option that does not make sense (a bad reference, contradicting options).
    InvalidInput {
        /// Which input.
        what: String,
        /// What was expected.
        reason: String,
    },
    /// The registry answered something that breaks the protocol (a missing header, a
    /// digest that is not the one sent).
    InvalidResponse {
        /// `METHOD url`, redacted.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The registry does not support what was asked (deleting a tag on a registry that
    /// deletes manifests only; deletes disabled).
    Unsupported {
        /// What was asked (`deleting tag host/repo:tag`).
        what: String,
        /// What the registry answered.
        reason: String,
    },
    /// An error from the image model (reading a layer, a digest mismatch, ...).
    Image(hoist_image::Error),
    /// Local I/O (credential files, the push memory).
    Io {
        /// The path or object.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Why a request could not be completed ([`ErrorKind::Transport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportCause {
    /// Nothing listens at the address (connection refused).
    Refused,
    /// The registry's name does not resolve.
    NameNotResolved,
    /// The registry's TLS certificate is not trusted (unknown issuer, wrong name,
    /// expired): it speaks TLS, but cannot be verified.
    UntrustedCertificate,
    /// No answer in time.
    Timeout,
    /// The answer is not what the scheme speaks: plain http from a TLS server, TLS from
    /// an http one, or no HTTP at all.
    WrongProtocol,
    /// Anything else (reset, broken TLS, a malformed answer).
    Other,
}

/// The error type of hoist-remote.
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

    /// The image-model error inside (a digest mismatch, a bad manifest), or `self`.
    pub fn into_image(self) -> std::result::Result<hoist_image::Error, Error> {
        match *self.kind {
            ErrorKind::Image(e) => Ok(e),
            k => Err(Error::new(k)),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    pub(crate) fn invalid_input(what: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Self::new(ErrorKind::InvalidInput {
            what: what.to_string(),
            reason: reason.to_string(),
        })
    }

    pub(crate) fn invalid_response(what: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Self::new(ErrorKind::InvalidResponse {
            what: what.to_string(),
            reason: reason.to_string(),
        })
    }

    pub(crate) fn auth(registry: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Auth {
            registry: registry.to_string(),
            reason: reason.to_string(),
        })
    }

    pub(crate) fn io(what: impl fmt::Display, source: std::io::Error) -> Self {
        Self::new(ErrorKind::Io {
            what: what.to_string(),
            source,
        })
    }

    /// A transport error with `note` added to its message; other errors as they are.
    pub(crate) fn noted(mut self, note: &str) -> Error {
        if let ErrorKind::Transport { message, .. } = &mut *self.kind {
            message.push_str(&format!(" ({note})"));
        }
        self
    }

    /// What went wrong, without the request: a transport error's message, else the
    /// whole message.
    pub(crate) fn cause_text(&self) -> String {
        match &*self.kind {
            ErrorKind::Transport { message, .. } => message.clone(),
            _ => self.to_string(),
        }
    }

    /// The HTTP status, for protocol errors.
    pub fn status(&self) -> Option<u16> {
        match &*self.kind {
            ErrorKind::Protocol { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for a protocol error whose `errors` list has `code` (`DIGEST_INVALID`, ...).
    pub fn has_code(&self, code: &str) -> bool {
        match &*self.kind {
            ErrorKind::Protocol { errors, .. } => errors.iter().any(|e| e.code == code),
            _ => false,
        }
    }

    /// True when what was asked for does not exist (404, or a `*_UNKNOWN` code).
    pub fn is_not_found(&self) -> bool {
        match &*self.kind {
            ErrorKind::Protocol { status, errors, .. } => {
                *status == 404
                    || errors.iter().any(|e| {
                        matches!(
                            e.code.as_str(),
                            "BLOB_UNKNOWN" | "MANIFEST_UNKNOWN" | "NAME_UNKNOWN"
                        )
                    })
            }
            ErrorKind::Image(e) => e.is_not_found(),
            _ => false,
        }
    }

    /// True when trying again later may succeed: connection errors (but not a refused
    /// connection, a name that does not resolve or an untrusted certificate), timeouts,
    /// and the statuses 408, 429, 500, 502, 503, 504.
    pub fn is_temporary(&self) -> bool {
        match &*self.kind {
            ErrorKind::Transport { cause, .. } => {
                matches!(cause, TransportCause::Timeout | TransportCause::Other)
            }
            ErrorKind::Protocol { status, .. } => is_retryable_status(*status),
            _ => false,
        }
    }

    /// True when the registry does not support the operation (see [`ErrorKind::Unsupported`]).
    pub fn is_unsupported(&self) -> bool {
        matches!(&*self.kind, ErrorKind::Unsupported { .. })
    }

    /// True when the registry speaks TLS with a certificate that cannot be verified
    /// (trust its CA, or skip verification for it).
    pub fn is_untrusted_certificate(&self) -> bool {
        matches!(
            &*self.kind,
            ErrorKind::Transport {
                cause: TransportCause::UntrustedCertificate,
                ..
            }
        )
    }

    /// The transport failure's cause, for transport errors.
    pub fn transport_cause(&self) -> Option<TransportCause> {
        match &*self.kind {
            ErrorKind::Transport { cause, .. } => Some(*cause),
            _ => None,
        }
    }

    /// True for 401/403 answers and authentication failures.
    pub fn is_unauthorized(&self) -> bool {
        match &*self.kind {
            ErrorKind::Protocol { status, .. } => *status == 401 || *status == 403,
            ErrorKind::Auth { .. } => true,
            _ => false,
        }
    }
}

/// What to do about a 401 or 403 from `at` (a URL or `host[:port]`).
fn login_hint(at: &str) -> String {
    let host = at
        .split_once("://")
        .map_or(at, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or(at);
    format!(
        "credentials for {host} are missing or not allowed this: log in with `hoist auth login {host}`"
    )
}

/// The statuses worth a retry.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            ErrorKind::Protocol {
                method,
                url,
                status,
                errors,
            } => {
                write!(f, "{method} {url}: status {status}")?;
                let hint = (*status == 401 || *status == 403).then(|| login_hint(url));
                // The registry's words are untrusted bytes: quoted, control characters
                // escaped. A code of the spec's form is shown as is.
                for e in errors {
                    f.write_str(":")?;
                    let spec_code = !e.code.is_empty()
                        && e.code.len() <= 64
                        && e.code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
                    if spec_code {
                        write!(f, " {}", e.code)?;
                    } else if !e.code.is_empty() {
                        write!(f, " {}", quote(&e.code))?;
                    }
                    if !e.message.is_empty() {
                        write!(f, " {}", quote(&e.message))?;
                    }
                    if let Some(d) = &e.detail {
                        write!(f, " (detail {})", quote(d))?;
                    }
                }
                if let Some(h) = hint {
                    write!(f, "; {h}")?;
                }
                Ok(())
            }
            ErrorKind::Transport { what, message, .. } => write!(f, "{what}: {message}"),
            ErrorKind::Auth { registry, reason } => {
                write!(f, "authentication with {registry} failed: {reason}")?;
                if reason.contains("status 401") || reason.contains("status 403") {
                    write!(f, "; {}", login_hint(registry))?;
                }
                Ok(())
            }
            ErrorKind::InvalidInput { what, reason } => write!(f, "invalid {what}: {reason}"),
            ErrorKind::InvalidResponse { what, reason } => {
                write!(f, "{what}: unexpected answer: {reason}")
            }
            ErrorKind::Unsupported { what, reason } => write!(f, "{what}: {reason}"),
            ErrorKind::Image(e) => write!(f, "{e}"),
            ErrorKind::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            ErrorKind::Image(e) => Some(e),
            ErrorKind::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<hoist_image::Error> for Error {
    fn from(e: hoist_image::Error) -> Self {
        Error::new(ErrorKind::Image(e))
    }
}

/// Decode a (capped) error body into the spec's `errors` list; anything else becomes one
/// entry whose message is the body's first line (trimmed, cut at 200 chars).
pub(crate) fn decode_errors(body: &[u8]) -> Vec<ProtocolError> {
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<ProtocolError>,
    }
    if let Ok(b) = serde_json::from_slice::<Body>(body)
        && !b.errors.is_empty()
    {
        return b.errors;
    }
    let text = String::from_utf8_lossy(body);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    match line {
        Some(l) => vec![ProtocolError {
            code: String::new(),
            message: l.chars().take(200).collect(),
            detail: None,
        }],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_spec_errors_and_plain_bodies() {
        let e = decode_errors(
            br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":{"digest":"sha256:00"}}]}"#,
        );
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].code, "BLOB_UNKNOWN");
        assert_eq!(e[0].detail.as_deref(), Some(r#"{"digest":"sha256:00"}"#));
        let e = decode_errors(b"\n  upstream connect error\nmore");
        assert_eq!(e[0].message, "upstream connect error");
        assert!(decode_errors(b"").is_empty());
    }

    #[test]
    fn predicates() {
        let p = |status, code: &str| {
            Error::new(ErrorKind::Protocol {
                method: "GET".into(),
                url: "u".into(),
                status,
                errors: vec![ProtocolError {
                    code: code.into(),
                    message: String::new(),
                    detail: None,
                }],
            })
        };
        assert!(p(404, "").is_not_found());
        assert!(p(400, "MANIFEST_UNKNOWN").is_not_found());
        assert!(!p(400, "DIGEST_INVALID").is_not_found());
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(p(s, "").is_temporary(), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 501] {
            assert!(!p(s, "").is_temporary(), "{s}");
        }
        assert!(p(401, "UNAUTHORIZED").is_unauthorized());
        assert_eq!(
            p(400, "DIGEST_INVALID").to_string(),
            "GET u: status 400: DIGEST_INVALID"
        );
    }

    #[test]
    fn the_registry_s_words_are_quoted() {
        let e = |code: &str, message: &str, detail: Option<&str>| {
            Error::new(ErrorKind::Protocol {
                method: "GET".into(),
                url: "u".into(),
                status: 400,
                errors: vec![ProtocolError {
                    code: code.into(),
                    message: message.into(),
                    detail: detail.map(Into::into),
                }],
            })
            .to_string()
        };
        assert_eq!(
            e("BLOB_UNKNOWN", "blob unknown to registry", None),
            r#"GET u: status 400: BLOB_UNKNOWN "blob unknown to registry""#
        );
        let shown = e("EVIL\u{1b}[31m", "first\nsecond", Some("\u{202e}rtl"));
        assert!(
            !shown.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{shown:?}"
        );
        assert_eq!(
            shown,
            r#"GET u: status 400: "EVIL\u{1b}[31m" "first\nsecond" (detail "\u{202e}rtl")"#
        );
    }
}
