//! The binary's contract: one line on stderr and exit code 1 for bad input, nothing half-written.

use std::fs;
use std::process::{Command, Output};

fn hoist(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .output()
        .unwrap()
}

fn fails_with(args: &[&str], want: &str) {
    let out = hoist(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: one line expected: {err}");
    assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_str().unwrap();
    fails_with(&["validate", "oci:"], "the directory is empty");
    fails_with(&["validate", dir], "no oci-layout");
    fails_with(&["validate", &format!("oci:{dir}")], "no oci-layout file");
    fails_with(&["validate", "docker://Bad/Repo"], "must be lowercase");
    // Port 1 on loopback: nothing listens there; the error names the URL and the cause.
    fails_with(
        &["validate", "docker://127.0.0.1:1/app"],
        "GET http://127.0.0.1:1/v2/: connection failed",
    );
    let junk = t.path().join("junk.tar");
    fs::write(&junk, b"this is not a tar archive at all").unwrap();
    fails_with(&["validate", junk.to_str().unwrap()], "junk.tar");
    fails_with(
        &["random", "docker://localhost:5000/x", "--size", "1k"],
        "expected a local location here",
    );
}

#[test]
fn random_then_validate_and_corruption_is_caught() {
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("l");
    let loc = format!("oci:{}:v1", l.display());
    let out = hoist(&[
        "random", &loc, "--layers", "2", "--size", "64k", "--seed", "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = String::from_utf8(out.stdout).unwrap().trim().to_string();
    // Deterministic: the same arguments give the same manifest digest.
    let again = hoist(&[
        "random",
        &format!("oci:{}:v2", l.display()),
        "--layers",
        "2",
        "--size",
        "64k",
        "--seed",
        "1",
    ]);
    assert_eq!(String::from_utf8(again.stdout).unwrap().trim(), digest);
    assert!(hoist(&["validate", &loc]).status.success());
    assert!(
        hoist(&["validate", &format!("oci:{}:{digest}", l.display())])
            .status
            .success()
    );
    // Corrupt the largest blob (a layer): validate names it and fails; --fast does not read it.
    let blobs = l.join("blobs/sha256");
    let biggest = fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = fs::read(&biggest).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0x55;
    fs::write(&biggest, bytes).unwrap();
    let name = biggest.file_name().unwrap().to_str().unwrap();
    fails_with(&["validate", &loc], name);
    assert!(hoist(&["validate", "--fast", &loc]).status.success());
}

#[test]
fn random_index_into_a_layout() {
    let t = tempfile::tempdir().unwrap();
    let loc = format!("oci:{}:multi", t.path().join("l").display());
    let out = hoist(&[
        "random", &loc, "--index", "3", "--layers", "1", "--size", "4k",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = hoist(&["validate", &loc]);
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(summary.contains("1 index, 3 images, 3 layers"), "{summary}");
    let tar = format!("docker-archive:{}", t.path().join("x.tar").display());
    fails_with(
        &["random", &tar, "--index", "2", "--size", "1k"],
        "not an index",
    );
    fails_with(
        &["random", &loc, "--index", "9", "--size", "1k"],
        "expected 1 to 7",
    );
}

/// A registry that answers every request with `status` and `body` (one connection at a
/// time, closed after each answer); stops when the test process ends.
fn hostile_registry(status: &'static str, body: &'static str) -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// Untrusted bytes (a registry's error message, code and detail; a tar member name) reach
/// the terminal quoted, control characters escaped: one line, no escape sequence.
#[test]
fn untrusted_bytes_in_errors_are_quoted() {
    let no_raw_controls = |args: &[&str], want: &[&str]| {
        let out = hoist(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(
            err.lines().count(),
            1,
            "{args:?}: one line expected: {err:?}"
        );
        let body = err.trim_end_matches('\n');
        assert!(
            !body.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{args:?}: raw control characters in {err:?}"
        );
        for w in want {
            assert!(err.contains(w), "{args:?}: {err:?} lacks {w:?}");
        }
    };

    let addr = hostile_registry(
        "400 Bad Request",
        r#"{"errors":[{"code":"EVIL\u001b[31m","message":"first\nsecond\u001b[2J\r","detail":"\u202egpj.exe"}]}"#,
    );
    no_raw_controls(
        &["manifest", &format!("{addr}/app:v1")],
        &[
            r#""EVIL\u{1b}[31m""#,
            r#""first\nsecond\u{1b}[2J\r""#,
            r#"(detail "\u{202e}gpj.exe")"#,
        ],
    );
    // A body that is not the spec's JSON: its first line, quoted.
    let addr = hostile_registry("500 Internal Server Error", "\u{1b}]0;owned\u{7}\nmore");
    no_raw_controls(
        &["manifest", "--retries", "0", &format!("{addr}/app:v1")],
        &[r#""\u{1b}]0;owned\u{7}""#],
    );

    // A tarball whose member name carries an escape sequence and '..'.
    let t = tempfile::tempdir().unwrap();
    let tar_path = t.path().join("evil.tar");
    let mut b = tar::Builder::new(fs::File::create(&tar_path).unwrap());
    let mut h = tar::Header::new_gnu();
    let name = b"x\x1b[2J/../../etc/passwd";
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_size(1);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    b.finish().unwrap();
    drop(b);
    no_raw_controls(
        &["validate", tar_path.to_str().unwrap()],
        &[r#""x\u{1b}[2J/../../etc/passwd""#],
    );
}
