//! Blob uploads: one request for small blobs, a streamed PATCH for large ones, chunked
//! PATCHes with `Content-Range` when configured, asked for (`OCI-Chunk-Min-Length`) or
//! forced (413). After a failure the upload resumes from the offset the registry reports
//! (`GET` on the upload URL) instead of starting over.
//!
//! Blob bytes come from a synchronous `Read` (a sealed layer in the cache or spool) on a
//! blocking thread, and cross to the HTTP body through a bounded channel: memory per
//! upload is a few hundred KiB whatever the blob size.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use futures_util::stream;
use hoist_image::{BoxRead, Digest, Layer};
use reqwest::Method;
use tokio::sync::mpsc;
use url::Url;

use crate::client::{Body, Client, push_scope};
use crate::error::{Error, ErrorKind, Result};
use crate::repo::Repository;

/// Blobs up to this size go in one request (read into memory once): most configs and
/// small layers. Bigger blobs stream.
pub const DEFAULT_MONOLITHIC_MAX: u64 = 4 << 20;
/// Chunk size after a registry refused a whole body (413) and did not say what it wants.
pub const FALLBACK_CHUNK: u64 = 8 << 20;
/// 401s in a row, without a byte of progress between them, before an upload gives up.
const MAX_UNAUTHORIZED_STREAK: u32 = 3;
/// Size of the pieces handed from the reading thread to the HTTP body.
const PIECE: usize = 256 << 10;
/// Pieces in flight between the reading thread and the body (bounded memory).
const PIECES_IN_FLIGHT: usize = 4;

/// Where a blob's bytes come from.
#[derive(Debug, Clone)]
pub(crate) enum BlobSource {
    /// In memory (configs).
    Bytes(Bytes),
    /// A layer's compressed form, re-openable.
    Layer(Arc<dyn Layer>),
}

impl BlobSource {
    /// The bytes from `offset` on. Re-opening skips by reading. The source checks the
    /// size only: the registry hashes what it receives and refuses to commit the blob
    /// under a digest its bytes do not have (400 DIGEST_INVALID), so a second hash here
    /// would only cost time.
    fn open_at(&self, offset: u64) -> Result<BoxRead> {
        match self {
            BlobSource::Bytes(b) => {
                let b = b.slice((offset as usize).min(b.len())..);
                Ok(Box::new(std::io::Cursor::new(b)))
            }
            BlobSource::Layer(l) => {
                let mut r = l.compressed_for_upload()?;
                if offset > 0 {
                    let skipped = std::io::copy(&mut (&mut r).take(offset), &mut std::io::sink())
                        .map_err(|e| hoist_image::Error::from_io("layer", e))?;
                    if skipped != offset {
                        return Err(hoist_image::Error::new(
                            hoist_image::ErrorKind::SizeMismatch {
                                what: "layer".into(),
                                expected: offset,
                                actual: skipped,
                            },
                        )
                        .into());
                    }
                }
                Ok(r)
            }
        }
    }
}

/// How to upload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UploadOptions {
    pub monolithic_max: u64,
    pub chunk_size: Option<u64>,
}

/// Pieces of a blob read on a blocking thread, from `offset` to the end.
struct Feed {
    rx: mpsc::Receiver<Result<Bytes>>,
    pending: Option<Bytes>,
}

impl Feed {
    fn start(src: BlobSource, offset: u64) -> Feed {
        let (tx, rx) = mpsc::channel(PIECES_IN_FLIGHT);
        tokio::task::spawn_blocking(move || {
            let mut r = match src.open_at(offset) {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            loop {
                let mut buf = BytesMut::zeroed(PIECE);
                let mut n = 0;
                // Fill the piece (fewer, larger sends).
                while n < PIECE {
                    match r.read(&mut buf[n..]) {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx
                                .blocking_send(Err(hoist_image::Error::from_io("layer", e).into()));
                            return;
                        }
                    }
                }
                if n == 0 {
                    return;
                }
                buf.truncate(n);
                if tx.blocking_send(Ok(buf.freeze())).is_err() {
                    return; // the upload gave up on this attempt
                }
            }
        });
        Feed { rx, pending: None }
    }

    /// Up to `max` bytes, or `None` at the end.
    async fn next(&mut self, max: usize) -> Option<Result<Bytes>> {
        let mut b = match self.pending.take() {
            Some(b) => b,
            None => match self.rx.recv().await? {
                Ok(b) => b,
                Err(e) => return Some(Err(e)),
            },
        };
        if b.len() > max {
            self.pending = Some(b.split_off(max));
        }
        Some(Ok(b))
    }
}

