//! Inspect and manage verbs, crane-style: `digest`, `manifest`, `config` (registry,
//! layout or tarball), `ls`, `catalog`, `blob`, `delete`, `referrers` (registry). Plain
//! output one item a line; JSON objects printed as stored (raw bytes).

use std::io::Write;

use anyhow::{Context, bail};
use hoist_image::pipeline::Encoding;
use hoist_image::{Digest, Manifest};
use hoist_remote::{ops, pull};

use super::pull::{parse_platform, repository, source_ref};
use super::push::{RemoteArgs, runtime};
use crate::location::Location;

/// A location argument.
#[derive(clap::Args, Debug)]
pub struct RefArgs {
    /// docker://REF (or a bare registry reference), oci:DIR[:NAME], docker-archive:FILE[:REF].
    pub location: String,
    /// For an index: the image of this platform (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// The argument of `hoist delete`: a tag or a digest, nothing implied. No `--platform`:
/// deleting one child of an index would leave the index pointing at nothing.
#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// host[:port]/name:TAG (deletes that tag only) or host[:port]/name@DIGEST (deletes
    /// the manifest and with it every tag that points to it).
    pub reference: String,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// A repository argument.
#[derive(clap::Args, Debug)]
pub struct RepoArgs {
    /// host[:port]/name
    pub repository: String,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// A registry argument.
#[derive(clap::Args, Debug)]
pub struct RegistryArgs {
    /// host[:port]
    pub registry: String,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// The manifest at a location (for an index with `--platform`: the platform's image's).
fn manifest_at(a: &RefArgs) -> anyhow::Result<Manifest> {
    let platform = parse_platform(a.platform.as_deref())?;
    match Location::parse(&a.location)? {
        Location::Registry(r) => {
            let rt = runtime()?;
            let client = a.remote.client()?;
            let repo = repository(&r)?;
            let (m, _) = rt
                .block_on(pull::resolve(
                    &client,
                    &repo,
                    &r.identifier(),
                    platform.as_ref(),
                ))
                .with_context(|| format!("docker://{r}"))?;
            Ok(m)
        }
        loc => {
            let m = match loc.open_local(&Encoding::none(), None)? {
                hoist_image::Child::Image(i) => i.manifest()?,
                hoist_image::Child::Index(i) => {
                    let m = i.manifest()?;
                    match &platform {
                        None => m,
                        Some(p) => {
                            let index = m.as_index().context("not an index")?;
                            let d = index
                                .manifests
                                .iter()
                                .find(|d| d.platform.as_ref().is_some_and(|q| p.matches(q)))
                                .with_context(|| {
                                    format!("{loc}: platform {p} is not in the index")
                                })?;
                            match i.child(d)? {
                                hoist_image::Child::Image(img) => img.manifest()?,
                                hoist_image::Child::Index(ix) => ix.manifest()?,
                            }
                        }
                    }
                }
            };
            Ok(m)
        }
    }
}

/// `hoist digest`.
pub fn digest(a: &RefArgs) -> anyhow::Result<()> {
    let m = manifest_at(a)?;
    writeln!(std::io::stdout(), "{}", m.digest())?;
    Ok(())
}

/// `hoist manifest`.
pub fn manifest(a: &RefArgs) -> anyhow::Result<()> {
    let m = manifest_at(a)?;
    let mut out = std::io::stdout().lock();
    out.write_all(m.raw())?;
    out.flush()?;
    Ok(())
}

/// `hoist config`.
pub fn config(a: &RefArgs) -> anyhow::Result<()> {
    let loc = Location::parse(&a.location)?;
    let raw = match &loc {
        Location::Registry(r) => {
            let platform = parse_platform(a.platform.as_deref())?;
            let (_rt, child) = super::pull::open_registry(r, &a.remote, platform.as_ref())?;
            match child {
                hoist_image::Child::Image(i) => i.config()?.raw().clone(),
                hoist_image::Child::Index(_) => {
                    bail!(
                        "docker://{r} is an index, which has no config; pick an image with --platform"
                    )
                }
            }
        }
        _ => match loc.open_local(&Encoding::none(), None)? {
            hoist_image::Child::Image(i) => i.config()?.raw().clone(),
            hoist_image::Child::Index(_) => {
                bail!("{loc} is an index, which has no config; name one image")
            }
        },
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&raw)?;
    out.flush()?;
    Ok(())
}

/// `hoist ls`.
pub fn ls(a: &RepoArgs) -> anyhow::Result<()> {
    let r = source_ref(&a.repository)?;
    if r.tag().is_some() || r.digest().is_some() {
        bail!(
            "invalid repository {:?}: expected host[:port]/name without a tag or digest",
            a.repository
        );
    }
    let repo = repository(&r)?;
    let tags = runtime()?
        .block_on(ops::list_tags(&a.remote.client()?, &repo))
        .with_context(|| format!("listing the tags of {repo}"))?;
    let mut out = std::io::stdout().lock();
    for t in tags {
        writeln!(out, "{t}")?;
    }
    Ok(())
}

/// `hoist catalog`.
pub fn catalog(a: &RegistryArgs) -> anyhow::Result<()> {
    let reg = a.registry.trim_end_matches('/');
    if reg.is_empty() || reg.contains('/') {
        bail!("invalid registry {:?}: expected host[:port]", a.registry);
    }
    let repos = runtime()?
        .block_on(ops::catalog(&a.remote.client()?, reg))
        .with_context(|| format!("listing the repositories of {reg}"))?;
    let mut out = std::io::stdout().lock();
    for r in repos {
        writeln!(out, "{r}")?;
    }
    Ok(())
}

fn registry_ref(a: &RefArgs, verb: &str) -> anyhow::Result<hoist_image::Reference> {
    match Location::parse(&a.location)? {
        Location::Registry(r) => Ok(r),
        other => bail!("hoist {verb} works on registry references; {other} is local"),
    }
}

/// `hoist blob REPO@DIGEST`: the blob to stdout. Verified as it streams; on a mismatch
/// the command fails (what was written before the end cannot be taken back).
pub fn blob(a: &RefArgs) -> anyhow::Result<()> {
    let r = registry_ref(a, "blob")?;
    let digest = r
        .digest()
        .with_context(|| {
            format!(
                "invalid blob reference {:?}: expected REPO@DIGEST",
                a.location
            )
        })?
        .clone();
    let repo = repository(&r)?;
    let client = a.remote.client()?;
    let mut out = std::io::stdout().lock();
    runtime()?
        .block_on(
            client.download(&repo, &digest, None, hoist_remote::Verify::Digest, |c| {
                std::future::ready(out.write_all(&c).map_err(|e| {
                    hoist_remote::Error::new(hoist_remote::ErrorKind::Io {
                        what: "stdout".into(),
                        source: e,
                    })
                }))
            }),
        )
        .with_context(|| format!("blob {repo}@{digest}"))?;
    out.flush()?;
    Ok(())
}

/// The manifest digest `r` names: its own `@DIGEST`, or else the digest its tag points
/// to in the registry (asked with a HEAD); an error names `r` when there is no such manifest.
fn manifest_digest(
    rt: &tokio::runtime::Runtime,
    client: &hoist_remote::Client,
    repo: &hoist_remote::Repository,
    r: &hoist_image::Reference,
) -> anyhow::Result<Digest> {
    Ok(match r.digest() {
        Some(d) => d.clone(),
        None => rt
            .block_on(client.manifest_digest(repo, &r.identifier()))?
            .with_context(|| format!("docker://{r}: no such manifest"))?,
    })
}

/// `hoist delete REPO:TAG | REPO@DIGEST`: a tag deletes that tag only; a digest deletes
/// the manifest. A registry that cannot delete a tag gets an error that says how to
/// delete by digest, never a fallback to it.
pub fn delete(a: &DeleteArgs) -> anyhow::Result<()> {
    let r = match Location::parse(&a.reference)? {
        Location::Registry(r) => r,
        other => bail!("hoist delete works on registry references; {other} is local"),
    };
    let repo = repository(&r)?;
    let client = a.remote.client()?;
    let rt = runtime()?;
    if let Some(digest) = r.digest() {
        rt.block_on(ops::delete_manifest(&client, &repo, digest))
            .with_context(|| format!("deleting {repo}@{digest}"))?;
        writeln!(std::io::stdout(), "{repo}@{digest}")?;
        return Ok(());
    }
    let Some(tag) = r.tag() else {
        bail!(
            "invalid reference {:?}: name what to delete, a tag (REPO:TAG) or a manifest (REPO@DIGEST)",
            a.reference
        );
    };
    match rt.block_on(ops::delete_tag(&client, &repo, tag)) {
        Ok(()) => {}
        Err(e) if e.is_unsupported() => match rt.block_on(client.manifest_digest(&repo, tag)) {
            Ok(None) => bail!("{e}; and {repo}:{tag} names no manifest"),
            found => {
                let digest = match found {
                    Ok(Some(d)) => d.to_string(),
                    _ => "DIGEST".into(),
                };
                bail!(
                    "{e}; to delete the manifest instead, which removes every tag that points to it: hoist delete {repo}@{digest}"
                )
            }
        },
        Err(e) => return Err(anyhow::Error::new(e).context(format!("deleting tag {repo}:{tag}"))),
    }
    writeln!(std::io::stdout(), "{repo}:{tag}")?;
    Ok(())
}

/// `hoist referrers REF`: the referrers index (JSON).
pub fn referrers(a: &RefArgs) -> anyhow::Result<()> {
    let r = registry_ref(a, "referrers")?;
    let repo = repository(&r)?;
    let client = a.remote.client()?;
    let rt = runtime()?;
    let digest = manifest_digest(&rt, &client, &repo, &r)?;
    let m = rt
        .block_on(ops::referrers(&client, &repo, &digest, None))
        .with_context(|| format!("referrers of {repo}@{digest}"))?;
    let mut out = std::io::stdout().lock();
    out.write_all(m.raw())?;
    out.flush()?;
    Ok(())
}
