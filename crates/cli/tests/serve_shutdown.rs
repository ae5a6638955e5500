//! Stopping `hoist serve`: SIGTERM (what orchestrators send) drains like SIGINT: the
//! listener closes, requests in flight finish within the grace period, then the process
//! exits 0. And "listening on" is printed only once the socket is bound and TLS loaded.

mod serve_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use hoist_image::Digest;
use reqwest::StatusCode;
use serve_common::{Server, data};

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_drain_requests_in_flight() {
    for sig in ["-TERM", "-INT"] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let mut server = Server::start(&root, &["--shutdown-grace", "20s"]);
        let addr = server.addr();
        // An upload in flight: half its body sent.
        let blob = data(4, 2 << 20);
        let d = Digest::sha256(&blob);
        let mut s = TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "POST /v2/drain/app/blobs/uploads/?digest={d} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
            blob.len()
        )
        .unwrap();
        s.write_all(&blob[..1 << 20]).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        signal(server.pid(), sig);
        // The listener closes: new connections are refused.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&addr).is_ok() {
            assert!(
                Instant::now() < deadline,
                "{sig}: still accepting after 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            server.is_running(),
            "{sig}: exited with a request in flight"
        );
        // The request in flight finishes.
        s.write_all(&blob[1 << 20..]).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut answer = vec![0u8; 512];
        let n = s.read(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 201"), "{sig}: {answer}");
        drop(s);
        let code = server.wait_exit(Duration::from_secs(15));
        assert_eq!(code, Some(0), "{sig}: exit status");
        // What it committed is there after a restart.
        let server = Server::start(&root, &[]);
        let r = reqwest::Client::new()
            .head(format!("{}/v2/drain/app/blobs/{d}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{sig}");
    }
}

/// TLS files that exist but hold no certificate: an error naming the file, exit 1, and no
/// "listening" line on stdout.
#[test]
fn no_listening_line_before_tls_is_loaded() {
    let t = tempfile::tempdir().unwrap();
    let (cert, key) = (t.path().join("cert.pem"), t.path().join("key.pem"));
    std::fs::write(&cert, "not a certificate\n").unwrap();
    std::fs::write(&key, "not a key\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(["serve", "--addr", "127.0.0.1:0", "--root"])
        .arg(t.path().join("root"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty(), "printed {stdout:?} before failing");
    assert!(stderr.contains(cert.to_str().unwrap()), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}
