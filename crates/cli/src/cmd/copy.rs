//! `hoist copy SRC DST [--compression gzip|zstd|none|keep] [--level N] [--threads N]`:
//! copy an image or index between any two locations ([`hoist_ops::copy`]), compressing
//! each layer at most once — and, with the content cache, at most once per machine.
//! Prints `REF@DIGEST` per destination (per tag with `--all-tags`).

use clap::ValueEnum;
use hoist_image::Compression;
use hoist_ops::Location;
use hoist_ops::copy::{self, Layers};

use crate::options::{self, CacheArgs, Ctx, FormatArg, Global, RemoteArgs, print_report};

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
    /// Source: docker://REF (or a bare registry reference), oci:DIR[:NAME],
    /// oci-archive:FILE[:NAME], docker-archive:FILE[:REF], or an existing path.
    pub src: String,
    /// Destination: docker://REF (or a bare registry reference), oci:DIR[:NAME],
    /// oci-archive:FILE[:NAME], docker-archive:FILE[:REF], a path (an existing one, or a
    /// new NAME.tar: a docker-save tarball), or `-` (a docker-save tarball on stdout).
    pub dst: String,
    /// Layer compression in the destination. Default: keep layers as they are (a
    /// docker-save tarball's plain layers become gzip), and gzip into a docker-archive.
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
    /// Platforms of an index to copy: `all` (the default, except into a docker-archive,
    /// which takes this machine's), one os/arch[/variant] (that image alone), or several,
    /// comma-separated or repeated (a new index of those images).
    #[arg(long, value_name = "PLATFORMS")]
    pub platform: Vec<String>,
    /// Blob transfers in flight (from and to registries).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// To a registry: refuse to overwrite a tag that exists.
    #[arg(long)]
    pub no_clobber: bool,
    /// Registry to registry: copy every tag of the source repository (the destination
    /// names a repository, no tag); prints a line per tag.
    #[arg(long)]
    pub all_tags: bool,
    /// Registry to registry: copy the referrers of what is copied too (signatures,
    /// attestations, SBOMs), recursively, through the referrers API or the tag schema
    /// (sha256-<hex> tags), digests unchanged.
    #[arg(long)]
    pub referrers: bool,
    #[command(flatten)]
    pub format: FormatArg,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
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
            platforms: options::platforms(&self.platform)?,
            no_clobber: self.no_clobber,
            all_tags: self.all_tags,
            referrers: self.referrers,
        })
    }
}

/// Run `hoist copy`.
pub fn run(args: &Args, g: &Global) -> anyhow::Result<()> {
    let src = Location::parse(&args.src)?;
    let dst = Location::parse_destination(&args.dst)?;
    let opts = args.options()?;
    let s = Ctx::new(g)
        .cache(&args.cache)
        .remote(&args.remote)
        .jobs(args.jobs)
        .build()?;
    let report = copy::copy(&src, &dst, &opts, &s.ctx);
    s.finish(report.as_ref().ok());
    let report = report?;
    if let Some(r) = &report.referrers
        && !g.quiet
    {
        eprintln!(
            "referrers: {} copied ({} blobs, {}), {} manifests put",
            r.referrers,
            r.blobs_uploaded,
            crate::progress::size(r.bytes_uploaded),
            r.manifests_put
        );
    }
    print_report(Some(&dst), &report, args.format.format)
}
