//! Blobs: a pointer at the content address naming the segments that hold the bytes (or,
//! for a manifest, holding them inline), and a repository's view of a blob (an empty link
//! object).
//!
//! A pointer is published with a create-only write, so the first commit of a digest wins
//! and stays; a later commit of the same digest (the same bytes) keeps the published one,
//! touches it, and removes its own segments. Segments are the objects an upload wrote as
//! its bytes arrived (one per request, more for very large ones); publishing names them and
//! copies nothing. A read follows the pointer, segment by segment, with ranged GETs.
//!
//! A pointer also carries its last-touch time for garbage collection, and passes through
//! states, each change a compare-and-swap on the version read (If-Match):
//!
//! ```text
//! live { size, segments | inline bytes, touched }
//!   -- touch: rewritten with touched = now
//!   -- removal (unreached, touched before the cutoff): a tombstone { removed, segments }
//! tombstone -- segments and links deleted --> empty object (the digest is gone)
//! tombstone or empty -- a new commit of the digest --> live (its own new segments)
//! ```
//!
//! Pointer keys are never deleted, only emptied, and every change is conditional on the
//! version read: so a touch and a removal racing on one blob are ordered by the store,
//! and whichever writes second sees the other's write (see [`super::gc`]).

use std::io;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use hoist_image::Digest;
use object_store::{GetOptions, GetRange, GetResult, PutMode, PutOptions, UpdateVersion};
use serde::{Deserialize, Serialize};

use super::{Inner, Versioned, get_versioned, is_not_found, now_ms, store_err};
use crate::error::{Error, ErrorKind, Result};
use crate::names::RepoName;
use crate::storage::{BlobRead, ByteStream};

/// Compare-and-swap rounds on one pointer before giving up: each round loses only to
/// another write of the same pointer that landed in between (a touch, a commit, a removal).
pub(crate) const CAS_TRIES: usize = 16;

/// One object holding a run of a blob's (or an upload's) bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Segment {
    /// Its key, relative to the registry's prefix.
    pub key: String,
    /// Its size.
    pub size: u64,
}

/// What is published at a blob's content address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlobPointer {
    /// The blob's size (the sum of the segments' sizes, or the inline bytes' length).
    pub size: u64,
    /// The segments, in order.
    #[serde(default)]
    pub segments: Vec<Segment>,
    /// The bytes themselves, when published whole and small (a manifest), as UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The same, hex-encoded, for bytes that are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    /// When it was last published or touched, in milliseconds since the epoch by the clock
    /// of the node that wrote it (0: written before touches were kept; the object's
    /// last-modified time stands in).
    #[serde(default)]
    pub touched: u64,
    /// A tombstone: garbage collection is removing the segments.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

impl BlobPointer {
    /// A pointer to `segments`, touched now.
    pub(crate) fn segments(size: u64, segments: Vec<Segment>) -> BlobPointer {
        BlobPointer {
            size,
            segments,
            text: None,
            hex: None,
            touched: now_ms(),
            removed: false,
        }
    }

    /// A pointer holding `bytes` inline, touched now.
    pub(crate) fn inline(bytes: &[u8]) -> BlobPointer {
        let (text, hex) = match std::str::from_utf8(bytes) {
            Ok(t) => (Some(t.to_string()), None),
            Err(_) => (None, Some(hex::encode(bytes))),
        };
        BlobPointer {
            size: bytes.len() as u64,
            segments: Vec::new(),
            text,
            hex,
            touched: now_ms(),
            removed: false,
        }
    }

    /// The inline bytes, if the pointer holds its blob inline.
    pub(crate) fn inline_bytes(&self) -> Option<Bytes> {
        if let Some(t) = &self.text {
            return Some(Bytes::from(t.clone().into_bytes()));
        }
        self.hex
            .as_ref()
            .and_then(|h| hex::decode(h).ok())
            .map(Bytes::from)
    }

