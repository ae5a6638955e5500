//! Push against real registries: the distribution registry (Debian `docker-registry`),
//! through the fault-injecting proxy and the token gate; each push ends with `check`,
//! which re-reads and re-hashes everything the registry serves.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestImage;
use hoist_image::Child;
use hoist_remote::push::{self, NoProgress, Options};
use hoist_remote::{Client, Repository, Target, validate};
use hoist_testkit::distribution::Distribution;
use hoist_testkit::faults::{Fault, Match, Proxy, Rule};

fn target(addr: std::net::SocketAddr, name: &str, tag: &str) -> Target {
    Target::tagged(Repository::new(addr.to_string(), name).unwrap(), tag).unwrap()
}

fn fast_client() -> Client {
    Client::builder()
        .retry(hoist_remote::retry::RetryPolicy {
            retries: 5,
            base: Duration::from_millis(20),
            max: Duration::from_secs(2),
        })
        .read_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

async fn push_one(
    client: &Client,
    img: Arc<TestImage>,
    targets: &[Target],
    opts: &Options,
) -> push::Report {
    push::push(
        client,
        Child::Image(img),
        targets,
        opts,
        Arc::new(NoProgress),
    )
    .await
    .unwrap_or_else(|e| panic!("push failed: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_repush_and_tag_against_distribution() {
    common::logs();
    let Some(reg) = Distribution::start() else {
        return;
    };
    let img = TestImage::new(1, 3, 300 << 10);
    let client = fast_client();
    // Small monolithic limit: the layers go through the streamed PATCH path.
    let opts = Options {
        monolithic_max: 16 << 10,
        ..Options::default()
    };
    let t1 = target(reg.addr(), "hoist/demo", "v1");
    let r = push_one(&client, img.clone(), std::slice::from_ref(&t1), &opts).await;
    assert_eq!(r.blobs_uploaded, 4, "{r:?}");
    assert_eq!(r.manifests_put, 1);
    let want = hoist_image::Image::manifest(&*img)
        .unwrap()
        .digest()
        .clone();
    assert_eq!(r.pushed[0].digest, want);
    assert_eq!(
        r.pushed[0].to_string(),
        format!("{}/hoist/demo@{want}", reg.addr())
    );
    let c = validate(&client, &t1.repo, "v1", Default::default())
        .await
        .unwrap();
    assert_eq!((c.images, c.layers, c.digest.as_ref()), (1, 3, Some(&want)));

    // Re-push: every blob present, nothing uploaded, the manifest PUT skipped.
    let r = push_one(&client, img.clone(), std::slice::from_ref(&t1), &opts).await;
    assert_eq!(
        (
            r.blobs_present,
            r.blobs_uploaded,
            r.manifests_put,
            r.manifests_skipped
        ),
        (4, 0, 0, 1),
        "{r:?}"
    );

    // A second tag: one manifest PUT.
    let before = client.stats().requests;
    let t2 = target(reg.addr(), "hoist/demo", "v2");
    let r = push_one(&client, img.clone(), std::slice::from_ref(&t2), &opts).await;
    assert_eq!((r.blobs_uploaded, r.manifests_put), (0, 1));
    assert!(
        client.stats().requests - before <= 4 + 2,
        "HEADs + manifest HEAD + PUT"
    );
    assert_eq!(
        client.manifest_digest(&t2.repo, "v2").await.unwrap(),
        Some(want.clone())
    );
    assert_eq!(
        img.seals(),
        3,
        "each layer compressed once over three pushes"
    );
    assert_eq!(img.opens(), 3, "each layer read once over three pushes");
}

/// A corrupt layout blob is refused by distribution (which hashes every upload; hoist does
/// not hash it a second time) and named in the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_layout_blobs_are_refused_by_distribution() {
    common::logs();
    let Some(reg) = Distribution::start() else {
        return;
    };
    common::corrupt_layout_push(reg.addr(), &fast_client()).await;
}

/// The counting test: one image to 3 tags in 2 registries reads each layer once and
/// compresses it once; the second repository of a registry mounts from the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tags_two_registries_read_and_compress_once() {
    common::logs();
    let (Some(a), Some(b)) = (Distribution::start(), Distribution::start()) else {
        return;
    };
    let img = TestImage::new(2, 4, 200 << 10);
    let client = fast_client();
    let targets = [
        target(a.addr(), "one/app", "v1"),
        target(a.addr(), "two/app", "v1"),
        target(b.addr(), "three/app", "latest"),
    ];
    let r = push_one(&client, img.clone(), &targets, &Options::default()).await;
    assert_eq!(img.opens(), 4, "each layer source read once");
    assert_eq!(img.seals(), 4, "each layer compressed once");
    // 5 blobs (config + 4 layers): uploaded to registry a once and b once, mounted once.
    assert_eq!((r.blobs_uploaded, r.blobs_mounted), (10, 5), "{r:?}");
    assert_eq!(r.pushed.len(), 3);
    for t in &targets {
        let c = validate(
            &client,
            &t.repo,
            t.tag.as_deref().unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
        assert_eq!(c.layers, 4);
        assert_eq!(c.digest.as_ref(), Some(&r.pushed[0].digest));
    }
}

/// Faults: 500s and a 429 with Retry-After on the way; chunked upload whose third chunk
/// is refused with a 503 is resumed from the registry's offset (not restarted), and a
/// connection reset in the middle of a streamed body is recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_retry_and_resume() {
    common::logs();
    let Some(reg) = Distribution::start() else {
        return;
    };
    let proxy = Proxy::start(
        reg.addr(),
        vec![
            Rule::new(Match::method("HEAD").path("/blobs/"), Fault::Status(500), 2),
            Rule::new(Match::method("POST"), Fault::TooManyRequests("1".into()), 1),
            Rule::new(Match::method("PATCH"), Fault::Status(503), 1).after(2),
            Rule::new(
                Match::method("GET").path("/v2/"),
                Fault::Stall(Duration::from_secs(3)),
                1,
            ),
        ],
    );
    let img = TestImage::new(3, 1, 1 << 20);
    let client = fast_client();
    let chunk = 64 << 10;
    let opts = Options {
        chunk_size: Some(chunk),
        monolithic_max: 0,
        ..Options::default()
    };
    let t = target(proxy.addr(), "faults/app", "v1");
    let started = std::time::Instant::now();
    let r = push_one(&client, img.clone(), std::slice::from_ref(&t), &opts).await;
    assert_eq!(r.blobs_uploaded, 2);
    let s = client.stats();
    let pc = proxy.counters();
    assert!(
        s.retries >= 4,
        "500 x2, 429, stall: {s:?} / {}",
        pc.summary()
    );
    assert!(s.resumes >= 1, "the refused chunk was resumed: {s:?}");
    assert_eq!(s.restarts, 0, "{s:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    // The layer went over the wire once (plus the config), not twice.
    let layer_size = img.layers[0].sealed_size();
    let config_size = img.config.raw().len() as u64;
    let manifest_size = hoist_image::Image::manifest(&*img).unwrap().raw().len() as u64;
    let body = pc.body_bytes.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        body,
        layer_size + config_size + manifest_size,
        "each byte sent once"
    );
    validate(&client, &t.repo, "v1", Default::default())
        .await
        .unwrap();

    // A reset in the middle of a streamed body: the push still completes.
    proxy.set_rules(vec![Rule::new(
        Match::method("PATCH"),
        Fault::ResetAfter(100 << 10),
        1,
    )]);
    let img = TestImage::new(4, 1, 1 << 20);
    let opts = Options {
        monolithic_max: 0,
        ..Options::default()
    };
    let t = target(proxy.addr(), "faults/reset", "v1");
    push_one(&client, img.clone(), std::slice::from_ref(&t), &opts).await;
    assert_eq!(
        proxy
            .counters()
            .resets
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let s2 = client.stats();
    assert!(s2.resumes + s2.restarts > s.resumes + s.restarts, "{s2:?}");
    validate(&client, &t.repo, "v1", Default::default())
        .await
        .unwrap();
}

/// The registry asks for chunks (`OCI-Chunk-Min-Length`) and refuses big bodies (413).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_when_asked_or_refused() {
    common::logs();
    let Some(reg) = Distribution::start() else {
        return;
    };
    let proxy = Proxy::start(
        reg.addr(),
        vec![Rule::new(
            Match::method("POST"),
            Fault::ChunkMin(128 << 10),
            u64::MAX,
        )],
    );
    let img = TestImage::new(5, 1, 1 << 20);
    let client = fast_client();
    let opts = Options {
        monolithic_max: 0,
        ..Options::default()
    };
    let t = target(proxy.addr(), "chunks/asked", "v1");
    push_one(&client, img.clone(), std::slice::from_ref(&t), &opts).await;
    let size = img.layers[0].sealed_size();
    let patches = proxy.counters().method("PATCH");
    assert!(
        patches >= size.div_ceil(128 << 10),
        "{patches} PATCHes for {size} bytes"
    );
    validate(&client, &t.repo, "v1", Default::default())
        .await
        .unwrap();

    proxy.set_rules(vec![Rule::new(
        Match::method("PATCH"),
        Fault::RefuseBodyOver(64 << 10),
        u64::MAX,
    )]);
    let img = TestImage::new(6, 1, 1 << 20);
    let t = target(proxy.addr(), "chunks/refused", "v1");
    // Chunks of at least 1 MiB after a 413 halving: bigger than 64 KiB, so the push
    // must fail with the registry's 413 rather than loop.
    let e = push::push(
        &client,
        Child::Image(img.clone()),
        std::slice::from_ref(&t),
        &opts,
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), Some(413), "{e}");
    // With a limit the fallback chunk fits, it completes.
    proxy.set_rules(vec![Rule::new(
        Match::method("PATCH"),
        Fault::RefuseBodyOver(hoist_remote::FALLBACK_CHUNK),
        u64::MAX,
    )]);
    let img = TestImage::new(7, 2, 4 << 20);
    push_one(&client, img.clone(), std::slice::from_ref(&t), &opts).await;
    validate(&client, &t.repo, "v1", Default::default())
        .await
        .unwrap();
}

