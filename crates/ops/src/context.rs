//! [`Context`]: what every verb needs besides its arguments — the registry client's
//! options (credentials, insecure hosts, retries, transfers in flight), where sealed
//! layers go (the content cache, a store of the caller's, or temporary files), a
//! progress sink, and the async runtime the registry client runs on.
//!
//! Everything is made on first use: a verb that never talks to a registry never builds
//! a client or starts a runtime, one that seals nothing never opens the cache. The
//! runtime is the library's own ([`hoist_remote::Runtime`]): synchronous callers never
//! see it, and calling a verb from inside async code does not panic (the registry work
//! runs on the library's runtime while the calling thread waits).
//!
//! ```no_run
//! use hoist_ops::Context;
//! let ctx = Context::builder()
//!     .insecure("registry.local:5000")
//!     .retries(3)
//!     .jobs(8)
//!     .default_cache()
//!     .build()?;
//! # Ok::<(), hoist_ops::Error>(())
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use hoist_image::{Cache, SpoolStore, Store};
use hoist_remote::push::{self, NoProgress, Progress};
use hoist_remote::{AuthFiles, Client, Keychain, Runtime};

use crate::error::{Context as _, Error, Result};

/// Where a verb seals layers that need compressing.
#[derive(Debug, Clone)]
enum Sealing {
    /// Temporary files, removed when the context goes (the default).
    Spool,
    /// The content cache in the default directory ([`Cache::default_dir`]).
    DefaultCache,
    /// The content cache in this directory.
    Cache(PathBuf),
    /// The caller's store.
    Store(Arc<dyn Store>),
}

/// The store a verb seals into, and the cache behind it, if it is one (for its counters
/// and the push memory kept beside it).
#[derive(Debug, Clone)]
pub struct Stores {
    /// Where layers are sealed.
    pub store: Arc<dyn Store>,
    /// The content cache, when the store is one.
    pub cache: Option<Arc<Cache>>,
}

/// The shared settings and resources of hoist-ops' verbs: registry options, where layers
/// are sealed, progress, and the runtime, each made on first use.
/// Build one with [`Context::builder`] (or [`Context::default`]) and pass it to every
/// call; it is `Send + Sync`, and clones of what it made (the client, the stores) are
/// shared.
pub struct Context {
    retries: u32,
    insecure: Vec<String>,
    ca_files: Vec<PathBuf>,
    skip_tls_verify: bool,
    keychain: Option<Arc<dyn Keychain>>,
    jobs: Option<usize>,
    sealing: Sealing,
    cache_max: Option<u64>,
    progress: Arc<dyn Progress>,
    runtime: Runtime,
    client: OnceLock<Client>,
    stores: OnceLock<Stores>,
    /// Temporary directories sources are read from (unpacked archives), removed with
    /// the context.
    temps: Mutex<Vec<tempfile::TempDir>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("retries", &self.retries)
            .field("insecure", &self.insecure)
            .field("jobs", &self.jobs)
            .field("sealing", &self.sealing)
            .field("cache_max", &self.cache_max)
            .finish_non_exhaustive()
    }
}

impl Default for Context {
    /// Credentials from docker's `config.json`, the default retries, temporary files for
    /// sealed layers, no progress.
    fn default() -> Self {
        ContextBuilder::default().finish()
    }
}

/// Builds a [`Context`].
#[derive(Clone)]
pub struct ContextBuilder {
    retries: u32,
    insecure: Vec<String>,
    ca_files: Vec<PathBuf>,
    skip_tls_verify: bool,
    keychain: Option<Arc<dyn Keychain>>,
    jobs: Option<usize>,
    sealing: Sealing,
    sealing_set: usize,
    cache_max: Option<u64>,
    progress: Option<Arc<dyn Progress>>,
    runtime: Option<Runtime>,
}

impl std::fmt::Debug for ContextBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextBuilder")
            .field("retries", &self.retries)
            .field("insecure", &self.insecure)
            .field("jobs", &self.jobs)
            .field("sealing", &self.sealing)
            .field("cache_max", &self.cache_max)
            .finish_non_exhaustive()
    }
}

impl Default for ContextBuilder {
    fn default() -> Self {
        ContextBuilder {
            retries: hoist_remote::retry::DEFAULT_RETRIES,
            insecure: Vec::new(),
            ca_files: Vec::new(),
            skip_tls_verify: false,
            keychain: None,
            jobs: None,
            sealing: Sealing::Spool,
            sealing_set: 0,
            cache_max: None,
            progress: None,
            runtime: None,
        }
    }
}

impl ContextBuilder {
    /// Attempts after the first for temporary registry failures (connection errors,
    /// timeouts, 408/429/5xx), with exponential backoff. Default
    /// [`hoist_remote::retry::DEFAULT_RETRIES`].
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// Let this registry (`host[:port]`) answer plain http when https fails, and do not
    /// verify its certificate (crane's and skopeo's insecure). Loopback registries fall
    /// back to http too, with their certificates verified.
    pub fn insecure(mut self, registry: impl Into<String>) -> Self {
        self.insecure.push(registry.into());
        self
    }

