//! `hoist export SRC FILE|-`: the image's merged filesystem (whiteouts and opaque
//! directories applied) as one tar, streamed to a file or stdout ([`hoist_ops::export`]).

use hoist_ops::Location;

use crate::options::{Ctx, Global, RemoteArgs};

/// Arguments of `hoist export`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: docker://REF (or a bare registry reference), oci:DIR[:NAME],
    /// oci-archive:FILE[:NAME], docker-archive:FILE[:REF], or an existing path.
    pub src: String,
    /// Where the tar goes: a file (a device or fifo is written as a stream), or `-` for stdout.
    pub out: String,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Run `hoist export`.
pub fn run(args: &Args, g: &Global) -> anyhow::Result<()> {
    let src = Location::parse(&args.src)?;
    let s = Ctx::new(g).remote(&args.remote).build()?;
    let r = hoist_ops::export::export(&src, std::path::Path::new(&args.out), &s.ctx);
    s.finish(None);
    r?;
    Ok(())
}
