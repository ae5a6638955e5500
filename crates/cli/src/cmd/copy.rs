//! `hoist copy SRC DST [--compression gzip|zstd|none|keep] [--level N] [--threads N]`:
//! copy an image between local locations (OCI layouts, docker-save tarballs), compressing
//! each layer at most once — and, with the content cache, at most once per machine.

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::ValueEnum;
use hoist_image::layout::{self, Layout};
use hoist_image::pipeline::{self, Encoding};
use hoist_image::{Child, Compression, Image, Reference, tarball};

use super::cache::CacheOpts;
use crate::location::{Location, not_local};

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
    pub remote: super::push::RemoteArgs,
}

impl Args {
    /// The encoding asked for, or None for keep.
    fn encoding(&self, default: CompressionArg) -> anyhow::Result<Option<Encoding>> {
        let to_registry = matches!(Location::parse(&self.dst), Ok(Location::Registry(_)));
        let c = match self.compression.unwrap_or(default) {
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
            CompressionArg::None => Compression::None,
            CompressionArg::Keep => {
                if self.level.is_some() || self.fast {
                    bail!("--level and --fast need --compression gzip or zstd, not keep");
                }
                return Ok(None);
            }
        };
        let mut e = Encoding::of(c).threads(self.threads);
        e.level = self.level;
        if c == Compression::Gzip && to_registry {
            // Fast for the network, as `hoist push` (pipeline::DEFAULT_PUSH_GZIP_LEVEL).
            e.level = Some(self.level.unwrap_or(pipeline::DEFAULT_PUSH_GZIP_LEVEL));
        }
        if self.fast {
            e = e.fast();
        }
        e.validate()?;
        Ok(Some(e))
    }
}

/// What a source resolves to.
enum Source {
    Image(Arc<dyn Image>, Vec<Reference>),
    Index(Arc<dyn hoist_image::ImageIndex>),
}

