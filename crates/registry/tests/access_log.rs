//! The access log: one line per request with the route's template, repository, status,
//! bytes, duration, client and user; nothing secret. Alone in its test binary: the test
//! installs a tracing subscriber for its thread, and tracing caches per call site whether
//! anyone listens, which other tests' threads would decide first.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use hoist_image::Digest;
use hoist_registry::{Htpasswd, Registry};
use tower::ServiceExt;

struct Resp {
    status: StatusCode,
    body: Vec<u8>,
}

async fn call_on(
    router: axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Resp {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = router
        .oneshot(b.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Resp { status, body }
}

async fn call(
    reg: &Registry,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Resp {
    call_on(reg.router(), method, uri, headers, body).await
}

/// A tracing writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn access_log_has_one_line_per_request_and_no_secrets() {
    let out = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(out.clone())
        .with_env_filter("hoist::access=info")
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret-pw", 4).unwrap();
    let reg = Registry::open(dir.path())
        .unwrap()
        .with_auth(Htpasswd::parse(&format!("alice:{hash}")).unwrap());
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:s3cret-pw")
    );
    let auth = [("authorization", basic.as_str())];
    let body = b"some layer bytes".to_vec();
    let d = Digest::sha256(&body);
    let r = call(
        &reg,
        "POST",
        &format!("/v2/team/app/blobs/uploads/?digest={d}&secret=token123"),
        &auth,
        body.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = call(
        &reg,
        "GET",
        &format!("/v2/team/app/blobs/{d}"),
        &auth,
        vec![],
    )
    .await;
    assert_eq!(r.body, body);
    call(
        &reg,
        "GET",
        "/v2/_catalog",
        &[("authorization", "Basic Ym9iOndyb25n")],
        vec![],
    )
    .await;
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    let f = |i: usize| lines[i]["fields"].clone();
    assert_eq!(f(0)["method"], "POST");
    assert_eq!(f(0)["route"], "/v2/{name}/blobs/uploads/");
    assert_eq!(f(0)["repo"], "team/app");
    assert_eq!(f(0)["status"], 201);
    assert_eq!(f(0)["bytes_in"], body.len());
    assert_eq!(f(0)["user"], "alice");
    assert_eq!(f(1)["route"], "/v2/{name}/blobs/{digest}");
    assert_eq!(f(1)["bytes_out"], body.len());
    assert_eq!(f(1)["status"], 200);
    assert!(f(1)["duration_ms"].as_f64().is_some());
    assert_eq!(f(1)["client"], "-", "no socket in this test");
    assert_eq!(f(2)["status"], 401);
    assert_eq!(f(2)["user"], "-", "an unchecked user is not logged");
    assert_eq!(lines[0]["target"], "hoist::access");
    for secret in ["s3cret", "token123", "Basic", "YWxp", "bob"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}
