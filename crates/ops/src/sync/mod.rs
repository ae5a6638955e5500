//! Sync: mirror many repositories and tags from one registry to another, and keep them
//! mirrored, moving nothing twice.
//!
//! A [`Pair`] names a source and a destination ([`Endpoint`]: `HOST/PREFIX` for every
//! repository the catalog lists under the prefix, `HOST/REPO` for every tag of one
//! repository, `HOST/REPO:TAG` for one tag) and which tags ([`TagFilter`]), platforms and
//! whether referrers (signatures, attestations, SBOMs) go along. [`sync`] lists what the
//! pairs stand for and works on [`Options::images`] images at once, over one
//! [`Mirror`](hoist_remote::mirror::Mirror) for the whole run; a repository's images
//! start as soon as its tags are listed, while other repositories are still listed:
//!
//! - an unchanged tag costs a `HEAD` of the tag at each side and nothing else (with
//!   referrers, also a `GET` of the manifest at the destination and a referrers listing
//!   per manifest at the source, since signatures come and go without the tag moving);
//! - a tag the destination lacks costs no `HEAD` at the source, and in a repository the
//!   destination does not have, none there either but for the first tag asked;
//! - a changed tag is copied as the source has it, bytes unchanged (digests, and
//!   signatures over them, stay valid), or narrowed to the platforms asked (a new index,
//!   as `hoist copy --platform` makes it); each blob moves once per destination
//!   registry, and is mounted into every other repository that needs it;
//! - one bound on blob transfers in flight across all images (the context's jobs);
//! - a state file ([`Options::state`], see [`State`]) lets a killed run continue where
//!   it stopped;
//! - the [`Report`] says per image what happened: copied, unchanged, or failed and why
//!   (one failure does not stop the others).

mod config;
mod endpoint;
mod filter;
mod state;

use std::path::PathBuf;
use std::sync::Arc;

use hoist_image::{Digest, Manifest, Platform};
use hoist_remote::mirror::{self, Journal, Mirror, Moved, NoJournal};
use hoist_remote::{Client, Repository};
use tokio::sync::Semaphore;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::task::JoinSet;

pub use config::{Config, OneOrMany, Spec};
pub use endpoint::Endpoint;
pub use filter::{TagFilter, newest_last, version};
pub use state::State;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::open::Platforms;

/// Images worked on at once: their `HEAD`s and manifest requests. Blob transfers are
/// bounded apart, by the context's jobs. 16 `HEAD`s in flight check 150 unchanged tags
/// on a loopback registry in a few hundred milliseconds, and stay polite to a remote one.
pub const DEFAULT_IMAGES: usize = 16;
/// The state file's name in the cache directory (the CLI's default `--state`).
pub const STATE_FILE: &str = "sync-state.jsonl";

/// One source and destination, and what to take.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Where from.
    pub source: Endpoint,
    /// Where to.
    pub destination: Endpoint,
    /// Which tags.
    pub tags: TagFilter,
    /// Which platforms of indexes ([`Platforms::Default`] and `All`: the whole index).
    pub platforms: Platforms,
    /// Copy the referrers of every image too (and keep the destination's referrers tag
    /// indexes when it has no referrers API).
    pub referrers: bool,
}

impl Pair {
    /// Every tag of `source` to `destination`, whole indexes, no referrers.
    pub fn new(source: Endpoint, destination: Endpoint) -> Pair {
        Pair {
            source,
            destination,
            tags: TagFilter::all(),
            platforms: Platforms::Default,
            referrers: false,
        }
    }

    fn platform_list(&self) -> Vec<Platform> {
        match &self.platforms {
            Platforms::List(l) => l.clone(),
            Platforms::Default | Platforms::All => Vec::new(),
        }
    }
}

/// Told as a sync goes; every method has a no-op default. Called from many tasks.
pub trait Watch: Send + Sync {
    /// More images to work on are listed (this many more): called as each repository's
    /// tags arrive, while the images listed before are already being worked on.
    fn planned(&self, _images: usize) {}
    /// One image is done (copied, unchanged, or failed).
    fn image(&self, _image: &Image) {}
}

