//! Pull: an image or index from a registry into an OCI layout or an oci-archive (every
//! platform unless some are asked for) or a docker-save tarball (one image: the asked
//! platform, by default this machine's). Blobs are downloaded in parallel, verified as
//! they stream, resumed with `Range` when cut; nothing half-written is left at the
//! destination on failure.
//!
//! [`copy`](crate::copy) from a registry comes here too, and also goes registry to
//! registry (every tag of a repository with `all_tags`).

use std::path::Path;

use hoist_image::pipeline::{self, Encoding};
use hoist_image::{Child, Reference};
use hoist_remote::{Repository, Target, copy, pull};

use crate::context::Context;
use crate::error::{Context as _, Error, Result, bail};
use crate::location::{Location, STDOUT};
use crate::open::{Open, Platforms, open_image, open_with, select};
use crate::write::{Report, Written, pushed_report, write, write_tarball};

/// How to pull (or copy out of a registry).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Which platforms of an index ([`Platforms::Default`]: all of them, or this
    /// machine's for a docker-save tarball).
    pub platforms: Platforms,
    /// Convert layers to this compression (`None`: keep them as they are).
    pub encoding: Option<Encoding>,
    /// To a registry: refuse to overwrite a tag that exists.
    pub no_clobber: bool,
    /// Registry to registry: copy every tag of the source repository.
    pub all_tags: bool,
}

/// The destination of a pull from its argument: a location ([`Location::parse`]), except
/// that a bare path that does not exist yet is a tarball when named `*.tar` and a layout
/// directory otherwise.
pub fn destination(s: &str) -> Result<Location> {
    let prefixed = s.contains("://") || s.starts_with("oci:") || s.starts_with("docker-archive:");
    let bare_new = !prefixed && !s.is_empty() && s != STDOUT;
    if bare_new && !Path::new(s).exists() {
        return Ok(if s.ends_with(".tar") {
            Location::Archive {
                file: s.into(),
                reference: None,
            }
        } else {
            Location::Layout {
                dir: s.trim_end_matches('/').into(),
                name: None,
            }
        });
    }
    Location::parse(s)
}

/// Pull `src` into `dst`, a layout or a tarball.
pub fn pull(src: &Reference, dst: &Location, opts: &Options, ctx: &Context) -> Result<Report> {
    ctx.blocking(|| pull_here(src, dst, opts, ctx))
}

fn pull_here(src: &Reference, dst: &Location, opts: &Options, ctx: &Context) -> Result<Report> {
    if dst.is_registry() {
        bail!(
            "invalid destination {dst}: expected oci:DIR[:NAME] or docker-archive:FILE[:REF] (use hoist copy for registries)"
        );
    }
    from_registry(src, dst, opts, ctx)
}

