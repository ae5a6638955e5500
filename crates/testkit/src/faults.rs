//! A fault-injecting HTTP/1.1 proxy to put in front of a registry: answers 500s or 429s
//! with `Retry-After`, resets connections in the middle of a request body (after
//! forwarding the first bytes, so the registry keeps a partial upload), stalls
//! responses, refuses large bodies with 413, and asks for chunked uploads; with an
//! optional bearer-token gate ([`crate::token::TokenService`]) and an optional rate limit
//! ([`Proxy::set_rate_limit`]: Docker Hub's `ratelimit-*` headers on every answer, 429
//! with `Retry-After` past the limit). Counters tell the tests what happened, by method
//! and by route ([`Counters::route`]). Runs on its own thread and runtime; stopped on drop.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};

use crate::token::TokenService;

type ProxyBody = BoxBody<Bytes, std::io::Error>;

/// What to do to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status without forwarding.
    Status(u16),
    /// Answer 429 with this `Retry-After` value, without forwarding.
    TooManyRequests(String),
    /// Forward the first `n` bytes of the request body as a complete request (the
    /// registry keeps them), then drop the client's connection without an answer.
    ResetAfter(u64),
    /// Forward, then hold the answer back this long.
    Stall(Duration),
    /// Answer 413 to a body (PATCH/PUT) larger than this many bytes, without forwarding.
    RefuseBodyOver(u64),
    /// Forward, and add `OCI-Chunk-Min-Length: n` to the answer.
    ChunkMin(u64),
    /// Forward, send the answer's headers and the first `n` bytes of its body, then
    /// drop the connection (a download cut in the middle).
    CutResponseAfter(u64),
    /// Forward, flipping the bits of the answer body's byte at this offset (a registry
    /// or a network that serves a wrong byte).
    CorruptResponseByte(u64),
}

/// Which requests a rule applies to.
#[derive(Debug, Clone, Default)]
pub struct Match {
    /// `HEAD`, `PATCH`, ... (any when `None`).
    pub method: Option<String>,
    /// A substring of the path (any when `None`).
    pub path: Option<String>,
}

impl Match {
    /// Requests with this method.
    pub fn method(m: &str) -> Match {
        Match {
            method: Some(m.to_string()),
            path: None,
        }
    }

    /// And whose path contains `p`.
    pub fn path(mut self, p: &str) -> Match {
        self.path = Some(p.to_string());
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method)
            && self.path.as_deref().is_none_or(|p| path.contains(p))
    }
}

/// A fault for the `skip`+1-th to `skip`+`times`-th matching requests.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Which requests.
    pub when: Match,
    /// What to do.
    pub fault: Fault,
    /// Matching requests to let through first.
    pub skip: u64,
    /// How many matching requests get the fault (`u64::MAX`: all).
    pub times: u64,
}

impl Rule {
    /// `fault` on the first `times` requests matching `when`.
    pub fn new(when: Match, fault: Fault, times: u64) -> Rule {
        Rule {
            when,
            fault,
            skip: 0,
            times,
        }
    }

    /// Let `n` matching requests through before the fault starts.
    pub fn after(mut self, n: u64) -> Rule {
        self.skip = n;
        self
    }
}

/// What the proxy saw and did.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests received.
    pub requests: AtomicU64,
    /// Faults injected.
    pub faults: AtomicU64,
    /// Connections reset in the middle of a body.
    pub resets: AtomicU64,
    /// Request body bytes forwarded to the registry (PATCH, PUT, POST).
    pub body_bytes: AtomicU64,
    /// 401s sent by the token gate.
    pub unauthorized: AtomicU64,
    /// 429s sent by the rate limit.
    pub limited: AtomicU64,
    /// Upload requests with a body (`PUT`/`PATCH` on `/blobs/uploads/`) in flight at
    /// once, at most.
    pub max_uploads_in_flight: AtomicU64,
    uploads_in_flight: AtomicU64,
    by_method: Mutex<HashMap<String, u64>>,
    by_route: Mutex<HashMap<String, u64>>,
    log: Mutex<Vec<String>>,
}

/// The kind of registry route a path is: `base` (`/v2/`), `catalog`, `tags`,
/// `manifests`, `referrers`, `uploads`, `blobs`, or `other`.
pub fn route_of(path: &str) -> &'static str {
    if path == "/v2/" || path == "/v2" {
        "base"
    } else if path.ends_with("/_catalog") {
        "catalog"
    } else if path.ends_with("/tags/list") {
        "tags"
    } else if path.contains("/manifests/") {
        "manifests"
    } else if path.contains("/referrers/") {
        "referrers"
    } else if path.contains("/blobs/uploads") {
        "uploads"
    } else if path.contains("/blobs/") {
        "blobs"
    } else {
        "other"
    }
}

