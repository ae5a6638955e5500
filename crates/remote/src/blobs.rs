//! Blob operations: is it there (`HEAD`), mount it from another repository, and the one
//! download path every blob read goes through ([`Client::download`]): streamed, resumed
//! with `Range` after a cut, size capped as it streams, digest checked at the end.

use std::future::Future;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use hoist_image::Digest;
use reqwest::Method;
use url::Url;

use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::transport::{Body, Client, pull_scope, push_scope};

/// A blob's presence, as told by a HEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    Present,
    Missing,
}

/// The result of a cross-repository mount request.
#[derive(Debug)]
pub(crate) enum Mount {
    Mounted,
    /// The registry did not mount; it opened an upload session at this URL instead.
    Started(Url),
}

/// Whether [`Client::download`] checks what it hands over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Hash the bytes and check the digest (and the size, when known) at the end: a
    /// mismatch is an error, and the caller must discard what the sink got.
    Digest,
    /// Check the size only: the caller hashes the bytes itself (a verifying reader).
    SizeOnly,
}

impl Client {
    /// Is the blob in the repository? (`HEAD /v2/<name>/blobs/<digest>`)
    pub(crate) async fn head_blob(&self, repo: &Repository, digest: &Digest) -> Result<Presence> {
        let url = self.url(repo, &format!("blobs/{digest}"))?;
        let r = self
            .send(repo, &push_scope(repo), Method::HEAD, url, &[], Body::Empty)
            .await?;
        match r.status() {
            200 => Ok(Presence::Present),
            404 => Ok(Presence::Missing),
            _ => Err(r.into_error().await),
        }
    }

    /// True when the blob exists in the repository.
    pub async fn blob_exists(&self, repo: &Repository, digest: &Digest) -> Result<bool> {
        Ok(self.head_blob(repo, digest).await? == Presence::Present)
    }

