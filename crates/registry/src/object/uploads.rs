//! Upload sessions kept in the bucket, so any node can take the next request of a session.
//!
//! A session is a state object (`uploads/<id>`, JSON): its repository, the *segments*
//! written so far (objects under `data/<id>/`, in order), their total size, and the
//! serialized SHA-256 state after those bytes. Every change is a compare-and-swap on the
//! state's ETag (If-Match), so of two requests writing one session at once on two nodes,
//! the first to record its bytes wins and the other is refused with the size recorded now
//! (416, where its client resumes), as is a chunk that no longer starts at the recorded
//! size, up front. The loser removes what it wrote. A write that changed only the record
//! of multipart uploads (of a node that died with it in flight) refuses nobody: the change
//! is made again on top of it. A node refuses a second writer of a session it is writing
//! itself at once (409, UploadBusy).
//!
//! An append streams the request body into a new segment: buffered up to [`PART`], then
//! sent as a part of a multipart upload (one part in flight while the next one fills), or
//! as one PUT when the whole segment is smaller. The segment is completed and recorded in
//! the state when the body ends (or fails: what arrived is kept), every [`SEGMENT_MAX`]
//! bytes (what a crash loses is bounded), and when the client pauses for
//! [`PERSIST_IDLE`] (bytes received are durable and visible soon after they arrive). A
//! trailing segment smaller than [`MIN_SEGMENT`] is read back and rewritten as the start of
//! the next one, so a client sending tiny chunks leaves few segments (the cost: up to
//! [`MIN_SEGMENT`] rewritten per small chunk; [`MIN_SEGMENT`] is advertised as
//! `OCI-Chunk-Min-Length`, and clients that honour it cost nothing).
//!
//! A multipart upload is recorded in the state (pending) as soon as it is created, so the
//! end of the session aborts it even when the node that started it died.
//!
//! Commit checks the digest against the SHA-256 state (no bytes read back; another
//! algorithm reads the segments once), fences appends (`committing`: bytes are refused,
//! an empty body is not, so a commit retried on another node after the first one's node
//! died goes through), and publishes a pointer to the segments at the content address
//! ([`super::blobs`]); a commit that finds `committing` set finishes it.
//!
//! Removing a session (a cancel, a digest that does not match, expiry) fences it first
//! (`ending`: from then on every request treats it as unknown), then aborts its multipart
//! uploads and removes its segments, and removes the state last. A node that dies midway
//! leaves an ending state, which the next expiry finishes, so nothing is left that no state
//! names. The segments of a session whose commit published its blob are the blob's: a
//! committing session (its node died before removing the state) loses only its state and
//! leftovers when the blob's pointer names its segments.
//!
//! Garbage collection never removes a session or its segments: expiry does.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use hoist_image::{Algorithm, Digest, Hasher};
use object_store::multipart::PartId;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use sha2::digest::common::hazmat::SerializableState;
use tokio::task::JoinHandle;

use super::blobs::{self, BlobPointer, Published, Segment};
use super::layout::Layout;
use super::{Inner, is_not_found, now_secs, random_hex, store_err};
use crate::error::{Error, ErrorKind, Result};
use crate::names::RepoName;
use crate::storage::{ByteStream, Expired};

/// The smallest a segment is kept unless it is the last: S3's minimum part size, and the
/// `OCI-Chunk-Min-Length` the registry advertises.
pub(crate) const MIN_SEGMENT: u64 = 5 << 20;
/// Bytes of one multipart part (distribution's s3 driver sends 10 MiB chunks; 8 MiB keeps
/// the two buffers an upload holds, one filling and one in flight, at 16 MiB).
const PART: usize = 8 << 20;
/// A segment is completed and recorded after this many bytes: what a node that dies in the
/// middle of a long request loses (the client resumes from the recorded size).
const SEGMENT_MAX: u64 = 64 << 20;
/// A pause of the client this long makes what it sent durable and visible.
const PERSIST_IDLE: Duration = Duration::from_secs(1);