impl Counters {
    /// Requests received with this method.
    pub fn method(&self, m: &str) -> u64 {
        self.by_method.lock().unwrap().get(m).copied().unwrap_or(0)
    }
    /// Requests received with this method on this kind of route ([`route_of`]):
    /// `route("HEAD", "manifests")`.
    pub fn route(&self, method: &str, route: &str) -> u64 {
        self.by_route
            .lock()
            .unwrap()
            .get(&format!("{method} {route}"))
            .copied()
            .unwrap_or(0)
    }
    /// Every `METHOD route` seen, with its count, sorted (for messages).
    pub fn routes(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .by_route
            .lock()
            .unwrap()
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        v.sort();
        v
    }
    /// Every request received, in order: `METHOD /path?query`.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    /// How many requests were exactly `METHOD /path` (the query ignored).
    pub fn count_of(&self, method: &str, path: &str) -> usize {
        let want = format!("{method} {path}");
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.split('?').next() == Some(want.as_str()))
            .count()
    }
    /// Forget every count (between two runs of a test).
    pub fn reset(&self) {
        for c in [
            &self.requests,
            &self.faults,
            &self.resets,
            &self.body_bytes,
            &self.unauthorized,
            &self.limited,
            &self.max_uploads_in_flight,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.by_method.lock().unwrap().clear();
        self.by_route.lock().unwrap().clear();
        self.log.lock().unwrap().clear();
    }
    /// A snapshot for messages.
    pub fn summary(&self) -> String {
        format!(
            "requests={} faults={} resets={} body_bytes={} unauthorized={} limited={} by_route={:?}",
            self.requests.load(Ordering::Relaxed),
            self.faults.load(Ordering::Relaxed),
            self.resets.load(Ordering::Relaxed),
            self.body_bytes.load(Ordering::Relaxed),
            self.unauthorized.load(Ordering::Relaxed),
            self.limited.load(Ordering::Relaxed),
            self.routes()
        )
    }
}

struct State {
    upstream: String,
    me: String,
    rules: Mutex<Vec<(Rule, u64)>>,
    counters: Arc<Counters>,
    client: reqwest::Client,
    gate: Option<Arc<TokenService>>,
    limit: Mutex<Option<Limiter>>,
}

/// Headers a rate limit adds to an answer.
type LimitHeaders = Vec<(&'static str, String)>;

/// A rate limit on the requests that match: `limit` per `window`, counted from the
/// first request of a window.
#[derive(Debug)]
struct Limiter {
    when: Match,
    limit: u64,
    window: Duration,
    start: Option<Instant>,
    used: u64,
}

impl Limiter {
    /// Count one request: `Ok(headers)` to forward it with, or `Err(headers)` to refuse
    /// it with (429).
    fn take(&mut self, now: Instant) -> Result<LimitHeaders, LimitHeaders> {
        let start = *self.start.get_or_insert(now);
        if now.duration_since(start) >= self.window {
            self.start = Some(now);
            self.used = 0;
        }
        let left = self
            .window
            .saturating_sub(now.duration_since(self.start.unwrap()));
        let w = self.window.as_secs().max(1);
        let reset = left.as_secs_f64().ceil().max(1.0) as u64;
        let headers = |remaining: u64| {
            vec![
                ("ratelimit-limit", format!("{};w={w}", self.limit)),
                ("ratelimit-remaining", format!("{remaining};w={w}")),
            ]
        };
        if self.used >= self.limit {
            let mut h = headers(0);
            h.push(("retry-after", reset.to_string()));
            return Err(h);
        }
        self.used += 1;
        Ok(headers(self.limit - self.used))
    }
}

/// A running proxy; stopped on drop.
pub struct Proxy {
    addr: SocketAddr,
    counters: Arc<Counters>,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Proxy({})", self.addr)
    }
}

