//! Manifests, tags, referrers and the repository list.
//!
//! A manifest's bytes are a blob like any other: a pointer at its content address holding
//! them inline, published create-only (If-None-Match) or touched when it is there already
//! ([`super::blobs`]), so garbage collection sees manifests as blobs and removes them the
//! same way. A repository holds a manifest through a revision object naming its media type
//! and its last-touch time (emptied, not deleted, when garbage collection removes it).
//! A tag is an object holding a digest, moved by compare-and-swap on the version read (a
//! conflict rereads and retries: the last writer wins, as with distribution, and no tag is
//! ever a mix of two writes). Tags are listed in the store's key order, the lexical order
//! the spec asks for.

use std::sync::Arc;

use futures_util::StreamExt;
use hoist_image::{Descriptor, Digest, MAX_MANIFEST_SIZE};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, UpdateVersion};

use super::blobs::{self, BlobPointer};
use super::{Inner, Versioned, get_versioned, is_not_found, now_ms, store_err};
use crate::error::{Error, ErrorKind, Result};
use crate::names::RepoName;
use crate::storage::{ManifestPut, StoredManifest};

/// Compare-and-swap rounds for one tag move before giving up (each round loses only to
/// another write of the same tag that landed in between).
const TAG_TRIES: usize = 16;

fn corrupt(s: &Inner, key: &Path, message: impl Into<String>) -> Error {
    ErrorKind::Corrupt {
        what: format!("{}/{key}", s.name),
        message: message.into(),
    }
    .into()
}

pub(crate) async fn put(s: &Inner, repo: &RepoName, put: &ManifestPut) -> Result<()> {
    blobs::publish(s, &put.digest, &BlobPointer::inline(&put.raw)).await?;
    s.manifests.insert(put.digest.clone(), put.raw.clone());
    // The referrer entry before the revision: it is listed only once the revision exists.
    if let Some((subject, desc)) = &put.referrer {
        let json = serde_json::to_vec(desc).expect("a descriptor serializes");
        s.put(&s.layout.referrer(repo, subject, &put.digest), json)
            .await?;
    }
    let rev = Revision {
        media_type: put.media_type.clone(),
        touched: now_ms(),
    };
    s.put(&s.layout.revision(repo, &put.digest), rev.to_json())
        .await?;
    for tag in &put.tags {
        tag_move(s, repo, tag, &put.digest).await?;
    }
    Ok(())
}

/// What a repository's revision object holds: the media type the manifest was pushed with
/// and when it was last put or touched (milliseconds since the epoch).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Revision {
    pub media_type: String,
    #[serde(default)]
    pub touched: u64,
}

impl Revision {
    pub(crate) fn to_json(&self) -> bytes::Bytes {
        serde_json::to_vec(self)
            .expect("a revision serializes")
            .into()
    }
}

/// `repo`'s revision of manifest `d` with its version; `None` when the repository does not
/// hold it (no object, or an emptied one).
pub(crate) async fn revision(
    s: &Inner,
    repo: &RepoName,
    d: &Digest,
) -> Result<Option<(Revision, UpdateVersion)>> {
    let key = s.layout.revision(repo, d);
    let Some(Versioned {
        bytes: raw,
        version,
        modified_ms: modified,
    }) = get_versioned(s, &key).await?
    else {
        return Ok(None);
    };
    if raw.is_empty() {
        return Ok(None);
    }
    let mut rev = if raw.starts_with(b"{") {
        serde_json::from_slice::<Revision>(&raw)
            .map_err(|e| corrupt(s, &key, format!("not a manifest revision: {e}")))?
    } else {
        // A bare media type.
        Revision {
            media_type: String::from_utf8_lossy(&raw).into_owned(),
            touched: 0,
        }
    };
    if rev.touched == 0 {
        rev.touched = modified;
    }
    Ok(Some((rev, version)))
}

/// Point `tag` at `digest`, conditional on the version read.
async fn tag_move(s: &Inner, repo: &RepoName, tag: &str, digest: &Digest) -> Result<()> {
    let key = s.layout.tag(repo, tag);
    let value = digest.to_string();
    for _ in 0..TAG_TRIES {
        let mode = match s.store.get(&key).await {
            Ok(r) => {
                let version = UpdateVersion {
                    e_tag: r.meta.e_tag.clone(),
                    version: r.meta.version.clone(),
                };
                let now = r.bytes().await.map_err(|e| store_err(&key, e))?;
                if now == value.as_bytes() {
                    return Ok(());
                }
                PutMode::Update(version)
            }
            Err(e) if is_not_found(&e) => PutMode::Create,
            Err(e) => return Err(store_err(&key, e)),
        };
        match s
            .store
            .put_opts(&key, value.clone().into(), PutOptions::from(mode))
            .await
        {
            Ok(_) => return Ok(()),
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => continue,
            Err(e) => return Err(store_err(&key, e)),
        }
    }
    Err(ErrorKind::Io {
        what: format!("{}/{key}", s.name),
        source: std::io::Error::other(format!(
            "tag {tag:?} kept changing under {TAG_TRIES} attempts to move it"
        )),
    }
    .into())
}

pub(crate) async fn tag_resolve(s: &Inner, repo: &RepoName, tag: &str) -> Result<Option<Digest>> {
    let key = s.layout.tag(repo, tag);
    let Some(raw) = s.get_opt(&key).await? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&raw);
    Digest::parse(text.trim())
        .map(Some)
        .map_err(|e| corrupt(s, &key, e.to_string()))
}

