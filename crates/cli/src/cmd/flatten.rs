//! `hoist flatten SRC -t DST [--compression gzip|zstd|none] [--time T]`: one layer with the
//! image's merged filesystem (whiteouts applied), with [`hoist_ops::flatten`].

use hoist_ops::Location;

use super::mutate::NewLayerCompression;
use crate::options::{self, CacheOpts, Ctx, say};

/// Arguments of `hoist flatten`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: oci:DIR[:NAME], docker-archive:FILE[:REF], or a path.
    pub src: String,
    /// Destination: oci:DIR[:NAME], docker-archive:FILE[:REF], or a registry reference.
    #[arg(short = 't', long = "tag", value_name = "DST")]
    pub dst: String,
    /// Compression of the flattened layer.
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: NewLayerCompression,
    /// `created` and the history entry's time: seconds since 1970 or YYYY-MM-DDTHH:MM:SSZ.
    #[arg(long)]
    pub time: Option<String>,
    #[command(flatten)]
    pub remote: crate::options::RemoteArgs,
}

/// Run `hoist flatten`.
pub fn run(args: &Args, cache: &CacheOpts) -> anyhow::Result<()> {
    let time = options::time(args.time.as_deref())?;
    let src = Location::parse(&args.src)?;
    let dst = Location::parse(&args.dst)?;
    let ctx = Ctx::new(cache).remote(&args.remote).build()?;
    let report = hoist_ops::flatten::flatten(&src, &args.compression.encoding(), time, &dst, &ctx)?;
    say(&dst, &report.written[0])?;
    Ok(())
}
