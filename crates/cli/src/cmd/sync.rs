//! `hoist sync SOURCE DEST [--tags RE] [--exclude RE] [--semver RANGE] [--latest N]
//! [--platform LIST] [--referrers] [--jobs N] [--dry-run] [--state FILE]`, or
//! `hoist sync --config FILE`: mirror repositories and tags registry to registry
//! ([`hoist_ops::sync`]).
//!
//! stderr: a line per image as it is done (copied, unchanged, failed), retries and
//! rate-limit slowdowns, an overall bar on a terminal, and a summary. stdout: `REF@DIGEST`
//! of every image at the destination (or with `--dry-run`, the plan: what would be
//! copied and how many bytes), or the JSON report. Exit status 1 when any image failed.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use hoist_image::Digest;
use hoist_ops::Context;
use hoist_ops::sync::{self, Config, Image, OneOrMany, Outcome, Report, Spec};
use hoist_remote::Repository;
use hoist_remote::mirror::Moved;
use hoist_remote::push::{BlobOutcome, Progress, Retrying, Throttled};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::options::{Format, FormatArg, Global, RemoteArgs, print_json};
use crate::progress::{retry_line, size, throttle_line};

/// Arguments of `hoist sync`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Source: HOST (every repository), HOST/PREFIX (every repository the catalog lists
    /// under PREFIX; a registry without a catalog reads it as one repository), HOST/REPO
    /// (every tag), or HOST/REPO:TAG (one tag).
    #[arg(required_unless_present = "config")]
    pub source: Option<String>,
    /// Destination: HOST or HOST/PREFIX (repositories keep the part of their name after
    /// the source's PREFIX; a bare HOST keeps full names), or HOST/REPO.
    #[arg(required_unless_present = "config")]
    pub destination: Option<String>,
    /// Many pairs, each with its own options, in a YAML file (see the README); options
    /// given here apply to the pairs that do not set them.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["source", "destination"])]
    pub config: Option<PathBuf>,
    /// Only tags the whole of which match this regular expression (`v1\..*`).
    #[arg(long, value_name = "REGEX")]
    pub tags: Option<String>,
    /// Not tags the whole of which match this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub exclude: Option<String>,
    /// Only tags that are versions in this range (`>=1.2, <2`; a leading v and 1-2 part
    /// versions are read as versions: `v3.19` is 3.19.0).
    #[arg(long, value_name = "RANGE")]
    pub semver: Option<String>,
    /// Only the N newest tags: versions in version order after every tag that is not a
    /// version (those in natural order: build-9 before build-10).
    #[arg(long, value_name = "N")]
    pub latest: Option<usize>,
    /// Platforms of indexes to copy: `all` (the default), one os/arch[/variant] (that
    /// image alone), or several, comma-separated or repeated (an index of those).
    #[arg(long, value_name = "PLATFORMS")]
    pub platform: Vec<String>,
    /// Copy the referrers of every image too (signatures, attestations, SBOMs),
    /// recursively, through the referrers API or the tag schema (sha256-<hex> tags).
    #[arg(long)]
    pub referrers: bool,
    /// Blob transfers in flight across all images [default: 4].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Copy nothing: print what would be copied, and how many bytes.
    #[arg(long)]
    pub dry_run: bool,
    /// The state file, which lets an interrupted sync continue where it stopped
    /// [default: sync-state.jsonl in the cache directory].
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Keep no state file.
    #[arg(long, conflicts_with = "state")]
    pub no_state: bool,
    #[command(flatten)]
    pub format: FormatArg,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

impl Args {
    /// The command line's pair options (defaults for a config's pairs).
    fn spec(&self) -> Spec {
        Spec {
            source: self.source.clone(),
            destination: self.destination.clone(),
            tags: self.tags.clone(),
            exclude: self.exclude.clone(),
            semver: self.semver.clone(),
            latest: self.latest,
            platforms: (!self.platform.is_empty()).then(|| OneOrMany::Many(self.platform.clone())),
            referrers: self.referrers.then_some(true),
        }
    }

    fn state_file(&self) -> anyhow::Result<Option<PathBuf>> {
        if self.no_state {
            return Ok(None);
        }
        if let Some(s) = &self.state {
            return Ok(Some(s.clone()));
        }
        let dir = match std::env::var_os("HOIST_CACHE_DIR").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => hoist_image::Cache::default_dir().context(
                "no cache directory for the state file: set XDG_CACHE_HOME or HOME, or give --state FILE or --no-state",
            )?,
        };
        Ok(Some(dir.join(sync::STATE_FILE)))
    }
}

