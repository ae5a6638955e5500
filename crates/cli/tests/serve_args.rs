//! `hoist serve` refuses bad arguments with one line naming the input, and exits non-zero.

use std::process::Command;

fn serve(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .arg("serve")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_serve_arguments_are_one_line_errors() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let root = root.to_str().unwrap();
    // A certificate without its key: usage error.
    let (code, err) = serve(&["--root", root, "--tls-cert", "/nonexistent.pem"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--tls-key"), "{err}");
    // An htpasswd file that does not exist, or has no bcrypt entries.
    let (code, err) = serve(&[
        "--root",
        root,
        "--addr",
        "127.0.0.1:0",
        "--htpasswd",
        "/nonexistent/htpasswd",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("hoist: ") && err.contains("/nonexistent/htpasswd"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let pw = t.path().join("htpasswd");
    std::fs::write(&pw, "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap();
    let (code, err) = serve(&[
        "--root",
        root,
        "--addr",
        "127.0.0.1:0",
        "--htpasswd",
        pw.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("bcrypt"), "{err}");
    // Missing certificate files.
    let (code, err) = serve(&[
        "--root",
        root,
        "--addr",
        "127.0.0.1:0",
        "--tls-cert",
        "/nonexistent/c.pem",
        "--tls-key",
        "/nonexistent/k.pem",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/c.pem"), "{err}");
    // A bad address.
    let (code, err) = serve(&["--root", root, "--addr", "localhost:http"]);
    assert_eq!(code, 2, "{err}");
    // A root that is a file.
    let file = t.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let (code, err) = serve(&["--root", file.to_str().unwrap(), "--addr", "127.0.0.1:0"]);
    assert_eq!(code, 1);
    assert!(err.contains("storage root"), "{err}");
}
