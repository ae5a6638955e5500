//! The transport: one pooled HTTP client (HTTP/1.1 and HTTP/2, rustls), the state kept
//! per registry (base URL, credential, the auth state of `auth.rs`), and the send loop
//! every registry operation (`blobs`, `manifests`, `upload`, `ops`) goes through:
//! authorization, a re-authentication after a 401, retries with backoff of temporary
//! failures (`Retry-After` honoured) for bodies that can be sent again, each announced
//! to the client's [`Progress`] sink.
//!
//! Every registry is spoken to over https first. Loopback registries and those named
//! insecure fall back to plain http when https fails for any reason but an untrusted
//! certificate (or is slow to answer), as crane and skopeo do; the scheme that answered
//! the first request (the ping) is used from then on. Certificates are verified against
//! the system's roots (`SSL_CERT_FILE` and `SSL_CERT_DIR` replace them) plus the CA files
//! given ([`ClientBuilder::ca_file`]), a self-signed certificate given so trusted as itself
//! (`tls.rs`), except for insecure registries and with [`ClientBuilder::skip_tls_verify`]. A refused connection, a name that does not
//! resolve and an untrusted certificate are not retried: nothing will change by waiting.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::auth::AuthState;
use crate::credential::{Anonymous, Credential, Keychain};
use crate::error::{
    Error, ErrorKind, MAX_ERROR_BODY, Result, TransportCause, decode_errors, is_retryable_status,
};
use crate::push::{NoProgress, Progress, Retrying, Throttled};
use crate::ratelimit::{self, Throttle};
use crate::redact;
use crate::repo::Repository;
use crate::retry::{RetryPolicy, parse_retry_after};

