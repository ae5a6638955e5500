//! `hoist index create|append|filter|list`: multi-platform indexes from images in local
//! locations, written to a layout or a registry (through the push engine).

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use hoist_image::mutate::index;
use hoist_image::pipeline::Encoding;
use hoist_image::{Child, ImageIndex, Platform};

use super::cache::{CacheOpts, Stores};
use super::mutate::{Opened, open_image};
use crate::location::Location;

/// The index verbs.
#[derive(Subcommand, Debug)]
pub enum IndexCommand {
    /// Make an index of images (each of one platform).
    Create {
        /// The images: oci:DIR:NAME, docker-archive:FILE[:REF], or paths.
        #[arg(required = true)]
        images: Vec<String>,
        /// Destination: oci:DIR[:NAME] or a registry reference.
        #[arg(short = 't', long = "tag", value_name = "DST")]
        dst: String,
    },
    /// Add images to an index; an image of a platform already listed replaces it.
    Append {
        /// The index.
        index: String,
        /// The images to add.
        #[arg(required = true)]
        images: Vec<String>,
        /// Destination: oci:DIR[:NAME] or a registry reference.
        #[arg(short = 't', long = "tag", value_name = "DST")]
        dst: String,
    },
    /// Keep only the images of some platforms.
    Filter {
        /// The index.
        index: String,
        /// A platform to keep: os/arch[/variant]; repeat for several.
        #[arg(long, required = true)]
        platform: Vec<String>,
        /// Destination: oci:DIR[:NAME] or a registry reference.
        #[arg(short = 't', long = "tag", value_name = "DST")]
        dst: String,
    },
    /// List an index's entries: digest, platform, media type, size.
    List {
        /// The index.
        index: String,
    },
}

/// An opened index, and the runtime a registry index is read on.
type OpenedIndex = (
    Location,
    Arc<dyn ImageIndex>,
    Option<tokio::runtime::Runtime>,
);

fn open_index(s: &str, stores: &Stores) -> anyhow::Result<OpenedIndex> {
    let loc = Location::parse(s)?;
    if let Location::Registry(r) = &loc {
        let remote = super::push::RemoteArgs::default();
        let (rt, child) = super::pull::open_registry(r, &remote, None)?;
        return match child {
            Child::Index(i) => Ok((loc, i, Some(rt))),
            Child::Image(_) => bail!("{loc} is a single image, not an index"),
        };
    }
    match loc
        .open_local(&Encoding::gzip(), Some(stores.store.clone()))
        .with_context(|| format!("opening {loc}"))?
    {
        Child::Index(i) => Ok((loc, i, None)),
        Child::Image(_) => bail!("{loc} is a single image, not an index"),
    }
}

/// Open images for an index; registry images stay readable while the returned handles live.
fn images(list: &[String], stores: &Stores) -> anyhow::Result<(Vec<Child>, Vec<Opened>)> {
    let opened = list
        .iter()
        .map(|s| open_image(s, &Encoding::gzip(), stores, None))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((
        opened
            .iter()
            .map(|o| Child::Image(o.image.clone()))
            .collect(),
        opened,
    ))
}

/// Write an index to `dst` (a layout or a registry); print `DST: DIGEST`. With `origin`
/// (a registry source's repository and layer digests), those layers are mounted first
/// into a destination repository of the same registry.
pub fn write_index(
    dst: &str,
    idx: Arc<dyn ImageIndex>,
    stores: &Stores,
    origin: Option<&(hoist_remote::Repository, Vec<hoist_image::Digest>)>,
) -> anyhow::Result<()> {
    let loc = Location::parse(dst)?;
    let digest = match &loc {
        Location::Registry(r) => {
            let target = hoist_remote::Target::from_reference(r)?;
            if let Some(o) = origin {
                super::mutate::mount_from_origin(&target, o, &super::push::RemoteArgs::default())?;
            }
            let opts = hoist_remote::push::Options {
                memory_dir: stores.cache.as_ref().map(|c| c.path().join("remote")),
                ..Default::default()
            };
            let pushed = super::push::push_source(
                hoist_image::Child::Index(idx),
                &[target],
                &opts,
                &super::push::RemoteArgs::default(),
                true,
            )
            .with_context(|| format!("writing {loc}"))?;
            pushed
                .first()
                .and_then(|p| p.rsplit_once('@'))
                .map(|(_, d)| d.to_string())
                .context("the push reported no digest")?
        }
        _ => loc.write_local(&Child::Index(idx))?.digest.to_string(),
    };
    writeln!(std::io::stdout(), "{loc}: {digest}")?;
    Ok(())
}

/// Run an index verb.
pub fn run(c: &IndexCommand, cache: &CacheOpts) -> anyhow::Result<()> {
    let stores = cache.store()?;
    match c {
        IndexCommand::Create { images: list, dst } => {
            let (children, _keep) = images(list, &stores)?;
            let idx = index::create(children)?;
            write_index(dst, idx, &stores, None)
        }
        IndexCommand::Append {
            index: src,
            images: list,
            dst,
        } => {
            let (_, base, _rt) = open_index(src, &stores)?;
            let (children, _keep) = images(list, &stores)?;
            let idx = index::append_to(base, children)?;
            write_index(dst, idx, &stores, None)
        }
        IndexCommand::Filter {
            index: src,
            platform,
            dst,
        } => {
            let (loc, base, _rt) = open_index(src, &stores)?;
            let platforms = platform
                .iter()
                .map(|p| Platform::parse(p))
                .collect::<Result<Vec<_>, _>>()?;
            let idx =
                index::filter(base, &platforms).with_context(|| format!("filtering {loc}"))?;
            write_index(dst, idx, &stores, None)
        }
        IndexCommand::List { index: src } => {
            let (_, idx, _rt) = open_index(src, &stores)?;
            let m = idx.manifest()?;
            let mut out = std::io::stdout().lock();
            for d in &m.as_index().context("not an index")?.manifests {
                let platform = d
                    .platform
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into());
                let name = d
                    .annotations
                    .get(hoist_image::ANNOTATION_REF_NAME)
                    .map(String::as_str)
                    .unwrap_or("");
                writeln!(
                    out,
                    "{}\t{platform}\t{}\t{}\t{name}",
                    d.digest, d.media_type, d.size
                )?;
            }
            Ok(())
        }
    }
}