/// Run `hoist copy`.
pub fn run(args: &Args, cache: &CacheOpts) -> anyhow::Result<()> {
    let src = Location::parse(&args.src)?;
    let dst = Location::parse(&args.dst)?;
    if let Location::Registry(r) = &src {
        let opts = super::pull::FromRegistry {
            platform: super::pull::parse_platform(args.platform.as_deref())?,
            jobs: args.jobs,
            encoding: args.encoding(CompressionArg::Keep)?,
            no_clobber: args.no_clobber,
            all_tags: args.all_tags,
            // `hoist copy` prints no progress (see `-v` for what the cache did).
            quiet: true,
            remote: args.remote.clone(),
        };
        let digest = super::pull::from_registry(r, &dst, &opts, cache)?;
        dst.say(format_args!("{dst}: {digest}"))?;
        return Ok(());
    }
    if args.all_tags || args.platform.is_some() {
        bail!("--all-tags and --platform apply to registry sources; {src} is local");
    }
    let super::cache::Stores { store, cache } = cache.store()?;
    let source = match &src {
        Location::Layout { dir, name } => {
            let layout = Layout::open(dir).with_context(|| format!("source {src}"))?;
            let child = match name {
                Some(n) => layout.get(n)?,
                None => {
                    // Several tags of one manifest are one image.
                    let mut index = layout.index_manifest()?;
                    let mut seen = std::collections::HashSet::new();
                    index.manifests.retain(|d| seen.insert(d.digest.clone()));
                    match index.manifests.as_slice() {
                        [one] => layout.child(one)?,
                        [] => bail!("source {src}: the layout holds no image"),
                        many => bail!(
                            "source {src}: the layout holds {} manifests; name one with oci:DIR:NAME",
                            many.len()
                        ),
                    }
                }
            };
            let encoding = args.encoding(CompressionArg::Keep)?;
            match child {
                Child::Image(img) => match encoding {
                    Some(e) => Source::Image(pipeline::recompress(img, &e, store.clone())?, vec![]),
                    None => Source::Image(img, vec![]),
                },
                Child::Index(i) => match encoding {
                    Some(e) => Source::Index(pipeline::recompress_index(i, &e, store.clone())?),
                    None => Source::Index(i),
                },
            }
        }
        Location::Archive { .. } if src.is_stdout() => {
            bail!("source {src}: stdout is a destination; a tarball is read from a file")
        }
        Location::Archive { file, reference } => {
            let encoding = args
                .encoding(CompressionArg::Gzip)?
                .unwrap_or_else(Encoding::none);
            let opts = tarball::Options {
                tag: reference.as_ref().map(|r| r.to_string()),
                encoding,
                store: Some(store.clone()),
            };
            let img = tarball::Image::open(file, &opts).with_context(|| format!("source {src}"))?;
            let tags = img
                .repo_tags()
                .iter()
                .filter_map(|t| Reference::parse(t).ok())
                .collect();
            Source::Image(Arc::new(img), tags)
        }
        Location::Registry(r) => return Err(not_local(r)),
    };

    let digest = match (&dst, source) {
        (Location::Layout { dir, name }, source) => {
            if name
                .as_deref()
                .is_some_and(|n| n.starts_with("sha256:") || n.starts_with("sha512:"))
            {
                bail!("destination {dst}: name the image with a tag, not a digest");
            }
            let layout = Layout::create(dir).with_context(|| format!("destination {dst}"))?;
            match source {
                Source::Image(img, _) => layout::write(&layout, img.as_ref(), name.as_deref()),
                Source::Index(i) => layout::write_index(&layout, i.as_ref(), name.as_deref()),
            }
            .with_context(|| format!("copying {src} to {dst}"))?
            .digest
        }
        (Location::Archive { file, reference }, Source::Image(img, tags)) => {
            let tags = match reference {
                Some(r) => vec![r.clone()],
                None => tags,
            };
            crate::location::write_tarball(file, img.as_ref(), &tags)
                .with_context(|| format!("copying {src} to {dst}"))?;
            // A tarball has no manifest digest, and asking for one would compress the
            // layers for nothing: print the image ID (the config's digest).
            dst.say(format_args!("{dst}: image ID {}", img.config()?.digest()))?;
            report(args, cache.as_deref());
            return Ok(());
        }
        (Location::Archive { .. }, Source::Index(_)) => {
            bail!(
                "destination {dst}: a docker-save tarball holds images, not an index; name one image of {src}"
            )
        }
        (Location::Registry(r), source) => {
            // To a registry: the push engine (cmd/push.rs, hoist-remote).
            let target = hoist_remote::Target::from_reference(r)?;
            let source = match source {
                Source::Image(img, _) => hoist_image::Child::Image(img),
                Source::Index(i) => hoist_image::Child::Index(i),
            };
            let opts = hoist_remote::push::Options {
                memory_dir: cache.as_ref().map(|c| c.path().join("remote")),
                ..Default::default()
            };
            if args.no_clobber
                && let Some(tag) = &target.tag
            {
                let client = args.remote.client()?;
                let rt = super::push::runtime()?;
                if let Some(d) = rt.block_on(client.manifest_digest(&target.repo, tag))? {
                    bail!("destination {dst}: the tag exists (at {d}) and --no-clobber is set");
                }
            }
            let remote = args.remote.clone();
            let pushed = super::push::push_source(source, &[target], &opts, &remote, true)
                .with_context(|| format!("copying {src} to {dst}"))?;
            pushed
                .first()
                .and_then(|p| p.rsplit_once('@'))
                .and_then(|(_, d)| hoist_image::Digest::parse(d).ok())
                .context("the push reported no digest")?
        }
    };
    dst.say(format_args!("{dst}: {digest}"))?;
    report(args, cache.as_deref());
    Ok(())
}

/// With `-v`, what the cache did, on stderr.
fn report(args: &Args, cache: Option<&hoist_image::Cache>) {
    if !args.verbose {
        return;
    }
    match cache {
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
