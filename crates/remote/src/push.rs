//! The push engine: an image or index, one or more destinations (repositories in one or
//! several registries), every blob considered once per destination repository.
//!
//! 1. Walk the source (children before indexes) without sealing anything.
//! 2. Seal layers in order on blocking threads (`seal_jobs` at a time; a sealed layer —
//!    from the cache, a layout — costs a field read). As each one is sealed, its blob
//!    task starts: per registry, per repository: `HEAD`, skip if present; mount from a
//!    repository of the same registry known to hold it (from this run, or the push
//!    memory in the cache directory); else upload. At most `jobs` tasks talk at once.
//! 3. Manifests after all their blobs, children before indexes; each extra tag or
//!    destination costs one manifest `PUT` (none when a `HEAD` shows the same digest).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hoist_image::{Child, Digest, Image, Layer, Manifest};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::blobs::{Mount, Presence};
use crate::error::{Error, Result};
use crate::repo::{Repository, Target};
use crate::sessions::Sessions;
use crate::transport::Client;
use crate::upload::{self, BlobSource, Upload};

/// Blob requests in flight at once. Measured (bench/runs/2026-11-29-loaded.md): 12 x 16 MiB
/// incompressible blobs from an OCI layout to a loopback distribution registry on 2 cores,
/// wall 2.6-4.1 s for 1, 2, 4 and 8 jobs alike (the registry's hashing is the limit
/// there), peak RSS 15 / 15 / 18 / 26 MiB. 4 keeps a remote link busy while a layer seals,
/// at little memory; more only adds memory on a local link.
pub const DEFAULT_JOBS: usize = 4;
/// Layers sealed at once. Compression itself uses every core; two overlap one layer's
/// tail (hash, write) with the next one's start.
pub const DEFAULT_SEAL_JOBS: usize = 2;
/// The push memory's file name, in the memory directory.
const MEMORY_FILE: &str = "pushed-blobs.tsv";

/// How a blob got to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// It was there already.
    Present,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Uploaded.
    Uploaded,
    /// Downloaded (pulls report through the same trait).
    Downloaded,
}

/// A request that failed with a temporary error and is tried again
/// ([`Progress::retrying`]).
#[derive(Debug)]
pub struct Retrying<'a> {
    /// `METHOD url` (redacted).
    pub what: &'a str,
    /// This retry's number, from 1.
    pub retry: u32,
    /// Retries allowed in all.
    pub retries: u32,
    /// The wait before it.
    pub delay: std::time::Duration,
    /// What failed.
    pub error: &'a Error,
}

/// A registry's rate limit is running low, and requests to it are spread out
/// ([`Progress::throttled`]; see `ratelimit.rs`).
#[derive(Debug)]
pub struct Throttled<'a> {
    /// The registry (`host[:port]`).
    pub registry: &'a str,
    /// Requests left in its window.
    pub remaining: u64,
    /// Requests allowed per window.
    pub limit: u64,
    /// The wait now put between two `GET`s to it.
    pub spacing: std::time::Duration,
}

