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

use crate::blobs::Verify;
use crate::error::{Error, ErrorKind, Result};
use crate::range;
use crate::repo::Repository;
use crate::sessions::{SessionId, Sessions};
use crate::source::Remote;
use crate::transport::{Body, Client, Response, push_scope};

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
    /// A blob of a registry repository, streamed from there (from an offset with
    /// `Range`), its digest checked when read from the start.
    Remote(Arc<Remote>, Box<hoist_image::Descriptor>),
}

impl BlobSource {
    /// The repository of `registry` the blob can be mounted from: a registry layer's
    /// origin on the same registry.
    pub(crate) fn origin_in(&self, registry: &str) -> Option<String> {
        let origin = match self {
            BlobSource::Bytes(_) => return None,
            BlobSource::Layer(l) => Repository::from_reference(&l.origin()?),
            BlobSource::Remote(r, _) => r.repo().clone(),
        };
        (origin.registry() == registry).then(|| origin.name().to_string())
    }

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
            BlobSource::Remote(remote, d) => remote.open_blob_at(d, offset, Verify::Digest),
        }
    }
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
    progress: OnProgress,
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

/// Reports how many bytes of the blob the registry holds (may go back after a restart).
pub(crate) type OnProgress = Arc<dyn Fn(u64) + Send + Sync>;

/// Told where the upload's session is (its URL, when opened and each time it moves) and
/// when it is over (`None`: committed), so a caller can keep it for a later run.
pub(crate) type OnSession = Arc<dyn Fn(Option<&Url>) + Send + Sync>;

/// One blob upload into one repository, as a state machine: [`Upload::run`] moves it
/// through [`State`]s, one registry request per step, until the blob is committed or the
/// failure is one more attempt cannot fix.
pub(crate) struct Upload<'a> {
    client: &'a Client,
    repo: &'a Repository,
    digest: &'a Digest,
    size: u64,
    src: BlobSource,
    scopes: Vec<String>,
    monolithic_max: u64,
    /// The chunk size in use: asked for, required by the registry, or forced by a 413.
    chunk: Option<u64>,
    progress: OnProgress,
    /// Failed attempts so far (the retry budget is the client's).
    failures: u32,
    /// 401s in a row without progress (a token that expired mid-upload is not a failure).
    unauthorized_streak: u32,
    /// The feed of blob bytes positioned at an offset, reused by the next PATCH.
    feed: Option<(u64, Arc<tokio::sync::Mutex<Feed>>)>,
    /// A request is being sent again: it says where its bytes go (`Content-Range`).
    again: bool,
    /// Where open sessions are recorded until committed (see [`Sessions`]).
    sessions: Sessions,
    /// The session in use.
    session: Option<SessionId>,
    /// Told of the session's URL as it changes.
    on_session: Option<OnSession>,
}

/// Where an [`Upload`] is.
#[derive(Debug)]
enum State {
    /// Open a session, or take the one the registry opened when it refused a mount.
    Open(Option<(Url, SessionId)>),
    /// Ask the registry what a session an earlier run left holds, and go on from there
    /// (or open a new one when it is gone).
    Probe(Url),
    /// Send the whole blob in the `PUT` that commits it.
    Whole(Url),
    /// Send the bytes from `offset` in a `PATCH`.
    Patch { location: Url, offset: u64 },
    /// The `PATCH` of the bytes from `offset` failed: ask the registry what it holds, and
    /// resume or start over.
    Resume {
        location: Url,
        offset: u64,
        error: Error,
    },
    /// Every byte is sent: commit with the digest.
    Commit(Url),
    /// The blob is in the repository.
    Done,
}

