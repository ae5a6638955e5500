//! `hoist flatten SRC -t DST [--compression gzip|zstd|none] [--time T]`: one layer with the
//! image's merged filesystem (whiteouts applied), with [`hoist_ops::flatten`].

use hoist_ops::Location;

use super::mutate::NewLayerCompression;
use crate::options::{self, CacheArgs, Ctx, FormatArg, Global, RemoteArgs, print_report};

/// Arguments of `hoist flatten`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: docker://REF (or a bare registry reference), oci:DIR[:NAME],
    /// oci-archive:FILE[:NAME], docker-archive:FILE[:REF], or an existing path.
    pub src: String,
    /// Destination: docker://REF (or a bare registry reference), oci:DIR[:NAME],
    /// oci-archive:FILE[:NAME] or docker-archive:FILE[:REF].
    #[arg(short = 't', long = "tag", value_name = "DST")]
    pub dst: String,
    /// Compression of the flattened layer.
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: NewLayerCompression,
    /// `created` and the history entry's time: seconds since 1970 or YYYY-MM-DDTHH:MM:SSZ.
    #[arg(long)]
    pub time: Option<String>,
    #[command(flatten)]
    pub format: FormatArg,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// Run `hoist flatten`.
pub fn run(args: &Args, g: &Global) -> anyhow::Result<()> {
    let time = options::time(args.time.as_deref())?;
    let src = Location::parse(&args.src)?;
    let dst = Location::parse_destination(&args.dst)?;
    let s = Ctx::new(g)
        .cache(&args.cache)
        .remote(&args.remote)
        .build()?;
    let report =
        hoist_ops::flatten::flatten(&src, &args.compression.encoding(), time, &dst, &s.ctx);
    s.finish(report.as_ref().ok());
    print_report(Some(&dst), &report?, args.format.format)
}
