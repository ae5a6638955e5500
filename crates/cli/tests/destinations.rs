//! Destinations that are not regular files: a character device (`/dev/null`, `/dev/full`),
//! a fifo, or `-` (stdout) take the tarball as a stream, byte-identical to the file, and
//! are never replaced by a regular file; `pull REF -` creates no directory `-`; a write
//! error is one line naming the destination. Every verb that writes a file is covered.

use std::fs;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use hoist_testkit::registry::TestRegistry;

fn hoist(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .current_dir(dir)
        .env("HOIST_CACHE_DIR", dir.join("cache"))
        .env("HOME", dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: &Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.clone()
}

/// Failed with one error line, the last on stderr (progress lines may come before it).
fn fails(out: &Output, needles: &[&str]) {
    let all = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let errors: Vec<&str> = all.lines().filter(|l| l.starts_with("hoist: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {all}");
    assert_eq!(all.trim().lines().last(), Some(errors[0]), "{all}");
    let e = errors[0];
    for n in needles {
        assert!(e.contains(n), "{n:?} not in {e}");
    }
}

fn still_char_device(p: &str) {
    let t = fs::metadata(p).unwrap().file_type();
    assert!(t.is_char_device(), "{p} was replaced: {t:?}");
}

/// Run `args` (whose destination is the fifo `fifo`) while a thread reads the fifo;
/// returns what came through it.
fn through_fifo(args: &[&str], dir: &Path, fifo: &Path) -> Vec<u8> {
    let _ = fs::remove_file(fifo);
    let made = Command::new("mkfifo").arg(fifo).status().unwrap();
    assert!(made.success(), "mkfifo");
    let reader = {
        let fifo = fifo.to_path_buf();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            fs::File::open(&fifo)
                .unwrap()
                .read_to_end(&mut buf)
                .unwrap();
            buf
        })
    };
    ok(&hoist(args, dir));
    let got = reader.join().unwrap();
    assert!(
        fs::symlink_metadata(fifo).unwrap().file_type().is_fifo(),
        "the fifo was replaced"
    );
    got
}

#[test]
fn pull_into_stdout_devices_and_fifos() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    ok(&hoist(
        &[
            "random",
            "docker-archive:src.tar",
            "--layers",
            "2",
            "--size",
            "64k",
        ],
        dir,
    ));
    let r = format!("{}/dest/app:v1", reg.host());
    ok(&hoist(&["push", "--quiet", "src.tar", &r], dir));
    ok(&hoist(&["pull", &r, "file.tar"], dir));
    let want = fs::read(dir.join("file.tar")).unwrap();

    // `-`: the tarball on stdout, the result line on stderr, no directory named `-`.
    let out = hoist(&["pull", &r, "-"], dir);
    assert_eq!(ok(&out), want);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("docker-archive:-@sha256:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !dir.join("-").exists(),
        "pull REF - made a file or directory"
    );
    let out = hoist(&["pull", &r, "docker-archive:-"], dir);
    assert_eq!(ok(&out), want);

    let fifo = dir.join("fifo");
    assert_eq!(
        through_fifo(&["pull", &r, fifo.to_str().unwrap()], dir, &fifo),
        want
    );

    ok(&hoist(&["pull", &r, "/dev/null"], dir));
    still_char_device("/dev/null");
    fails(
        &hoist(&["pull", &r, "/dev/full"], dir),
        &["/dev/full: No space left on device"],
    );
    still_char_device("/dev/full");
}

#[test]
fn copy_export_and_random_into_stdout_devices_and_fifos() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    ok(&hoist(
        &[
            "random",
            "docker-archive:src.tar",
            "--layers",
            "2",
            "--size",
            "64k",
        ],
        dir,
    ));
    ok(&hoist(&["copy", "src.tar", "docker-archive:file.tar"], dir));
    let want = fs::read(dir.join("file.tar")).unwrap();
    ok(&hoist(&["export", "src.tar", "fs.tar"], dir));
    let want_fs = fs::read(dir.join("fs.tar")).unwrap();

    // copy
    assert_eq!(ok(&hoist(&["copy", "src.tar", "-"], dir)), want);
    let fifo = dir.join("fifo");
    assert_eq!(
        through_fifo(&["copy", "src.tar", fifo.to_str().unwrap()], dir, &fifo),
        want
    );
    ok(&hoist(&["copy", "src.tar", "/dev/null"], dir));
    still_char_device("/dev/null");
    fails(
        &hoist(&["copy", "src.tar", "/dev/full"], dir),
        &["/dev/full: No space left on device"],
    );
    still_char_device("/dev/full");
    fails(
        &hoist(&["copy", "-", "docker-archive:x.tar"], dir),
        &["stdout is a destination"],
    );

    // export
    assert_eq!(ok(&hoist(&["export", "src.tar", "-"], dir)), want_fs);
    assert_eq!(
        through_fifo(&["export", "src.tar", fifo.to_str().unwrap()], dir, &fifo),
        want_fs
    );
    fails(
        &hoist(&["export", "src.tar", "/dev/full"], dir),
        &["/dev/full: No space left on device"],
    );
    still_char_device("/dev/full");

    // random (and through it every verb that writes with the location sink)
    let out = hoist(
        &[
            "random", "-", "--layers", "1", "--size", "4k", "--seed", "3",
        ],
        dir,
    );
    let streamed = ok(&out);
    ok(&hoist(
        &[
            "random",
            "docker-archive:r.tar",
            "--layers",
            "1",
            "--size",
            "4k",
            "--seed",
            "3",
        ],
        dir,
    ));
    assert_eq!(streamed, fs::read(dir.join("r.tar")).unwrap());
    fails(
        &hoist(&["random", "/dev/full", "--size", "4k"], dir),
        &["/dev/full: No space left on device"],
    );
    still_char_device("/dev/full");

    // A symlink to a file: the file is replaced, the link stays a link.
    std::os::unix::fs::symlink("file.tar", dir.join("link.tar")).unwrap();
    fs::write(dir.join("file.tar"), b"old").unwrap();
    ok(&hoist(&["copy", "src.tar", "docker-archive:link.tar"], dir));
    assert!(
        fs::symlink_metadata(dir.join("link.tar"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(dir.join("file.tar")).unwrap(), want);
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    ok(&hoist(
        &[
            "random",
            "docker-archive:src.tar",
            "--layers",
            "1",
            "--size",
            "4M",
            "--mode",
            "random",
        ],
        dir,
    ));
    for args in [["copy", "src.tar", "-"], ["export", "src.tar", "-"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hoist"))
            .args(args)
            .current_dir(dir)
            .env("HOIST_CACHE_DIR", dir.join("cache"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut head = [0u8; 512];
        child.stdout.take().unwrap().read_exact(&mut head).unwrap();
        // The pipe's read end is closed here; hoist gets EPIPE on its next write.
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