    /// What a node caches: no touch time (it changes), inline bytes only when small.
    fn for_cache(&self) -> Option<BlobPointer> {
        if self.size > INLINE_CACHE_MAX && (self.text.is_some() || self.hex.is_some()) {
            return None;
        }
        Some(BlobPointer {
            touched: 0,
            ..self.clone()
        })
    }

    /// The weight of a cached pointer, about its bytes in memory.
    pub(crate) fn weight(&self) -> usize {
        128 + self.segments.len() * 96
            + self.text.as_ref().map_or(0, String::len)
            + self.hex.as_ref().map_or(0, String::len)
    }
}

/// Inline pointers larger than this are not cached as pointers (manifest bytes have their
/// own cache).
const INLINE_CACHE_MAX: u64 = 16 << 10;

/// A pointer object as the store has it now: `None` in `pointer` when it is empty (the
/// digest was collected).
pub(crate) struct Stored {
    pub pointer: Option<BlobPointer>,
    pub version: UpdateVersion,
}

impl Stored {
    /// The pointer when it is live (neither collected nor being removed).
    pub(crate) fn live(&self) -> Option<&BlobPointer> {
        self.pointer.as_ref().filter(|p| !p.removed)
    }
}

/// How a create-only publication went.
pub(crate) enum Published {
    /// This pointer is the blob now.
    Created,
    /// The digest was published before: that pointer stays (touched now).
    Existing(BlobPointer),
}

/// The pointer object of `d` with its version; `None` when there is none.
pub(crate) async fn stored(s: &Inner, d: &Digest) -> Result<Option<Stored>> {
    let key = s.layout.blob(d);
    let Some(Versioned {
        bytes: raw,
        version,
        modified_ms: modified,
    }) = get_versioned(s, &key).await?
    else {
        return Ok(None);
    };
    if raw.is_empty() {
        return Ok(Some(Stored {
            pointer: None,
            version,
        }));
    }
    let mut p: BlobPointer = serde_json::from_slice(&raw).map_err(|e| {
        Error::from(ErrorKind::Corrupt {
            what: format!("{}/{key}", s.name),
            message: format!("not a blob pointer: {e}"),
        })
    })?;
    if p.touched == 0 {
        p.touched = modified;
    }
    Ok(Some(Stored {
        pointer: Some(p),
        version,
    }))
}

/// Write `body` at `d`'s pointer key if it is still at `version` (create-only when `None`).
/// `Ok(None)` when another write got there first.
pub(crate) async fn swap(
    s: &Inner,
    d: &Digest,
    version: Option<&UpdateVersion>,
    body: Bytes,
) -> Result<Option<UpdateVersion>> {
    let key = s.layout.blob(d);
    let mode = match version {
        Some(v) => PutMode::Update(v.clone()),
        None => PutMode::Create,
    };
    match s
        .store
        .put_opts(&key, body.into(), PutOptions::from(mode))
        .await
    {
        Ok(r) => Ok(Some(UpdateVersion::from(r))),
        Err(
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotFound { .. },
        ) => Ok(None),
        Err(e) => Err(store_err(&key, e)),
    }
}

fn json(p: &BlobPointer) -> Bytes {
    Bytes::from(serde_json::to_vec(p).expect("a pointer serializes"))
}

fn contended(s: &Inner, d: &Digest) -> Error {
    ErrorKind::Io {
        what: format!("{}/{}", s.name, s.layout.blob(d)),
        source: io::Error::other(format!(
            "blob pointer kept changing under {CAS_TRIES} attempts to write it"
        )),
    }
    .into()
}

/// The pointer of `d`, from the cache or the store.
pub(crate) async fn pointer(s: &Inner, d: &Digest) -> Result<Option<BlobPointer>> {
    if let Some(p) = s.pointers.get(d) {
        return Ok(Some(p));
    }
    pointer_uncached(s, d).await
}

