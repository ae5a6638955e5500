//! Serving a [`Registry`] on a socket: the accept loop, TLS, HTTP/1.1 and HTTP/2, timeouts
//! for stalled clients, a periodic sweep of expired upload sessions, a periodic count of what
//! is stored (the inventory gauges), and a graceful shutdown.
//!
//! - Everything that can fail before serving (the listener, the TLS files) fails in
//!   [`ServerBuilder::bind`], so a caller can say "listening" only once it is true.
//! - An accept error (out of file descriptors, say) does not stop the server: it waits
//!   (10 ms, doubling up to 1 s) and accepts again; connections closed meanwhile, by their
//!   clients or by the timeouts, give the descriptors back.
//! - Each connection is watched ([`crate::conn`]): idle, slow-header and not-reading clients
//!   are closed after their timeout, whether over TLS or not.
//! - On shutdown the listener closes, idle connections close, and requests in flight get
//!   [`ServerBuilder::shutdown_grace`] to finish.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::conn::{Guarded, Watch, Watched};
use crate::error::{ErrorKind, Result};
use crate::server::Registry;

/// How long in-flight requests may finish after a shutdown was asked for (as Kubernetes
/// waits 30 s between SIGTERM and SIGKILL, this leaves it time to spare).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Upload sessions nobody wrote to for this long are removed: a week, as the distribution
/// registry's upload purging (`maintenance.uploadpurging.age: 168h`).
pub const DEFAULT_UPLOAD_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest wait between two sweeps of expired upload sessions.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// The longest wait between two tries after an accept error.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How long a client may stall before its connection (or request) is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A request's head (request line and headers) must be complete this long after its
    /// first byte arrived; a TLS handshake too.
    pub header: Duration,
    /// A connection with no request in flight that sends nothing for this long is closed.
    pub idle: Duration,
    /// A request body that sends nothing for this long fails (408), and a connection whose
    /// client reads nothing of a response for this long is closed.
    pub body: Duration,
}

impl Timeouts {
    /// 30 s for a request head (hyper's and nginx's `client_header_timeout` default), 90 s
    /// idle (longer than most clients keep an idle connection: Go's 90 s, so a client is the
    /// one to close it), 60 s without progress in a body (nginx's `client_body_timeout`).
    pub const DEFAULT: Timeouts = Timeouts {
        header: Duration::from_secs(30),
        idle: Duration::from_secs(90),
        body: crate::server::DEFAULT_BODY_TIMEOUT,
    };
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::DEFAULT
    }
}

/// A certificate chain and private key, PEM files, to serve HTTPS with.
#[derive(Debug, Clone)]
pub struct Tls {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// Settings for serving a [`Registry`]; [`ServerBuilder::bind`] makes the [`Server`].
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    what: Serves,
    tls: Option<Tls>,
    timeouts: Timeouts,
    shutdown_grace: Duration,
    upload_ttl: Duration,
}

/// A registry bound to its socket (and TLS files loaded), ready to [`Server::serve`].
pub struct Server {
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    /// What it serves: the registry's API, or only its metrics.
    what: Serves,
    tls: Option<tokio_rustls::TlsAcceptor>,
    timeouts: Timeouts,
    shutdown_grace: Duration,
    upload_ttl: Duration,
}

#[derive(Debug, Clone)]
enum Serves {
    Registry(Registry),
    Metrics(Registry),
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("tls", &self.tls.is_some())
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl Server {
    /// Settings for serving `registry`, all at their defaults.
    pub fn builder(registry: Registry) -> ServerBuilder {
        ServerBuilder {
            what: Serves::Registry(registry),
            tls: None,
            timeouts: Timeouts::DEFAULT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            upload_ttl: DEFAULT_UPLOAD_TTL,
        }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `https` with TLS, `http` without.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Serve until `shutdown` completes, then drain (see the module's docs). Must run in a
    /// tokio runtime with time and I/O enabled.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> io::Result<()> {
        let listener = tokio::net::TcpListener::from_std(self.listener)?;
        let (router, background) = match self.what {
            Serves::Registry(r) => {
                let r = r.body_timeout(self.timeouts.body);
                let inventory = r.clone();
                let tasks = vec![
                    tokio::spawn(sweep(r.clone(), self.upload_ttl)),
                    tokio::spawn(async move { inventory.take_inventory_every().await }),
                ];
                (r.router(), tasks)
            }
            Serves::Metrics(r) => (r.metrics_router(), Vec::new()),
        };
        let service = hyper_util::service::TowerToHyperService::new(router);
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(None);
        http.http2().timer(TokioTimer::new());
        let shared = Arc::new(Shared {
            http,
            service,
            tls: self.tls,
            timeouts: self.timeouts,
        });
        let graceful = GracefulShutdown::new();
        let mut conns = JoinSet::new();
        let mut backoff = Duration::ZERO;
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => break,
                r = listener.accept() => r,
            };
            while conns.try_join_next().is_some() {}
            match accepted {
                Ok((tcp, peer)) => {
                    backoff = Duration::ZERO;
                    let watcher = graceful.watcher();
                    conns.spawn(shared.clone().connection(tcp, peer, watcher));
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    if backoff.is_zero() {
                        tracing::warn!(error = %e, "accept failed; retrying until it works");
                    }
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), ACCEPT_BACKOFF_MAX);
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                }
            }
        }
        drop(listener);
        for t in background {
            t.abort();
        }
        let open = graceful.count();
        if open > 0 {
            tracing::info!(
                connections = open,
                grace_s = self.shutdown_grace.as_secs_f64(),
                "draining"
            );
        }
        if tokio::time::timeout(self.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace over: closing the connections still open");
        }
        conns.abort_all();
        while conns.join_next().await.is_some() {}
        Ok(())
    }
}