/// A watch that is told nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoWatch;
impl Watch for NoWatch {}

/// How to sync.
#[derive(Clone)]
pub struct Options {
    /// Write nothing: say what would be copied, and how many bytes.
    pub dry_run: bool,
    /// The state file (`None`: none).
    pub state: Option<PathBuf>,
    /// Images worked on at once.
    pub images: usize,
    /// Told as the sync goes.
    pub watch: Arc<dyn Watch>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dry_run: false,
            state: None,
            images: DEFAULT_IMAGES,
            watch: Arc::new(NoWatch),
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("dry_run", &self.dry_run)
            .field("state", &self.state)
            .field("images", &self.images)
            .finish_non_exhaustive()
    }
}

/// What happened to one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Copied (or its referrers were).
    Copied,
    /// The destination had it: nothing but its referrers (when asked) was looked at.
    Unchanged,
    /// A dry run: it would be copied.
    Planned,
    /// It failed, for this reason (one line).
    Failed(String),
}

/// One image of a sync (or a repository that could not be listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `registry/repository:tag` (no tag: a repository whose tags could not be listed).
    pub source: String,
    /// `registry/repository:tag` at the destination.
    pub destination: String,
    /// The manifest at the destination (or that would be), when known.
    pub digest: Option<Digest>,
    /// What happened.
    pub outcome: Outcome,
    /// What moved for it (blobs, manifests, referrers).
    pub moved: Moved,
}

impl Image {
    /// `registry/repository:tag@digest` at the destination, when there.
    pub fn reference(&self) -> Option<String> {
        match (&self.outcome, &self.digest) {
            (Outcome::Copied | Outcome::Unchanged, Some(d)) => {
                Some(format!("{}@{d}", self.destination))
            }
            _ => None,
        }
    }

