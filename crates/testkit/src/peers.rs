//! Real peers that no one here wrote, found on PATH.
//!
//! A test that needs a peer calls [`require`]. When the peer is missing the test is
//! skipped with a note on stderr, unless `HOIST_REQUIRE_PEERS=1` (set by the project's
//! test command, `scripts/test.sh`, which installs the peers), in which case it fails.

use std::path::PathBuf;

/// The environment variable that turns a missing peer into a test failure.
pub const REQUIRE_ENV: &str = "HOIST_REQUIRE_PEERS";

/// Find `program` on PATH (or at an absolute path). `None` means: skip this test
/// (a note is printed). Panics when the peer is missing and peers are required.
pub fn require(program: &str) -> Option<PathBuf> {
    if let Some(p) = which(program) {
        return Some(p);
    }
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!("{program} is required ({REQUIRE_ENV}=1) but not found on PATH: apt-get install it");
    }
    eprintln!("skipping: {program} not found on PATH (set {REQUIRE_ENV}=1 to make this a failure)");
    None
}

/// Locate an executable on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let p = PathBuf::from(program);
    if p.is_absolute() {
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|c| c.is_file())
    })
}
