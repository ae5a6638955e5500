//! Garbage collection's side of the object-storage backend: the inventory (blob pointers,
//! a repository's revisions), touches and guarded removals.
//!
//! Last-touch times live in the objects themselves: a blob pointer and a repository's
//! revision each carry a `touched` time, rewritten by a touch with a compare-and-swap on
//! the version read (If-Match). A removal reads the object, keeps it when it was touched at
//! or after the cutoff, and otherwise replaces it, conditional on the version it read:
//! - a blob pointer by a tombstone naming its segments; then the segments and every
//!   repository's link go, and the tombstone is emptied (conditionally again: a commit of
//!   the same digest may have replaced it meanwhile, and then stays);
//! - a revision by an empty object; then its referrer entry goes.
//!
//! A touch and a removal of one object are thereby ordered by the store: if the touch
//! writes first, the removal's conditional write fails, and it reads again and finds the
//! object fresh; if the removal writes first, the touch reads a tombstone (or nothing) and
//! answers `false`, so the manifest PUT that asked fails with BLOB_UNKNOWN. Objects are
//! emptied rather than deleted because a delete cannot be made conditional: an
//! unconditional delete could remove what a racing commit had just written. An empty
//! object is absent for every read, and it is what a new commit replaces.
//!
//! Upload sessions (`uploads/`, `data/`) are not garbage collection's: a session's
//! segments become a blob's only when its commit publishes them, and expiry removes the
//! rest.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use hoist_image::{Descriptor, Digest};

use super::blobs::{self, BlobPointer, CAS_TRIES, ms};
use super::manifests::{self, Revision};
use super::{Inner, now_ms};
use crate::error::Result;
use crate::names::RepoName;
use crate::storage::{BlobEntry, ManifestEntry};

