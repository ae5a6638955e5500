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
//!
//! Glossary: a *digest* is `algorithm:hex` of bytes as stored (a compressed layer, a
//! manifest's raw bytes); a *diff_id* is the digest of a layer's uncompressed tar — the
//! registry deals in digests only.
//!
//! ## Example
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let registry = hoist_registry::Registry::open("/var/lib/hoist").expect("storage root");
//! let listener = std::net::TcpListener::bind("127.0.0.1:5000")?;
//! hoist_registry::serve(listener, &registry, None, std::future::pending()).await
//! # }
//! ```
#![warn(missing_docs)]

mod access;
mod auth;
mod error;
mod fs;
mod health;
mod metrics;
mod names;
mod server;
mod storage;
mod ui;

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use access::TARGET as ACCESS_LOG_TARGET;
pub use auth::Htpasswd;
pub use error::{Error, ErrorKind, Result};
pub use fs::FsStorage;
pub use health::READY_TIMEOUT;
pub use metrics::Metrics;
pub use names::{Reference, RepoName, parse_digest, validate_tag};
pub use server::{DEFAULT_BODY_TIMEOUT, Registry};
pub use storage::{
    BlobRead, ByteStream, Expired, ManifestPut, PROBE_REPO, Storage, StoredManifest,
};

/// How long in-flight requests may finish after a shutdown was asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A certificate chain and private key, PEM files, to serve HTTPS with.
#[derive(Debug, Clone)]
pub struct Tls {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// Serve `registry` on `listener` (HTTPS with `tls`) until `shutdown` completes.
pub async fn serve(
    listener: std::net::TcpListener,
    registry: &Registry,
    tls: Option<&Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });
    let app = registry
        .router()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    match tls {
        None => {
            axum_server::from_tcp(listener)?
                .handle(handle)
                .serve(app)
                .await
        }
        Some(t) => {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&t.cert, &t.key)
                .await
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "TLS certificate {} / key {}: {e}",
                            t.cert.display(),
                            t.key.display()
                        ),
                    )
                })?;
            axum_server::tls_rustls::from_tcp_rustls(listener, config)?
                .handle(handle)
                .serve(app)
                .await
        }
    }
}

/// Serve `registry`'s metrics (`GET /metrics`, no authentication) on `listener`, plain
/// HTTP, until `shutdown` completes: the separate metrics address of `hoist serve
/// --metrics-addr`, usually one only the monitoring network reaches.
pub async fn serve_metrics(
    listener: std::net::TcpListener,
    registry: &Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });
    axum_server::from_tcp(listener)?
        .handle(handle)
        .serve(registry.metrics_router().into_make_service())
        .await
}
