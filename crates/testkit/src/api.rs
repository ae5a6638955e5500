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
