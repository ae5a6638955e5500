//! Delete from a registry: a tag (`REPO:TAG`, the tag only, the spec's tag deletion, as
//! crane does) or a manifest (`REPO@DIGEST`, with every tag that points to it). A
//! registry that cannot delete a tag answers with an [`ErrorKind::Unsupported`] error,
//! never a fallback to deleting the manifest.
//!
//! [`ErrorKind::Unsupported`]: crate::ErrorKind::Unsupported

use hoist_image::{Digest, Reference};
use hoist_remote::{Repository, ops};

use crate::context::Context;
use crate::error::{Context as _, Result, bail};

/// What was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// A tag (the manifest stays).
    Tag(Repository, String),
    /// A manifest, with every tag that pointed to it.
    Manifest(Repository, Digest),
}

impl std::fmt::Display for Deleted {
    /// `REPO:TAG` or `REPO@DIGEST`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Deleted::Tag(r, t) => write!(f, "{r}:{t}"),
            Deleted::Manifest(r, d) => write!(f, "{r}@{d}"),
        }
    }
}

/// Delete what `r` names: its digest's manifest, else its tag. A reference with neither
/// is refused (nothing is implied).
pub fn delete(r: &Reference, ctx: &Context) -> Result<Deleted> {
    let repo = Repository::from_reference(r);
    let client = ctx.client()?;
    if let Some(digest) = r.digest() {
        ctx.block_on(ops::delete_manifest(&client, &repo, digest))
            .with_context(|| format!("deleting {repo}@{digest}"))?;
        return Ok(Deleted::Manifest(repo, digest.clone()));
    }
    let Some(tag) = r.tag() else {
        bail!(
            "invalid reference {r}: name what to delete, a tag (REPO:TAG) or a manifest (REPO@DIGEST)"
        );
    };
    match ctx.block_on(ops::delete_tag(&client, &repo, tag)) {
        Ok(()) => Ok(Deleted::Tag(repo, tag.to_string())),
        // A registry that cannot delete tags says so; the caller decides what to suggest.
        Err(e) if e.is_unsupported() => Err(e),
        Err(e) => Err(e.context(format!("deleting tag {repo}:{tag}"))),
    }
}
