//! The storage trait the server runs on. Synchronous (`std::io`): the server calls it on
//! tokio's blocking threads, and streams request bodies to it through a bounded channel,
//! so a backend never holds an async lock and never sees a whole blob in memory.
//!
//! Contract a backend must keep:
//! - blobs are content-addressed once for all repositories; a repository *sees* a blob
//!   only once it was pushed or mounted there;
//! - every commit is atomic: a reader sees the old state or the new one, never a partial one;
//! - a digest mismatch keeps nothing;
//! - only one request writes an upload session at a time, and that lock covers that session only.

use std::io::{self, Read};

use bytes::Bytes;
use hoist_image::{Descriptor, Digest};

use crate::error::Result;
use crate::names::RepoName;

/// A request body as a backend sees it: blocks of bytes in order, then the end, or an
/// error when the client went away. Blocks are handed over as received (no copies). An empty
/// block means the client paused: a backend that holds bytes back must make all received so
/// far visible (in `upload_size`) before it waits for more.
pub type BodyBlocks<'a> = &'a mut dyn Iterator<Item = io::Result<Bytes>>;

/// A readable blob (or a byte range of one).
pub struct BlobReader {
    /// The bytes, already positioned at the range's start and limited to its length.
    pub reader: Box<dyn Read + Send>,
    /// The whole blob's size.
    pub size: u64,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
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
pub struct ManifestPut<'a> {
    /// The digest of `raw` (sha256 unless pushed by a sha512 digest).
    pub digest: &'a Digest,
    /// The media type (Content-Type) it was pushed with.
    pub media_type: &'a str,
    /// The raw bytes.
    pub raw: &'a [u8],
    /// When the manifest has a `subject`: the subject's digest and this manifest's
    /// descriptor to list among the subject's referrers.
    pub referrer: Option<(&'a Digest, &'a Descriptor)>,
    /// Tags to point at it.
    pub tags: &'a [String],
}

/// Where blobs, manifests, tags and upload sessions live.
pub trait Storage: Send + Sync + 'static {
    /// The size of `digest` if the repository sees it.
    fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>>;

    /// Open `digest` in `repo` for reading, from `start` for `len` bytes (the whole blob
    /// when `range` is `None`). `Ok(None)` when the repository does not see it.
    fn blob_read(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<(u64, u64)>,
    ) -> Result<Option<BlobReader>>;

    /// Make `digest` visible in `to` if `from` sees it (or, with `from == None`, if it is
    /// stored at all). Returns whether it was mounted.
    fn blob_mount(&self, from: Option<&RepoName>, to: &RepoName, digest: &Digest) -> Result<bool>;

    /// Remove `digest` from `repo` (BLOB_UNKNOWN when it does not see it).
    fn blob_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()>;

    /// Start an upload session in `repo`; returns its id.
    fn upload_start(&self, repo: &RepoName) -> Result<String>;

    /// Bytes received so far (BLOB_UPLOAD_UNKNOWN when there is no such session).
    fn upload_size(&self, repo: &RepoName, id: &str) -> Result<u64>;

    /// Append `body` to the session. With `start`, it must equal the bytes received so
    /// far (a 416 otherwise). Returns the new size. On a body error the bytes appended so
    /// far stay, so the client can ask the status and resume.
    fn upload_append(
        &self,
        repo: &RepoName,
        id: &str,
        start: Option<u64>,
        body: BodyBlocks<'_>,
    ) -> Result<u64>;

    /// Check the session's content against `digest` and commit it as a blob of `repo`.
    /// On a mismatch the session and its data are discarded (DIGEST_INVALID).
    /// Returns the blob's size.
    fn upload_commit(&self, repo: &RepoName, id: &str, digest: &Digest) -> Result<u64>;

    /// Cancel the session and discard its data.
    fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<()>;

    /// Store a manifest (and its tags, and its referrer entry) atomically.
    fn manifest_put(&self, repo: &RepoName, put: ManifestPut<'_>) -> Result<()>;

    /// The manifest a tag points at.
    fn tag_resolve(&self, repo: &RepoName, tag: &str) -> Result<Option<Digest>>;

    /// A manifest by digest, if `repo` has it.
    fn manifest_get(&self, repo: &RepoName, digest: &Digest) -> Result<Option<StoredManifest>>;

    /// Whether `repo` has the manifest.
    fn manifest_exists(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;

    /// Delete a manifest, the tags pointing at it and its referrer entry
    /// (MANIFEST_UNKNOWN when absent).
    fn manifest_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()>;

    /// Delete a tag (MANIFEST_UNKNOWN when absent).
    fn tag_delete(&self, repo: &RepoName, tag: &str) -> Result<()>;

    /// All tags of `repo`, sorted; `None` when the repository is unknown.
    fn tags(&self, repo: &RepoName) -> Result<Option<Vec<String>>>;

    /// All repositories, sorted.
    fn repositories(&self) -> Result<Vec<String>>;

    /// The descriptors of the manifests in `repo` whose subject is `subject`.
    fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Descriptor>>;

    /// A round trip through the storage for a readiness check: something written and read
    /// back, then removed. By default an upload session of [`PROBE_REPO`] gets a few bytes,
    /// its size is read back and it is cancelled (the write path pushes take); a backend
    /// may override it with a direct write and read of a sentinel.
    fn probe(&self) -> Result<()> {
        let repo = RepoName::parse(PROBE_REPO)?;
        let id = self.upload_start(&repo)?;
        let sentinel = Bytes::from_static(b"hoist readiness probe");
        let mut body = std::iter::once(Ok(sentinel.clone()));
        let res = self
            .upload_append(&repo, &id, Some(0), &mut body)
            .and_then(|_| {
                let size = self.upload_size(&repo, &id)?;
                if size == sentinel.len() as u64 {
                    Ok(())
                } else {
                    Err(crate::error::Error::new(
                        crate::error::Code::Unknown,
                        format!(
                            "probe upload holds {size} bytes after writing {}",
                            sentinel.len()
                        ),
                    ))
                }
            });
        let cancelled = self.upload_cancel(&repo, &id);
        res.and(cancelled)
    }
}

/// The repository the default [`Storage::probe`] opens (and cancels) an upload session in;
/// nothing is ever committed there.
pub const PROBE_REPO: &str = "hoist-probe/readyz";
