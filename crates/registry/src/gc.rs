//! Garbage collection: mark every blob some manifest of some repository reaches, sweep the
//! rest. Through the [`Storage`] trait only, so it runs the same on every backend that
//! implements the trait's garbage collection methods (the file system and the object
//! store), offline
//! (`hoist registry gc`) or while the registry serves (`hoist serve --gc-interval`).
//!
//! ## What it keeps
//! - Every manifest of every repository, tagged or not, unless `delete_untagged`: then the
//!   manifests no tag reaches are removed, except the children of kept indexes, the
//!   referrers (signatures, SBOMs) of kept manifests, and manifests touched within the grace
//!   period (an index's children are pushed before the index).
//! - Every blob a kept manifest reaches: an image's config and layers, an index's children;
//!   manifests themselves are blobs too.
//! - Every blob touched within the grace period, reached or not: uploaded, mounted, or
//!   referenced by a manifest PUT less than `grace` ago.
//!
//! ## Why it is safe while pushes go on
//! The storage keeps a last-touch time per blob and per repository manifest. A manifest PUT
//! touches every blob and child manifest it references (and fails with BLOB_UNKNOWN when a
//! touch finds one gone) before it stores the manifest. The sweep removes a blob only when
//! it is unreached, and the storage's removal re-checks, atomically with respect to touches,
//! that it was not touched since `cutoff = start - grace`
//! ([`Storage::blob_remove`]). So a PUT either sees its blob gone and fails, or touched it
//! in time to keep it. The one assumption: a manifest PUT takes less than `grace` from its
//! touches to its write, and the clocks of the nodes sharing a store differ by less than
//! `grace` (the default, an hour, is far from both).

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use hoist_image::{Digest, Manifest, MediaType, Parsed};

use crate::error::{Error, ErrorKind, Result};
use crate::names::RepoName;
use crate::storage::Storage;

/// Blobs and manifests touched less than this long ago are kept, reached or not
/// (Harbor and Quay protect fresh uploads the same way): a push in progress has uploaded
/// its blobs but not yet its manifest.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

/// How to collect.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Keep whatever was touched less than this long ago.
    pub grace: Duration,
    /// Remove manifests no tag reaches (not the children of kept indexes, nor referrers of
    /// kept manifests).
    pub delete_untagged: bool,
    /// Report what would go; remove nothing.
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: DEFAULT_GRACE,
            delete_untagged: false,
            dry_run: false,
        }
    }
}

/// What a collection found and did (or, dry, would do).
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// Blobs stored before the sweep (manifests included).
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Manifests held, summed over repositories, before any removal.
    pub manifests: u64,
    /// Manifests removed (`repo`, digest), or that would be.
    pub removed_manifests: Vec<(String, Digest)>,
    /// Blobs removed with their sizes, or that would be.
    pub removed_blobs: Vec<(Digest, u64)>,
    /// Bytes of `removed_blobs`.
    pub freed: u64,
    /// Unreached blobs kept because they were touched within the grace period.
    pub kept_fresh: u64,
    /// Unreached blobs the sweep found touched after the mark began, and kept.
    pub kept_touched: u64,
}

