//! The content cache: compressed layers kept across processes, so that a layer is
//! compressed once per machine, not once per command.
//!
//! [`Cache`] is a directory (default `$XDG_CACHE_HOME/hoist`, else `~/.cache/hoist`):
//! ```text
//! blobs/sha256/<hex>                   compressed blobs, by digest
//! index/<encoding>/sha256/<hex>.json   diff_id → {digest, size, mediaType}, one small file
//!                                      per (diff_id, compression, level), e.g. index/gzip.2-6/;
//!                                      index/gzip.pulled/ for blobs of unknown provenance
//! tmp/                                 files being written (renamed into place when complete)
//! ```
//! Every file is written to `tmp/`, fsynced and renamed into place, so a reader sees a
//! whole file or none, and two processes sealing the same layer at once both end with the
//! same complete blob (same digest, same bytes). A lookup checks the blob's size only, so
//! a layer whose blob the destination already has costs no read at all; the blob is
//! verified (sha256) the first time a process opens it, and one that does not match is
//! evicted (its index entry goes with it at the next lookup) and the layer is sealed
//! again, never served. With a size limit, least recently
//! used blobs (access time recorded on each hit) are evicted after each insert.
//!
//! The cache never changes output bytes: an entry's key is the encoding that produced its
//! bytes ([`Encoding::key`], written only by [`Store::seal`]). Blobs hoist did not
//! compress (pulled from a registry: someone's encoder, some level) are recorded with
//! [`Cache::record_pulled`] under `<compression>.pulled`, a key no encoding has, so a
//! request to compress at a level never gets them.
//!
//! [`MemoryStore`] keeps small layers in RAM within a byte budget (larger ones spill to
//! temporary files): for processes that seal the same layers repeatedly without a disk
//! cache.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::digest::{DiffId, Digest, VerifyingReader};
use crate::error::{Error, Result};
use crate::layer::{BoxRead, Sealed, Store};
use crate::media_type::{Compression, MediaType};
use crate::pipeline::{self, Encoding};

/// The key suffix of blobs of unknown provenance (`gzip.pulled`).
const PULLED: &str = "pulled";

/// Temporary files older than this are debris of a crashed process; [`Cache::prune`]
/// removes them.
const STALE_TMP: Duration = Duration::from_secs(24 * 3600);

/// Counters of what a cache did in this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache (no compression).
    pub hits: u64,
    /// Lookups that found nothing usable.
    pub misses: u64,
    /// Layers sealed (compressed) into the cache.
    pub sealed: u64,
    /// Entries found corrupt and evicted.
    pub evicted_corrupt: u64,
    /// Blobs evicted to respect the size limit.
    pub evicted_lru: u64,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    sealed: AtomicU64,
    evicted_corrupt: AtomicU64,
    evicted_lru: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            sealed: self.sealed.load(Ordering::Relaxed),
            evicted_corrupt: self.evicted_corrupt.load(Ordering::Relaxed),
            evicted_lru: self.evicted_lru.load(Ordering::Relaxed),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// An index entry as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexEntry {
    digest: Digest,
    size: u64,
    #[serde(rename = "mediaType")]
    media_type: MediaType,
}

/// One cached layer, as listed by [`Cache::entries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The encoding key (`gzip.2-6`, `zstd-3`, ...; see [`Encoding::key`]).
    pub encoding: String,
    /// The uncompressed layer's digest.
    pub diff_id: DiffId,
    /// The compressed blob.
    pub sealed: Sealed,
    /// When the blob was last used.
    pub accessed: Option<SystemTime>,
}

/// What [`Cache::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneStats {
    /// Blobs removed.
    pub blobs: u64,
    /// Bytes freed.
    pub bytes: u64,
    /// Index entries removed (their blob was gone).
    pub index_entries: u64,
}

/// The on-disk content cache; a [`Store`]. See the [module docs](self).
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    limit: Option<u64>,
    /// Blobs verified (or written) by this process: not hashed again.
    verified: Mutex<HashSet<Digest>>,
    /// Blobs this process handed out: the size limit never evicts them under a live layer.
    in_use: Mutex<HashSet<Digest>>,
    counters: Counters,
}