/// A session's state as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    /// The repository it uploads to.
    repo: String,
    /// When it started (seconds since the epoch).
    created: u64,
    /// Bytes recorded: the sum of the segments' sizes.
    size: u64,
    /// The segments, in order.
    segments: Vec<Segment>,
    /// The SHA-256 state after `size` bytes (hex of the sha2 crate's serialized state).
    sha256: String,
    /// Multipart uploads started for segments not recorded yet.
    #[serde(default)]
    pending: Vec<Pending>,
    /// A commit started: no more appends.
    #[serde(default)]
    committing: bool,
    /// The digest being committed, recorded with `committing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    /// The session is being removed: unknown to every request; expiry finishes the removal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    ending: bool,
    /// A random tag of this version, to recognise it when a conditional write's answer
    /// was lost and the write is read back.
    rev: String,
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    key: String,
    upload: String,
}

/// A state and the version it was read (or written) as.
struct Versioned {
    state: State,
    version: UpdateVersion,
}

/// A compare-and-swap that found another version.
struct Lost;

fn unknown(id: &str) -> Error {
    ErrorKind::UploadUnknown { id: id.to_string() }.into()
}

/// Whether `id` looks like a session id this backend made (32 lower-case hex digits).
fn is_session_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hasher_state(h: &sha2::Sha256) -> String {
    hex::encode(h.serialize())
}

fn hasher_from(s: &Inner, id: &str, state: &State) -> Result<sha2::Sha256> {
    let corrupt = |message: String| -> Error {
        ErrorKind::Corrupt {
            what: format!("{}/{}", s.name, s.layout.upload(id)),
            message,
        }
        .into()
    };
    let raw = hex::decode(&state.sha256).map_err(|e| corrupt(format!("sha256 state: {e}")))?;
    let arr = raw
        .as_slice()
        .try_into()
        .map_err(|_| corrupt(format!("sha256 state of {} bytes", raw.len())))?;
    sha2::Sha256::deserialize(arr).map_err(|e| corrupt(format!("sha256 state: {e:?}")))
}

/// The session's state, checked to belong to `repo` and not to be ending.
async fn load(s: &Inner, repo: &RepoName, id: &str) -> Result<Versioned> {
    if !is_session_id(id) {
        return Err(unknown(id));
    }
    match read(s, id).await? {
        Some(v) if v.state.repo == repo.as_str() && !v.state.ending => Ok(v),
        _ => Err(unknown(id)),
    }
}

/// The session's state as stored, ending or not; `None` when there is none.
async fn read(s: &Inner, id: &str) -> Result<Option<Versioned>> {
    let key = s.layout.upload(id);
    let r = match s.store.get(&key).await {
        Ok(r) => r,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(store_err(&key, e)),
    };
    let version = UpdateVersion {
        e_tag: r.meta.e_tag.clone(),
        version: r.meta.version.clone(),
    };
    let raw = r.bytes().await.map_err(|e| store_err(&key, e))?;
    let state: State = serde_json::from_slice(&raw).map_err(|e| {
        Error::from(ErrorKind::Corrupt {
            what: format!("{}/{key}", s.name),
            message: format!("not an upload state: {e}"),
        })
    })?;
    Ok(Some(Versioned { state, version }))
}

/// Replace the session's state by `next` if it is still at `version`.
async fn swap(
    s: &Inner,
    id: &str,
    version: &UpdateVersion,
    next: &State,
) -> Result<std::result::Result<UpdateVersion, Lost>> {
    let key = s.layout.upload(id);
    let json = serde_json::to_vec(next).expect("a state serializes");
    let opts = PutOptions::from(PutMode::Update(version.clone()));
    match s.store.put_opts(&key, json.into(), opts).await {
        Ok(r) => Ok(Ok(UpdateVersion::from(r))),
        Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => {
            // Another version is there, or this very write went through and only its answer
            // was lost (a retried request): its `rev` tells.
            match s.store.get(&key).await {
                Ok(r) => {
                    let version = UpdateVersion {
                        e_tag: r.meta.e_tag.clone(),
                        version: r.meta.version.clone(),
                    };
                    let raw = r.bytes().await.map_err(|e| store_err(&key, e))?;
                    let ours =
                        serde_json::from_slice::<State>(&raw).is_ok_and(|st| st.rev == next.rev);
                    Ok(if ours { Ok(version) } else { Err(Lost) })
                }
                Err(e) if is_not_found(&e) => Ok(Err(Lost)),
                Err(e) => Err(store_err(&key, e)),
            }
        }
        Err(e) => Err(store_err(&key, e)),
    }
}