/// Objects read at once while listing the inventory (each a small GET).
const LIST_READS: usize = 16;
/// How long the repository list a removal deletes links from is reused: a collection
/// removes many blobs one after the other, and lists the repositories once at its start.
const REPOS_REUSE: Duration = Duration::from_secs(60);

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Every blob pointer that is live or being removed (a tombstone left by a collection that
/// stopped half-way is listed with its tombstone's time, so a later one finishes it).
pub(crate) async fn blobs(s: &Arc<Inner>) -> Result<Vec<BlobEntry>> {
    let digests: Vec<Digest> = manifests::list(s, &s.layout.blobs())
        .await?
        .into_iter()
        .filter(|m| m.size > 0) // emptied: collected
        .filter_map(|m| s.layout.blob_digest(&m.location))
        .collect();
    futures_util::stream::iter(digests)
        .map(|d| async move {
            let st = blobs::stored(s, &d).await?;
            Ok::<_, crate::Error>(st.and_then(|st| st.pointer).map(|p| BlobEntry {
                digest: d,
                size: p.size,
                touched: at(p.touched),
            }))
        })
        .buffered(LIST_READS)
        .try_filter_map(|e| async move { Ok(e) })
        .try_collect()
        .await
}

/// Every manifest `repo` holds.
pub(crate) async fn manifests(s: &Arc<Inner>, repo: &RepoName) -> Result<Vec<ManifestEntry>> {
    let prefix = s.layout.revisions(repo);
    let digests: Vec<Digest> = manifests::list(s, &prefix)
        .await?
        .into_iter()
        .filter(|m| m.size > 0)
        .filter_map(|m| {
            let mut parts: Vec<String> =
                m.location.parts().map(|p| p.as_ref().to_string()).collect();
            let hex = parts.pop()?;
            let alg = parts.pop()?;
            Digest::parse(&format!("{alg}:{hex}")).ok()
        })
        .collect();
    futures_util::stream::iter(digests)
        .map(|d| async move {
            let rev = manifests::revision(s, repo, &d).await?;
            Ok::<_, crate::Error>(rev.map(|(r, _)| ManifestEntry {
                digest: d,
                touched: at(r.touched),
            }))
        })
        .buffered(LIST_READS)
        .try_filter_map(|e| async move { Ok(e) })
        .try_collect()
        .await
}

/// Mark `repo`'s manifest `d` in use now; `false` when the repository does not hold it.
pub(crate) async fn manifest_touch(s: &Inner, repo: &RepoName, d: &Digest) -> Result<bool> {
    let start = now_ms();
    let key = s.layout.revision(repo, d);
    for _ in 0..CAS_TRIES {
        let Some((rev, version)) = manifests::revision(s, repo, d).await? else {
            return Ok(false);
        };
        if rev.touched >= start {
            return Ok(true); // touched by another request since this one began
        }
        let next = Revision {
            touched: now_ms(),
            ..rev
        };
        if s.swap(&key, &version, next.to_json()).await? {
            return Ok(true);
        }
    }
    Err(s.contended(&key))
}

/// Remove blob `d` unless it was touched at or after `cutoff` (module docs).
pub(crate) async fn blob_remove(
    s: &Arc<Inner>,
    d: &Digest,
    cutoff: SystemTime,
) -> Result<Option<u64>> {
    let cutoff = ms(cutoff);
    for _ in 0..CAS_TRIES {
        let Some(st) = blobs::stored(s, d).await? else {
            return Ok(None);
        };
        let Some(p) = st.pointer else {
            return Ok(None); // collected already
        };
        if p.touched >= cutoff {
            return Ok(None); // fresh, or another collection is removing it right now
        }
        let (tomb, version) = if p.removed {
            // Left by a collection that stopped half-way: finish it.
            (p, st.version)
        } else {
            let tomb = BlobPointer {
                removed: true,
                touched: now_ms(),
                text: None,
                hex: None,
                ..p
            };
            let body = Bytes::from(serde_json::to_vec(&tomb).expect("a pointer serializes"));
            match blobs::swap(s, d, Some(&st.version), body).await? {
                Some(v) => (tomb, v),
                None => continue, // touched (or changed) meanwhile: look again
            }
        };
        // Gone for every node from here on: touches answer false, reads find no pointer.
        s.pointers.remove(d);
        s.manifests.remove(d);
        blobs::remove_segments(s, &tomb.segments).await;
        unlink_everywhere(s, d).await?;
        // Emptied unless a commit of the digest replaced the tombstone meanwhile.
        let _ = blobs::swap(s, d, Some(&version), Bytes::new()).await?;
        return Ok(Some(tomb.size));
    }
    Err(s.contended(&s.layout.blob(d)))
}

/// Remove `repo`'s manifest `d` unless it was touched at or after `cutoff`.
pub(crate) async fn manifest_remove(
    s: &Arc<Inner>,
    repo: &RepoName,
    d: &Digest,
    cutoff: SystemTime,
) -> Result<bool> {
    let cutoff = ms(cutoff);
    let key = s.layout.revision(repo, d);
    for _ in 0..CAS_TRIES {
        let Some((rev, version)) = manifests::revision(s, repo, d).await? else {
            return Ok(false);
        };
        if rev.touched >= cutoff {
            return Ok(false);
        }
        if !s.swap(&key, &version, Bytes::new()).await? {
            continue; // put or touched meanwhile: look again
        }
        // Its entry among its subject's referrers (listed only while the revision is there,
        // so a failure here hides nothing that should show).
        #[derive(serde::Deserialize)]
        struct Subject {
            subject: Option<Descriptor>,
        }
        if let Ok(Some(raw)) = blobs::bytes(s, d, hoist_image::MAX_MANIFEST_SIZE as u64).await
            && let Ok(Subject {
                subject: Some(subject),
            }) = serde_json::from_slice::<Subject>(&raw)
        {
            s.delete_quietly(&s.layout.referrer(repo, &subject.digest, d))
                .await;
        }
        return Ok(true);
    }
    Err(s.contended(&key))
}

/// Delete every repository's link to blob `d`.
async fn unlink_everywhere(s: &Arc<Inner>, d: &Digest) -> Result<()> {
    let repos = {
        let memo = s.repos.lock().unwrap_or_else(|e| e.into_inner());
        memo.as_ref()
            .filter(|(when, _)| when.elapsed() < REPOS_REUSE)
            .map(|(_, r)| r.clone())
    };
    let repos = match repos {
        Some(r) => r,
        None => manifests::repositories(s).await?,
    };
    futures_util::stream::iter(repos)
        .filter_map(|r| async move { RepoName::parse(&r).ok() })
        .map(|r| async move { s.delete(&s.layout.link(&r, d)).await })
        .buffer_unordered(LIST_READS)
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}

/// Remember the repositories just listed, for [`unlink_everywhere`].
pub(crate) fn remember_repos(s: &Inner, repos: &[String]) {
    *s.repos.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), repos.to_vec()));
}