/// The live pointer of `d` as the store has it now (remembered in the cache).
pub(crate) async fn pointer_uncached(s: &Inner, d: &Digest) -> Result<Option<BlobPointer>> {
    let live = stored(s, d).await?.and_then(|st| st.live().cloned());
    match &live {
        Some(p) => {
            if let Some(c) = p.for_cache() {
                s.pointers.insert(d.clone(), c);
            }
        }
        None => s.pointers.remove(d),
    }
    Ok(live)
}

/// Publish `p` as blob `d`, unless it is published already: then the published pointer is
/// touched and stays. A tombstone or an emptied pointer (the digest was collected, or is
/// being collected) is replaced by `p`.
pub(crate) async fn publish(s: &Inner, d: &Digest, p: &BlobPointer) -> Result<Published> {
    let start = now_ms();
    for _ in 0..CAS_TRIES {
        let now = stored(s, d).await?;
        match now.as_ref().map(|st| (st.live(), &st.version)) {
            None => {
                let mine = BlobPointer {
                    touched: now_ms(),
                    ..p.clone()
                };
                if swap(s, d, None, json(&mine)).await?.is_some() {
                    remember(s, d, &mine);
                    return Ok(Published::Created);
                }
            }
            Some((None, version)) => {
                let mine = BlobPointer {
                    touched: now_ms(),
                    ..p.clone()
                };
                if swap(s, d, Some(version), json(&mine)).await?.is_some() {
                    remember(s, d, &mine);
                    return Ok(Published::Created);
                }
            }
            Some((Some(existing), version)) => {
                if existing.touched >= start {
                    // Touched by another request since this one began.
                    remember(s, d, existing);
                    return Ok(Published::Existing(existing.clone()));
                }
                let touched = BlobPointer {
                    touched: now_ms(),
                    ..existing.clone()
                };
                if swap(s, d, Some(version), json(&touched)).await?.is_some() {
                    remember(s, d, &touched);
                    return Ok(Published::Existing(touched));
                }
            }
        }
    }
    Err(contended(s, d))
}

fn remember(s: &Inner, d: &Digest, p: &BlobPointer) {
    if let Some(c) = p.for_cache() {
        s.pointers.insert(d.clone(), c);
    }
}

/// Mark blob `d` in use now; `false` when it is not stored (or being removed). Always
/// against the store: a node's cache may still remember a collected blob.
pub(crate) async fn touch(s: &Inner, d: &Digest) -> Result<bool> {
    let start = now_ms();
    for _ in 0..CAS_TRIES {
        let Some(st) = stored(s, d).await? else {
            s.pointers.remove(d);
            return Ok(false);
        };
        let Some(p) = st.live() else {
            s.pointers.remove(d);
            return Ok(false);
        };
        if p.touched >= start {
            return Ok(true); // touched by another request since this one began
        }
        let touched = BlobPointer {
            touched: now_ms(),
            ..p.clone()
        };
        if swap(s, d, Some(&st.version), json(&touched))
            .await?
            .is_some()
        {
            return Ok(true);
        }
    }
    Err(contended(s, d))
}

/// Make blob `d` visible in `repo`.
pub(crate) async fn link(s: &Inner, repo: &RepoName, d: &Digest) -> Result<()> {
    s.put(&s.layout.link(repo, d), Bytes::new()).await
}

/// Whether `repo` sees blob `d`.
async fn linked(s: &Inner, repo: &RepoName, d: &Digest) -> Result<bool> {
    s.exists(&s.layout.link(repo, d)).await
}

/// The pointer of `d` if `repo` sees it.
async fn seen(s: &Inner, repo: &RepoName, d: &Digest) -> Result<Option<BlobPointer>> {
    if !linked(s, repo, d).await? {
        return Ok(None);
    }
    pointer(s, d).await
}

pub(crate) async fn size(s: &Inner, repo: &RepoName, d: &Digest) -> Result<Option<u64>> {
    Ok(seen(s, repo, d).await?.map(|p| p.size))
}

