//! Mirror: registry-to-registry copies of manifests and everything they reference, the
//! bytes unchanged — so digests, and the signatures made over them, stay valid — for
//! many images at once, each blob moved once per destination registry.
//!
//! A [`Mirror`] is shared by every copy of a run (a sync of many repositories and tags):
//! - one bound on blob transfers in flight across all of them ([`Options::jobs`]);
//! - a ledger of the blobs each destination registry got in this run: the first copy
//!   that needs a blob `HEAD`s it, then mounts it from a repository of that registry
//!   known to hold it (from this run, from an earlier run's [`Journal`], or the source
//!   repository when both are on one registry) or uploads it, streamed from the source;
//!   copies needing it meanwhile wait, then mount it from there (no `HEAD`, no upload);
//! - no `HEAD` of blobs, nor of tags but the first asked ([`Mirror::digest_at`]), in a
//!   repository the destination does not have yet (asked once per repository, when
//!   the first tag asked is missing or the first blob must go there: its tag list is
//!   404 `NAME_UNKNOWN`), unless the journal says an earlier run was filling it;
//! - an optional [`Journal`] (a sync's state file) told which repository holds which
//!   blob and where each large upload's session is, so a run killed in the middle
//!   resumes its uploads from the offset the registry reports, and mounts what it had
//!   finished;
//! - what it learned of each registry's referrers API.
//!
//! Manifests are copied children first, by digest (a child the destination has is not
//! fetched), then the top one under its tag. [`Mirror::copy_referrers`] copies the
//! referrers of a manifest and of an index's children, recursively (referrers of
//! referrers), through the referrers API or the tag schema ([`crate::referrers`]),
//! keeping the destination's fallback tag when it has no API. In a dry run nothing is
//! written: the same walk counts what would move.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use hoist_image::{Descriptor, Digest, Manifest, Parsed, Platform};
use tokio::sync::{Semaphore, watch};
use url::Url;

use crate::blobs::{Mount, Presence};
use crate::error::{Error, Result};
use crate::push::{self, BlobOutcome, NoProgress, Progress};
use crate::referrers;
use crate::repo::Repository;
use crate::runtime::Runtime;
use crate::sessions::Sessions;
use crate::source::Remote;
use crate::transport::Client;
use crate::upload::{self, BlobSource, Upload};

/// Blob transfers in flight across every copy of a mirror, by default: the push
/// engine's ([`push::DEFAULT_JOBS`]), for the same reasons.
pub const DEFAULT_JOBS: usize = push::DEFAULT_JOBS;
/// Referrers of referrers followed at most (a signature of an SBOM of an image is 2).
pub const MAX_REFERRER_DEPTH: usize = 8;

/// What a mirror keeps across runs (a sync's state file). Every method has a default
/// that keeps nothing; they are called from many tasks at once.
pub trait Journal: Send + Sync {
    /// `digest` is in `repo`.
    fn blob_in(&self, _repo: &Repository, _digest: &Digest) {}
    /// A repository of `registry` an earlier run put `digest` in.
    fn holder(&self, _registry: &str, _digest: &Digest) -> Option<String> {
        None
    }
    /// The upload session of `digest` into `repo` is at `url` (`None`: committed).
    fn session(&self, _repo: &Repository, _digest: &Digest, _url: Option<&str>) {}
    /// The session an earlier run left for `digest` in `repo`.
    fn open_session(&self, _repo: &Repository, _digest: &Digest) -> Option<String> {
        None
    }
    /// Blobs and tags go into `repo`, which the registry did not have, without `HEAD`s:
    /// told before the first of them is sent.
    fn filling(&self, _repo: &Repository) {}
    /// An earlier run was told [`Journal::filling`] of `repo`: it may hold blobs and
    /// tags that run sent without noting them (killed between a write and its note).
    fn filled_before(&self, _repo: &Repository) -> bool {
        false
    }
}

/// A journal that keeps nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoJournal;
impl Journal for NoJournal {}

