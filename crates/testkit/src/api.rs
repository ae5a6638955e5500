//! Distribution-API requests made by hand, for tests that drive a registry (the
//! in-process one, `hoist serve`, the distribution registry) below any client: push a
//! blob in one request, read one back, ask how much of an upload arrived, and leave a
//! request half sent; and [`Raw`], the same kind of questions from synchronous tests
//! (a tag's digest, a manifest's bytes, a tag list) for checks that do not go through
//! hoist.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};

use bytes::Bytes;
use hoist_image::Digest;
use reqwest::StatusCode;

/// Every manifest media type, for an `Accept` header that takes whatever a tag is.
pub const ALL_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

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

/// A blocking client for registry questions asked by hand (plain `http://`), from tests
/// that run no runtime of their own. Every method panics when the registry cannot be
/// reached.
pub struct Raw {
    c: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Default for Raw {
    fn default() -> Self {
        Raw::new()
    }
}

impl Raw {
    /// A client with its own single-threaded runtime.
    pub fn new() -> Raw {
        Raw {
            c: reqwest::Client::new(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// `GET url` with `accept`: the status and the body.
    pub fn get(&self, url: &str, accept: &str) -> (u16, Vec<u8>) {
        self.rt.block_on(async {
            let r = self
                .c
                .get(url)
                .header("accept", accept)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
        })
    }

    /// `GET url` with `accept`, asserting `200`: the body as JSON.
    pub fn json(&self, url: &str, accept: &str) -> serde_json::Value {
        let (status, body) = self.get(url, accept);
        assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// The bytes of the manifest `repo:reference` at `host`, whatever its type (empty
    /// or an error body when it is not there: callers compare).
    pub fn manifest(&self, host: &str, repo: &str, reference: &str) -> Vec<u8> {
        self.get(
            &format!("http://{host}/v2/{repo}/manifests/{reference}"),
            ALL_MANIFESTS,
        )
        .1
    }

    /// The digest of `repo:reference` at `host`, from a `HEAD` (`None`: not there).
    pub fn digest(&self, host: &str, repo: &str, reference: &str) -> Option<Digest> {
        self.rt.block_on(async {
            let r = self
                .c
                .head(format!("http://{host}/v2/{repo}/manifests/{reference}"))
                .header("accept", ALL_MANIFESTS)
                .send()
                .await
                .unwrap();
            (r.status() == 200).then(|| {
                Digest::parse(r.headers()["docker-content-digest"].to_str().unwrap()).unwrap()
            })
        })
    }

    /// Does `repo` at `host` have the blob `d`? (a `HEAD`)
    pub fn has_blob(&self, host: &str, repo: &str, d: &Digest) -> bool {
        self.rt.block_on(async {
            self.c
                .head(format!("http://{host}/v2/{repo}/blobs/{d}"))
                .send()
                .await
                .unwrap()
                .status()
                == 200
        })
    }

    /// The tags of `repo` at `host`, sorted (asserting `200`).
    pub fn tags(&self, host: &str, repo: &str) -> Vec<String> {
        let v = self.json(&format!("http://{host}/v2/{repo}/tags/list"), "*/*");
        let mut t: Vec<String> = v["tags"]
            .as_array()
            .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        t.sort();
        t
    }
}
