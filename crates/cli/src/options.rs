//! What several verbs share: the global options (`--log`, `-q`, `-v`), the registry
//! options (`--retries`, `--insecure`, `--ca-file`, `--skip-tls-verify`), the content
//! cache options (`--cache-dir`, `--no-cache`, `--cache-max`, on the verbs that use the
//! cache), `--format`, the parsing of values verbs have in common (`--platform`, `--time`,
//! sources and destinations), a verb's [`hoist_ops::Context`] ([`Ctx`]), and the result
//! lines verbs print.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use hoist_image::{Platform, Reference};
use hoist_ops::{Context, Location, Platforms, Report};

use crate::progress::Reporter;

/// Options every verb takes.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Log filter for diagnostics on stderr: a level (error, warn, info, debug, trace,
    /// off) or target=level pairs, comma-separated [default: warn; for `serve`: info,
    /// which includes the access log].
    #[arg(long, global = true, env = "HOIST_LOG", value_parser = crate::logging::parse_filter, value_name = "FILTER")]
    pub log: Option<String>,
    /// Nothing on stderr but errors: no progress, no retry notices.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More on stderr after the work: what the content cache, the push engine and the
    /// registry client did (hits, blobs found, mounted and sent, requests, retries).
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

/// Options of the verbs that talk to registries.
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Registry options")]
pub struct RemoteArgs {
    /// Attempts after the first for temporary failures (connection resets, timeouts,
    /// 408/429/5xx), with exponential backoff; each is announced on stderr. A refused
    /// connection, an unknown host or an untrusted certificate fail at once.
    #[arg(long, default_value_t = hoist_remote::retry::DEFAULT_RETRIES)]
    pub retries: u32,
    /// Let this registry (host[:port]) answer over plain http when https fails, and do not
    /// verify its certificate (crane's --insecure, skopeo's --tls-verify=false, for one
    /// registry). Loopback registries fall back to http by themselves; repeat for several.
    #[arg(long, value_name = "REGISTRY")]
    pub insecure: Vec<String>,
    /// Trust the CA certificates (PEM) in this file too, besides the system's roots (which
    /// SSL_CERT_FILE and SSL_CERT_DIR replace); repeat for several.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Vec<PathBuf>,
    /// Do not verify registries' TLS certificates (self-signed registries): the connection
    /// stays encrypted, but anyone on the path can read and change it.
    #[arg(long)]
    pub skip_tls_verify: bool,
}

impl Default for RemoteArgs {
    fn default() -> Self {
        RemoteArgs {
            retries: hoist_remote::retry::DEFAULT_RETRIES,
            insecure: Vec::new(),
            ca_file: Vec::new(),
            skip_tls_verify: false,
        }
    }
}

impl RemoteArgs {
    /// These options on a context builder.
    pub fn apply(&self, mut b: hoist_ops::ContextBuilder) -> hoist_ops::ContextBuilder {
        b = b
            .retries(self.retries)
            .skip_tls_verify(self.skip_tls_verify);
        for h in &self.insecure {
            b = b.insecure(h.clone());
        }
        for f in &self.ca_file {
            b = b.ca_file(f.clone());
        }
        b
    }
}

/// Where sealed layers go: the options of the verbs that use the content cache.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Cache options")]
pub struct CacheArgs {
    /// The content cache directory [default: $XDG_CACHE_HOME/hoist, else ~/.cache/hoist].
    #[arg(long, env = "HOIST_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not use the content cache: compress into temporary files.
    #[arg(long)]
    pub no_cache: bool,
    /// Keep the content cache under this size, evicting least recently used layers (e.g. 20GiB).
    #[arg(long, env = "HOIST_CACHE_MAX", value_name = "SIZE", value_parser = crate::cmd::cache::parse_size)]
    pub cache_max: Option<u64>,
}

impl CacheArgs {
    /// The cache directory in effect.
    pub fn dir(&self) -> anyhow::Result<PathBuf> {
        match &self.cache_dir {
            Some(d) if !d.as_os_str().is_empty() => Ok(d.clone()),
            _ => hoist_image::Cache::default_dir().context(
                "no cache directory: set XDG_CACHE_HOME or HOME, or give --cache-dir / HOIST_CACHE_DIR",
            ),
        }
    }
}

/// How a verb prints its result.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Lines for people and `cut`/`awk`.
    #[default]
    Text,
    /// One JSON document.
    Json,
}

/// `--format` / `-o`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FormatArg {
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Text, value_name = "FORMAT")]
    pub format: Format,
}

/// A verb's context and its progress on stderr; see [`Ctx::build`].
pub struct Ctx<'a> {
    global: &'a Global,
    cache: Option<&'a CacheArgs>,
    remote: Option<&'a RemoteArgs>,
    jobs: Option<usize>,
}

/// A built context, with the progress reporter the CLI keeps to clear its bars.
pub struct Session {
    /// The context to pass to `hoist_ops`.
    pub ctx: Context,
    reporter: Reporter,
    verbose: bool,
    cache_disabled: bool,
}