/// What moved (or, in a dry run, would move).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Blobs the destination had.
    pub blobs_present: u64,
    /// Blobs mounted from another repository of the destination registry.
    pub blobs_mounted: u64,
    /// Blobs uploaded.
    pub blobs_uploaded: u64,
    /// Their bytes.
    pub bytes_uploaded: u64,
    /// Manifests put (children, the top one, referrers, fallback tag indexes).
    pub manifests_put: u64,
    /// Manifests the destination had (not fetched from the source).
    pub manifests_present: u64,
    /// Referrers copied.
    pub referrers: u64,
}

impl std::ops::AddAssign for Moved {
    fn add_assign(&mut self, o: Moved) {
        self.blobs_present += o.blobs_present;
        self.blobs_mounted += o.blobs_mounted;
        self.blobs_uploaded += o.blobs_uploaded;
        self.bytes_uploaded += o.bytes_uploaded;
        self.manifests_put += o.manifests_put;
        self.manifests_present += o.manifests_present;
        self.referrers += o.referrers;
    }
}

/// How a mirror works.
#[derive(Clone)]
pub struct Options {
    /// Blob transfers in flight across every copy.
    pub jobs: usize,
    /// Write nothing; count what would move.
    pub dry_run: bool,
    /// What is kept across runs.
    pub journal: Arc<dyn Journal>,
    /// Told when blobs start, advance and finish.
    pub progress: Arc<dyn Progress>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            jobs: DEFAULT_JOBS,
            dry_run: false,
            journal: Arc::new(NoJournal),
            progress: Arc::new(NoProgress),
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("jobs", &self.jobs)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// A blob of a destination registry in this run: held by a repository, or on its way.
enum Held {
    By(String),
    Busy(watch::Receiver<bool>),
}

/// A blob in one destination repository in this run: there, or on its way.
enum Slot {
    Done,
    Busy(watch::Receiver<bool>),
}

/// A task's claim on a key of a map of work in progress (its waiters hold the other end
/// of `tx`). Dropped unsettled — the task failed or was cancelled — it frees the key
/// before the waiters wake, so one of them takes the work over.
struct Claim<'a, V> {
    map: &'a Mutex<HashMap<(String, Digest), V>>,
    key: (String, Digest),
    tx: watch::Sender<bool>,
    settled: bool,
}

impl<V> Claim<'_, V> {
    /// The work is done: the key now says `v`; wake the waiters.
    fn settle(mut self, v: V) {
        self.map
            .lock()
            .expect("claims lock")
            .insert(self.key.clone(), v);
        self.settled = true;
        let _ = self.tx.send(true);
    }
}

impl<V> Drop for Claim<'_, V> {
    fn drop(&mut self) {
        if !self.settled {
            self.map.lock().expect("claims lock").remove(&self.key);
            let _ = self.tx.send(true);
        }
    }
}

/// The copies of one run; see the [module docs](self). Cheap to clone.
#[derive(Clone)]
pub struct Mirror {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("dry_run", &self.inner.dry_run)
            .finish_non_exhaustive()
    }
}

struct Inner {
    client: Client,
    transfers: Semaphore,
    dry_run: bool,
    journal: Arc<dyn Journal>,
    progress: Arc<dyn Progress>,
    /// (destination registry, digest) → who holds it.
    blobs: Mutex<HashMap<(String, Digest), Held>>,
    /// ("registry/repository", digest) → in it, or on its way (one task per
    /// repository and blob).
    present: Mutex<HashMap<(String, Digest), Slot>>,
    /// Manifests known to be in a repository in this run.
    manifests: Mutex<HashSet<(Repository, Digest)>>,
    /// Registry → it has the referrers API.
    api: Mutex<HashMap<String, bool>>,
    /// Destination repository → it did not exist when this run first asked (a tag or a
    /// blob there).
    unknown: Mutex<HashMap<Repository, Arc<tokio::sync::OnceCell<bool>>>>,
    /// One writer at a time per fallback tag.
    tags: Mutex<HashMap<(Repository, Digest), TagLock>>,
    total: Mutex<Moved>,
}

