//! Where everything lives in the bucket, under an optional prefix:
//!
//! ```text
//! blobs/<alg>/<hex>                              blob pointer (JSON): size, the segments
//!                                                holding its bytes in order (or, for a
//!                                                manifest, the bytes inline), last touch;
//!                                                empty once garbage collection removed it
//! data/<session>/<nonce>                         a segment: bytes of an upload, written once
//! uploads/<session>                              upload session state (JSON), updated by
//!                                                compare-and-swap (If-Match)
//! repos/<name>/_blobs/<alg>/<hex>                empty: the repository sees the blob
//! repos/<name>/_manifests/revisions/<alg>/<hex>  the media type the repository has it as
//!                                                and its last touch (JSON); empty once
//!                                                garbage collection removed it
//! repos/<name>/_manifests/tags/<tag>             the digest the tag points at
//! repos/<name>/_referrers/<alg>/<subject hex>/<alg>-<hex>   a referrer's descriptor (JSON)
//! _hoist/probe/<nonce>                           readiness sentinels, removed at once
//! ```
//!
//! Keys are built only from validated repository names, tags, digests and ids this backend
//! made, so no input names a key outside these places. Repository name components start
//! with a letter or digit, so `_blobs` and friends never clash with a nested repository.

use hoist_image::Digest;
use object_store::path::Path;

use crate::names::RepoName;

/// The key builder of one bucket prefix.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    prefix: Vec<String>,
}

impl Layout {
    /// Keys under `prefix` (`a/b`, or empty for the bucket's root).
    pub(crate) fn new(prefix: &str) -> Layout {
        Layout {
            prefix: prefix
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    /// `prefix/parts...`
    fn key<'a>(&'a self, parts: impl IntoIterator<Item = &'a str>) -> Path {
        Path::from_iter(self.prefix.iter().map(String::as_str).chain(parts))
    }

    /// A key relative to the prefix (as stored in pointers and session states), made absolute.
    pub(crate) fn relative(&self, rel: &str) -> Path {
        self.key(rel.split('/'))
    }

    /// The blob pointer of `d`.
    pub(crate) fn blob(&self, d: &Digest) -> Path {
        self.key(["blobs", d.algorithm().as_str(), d.hex()])
    }

    /// All blob pointers.
    pub(crate) fn blobs(&self) -> Path {
        self.key(["blobs"])
    }

    /// The digest a blob pointer's key names.
    pub(crate) fn blob_digest(&self, key: &Path) -> Option<Digest> {
        let mut parts = key.parts().skip(self.prefix.len());
        let (b, alg, hex) = (parts.next()?, parts.next()?, parts.next()?);
        if b.as_ref() != "blobs" || parts.next().is_some() {
            return None;
        }
        Digest::parse(&format!("{}:{}", alg.as_ref(), hex.as_ref())).ok()
    }

    /// A new segment of session `id` (relative key, as pointers store it).
    pub(crate) fn segment_rel(id: &str, nonce: &str) -> String {
        format!("data/{id}/{nonce}")
    }

    /// The segments of session `id`.
    pub(crate) fn session_data(&self, id: &str) -> Path {
        self.key(["data", id])
    }

    /// The state of upload session `id`.
    pub(crate) fn upload(&self, id: &str) -> Path {
        self.key(["uploads", id])
    }

    /// All upload session states.
    pub(crate) fn uploads(&self) -> Path {
        self.key(["uploads"])
    }

    /// Everything of all repositories.
    pub(crate) fn repos(&self) -> Path {
        self.key(["repos"])
    }

    fn repo<'a>(&'a self, repo: &'a RepoName, rest: &[&'a str]) -> Path {
        self.key(
            std::iter::once("repos")
                .chain(repo.components())
                .chain(rest.iter().copied()),
        )
    }

    /// The repository's view of blob `d`.
    pub(crate) fn link(&self, repo: &RepoName, d: &Digest) -> Path {
        self.repo(repo, &["_blobs", d.algorithm().as_str(), d.hex()])
    }

    /// The repository's blob links.
    pub(crate) fn links(&self, repo: &RepoName) -> Path {
        self.repo(repo, &["_blobs"])
    }

    /// The repository's manifest `d`.
    pub(crate) fn revision(&self, repo: &RepoName, d: &Digest) -> Path {
        self.repo(
            repo,
            &["_manifests", "revisions", d.algorithm().as_str(), d.hex()],
        )
    }

    /// The repository's manifests and tags.
    pub(crate) fn manifests(&self, repo: &RepoName) -> Path {
        self.repo(repo, &["_manifests"])
    }

    /// The repository's manifest revisions.
    pub(crate) fn revisions(&self, repo: &RepoName) -> Path {
        self.repo(repo, &["_manifests", "revisions"])
    }

    /// The tag `tag` of the repository.
    pub(crate) fn tag(&self, repo: &RepoName, tag: &str) -> Path {
        self.repo(repo, &["_manifests", "tags", tag])
    }

    /// The repository's tags.
    pub(crate) fn tags(&self, repo: &RepoName) -> Path {
        self.repo(repo, &["_manifests", "tags"])
    }

    /// The referrer entries of `subject` in the repository.
    pub(crate) fn referrers(&self, repo: &RepoName, subject: &Digest) -> Path {
        self.repo(
            repo,
            &["_referrers", subject.algorithm().as_str(), subject.hex()],
        )
    }

    /// The referrer entry of manifest `d` (whose subject is `subject`).
    pub(crate) fn referrer(&self, repo: &RepoName, subject: &Digest, d: &Digest) -> Path {
        self.referrers(repo, subject)
            .join(format!("{}-{}", d.algorithm().as_str(), d.hex()))
    }

    /// A readiness sentinel.
    pub(crate) fn probe(&self, nonce: &str) -> Path {
        self.key(["_hoist", "probe", nonce])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let l = Layout::new("/reg/one/");
        let r = RepoName::parse("team/app").unwrap();
        let d = Digest::sha256(b"x");
        assert_eq!(
            l.blob(&d).as_ref(),
            format!("reg/one/blobs/sha256/{}", d.hex())
        );
        assert_eq!(
            l.link(&r, &d).as_ref(),
            format!("reg/one/repos/team/app/_blobs/sha256/{}", d.hex())
        );
        assert_eq!(
            l.tag(&r, "v1.0").as_ref(),
            "reg/one/repos/team/app/_manifests/tags/v1.0"
        );
        let seg = Layout::segment_rel("abc", "n1");
        assert_eq!(l.relative(&seg).as_ref(), "reg/one/data/abc/n1");
        assert_eq!(Layout::new("").upload("abc").as_ref(), "uploads/abc");
        assert_eq!(l.blob_digest(&l.blob(&d)), Some(d.clone()));
        assert_eq!(l.blob_digest(&l.link(&r, &d)), None);
    }
}
