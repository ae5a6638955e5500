//! Shared pieces of the fuzz targets: driving the registry's router in-process.

use std::sync::OnceLock;

use axum::body::Body;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// One tokio runtime for the whole fuzzing process (the registry runs storage work on
/// its blocking pool).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// A directory for storage roots: tmpfs when there is one (fast, and no disk wear).
pub fn scratch() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix("hoist-fuzz-")
        .tempdir_in(dir)
        .expect("scratch directory")
}

/// What the router answered.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The headers, as (lower-case name, value bytes).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Answer {
    /// A header's value, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// Send one request through `router`; `None` when the request cannot be built (the
/// method, URI or a header is not valid HTTP, which a server never receives).
pub fn send(
    router: &axum::Router,
    method: &[u8],
    uri: &[u8],
    headers: &[(Vec<u8>, Vec<u8>)],
    body: Vec<u8>,
) -> Option<Answer> {
    let mut req = axum::http::Request::builder()
        .method(axum::http::Method::from_bytes(method).ok()?)
        .uri(axum::http::Uri::try_from(uri).ok()?);
    for (n, v) in headers {
        let n = axum::http::HeaderName::from_bytes(n).ok()?;
        let v = axum::http::HeaderValue::from_bytes(v).ok()?;
        req = req.header(n, v);
    }
    let req = req.body(Body::from(body)).ok()?;
    let router = router.clone();
    runtime().block_on(async move {
        let resp = router.oneshot(req).await.expect("the router is infallible");
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default();
        Some(Answer {
            status,
            headers,
            body,
        })
    })
}
