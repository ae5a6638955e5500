//! The filesystem backend.
//!
//! ```text
//! ROOT/blobs/<alg>/<hex[..2]>/<hex>                      content, once for all repositories
//! ROOT/repos/<name>/_blobs/<alg>/<hex>                   empty link: the repository sees the blob
//! ROOT/repos/<name>/_manifests/revisions/<alg>/<hex>     link holding the manifest's media type
//! ROOT/repos/<name>/_manifests/tags/<tag>                the digest the tag points at
//! ROOT/repos/<name>/_referrers/<alg>/<subject hex>/<alg>-<hex>   a referrer's descriptor (JSON)
//! ROOT/uploads/<id>/{repo,data}                          upload sessions
//! ROOT/tmp/                                              temp files, renamed into place
//! ROOT/gc-trash/<id>/<path>                              a file garbage collection is removing
//! ```
//! Paths are built only from validated names and digests, so no input reaches outside ROOT.
//! Every file that becomes visible is written to `tmp/`, fsynced and renamed (an upload's
//! `data` is renamed straight into `blobs/`), then its directory is fsynced.
//!
//! File work runs on tokio's blocking threads one bounded step at a time: a blob is read a
//! chunk per step, an upload written a batch of about a MiB per step (one batch written
//! while the next arrives). Between steps a slow client holds no thread, only its buffers.
//!
//! Locking: upload sessions have one lock each, taken by the request writing that session
//! (a second writer is refused rather than queued) and moved along with each step to the
//! blocking thread, so a request that goes away mid-write keeps the session locked until
//! its last step is on disk. Nothing else takes a lock while reading a request body. The
//! only shared map is the session table, locked for a lookup.

mod data;
mod gc;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use hoist_image::{Algorithm, Descriptor, Digest, Hasher};
use tokio::sync::OwnedMutexGuard;
use tokio::task::JoinHandle;

use crate::error::{Error, ErrorKind, Result, is_no_space};
use crate::names::RepoName;
use crate::storage::{
    BlobEntry, BlobRead, ByteStream, Expired, ManifestEntry, ManifestPut, Storage, StoredManifest,
};
use data::{Appender, DataWriter, IO_BUF, hash_file};

/// Bytes of an upload written in one step (the data writer's buffer).
const BATCH: usize = IO_BUF;
/// A partial batch is written when the client pauses this long, so the bytes of a slow
/// client are on disk (and in [`Storage::upload_size`]) as they come.
const FLUSH_IDLE: Duration = Duration::from_millis(10);
/// Bytes of a blob read in one step. A client that stops reading holds what hyper buffered
/// for it (up to about 400 KiB plus a chunk: 650 KiB measured per stalled reader) until the
/// body timeout closes it; 128 KiB chunks with hyper's buffer cut to 64 KiB held a third of
/// that but served 32 readers 13% slower (bench/serve.sh), so the defaults stay.
const READ_CHUNK: usize = 256 << 10;
/// A session directory without its `repo` file (a start that did not complete) is removed
/// once it is this old; at open, whatever its age.
const ORPHAN_AGE: Duration = Duration::from_secs(60);

/// A registry stored in a directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FsStorage {
    fs: Arc<Fs>,
}

#[derive(Debug)]
struct Fs {
    root: PathBuf,
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Session>>>>,
    counter: AtomicU64,
}

/// In-memory state of an upload session: the running sha256 of the data written so far.
/// Lost on restart; then the data file is rehashed once on the next write or commit.
#[derive(Debug, Default)]
struct Session {
    hash: Option<(u64, Hasher)>,
}

/// The lock of one upload session, held by the request writing it.
type SessionLock = OwnedMutexGuard<Session>;

fn io_err(what: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| Error::io(what.display(), e)
}

fn unknown_upload(id: &str) -> Error {
    ErrorKind::UploadUnknown { id: id.to_string() }.into()
}

