//! Sources: [`open`] any [`Location`] as an image or an index ([`Child`]).
//!
//! - A layout by name (a ref name or a digest), or without one: its only image (entries
//!   naming the same manifest count once), or the whole `index.json` as an index when it
//!   lists several.
//! - A docker-save tarball: the image of its reference, or its only one. Its layers are
//!   plain tars: with [`Open::encoding`] they are compressed that way into the context's
//!   store when a sink needs their compressed form; without, they are read as they are.
//! - A registry reference: its manifest, resolved to the image of [`Open::platform`]
//!   through indexes when one is given. Layers stream from the registry when read.
//!
//! Reading a registry layer blocks the reading thread on a channel: do it outside async
//! tasks (a plain thread, `spawn_blocking`). The verbs of this crate do so themselves.

use std::collections::HashSet;
use std::sync::Arc;

use hoist_image::layout::Layout;
use hoist_image::pipeline::Encoding;
use hoist_image::{Child, Image, ImageIndex, Manifest, Platform, Reference, SpoolStore, tarball};
use hoist_remote::source::Remote;
use hoist_remote::{Repository, pull};

use crate::context::Context;
use crate::error::{Context as _, Result, bail};
use crate::location::Location;

/// How to open a location.
#[derive(Debug, Clone, Default)]
pub struct Open {
    /// For a registry index: follow it to the image of this platform.
    pub platform: Option<Platform>,
    /// For a tarball: compress its layers this way (into the context's store) when a sink
    /// needs them compressed. `None`: read them as they are (a temporary spool holds them
    /// if a digest of their compressed form is asked).
    pub encoding: Option<Encoding>,
}

impl Open {
    /// Tarball layers compressed with `encoding` when needed.
    pub fn encoding(encoding: Encoding) -> Open {
        Open {
            encoding: Some(encoding),
            ..Open::default()
        }
    }
}

/// Which images of an index a verb takes (`--platform`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Platforms {
    /// The verb's default: the whole index, except where one image is needed (a
    /// docker-save tarball, a config), which takes this machine's platform.
    #[default]
    Default,
    /// The whole index (`--platform all`).
    All,
    /// These platforms: one is that platform's image; several are an index of those
    /// images only (a new index, whose digest is not the source's).
    List(Vec<Platform>),
}

impl Platforms {
    /// Parse `--platform` values: `all`, or os/arch[/variant] lists, comma-separated or
    /// one per value; none is [`Platforms::Default`].
    pub fn parse(values: &[String]) -> Result<Platforms> {
        let mut list = Vec::new();
        for v in values {
            for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if p == "all" {
                    if values.len() > 1 || v.contains(',') {
                        bail!("invalid --platform {v:?}: `all` goes alone");
                    }
                    return Ok(Platforms::All);
                }
                list.push(Platform::parse(p).map_err(|e| {
                    crate::Error::invalid(format!("invalid --platform {p:?}: {e}"))
                })?);
            }
        }
        Ok(if list.is_empty() {
            Platforms::Default
        } else {
            Platforms::List(list)
        })
    }

    /// Just this platform.
    pub fn one(p: Platform) -> Platforms {
        Platforms::List(vec![p])
    }

    /// The platform, when exactly one is asked for.
    pub fn single(&self) -> Option<&Platform> {
        match self {
            Platforms::List(l) if l.len() == 1 => Some(&l[0]),
            _ => None,
        }
    }

    /// True when several platforms are asked for (the result is a filtered index).
    pub fn several(&self) -> bool {
        matches!(self, Platforms::List(l) if l.len() > 1)
    }

    /// The platform one image is taken for: the one asked, else this machine's. `what`
    /// names the destination that holds one image, for the errors.
    pub fn one_image(&self, what: &str) -> Result<Platform> {
        match self {
            Platforms::Default => Ok(pull::host_platform()),
            Platforms::List(l) if l.len() == 1 => Ok(l[0].clone()),
            Platforms::All | Platforms::List(_) => bail!(
                "{what} holds one image: pick one platform with --platform os/arch (this machine's is {})",
                pull::host_platform()
            ),
        }
    }
}

/// `child` narrowed to `platforms`: an index with one platform asked is that platform's
/// image, with several an index of those; anything else is `child` as it is.
pub fn select(child: Child, platforms: &Platforms, what: &dyn std::fmt::Display) -> Result<Child> {
    let Child::Index(index) = child else {
        return Ok(child);
    };
    match platforms {
        Platforms::Default | Platforms::All => Ok(Child::Index(index)),
        Platforms::List(l) if l.len() == 1 => {
            let p = &l[0];
            let m = index.manifest()?;
            let entries = m
                .as_index()
                .ok_or_else(|| crate::Error::invalid(format!("{what}: not an index")))?;
            let available: Vec<String> = entries
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                .collect();
            let d = entries
                .manifests
                .iter()
                .find(|d| d.platform.as_ref().is_some_and(|q| p.matches(q)))
                .ok_or_else(|| {
                    crate::Error::msg(
                        crate::ErrorKind::NotFound,
                        format!(
                            "{what}: no image for platform {p} (the index has: {})",
                            if available.is_empty() {
                                "none".to_string()
                            } else {
                                available.join(", ")
                            }
                        ),
                    )
                })?;
            Ok(index.child(d)?)
        }
        Platforms::List(l) => Ok(Child::Index(hoist_image::mutate::index::filter(index, l)?)),
    }
}

