//! # hoist-remote: the async registry client
//!
//! The transport ([`Client`]) speaks the OCI distribution protocol over HTTP/1.1 and
//! HTTP/2 (rustls, pooled connections): https first, falling back to plain http for
//! loopback registries and those named insecure (as crane and skopeo do); certificates
//! verified against the system's roots and CA files of the caller's, or not at all where
//! asked. It authenticates the way registries ask (`WWW-Authenticate`: Basic, or Bearer
//! tokens from a token service, cached per scope and refreshed on a 401 in the middle of
//! a long push), with credentials from docker's `config.json` and the containers tools'
//! `auth.json` ([`AuthFiles`]). Temporary failures (connection resets, timeouts,
//! 408/429/5xx) are retried with exponential backoff and jitter, honouring `Retry-After`,
//! and announced to a progress sink; a refused connection, a name that does not resolve
//! or an untrusted certificate fail at once. No credential or token ever appears in an
//! error or a log line.
//!
//! The client is split by job: the transport (`transport.rs`: connections, retries; every
//! request goes through one send loop there) with authentication (`auth.rs`: ping,
//! challenges, tokens), and the registry
//! operations on it: blobs (`blobs.rs`: HEAD, mount, and [`Client::download`], the one
//! verified, resumable download path), manifests (`manifests.rs`), uploads (`upload.rs`:
//! one upload session as a small state machine), tags, catalog, deletion and referrers
//! ([`ops`]). A [`Runtime`] drives it all for synchronous callers.
//!
//! The push engine ([`push::push`]) takes any [`hoist_image::Image`] or
//! [`hoist_image::ImageIndex`] to one or more destinations: HEADs first, mounts when a
//! repository of the same registry holds the blob, parallel uploads of what is missing
//! (one request when small, a streamed PATCH when large, chunks when asked), resumed from
//! the registry's offset after a failure; then manifests, children before indexes, one
//! PUT per extra tag.
//!
//! ## Glossary
//! - **digest**: `sha256:<hex>` of bytes as stored or sent (a compressed layer, a
//!   config, a manifest's raw bytes). Blobs are addressed by digest.
//! - **diff_id**: the digest of a layer's uncompressed tar (in the config's rootfs).
//!   The registry never sees it; the pipeline computes both in one pass.
//!
//! ## Example
//! ```no_run
//! # async fn f(image: std::sync::Arc<dyn hoist_image::Image>) -> hoist_remote::Result<()> {
//! use hoist_remote::{push, Client, Target};
//! let client = Client::builder().retries(3).build()?;
//! let targets = [Target::parse("127.0.0.1:5000/demo:v1")?, Target::parse("127.0.0.1:5000/demo:latest")?];
//! let report = push::push(&client, hoist_image::Child::Image(image), &targets, &push::Options::default(),
//!     std::sync::Arc::new(push::NoProgress)).await?;
//! for p in &report.pushed { println!("{p}"); }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod auth;
mod blobs;
pub mod challenge;
pub mod copy;
mod credential;
mod error;
mod manifests;
pub mod mirror;
pub mod ops;
pub mod pull;
pub mod push;
pub mod range;
pub mod ratelimit;
pub mod redact;
pub mod referrers;
mod repo;
pub mod retry;
mod runtime;
mod sessions;
pub mod source;
mod stream;
mod tls;
mod transport;
mod upload;

pub use blobs::Verify;
pub use credential::{Anonymous, AuthFiles, Credential, DockerConfig, Keychain, StaticKeychain};
pub use error::{Error, ErrorKind, MAX_ERROR_BODY, ProtocolError, Result, TransportCause};
pub use repo::{Repository, Target};
pub use runtime::{DEFAULT_WORKERS, Runtime};
pub use source::validate;
pub use transport::{Client, ClientBuilder, FALLBACK_DELAY, Stats};
pub use upload::{DEFAULT_MONOLITHIC_MAX, FALLBACK_CHUNK};
