//! `hoist pull REF DST`: an image or index from a registry into an OCI layout
//! (`oci:DIR[:NAME]`) or an oci-archive (every platform unless `--platform`) or a
//! docker-save tarball (`docker-archive:FILE[:REF]`, this machine's platform unless
//! `--platform`), with [`hoist_ops::pull`]. Prints `DST@DIGEST`.

use hoist_ops::pull;

use crate::options::{self, CacheArgs, Ctx, FormatArg, Global, print_report};

/// Arguments of `hoist pull`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: a registry reference (host[:port]/name[:tag|@digest]), docker:// optional.
    pub src: String,
    /// Destination: oci:DIR[:NAME], oci-archive:FILE[:NAME], docker-archive:FILE[:REF],
    /// `-` (a docker-save tarball on stdout), or a path (a new name ending in .tar or an
    /// existing file, device or fifo gets a docker-save tarball; any other new name a
    /// layout).
    pub dst: String,
    /// Platforms of an index: `all` (the default into a layout or oci-archive), one
    /// os/arch[/variant] (that image alone; the default into a docker-archive is this
    /// machine's), or several, comma-separated or repeated (a new index of those).
    #[arg(long, value_name = "PLATFORMS")]
    pub platform: Vec<String>,
    /// Blob downloads in flight.
    #[arg(long, default_value_t = hoist_remote::pull::DEFAULT_JOBS)]
    pub jobs: usize,
    #[command(flatten)]
    pub format: FormatArg,
    #[command(flatten)]
    pub remote: options::RemoteArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// Run `hoist pull`.
pub fn run(args: &Args, g: &Global) -> anyhow::Result<()> {
    let src = options::reference(&args.src, "source")?;
    let dst = pull::destination(&args.dst)?;
    let opts = pull::Options {
        platforms: options::platforms(&args.platform)?,
        ..pull::Options::default()
    };
    let s = Ctx::new(g)
        .cache(&args.cache)
        .remote(&args.remote)
        .jobs(Some(args.jobs))
        .build()?;
    let report = pull::pull(&src, &dst, &opts, &s.ctx);
    s.finish(report.as_ref().ok());
    print_report(Some(&dst), &report?, args.format.format)
}
