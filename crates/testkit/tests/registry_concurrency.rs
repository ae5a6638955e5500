//! No global lock: two large uploads progress side by side, and a client that stalls in
//! the middle of a body blocks nobody (not even a client of the same repository).

use std::time::{Duration, Instant};

use bytes::Bytes;
use hoist_image::Digest;
use hoist_testkit::api::{get_blob, half_request, push_blob, upload_offset};
use hoist_testkit::registry::TestRegistry;
use reqwest::StatusCode;
use tokio::sync::mpsc;

const CHUNK: usize = 256 << 10;

fn data(seed: u8, len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678 ^ seed as u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

async fn start_upload(c: &reqwest::Client, base: &str, repo: &str) -> String {
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    format!("{base}{loc}")
}

/// Poll until the server has written `want` bytes of the session, or panic after 20 s.
async fn wait_for(c: &reqwest::Client, loc: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = upload_offset(c, loc).await;
        if got >= want {
            assert_eq!(got, want);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{loc}: only {got} of {want} bytes arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A PATCH whose body the test feeds chunk by chunk.
fn streaming_patch(
    c: &reqwest::Client,
    loc: &str,
) -> (
    mpsc::Sender<Bytes>,
    tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
) {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    let req = c
        .patch(loc)
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(stream));
    (tx, tokio::spawn(req.send()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_large_uploads_progress_in_parallel() {
    let reg = TestRegistry::start();
    let base = reg.url();
    let c = hoist_testkit::registry::client_builder().build().unwrap();
    let (a, b) = (data(1, 8 << 20), data(2, 8 << 20));
    let loc_a = start_upload(&c, &base, "par/a").await;
    let loc_b = start_upload(&c, &base, "par/b").await;
    let (tx_a, resp_a) = streaming_patch(&c, &loc_a);
    let (tx_b, resp_b) = streaming_patch(&c, &loc_b);
    // Interleave: each half of A and B arrives while the other request is open mid-body.
    for half in 0..2 {
        let range = half * (4 << 20)..(half + 1) * (4 << 20);
        for chunk in a[range.clone()].chunks(CHUNK) {
            tx_a.send(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        wait_for(&c, &loc_a, range.end as u64).await;
        for chunk in b[range.clone()].chunks(CHUNK) {
            tx_b.send(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        wait_for(&c, &loc_b, range.end as u64).await;
        // A is still open and still at its size: B's writes did not wait for A to finish.
        assert_eq!(upload_offset(&c, &loc_a).await, range.end as u64);
    }
    drop((tx_a, tx_b));
    for (resp, loc, bytes, repo) in [(resp_a, &loc_a, &a, "par/a"), (resp_b, &loc_b, &b, "par/b")] {
        let r = resp.await.unwrap().unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let d = Digest::sha256(bytes);
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = c.put(format!("{loc}{sep}digest={d}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let got = get_blob(&c, &base, repo, &d).await;
        assert!(got.as_ref() == bytes.as_slice(), "{repo}: blob differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_blocks_nobody() {
    let reg = TestRegistry::start();
    let base = reg.url();
    let c = hoist_testkit::registry::client_builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let loc = start_upload(&c, &base, "stall/repo").await;
    let path = loc.strip_prefix(&base).unwrap().to_string();
    // A raw client promises 10 MiB, sends 64 KiB and goes quiet, holding its connection.
    let stalled = half_request(
        reg.addr(),
        &format!(
            "PATCH {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            reg.addr(),
            10 << 20
        ),
        &data(3, 64 << 10),
    );
    wait_for(&c, &loc, 64 << 10).await;

    // Meanwhile, in the same repository and in another: complete pushes and pulls.
    let started = Instant::now();
    for repo in ["stall/repo", "stall/other"] {
        for i in 0..3u8 {
            let bytes = data(10 + i, 1 << 20);
            let d = push_blob(&c, &base, repo, &bytes).await;
            let got = get_blob(&c, &base, repo, &d).await;
            assert_eq!(got.len(), bytes.len());
        }
        let r = c
            .get(format!("{base}/v2/{repo}/tags/list"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    // A second writer of the stalled session is refused at once instead of queueing.
    let r = c.patch(&loc).body(vec![0u8; 10]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "others waited on the stalled client: {:?}",
        started.elapsed()
    );
    // The stalled client's bytes are still there; it could resume.
    assert_eq!(upload_offset(&c, &loc).await, 64 << 10);
    drop(stalled);
}
