//! Copy: an image or index from any location to any location, each layer compressed at
//! most once — with the content cache, at most once per machine. Layers keep their
//! compression unless asked otherwise (a tarball's plain layers become gzip); to a
//! registry through the push engine, registry to registry with mounts where the source
//! and the destination share a registry.
//!
//! With [`Options::referrers`], registry to registry, the referrers of what was copied
//! (signatures, attestations, SBOMs: manifests whose `subject` is the image, an index,
//! or one of its images) follow, recursively, bytes unchanged, through the referrers API
//! or the tag schema ([`hoist_remote::mirror::Mirror::copy_referrers`]).

use std::sync::Arc;

use hoist_image::layout::LayoutStore;
use hoist_image::pipeline::{self, Encoding};
use hoist_image::{Child, Compression, Reference, Store};
use hoist_remote::Repository;
use hoist_remote::mirror::{self, Mirror, Moved};

use crate::context::Context;
use crate::error::{Context as _, Result, bail};
use crate::location::Location;
use crate::open::{Open, Platforms, open_tarball, open_with, select};
use crate::pull;
use crate::write::{Report, image_id, looks_like_digest, push_to, write, write_tarball};

/// What happens to layers' compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layers {
    /// Keep layouts' and registries' layers as they are; gzip a tarball's plain ones.
    #[default]
    Default,
    /// Keep every layer as the source has it (a tarball's stay plain tar).
    Keep,
    /// Convert every layer to this compression.
    To(Compression),
}

/// How to copy.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Layers' compression in the destination.
    pub layers: Layers,
    /// Compression level (gzip 0-12: 6 by default to a layout or tarball, 1 to a
    /// registry; zstd 1-22, 3 by default).
    pub level: Option<u32>,
    /// gzip with ISA-L's igzip (`Encoding::fast`).
    pub fast: bool,
    /// Compression threads (0: all cores); the output is the same for any number.
    pub threads: usize,
    /// Which platforms of an index ([`Platforms::Default`]: all of them, or this
    /// machine's for a docker-save tarball).
    pub platforms: Platforms,
    /// To a registry: refuse to overwrite a tag that exists.
    pub no_clobber: bool,
    /// Registry to registry: every tag of the source repository.
    pub all_tags: bool,
    /// Registry to registry: copy the referrers of every manifest copied too,
    /// recursively. Digests must not change: no recompression.
    pub referrers: bool,
}

impl Options {
    /// The encoding asked for (`None`: keep), with `keep_by_default` saying what
    /// [`Layers::Default`] means for this source.
    fn encoding(&self, keep_by_default: bool, to_registry: bool) -> Result<Option<Encoding>> {
        let c = match self.layers {
            Layers::To(c) => c,
            Layers::Default if !keep_by_default => Compression::Gzip,
            Layers::Default | Layers::Keep => {
                if self.level.is_some() || self.fast {
                    bail!("--level and --fast need --compression gzip or zstd, not keep");
                }
                return Ok(None);
            }
        };
        let mut e = Encoding::of(c).threads(self.threads);
        e.level = self.level;
        if c == Compression::Gzip && to_registry {
            // Fast for the network, as a push (pipeline::DEFAULT_PUSH_GZIP_LEVEL).
            e.level = Some(self.level.unwrap_or(pipeline::DEFAULT_PUSH_GZIP_LEVEL));
        }
        if self.fast {
            e = e.fast();
        }
        e.validate()?;
        Ok(Some(e))
    }
}

/// Copy `src` to `dst`.
pub fn copy(src: &Location, dst: &Location, opts: &Options, ctx: &Context) -> Result<Report> {
    ctx.blocking(|| copy_here(src, dst, opts, ctx))
}