impl Cache {
    /// The default directory: `$XDG_CACHE_HOME/hoist`, else `$HOME/.cache/hoist`.
    pub fn default_dir() -> Option<PathBuf> {
        let abs = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
        if let Some(x) = std::env::var_os("XDG_CACHE_HOME").and_then(abs) {
            return Some(x.join("hoist"));
        }
        std::env::var_os("HOME")
            .and_then(abs)
            .map(|h| h.join(".cache").join("hoist"))
    }

    /// Open (creating if needed) a cache in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Cache> {
        let root = dir.into();
        for sub in ["blobs/sha256", "index", "tmp"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).map_err(|e| Error::io(format!("cache {}", d.display()), e))?;
        }
        Ok(Cache {
            root,
            limit: None,
            verified: Mutex::new(HashSet::new()),
            in_use: Mutex::new(HashSet::new()),
            counters: Counters::default(),
        })
    }

    /// Open the cache in [`Cache::default_dir`].
    pub fn open_default() -> Result<Cache> {
        let dir = Self::default_dir().ok_or_else(|| {
            Error::invalid_input(
                "cache directory",
                "neither XDG_CACHE_HOME nor HOME is set to an absolute path; give one",
            )
        })?;
        Self::open(dir)
    }

    /// Keep the blobs under `bytes` in total, evicting the least recently used after
    /// each insert (blobs in use by this process excepted).
    pub fn with_limit(mut self, bytes: u64) -> Self {
        self.limit = Some(bytes);
        self
    }

    /// The cache directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// What this cache did in this process.
    pub fn stats(&self) -> CacheStats {
        self.counters.snapshot()
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    fn index_path(&self, diff_id: &DiffId, key: &str) -> PathBuf {
        let d = diff_id.digest();
        self.root
            .join("index")
            .join(key)
            .join(d.algorithm().as_str())
            .join(format!("{}.json", d.hex()))
    }

    fn tmp_file(&self) -> Result<tempfile::NamedTempFile> {
        let dir = self.root.join("tmp");
        tempfile::Builder::new()
            .prefix("part-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(format!("cache {}", dir.display()), e))
    }

    /// Make a complete temporary file durable and move it to `dest`, atomically.
    fn commit(tmp: tempfile::NamedTempFile, dest: &Path) -> Result<()> {
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(tmp.path().display(), e))?;
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
        }
        tmp.persist(dest)
            .map_err(|e| Error::io(dest.display(), e.error))?;
        Ok(())
    }

    /// Record an access (for LRU) by touching the blob's modification time.
    fn touch(&self, path: &Path) {
        if let Ok(f) = File::options().append(true).open(path) {
            let _ = f.set_modified(SystemTime::now());
        }
    }

    /// Check a blob once per process: size, then sha256. A mismatching blob is removed.
    fn verify(&self, digest: &Digest, size: u64) -> bool {
        let path = self.blob_path(digest);
        if self.verified.lock().is_ok_and(|v| v.contains(digest)) {
            return fs::metadata(&path).is_ok_and(|m| m.len() == size);
        }
        let ok = match File::open(&path) {
            Ok(f) => {
                let mut r = VerifyingReader::new(f, digest.clone(), Some(size));
                io::copy(&mut r, &mut io::sink()).is_ok()
            }
            Err(_) => return false,
        };
        if ok {
            if let Ok(mut v) = self.verified.lock() {
                v.insert(digest.clone());
            }
        } else {
            tracing::warn!(%digest, path = %path.display(), "cached blob is corrupt; evicting it");
            let _ = fs::remove_file(&path);
            bump(&self.counters.evicted_corrupt);
        }
        ok
    }

    fn mark_in_use(&self, digest: &Digest) {
        if let Ok(mut u) = self.in_use.lock() {
            u.insert(digest.clone());
        }
    }

    /// A blob by digest: its path and size, if present and intact. Pulled or copied blobs
    /// can be put here with [`Cache::insert_blob`].
    pub fn blob(&self, digest: &Digest) -> Option<(PathBuf, u64)> {
        let path = self.blob_path(digest);
        let size = fs::metadata(&path).ok()?.len();
        if !self.verify(digest, size) {
            return None;
        }
        self.touch(&path);
        self.mark_in_use(digest);
        Some((path, size))
    }

    /// Store a blob read from `r`, checking it against `digest` (and `size` when known)
    /// before it becomes visible. Returns its path and size.
    pub fn insert_blob<R: Read>(
        &self,
        digest: &Digest,
        size: Option<u64>,
        r: R,
    ) -> Result<(PathBuf, u64)> {
        if let Some(hit) = self.blob(digest) {
            return Ok(hit);
        }
        let mut tmp = self.tmp_file()?;
        let mut r = VerifyingReader::new(r, digest.clone(), size);
        let n = io::copy(&mut r, tmp.as_file_mut())
            .map_err(|e| Error::from_io(format!("blob {digest}"), e))?;
        let path = self.blob_path(digest);
        Self::commit(tmp, &path)?;
        if let Ok(mut v) = self.verified.lock() {
            v.insert(digest.clone());
        }
        self.mark_in_use(digest);
        self.enforce_limit();
        Ok((path, n))
    }

    /// Put a blob the caller has already verified against `digest` and `size` (a layer
    /// pulled into a layout) into the cache: hard-linked when on the same filesystem
    /// (no second copy of the bytes), else copied and verified as with
    /// [`Cache::insert_blob`]. Visible atomically (linked under `tmp/`, then renamed).
    pub fn link_blob(&self, digest: &Digest, size: u64, path: &Path) -> Result<()> {
        let dest = self.blob_path(digest);
        if fs::metadata(&dest).is_ok_and(|m| m.len() == size) {
            return Ok(());
        }
        let tmp = self.root.join("tmp").join(format!(
            "link-{}-{}-{}",
            std::process::id(),
            next_suffix(),
            digest.hex()
        ));
        if fs::hard_link(path, &tmp).is_err() {
            let f = File::open(path).map_err(|e| Error::io(path.display(), e))?;
            return self.insert_blob(digest, Some(size), f).map(|_| ());
        }
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
        }
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(dest.display(), e));
        }
        if let Ok(mut v) = self.verified.lock() {
            v.insert(digest.clone());
        }
        self.mark_in_use(digest);
        self.enforce_limit();
        Ok(())
    }

    /// Record a blob hoist did not compress (pulled from a registry, already in the cache
    /// through [`Cache::link_blob`] or [`Cache::insert_blob`]) as the layer
    /// `sealed.diff_id` compressed some unknown way: under `<compression>.pulled`, never
    /// under an [`Encoding::key`], so no lookup for an encoding returns it. A plain tar's
    /// bytes are its diff_id's, whoever wrote them: it goes under `none`.
    pub fn record_pulled(&self, sealed: &Sealed) -> Result<()> {
        let key = match sealed.media_type.layer_compression() {
            Some(Compression::None) => Encoding::none().key(),
            Some(c) => format!("{c}.{PULLED}"),
            None => {
                return Err(Error::invalid_input(
                    format!("blob {}", sealed.digest),
                    format!(
                        "media type {} is not a layer type",
                        crate::quote(sealed.media_type.as_str())
                    ),
                ));
            }
        };
        self.record(&key, sealed)
    }

    /// Write the index entry `key`/`sealed.diff_id` → `sealed`.
    fn record(&self, key: &str, sealed: &Sealed) -> Result<()> {
        let entry = IndexEntry {
            digest: sealed.digest.clone(),
            size: sealed.size,
            media_type: sealed.media_type.clone(),
        };
        let mut tmp = self.tmp_file()?;
        serde_json::to_writer(tmp.as_file_mut(), &entry)
            .map_err(|e| Error::io(tmp.path().display(), e.into()))?;
        Self::commit(tmp, &self.index_path(&sealed.diff_id, key))
    }

    /// Every index entry whose blob is present (not verified: see [`Cache::blob`]).
    pub fn entries(&self) -> Result<Vec<CacheEntry>> {
        let mut out = Vec::new();
        for (encoding, diff_id, path) in self.index_files()? {
            let Some(entry) = read_entry(&path) else {
                continue;
            };
            let Ok(meta) = fs::metadata(self.blob_path(&entry.digest)) else {
                continue;
            };
            out.push(CacheEntry {
                encoding,
                sealed: Sealed {
                    digest: entry.digest,
                    diff_id: diff_id.clone(),
                    size: entry.size,
                    media_type: entry.media_type,
                },
                diff_id,
                accessed: meta.modified().ok(),
            });
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.accessed));
        Ok(out)
    }

    fn index_files(&self) -> Result<Vec<(String, DiffId, PathBuf)>> {
        let mut out = Vec::new();
        let index = self.root.join("index");
        for enc in read_dir(&index)? {
            let Some(key) = enc.file_name().and_then(|n| n.to_str()).map(String::from) else {
                continue;
            };
            for alg_dir in read_dir(&enc)? {
                let alg = alg_dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                for f in read_dir(&alg_dir)? {
                    let Some(hex) = f
                        .file_name()
                        .and_then(|n| n.to_str())
                        .and_then(|n| n.strip_suffix(".json"))
                    else {
                        continue;
                    };
                    if let Ok(d) = DiffId::parse(&format!("{alg}:{hex}")) {
                        out.push((key.clone(), d, f));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Evict least recently used blobs until at most `keep_bytes` remain (0: empty the
    /// cache), drop index entries whose blob is gone and temporary files left by crashed
    /// processes. Blobs this process is using are kept.
    pub fn prune(&self, keep_bytes: u64) -> Result<PruneStats> {
        let mut stats = PruneStats::default();
        let in_use = self.in_use.lock().map(|u| u.clone()).unwrap_or_default();
        let mut blobs = Vec::new();
        let mut total = 0u64;
        let blob_root = self.root.join("blobs");
        for alg_dir in read_dir(&blob_root)? {
            let alg = alg_dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            for f in read_dir(&alg_dir)? {
                let Ok(meta) = fs::metadata(&f) else { continue };
                let hex = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let digest = Digest::parse(&format!("{alg}:{hex}")).ok();
                total += meta.len();
                blobs.push((
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                    f,
                    digest,
                ));
            }
        }
        blobs.sort_by_key(|b| b.0);
        for (_, len, path, digest) in blobs {
            if total <= keep_bytes {
                break;
            }
            if digest.as_ref().is_some_and(|d| in_use.contains(d)) {
                continue;
            }
            if fs::remove_file(&path).is_ok() {
                total -= len;
                stats.blobs += 1;
                stats.bytes += len;
                if let (Some(d), Ok(mut v)) = (digest, self.verified.lock()) {
                    v.remove(&d);
                }
            }
        }
        for (_, _, path) in self.index_files()? {
            let gone = read_entry(&path).is_none_or(|e| !self.blob_path(&e.digest).exists());
            if gone && fs::remove_file(&path).is_ok() {
                stats.index_entries += 1;
            }
        }
        let now = SystemTime::now();
        for f in read_dir(&self.root.join("tmp"))? {
            let old = fs::metadata(&f)
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > STALE_TMP);
            if old {
                let _ = fs::remove_file(&f);
            }
        }
        Ok(stats)
    }

    fn enforce_limit(&self) {
        if let Some(limit) = self.limit {
            match self.prune(limit) {
                Ok(s) => {
                    self.counters
                        .evicted_lru
                        .fetch_add(s.blobs, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!("cache eviction failed: {e}"),
            }
        }
    }
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    match fs::read_dir(dir) {
        Ok(rd) => Ok(rd.filter_map(|e| e.ok().map(|e| e.path())).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(dir.display(), e)),
    }
}

fn read_entry(path: &Path) -> Option<IndexEntry> {
    let bytes = fs::read(path).ok()?;
    if bytes.len() > 64 << 10 {
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}

impl Store for Cache {
    fn lookup(&self, diff_id: &DiffId, encoding: &Encoding) -> Option<Sealed> {
        let index = self.index_path(diff_id, &encoding.key());
        let Some(entry) = read_entry(&index) else {
            bump(&self.counters.misses);
            return None;
        };
        let path = self.blob_path(&entry.digest);
        // The size only: the bytes are verified when opened (`Store::open`), as a lookup
        // often needs no bytes at all (the destination has the blob).
        if !fs::metadata(&path).is_ok_and(|m| m.len() == entry.size) {
            // Missing or truncated: the entry is useless too.
            let _ = fs::remove_file(&index);
            bump(&self.counters.misses);
            return None;
        }
        self.touch(&path);
        self.mark_in_use(&entry.digest);
        bump(&self.counters.hits);
        tracing::debug!(%diff_id, digest = %entry.digest, "cache hit");
        Some(Sealed {
            digest: entry.digest,
            diff_id: diff_id.clone(),
            size: entry.size,
            media_type: entry.media_type,
        })
    }

    fn seal(&self, src: BoxRead, encoding: &Encoding, media_type: MediaType) -> Result<Sealed> {
        let mut tmp = self.tmp_file()?;
        let tmp_path = tmp.path().to_path_buf();
        // Past the page cache: the blob is read back at most once or twice (an upload).
        let mut out = crate::direct::DirectWriter::new(tmp.as_file_mut(), &tmp_path);
        let sealed = pipeline::seal(src, encoding, media_type, &mut out)?;
        out.finish().map_err(|e| Error::io(tmp_path.display(), e))?;
        let path = self.blob_path(&sealed.digest);
        Self::commit(tmp, &path)?;
        if let Ok(mut v) = self.verified.lock() {
            v.insert(sealed.digest.clone());
        }
        self.mark_in_use(&sealed.digest);
        self.record(&encoding.key(), &sealed)?;
        bump(&self.counters.sealed);
        tracing::debug!(diff_id = %sealed.diff_id, digest = %sealed.digest, "sealed into cache");
        self.enforce_limit();
        Ok(sealed)
    }

    /// Open a blob, verifying it (sha256 and size) the first time this process opens it:
    /// a corrupt one is evicted and reported as a size mismatch, so the caller seals the
    /// layer again.
    fn open(&self, sealed: &Sealed) -> Result<BoxRead> {
        let path = self.blob_path(&sealed.digest);
        if !self.verify(&sealed.digest, sealed.size) {
            return Err(Error::new(crate::error::ErrorKind::SizeMismatch {
                what: format!("cached blob {} (corrupt or gone; evicted)", sealed.digest),
                expected: sealed.size,
                actual: fs::metadata(&path).map_or(0, |m| m.len()),
            }));
        }
        crate::direct::open(&path).map_err(|e| Error::io(path.display(), e))
    }
}

/// Where a [`MemoryStore`] keeps one blob.
#[derive(Debug, Clone)]
enum Held {
    Memory(Bytes),
    File(PathBuf),
}

/// A [`Store`] that keeps sealed layers in RAM up to a byte budget; layers that do not
/// fit spill to temporary files (deleted with the store). Lookups find both, so a layer
/// sealed once in a process is never compressed again in it. Memory is bounded by the
/// budget plus one 1 MiB write buffer.
#[derive(Debug)]
pub struct MemoryStore {
    budget: u64,
    used: Mutex<u64>,
    /// (diff_id, encoding key) → the sealed layer.
    sealed: Mutex<HashMap<(DiffId, String), Sealed>>,
    /// digest → where its bytes are.
    blobs: Mutex<HashMap<Digest, Held>>,
    spill: tempfile::TempDir,
}

impl MemoryStore {
    /// Keep at most `budget` bytes of compressed layers in memory.
    pub fn new(budget: u64) -> Result<MemoryStore> {
        let spill = tempfile::Builder::new()
            .prefix("hoist-mem-spill-")
            .tempdir()
            .map_err(|e| Error::io("temporary spill directory", e))?;
        Ok(MemoryStore {
            budget,
            used: Mutex::new(0),
            sealed: Mutex::new(HashMap::new()),
            blobs: Mutex::new(HashMap::new()),
            spill,
        })
    }

    /// Bytes of compressed layers held in memory.
    pub fn used(&self) -> u64 {
        self.used.lock().map(|u| *u).unwrap_or(0)
    }

    /// Reserve `n` bytes of the budget.
    fn reserve(&self, n: u64) -> bool {
        let Ok(mut used) = self.used.lock() else {
            return false;
        };
        if *used + n > self.budget {
            return false;
        }
        *used += n;
        true
    }
}

/// A sink that buffers in memory while the bytes fit in `cap`, then moves to a file.
struct Spill<'a> {
    store: &'a MemoryStore,
    cap: u64,
    mem: Vec<u8>,
    file: Option<tempfile::NamedTempFile>,
}

impl Write for Spill<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.file.is_none() && (self.mem.len() + buf.len()) as u64 > self.cap {
            let mut f = tempfile::NamedTempFile::new_in(self.store.spill.path())?;
            f.write_all(&self.mem)?;
            self.mem = Vec::new();
            self.file = Some(f);
        }
        match &mut self.file {
            Some(f) => f.write(buf),
            None => {
                self.mem.extend_from_slice(buf);
                Ok(buf.len())
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Store for MemoryStore {
    fn lookup(&self, diff_id: &DiffId, encoding: &Encoding) -> Option<Sealed> {
        let sealed = self.sealed.lock().ok()?;
        sealed.get(&(diff_id.clone(), encoding.key())).cloned()
    }

    fn seal(&self, src: BoxRead, encoding: &Encoding, media_type: MediaType) -> Result<Sealed> {
        let free = {
            let used = self.used.lock().map(|u| *u).unwrap_or(u64::MAX);
            self.budget.saturating_sub(used)
        };
        let mut spill = Spill {
            store: self,
            cap: free,
            mem: Vec::new(),
            file: None,
        };
        let sealed = pipeline::seal(
            src,
            encoding,
            media_type,
            io::BufWriter::with_capacity(1 << 20, &mut spill),
        )?;
        let held = match spill.file.take() {
            None if self.reserve(spill.mem.len() as u64) => Held::Memory(Bytes::from(spill.mem)),
            file => {
                // Another seal took the room meanwhile, or it never fit: keep it on disk.
                let path = self.spill.path().join(sealed.digest.hex());
                match file {
                    Some(f) => f
                        .persist(&path)
                        .map_err(|e| Error::io(path.display(), e.error))?,
                    None => {
                        fs::write(&path, &spill.mem).map_err(|e| Error::io(path.display(), e))?;
                        File::open(&path).map_err(|e| Error::io(path.display(), e))?
                    }
                };
                Held::File(path)
            }
        };
        if let Ok(mut b) = self.blobs.lock() {
            b.insert(sealed.digest.clone(), held);
        }
        if let Ok(mut s) = self.sealed.lock() {
            s.insert((sealed.diff_id.clone(), encoding.key()), sealed.clone());
        }
        Ok(sealed)
    }

    fn open(&self, sealed: &Sealed) -> Result<BoxRead> {
        let held = self
            .blobs
            .lock()
            .ok()
            .and_then(|b| b.get(&sealed.digest).cloned());
        match held {
            Some(Held::Memory(b)) => Ok(Box::new(io::Cursor::new(b))),
            Some(Held::File(path)) => File::open(&path)
                .map(|f| Box::new(f) as BoxRead)
                .map_err(|e| Error::io(path.display(), e)),
            None => Err(Error::not_found(format!(
                "blob {} in memory",
                sealed.digest
            ))),
        }
    }
}

/// A per-call unique suffix for temporary names (a counter; names also carry the pid).
fn next_suffix() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