/// The answer for a request that started at `start` and whose compare-and-swap lost: the
/// session is gone (404); another request recorded bytes meanwhile (416 with the size it
/// has now, where the client resumes); or a commit started, or the session keeps changing
/// (409).
async fn lost(s: &Inner, repo: &RepoName, id: &str, start: u64) -> Error {
    match load(s, repo, id).await {
        Err(e) if e.is_not_found() => e,
        Ok(now) if !now.state.committing && now.state.size != start => ErrorKind::OffsetMismatch {
            id: id.to_string(),
            start,
            received: now.state.size,
        }
        .into(),
        _ => ErrorKind::UploadBusy { id: id.to_string() }.into(),
    }
}

pub(crate) async fn start(s: &Inner, repo: &RepoName) -> Result<String> {
    let id = random_hex();
    let state = State {
        repo: repo.to_string(),
        created: now_secs(),
        size: 0,
        segments: Vec::new(),
        sha256: hasher_state(&sha2::Sha256::default()),
        pending: Vec::new(),
        committing: false,
        digest: None,
        ending: false,
        rev: random_hex(),
    };
    let key = s.layout.upload(&id);
    let json = serde_json::to_vec(&state).expect("a state serializes");
    s.store
        .put_opts(&key, json.into(), PutMode::Create.into())
        .await
        .map_err(|e| store_err(&key, e))?;
    Ok(id)
}

pub(crate) async fn size(s: &Inner, repo: &RepoName, id: &str) -> Result<u64> {
    Ok(load(s, repo, id).await?.state.size)
}

/// How an append's body ended.
enum BodyEnd {
    Complete,
    Failed(std::io::Error),
}

pub(crate) async fn append(
    s: &Arc<Inner>,
    repo: &RepoName,
    id: &str,
    start: Option<u64>,
    mut body: ByteStream,
) -> Result<u64> {
    let _busy = s.busy(id)?;
    let Versioned { state, version } = load(s, repo, id).await?;
    if let Some(start) = start.filter(|&st| st != state.size) {
        return Err(ErrorKind::OffsetMismatch {
            id: id.to_string(),
            start,
            received: state.size,
        }
        .into());
    }
    if state.committing {
        return no_bytes(id, state.size, &mut body).await;
    }
    let hasher = hasher_from(s, id, &state)?;
    let mut w = Writer {
        s: s.clone(),
        repo: repo.clone(),
        id: id.to_string(),
        started: state.size,
        state,
        version,
        hasher,
        open: None,
    };
    let end = match w.pump(&mut body).await {
        Ok(end) => end,
        Err(e) => {
            w.abandon().await;
            return Err(e);
        }
    };
    if let Err(e) = w.persist().await {
        w.abandon().await;
        return Err(e);
    }
    match end {
        BodyEnd::Complete => Ok(w.state.size),
        BodyEnd::Failed(source) => Err(ErrorKind::BodyFailed {
            id: id.to_string(),
            received: w.state.size,
            source,
        }
        .into()),
    }
}

/// The append to a session whose commit started: refused if its body has bytes. An empty
/// one (the `PUT ?digest=` of a commit retried after the node running it died, or lost
/// the client) changes nothing, and the commit that follows finishes the one started.
async fn no_bytes(id: &str, size: u64, body: &mut ByteStream) -> Result<u64> {
    while let Some(b) = body.next().await {
        match b {
            Ok(b) if b.is_empty() => {}
            Ok(_) => return Err(ErrorKind::UploadBusy { id: id.to_string() }.into()),
            Err(source) => {
                return Err(ErrorKind::BodyFailed {
                    id: id.to_string(),
                    received: size,
                    source,
                }
                .into());
            }
        }
    }
    Ok(size)
}

/// A segment being written.
struct Open {
    /// Its key, relative to the prefix.
    key: String,
    path: Path,
    /// Bytes not sent yet.
    buf: Vec<Bytes>,
    buffered: usize,
    /// Its size so far (sent and buffered).
    len: u64,
    /// Bytes of this request in it (the rest is `carry`).
    fresh: u64,
    /// The small trailing segment it starts with and replaces.
    carry: Option<Segment>,
    /// Its multipart upload, once it is larger than a part.
    upload: Option<String>,
    parts: Vec<PartId>,
    in_flight: Option<JoinHandle<object_store::Result<PartId>>>,
}