/// Where a body leaves the error of its blob source (a read error, a blob shorter or
/// longer than its descriptor says): the HTTP layer only sees that the body broke, and
/// the upload reports this error instead, without retrying, since every retry would
/// read the same bytes.
type SourceError = Arc<std::sync::Mutex<Option<Error>>>;

/// A body of exactly `len` bytes taken from the feed; progress is reported as the
/// absolute blob offset reached.
fn body(
    feed: Arc<tokio::sync::Mutex<Feed>>,
    start: u64,
    len: u64,
    client: Client,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
    source_error: SourceError,
    digest: Digest,
) -> reqwest::Body {
    let s = stream::unfold((feed, 0u64), move |(feed, sent)| {
        let client = client.clone();
        let progress = progress.clone();
        let source_error = source_error.clone();
        let digest = digest.clone();
        async move {
            if sent >= len {
                return None;
            }
            let want = (len - sent).min(PIECE as u64) as usize;
            let next = feed.lock().await.next(want).await;
            let e = match next {
                Some(Ok(b)) => {
                    let sent = sent + b.len() as u64;
                    client
                        .counters()
                        .bytes_sent
                        .fetch_add(b.len() as u64, Ordering::Relaxed);
                    progress(start + sent);
                    return Some((Ok::<Bytes, std::io::Error>(b), (feed, sent)));
                }
                Some(Err(e)) => e,
                None => Error::from(hoist_image::Error::new(
                    hoist_image::ErrorKind::SizeMismatch {
                        what: format!("blob {digest}"),
                        expected: start + len,
                        actual: start + sent,
                    },
                )),
            };
            // The HTTP layer gets a copy of the message; the upload reports `e` itself.
            let io = std::io::Error::other(e.to_string());
            *source_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            Some((Err(io), (feed, len)))
        }
    });
    reqwest::Body::wrap_stream(s)
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
/// Upload a blob of known digest and size into `repo`. `session` is an upload URL the
/// registry already opened (a mount that was refused), else one is started.
pub(crate) async fn upload(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
    size: u64,
    src: BlobSource,
    opts: UploadOptions,
    session: Option<Url>,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
) -> Result<()> {
    let scopes = push_scope(repo);
    let policy = client.retry_policy();
    let mut failures = 0u32;
    let mut session = session;
    let mut chunk = opts.chunk_size;
    'session: loop {
        let (mut location, min_chunk) = match session.take() {
            Some(u) => (u, None),
            None => start(client, repo, &scopes).await?,
        };
        if let Some(m) = min_chunk {
            chunk = Some(chunk.unwrap_or(m).max(m));
        }

        if size <= opts.monolithic_max && chunk.is_none() {
            // One request: PUT the whole blob with the digest.
            let bytes = match &src {
                BlobSource::Bytes(b) => b.clone(),
                BlobSource::Layer(_) => read_all(src.clone(), size).await?,
            };
            let url = with_digest(&location, digest);
            let r = client
                .send(
                    repo,
                    &scopes,
                    Method::PUT,
                    url,
                    &[("content-type", "application/octet-stream".into())],
                    Body::BytesOnce(bytes),
                )
                .await;
            match finish(r, digest).await {
                Ok(()) => {
                    client
                        .counters()
                        .bytes_sent
                        .fetch_add(size, Ordering::Relaxed);
                    progress(size);
                    return Ok(());
                }
                Err(e) if retryable(&e) && failures < policy.retries => {
                    tracing::debug!(%digest, error = %e, "small upload failed; new session");
                    tokio::time::sleep(policy.delay(failures, None)).await;
                    failures += 1;
                    continue 'session;
                }
                Err(e) => return Err(refused(e, digest)),
            }
        }

        let mut offset = 0u64;
        let mut unauthorized_streak = 0u32;
        let mut feed: Option<(u64, Arc<tokio::sync::Mutex<Feed>>)> = None;
        while offset < size {
            // Reuse the feed when it is positioned at `offset`; else start one there.
            let f = match feed.take() {
                Some((at, f)) if at == offset => f,
                _ => Arc::new(tokio::sync::Mutex::new(Feed::start(src.clone(), offset))),
            };
            let len = match chunk {
                Some(c) => c.min(size - offset),
                None => size - offset,
            };
            let mut headers = vec![
                ("content-type", "application/octet-stream".to_string()),
                ("content-length", len.to_string()),
            ];
            // A resumed upload says where its bytes go, as chunks do.
            if chunk.is_some() || offset > 0 {
                headers.push(("content-range", format!("{}-{}", offset, offset + len - 1)));
            }
            let source_error = SourceError::default();
            let b = body(
                f.clone(),
                offset,
                len,
                client.clone(),
                progress.clone(),
                source_error.clone(),
                digest.clone(),
            );
            let r = client
                .send(
                    repo,
                    &scopes,
                    Method::PATCH,
                    location.clone(),
                    &headers,
                    Body::Stream(b),
                )
                .await;
            let e: Error = match r {
                Ok(r) if r.status() == 202 => {
                    let end = range_end(r.header("range"));
                    let next = client.resolve_location(repo, r.what(), r.header("location"));
                    match (end, next) {
                        (Some(end), Ok(next)) if end + 1 == offset + len => {
                            unauthorized_streak = 0;
                            location = next;
                            offset += len;
                            feed = Some((offset, f));
                            continue;
                        }
                        (_, Ok(next)) => {
                            // The registry took a different amount than sent: ask it.
                            location = next;
                            Error::invalid_response(r.what(), "Range does not match the bytes sent")
                        }
                        (_, Err(e)) => e,
                    }
                }
                Ok(r) if r.status() == 413 => {
                    let c = chunk.map_or(FALLBACK_CHUNK, |c| (c / 2).max(1 << 20));
                    tracing::debug!(%digest, chunk = c, "413: switching to chunked upload");
                    chunk = Some(c);
                    r.into_error().await
                }
                Ok(r) => r.into_error().await,
                Err(e) => e,
            };
            if let Some(e) = source_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                return Err(e);
            }
            let recoverable = retryable(&e)
                || e.status() == Some(413)
                || e.status() == Some(416)
                || matches!(e.kind(), ErrorKind::InvalidResponse { .. });
            // A token that expired mid-upload is not a failure of the transfer: the
            // transport re-authenticated already. Only 401s in a row without progress
            // (credentials the registry keeps refusing) end the upload.
            let unauthorized = e.status() == Some(401);
            if unauthorized {
                unauthorized_streak += 1;
            }
            let exhausted = if unauthorized {
                unauthorized_streak > MAX_UNAUTHORIZED_STREAK
            } else {
                failures >= policy.retries
            };
            if !recoverable || exhausted {
                return Err(e);
            }
            if !unauthorized {
                let wait = policy.delay(failures, None);
                failures += 1;
                tokio::time::sleep(wait).await;
            }
            tracing::debug!(%digest, error = %e, "upload interrupted; resuming");
            // Where is the registry? Resume from there.
            match status(client, repo, &scopes, &location).await {
                Ok((Some(at), loc)) if at <= size => {
                    client.counters().resumes.fetch_add(1, Ordering::Relaxed);
                    location = loc;
                    offset = at;
                    progress(offset);
                }
                Ok(_) => {
                    tracing::debug!(%digest, "upload offset unknown; starting over");
                    client.counters().restarts.fetch_add(1, Ordering::Relaxed);
                    progress(0);
                    continue 'session;
                }
                Err(e) if e.is_temporary() => return Err(e),
                Err(e) => {
                    // Some registries (distribution) cancel a session whose bytes do not
                    // match its state token after a broken request: start a new one.
                    tracing::debug!(%digest, error = %e, "upload session gone; starting over");
                    client.counters().restarts.fetch_add(1, Ordering::Relaxed);
                    progress(0);
                    continue 'session;
                }
            }
        }
        let r = client
            .send(
                repo,
                &scopes,
                Method::PUT,
                with_digest(&location, digest),
                &[("content-length", "0".into())],
                Body::Empty,
            )
            .await;
        match finish(r, digest).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_not_found() || e.status() == Some(400) => {
                // A retried commit whose first try landed: the blob is there.
                if client.blob_exists(repo, digest).await.unwrap_or(false) {
                    return Ok(());
                }
                return Err(refused(e, digest));
            }
            Err(e) => return Err(e),
        }
    }
}