    /// Trust the CA certificates (PEM) in this file too, besides the system's roots
    /// (which `SSL_CERT_FILE` replaces).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_files.push(path.into());
        self
    }

    /// Do not verify registries' TLS certificates (self-signed registries).
    pub fn skip_tls_verify(mut self, yes: bool) -> Self {
        self.skip_tls_verify = yes;
        self
    }

    /// Where registry credentials come from. Default: docker's `config.json` (and the
    /// credential helpers it names), then the containers tools' `auth.json`
    /// ([`AuthFiles`]); anonymous when none has the registry.
    pub fn keychain(mut self, keychain: Arc<dyn Keychain>) -> Self {
        self.keychain = Some(keychain);
        self
    }

    /// Blob transfers in flight (pushes, pulls, copies). Default: each engine's own
    /// ([`hoist_remote::push::DEFAULT_JOBS`], [`hoist_remote::pull::DEFAULT_JOBS`]).
    pub fn jobs(mut self, n: usize) -> Self {
        self.jobs = Some(n);
        self
    }

    fn sealing(mut self, s: Sealing) -> Self {
        self.sealing = s;
        self.sealing_set += 1;
        self
    }

    /// Seal layers into the content cache in `dir` (created if needed): a layer is
    /// compressed once per machine, not once per call.
    pub fn cache_dir(self, dir: impl Into<PathBuf>) -> Self {
        self.sealing(Sealing::Cache(dir.into()))
    }

    /// Seal layers into the content cache in its default directory
    /// (`$XDG_CACHE_HOME/hoist`, else `~/.cache/hoist`).
    pub fn default_cache(self) -> Self {
        self.sealing(Sealing::DefaultCache)
    }

    /// Seal layers into temporary files, removed with the context (the default).
    pub fn no_cache(self) -> Self {
        self.sealing(Sealing::Spool)
    }

    /// Seal layers into the caller's store (a [`hoist_image::MemoryStore`], a cache
    /// shared with other code).
    pub fn store(self, store: Arc<dyn Store>) -> Self {
        self.sealing(Sealing::Store(store))
    }

    /// Keep the content cache under this many bytes (least recently used layers go).
    pub fn cache_max(mut self, bytes: u64) -> Self {
        self.cache_max = Some(bytes);
        self
    }

    /// Told when blobs start, advance and finish (pushes, pulls, copies), and of the
    /// registry client's retries.
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Drive registry I/O on this runtime (a clone shares it; [`Runtime::from_handle`]
    /// borrows an application's multi-threaded runtime: a current-thread runtime cannot
    /// drive I/O while its only thread waits for a verb). Default: one of the context's
    /// own, started when first needed.
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Build it; settings that contradict each other are refused.
    pub fn build(self) -> Result<Context> {
        if self.sealing_set > 1 {
            return Err(Error::invalid(
                "context: choose one place to seal layers (cache_dir, default_cache, no_cache or store)",
            ));
        }
        if self.cache_max.is_some() && matches!(self.sealing, Sealing::Store(_)) {
            return Err(Error::invalid(
                "context: cache_max applies to the content cache, not to a store of the caller's",
            ));
        }
        if self.jobs == Some(0) {
            return Err(Error::invalid("invalid jobs 0: expected at least 1"));
        }
        Ok(self.finish())
    }

    fn finish(self) -> Context {
        Context {
            retries: self.retries,
            insecure: self.insecure,
            ca_files: self.ca_files,
            skip_tls_verify: self.skip_tls_verify,
            keychain: self.keychain,
            jobs: self.jobs,
            sealing: self.sealing,
            cache_max: self.cache_max,
            progress: self.progress.unwrap_or_else(|| Arc::new(NoProgress)),
            runtime: self.runtime.unwrap_or_default(),
            client: OnceLock::new(),
            stores: OnceLock::new(),
            temps: Mutex::new(Vec::new()),
        }
    }
}

impl Context {
    /// A builder with the defaults of [`Context::default`].
    pub fn builder() -> ContextBuilder {
        ContextBuilder::default()
    }

    /// The registry client (built on first use, then shared).
    pub fn client(&self) -> Result<Client> {
        if let Some(c) = self.client.get() {
            return Ok(c.clone());
        }
        let keychain = match &self.keychain {
            Some(k) => k.clone(),
            None => Arc::new(AuthFiles::new()) as Arc<dyn Keychain>,
        };
        let mut b = Client::builder()
            .retries(self.retries)
            .keychain(keychain)
            .skip_tls_verify(self.skip_tls_verify)
            .progress(self.progress.clone());
        for r in &self.insecure {
            b = b.insecure(r.clone());
        }
        for f in &self.ca_files {
            b = b.ca_file(f.clone());
        }
        let c = b.build()?;
        Ok(self.client.get_or_init(|| c).clone())
    }