/// Progress callbacks (of pushes, and of pulls: `blob_*` with
/// [`BlobOutcome::Downloaded`] or [`BlobOutcome::Present`]), and the transport's
/// retries. Every method has a no-op default; they are called from many tasks at once.
///
/// The order a sink can rely on: [`planned`](Progress::planned) comes at most once per
/// push or pull; for each blob and repository, `blob_started` (only when bytes will
/// move), `blob_progress` (never above the blob's size), then one `blob_done`.
pub trait Progress: Send + Sync {
    /// The bytes the operation moves in all, once known: the size of every blob times
    /// the repositories it goes to (blobs found present or mounted count too, as done
    /// at once). A pull knows it before the first byte; a push once every layer is
    /// sealed (at once for layouts, registries and cached layers, later for layers it
    /// compresses: bytes of the first ones may flow before). Not called for a streamed
    /// push, whose sizes are known only at the end.
    fn planned(&self, _bytes: u64) {}
    /// A request failed with a temporary error and is sent again after a wait.
    fn retrying(&self, _retry: &Retrying<'_>) {}
    /// A registry's rate limit is running low: its requests are spread out from now on.
    fn throttled(&self, _t: &Throttled<'_>) {}
    /// A layer is sealed (digest and size known).
    fn sealed(&self, _digest: &Digest, _size: u64) {}
    /// A blob upload to `repo` started.
    fn blob_started(&self, _repo: &Repository, _digest: &Digest, _size: u64) {}
    /// `done` bytes of the blob are at the registry (may go back after a restart).
    fn blob_progress(&self, _repo: &Repository, _digest: &Digest, _done: u64) {}
    /// A blob is in `repo`.
    fn blob_done(&self, _repo: &Repository, _digest: &Digest, _size: u64, _how: BlobOutcome) {}
    /// A blob starts being written to a local destination `dst` (a layout, an archive;
    /// as the location prints): `size` when known (a layer written uncompressed, as
    /// docker-save tarballs hold them, is known only at its end; `digest` is then its
    /// diff_id's).
    fn local_started(&self, _dst: &str, _digest: &Digest, _size: Option<u64>) {}
    /// `done` bytes of it are written.
    fn local_progress(&self, _dst: &str, _digest: &Digest, _done: u64) {}
    /// It is written, `bytes` in all.
    fn local_done(&self, _dst: &str, _digest: &Digest, _bytes: u64) {}
    /// A manifest is at `reference` (`skipped`: it already was).
    fn manifest_done(
        &self,
        _repo: &Repository,
        _reference: &str,
        _digest: &Digest,
        _skipped: bool,
    ) {
    }
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// When layers are compressed relative to their upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Seal first (through the cache or a spool), then HEAD, mount or upload from the
    /// sealed bytes: a re-push compresses nothing, and an upload resumes after a failure.
    #[default]
    HeadFirst,
    /// Compress each layer from its uncompressed form with this encoding straight into
    /// its uploads (no spool), committing with the digest the pass returned. Layers are
    /// always compressed (there is no digest to HEAD before), and a failed upload
    /// compresses its layer again. Single images only.
    Stream(hoist_image::pipeline::Encoding),
}

/// How to push.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seal first, or stream.
    pub strategy: Strategy,
    /// Blob tasks in flight.
    pub jobs: usize,
    /// Layers sealed at once.
    pub seal_jobs: usize,
    /// Blobs up to this size go in one request.
    pub monolithic_max: u64,
    /// Always upload in chunks of this size (`Content-Range` PATCHes).
    pub chunk_size: Option<u64>,
    /// A directory where hoist remembers which repositories it pushed blobs to, so a
    /// later push to another repository of the same registry mounts instead of
    /// uploading. `None`: remember within this run only.
    pub memory_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            strategy: Strategy::HeadFirst,
            jobs: DEFAULT_JOBS,
            seal_jobs: DEFAULT_SEAL_JOBS,
            monolithic_max: upload::DEFAULT_MONOLITHIC_MAX,
            chunk_size: None,
            memory_dir: None,
        }
    }
}

impl Options {
    fn check(&self) -> Result<()> {
        if self.jobs == 0 || self.seal_jobs == 0 {
            return Err(Error::invalid_input("push jobs", "must be at least 1"));
        }
        if self.chunk_size == Some(0) {
            return Err(Error::invalid_input(
                "chunk size",
                "must be at least 1 byte",
            ));
        }
        Ok(())
    }
}

/// What happened to the blobs of one destination repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobCounts {
    /// Blobs found there already.
    pub present: u64,
    /// Blobs mounted from another repository of its registry.
    pub mounted: u64,
    /// Blobs uploaded.
    pub uploaded: u64,
    /// Their bytes (sizes; retries not counted).
    pub bytes_uploaded: u64,
}

impl BlobCounts {
    fn add(&mut self, how: BlobOutcome, size: u64) {
        match how {
            BlobOutcome::Present => self.present += 1,
            BlobOutcome::Mounted => self.mounted += 1,
            BlobOutcome::Uploaded | BlobOutcome::Downloaded => {
                self.uploaded += 1;
                self.bytes_uploaded += size;
            }
        }
    }
}

