//! `hoist mutate SRC -t DST [--label K=V] [--annotation K=V] [--env K=V] [--entrypoint ..]
//! [--cmd ..] [--user U] [--workdir D] [--expose P] [--platform OS/ARCH] [--time T]`:
//! change an image's config (and manifest annotations) without touching its layers: the
//! destination gets one new config and one new manifest, and every layer is copied,
//! mounted or found present as it is — never read, recompressed or re-uploaded.
//!
//! Also the helpers the other image-changing verbs (append, flatten, rebase, export) share:
//! opening a source image and writing the result to any location.

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::ValueEnum;
use hoist_image::mutate::{self, Edits};
use hoist_image::pipeline::Encoding;
use hoist_image::{Child, Compression, Image, Platform};

use super::cache::{CacheOpts, Stores};
use crate::location::Location;

/// Compression of new layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NewLayerCompression {
    /// gzip (deterministic, parallel).
    Gzip,
    /// zstd (OCI `tar+zstd`).
    Zstd,
    /// Plain tar.
    None,
}

impl NewLayerCompression {
    /// The encoding.
    pub fn encoding(self) -> Encoding {
        Encoding::of(match self {
            NewLayerCompression::Gzip => Compression::Gzip,
            NewLayerCompression::Zstd => Compression::Zstd,
            NewLayerCompression::None => Compression::None,
        })
    }
}

/// Parse `--time`: seconds since the epoch or `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_time(s: Option<&str>) -> anyhow::Result<Option<u64>> {
    s.map(|s| mutate::parse_time(s).context("invalid --time"))
        .transpose()
}

/// An opened source image, with what keeps a registry source alive.
pub struct Opened {
    /// Where it is.
    pub loc: Location,
    /// The image.
    pub image: Arc<dyn Image>,
    /// For a registry source: its repository and its layers' digests (mounted into a
    /// destination repository of the same registry instead of being read).
    pub origin: Option<(hoist_remote::Repository, Vec<hoist_image::Digest>)>,
    // A registry image's blobs are read on this runtime: it lives as long as the image.
    _rt: Option<tokio::runtime::Runtime>,
}

/// Open `s` as one image: a layout, a tarball, or a registry image (for an index, the
/// image of `platform`, default the host's). Tarball layers seal into the store with
/// `encoding` when a sink needs their compressed form.
pub fn open_image(
    s: &str,
    encoding: &Encoding,
    stores: &Stores,
    platform: Option<&Platform>,
) -> anyhow::Result<Opened> {
    let loc = Location::parse(s)?;
    if let Location::Registry(r) = &loc {
        let host = hoist_remote::pull::host_platform();
        let platform = platform.unwrap_or(&host);
        let remote = super::push::RemoteArgs::default();
        let (rt, child) = super::pull::open_registry(r, &remote, Some(platform))?;
        let Child::Image(image) = child else {
            bail!("{loc}: no image for platform {platform}");
        };
        let digests = image
            .manifest()?
            .as_image()
            .map(|m| m.layers.iter().map(|d| d.digest.clone()).collect())
            .unwrap_or_default();
        return Ok(Opened {
            origin: Some((super::pull::repository(r)?, digests)),
            loc,
            image,
            _rt: Some(rt),
        });
    }
    let image = match loc
        .open_local(encoding, Some(stores.store.clone()))
        .with_context(|| format!("opening {loc}"))?
    {
        Child::Image(i) => i,
        Child::Index(_) => bail!(
            "{loc} is an index (several images): name one image, e.g. oci:DIR:NAME or oci:DIR:sha256:..."
        ),
    };
    Ok(Opened {
        loc,
        image,
        origin: None,
        _rt: None,
    })
}

