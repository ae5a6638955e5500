//! Progress on stderr for every verb: bars on a terminal, a line per blob otherwise,
//! nothing with `--quiet`. Retries of the registry client are announced the same way.
//!
//! The bars: one per blob in flight, and a total. The total is a spinner counting bytes
//! until the operation announces what it moves in all ([`Progress::planned`]: a pull at
//! once, a push once its layers are sealed), then a bar whose length is set that once
//! and never changes; a blob adds to it only the bytes it has not added before (a resumed
//! upload does not count twice), and one found present or mounted adds its size. So the
//! total never shrinks, never passes its length, and reaches 100% once, with the last
//! blob.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_image::Digest;
use hoist_remote::Repository;
use hoist_remote::push::{BlobOutcome, NoProgress, Progress, Retrying, Throttled};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

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

fn outcome(how: BlobOutcome) -> &'static str {
    match how {
        BlobOutcome::Present => "exists",
        BlobOutcome::Mounted => "mounted",
        BlobOutcome::Uploaded => "pushed",
        BlobOutcome::Downloaded => "pulled",
    }
}

/// A registry's rate limit running low, in a line.
pub fn throttle_line(t: &Throttled<'_>) -> String {
    format!(
        "{}: rate limit low ({} of {} requests left): slowing down to one GET every {:.1} s",
        t.registry,
        t.remaining,
        t.limit,
        t.spacing.as_secs_f64()
    )
}

/// A retry, in a line.
pub fn retry_line(r: &Retrying<'_>) -> String {
    format!(
        "{}: retry {} of {} in {:.1} s",
        r.error,
        r.retry,
        r.retries,
        r.delay.as_secs_f64()
    )
}

/// The progress of one command: where its events go, and how to clear them at the end.
pub struct Reporter {
    kind: Kind,
}

enum Kind {
    Quiet,
    Lines(Arc<Lines>),
    Bars(Arc<Bars>),
}

impl Reporter {
    /// Bars when stderr is a terminal, lines otherwise, nothing when `quiet`.
    pub fn stderr(quiet: bool) -> Reporter {
        let kind = if quiet {
            Kind::Quiet
        } else if std::io::stderr().is_terminal() {
            Kind::Bars(Arc::new(Bars::new(ProgressDrawTarget::stderr())))
        } else {
            Kind::Lines(Arc::new(Lines::default()))
        };
        Reporter { kind }
    }

    /// The sink to give the library.
    pub fn sink(&self) -> Arc<dyn Progress> {
        match &self.kind {
            Kind::Quiet => Arc::new(NoProgress),
            Kind::Lines(l) => l.clone(),
            Kind::Bars(b) => b.clone(),
        }
    }

    /// The work is done: clear the bars (before result lines are printed).
    pub fn finish(&self) {
        if let Kind::Bars(b) = &self.kind {
            b.finish();
        }
    }
}

/// Plain progress lines (stderr is not a terminal): one per blob done, manifest and retry.
#[derive(Default)]
pub struct Lines {
    lock: Mutex<()>,
}

impl Lines {
    fn say(&self, line: &str) {
        let _g = self.lock.lock();
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

impl Progress for Lines {
    fn retrying(&self, r: &Retrying<'_>) {
        self.say(&retry_line(r));
    }
    fn throttled(&self, t: &Throttled<'_>) {
        self.say(&throttle_line(t));
    }
    fn blob_done(&self, repo: &Repository, digest: &Digest, sz: u64, how: BlobOutcome) {
        self.say(&format!(
            "{repo}: {} {} ({})",
            short(digest),
            outcome(how),
            size(sz)
        ));
    }
    fn local_done(&self, dst: &str, digest: &Digest, bytes: u64) {
        self.say(&format!(
            "{dst}: {} written ({})",
            short(digest),
            size(bytes)
        ));
    }
    fn manifest_done(&self, repo: &Repository, reference: &str, _d: &Digest, skipped: bool) {
        let how = if skipped { "unchanged" } else { "pushed" };
        self.say(&format!("{repo}: manifest {reference} {how}"));
    }
}

/// Bars on a terminal; see the module docs.
pub struct Bars {
    multi: MultiProgress,
    state: Mutex<State>,
}

/// One blob's bar and what it added to the total.
struct Blob {
    bar: ProgressBar,
    counted: u64,
    size: Option<u64>,
}

#[derive(Default)]
struct State {
    total: Option<ProgressBar>,
    /// The total's length, once planned.
    planned: Option<u64>,
    /// Bytes counted into the total.
    done: u64,
    blobs: HashMap<(String, Digest), Blob>,
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("static template")
        .progress_chars("=> ")
}

impl Bars {
    /// Bars drawn to `target` (stderr; hidden in tests).
    pub fn new(target: ProgressDrawTarget) -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(target),
            state: Mutex::new(State::default()),
        }
    }

    fn line(&self, line: &str) {
        self.multi.suspend(|| {
            let _ = writeln!(std::io::stderr(), "{line}");
        });
    }