/// Run `hoist sync`.
pub fn run(args: &Args, g: &Global) -> anyhow::Result<()> {
    let defaults = args.spec();
    let (pairs, jobs) = match &args.config {
        Some(f) => {
            let c = Config::read(f)?;
            let pairs = c
                .sync
                .into_iter()
                .map(|s| s.over(&defaults).pair())
                .collect::<hoist_ops::Result<Vec<_>>>()?;
            (pairs, args.jobs.or(c.jobs))
        }
        None => (vec![defaults.pair()?], args.jobs),
    };
    if jobs == Some(0) {
        anyhow::bail!("invalid --jobs 0: expected at least 1");
    }
    let progress = Arc::new(Images::new(g.quiet, args.dry_run));
    let mut b = args
        .remote
        .apply(Context::builder())
        .progress(progress.clone());
    if let Some(j) = jobs {
        b = b.jobs(j);
    }
    let ctx = b.build()?;
    let opts = sync::Options {
        dry_run: args.dry_run,
        state: args.state_file()?,
        watch: progress.clone(),
        ..sync::Options::default()
    };
    let report = sync::sync(&pairs, &opts, &ctx);
    progress.finish();
    let report = report?;
    if !g.quiet {
        progress.say(&summary(&report));
    }
    match args.format.format {
        Format::Json => print_json(&json(&report))?,
        Format::Text => {
            let mut out = std::io::stdout().lock();
            for i in &report.images {
                if report.dry_run {
                    if i.outcome == Outcome::Planned {
                        writeln!(
                            out,
                            "{} -> {}: {}",
                            i.source,
                            i.destination,
                            moved(&i.moved)
                        )?;
                    }
                } else if let Some(r) = i.reference() {
                    writeln!(out, "{r}")?;
                }
            }
            out.flush()?;
        }
    }
    let failed = report.failed();
    if failed > 0 {
        let mut err = std::io::stderr().lock();
        for i in &report.images {
            if let Outcome::Failed(why) = &i.outcome {
                let _ = writeln!(err, "hoist: sync: {} -> {}: {why}", i.source, i.destination);
            }
        }
        anyhow::bail!(
            "sync: {failed} of {} failed (the others are done; run it again to retry)",
            report.images.len()
        );
    }
    Ok(())
}

/// `2 blobs (1.5 MiB) uploaded, 3 mounted, 1 referrer`.
fn moved(m: &Moved) -> String {
    let mut parts = vec![format!(
        "{} blob{} ({}) to upload",
        m.blobs_uploaded,
        if m.blobs_uploaded == 1 { "" } else { "s" },
        size(m.bytes_uploaded)
    )];
    if m.blobs_mounted > 0 {
        parts.push(format!("{} to mount", m.blobs_mounted));
    }
    if m.referrers > 0 {
        parts.push(format!(
            "{} referrer{}",
            m.referrers,
            if m.referrers == 1 { "" } else { "s" }
        ));
    }
    parts.join(", ")
}

fn short(d: &Digest) -> &str {
    &d.hex()[..12]
}

/// The line for an image as it is done.
fn line(i: &Image) -> String {
    let m = &i.moved;
    let what = || {
        let mut parts = vec![format!(
            "{} uploaded ({}), {} mounted",
            m.blobs_uploaded,
            size(m.bytes_uploaded),
            m.blobs_mounted
        )];
        if m.referrers > 0 {
            parts.push(format!("{} referrers", m.referrers));
        }
        parts.join(", ")
    };
    let at = i
        .digest
        .as_ref()
        .map_or(String::new(), |d| format!("@{}", short(d)));
    match &i.outcome {
        Outcome::Copied => format!(
            "copied    {} -> {}{at} ({})",
            i.source,
            i.destination,
            what()
        ),
        Outcome::Unchanged => format!("unchanged {}", i.source),
        Outcome::Planned => format!(
            "would copy {} -> {} ({})",
            i.source,
            i.destination,
            moved(m)
        ),
        Outcome::Failed(why) => format!("FAILED    {} -> {}: {why}", i.source, i.destination),
    }
}