impl<'a> Ctx<'a> {
    /// A context with the global options (`-q`: no progress and no retry notices).
    pub fn new(global: &'a Global) -> Ctx<'a> {
        Ctx {
            global,
            cache: None,
            remote: None,
            jobs: None,
        }
    }

    /// With the verb's cache options (without: temporary files).
    pub fn cache(mut self, c: &'a CacheArgs) -> Self {
        self.cache = Some(c);
        self
    }

    /// With the verb's registry options.
    pub fn remote(mut self, r: &'a RemoteArgs) -> Self {
        self.remote = Some(r);
        self
    }

    /// With `--jobs`.
    pub fn jobs(mut self, jobs: Option<usize>) -> Self {
        self.jobs = jobs;
        self
    }

    /// Build it.
    pub fn build(self) -> anyhow::Result<Session> {
        let mut b = Context::builder();
        if let Some(c) = self.cache {
            b = match (&c.cache_dir, c.no_cache) {
                (_, true) => b.no_cache(),
                (Some(d), false) if !d.as_os_str().is_empty() => b.cache_dir(d),
                _ => b.default_cache(),
            };
            if let Some(max) = c.cache_max {
                b = b.cache_max(max);
            }
        }
        if let Some(r) = self.remote {
            b = r.apply(b);
        }
        let reporter = Reporter::stderr(self.global.quiet);
        b = b.progress(reporter.sink());
        match self.jobs {
            Some(0) => anyhow::bail!("invalid --jobs 0: expected at least 1"),
            Some(j) => b = b.jobs(j),
            None => {}
        }
        Ok(Session {
            ctx: b.build()?,
            reporter,
            verbose: self.global.verbose,
            cache_disabled: self.cache.is_some_and(|c| c.no_cache),
        })
    }
}

impl Session {
    /// The work is done: clear the progress bars, and with `-v` say on stderr what the
    /// cache, the push engine and the client did.
    pub fn finish(&self, report: Option<&Report>) {
        self.reporter.finish();
        if !self.verbose {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.cache_disabled {
            let _ = writeln!(err, "cache disabled (--no-cache)");
        }
        if let Some(c) = self.ctx.opened_cache() {
            let s = c.stats();
            let _ = writeln!(
                err,
                "cache {}: {} hits, {} layers compressed, {} corrupt entries evicted, {} evicted for size",
                c.path().display(),
                s.hits,
                s.sealed,
                s.evicted_corrupt,
                s.evicted_lru
            );
        }
        if let Some(p) = report.and_then(|r| r.push.as_ref()) {
            let _ = writeln!(
                err,
                "blobs: {} present, {} mounted, {} uploaded ({}); manifests: {} put, {} unchanged",
                p.blobs_present,
                p.blobs_mounted,
                p.blobs_uploaded,
                crate::progress::size(p.bytes_uploaded),
                p.manifests_put,
                p.manifests_skipped
            );
        }
        if let Some(c) = self.ctx.opened_client() {
            let s = c.stats();
            let _ = writeln!(
                err,
                "registry client: {} requests, {} retries, {} re-authentications, {} uploads resumed, {} downloads resumed",
                s.requests, s.retries, s.reauths, s.resumes, s.downloads_resumed
            );
        }
    }
}

/// Parse one `--platform` value (os/arch[/variant]).
pub fn platform(p: Option<&str>) -> anyhow::Result<Option<Platform>> {
    p.map(|p| Platform::parse(p).with_context(|| format!("invalid --platform {p:?}")))
        .transpose()
}

/// Parse `--platform` where several platforms make sense: `all`, or a comma-separated
/// list of os/arch[/variant] (repeatable).
pub fn platforms(values: &[String]) -> anyhow::Result<Platforms> {
    let mut list = Vec::new();
    for v in values {
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if p == "all" {
                if values.len() > 1 || v.contains(',') {
                    anyhow::bail!("invalid --platform {v:?}: `all` goes alone");
                }
                return Ok(Platforms::All);
            }
            list.push(Platform::parse(p).with_context(|| format!("invalid --platform {p:?}"))?);
        }
    }
    Ok(if list.is_empty() {
        Platforms::Default
    } else {
        Platforms::List(list)
    })
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

/// Print the result of a verb that writes images: `REF@DIGEST` per destination (or the
/// JSON report). On stdout, unless an image went there (`-`): then on stderr.
pub fn print_report(dst: Option<&Location>, report: &Report, format: Format) -> anyhow::Result<()> {
    let text = match format {
        Format::Text => report
            .written
            .iter()
            .map(|w| format!("{}\n", w.reference()))
            .collect::<String>(),
        Format::Json => format!("{}\n", crate::json::report(report)),
    };
    if dst.is_some_and(Location::is_stdout) {
        std::io::stderr().write_all(text.as_bytes())?;
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
    }
    Ok(())
}

/// Print a JSON value on stdout, one line.
pub fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}")?;
    out.flush()?;
    Ok(())
}

/// The error for a registry location where only a local one (layout, tarball) is taken.
pub fn not_local(r: &Reference) -> anyhow::Error {
    anyhow::anyhow!(
        "docker://{r}: expected a local location here (oci:DIR, oci-archive:FILE or docker-archive:FILE); registries are reached with hoist pull, push and copy"
    )
}