trait SealedSize {
    fn sealed_size(&self) -> u64;
}
impl<T: hoist_image::Layer> SealedSize for T {
    fn sealed_size(&self) -> u64 {
        self.size().unwrap()
    }
}

/// The stream strategy: each layer compressed once, straight into one upload per
/// registry (the second repository of a registry mounts), no spool; what the registries
/// serve checks out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_strategy_compresses_once_into_every_registry() {
    common::logs();
    let (Some(a), Some(b)) = (Distribution::start(), Distribution::start()) else {
        return;
    };
    let img = TestImage::new(8, 3, 400 << 10);
    let client = fast_client();
    let targets = [
        target(a.addr(), "stream/one", "v1"),
        target(a.addr(), "stream/two", "v1"),
        target(b.addr(), "stream/three", "v1"),
    ];
    let opts = Options {
        strategy: push::Strategy::Stream(hoist_image::pipeline::Encoding::gzip()),
        ..Options::default()
    };
    let r = push_one(&client, img.clone(), &targets, &opts).await;
    assert_eq!(img.opens(), 3, "each layer read once");
    assert_eq!(img.seals(), 0, "nothing spooled");
    // layers: 3 uploads to each registry + 3 mounts; config: uploaded twice, mounted once
    assert_eq!((r.blobs_uploaded, r.blobs_mounted), (8, 4), "{r:?}");
    let want = hoist_image::Image::manifest(&*img)
        .unwrap()
        .digest()
        .clone();
    for t in &targets {
        let c = validate(&client, &t.repo, "v1", Default::default())
            .await
            .unwrap();
        assert_eq!(c.layers, 3);
        // Deterministic compression: the same manifest as sealing first would give.
        assert_eq!(c.digest.as_ref(), Some(&want));
    }
}

/// A failed push cancels the upload sessions it opened: distribution keeps none of their
/// bytes (no `_uploads/<id>/data`). Only sessions between requests: one interrupted in the
/// middle of a request holds a stale `_state` token, with which distribution refuses to
/// cancel it (README, Caveats).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_push_cancels_its_upload_sessions_in_distribution() {
    let Some(reg) = Distribution::start() else {
        return;
    };
    let root = reg.root().to_path_buf();
    common::failed_push_leaves_no_sessions(
        reg.addr(),
        &fast_client(),
        common::Failure::AtCommit,
        || common::files_named(&root, "_uploads", "data"),
    )
    .await;
}
