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
//! ```
//! Paths are built only from validated names and digests, so no input reaches outside ROOT.
//! Every file that becomes visible is written to `tmp/`, fsynced and renamed (an upload's
//! `data` is renamed straight into `blobs/`), then its directory is fsynced.
//!
//! Locking: upload sessions have one lock each, taken by the request writing that session
//! (a second writer is refused rather than queued); nothing else takes a lock while reading
//! a request body. The only shared map is the session table, locked for a lookup.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use axum::http::{StatusCode, header};
use bytes::Bytes;
use hoist_image::{Algorithm, Descriptor, Digest, Hasher};

use crate::error::{Code, Error, Result};
use crate::names::RepoName;
use crate::storage::{BlobReader, BodyBlocks, ManifestPut, Storage, StoredManifest};

/// Read/write buffer for blob bodies.
const IO_BUF: usize = 1 << 20;

/// A registry stored in a directory.
#[derive(Debug)]
pub struct FsStorage {
    root: PathBuf,
    sessions: Mutex<HashMap<String, Arc<Mutex<Session>>>>,
    counter: AtomicU64,
}

/// In-memory state of an upload session: the running sha256 of the data written so far.
/// Lost on restart; then the data file is rehashed once on the next write or commit.
#[derive(Debug, Default)]
struct Session {
    hash: Option<(u64, Hasher)>,
}

fn io_err(what: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| Error::io(what.display(), e)
}

/// Takes the lock of upload session `id` without waiting: a poisoned lock is taken as it
/// is, and a session another request is writing to is refused with 409 Conflict instead
/// of queueing behind it.
fn lock_session<'a>(session: &'a Mutex<Session>, id: &str) -> Result<MutexGuard<'a, Session>> {
    match session.try_lock() {
        Ok(g) => Ok(g),
        Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
        Err(TryLockError::WouldBlock) => Err(Error::new(
            Code::BlobUploadInvalid,
            format!("upload {id}: another request is writing to it"),
        )
        .with_status(StatusCode::CONFLICT)),
    }
}

impl FsStorage {
    /// Open (creating if needed) a registry rooted at `root`. Leftover temp files of an
    /// earlier run are removed; upload sessions are kept so they can resume.
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
        Ok(FsStorage {
            root,
            sessions: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn random_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
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
        let unknown = || {
            Error::new(
                Code::BlobUploadUnknown,
                format!("upload {} is not known", hoist_image::quote(id)),
            )
        };
        if id.len() != 32 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(unknown());
        }
        let dir = self.root.join("uploads").join(id);
        match fs::read_to_string(dir.join("repo")) {
            Ok(r) if r == repo.as_str() => Ok(dir),
            Ok(_) => Err(unknown()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(unknown()),
            Err(e) => Err(Error::io(dir.display(), e)),
        }
    }

    fn session(&self, id: &str) -> Arc<Mutex<Session>> {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(id.to_string()).or_default().clone()
    }

    fn forget_session(&self, id: &str) {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(id);
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
}

/// Rename `tmp` to `path` (creating parents) and fsync the directory.
fn install(tmp: &Path, path: &Path) -> io::Result<()> {
    let parent = path.parent().expect("storage paths have parents");
    fs::create_dir_all(parent)?;
    fs::rename(tmp, path)?;
    File::open(parent)?.sync_all()
}

/// Hash the first `len` bytes of `path`.
fn hash_file(path: &Path, len: u64, alg: Algorithm) -> io::Result<Hasher> {
    let mut f = File::open(path)?.take(len);
    let mut h = alg.hasher();
    let mut buf = vec![0u8; IO_BUF];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h)
}

/// O_DIRECT needs buffers, lengths and file offsets aligned to the device's logical block
/// size; 4 KiB covers every common one.
const DIRECT_ALIGN: usize = 4096;

/// Appends an upload's bytes to its data file at `offset`.
///
/// Bytes are gathered into one aligned [`IO_BUF`] buffer, reused for the whole request, and
/// written a buffer at a time with O_DIRECT where the file system allows it: the data goes
/// from that buffer to the disk without a copy into the page cache (which, for a blob that
/// is written once and read later, costs CPU for nothing: page allocation, the copy, dirty
/// tracking, writeback). What is not a whole number of blocks at the end (or all of it when
/// the file does not end on a block boundary, or O_DIRECT is refused) is written normally.
/// The commit's fsync still makes the blob durable.
struct DataWriter {
    /// Positioned at `offset` when `direct` is `None`.
    file: File,
    /// Positioned at `offset` when there.
    direct: Option<File>,
    buf: Vec<u8>,
    /// Where the aligned part of `buf` starts.
    start: usize,
    /// Bytes waiting in the buffer.
    filled: usize,
    /// File offset of the buffer's first byte: bytes written so far.
    offset: u64,
}

impl DataWriter {
    fn new(mut file: File, path: &Path, offset: u64) -> io::Result<DataWriter> {
        let mut direct = if offset % DIRECT_ALIGN as u64 == 0 {
            open_direct(path)
        } else {
            None
        };
        match &mut direct {
            Some(d) => d.seek(SeekFrom::Start(offset))?,
            None => file.seek(SeekFrom::Start(offset))?,
        };
        let mut buf = Vec::new();
        let mut start = 0;
        if direct.is_some() {
            buf = vec![0u8; IO_BUF + DIRECT_ALIGN];
            start = buf.as_ptr().align_offset(DIRECT_ALIGN);
        }
        Ok(DataWriter {
            file,
            direct,
            buf,
            start,
            filled: 0,
            offset,
        })
    }

    fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.direct.is_none() {
                // Plain writes (from the start, or since a refused direct write, which
                // wrote out everything buffered).
                self.file.write_all(data)?;
                self.offset += data.len() as u64;
                return Ok(());
            }
            let n = data.len().min(IO_BUF - self.filled);
            let at = self.start + self.filled;
            self.buf[at..at + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == IO_BUF {
                self.flush_direct(IO_BUF)?;
            }
        }
        Ok(())
    }

    /// Write the first `n` (aligned) buffered bytes with O_DIRECT.
    fn flush_direct(&mut self, n: usize) -> io::Result<()> {
        let Some(d) = &mut self.direct else {
            return Ok(());
        };
        match d.write_all(&self.buf[self.start..self.start + n]) {
            Ok(()) => {
                self.offset += n as u64;
                self.buf
                    .copy_within(self.start + n..self.start + self.filled, self.start);
                self.filled -= n;
            }
            // A file system that takes the O_DIRECT open but not the write (an alignment
            // it does not support): plain writes from here on, starting with everything
            // buffered (a partial direct write is overwritten).
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(error = %e, "O_DIRECT write refused; using plain writes");
                self.direct = None;
                self.file.seek(SeekFrom::Start(self.offset))?;
                self.file
                    .write_all(&self.buf[self.start..self.start + self.filled])?;
                self.offset += self.filled as u64;
                self.filled = 0;
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Make every byte received so far visible in the file (the client paused) without giving
    /// up alignment: whole blocks go out with O_DIRECT; the rest is written normally but stays
    /// buffered, to be written again, aligned, with what follows.
    fn show(&mut self) -> io::Result<()> {
        let whole = self.filled / DIRECT_ALIGN * DIRECT_ALIGN;
        if whole > 0 {
            self.flush_direct(whole)?;
        }
        // Only direct mode buffers: with plain writes `filled` stays 0.
        if self.filled > 0 {
            let (a, b) = (self.start, self.start + self.filled);
            self.file.seek(SeekFrom::Start(self.offset))?;
            self.file.write_all(&self.buf[a..b])?;
        }
        Ok(())
    }

    /// Write out what is buffered: as [`DataWriter::show`], and the tail written there is
    /// final.
    fn finish(&mut self) -> io::Result<()> {
        self.show()?;
        self.offset += self.filled as u64;
        self.filled = 0;
        Ok(())
    }
}

/// `path` opened for writing with O_DIRECT, or `None` where that is refused (tmpfs, for one)
/// or not a thing (outside Linux).
fn open_direct(path: &Path) -> Option<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        None
    }
}

fn not_found_is_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The `Range` header value for `size` bytes received (`0-0` when none, as distribution does).
pub(crate) fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

impl Storage for FsStorage {
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

    fn blob_read(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<(u64, u64)>,
    ) -> Result<Option<BlobReader>> {
        if !self.link_path(repo, digest).exists() {
            return Ok(None);
        }
        let p = self.blob_path(digest);
        let Some(mut f) = not_found_is_none(File::open(&p)).map_err(io_err(&p))? else {
            return Ok(None);
        };
        let size = f.metadata().map_err(io_err(&p))?.len();
        let reader: Box<dyn Read + Send> = match range {
            Some((start, len)) => {
                f.seek(SeekFrom::Start(start)).map_err(io_err(&p))?;
                Box::new(f.take(len))
            }
            None => Box::new(f),
        };
        Ok(Some(BlobReader { reader, size }))
    }