/// One destination's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// Where.
    pub target: Target,
    /// The top manifest's digest.
    pub digest: Digest,
    /// The blobs of its repository (destinations in one repository share them).
    pub blobs: BlobCounts,
}

impl std::fmt::Display for Pushed {
    /// `registry/repo@sha256:...` (the form `hoist push` prints).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.target.repo, self.digest)
    }
}

/// What a push did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Per destination, in the order given.
    pub pushed: Vec<Pushed>,
    /// Blob × repository pairs already present.
    pub blobs_present: u64,
    /// Blob × repository pairs mounted.
    pub blobs_mounted: u64,
    /// Blob × repository pairs uploaded.
    pub blobs_uploaded: u64,
    /// Bytes of uploaded blobs (their sizes; retries not counted).
    pub bytes_uploaded: u64,
    /// Manifest PUTs.
    pub manifests_put: u64,
    /// Manifests skipped because the registry had them.
    pub manifests_skipped: u64,
}

enum Node {
    Image {
        img: Arc<dyn Image>,
        layers: Vec<Arc<dyn Layer>>,
        config: Bytes,
        config_digest: Digest,
    },
    Index {
        manifest: Box<Manifest>,
    },
}

/// Walk the source: nodes children-first (the last is the top).
fn walk(src: &Child, out: &mut Vec<Node>) -> Result<()> {
    match src {
        Child::Image(img) => {
            let config = img.config()?;
            let layers = img.layers()?;
            out.push(Node::Image {
                img: img.clone(),
                layers,
                config: config.raw().clone(),
                config_digest: config.digest().clone(),
            });
        }
        Child::Index(idx) => {
            let manifest = idx.manifest()?;
            let index = manifest
                .as_index()
                .ok_or_else(|| Error::invalid_input("index", "its manifest is not an index"))?;
            for d in &index.manifests {
                walk(&idx.child(d)?, out)?;
            }
            out.push(Node::Index {
                manifest: Box::new(manifest),
            });
        }
    }
    Ok(())
}

/// The push memory: (registry, digest) → a repository that holds it.
#[derive(Debug, Default)]
struct Memory {
    known: HashMap<(String, Digest), String>,
    file: Option<PathBuf>,
}

impl Memory {
    fn load(dir: Option<&PathBuf>) -> Memory {
        let Some(dir) = dir else {
            return Memory::default();
        };
        let file = dir.join(MEMORY_FILE);
        let mut known = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(&file) {
            for line in text.lines() {
                let mut it = line.split('\t');
                if let (Some(reg), Some(repo), Some(d), None) =
                    (it.next(), it.next(), it.next(), it.next())
                    && let Ok(d) = Digest::parse(d)
                {
                    known.insert((reg.to_string(), d), repo.to_string());
                }
            }
        }
        Memory {
            known,
            file: Some(file),
        }
    }

    fn get(&self, registry: &str, digest: &Digest) -> Option<String> {
        self.known
            .get(&(registry.to_string(), digest.clone()))
            .cloned()
    }

    fn remember(&mut self, repo: &Repository, digest: &Digest) {
        let key = (repo.registry().to_string(), digest.clone());
        if self.known.get(&key).map(String::as_str) == Some(repo.name()) {
            return;
        }
        self.known.insert(key, repo.name().to_string());
        if let Some(f) = &self.file {
            // One short line per write with O_APPEND: concurrent hoists do not interleave.
            let line = format!("{}\t{}\t{}\n", repo.registry(), repo.name(), digest);
            let r = f
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|_| {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(f)
                })
                .and_then(|mut fh| fh.write_all(line.as_bytes()));
            if let Err(e) = r {
                tracing::debug!(file = %f.display(), error = %e, "push memory not written");
            }
        }
    }
}

#[derive(Default)]
struct Tally {
    present: u64,
    mounted: u64,
    uploaded: u64,
    bytes: u64,
    per_repo: HashMap<Repository, BlobCounts>,
}