impl ServerBuilder {
    /// Serve only `GET /metrics` of the registry, without authentication (for a separate
    /// metrics address), instead of its API.
    pub fn metrics_only(mut self) -> Self {
        if let Serves::Registry(r) = self.what {
            self.what = Serves::Metrics(r);
        }
        self
    }

    /// Serve HTTPS with this certificate and key (HTTP/2 and HTTP/1.1 by ALPN).
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Timeouts for stalled clients.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// How long requests in flight may finish once a shutdown was asked for.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Remove upload sessions nobody wrote to for this long (at start, then periodically).
    pub fn upload_ttl(mut self, ttl: Duration) -> Self {
        self.upload_ttl = ttl;
        self
    }

    /// Take the listener and load the TLS files: everything that can fail before serving.
    pub fn bind(self, listener: std::net::TcpListener) -> Result<Server> {
        let zero = [
            ("header", self.timeouts.header),
            ("idle", self.timeouts.idle),
            ("body", self.timeouts.body),
            ("upload TTL", self.upload_ttl),
        ]
        .into_iter()
        .find(|(_, d)| d.is_zero());
        if let Some((what, _)) = zero {
            return Err(
                ErrorKind::Config(format!("the {what} timeout must be more than 0")).into(),
            );
        }
        let local_addr = listener
            .local_addr()
            .and_then(|a| listener.set_nonblocking(true).map(|()| a))
            .map_err(|e| crate::Error::io("listener", e))?;
        let tls = self.tls.as_ref().map(tls_acceptor).transpose()?;
        Ok(Server {
            listener,
            local_addr,
            what: self.what,
            tls,
            timeouts: self.timeouts,
            shutdown_grace: self.shutdown_grace,
            upload_ttl: self.upload_ttl,
        })
    }
}

/// What every connection task shares.
struct Shared {
    http: auto::Builder<TokioExecutor>,
    service: hyper_util::service::TowerToHyperService<axum::Router>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    timeouts: Timeouts,
}

impl Shared {
    /// Serve one connection until it ends, stalls, or the shutdown grace is over.
    async fn connection(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        graceful: hyper_util::server::graceful::Watcher,
    ) {
        let _ = tcp.set_nodelay(true);
        let watch = Watch::new();
        let io = Watched {
            io: tcp,
            watch: watch.clone(),
        };
        let t = self.timeouts;
        match &self.tls {
            None => self.http_on(io, &watch, peer, graceful).await,
            Some(acceptor) => {
                let tls = match tokio::time::timeout(t.header, acceptor.accept(io)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake not complete in time");
                        return;
                    }
                };
                self.http_on(tls, &watch, peer, graceful).await
            }
        }
    }

    async fn http_on<I>(
        &self,
        io: I,
        watch: &Arc<Watch>,
        peer: SocketAddr,
        graceful: hyper_util::server::graceful::Watcher,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let w = watch.clone();
        let service = self.service.clone();
        let counted = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let in_flight = w.begin();
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let call = hyper::service::Service::call(&service, req);
            async move {
                let resp = call.await?;
                Ok::<_, std::convert::Infallible>(resp.map(|inner: Body| Guarded {
                    inner,
                    _in_flight: in_flight,
                }))
            }
        });
        let conn = self.http.serve_connection(TokioIo::new(io), counted);
        let conn = graceful.watch(conn);
        tokio::select! {
            r = conn => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
            }
            stall = watch.stalled(&self.timeouts) => {
                tracing::debug!(%peer, %stall, "closing a stalled connection");
            }
        }
    }
}

/// Accept errors that concern one connection only (the client gave up before it was
/// accepted): accept the next one at once.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Remove expired upload sessions now, then every `ttl / 4` (at most [`SWEEP_EVERY`]).
async fn sweep(registry: Registry, ttl: Duration) {
    let every = (ttl / 4).clamp(Duration::from_millis(100), SWEEP_EVERY);
    loop {
        match registry.storage().uploads_expire(ttl).await {
            Ok(x) if x.sessions > 0 => {
                tracing::info!(
                    sessions = x.sessions,
                    bytes = x.bytes,
                    "expired upload sessions removed"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweeping expired upload sessions"),
        }
        tokio::time::sleep(every).await;
    }
}

/// A TLS acceptor from PEM files (HTTP/2 and HTTP/1.1 offered by ALPN).
fn tls_acceptor(t: &Tls) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &std::path::Path, e: &dyn std::fmt::Display| -> crate::Error {
        ErrorKind::Config(format!("TLS {}: {e}", what.display())).into()
    };
    let certs = CertificateDer::pem_file_iter(&t.cert)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| bad(&t.cert, &e))?;
    if certs.is_empty() {
        return Err(bad(&t.cert, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&t.key).map_err(|e| bad(&t.key, &e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| {
            ErrorKind::Config(format!(
                "TLS certificate {} / key {}: {e}",
                t.cert.display(),
                t.key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
