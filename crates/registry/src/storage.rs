//! The storage trait the server runs on. Async, so that one interface fits a local file
//! system and an object store alike, and dyn-compatible (`Arc<dyn Storage>`).
//!
//! Contract a backend must keep:
//! - blobs are content-addressed once for all repositories; a repository *sees* a blob
//!   only once it was pushed or mounted there;
//! - every commit is atomic: a reader sees the old state or the new one, never a partial one;
//! - a digest mismatch keeps nothing;
//! - only one request writes an upload session at a time, and that lock covers that session
//!   only (a second writer gets [`ErrorKind::UploadBusy`] at once, it does not queue);
//! - bodies are streams, in both directions: a blob is read a bounded chunk at a time as the
//!   client takes it, an upload is written as its request body arrives. No call holds a
//!   thread while a client is slow, and none keeps a whole blob in memory;
//! - an append whose body fails keeps the bytes that arrived before the failure, so the
//!   client can resume; bytes received are visible in [`Storage::upload_size`] soon after
//!   they arrive, even while the request is still open;
//! - when the storage is full, the upload that hit it is discarded (its space is free again
//!   at once) and the call answers [`ErrorKind::NoSpace`]; nothing partial becomes visible;
//! - [`Storage::uploads_expire`] removes sessions nobody wrote for longer than the time it is
//!   given, and the leftovers of sessions that never completed their start; it can run
//!   while requests are served.
//! - garbage collection (`crate::gc`) runs while requests are served, through a
//!   last-touch time per stored blob and per repository manifest. A blob is touched when it
//!   is stored, when an upload commit or a mount finds it stored already, and by
//!   [`Storage::blob_touch`]; a manifest when it is put (again) and by
//!   [`Storage::manifest_touch`]. [`Storage::blob_remove`] and [`Storage::manifest_remove`]
//!   remove only what was not touched since their cutoff, and never after a touch that
//!   answered `true`: a touch racing a removal either finds the item gone (`false`) or keeps
//!   it. With several nodes over one store, their clocks must agree within the grace period.
//!   A backend that does not implement these methods keeps the provided ones: it cannot be
//!   collected (the collection fails, naming why), and it removes nothing on its own.
//!
//! Errors are plain outcomes ([`Error`]): the server alone turns them into HTTP answers.
//!
//! [`ErrorKind::UploadBusy`]: crate::ErrorKind::UploadBusy
//! [`ErrorKind::NoSpace`]: crate::ErrorKind::NoSpace
//! [`Error`]: crate::Error

use std::io;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::Stream;
use hoist_image::{Descriptor, Digest};

use crate::error::{Error, ErrorKind, Result};
use crate::names::RepoName;

/// A body as a stream of byte chunks (a blob being read, a request body being appended).
/// An `Err` item ends it: the client went away, stalled, or the storage failed mid-read.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// A readable blob (or a byte range of one).
pub struct BlobRead {
    /// The bytes, from the range's start, as long as the range.
    pub body: ByteStream,
    /// The whole blob's size.
    pub size: u64,
}

impl std::fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobRead")
            .field("size", &self.size)
            .finish()
    }
}

/// A stored manifest.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    /// Its digest.
    pub digest: Digest,
    /// The media type it was pushed with.
    pub media_type: String,
    /// The raw bytes.
    pub raw: Bytes,
}

/// What a manifest PUT stores.
#[derive(Debug, Clone)]
pub struct ManifestPut {
    /// The digest of `raw` (sha256 unless pushed by a sha512 digest).
    pub digest: Digest,
    /// The media type (Content-Type) it was pushed with.
    pub media_type: String,
    /// The raw bytes.
    pub raw: Bytes,
    /// When the manifest has a `subject`: the subject's digest and this manifest's
    /// descriptor to list among the subject's referrers.
    pub referrer: Option<(Digest, Descriptor)>,
    /// Tags to point at it.
    pub tags: Vec<String>,
}

/// What [`Storage::uploads_expire`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Upload sessions removed (expired, or never completely started).
    pub sessions: u64,
    /// The bytes they held.
    pub bytes: u64,
}

/// A stored blob, as garbage collection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEntry {
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// When it was last stored or touched.
    pub touched: SystemTime,
}

/// A manifest a repository holds, as garbage collection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Its digest.
    pub digest: Digest,
    /// When it was last put or touched in this repository.
    pub touched: SystemTime,
}

