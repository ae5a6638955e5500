//! `hoist pull REF DST`: an image or index from a registry into an OCI layout
//! (`oci:DIR[:NAME]`, every platform unless `--platform`) or a docker-save tarball
//! (`docker-archive:FILE[:REF]`, the host platform unless `--platform`). Blobs are
//! downloaded in parallel, verified as they stream, resumed with `Range` when cut;
//! nothing half-written is left at DST on failure. `hoist copy docker://REF DST` comes
//! here too, and copies registry to registry.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, bail};
use hoist_image::layout::{self, Layout};
use hoist_image::pipeline::{self, Encoding};
use hoist_image::{Child, Digest, Platform, Reference};
use hoist_remote::source::Remote;
use hoist_remote::{Client, Repository, Target, copy, pull, push};

use super::cache::CacheOpts;
use super::push::{RemoteArgs, runtime};
use crate::location::Location;

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
    #[arg(long, default_value_t = pull::DEFAULT_JOBS)]
    pub jobs: usize,
    /// No progress on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// How to copy out of a registry (shared by `pull` and `copy`).
#[derive(Debug, Default)]
pub struct FromRegistry {
    /// `--platform`.
    pub platform: Option<Platform>,
    /// `--jobs`.
    pub jobs: Option<usize>,
    /// Layers converted to this compression.
    pub encoding: Option<Encoding>,
    /// Refuse to overwrite a destination tag.
    pub no_clobber: bool,
    /// Copy every tag of the source repository.
    pub all_tags: bool,
    /// No progress on stderr.
    pub quiet: bool,
    /// Registry options.
    pub remote: RemoteArgs,
}

/// Parse a source registry reference (`docker://` optional).
pub fn source_ref(s: &str) -> anyhow::Result<Reference> {
    let t = s.strip_prefix("docker://").unwrap_or(s);
    Reference::parse(t).with_context(|| format!("invalid source {s:?}"))
}

/// The repository of a reference.
pub fn repository(r: &Reference) -> anyhow::Result<Repository> {
    Ok(Repository::new(r.api_host(), r.repository())?)
}

/// Open a registry reference as a source (the runtime must outlive it).
pub fn open_registry(
    r: &Reference,
    remote: &RemoteArgs,
    platform: Option<&Platform>,
) -> anyhow::Result<(tokio::runtime::Runtime, Child)> {
    let rt = runtime()?;
    let client = remote.client()?;
    let repo = repository(r)?;
    let (m, _) = rt
        .block_on(pull::resolve(&client, &repo, &r.identifier(), platform))
        .with_context(|| format!("docker://{r}"))?;
    let source = Remote::new(
        client,
        repo,
        hoist_remote::Runtime::from_handle(rt.handle().clone()),
    );
    let child = source.child_of(m);
    Ok((rt, child))
}

/// Run `hoist pull`.
pub fn run(args: &Args, cache: &CacheOpts) -> anyhow::Result<()> {
    let src = source_ref(&args.src)?;
    let d = args.dst.as_str();
    let prefixed = d.contains("://") || d.starts_with("oci:") || d.starts_with("docker-archive:");
    let bare_new = !prefixed && !d.is_empty() && d != crate::location::STDOUT;
    let dst = if bare_new && !std::path::Path::new(d).exists() {
        // A new bare path: a tarball when it is named like one, else a layout directory.
        if d.ends_with(".tar") {
            Location::Archive {
                file: d.into(),
                reference: None,
            }
        } else {
            Location::Layout {
                dir: d.trim_end_matches('/').into(),
                name: None,
            }
        }
    } else {
        Location::parse(d)?
    };
    if let Location::Registry(_) = dst {
        bail!(
            "invalid destination {:?}: expected oci:DIR[:NAME] or docker-archive:FILE[:REF] (use hoist copy for registries)",
            args.dst
        );
    }
    let opts = FromRegistry {
        platform: parse_platform(args.platform.as_deref())?,
        jobs: Some(args.jobs),
        quiet: args.quiet,
        remote: args.remote.clone(),
        ..FromRegistry::default()
    };
    let digest = from_registry(&src, &dst, &opts, cache)?;
    dst.say(format_args!("{dst}: {digest}"))?;
    Ok(())
}

/// Parse `--platform`.
pub fn parse_platform(p: Option<&str>) -> anyhow::Result<Option<Platform>> {
    p.map(|p| Platform::parse(p).context("invalid --platform"))
        .transpose()
}

