//! The access log and the request metrics: one middleware around every request.
//!
//! A request is logged once, when its response body is finished or dropped (so bytes sent
//! and duration are the whole transfer), as one `tracing` event at INFO on the target
//! `hoist::access` with the fields `method`, `route` (the endpoint's template), `repo`,
//! `status`, `bytes_in`, `bytes_out`, `duration_ms`, `client` and `user`. Nothing secret is
//! logged: no header, no query string (the path's template and repository only), and the
//! user only once its password was checked. A request whose client went away before the
//! answer is logged with status 499 (nginx's "client closed request").

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::metrics::{self, Metrics};
use crate::server::{Registry, route_template};

/// The tracing target of access log lines.
pub const TARGET: &str = "hoist::access";

/// The authenticated user of a request, set on the response by the auth check.
#[derive(Debug, Clone)]
pub(crate) struct User(pub(crate) String);

/// The middleware: counts bytes both ways, and logs and records the request when done.
pub(crate) async fn layer(State(reg): State<Registry>, req: Request, next: Next) -> Response {
    let (route, repo) = route_template(req.uri().path());
    let method = req.method().clone();
    let upload = matches!(method, Method::PATCH | Method::PUT | Method::POST)
        && route.starts_with("/v2/{name}/blobs/uploads/");
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let received = Arc::new(AtomicU64::new(0));
    let mut done = Done {
        metrics: reg.metrics().clone(),
        start: Instant::now(),
        method,
        route,
        repo,
        client,
        user: None,
        status: 499,
        received: received.clone(),
        sent: 0,
        upload,
    };
    if upload {
        done.metrics
            .record(|| ::metrics::gauge!(metrics::UPLOADS_IN_PROGRESS).increment(1));
    }
    let req = req.map(|b| {
        Body::new(Counted {
            inner: b,
            received: Some(received),
            done: None,
        })
    });
    let resp = next.run(req).await;
    done.status = resp.status().as_u16();
    done.user = resp.extensions().get::<User>().map(|u| u.0.clone());
    resp.map(|b| {
        Body::new(Counted {
            inner: b,
            received: None,
            done: Some(done),
        })
    })
}

/// A body that counts its bytes: into `received` (a request) or into `done.sent`
/// (a response, whose drop finishes the request).
struct Counted {
    inner: Body,
    received: Option<Arc<AtomicU64>>,
    done: Option<Done>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll {
            if let Some(n) = frame.data_ref().map(|d| d.len() as u64) {
                if let Some(r) = &this.received {
                    r.fetch_add(n, Ordering::Relaxed);
                }
                if let Some(d) = &mut this.done {
                    d.sent += n;
                }
            }
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Everything known about a request; logged and recorded when dropped.
struct Done {
    metrics: Metrics,
    start: Instant,
    method: Method,
    route: &'static str,
    repo: Option<String>,
    client: Option<SocketAddr>,
    user: Option<String>,
    status: u16,
    received: Arc<AtomicU64>,
    sent: u64,
    upload: bool,
}

impl Drop for Done {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        let received = self.received.load(Ordering::Relaxed);
        let method = method_label(&self.method);
        tracing::info!(
            target: TARGET,
            method = %self.method,
            route = self.route,
            repo = self.repo.as_deref().unwrap_or("-"),
            status = self.status,
            bytes_in = received,
            bytes_out = self.sent,
            duration_ms = elapsed.as_micros() as f64 / 1000.0,
            client = %self.client.map_or_else(|| "-".to_string(), |c| c.to_string()),
            user = self.user.as_deref().unwrap_or("-"),
            "request"
        );
        let (route, status, sent, upload) = (self.route, self.status, self.sent, self.upload);
        self.metrics.record(|| {
            ::metrics::counter!(metrics::REQUESTS, "method" => method, "route" => route, "status" => status.to_string())
                .increment(1);
            ::metrics::histogram!(metrics::DURATION, "method" => method, "route" => route)
                .record(elapsed.as_secs_f64());
            ::metrics::counter!(metrics::BYTES_IN, "route" => route).increment(received);
            ::metrics::counter!(metrics::BYTES_OUT, "route" => route).increment(sent);
            if upload {
                ::metrics::gauge!(metrics::UPLOADS_IN_PROGRESS).decrement(1);
            }
        });
    }
}

/// A bounded label for a method: the ones the API knows, else `other`.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
