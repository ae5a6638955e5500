//! # hoist-registry: the OCI distribution server, with a storage trait and a filesystem backend
//!
//! A registry a team can run: OCI distribution-spec v1.1 (blobs with ranges, manifests,
//! chunked and streamed uploads that survive a restart, cross-repository mounts, tags and
//! catalog pagination, referrers), plus upload cancel and `?tag=` on manifest PUT.
//!
//! - **Streaming**: an upload body goes from the connection to a temp file as it arrives,
//!   hashed (sha256) as it is written, a batch of about a MiB at a time on a blocking thread;
//!   a blob goes out a chunk at a time as the client reads it. Memory per request is a few
//!   MiB whatever the blob size, and a slow client holds no thread.
//! - **No global lock**: each upload session has its own lock, held only by the request
//!   writing that session. A stalled client stalls only itself.
//! - **Atomic commits**: everything visible is written to a temp file, fsynced and renamed;
//!   a digest mismatch discards the upload.
//! - **Content-addressed once**: a blob is stored once for all repositories; a repository
//!   sees it only when it was pushed or mounted there.
//! - **Stalled clients cost little**: idle connections, slow request heads, request bodies
//!   and responses that make no progress are closed after their [`Timeouts`]; running out of
//!   file descriptors is waited out; upload sessions nobody writes to expire
//!   ([`ServerBuilder::upload_ttl`]), and so does what a crash left half-made.
//!
//! Glossary: a *digest* is `algorithm:hex` of bytes as stored (a compressed layer, a
//! manifest's raw bytes); a *diff_id* is the digest of a layer's uncompressed tar — the
//! registry deals in digests only.
//!
//! ## Example
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! let registry = hoist_registry::Registry::open("/var/lib/hoist")?;
//! let server = hoist_registry::Server::builder(registry)
//!     .upload_ttl(Duration::from_secs(24 * 3600))
//!     .bind(std::net::TcpListener::bind("127.0.0.1:5000")?)?;
//! println!("listening on {}://{}", server.scheme(), server.local_addr());
//! server.serve(std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod access;
mod auth;
mod conn;
mod error;
mod fs;
mod gc;
mod health;
mod metrics;
mod names;
mod object;
mod serve;
mod server;
mod storage;
mod ui;

use std::future::Future;
use std::io;

pub use access::TARGET as ACCESS_LOG_TARGET;
pub use auth::Htpasswd;
pub use error::{Error, ErrorKind, Result};
pub use fs::FsStorage;
pub use gc::{DEFAULT_GRACE, GcOptions, GcReport, INVENTORY_EVERY, Inventory, collect};
pub use health::READY_TIMEOUT;
pub use metrics::Metrics;
pub use names::{Reference, RepoName, parse_digest, validate_tag};
pub use object::{DEFAULT_S3_TIMEOUT, ObjectStorage, S3Config};
pub use serve::{DEFAULT_SHUTDOWN_GRACE, DEFAULT_UPLOAD_TTL, Server, ServerBuilder, Timeouts, Tls};
pub use server::{DEFAULT_BODY_TIMEOUT, Registry};
pub use storage::{
    BlobEntry, BlobRead, ByteStream, Expired, ManifestEntry, ManifestPut, PROBE_REPO, Storage,
    StoredManifest,
};

/// Serve `registry` on `listener` (HTTPS with `tls`) until `shutdown` completes, with the
/// default timeouts; [`Server::builder`] sets them.
pub async fn serve(
    listener: std::net::TcpListener,
    registry: &Registry,
    tls: Option<&Tls>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let mut b = Server::builder(registry.clone());
    if let Some(t) = tls {
        b = b.tls(t.clone());
    }
    b.bind(listener)
        .map_err(io::Error::other)?
        .serve(shutdown)
        .await
}

/// Serve `registry`'s metrics (`GET /metrics`, no authentication) on `listener`, plain
/// HTTP, until `shutdown` completes: the separate metrics address of `hoist serve
/// --metrics-addr`, usually one only the monitoring network reaches.
pub async fn serve_metrics(
    listener: std::net::TcpListener,
    registry: &Registry,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    Server::builder(registry.clone())
        .metrics_only()
        .bind(listener)
        .map_err(io::Error::other)?
        .serve(shutdown)
        .await
}