    /// Try a cross-repository mount of `digest` from `from` into `repo`.
    pub(crate) async fn mount(
        &self,
        repo: &Repository,
        digest: &Digest,
        from: &str,
    ) -> Result<Mount> {
        let mut url = self.url(repo, "blobs/uploads/")?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from);
        let scopes = vec![
            format!("repository:{}:pull,push", repo.name()),
            format!("repository:{from}:pull"),
        ];
        let r = self
            .send(repo, &scopes, Method::POST, url, &[], Body::Empty)
            .await?
            .expect(&[201, 202])
            .await?;
        if r.status() == 201 {
            return Ok(Mount::Mounted);
        }
        let loc = self.resolve_location(repo, r.what(), r.header("location"))?;
        Ok(Mount::Started(loc))
    }

    /// Download a blob into `sink`, piece by piece: resumed with `Range: bytes=N-` after a
    /// temporary failure in the middle (up to the client's retry count; a registry that
    /// ignores `Range` has the bytes it sends again skipped), refused as soon as it runs
    /// over `size`, and checked as `verify` says at the end. Returns the byte count.
    pub async fn download<F, Fut>(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: Option<u64>,
        verify: Verify,
        sink: F,
    ) -> Result<u64>
    where
        F: FnMut(Bytes) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        self.download_from(repo, digest, size, verify, 0, sink)
            .await
    }

    /// [`Client::download`] from byte `start` on (a `Range` request from the first
    /// request): the sink gets the bytes after `start`, and the byte count returned
    /// includes `start`. A download that does not start at 0 cannot check the digest:
    /// `verify` must be [`Verify::SizeOnly`] then.
    pub(crate) async fn download_from<F, Fut>(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: Option<u64>,
        verify: Verify,
        start: u64,
        mut sink: F,
    ) -> Result<u64>
    where
        F: FnMut(Bytes) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        debug_assert!(start == 0 || verify == Verify::SizeOnly);
        let url = self.url(repo, &format!("blobs/{digest}"))?;
        let policy = self.retry_policy();
        let mut hasher = (verify == Verify::Digest).then(|| digest.algorithm().hasher());
        let mut got = start;
        let mut resumes = 0u32;
        let size_error = |expected, actual| -> Error {
            hoist_image::Error::new(hoist_image::ErrorKind::SizeMismatch {
                what: format!("blob {digest}"),
                expected,
                actual,
            })
            .into()
        };
        loop {
            let headers = if got > 0 {
                vec![("range", format!("bytes={got}-"))]
            } else {
                Vec::new()
            };
            let sent = self
                .send(
                    repo,
                    &pull_scope(repo),
                    Method::GET,
                    url.clone(),
                    &headers,
                    Body::Empty,
                )
                .await;
            // A failure to even start a resumed request is worth another try too.
            let r = match sent {
                Ok(r) => r.expect(&[200, 206]).await,
                Err(e) => Err(e),
            };
            let mut r = match r {
                Ok(r) => r,
                Err(e) if got > 0 && e.is_temporary() && resumes < policy.retries => {
                    tracing::debug!(%digest, error = %e, "resume request failed; retrying");
                    tokio::time::sleep(policy.delay(resumes, None)).await;
                    resumes += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut skip = 0u64;
            if got > 0 {
                if r.status() == 206 {
                    let start = r
                        .header("content-range")
                        .and_then(crate::range::content_range_start);
                    if start != Some(got) {
                        return Err(Error::invalid_response(
                            r.what(),
                            format!("asked for bytes from {got}, got Content-Range {start:?}"),
                        ));
                    }
                } else {
                    // The registry ignored Range: skip what we have.
                    skip = got;
                }
            }
            let outcome: Result<()> = loop {
                match r.chunk().await {
                    Ok(Some(mut c)) => {
                        if skip > 0 {
                            let k = (skip as usize).min(c.len());
                            c = c.slice(k..);
                            skip -= k as u64;
                            if c.is_empty() {
                                continue;
                            }
                        }
                        got += c.len() as u64;
                        if let Some(s) = size
                            && got > s
                        {
                            return Err(size_error(s, got));
                        }
                        if let Some(h) = hasher.as_mut() {
                            h.update(&c);
                        }
                        sink(c).await?;
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            let short = size.is_some_and(|s| got < s);
            match outcome {
                Ok(()) if !short => break,
                Ok(()) if resumes < policy.retries => {
                    tracing::debug!(%digest, got, "body ended early; resuming");
                }
                Ok(()) => return Err(size_error(size.unwrap_or(0), got)),
                Err(e) if e.is_temporary() && resumes < policy.retries => {
                    tracing::debug!(%digest, got, error = %e, "download cut; resuming with Range");
                }
                Err(e) => return Err(e),
            }
            self.counters()
                .downloads_resumed
                .fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(policy.delay(resumes, None)).await;
            resumes += 1;
        }
        if let Some(h) = hasher {
            let actual = h.finish();
            if &actual != digest {
                return Err(
                    hoist_image::Error::new(hoist_image::ErrorKind::DigestMismatch {
                        expected: digest.clone(),
                        actual,
                        bytes_read: got,
                    })
                    .into(),
                );
            }
        }
        Ok(got)
    }

    /// Read a small blob (a config) whole, verified, refusing more than `cap` bytes.
    pub async fn read_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        cap: u64,
    ) -> Result<Bytes> {
        if size > cap {
            return Err(Error::invalid_response(
                format!("blob {digest}"),
                format!("{size} bytes is over the {cap} byte limit"),
            ));
        }
        let mut buf = Vec::with_capacity(size as usize);
        self.download(repo, digest, Some(size), Verify::Digest, |c| {
            buf.extend_from_slice(&c);
            std::future::ready(Ok(()))
        })
        .await?;
        Ok(buf.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::RetryPolicy;
    use hoist_testkit::stub::{Reply, Stub};
    use std::sync::Arc;
    use std::time::Duration;

    fn client() -> Client {
        Client::builder()
            .retry(RetryPolicy {
                retries: 3,
                base: Duration::from_millis(1),
                max: Duration::from_millis(5),
            })
            .build()
            .unwrap()
    }

    fn repo(stub: &Stub) -> Repository {
        Repository::new(stub.host(), "a/b").unwrap()
    }

    /// A registry serving `data` at any blob path: whole, or from the `Range` start; the
    /// first full answer is cut after `cut` bytes when given. `honour_range: false` plays a
    /// registry that ignores `Range`.
    fn blob_server(data: Vec<u8>, cut: Option<usize>, honour_range: bool) -> Stub {
        let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        Stub::start(move |req| {
            if req.route() == "/v2/" {
                return Reply::status(200);
            }
            let first = served.fetch_add(1, Ordering::SeqCst) == 0;
            let from = req
                .header("range")
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|r| r.parse::<usize>().ok());
            match from {
                Some(f) if honour_range => Reply::status(206)
                    .header(
                        "content-range",
                        format!("bytes {f}-{}/{}", data.len() - 1, data.len()),
                    )
                    .body(data[f..].to_vec()),
                _ => {
                    let r = Reply::status(200).body(data.clone());
                    match cut {
                        Some(n) if first => r.cut_after(n),
                        _ => r,
                    }
                }
            }
        })
    }

    async fn fetch(c: &Client, stub: &Stub, d: &Digest, size: Option<u64>) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        c.download(&repo(stub), d, size, Verify::Digest, |b| {
            out.extend_from_slice(&b);
            std::future::ready(Ok(()))
        })
        .await?;
        Ok(out)
    }

    #[tokio::test]
    async fn a_cut_download_resumes_from_its_offset() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let d = Digest::sha256(&data);
        let stub = blob_server(data.clone(), Some(70_000), true);
        let c = client();
        assert_eq!(
            fetch(&c, &stub, &d, Some(data.len() as u64)).await.unwrap(),
            data
        );
        let gets: Vec<_> = stub
            .requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.route() != "/v2/")
            .collect();
        assert_eq!(gets.len(), 2, "{gets:?}");
        let range = gets[1].header("range").unwrap();
        let from: u64 = range["bytes=".len()..range.len() - 1].parse().unwrap();
        assert!(from > 0 && from <= 70_000, "{range}");
        assert_eq!(c.stats().downloads_resumed, 1);
    }

    #[tokio::test]
    async fn a_registry_ignoring_range_has_its_repeat_skipped() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 13) as u8).collect();
        let d = Digest::sha256(&data);
        let stub = blob_server(data.clone(), Some(30_000), false);
        let c = client();
        assert_eq!(
            fetch(&c, &stub, &d, Some(data.len() as u64)).await.unwrap(),
            data
        );
        let resumed = stub
            .requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.header("range").is_some())
            .count();
        assert_eq!((resumed, c.stats().downloads_resumed), (1, 1));
    }

    #[tokio::test]
    async fn wrong_bytes_and_sizes_are_errors() {
        let data = b"the blob".to_vec();
        let stub = blob_server(data.clone(), None, true);
        let c = client();
        // Another digest: a digest mismatch naming both.
        let other = Digest::sha256(b"something else");
        let e = fetch(&c, &stub, &other, None).await.unwrap_err();
        assert!(e.to_string().contains(&other.to_string()), "{e}");
        // More bytes than the descriptor says: refused as they arrive.
        let d = Digest::sha256(&data);
        let e = fetch(&c, &stub, &d, Some(3)).await.unwrap_err();
        assert!(e.to_string().contains("size"), "{e}");
        // Fewer, always: retried within the budget, then a size error.
        let e = fetch(&c, &stub, &d, Some(100)).await.unwrap_err();
        assert!(e.to_string().contains("size"), "{e}");
        // Size-only: the caller hashes; a wrong digest goes through.
        let n = c
            .download(&repo(&stub), &other, Some(8), Verify::SizeOnly, |_| {
                std::future::ready(Ok(()))
            })
            .await
            .unwrap();
        assert_eq!(n, 8);
        // A config over the cap is refused before any request.
        let before = stub.requests().len();
        let e = c.read_blob(&repo(&stub), &d, 100, 10).await.unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
        assert_eq!(stub.requests().len(), before);
    }

    #[tokio::test]
    async fn head_and_mount_answers() {
        let stub = Stub::start(|req| match (req.method.as_str(), req.route()) {
            ("GET", "/v2/") => Reply::status(200),
            ("HEAD", p) if p.ends_with(&"1".repeat(64)) => Reply::status(200),
            ("HEAD", _) => Reply::status(404),
            ("POST", _) if req.query("from").as_deref() == Some("x/held") => Reply::status(201),
            ("POST", _) => Reply::status(202).header("location", "/v2/a/b/blobs/uploads/session-1"),
            _ => Reply::status(500),
        });
        let c = client();
        let r = repo(&stub);
        let there = Digest::parse(&format!("sha256:{}", "1".repeat(64))).unwrap();
        let gone = Digest::parse(&format!("sha256:{}", "2".repeat(64))).unwrap();
        assert!(c.blob_exists(&r, &there).await.unwrap());
        assert!(!c.blob_exists(&r, &gone).await.unwrap());
        assert!(matches!(
            c.mount(&r, &gone, "x/held").await.unwrap(),
            Mount::Mounted
        ));
        match c.mount(&r, &gone, "x/other").await.unwrap() {
            Mount::Started(u) => assert!(u.as_str().ends_with("/v2/a/b/blobs/uploads/session-1")),
            Mount::Mounted => panic!("expected a session"),
        }
        let post = stub
            .requests()
            .into_iter()
            .find(|s| s.method == "POST")
            .unwrap();
        assert_eq!(post.query("mount"), Some(gone.to_string()));
    }
}