    /// Where layers are sealed, and the cache behind it (opened on first use).
    pub fn stores(&self) -> Result<Stores> {
        if let Some(s) = self.stores.get() {
            return Ok(s.clone());
        }
        let open_cache = |dir: PathBuf| -> Result<Stores> {
            let mut cache = Cache::open(&dir)
                .with_context(|| format!("cannot open the cache in {}", dir.display()))?;
            if let Some(max) = self.cache_max {
                cache = cache.with_limit(max);
            }
            let cache = Arc::new(cache);
            Ok(Stores {
                store: cache.clone(),
                cache: Some(cache),
            })
        };
        let s = match &self.sealing {
            Sealing::Spool => Stores {
                store: Arc::new(SpoolStore::new()?),
                cache: None,
            },
            Sealing::Store(s) => Stores {
                store: s.clone(),
                cache: None,
            },
            Sealing::Cache(dir) => open_cache(dir.clone())?,
            Sealing::DefaultCache => open_cache(Cache::default_dir().ok_or_else(|| {
                Error::invalid(
                    "no cache directory: set XDG_CACHE_HOME or HOME, or give a cache directory",
                )
            })?)?,
        };
        Ok(self.stores.get_or_init(|| s).clone())
    }

    /// True when layers are sealed into a temporary spool (no cache, no store of the
    /// caller's): a verb may seal them straight into its destination instead.
    pub(crate) fn seals_to_spool(&self) -> bool {
        matches!(self.sealing, Sealing::Spool)
    }

    /// The store layers are sealed into.
    pub fn store(&self) -> Result<Arc<dyn Store>> {
        Ok(self.stores()?.store)
    }

    /// The content cache, unless layers go to temporary files or a store of the caller's.
    pub fn cache(&self) -> Result<Option<Arc<Cache>>> {
        Ok(self.stores()?.cache)
    }

    /// The content cache if it was opened by a verb (for its counters after the fact).
    pub fn opened_cache(&self) -> Option<Arc<Cache>> {
        self.stores.get().and_then(|s| s.cache.clone())
    }

    /// The registry client if a verb made one (for its counters after the fact).
    pub fn opened_client(&self) -> Option<Client> {
        self.client.get().cloned()
    }

    /// Keep `dir` until the context goes; returns its path.
    pub(crate) fn keep(&self, dir: tempfile::TempDir) -> PathBuf {
        let path = dir.path().to_path_buf();
        self.temps.lock().expect("temps lock").push(dir);
        path
    }

    /// The progress sink.
    pub fn progress(&self) -> Arc<dyn Progress> {
        self.progress.clone()
    }

    /// Blob transfers in flight, when set.
    pub fn jobs(&self) -> Option<usize> {
        self.jobs
    }

    /// The runtime registry I/O runs on.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Run `f`, a verb's synchronous body, where blocking is allowed: on this thread,
    /// unless it drives async tasks (a verb called from async code), then on a helper
    /// thread while this one waits. Reading a registry layer blocks on a channel, which
    /// tokio forbids on a runtime's threads.
    pub(crate) fn blocking<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        if tokio::runtime::Handle::try_current().is_err() {
            return f();
        }
        std::thread::scope(|s| {
            s.spawn(f)
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Run a registry future to completion from synchronous code.
    pub(crate) fn block_on<T: Send>(
        &self,
        f: impl Future<Output = hoist_remote::Result<T>> + Send,
    ) -> Result<T> {
        Ok(self.runtime.block_on(f)??)
    }

    /// Push options for this context: its jobs, and the push memory (which repository
    /// holds which blob) kept beside the cache.
    pub(crate) fn push_options(&self) -> Result<push::Options> {
        let mut o = push::Options {
            memory_dir: self.cache()?.map(|c| c.path().join("remote")),
            ..push::Options::default()
        };
        if let Some(j) = self.jobs {
            o.jobs = j;
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contradictions_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let e = Context::builder()
            .cache_dir(t.path())
            .no_cache()
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("one place"), "{e}");
        let store: Arc<dyn Store> = Arc::new(SpoolStore::new().unwrap());
        let e = Context::builder()
            .store(store)
            .cache_max(10)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("cache_max"), "{e}");
        assert!(Context::builder().jobs(0).build().is_err());
    }

    #[test]
    fn resources_are_made_on_first_use_and_shared() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("cache");
        let ctx = Context::builder().cache_dir(&dir).build().unwrap();
        assert!(!dir.exists(), "nothing opened before a verb needs it");
        assert!(ctx.opened_cache().is_none());
        let a = ctx.stores().unwrap();
        let b = ctx.stores().unwrap();
        assert!(Arc::ptr_eq(&a.store, &b.store));
        assert!(dir.join("blobs").is_dir());
        assert!(ctx.opened_cache().is_some());
        let memory = ctx.push_options().unwrap().memory_dir.unwrap();
        assert_eq!(memory, dir.join("remote"));
        // The default seals into temporary files: no cache, no push memory.
        let ctx = Context::default();
        assert!(ctx.cache().unwrap().is_none());
        assert!(ctx.push_options().unwrap().memory_dir.is_none());
    }
}
