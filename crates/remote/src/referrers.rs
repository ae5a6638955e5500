//! Referrers: the manifests that point at another one with `subject` (signatures,
//! attestations, SBOMs), found the two ways the OCI distribution spec 1.1 gives:
//!
//! - the referrers API, `GET /v2/<name>/referrers/<digest>`: an index of descriptors,
//!   answered 200 (empty when there are none) by a registry that has it;
//! - the referrers tag schema, for registries without it (distribution 2.8): an index
//!   kept by clients under the tag `<alg>-<hex>` of the subject's digest
//!   (`sha256-1a2b...`), as cosign and oras write it.
//!
//! A registry without the API answers the API's URL 404 (no such route), 400 or 405:
//! [`by_api`] says `None` then, and the tag schema is read instead ([`by_tag`]).
//! Writing a referrer to such a registry means adding its descriptor to the index under
//! the fallback tag ([`add_to_tag`]).

use hoist_image::{Descriptor, Digest, IndexManifest, Manifest, MediaType};
use reqwest::Method;

use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::transport::{Body, Client, pull_scope};

/// Pages of a referrers answer followed at most.
const MAX_PAGES: usize = 100;

/// The tag the referrers tag schema keeps `subject`'s referrers under: `sha256-<hex>`
/// (the algorithm, a dash, the hex truncated to 64 characters).
pub fn fallback_tag(subject: &Digest) -> String {
    let hex = subject.hex();
    format!(
        "{}-{}",
        subject.algorithm().as_str(),
        &hex[..hex.len().min(64)]
    )
}

/// True for a tag of the referrers tag schema (`sha256-` and 64 hex digits): such tags
/// hold referrers indexes, not images, and a mirror that copies referrers maintains them
/// itself. Tags with a suffix (cosign's `sha256-<hex>.sig`) are ordinary tags.
pub fn is_fallback_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The referrers of `subject` in `repo` through the API, or `None` when the registry does
/// not have the API.
pub async fn by_api(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
) -> Result<Option<Vec<Descriptor>>> {
    let mut url = client.url(repo, &format!("referrers/{subject}"))?;
    let mut out = Vec::new();
    for _ in 0..MAX_PAGES {
        let r = client
            .send(
                repo,
                &pull_scope(repo),
                Method::GET,
                url.clone(),
                &[("accept", MediaType::OciIndex.as_str().to_string())],
                Body::Empty,
            )
            .await?;
        if out.is_empty() && matches!(r.status(), 400 | 404 | 405 | 501) {
            tracing::debug!(
                registry = repo.registry(),
                status = r.status(),
                "no referrers API"
            );
            return Ok(None);
        }
        let r = r.expect(&[200]).await?;
        let what = r.what().to_string();
        let next = r
            .header("link")
            .and_then(crate::ops::next_link)
            .map(str::to_string);
        let raw = r.bytes(hoist_image::MAX_MANIFEST_SIZE).await?;
        out.extend(index_entries(&raw, &what)?);
        match next {
            Some(n) => {
                url = url
                    .join(&n)
                    .map_err(|_| Error::invalid_response(&what, "unparseable Link header"))?;
            }
            None => return Ok(Some(out)),
        }
    }
    Err(Error::invalid_response(
        format!("referrers of {repo}@{subject}"),
        format!("more than {MAX_PAGES} pages"),
    ))
}

/// The referrers of `subject` in `repo` under the fallback tag (none when the tag does
/// not exist).
pub async fn by_tag(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
) -> Result<Vec<Descriptor>> {
    Ok(fallback_index(client, repo, subject)
        .await?
        .map(|m| m.manifests)
        .unwrap_or_default())
}

/// The referrers of `subject` in `repo`: through the API when the registry has it
/// (`api`: known already, or `None` to find out), else under the fallback tag. Returns
/// them and whether the registry has the API.
pub async fn list(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    api: Option<bool>,
) -> Result<(Vec<Descriptor>, bool)> {
    if api != Some(false)
        && let Some(list) = by_api(client, repo, subject).await?
    {
        return Ok((list, true));
    }
    Ok((by_tag(client, repo, subject).await?, false))
}

async fn fallback_index(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
) -> Result<Option<IndexManifest>> {
    let tag = fallback_tag(subject);
    let m = match client.get_manifest(repo, &tag).await {
        Ok(m) => m,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    match m.as_index() {
        Some(i) => Ok(Some(i.clone())),
        None => Err(Error::invalid_response(
            format!("{repo}:{tag}"),
            "the referrers tag holds an image, not an index",
        )),
    }
}

/// Add `referrers` to the index under `subject`'s fallback tag in `repo` (made when
/// missing), as clients of a registry without the referrers API do: one `GET` of the
/// index and, when some are not listed yet, one `PUT`. The referrers must be in `repo`
/// already (a registry may refuse an index that lists a manifest it lacks). Returns how
/// many were added. Callers serialize updates of one tag.
pub async fn add_to_tag(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    referrers: &[Descriptor],
) -> Result<usize> {
    let mut index = fallback_index(client, repo, subject)
        .await?
        .unwrap_or_else(|| IndexManifest {
            schema_version: 2,
            media_type: Some(MediaType::OciIndex),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: Default::default(),
        });
    let before = index.manifests.len();
    for r in referrers {
        if !index.manifests.iter().any(|d| d.digest == r.digest) {
            index.manifests.push(r.clone());
        }
    }
    let added = index.manifests.len() - before;
    if added > 0 {
        let m = Manifest::from_index(&index)?;
        client
            .put_manifest(repo, &fallback_tag(subject), &m)
            .await?;
    }
    Ok(added)
}

/// The descriptors of an index body.
fn index_entries(raw: &[u8], what: &str) -> Result<Vec<Descriptor>> {
    #[derive(serde::Deserialize)]
    struct Listing {
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    let l: Listing = serde_json::from_slice(raw)
        .map_err(|e| Error::invalid_response(what, format!("not a referrers index: {e}")))?;
    Ok(l.manifests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_tags() {
        let d = Digest::sha256(b"x");
        let t = fallback_tag(&d);
        assert_eq!(t, format!("sha256-{}", d.hex()));
        assert!(is_fallback_tag(&t));
        for not in [
            "latest",
            "sha256-abc",
            &format!("{t}.sig"),
            &format!("sha256-{}", "g".repeat(64)),
            &format!("sha512-{}", "a".repeat(64)),
        ] {
            assert!(!is_fallback_tag(not), "{not}");
        }
    }

    #[test]
    fn index_bodies() {
        let d = Digest::sha256(b"x");
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d}","size":7,"artifactType":"application/example"}}]}}"#
        );
        let e = index_entries(body.as_bytes(), "GET x").unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].artifact_type.as_deref(), Some("application/example"));
        assert!(index_entries(b"{}", "GET x").unwrap().is_empty());
        let err = index_entries(b"<html>", "GET x").unwrap_err();
        assert!(err.to_string().contains("not a referrers index"), "{err}");
    }
}
