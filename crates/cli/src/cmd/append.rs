//! `hoist append [BASE] --layer FILE_OR_DIR... -t DST [--time T] [--owner UID:GID]
//! [--compression gzip|zstd|none]`: new layers on top of an image (or of nothing), with
//! [`hoist_ops::append`]. crane's spellings work too: `-b/--base`, `-f/--new_layer`,
//! `--new_tag`. Prints `DST@DIGEST`.

use anyhow::{Context, bail};
use hoist_ops::Location;
use hoist_ops::append::{self, Base};

use super::mutate::NewLayerCompression;
use crate::options::{self, CacheArgs, Ctx, FormatArg, Global, RemoteArgs, print_report};

/// Arguments of `hoist append`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The base image: docker://REF (or a bare registry reference), oci:DIR[:NAME],
    /// oci-archive:FILE[:NAME], docker-archive:FILE[:REF], an existing path, or `scratch`
    /// (no layers; the default, as in crane).
    #[arg(conflicts_with = "base_flag")]
    pub base: Option<String>,
    /// The base image (crane's spelling of BASE).
    #[arg(short = 'b', long = "base", value_name = "BASE", id = "base_flag")]
    pub base_flag: Option<String>,
    /// A tar file (plain, gzip or zstd) or a directory; repeat for several layers, base
    /// first.
    #[arg(
        long,
        short = 'f',
        visible_alias = "new_layer",
        required = true,
        value_name = "FILE_OR_DIR"
    )]
    pub layer: Vec<std::path::PathBuf>,
    /// Destination: docker://REF (or a bare registry reference), oci:DIR[:NAME],
    /// oci-archive:FILE[:NAME] or docker-archive:FILE[:REF].
    #[arg(
        short = 't',
        long = "tag",
        visible_alias = "new_tag",
        value_name = "DST"
    )]
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
    /// The platform of a `scratch` base: os/arch[/variant].
    #[arg(long)]
    pub platform: Option<String>,
    #[command(flatten)]
    pub format: FormatArg,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
}

fn parse_owner(s: &str) -> anyhow::Result<(u64, u64)> {
    let parsed = s
        .split_once(':')
        .and_then(|(u, g)| Some((u.parse().ok()?, g.parse().ok()?)));
    parsed.with_context(|| format!("invalid --owner {s:?}: expected UID:GID, numbers"))
}

/// Run `hoist append`.
pub fn run(args: &Args, g: &Global) -> anyhow::Result<()> {
    let owner = parse_owner(&args.owner)?;
    let time = options::time(args.time.as_deref())?;
    let base = match args.base.as_deref().or(args.base_flag.as_deref()) {
        None | Some("scratch") => Base::Scratch(options::platform(args.platform.as_deref())?),
        Some(b) => {
            if args.platform.is_some() {
                bail!(
                    "--platform is for `scratch` bases; use hoist mutate --platform to change an image's"
                );
            }
            Base::Image(Location::parse(b)?)
        }
    };
    let dst = Location::parse_destination(&args.dst)?;
    let opts = append::Options {
        encoding: args.compression.encoding(),
        time,
        owner,
    };
    let s = Ctx::new(g)
        .cache(&args.cache)
        .remote(&args.remote)
        .build()?;
    let report = append::append(&base, &args.layer, &opts, &dst, &s.ctx);
    s.finish(report.as_ref().ok());
    print_report(Some(&dst), &report?, args.format.format)
}
