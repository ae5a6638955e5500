//! `hoist index create|append|filter|list`: multi-platform indexes from images in any
//! location, written to a layout or a registry ([`hoist_ops::index`]).

use std::io::Write;

use clap::Subcommand;
use hoist_image::Platform;
use hoist_ops::{Location, index};

use crate::options::{CacheOpts, Ctx, say};

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
        #[command(flatten)]
        remote: crate::options::RemoteArgs,
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
        #[command(flatten)]
        remote: crate::options::RemoteArgs,
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
        #[command(flatten)]
        remote: crate::options::RemoteArgs,
    },
    /// List an index's entries: digest, platform, media type, size.
    List {
        /// The index.
        index: String,
        #[command(flatten)]
        remote: crate::options::RemoteArgs,
    },
}

fn locations(list: &[String]) -> anyhow::Result<Vec<Location>> {
    list.iter().map(|s| Ok(Location::parse(s)?)).collect()
}

/// Run an index verb.
pub fn run(c: &IndexCommand, cache: &CacheOpts) -> anyhow::Result<()> {
    let remote = match c {
        IndexCommand::Create { remote, .. }
        | IndexCommand::Append { remote, .. }
        | IndexCommand::Filter { remote, .. }
        | IndexCommand::List { remote, .. } => remote,
    };
    let ctx = Ctx::new(cache).remote(remote).build()?;
    let (dst, report) = match c {
        IndexCommand::Create { images, dst, .. } => {
            let dst = Location::parse(dst)?;
            let r = index::create(&locations(images)?, &dst, &ctx)?;
            (dst, r)
        }
        IndexCommand::Append {
            index: src,
            images,
            dst,
            ..
        } => {
            let (src, dst) = (Location::parse(src)?, Location::parse(dst)?);
            let r = index::append(&src, &locations(images)?, &dst, &ctx)?;
            (dst, r)
        }
        IndexCommand::Filter {
            index: src,
            platform,
            dst,
            ..
        } => {
            let (src, dst) = (Location::parse(src)?, Location::parse(dst)?);
            let platforms = platform
                .iter()
                .map(|p| Platform::parse(p))
                .collect::<Result<Vec<_>, _>>()?;
            let r = index::filter(&src, &platforms, &dst, &ctx)?;
            (dst, r)
        }
        IndexCommand::List { index: src, .. } => {
            let src = Location::parse(src)?;
            let mut out = std::io::stdout().lock();
            for d in index::list(&src, &ctx)? {
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
            return Ok(());
        }
    };
    say(&dst, &report.written[0])?;
    Ok(())
}
