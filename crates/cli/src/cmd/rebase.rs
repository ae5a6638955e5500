//! `hoist rebase SRC --old-base OLD --new-base NEW -t DST`: replace the layers of OLD at the
//! bottom of SRC with NEW's ([`hoist_ops::rebase`]). No layer is read.

use hoist_ops::Location;

use crate::options::{CacheOpts, Ctx, say};

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
    #[command(flatten)]
    pub remote: crate::options::RemoteArgs,
}

/// Run `hoist rebase`.
pub fn run(args: &Args, cache: &CacheOpts) -> anyhow::Result<()> {
    let src = Location::parse(&args.src)?;
    let old = Location::parse(&args.old_base)?;
    let new = Location::parse(&args.new_base)?;
    let dst = Location::parse(&args.dst)?;
    let ctx = Ctx::new(cache).remote(&args.remote).build()?;
    let report = hoist_ops::rebase::rebase(&src, &old, &new, &dst, &ctx)?;
    say(&dst, &report.written[0])?;
    Ok(())
}