/// Copy the registry image `src` to any location.
pub(crate) fn from_registry(
    src: &Reference,
    dst: &Location,
    opts: &Options,
    ctx: &Context,
) -> Result<Report> {
    let what = || format!("copying docker://{src} to {dst}");
    let jobs = ctx.jobs().unwrap_or(pull::DEFAULT_JOBS);
    if opts.all_tags && !dst.is_registry() {
        bail!("--all-tags copies a repository to a registry repository; {dst} is not one");
    }
    let repo = Repository::from_reference(src);
    let platform = opts.platforms.single().cloned();
    match dst {
        Location::Layout { dir, name } if opts.encoding.is_none() && !opts.platforms.several() => {
            let client = ctx.client()?;
            let popts = pull::Options {
                jobs,
                platform,
                cache: ctx.cache()?,
                progress: ctx.progress(),
            };
            let ref_name = name.clone().or_else(|| src.tag().map(str::to_string));
            let report = ctx
                .block_on(pull::pull_to_layout(
                    &client,
                    &repo,
                    &src.identifier(),
                    dir,
                    ref_name.as_deref(),
                    &popts,
                ))
                .with_context(what)?;
            Ok(Report::one(Written::manifest(
                dst.clone(),
                report.descriptor.digest,
            )))
        }
        Location::Archive { file, reference } => {
            let how = Open {
                platform: Some(opts.platforms.one_image(&dst.to_string())?),
                ..Open::default()
            };
            let img = open_image(&Location::Registry(src.clone()), &how, ctx)?;
            let tags: Vec<Reference> = match reference {
                Some(r) => vec![r.clone()],
                None => src.tag().map(|_| src.clone()).into_iter().collect(),
            };
            let img = crate::watch::image(img, ctx, dst);
            write_tarball(file, img.as_ref(), &tags).with_context(what)?;
            // A registry image's manifest digest is known: report it, not the image ID.
            let digest = img.manifest()?.digest().clone();
            Ok(Report::one(Written::manifest(dst.clone(), digest)))
        }
        Location::Registry(d) if !opts.platforms.several() => {
            let client = ctx.client()?;
            let mut push = ctx.push_options()?;
            push.jobs = jobs;
            let copts = copy::Options {
                push,
                platform,
                encoding: opts.encoding.clone(),
                store: Some(ctx.store()?),
                no_clobber: opts.no_clobber,
            };
            if !opts.all_tags {
                let report = ctx
                    .block_on(copy::copy(
                        &client,
                        &repo,
                        &src.identifier(),
                        &[Target::from_reference(d)?],
                        &copts,
                        ctx.progress(),
                    ))
                    .with_context(what)?;
                return Ok(pushed_report(std::slice::from_ref(d), report));
            }
            if d.tag().is_some() || d.digest().is_some() {
                bail!("--all-tags: name the destination repository without a tag ({dst})");
            }
            let tags = ctx
                .block_on(hoist_remote::ops::list_tags(&client, &repo))
                .with_context(|| format!("listing the tags of {repo}"))?;
            if tags.is_empty() {
                bail!("docker://{src}: the repository has no tags");
            }
            let dest = Repository::from_reference(d);
            let mut out = Report::default();
            for t in tags {
                let to = d.with_tag(&t)?;
                let report = ctx
                    .block_on(copy::copy(
                        &client,
                        &repo,
                        &t,
                        &[Target::from_reference(&to)?],
                        &copts,
                        ctx.progress(),
                    ))
                    .with_context(|| format!("copying {repo}:{t} to {dest}:{t}"))?;
                out.extend(pushed_report(std::slice::from_ref(&to), report));
            }
            if out.written.is_empty() {
                return Err(Error::invalid("no tag copied"));
            }
            Ok(out)
        }
        // A layout with converted layers or some platforms only, an oci-archive, a
        // registry with some platforms only: the registry source, narrowed, converted,
        // written.
        Location::Layout { .. } | Location::OciArchive { .. } | Location::Registry(_) => {
            if opts.all_tags {
                bail!("--all-tags copies whole repositories: give one --platform, or none");
            }
            if let Location::Registry(d) = dst
                && opts.no_clobber
                && let Some(tag) = d.tag()
            {
                let client = ctx.client()?;
                let to = Repository::from_reference(d);
                if let Some(at) = ctx.block_on(client.manifest_digest(&to, tag))? {
                    bail!("destination {dst}: the tag exists (at {at}) and --no-clobber is set");
                }
            }
            let how = Open {
                platform,
                ..Open::default()
            };
            let from = Location::Registry(src.clone());
            let child = select(open_with(&from, &how, ctx)?, &opts.platforms, &from)?;
            let child = match &opts.encoding {
                None => child,
                Some(e) => {
                    let store = ctx.store()?;
                    match child {
                        Child::Image(img) => Child::Image(pipeline::recompress(img, e, store)?),
                        Child::Index(ix) => Child::Index(pipeline::recompress_index(ix, e, store)?),
                    }
                }
            };
            let (dir, existed) = match dst {
                Location::Layout { dir, .. } => (Some(dir), dir.exists()),
                _ => (None, true),
            };
            let r = write(dst, child, ctx).with_context(what);
            if r.is_err()
                && !existed
                && let Some(dir) = dir
            {
                let _ = std::fs::remove_dir_all(dir);
            }
            r
        }
    }
}