/// Collect garbage in `storage`.
pub async fn collect(storage: &dyn Storage, opts: &GcOptions) -> Result<GcReport> {
    let start = SystemTime::now();
    let cutoff = start
        .checked_sub(opts.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = GcReport::default();
    let repos: Vec<RepoName> = storage
        .repositories()
        .await?
        .iter()
        .filter_map(|r| RepoName::parse(r).ok())
        .collect();

    // Untagged manifests first, so what only they reach is swept in the same run.
    let mut gone: HashSet<(String, Digest)> = HashSet::new();
    for repo in &repos {
        let held = storage.manifests(repo).await?;
        report.manifests += held.len() as u64;
        if !opts.delete_untagged {
            continue;
        }
        let keep = kept_manifests(storage, repo, &held, cutoff).await?;
        for m in held.iter().filter(|m| !keep.contains(&m.digest)) {
            let removed = opts.dry_run || storage.manifest_remove(repo, &m.digest, cutoff).await?;
            if removed {
                tracing::info!(repo = %repo, digest = %m.digest, dry_run = opts.dry_run, "gc: untagged manifest");
                report
                    .removed_manifests
                    .push((repo.to_string(), m.digest.clone()));
                gone.insert((repo.to_string(), m.digest.clone()));
            }
        }
    }

    // Mark: every blob a remaining manifest reaches. A manifest that cannot be read stops
    // the collection: a sweep after an incomplete mark would remove what it reaches.
    let mut marked: HashSet<Digest> = HashSet::new();
    for repo in &repos {
        for m in storage.manifests(repo).await? {
            if gone.contains(&(repo.to_string(), m.digest.clone())) {
                continue;
            }
            marked.insert(m.digest.clone());
            for d in references(storage, repo, &m.digest).await? {
                marked.insert(d);
            }
        }
    }

    // Sweep.
    for b in storage.blobs().await? {
        report.blobs += 1;
        report.bytes += b.size;
        if marked.contains(&b.digest) {
            continue;
        }
        if b.touched >= cutoff {
            report.kept_fresh += 1;
            continue;
        }
        let removed = if opts.dry_run {
            Some(b.size)
        } else {
            storage.blob_remove(&b.digest, cutoff).await?
        };
        match removed {
            Some(size) => {
                tracing::info!(digest = %b.digest, size, dry_run = opts.dry_run, "gc: blob");
                report.freed += size;
                report.removed_blobs.push((b.digest, size));
            }
            None => report.kept_touched += 1,
        }
    }
    Ok(report)
}

/// The manifests of `repo` that `delete_untagged` keeps: those tags reach, those touched
/// since `cutoff`, and, from those, index children and referrers, transitively.
async fn kept_manifests(
    storage: &dyn Storage,
    repo: &RepoName,
    held: &[crate::storage::ManifestEntry],
    cutoff: SystemTime,
) -> Result<HashSet<Digest>> {
    let mut todo: Vec<Digest> = held
        .iter()
        .filter(|m| m.touched >= cutoff)
        .map(|m| m.digest.clone())
        .collect();
    for tag in storage.tags(repo).await?.unwrap_or_default() {
        if let Some(d) = storage.tag_resolve(repo, &tag).await? {
            todo.push(d);
        }
    }
    let mut keep = HashSet::new();
    while let Some(d) = todo.pop() {
        if !keep.insert(d.clone()) {
            continue;
        }
        todo.extend(children(storage, repo, &d).await?);
        todo.extend(
            storage
                .referrers(repo, &d)
                .await?
                .into_iter()
                .map(|r| r.digest),
        );
    }
    Ok(keep)
}

/// The manifests an index lists (none for an image).
async fn children(storage: &dyn Storage, repo: &RepoName, d: &Digest) -> Result<Vec<Digest>> {
    Ok(match read(storage, repo, d).await? {
        Some(Parsed::Index(ix)) => ix.manifests.into_iter().map(|c| c.digest).collect(),
        _ => Vec::new(),
    })
}

/// The blobs a manifest reaches directly: config and layers, or the index's children.
async fn references(storage: &dyn Storage, repo: &RepoName, d: &Digest) -> Result<Vec<Digest>> {
    Ok(match read(storage, repo, d).await? {
        Some(Parsed::Image(m)) => std::iter::once(m.config)
            .chain(m.layers)
            .filter(|l| l.urls.is_empty())
            .map(|l| l.digest)
            .collect(),
        Some(Parsed::Index(ix)) => ix.manifests.into_iter().map(|c| c.digest).collect(),
        None => Vec::new(),
    })
}

/// A manifest of `repo`, parsed; `None` when it went away meanwhile (deleted by a client:
/// then it reaches nothing). Unparseable stored bytes are an error.
async fn read(storage: &dyn Storage, repo: &RepoName, d: &Digest) -> Result<Option<Parsed>> {
    let Some(m) = storage.manifest_get(repo, d).await? else {
        return Ok(None);
    };
    let parsed =
        Manifest::from_raw(m.raw, Some(&MediaType::from(m.media_type.as_str()))).map_err(|e| {
            Error::new(ErrorKind::Corrupt {
                what: format!("manifest {d} of {repo}"),
                message: format!(
                    "{e}; garbage collection stopped before removing anything it reaches"
                ),
            })
        })?;
    Ok(Some(parsed.parsed().clone()))
}

impl crate::Registry {
    /// [`collect`] on this registry's storage, counted in its metrics (runs, bytes freed,
    /// blobs and manifests removed, and the inventory gauges).
    pub async fn collect_garbage(&self, opts: &GcOptions) -> Result<GcReport> {
        collect_counted(self, opts).await
    }

    /// Collect every `interval` until the future is dropped (the server's shutdown): the
    /// online mode of `hoist serve --gc-interval`. A failed run is logged; the next one
    /// tries again.
    pub async fn collect_garbage_every(&self, interval: Duration, opts: GcOptions) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match collect_counted(self, &opts).await {
                Ok(r) => tracing::info!(
                    removed_blobs = r.removed_blobs.len(),
                    removed_manifests = r.removed_manifests.len(),
                    freed = r.freed,
                    kept_fresh = r.kept_fresh,
                    "garbage collection done"
                ),
                Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
            }
        }
    }
}