impl Open {
    /// Wait for the part being sent.
    async fn settle(&mut self) -> object_store::Result<()> {
        if let Some(t) = self.in_flight.take() {
            let part = t.await.map_err(|e| object_store::Error::Generic {
                store: "part upload",
                source: Box::new(e),
            })??;
            self.parts.push(part);
        }
        Ok(())
    }

    fn take_payload(&mut self) -> PutPayload {
        self.buffered = 0;
        PutPayload::from_iter(std::mem::take(&mut self.buf))
    }
}

/// One append: the session as this request last wrote (or read) it, the running hash, and
/// the segment being written.
struct Writer {
    s: Arc<Inner>,
    repo: RepoName,
    id: String,
    /// The session's size when the request began.
    started: u64,
    state: State,
    version: UpdateVersion,
    hasher: sha2::Sha256,
    open: Option<Open>,
}

impl Writer {
    /// Feed the body into segments until it ends; persist on pauses.
    async fn pump(&mut self, body: &mut ByteStream) -> Result<BodyEnd> {
        loop {
            let pending = self.open.as_ref().is_some_and(|o| o.fresh > 0);
            let next = if pending {
                match tokio::time::timeout(PERSIST_IDLE, body.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        self.persist().await?;
                        continue;
                    }
                }
            } else {
                body.next().await
            };
            match next {
                Some(Ok(b)) => self.push(b).await?,
                Some(Err(e)) => return Ok(BodyEnd::Failed(e)),
                None => return Ok(BodyEnd::Complete),
            }
        }
    }

    async fn push(&mut self, b: Bytes) -> Result<()> {
        if b.is_empty() {
            return Ok(());
        }
        sha2::Digest::update(&mut self.hasher, &b);
        if self.open.is_none() {
            self.open = Some(self.begin().await?);
        }
        let o = self.open.as_mut().expect("open");
        o.len += b.len() as u64;
        o.fresh += b.len() as u64;
        o.buffered += b.len();
        o.buf.push(b);
        if o.buffered >= PART {
            self.send_part().await?;
        }
        if self.open.as_ref().is_some_and(|o| o.len >= SEGMENT_MAX) {
            self.persist().await?;
        }
        Ok(())
    }

    /// A new segment, starting with the session's small trailing segment if there is one.
    async fn begin(&self) -> Result<Open> {
        let key = Layout::segment_rel(&self.id, &random_hex());
        let mut o = Open {
            path: self.s.layout.relative(&key),
            key,
            buf: Vec::new(),
            buffered: 0,
            len: 0,
            fresh: 0,
            carry: None,
            upload: None,
            parts: Vec::new(),
            in_flight: None,
        };
        if let Some(c) = self.state.segments.last().filter(|c| c.size < MIN_SEGMENT) {
            let path = self.s.layout.relative(&c.key);
            let bytes = self.s.get_opt(&path).await?;
            let Some(bytes) = bytes.filter(|b| b.len() as u64 == c.size) else {
                return Err(ErrorKind::Corrupt {
                    what: format!("{}/{path}", self.s.name),
                    message: format!(
                        "segment of upload {} is missing or not {} bytes",
                        self.id, c.size
                    ),
                }
                .into());
            };
            o.len = c.size;
            o.buffered = bytes.len();
            o.buf.push(bytes);
            o.carry = Some(c.clone());
        }
        Ok(o)
    }

    /// Send the buffered bytes as the next part of the segment's multipart upload (created
    /// and recorded in the state first when this is its first part).
    async fn send_part(&mut self) -> Result<()> {
        let mut o = self.open.take().expect("open");
        let res = self.send_part_of(&mut o).await;
        self.open = Some(o);
        res
    }

    async fn send_part_of(&mut self, o: &mut Open) -> Result<()> {
        let s = self.s.clone();
        if o.upload.is_none() {
            let upload = s
                .multipart
                .create_multipart(&o.path)
                .await
                .map_err(|e| store_err(&o.path, e))?;
            let pending = Pending {
                key: o.key.clone(),
                upload: upload.clone(),
            };
            match self.record(|next| next.pending.push(pending.clone())).await {
                Ok(Ok(())) => {}
                other => {
                    let _ = s.multipart.abort_multipart(&o.path, &upload).await;
                    return Err(match other {
                        Err(e) => e,
                        _ => lost(&s, &self.repo, &self.id, self.started).await,
                    });
                }
            }
            o.upload = Some(upload);
        }
        o.settle().await.map_err(|e| store_err(&o.path, e))?;
        let payload = o.take_payload();
        let (path, upload, idx) = (
            o.path.clone(),
            o.upload.clone().expect("created above"),
            o.parts.len(),
        );
        let mp = s.multipart.clone();
        o.in_flight = Some(tokio::spawn(async move {
            mp.put_part(&path, &upload, idx, payload).await
        }));
        Ok(())
    }

    /// Complete the open segment and record it (with the hash state) in the session.
    async fn persist(&mut self) -> Result<()> {
        let Some(mut o) = self.open.take() else {
            return Ok(());
        };
        if o.fresh == 0 {
            return Ok(());
        }
        let s = self.s.clone();
        let written = async {
            match o.upload.clone() {
                Some(upload) => {
                    o.settle().await?;
                    if o.buffered > 0 {
                        let payload = o.take_payload();
                        let part = s
                            .multipart
                            .put_part(&o.path, &upload, o.parts.len(), payload)
                            .await?;
                        o.parts.push(part);
                    }
                    s.multipart
                        .complete_multipart(&o.path, &upload, std::mem::take(&mut o.parts))
                        .await
                        .map(drop)
                }
                None => {
                    let payload = o.take_payload();
                    s.store.put(&o.path, payload).await.map(drop)
                }
            }
        }
        .await;
        if let Err(e) = written {
            self.open = Some(o);
            return Err(store_err(
                &self
                    .s
                    .layout
                    .relative(&self.open.as_ref().expect("put back").key),
                e,
            ));
        }
        let sha256 = hasher_state(&self.hasher);
        let recorded = self
            .record(|next| {
                if o.carry.is_some() {
                    next.segments.pop();
                }
                next.segments.push(Segment {
                    key: o.key.clone(),
                    size: o.len,
                });
                next.size = next.segments.iter().map(|x| x.size).sum();
                next.sha256 = sha256.clone();
                next.pending.retain(|p| p.key != o.key);
            })
            .await?;
        match recorded {
            Ok(()) => {
                if let Some(c) = &o.carry {
                    s.delete_quietly(&s.layout.relative(&c.key)).await;
                }
                Ok(())
            }
            Err(Lost) => {
                s.delete_quietly(&o.path).await;
                Err(lost(&s, &self.repo, &self.id, self.started).await)
            }
        }
    }

    /// Record `change` in the session: applied to the state as this request last wrote
    /// (or read) it, and swapped in. When another write got there first but left the
    /// session's bytes as they were (it only recorded a multipart upload: a request that
    /// is about to lose its race, or a node that died with that write in flight), the
    /// change is applied again on top of it; `Lost` when the bytes moved on, a commit
    /// started, or the session kept changing.
    async fn record(
        &mut self,
        change: impl Fn(&mut State),
    ) -> Result<std::result::Result<(), Lost>> {
        for _ in 0..blobs::CAS_TRIES {
            let mut next = self.state.clone();
            change(&mut next);
            next.rev = random_hex();
            if let Ok(v) = swap(&self.s, &self.id, &self.version, &next).await? {
                self.state = next;
                self.version = v;
                return Ok(Ok(()));
            }
            let fresh = match load(&self.s, &self.repo, &self.id).await {
                Ok(fresh) => fresh,
                Err(e) if e.is_not_found() => return Ok(Err(Lost)),
                Err(e) => return Err(e),
            };
            let same_bytes =
                fresh.state.size == self.state.size && fresh.state.segments == self.state.segments;
            if fresh.state.committing || !same_bytes {
                return Ok(Err(Lost));
            }
            self.state = fresh.state;
            self.version = fresh.version;
        }
        Ok(Err(Lost))
    }

    /// Drop the open segment (a failed or lost append): its multipart upload is aborted.
    async fn abandon(&mut self) {
        let Some(mut o) = self.open.take() else {
            return;
        };
        let _ = o.settle().await;
        if let Some(upload) = &o.upload {
            let _ = self.s.multipart.abort_multipart(&o.path, upload).await;
        }
    }
}