/// A commit the registry refused because the bytes do not hash to the digest: said as
/// what it means for the user (the source's copy of the blob is corrupt), naming the blob.
fn refused(e: Error, digest: &Digest) -> Error {
    if e.has_code("DIGEST_INVALID") {
        return Error::new(ErrorKind::InvalidInput {
            what: format!("blob {digest}"),
            reason: "the registry refused it (DIGEST_INVALID): the bytes sent do not hash to \
                     this digest, so the source's copy is corrupt"
                .into(),
        });
    }
    e
}

fn retryable(e: &Error) -> bool {
    e.is_temporary() || e.status() == Some(401)
}

async fn finish(r: Result<crate::client::Response>, digest: &Digest) -> Result<()> {
    let r = r?.expect(&[201, 204]).await?;
    if let Some(d) = r.header("docker-content-digest")
        && let Ok(d) = Digest::parse(d)
        && &d != digest
    {
        return Err(Error::invalid_response(
            r.what(),
            format!("registry committed {d}, expected {digest}"),
        ));
    }
    Ok(())
}

/// `POST /v2/<name>/blobs/uploads/`: a session URL and the registry's minimum chunk.
async fn start(
    client: &Client,
    repo: &Repository,
    scopes: &[String],
) -> Result<(Url, Option<u64>)> {
    let url = client.url(repo, "blobs/uploads/")?;
    let r = client
        .send(
            repo,
            scopes,
            Method::POST,
            url,
            &[("content-length", "0".into())],
            Body::Empty,
        )
        .await?
        .expect(&[202])
        .await?;
    let min = r
        .header("oci-chunk-min-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&v| v > 0);
    let loc = client.resolve_location(repo, r.what(), r.header("location"))?;
    Ok((loc, min))
}

/// `GET` the upload URL: how many bytes the registry holds, and the URL to continue at.
async fn status(
    client: &Client,
    repo: &Repository,
    scopes: &[String],
    location: &Url,
) -> Result<(Option<u64>, Url)> {
    let r = client
        .send(
            repo,
            scopes,
            Method::GET,
            location.clone(),
            &[],
            Body::Empty,
        )
        .await?
        .expect(&[204, 200])
        .await?;
    let next = client
        .resolve_location(repo, r.what(), r.header("location"))
        .unwrap_or_else(|_| location.clone());
    // `0-0` means "0 bytes" to some registries and "1 byte" to others: unknown.
    let at = match range_end(r.header("range")) {
        Some(0) => None,
        Some(e) => Some(e + 1),
        None if r.header("range").is_none() => Some(0),
        None => None,
    };
    Ok((at, next))
}

/// The end of a `Range: 0-<end>` header (some registries send `bytes=0-<end>`).
fn range_end(h: Option<&str>) -> Option<u64> {
    let h = h?.trim();
    let h = h.strip_prefix("bytes=").unwrap_or(h);
    let (a, b) = h.split_once('-')?;
    let (a, b) = (a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?);
    if a != 0 || b < a {
        return None;
    }
    Some(b)
}

fn with_digest(location: &Url, digest: &Digest) -> Url {
    let mut u = location.clone();
    u.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    u
}

async fn read_all(src: BlobSource, size: u64) -> Result<Bytes> {
    tokio::task::spawn_blocking(move || {
        let mut r = src.open_at(0)?;
        let mut buf = Vec::with_capacity(size as usize);
        (&mut r)
            .take(size + 1)
            .read_to_end(&mut buf)
            .map_err(|e| hoist_image::Error::from_io("layer", e))?;
        // Read to EOF through the verifying reader, so the digest is checked.
        let mut extra = [0u8; 1];
        let n = r
            .read(&mut extra)
            .map_err(|e| hoist_image::Error::from_io("layer", e))?;
        if buf.len() as u64 != size || n != 0 {
            return Err(Error::from(hoist_image::Error::new(
                hoist_image::ErrorKind::SizeMismatch {
                    what: "layer".into(),
                    expected: size,
                    actual: buf.len() as u64 + n as u64,
                },
            )));
        }
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(|e| Error::io("reading layer", std::io::Error::other(e.to_string())))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_table() {
        for (h, want) in [
            (Some("0-0"), Some(0)),
            (Some("0-1023"), Some(1023)),
            (Some("bytes=0-99"), Some(99)),
            (Some(" 0-5 "), Some(5)),
            (Some("5-9"), None),
            (Some("0-"), None),
            (Some("x"), None),
            (None, None),
        ] {
            assert_eq!(range_end(h), want, "{h:?}");
        }
    }
}