/// How often a serving registry counts what it stores for the `hoist_storage_*` gauges
/// (besides at start and after each collection): a walk of every blob, too much to do per
/// scrape on a large store, cheap every few minutes.
pub const INVENTORY_EVERY: Duration = Duration::from_secs(10 * 60);

/// What a storage holds, as the metrics report it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Blobs stored (manifests included).
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Manifests, summed over repositories.
    pub manifests: u64,
}

impl crate::Registry {
    /// Count what the storage holds and set the inventory gauges (`hoist_storage_blobs`,
    /// `hoist_storage_blob_bytes`, `hoist_storage_manifests`). Fails on a backend that
    /// cannot list its blobs (see [`Storage::blobs`]).
    pub async fn take_inventory(&self) -> Result<Inventory> {
        let storage = self.storage().as_ref();
        let mut inv = Inventory::default();
        for b in storage.blobs().await? {
            inv.blobs += 1;
            inv.bytes += b.size;
        }
        for repo in storage.repositories().await? {
            if let Ok(r) = RepoName::parse(&repo) {
                inv.manifests += storage.manifests(&r).await?.len() as u64;
            }
        }
        set_inventory(self, inv);
        Ok(inv)
    }

    /// [`Registry::take_inventory`] now and every [`INVENTORY_EVERY`] until the future is
    /// dropped; a backend that cannot list its blobs is counted once (it fails) and left.
    pub async fn take_inventory_every(&self) {
        loop {
            if let Err(e) = self.take_inventory().await {
                tracing::debug!(error = %e, "no storage inventory");
                if matches!(e.kind(), ErrorKind::Config(_)) {
                    return;
                }
            }
            tokio::time::sleep(INVENTORY_EVERY).await;
        }
    }
}

fn set_inventory(registry: &crate::Registry, inv: Inventory) {
    use crate::metrics as m;
    registry.metrics().record(|| {
        metrics::gauge!(m::BLOBS).set(inv.blobs as f64);
        metrics::gauge!(m::BLOB_BYTES).set(inv.bytes as f64);
        metrics::gauge!(m::MANIFESTS).set(inv.manifests as f64);
    });
}

async fn collect_counted(registry: &crate::Registry, opts: &GcOptions) -> Result<GcReport> {
    use crate::metrics as m;
    let res = collect(registry.storage().as_ref(), opts).await;
    registry.metrics().record(|| match &res {
        Ok(r) => {
            metrics::counter!(m::GC_RUNS, "result" => "ok").increment(1);
            if !opts.dry_run {
                metrics::counter!(m::GC_FREED_BYTES).increment(r.freed);
                metrics::counter!(m::GC_BLOBS).increment(r.removed_blobs.len() as u64);
                metrics::counter!(m::GC_MANIFESTS).increment(r.removed_manifests.len() as u64);
            }
        }
        Err(_) => metrics::counter!(m::GC_RUNS, "result" => "error").increment(1),
    });
    if let Ok(r) = &res {
        let inv = if opts.dry_run {
            Inventory {
                blobs: r.blobs,
                bytes: r.bytes,
                manifests: r.manifests,
            }
        } else {
            Inventory {
                blobs: r.blobs - r.removed_blobs.len() as u64,
                bytes: r.bytes - r.freed,
                manifests: r.manifests - r.removed_manifests.len() as u64,
            }
        };
        set_inventory(registry, inv);
    }
    res
}