/// Connection timeout. Registries on the same continent answer in well under this.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest a response may go silent (no byte read) before the request is retried.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The manifest types hoist accepts, in preference order.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Counters of what the transport did; see [`Client::stats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// HTTP requests sent (each retry counts).
    pub requests: u64,
    /// Retries after a temporary failure.
    pub retries: u64,
    /// Re-authentications after a 401.
    pub reauths: u64,
    /// Tokens fetched from a token service.
    pub token_fetches: u64,
    /// Uploads resumed from the registry's offset after a failure.
    pub resumes: u64,
    /// Uploads started over in a new session (the registry lost or cancelled the old one).
    pub restarts: u64,
    /// Bytes of blob data sent (each retry counts).
    pub bytes_sent: u64,
    /// Downloads resumed with `Range` after being cut in the middle.
    pub downloads_resumed: u64,
    /// Times a registry's rate limit ran low and its requests were spread out.
    pub throttled: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) reauths: AtomicU64,
    pub(crate) token_fetches: AtomicU64,
    pub(crate) resumes: AtomicU64,
    pub(crate) restarts: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) downloads_resumed: AtomicU64,
    pub(crate) throttled: AtomicU64,
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    keychain: Arc<dyn Keychain>,
    insecure: HashSet<String>,
    retry: RetryPolicy,
    connect_timeout: Duration,
    read_timeout: Duration,
    user_agent: String,
    http1_only: bool,
    ca_files: Vec<PathBuf>,
    skip_tls_verify: bool,
    progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("insecure", &self.insecure)
            .field("retry", &self.retry)
            .field("ca_files", &self.ca_files)
            .field("skip_tls_verify", &self.skip_tls_verify)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Where credentials come from (default: none).
    pub fn keychain(mut self, k: Arc<dyn Keychain>) -> Self {
        self.keychain = k;
        self
    }

    /// Let `registry` (`host[:port]`) answer over plain http when https fails, and do not
    /// verify its TLS certificate (crane's and skopeo's meaning of insecure). Loopback
    /// registries fall back to http too, but their certificates are verified.
    pub fn insecure(mut self, registry: impl Into<String>) -> Self {
        self.insecure.insert(registry.into());
        self
    }

    /// Trust the CA certificates (PEM, one or more) in `path` too, besides the system's
    /// roots: for registries with certificates of a private CA.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_files.push(path.into());
        self
    }

    /// Do not verify any registry's TLS certificate (a self-signed registry). The
    /// connection is still encrypted, but anyone on the path can read and change it.
    pub fn skip_tls_verify(mut self, yes: bool) -> Self {
        self.skip_tls_verify = yes;
        self
    }

    /// Where retries are announced ([`Progress::retrying`]). Default: nowhere.
    pub fn progress(mut self, p: Arc<dyn Progress>) -> Self {
        self.progress = p;
        self
    }

    /// The retry policy.
    pub fn retry(mut self, p: RetryPolicy) -> Self {
        self.retry = p;
        self
    }

    /// Attempts after the first one, for temporary failures.
    pub fn retries(mut self, n: u32) -> Self {
        self.retry.retries = n;
        self
    }

    /// How long a response may stay silent before it counts as a (retryable) timeout.
    pub fn read_timeout(mut self, d: Duration) -> Self {
        self.read_timeout = d;
        self
    }

    /// Connection timeout.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Only HTTP/1.1 (default: HTTP/2 when the server offers it over TLS).
    pub fn http1_only(mut self, yes: bool) -> Self {
        self.http1_only = yes;
        self
    }

    /// Build it.
    pub fn build(self) -> Result<Client> {
        if self.read_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::invalid_input(
                "client timeouts",
                "must be greater than zero",
            ));
        }
        // ring as the process-wide rustls provider (reqwest uses the default when one is
        // installed). An error means one is installed already: fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut roots = Vec::new();
        for f in &self.ca_files {
            roots.extend(crate::tls::read_ca_file(f)?);
        }
        // `streaming`: for requests with a streamed body, without reqwest's read timeout,
        // which runs from the start of a request until its answer begins and so would cut
        // a body that takes longer than that to send while its bytes flow; `send` bounds
        // those requests by idleness itself (see `Idle`).
        let make = |verify: bool, streaming: bool| {
            let mut b = reqwest::Client::builder()
                .user_agent(self.user_agent.clone())
                .connect_timeout(self.connect_timeout)
                .pool_max_idle_per_host(32)
                .tcp_nodelay(true)
                // reqwest follows redirects (blob GETs to storage), and drops
                // Authorization when the host changes.
                .redirect(reqwest::redirect::Policy::limited(5));
            if !streaming {
                b = b.read_timeout(self.read_timeout);
            }
            if verify {
                let tls =
                    crate::tls::Verifier::new(roots.clone()).client_config(self.http1_only)?;
                b = b.tls_backend_preconfigured(tls);
            } else {
                b = b.tls_danger_accept_invalid_certs(true);
            }
            if self.http1_only {
                b = b.http1_only();
            }
            b.build().map_err(|e| {
                Error::invalid_input("HTTP client settings", e.without_url().to_string())
            })
        };
        let http = Clients {
            plain: make(!self.skip_tls_verify, false)?,
            streaming: make(!self.skip_tls_verify, true)?,
        };
        // Clients without verification, only when some registry needs them.
        let unverified = if self.skip_tls_verify || self.insecure.is_empty() {
            http.clone()
        } else {
            Clients {
                plain: make(false, false)?,
                streaming: make(false, true)?,
            }
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                unverified,
                read_timeout: self.read_timeout,
                keychain: self.keychain,
                insecure: self.insecure,
                retry: self.retry,
                registries: Mutex::new(HashMap::new()),
                counters: Counters::default(),
                progress: self.progress,
            }),
        })
    }
}

/// An async registry client. Cheap to clone; clones share connections, tokens and stats.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Verify certificates (unless told to skip verification everywhere).
    http: Clients,
    /// Do not: for insecure registries.
    unverified: Clients,
    /// How long a request may go without progress (see [`ClientBuilder::read_timeout`]).
    read_timeout: Duration,
    pub(crate) keychain: Arc<dyn Keychain>,
    insecure: HashSet<String>,
    pub(crate) retry: RetryPolicy,
    registries: Mutex<HashMap<String, Arc<RegistryState>>>,
    pub(crate) counters: Counters,
    progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("insecure", &self.insecure)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// The HTTP clients of one verification mode.
#[derive(Debug, Clone)]
pub(crate) struct Clients {
    /// For every request without a streamed body: reqwest's read timeout bounds the wait
    /// for the answer and each read of its body.
    pub(crate) plain: reqwest::Client,
    /// For requests with a streamed body: no timeout of reqwest's but the connect one;
    /// `send` times the body's progress and the answer ([`Idle`]).
    streaming: reqwest::Client,
}

/// How long https gets to answer a registry that may fall back to http before http is
/// tried alongside (crane's `fallbackDelay`).
pub const FALLBACK_DELAY: Duration = Duration::from_millis(300);