impl FsStorage {
    /// Open (creating if needed) a registry rooted at `root`. Leftover temp files of an
    /// earlier run are removed, and so are upload sessions whose start never completed;
    /// the other upload sessions are kept so they can resume.
    pub fn open(root: impl Into<PathBuf>) -> Result<FsStorage> {
        let root = root.into();
        for d in ["blobs", "repos", "uploads", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let tmp = root.join("tmp");
        for e in fs::read_dir(&tmp).map_err(io_err(&tmp))?.flatten() {
            let _ = fs::remove_file(e.path());
        }
        let fs = Fs {
            root,
            sessions: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
        };
        fs.expire(None, Duration::ZERO)?;
        gc::restore_trash(&fs.root)?;
        Ok(FsStorage { fs: Arc::new(fs) })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.fs.root
    }

    /// The secret that signs this registry's upload locations, kept in `ROOT/secret`
    /// (32 random bytes, created on first use, readable by the owner only), so a location
    /// stays valid across a restart.
    pub fn secret(&self) -> Result<Vec<u8>> {
        let p = self.fs.root.join("secret");
        match fs::read(&p) {
            Ok(s) if s.len() >= 32 => return Ok(s),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(p.display(), e)),
        }
        let mut secret = vec![0u8; 32];
        aws_lc_rs::rand::fill(&mut secret).expect("the system random generator works");
        let tmp = self
            .fs
            .root
            .join("tmp")
            .join(format!("secret-{}", self.fs.random_id()));
        let res = (|| {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&secret)?;
            f.sync_all()?;
            // Another process may have made one meanwhile: the first one stays.
            match fs::hard_link(&tmp, &p) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(e),
            }
        })();
        let _ = fs::remove_file(&tmp);
        res.map_err(io_err(&p))?;
        fs::read(&p).map_err(io_err(&p))
    }

    /// Run `f` on a blocking thread.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Fs) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let fs = self.fs.clone();
        tokio::task::spawn_blocking(move || f(&fs))
            .await
            .unwrap_or_else(|e| Err(Error::io("storage task", io::Error::other(e))))
    }

    /// The session's directory and its lock (UploadBusy when another request holds it).
    async fn lock(&self, repo: &RepoName, id: &str) -> Result<(PathBuf, SessionLock)> {
        let (r, i) = (repo.clone(), id.to_string());
        let dir = self.run(move |fs| fs.upload_dir(&r, &i)).await?;
        let lock = self
            .fs
            .session(id)
            .try_lock_owned()
            .map_err(|_| ErrorKind::UploadBusy { id: id.to_string() })?;
        Ok((dir, lock))
    }
}

