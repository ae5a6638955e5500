//! `hoist copy SRC DST [--compression gzip|zstd|none|keep] [--level N] [--threads N]`:
//! copy an image between local locations (OCI layouts, docker-save tarballs), compressing
//! each layer at most once — and, with the content cache, at most once per machine.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::ValueEnum;
use hoist_image::layout::{self, Layout};
use hoist_image::pipeline::{self, Encoding};
use hoist_image::{Child, Compression, Image, Reference, tarball};

use super::cache::CacheOpts;
use crate::location::{Location, registry_not_built};

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
    /// Destination: oci:DIR[:NAME] or docker-archive:FILE[:REF].
    pub dst: String,
    /// Layer compression in the destination. Default: keep for OCI layouts, gzip for
    /// docker-save tarballs (whose layers are plain tar).
    #[arg(long, value_enum)]
    pub compression: Option<CompressionArg>,
    /// Compression level (gzip 0-9, default 6; zstd 1-22, default 3; fast gzip 0-12).
    #[arg(long)]
    pub level: Option<u32>,
    /// Compression threads (0: all cores). The output is the same for any number.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// gzip: libdeflate, one gzip member per 1 MiB block (faster, multi-member output).
    #[arg(long)]
    pub fast_gzip: bool,
    /// Print what the cache did (hits, layers compressed) on stderr.
    #[arg(short, long)]
    pub verbose: bool,
}

impl Args {
    /// The encoding asked for, or None for keep.
    fn encoding(&self, default: CompressionArg) -> anyhow::Result<Option<Encoding>> {
        let c = match self.compression.unwrap_or(default) {
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
            CompressionArg::None => Compression::None,
            CompressionArg::Keep => {
                if self.level.is_some() || self.fast_gzip {
                    bail!("--level and --fast-gzip need --compression gzip or zstd, not keep");
                }
                return Ok(None);
            }
        };
        let mut e = Encoding::of(c).threads(self.threads);
        e.level = self.level;
        e.fast_gzip = self.fast_gzip;
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
                Child::Index(i) => {
                    if encoding.is_some() {
                        bail!(
                            "source {src} is an index: converting the compression of an index is not supported; \
                             copy one of its images (oci:DIR:NAME) or use --compression keep"
                        );
                    }
                    Source::Index(i)
                }
            }
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
        Location::Registry(r) => return Err(registry_not_built(r)),
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
            tarball::write(file, img.as_ref(), &tags)
                .with_context(|| format!("copying {src} to {dst}"))?;
            img.manifest()?.digest().clone()
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
                Source::Image(img, _) => hoist_remote::push::Source::Image(img),
                Source::Index(i) => hoist_remote::push::Source::Index(i),
            };
            let opts = hoist_remote::push::Options {
                memory_dir: cache.as_ref().map(|c| c.path().join("remote")),
                ..Default::default()
            };
            let remote = super::push::RemoteArgs::default();
            let pushed = super::push::push_source(source, &[target], &opts, &remote, true)
                .with_context(|| format!("copying {src} to {dst}"))?;
            pushed
                .first()
                .and_then(|p| p.rsplit_once('@'))
                .and_then(|(_, d)| hoist_image::Digest::parse(d).ok())
                .context("the push reported no digest")?
        }
    };
    writeln!(std::io::stdout(), "{dst}: {digest}")?;
    if args.verbose {
        match &cache {
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