/// The lock of one fallback tag's writers.
type TagLock = Arc<tokio::sync::Mutex<()>>;

/// What one copy moved, shared by its tasks.
type Tally = Arc<Mutex<Moved>>;

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

fn count(t: &Tally, f: impl FnOnce(&mut Moved)) {
    f(&mut t.lock().expect("tally lock"));
}

/// A listed index: only its manifest is read (to narrow it to platforms).
#[derive(Debug)]
struct Listed(Manifest);

impl hoist_image::ImageIndex for Listed {
    fn manifest(&self) -> hoist_image::Result<Manifest> {
        Ok(self.0.clone())
    }
    fn child(&self, d: &Descriptor) -> hoist_image::Result<hoist_image::Child> {
        Err(hoist_image::Error::not_found(format!(
            "manifest {} (a listed index is not opened)",
            d.digest
        )))
    }
}

impl Mirror {
    /// A mirror over `client`.
    pub fn new(client: &Client, opts: Options) -> Result<Mirror> {
        if opts.jobs == 0 {
            return Err(Error::invalid_input("mirror jobs", "must be at least 1"));
        }
        Ok(Mirror {
            inner: Arc::new(Inner {
                client: client.clone(),
                transfers: Semaphore::new(opts.jobs),
                dry_run: opts.dry_run,
                journal: opts.journal,
                progress: opts.progress,
                blobs: Mutex::default(),
                present: Mutex::default(),
                manifests: Mutex::default(),
                api: Mutex::default(),
                unknown: Mutex::default(),
                tags: Mutex::default(),
                total: Mutex::default(),
            }),
        })
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// What every copy of this mirror moved so far.
    pub fn moved(&self) -> Moved {
        *self.inner.total.lock().expect("total lock")
    }

    /// The manifest a copy of `src:reference` writes: the source's, or, with
    /// `platforms`, that platform's image (one platform) or the index narrowed to those
    /// platforms (several: a new index, as `hoist_image::mutate::index::filter` makes it).
    pub async fn resolve(
        &self,
        src: &Repository,
        reference: &str,
        platforms: &[Platform],
    ) -> Result<Manifest> {
        let client = &self.inner.client;
        match platforms {
            [] => client.get_manifest(src, reference).await,
            [one] => Ok(crate::pull::resolve(client, src, reference, Some(one))
                .await?
                .0),
            several => {
                let m = client.get_manifest(src, reference).await?;
                if m.as_index().is_none() {
                    return Ok(m);
                }
                let narrowed = hoist_image::mutate::index::filter(Arc::new(Listed(m)), several)?;
                Ok(hoist_image::ImageIndex::manifest(narrowed.as_ref())?)
            }
        }
    }

    /// Copy `top` (a manifest of `src`, as [`Mirror::resolve`] gave it) and everything
    /// it references to `dst`, under `tag` (by digest when `None`).
    pub async fn copy(
        &self,
        src: &Repository,
        top: &Manifest,
        dst: &Repository,
        tag: Option<&str>,
    ) -> Result<Moved> {
        let tally = Tally::default();
        let remote = self.remote(src);
        let reference = tag.map_or_else(|| top.digest().to_string(), str::to_string);
        self.put_graph(&remote, top.clone(), dst, reference, &tally)
            .await?;
        Ok(self.done(tally))
    }

    /// Copy the referrers of `top` (a manifest of `src` that `dst` has) and of its
    /// children when it is an index, recursively, to `dst`. Referrers `dst` has are not
    /// fetched again; a destination without the referrers API gets them listed under
    /// their subject's fallback tag.
    pub async fn copy_referrers(
        &self,
        src: &Repository,
        top: &Manifest,
        dst: &Repository,
    ) -> Result<Moved> {
        let tally = Tally::default();
        let remote = self.remote(src);
        let mut subjects = vec![top.digest().clone()];
        if let Some(ix) = top.as_index() {
            subjects.extend(ix.manifests.iter().map(|d| d.digest.clone()));
        }
        for s in subjects {
            self.referrers_of(&remote, s, dst, 0, &tally).await?;
        }
        Ok(self.done(tally))
    }

    /// The referrers of `subject` in `repo`: through the API, or the fallback tag.
    pub async fn referrers(&self, repo: &Repository, subject: &Digest) -> Result<Vec<Descriptor>> {
        let known = self.api_known(repo.registry());
        let (list, api) = referrers::list(&self.inner.client, repo, subject, known).await?;
        self.set_api(repo.registry(), api);
        Ok(list)
    }

    fn remote(&self, src: &Repository) -> Arc<Remote> {
        Remote::new(
            self.inner.client.clone(),
            src.clone(),
            Runtime::from_handle(tokio::runtime::Handle::current()),
        )
    }

    fn done(&self, tally: Tally) -> Moved {
        let m = *tally.lock().expect("tally lock");
        *self.inner.total.lock().expect("total lock") += m;
        m
    }

    fn api_known(&self, registry: &str) -> Option<bool> {
        self.inner
            .api
            .lock()
            .expect("api lock")
            .get(registry)
            .copied()
    }

    fn set_api(&self, registry: &str, yes: bool) {
        self.inner
            .api
            .lock()
            .expect("api lock")
            .insert(registry.to_string(), yes);
    }

    /// The digest of `tag` in the destination repository `dst` (`None`: it lacks the
    /// tag). The first tag asked of a repository is `HEAD`ed; when it is missing, the
    /// repository's tag list tells whether the destination has the repository at all
    /// (once per repository, shared with the blobs' question). The other tags of a
    /// repository it does not have are missing too: no `HEAD`, unless an earlier run
    /// was filling that repository (it may have written them). Tags of a repository
    /// the destination has are `HEAD`ed, after the first answer.
    pub async fn digest_at(&self, dst: &Repository, tag: &str) -> Result<Option<Digest>> {
        let client = &self.inner.client;
        let mut first = None;
        let unknown = *self
            .unknown_cell(dst)
            .get_or_init(|| async {
                let head = client.manifest_digest(dst, tag).await;
                let missing = matches!(head, Ok(None));
                first = Some(head);
                missing && self.ask_unknown(dst).await
            })
            .await;
        match first {
            Some(head) => head,
            None if unknown => Ok(None),
            None => client.manifest_digest(dst, tag).await,
        }
    }

    /// Does `repo` have the manifest `digest`? (known from this run, else a `HEAD`)
    async fn has_manifest(&self, repo: &Repository, digest: &Digest) -> Result<bool> {
        let key = (repo.clone(), digest.clone());
        if self
            .inner
            .manifests
            .lock()
            .expect("manifests lock")
            .contains(&key)
        {
            return Ok(true);
        }
        let there = self
            .inner
            .client
            .manifest_digest(repo, &digest.to_string())
            .await?
            .is_some();
        if there {
            self.inner
                .manifests
                .lock()
                .expect("manifests lock")
                .insert(key);
        }
        Ok(there)
    }

    /// Copy `m` and what it references to `dst` at `reference`: blobs (or children)
    /// first, concurrently, then the manifest.
    fn put_graph<'a>(
        &'a self,
        remote: &'a Arc<Remote>,
        m: Manifest,
        dst: &'a Repository,
        reference: String,
        tally: &'a Tally,
    ) -> Boxed<'a, ()> {
        Box::pin(async move {
            let src = remote.repo();
            match m.parsed() {
                Parsed::Image(im) => {
                    let mut seen = HashSet::new();
                    let blobs = std::iter::once(&im.config)
                        .chain(&im.layers)
                        // Foreign layers are fetched from their URLs, not pushed.
                        .filter(|d| d.urls.is_empty() && seen.insert(d.digest.clone()))
                        .map(|d| self.ensure_blob(remote, d, dst, tally));
                    futures_util::future::try_join_all(blobs).await?;
                }
                Parsed::Index(ix) => {
                    let children = ix.manifests.iter().map(|d| async move {
                        if self.has_manifest(dst, &d.digest).await? {
                            count(tally, |t| t.manifests_present += 1);
                            return Ok(());
                        }
                        let child = self
                            .inner
                            .client
                            .get_manifest(src, &d.digest.to_string())
                            .await?;
                        self.put_graph(remote, child, dst, d.digest.to_string(), tally)
                            .await
                    });
                    futures_util::future::try_join_all(children).await?;
                }
            }
            if !self.inner.dry_run {
                let (_, indexed) = self
                    .inner
                    .client
                    .put_manifest_answer(dst, &reference, &m)
                    .await?;
                let has_subject = match m.parsed() {
                    Parsed::Image(i) => i.subject.is_some(),
                    Parsed::Index(i) => i.subject.is_some(),
                };
                if has_subject {
                    // A registry with the referrers API says so when it indexes a subject.
                    self.set_api(dst.registry(), indexed);
                }
                self.inner
                    .progress
                    .manifest_done(dst, &reference, m.digest(), false);
            }
            count(tally, |t| t.manifests_put += 1);
            self.inner
                .manifests
                .lock()
                .expect("manifests lock")
                .insert((dst.clone(), m.digest().clone()));
            Ok(())
        })
    }

    /// Get the blob `d` of the source into `dst`, once per destination registry: the
    /// first copy to need it checks and sends it, the others wait and mount it. Within
    /// one repository, one task links it and the others wait for that: a registry asked
    /// to link a blob again while a manifest naming it is checked can answer
    /// `MANIFEST_BLOB_UNKNOWN` (distribution rewrites the link file in place).
    async fn ensure_blob(
        &self,
        remote: &Arc<Remote>,
        d: &Descriptor,
        dst: &Repository,
        tally: &Tally,
    ) -> Result<()> {
        let here = (dst.to_string(), d.digest.clone());
        let claim = loop {
            let wait = {
                let mut slots = self.inner.present.lock().expect("present lock");
                match slots.get(&here) {
                    Some(Slot::Done) => {
                        count(tally, |t| t.blobs_present += 1);
                        return Ok(());
                    }
                    Some(Slot::Busy(rx)) => rx.clone(),
                    None => {
                        let (tx, rx) = watch::channel(false);
                        slots.insert(here.clone(), Slot::Busy(rx));
                        break Claim {
                            map: &self.inner.present,
                            key: here,
                            tx,
                            settled: false,
                        };
                    }
                }
            };
            let mut wait = wait;
            let _ = wait.wait_for(|done| *done).await;
        };
        let how = self.to_repository(remote, d, dst).await?;
        self.record(d, dst, how, tally);
        claim.settle(Slot::Done);
        Ok(())
    }

    /// The blob into `dst`, the first time this run needs it there.
    async fn to_repository(
        &self,
        remote: &Arc<Remote>,
        d: &Descriptor,
        dst: &Repository,
    ) -> Result<BlobOutcome> {
        let key = (dst.registry().to_string(), d.digest.clone());
        enum Step<'a> {
            MountFrom(String),
            Wait(watch::Receiver<bool>),
            Own(Claim<'a, Held>),
        }
        loop {
            let step = {
                let mut blobs = self.inner.blobs.lock().expect("blobs lock");
                match blobs.get(&key) {
                    Some(Held::By(r)) => Step::MountFrom(r.clone()),
                    Some(Held::Busy(rx)) => Step::Wait(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(false);
                        blobs.insert(key.clone(), Held::Busy(rx));
                        Step::Own(Claim {
                            map: &self.inner.blobs,
                            key: key.clone(),
                            tx,
                            settled: false,
                        })
                    }
                }
            };
            match step {
                Step::Wait(mut rx) => {
                    let _ = rx.wait_for(|done| *done).await;
                }
                Step::MountFrom(holder) => return self.send(remote, d, dst, Some(holder)).await,
                Step::Own(claim) => {
                    let how = self.first_in_registry(remote, d, dst).await?;
                    claim.settle(Held::By(dst.name().to_string()));
                    return Ok(how);
                }
            }
        }
    }

    fn record(&self, d: &Descriptor, dst: &Repository, how: BlobOutcome, tally: &Tally) {
        count(tally, |t| match how {
            BlobOutcome::Present => t.blobs_present += 1,
            BlobOutcome::Mounted => t.blobs_mounted += 1,
            BlobOutcome::Uploaded | BlobOutcome::Downloaded => {
                t.blobs_uploaded += 1;
                t.bytes_uploaded += d.size;
            }
        });
        if !self.inner.dry_run {
            if how != BlobOutcome::Present {
                self.inner.journal.blob_in(dst, &d.digest);
            }
            self.inner.progress.blob_done(dst, &d.digest, d.size, how);
        }
    }

    /// The first time this run needs the blob in `dst`'s registry: `HEAD`, then mount
    /// from a holder (an earlier run's, or the source repository on the same registry),
    /// else upload.
    async fn first_in_registry(
        &self,
        remote: &Arc<Remote>,
        d: &Descriptor,
        dst: &Repository,
    ) -> Result<BlobOutcome> {
        if !self.repository_unknown(dst).await
            && self.inner.client.head_blob(dst, &d.digest).await? == Presence::Present
        {
            return Ok(BlobOutcome::Present);
        }
        let src = remote.repo();
        let holder = self
            .inner
            .journal
            .holder(dst.registry(), &d.digest)
            .filter(|h| h != dst.name())
            .or_else(|| {
                (src.registry() == dst.registry() && src.name() != dst.name())
                    .then(|| src.name().to_string())
            });
        self.send(remote, d, dst, holder).await
    }

    /// Did the destination lack the repository `dst` when this run first asked?
    /// ([`Mirror::digest_at`], or asked now)
    async fn repository_unknown(&self, dst: &Repository) -> bool {
        *self
            .unknown_cell(dst)
            .get_or_init(|| self.ask_unknown(dst))
            .await
    }

    fn unknown_cell(&self, dst: &Repository) -> Arc<tokio::sync::OnceCell<bool>> {
        self.inner
            .unknown
            .lock()
            .expect("unknown lock")
            .entry(dst.clone())
            .or_default()
            .clone()
    }

    /// Does the destination lack the repository `dst`? (its tag list; no when an
    /// earlier run was filling it, or when the question fails: then blobs and tags are
    /// `HEAD`ed). A yes is told to the journal before anything goes there.
    async fn ask_unknown(&self, dst: &Repository) -> bool {
        let journal = &self.inner.journal;
        if journal.filled_before(dst) {
            return false;
        }
        let unknown = crate::ops::repository_unknown(&self.inner.client, dst)
            .await
            .unwrap_or_else(|e| {
                tracing::debug!(repository = %dst, error = %e, "could not tell whether the repository exists");
                false
            });
        if unknown && !self.inner.dry_run {
            journal.filling(dst);
        }
        unknown
    }

    /// Mount the blob from `holder` when given (uploading when the registry declines),
    /// else upload it, continuing an earlier run's session when the journal has one.
    async fn send(
        &self,
        remote: &Arc<Remote>,
        d: &Descriptor,
        dst: &Repository,
        holder: Option<String>,
    ) -> Result<BlobOutcome> {
        if self.inner.dry_run {
            return Ok(if holder.is_some() {
                BlobOutcome::Mounted
            } else {
                BlobOutcome::Uploaded
            });
        }
        let client = &self.inner.client;
        let mut start = Start::Fresh;
        if let Some(from) = holder {
            match client.mount(dst, &d.digest, &from).await {
                Ok(Mount::Mounted) => return Ok(BlobOutcome::Mounted),
                Ok(Mount::Started(url)) => start = Start::Given(url),
                // A holder that lost the blob, or that this client may not read: upload.
                Err(e) if !e.is_temporary() => {
                    tracing::debug!(digest = %d.digest, from, error = %e, "mount refused; uploading");
                }
                Err(e) => return Err(e),
            }
        }
        if matches!(start, Start::Fresh)
            && let Some(url) = self.inner.journal.open_session(dst, &d.digest)
            && let Ok(url) = Url::parse(&url)
        {
            start = Start::Earlier(url);
        }
        self.upload(remote, d, dst, start).await?;
        Ok(BlobOutcome::Uploaded)
    }

    async fn upload(
        &self,
        remote: &Arc<Remote>,
        d: &Descriptor,
        dst: &Repository,
        start: Start,
    ) -> Result<()> {
        let _permit = self.inner.transfers.acquire().await.expect("never closed");
        let progress = self.inner.progress.clone();
        progress.blob_started(dst, &d.digest, d.size);
        let on_progress: upload::OnProgress = {
            let (repo, digest) = (dst.clone(), d.digest.clone());
            Arc::new(move |done| progress.blob_progress(&repo, &digest, done))
        };
        let sessions = Sessions::default();
        let mut up = Upload::new(
            &self.inner.client,
            dst,
            &d.digest,
            d.size,
            BlobSource::Remote(remote.clone(), Box::new(d.clone())),
        )
        .progress(on_progress)
        .sessions(&sessions);
        // Only a streamed upload has a session worth continuing in a later run.
        if d.size > upload::DEFAULT_MONOLITHIC_MAX {
            let (journal, repo, digest) =
                (self.inner.journal.clone(), dst.clone(), d.digest.clone());
            up = up.on_session(Arc::new(move |u: Option<&Url>| {
                journal.session(&repo, &digest, u.map(Url::as_str));
            }));
        }
        match start {
            Start::Fresh => up.run(None).await,
            Start::Given(url) => {
                let id = sessions.adopt(dst, &url);
                up.run(Some((url, id))).await
            }
            Start::Earlier(url) => up.continue_at(url).await,
        }
    }

    /// Copy the referrers of `subject` (and theirs), and list them under the fallback tag
    /// when `dst` has no referrers API.
    fn referrers_of<'a>(
        &'a self,
        remote: &'a Arc<Remote>,
        subject: Digest,
        dst: &'a Repository,
        depth: usize,
        tally: &'a Tally,
    ) -> Boxed<'a, ()> {
        Box::pin(async move {
            if depth >= MAX_REFERRER_DEPTH {
                tracing::debug!(%subject, "referrers deeper than {MAX_REFERRER_DEPTH} not followed");
                return Ok(());
            }
            let src = remote.repo();
            let list = self.referrers(src, &subject).await?;
            if list.is_empty() {
                return Ok(());
            }
            for r in &list {
                if !self.has_manifest(dst, &r.digest).await? {
                    let m = self
                        .inner
                        .client
                        .get_manifest(src, &r.digest.to_string())
                        .await?;
                    self.put_graph(remote, m, dst, r.digest.to_string(), tally)
                        .await?;
                    count(tally, |t| t.referrers += 1);
                }
            }
            if !self.inner.dry_run && !self.dst_has_api(dst, &subject).await? {
                let lock = self
                    .inner
                    .tags
                    .lock()
                    .expect("tags lock")
                    .entry((dst.clone(), subject.clone()))
                    .or_default()
                    .clone();
                let _one_writer = lock.lock().await;
                if referrers::add_to_tag(&self.inner.client, dst, &subject, &list).await? > 0 {
                    count(tally, |t| t.manifests_put += 1);
                }
            }
            for r in list {
                self.referrers_of(remote, r.digest, dst, depth + 1, tally)
                    .await?;
            }
            Ok(())
        })
    }

    /// Does `dst`'s registry have the referrers API? (known, else asked once)
    async fn dst_has_api(&self, dst: &Repository, subject: &Digest) -> Result<bool> {
        if let Some(k) = self.api_known(dst.registry()) {
            return Ok(k);
        }
        let yes = referrers::by_api(&self.inner.client, dst, subject)
            .await?
            .is_some();
        self.set_api(dst.registry(), yes);
        Ok(yes)
    }
}

/// How an upload starts.
enum Start {
    /// A new session.
    Fresh,
    /// The session the registry opened when it declined a mount.
    Given(Url),
    /// The session an earlier run left.
    Earlier(Url),
}