impl Tally {
    fn add(&mut self, repo: &Repository, how: BlobOutcome, size: u64) {
        match how {
            BlobOutcome::Present => self.present += 1,
            BlobOutcome::Mounted => self.mounted += 1,
            BlobOutcome::Uploaded | BlobOutcome::Downloaded => {
                self.uploaded += 1;
                self.bytes += size;
            }
        }
        self.per_repo
            .entry(repo.clone())
            .or_default()
            .add(how, size);
    }
}

struct Shared {
    client: Client,
    opts: Options,
    progress: Arc<dyn Progress>,
    /// Destination repositories, grouped by registry (each repository once).
    registries: BTreeMap<String, Vec<Repository>>,
    memory: Mutex<Memory>,
    tally: Mutex<Tally>,
    top: Mutex<Option<Digest>>,
    jobs: Semaphore,
    /// Upload sessions opened and not finished: cancelled when the push ends.
    sessions: Sessions,
}

/// Push `source` (an image or an index) to every target. Returns one [`Pushed`] per target, in order.
pub async fn push(
    client: &Client,
    source: Child,
    targets: &[Target],
    opts: &Options,
    progress: Arc<dyn Progress>,
) -> Result<Report> {
    opts.check()?;
    if targets.is_empty() {
        return Err(Error::invalid_input("push destinations", "none given"));
    }
    let mut registries: BTreeMap<String, Vec<Repository>> = BTreeMap::new();
    for t in targets {
        let repos = registries.entry(t.repo.registry().to_string()).or_default();
        if !repos.contains(&t.repo) {
            repos.push(t.repo.clone());
        }
    }
    let memory = Memory::load(opts.memory_dir.as_ref());
    let shared = Arc::new(Shared {
        client: client.clone(),
        opts: opts.clone(),
        progress,
        registries,
        memory: Mutex::new(memory),
        tally: Mutex::new(Tally::default()),
        top: Mutex::new(None),
        jobs: Semaphore::new(opts.jobs),
        sessions: Sessions::default(),
    });
    let r = run(&shared, source, targets).await;
    // Failed, or done with sessions abandoned on the way: free what the registry holds.
    let left = shared.sessions.cancel_all(&shared.client).await;
    if left > 0 {
        tracing::debug!(sessions = left, "upload sessions cancelled");
    }
    r
}