#[derive(Debug)]
pub(crate) struct RegistryState {
    /// `https://host[:port]/`: the scheme until the ping settles it.
    provisional: Url,
    /// The scheme that answered the ping.
    scheme: OnceLock<&'static str>,
    /// Plain http may be tried when https fails (loopback and insecure registries).
    pub(crate) fallback: bool,
    /// Plain http is tried first (a loopback registry with a port; see `Client::ping`).
    pub(crate) http_first: bool,
    /// The HTTP clients for this registry (verifying certificates, or not).
    pub(crate) http: Clients,
    pub(crate) registry: String,
    pub(crate) credential: tokio::sync::OnceCell<Credential>,
    pub(crate) auth: tokio::sync::Mutex<AuthState>,
    /// The pace its announced rate limit asks for (`ratelimit.rs`).
    throttle: Mutex<Throttle>,
}

impl RegistryState {
    /// The base URL: `https://host[:port]/` or, once the ping settled on it, `http://`.
    pub(crate) fn base(&self) -> Url {
        let mut u = self.provisional.clone();
        if let Some(s) = self.scheme.get()
            && *s != u.scheme()
        {
            let _ = u.set_scheme(s);
        }
        u
    }

    /// The base URL with `scheme`.
    pub(crate) fn base_with(&self, scheme: &'static str) -> Url {
        let mut u = self.provisional.clone();
        let _ = u.set_scheme(scheme);
        u
    }

    /// Use `scheme` from now on.
    pub(crate) fn settle(&self, scheme: &'static str) {
        let _ = self.scheme.set(scheme);
    }

    /// `url` with the settled scheme, when it points at this registry.
    fn rebase(&self, mut url: Url) -> Url {
        if let Some(s) = self.scheme.get()
            && url.scheme() != *s
            && url.host_str() == self.provisional.host_str()
            && url.port() == self.provisional.port()
        {
            let _ = url.set_scheme(s);
        }
        url
    }
}

/// A request body.
#[derive(Debug)]
pub(crate) enum Body {
    Empty,
    Bytes(Bytes),
    /// Bytes sent once: the caller handles failures (an upload restarts its session).
    BytesOnce(Bytes),
    /// Not replayable: sent once, never retried by the transport.
    Stream(reqwest::Body),
}

impl Body {
    fn replayable(&self) -> bool {
        !matches!(self, Body::Stream(_) | Body::BytesOnce(_))
    }
    fn take(&mut self) -> reqwest::Body {
        match self {
            Body::Empty => reqwest::Body::from(Bytes::new()),
            Body::Bytes(b) | Body::BytesOnce(b) => reqwest::Body::from(b.clone()),
            Body::Stream(_) => match std::mem::replace(self, Body::Empty) {
                Body::Stream(s) => s,
                _ => unreachable!("matched above"),
            },
        }
    }
}

/// A response whose status the caller will check.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) inner: reqwest::Response,
    pub(crate) what: String,
    /// Bounds each read of the body, for an answer of the streaming client (which has
    /// no read timeout of its own); `None` for the others (reqwest's bounds them).
    pub(crate) idle: Option<Duration>,
}

impl Response {
    pub(crate) fn status(&self) -> u16 {
        self.inner.status().as_u16()
    }
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.inner.headers().get(name).and_then(|v| v.to_str().ok())
    }
    /// Turn an unexpected status into a protocol error (body read capped).
    pub(crate) async fn expect(self, ok: &[u16]) -> Result<Response> {
        if ok.contains(&self.status()) {
            return Ok(self);
        }
        Err(self.into_error().await)
    }
    pub(crate) async fn into_error(self) -> Error {
        let status = self.status();
        let (method, url) = self
            .what
            .split_once(' ')
            .map(|(m, u)| (m.to_string(), u.to_string()))
            .unwrap_or_default();
        let body = match self.idle {
            None => read_capped(self.inner, MAX_ERROR_BODY).await,
            Some(t) => tokio::time::timeout(t, read_capped(self.inner, MAX_ERROR_BODY))
                .await
                .unwrap_or_default(),
        };
        Error::new(ErrorKind::Protocol {
            method,
            url,
            status,
            errors: decode_errors(&body),
        })
    }
    pub(crate) fn what(&self) -> &str {
        &self.what
    }
    /// The whole body, refusing more than `max` bytes.
    pub(crate) async fn bytes(mut self, max: usize) -> Result<Bytes> {
        if let Some(len) = self.inner.content_length()
            && len > max as u64
        {
            return Err(Error::invalid_response(
                &self.what,
                format!("body of {len} bytes is over the {max} byte limit"),
            ));
        }
        let mut buf = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            if buf.len() + chunk.len() > max {
                return Err(Error::invalid_response(
                    &self.what,
                    format!("body is over the {max} byte limit"),
                ));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.into())
    }
    /// The next piece of the body.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>> {
        let next = match self.idle {
            None => self.inner.chunk().await,
            Some(t) => match tokio::time::timeout(t, self.inner.chunk()).await {
                Ok(r) => r,
                Err(_) => return Err(stalled(&self.what, t)),
            },
        };
        next.map_err(|e| transport_error(&self.what, &e))
    }
}