    fn failed(source: String, destination: String, e: &dyn std::fmt::Display) -> Image {
        Image {
            source,
            destination,
            digest: None,
            outcome: Outcome::Failed(e.to_string()),
            moved: Moved::default(),
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Per image, in the order listed (pairs in order, repositories and tags sorted).
    pub images: Vec<Image>,
    /// What moved in all.
    pub moved: Moved,
    /// It was a dry run.
    pub dry_run: bool,
    /// Registry requests sent.
    pub requests: u64,
}

impl Report {
    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.images.iter().filter(|i| f(&i.outcome)).count()
    }
    /// Images copied.
    pub fn copied(&self) -> usize {
        self.count(|o| *o == Outcome::Copied)
    }
    /// Images the destination had.
    pub fn unchanged(&self) -> usize {
        self.count(|o| *o == Outcome::Unchanged)
    }
    /// Images a dry run would copy.
    pub fn planned(&self) -> usize {
        self.count(|o| *o == Outcome::Planned)
    }
    /// Images (or repositories) that failed.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }
    /// True when nothing failed.
    pub fn is_ok(&self) -> bool {
        self.failed() == 0
    }
}

/// One image to work on.
#[derive(Debug, Clone)]
struct Job {
    pair: usize,
    src: Repository,
    tag: String,
    dst: Repository,
    dst_tag: String,
}

/// Sync every pair. Failures of single images (or repositories) are in the report; an
/// error is returned only for what stops the whole run (a state file that cannot be
/// opened, bad options).
pub fn sync(pairs: &[Pair], opts: &Options, ctx: &Context) -> Result<Report> {
    if opts.images == 0 {
        return Err(Error::invalid("sync: images in flight must be at least 1"));
    }
    ctx.blocking(|| {
        let client = ctx.client()?;
        let state = match &opts.state {
            Some(p) => Some(Arc::new(State::open(p)?)),
            None => None,
        };
        let journal: Arc<dyn Journal> = match &state {
            Some(s) if !opts.dry_run => s.clone(),
            _ => Arc::new(NoJournal),
        };
        let mirror = Mirror::new(
            &client,
            mirror::Options {
                jobs: ctx.jobs().unwrap_or(mirror::DEFAULT_JOBS),
                dry_run: opts.dry_run,
                journal,
                progress: ctx.progress(),
            },
        )?;
        let before = client.stats().requests;
        let pairs: Arc<Vec<Pair>> = Arc::new(pairs.to_vec());
        let mut report = ctx
            .runtime()
            .block_on(run(pairs, opts.clone(), mirror.clone(), state))?;
        report.moved = mirror.moved();
        report.dry_run = opts.dry_run;
        report.requests = client.stats().requests - before;
        Ok(report)
    })
}

/// Where an image was listed: pair, repository (sorted), tag (in the filter's order).
/// The report lists images in this order.
type Key = (usize, usize, usize);

/// What the listing sends as it goes: the images of one repository as soon as its tags
/// are known (so they start while other repositories are still listed), or a
/// repository (or pair) that could not be listed.
enum Listed {
    Jobs(Vec<(Key, Job)>),
    Failed(Key, Image),
}

async fn run(
    pairs: Arc<Vec<Pair>>,
    opts: Options,
    mirror: Mirror,
    state: Option<Arc<State>>,
) -> Report {
    let (tx, mut listed) = unbounded_channel();
    let lister = {
        let (client, pairs, width) = (mirror.client().clone(), pairs.clone(), opts.images);
        tokio::spawn(async move {
            for i in 0..pairs.len() {
                list(&client, &pairs, i, width, &tx).await;
            }
        })
    };
    let shared = Arc::new(Shared {
        gate: Semaphore::new(opts.images),
        mirror,
        pairs,
        state,
        opts,
    });
    let mut set = JoinSet::new();
    let mut done: Vec<(Key, Image)> = Vec::new();
    loop {
        tokio::select! {
            l = listed.recv() => match l {
                Some(Listed::Jobs(jobs)) => {
                    shared.opts.watch.planned(jobs.len());
                    for (key, job) in jobs {
                        set.spawn(work(key, job, shared.clone()));
                    }
                }
                Some(Listed::Failed(key, img)) => done.push((key, img)),
                // Every pair is listed.
                None => break,
            },
            Some(r) = set.join_next() => done.push(ended(r)),
        }
    }
    while let Some(r) = set.join_next().await {
        done.push(ended(r));
    }
    if let Err(e) = lister.await {
        done.push((
            (usize::MAX, 0, 0),
            Image::failed(
                "sync".into(),
                String::new(),
                &format!("the listing ended: {e}"),
            ),
        ));
    }
    done.sort_by_key(|(k, _)| *k);
    Report {
        images: done.into_iter().map(|(_, i)| i).collect(),
        ..Report::default()
    }
}

/// What every image's task shares.
struct Shared {
    /// Images worked on at once.
    gate: Semaphore,
    mirror: Mirror,
    pairs: Arc<Vec<Pair>>,
    state: Option<Arc<State>>,
    opts: Options,
}

/// One image, on its turn; told to the watch when done.
async fn work(key: Key, job: Job, s: Arc<Shared>) -> (Key, Image) {
    let _turn = s.gate.acquire().await.expect("never closed");
    let pair = &s.pairs[job.pair];
    let r = image(&s.mirror, pair, &job, s.state.as_deref(), s.opts.dry_run).await;
    s.opts.watch.image(&r);
    (key, r)
}

/// An image task's result, or why it has none (it panicked).
fn ended(r: std::result::Result<(Key, Image), tokio::task::JoinError>) -> (Key, Image) {
    r.unwrap_or_else(|e| {
        let why = format!("an image task ended: {e}");
        (
            (usize::MAX, 0, 0),
            Image::failed("sync".into(), String::new(), &why),
        )
    })
}

/// List the images of pair `i` into `tx`, a repository at a time as its tags arrive
/// (`width` tag listings at once), with the repositories that could not be listed
/// (as failed).
async fn list(
    client: &Client,
    pairs: &Arc<Vec<Pair>>,
    i: usize,
    width: usize,
    tx: &UnboundedSender<Listed>,
) {
    let p = &pairs[i];
    // The receiver goes only with the whole run.
    let send = |l: Listed| drop(tx.send(l));
    let names = match p.source.repositories(client).await {
        Ok(n) => n,
        Err(e) => {
            send(Listed::Failed(
                (i, 0, 0),
                Image::failed(p.source.to_string(), p.destination.to_string(), &e),
            ));
            return;
        }
    };
    let gate = Arc::new(Semaphore::new(width.max(1)));
    let mut set = JoinSet::new();
    let mut listing = std::collections::HashMap::new();
    for (r, name) in names.into_iter().enumerate() {
        let repos = Repository::new(&p.source.registry, &name)
            .map_err(Error::from)
            .and_then(|src| Ok((src, p.destination.destination_of(&p.source, &name)?)));
        let (src, dst) = match repos {
            Ok(r) => r,
            Err(e) => {
                send(Listed::Failed(
                    (i, r, 0),
                    Image::failed(
                        format!("{}/{name}", p.source.registry),
                        p.destination.to_string(),
                        &e,
                    ),
                ));
                continue;
            }
        };
        if let Some(t) = &p.source.tag {
            send(jobs(pairs, (i, r), &src, &dst, vec![t.clone()]));
            continue;
        }
        let (client, gate, tx, pairs) = (client.clone(), gate.clone(), tx.clone(), pairs.clone());
        let labels = (src.to_string(), dst.to_string());
        let task = set.spawn(async move {
            let tags = {
                let _turn = gate.acquire_owned().await.expect("never closed");
                hoist_remote::ops::list_tags(&client, &src).await
            };
            let p = &pairs[i];
            let l = match tags {
                Ok(mut tags) => {
                    if p.referrers {
                        // The referrers copy keeps these itself.
                        tags.retain(|t| !hoist_remote::referrers::is_fallback_tag(t));
                    }
                    jobs(&pairs, (i, r), &src, &dst, p.tags.select(&tags))
                }
                Err(e) => Listed::Failed(
                    (i, r, 0),
                    Image::failed(
                        src.to_string(),
                        dst.to_string(),
                        &format!("listing the tags of {src}: {e}"),
                    ),
                ),
            };
            drop(tx.send(l));
        });
        listing.insert(task.id(), (r, labels));
    }
    while let Some(ended) = set.join_next_with_id().await {
        if let Err(e) = ended
            && let Some((r, (src, dst))) = listing.remove(&e.id())
        {
            let why = format!("listing the tags of {src}: the task ended: {e}");
            send(Listed::Failed((i, r, 0), Image::failed(src, dst, &why)));
        }
    }
}

/// The images of the tags `tags` of repository `(pair, repository)`.
fn jobs(
    pairs: &[Pair],
    (i, r): (usize, usize),
    src: &Repository,
    dst: &Repository,
    tags: Vec<String>,
) -> Listed {
    let to = &pairs[i].destination.tag;
    let jobs = tags
        .into_iter()
        .enumerate()
        .map(|(t, tag)| {
            let job = Job {
                pair: i,
                src: src.clone(),
                dst_tag: to.clone().unwrap_or_else(|| tag.clone()),
                tag,
                dst: dst.clone(),
            };
            ((i, r, t), job)
        })
        .collect();
    Listed::Jobs(jobs)
}

/// Sync one image: `HEAD` both sides; copy (and its referrers) unless they agree.
async fn image(
    mirror: &Mirror,
    pair: &Pair,
    job: &Job,
    state: Option<&State>,
    dry_run: bool,
) -> Image {
    let source = format!("{}:{}", job.src, job.tag);
    let destination = format!("{}:{}", job.dst, job.dst_tag);
    match image_here(mirror, pair, job, &source, state, dry_run).await {
        Ok((outcome, digest, moved)) => Image {
            source,
            destination,
            digest: Some(digest),
            outcome,
            moved,
        },
        Err(e) => Image::failed(source, destination, &e),
    }
}

async fn image_here(
    mirror: &Mirror,
    pair: &Pair,
    job: &Job,
    source: &str,
    state: Option<&State>,
    dry_run: bool,
) -> Result<(Outcome, Digest, Moved)> {
    let client = mirror.client();
    let gone = || {
        Error::msg(
            crate::ErrorKind::NotFound,
            format!("{source}: the tag is gone from the source"),
        )
    };
    let platforms = pair.platform_list();
    // The destination is asked first. A tag it lacks is copied whatever the source's
    // digest, so the source's manifest is fetched at once (its digest is that of the
    // bytes received), without a HEAD there; a tag it has costs a HEAD at the source.
    // Narrowed to platforms, the source's own digest is needed (the state file keys
    // the manifest written by it): both HEADs, at once. The tags of a repository the
    // destination does not have (the first tag asked tells) cost no HEAD there.
    let mut top: Option<Manifest> = None;
    let (src_digest, at_dst) = if platforms.is_empty() {
        match mirror.digest_at(&job.dst, &job.dst_tag).await? {
            None => {
                let m = client
                    .get_manifest(&job.src, &job.tag)
                    .await
                    .map_err(|e| if e.is_not_found() { gone() } else { e.into() })?;
                let d = m.digest().clone();
                top = Some(m);
                (d, None)
            }
            Some(at) => {
                let d = client
                    .manifest_digest(&job.src, &job.tag)
                    .await?
                    .ok_or_else(gone)?;
                (d, Some(at))
            }
        }
    } else {
        let (s, d) = tokio::join!(
            client.manifest_digest(&job.src, &job.tag),
            mirror.digest_at(&job.dst, &job.dst_tag)
        );
        (s?.ok_or_else(gone)?, d?)
    };
    let key = {
        let mut k: Vec<String> = platforms.iter().map(ToString::to_string).collect();
        k.sort();
        k.join(",")
    };
    // The manifest the destination should have: the source's, or narrowed (from an
    // earlier run's state, else computed from the source's index).
    let want = if platforms.is_empty() {
        src_digest.clone()
    } else if let Some(w) = state.and_then(|s| s.written(source, &src_digest, &key)) {
        w
    } else {
        let m = mirror
            .resolve(&job.src, &src_digest.to_string(), &platforms)
            .await?;
        let d = m.digest().clone();
        top = Some(m);
        d
    };
    if at_dst.as_ref() == Some(&want) {
        let mut moved = Moved::default();
        if pair.referrers {
            let m = match top {
                Some(m) => m,
                None => client.get_manifest(&job.dst, &want.to_string()).await?,
            };
            moved += mirror.copy_referrers(&job.src, &m, &job.dst).await?;
        }
        let outcome = if moved.manifests_put > 0 && !dry_run {
            Outcome::Copied
        } else if moved.manifests_put > 0 {
            Outcome::Planned
        } else {
            Outcome::Unchanged
        };
        return Ok((outcome, want, moved));
    }
    let top = match top {
        Some(m) => m,
        None => {
            mirror
                .resolve(&job.src, &src_digest.to_string(), &platforms)
                .await?
        }
    };
    let mut moved = mirror
        .copy(&job.src, &top, &job.dst, Some(&job.dst_tag))
        .await?;
    if pair.referrers {
        moved += mirror.copy_referrers(&job.src, &top, &job.dst).await?;
    }
    if dry_run {
        return Ok((Outcome::Planned, top.digest().clone(), moved));
    }
    if let Some(s) = state {
        s.image_done(source, &src_digest, &key, top.digest());
    }
    Ok((Outcome::Copied, top.digest().clone(), moved))
}