    /// The total bar, made on first use: a spinner until planned.
    fn total<'s>(&self, st: &'s mut State) -> &'s ProgressBar {
        st.total.get_or_insert_with(|| {
            let pb = self.multi.add(ProgressBar::no_length());
            pb.set_style(
                ProgressStyle::with_template("{spinner} {msg:>12} {bytes} {bytes_per_sec}")
                    .expect("static template"),
            );
            pb.set_message("total");
            pb.enable_steady_tick(Duration::from_millis(200));
            pb
        })
    }

    /// Count `n` more bytes into the total (never past its planned length).
    fn count(&self, st: &mut State, n: u64) {
        if n == 0 {
            return;
        }
        st.done += n;
        let done = match st.planned {
            Some(p) => st.done.min(p),
            None => st.done,
        };
        self.total(st).set_position(done);
    }

    fn start(&self, key: (String, Digest), len: Option<u64>) {
        let mut st = self.state.lock().expect("bars lock");
        let total = self.total(&mut st).clone();
        let bar = self.multi.insert_before(
            &total,
            match len {
                Some(n) => ProgressBar::new(n),
                None => ProgressBar::no_length(),
            },
        );
        bar.set_style(match len {
            Some(_) => bar_style("{msg:>12} [{bar:30}] {bytes}/{total_bytes}"),
            None => bar_style("{msg:>12} {spinner} {bytes}"),
        });
        bar.set_message(short(&key.1).to_string());
        st.blobs.insert(
            key,
            Blob {
                bar,
                counted: 0,
                size: len,
            },
        );
    }

    fn advance(&self, key: &(String, Digest), done: u64) {
        let mut st = self.state.lock().expect("bars lock");
        let Some(b) = st.blobs.get_mut(key) else {
            return;
        };
        let done = b.size.map_or(done, |s| done.min(s));
        b.bar.set_position(done);
        let new = done.saturating_sub(b.counted);
        b.counted = b.counted.max(done);
        self.count(&mut st, new);
    }

    fn end(&self, key: &(String, Digest), size: u64) {
        let mut st = self.state.lock().expect("bars lock");
        let counted = match st.blobs.remove(key) {
            Some(b) => {
                b.bar.finish_and_clear();
                b.counted
            }
            None => 0,
        };
        self.count(&mut st, size.saturating_sub(counted));
    }

    /// Clear everything.
    pub fn finish(&self) {
        let mut st = self.state.lock().expect("bars lock");
        for (_, b) in st.blobs.drain() {
            b.bar.finish_and_clear();
        }
        if let Some(t) = st.total.take() {
            t.finish_and_clear();
        }
        let _ = self.multi.clear();
    }

    /// The total's length (once planned) and position, for tests.
    #[cfg(test)]
    fn total_state(&self) -> (Option<u64>, u64) {
        let st = self.state.lock().expect("bars lock");
        let pos = st.total.as_ref().map_or(0, ProgressBar::position);
        (st.total.as_ref().and_then(ProgressBar::length), pos)
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Progress for Bars {
    fn planned(&self, bytes: u64) {
        let mut st = self.state.lock().expect("bars lock");
        // A second operation in one command (a copy of every tag): a new total.
        if let Some(p) = st.planned
            && st.done >= p
        {
            if let Some(t) = st.total.take() {
                t.finish_and_clear();
            }
            st.planned = None;
            st.done = 0;
        }
        if st.planned.is_some() {
            return;
        }
        let bytes = bytes.max(st.done);
        st.planned = Some(bytes);
        let done = st.done;
        let total = self.total(&mut st);
        total.set_style(bar_style(
            "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        ));
        total.set_length(bytes);
        total.set_position(done);
    }
    fn retrying(&self, r: &Retrying<'_>) {
        self.line(&retry_line(r));
    }
    fn throttled(&self, t: &Throttled<'_>) {
        self.line(&throttle_line(t));
    }
    fn blob_started(&self, repo: &Repository, digest: &Digest, sz: u64) {
        self.start((repo.to_string(), digest.clone()), Some(sz));
    }
    fn blob_progress(&self, repo: &Repository, digest: &Digest, done: u64) {
        self.advance(&(repo.to_string(), digest.clone()), done);
    }
    fn blob_done(&self, repo: &Repository, digest: &Digest, sz: u64, how: BlobOutcome) {
        self.end(&(repo.to_string(), digest.clone()), sz);
        if how == BlobOutcome::Present || how == BlobOutcome::Mounted {
            self.line(&format!(
                "{repo}: {} {} ({})",
                short(digest),
                outcome(how),
                size(sz)
            ));
        }
    }
    fn local_started(&self, dst: &str, digest: &Digest, sz: Option<u64>) {
        self.start((dst.to_string(), digest.clone()), sz);
    }
    fn local_progress(&self, dst: &str, digest: &Digest, done: u64) {
        self.advance(&(dst.to_string(), digest.clone()), done);
    }
    fn local_done(&self, dst: &str, digest: &Digest, bytes: u64) {
        self.end(&(dst.to_string(), digest.clone()), bytes);
    }
    fn manifest_done(&self, repo: &Repository, reference: &str, _d: &Digest, skipped: bool) {
        let how = if skipped { "unchanged" } else { "pushed" };
        self.line(&format!("{repo}: manifest {reference} {how}"));
    }
}

#[cfg(test)]
mod tests {
    //! The bars driven by real pushes and pulls (the in-process registry), checked after
    //! every event: the total's length is set once and never changes, its position never
    //! passes it, and it reaches 100% exactly once.

    use std::sync::Mutex;

    use hoist_image::{Reference, random, tarball};
    use hoist_ops::{Context, Location};
    use hoist_testkit::registry::TestRegistry;

    use super::*;

    #[derive(Default)]
    struct Seen {
        length: Option<u64>,
        lengths_set: u32,
        full: u32,
        last: u64,
        events: u32,
    }

    /// Forwards every event to the bars, then looks at their total.
    struct Checked {
        bars: Bars,
        seen: Mutex<Seen>,
    }

    impl Checked {
        fn new() -> Arc<Checked> {
            Arc::new(Checked {
                bars: Bars::new(ProgressDrawTarget::hidden()),
                seen: Mutex::new(Seen::default()),
            })
        }

        fn check(&self) {
            // The total is read under this lock: events come from many tasks, and a total
            // read before another task's check could be older than the one it recorded.
            let mut s = self.seen.lock().unwrap();
            let (length, pos) = self.bars.total_state();
            s.events += 1;
            assert!(
                pos >= s.last,
                "the total went back from {} to {pos}",
                s.last
            );
            if let Some(l) = length {
                if s.length != Some(l) {
                    assert!(
                        s.length.is_none(),
                        "the length changed from {:?} to {l}",
                        s.length
                    );
                    s.lengths_set += 1;
                    s.length = Some(l);
                }
                assert!(pos <= l, "position {pos} past the length {l}");
                if pos == l && s.last < l {
                    s.full += 1;
                }
            }
            s.last = pos;
        }

        /// After the operation: planned once, full once, at the end.
        fn assert_whole(&self) {
            let s = self.seen.lock().unwrap();
            assert!(s.events > 0);
            assert_eq!(s.lengths_set, 1, "the total's length is set once");
            assert_eq!(s.full, 1, "the total reaches 100% once");
            assert_eq!(Some(s.last), s.length, "it ends full");
        }
    }

    impl Progress for Checked {
        fn planned(&self, bytes: u64) {
            self.bars.planned(bytes);
            self.check();
        }
        fn blob_started(&self, r: &Repository, d: &Digest, size: u64) {
            self.bars.blob_started(r, d, size);
            self.check();
        }
        fn blob_progress(&self, r: &Repository, d: &Digest, done: u64) {
            self.bars.blob_progress(r, d, done);
            self.check();
        }
        fn blob_done(&self, r: &Repository, d: &Digest, size: u64, how: BlobOutcome) {
            self.bars.blob_done(r, d, size, how);
            self.check();
        }
    }

    fn context(progress: Arc<Checked>, cache: &std::path::Path) -> Context {
        Context::builder()
            .cache_dir(cache)
            .progress(progress)
            .build()
            .unwrap()
    }

    #[test]
    fn push_and_pull_totals_are_set_once_and_reach_100_percent_once() {
        let reg = TestRegistry::start();
        let t = tempfile::tempdir().unwrap();
        let tar = t.path().join("img.tar");
        let img = random::image(&random::Options {
            layers: 5,
            size: 600 << 10,
            mode: random::Mode::Text,
            seed: 3,
            ..Default::default()
        })
        .unwrap();
        let tag = Reference::parse("progress/app:v1").unwrap();
        tarball::write(&tar, img.as_ref(), &[tag]).unwrap();
        let src = Location::parse(tar.to_str().unwrap()).unwrap();
        let dsts = [
            Reference::parse(&format!("{}/progress/app:v1", reg.host())).unwrap(),
            Reference::parse(&format!("{}/progress/other:v1", reg.host())).unwrap(),
        ];
        let cache = t.path().join("cache");
        let opts = hoist_ops::push::Options {
            // Small chunks: many progress events per blob.
            chunk_size: Some(64 << 10),
            ..Default::default()
        };

        // A cold push: layers compressed as they go up, the total known once sealed.
        let p = Checked::new();
        hoist_ops::push::push(&src, &dsts, &opts, &context(p.clone(), &cache)).unwrap();
        p.assert_whole();

        // A re-push: every blob present.
        let p = Checked::new();
        hoist_ops::push::push(&src, &dsts, &opts, &context(p.clone(), &cache)).unwrap();
        p.assert_whole();

        // A pull: the total known before the first byte.
        let p = Checked::new();
        let dir = t.path().join("pulled");
        hoist_ops::pull::pull(
            &dsts[0],
            &Location::parse(&format!("oci:{}", dir.display())).unwrap(),
            &hoist_ops::pull::Options::default(),
            &context(p.clone(), &cache),
        )
        .unwrap();
        p.assert_whole();
    }
}
