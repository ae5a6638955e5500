//! `hoist flatten SRC -t DST [--compression gzip|zstd|none] [--time T]`: one layer with the
//! image's merged filesystem (whiteouts applied), compressed once through the content cache.

use anyhow::Context;
use hoist_image::mutate;
use hoist_image::pipeline::Encoding;

use super::cache::CacheOpts;
use super::mutate::{NewLayerCompression, open_image, parse_time, write_image};

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
}

/// Run `hoist flatten`.
pub fn run(args: &Args, cache: &CacheOpts) -> anyhow::Result<()> {
    let time = parse_time(args.time.as_deref())?;
    let stores = cache.store()?;
    // Tarball layers are read uncompressed: no need to compress them on the way.
    let src = open_image(&args.src, &Encoding::none(), &stores, None)?;
    let out = mutate::flatten(
        src.image.clone(),
        &args.compression.encoding(),
        stores.store.clone(),
        time,
    )
    .with_context(|| format!("flattening {}", src.loc))?;
    write_image(&args.dst, out, &stores, &[])
}
