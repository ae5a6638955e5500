//! `hoist push SRC DST [DST...]`: push an image (or index) from a layout or an archive to
//! one or more registry destinations ([`hoist_ops::push`]). Prints one `REF@DIGEST` per
//! destination on stdout (`--format json`: the report, per destination); progress on
//! stderr (bars on a terminal, plain lines otherwise, nothing with `--quiet`).

use hoist_ops::{Location, push};

use crate::options::{self, CacheArgs, Ctx, FormatArg, Global, print_report};

/// Arguments of `hoist push`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: oci:DIR[:NAME], oci-archive:FILE[:NAME], docker-archive:FILE[:REF], or
    /// an existing path.
    pub src: String,
    /// Destinations: registry references (host[:port]/name[:tag]); `latest` when no tag.
    #[arg(required = true)]
    pub dst: Vec<String>,
    /// Blob requests in flight.
    #[arg(long, default_value_t = hoist_remote::push::DEFAULT_JOBS)]
    pub jobs: usize,
    /// Upload in chunks of this many bytes (PATCH with Content-Range); suffixes k, M, G.
    #[arg(long, value_parser = crate::cmd::random::parse_size)]
    pub chunk_size: Option<u64>,
    /// head-first: compress each layer once into the cache, then HEAD / mount / upload
    /// (a re-push compresses nothing). stream: compress straight into the uploads (gzip),
    /// no spool; every layer is compressed on every push.
    #[arg(long, value_enum, default_value_t = StrategyArg::HeadFirst)]
    pub strategy: StrategyArg,
    /// gzip level for layers that need compressing (tarballs): 0-12. Default 1 (fastest:
    /// the layer goes on the network now); 6 is as small as pigz -6.
    #[arg(long)]
    pub level: Option<u32>,
    /// gzip with ISA-L's igzip (level 1, about 1.5x faster than the default). Its bytes
    /// depend on the CPU family (x86-64 with AVX2 vs ARM and older x86), so the layer
    /// digests are not the same on every machine.
    #[arg(long, conflicts_with = "level")]
    pub fast: bool,
    #[command(flatten)]
    pub format: FormatArg,
    #[command(flatten)]
    pub remote: options::RemoteArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// `--strategy` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyArg {
    /// Seal through the cache, then HEAD, mount or upload.
    HeadFirst,
    /// Upload while compressing.
    Stream,
}

pub fn run(args: &Args, g: &Global) -> anyhow::Result<()> {
    let src = Location::parse_local(&args.src)?;
    let dsts = args
        .dst
        .iter()
        .map(|d| options::reference(d, "destination"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let opts = push::Options {
        stream: args.strategy == StrategyArg::Stream,
        chunk_size: args.chunk_size,
        level: args.level,
        fast: args.fast,
    };
    let s = Ctx::new(g)
        .cache(&args.cache)
        .remote(&args.remote)
        .jobs(Some(args.jobs))
        .build()?;
    let report = push::push(&src, &dsts, &opts, &s.ctx);
    s.finish(report.as_ref().ok());
    print_report(None, &report?, args.format.format)
}