/// The push, once its shared state is set up; its tasks are aborted when it returns.
async fn run(shared: &Arc<Shared>, source: Child, targets: &[Target]) -> Result<Report> {
    let opts = &shared.opts;

    let src = source.clone();
    let nodes = tokio::task::spawn_blocking(move || {
        let mut nodes = Vec::new();
        walk(&src, &mut nodes).map(|_| nodes)
    })
    .await
    .map_err(join_error)??;

    if let Strategy::Stream(encoding) = &opts.strategy {
        return push_streamed(shared, nodes, targets, encoding).await;
    }

    // Blobs: configs at once, layers as they are sealed. The bytes planned (every blob
    // once per destination repository) are announced once every size is known.
    let repos: u64 = shared.registries.values().map(|r| r.len() as u64).sum();
    let mut planned = 0u64;
    let mut tasks: JoinSet<Result<()>> = JoinSet::new();
    let mut claimed: HashSet<Digest> = HashSet::new();
    for n in &nodes {
        if let Node::Image {
            config,
            config_digest,
            ..
        } = n
            && claimed.insert(config_digest.clone())
        {
            planned += config.len() as u64 * repos;
            let sh = shared.clone();
            let (d, size) = (config_digest.clone(), config.len() as u64);
            let src = BlobSource::Bytes(config.clone());
            tasks.spawn(async move { blob_everywhere(&sh, d, size, src).await });
        }
    }
    let seal_gate = Arc::new(Semaphore::new(opts.seal_jobs));
    let mut seals: JoinSet<Result<(Arc<dyn Layer>, hoist_image::Sealed)>> = JoinSet::new();
    for n in &nodes {
        if let Node::Image { layers, .. } = n {
            for l in layers {
                let l = l.clone();
                let gate = seal_gate.clone();
                seals.spawn(async move {
                    let _permit = gate.acquire_owned().await.expect("never closed");
                    let layer = l.clone();
                    let s = tokio::task::spawn_blocking(move || layer.sealed())
                        .await
                        .map_err(join_error)??;
                    Ok((l, s))
                });
            }
        }
    }
    let fail = |e: Error, tasks: &mut JoinSet<Result<()>>, seals: &mut JoinSet<_>| {
        tasks.abort_all();
        seals.abort_all();
        e
    };
    while let Some(r) = seals.join_next().await {
        let (layer, sealed) = match r.map_err(join_error).and_then(|r| r) {
            Ok(v) => v,
            Err(e) => return Err(fail(e, &mut tasks, &mut seals)),
        };
        shared.progress.sealed(&sealed.digest, sealed.size);
        if layer.media_type()?.is_nondistributable() && !layer.descriptor()?.urls.is_empty() {
            continue; // foreign layers are not pushed
        }
        if claimed.insert(sealed.digest.clone()) {
            planned += sealed.size * repos;
            let sh = shared.clone();
            tasks.spawn(async move {
                blob_everywhere(&sh, sealed.digest, sealed.size, BlobSource::Layer(layer)).await
            });
        }
        // Surface a failed upload early instead of sealing on.
        while let Some(r) = tasks.try_join_next() {
            if let Err(e) = r.map_err(join_error).and_then(|r| r) {
                return Err(fail(e, &mut tasks, &mut seals));
            }
        }
    }
    shared.progress.planned(planned);
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r.map_err(join_error).and_then(|r| r) {
            return Err(fail(e, &mut tasks, &mut seals));
        }
    }

    // Manifests: now that every layer is sealed, asking an image for its manifest is cheap.
    let nodes = Arc::new(nodes);
    let manifests: Vec<Manifest> = {
        let nodes = nodes.clone();
        tokio::task::spawn_blocking(move || {
            nodes
                .iter()
                .map(|n| match n {
                    Node::Image { img, .. } => img.manifest(),
                    Node::Index { manifest } => Ok((**manifest).clone()),
                })
                .collect::<hoist_image::Result<Vec<_>>>()
        })
        .await
        .map_err(join_error)??
    };
    let (put, skipped) = put_manifests(shared, manifests, targets).await?;
    Ok(report(
        shared,
        targets,
        &top_digest_of(shared)?,
        put,
        skipped,
    ))
}

fn top_digest_of(sh: &Shared) -> Result<Digest> {
    sh.top
        .lock()
        .expect("top lock")
        .clone()
        .ok_or_else(|| Error::invalid_input("push", "no manifest"))
}

fn report(sh: &Shared, targets: &[Target], top: &Digest, put: u64, skipped: u64) -> Report {
    let tally = sh.tally.lock().expect("tally lock");
    Report {
        pushed: targets
            .iter()
            .map(|t| Pushed {
                target: t.clone(),
                digest: top.clone(),
                blobs: tally.per_repo.get(&t.repo).copied().unwrap_or_default(),
            })
            .collect(),
        blobs_present: tally.present,
        blobs_mounted: tally.mounted,
        blobs_uploaded: tally.uploaded,
        bytes_uploaded: tally.bytes,
        manifests_put: put,
        manifests_skipped: skipped,
    }
}