pub(crate) async fn commit(
    s: &Arc<Inner>,
    repo: &RepoName,
    id: &str,
    digest: &Digest,
) -> Result<u64> {
    let _busy = s.busy(id)?;
    let Versioned { state, version } = load(s, repo, id).await?;
    let actual = match digest.algorithm() {
        Algorithm::Sha256 => Hasher::Sha256(hasher_from(s, id, &state)?).finish(),
        alg => blobs::hash_segments(s, &state.segments, alg).await?,
    };
    if &actual != digest {
        // A session whose commit started stays the commit's.
        if !state.committing {
            let current = Versioned {
                state: state.clone(),
                version,
            };
            discard(s, id, current, OnChange::Retry).await?;
        }
        return Err(ErrorKind::DigestMismatch {
            id: id.to_string(),
            expected: digest.clone(),
            actual,
            size: state.size,
        }
        .into());
    }
    if !state.committing {
        // From here on appends (on any node) are refused.
        let mut next = state.clone();
        next.committing = true;
        next.digest = Some(digest.to_string());
        next.rev = random_hex();
        if swap(s, id, &version, &next).await?.is_err() {
            return Err(lost(s, repo, id, state.size).await);
        }
    }
    let ours = BlobPointer::segments(state.size, state.segments.clone());
    // Published before (by this session, a commit on another node, or another session):
    // that pointer is touched and stays, so a collection running now keeps it.
    if let Published::Existing(existing) = blobs::publish(s, digest, &ours).await? {
        if existing.segments != ours.segments {
            blobs::remove_segments(s, &ours.segments).await;
        }
    }
    blobs::link(s, repo, digest).await?;
    finish(s, id, &state).await;
    Ok(state.size)
}