fn summary(r: &Report) -> String {
    let m = &r.moved;
    let images = if r.dry_run {
        format!("{} to copy, {} unchanged", r.planned(), r.unchanged())
    } else {
        format!("{} copied, {} unchanged", r.copied(), r.unchanged())
    };
    format!(
        "sync{}: {images}, {} failed; blobs: {} {} ({}), {} {}, {} present; {} referrers; {} registry requests",
        if r.dry_run { " (dry run)" } else { "" },
        r.failed(),
        m.blobs_uploaded,
        if r.dry_run { "to upload" } else { "uploaded" },
        size(m.bytes_uploaded),
        m.blobs_mounted,
        if r.dry_run { "to mount" } else { "mounted" },
        m.blobs_present,
        m.referrers,
        r.requests
    )
}

fn moved_json(m: &Moved) -> Value {
    json!({
        "blobs": {
            "uploaded": m.blobs_uploaded,
            "mounted": m.blobs_mounted,
            "present": m.blobs_present,
            "bytesUploaded": m.bytes_uploaded,
        },
        "manifestsPut": m.manifests_put,
        "referrers": m.referrers,
    })
}

/// The `--format json` report.
fn json(r: &Report) -> Value {
    let images: Vec<Value> = r
        .images
        .iter()
        .map(|i| {
            let (outcome, reason) = match &i.outcome {
                Outcome::Copied => ("copied", None),
                Outcome::Unchanged => ("unchanged", None),
                Outcome::Planned => ("planned", None),
                Outcome::Failed(why) => ("failed", Some(why.clone())),
            };
            let mut o = json!({
                "source": i.source,
                "destination": i.destination,
                "digest": i.digest.as_ref().map(ToString::to_string),
                "outcome": outcome,
                "moved": moved_json(&i.moved),
            });
            if let Some(r) = reason {
                o["reason"] = json!(r);
            }
            if let Some(reference) = i.reference() {
                o["reference"] = json!(reference);
            }
            o
        })
        .collect();
    json!({
        "dryRun": r.dry_run,
        "images": images,
        "summary": {
            "copied": r.copied(),
            "unchanged": r.unchanged(),
            "planned": r.planned(),
            "failed": r.failed(),
            "moved": moved_json(&r.moved),
            "requests": r.requests,
        },
    })
}

/// The progress of a sync on stderr: a line per image done, retries and rate-limit
/// slowdowns, and on a terminal an overall bar (images done of all, bytes sent).
struct Images {
    quiet: bool,
    dry_run: bool,
    bar: Option<ProgressBar>,
    /// Bytes of blobs uploaded so far.
    sent: AtomicU64,
    lock: Mutex<()>,
}

impl Images {
    fn new(quiet: bool, dry_run: bool) -> Images {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            // The length grows as repositories are listed (`inc_length` adds to a known
            // length only).
            let pb = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            pb.set_style(
                ProgressStyle::with_template(
                    "{spinner} images {pos}/{len} [{bar:30}] {msg} {elapsed}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            pb.enable_steady_tick(Duration::from_millis(200));
            pb
        });
        Images {
            quiet,
            dry_run,
            bar,
            sent: AtomicU64::new(0),
            lock: Mutex::new(()),
        }
    }

    fn say(&self, line: &str) {
        let _g = self.lock.lock();
        match &self.bar {
            Some(b) => b.suspend(|| {
                let _ = writeln!(std::io::stderr(), "{line}");
            }),
            None => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl sync::Watch for Images {
    fn planned(&self, images: usize) {
        if let Some(b) = &self.bar {
            b.inc_length(images as u64);
        }
    }
    fn image(&self, i: &Image) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
        if !self.quiet {
            self.say(&line(i));
        }
    }
}

impl Progress for Images {
    fn retrying(&self, r: &Retrying<'_>) {
        if !self.quiet {
            self.say(&retry_line(r));
        }
    }
    fn throttled(&self, t: &Throttled<'_>) {
        if !self.quiet {
            self.say(&throttle_line(t));
        }
    }
    fn blob_done(&self, _repo: &Repository, _d: &Digest, sz: u64, how: BlobOutcome) {
        if let Some(b) = &self.bar
            && how == BlobOutcome::Uploaded
            && !self.dry_run
        {
            let sent = self.sent.fetch_add(sz, Ordering::Relaxed) + sz;
            b.set_message(format!("{} sent", size(sent)));
        }
    }
}