/// A request with a streamed body in flight: when its body last gave bytes to send. The
/// request fails (a retryable timeout) once neither its body nor its answer moved for the
/// read timeout: the bound reqwest's read timeout gives other requests, without cutting a
/// body that takes longer than that to send while its bytes flow (reqwest's would: it
/// runs from the start of the request until the answer begins).
struct Idle {
    timeout: Duration,
    start: Instant,
    /// Milliseconds from `start` to the body's last piece.
    last: Arc<AtomicU64>,
}

impl Idle {
    fn new(timeout: Duration) -> Idle {
        Idle {
            timeout,
            start: Instant::now(),
            last: Arc::default(),
        }
    }

    /// `body`, noting each piece it gives.
    fn track(&self, body: reqwest::Body) -> reqwest::Body {
        reqwest::Body::wrap(Tracked {
            inner: body,
            start: self.start,
            last: self.last.clone(),
        })
    }

    /// When the request counts as stalled, as of now.
    fn deadline(&self) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed)) + self.timeout
    }

    /// The answer to `send`, or a timeout once the request stalled.
    async fn bound(
        &self,
        send: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
        what: &str,
    ) -> Result<reqwest::Response> {
        tokio::pin!(send);
        loop {
            tokio::select! {
                biased;
                r = &mut send => return r.map_err(|e| transport_error(what, &e)),
                _ = tokio::time::sleep_until(self.deadline().into()) => {
                    if Instant::now() >= self.deadline() {
                        return Err(stalled(what, self.timeout));
                    }
                }
            }
        }
    }
}

/// A request body that notes when it last gave a piece (see [`Idle`]).
struct Tracked {
    inner: reqwest::Body,
    start: Instant,
    last: Arc<AtomicU64>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<http_body::Frame<Bytes>, reqwest::Error>>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(_))) = &r {
            let at = self.start.elapsed().as_millis() as u64;
            self.last.store(at, Ordering::Relaxed);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The error of a request that made no progress for `timeout` (retryable, as reqwest's
/// timeouts are).
fn stalled(what: &str, timeout: Duration) -> Error {
    Error::new(ErrorKind::Transport {
        what: what.to_string(),
        message: format!("no progress for {}s: timed out", timeout.as_secs_f64()),
        timeout: true,
        cause: TransportCause::Timeout,
    })
}

pub(crate) async fn read_capped(mut r: reqwest::Response, max: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    while let Ok(Some(c)) = r.chunk().await {
        let room = max - buf.len();
        buf.extend_from_slice(&c[..c.len().min(room)]);
        if buf.len() >= max {
            break;
        }
    }
    buf
}

pub(crate) fn transport_error(what: &str, e: &reqwest::Error) -> Error {
    // Walk the source chain for the root cause, without the URL (which we redact ourselves).
    let mut message = e.without_url_ref();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        message = format!("{message}: {s}");
        src = s.source();
    }
    let cause = cause_of(e);
    match cause {
        TransportCause::UntrustedCertificate => message.push_str(
            " (the registry's certificate is not trusted: add its CA (a CA file, or SSL_CERT_FILE), or skip verification for it)",
        ),
        TransportCause::WrongProtocol if what.contains(" https://") => message.push_str(
            " (the registry may speak plain http only: name it insecure to let it)",
        ),
        _ => {}
    }
    Error::new(ErrorKind::Transport {
        what: what.to_string(),
        message,
        timeout: e.is_timeout(),
        cause,
    })
}

/// What a failed request's error chain says happened.
fn cause_of(e: &reqwest::Error) -> TransportCause {
    if e.is_timeout() {
        return TransportCause::Timeout;
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        // io::Error::source skips the error it wraps: look inside it by hand.
        let inner = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| {
                if io.kind() == std::io::ErrorKind::ConnectionRefused {
                    return Some(TransportCause::Refused);
                }
                io.get_ref()
                    .and_then(|i| i.downcast_ref::<rustls::Error>())
                    .and_then(tls_cause)
            })
            .or_else(|| s.downcast_ref::<rustls::Error>().and_then(tls_cause));
        if let Some(c) = inner {
            return c;
        }
        // What the chain's text says, where its types are private to hyper.
        let text = s.to_string();
        if text.starts_with("dns error") {
            return TransportCause::NameNotResolved;
        }
        if text.contains("invalid peer certificate") {
            return TransportCause::UntrustedCertificate;
        }
        if text.contains("invalid HTTP version")
            || text.contains("invalid HTTP status")
            || text.contains("received corrupt message")
        {
            return TransportCause::WrongProtocol;
        }
        src = s.source();
    }
    TransportCause::Other
}

