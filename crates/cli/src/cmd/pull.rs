//! `hoist pull REF DST`: an image or index from a registry into an OCI layout
//! (`oci:DIR[:NAME]`, every platform unless `--platform`) or a docker-save tarball
//! (`docker-archive:FILE[:REF]`, the host platform unless `--platform`), with
//! [`hoist_ops::pull`].

use hoist_ops::pull;

use crate::options::{self, CacheOpts, Ctx, say};

/// Arguments of `hoist pull`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: a registry reference (host[:port]/name[:tag|@digest]), docker:// optional.
    pub src: String,
    /// Destination: oci:DIR[:NAME], docker-archive:FILE[:REF], `-` (a tarball on stdout),
    /// or a path (a new name ending in .tar or an existing file, device or fifo gets a
    /// tarball; any other new name a layout).
    pub dst: String,
    /// Pull only this platform of an index (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    /// Blob downloads in flight.
    #[arg(long, default_value_t = hoist_remote::pull::DEFAULT_JOBS)]
    pub jobs: usize,
    /// No progress on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub remote: options::RemoteArgs,
}

/// Run `hoist pull`.
pub fn run(args: &Args, cache: &CacheOpts) -> anyhow::Result<()> {
    let src = options::reference(&args.src, "source")?;
    let dst = pull::destination(&args.dst)?;
    let opts = pull::Options {
        platform: options::platform(args.platform.as_deref())?,
        ..pull::Options::default()
    };
    let ctx = Ctx::new(cache)
        .remote(&args.remote)
        .progress(args.quiet)
        .jobs(Some(args.jobs))
        .build()?;
    let report = pull::pull(&src, &dst, &opts, &ctx)?;
    // The bars go before the result line.
    drop(ctx);
    let digest = report.digest().expect("a pull writes");
    say(&dst, format_args!("{dst}: {digest}"))?;
    Ok(())
}
