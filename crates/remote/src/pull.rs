//! Pull: a registry reference into an OCI image layout, every blob downloaded in
//! parallel (`jobs` at a time), verified for size and digest as it streams, resumed with
//! `Range` when cut. Blobs land in temporary files beside their final place and are
//! renamed in only when verified; `index.json` is written last, so a reader of the layout
//! never sees a half-pulled image. A layout created by a pull that fails is removed.
//!
//! Multi-platform indexes are pulled whole unless a platform is asked for
//! ([`resolve`] picks the image of that platform, through nested indexes).

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hoist_image::layout::Layout;
use hoist_image::{Cache, Descriptor, Manifest, Platform, Sealed};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::blobs::Verify;
use crate::error::{Error, Result};
use crate::push::{BlobOutcome, NoProgress, Progress};
use crate::repo::Repository;
use crate::transport::Client;

/// Blob downloads in flight. Against a local registry on 2 cores, 4 keeps the link busy
/// while one blob's tail is hashed and written; more adds nothing measurable.
pub const DEFAULT_JOBS: usize = 4;

/// How to pull.
#[derive(Clone)]
pub struct Options {
    /// Blob downloads in flight.
    pub jobs: usize,
    /// Pull only this platform of an index.
    pub platform: Option<Platform>,
    /// Also keep pulled layers in this content cache (hard-linked when it is on the same
    /// filesystem), recorded by diff_id, so a later push or copy finds them sealed.
    pub cache: Option<Arc<Cache>>,
    /// Told when each blob starts, advances and is done (downloaded or already present).
    pub progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("jobs", &self.jobs)
            .field("platform", &self.platform)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            jobs: DEFAULT_JOBS,
            platform: None,
            cache: None,
            progress: Arc::new(NoProgress),
        }
    }
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The descriptor added to `index.json` (the top manifest, or the platform's image).
    pub descriptor: Descriptor,
    /// Blobs downloaded.
    pub blobs_fetched: u64,
    /// Bytes downloaded (blob sizes).
    pub bytes_fetched: u64,
    /// Blobs the layout already had.
    pub blobs_present: u64,
}

/// The platform of this machine, as image indexes name it (`linux/amd64`, `linux/arm64`).
pub fn host_platform() -> Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "arm" => "arm",
        other => other,
    };
    Platform::parse(&format!("linux/{arch}")).expect("static platform")
}

/// Fetch the manifest at `reference`; with `platform`, follow indexes down to the image
/// of that platform. Returns the manifest and the platform it was picked for.
pub async fn resolve(
    client: &Client,
    repo: &Repository,
    reference: &str,
    platform: Option<&Platform>,
) -> Result<(Manifest, Option<Platform>)> {
    let mut m = client.get_manifest(repo, reference).await?;
    let Some(want) = platform else {
        return Ok((m, None));
    };
    let mut picked = None;
    while let Some(index) = m.as_index() {
        let hit = index
            .manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
            .or_else(|| {
                // A nested index without a platform of its own may hold it.
                index.manifests.iter().find(|d| {
                    d.platform.is_none()
                        && (d.media_type.as_str().contains("index")
                            || d.media_type.as_str().contains("manifest.list"))
                })
            });
        let Some(d) = hit else {
            let have: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| hoist_image::quote(&p.to_string()).to_string())
                .collect();
            return Err(Error::invalid_input(
                format!("platform {want}"),
                format!(
                    "not in the index of {repo}:{reference} (it has: {})",
                    if have.is_empty() {
                        "no platforms".to_string()
                    } else {
                        have.join(", ")
                    }
                ),
            ));
        };
        picked = d.platform.clone().or(picked);
        m = client.get_manifest(repo, &d.digest.to_string()).await?;
    }
    Ok((m, picked))
}

/// Every manifest below `top` (children before parents, `top` last) and every blob
/// (configs, layers), each once.
pub async fn walk(
    client: &Client,
    repo: &Repository,
    top: Manifest,
) -> Result<(Vec<Manifest>, Vec<Descriptor>)> {
    let mut manifests = Vec::new();
    let mut blobs = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![(top, false)];
    while let Some((m, expanded)) = stack.pop() {
        if expanded {
            manifests.push(m);
            continue;
        }
        if let Some(index) = m.as_index() {
            let children: Vec<Descriptor> = index.manifests.clone();
            stack.push((m, true));
            for d in children.iter().rev() {
                if seen.insert(d.digest.clone()) {
                    let c = client.get_manifest(repo, &d.digest.to_string()).await?;
                    stack.push((c, false));
                }
            }
        } else if let Some(image) = m.as_image() {
            for d in std::iter::once(&image.config).chain(&image.layers) {
                if seen.insert(d.digest.clone()) {
                    blobs.push(d.clone());
                }
            }
            manifests.push(m);
        }
    }
    Ok((manifests, blobs))
}

/// Pull `repo:reference` into the layout at `dir` (created if missing) under `ref_name`.
pub async fn pull_to_layout(
    client: &Client,
    repo: &Repository,
    reference: &str,
    dir: &Path,
    ref_name: Option<&str>,
    opts: &Options,
) -> Result<Report> {
    if opts.jobs == 0 {
        return Err(Error::invalid_input("pull jobs", "must be at least 1"));
    }
    let existed = dir.exists();
    let r = pull_inner(client, repo, reference, dir, ref_name, opts).await;
    if r.is_err() && !existed {
        let _ = std::fs::remove_dir_all(dir);
    }
    r
}