/// The bytes of blob `d` (`range` of them when given) if `repo` sees it.
///
/// The first segment is opened before answering: a pointer this node cached for a blob
/// collected since (or collected and pushed again, with other segments) is found out here,
/// and the answer is the store's (404, or the new segments), not a broken body. With the
/// pointer cached, the repository's link is checked while that first segment opens: one
/// round trip to the store before the answer, not two.
pub(crate) async fn read(
    s: &Arc<Inner>,
    repo: &RepoName,
    d: &Digest,
    range: Option<(u64, u64)>,
) -> Result<Option<BlobRead>> {
    let first = match s.pointers.get(d) {
        Some(p) => {
            let (linked, opened) = tokio::join!(linked(s, repo, d), open_read(s, &p, range));
            if !linked? {
                return Ok(None);
            }
            opened?
        }
        None => {
            let Some(p) = seen(s, repo, d).await? else {
                return Ok(None);
            };
            open_read(s, &p, range).await?
        }
    };
    if let Ok(r) = first {
        return Ok(Some(r));
    }
    // The first segment is gone: ask the store for the pointer as it is now.
    s.pointers.remove(d);
    let Some(fresh) = pointer_uncached(s, d).await? else {
        return Ok(None);
    };
    match open_read(s, &fresh, range).await? {
        Ok(r) => Ok(Some(r)),
        Err(key) => Err(Error::io(
            s.layout.relative(&key),
            io::Error::new(
                io::ErrorKind::NotFound,
                "a segment of a live blob is missing from the store",
            ),
        )),
    }
}

/// `range` of the blob `p` points to, its first segment opened; `Err(key)` when that
/// segment is not in the store.
async fn open_read(
    s: &Arc<Inner>,
    p: &BlobPointer,
    range: Option<(u64, u64)>,
) -> Result<std::result::Result<BlobRead, String>> {
    let (start, len) = range.unwrap_or((0, p.size));
    let len = len.min(p.size.saturating_sub(start));
    if let Some(b) = p.inline_bytes() {
        let end = (start + len).min(b.len() as u64) as usize;
        let part = b.slice((start as usize).min(end)..end);
        return Ok(Ok(BlobRead {
            body: Box::pin(futures_util::stream::iter([Ok(part)])),
            size: p.size,
        }));
    }
    let mut pieces = pieces(&p.segments, start, len);
    if pieces.is_empty() {
        return Ok(Ok(BlobRead {
            body: Box::pin(futures_util::stream::empty()),
            size: p.size,
        }));
    }
    let first = pieces.remove(0);
    match open(s, &first).await {
        Ok(body) => {
            let rest = segment_bodies(s.clone(), pieces);
            Ok(Ok(BlobRead {
                body: Box::pin(body.chain(rest)),
                size: p.size,
            }))
        }
        Err(e) if is_not_found(&e) => Ok(Err(first.key)),
        Err(e) => Err(store_err(&s.layout.relative(&first.key), e)),
    }
}

/// A ranged read of one segment.
#[derive(Clone)]
struct Piece {
    key: String,
    from: u64,
    to: u64,
    size: u64,
}

/// The ranges of `segments` that `start..start + len` of their concatenation covers.
fn pieces(segments: &[Segment], start: u64, len: u64) -> Vec<Piece> {
    let end = start + len;
    let mut out = Vec::new();
    let mut at = 0u64;
    for seg in segments {
        let (a, b) = (at, at + seg.size);
        at = b;
        if b <= start || a >= end || seg.size == 0 {
            continue;
        }
        out.push(Piece {
            key: seg.key.clone(),
            from: start.max(a) - a,
            to: end.min(b) - a,
            size: seg.size,
        });
    }
    out
}

/// Times a piece's read is started again after its body broke off (the store closed the
/// connection, or sent nothing for the timeout while hoist waited) with no byte received
/// since the last restart. Each restart is a ranged GET from the first byte not received,
/// of the same version of the segment (If-Match on its ETag).
const RESUMES: u32 = 3;

