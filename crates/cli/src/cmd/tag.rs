//! `hoist tag REF TAG...`: give an image in a registry more tags, one manifest PUT each
//! (none when the tag already points at it), with [`hoist_ops::tag`]. Prints
//! `REPO:TAG@DIGEST` per tag.

use crate::options::{self, Ctx, FormatArg, Global, RemoteArgs, print_report};

/// Arguments of `hoist tag`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: host[:port]/name[:tag|@digest].
    pub reference: String,
    /// New tags, in the same repository.
    #[arg(required = true)]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub format: FormatArg,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Run `hoist tag`.
pub fn run(args: &Args, g: &Global) -> anyhow::Result<()> {
    let r = options::reference(&args.reference, "reference")?;
    let s = Ctx::new(g).remote(&args.remote).build()?;
    let report = hoist_ops::tag::tag(&r, &args.tags, &s.ctx);
    s.finish(report.as_ref().ok());
    print_report(None, &report?, args.format.format)
}
