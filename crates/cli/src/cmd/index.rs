//! `hoist index create|append|filter|list`: multi-platform indexes from images in any
//! location, written to a layout or a registry ([`hoist_ops::index`]).

use std::io::Write;

use clap::Subcommand;
use hoist_image::Platform;
use hoist_ops::{Location, index};

use crate::options::{
    CacheArgs, Ctx, Format, FormatArg, Global, RemoteArgs, print_json, print_report,
};

/// The index verbs.
#[derive(Subcommand, Debug)]
pub enum IndexCommand {
    /// Make an index of images (each of one platform).
    Create {
        /// The images: any location of a single image (oci:DIR:NAME, oci-archive:FILE,
        /// docker-archive:FILE[:REF], docker://REF, an existing path).
        #[arg(required = true)]
        images: Vec<String>,
        /// Destination: docker://REF (or a bare registry reference), oci:DIR[:NAME] or
        /// oci-archive:FILE[:NAME].
        #[arg(short = 't', long = "tag", value_name = "DST")]
        dst: String,
        #[command(flatten)]
        format: FormatArg,
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Add images to an index; an image of a platform already listed replaces it.
    Append {
        /// The index (any location).
        index: String,
        /// The images to add.
        #[arg(required = true)]
        images: Vec<String>,
        /// Destination: docker://REF (or a bare registry reference), oci:DIR[:NAME] or
        /// oci-archive:FILE[:NAME].
        #[arg(short = 't', long = "tag", value_name = "DST")]
        dst: String,
        #[command(flatten)]
        format: FormatArg,
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Keep only the images of some platforms.
    Filter {
        /// The index (any location).
        index: String,
        /// Platforms to keep: os/arch[/variant], comma-separated or repeated.
        #[arg(long, required = true)]
        platform: Vec<String>,
        /// Destination: docker://REF (or a bare registry reference), oci:DIR[:NAME] or
        /// oci-archive:FILE[:NAME].
        #[arg(short = 't', long = "tag", value_name = "DST")]
        dst: String,
        #[command(flatten)]
        format: FormatArg,
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// List an index's entries: digest, platform, media type, size, name (JSON: the
    /// descriptors).
    List {
        /// The index (any location).
        index: String,
        #[command(flatten)]
        format: FormatArg,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

fn locations(list: &[String]) -> anyhow::Result<Vec<Location>> {
    list.iter().map(|s| Ok(Location::parse(s)?)).collect()
}

/// Run an index verb.
pub fn run(c: &IndexCommand, g: &Global) -> anyhow::Result<()> {
    let (remote, cache, format) = match c {
        IndexCommand::Create {
            remote,
            cache,
            format,
            ..
        }
        | IndexCommand::Append {
            remote,
            cache,
            format,
            ..
        }
        | IndexCommand::Filter {
            remote,
            cache,
            format,
            ..
        } => (remote, Some(cache), format),
        IndexCommand::List { remote, format, .. } => (remote, None, format),
    };
    let mut ctx = Ctx::new(g).remote(remote);
    if let Some(c) = cache {
        ctx = ctx.cache(c);
    }
    let s = ctx.build()?;
    let ctx = &s.ctx;
    let (dst, report) = match c {
        IndexCommand::Create { images, dst, .. } => {
            let dst = Location::parse_destination(dst)?;
            let r = index::create(&locations(images)?, &dst, ctx);
            (dst, r)
        }
        IndexCommand::Append {
            index: src,
            images,
            dst,
            ..
        } => {
            let (src, dst) = (Location::parse(src)?, Location::parse_destination(dst)?);
            let r = index::append(&src, &locations(images)?, &dst, ctx);
            (dst, r)
        }
        IndexCommand::Filter {
            index: src,
            platform,
            dst,
            ..
        } => {
            let (src, dst) = (Location::parse(src)?, Location::parse_destination(dst)?);
            let platforms = platform
                .iter()
                .flat_map(|p| p.split(','))
                .map(|p| Platform::parse(p.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            let r = index::filter(&src, &platforms, &dst, ctx);
            (dst, r)
        }
        IndexCommand::List { index: src, .. } => {
            let src = Location::parse(src)?;
            let list = index::list(&src, ctx);
            s.finish(None);
            let list = list?;
            if format.format == Format::Json {
                let v: Vec<serde_json::Value> = list.iter().map(crate::json::descriptor).collect();
                return print_json(&serde_json::Value::Array(v));
            }
            let mut out = std::io::stdout().lock();
            for d in list {
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
    s.finish(report.as_ref().ok());
    print_report(Some(&dst), &report?, format.format)
}