/// End a session whose segments now belong to a blob: abort what is pending, remove the state.
async fn finish(s: &Inner, id: &str, state: &State) {
    for p in &state.pending {
        let _ = s
            .multipart
            .abort_multipart(&s.layout.relative(&p.key), &p.upload)
            .await;
    }
    s.delete_quietly(&s.layout.upload(id)).await;
}

/// What a removal does when the session changed since it was read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnChange {
    /// Leave it (expiry: a session written since is not idle).
    Skip,
    /// Remove it as it is now, unless a commit started meanwhile (a cancel, a digest that
    /// does not match).
    Retry,
}

/// End a session and remove what it wrote; the bytes removed, or `None` when it was left
/// (see [`OnChange`]). The session is fenced first (`ending`), so no request adds to it
/// while it goes, and its state is removed last, so a node dying midway leaves it for the
/// next expiry to finish.
async fn discard(
    s: &Inner,
    id: &str,
    mut current: Versioned,
    on_change: OnChange,
) -> Result<Option<u64>> {
    let mut tries = 0;
    while !current.state.ending {
        let mut next = current.state.clone();
        next.ending = true;
        next.rev = random_hex();
        if swap(s, id, &current.version, &next).await?.is_ok() {
            current.state = next;
            break;
        }
        tries += 1;
        match read(s, id).await? {
            None => return Ok(Some(0)), // removed meanwhile
            Some(fresh) if fresh.state.ending => current = fresh,
            Some(_) if on_change == OnChange::Skip => return Ok(None),
            Some(fresh) if fresh.state.committing => return Ok(None),
            Some(_) if tries >= blobs::CAS_TRIES => {
                return Err(ErrorKind::UploadBusy { id: id.to_string() }.into());
            }
            Some(fresh) => current = fresh,
        }
    }
    let state = current.state;
    for p in &state.pending {
        let _ = s
            .multipart
            .abort_multipart(&s.layout.relative(&p.key), &p.upload)
            .await;
    }
    // What is under the session's prefix (its segments, and whatever a request that lost a
    // race left), and the segments it recorded, except those a published blob owns.
    let owned = owned_by_blob(s, id, &state).await?;
    let prefix = s.layout.session_data(id);
    let mut listed = s.store.list(Some(&prefix));
    let mut keys = Vec::new();
    while let Some(meta) = listed.next().await {
        match meta {
            Ok(m) => keys.push(m.location),
            Err(e) => return Err(store_err(&prefix, e)),
        }
    }
    let recorded: Vec<Path> = state
        .segments
        .iter()
        .map(|seg| s.layout.relative(&seg.key))
        .collect();
    if owned {
        keys.retain(|k| !recorded.contains(k));
    } else {
        for p in recorded {
            if !keys.contains(&p) {
                keys.push(p);
            }
        }
    }
    for k in keys {
        s.delete_quietly(&k).await;
    }
    s.delete(&s.layout.upload(id)).await?;
    Ok(Some(if owned { 0 } else { state.size }))
}

