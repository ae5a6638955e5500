//! Progress on stderr for pushes, pulls and copies: bars on a terminal, a line per blob
//! otherwise, nothing with `--quiet`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hoist_image::Digest;
use hoist_remote::Repository;
use hoist_remote::push::{self, BlobOutcome, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

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
pub fn stderr(quiet: bool) -> Arc<dyn Progress> {
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