fn copy_here(src: &Location, dst: &Location, opts: &Options, ctx: &Context) -> Result<Report> {
    if opts.referrers {
        let (Location::Registry(s), Location::Registry(_)) = (src, dst) else {
            bail!(
                "--referrers copies between registries; {src} to {dst} is not registry to registry"
            );
        };
        if matches!(opts.layers, Layers::To(_)) || opts.level.is_some() || opts.fast {
            bail!(
                "--referrers keeps every digest (signatures name them): it does not go with --compression, --level or --fast"
            );
        }
        let plain = Options {
            referrers: false,
            ..opts.clone()
        };
        let mut report = copy_here(src, dst, &plain, ctx)?;
        let moved = copy_referrers(s, &report, ctx)
            .with_context(|| format!("copying the referrers of {src} to {dst}"))?;
        report.referrers = Some(moved);
        return Ok(report);
    }
    if let Location::Registry(r) = src {
        let popts = pull::Options {
            platforms: opts.platforms.clone(),
            encoding: opts.encoding(true, dst.is_registry())?,
            no_clobber: opts.no_clobber,
            all_tags: opts.all_tags,
        };
        return pull::from_registry(r, dst, &popts, ctx);
    }
    if opts.all_tags {
        bail!("--all-tags copies a registry repository; {src} is local");
    }
    let what = || format!("copying {src} to {dst}");
    // The source, and the tags a tarball gives its image (kept in a tarball destination).
    let (child, tags) = match src {
        Location::Archive { file, reference } => {
            let encoding = opts
                .encoding(false, dst.is_registry())?
                .unwrap_or_else(Encoding::none);
            let store = seal_store(dst, ctx)?;
            let img = open_tarball(src, file, reference.as_ref(), Some((&encoding, store)), ctx)
                .with_context(|| format!("source {src}"))?;
            let tags: Vec<Reference> = img
                .repo_tags()
                .iter()
                .filter_map(|t| Reference::parse(t).ok())
                .collect();
            (Child::Image(std::sync::Arc::new(img)), tags)
        }
        _ => {
            let child =
                open_with(src, &Open::default(), ctx).with_context(|| format!("source {src}"))?;
            let child = select(child, &opts.platforms, src)?;
            let child = match opts.encoding(true, dst.is_registry())? {
                None => child,
                Some(e) => {
                    let store = match seal_store(dst, ctx)? {
                        Some(s) => s,
                        None => ctx.store()?,
                    };
                    match child {
                        Child::Image(i) => Child::Image(pipeline::recompress(i, &e, store)?),
                        Child::Index(i) => Child::Index(pipeline::recompress_index(i, &e, store)?),
                    }
                }
            };
            (child, Vec::new())
        }
    };
    match dst {
        Location::Layout { name: Some(n), .. } if looks_like_digest(n) => {
            bail!("destination {dst}: name the image with a tag, not a digest")
        }
        Location::Archive { file, reference } => {
            let Child::Image(img) = child else {
                bail!(
                    "destination {dst}: a docker-save tarball holds images, not an index; name one image of {src}"
                );
            };
            let tags = match reference {
                Some(r) => vec![r.clone()],
                None => tags,
            };
            let watched = crate::watch::image(img.clone(), ctx, dst);
            write_tarball(file, watched.as_ref(), &tags).with_context(what)?;
            Ok(Report::one(image_id(dst, img.as_ref())?))
        }
        Location::Registry(r) => {
            if opts.no_clobber
                && let Some(tag) = r.tag()
            {
                let client = ctx.client()?;
                let repo = hoist_remote::Repository::from_reference(r);
                if let Some(d) = ctx.block_on(client.manifest_digest(&repo, tag))? {
                    bail!("destination {dst}: the tag exists (at {d}) and --no-clobber is set");
                }
            }
            let opts = ctx.push_options()?;
            push_to(std::slice::from_ref(r), child, &opts, ctx).with_context(what)
        }
        Location::Layout { .. } | Location::OciArchive { .. } => {
            write(dst, child, ctx).with_context(what)
        }
    }
}

/// Where a copy seals the layers it compresses, when not the context's store: straight
/// into a layout destination when they would otherwise go to a temporary spool (the
/// layout then finds them in place instead of every compressed byte being spooled, read
/// back and written again).
fn seal_store(dst: &Location, ctx: &Context) -> Result<Option<Arc<dyn Store>>> {
    Ok(match dst {
        Location::Layout { dir, .. } if ctx.seals_to_spool() => {
            Some(Arc::new(LayoutStore::new(dir.clone())))
        }
        _ => None,
    })
}

/// Copy the referrers of what `report` says was written (each destination's manifest,
/// and its children when it is an index) from `src`'s repository.
fn copy_referrers(src: &Reference, report: &Report, ctx: &Context) -> Result<Moved> {
    let client = ctx.client()?;
    let m = Mirror::new(
        &client,
        mirror::Options {
            jobs: ctx.jobs().unwrap_or(mirror::DEFAULT_JOBS),
            progress: ctx.progress(),
            ..mirror::Options::default()
        },
    )?;
    let from = Repository::from_reference(src);
    let mut total = Moved::default();
    for w in &report.written {
        let Location::Registry(d) = &w.location else {
            continue;
        };
        let to = Repository::from_reference(d);
        let top = ctx.block_on(client.get_manifest(&to, &w.digest.to_string()))?;
        total += ctx.block_on(m.copy_referrers(&from, &top, &to))?;
    }
    Ok(total)
}
