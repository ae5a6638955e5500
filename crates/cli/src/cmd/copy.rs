//! `hoist copy SRC DST [--compression gzip|zstd|none|keep] [--level N] [--threads N]`:
//! copy an image between any two locations ([`hoist_ops::copy`]), compressing each layer
//! at most once — and, with the content cache, at most once per machine.

use std::io::Write;

use clap::ValueEnum;
use hoist_image::Compression;
use hoist_ops::copy::{self, Layers};
use hoist_ops::{Location, Written};
use hoist_remote::Repository;

use crate::options::{self, CacheOpts, Ctx, say};

/// The `--compression` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    /// gzip (deterministic, parallel).
    Gzip,
    /// zstd (OCI `tar+zstd`).
    Zstd,
    /// Plain tar.
    None,
    /// Keep each layer as the source has it (a docker-save tarball's are plain tar).
    Keep,
}

/// Arguments of `hoist copy`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Source: oci:DIR[:NAME], docker-archive:FILE[:REF], or a path.
    pub src: String,
    /// Destination: oci:DIR[:NAME], docker-archive:FILE[:REF] or `-` (a tarball on stdout).
    pub dst: String,
    /// Layer compression in the destination. Default: keep for OCI layouts, gzip for
    /// docker-save tarballs (whose layers are plain tar).
    #[arg(long, value_enum)]
    pub compression: Option<CompressionArg>,
    /// Compression level (gzip 0-12, default 6 to a layout or tarball, 1 to a registry;
    /// zstd 1-22, default 3).
    #[arg(long)]
    pub level: Option<u32>,
    /// gzip with ISA-L's igzip (level 1, about 1.5x faster than libdeflate's level 1). Its
    /// bytes depend on the CPU family, so digests differ between x86-64 with AVX2 and ARM.
    #[arg(long, conflicts_with = "level")]
    pub fast: bool,
    /// Compression threads (0: all cores). The output is the same for any number.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print what the cache did (hits, layers compressed) on stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// From a registry: only this platform of an index (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    /// From a registry: blob transfers in flight.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// To a registry: refuse to overwrite a tag that exists.
    #[arg(long)]
    pub no_clobber: bool,
    /// Registry to registry: copy every tag of the source repository.
    #[arg(long)]
    pub all_tags: bool,
    #[command(flatten)]
    pub remote: options::RemoteArgs,
}

impl Args {
    fn options(&self) -> anyhow::Result<copy::Options> {
        Ok(copy::Options {
            layers: match self.compression {
                None => Layers::Default,
                Some(CompressionArg::Keep) => Layers::Keep,
                Some(CompressionArg::Gzip) => Layers::To(Compression::Gzip),
                Some(CompressionArg::Zstd) => Layers::To(Compression::Zstd),
                Some(CompressionArg::None) => Layers::To(Compression::None),
            },
            level: self.level,
            fast: self.fast,
            threads: self.threads,
            platform: options::platform(self.platform.as_deref())?,
            no_clobber: self.no_clobber,
            all_tags: self.all_tags,
        })
    }
}

/// Run `hoist copy`.
pub fn run(args: &Args, cache: &CacheOpts) -> anyhow::Result<()> {
    let src = Location::parse(&args.src)?;
    let dst = Location::parse(&args.dst)?;
    let opts = args.options()?;
    // `hoist copy` prints no progress (see `-v` for what the cache did).
    let ctx = Ctx::new(cache)
        .remote(&args.remote)
        .jobs(args.jobs)
        .build()?;
    let report = copy::copy(&src, &dst, &opts, &ctx)?;
    if args.all_tags {
        for w in &report.written {
            writeln!(std::io::stderr(), "{}", tag_line(w))?;
        }
    }
    let last = report.written.last().expect("a copy writes");
    if src.is_registry() {
        say(&dst, format_args!("{dst}: {}", last.digest))?;
        return Ok(());
    }
    say(&dst, last)?;
    if args.verbose {
        match ctx.cache()? {
            Some(c) => {
                let s = c.stats();
                eprintln!(
                    "cache {}: {} hits, {} layers compressed, {} corrupt entries evicted, {} evicted for size",
                    c.path().display(),
                    s.hits,
                    s.sealed,
                    s.evicted_corrupt,
                    s.evicted_lru
                );
            }
            None => eprintln!("cache disabled (--no-cache)"),
        }
    }
    Ok(())
}

/// `REPO:TAG: DIGEST`, a line per tag of `--all-tags`.
fn tag_line(w: &Written) -> String {
    match &w.location {
        Location::Registry(r) => format!(
            "{}:{}: {}",
            Repository::from_reference(r),
            r.tag().unwrap_or_default(),
            w.digest
        ),
        other => format!("{other}: {}", w.digest),
    }
}
