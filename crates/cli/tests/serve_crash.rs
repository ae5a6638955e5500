//! Crash safety of `hoist serve`: kill -9 in the middle of a large chunked upload, a large
//! single-request upload and a manifest PUT; restart on the same root. Committed data is
//! intact, nothing partial is visible, and the interrupted chunked upload resumes.

mod serve_common;

use std::time::{Duration, Instant};

use hoist_image::Digest;
use hoist_testkit::api::{get_blob, half_request, push_blob, upload_offset};
use reqwest::StatusCode;
use serve_common::{Server, data, image_manifest};

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_upload_and_mid_manifest_then_restart() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let c = hoist_testkit::registry::client_builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let mut server = Server::start(&root, &[]);
    let base = server.url();
    // Committed before the crash: an image tagged v1.
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = data(1, 2 * MIB);
    let cd = push_blob(&c, &base, "crash/app", &config).await;
    let ld = push_blob(&c, &base, "crash/app", &layer).await;
    let m1 = image_manifest(&cd, config.len(), &[(ld.clone(), layer.len())], "v1");
    let r = c
        .put(format!("{base}/v2/crash/app/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(m1.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // A chunked upload: chunk 1 complete, chunk 2 interrupted half-way.
    let big = data(2, 3 * MIB);
    let big_digest = Digest::sha256(&big);
    let r = c
        .post(format!("{base}/v2/crash/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let loc_path = r.headers()["location"].to_str().unwrap().to_string();
    let loc = format!("{base}{loc_path}");
    let r = c
        .patch(&loc)
        .header("content-range", format!("0-{}", MIB - 1))
        .body(big[..MIB].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let addr = server.addr();
    let _chunk2 = half_request(
        &addr,
        &format!(
            "PATCH {loc_path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Range: {MIB}-{}\r\nContent-Length: {}\r\n\r\n",
            3 * MIB - 1,
            2 * MIB
        ),
        &big[MIB..2 * MIB],
    );
    // A large single-request upload, interrupted.
    let mono = data(3, 4 * MIB);
    let mono_digest = Digest::sha256(&mono);
    let _mono = half_request(
        &addr,
        &format!(
            "POST /v2/crash/app/blobs/uploads/?digest={mono_digest} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            mono.len()
        ),
        &mono[..2 * MIB],
    );
    // A manifest PUT (tag v2), interrupted.
    let m2 = image_manifest(&cd, config.len(), &[(ld.clone(), layer.len())], "v2");
    let m2_digest = Digest::sha256(&m2);
    let _m2 = half_request(
        &addr,
        &format!(
            "PUT /v2/crash/app/manifests/v2 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\n\r\n",
            m2.len()
        ),
        &m2[..m2.len() / 2],
    );
    // Wait until the server has written what chunk 2 sent, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(20);
    while upload_offset(&c, &loc).await < 2 * MIB as u64 {
        assert!(Instant::now() < deadline, "chunk 2 did not arrive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();

    let server = Server::start(&root, &[]);
    let base = server.url();
    // Committed data intact.
    let r = c
        .get(format!("{base}/v2/crash/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().as_ref(), m1.as_slice());
    let got = get_blob(&c, &base, "crash/app", &ld).await;
    assert!(got.as_ref() == layer.as_slice(), "committed layer changed");
    // Nothing partial visible.
    let r = c
        .get(format!("{base}/v2/crash/app/tags/list"))
        .send()
        .await
        .unwrap();
    let tags: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["v1"]));
    for (what, url) in [
        (
            "interrupted manifest",
            format!("{base}/v2/crash/app/manifests/{m2_digest}"),
        ),
        (
            "interrupted single POST",
            format!("{base}/v2/crash/app/blobs/{mono_digest}"),
        ),
        (
            "interrupted chunked upload",
            format!("{base}/v2/crash/app/blobs/{big_digest}"),
        ),
    ] {
        let r = c.head(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{what} is visible");
    }
    let leftovers: Vec<_> = std::fs::read_dir(root.join("tmp")).unwrap().collect();
    assert!(leftovers.is_empty(), "temp files survive a restart");

    // The chunked upload resumes where the server says it stopped.
    let loc = format!("{base}{loc_path}");
    let have = upload_offset(&c, &loc).await;
    assert!(
        have >= MIB as u64 && have <= 3 * MIB as u64,
        "resume offset {have}"
    );
    let have = have as usize;
    let r = c
        .patch(&loc)
        .header("content-range", format!("{have}-{}", 3 * MIB - 1))
        .body(big[have..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = c
        .put(format!("{loc}?digest={big_digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let got = get_blob(&c, &base, "crash/app", &big_digest).await;
    assert!(got.as_ref() == big.as_slice(), "resumed blob differs");
}
