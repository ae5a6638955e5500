//! Headless Chromium (Debian's `chromium` package) for tests of the web page: the DOM after
//! scripts ran (`--dump-dom`) and screenshots at a laptop's and a phone's window size.
//!
//! Each call is a fresh browser with a fresh profile, no network beyond the page's own
//! (no sync, no component updates, no background requests), bounded in time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one browser run may take before it is killed and the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// A laptop's window (CSS pixels).
pub const LAPTOP: (u32, u32) = (1280, 900);
/// A phone's window (CSS pixels; an iPhone 14's width).
pub const PHONE: (u32, u32) = (390, 844);

/// The Chromium binary; `None` means skip (see [`crate::peers::require`]).
#[derive(Debug)]
pub struct Chromium {
    bin: PathBuf,
}

impl Chromium {
    /// Find `chromium` on PATH.
    pub fn find() -> Option<Chromium> {
        crate::peers::require("chromium").map(|bin| Chromium { bin })
    }

    /// The DOM of `url` after its scripts ran, serialized.
    pub fn dump_dom(&self, url: &str) -> String {
        let out = self.run(&["--dump-dom", url]);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A PNG screenshot of `url` in a window of `size` (CSS pixels), written to `png`.
    pub fn screenshot(&self, url: &str, size: (u32, u32), png: &Path) {
        let _ = std::fs::remove_file(png);
        self.run(&[
            &format!("--screenshot={}", png.display()),
            &format!("--window-size={},{}", size.0, size.1),
            "--hide-scrollbars",
            url,
        ]);
        let len = std::fs::metadata(png).map(|m| m.len()).unwrap_or(0);
        assert!(
            len > 1000,
            "chromium wrote no screenshot of {url} to {}",
            png.display()
        );
    }

    fn run(&self, args: &[&str]) -> Vec<u8> {
        let profile = tempfile::tempdir().expect("profile dir");
        let out_file = tempfile::NamedTempFile::new().expect("stdout file");
        let mut child = Command::new(&self.bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--virtual-time-budget=5000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(out_file.reopen().expect("reopen stdout file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait for chromium") {
                assert!(status.success(), "chromium {args:?} failed: {status}");
                break;
            }
            if start.elapsed() > RUN_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium {args:?} took over {RUN_LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::read(out_file.path()).expect("read chromium's output")
    }
}