/// Copy `src` (a registry reference) to `dst`; returns the digest of what was written.
pub fn from_registry(
    src: &Reference,
    dst: &Location,
    opts: &FromRegistry,
    cache: &CacheOpts,
) -> anyhow::Result<Digest> {
    let what = || format!("copying docker://{src} to {dst}");
    let jobs = opts.jobs.unwrap_or(pull::DEFAULT_JOBS);
    if jobs == 0 {
        bail!("invalid --jobs 0: expected at least 1");
    }
    if opts.all_tags && !matches!(dst, Location::Registry(_)) {
        bail!("--all-tags copies a repository to a registry repository; {dst} is not one");
    }
    match dst {
        Location::Layout { dir, name } if opts.encoding.is_none() => {
            let rt = runtime()?;
            let client = opts.remote.client()?;
            let repo = repository(src)?;
            let stores = cache.store()?;
            let progress = super::push::progress(opts.quiet);
            let popts = pull::Options {
                jobs,
                platform: opts.platform.clone(),
                cache: stores.cache,
                progress: progress.clone(),
            };
            let ref_name = name.clone().or_else(|| src.tag().map(str::to_string));
            let report = rt
                .block_on(pull::pull_to_layout(
                    &client,
                    &repo,
                    &src.identifier(),
                    dir,
                    ref_name.as_deref(),
                    &popts,
                ))
                .with_context(what)?;
            Ok(report.descriptor.digest)
        }
        Location::Layout { dir, name } => {
            let encoding = opts.encoding.clone().expect("matched above");
            let (_rt, child) = open_registry(src, &opts.remote, opts.platform.as_ref())?;
            let stores = cache.store()?;
            let existed = dir.exists();
            let r = match child {
                Child::Image(img) => {
                    pipeline::recompress(img, &encoding, stores.store).and_then(|img| {
                        Layout::create(dir)
                            .and_then(|l| layout::write(&l, img.as_ref(), name.as_deref()))
                    })
                }
                Child::Index(ix) => pipeline::recompress_index(ix, &encoding, stores.store)
                    .and_then(|ix| {
                        Layout::create(dir)
                            .and_then(|l| layout::write_index(&l, ix.as_ref(), name.as_deref()))
                    }),
            }
            .with_context(what);
            if r.is_err() && !existed {
                let _ = std::fs::remove_dir_all(dir);
            }
            Ok(r?.digest)
        }
        Location::Archive { file, reference } => {
            let platform = opts.platform.clone().unwrap_or_else(pull::host_platform);
            let (_rt, child) = open_registry(src, &opts.remote, Some(&platform))?;
            let Child::Image(img) = child else {
                bail!("docker://{src}: no image for platform {platform}");
            };
            let tags: Vec<Reference> = match reference {
                Some(r) => vec![r.clone()],
                None => src.tag().map(|_| src.clone()).into_iter().collect(),
            };
            crate::location::write_tarball(file, img.as_ref(), &tags).with_context(what)?;
            Ok(img.manifest()?.digest().clone())
        }
        Location::Registry(d) => {
            let rt = runtime()?;
            let client = opts.remote.client()?;
            let repo = repository(src)?;
            let stores = cache.store()?;
            let copts = copy::Options {
                push: push::Options {
                    jobs,
                    memory_dir: stores.cache.as_ref().map(|c| c.path().join("remote")),
                    ..push::Options::default()
                },
                platform: opts.platform.clone(),
                encoding: opts.encoding.clone(),
                store: Some(stores.store),
                no_clobber: opts.no_clobber,
            };
            if opts.all_tags {
                if d.tag().is_some() || d.digest().is_some() {
                    bail!("--all-tags: name the destination repository without a tag ({dst})");
                }
                let dest = repository(d)?;
                let tags = rt
                    .block_on(hoist_remote::ops::list_tags(&client, &repo))
                    .with_context(|| format!("listing the tags of {repo}"))?;
                if tags.is_empty() {
                    bail!("docker://{src}: the repository has no tags");
                }
                let mut last = None;
                for t in tags {
                    let target = Target::tagged(dest.clone(), t.clone())?;
                    let r = rt
                        .block_on(copy_one(&client, &repo, &t, target, &copts))
                        .with_context(|| format!("copying {repo}:{t} to {dest}:{t}"))?;
                    writeln!(std::io::stderr(), "{dest}:{t}: {r}")?;
                    last = Some(r);
                }
                return last.context("no tag copied");
            }
            let target = Target::from_reference(d)?;
            rt.block_on(copy_one(&client, &repo, &src.identifier(), target, &copts))
                .with_context(what)
        }
    }
}

async fn copy_one(
    client: &Client,
    repo: &Repository,
    reference: &str,
    target: Target,
    opts: &copy::Options,
) -> anyhow::Result<Digest> {
    let report = copy::copy(
        client,
        repo,
        reference,
        &[target],
        opts,
        Arc::new(push::NoProgress),
    )
    .await?;
    report
        .pushed
        .first()
        .map(|p| p.digest.clone())
        .context("the copy reported no digest")
}