/// The `store` of the error of a GET the store did not answer in time.
const NO_ANSWER: &str = "S3 (timed out)";

/// The GET of `p` (of version `e_tag` when given), its answer waited for at most the
/// store's timeout.
async fn get(s: &Inner, p: &Piece, e_tag: Option<&str>) -> object_store::Result<GetResult> {
    let path = s.layout.relative(&p.key);
    let mut opts = GetOptions {
        if_match: e_tag.map(str::to_string),
        ..GetOptions::default()
    };
    if p.from > 0 || p.to < p.size {
        opts.range = Some(GetRange::Bounded(p.from..p.to));
    }
    match tokio::time::timeout(s.timeout, s.reads.get_opts(&path, opts)).await {
        Ok(r) => r,
        Err(_) => Err(object_store::Error::Generic {
            store: NO_ANSWER,
            source: format!("GET {path}: no answer in {:?}", s.timeout).into(),
        }),
    }
}

/// A piece's bytes as the store sends them, the read started again where it broke off.
struct Reading {
    s: Arc<Inner>,
    /// What is left to read (`from` moves as bytes arrive).
    piece: Piece,
    e_tag: Option<String>,
    body: BoxStream<'static, object_store::Result<Bytes>>,
    /// Restarts since the last byte received.
    stalls: u32,
}

impl Reading {
    /// The next bytes; `None` at the end of the piece.
    async fn next(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            if self.piece.from >= self.piece.to {
                return Ok(None);
            }
            let left = self.piece.to - self.piece.from;
            let why = match tokio::time::timeout(self.s.timeout, self.body.next()).await {
                Ok(Some(Ok(b))) if b.len() as u64 > left => {
                    return Err(self.failed(format!(
                        "{} bytes more than the {left} asked for",
                        b.len() as u64 - left
                    )));
                }
                Ok(Some(Ok(b))) if b.is_empty() => continue,
                Ok(Some(Ok(b))) => {
                    self.piece.from += b.len() as u64;
                    self.stalls = 0;
                    return Ok(Some(b));
                }
                Ok(Some(Err(
                    e @ (object_store::Error::NotFound { .. }
                    | object_store::Error::Precondition { .. }),
                ))) => return Err(self.failed(e.to_string())),
                Ok(Some(Err(e))) => e.to_string(),
                Ok(None) => format!("the body ended {left} bytes short"),
                Err(_) => format!("nothing received in {:?}", self.s.timeout),
            };
            if self.stalls >= RESUMES {
                return Err(self.failed(format!("{why} ({RESUMES} restarts without progress)")));
            }
            self.stalls += 1;
            tracing::debug!(segment = %self.piece.key, at = self.piece.from, error = %why, "segment read broke off; resuming");
            self.body = match get(&self.s, &self.piece, self.e_tag.as_deref()).await {
                Ok(r) => r.into_stream(),
                Err(e) => Box::pin(futures_util::stream::once(async { Err(e) })),
            };
        }
    }

    fn failed(&self, why: String) -> io::Error {
        io::Error::other(format!(
            "{}/{} at byte {}: {why}",
            self.s.name, self.piece.key, self.piece.from
        ))
    }
}

/// Start the GET of one piece; its body resumes where it breaks off.
async fn open(
    s: &Arc<Inner>,
    p: &Piece,
) -> object_store::Result<impl futures_util::Stream<Item = io::Result<Bytes>> + use<>> {
    // Asked again (up to RESUMES times) when no answer came in time.
    let mut r = get(s, p, None).await;
    for _ in 0..RESUMES {
        match &r {
            Err(object_store::Error::Generic {
                store: NO_ANSWER, ..
            }) => {
                tracing::debug!(segment = %p.key, "no answer to a segment's GET; asking again");
                r = get(s, p, None).await;
            }
            _ => break,
        }
    }
    let r = r?;
    let reading = Reading {
        s: s.clone(),
        piece: p.clone(),
        e_tag: r.meta.e_tag.clone(),
        body: r.into_stream(),
        stalls: 0,
    };
    Ok(futures_util::stream::try_unfold(
        reading,
        |mut r| async move { Ok(r.next().await?.map(|b| (b, r))) },
    ))
}

