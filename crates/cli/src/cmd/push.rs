//! `hoist push SRC DST [DST...]`: push an image (or index) from a layout or a docker-save
//! tarball to one or more registry destinations. Prints one `REF@DIGEST` per destination
//! on stdout; progress on stderr (bars on a terminal, plain lines otherwise, nothing
//! with `--quiet`).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hoist_image::Child;
use hoist_image::pipeline::{self, Encoding};
use hoist_image::{Digest, Reference, Store};
use hoist_remote::push::{self, BlobOutcome, Progress};
use hoist_remote::{Client, DockerConfig, Repository, Target};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::cmd::cache::CacheOpts;
use crate::location::Location;

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

impl RemoteArgs {
    /// A client with credentials from docker's config.json.
    pub fn client(&self) -> anyhow::Result<Client> {
        let mut b = Client::builder().retries(self.retries);
        if let Ok(dc) = DockerConfig::new() {
            b = b.keychain(Arc::new(dc));
        }
        for r in &self.insecure {
            b = b.insecure(r.clone());
        }
        Ok(b.build()?)
    }
}

/// Arguments of `hoist push`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: oci:DIR[:NAME], docker-archive:FILE[:REF], or a path.
    pub src: String,
    /// Destinations: registry references (host[:port]/name[:tag]); `latest` when no tag.
    #[arg(required = true)]
    pub dst: Vec<String>,
    /// Blob requests in flight.
    #[arg(long, default_value_t = push::DEFAULT_JOBS)]
    pub jobs: usize,
    /// Upload in chunks of this many bytes (PATCH with Content-Range); suffixes k, M, G.
    #[arg(long, value_parser = crate::cmd::random::parse_size)]
    pub chunk_size: Option<u64>,
    /// head-first: compress each layer once into the cache, then HEAD / mount / upload
    /// (a re-push compresses nothing). stream: compress straight into the uploads (gzip),
    /// no spool; every layer is compressed on every push.
    #[arg(long, value_enum, default_value_t = StrategyArg::HeadFirst)]
    pub strategy: StrategyArg,
    /// gzip level for layers that need compressing (tarballs): 0-12. Default 1 (fastest:
    /// the layer goes on the network now); 6 is as small as pigz -6.
    #[arg(long)]
    pub level: Option<u32>,
    /// gzip with ISA-L's igzip (level 1, about 1.5x faster than the default). Its bytes
    /// depend on the CPU family (x86-64 with AVX2 vs ARM and older x86), so the layer
    /// digests are not the same on every machine.
    #[arg(long, conflicts_with = "level")]
    pub fast: bool,
    /// No progress on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// `--strategy` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyArg {
    /// Seal through the cache, then HEAD, mount or upload.
    HeadFirst,
    /// Upload while compressing.
    Stream,
}

/// Open a local location as a push source; tarball layers are sealed (gzip) into `store`.
pub fn open_source(
    loc: &Location,
    store: Arc<dyn Store>,
    encoding: &Encoding,
) -> anyhow::Result<Child> {
    if let Location::Registry(r) = loc {
        bail!(
            "docker://{r}: hoist push takes a local image; copy between registries with hoist copy docker://SRC docker://DST"
        );
    }
    loc.open_local(encoding, Some(store))
}

/// Parse a destination argument.
pub fn target(s: &str) -> anyhow::Result<Target> {
    let s = s.strip_prefix("docker://").unwrap_or(s);
    let r = Reference::parse(s).with_context(|| format!("invalid destination {s:?}"))?;
    Ok(Target::from_reference(&r)?)
}