impl Fs {
    fn random_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let t = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let mut h = Hasher::sha256();
        h.update(format!("{t}:{n}:{}:{:p}", std::process::id(), &n).as_bytes());
        h.finish().hex()[..32].to_string()
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(&d.hex()[..2])
            .join(d.hex())
    }

    fn repo_dir(&self, repo: &RepoName) -> PathBuf {
        let mut p = self.root.join("repos");
        p.extend(repo.components());
        p
    }

    fn link_path(&self, repo: &RepoName, d: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_blobs")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    fn revision_path(&self, repo: &RepoName, d: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_manifests/revisions")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    fn tags_dir(&self, repo: &RepoName) -> PathBuf {
        self.repo_dir(repo).join("_manifests/tags")
    }

    fn referrers_dir(&self, repo: &RepoName, subject: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_referrers")
            .join(subject.algorithm().as_str())
            .join(subject.hex())
    }

    fn referrer_file(d: &Digest) -> String {
        format!("{}-{}", d.algorithm().as_str(), d.hex())
    }

    fn upload_dir(&self, repo: &RepoName, id: &str) -> Result<PathBuf> {
        if !is_session_id(id) {
            return Err(unknown_upload(id));
        }
        let dir = self.root.join("uploads").join(id);
        match fs::read_to_string(dir.join("repo")) {
            Ok(r) if r == repo.as_str() => Ok(dir),
            Ok(_) => Err(unknown_upload(id)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(unknown_upload(id)),
            Err(e) => Err(Error::io(dir.display(), e)),
        }
    }

    fn session(&self, id: &str) -> Arc<tokio::sync::Mutex<Session>> {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(id.to_string()).or_default().clone()
    }

    fn forget_session(&self, id: &str) {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(id);
    }

    /// Remove an upload session's directory (its `repo` file first: from then on the
    /// session is unknown) and forget it; returns the bytes its data held.
    fn discard(&self, dir: &Path, id: &str) -> Result<u64> {
        let size = fs::metadata(dir.join("data")).map_or(0, |m| m.len());
        let _ = fs::remove_file(dir.join("repo"));
        match fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(dir.display(), e)),
        }
        self.forget_session(id);
        Ok(size)
    }

    /// Write `bytes` to `path` atomically: temp file, fsync, rename, fsync the directory.
    fn atomic_write(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.root.join("tmp").join(self.random_id());
        let res = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            install(&tmp, path)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.map_err(io_err(path))
    }

    /// Make the blob visible in `repo` (an empty link file).
    fn link(&self, repo: &RepoName, d: &Digest) -> Result<()> {
        let p = self.link_path(repo, d);
        if p.exists() {
            return Ok(());
        }
        self.atomic_write(&p, b"")
    }

    /// Remove the upload sessions whose data nobody wrote for longer than `idle` (`None`:
    /// keep them all), and the directories of starts that never completed once they are
    /// `orphan_age` old. A session whose lock is held (being written) is left alone.
    fn expire(&self, idle: Option<Duration>, orphan_age: Duration) -> Result<Expired> {
        let uploads = self.root.join("uploads");
        let now = SystemTime::now();
        let mut out = Expired::default();
        for e in fs::read_dir(&uploads).map_err(io_err(&uploads))? {
            let e = e.map_err(io_err(&uploads))?;
            let Some(id) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !is_session_id(&id) {
                continue;
            }
            let dir = e.path();
            // A request writing the session holds its lock: leave it. One that has not
            // taken it yet finds the session gone (UploadUnknown) if it expires here.
            let existing = {
                let map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
                map.get(&id).cloned()
            };
            let lock = match existing.map(|s| s.try_lock_owned()) {
                Some(Err(_)) => continue,
                Some(Ok(lock)) => Some(lock),
                None => None,
            };
            let started = dir.join("repo").exists();
            // The data file's mtime is its last write; a start without one is as old as
            // its directory.
            let written = fs::metadata(dir.join("data"))
                .or_else(|_| fs::metadata(&dir))
                .and_then(|m| m.modified());
            let age = written
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
            let expired = match (started, idle) {
                (true, Some(idle)) => age > idle,
                (true, None) => false,
                (false, _) => age >= orphan_age,
            };
            if expired {
                out.bytes += self.discard(&dir, &id)?;
                out.sessions += 1;
                tracing::info!(upload = %id, age_s = age.as_secs(), started, "upload session expired");
            }
            drop(lock);
        }
        Ok(out)
    }

    fn upload_start(&self, repo: &RepoName) -> Result<String> {
        let id = self.random_id();
        let dir = self.root.join("uploads").join(&id);
        let res = (|| {
            fs::create_dir_all(&dir)?;
            File::create(dir.join("data"))?;
            // The repo file last: a session exists once it names its repository.
            let tmp = dir.join("repo.tmp");
            fs::write(&tmp, repo.as_str())?;
            fs::rename(&tmp, dir.join("repo"))
        })();
        if let Err(e) = res {
            let _ = fs::remove_dir_all(&dir);
            return Err(Error::io(dir.display(), e));
        }
        Ok(id)
    }

    /// Open the session's data to append, checking `start` against what it holds.
    fn append_open(
        &self,
        dir: &Path,
        id: &str,
        start: Option<u64>,
        mut lock: SessionLock,
    ) -> Result<Append> {
        let p = dir.join("data");
        let f = match OpenOptions::new().write(true).open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(unknown_upload(id)),
            Err(e) => return Err(Error::io(p.display(), e)),
        };
        let len = f.metadata().map_err(io_err(&p))?.len();
        if let Some(start) = start.filter(|&s| s != len) {
            return Err(ErrorKind::OffsetMismatch {
                id: id.to_string(),
                start,
                received: len,
            }
            .into());
        }
        let hasher = match lock.hash.take() {
            Some((off, h)) if off == len => h,
            _ => hash_file(&p, len, Algorithm::Sha256).map_err(io_err(&p))?,
        };
        let writer = DataWriter::new(f, &p, len).map_err(io_err(&p))?;
        Ok(Append {
            app: Appender { writer, hasher },
            lock,
        })
    }

    fn commit(
        &self,
        repo: &RepoName,
        dir: &Path,
        id: &str,
        digest: &Digest,
        mut lock: SessionLock,
    ) -> Result<u64> {
        let p = dir.join("data");
        let f = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(unknown_upload(id)),
            Err(e) => return Err(Error::io(p.display(), e)),
        };
        let len = f.metadata().map_err(io_err(&p))?.len();
        let hasher = match lock.hash.take() {
            Some((off, h)) if off == len && digest.algorithm() == Algorithm::Sha256 => h,
            _ => hash_file(&p, len, digest.algorithm()).map_err(io_err(&p))?,
        };
        let actual = hasher.finish();
        if &actual != digest {
            self.discard(dir, id)?;
            drop(lock);
            return Err(ErrorKind::DigestMismatch {
                id: id.to_string(),
                expected: digest.clone(),
                actual,
                size: len,
            }
            .into());
        }
        let blob = self.blob_path(digest);
        // Stored already: touched, so a collection running now keeps it.
        if !self.touch(&blob)? {
            let installed = f
                .sync_all()
                .map_err(io_err(&p))
                .and_then(|()| install(&p, &blob).map_err(io_err(&blob)));
            if let Err(e) = installed {
                if e.is_no_space() {
                    // Its space back at once: the client starts over once there is room.
                    self.discard(dir, id)?;
                }
                return Err(e);
            }
        }
        self.link(repo, digest)?;
        self.discard(dir, id)?;
        drop(lock);
        Ok(len)
    }

    fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        let link = self.link_path(repo, digest);
        if !link.exists() {
            return Ok(None);
        }
        let p = self.blob_path(digest);
        Ok(not_found_is_none(fs::metadata(&p))
            .map_err(io_err(&p))?
            .map(|m| m.len()))
    }

    fn blob_open(&self, repo: &RepoName, digest: &Digest) -> Result<Option<(File, u64)>> {
        if !self.link_path(repo, digest).exists() {
            return Ok(None);
        }
        let p = self.blob_path(digest);
        let Some(f) = not_found_is_none(File::open(&p)).map_err(io_err(&p))? else {
            return Ok(None);
        };
        let size = f.metadata().map_err(io_err(&p))?.len();
        Ok(Some((f, size)))
    }

    fn blob_mount(&self, from: &RepoName, to: &RepoName, digest: &Digest) -> Result<bool> {
        if !self.link_path(from, digest).exists() || !self.touch(&self.blob_path(digest))? {
            return Ok(false);
        }
        self.link(to, digest)?;
        Ok(true)
    }

    fn blob_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let p = self.link_path(repo, digest);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ErrorKind::BlobUnknown {
                repo: repo.to_string(),
                digest: digest.clone(),
            }
            .into()),
            Err(e) => Err(Error::io(p.display(), e)),
        }
    }

    fn upload_size(&self, repo: &RepoName, id: &str) -> Result<u64> {
        let dir = self.upload_dir(repo, id)?;
        let p = dir.join("data");
        match fs::metadata(&p) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(unknown_upload(id)),
            Err(e) => Err(Error::io(p.display(), e)),
        }
    }

    fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<()> {
        let dir = self.upload_dir(repo, id)?;
        self.discard(&dir, id)?;
        Ok(())
    }

    fn manifest_put(&self, repo: &RepoName, put: &ManifestPut) -> Result<()> {
        let blob = self.blob_path(&put.digest);
        if !self.touch(&blob)? {
            self.atomic_write(&blob, &put.raw)?;
        }
        if let Some((subject, desc)) = &put.referrer {
            let p = self
                .referrers_dir(repo, subject)
                .join(Self::referrer_file(&put.digest));
            let json = serde_json::to_vec(desc).expect("descriptor serializes");
            self.atomic_write(&p, &json)?;
        }
        self.atomic_write(
            &self.revision_path(repo, &put.digest),
            put.media_type.as_bytes(),
        )?;
        for tag in &put.tags {
            self.atomic_write(
                &self.tags_dir(repo).join(tag),
                put.digest.to_string().as_bytes(),
            )?;
        }
        Ok(())
    }

    fn tag_resolve(&self, repo: &RepoName, tag: &str) -> Result<Option<Digest>> {
        let p = self.tags_dir(repo).join(tag);
        let Some(s) = not_found_is_none(fs::read_to_string(&p)).map_err(io_err(&p))? else {
            return Ok(None);
        };
        Digest::parse(s.trim()).map(Some).map_err(|e| {
            ErrorKind::Corrupt {
                what: p.display().to_string(),
                message: e.to_string(),
            }
            .into()
        })
    }

    fn manifest_get(&self, repo: &RepoName, digest: &Digest) -> Result<Option<StoredManifest>> {
        let rev = self.revision_path(repo, digest);
        let Some(media_type) = not_found_is_none(fs::read_to_string(&rev)).map_err(io_err(&rev))?
        else {
            return Ok(None);
        };
        let p = self.blob_path(digest);
        let Some(raw) = not_found_is_none(fs::read(&p)).map_err(io_err(&p))? else {
            return Ok(None);
        };
        Ok(Some(StoredManifest {
            digest: digest.clone(),
            media_type,
            raw: Bytes::from(raw),
        }))
    }

    fn manifest_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let unknown = || -> Error {
            ErrorKind::ManifestUnknown {
                repo: repo.to_string(),
                what: format!("manifest {digest}"),
            }
            .into()
        };
        let Some(m) = self.manifest_get(repo, digest)? else {
            return Err(unknown());
        };
        let rev = self.revision_path(repo, digest);
        match fs::remove_file(&rev) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(unknown()),
            Err(e) => return Err(Error::io(rev.display(), e)),
        }
        // Tags pointing at it.
        let tags = self.tags_dir(repo);
        if let Some(rd) = not_found_is_none(fs::read_dir(&tags)).map_err(io_err(&tags))? {
            for e in rd.flatten() {
                if fs::read_to_string(e.path()).is_ok_and(|s| s.trim() == digest.to_string()) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        // Its referrer entry.
        #[derive(serde::Deserialize)]
        struct Subject {
            subject: Option<Descriptor>,
        }
        if let Ok(Subject {
            subject: Some(subject),
        }) = serde_json::from_slice::<Subject>(&m.raw)
        {
            let p = self
                .referrers_dir(repo, &subject.digest)
                .join(Self::referrer_file(digest));
            let _ = fs::remove_file(p);
        }
        Ok(())
    }

    fn tag_delete(&self, repo: &RepoName, tag: &str) -> Result<()> {
        let p = self.tags_dir(repo).join(tag);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ErrorKind::ManifestUnknown {
                repo: repo.to_string(),
                what: format!("tag {}", hoist_image::quote(tag)),
            }
            .into()),
            Err(e) => Err(Error::io(p.display(), e)),
        }
    }

    fn tags(&self, repo: &RepoName) -> Result<Option<Vec<String>>> {
        let dir = self.repo_dir(repo);
        if !dir.join("_blobs").exists() && !dir.join("_manifests").exists() {
            return Ok(None);
        }
        let tags = self.tags_dir(repo);
        let mut out = Vec::new();
        if let Some(rd) = not_found_is_none(fs::read_dir(&tags)).map_err(io_err(&tags))? {
            for e in rd {
                let e = e.map_err(io_err(&tags))?;
                if let Some(name) = e.file_name().to_str() {
                    out.push(name.to_string());
                }
            }
        }
        out.sort();
        Ok(Some(out))
    }

    fn repositories(&self) -> Result<Vec<String>> {
        fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
            for e in fs::read_dir(dir)? {
                let e = e?;
                if !e.file_type()?.is_dir() {
                    continue;
                }
                let Some(name) = e.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if name.starts_with('_') {
                    continue;
                }
                let full = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                let p = e.path();
                if p.join("_blobs").exists() || p.join("_manifests").exists() {
                    out.push(full.clone());
                }
                walk(&p, &full, out)?;
            }
            Ok(())
        }
        let mut out = Vec::new();
        let repos = self.root.join("repos");
        walk(&repos, "", &mut out).map_err(io_err(&repos))?;
        out.sort();
        Ok(out)
    }

    /// A sentinel file in `tmp/`, written, read back and removed: the file system is
    /// mounted, writable and not full.
    fn probe(&self) -> Result<()> {
        let p = self
            .root
            .join("tmp")
            .join(format!("probe-{}", self.random_id()));
        let sentinel = self.random_id();
        let res = fs::write(&p, &sentinel).and_then(|()| fs::read(&p));
        let _ = fs::remove_file(&p);
        match res {
            Ok(back) if back == sentinel.as_bytes() => Ok(()),
            Ok(_) => Err(ErrorKind::Corrupt {
                what: p.display().to_string(),
                message: "read back other bytes than written".into(),
            }
            .into()),
            Err(e) => Err(Error::io(p.display(), e)),
        }
    }

    fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Descriptor>> {
        let dir = self.referrers_dir(repo, subject);
        let mut out = Vec::new();
        let Some(rd) = not_found_is_none(fs::read_dir(&dir)).map_err(io_err(&dir))? else {
            return Ok(out);
        };
        for e in rd.flatten() {
            let Ok(bytes) = fs::read(e.path()) else {
                continue;
            };
            let Ok(desc) = serde_json::from_slice::<Descriptor>(&bytes) else {
                continue;
            };
            // Listed only once the manifest itself is committed.
            if self.revision_path(repo, &desc.digest).exists() {
                out.push(desc);
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }
}

/// Whether `id` looks like a session id this backend made (32 lower-case hex digits).
fn is_session_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Rename `tmp` to `path` (creating parents) and fsync the directory.
fn install(tmp: &Path, path: &Path) -> io::Result<()> {
    let parent = path.parent().expect("storage paths have parents");
    fs::create_dir_all(parent)?;
    fs::rename(tmp, path)?;
    File::open(parent)?.sync_all()
}

fn not_found_is_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// An append with its session's lock: the two travel together to each blocking step.
struct Append {
    app: Appender,
    lock: SessionLock,
}

/// An upload's batches on their way to disk: one batch written on a blocking thread while
/// the next one is gathered from the request.
struct Pipeline {
    idle: Option<Append>,
    writing: Option<JoinHandle<(Append, io::Result<()>)>>,
}

impl Pipeline {
    /// Wait for the batch being written; the append is then idle again.
    async fn wait(&mut self) -> io::Result<()> {
        let Some(task) = self.writing.take() else {
            return Ok(());
        };
        let (append, res) = task.await.map_err(io::Error::other)?;
        self.idle = Some(append);
        res
    }

    /// Start writing `batch` (with `pause`, then make all of it visible in the file).
    async fn submit(&mut self, batch: Vec<Bytes>, pause: bool) -> io::Result<()> {
        self.wait().await?;
        let mut append = self.idle.take().expect("an append is idle after wait");
        self.writing = Some(tokio::task::spawn_blocking(move || {
            let res = append.app.write(&batch, pause);
            (append, res)
        }));
        Ok(())
    }

    /// Write out what is buffered; returns the append, its offset final.
    async fn finish(mut self) -> io::Result<Append> {
        self.wait().await?;
        let mut append = self.idle.take().expect("an append is idle after wait");
        tokio::task::spawn_blocking(move || {
            append.app.writer.finish()?;
            Ok(append)
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// How an append's body ended.
enum BodyEnd {
    Complete,
    Failed(io::Error),
}

/// Feed `body` into `pipe` in batches of about [`BATCH`] bytes, a partial batch whenever the
/// client pauses for [`FLUSH_IDLE`]. Frames are not copied; a batch is a list of them.
async fn pump(pipe: &mut Pipeline, body: &mut ByteStream) -> io::Result<BodyEnd> {
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batched = 0usize;
    loop {
        let next = if batch.is_empty() {
            body.next().await
        } else {
            match tokio::time::timeout(FLUSH_IDLE, body.next()).await {
                Ok(next) => next,
                Err(_) => {
                    batched = 0;
                    pipe.submit(std::mem::take(&mut batch), true).await?;
                    continue;
                }
            }
        };
        match next {
            Some(Ok(b)) => {
                batched += b.len();
                batch.push(b);
                if batched >= BATCH {
                    batched = 0;
                    pipe.submit(std::mem::take(&mut batch), false).await?;
                }
            }
            Some(Err(e)) => {
                pipe.submit(batch, false).await?;
                return Ok(BodyEnd::Failed(e));
            }
            None => {
                pipe.submit(batch, false).await?;
                return Ok(BodyEnd::Complete);
            }
        }
    }
}

/// A blob's bytes from `start` for `len`, read a [`READ_CHUNK`] at a time on a blocking
/// thread as the stream is polled.
fn read_stream(file: File, start: u64, len: u64) -> ByteStream {
    let file = Arc::new(file);
    let end = start + len;
    Box::pin(futures_util::stream::unfold(start, move |pos| {
        let file = file.clone();
        async move {
            if pos >= end {
                return None;
            }
            let n = (end - pos).min(READ_CHUNK as u64) as usize;
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; n];
                file.read_exact_at(&mut buf, pos).map(|()| Bytes::from(buf))
            })
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)));
            Some(match read {
                Ok(b) => (Ok(b), pos + n as u64),
                Err(e) => (Err(e), end),
            })
        }
    }))
}

