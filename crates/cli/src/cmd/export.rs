//! `hoist export SRC FILE|-`: the image's merged filesystem (whiteouts and opaque
//! directories applied) as one tar, streamed to a file or stdout ([`hoist_ops::export`]).

use hoist_ops::Location;

use crate::options::{CacheOpts, Ctx};

/// Arguments of `hoist export`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: oci:DIR[:NAME], docker-archive:FILE[:REF], or a path.
    pub src: String,
    /// Where the tar goes: a file (a device or fifo is written as a stream), or `-` for stdout.
    pub out: String,
    #[command(flatten)]
    pub remote: crate::options::RemoteArgs,
}

/// Run `hoist export`.
pub fn run(args: &Args, cache: &CacheOpts) -> anyhow::Result<()> {
    let src = Location::parse(&args.src)?;
    let ctx = Ctx::new(cache).remote(&args.remote).build()?;
    hoist_ops::export::export(&src, std::path::Path::new(&args.out), &ctx)?;
    Ok(())
}