/// Whether the segments of a committing session are a published blob's: the pointer of
/// the digest it commits (recorded with `committing`; the SHA-256 of its bytes for a state
/// written before the digest was recorded) names them, live or being collected.
async fn owned_by_blob(s: &Inner, id: &str, state: &State) -> Result<bool> {
    if !state.committing || state.segments.is_empty() {
        return Ok(false);
    }
    let digest = match state.digest.as_deref().map(Digest::parse) {
        Some(Ok(d)) => d,
        Some(Err(_)) | None => match hasher_from(s, id, state) {
            Ok(h) => Hasher::Sha256(h).finish(),
            // No digest to look up: the segments are kept (left, never lost).
            Err(_) => return Ok(true),
        },
    };
    Ok(blobs::stored(s, &digest)
        .await?
        .and_then(|st| st.pointer)
        .is_some_and(|p| p.segments == state.segments))
}

pub(crate) async fn cancel(s: &Arc<Inner>, repo: &RepoName, id: &str) -> Result<()> {
    let _busy = s.busy(id)?;
    let current = load(s, repo, id).await?;
    // A session whose commit started is the commit's (its node may be publishing it now).
    let busy = || Error::from(ErrorKind::UploadBusy { id: id.to_string() });
    if current.state.committing {
        return Err(busy());
    }
    match discard(s, id, current, OnChange::Retry).await? {
        Some(_) => Ok(()),
        None => Err(busy()),
    }
}

pub(crate) async fn expire(s: &Arc<Inner>, idle: Duration) -> Result<Expired> {
    let cutoff = cutoff_ms(idle);
    let prefix = s.layout.uploads();
    let mut listed = s.store.list(Some(&prefix));
    let mut old = Vec::new();
    while let Some(meta) = listed.next().await {
        let meta = meta.map_err(|e| store_err(&prefix, e))?;
        if meta.last_modified.timestamp_millis() <= cutoff {
            old.push(meta);
        }
    }
    let mut out = Expired::default();
    for meta in old {
        let Some(id) = meta.location.filename().map(str::to_string) else {
            continue;
        };
        if !is_session_id(&id) {
            continue;
        }
        let Ok(_busy) = s.busy(&id) else {
            continue; // being written by a request of this node
        };
        let age = now_secs().saturating_sub(meta.last_modified.timestamp().max(0) as u64);
        match read(s, &id).await {
            Ok(Some(current)) => {
                if current.version.e_tag != meta.e_tag {
                    continue; // written since it was listed
                }
                match discard(s, &id, current, OnChange::Skip).await? {
                    Some(bytes) => out.bytes += bytes,
                    None => continue, // written since it was read
                }
            }
            Ok(None) => continue,
            // Not a state at all: nothing names it or writes it, so it goes alone.
            Err(e) if matches!(e.kind(), ErrorKind::Corrupt { .. }) => {
                s.delete(&meta.location).await?;
            }
            Err(e) => return Err(e),
        }
        out.sessions += 1;
        tracing::info!(upload = %id, age_s = age, store = %s.name, "upload session expired");
    }
    Ok(out)
}

/// Milliseconds since the epoch at or before which a session's last write makes it idle
/// for `idle`.
fn cutoff_ms(idle: Duration) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    now - idle.as_millis().min(i64::MAX as u128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_state_round_trips() {
        let mut h = sha2::Sha256::default();
        sha2::Digest::update(&mut h, b"hello ");
        let saved = hasher_state(&h);
        let raw = hex::decode(&saved).unwrap();
        let mut back = sha2::Sha256::deserialize(raw.as_slice().try_into().unwrap()).unwrap();
        sha2::Digest::update(&mut back, b"world");
        assert_eq!(
            Hasher::Sha256(back).finish(),
            Digest::sha256(b"hello world")
        );
    }
}