/// Children once per repository, then the top (the last manifest) per target.
async fn put_manifests(
    shared: &Arc<Shared>,
    manifests: Vec<Manifest>,
    targets: &[Target],
) -> Result<(u64, u64)> {
    let manifests = Arc::new(manifests);
    let top = manifests.last().expect("at least one manifest").clone();
    *shared.top.lock().expect("top lock") = Some(top.digest().clone());

    // Children once per repository, then the top per target.
    let mut per_repo: JoinSet<Result<(u64, u64)>> = JoinSet::new();
    for repos in shared.registries.values() {
        for repo in repos.clone() {
            let sh = shared.clone();
            let ms = manifests.clone();
            per_repo.spawn(async move {
                let (mut put, mut skipped) = (0, 0);
                for m in &ms[..ms.len() - 1] {
                    let d = m.digest().to_string();
                    if sh.client.manifest_digest(&repo, &d).await?.is_some() {
                        skipped += 1;
                        sh.progress.manifest_done(&repo, &d, m.digest(), true);
                    } else {
                        sh.client.put_manifest(&repo, &d, m).await?;
                        put += 1;
                        sh.progress.manifest_done(&repo, &d, m.digest(), false);
                    }
                }
                Ok((put, skipped))
            });
        }
    }
    let (mut put, mut skipped) = (0u64, 0u64);
    while let Some(r) = per_repo.join_next().await {
        let (p, s) = r.map_err(join_error)??;
        put += p;
        skipped += s;
    }
    let mut tops: JoinSet<Result<(usize, bool)>> = JoinSet::new();
    for (i, t) in targets.iter().enumerate() {
        let sh = shared.clone();
        let t = t.clone();
        let m = top.clone();
        tops.spawn(async move {
            let reference = t.tag.clone().unwrap_or_else(|| m.digest().to_string());
            if sh
                .client
                .manifest_digest(&t.repo, &reference)
                .await?
                .as_ref()
                == Some(m.digest())
            {
                sh.progress
                    .manifest_done(&t.repo, &reference, m.digest(), true);
                return Ok((i, true));
            }
            sh.client.put_manifest(&t.repo, &reference, &m).await?;
            sh.progress
                .manifest_done(&t.repo, &reference, m.digest(), false);
            Ok((i, false))
        });
    }
    while let Some(r) = tops.join_next().await {
        let (_, was_skipped) = r.map_err(join_error)??;
        if was_skipped {
            skipped += 1;
        } else {
            put += 1;
        }
    }

    Ok((put, skipped))
}

/// The stream strategy: config as usual, each layer compressed into its uploads, then
/// the manifest built from what the passes returned.
async fn push_streamed(
    shared: &Arc<Shared>,
    nodes: Vec<Node>,
    targets: &[Target],
    encoding: &hoist_image::pipeline::Encoding,
) -> Result<Report> {
    let [
        Node::Image {
            img,
            layers,
            config,
            config_digest,
        },
    ] = nodes.as_slice()
    else {
        return Err(Error::invalid_input(
            "stream strategy",
            "pushes a single image; push an index with head-first",
        ));
    };
    blob_everywhere(
        shared,
        config_digest.clone(),
        config.len() as u64,
        BlobSource::Bytes(config.clone()),
    )
    .await?;
    let firsts: Vec<Repository> = shared.registries.values().map(|r| r[0].clone()).collect();
    let mut descriptors = Vec::new();
    for l in layers {
        let _permit = shared.jobs.acquire().await.expect("never closed");
        let sealed = crate::stream::layer(
            &shared.client,
            &firsts,
            l.clone(),
            encoding,
            &shared.sessions,
        )
        .await?;
        shared.progress.sealed(&sealed.digest, sealed.size);
        for repos in shared.registries.values() {
            let first = &repos[0];
            shared
                .progress
                .blob_done(first, &sealed.digest, sealed.size, BlobOutcome::Uploaded);
            shared
                .tally
                .lock()
                .expect("tally lock")
                .add(first, BlobOutcome::Uploaded, sealed.size);
            shared
                .memory
                .lock()
                .expect("memory lock")
                .remember(first, &sealed.digest);
            for repo in &repos[1..] {
                let src = BlobSource::Bytes(Bytes::new()); // never read: the mount or HEAD answers
                let how = one_blob(
                    shared,
                    repo,
                    &sealed.digest,
                    sealed.size,
                    &src,
                    Some(first.name()),
                )
                .await?;
                shared
                    .progress
                    .blob_done(repo, &sealed.digest, sealed.size, how);
                if matches!(how, BlobOutcome::Uploaded | BlobOutcome::Downloaded) {
                    return Err(Error::invalid_response(
                        format!("mount into {repo}"),
                        "the registry refused to mount a blob it holds",
                    ));
                }
                shared
                    .tally
                    .lock()
                    .expect("tally lock")
                    .add(repo, how, sealed.size);
            }
        }
        descriptors.push(sealed.descriptor());
    }
    let cfg = img.config()?;
    let m = Manifest::from_image(&hoist_image::ImageManifest {
        schema_version: 2,
        media_type: Some(hoist_image::MediaType::OciManifest),
        artifact_type: None,
        config: cfg.descriptor(hoist_image::MediaType::OciConfig),
        layers: descriptors,
        subject: None,
        annotations: Default::default(),
    })?;
    let (put, skipped) = put_manifests(shared, vec![m], targets).await?;
    Ok(report(
        shared,
        targets,
        &top_digest_of(shared)?,
        put,
        skipped,
    ))
}

