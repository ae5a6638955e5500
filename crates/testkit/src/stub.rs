//! A scripted HTTP/1.1 server for unit tests of client code: every request is recorded
//! (method, path and query, headers, body) and answered by the test's handler, so a test
//! can play a registry's part exactly (a challenge, a 503 then a 200, a `Range` header,
//! a body cut in the middle) and then check what the client sent.
//!
//! ```no_run
//! use hoist_testkit::stub::{Reply, Stub};
//! let stub = Stub::start(|req| match req.path.as_str() {
//!     "/v2/" => Reply::status(200),
//!     _ => Reply::status(404),
//! });
//! // ... point a client at stub.host() ...
//! assert_eq!(stub.requests()[0].method, "GET");
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};

/// A request as the stub saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `GET`, `HEAD`, `PUT`, ...
    pub method: String,
    /// The path with its query (`/v2/a/blobs/uploads/?mount=...`).
    pub path: String,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Seen {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of a query parameter.
    pub fn query(&self, name: &str) -> Option<String> {
        let (_, q) = self.path.split_once('?')?;
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The path without the query.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }
}

/// What the stub answers.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    cut_after: Option<usize>,
}

impl Reply {
    /// An empty answer with this status.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            cut_after: None,
        }
    }

    /// Add a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The body (`Content-Length` is set from it).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self
    }

    /// A JSON body with `Content-Type: application/json`.
    pub fn json(self, v: &serde_json::Value) -> Reply {
        self.header("content-type", "application/json")
            .body(v.to_string())
    }

    /// Announce the whole body but close the connection after its first `n` bytes (a
    /// download cut in the middle).
    pub fn cut_after(mut self, n: usize) -> Reply {
        self.cut_after = Some(n);
        self
    }
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// A running stub; stopped on drop.
pub struct Stub {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Stub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stub({})", self.addr)
    }
}

impl Stub {
    /// Start on `127.0.0.1:0`, answering every request with `handler`.
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Stub {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind stub");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let log = seen.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("stub runtime");
            rt.block_on(crate::http1::serve_until(listener, stopped, move |req| {
                serve(req, handler.clone(), log.clone())
            }));
        });
        Stub {
            addr,
            seen,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, as the registry part of a reference.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Every request so far, in the order they arrived.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests so far with this method.
    pub fn count(&self, method: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == method)
            .count()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

async fn serve(
    req: Request<Incoming>,
    handler: Arc<Handler>,
    log: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    };
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    let reply = handler(&seen);
    log.lock().unwrap().push(seen);
    let mut out = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        out = out.header(k.as_str(), v.as_str());
    }
    let len = reply.body.len();
    if !reply
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        out = out.header("content-length", len.to_string());
    }
    let data = Bytes::from(reply.body);
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = match reply.cut_after {
        None => vec![Ok(Frame::data(data))],
        Some(n) => vec![
            Ok(Frame::data(data.slice(..n.min(len)))),
            Err(std::io::Error::other("stub: cut")),
        ],
    };
    // Before a cut, give the connection a moment to write what came before it (hyper
    // drops unwritten data when the body fails).
    let body = StreamBody::new(stream::unfold(frames.into_iter(), |mut it| async move {
        let next = it.next()?;
        if next.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Some((next, it))
    }))
    .boxed();
    Ok(out.body(body).expect("response"))
}