/// Where blobs, manifests, tags and upload sessions live.
#[async_trait::async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The size of `digest` if the repository sees it.
    async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>>;

    /// Open `digest` in `repo` for reading, from `start` for `len` bytes (the whole blob
    /// when `range` is `None`). `Ok(None)` when the repository does not see it.
    async fn blob_read(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<(u64, u64)>,
    ) -> Result<Option<BlobRead>>;

    /// Make `digest` visible in `to` if `from` sees it. Returns whether it was mounted.
    async fn blob_mount(&self, from: &RepoName, to: &RepoName, digest: &Digest) -> Result<bool>;

    /// Remove `digest` from `repo` (BlobUnknown when it does not see it).
    async fn blob_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()>;

    /// Start an upload session in `repo`; returns its id.
    async fn upload_start(&self, repo: &RepoName) -> Result<String>;

    /// Bytes received so far (UploadUnknown when there is no such session).
    async fn upload_size(&self, repo: &RepoName, id: &str) -> Result<u64>;

    /// Append `body` to the session. With `start`, it must equal the bytes received so far
    /// (OffsetMismatch otherwise). Returns the new size. On a body error the bytes appended
    /// so far stay (BodyFailed says how many), so the client can ask the status and resume.
    async fn upload_append(
        &self,
        repo: &RepoName,
        id: &str,
        start: Option<u64>,
        body: ByteStream,
    ) -> Result<u64>;

    /// Check the session's content against `digest` and commit it as a blob of `repo`.
    /// On a mismatch the session and its data are discarded (DigestMismatch).
    /// Returns the blob's size.
    async fn upload_commit(&self, repo: &RepoName, id: &str, digest: &Digest) -> Result<u64>;

    /// Cancel the session and discard its data.
    async fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<()>;

    /// Remove the upload sessions nobody wrote to for longer than `idle` (a session being
    /// written right now is kept), and what is left of sessions whose start never completed.
    async fn uploads_expire(&self, idle: Duration) -> Result<Expired>;

    /// Store a manifest (and its tags, and its referrer entry) atomically.
    async fn manifest_put(&self, repo: &RepoName, put: ManifestPut) -> Result<()>;

    /// The manifest a tag points at.
    async fn tag_resolve(&self, repo: &RepoName, tag: &str) -> Result<Option<Digest>>;

    /// A manifest by digest, if `repo` has it.
    async fn manifest_get(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>>;

    /// Whether `repo` has the manifest.
    async fn manifest_exists(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;

    /// Delete a manifest, the tags pointing at it and its referrer entry
    /// (ManifestUnknown when absent).
    async fn manifest_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()>;

    /// Delete a tag (ManifestUnknown when absent).
    async fn tag_delete(&self, repo: &RepoName, tag: &str) -> Result<()>;

    /// All tags of `repo`, sorted; `None` when the repository is unknown.
    async fn tags(&self, repo: &RepoName) -> Result<Option<Vec<String>>>;

    /// All repositories, sorted.
    async fn repositories(&self) -> Result<Vec<String>>;

    /// The descriptors of the manifests in `repo` whose subject is `subject`.
    async fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Descriptor>>;

    /// The smallest chunk this backend stores without rewriting it later, advertised to
    /// clients as `OCI-Chunk-Min-Length` (smaller chunks are accepted all the same).
    fn chunk_min_length(&self) -> Option<u64> {
        None
    }

    /// A round trip through the storage for a readiness check: something written and read
    /// back, then removed. By default an upload session of [`PROBE_REPO`] gets a few bytes,
    /// its size is read back and it is cancelled (the write path pushes take); a backend
    /// may override it with a direct write and read of a sentinel.
    async fn probe(&self) -> Result<()> {
        let repo = RepoName::parse(PROBE_REPO)?;
        let id = self.upload_start(&repo).await?;
        let sentinel = Bytes::from_static(b"hoist readiness probe");
        let body: ByteStream = Box::pin(futures_util::stream::iter([Ok(sentinel.clone())]));
        let res = async {
            self.upload_append(&repo, &id, Some(0), body).await?;
            let size = self.upload_size(&repo, &id).await?;
            if size == sentinel.len() as u64 {
                Ok(())
            } else {
                Err(ErrorKind::Corrupt {
                    what: format!("probe upload {id}"),
                    message: format!("holds {size} bytes after writing {}", sentinel.len()),
                }
                .into())
            }
        }
        .await;
        let cancelled = self.upload_cancel(&repo, &id).await;
        res.and(cancelled)
    }

    /// Every blob stored, for all repositories (manifests are blobs too). The provided
    /// method says the backend cannot collect garbage; the garbage collection methods
    /// (this one, [`Storage::manifests`], [`Storage::blob_remove`],
    /// [`Storage::manifest_remove`]) come together.
    async fn blobs(&self) -> Result<Vec<BlobEntry>> {
        Err(no_gc())
    }

    /// Every manifest `repo` holds, tagged or not.
    async fn manifests(&self, _repo: &RepoName) -> Result<Vec<ManifestEntry>> {
        Err(no_gc())
    }

    /// Mark the blob in use now (a manifest being put references it, and found it in its
    /// repository); `false` when it is not stored. See the contract above for how it races
    /// [`Storage::blob_remove`]. The provided method, for backends without garbage
    /// collection (which never remove a blob behind a manifest's back), says it is stored.
    async fn blob_touch(&self, _digest: &Digest) -> Result<bool> {
        Ok(true)
    }

    /// Mark `repo`'s manifest in use now (an index being put lists it); `false` when the
    /// repository does not hold it. The provided method only checks that it is held.
    async fn manifest_touch(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        self.manifest_exists(repo, digest).await
    }

    /// Remove the blob, and every repository's view of it, unless it was touched at or
    /// after `cutoff`. Returns its size when removed, `None` when kept or already gone.
    async fn blob_remove(&self, _digest: &Digest, _cutoff: SystemTime) -> Result<Option<u64>> {
        Err(no_gc())
    }

    /// Remove `repo`'s manifest (and its referrer entry) unless it was touched at or after
    /// `cutoff`. Returns whether it was removed. Tags are not consulted: putting a tag on a
    /// manifest puts the manifest, which touches it.
    async fn manifest_remove(
        &self,
        _repo: &RepoName,
        _digest: &Digest,
        _cutoff: SystemTime,
    ) -> Result<bool> {
        Err(no_gc())
    }
}

/// What the provided garbage collection methods of [`Storage`] answer.
fn no_gc() -> Error {
    ErrorKind::Config("this storage backend does not support garbage collection".into()).into()
}

/// The repository the default [`Storage::probe`] opens (and cancels) an upload session in;
/// nothing is ever committed there.
pub const PROBE_REPO: &str = "hoist-probe/readyz";