/// Get one blob into every destination repository: per registry in parallel; within a
/// registry the first repository gets it (HEAD / mount from memory / upload) and the
/// others mount it from there.
async fn blob_everywhere(
    sh: &Arc<Shared>,
    digest: Digest,
    size: u64,
    src: BlobSource,
) -> Result<()> {
    let mut set: JoinSet<Result<()>> = JoinSet::new();
    for (registry, repos) in &sh.registries {
        let sh = sh.clone();
        let (registry, repos) = (registry.clone(), repos.clone());
        let (digest, src) = (digest.clone(), src.clone());
        set.spawn(async move {
            // Who holds it: a repository of this registry the push memory knows, else
            // the one a registry layer was read from.
            let mut holder: Option<String> = sh
                .memory
                .lock()
                .expect("memory lock")
                .get(&registry, &digest)
                .or_else(|| src.origin_in(&registry));
            for repo in &repos {
                let _permit = sh.jobs.acquire().await.expect("never closed");
                let how = one_blob(&sh, repo, &digest, size, &src, holder.as_deref()).await?;
                sh.progress.blob_done(repo, &digest, size, how);
                sh.tally.lock().expect("tally lock").add(repo, how, size);
                sh.memory
                    .lock()
                    .expect("memory lock")
                    .remember(repo, &digest);
                holder = Some(repo.name().to_string());
            }
            Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(join_error)??;
    }
    Ok(())
}

async fn one_blob(
    sh: &Shared,
    repo: &Repository,
    digest: &Digest,
    size: u64,
    src: &BlobSource,
    holder: Option<&str>,
) -> Result<BlobOutcome> {
    if sh.client.head_blob(repo, digest).await? == Presence::Present {
        return Ok(BlobOutcome::Present);
    }
    let mut session = None;
    if let Some(from) = holder.filter(|h| *h != repo.name()) {
        // The mount runs as a session-opening request: a session the registry opens
        // instead is recorded, and cancelled if the upload never commits it.
        let (c, r, d, f) = (
            sh.client.clone(),
            repo.clone(),
            digest.clone(),
            from.to_string(),
        );
        let post = async move {
            let m = c.mount(&r, &d, &f).await?;
            let url = match &m {
                Mount::Started(u) => Some(u.clone()),
                Mount::Mounted => None,
            };
            Ok((m, url))
        };
        match sh.sessions.open(repo, post).await {
            Ok((Mount::Mounted, _)) => return Ok(BlobOutcome::Mounted),
            Ok((Mount::Started(url), Some(id))) => session = Some((url, id)),
            Ok((Mount::Started(_), None)) => unreachable!("a started mount is recorded"),
            // A refused mount (no access to `from`, or the memory is stale) is not fatal.
            Err(e) if !e.is_temporary() => {
                tracing::debug!(%digest, from, error = %e, "mount refused; uploading");
            }
            Err(e) => return Err(e),
        }
    }
    sh.progress.blob_started(repo, digest, size);
    let progress: upload::OnProgress = {
        let p = sh.progress.clone();
        let (repo, digest) = (repo.clone(), digest.clone());
        Arc::new(move |done| p.blob_progress(&repo, &digest, done))
    };
    Upload::new(&sh.client, repo, digest, size, src.clone())
        .monolithic_max(sh.opts.monolithic_max)
        .chunk_size(sh.opts.chunk_size)
        .progress(progress)
        .sessions(&sh.sessions)
        .run(session)
        .await?;
    Ok(BlobOutcome::Uploaded)
}

fn join_error(e: tokio::task::JoinError) -> Error {
    Error::io("push task", std::io::Error::other(e.to_string()))
}
