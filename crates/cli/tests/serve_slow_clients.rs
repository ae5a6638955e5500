//! Slow and stalled clients: hundreds of clients that ask for a blob and read nothing, or
//! trickle an upload, hold no thread of `hoist serve` and cost it little memory; a normal
//! manifest GET still answers at once. Bounded counts; the one time bound (a manifest GET
//! in under a second, once the server has sent the stalled readers what their sockets
//! take) is a liveness check, not a benchmark.

mod serve_common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hoist_image::Digest;
use hoist_testkit::api::push_blob;
use reqwest::StatusCode;
use serve_common::{Server, data, image_manifest};

/// Clients that request a blob and read nothing.
const READERS: usize = 400;
/// Clients that trickle an upload.
const UPLOADERS: usize = 200;
const BLOB: usize = 8 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_stalled_clients_do_not_stop_a_manifest_get() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("root"), &[]);
    let base = server.url();
    let addr = server.addr();
    let c = hoist_testkit::registry::client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = data(1, BLOB);
    let cd = push_blob(&c, &base, "slow/app", &config).await;
    let ld = push_blob(&c, &base, "slow/app", &layer).await;
    let m = image_manifest(&cd, config.len(), &[(ld.clone(), layer.len())], "slow");
    let r = c
        .put(format!("{base}/v2/slow/app/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(m.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let rss_before = server.rss_kib();

    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..READERS {
        let mut s = TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET /v2/slow/app/blobs/{ld} HTTP/1.1\r\nHost: {addr}\r\n\r\n"
        )
        .unwrap();
        held.push(s);
    }
    let promised = 1 << 20;
    for i in 0..UPLOADERS {
        let mut s = TcpStream::connect(&addr).unwrap();
        let d = Digest::sha256(format!("never complete {i}").as_bytes());
        write!(
            s,
            "POST /v2/slow/up/blobs/uploads/?digest={d} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {promised}\r\n\r\nx"
        )
        .unwrap();
        held.push(s);
    }
    // Let the server take them all in and fill the readers' socket buffers (some MiB each,
    // work it does once per client): wait until it is idle, at most 60 s.
    server.wait_idle(Duration::from_secs(60));
    // A trickle: one more byte from each uploader.
    for s in held.iter_mut().skip(READERS) {
        s.write_all(b"y").unwrap();
    }

    let mut took = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let r = c
            .get(format!("{base}/v2/slow/app/manifests/v1"))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .expect("manifest GET while 600 clients stall");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.bytes().await.unwrap().as_ref(), m.as_slice());
        took.push(t.elapsed());
    }
    took.sort();
    // And a push and a pull of a new blob go through too.
    let small = data(2, 1 << 20);
    let sd = push_blob(&c, &base, "slow/other", &small).await;
    let got = hoist_testkit::api::get_blob(&c, &base, "slow/other", &sd).await;
    assert!(got.as_ref() == small.as_slice());
    let rss_after = server.rss_kib();
    let per_client = rss_after.saturating_sub(rss_before) as f64 / (READERS + UPLOADERS) as f64;
    eprintln!(
        "{} stalled clients: manifest GET took {:?} (median of 5); server RSS {rss_before} KiB -> {rss_after} KiB, {per_client:.0} KiB per stalled client",
        READERS + UPLOADERS,
        took[2]
    );
    assert!(
        took[2] < Duration::from_secs(1),
        "manifest GETs took {took:?} while clients stalled"
    );
    assert!(
        per_client < 1024.0,
        "{per_client:.0} KiB of server memory per stalled client"
    );
    drop(held);
}
