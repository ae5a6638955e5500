//! The inspect verbs, crane-style: an image's [`digest`], [`manifest`] and [`config`]
//! (any location), and from registries: tags ([`ls`]), repositories ([`catalog`]), a
//! verified [`blob`], the [`referrers`] of a manifest. Raw bytes are returned as stored.

use std::io::Write;

use hoist_image::{Child, Config, Digest, Manifest, Platform, Reference};
use hoist_remote::{Repository, Verify, ops};

use crate::context::Context;
use crate::error::{Context as _, Error, Result, bail};
use crate::location::Location;
use crate::open::{Platforms, open, resolve, select};

/// The manifest at `loc`; for an index with `platform`, the manifest of that
/// platform's entry.
pub fn manifest(loc: &Location, platform: Option<&Platform>, ctx: &Context) -> Result<Manifest> {
    if let Location::Registry(r) = loc {
        return resolve(r, platform, ctx);
    }
    Ok(match open(loc, ctx)? {
        Child::Image(i) => i.manifest()?,
        Child::Index(i) => {
            let m = i.manifest()?;
            let Some(p) = platform else {
                return Ok(m);
            };
            let index = m
                .as_index()
                .ok_or_else(|| Error::invalid(format!("{loc}: not an index")))?;
            let d = index
                .manifests
                .iter()
                .find(|d| d.platform.as_ref().is_some_and(|q| p.matches(q)))
                .ok_or_else(|| {
                    Error::invalid(format!("{loc}: platform {p} is not in the index"))
                })?;
            match i.child(d)? {
                Child::Image(img) => img.manifest()?,
                Child::Index(ix) => ix.manifest()?,
            }
        }
    })
}

/// The digest of the manifest at `loc` (see [`manifest`]).
pub fn digest(loc: &Location, platform: Option<&Platform>, ctx: &Context) -> Result<Digest> {
    Ok(manifest(loc, platform, ctx)?.digest().clone())
}

/// The config of the image at `loc`. An index (a registry's multi-platform image, a
/// layout's) gives the image of `platform`, by default this machine's (as crane does);
/// when it has none, the error lists the platforms it has.
pub fn config(loc: &Location, platform: Option<&Platform>, ctx: &Context) -> Result<Config> {
    let child = open(loc, ctx)?;
    let p = platform
        .cloned()
        .unwrap_or_else(hoist_remote::pull::host_platform);
    let chosen = select(child, &Platforms::one(p.clone()), loc).map_err(|e| {
        if platform.is_none() {
            e.context(format!(
                "{loc} is an index; it has no image for this machine's platform {p}: pick one with --platform"
            ))
        } else {
            e
        }
    })?;
    match chosen {
        Child::Image(i) => Ok(i.config()?),
        Child::Index(_) => bail!("{loc}: the entry for {p} is an index, which has no config"),
    }
}

/// Every tag of the repository `repo` names (no tag, no digest).
pub fn ls(repo: &Reference, ctx: &Context) -> Result<Vec<String>> {
    if repo.tag().is_some() || repo.digest().is_some() {
        bail!("invalid repository {repo}: expected host[:port]/name without a tag or digest");
    }
    let repo = Repository::from_reference(repo);
    let client = ctx.client()?;
    ctx.block_on(ops::list_tags(&client, &repo))
        .with_context(|| format!("listing the tags of {repo}"))
}

/// Every repository of `registry` (`host[:port]`).
pub fn catalog(registry: &str, ctx: &Context) -> Result<Vec<String>> {
    let reg = registry.trim_end_matches('/');
    if reg.is_empty() || reg.contains('/') {
        bail!("invalid registry {registry:?}: expected host[:port]");
    }
    let client = ctx.client()?;
    ctx.block_on(ops::catalog(&client, reg))
        .with_context(|| format!("listing the repositories of {reg}"))
}

/// Write the blob `r` names (`REPO@DIGEST`) to `out`, verified as it streams (on a
/// mismatch the call fails; what was written before the end cannot be taken back).
pub fn blob(r: &Reference, out: &mut (dyn Write + Send), ctx: &Context) -> Result<u64> {
    let Some(digest) = r.digest() else {
        bail!("invalid blob reference {r}: expected REPO@DIGEST");
    };
    let repo = Repository::from_reference(r);
    let client = ctx.client()?;
    let n = ctx
        .block_on(client.download(&repo, digest, None, Verify::Digest, |c| {
            std::future::ready(out.write_all(&c).map_err(|e| {
                hoist_remote::Error::new(hoist_remote::ErrorKind::Io {
                    what: "output".into(),
                    source: e,
                })
            }))
        }))
        .with_context(|| format!("blob {repo}@{digest}"))?;
    out.flush()
        .map_err(|e| hoist_image::Error::io("output", e))?;
    Ok(n)
}

/// The manifest digest `r` names: its own `@DIGEST`, or else the digest its tag points
/// to in the registry (asked with a HEAD).
pub fn manifest_digest(r: &Reference, ctx: &Context) -> Result<Digest> {
    if let Some(d) = r.digest() {
        return Ok(d.clone());
    }
    let client = ctx.client()?;
    let repo = Repository::from_reference(r);
    ctx.block_on(client.manifest_digest(&repo, &r.identifier()))?
        .ok_or_else(|| {
            Error::msg(
                crate::ErrorKind::NotFound,
                format!("docker://{r}: no such manifest"),
            )
        })
}

/// The referrers index of the manifest `r` names (the OCI referrers API).
pub fn referrers(r: &Reference, ctx: &Context) -> Result<Manifest> {
    let digest = manifest_digest(r, ctx)?;
    let repo = Repository::from_reference(r);
    let client = ctx.client()?;
    ctx.block_on(ops::referrers(&client, &repo, &digest, None))
        .with_context(|| format!("referrers of {repo}@{digest}"))
}