/// The pieces' bytes one after the other, each GET started when the previous one ends.
fn segment_bodies(s: Arc<Inner>, pieces: Vec<Piece>) -> ByteStream {
    Box::pin(
        futures_util::stream::iter(pieces)
            .then(move |p| {
                let s = s.clone();
                async move {
                    open(&s, &p).await.map_err(|e| {
                        io::Error::other(format!("{}/{}: {e}", s.name, s.layout.relative(&p.key)))
                    })
                }
            })
            .try_flatten(),
    )
}

/// The bytes `start..start + len` of the concatenation of `segments`, one ranged GET per
/// segment it covers, streamed as the store sends them.
pub(crate) fn segments_stream(
    s: Arc<Inner>,
    segments: &[Segment],
    start: u64,
    len: u64,
) -> ByteStream {
    segment_bodies(s, pieces(segments, start, len))
}

/// The whole of blob `d`'s bytes, at most `max` of them (`None` when it is not stored).
pub(crate) async fn bytes(s: &Arc<Inner>, d: &Digest, max: u64) -> Result<Option<Bytes>> {
    let Some(p) = pointer_uncached(s, d).await? else {
        return Ok(None);
    };
    if let Some(b) = p.inline_bytes() {
        return Ok(Some(b));
    }
    if p.size > max {
        return Err(ErrorKind::Corrupt {
            what: format!("{}/{}", s.name, s.layout.blob(d)),
            message: format!("{} bytes, more than the {max} expected", p.size),
        }
        .into());
    }
    let mut body = segments_stream(s.clone(), &p.segments, 0, p.size);
    let mut out = Vec::with_capacity(p.size as usize);
    while let Some(b) = body.next().await {
        let b = b.map_err(|e| Error::io(format!("{}/{}", s.name, s.layout.blob(d)), e))?;
        out.extend_from_slice(&b);
    }
    Ok(Some(Bytes::from(out)))
}

pub(crate) async fn mount(s: &Inner, from: &RepoName, to: &RepoName, d: &Digest) -> Result<bool> {
    if seen(s, from, d).await?.is_none() {
        return Ok(false);
    }
    // In use from now on: a collection running now keeps it, or removed it already (then
    // the client uploads it).
    if !touch(s, d).await? {
        return Ok(false);
    }
    link(s, to, d).await?;
    Ok(true)
}

pub(crate) async fn unlink(s: &Inner, repo: &RepoName, d: &Digest) -> Result<()> {
    if !linked(s, repo, d).await? {
        return Err(ErrorKind::BlobUnknown {
            repo: repo.to_string(),
            digest: d.clone(),
        }
        .into());
    }
    s.delete(&s.layout.link(repo, d)).await
}

/// Remove segments (after their blob was published by someone else, or was discarded).
pub(crate) async fn remove_segments(s: &Inner, segments: &[Segment]) {
    for seg in segments {
        s.delete_quietly(&s.layout.relative(&seg.key)).await;
    }
}

/// The whole of the concatenated `segments`, for hashing with another algorithm than the
/// session's own SHA-256.
pub(crate) async fn hash_segments(
    s: &Arc<Inner>,
    segments: &[Segment],
    algorithm: hoist_image::Algorithm,
) -> Result<Digest> {
    let total = segments.iter().map(|x| x.size).sum();
    let mut body = segments_stream(s.clone(), segments, 0, total);
    let mut h = algorithm.hasher();
    while let Some(b) = body.next().await {
        let b = b.map_err(|e| crate::Error::io(format!("{} (segments)", s.name), e))?;
        h.update(&b);
    }
    Ok(h.finish())
}

/// A time as milliseconds since the epoch.
pub(crate) fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}