/// Write `img` to `dst` (layout, tarball, or a registry through the push engine); print
/// `DST: DIGEST` (the manifest digest) on stdout. Layers of registry sources on the
/// destination's registry are mounted first, so the push finds them present.
pub fn write_image(
    dst: &str,
    img: Arc<dyn Image>,
    stores: &Stores,
    sources: &[&Opened],
) -> anyhow::Result<()> {
    let loc = Location::parse(dst)?;
    let digest = match &loc {
        Location::Registry(r) => {
            let target = hoist_remote::Target::from_reference(r)?;
            let remote = super::push::RemoteArgs::default();
            for origin in sources.iter().filter_map(|o| o.origin.as_ref()) {
                mount_from_origin(&target, origin, &remote)?;
            }
            let opts = hoist_remote::push::Options {
                memory_dir: stores.cache.as_ref().map(|c| c.path().join("remote")),
                ..Default::default()
            };
            let pushed = super::push::push_source(
                hoist_image::Child::Image(img),
                &[target],
                &opts,
                &remote,
                true,
            )
            .with_context(|| format!("writing {loc}"))?;
            pushed
                .first()
                .and_then(|p| p.rsplit_once('@'))
                .map(|(_, d)| d.to_string())
                .context("the push reported no digest")?
        }
        Location::Layout { name: Some(n), .. }
            if n.starts_with("sha256:") || n.starts_with("sha512:") =>
        {
            bail!("destination {loc}: name the image with a tag, not a digest")
        }
        _ => {
            loc.write_local(&Child::Image(img.clone()))?;
            img.manifest()?.digest().to_string()
        }
    };
    loc.say(format_args!("{loc}: {digest}"))?;
    Ok(())
}

/// Split `--entrypoint` / `--cmd`: a JSON array (`["/bin/sh","-c"]`) or comma-separated
/// words (`/bin/sh,-c`); an empty string clears.
pub fn parse_command(flag: &str, s: &str) -> anyhow::Result<Vec<String>> {
    if s.trim_start().starts_with('[') {
        return serde_json::from_str(s)
            .with_context(|| format!("invalid {flag} {s:?}: expected a JSON array of strings"));
    }
    if s.is_empty() {
        return Ok(Vec::new());
    }
    Ok(s.split(',').map(str::to_string).collect())
}

/// Arguments of `hoist mutate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: oci:DIR[:NAME], docker-archive:FILE[:REF], or a path.
    pub src: String,
    /// Destination: oci:DIR[:NAME], docker-archive:FILE[:REF], or a registry reference.
    #[arg(short = 't', long = "tag", value_name = "DST")]
    pub dst: String,
    /// Set a label (config Labels): KEY=VALUE.
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Set a manifest annotation: KEY=VALUE.
    #[arg(long, value_name = "KEY=VALUE")]
    pub annotation: Vec<String>,
    /// Set an environment variable: KEY=VALUE.
    #[arg(long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The entrypoint: a JSON array or comma-separated words; "" clears it.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// The command: a JSON array or comma-separated words; "" clears it.
    #[arg(long)]
    pub cmd: Option<String>,
    /// The user (name, uid or uid:gid).
    #[arg(long)]
    pub user: Option<String>,
    /// The working directory.
    #[arg(long)]
    pub workdir: Option<String>,
    /// Expose a port: PORT[/tcp|udp|sctp].
    #[arg(long, value_name = "PORT")]
    pub expose: Vec<String>,
    /// The platform the config claims: os/arch[/variant].
    #[arg(long)]
    pub platform: Option<String>,
    /// Set `created` and every history entry's time: seconds since 1970 or YYYY-MM-DDTHH:MM:SSZ.
    #[arg(long)]
    pub time: Option<String>,
}

impl Args {
    fn time(&self) -> anyhow::Result<Option<u64>> {
        parse_time(self.time.as_deref())
    }

    /// The edits asked for; bad values are errors naming the flag.
    pub fn edits(&self) -> anyhow::Result<Edits> {
        let pairs = |v: &[String], what: &str| -> anyhow::Result<Vec<(String, String)>> {
            v.iter()
                .map(|s| mutate::parse_pair(s, what).map_err(anyhow::Error::from))
                .collect()
        };
        let edits = Edits {
            labels: pairs(&self.label, "--label")?,
            annotations: pairs(&self.annotation, "--annotation")?,
            env: pairs(&self.env, "--env")?,
            entrypoint: self
                .entrypoint
                .as_deref()
                .map(|s| parse_command("--entrypoint", s))
                .transpose()?,
            cmd: self
                .cmd
                .as_deref()
                .map(|s| parse_command("--cmd", s))
                .transpose()?,
            user: self.user.clone(),
            workdir: self.workdir.clone(),
            expose: self.expose.clone(),
            platform: self.platform.as_deref().map(Platform::parse).transpose()?,
            time: self.time()?,
        };
        for p in &edits.expose {
            mutate::parse_port(p).map_err(|e| anyhow::anyhow!("invalid --expose: {e}"))?;
        }
        Ok(edits)
    }
}

