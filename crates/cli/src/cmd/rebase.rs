//! `hoist rebase SRC --old-base OLD --new-base NEW -t DST`: replace the layers of OLD at the
//! bottom of SRC with NEW's ([`hoist_ops::rebase`]). No layer is read. Prints
//! `DST@DIGEST`.

use hoist_ops::Location;

use crate::options::{CacheArgs, Ctx, FormatArg, Global, RemoteArgs, print_report};

/// Arguments of `hoist rebase`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image to rebase (any location).
    pub src: String,
    /// The base SRC was built on (crane: --old_base).
    #[arg(long, visible_alias = "old_base", value_name = "OLD")]
    pub old_base: String,
    /// The base to put under SRC's own layers instead (crane: --new_base).
    #[arg(long, visible_alias = "new_base", value_name = "NEW")]
    pub new_base: String,
    /// Destination: docker://REF (or a bare registry reference), oci:DIR[:NAME],
    /// oci-archive:FILE[:NAME] or docker-archive:FILE[:REF].
    #[arg(short = 't', long = "tag", value_name = "DST")]
    pub dst: String,
    #[command(flatten)]
    pub format: FormatArg,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// Run `hoist rebase`.
pub fn run(args: &Args, g: &Global) -> anyhow::Result<()> {
    let src = Location::parse(&args.src)?;
    let old = Location::parse(&args.old_base)?;
    let new = Location::parse(&args.new_base)?;
    let dst = Location::parse_destination(&args.dst)?;
    let s = Ctx::new(g)
        .cache(&args.cache)
        .remote(&args.remote)
        .build()?;
    let report = hoist_ops::rebase::rebase(&src, &old, &new, &dst, &s.ctx);
    s.finish(report.as_ref().ok());
    print_report(Some(&dst), &report?, args.format.format)
}
