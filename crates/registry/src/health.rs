//! `GET /healthz` (the process answers) and `GET /readyz` (the storage answers: a sentinel
//! written and read back through [`Storage::probe`](crate::Storage::probe)). Both without
//! authentication, as orchestrators' probes expect, and both saying nothing about the
//! storage beyond ready or not (the reason goes to the log).

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::server::Registry;

/// A storage probe slower than this counts as not ready (a hung network file system or
/// object store must not hang the probe).
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /healthz`.
pub(crate) fn healthz() -> Response {
    text(StatusCode::OK, "ok\n")
}

/// `GET /readyz`.
pub(crate) async fn readyz(reg: &Registry) -> Response {
    match tokio::time::timeout(READY_TIMEOUT, reg.storage().probe()).await {
        Ok(Ok(())) => text(StatusCode::OK, "ready\n"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness probe failed");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: storage failed\n",
            )
        }
        Err(_) => {
            tracing::warn!(timeout = ?READY_TIMEOUT, "readiness probe timed out");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: storage timed out\n",
            )
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