/// Run `hoist mutate`. An index (a layout's, or a registry's multi-platform image) has
/// each of its images edited, and a new index made of them.
pub fn run(args: &Args, cache: &CacheOpts) -> anyhow::Result<()> {
    let edits = args.edits()?;
    let stores = cache.store()?;
    let src = match open_any(&args.src, &stores)? {
        Err(image) => image,
        Ok(index) => {
            if edits.platform.is_some() {
                bail!(
                    "--platform: {} is an index of several platforms; edit one of its images",
                    index.loc
                );
            }
            let m = index.index.manifest()?;
            let mut children = Vec::new();
            let mut digests = Vec::new();
            for d in &m.as_index().context("not an index")?.manifests {
                let Child::Image(img) = index.index.child(d)? else {
                    bail!(
                        "{}: nested indexes are not supported by mutate ({})",
                        index.loc,
                        d.digest
                    );
                };
                if let Some(im) = img.manifest()?.as_image() {
                    digests.extend(im.layers.iter().map(|l| l.digest.clone()));
                }
                let out = mutate::edit(img, &edits)
                    .with_context(|| format!("mutating {} ({})", index.loc, d.digest))?;
                children.push(Child::Image(out));
            }
            let out = mutate::index::create(children)?;
            let origin = index.origin.clone().map(|r| (r, digests));
            return super::index::write_index(&args.dst, out, &stores, origin.as_ref());
        }
    };
    let out =
        mutate::edit(src.image.clone(), &edits).with_context(|| format!("mutating {}", src.loc))?;
    write_image(&args.dst, out, &stores, &[&src])
}

/// An opened index source.
pub struct OpenedIndex {
    /// Where it is.
    pub loc: Location,
    /// The index.
    pub index: Arc<dyn hoist_image::ImageIndex>,
    /// For a registry source: its repository.
    pub origin: Option<hoist_remote::Repository>,
    _rt: Option<tokio::runtime::Runtime>,
}

/// Open `s` as an index (`Ok`: a layout's, or a registry's multi-platform image) or a
/// single image (`Err`), resolving a registry reference once.
pub fn open_any(s: &str, stores: &Stores) -> anyhow::Result<Result<OpenedIndex, Opened>> {
    let loc = Location::parse(s)?;
    if let Location::Registry(r) = &loc {
        let remote = super::push::RemoteArgs::default();
        let (rt, child) = super::pull::open_registry(r, &remote, None)?;
        let repo = super::pull::repository(r)?;
        return Ok(match child {
            Child::Index(index) => Ok(OpenedIndex {
                origin: Some(repo),
                loc,
                index,
                _rt: Some(rt),
            }),
            Child::Image(image) => {
                let digests = image
                    .manifest()?
                    .as_image()
                    .map(|m| m.layers.iter().map(|d| d.digest.clone()).collect())
                    .unwrap_or_default();
                Err(Opened {
                    origin: Some((repo, digests)),
                    loc,
                    image,
                    _rt: Some(rt),
                })
            }
        });
    }
    Ok(
        match loc
            .open_local(&Encoding::gzip(), Some(stores.store.clone()))
            .with_context(|| format!("opening {loc}"))?
        {
            Child::Index(index) => Ok(OpenedIndex {
                loc,
                index,
                origin: None,
                _rt: None,
            }),
            Child::Image(image) => Err(Opened {
                loc,
                image,
                origin: None,
                _rt: None,
            }),
        },
    )
}

/// Mount `digests` from `origin` into `target` when both are repositories of one registry.
pub fn mount_from_origin(
    target: &hoist_remote::Target,
    origin: &(hoist_remote::Repository, Vec<hoist_image::Digest>),
    remote: &super::push::RemoteArgs,
) -> anyhow::Result<()> {
    let (repo, digests) = origin;
    if repo.registry() != target.repo.registry() || repo.name() == target.repo.name() {
        return Ok(());
    }
    let client = remote.client()?;
    let rt = super::push::runtime()?;
    rt.block_on(hoist_remote::copy::mount_all(
        &client,
        &target.repo,
        digests,
        repo.name(),
    ));
    Ok(())
}