/// Open `loc` as an image or an index, with the defaults of [`Open`].
pub fn open(loc: &Location, ctx: &Context) -> Result<Child> {
    open_with(loc, &Open::default(), ctx)
}

/// Open `loc` as an image or an index.
pub fn open_with(loc: &Location, how: &Open, ctx: &Context) -> Result<Child> {
    match loc {
        Location::Layout { dir, name } => {
            let layout = Layout::open(dir)?;
            Ok(match name {
                Some(n) => layout.get(n)?,
                None => {
                    // Several tags of one manifest are one image.
                    let mut index = layout.index_manifest()?;
                    let mut seen = HashSet::new();
                    index.manifests.retain(|d| seen.insert(d.digest.clone()));
                    match index.manifests.as_slice() {
                        [only] => layout.child(only)?,
                        [] => bail!("{loc}: the layout holds no images"),
                        _ => Child::Index(layout.index()?),
                    }
                }
            })
        }
        Location::Archive { file, reference } => Ok(Child::Image(Arc::new(open_tarball(
            loc,
            file,
            reference.as_ref(),
            how.encoding.as_ref().map(|e| (e, None)),
            ctx,
        )?))),
        Location::OciArchive { file, name } => {
            if loc.is_stdout() {
                bail!("{loc}: stdout is a destination; an archive is read from a file");
            }
            let dir = ctx.keep(crate::oci_archive::unpack(file)?);
            let layout = Location::Layout {
                dir,
                name: name.clone(),
            };
            open_with(&layout, how, ctx).with_context(|| format!("reading {loc}"))
        }
        Location::Registry(r) => {
            let m = resolve(r, how.platform.as_ref(), ctx)?;
            Ok(remote(r, ctx)?.child_of(m))
        }
    }
}

/// Open `loc` as one image. A registry index resolves to the image of `how.platform`,
/// by default this machine's; a local index is refused (name one of its images).
pub fn open_image(loc: &Location, how: &Open, ctx: &Context) -> Result<Arc<dyn Image>> {
    if let Location::Registry(_) = loc {
        let platform = how.platform.clone().unwrap_or_else(pull::host_platform);
        let how = Open {
            platform: Some(platform.clone()),
            ..how.clone()
        };
        return match open_with(loc, &how, ctx)? {
            Child::Image(i) => Ok(i),
            Child::Index(_) => bail!("{loc}: no image for platform {platform}"),
        };
    }
    match open_with(loc, how, ctx).with_context(|| format!("opening {loc}"))? {
        Child::Image(i) => Ok(i),
        Child::Index(_) => bail!(
            "{loc} is an index (several images): name one image, e.g. oci:DIR:NAME or oci:DIR:sha256:..."
        ),
    }
}

/// Open `loc` as an index (a layout's `index.json` or nested index, a registry's
/// multi-platform image).
pub fn open_index(loc: &Location, how: &Open, ctx: &Context) -> Result<Arc<dyn ImageIndex>> {
    let child = match loc {
        Location::Registry(_) => open_with(loc, how, ctx)?,
        _ => open_with(loc, how, ctx).with_context(|| format!("opening {loc}"))?,
    };
    match child {
        Child::Index(i) => Ok(i),
        Child::Image(_) => bail!("{loc} is a single image, not an index"),
    }
}

/// A tarball's image; see [`Open::encoding`]. Its layers are sealed in `encoding`, into
/// the given store or else the context's.
pub(crate) fn open_tarball(
    loc: &Location,
    file: &std::path::Path,
    reference: Option<&Reference>,
    encoding: Option<(&Encoding, Option<Arc<dyn hoist_image::Store>>)>,
    ctx: &Context,
) -> Result<tarball::Image> {
    if loc.is_stdout() {
        bail!("{loc}: stdout is a destination; a tarball is read from a file");
    }
    let (encoding, store) = match encoding {
        Some((e, Some(store))) => (e.clone(), store),
        Some((e, None)) => (e.clone(), ctx.store()?),
        None => (
            Encoding::none(),
            Arc::new(SpoolStore::new()?) as Arc<dyn hoist_image::Store>,
        ),
    };
    let opts = tarball::Options {
        tag: reference.map(|r| r.to_string()),
        encoding,
        store: Some(store),
    };
    Ok(tarball::Image::open(file, &opts)?)
}

/// The manifest a registry reference names, resolved to `platform` through indexes.
pub(crate) fn resolve(
    r: &Reference,
    platform: Option<&Platform>,
    ctx: &Context,
) -> Result<Manifest> {
    let client = ctx.client()?;
    let repo = Repository::from_reference(r);
    let (m, _) = ctx
        .block_on(pull::resolve(&client, &repo, &r.identifier(), platform))
        .with_context(|| format!("docker://{r}"))?;
    Ok(m)
}

/// A registry source in the repository of `r`, driven on the context's runtime.
pub(crate) fn remote(r: &Reference, ctx: &Context) -> Result<Arc<Remote>> {
    Ok(Remote::new(
        ctx.client()?,
        Repository::from_reference(r),
        ctx.runtime().clone(),
    ))
}
