//! Blobs: a pointer at the content address naming the segments that hold the bytes, and a
//! repository's view of a blob (an empty link object).
//!
//! A pointer is published with a create-only write, so the first commit of a digest wins
//! and stays; a later commit of the same digest (the same bytes) keeps the published one
//! and removes its own segments. Segments are the objects an upload wrote as its bytes
//! arrived (one per request, more for very large ones); publishing names them and copies
//! nothing. A read follows the pointer, segment by segment, with ranged GETs.

use std::io;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use hoist_image::Digest;
use object_store::{GetOptions, GetRange, PutMode, PutOptions};
use serde::{Deserialize, Serialize};

use super::{Inner, is_not_found, store_err};
use crate::error::{ErrorKind, Result};
use crate::names::RepoName;
use crate::storage::{BlobRead, ByteStream};

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
    /// The blob's size (the sum of the segments' sizes).
    pub size: u64,
    /// The segments, in order.
    pub segments: Vec<Segment>,
}

/// How a create-only publication went.
pub(crate) enum Published {
    /// This pointer is the blob now.
    Created,
    /// The digest was published before: that pointer stays.
    Existing(BlobPointer),
}

/// The pointer of `d`, from the cache or the store.
pub(crate) async fn pointer(s: &Inner, d: &Digest) -> Result<Option<BlobPointer>> {
    if let Some(p) = s.pointers.get(d) {
        return Ok(Some(p));
    }
    let p = pointer_uncached(s, d).await?;
    if let Some(p) = &p {
        s.pointers.insert(d.clone(), p.clone());
    }
    Ok(p)
}

/// The pointer of `d` as the store has it now.
pub(crate) async fn pointer_uncached(s: &Inner, d: &Digest) -> Result<Option<BlobPointer>> {
    let key = s.layout.blob(d);
    let Some(raw) = s.get_opt(&key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&raw).map(Some).map_err(|e| {
        ErrorKind::Corrupt {
            what: format!("{}/{key}", s.name),
            message: format!("not a blob pointer: {e}"),
        }
        .into()
    })
}

/// Publish `p` as blob `d`, unless it is published already.
pub(crate) async fn publish(s: &Inner, d: &Digest, p: &BlobPointer) -> Result<Published> {
    let key = s.layout.blob(d);
    let json = serde_json::to_vec(p).expect("a pointer serializes");
    let opts = PutOptions::from(PutMode::Create);
    match s.store.put_opts(&key, json.into(), opts).await {
        Ok(_) => {
            s.pointers.insert(d.clone(), p.clone());
            Ok(Published::Created)
        }
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => {
            match pointer_uncached(s, d).await? {
                Some(existing) => {
                    s.pointers.insert(d.clone(), existing.clone());
                    Ok(Published::Existing(existing))
                }
                // Removed again in between (garbage collection): try once more.
                None => match s
                    .store
                    .put_opts(
                        &key,
                        serde_json::to_vec(p).expect("serializes").into(),
                        PutMode::Create.into(),
                    )
                    .await
                {
                    Ok(_) => Ok(Published::Created),
                    Err(e) => Err(store_err(&key, e)),
                },
            }
        }
        Err(e) => Err(store_err(&key, e)),
    }
}

/// Make blob `d` visible in `repo`.
pub(crate) async fn link(s: &Inner, repo: &RepoName, d: &Digest) -> Result<()> {
    s.put(&s.layout.link(repo, d), bytes::Bytes::new()).await
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

pub(crate) async fn read(
    s: &Arc<Inner>,
    repo: &RepoName,
    d: &Digest,
    range: Option<(u64, u64)>,
) -> Result<Option<BlobRead>> {
    let Some(p) = seen(s, repo, d).await? else {
        return Ok(None);
    };
    let (start, len) = range.unwrap_or((0, p.size));
    let len = len.min(p.size.saturating_sub(start));
    Ok(Some(BlobRead {
        body: segments_stream(s.clone(), d.clone(), &p.segments, start, len),
        size: p.size,
    }))
}

/// The bytes `start..start + len` of the concatenation of `segments`, one ranged GET per
/// segment it covers, streamed as the store sends them. A segment that is gone (the blob
/// was collected meanwhile) ends the stream with an error and drops `d`'s cached pointer.
pub(crate) fn segments_stream(
    s: Arc<Inner>,
    d: Digest,
    segments: &[Segment],
    start: u64,
    len: u64,
) -> ByteStream {
    let end = start + len;
    let mut pieces = Vec::new();
    let mut at = 0u64;
    for seg in segments {
        let (a, b) = (at, at + seg.size);
        at = b;
        if b <= start || a >= end || seg.size == 0 {
            continue;
        }
        let from = start.max(a) - a;
        let to = end.min(b) - a;
        pieces.push((seg.key.clone(), from, to, seg.size));
    }
    Box::pin(
        futures_util::stream::iter(pieces)
            .then(move |(key, from, to, size)| {
                let s = s.clone();
                let d = d.clone();
                async move {
                    let path = s.layout.relative(&key);
                    let mut opts = GetOptions::default();
                    if from > 0 || to < size {
                        opts.range = Some(GetRange::Bounded(from..to));
                    }
                    match s.store.get_opts(&path, opts).await {
                        Ok(r) => Ok(r
                            .into_stream()
                            .map_err(move |e| io::Error::other(format!("{key}: {e}")))),
                        Err(e) => {
                            if is_not_found(&e) {
                                s.pointers.remove(&d);
                            }
                            Err(io::Error::other(format!("{}/{path}: {e}", s.name)))
                        }
                    }
                }
            })
            .try_flatten(),
    )
}

pub(crate) async fn mount(s: &Inner, from: &RepoName, to: &RepoName, d: &Digest) -> Result<bool> {
    if seen(s, from, d).await?.is_none() {
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
    let any = Digest::sha256(b"");
    let mut body = segments_stream(s.clone(), any, segments, 0, total);
    let mut h = algorithm.hasher();
    while let Some(b) = body.next().await {
        let b = b.map_err(|e| crate::Error::io(format!("{} (segments)", s.name), e))?;
        h.update(&b);
    }
    Ok(h.finish())
}
