//! `hoist rebase SRC --old-base OLD --new-base NEW -t DST`: replace the layers of OLD at the
//! bottom of SRC with NEW's. OLD's layers must be SRC's first layers (by digest and
//! diff_id). No layer is read: SRC's own layers and NEW's are copied or mounted as they are.

use anyhow::Context;
use hoist_image::mutate;
use hoist_image::pipeline::Encoding;

use super::cache::CacheOpts;
use super::mutate::{open_image, write_image};

/// Arguments of `hoist rebase`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image to rebase.
    pub src: String,
    /// The base SRC was built on.
    #[arg(long, value_name = "OLD")]
    pub old_base: String,
    /// The base to put under SRC's own layers instead.
    #[arg(long, value_name = "NEW")]
    pub new_base: String,
    /// Destination: oci:DIR[:NAME], docker-archive:FILE[:REF], or a registry reference.
    #[arg(short = 't', long = "tag", value_name = "DST")]
    pub dst: String,
}

/// Run `hoist rebase`.
pub fn run(args: &Args, cache: &CacheOpts) -> anyhow::Result<()> {
    let stores = cache.store()?;
    let gz = Encoding::gzip();
    let src = open_image(&args.src, &gz, &stores, None)?;
    let old = open_image(&args.old_base, &gz, &stores, None)?;
    let new = open_image(&args.new_base, &gz, &stores, None)?;
    let out = mutate::rebase(src.image.clone(), old.image.as_ref(), new.image.as_ref())
        .with_context(|| format!("rebasing {}", src.loc))?;
    write_image(&args.dst, out, &stores, &[&src, &new])
}
