//! What several verbs share: the registry options (`--retries`, `--insecure`), the
//! content cache options (global `--cache-dir`, `--no-cache`, `--cache-max`), and the
//! parsing of the values verbs have in common (`--platform`, `--time`, sizes, sources and
//! destinations), turned into a [`hoist_ops::Context`].

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use hoist_image::{Platform, Reference};
use hoist_ops::{Context, Location};
use hoist_remote::push::Progress;

/// Options shared by the verbs that talk to registries.
#[derive(clap::Args, Debug, Clone)]
pub struct RemoteArgs {
    /// Attempts after the first for temporary failures (connection errors, timeouts,
    /// 408/429/5xx), with exponential backoff.
    #[arg(long, default_value_t = hoist_remote::retry::DEFAULT_RETRIES)]
    pub retries: u32,
    /// Talk plain http to this registry (host[:port]); loopback registries always are.
    #[arg(long, value_name = "REGISTRY")]
    pub insecure: Vec<String>,
}

impl Default for RemoteArgs {
    fn default() -> Self {
        RemoteArgs {
            retries: hoist_remote::retry::DEFAULT_RETRIES,
            insecure: Vec::new(),
        }
    }
}

/// Where sealed layers go, as the global options say.
#[derive(Debug, Clone, Default)]
pub struct CacheOpts {
    /// `--cache-dir` / `HOIST_CACHE_DIR`; None or empty: the default directory.
    pub dir: Option<PathBuf>,
    /// `--no-cache`.
    pub disabled: bool,
    /// `--cache-max`: keep the cache under this many bytes (LRU eviction).
    pub max: Option<u64>,
}

impl CacheOpts {
    /// The cache directory in effect.
    pub fn dir(&self) -> anyhow::Result<PathBuf> {
        match &self.dir {
            Some(d) if !d.as_os_str().is_empty() => Ok(d.clone()),
            _ => hoist_image::Cache::default_dir().context(
                "no cache directory: set XDG_CACHE_HOME or HOME, or give --cache-dir / HOIST_CACHE_DIR",
            ),
        }
    }
}

/// A verb's context: registry options, the cache, progress and transfers in flight.
pub struct Ctx<'a> {
    cache: &'a CacheOpts,
    remote: Option<&'a RemoteArgs>,
    progress: Option<Arc<dyn Progress>>,
    jobs: Option<usize>,
}

impl<'a> Ctx<'a> {
    /// A context with the global cache options.
    pub fn new(cache: &'a CacheOpts) -> Ctx<'a> {
        Ctx {
            cache,
            remote: None,
            progress: None,
            jobs: None,
        }
    }

    /// With the verb's registry options.
    pub fn remote(mut self, r: &'a RemoteArgs) -> Self {
        self.remote = Some(r);
        self
    }

    /// With progress on stderr unless `quiet` (see [`crate::progress::stderr`]).
    pub fn progress(mut self, quiet: bool) -> Self {
        self.progress = Some(crate::progress::stderr(quiet));
        self
    }

    /// With `--jobs`.
    pub fn jobs(mut self, jobs: Option<usize>) -> Self {
        self.jobs = jobs;
        self
    }

    /// Build it.
    pub fn build(self) -> anyhow::Result<Context> {
        let mut b = Context::builder();
        b = match (&self.cache.dir, self.cache.disabled) {
            (_, true) => b.no_cache(),
            (Some(d), false) if !d.as_os_str().is_empty() => b.cache_dir(d),
            _ => b.default_cache(),
        };
        if let Some(max) = self.cache.max {
            b = b.cache_max(max);
        }
        if let Some(r) = self.remote {
            b = b.retries(r.retries);
            for h in &r.insecure {
                b = b.insecure(h.clone());
            }
        }
        if let Some(p) = self.progress {
            b = b.progress(p);
        }
        match self.jobs {
            Some(0) => anyhow::bail!("invalid --jobs 0: expected at least 1"),
            Some(j) => b = b.jobs(j),
            None => {}
        }
        Ok(b.build()?)
    }
}

/// Parse `--platform`.
pub fn platform(p: Option<&str>) -> anyhow::Result<Option<Platform>> {
    p.map(|p| Platform::parse(p).context("invalid --platform"))
        .transpose()
}

/// Parse `--time`: seconds since the epoch or `YYYY-MM-DDTHH:MM:SSZ`.
pub fn time(s: Option<&str>) -> anyhow::Result<Option<u64>> {
    s.map(|s| hoist_image::mutate::parse_time(s).context("invalid --time"))
        .transpose()
}

/// A registry reference argument, `docker://` optional; errors name it as `what`.
pub fn reference(s: &str, what: &str) -> anyhow::Result<Reference> {
    let t = s.strip_prefix("docker://").unwrap_or(s);
    Reference::parse(t).with_context(|| format!("invalid {what} {s:?}"))
}

/// A location that must be a registry reference (`blob`, `delete`, `referrers`).
pub fn registry_location(s: &str, verb: &str) -> anyhow::Result<Reference> {
    match Location::parse(s)? {
        Location::Registry(r) => Ok(r),
        other => anyhow::bail!("hoist {verb} works on registry references; {other} is local"),
    }
}

/// Print a verb's result line: on stdout, unless the image itself goes there (`-`),
/// then on stderr.
pub fn say(dst: &Location, line: impl std::fmt::Display) -> std::io::Result<()> {
    if dst.is_stdout() {
        writeln!(std::io::stderr(), "{line}")
    } else {
        writeln!(std::io::stdout(), "{line}")
    }
}

/// The error for a registry location where only a local one (layout, tarball) is taken.
pub fn not_local(r: &Reference) -> anyhow::Error {
    anyhow::anyhow!(
        "docker://{r}: expected a local location here (oci:DIR or docker-archive:FILE); registries are reached with hoist pull, push and copy"
    )
}