/// The bytes of manifest `d`, from the cache or the store (checked against the digest).
async fn raw(s: &Arc<Inner>, d: &Digest) -> Result<Option<bytes::Bytes>> {
    if let Some(b) = s.manifests.get(d) {
        return Ok(Some(b));
    }
    let Some(raw) = blobs::bytes(s, d, MAX_MANIFEST_SIZE as u64).await? else {
        return Ok(None);
    };
    let actual = Digest::of(d.algorithm(), &raw);
    if &actual != d {
        return Err(corrupt(
            s,
            &s.layout.blob(d),
            format!("holds bytes of digest {actual}"),
        ));
    }
    s.manifests.insert(d.clone(), raw.clone());
    Ok(Some(raw))
}

pub(crate) async fn get(
    s: &Arc<Inner>,
    repo: &RepoName,
    d: &Digest,
) -> Result<Option<StoredManifest>> {
    let Some((rev, _)) = revision(s, repo, d).await? else {
        return Ok(None);
    };
    let Some(raw) = raw(s, d).await? else {
        return Ok(None);
    };
    Ok(Some(StoredManifest {
        digest: d.clone(),
        media_type: rev.media_type,
        raw,
    }))
}

/// Whether `repo` holds manifest `d`.
pub(crate) async fn exists(s: &Inner, repo: &RepoName, d: &Digest) -> Result<bool> {
    Ok(revision(s, repo, d).await?.is_some())
}

/// Every key under `prefix`.
pub(crate) async fn list(s: &Inner, prefix: &Path) -> Result<Vec<object_store::ObjectMeta>> {
    let mut out = Vec::new();
    let mut listed = s.store.list(Some(prefix));
    while let Some(m) = listed.next().await {
        out.push(m.map_err(|e| store_err(prefix, e))?);
    }
    Ok(out)
}

pub(crate) async fn delete(s: &Arc<Inner>, repo: &RepoName, d: &Digest) -> Result<()> {
    let unknown = || -> Error {
        ErrorKind::ManifestUnknown {
            repo: repo.to_string(),
            what: format!("manifest {d}"),
        }
        .into()
    };
    let Some(m) = get(s, repo, d).await? else {
        return Err(unknown());
    };
    s.delete(&s.layout.revision(repo, d)).await?;
    // Tags pointing at it. (A tag moved elsewhere between the read and the delete loses that
    // move: the store has no conditional delete.)
    let want = d.to_string();
    for meta in list(s, &s.layout.tags(repo)).await? {
        if let Some(raw) = s.get_opt(&meta.location).await?
            && raw.as_ref() == want.as_bytes()
        {
            s.delete(&meta.location).await?;
        }
    }
    #[derive(serde::Deserialize)]
    struct Subject {
        subject: Option<Descriptor>,
    }
    if let Ok(Subject {
        subject: Some(subject),
    }) = serde_json::from_slice::<Subject>(&m.raw)
    {
        s.delete(&s.layout.referrer(repo, &subject.digest, d))
            .await?;
    }
    Ok(())
}

pub(crate) async fn tag_delete(s: &Inner, repo: &RepoName, tag: &str) -> Result<()> {
    let key = s.layout.tag(repo, tag);
    if !s.exists(&key).await? {
        return Err(ErrorKind::ManifestUnknown {
            repo: repo.to_string(),
            what: format!("tag {tag:?}"),
        }
        .into());
    }
    s.delete(&key).await
}

/// Whether anything is stored under `prefix` (one listing request).
async fn any_under(s: &Inner, prefix: &Path) -> Result<bool> {
    match s.store.list(Some(prefix)).next().await {
        None => Ok(false),
        Some(Ok(_)) => Ok(true),
        Some(Err(e)) => Err(store_err(prefix, e)),
    }
}

pub(crate) async fn tags(s: &Inner, repo: &RepoName) -> Result<Option<Vec<String>>> {
    let mut out: Vec<String> = list(s, &s.layout.tags(repo))
        .await?
        .into_iter()
        .filter_map(|m| m.location.filename().map(str::to_string))
        .collect();
    if out.is_empty()
        && !any_under(s, &s.layout.links(repo)).await?
        && !any_under(s, &s.layout.manifests(repo)).await?
    {
        return Ok(None);
    }
    out.sort();
    Ok(Some(out))
}

pub(crate) async fn repositories(s: &Inner) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut queue = vec![(s.layout.repos(), String::new())];
    while let Some((prefix, name)) = queue.pop() {
        let listed = s
            .store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| store_err(&prefix, e))?;
        for dir in listed.common_prefixes {
            let Some(last) = dir.filename().map(str::to_string) else {
                continue;
            };
            if last == "_blobs" || last == "_manifests" {
                if !name.is_empty() && out.last() != Some(&name) {
                    out.push(name.clone());
                }
                continue;
            }
            if last.starts_with('_') {
                continue;
            }
            let full = if name.is_empty() {
                last
            } else {
                format!("{name}/{last}")
            };
            queue.push((dir, full));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

pub(crate) async fn referrers(
    s: &Inner,
    repo: &RepoName,
    subject: &Digest,
) -> Result<Vec<Descriptor>> {
    let mut out = Vec::new();
    for meta in list(s, &s.layout.referrers(repo, subject)).await? {
        let Some(raw) = s.get_opt(&meta.location).await? else {
            continue;
        };
        let Ok(desc) = serde_json::from_slice::<Descriptor>(&raw) else {
            continue;
        };
        // Listed only once the manifest itself is there.
        if exists(s, repo, &desc.digest).await? {
            out.push(desc);
        }
    }
    out.sort_by(|a, b| a.digest.cmp(&b.digest));
    Ok(out)
}
