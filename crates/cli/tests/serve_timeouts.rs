//! Timeouts of `hoist serve` for clients that stall, TLS included, and running out of file
//! descriptors: the server closes what is stalled and recovers by itself. Each wait is
//! bounded; the timeouts are short (1-2 s) so the test is quick.

mod serve_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hoist_image::Digest;
use hoist_testkit::api::push_blob;
use reqwest::StatusCode;
use serve_common::{Server, data};

const SHORT: &[&str] = &[
    "--idle-timeout",
    "1s",
    "--header-timeout",
    "1s",
    "--body-timeout",
    "2s",
];

/// Reads until the server closes the connection (EOF or reset), at most 15 s; returns the
/// bytes read. Panics if it stays open.
fn read_until_closed(s: &mut TcpStream, what: &str) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 64 << 10];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("{what}: still open after 15 s ({e})"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("root"), SHORT);
    let (base, addr) = (server.url(), server.addr());
    let c = reqwest::Client::new();
    let blob = data(1, 8 << 20);
    let d = push_blob(&c, &base, "t/app", &blob).await;

    // A connection that never sends anything.
    let mut idle = TcpStream::connect(&addr).unwrap();
    // One that trickles a request head and never ends it.
    let mut trickle = TcpStream::connect(&addr).unwrap();
    trickle
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let trickler = {
        let mut s = trickle.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..40 {
                if s.write_all(b"X-Slow: y\r\n").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    // One that asks for the blob and reads nothing.
    let mut reader = TcpStream::connect(&addr).unwrap();
    write!(
        reader,
        "GET /v2/t/app/blobs/{d} HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    // One that starts an upload and goes quiet.
    let mut uploader = TcpStream::connect(&addr).unwrap();
    let ud = Digest::sha256(b"never sent");
    write!(
        uploader,
        "POST /v2/t/app/blobs/uploads/?digest={ud} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n0123456789"
    )
    .unwrap();

    let t = Instant::now();
    assert!(read_until_closed(&mut idle, "idle connection").is_empty());
    let head = read_until_closed(&mut trickle, "trickled head");
    assert!(head.is_empty(), "{}", String::from_utf8_lossy(&head));
    trickler.join().unwrap();
    // The reader gets what fit in the socket buffers, then the server gives up on it.
    std::thread::sleep(Duration::from_secs(3));
    let got = read_until_closed(&mut reader, "blob reader");
    assert!(
        got.len() < blob.len(),
        "the stalled reader got all {} bytes",
        got.len()
    );
    // The uploader gets a 408; its bytes stay in a session that expires later.
    let answer = read_until_closed(&mut uploader, "stalled upload");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    eprintln!("stalled connections closed within {:?}", t.elapsed());
    // The server is fine.
    let r = c.get(format!("{base}/v2/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[test]
fn idle_tls_connections_are_closed() {
    let Some(openssl) = hoist_testkit::peers::require("openssl") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let (cert, key) = (t.path().join("cert.pem"), t.path().join("key.pem"));
    let out = Command::new(&openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", "2", "-subj", "/CN=127.0.0.1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut extra = vec![
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    extra.extend_from_slice(SHORT);
    let server = Server::start(&t.path().join("root"), &extra);
    // A client that completes the handshake, then sends nothing: openssl s_client exits
    // when the server closes the connection.
    let mut client = Command::new(&openssl)
        .args(["s_client", "-quiet", "-connect"])
        .arg(server.addr())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = client.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if status.is_none() {
        let _ = client.kill();
        panic!("an idle TLS connection stayed open for 15 s");
    }
    // A client that connects and never starts the handshake is closed as well.
    let mut raw = TcpStream::connect(server.addr()).unwrap();
    assert!(read_until_closed(&mut raw, "TLS connection without a handshake").is_empty());
}

/// With 64 file descriptors and 100 clients holding connections open, accept fails
/// (EMFILE); the server backs off, idle connections are closed, and a normal request gets
/// through, without anyone restarting anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_file_descriptors_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with_nofile(&dir.path().join("root"), SHORT, 64);
    let (base, addr) = (server.url(), server.addr());
    let held: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let t = Instant::now();
    let r = c
        .get(format!("{base}/v2/"))
        .send()
        .await
        .expect("a request while the server is out of file descriptors");
    assert_eq!(r.status(), StatusCode::OK);
    eprintln!("served after {:?} with 100 connections held", t.elapsed());
    // Everyone lets go; uploads work again.
    drop(held);
    let d = push_blob(&c, &base, "fd/app", &data(3, 1 << 20)).await;
    let r = c
        .head(format!("{base}/v2/fd/app/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(server.is_running(), "the server exited");
    server.kill9();
}
