//! Distribution-API requests made by hand, for tests that drive a registry (the
//! in-process one, `hoist serve`, the distribution registry) below any client: push a
//! blob in one request, read one back, ask how much of an upload arrived, and leave a
//! request half sent.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};

use bytes::Bytes;
use hoist_image::Digest;
use reqwest::StatusCode;

/// Pushes `bytes` to `repo` in one `POST .../blobs/uploads/?digest=` (asserting
/// `201 Created`) and returns their digest. `base` is `http://HOST:PORT`.
pub async fn push_blob(c: &reqwest::Client, base: &str, repo: &str, bytes: &[u8]) -> Digest {
    let d = Digest::sha256(bytes);
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    d
}

/// The body of `GET .../blobs/DIGEST` from `repo`, whatever the status (callers compare
/// it with what they pushed).
pub async fn get_blob(c: &reqwest::Client, base: &str, repo: &str, digest: &Digest) -> Bytes {
    c.get(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
}

/// How many bytes of the upload session at `loc` (its full URL) the registry holds: a
/// `GET` on the session, asserting `204 No Content`, read from its `Range: 0-END`.
pub async fn upload_offset(c: &reqwest::Client, loc: &str) -> u64 {
    let r = c.get(loc).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT, "upload status of {loc}");
    let range = r.headers()["range"].to_str().unwrap();
    let end: u64 = range.split_once('-').unwrap().1.parse().unwrap();
    if end == 0 { 0 } else { end + 1 }
}

/// Pushes `bytes` to `repo` the way every registry takes: `POST` a session, then `PUT`
/// the whole body with `?digest=` (asserting `201 Created`). Returns their digest.
pub async fn upload_blob(c: &reqwest::Client, base: &str, repo: &str, bytes: &[u8]) -> Digest {
    let d = Digest::sha256(bytes);
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED, "POST upload to {repo}");
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let mut url = reqwest::Url::parse(base).unwrap().join(&loc).unwrap();
    url.query_pairs_mut().append_pair("digest", &d.to_string());
    let r = c
        .put(url)
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "PUT blob to {repo}");
    d
}

/// `PUT`s a manifest's raw bytes at `repo:reference` with its media type (asserting
/// `201 Created`); returns the registry's answer headers (`OCI-Subject`, ...).
pub async fn put_manifest(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    raw: &[u8],
) -> reqwest::header::HeaderMap {
    let r = c
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", media_type)
        .body(raw.to_vec())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let body = r.text().await.unwrap_or_default();
    assert_eq!(
        status,
        StatusCode::CREATED,
        "PUT manifest {repo}:{reference}: {body}"
    );
    headers
}

/// Opens a raw connection to `addr`, sends `head` (request line and headers, ending in
/// a blank line) and `partial` (the first bytes of the body), and returns the connection
/// open, so the server waits for the rest.
pub fn half_request(addr: impl ToSocketAddrs, head: &str, partial: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(partial).unwrap();
    s.flush().unwrap();
    s
}