pub fn run(args: &Args, cache: &CacheOpts) -> anyhow::Result<()> {
    let src = Location::parse(&args.src)?;
    let targets = args
        .dst
        .iter()
        .map(|d| target(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let stores = cache.store()?;
    // The push memory (which repository holds which blob) lives beside the cache.
    let memory_dir = stores.cache.as_ref().map(|c| c.path().join("remote"));
    let mut encoding = Encoding::gzip();
    encoding.level = Some(args.level.unwrap_or(pipeline::DEFAULT_PUSH_GZIP_LEVEL));
    if args.fast {
        encoding = encoding.fast();
    }
    encoding.validate().context("invalid --level")?;
    let source = open_source(&src, stores.store, &encoding)?;
    let opts = push::Options {
        strategy: match args.strategy {
            StrategyArg::HeadFirst => push::Strategy::HeadFirst,
            StrategyArg::Stream => push::Strategy::Stream(encoding.clone()),
        },
        jobs: args.jobs,
        chunk_size: args.chunk_size,
        memory_dir,
        ..push::Options::default()
    };
    let pushed = push_source(source, &targets, &opts, &args.remote, args.quiet)
        .with_context(|| format!("pushing {src}"))?;
    let mut out = std::io::stdout().lock();
    for p in &pushed {
        writeln!(out, "{p}")?;
    }
    Ok(())
}

/// Push an opened source to registry targets, with progress on stderr unless `quiet`.
/// Returns the `REF@DIGEST` lines. (`hoist copy` to a registry calls this too.)
pub fn push_source(
    source: Child,
    targets: &[Target],
    opts: &push::Options,
    remote: &RemoteArgs,
    quiet: bool,
) -> anyhow::Result<Vec<String>> {
    let client = remote.client()?;
    let progress = progress(quiet);
    let rt = runtime()?;
    let report = rt.block_on(push::push(&client, source, targets, opts, progress.clone()));
    drop(progress);
    Ok(report?.pushed.iter().map(|p| p.to_string()).collect())
}

/// The CLI's runtime: the library's blocking work (sealing, reading) runs on its
/// blocking pool; two workers drive the I/O.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn short(d: &Digest) -> &str {
    &d.hex()[..12]
}

/// Human sizes: 1.5 MiB.
pub fn size(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// Progress on stderr (pushes and pulls): bars on a terminal, plain lines otherwise,
/// nothing when `quiet`. Drop it before printing results, so the bars are cleared.
pub fn progress(quiet: bool) -> Arc<dyn Progress> {
    if quiet {
        Arc::new(push::NoProgress)
    } else if std::io::stderr().is_terminal() {
        Arc::new(Bars::new())
    } else {
        Arc::new(Lines::default())
    }
}

/// Plain progress lines (stderr is not a terminal).
#[derive(Default)]
struct Lines {
    lock: Mutex<()>,
}

impl Progress for Lines {
    fn blob_done(&self, repo: &Repository, digest: &Digest, sz: u64, how: BlobOutcome) {
        let _g = self.lock.lock();
        let how = match how {
            BlobOutcome::Present => "exists",
            BlobOutcome::Mounted => "mounted",
            BlobOutcome::Uploaded => "pushed",
            BlobOutcome::Downloaded => "pulled",
        };
        let _ = writeln!(
            std::io::stderr(),
            "{repo}: {} {how} ({})",
            short(digest),
            size(sz)
        );
    }
    fn manifest_done(&self, repo: &Repository, reference: &str, _d: &Digest, skipped: bool) {
        let _g = self.lock.lock();
        let how = if skipped { "unchanged" } else { "pushed" };
        let _ = writeln!(std::io::stderr(), "{repo}: manifest {reference} {how}");
    }
}

/// Bars: one per blob being uploaded, one for the total.
struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    blobs: Mutex<HashMap<(String, Digest), (ProgressBar, u64)>>,
    started: Instant,
}

impl Bars {
    fn new() -> Bars {
        let multi = MultiProgress::new();
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template(
                "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        total.set_message("total");
        total.enable_steady_tick(Duration::from_millis(200));
        Bars {
            multi,
            total,
            blobs: Mutex::new(HashMap::new()),
            started: Instant::now(),
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.total.finish_and_clear();
        let _ = self.multi.clear();
        let _ = self.started;
    }
}

impl Progress for Bars {
    fn blob_started(&self, repo: &Repository, digest: &Digest, sz: u64) {
        let pb = self.multi.insert_before(&self.total, ProgressBar::new(sz));
        pb.set_style(
            ProgressStyle::with_template("{msg:>12} [{bar:30}] {bytes}/{total_bytes}")
                .expect("static template")
                .progress_chars("=> "),
        );
        pb.set_message(short(digest).to_string());
        self.total.inc_length(sz);
        self.blobs
            .lock()
            .unwrap()
            .insert((repo.to_string(), digest.clone()), (pb, 0));
    }
    fn blob_progress(&self, repo: &Repository, digest: &Digest, done: u64) {
        let mut blobs = self.blobs.lock().unwrap();
        if let Some((pb, last)) = blobs.get_mut(&(repo.to_string(), digest.clone())) {
            pb.set_position(done);
            if done >= *last {
                self.total.inc(done - *last);
            } else {
                self.total
                    .set_position(self.total.position().saturating_sub(*last - done));
            }
            *last = done;
        }
    }
    fn blob_done(&self, repo: &Repository, digest: &Digest, sz: u64, how: BlobOutcome) {
        if let Some((pb, _)) = self
            .blobs
            .lock()
            .unwrap()
            .remove(&(repo.to_string(), digest.clone()))
        {
            pb.finish_and_clear();
        }
        if how == BlobOutcome::Present || how == BlobOutcome::Mounted {
            let how = if how == BlobOutcome::Mounted {
                "mounted"
            } else {
                "exists"
            };
            self.multi.suspend(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "{repo}: {} {how} ({})",
                    short(digest),
                    size(sz)
                );
            });
        }
    }
    fn manifest_done(&self, repo: &Repository, reference: &str, _d: &Digest, skipped: bool) {
        let how = if skipped { "unchanged" } else { "pushed" };
        self.multi.suspend(|| {
            let _ = writeln!(std::io::stderr(), "{repo}: manifest {reference} {how}");
        });
    }
}
