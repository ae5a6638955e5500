//! Sync: mirror many repositories and tags from one registry to another, and keep them
//! mirrored, moving nothing twice.
//!
//! A [`Pair`] names a source and a destination ([`Endpoint`]: `HOST/PREFIX` for every
//! repository the catalog lists under the prefix, `HOST/REPO` for every tag of one
//! repository, `HOST/REPO:TAG` for one tag) and which tags ([`TagFilter`]), platforms and
//! whether referrers (signatures, attestations, SBOMs) go along. [`sync`] lists what the
//! pairs stand for, then works on [`Options::images`] images at once, over one
//! [`Mirror`](hoist_remote::mirror::Mirror) for the whole run:
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
    /// The images to work on are listed (this many).
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

async fn run(
    pairs: Arc<Vec<Pair>>,
    opts: Options,
    mirror: Mirror,
    state: Option<Arc<State>>,
) -> Report {
    let client = mirror.client().clone();
    let mut report = Report::default();
    let mut jobs = Vec::new();
    for (i, p) in pairs.iter().enumerate() {
        let (js, failed) = plan(&client, i, p, opts.images).await;
        jobs.extend(js);
        report.images.extend(failed);
    }
    opts.watch.planned(jobs.len());
    let gate = Arc::new(Semaphore::new(opts.images));
    let mut set = JoinSet::new();
    let n = jobs.len();
    for (k, job) in jobs.into_iter().enumerate() {
        let (mirror, gate, pairs, state, watch) = (
            mirror.clone(),
            gate.clone(),
            pairs.clone(),
            state.clone(),
            opts.watch.clone(),
        );
        let dry_run = opts.dry_run;
        set.spawn(async move {
            let _turn = gate.acquire_owned().await.expect("never closed");
            let r = image(&mirror, &pairs[job.pair], &job, state.as_deref(), dry_run).await;
            watch.image(&r);
            (k, r)
        });
    }
    let mut done: Vec<Option<Image>> = vec![None; n];
    while let Some(r) = set.join_next().await {
        match r {
            Ok((k, img)) => done[k] = Some(img),
            Err(e) => report.images.push(Image::failed(
                "sync".into(),
                String::new(),
                &format!("an image task ended: {e}"),
            )),
        }
    }
    report.images.extend(done.into_iter().flatten());
    report
}

/// The images of one pair, and the repositories that could not be listed (as failed).
/// The tags of the repositories are listed `width` at a time.
async fn plan(client: &Client, i: usize, p: &Pair, width: usize) -> (Vec<Job>, Vec<Image>) {
    let mut jobs = Vec::new();
    let mut failed = Vec::new();
    let names = match p.source.repositories(client).await {
        Ok(n) => n,
        Err(e) => {
            failed.push(Image::failed(
                p.source.to_string(),
                p.destination.to_string(),
                &e,
            ));
            return (jobs, failed);
        }
    };
    let mut repos = Vec::new();
    for name in names {
        let r = Repository::new(&p.source.registry, &name)
            .map_err(Error::from)
            .and_then(|src| Ok((src, p.destination.destination_of(&p.source, &name)?)));
        match r {
            Ok(r) => repos.push(r),
            Err(e) => failed.push(Image::failed(
                format!("{}/{name}", p.source.registry),
                p.destination.to_string(),
                &e,
            )),
        }
    }
    let mut listed: Vec<Option<hoist_remote::Result<Vec<String>>>> = Vec::new();
    listed.resize_with(repos.len(), || None);
    match &p.source.tag {
        Some(t) => listed
            .iter_mut()
            .for_each(|l| *l = Some(Ok(vec![t.clone()]))),
        None => {
            let gate = Arc::new(Semaphore::new(width.max(1)));
            let mut set = JoinSet::new();
            for (k, (src, _)) in repos.iter().enumerate() {
                let (client, src, gate) = (client.clone(), src.clone(), gate.clone());
                set.spawn(async move {
                    let _turn = gate.acquire_owned().await.expect("never closed");
                    (k, hoist_remote::ops::list_tags(&client, &src).await)
                });
            }
            while let Some(r) = set.join_next().await {
                // A listing task only ends by returning (it does not panic).
                if let Ok((k, tags)) = r {
                    listed[k] = Some(tags);
                }
            }
        }
    }
    for ((src, dst), tags) in repos.into_iter().zip(listed) {
        let tags = match tags {
            Some(Ok(mut tags)) => {
                if p.source.tag.is_none() {
                    if p.referrers {
                        // The referrers copy keeps these itself.
                        tags.retain(|t| !hoist_remote::referrers::is_fallback_tag(t));
                    }
                    tags = p.tags.select(&tags);
                }
                tags
            }
            Some(Err(e)) => {
                failed.push(Image::failed(
                    src.to_string(),
                    dst.to_string(),
                    &format!("listing the tags of {src}: {e}"),
                ));
                continue;
            }
            None => {
                failed.push(Image::failed(
                    src.to_string(),
                    dst.to_string(),
                    &format!("listing the tags of {src}: the task ended"),
                ));
                continue;
            }
        };
        for tag in tags {
            jobs.push(Job {
                pair: i,
                src: src.clone(),
                dst_tag: p.destination.tag.clone().unwrap_or_else(|| tag.clone()),
                tag,
                dst: dst.clone(),
            });
        }
    }
    (jobs, failed)
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
