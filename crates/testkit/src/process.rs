//! Child processes in tests: the hoist binary and real peers run as a user runs them.

use std::process::Command;

/// Runs `cmd` to completion and returns its stdout (UTF-8). Panics, naming `what` (the
/// command as the reader should see it, e.g. `hoist ["pull", ...]`) and showing its
/// stderr, when it cannot start or exits unsuccessfully.
pub fn stdout_of(cmd: &mut Command, what: impl std::fmt::Display) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