async fn pull_inner(
    client: &Client,
    repo: &Repository,
    reference: &str,
    dir: &Path,
    ref_name: Option<&str>,
    opts: &Options,
) -> Result<Report> {
    let (top, platform) = resolve(client, repo, reference, opts.platform.as_ref()).await?;
    let (manifests, blobs) = walk(client, repo, top.clone()).await?;
    opts.progress.planned(blobs.iter().map(|b| b.size).sum());
    let layout = Layout::create(dir)?;

    let gate = Arc::new(Semaphore::new(opts.jobs));
    let fetched = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let present = Arc::new(AtomicU64::new(0));
    let mut tasks: JoinSet<Result<()>> = JoinSet::new();
    // Largest first: the long downloads start at once, the small ones fill the gaps.
    let mut blobs = blobs;
    blobs.sort_by_key(|b| std::cmp::Reverse(b.size));
    for d in blobs {
        let (client, repo, layout) = (client.clone(), repo.clone(), layout.clone());
        let (gate, fetched, bytes, present) = (
            gate.clone(),
            fetched.clone(),
            bytes.clone(),
            present.clone(),
        );
        let cache = opts.cache.clone();
        let progress = opts.progress.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("never closed");
            let path = layout.blob_path(&d.digest);
            if std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == d.size) {
                present.fetch_add(1, Ordering::Relaxed);
                progress.blob_done(&repo, &d.digest, d.size, BlobOutcome::Present);
                return Ok(());
            }
            progress.blob_started(&repo, &d.digest, d.size);
            fetch_to_file(&client, &repo, &d, &path, progress.as_ref()).await?;
            progress.blob_done(&repo, &d.digest, d.size, BlobOutcome::Downloaded);
            fetched.fetch_add(1, Ordering::Relaxed);
            bytes.fetch_add(d.size, Ordering::Relaxed);
            if let Some(c) = cache
                && d.media_type.layer_compression().is_some()
                && let Err(e) = c.link_blob(&d.digest, d.size, &path)
            {
                tracing::debug!(digest = %d.digest, error = %e, "pulled blob not cached");
            }
            Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        let r = r.map_err(|e| Error::io("pull task", std::io::Error::other(e.to_string())));
        let r = r.and_then(|r| r);
        if let Err(e) = r {
            // Wait for the others to stop, so their temporary files are gone on return.
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            return Err(e);
        }
    }
    // Manifests (verified when fetched), children first.
    for m in &manifests {
        layout.write_blob(&m.descriptor(), &m.raw()[..])?;
    }
    if let Some(cache) = &opts.cache {
        record_in_cache(cache, &layout, &manifests);
    }
    let mut descriptor = top.descriptor();
    descriptor.platform = platform;
    layout.add_to_index(descriptor.clone(), ref_name)?;
    Ok(Report {
        descriptor,
        blobs_fetched: fetched.load(Ordering::Relaxed),
        bytes_fetched: bytes.load(Ordering::Relaxed),
        blobs_present: present.load(Ordering::Relaxed),
    })
}

/// Record each pulled layer by its diff_id (from the config) as a blob of unknown
/// provenance ([`Cache::record_pulled`]): listed with the cache's entries, never served
/// for a request to compress at a level, whose bytes it may not be.
fn record_in_cache(cache: &Cache, layout: &Layout, manifests: &[Manifest]) {
    for m in manifests {
        let Some(image) = m.as_image() else { continue };
        let Ok(raw) = layout.read_blob(&image.config, hoist_image::MAX_CONFIG_SIZE as u64) else {
            continue;
        };
        let Ok(config) = hoist_image::Config::from_raw(raw) else {
            continue;
        };
        let diff_ids = &config.parsed().rootfs.diff_ids;
        if diff_ids.len() != image.layers.len() {
            continue;
        }
        for (d, diff_id) in image.layers.iter().zip(diff_ids) {
            if d.media_type.layer_compression().is_none() {
                continue;
            }
            if cache.blob(&d.digest).is_none() {
                continue;
            }
            let sealed = Sealed {
                digest: d.digest.clone(),
                diff_id: diff_id.clone(),
                size: d.size,
                media_type: d.media_type.clone(),
            };
            if let Err(e) = cache.record_pulled(&sealed) {
                tracing::debug!(digest = %d.digest, error = %e, "pulled layer not recorded");
            }
        }
    }
}

/// Download one blob into a temporary file beside `path`, verified, then rename it in.
async fn fetch_to_file(
    client: &Client,
    repo: &Repository,
    d: &Descriptor,
    path: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    let dir = path.parent().expect("blob path has a parent");
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    let mut b = tempfile::Builder::new();
    b.prefix(".tmp-pull-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let tmp = b
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir.display(), e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
    let shown = tmp.path().display().to_string();
    let mut done = 0u64;
    client
        .download(repo, &d.digest, Some(d.size), Verify::Digest, |c| {
            done += c.len() as u64;
            progress.blob_progress(repo, &d.digest, done);
            std::future::ready(w.write_all(&c).map_err(|e| Error::io(&shown, e)))
        })
        .await?;
    w.flush().map_err(|e| Error::io(tmp.path().display(), e))?;
    drop(w);
    tmp.persist(path)
        .map_err(|e| Error::io(path.display(), e.error))?;
    Ok(())
}