impl<'a> Upload<'a> {
    /// An upload of the blob `digest` of `size` bytes from `src` into `repo`.
    pub(crate) fn new(
        client: &'a Client,
        repo: &'a Repository,
        digest: &'a Digest,
        size: u64,
        src: BlobSource,
    ) -> Upload<'a> {
        Upload {
            client,
            repo,
            digest,
            size,
            src,
            scopes: push_scope(repo),
            monolithic_max: DEFAULT_MONOLITHIC_MAX,
            chunk: None,
            progress: Arc::new(|_| {}),
            failures: 0,
            unauthorized_streak: 0,
            feed: None,
            again: false,
            sessions: Sessions::default(),
            session: None,
            on_session: None,
        }
    }

    /// Tell `f` where the session is, as it changes (see [`OnSession`]).
    pub(crate) fn on_session(mut self, f: OnSession) -> Self {
        self.on_session = Some(f);
        self
    }

    /// Record the sessions in `sessions` until committed (the push cancels the rest).
    pub(crate) fn sessions(mut self, sessions: &Sessions) -> Self {
        self.sessions = sessions.clone();
        self
    }

    /// Blobs up to this size go in one request.
    pub(crate) fn monolithic_max(mut self, n: u64) -> Self {
        self.monolithic_max = n;
        self
    }

    /// Always send chunks of this size (`Content-Range` PATCHes).
    pub(crate) fn chunk_size(mut self, n: Option<u64>) -> Self {
        self.chunk = n;
        self
    }

    /// Told how many bytes the registry holds as they go.
    pub(crate) fn progress(mut self, p: OnProgress) -> Self {
        self.progress = p;
        self
    }

    /// Run to the end. `session` is an upload session the registry already opened (a
    /// mount it refused), recorded in the [`Sessions`] given, else one is started. A
    /// session abandoned for a new one is cancelled at once.
    pub(crate) async fn run(self, session: Option<(Url, SessionId)>) -> Result<()> {
        self.drive(State::Open(session)).await
    }

    /// Run to the end, continuing the session at `url` an earlier run left (resumed
    /// from the offset the registry reports; a new session when it is gone).
    pub(crate) async fn continue_at(self, url: Url) -> Result<()> {
        self.drive(State::Probe(url)).await
    }

    async fn drive(mut self, first: State) -> Result<()> {
        let _busy = self.sessions.busy()?;
        let mut state = first;
        loop {
            tracing::trace!(digest = %self.digest, ?state, "upload step");
            state = match state {
                State::Open(session) => self.open(session).await?,
                State::Probe(url) => self.probe(url).await?,
                State::Whole(location) => self.whole(location).await?,
                State::Patch { location, offset } => self.patch(location, offset).await?,
                State::Resume {
                    location,
                    offset,
                    error,
                } => self.resume(location, offset, error).await?,
                State::Commit(location) => self.commit(location).await?,
                State::Done => return Ok(()),
            };
        }
    }

    /// Wait before another attempt, or give up with `e` when the budget is spent.
    async fn retry_or(&mut self, e: Error) -> Result<()> {
        let policy = self.client.retry_policy();
        if self.failures >= policy.retries {
            return Err(e);
        }
        tokio::time::sleep(policy.delay(self.failures, None)).await;
        self.failures += 1;
        Ok(())
    }

    /// The session continues at `url`.
    fn moved(&self, url: &Url) {
        if let Some(id) = self.session {
            self.sessions.moved(id, url);
        }
        if let Some(f) = &self.on_session {
            f(Some(url));
        }
    }

    /// The session is committed: nothing to cancel.
    fn committed(&mut self) {
        if let Some(id) = self.session.take() {
            self.sessions.closed(id);
        }
        if let Some(f) = &self.on_session {
            f(None);
        }
    }

    async fn probe(&mut self, url: Url) -> Result<State> {
        match status(self.client, self.repo, &self.scopes, &url).await {
            Ok((Some(at), next)) if at <= self.size => {
                self.session = Some(self.sessions.adopt(self.repo, &next));
                self.again = at > 0;
                if at > 0 {
                    self.client
                        .counters()
                        .resumes
                        .fetch_add(1, Ordering::Relaxed);
                }
                self.moved(&next);
                (self.progress)(at);
                tracing::debug!(digest = %self.digest, at, "upload of an earlier run resumed");
                Ok(State::Patch {
                    location: next,
                    offset: at,
                })
            }
            Ok(_) => Ok(State::Open(None)),
            Err(e) if e.is_temporary() => Err(e),
            Err(e) => {
                tracing::debug!(digest = %self.digest, error = %e, "upload of an earlier run gone; starting over");
                Ok(State::Open(None))
            }
        }
    }

    async fn open(&mut self, session: Option<(Url, SessionId)>) -> Result<State> {
        self.feed = None;
        self.unauthorized_streak = 0;
        self.again = false;
        if let Some(old) = self.session.take() {
            self.sessions.cancel(self.client, old).await;
        }
        let location = match session {
            Some((u, id)) => {
                self.session = Some(id);
                u
            }
            None => {
                let (c, r, s) = (self.client.clone(), self.repo.clone(), self.scopes.clone());
                let post = async move {
                    let (url, min) = start(&c, &r, &s).await?;
                    Ok(((url.clone(), min), Some(url)))
                };
                let opening = self.sessions.open(self.repo, post);
                // A blob that goes in one request is read (from its registry, or the
                // disk) while the session opens, not after: a round trip less on every
                // small blob's way. Its bytes serve every later attempt.
                let ((u, min_chunk), id) = if self.whole_read_ahead() {
                    let (opened, read) =
                        tokio::join!(opening, read_all(self.src.clone(), self.size));
                    let (value, id) = opened?;
                    self.session = id;
                    self.src = BlobSource::Bytes(read?);
                    (value, id)
                } else {
                    opening.await?
                };
                self.session = id;
                if let Some(m) = min_chunk {
                    self.chunk = Some(self.chunk.unwrap_or(m).max(m));
                }
                u
            }
        };
        if let Some(f) = &self.on_session {
            f(Some(&location));
        }
        Ok(
            if self.size <= self.monolithic_max && self.chunk.is_none() {
                State::Whole(location)
            } else {
                State::Patch {
                    location,
                    offset: 0,
                }
            },
        )
    }

    /// Is this blob put in one request, and not yet in memory?
    fn whole_read_ahead(&self) -> bool {
        self.size <= self.monolithic_max
            && self.chunk.is_none()
            && !matches!(self.src, BlobSource::Bytes(_))
    }

    async fn whole(&mut self, location: Url) -> Result<State> {
        let bytes = match &self.src {
            BlobSource::Bytes(b) => b.clone(),
            BlobSource::Layer(_) | BlobSource::Remote(..) => {
                read_all(self.src.clone(), self.size).await?
            }
        };
        let r = self
            .client
            .send(
                self.repo,
                &self.scopes,
                Method::PUT,
                with_digest(&location, self.digest),
                &[("content-type", "application/octet-stream".into())],
                Body::BytesOnce(bytes),
            )
            .await;
        match finish(r, self.digest).await {
            Ok(()) => {
                self.committed();
                self.client
                    .counters()
                    .bytes_sent
                    .fetch_add(self.size, Ordering::Relaxed);
                (self.progress)(self.size);
                Ok(State::Done)
            }
            Err(e) if retryable(&e) => {
                tracing::debug!(digest = %self.digest, error = %e, "small upload failed; new session");
                self.retry_or(e).await?;
                Ok(State::Open(None))
            }
            Err(e) => Err(refused(e, self.digest)),
        }
    }

    async fn patch(&mut self, mut location: Url, offset: u64) -> Result<State> {
        if offset >= self.size {
            return Ok(State::Commit(location));
        }
        // Reuse the feed when it is positioned at `offset`; else start one there.
        let feed = match self.feed.take() {
            Some((at, f)) if at == offset => f,
            _ => Arc::new(tokio::sync::Mutex::new(Feed::start(
                self.src.clone(),
                offset,
            ))),
        };
        let len = match self.chunk {
            Some(c) => c.min(self.size - offset),
            None => self.size - offset,
        };
        let mut headers = vec![
            ("content-type", "application/octet-stream".to_string()),
            ("content-length", len.to_string()),
        ];
        // A resumed upload says where its bytes go, as chunks do.
        if self.chunk.is_some() || offset > 0 || self.again {
            headers.push(("content-range", format!("{}-{}", offset, offset + len - 1)));
        }
        let source_error = SourceError::default();
        let b = body(
            feed.clone(),
            offset,
            len,
            self.client.clone(),
            self.progress.clone(),
            source_error.clone(),
            self.digest.clone(),
        );
        let r = self
            .client
            .send(
                self.repo,
                &self.scopes,
                Method::PATCH,
                location.clone(),
                &headers,
                Body::Stream(b),
            )
            .await;
        let error: Error = match r {
            Ok(r) if r.status() == 202 => {
                let end = range_end(r.header("range"));
                let next = self
                    .client
                    .resolve_location(self.repo, r.what(), r.header("location"));
                match (end, next) {
                    (Some(end), Ok(next)) if end.checked_add(1) == Some(offset + len) => {
                        self.unauthorized_streak = 0;
                        self.moved(&next);
                        self.feed = Some((offset + len, feed));
                        return Ok(State::Patch {
                            location: next,
                            offset: offset + len,
                        });
                    }
                    (_, Ok(next)) => {
                        // The registry took a different amount than sent: ask it.
                        self.moved(&next);
                        location = next;
                        Error::invalid_response(r.what(), "Range does not match the bytes sent")
                    }
                    (_, Err(e)) => e,
                }
            }
            Ok(r) if r.status() == 413 => {
                let c = self.chunk.map_or(FALLBACK_CHUNK, |c| (c / 2).max(1 << 20));
                tracing::debug!(digest = %self.digest, chunk = c, "413: switching to chunked upload");
                self.chunk = Some(c);
                r.into_error().await
            }
            Ok(r) => r.into_error().await,
            Err(e) => e,
        };
        // A source that broke (a read error, a blob of another size) ends the upload with
        // its own error: every retry would read the same bytes.
        if let Some(e) = source_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(e);
        }
        Ok(State::Resume {
            location,
            offset,
            error,
        })
    }

    async fn resume(&mut self, location: Url, offset: u64, e: Error) -> Result<State> {
        let recoverable = retryable(&e)
            || e.status() == Some(413)
            || e.status() == Some(416)
            || matches!(e.kind(), ErrorKind::InvalidResponse { .. });
        if !recoverable {
            return Err(e);
        }
        // A token that expired mid-upload is not a failure of the transfer: the transport
        // re-authenticated already. Only 401s in a row without progress (credentials the
        // registry keeps refusing) end the upload.
        self.again = true;
        if e.status() == Some(401) {
            self.unauthorized_streak += 1;
            if self.unauthorized_streak > MAX_UNAUTHORIZED_STREAK {
                return Err(e);
            }
            // Refused before a byte was taken, and the transport holds a new token now:
            // the same request again, at the same offset.
            tracing::debug!(digest = %self.digest, "upload unauthorized; sending again");
            return Ok(State::Patch { location, offset });
        }
        self.retry_or(e).await?;
        tracing::debug!(digest = %self.digest, "upload interrupted; resuming");
        let restart = |this: &mut Self| {
            this.client
                .counters()
                .restarts
                .fetch_add(1, Ordering::Relaxed);
            (this.progress)(0);
            State::Open(None)
        };
        // Where is the registry? Resume from there.
        match status(self.client, self.repo, &self.scopes, &location).await {
            Ok((Some(at), next)) if at <= self.size => {
                self.moved(&next);
                self.client
                    .counters()
                    .resumes
                    .fetch_add(1, Ordering::Relaxed);
                (self.progress)(at);
                Ok(State::Patch {
                    location: next,
                    offset: at,
                })
            }
            Ok(_) => {
                tracing::debug!(digest = %self.digest, "upload offset unknown; starting over");
                Ok(restart(self))
            }
            Err(e) if e.is_temporary() => Err(e),
            Err(e) => {
                // Some registries (distribution) cancel a session whose bytes do not
                // match its state token after a broken request: start a new one.
                tracing::debug!(digest = %self.digest, error = %e, "upload session gone; starting over");
                Ok(restart(self))
            }
        }
    }

    async fn commit(&mut self, location: Url) -> Result<State> {
        let r = self
            .client
            .send(
                self.repo,
                &self.scopes,
                Method::PUT,
                with_digest(&location, self.digest),
                &[("content-length", "0".into())],
                Body::Empty,
            )
            .await;
        match finish(r, self.digest).await {
            Ok(()) => {
                self.committed();
                Ok(State::Done)
            }
            Err(e) if e.is_not_found() || e.status() == Some(400) => {
                // A retried commit whose first try landed: the blob is there.
                if self
                    .client
                    .blob_exists(self.repo, self.digest)
                    .await
                    .unwrap_or(false)
                {
                    self.committed();
                    return Ok(State::Done);
                }
                Err(refused(e, self.digest))
            }
            Err(e) => Err(e),
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

/// Check the answer to a commit (`PUT ...?digest=`): created, under the digest sent.
pub(crate) async fn finish(r: Result<Response>, digest: &Digest) -> Result<()> {
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
pub(crate) async fn start(
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
        Some(e) => e.checked_add(1),
        None if r.header("range").is_none() => Some(0),
        None => None,
    };
    Ok((at, next))
}

/// The end of an upload's `Range` answer, if it has one of the forms registries use.
fn range_end(h: Option<&str>) -> Option<u64> {
    h.and_then(range::upload_range_end)
}

/// `DELETE` an upload session nobody will finish (a mount the registry answered with a
/// session instead); failures are only logged, the registry expires sessions anyway.
pub(crate) async fn cancel(client: &Client, repo: &Repository, location: Url) {
    let r = client
        .send(
            repo,
            &push_scope(repo),
            Method::DELETE,
            location,
            &[],
            Body::Empty,
        )
        .await;
    if let Err(e) = r {
        tracing::debug!(error = %e, "upload session not cancelled");
    }
}

/// The session URL with `?digest=` added (the commit).
pub(crate) fn with_digest(location: &Url, digest: &Digest) -> Url {
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
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::retry::RetryPolicy;
    use hoist_testkit::stub::{Reply, Stub};

    /// How the test registry misbehaves.
    #[derive(Debug, Default, Clone)]
    struct Faults {
        /// Ask for chunks of at least this size.
        min_chunk: Option<u64>,
        /// Refuse (413) PATCH bodies over this size.
        refuse_over: Option<usize>,
        /// PATCHes that keep half their body and answer 500.
        break_patches: usize,
        /// Status GETs answered 404 (the session is gone).
        lose_sessions: usize,
        /// PATCH and status answers claim `Range: 0-<u64::MAX>`.
        impossible_range: bool,
    }

    /// The upload half of a registry: sessions that collect bytes (checking
    /// `Content-Range`), status GETs, commits that check the digest, HEADs.
    fn registry(faults: Faults) -> Stub {
        let state = Mutex::new((faults, HashMap::<String, Vec<u8>>::new(), Vec::new(), 0u32));
        Stub::start(move |req| {
            let mut guard = state.lock().unwrap();
            let (faults, sessions, committed, next) = &mut *guard;
            let route = req.route().to_string();
            let impossible = faults.impossible_range;
            let range = |n: usize| match n {
                _ if impossible => format!("0-{}", u64::MAX),
                0 => "0-0".to_string(),
                n => format!("0-{}", n - 1),
            };
            match (req.method.as_str(), route.as_str()) {
                ("GET", "/v2/") => Reply::status(200),
                ("POST", "/v2/r/blobs/uploads/") => {
                    *next += 1;
                    let id = format!("s{next}");
                    sessions.insert(id.clone(), Vec::new());
                    let mut r = Reply::status(202)
                        .header("location", format!("/v2/r/blobs/uploads/{id}"))
                        .header("range", "0-0");
                    if let Some(m) = faults.min_chunk {
                        r = r.header("oci-chunk-min-length", m.to_string());
                    }
                    r
                }
                ("HEAD", p) => {
                    let d = p.rsplit('/').next().unwrap();
                    let there = committed.iter().any(|c: &Digest| c.to_string() == d);
                    Reply::status(if there { 200 } else { 404 })
                }
                (m, p) if p.starts_with("/v2/r/blobs/uploads/") => {
                    let id = p.rsplit('/').next().unwrap().to_string();
                    let location = format!("/v2/r/blobs/uploads/{id}");
                    if m == "GET" && faults.lose_sessions > 0 {
                        faults.lose_sessions -= 1;
                        sessions.remove(&id);
                    }
                    let Some(held) = sessions.get_mut(&id) else {
                        return Reply::status(404);
                    };
                    match m {
                        "GET" => Reply::status(204)
                            .header("location", location)
                            .header("range", range(held.len())),
                        "PATCH" => {
                            if faults.refuse_over.is_some_and(|n| req.body.len() > n) {
                                return Reply::status(413);
                            }
                            if let Some(cr) = req.header("content-range") {
                                let start: usize = cr.split('-').next().unwrap().parse().unwrap();
                                if start != held.len() {
                                    return Reply::status(416);
                                }
                            }
                            if faults.break_patches > 0 {
                                faults.break_patches -= 1;
                                held.extend_from_slice(&req.body[..req.body.len() / 2]);
                                return Reply::status(500);
                            }
                            held.extend_from_slice(&req.body);
                            Reply::status(202)
                                .header("location", location)
                                .header("range", range(held.len()))
                        }
                        "PUT" => {
                            held.extend_from_slice(&req.body);
                            let want = req.query("digest").unwrap();
                            let got = Digest::sha256(held);
                            if got.to_string() != want {
                                return Reply::status(400).json(&serde_json::json!({"errors": [
                                    {"code": "DIGEST_INVALID", "message": "digest invalid"}
                                ]}));
                            }
                            sessions.remove(&id);
                            committed.push(got.clone());
                            Reply::status(201).header("docker-content-digest", got.to_string())
                        }
                        _ => Reply::status(405),
                    }
                }
                _ => Reply::status(404),
            }
        })
    }

    fn client() -> Client {
        Client::builder()
            .retry(RetryPolicy {
                retries: 4,
                base: Duration::from_millis(1),
                max: Duration::from_millis(5),
            })
            .build()
            .unwrap()
    }

    fn data(n: usize) -> Bytes {
        (0..n).map(|i| (i % 253) as u8).collect::<Vec<u8>>().into()
    }

    /// Upload `blob` with `configure` applied; returns the requests by method.
    async fn upload(
        stub: &Stub,
        c: &Client,
        blob: &Bytes,
        configure: impl FnOnce(Upload<'_>) -> Upload<'_>,
    ) -> Result<HashMap<String, usize>> {
        let repo = Repository::new(stub.host(), "r").unwrap();
        let digest = Digest::sha256(blob);
        let u = Upload::new(
            c,
            &repo,
            &digest,
            blob.len() as u64,
            BlobSource::Bytes(blob.clone()),
        );
        configure(u).run(None).await?;
        let mut by = HashMap::new();
        for r in stub.requests() {
            if r.route() != "/v2/" {
                *by.entry(r.method).or_default() += 1;
            }
        }
        Ok(by)
    }

    fn counts(by: &HashMap<String, usize>) -> [usize; 4] {
        ["POST", "PATCH", "PUT", "GET"].map(|m| by.get(m).copied().unwrap_or(0))
    }

    #[tokio::test]
    async fn small_blobs_go_in_one_put_and_large_ones_stream() {
        let stub = registry(Faults::default());
        let blob = data(1000);
        let by = upload(&stub, &client(), &blob, |u| u).await.unwrap();
        assert_eq!(counts(&by), [1, 0, 1, 0]);

        let stub = registry(Faults::default());
        let blob = data(600_000);
        let by = upload(&stub, &client(), &blob, |u| u.monolithic_max(1000))
            .await
            .unwrap();
        assert_eq!(
            counts(&by),
            [1, 1, 1, 0],
            "one streamed PATCH, then the commit"
        );
        let patch = stub
            .requests()
            .into_iter()
            .find(|r| r.method == "PATCH")
            .unwrap();
        assert_eq!(patch.header("content-range"), None);
        assert_eq!(patch.body.len(), blob.len());
    }

    #[tokio::test]
    async fn chunks_when_asked_for_or_when_a_body_is_refused() {
        // The registry's minimum chunk length.
        let stub = registry(Faults {
            min_chunk: Some(100_000),
            ..Default::default()
        });
        let blob = data(250_000);
        let by = upload(&stub, &client(), &blob, |u| u).await.unwrap();
        assert_eq!(counts(&by), [1, 3, 1, 0]);
        let ranges: Vec<String> = stub
            .requests()
            .iter()
            .filter_map(|r| r.header("content-range").map(str::to_string))
            .collect();
        assert_eq!(ranges, ["0-99999", "100000-199999", "200000-249999"]);

        // 413 for a big body: half the chunk size, down to 1 MiB.
        let stub = registry(Faults {
            refuse_over: Some(1_500_000),
            ..Default::default()
        });
        let blob = data(3 << 20);
        let by = upload(&stub, &client(), &blob, |u| u.chunk_size(Some(2 << 20)))
            .await
            .unwrap();
        assert_eq!(by["PATCH"], 1 + 3, "one refused, then three 1 MiB chunks");
    }

    #[tokio::test]
    async fn a_broken_patch_resumes_from_the_registry_offset() {
        let stub = registry(Faults {
            break_patches: 1,
            ..Default::default()
        });
        let c = client();
        let blob = data(400_000);
        let by = upload(&stub, &c, &blob, |u| u.monolithic_max(1000))
            .await
            .unwrap();
        assert_eq!(
            counts(&by),
            [1, 2, 1, 1],
            "one status GET, one resumed PATCH"
        );
        let resumed = stub
            .requests()
            .into_iter()
            .filter(|r| r.method == "PATCH")
            .nth(1)
            .unwrap();
        assert_eq!(resumed.header("content-range"), Some("200000-399999"));
        let s = c.stats();
        assert_eq!((s.resumes, s.restarts), (1, 0), "{s:?}");
    }

    #[tokio::test]
    async fn a_lost_session_starts_over() {
        let stub = registry(Faults {
            break_patches: 1,
            lose_sessions: 1,
            ..Default::default()
        });
        let c = client();
        let blob = data(300_000);
        let by = upload(&stub, &c, &blob, |u| u.monolithic_max(1000))
            .await
            .unwrap();
        assert_eq!(counts(&by), [2, 2, 1, 1]);
        let s = c.stats();
        assert_eq!((s.resumes, s.restarts), (0, 1), "{s:?}");
    }

    #[tokio::test]
    async fn bytes_that_do_not_hash_to_the_digest_are_a_corrupt_source() {
        let stub = registry(Faults::default());
        let c = client();
        let repo = Repository::new(stub.host(), "r").unwrap();
        let claimed = Digest::sha256(b"what the manifest says");
        for max in [DEFAULT_MONOLITHIC_MAX, 10] {
            let blob = data(5000);
            let e = Upload::new(&c, &repo, &claimed, 5000, BlobSource::Bytes(blob))
                .monolithic_max(max)
                .run(None)
                .await
                .unwrap_err();
            assert!(e.to_string().contains("source's copy is corrupt"), "{e}");
            assert!(e.to_string().contains(&claimed.to_string()), "{e}");
        }
        // A source shorter than its size: its own error, not retried.
        let blob = data(5000);
        let digest = Digest::sha256(&blob);
        let (patches, posts) = (stub.count("PATCH"), stub.count("POST"));
        let e = Upload::new(&c, &repo, &digest, 9000, BlobSource::Bytes(blob))
            .monolithic_max(10)
            .run(None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("size"), "{e}");
        // One session, one broken PATCH at most (it may die before the registry sees
        // it), no retry.
        assert_eq!(stub.count("POST") - posts, 1);
        assert!(stub.count("PATCH") - patches <= 1);
    }

    /// A registry claiming to hold 2^64 bytes: an error after the retries, not an
    /// overflow (a panic in debug builds, a wrong offset in release ones).
    #[tokio::test]
    async fn an_impossible_range_is_an_error_not_an_overflow() {
        let stub = registry(Faults {
            impossible_range: true,
            ..Default::default()
        });
        let c = client();
        let blob = data(3000);
        let e = upload(&stub, &c, &blob, |u| u.monolithic_max(10))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("Range"), "{e}");
    }
}
