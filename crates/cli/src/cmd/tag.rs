//! `hoist tag REF TAG...`: give an image in a registry more tags, one manifest PUT each
//! (none when the tag already points at it), with [`hoist_ops::tag`]. Prints
//! `REPO:TAG@DIGEST` per tag.

use std::io::Write;

use hoist_ops::Location;
use hoist_remote::Repository;

use crate::options::{self, CacheOpts, Ctx, RemoteArgs};

/// Arguments of `hoist tag`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: host[:port]/name[:tag|@digest].
    pub reference: String,
    /// New tags, in the same repository.
    #[arg(required = true)]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Run `hoist tag`.
pub fn run(args: &Args, cache: &CacheOpts) -> anyhow::Result<()> {
    let r = options::reference(&args.reference, "reference")?;
    let ctx = Ctx::new(cache).remote(&args.remote).build()?;
    let report = hoist_ops::tag::tag(&r, &args.tags, &ctx)?;
    let mut stdout = std::io::stdout().lock();
    for w in &report.written {
        if let Location::Registry(t) = &w.location {
            let tag = t.tag().unwrap_or_default();
            writeln!(
                stdout,
                "{}:{tag}@{}",
                Repository::from_reference(t),
                w.digest
            )?;
        }
    }
    Ok(())
}