fn tls_cause(e: &rustls::Error) -> Option<TransportCause> {
    match e {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            Some(TransportCause::UntrustedCertificate)
        }
        rustls::Error::InvalidMessage(_) => Some(TransportCause::WrongProtocol),
        _ => None,
    }
}

trait WithoutUrlRef {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrlRef for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let kind = if self.is_timeout() {
            "timed out"
        } else if self.is_connect() {
            "connection failed"
        } else if self.is_body() {
            "body error"
        } else if self.is_decode() {
            "decode error"
        } else if self.is_request() {
            "request failed"
        } else {
            "error"
        };
        kind.to_string()
    }
}

impl Client {
    /// A builder with defaults: anonymous, https (loopback registries may fall back to
    /// http), certificates verified, 5 retries.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            keychain: Arc::new(Anonymous),
            insecure: HashSet::new(),
            retry: RetryPolicy::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            user_agent: format!("hoist/{}", env!("CARGO_PKG_VERSION")),
            http1_only: false,
            ca_files: Vec::new(),
            skip_tls_verify: false,
            progress: Arc::new(NoProgress),
        }
    }

    /// A client with defaults.
    pub fn new() -> Result<Client> {
        Self::builder().build()
    }

    /// What the transport did so far.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        Stats {
            requests: c.requests.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            reauths: c.reauths.load(Ordering::Relaxed),
            token_fetches: c.token_fetches.load(Ordering::Relaxed),
            resumes: c.resumes.load(Ordering::Relaxed),
            restarts: c.restarts.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            downloads_resumed: c.downloads_resumed.load(Ordering::Relaxed),
            throttled: c.throttled.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        self.inner.retry
    }

    /// Count a retry, log it and announce it to the progress sink; returns the wait.
    pub(crate) fn retrying(
        &self,
        what: &str,
        attempt: u32,
        retry_after: Option<Duration>,
        error: &Error,
    ) -> Duration {
        let delay = self.inner.retry.delay(attempt, retry_after);
        self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(what = %what, error = %error, delay_ms = delay.as_millis() as u64, "retrying");
        self.inner.progress.retrying(&Retrying {
            what,
            retry: attempt + 1,
            retries: self.inner.retry.retries,
            delay,
            error,
        });
        delay
    }

    /// Take the rate limit an answer announces into account, and tell the progress
    /// sink when requests start being spread out.
    fn observe_rate_limit(&self, st: &RegistryState, h: &HeaderMap) {
        let Some(a) = ratelimit::parse(|n| h.get(n).and_then(|v| v.to_str().ok())) else {
            return;
        };
        let slowing = st
            .throttle
            .lock()
            .expect("throttle lock")
            .observe(a, Instant::now());
        if let Some(s) = slowing {
            self.inner
                .counters
                .throttled
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(registry = %st.registry, remaining = a.remaining, limit = a.limit,
                spacing_ms = s.spacing.as_millis() as u64, "rate limit low: slowing down");
            self.inner.progress.throttled(&Throttled {
                registry: &st.registry,
                remaining: a.remaining,
                limit: a.limit,
                spacing: s.spacing,
            });
        }
    }

    pub(crate) fn state(&self, registry: &str) -> Result<Arc<RegistryState>> {
        let mut map = self.inner.registries.lock().expect("registry map lock");
        if let Some(s) = map.get(registry) {
            return Ok(s.clone());
        }
        let insecure = self.inner.insecure.contains(registry);
        let provisional = Url::parse(&format!("https://{registry}/"))
            .map_err(|e| Error::invalid_input(format!("registry {registry:?}"), e.to_string()))?;
        let loopback = hoist_image::is_loopback(registry);
        let s = Arc::new(RegistryState {
            http_first: loopback && provisional.port().is_some(),
            provisional,
            scheme: OnceLock::new(),
            fallback: insecure || loopback,
            http: if insecure {
                self.inner.unverified.clone()
            } else {
                self.inner.http.clone()
            },
            registry: registry.to_string(),
            credential: tokio::sync::OnceCell::new(),
            auth: tokio::sync::Mutex::new(AuthState::default()),
            throttle: Mutex::new(Throttle::default()),
        });
        map.insert(registry.to_string(), s.clone());
        Ok(s)
    }

    /// The base URL of a registry (`https://host/`, or `http://host/` once a request
    /// found it answers plain http only).
    pub fn base_url(&self, registry: &str) -> Result<String> {
        Ok(self.state(registry)?.base().to_string())
    }

    pub(crate) fn url(&self, repo: &Repository, path: &str) -> Result<Url> {
        let st = self.state(repo.registry())?;
        st.base()
            .join(&format!("v2/{}/{}", repo.name(), path))
            .map_err(|e| Error::invalid_input(format!("repository {repo}"), e.to_string()))
    }

    pub(crate) fn resolve_location(
        &self,
        repo: &Repository,
        what: &str,
        loc: Option<&str>,
    ) -> Result<Url> {
        let loc = loc.ok_or_else(|| Error::invalid_response(what, "no Location header"))?;
        let st = self.state(repo.registry())?;
        st.base()
            .join(loc)
            .map_err(|_| Error::invalid_response(what, "unparseable Location header"))
    }

    /// Send a request with auth and retries. A `Body::Stream` is sent once; its 401 still
    /// refreshes the auth state so the caller's next attempt is authorized.
    pub(crate) async fn send(
        &self,
        repo: &Repository,
        scopes: &[String],
        method: Method,
        url: Url,
        headers: &[(&'static str, String)],
        mut body: Body,
    ) -> Result<Response> {
        let st = self.state(repo.registry())?;
        let mut what = format!("{method} {}", redact::url(&url));
        let mut attempt = 0u32;
        let mut reauthed = false;
        let mut url = url;
        loop {
            let authz = self.authorization(&st, scopes).await?;
            // The ping may have settled on http: URLs made before it follow.
            let rebased = st.rebase(url.clone());
            if rebased != url {
                url = rebased;
                what = format!("{method} {}", redact::url(&url));
            }
            let idle = matches!(body, Body::Stream(_)).then(|| Idle::new(self.inner.read_timeout));
            let http = if idle.is_some() {
                &st.http.streaming
            } else {
                &st.http.plain
            };
            let mut rb = http.request(method.clone(), url.clone());
            for (k, v) in headers {
                rb = rb.header(*k, v);
            }
            if let Some(a) = authz {
                let mut v = HeaderValue::from_str(&a)
                    .map_err(|_| Error::auth(&st.registry, "token is not a valid header value"))?;
                v.set_sensitive(true);
                rb = rb.header(header::AUTHORIZATION, v);
            }
            if method == Method::GET {
                let wait = st
                    .throttle
                    .lock()
                    .expect("throttle lock")
                    .reserve(Instant::now());
                if !wait.is_zero() {
                    tracing::debug!(what = %what, wait_ms = wait.as_millis() as u64, "paced for the rate limit");
                    tokio::time::sleep(wait).await;
                }
            }
            let replayable = body.replayable();
            if !matches!(body, Body::Empty)
                || method == Method::PUT
                || method == Method::PATCH
                || method == Method::POST
            {
                let b = body.take();
                rb = rb.body(match &idle {
                    Some(i) => i.track(b),
                    None => b,
                });
            }
            self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(what = %what, attempt, "request");
            let sent = Instant::now();
            let answer = match &idle {
                None => rb.send().await.map_err(|e| transport_error(&what, &e)),
                Some(i) => i.bound(rb.send(), &what).await,
            };
            let idle = idle.map(|i| i.timeout);
            let (delay, err) = match answer {
                Ok(resp) => {
                    let status = resp.status();
                    tracing::trace!(what = %what, status = status.as_u16(), us = sent.elapsed().as_micros() as u64, "answered");
                    self.observe_rate_limit(&st, resp.headers());
                    if status == StatusCode::UNAUTHORIZED && !reauthed {
                        reauthed = true;
                        self.unauthorized(&st, scopes, resp.headers()).await;
                        if replayable {
                            tracing::debug!(what = %what, "401: re-authenticating");
                            continue;
                        }
                    }
                    if is_retryable_status(status.as_u16())
                        && replayable
                        && attempt < self.inner.retry.retries
                    {
                        let ra = retry_after(resp.headers());
                        let err = Response {
                            inner: resp,
                            what: what.clone(),
                            idle,
                        }
                        .into_error()
                        .await;
                        (ra, err)
                    } else {
                        return Ok(Response {
                            inner: resp,
                            what,
                            idle,
                        });
                    }
                }
                Err(err) => {
                    // The ping reached this registry: a refused connection now is a
                    // restart, worth waiting for. A name that stopped resolving or a
                    // certificate that is not trusted is not.
                    let worth = err.is_temporary()
                        || err.transport_cause() == Some(TransportCause::Refused);
                    if !replayable || !worth || attempt >= self.inner.retry.retries {
                        return Err(err);
                    }
                    (None, err)
                }
            };
            let d = self.retrying(&what, attempt, delay, &err);
            tokio::time::sleep(d).await;
            attempt += 1;
        }
    }
}

pub(crate) fn push_scope(repo: &Repository) -> Vec<String> {
    vec![format!("repository:{}:pull,push", repo.name())]
}

pub(crate) fn pull_scope(repo: &Repository) -> Vec<String> {
    vec![format!("repository:{}:pull", repo.name())]
}

pub(crate) fn retry_after(h: &HeaderMap) -> Option<Duration> {
    h.get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use hoist_testkit::stub::{Reply, Stub};

    fn fast_retries(n: u32) -> RetryPolicy {
        RetryPolicy {
            retries: n,
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
        }
    }

    fn client() -> Client {
        Client::builder().retry(fast_retries(3)).build().unwrap()
    }

    async fn get(c: &Client, repo: &Repository, path: &str) -> Result<Response> {
        let url = c.url(repo, path)?;
        c.send(repo, &pull_scope(repo), Method::GET, url, &[], Body::Empty)
            .await
    }

    /// A streamed body `pieces` x 64 KiB, one piece every `every`, after a first pause.
    fn slow_body(pieces: usize, first: Duration, every: Duration) -> Body {
        let s = futures_util::stream::unfold(0usize, move |i| async move {
            if i == pieces {
                return None;
            }
            tokio::time::sleep(if i == 0 { first } else { every }).await;
            Some((
                Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 64 << 10])),
                i + 1,
            ))
        });
        Body::Stream(reqwest::Body::wrap_stream(s))
    }

    /// The read timeout bounds a request's idleness, not its length: a body that takes
    /// four times the timeout to send while its bytes flow gets through whole, and one
    /// that stops moving for longer than the timeout fails as a (retryable) timeout.
    #[tokio::test]
    async fn a_streamed_body_longer_than_the_read_timeout_is_not_cut() {
        let stub = Stub::start(|_| Reply::status(202));
        let c = Client::builder()
            .retry(fast_retries(0))
            .read_timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let repo = Repository::new(stub.host(), "a").unwrap();
        let scope = push_scope(&repo);
        let patch = |body| {
            let url = c.url(&repo, "blobs/uploads/x").unwrap();
            c.send(&repo, &scope, Method::PATCH, url, &[], body)
        };
        // 4 s in all, a piece every 250 ms.
        let r = patch(slow_body(17, Duration::ZERO, Duration::from_millis(250)))
            .await
            .expect("a body whose bytes keep flowing is sent whole");
        assert_eq!(r.status(), 202);
        let seen = stub.requests();
        let last = seen.iter().rfind(|s| s.method == "PATCH").unwrap();
        assert_eq!(last.body.len(), 17 << 16);
        // A body that stalls (3 s before its second piece) is cut as a timeout.
        let stalled = slow_body(2, Duration::ZERO, Duration::from_secs(3));
        let e = patch(stalled).await.expect_err("a stalled body times out");
        assert!(e.is_temporary(), "{e}");
        assert!(e.to_string().contains("no progress for 1s"), "{e}");
    }

    #[tokio::test]
    async fn an_open_registry_is_pinged_once_and_gets_no_credentials() {
        let stub = Stub::start(|_| Reply::status(200));
        let c = client();
        let repo = Repository::new(stub.host(), "a").unwrap();
        for _ in 0..3 {
            assert_eq!(get(&c, &repo, "tags/list").await.unwrap().status(), 200);
        }
        let seen = stub.requests();
        assert_eq!(seen.iter().filter(|r| r.route() == "/v2/").count(), 1);
        assert!(seen.iter().all(|r| r.header("authorization").is_none()));
        // 3 requests and the ping, all over plain http: a loopback registry with a port
        // is tried over plain http first, so no https attempt was made.
        assert_eq!(c.stats().requests, 4);
        assert!(c.base_url(&stub.host()).unwrap().starts_with("http://"));
    }

    #[tokio::test]
    async fn temporary_failures_are_retried_and_others_are_not() {
        let calls = Arc::new(AtomicUsize::new(0));
        let k = calls.clone();
        let stub = Stub::start(move |req| match req.route() {
            "/v2/" => Reply::status(200),
            "/v2/a/flaky" if k.fetch_add(1, Ordering::SeqCst) < 2 => {
                Reply::status(503).header("retry-after", "0")
            }
            "/v2/a/flaky" => Reply::status(200),
            _ => Reply::status(404).json(&serde_json::json!(
                {"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known"}]}
            )),
        });
        let c = client();
        let repo = Repository::new(stub.host(), "a").unwrap();
        assert_eq!(get(&c, &repo, "flaky").await.unwrap().status(), 200);
        assert_eq!(c.stats().retries, 2);
        // A 404 is an answer, not a failure: no retry, and its errors are data.
        let e = get(&c, &repo, "missing")
            .await
            .unwrap()
            .expect(&[200])
            .await
            .unwrap_err();
        assert_eq!(c.stats().retries, 2);
        assert!(e.is_not_found() && e.has_code("NAME_UNKNOWN"), "{e}");
        assert_eq!(e.status(), Some(404));
        // A streamed body cannot be replayed: sent once, the 503 returned.
        calls.store(0, Ordering::SeqCst);
        let url = c.url(&repo, "flaky").unwrap();
        let body = reqwest::Body::from("x");
        let r = c
            .send(
                &repo,
                &push_scope(&repo),
                Method::PATCH,
                url,
                &[],
                Body::Stream(body),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(stub.count("PATCH"), 1);
    }

    #[tokio::test]
    async fn a_refused_connection_or_an_unknown_name_fails_at_once() {
        // A port nothing listens on: nothing will change by waiting (crane fails in
        // milliseconds too).
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = client();
        let repo = Repository::new(format!("127.0.0.1:{port}"), "a").unwrap();
        let e = get(&c, &repo, "tags/list").await.unwrap_err();
        assert!(!e.is_temporary(), "{e}");
        assert_eq!(e.transport_cause(), Some(TransportCause::Refused), "{e}");
        assert_eq!(c.stats().retries, 0, "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("GET http://127.0.0.1:{port}/v2/")),
            "{msg}"
        );
        assert!(msg.contains("over https:"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        // A name that does not resolve (`.invalid` never does, RFC 2606).
        let repo = Repository::new("registry.invalid", "a").unwrap();
        let e = get(&c, &repo, "tags/list").await.unwrap_err();
        assert_eq!(
            e.transport_cause(),
            Some(TransportCause::NameNotResolved),
            "{e}"
        );
        assert_eq!(c.stats().retries, 0, "{e}");
    }

    #[tokio::test]
    async fn retries_are_announced_to_the_progress_sink() {
        #[derive(Default)]
        struct Seen(Mutex<Vec<(String, u32, u32)>>);
        impl Progress for Seen {
            fn retrying(&self, r: &Retrying<'_>) {
                self.0
                    .lock()
                    .unwrap()
                    .push((r.what.to_string(), r.retry, r.retries));
            }
        }
        let calls = Arc::new(AtomicUsize::new(0));
        let k = calls.clone();
        let stub = Stub::start(move |req| match req.route() {
            "/v2/" => Reply::status(200),
            _ if k.fetch_add(1, Ordering::SeqCst) < 2 => Reply::status(503),
            _ => Reply::status(200),
        });
        let seen = Arc::new(Seen::default());
        let c = Client::builder()
            .retry(fast_retries(3))
            .progress(seen.clone())
            .build()
            .unwrap();
        let repo = Repository::new(stub.host(), "a").unwrap();
        assert_eq!(get(&c, &repo, "tags/list").await.unwrap().status(), 200);
        let seen = seen.0.lock().unwrap().clone();
        let what = format!("GET http://{}/v2/a/tags/list", stub.host());
        assert_eq!(seen, vec![(what.clone(), 1, 3), (what, 2, 3)]);
    }

    #[tokio::test]
    async fn urls_in_errors_are_redacted() {
        let stub = Stub::start(|req| match req.route() {
            "/v2/" => Reply::status(200),
            _ => Reply::status(400),
        });
        let c = client();
        let repo = Repository::new(stub.host(), "a").unwrap();
        let mut url = c.url(&repo, "blobs/uploads/1").unwrap();
        url.query_pairs_mut()
            .append_pair("_state", "very-secret-state")
            .append_pair("digest", "sha256:00");
        let e = c
            .send(
                &repo,
                &push_scope(&repo),
                Method::GET,
                url,
                &[],
                Body::Empty,
            )
            .await
            .unwrap()
            .into_error()
            .await;
        let msg = e.to_string();
        assert!(!msg.contains("very-secret-state"), "{msg}");
        assert!(msg.contains("digest=sha256%3A00"), "{msg}");
    }
}