impl Proxy {
    /// Start a proxy on `127.0.0.1:0` in front of `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: SocketAddr, rules: Vec<Rule>) -> Proxy {
        Self::start_with(upstream, rules, None)
    }

    /// Start one that also demands bearer tokens from `gate`.
    pub fn start_with(
        upstream: SocketAddr,
        rules: Vec<Rule>,
        gate: Option<Arc<TokenService>>,
    ) -> Proxy {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("proxy addr");
        let counters = Arc::new(Counters::default());
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let state = Arc::new(State {
            upstream: format!("http://{upstream}"),
            me: format!("http://{addr}"),
            rules: Mutex::new(rules.into_iter().map(|r| (r, 0)).collect()),
            counters: counters.clone(),
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("proxy client"),
            gate,
            limit: Mutex::new(None),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("proxy runtime");
            rt.block_on(crate::http1::serve_until(
                std_listener,
                stopped,
                move |req| handle(st.clone(), req),
            ));
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        Proxy {
            addr,
            counters,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Replace the rules.
    pub fn set_rules(&self, rules: Vec<Rule>) {
        *self.state.rules.lock().unwrap() = rules.into_iter().map(|r| (r, 0)).collect();
    }

    /// Limit the requests matching `when` to `limit` per `window`, as Docker Hub does:
    /// each answer says `ratelimit-limit: L;w=W` and `ratelimit-remaining: R;w=W`, and a
    /// request past the limit is answered 429 with `Retry-After` (the seconds left in the
    /// window), without being forwarded. Counted in [`Counters::limited`].
    pub fn set_rate_limit(&self, when: Match, limit: u64, window: Duration) {
        *self.state.limit.lock().unwrap() = Some(Limiter {
            when,
            limit,
            window,
            start: None,
            used: 0,
        });
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn full(status: u16, headers: &[(&str, String)], body: &str) -> Response<ProxyBody> {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    r.body(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never: Infallible| match never {})
            .boxed(),
    )
    .expect("response")
}

/// An upload request with a body in flight; counted while it lives.
struct InFlight(Arc<Counters>);

impl InFlight {
    fn enter(c: &Arc<Counters>) -> InFlight {
        let now = c.uploads_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        c.max_uploads_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(c.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.uploads_in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The connection-dropping "error" a service returns to make hyper close the socket.
#[derive(Debug)]
struct Reset;
impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "injected reset")
    }
}
impl std::error::Error for Reset {}

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Result<Response<ProxyBody>, Reset> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    st.counters.requests.fetch_add(1, Ordering::Relaxed);
    *st.counters
        .by_method
        .lock()
        .unwrap()
        .entry(method.clone())
        .or_default() += 1;
    *st.counters
        .by_route
        .lock()
        .unwrap()
        .entry(format!("{method} {}", route_of(&path)))
        .or_default() += 1;
    st.counters.log.lock().unwrap().push(format!(
        "{method} {}",
        req.uri().path_and_query().map_or("/", |p| p.as_str())
    ));
    let mut limit_headers = Vec::new();
    {
        let mut l = st.limit.lock().unwrap();
        if let Some(l) = l.as_mut().filter(|l| l.when.matches(&method, &path)) {
            match l.take(Instant::now()) {
                Ok(h) => limit_headers = h,
                Err(mut h) => {
                    st.counters.limited.fetch_add(1, Ordering::Relaxed);
                    h.push(("content-type", "application/json".into()));
                    return Ok(full(
                        429,
                        &h,
                        r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"rate limit exceeded"}]}"#,
                    ));
                }
            }
        }
    }
    let upload_body = matches!(method.as_str(), "PUT" | "PATCH") && route_of(&path) == "uploads";
    let _in_flight = upload_body.then(|| InFlight::enter(&st.counters));

    if let Some(gate) = &st.gate
        && let Err(challenge) = gate.authorize(
            &method,
            &path,
            req.headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
        )
    {
        st.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        return Ok(full(
            401,
            &[
                ("www-authenticate", challenge),
                ("content-type", "application/json".into()),
            ],
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        ));
    }

    let content_length = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let fault = {
        let mut rules = st.rules.lock().unwrap();
        let mut hit = None;
        for (rule, seen) in rules.iter_mut() {
            if !rule.when.matches(&method, &path) {
                continue;
            }
            if let Fault::RefuseBodyOver(max) = rule.fault
                && content_length.is_none_or(|l| l <= max)
                && !(content_length.is_none() && method == "PATCH")
            {
                continue;
            }
            *seen += 1;
            if *seen > rule.skip && *seen - rule.skip <= rule.times {
                hit = Some(rule.fault.clone());
                break;
            }
        }
        hit
    };
    if fault.is_some() {
        st.counters.faults.fetch_add(1, Ordering::Relaxed);
    }
    match &fault {
        Some(Fault::Status(s)) => {
            return Ok(full(
                *s,
                &[("content-type", "application/json".into())],
                r#"{"errors":[{"code":"UNKNOWN","message":"injected fault"}]}"#,
            ));
        }
        Some(Fault::TooManyRequests(ra)) => {
            return Ok(full(
                429,
                &[("retry-after", ra.clone())],
                r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
            ));
        }
        Some(Fault::RefuseBodyOver(_)) => {
            // Read (and drop) the body first, so the client sees the answer rather than
            // a broken pipe.
            let mut body = req.into_body().into_data_stream();
            while let Some(Ok(_)) = body.next().await {}
            return Ok(full(
                413,
                &[],
                r#"{"errors":[{"code":"SIZE_INVALID","message":"body too large"}]}"#,
            ));
        }
        _ => {}
    }

    // Forward.
    let (parts, body) = req.into_parts();
    let url = format!(
        "{}{}",
        st.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let limit = match &fault {
        Some(Fault::ResetAfter(n)) => Some(*n),
        _ => None,
    };
    let mut rb = st.client.request(parts.method.clone(), &url);
    for (k, v) in &parts.headers {
        let k = k.as_str();
        if matches!(
            k,
            "host" | "connection" | "transfer-encoding" | "keep-alive"
        ) || (k == "content-length" && limit.is_some())
        {
            continue;
        }
        rb = rb.header(k, v);
    }
    let counters = st.counters.clone();
    let stream = body.into_data_stream();
    let forwarded = Arc::new(AtomicU64::new(0));
    let fw = forwarded.clone();
    let limited =
        futures_util::stream::unfold((stream, 0u64, false), move |(mut s, sent, done)| {
            let counters = counters.clone();
            let fw = fw.clone();
            async move {
                if done {
                    return None;
                }
                let max = limit.unwrap_or(u64::MAX);
                if sent >= max {
                    return None;
                }
                match s.next().await {
                    Some(Ok(mut b)) => {
                        if sent + b.len() as u64 > max {
                            b.truncate((max - sent) as usize);
                        }
                        counters
                            .body_bytes
                            .fetch_add(b.len() as u64, Ordering::Relaxed);
                        fw.fetch_add(b.len() as u64, Ordering::Relaxed);
                        let sent = sent + b.len() as u64;
                        Some((Ok::<Bytes, std::io::Error>(b), (s, sent, false)))
                    }
                    Some(Err(e)) => {
                        Some((Err(std::io::Error::other(e.to_string())), (s, sent, true)))
                    }
                    None => None,
                }
            }
        });
    let has_body = matches!(parts.method.as_str(), "PUT" | "PATCH" | "POST");
    if has_body {
        rb = rb.body(reqwest::Body::wrap_stream(limited));
    }
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(_) => return Ok(full(502, &[], "upstream unreachable")),
    };
    if limit.is_some() {
        // The registry has its partial body; the client gets a dead connection.
        st.counters.resets.fetch_add(1, Ordering::Relaxed);
        return Err(Reset);
    }
    if let Some(Fault::Stall(d)) = &fault {
        tokio::time::sleep(*d).await;
    }
    let mut out = Response::builder().status(StatusCode::from_u16(resp.status().as_u16()).unwrap());
    for (k, v) in resp.headers() {
        let k = k.as_str();
        if matches!(k, "connection" | "transfer-encoding" | "keep-alive") {
            continue;
        }
        if k == "location"
            && let Ok(v) = v.to_str()
        {
            out = out.header(k, v.replace(&st.upstream, &st.me));
            continue;
        }
        out = out.header(k, v.as_bytes());
    }
    if let Some(Fault::ChunkMin(n)) = &fault {
        out = out.header("oci-chunk-min-length", n.to_string());
    }
    for (k, v) in &limit_headers {
        out = out.header(*k, v);
    }
    let (cut, corrupt) = match &fault {
        Some(Fault::CutResponseAfter(n)) => (Some(*n), None),
        Some(Fault::CorruptResponseByte(n)) => (None, Some(*n)),
        _ => (None, None),
    };
    let counters = st.counters.clone();
    let body = StreamBody::new(
        futures_util::stream::unfold(
            (resp.bytes_stream(), 0u64, false),
            move |(mut s, at, done)| {
                let counters = counters.clone();
                async move {
                    if done {
                        return None;
                    }
                    if let Some(max) = cut
                        && at >= max
                    {
                        counters.resets.fetch_add(1, Ordering::Relaxed);
                        let e = std::io::Error::other("injected cut");
                        return Some((Err(e), (s, at, true)));
                    }
                    match s.next().await {
                        Some(Ok(b)) => {
                            let len = b.len() as u64;
                            let mut b = match cut {
                                Some(max) if at + len > max => b.slice(..(max - at) as usize),
                                _ => b,
                            };
                            if let Some(off) = corrupt
                                && off >= at
                                && off < at + b.len() as u64
                            {
                                let mut v = b.to_vec();
                                v[(off - at) as usize] ^= 0xff;
                                b = Bytes::from(v);
                            }
                            let next = at + b.len() as u64;
                            Some((Ok(b), (s, next, false)))
                        }
                        Some(Err(e)) => {
                            Some((Err(std::io::Error::other(e.to_string())), (s, at, true)))
                        }
                        None => None,
                    }
                }
            },
        )
        .map(|r: std::io::Result<Bytes>| r.map(Frame::data)),
    );
    Ok(out.body(BodyExt::boxed(body)).expect("response"))
}
