//! `hoist append BASE --layer FILE_OR_DIR... -t DST [--time T] [--owner UID:GID]
//! [--compression gzip|zstd|none]`: new layers on top of an image (or of `scratch`), with
//! [`hoist_ops::append`].

use anyhow::{Context, bail};
use hoist_ops::Location;
use hoist_ops::append::{self, Base};

use super::mutate::NewLayerCompression;
use crate::options::{self, CacheOpts, Ctx, say};

/// Arguments of `hoist append`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The base image (oci:DIR[:NAME], docker-archive:FILE[:REF], a path), or `scratch`.
    pub base: String,
    /// A tar file (plain, gzip or zstd) or a directory; repeat for several layers, base first.
    #[arg(long, required = true, value_name = "FILE_OR_DIR")]
    pub layer: Vec<std::path::PathBuf>,
    /// Destination: oci:DIR[:NAME], docker-archive:FILE[:REF], or a registry reference.
    #[arg(short = 't', long = "tag", value_name = "DST")]
    pub dst: String,
    /// Time of the new history entries, `created`, and directory entries' mtimes:
    /// seconds since 1970 or YYYY-MM-DDTHH:MM:SSZ. Default: mtimes 0, times unset.
    #[arg(long)]
    pub time: Option<String>,
    /// Owner of directory layers' entries.
    #[arg(long, default_value = "0:0", value_name = "UID:GID")]
    pub owner: String,
    /// Compression of the new layers.
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: NewLayerCompression,
    /// The platform of `scratch`: os/arch[/variant].
    #[arg(long)]
    pub platform: Option<String>,
    #[command(flatten)]
    pub remote: crate::options::RemoteArgs,
}

fn parse_owner(s: &str) -> anyhow::Result<(u64, u64)> {
    let parsed = s
        .split_once(':')
        .and_then(|(u, g)| Some((u.parse().ok()?, g.parse().ok()?)));
    parsed.with_context(|| format!("invalid --owner {s:?}: expected UID:GID, numbers"))
}

/// Run `hoist append`.
pub fn run(args: &Args, cache: &CacheOpts) -> anyhow::Result<()> {
    let owner = parse_owner(&args.owner)?;
    let time = options::time(args.time.as_deref())?;
    let base = if args.base == "scratch" {
        Base::Scratch(options::platform(args.platform.as_deref())?)
    } else {
        if args.platform.is_some() {
            bail!(
                "--platform is for `scratch` bases; use hoist mutate --platform to change an image's"
            );
        }
        Base::Image(Location::parse(&args.base)?)
    };
    let dst = Location::parse(&args.dst)?;
    let opts = append::Options {
        encoding: args.compression.encoding(),
        time,
        owner,
    };
    let ctx = Ctx::new(cache).remote(&args.remote).build()?;
    let report = append::append(&base, &args.layer, &opts, &dst, &ctx)?;
    say(&dst, &report.written[0])?;
    Ok(())
}