#[async_trait::async_trait]
impl Storage for FsStorage {
    async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        let (r, d) = (repo.clone(), digest.clone());
        self.run(move |fs| fs.blob_size(&r, &d)).await
    }

    async fn blob_read(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<(u64, u64)>,
    ) -> Result<Option<BlobRead>> {
        let (r, d) = (repo.clone(), digest.clone());
        let Some((file, size)) = self.run(move |fs| fs.blob_open(&r, &d)).await? else {
            return Ok(None);
        };
        let (start, len) = range.unwrap_or((0, size));
        let len = len.min(size.saturating_sub(start));
        Ok(Some(BlobRead {
            body: read_stream(file, start, len),
            size,
        }))
    }

    async fn blob_mount(&self, from: &RepoName, to: &RepoName, digest: &Digest) -> Result<bool> {
        let (f, t, d) = (from.clone(), to.clone(), digest.clone());
        self.run(move |fs| fs.blob_mount(&f, &t, &d)).await
    }

    async fn blob_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let (r, d) = (repo.clone(), digest.clone());
        self.run(move |fs| fs.blob_delete(&r, &d)).await
    }

    async fn upload_start(&self, repo: &RepoName) -> Result<String> {
        let r = repo.clone();
        self.run(move |fs| fs.upload_start(&r)).await
    }

    async fn upload_size(&self, repo: &RepoName, id: &str) -> Result<u64> {
        let (r, i) = (repo.clone(), id.to_string());
        self.run(move |fs| fs.upload_size(&r, &i)).await
    }

    async fn upload_append(
        &self,
        repo: &RepoName,
        id: &str,
        start: Option<u64>,
        mut body: ByteStream,
    ) -> Result<u64> {
        let (dir, lock) = self.lock(repo, id).await?;
        let (d, i) = (dir.clone(), id.to_string());
        let append = self
            .run(move |fs| fs.append_open(&d, &i, start, lock))
            .await?;
        let mut pipe = Pipeline {
            idle: Some(append),
            writing: None,
        };
        let data = dir.join("data");
        let pumped = pump(&mut pipe, &mut body).await;
        let finished = match pumped {
            Ok(end) => pipe.finish().await.map(|a| (a, end)),
            Err(e) => Err(e),
        };
        let (append, end) = match finished {
            Ok(v) => v,
            Err(e) => {
                // The file may hold part of a batch the hash does not cover: the session
                // is rehashed on its next write. A full disk discards the session, so its
                // space is free at once.
                if is_no_space(&e) {
                    let (d, i) = (dir.clone(), id.to_string());
                    self.run(move |fs| fs.discard(&d, &i)).await?;
                }
                return Err(Error::io(data.display(), e));
            }
        };
        let Append { app, mut lock } = append;
        let received = app.writer.offset;
        lock.hash = Some((received, app.hasher));
        match end {
            BodyEnd::Complete => Ok(received),
            BodyEnd::Failed(source) => Err(ErrorKind::BodyFailed {
                id: id.to_string(),
                received,
                source,
            }
            .into()),
        }
    }

    async fn upload_commit(&self, repo: &RepoName, id: &str, digest: &Digest) -> Result<u64> {
        let (dir, lock) = self.lock(repo, id).await?;
        let (r, i, d) = (repo.clone(), id.to_string(), digest.clone());
        self.run(move |fs| fs.commit(&r, &dir, &i, &d, lock)).await
    }

    async fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<()> {
        let (r, i) = (repo.clone(), id.to_string());
        self.run(move |fs| fs.upload_cancel(&r, &i)).await
    }

    async fn uploads_expire(&self, idle: Duration) -> Result<Expired> {
        self.run(move |fs| fs.expire(Some(idle), ORPHAN_AGE.min(idle)))
            .await
    }

    async fn manifest_put(&self, repo: &RepoName, put: ManifestPut) -> Result<()> {
        let r = repo.clone();
        self.run(move |fs| fs.manifest_put(&r, &put)).await
    }

    async fn tag_resolve(&self, repo: &RepoName, tag: &str) -> Result<Option<Digest>> {
        let (r, t) = (repo.clone(), tag.to_string());
        self.run(move |fs| fs.tag_resolve(&r, &t)).await
    }

    async fn manifest_get(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>> {
        let (r, d) = (repo.clone(), digest.clone());
        self.run(move |fs| fs.manifest_get(&r, &d)).await
    }

    async fn manifest_exists(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let (r, d) = (repo.clone(), digest.clone());
        self.run(move |fs| Ok(fs.revision_path(&r, &d).exists()))
            .await
    }

    async fn manifest_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let (r, d) = (repo.clone(), digest.clone());
        self.run(move |fs| fs.manifest_delete(&r, &d)).await
    }

    async fn tag_delete(&self, repo: &RepoName, tag: &str) -> Result<()> {
        let (r, t) = (repo.clone(), tag.to_string());
        self.run(move |fs| fs.tag_delete(&r, &t)).await
    }

    async fn tags(&self, repo: &RepoName) -> Result<Option<Vec<String>>> {
        let r = repo.clone();
        self.run(move |fs| fs.tags(&r)).await
    }

    async fn repositories(&self) -> Result<Vec<String>> {
        self.run(|fs| fs.repositories()).await
    }

    async fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Descriptor>> {
        let (r, s) = (repo.clone(), subject.clone());
        self.run(move |fs| fs.referrers(&r, &s)).await
    }

    async fn probe(&self) -> Result<()> {
        self.run(|fs| fs.probe()).await
    }

    async fn blobs(&self) -> Result<Vec<BlobEntry>> {
        self.run(|fs| fs.blobs()).await
    }

    async fn manifests(&self, repo: &RepoName) -> Result<Vec<ManifestEntry>> {
        let r = repo.clone();
        self.run(move |fs| fs.manifests(&r)).await
    }

    async fn blob_touch(&self, digest: &Digest) -> Result<bool> {
        let d = digest.clone();
        self.run(move |fs| fs.touch(&fs.blob_path(&d))).await
    }

    async fn manifest_touch(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let (r, d) = (repo.clone(), digest.clone());
        self.run(move |fs| fs.touch(&fs.revision_path(&r, &d)))
            .await
    }

    async fn blob_remove(&self, digest: &Digest, cutoff: SystemTime) -> Result<Option<u64>> {
        let d = digest.clone();
        self.run(move |fs| fs.blob_remove(&d, cutoff)).await
    }

    async fn manifest_remove(
        &self,
        repo: &RepoName,
        digest: &Digest,
        cutoff: SystemTime,
    ) -> Result<bool> {
        let (r, d) = (repo.clone(), digest.clone());
        self.run(move |fs| fs.manifest_remove(&r, &d, cutoff)).await
    }
}