    fn blob_mount(&self, from: Option<&RepoName>, to: &RepoName, digest: &Digest) -> Result<bool> {
        let visible = match from {
            Some(from) => self.link_path(from, digest).exists(),
            None => true,
        };
        if !visible || !self.blob_path(digest).exists() {
            return Ok(false);
        }
        self.link(to, digest)?;
        Ok(true)
    }

    fn blob_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let p = self.link_path(repo, digest);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::new(
                Code::BlobUnknown,
                format!("blob {digest} is not known to {repo}"),
            )),
            Err(e) => Err(Error::io(p.display(), e)),
        }
    }

    fn upload_start(&self, repo: &RepoName) -> Result<String> {
        let id = self.random_id();
        let dir = self.root.join("uploads").join(&id);
        (|| {
            fs::create_dir_all(&dir)?;
            File::create(dir.join("data"))?;
            // The repo file last: a session exists once it names its repository.
            let tmp = dir.join("repo.tmp");
            fs::write(&tmp, repo.as_str())?;
            fs::rename(&tmp, dir.join("repo"))
        })()
        .map_err(io_err(&dir))?;
        Ok(id)
    }

    fn upload_size(&self, repo: &RepoName, id: &str) -> Result<u64> {
        let dir = self.upload_dir(repo, id)?;
        let p = dir.join("data");
        Ok(fs::metadata(&p).map_err(io_err(&p))?.len())
    }

    fn upload_append(
        &self,
        repo: &RepoName,
        id: &str,
        start: Option<u64>,
        body: BodyBlocks<'_>,
    ) -> Result<u64> {
        let dir = self.upload_dir(repo, id)?;
        let session = self.session(id);
        let mut st = lock_session(&session, id)?;
        let p = dir.join("data");
        let f = OpenOptions::new()
            .write(true)
            .open(&p)
            .map_err(io_err(&p))?;
        let len = f.metadata().map_err(io_err(&p))?.len();
        if start.is_some_and(|s| s != len) {
            let start = start.unwrap_or_default();
            return Err(Error::new(
                Code::BlobUploadInvalid,
                format!("upload {id}: chunk starts at {start}, but {len} bytes were received"),
            )
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
            .with_header(header::RANGE, &range_header(len)));
        }
        let mut hasher = match st.hash.take() {
            Some((off, h)) if off == len => h,
            _ => hash_file(&p, len, Algorithm::Sha256).map_err(io_err(&p))?,
        };
        let mut w = DataWriter::new(f, &p, len).map_err(io_err(&p))?;
        for block in body {
            let block = match block {
                Ok(b) => b,
                Err(e) => {
                    // Keep what arrived, so the client can resume after it.
                    w.finish().map_err(|e| Error::io(p.display(), e))?;
                    st.hash = Some((w.offset, hasher));
                    return Err(Error::new(
                        Code::BlobUploadInvalid,
                        format!(
                            "upload {id}: request body failed after {} bytes: {e}",
                            w.offset
                        ),
                    ));
                }
            };
            hasher.update(&block);
            // On an error the file may hold part of what was sent: rehash next time.
            if block.is_empty() {
                w.show().map_err(|e| Error::io(p.display(), e))?;
            } else {
                w.write(&block).map_err(|e| Error::io(p.display(), e))?;
            }
        }
        w.finish().map_err(|e| Error::io(p.display(), e))?;
        st.hash = Some((w.offset, hasher));
        Ok(w.offset)
    }

    fn upload_commit(&self, repo: &RepoName, id: &str, digest: &Digest) -> Result<u64> {
        let dir = self.upload_dir(repo, id)?;
        let session = self.session(id);
        let mut st = lock_session(&session, id)?;
        let p = dir.join("data");
        let f = File::open(&p).map_err(io_err(&p))?;
        let len = f.metadata().map_err(io_err(&p))?.len();
        let hasher = match st.hash.take() {
            Some((off, h)) if off == len && digest.algorithm() == Algorithm::Sha256 => h,
            _ => hash_file(&p, len, digest.algorithm()).map_err(io_err(&p))?,
        };
        let actual = hasher.finish();
        if &actual != digest {
            let _ = fs::remove_dir_all(&dir);
            drop(st);
            self.forget_session(id);
            return Err(Error::new(
                Code::DigestInvalid,
                format!(
                    "upload {id}: the {len} bytes received have digest {actual}, not {digest}; discarded"
                ),
            ));
        }
        let blob = self.blob_path(digest);
        if !blob.exists() {
            f.sync_all().map_err(io_err(&p))?;
            install(&p, &blob).map_err(io_err(&blob))?;
        }
        self.link(repo, digest)?;
        let _ = fs::remove_dir_all(&dir);
        drop(st);
        self.forget_session(id);
        Ok(len)
    }

    fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<()> {
        let dir = self.upload_dir(repo, id)?;
        // Remove the repo file first: from then on the session is unknown.
        let _ = fs::remove_file(dir.join("repo"));
        fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        self.forget_session(id);
        Ok(())
    }

    fn manifest_put(&self, repo: &RepoName, put: ManifestPut<'_>) -> Result<()> {
        let blob = self.blob_path(put.digest);
        if !blob.exists() {
            self.atomic_write(&blob, put.raw)?;
        }
        if let Some((subject, desc)) = put.referrer {
            let p = self
                .referrers_dir(repo, subject)
                .join(Self::referrer_file(put.digest));
            let json = serde_json::to_vec(desc).expect("descriptor serializes");
            self.atomic_write(&p, &json)?;
        }
        self.atomic_write(
            &self.revision_path(repo, put.digest),
            put.media_type.as_bytes(),
        )?;
        for tag in put.tags {
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
        Digest::parse(s.trim())
            .map(Some)
            .map_err(|e| Error::new(Code::Unknown, format!("{}: {e}", p.display())))
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

    fn manifest_exists(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        Ok(self.revision_path(repo, digest).exists())
    }

    fn manifest_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let unknown = || {
            Error::new(
                Code::ManifestUnknown,
                format!("manifest {digest} is not known to {repo}"),
            )
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
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::new(
                Code::ManifestUnknown,
                format!("tag {} is not known to {repo}", hoist_image::quote(tag)),
            )),
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
            Ok(_) => Err(Error::new(
                Code::Unknown,
                format!("{}: read back other bytes than written", p.display()),
            )),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Pseudo-random bytes, so a misplaced block shows.
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Requests of these sizes, each split into pieces of `piece` bytes, appended one after
    /// the other as consecutive PATCHes would: the file holds exactly the bytes, in order,
    /// whether a request starts on a block boundary (O_DIRECT, where the file system takes
    /// it) or not (plain writes), and whatever its tail.
    #[test]
    fn data_writer_appends_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data");
        let cases: &[(&[usize], usize)] = &[
            (&[IO_BUF * 2 + 4096, 10], 100_000),
            (&[IO_BUF + 1, 4096, IO_BUF, 0, 3 * 4096 + 5], 32 << 10),
            (&[1, IO_BUF * 3], IO_BUF + 7),
            (&[4095, 1, IO_BUF - 4096, 5000], 4096),
        ];
        for (seed, (requests, piece)) in cases.iter().enumerate() {
            File::create(&p).unwrap();
            let mut want = Vec::new();
            for (i, &n) in requests.iter().enumerate() {
                let data = bytes(n, (seed * 100 + i) as u64);
                let f = OpenOptions::new().write(true).open(&p).unwrap();
                let mut w = DataWriter::new(f, &p, want.len() as u64).unwrap();
                for (k, c) in data.chunks(*piece).enumerate() {
                    w.write(c).unwrap();
                    if k % 3 == 1 {
                        // A pause: everything so far is in the file.
                        w.show().unwrap();
                        let so_far = want.len() + (k + 1) * piece;
                        assert_eq!(
                            fs::metadata(&p).unwrap().len(),
                            so_far.min(want.len() + n) as u64
                        );
                    }
                }
                w.finish().unwrap();
                want.extend_from_slice(&data);
                assert_eq!(w.offset, want.len() as u64);
                assert!(fs::read(&p).unwrap() == want, "case {seed}, request {i}");
            }
        }
    }

    /// A file system that accepts the O_DIRECT open but refuses a write (here: a buffer
    /// made misaligned on purpose) falls back to plain writes, keeping every byte.
    #[test]
    fn data_writer_falls_back_when_direct_writes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data");
        File::create(&p).unwrap();
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        let mut w = DataWriter::new(f, &p, 0).unwrap();
        if w.direct.is_none() {
            // No O_DIRECT here (tmpfs): nothing to fall back from.
            return;
        }
        w.start += 1;
        let data = bytes(2 * IO_BUF + 123, 9);
        for c in data.chunks(50_000) {
            w.write(c).unwrap();
        }
        w.finish().unwrap();
        assert!(
            w.direct.is_none(),
            "the refused write switched to plain writes"
        );
        assert!(fs::read(&p).unwrap() == data);
    }
}
