//! `hoist push SRC DST [DST...]`: push an image (or index) from a layout or a docker-save
//! tarball to one or more registry destinations ([`hoist_ops::push`]). Prints one
//! `REF@DIGEST` per destination on stdout; progress on stderr (bars on a terminal, plain
//! lines otherwise, nothing with `--quiet`).

use std::io::Write;

use hoist_ops::{Location, push};

use crate::options::{self, CacheOpts, Ctx};

/// Arguments of `hoist push`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: oci:DIR[:NAME], docker-archive:FILE[:REF], or a path.
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
    /// No progress on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub remote: options::RemoteArgs,
}

/// `--strategy` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyArg {
    /// Seal through the cache, then HEAD, mount or upload.
    HeadFirst,
    /// Upload while compressing.
    Stream,
}

pub fn run(args: &Args, cache: &CacheOpts) -> anyhow::Result<()> {
    let src = Location::parse(&args.src)?;
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
    let ctx = Ctx::new(cache)
        .remote(&args.remote)
        .progress(args.quiet)
        .jobs(Some(args.jobs))
        .build()?;
    let report = push::push(&src, &dsts, &opts, &ctx)?;
    // The bars go before the result lines.
    drop(ctx);
    let mut out = std::io::stdout().lock();
    for w in &report.written {
        writeln!(out, "{}", w.pinned().expect("a registry destination"))?;
    }
    Ok(())
}
